"""Property tests: any mutation of genuine trust data is verified correctly or refused.

Genuine role files written by the real notary client (fixtures/generated) are
mutated at random, written to a temporary trust dir and verified:

* byte-level: bytes replaced, the file truncated, bytes inserted;
* JSON-level, not re-signed: a value anywhere in a role file replaced by a
  random JSON value, a key deleted or re-spelled in another case;
* JSON-level, re-signed: the same inside ``signed``, re-signed with the
  repository's real keys and the snapshot/timestamp hashes recomputed (the
  attack corpus machinery), so the mutation reaches the structure checks.

The verdict must be either trusted with the digest the signed data gives
(unsigned mutations: exactly the genuine digest) or a NotTrusted/UsageError
whose code is documented in trustcheck.errors.CODES. Any other exception, or
any other digest, fails.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustcheck.api import verify_images
from trustcheck.core.canonical import CanonicalError
from trustcheck.errors import CODES, TrustcheckError

REPO = Path(__file__).resolve().parents[2]
GENERATED = REPO / "fixtures" / "generated"
AT = datetime.strptime(
    (GENERATED / "VALIDATION_TIME").read_text().strip(), "%Y-%m-%dT%H:%M:%SZ"
).replace(tzinfo=UTC)
#: GUN -> the tag looked up (one in targets, one through a delegation)
TAGS = {"localhost/basic": "v1", "localhost/releases": "diff-both"}

SETTINGS = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Path_ = tuple[str | int, ...]


def _files(gun: str) -> dict[str, bytes]:
    metadata = GENERATED / "trust" / "tuf" / gun / "metadata"
    return {p.relative_to(metadata).as_posix(): p.read_bytes() for p in metadata.rglob("*.json")}


GENUINE = {gun: _files(gun) for gun in TAGS}


@functools.cache
def _genuine_digest(gun: str) -> str:
    with _trust_dir(gun, GENUINE[gun]) as trust:
        (result,) = verify_images([f"{gun}:{TAGS[gun]}"], trust, AT)
    assert result.trusted and result.digest is not None, result.error
    return result.digest


@contextmanager
def _trust_dir(gun: str, files: dict[str, bytes]) -> Iterator[Path]:
    """A temporary trust dir holding ``files`` for ``gun``."""
    path = Path(tempfile.mkdtemp(prefix="mutation-"))
    try:
        metadata = path / "tuf" / gun / "metadata"
        for rel, data in files.items():
            target = metadata / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        yield path
    finally:
        shutil.rmtree(path)


def _verdict(gun: str, files: dict[str, bytes]) -> tuple[str | None, str | None]:
    """(trusted digest, error code): exactly one is set; anything else raises."""
    with _trust_dir(gun, files) as trust:
        try:
            (result,) = verify_images([f"{gun}:{TAGS[gun]}"], trust, AT)
        except TrustcheckError as e:  # UsageError (e.g. an unsafe role name)
            assert e.code in CODES and CODES[e.code][0] == 2, e.code
            return None, e.code
    if result.trusted:
        assert result.error is None
        return result.digest, None
    assert result.error is not None and result.error.code in CODES, result.error
    assert result.digest is None or result.error.code == "digest-mismatch"
    return None, result.error.code


def _assert_same_or_refused(gun: str, files: dict[str, bytes]) -> None:
    digest, code = _verdict(gun, files)
    if code is None:
        assert digest == _genuine_digest(gun), f"mutated {gun} verified with another digest"


# --------------------------------------------------------------------------- strategies

repos = st.sampled_from(sorted(TAGS))


@st.composite
def role_file(draw: st.DrawFn) -> tuple[str, str]:
    gun = draw(repos)
    return gun, draw(st.sampled_from(sorted(GENUINE[gun])))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: Any, path: Path_ = ()) -> Iterator[Path_]:
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*path, i))


def _mutate(doc: Any, path: Path_, op: str, value: Any) -> Any:
    """``doc`` with the node at ``path`` replaced, deleted or its key re-spelled."""
    if not path:
        return value
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if op == "replace":
        parent[last] = value
    elif op == "delete":
        del parent[last]
    elif isinstance(last, str):  # "respell": the same key in another case (Go folds it)
        parent[last.swapcase() or "X"] = parent.pop(last)
    return doc


@st.composite
def json_mutation(draw: st.DrawFn, doc: Any) -> Any:
    paths = list(_paths(doc))
    path = draw(st.sampled_from(paths))
    op = draw(st.sampled_from(["replace", "delete", "respell"] if path else ["replace"]))
    return _mutate(doc, path, op, draw(json_values))


# --------------------------------------------------------------------------- unsigned mutations


@SETTINGS
@given(
    target=role_file(),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=4
    ),
)
def test_replaced_bytes(target: tuple[str, str], edits: list[tuple[int, int]]) -> None:
    gun, rel = target
    data = bytearray(GENUINE[gun][rel])
    for pos, byte in edits:
        data[pos % len(data)] = byte
    _assert_same_or_refused(gun, {**GENUINE[gun], rel: bytes(data)})


@SETTINGS
@given(target=role_file(), cut=st.integers(min_value=0), keep_head=st.booleans())
def test_truncated_file(target: tuple[str, str], cut: int, keep_head: bool) -> None:
    gun, rel = target
    data = GENUINE[gun][rel]
    cut %= len(data)
    _assert_same_or_refused(gun, {**GENUINE[gun], rel: data[:cut] if keep_head else data[cut:]})


@SETTINGS
@given(target=role_file(), pos=st.integers(min_value=0), extra=st.binary(min_size=1, max_size=64))
def test_inserted_bytes(target: tuple[str, str], pos: int, extra: bytes) -> None:
    gun, rel = target
    data = GENUINE[gun][rel]
    pos %= len(data) + 1
    _assert_same_or_refused(gun, {**GENUINE[gun], rel: data[:pos] + extra + data[pos:]})


@SETTINGS
@given(target=role_file(), data=st.data())
def test_json_mutation_without_re_signing(target: tuple[str, str], data: st.DataObject) -> None:
    gun, rel = target
    doc = json.loads(GENUINE[gun][rel])
    mutated = data.draw(json_mutation(doc))
    raw = json.dumps(mutated, separators=(",", ":"), ensure_ascii=False).encode()
    _assert_same_or_refused(gun, {**GENUINE[gun], rel: raw})


# --------------------------------------------------------------------------- re-signed mutations


@functools.cache
def _ctx() -> Any:
    from fixtures.attacks.cases import Ctx

    return Ctx(GENERATED)


def _rebuilt(gun: str) -> Any:
    return _ctx().rebuilt(gun)


def _signed_digests(files: dict[str, bytes]) -> set[str]:
    """Every 32-byte base64 value anywhere in the files: digests the data can give."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str):
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return
            if len(raw) == 32:
                found.add("sha256:" + raw.hex())

    for data in files.values():
        try:
            walk(json.loads(data))
        except ValueError:
            continue
    return found


@SETTINGS
@given(gun=repos, data=st.data())
def test_json_mutation_re_signed(gun: str, data: st.DataObject) -> None:
    repo = _rebuilt(gun).copy()
    roles = sorted(p.removesuffix(".json") for p in repo.files)
    role = data.draw(st.sampled_from(roles))
    signers = {r: repo.signers(r) for r in roles}
    signed = data.draw(json_mutation(repo.signed(role)))
    try:
        repo.put(role, signed, signers=signers[role])
    except CanonicalError:  # 1.5 and the like cannot be signed: keep the old signature
        repo.put(role, signed, sigs=repo.sigs(role))
    if role not in ("snapshot", "timestamp"):
        repo.update_snapshot_hashes(signers=signers["snapshot"])
    if role != "timestamp":
        repo.update_timestamp_hash(signers=signers["timestamp"])
    digest, code = _verdict(gun, repo.files)
    if code is None:
        assert digest in _signed_digests(repo.files), f"{digest} appears in no signed data"


def test_rebuilt_repositories_verify_unchanged() -> None:
    """The re-signed test's starting point verifies with the genuine digest."""
    for gun in TAGS:
        assert _verdict(gun, _rebuilt(gun).files) == (_genuine_digest(gun), None)


@pytest.mark.parametrize("gun", sorted(TAGS))
def test_a_signed_byte_flip_is_never_trusted(gun: str) -> None:
    """A deterministic anchor for the properties: changing the tag's digest in the
    signed targets data without re-signing is refused."""
    files = dict(GENUINE[gun])
    rel = "targets.json" if gun == "localhost/basic" else "targets/releases.json"
    doc = json.loads(files[rel])
    entry = doc["signed"]["targets"][TAGS[gun]]
    entry["hashes"]["sha256"] = base64.b64encode(b"\xee" * 32).decode()
    files[rel] = json.dumps(doc, separators=(",", ":")).encode()
    digest, code = _verdict(gun, files)
    assert digest is None and code in CODES


# --------------------------------------------------------------------------- the fuzz harness


def _fuzz_harness() -> Any:
    pytest.importorskip("atheris")
    import importlib.util

    path = REPO / "fuzz" / "fuzz_verify.py"
    spec = importlib.util.spec_from_file_location("fuzz_verify", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fuzz_harness_runs_its_seeds_and_its_oracle_can_fail() -> None:
    """fuzz/fuzz_verify.py without libFuzzer: every committed seed and a few
    corruptions of it run without a finding, and a wrong expected digest is one."""
    harness = _fuzz_harness()
    seeds = sorted((REPO / "fuzz" / "seeds").iterdir())
    assert len(seeds) >= 20
    for seed in seeds:
        data = seed.read_bytes()
        for variant in (data, data[:-7], data[:3] + data[40:], data.replace(b"1", b"2", 3)):
            harness.test_one_input(variant)
    genuine = next(s.read_bytes() for s in seeds if s.name.startswith("0-targets-0"))
    harness.EXPECTED["localhost/basic"] = "sha256:" + "0" * 64
    with pytest.raises(AssertionError, match="verified with"):
        harness.test_one_input(genuine)
