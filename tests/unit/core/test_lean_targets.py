"""The lean targets map (issue 18): a canonical map of the usual shape stays in the file's bytes.

Every property is checked against an independent reading: the stdlib ``json``
decoding of the same bytes (Go's decoding for these inputs: last duplicate key
wins) and :func:`trustcheck.core.canonical.encode_reference`, the direct
transcription of notary's canonical JSON. Genuine files come from the real
notary client (fixtures/generated); hostile ones are built byte by byte.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from trustcheck.core import model
from trustcheck.core.canonical import encode_reference
from trustcheck.core.model import FileMeta, LeanTargets, parse_targets
from trustcheck.errors import NotTrusted

REPO = Path(__file__).resolve().parents[3]
TRUST = REPO / "fixtures" / "generated" / "trust" / "tuf"


@pytest.fixture(autouse=True)
def _lean_for_every_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small files normally take the general path; here the lean path is tried on all."""
    monkeypatch.setattr(model, "LEAN_MIN_BYTES", 0)


def _targets_roles() -> list[tuple[str, Path]]:
    """(role, file) of every targets role the real notary client wrote."""
    out = []
    for metadata in sorted(TRUST.glob("*/*/metadata")):
        out.append(("targets", metadata / "targets.json"))
        out += [
            ("targets/" + p.relative_to(metadata / "targets").as_posix()[: -len(".json")], p)
            for p in sorted((metadata / "targets").rglob("*.json"))
        ]
    return [(role, path) for role, path in out if path.exists()]


GENUINE = _targets_roles()


def _expected(raw: bytes) -> dict[str, FileMeta]:
    """What the map holds, read with the stdlib (last duplicate wins, as in Go)."""
    out: dict[str, FileMeta] = {}
    for name, entry in json.loads(raw)["signed"]["targets"].items():
        hashes = {k: base64.b64decode(v) for k, v in entry["hashes"].items()}
        out[name] = FileMeta(length=entry["length"], hashes=hashes)
    return out


def _canonical_reference(raw: bytes) -> bytes:
    return encode_reference(json.loads(raw)["signed"])


def test_genuine_files_exist() -> None:
    roles = {role for role, _ in GENUINE}
    assert "targets/releases" in roles and len(GENUINE) >= 10


@pytest.mark.parametrize(("role", "path"), GENUINE, ids=lambda x: str(x)[-60:])
def test_genuine_notary_files_read_and_canonicalise_exactly(role: str, path: Path) -> None:
    raw = path.read_bytes()
    tm = parse_targets(role, raw)
    expected = _expected(raw)
    assert dict(tm.items()) == expected
    for name, meta in expected.items():
        assert tm.target(name) == meta
    assert tm.target("no-such-tag") is None
    assert tm.canonical_bytes() == _canonical_reference(raw)


def test_the_bulk_repository_takes_the_lean_path() -> None:
    raw = (TRUST / "localhost" / "bulk" / "metadata" / "targets.json").read_bytes()
    tm = parse_targets("targets", raw)
    lean = tm.targets
    assert type(lean) is LeanTargets
    expected = json.loads(raw)["signed"]["targets"]
    assert len(lean) == len(expected) > 1000
    assert list(lean) == list(expected)
    first = next(iter(expected))
    assert lean[first] == expected[first] and first in lean and "nope" not in lean
    with pytest.raises(KeyError):
        lean["nope"]


def test_small_files_take_the_general_path_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()
    assert model.LEAN_MIN_BYTES > 0
    for role, path in GENUINE:
        raw = path.read_bytes()
        lean = type(parse_targets(role, raw).targets) is LeanTargets
        assert lean is (len(raw) >= model.LEAN_MIN_BYTES and path.parent.parent.name == "bulk")


# --------------------------------------------------------------------------- built by hand

B64 = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
B64_512 = base64.b64encode(hashlib.sha512(b"x").digest()).decode()


def _entry(length: int = 5, sha512: bool = False) -> str:
    hashes = f'"sha256":"{B64}"' + (f',"sha512":"{B64_512}"' if sha512 else "")
    return f'{{"hashes":{{{hashes}}},"length":{length}}}'


def _map(*entries: tuple[str, str]) -> str:
    return "{" + ",".join(f"{json.dumps(n)}:{e}" for n, e in entries) + "}"


def _file(targets: str, before: str = "", after: str = "") -> bytes:
    """A targets role written as notary writes it (canonical ``signed``)."""
    signed = (
        '{"_type":"Targets","delegations":{"keys":{},"roles":[]}'
        + before
        + ',"expires":"2030-01-01T00:00:00Z","targets":'
        + targets
        + after
        + ',"version":1}'
    )
    return ('{"signed":' + signed + ',"signatures":[]}').encode()


def _check(raw: bytes, lean: bool) -> Any:
    tm = parse_targets("targets", raw)
    assert (type(tm.targets) is LeanTargets) is lean
    assert dict(tm.items()) == _expected(raw)
    assert tm.canonical_bytes() == _canonical_reference(raw)
    return tm


def test_usual_shapes_are_lean() -> None:
    raw = _file(
        _map(("a", _entry(0)), ("b", _entry(-3)), ("c d!", _entry(10**15 - 1, sha512=True)))
    )
    tm = _check(raw, lean=True)
    c = tm.target("c d!")
    assert c is not None and c.length == 10**15 - 1 and set(c.hashes) == {"sha256", "sha512"}
    assert _check(_file("{}"), lean=True).target("a") is None


@pytest.mark.parametrize(
    "targets",
    [
        _map(("b", _entry()), ("a", _entry())),  # not in canonical order
        '{"a":' + _entry(1) + ',"a":' + _entry(2) + "}",  # duplicate: the last one counts
        _map(('q"uote', _entry()), ("z", _entry())),  # an escape in a name
        '{"\\u0061":' + _entry(7) + "}",  # an escaped name that reads as "a"
        _map(("é", _entry())),  # not ASCII
        '{"a": ' + _entry() + "}",  # whitespace
        '{"a":{"custom":{"x":1},"hashes":{"sha256":"' + B64 + '"},"length":1}}',
        '{"a":{"hashes":{"sha384":"' + B64 + '"},"length":1}}',
        '{"a":{"hashes":{"sha256":"' + B64 + '"},"length":1.0}}',
        '{"a":{"hashes":{"sha256":"' + B64 + '"},"length":0123}}'.replace("0123", "1e2"),
        '{"a":{"hashes":{"sha256":"' + B64 + '"},"length":-0}}',
        '{"a":null}',
    ],
)
def test_other_shapes_take_the_general_path_with_the_same_meaning(targets: str) -> None:
    raw = _file(targets)
    try:
        expected = _expected(raw)
    except (TypeError, AttributeError):  # null / non-integral: compare the verdict only
        expected = None
    try:
        tm = parse_targets("targets", raw)
    except NotTrusted as e:
        assert e.code in ("invalid-structure", "non-canonical-number")
        return
    assert type(tm.targets) is not LeanTargets
    if expected is not None:
        assert dict(tm.items()) == expected
    assert tm.canonical_bytes() == _canonical_reference(raw)


def test_a_later_duplicate_targets_key_wins_as_in_go() -> None:
    first = _map(("only-first", _entry()))
    second = _map(("only-second", _entry(9)))
    raw = _file(first, after=',"targets":' + second)
    tm = parse_targets("targets", raw)
    assert tm.target("only-first") is None
    hit = tm.target("only-second")
    assert hit is not None and hit.length == 9
    assert tm.canonical_bytes() == _canonical_reference(raw)


@pytest.mark.parametrize(
    "later",
    ['"trustcheck-lean-targets-0000"', '"x"', "null", "[]", "5"],
)
def test_a_later_duplicate_targets_key_that_is_no_map_fails_as_in_go(later: str) -> None:
    # Go reads the last key: a string (or array, number) where a map belongs fails the
    # whole role; null is an empty map
    raw = _file(_map(("a", _entry())), after=',"targets":' + later)
    if later == "null":
        tm = parse_targets("targets", raw)
        assert tm.target("a") is None and list(tm.items()) == []
        return
    with pytest.raises(NotTrusted) as exc:
        parse_targets("targets", raw)
    assert exc.value.code == "invalid-structure"


def test_a_targets_key_nested_before_the_real_map_is_not_taken_for_it() -> None:
    decoy = _map(("decoy", _entry()))
    raw = _file(_map(("real", _entry(3))), before=',"aaa":{"targets":' + decoy + "}")
    tm = parse_targets("targets", raw)
    assert tm.target("decoy") is None
    real = tm.target("real")
    assert real is not None and real.length == 3
    assert tm.canonical_bytes() == _canonical_reference(raw)


def test_a_bad_entry_in_a_lean_looking_map_fails_the_role() -> None:
    bad = _map(("a", _entry())).replace(B64, B64[:-2] + "!=")
    with pytest.raises(NotTrusted) as exc:
        parse_targets("targets", _file(bad))
    assert exc.value.code == "invalid-structure"


@pytest.mark.parametrize("name", ['a"', "a\\", "a\n", "é", "", "a", "a "])
def test_names_a_lean_map_cannot_hold_are_not_found(name: str) -> None:
    tm = _check(_file(_map(("a ", _entry(1)), ("b", _entry(2)))), lean=True)
    hit = tm.target(name)
    assert (hit is not None) is (name == "a ")
    assert (name in tm.targets) is (name == "a ")


def test_a_lean_role_survives_pickling_and_copying() -> None:
    import copy
    import pickle

    raw = (TRUST / "localhost" / "bulk" / "metadata" / "targets.json").read_bytes()
    tm = parse_targets("targets", raw)
    assert type(tm.targets) is LeanTargets
    for other in (pickle.loads(pickle.dumps(tm)), copy.deepcopy(tm)):
        assert type(other.targets) is LeanTargets
        assert dict(other.items()) == dict(tm.items())
        assert other.canonical_bytes() == _canonical_reference(raw)


def test_canonical_bytes_are_a_view_of_the_file_only_when_it_holds_them() -> None:
    targets = _map(("a", _entry(1)), ("b", _entry(2)))
    exact = _file(targets)
    tm = _check(exact, lean=True)
    view = tm.canonical_bytes()
    assert isinstance(view, memoryview) and view.obj is exact  # no copy of the file
    # the same role with bytes outside the map that are not canonical (whitespace, an
    # escape Go's encoder writes): the canonical form is built, not taken from the file
    for spaced in (
        exact.replace(b'"_type":"Targets"', b'"_type": "Targets"'),
        exact.replace(b'"expires":"', b'"\\u0065xpires":"'),
    ):
        other = _check(spaced, lean=True)
        built = other.canonical_bytes()
        assert isinstance(built, bytes) and built == bytes(view)
