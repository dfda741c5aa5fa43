"""atheris harness for trustcheck's parse + verify entry points.

Input layout (so that seeds are just genuine files with a 3-byte header)::

    byte 0   which genuine repository (localhost/basic, releases, nested)
    byte 1   which of its role files the payload stands for
    byte 2   mode: 0 = the payload replaces that file in the collection and the
                       whole collection is verified (verify_collection), then
                       Docker's lookup runs for a tag (lookup.resolve);
                   1 = the payload is parsed directly as that role (parse_*,
                       structure checks, canonical encoding, signature
                       verification with the genuine keys), which reaches the
                       parsers of roles that hash checks would otherwise shield;
                   2 = like 0, but the payload is spliced into the genuine
                       file: its first two bytes give an offset, the rest
                       overwrites the file from there
    rest     payload

A finding is any exception that is not a :class:`trustcheck.errors.TrustcheckError`,
or a collection that verifies with another digest than the genuine one.

Run (see fuzz/README.md)::

    .venv/bin/python fuzz/fuzz_verify.py fuzz/corpus fuzz/seeds -runs=1000000
    .venv/bin/python fuzz/fuzz_verify.py --make-seeds fuzz/seeds
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import atheris

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

with atheris.instrument_imports():
    from trustcheck.core import model as notary
    from trustcheck.core.lookup import resolve
    from trustcheck.core.reference import parse_reference
    from trustcheck.core.roles import validate_role_name
    from trustcheck.core.trusted_set import verify_signatures
    from trustcheck.core.verify import verify_collection
    from trustcheck.errors import NotTrusted, TrustcheckError

GENERATED = REPO / "fixtures" / "generated"
AT = datetime.strptime(
    (GENERATED / "VALIDATION_TIME").read_text().strip(), "%Y-%m-%dT%H:%M:%SZ"
).replace(tzinfo=UTC)
#: (GUN, the tag looked up, its genuine digest)
REPOS = [
    ("localhost/basic", "v1"),
    ("localhost/releases", "diff-both"),
    ("localhost/nested", "rel"),
]


class MemorySource:
    """A trust dir in memory, with the trust dir's name and size rules."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def read(self, role: str, cap: int) -> bytes | None:
        if not validate_role_name(role):
            from trustcheck.errors import UsageError

            raise UsageError("unsafe-path", f"invalid role name {role[:40]!r}")
        data = self.files.get(role)
        if data is not None and len(data) > cap:
            raise NotTrusted("file-too-large", f"{role}.json is larger than {cap}", role=role)
        return data


def _load(gun: str) -> dict[str, bytes]:
    metadata = GENERATED / "trust" / "tuf" / gun / "metadata"
    return {
        p.relative_to(metadata).as_posix().removesuffix(".json"): p.read_bytes()
        for p in sorted(metadata.rglob("*.json"))
    }


GENUINE = [(gun, tag, _load(gun)) for gun, tag in REPOS]
ROLES = [sorted(files) for _, _, files in GENUINE]
EXPECTED = {}
for _gun, _tag, _files in GENUINE:
    _col = verify_collection(_gun, MemorySource(_files), AT)
    EXPECTED[_gun] = resolve(_col, parse_reference(f"{_gun}:{_tag}")).digest


def _collection(gun: str, tag: str, files: dict[str, bytes]) -> None:
    col = verify_collection(gun, MemorySource(files), AT)
    got = resolve(col, parse_reference(f"{gun}:{tag}"))
    if got.digest != EXPECTED[gun]:
        raise AssertionError(f"{gun}:{tag} verified with {got.digest}, not {EXPECTED[gun]}")


def _direct(role: str, payload: bytes, files: dict[str, bytes]) -> None:
    """Parse ``payload`` as ``role`` and run every check that needs no other file."""
    genuine_root = notary.parse_root(files["root"])
    meta: notary.SignedMeta
    if role == "root":
        root = notary.parse_root(payload)
        meta, keys, keyids, threshold = root, root.keys, root.roles["root"].keyids, 1
    else:
        base = role if role in ("timestamp", "snapshot") else "targets"
        rk = genuine_root.roles[base]
        keys, keyids, threshold = genuine_root.keys, rk.keyids, rk.threshold
        if role == "timestamp":
            ts = notary.parse_timestamp(payload)
            notary.check_timestamp_structure(ts)
            meta = ts
        elif role == "snapshot":
            snap = notary.parse_snapshot(payload)
            notary.check_snapshot_structure(snap)
            meta = snap
        else:
            tm = notary.parse_targets(role, payload)
            notary.check_targets_structure(tm, validate_role_name)
            for _name, _fm in tm.items():  # builds every target's typed FileMeta
                pass
            meta = tm
    verify_signatures(meta, keys, keyids, threshold)


def test_one_input(data: bytes) -> None:
    if len(data) < 3:
        return
    index = data[0] % len(GENUINE)
    gun, tag, genuine = GENUINE[index]
    roles = ROLES[index]
    role = roles[data[1] % len(roles)]
    mode = data[2] % 3
    payload = data[3:]
    try:
        if mode == 1:
            _direct(role, payload, genuine)
            return
        files = dict(genuine)
        if mode == 2 and len(payload) >= 2:
            base = genuine[role]
            offset = int.from_bytes(payload[:2], "big") % (len(base) + 1)
            files[role] = base[:offset] + payload[2:] + base[offset + len(payload) - 2 :]
        else:
            files[role] = payload
        _collection(gun, tag, files)
    except TrustcheckError:
        pass


def make_seeds(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for index, (_gun, _tag, files) in enumerate(GENUINE):
        for r, role in enumerate(ROLES[index]):
            for mode in (0, 1):
                name = f"{index}-{role.replace('/', '_')}-{mode}"
                (folder / name).write_bytes(bytes([index, r, mode]) + files[role])
                count += 1
    return count


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--make-seeds":
        print(f"{make_seeds(Path(sys.argv[2]))} seeds written to {sys.argv[2]}")
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
