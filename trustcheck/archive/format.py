"""The trust archive format (docs/archive.md): a deterministic, uncompressed tar.

Members, in byte order of their names, every one a regular file with mode
0644, uid/gid 0, empty owner names and mtime 0 (POSIX ustar, pax headers only
for names longer than ustar holds)::

    capture.json                           the capture record (canonical JSON)
    manifest.json                          SHA-256 and length of every other member
    manifest.sig                           optional: signature over manifest.json
    trust/tuf/<GUN>/metadata/<role>.json   the trust data, in the trust-dir layout

Reading never extracts anything to disk: members are read into memory after
their type, name and size are checked, and verification reads the role bytes
from there.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trustcheck.core.roles import MAX_DOWNLOAD_SIZE, is_versioned_root, validate_role_name
from trustcheck.errors import ErrorCode, NotTrusted, UsageError
from trustcheck.local.trustdir import validate_gun

__all__ = [
    "CAPTURE",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "MAX_ARCHIVE_SIZE",
    "MAX_MEMBERS",
    "MAX_RECORD_SIZE",
    "SIGNATURE",
    "canonical_json",
    "read_members",
    "role_path",
    "write_tar",
]

FORMAT = "trustcheck-archive"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
CAPTURE = "capture.json"
TRUST_PREFIX = "trust/tuf/"

#: Largest archive file read (and written).
MAX_ARCHIVE_SIZE = 2 << 30
#: Most members an archive may hold.
MAX_MEMBERS = 200_000
#: Cap for manifest.json, capture.json and manifest.sig.
MAX_RECORD_SIZE = 64 << 20

_SHA256 = re.compile(r"[0-9a-f]{64}")


def canonical_json(doc: Any) -> bytes:
    """Sorted keys, no insignificant white space, UTF-8, one trailing newline."""
    return (
        json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        + b"\n"
    )


def role_path(gun: str, role: str) -> str:
    """The member name of ``role`` of ``gun`` (the trust-dir layout under ``trust/``)."""
    return f"{TRUST_PREFIX}{gun}/metadata/{role}.json"


def write_tar(members: dict[str, bytes]) -> bytes:
    """The archive bytes for ``members``: sorted, fixed metadata, byte-identical
    for the same input."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members):
            data = members[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _invalid(path: Path | str, why: str) -> NotTrusted:
    return NotTrusted(
        ErrorCode.ARCHIVE_INVALID,
        f"trust archive {path}: {why}; it is not an archive trustcheck wrote, or it was altered: "
        "nothing in it is used",
    )


def _unreadable(path: Path | str, why: str) -> UsageError:
    return UsageError(ErrorCode.ARCHIVE_UNREADABLE, f"cannot read trust archive {path}: {why}")


def _check_name(path: Path | str, name: str) -> None:
    if name in (MANIFEST, SIGNATURE, CAPTURE):
        return
    if not name.startswith(TRUST_PREFIX) or not name.endswith(".json"):
        raise _invalid(path, f"member {name[:200]!r} is outside the archive layout")
    rest = name[len(TRUST_PREFIX) : -len(".json")]
    if split_role_path(rest) == []:
        raise _invalid(path, f"member {name[:200]!r} is not a role file of the trust-dir layout")


def split_role_path(rest: str) -> list[tuple[str, str]]:
    """Every way ``<GUN>/metadata/<role>`` splits into a safe GUN (as the trust
    dir checks it: no '..', absolute parts, control characters) and a valid role."""
    out: list[tuple[str, str]] = []
    start = 0
    while True:
        i = rest.find("/metadata/", start)
        if i < 0:
            return out
        gun, role = rest[:i], rest[i + len("/metadata/") :]
        start = i + 1
        try:
            validate_gun(gun)
        except UsageError:
            continue
        if validate_role_name(role) or is_versioned_root(role):
            out.append((gun, role))


def read_members(path: Path) -> dict[str, bytes]:
    """Every member of the archive at ``path``, checked: regular files only, names
    of the layout, no name twice, sizes within their caps."""
    # a symlink to the archive is fine (its content is checked); a FIFO or device
    # is never opened blocking and is refused below
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise _unreadable(path, "no such file") from None
    except OSError as e:
        raise _unreadable(path, e.strerror or str(e)) from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _unreadable(path, "not a regular file")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        if st.st_size > MAX_ARCHIVE_SIZE:
            raise _unreadable(path, f"{st.st_size} bytes, more than the cap of {MAX_ARCHIVE_SIZE}")
        head = f.read(512)
        if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
            raise _unreadable(path, "it is compressed; trust archives are plain tar files")
        f.seek(0)
        members: dict[str, bytes] = {}
        try:
            with tarfile.open(fileobj=f, mode="r:") as tar:
                for count, info in enumerate(tar, start=1):
                    if count > MAX_MEMBERS:
                        raise _invalid(path, f"more than {MAX_MEMBERS} members")
                    name = info.name
                    if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE) or info.issparse():
                        raise _invalid(
                            path,
                            f"member {name[:200]!r} is not a regular file (links, folders and "
                            "devices are refused)",
                        )
                    _check_name(path, name)
                    if name in members:
                        raise _invalid(path, f"member {name[:200]!r} appears twice")
                    cap = MAX_DOWNLOAD_SIZE if name.startswith(TRUST_PREFIX) else MAX_RECORD_SIZE
                    if info.size > cap:
                        raise _invalid(path, f"member {name[:200]!r} is larger than {cap} bytes")
                    extracted = tar.extractfile(info)
                    if extracted is None:  # pragma: no cover - regular files always have data
                        raise _invalid(path, f"member {name[:200]!r} has no data")
                    data = extracted.read(cap + 1)
                    if len(data) != info.size:
                        raise _invalid(path, f"member {name[:200]!r} is truncated")
                    members[name] = data
        except tarfile.TarError as e:
            raise _unreadable(path, f"not a tar file ({e})") from e
        except (EOFError, UnicodeError, ValueError) as e:
            raise _invalid(path, f"the tar structure is damaged ({type(e).__name__})") from e
        except OSError as e:
            raise _unreadable(path, e.strerror or str(e)) from e
    if not members:
        raise _unreadable(path, "empty, or not a tar file")
    return members


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Manifest:
    """``manifest.json``: what every other member must be."""

    files: dict[str, tuple[str, int]]  # name -> (sha256 hex, length)

    def to_bytes(self) -> bytes:
        return canonical_json(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "files": {
                    name: {"sha256": digest, "length": length}
                    for name, (digest, length) in sorted(self.files.items())
                },
            }
        )

    @classmethod
    def of(cls, members: dict[str, bytes]) -> Manifest:
        return cls({n: (sha256_hex(d), len(d)) for n, d in members.items()})

    @classmethod
    def parse(cls, path: Path | str, raw: bytes) -> Manifest:
        doc = _json_object(path, MANIFEST, raw)
        if doc.get("format") != FORMAT:
            raise _invalid(path, f"{MANIFEST} is not a {FORMAT} manifest")
        if not is_version(doc.get("format_version"), FORMAT_VERSION):
            raise _invalid(
                path,
                f"{MANIFEST} has format_version {doc.get('format_version')!r}; this trustcheck "
                f"reads version {FORMAT_VERSION} (upgrade trustcheck for a newer archive)",
            )
        if set(doc) != {"format", "format_version", "files"} or not isinstance(doc["files"], dict):
            raise _invalid(path, f"{MANIFEST} has unknown or missing keys")
        files: dict[str, tuple[str, int]] = {}
        for name, entry in doc["files"].items():
            ok = (
                isinstance(entry, dict)
                and set(entry) == {"sha256", "length"}
                and isinstance(entry["sha256"], str)
                and _SHA256.fullmatch(entry["sha256"]) is not None
                and type(entry["length"]) is int
                and entry["length"] >= 0
            )
            if not ok or name in (MANIFEST, SIGNATURE):
                raise _invalid(path, f"{MANIFEST}: entry {str(name)[:200]!r} is malformed")
            _check_name(path, name)
            files[name] = (entry["sha256"], entry["length"])
        return cls(files)


def is_version(value: object, want: int) -> bool:
    """``value`` is the integer ``want`` (JSON ``true`` is not ``1``)."""
    return type(value) is int and value == want


def _json_object(path: Path | str, member: str, raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise _invalid(path, f"{member} is not valid JSON ({type(e).__name__})") from None
    if not isinstance(doc, dict):
        raise _invalid(path, f"{member} is not a JSON object")
    return doc


def parse_record(path: Path | str, member: str, raw: bytes) -> dict[str, Any]:
    """``capture.json`` or ``manifest.sig`` as a JSON object (archive-invalid otherwise)."""
    return _json_object(path, member, raw)


def invalid(path: Path | str, why: str) -> NotTrusted:
    """An ``archive-invalid`` error about ``path``."""
    return _invalid(path, why)
