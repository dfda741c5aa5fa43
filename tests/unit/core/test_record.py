"""core/record.py: the core's plain records behave as the dataclasses they replaced.

Each check runs the same operation on a record and on the equivalent real
``@dataclass`` and compares the outcomes.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
from dataclasses import dataclass, field

import pytest

from trustcheck.api import ImageResult, Options
from trustcheck.core.lookup import Resolution
from trustcheck.core.record import FrozenRecord, Record, replace
from trustcheck.core.reference import ImageRef
from trustcheck.core.trusted_set import TrustPolicy


class Point(Record):
    __slots__ = ("_cache", "tags", "x", "y")
    x: int
    y: str
    tags: list[str]
    _cache: bytes | None

    def __init__(
        self, x: int, y: str = "", tags: list[str] | None = None, _cache: bytes | None = None
    ) -> None:
        self.x = x
        self.y = y
        self.tags = [] if tags is None else tags
        self._cache = _cache


@dataclass(slots=True)
class PointDC:
    x: int
    y: str = ""
    tags: list[str] = field(default_factory=list)
    _cache: bytes | None = field(default=None, repr=False)


class Frozen(FrozenRecord):
    __slots__ = ("a", "b")
    a: str
    b: int | None

    def __init__(self, a: str, b: int | None = None) -> None:
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)


@dataclass(frozen=True, slots=True)
class FrozenDC:
    a: str
    b: int | None = None


def _shape(text: str) -> str:
    return text.replace("PointDC", "Point").replace("FrozenDC", "Frozen")


def test_mutable_record_matches_dataclass() -> None:
    r, d = Point(1, "a", ["t"], b"c"), PointDC(1, "a", ["t"], b"c")
    assert _shape(repr(d)) == repr(r) == "Point(x=1, y='a', tags=['t'])"
    assert r == Point(1, "a", ["t"], b"c")
    assert r != Point(1, "a", ["t"], b"other")  # private fields compare, as in the dataclass
    assert (r == d) is False and r.__eq__(d) is NotImplemented
    with pytest.raises(TypeError):
        hash(r)
    with pytest.raises(TypeError):
        hash(d)
    r.x = 5
    assert r.x == 5
    assert not hasattr(r, "__dict__") and not hasattr(d, "__dict__")
    with pytest.raises(AttributeError):
        r.other = 1  # type: ignore[attr-defined]
    assert Point(1).tags is not Point(1).tags  # a fresh default each time


def test_frozen_record_matches_dataclass() -> None:
    r, d = Frozen("a", 2), FrozenDC("a", 2)
    assert _shape(repr(d)) == repr(r)
    assert hash(r) == hash(d) == hash(("a", 2))
    assert {r, Frozen("a", 2)} == {r}
    for obj in (r, d):
        with pytest.raises(dataclasses.FrozenInstanceError):
            obj.a = "x"  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            del obj.a  # type: ignore[misc]


def test_copy_pickle_replace() -> None:
    r = Point(1, "a", ["t"], b"c")
    assert copy.copy(r) == r and copy.deepcopy(r) == r
    assert copy.deepcopy(r).tags is not r.tags
    assert pickle.loads(pickle.dumps(r)) == r
    f = Frozen("a", 2)
    assert copy.deepcopy(f) == f and pickle.loads(pickle.dumps(f)) == f
    assert replace(f, b=3) == Frozen("a", 3) and f.b == 2
    assert replace(r, y="b") == Point(1, "b", ["t"], b"c")
    with pytest.raises(TypeError, match="no field 'z'"):
        replace(r, z=1)


def test_dataclasses_functions_work_on_records() -> None:
    r, d = Point(1, "a", ["t"], b"c"), PointDC(1, "a", ["t"], b"c")
    assert dataclasses.is_dataclass(r) and dataclasses.is_dataclass(Point)
    assert [f.name for f in dataclasses.fields(r)] == [f.name for f in dataclasses.fields(d)]
    assert dataclasses.asdict(r) == dataclasses.asdict(d)
    assert dataclasses.astuple(r) == dataclasses.astuple(d)
    assert dataclasses.replace(r, x=2) == Point(2, "a", ["t"], b"c")
    assert dataclasses.replace(Frozen("a"), b=1) == Frozen("a", 1)


def test_public_classes_keep_their_dataclass_surface() -> None:
    result = ImageResult("alpine", "docker.io/library/alpine", "latest", True, digest="sha256:x")
    assert dataclasses.asdict(result)["digest"] == "sha256:x"
    assert [f.name for f in dataclasses.fields(Options)] == [
        "pins",
        "state",
        "no_tofu",
        "delegation_cert_expiry",
    ]
    assert dataclasses.replace(Options(no_tofu=True), state=None) == Options(no_tofu=True)
    ref = ImageRef("docker.io/library/alpine", "latest", None)
    assert dataclasses.replace(ref, tag="3").tag == "3"
    assert replace(TrustPolicy(no_tofu=True), cached_root=b"r") == TrustPolicy(
        no_tofu=True, cached_root=b"r"
    )
    res = Resolution("latest", "sha256:x", 1, "targets", ["targets"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.digest = "y"  # type: ignore[misc]


def test_slots_must_name_the_annotated_fields() -> None:
    with pytest.raises(TypeError, match="__slots__ must name the annotated fields"):

        class Bad(Record):
            __slots__ = ("a",)
            a: int
            b: int
