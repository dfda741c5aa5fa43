"""Reading a trust archive and verifying against it, as of its capture time."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustcheck.archive.format import (
    CAPTURE,
    MANIFEST,
    SIGNATURE,
    TRUST_PREFIX,
    Manifest,
    invalid,
    is_version,
    parse_record,
    read_members,
    role_path,
    sha256_hex,
    split_role_path,
)
from trustcheck.archive.sign import ArchivePin, verify_signature
from trustcheck.errors import ErrorCode, NotTrusted, TrustcheckError, UsageError

if TYPE_CHECKING:
    from trustcheck.api import ImageResult, Options
    from trustcheck.core.reference import ImageRef
    from trustcheck.core.verify import Collection

__all__ = [
    "CAPTURE_FORMAT",
    "Archive",
    "format_time",
    "open_archive",
    "parse_time",
]

CAPTURE_FORMAT = "trustcheck-archive-capture"
#: A capture time later than the reader's clock by more than this is refused.
MAX_CLOCK_SKEW = timedelta(minutes=5)
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def format_time(at: datetime) -> str:
    """RFC 3339 UTC to the second: how archives record times."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime | None:
    if _TIME.fullmatch(text) is None:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class CollectionRecord:
    """What ``capture.json`` says about one collection."""

    gun: str
    server: str | None
    trust_basis: str
    roles: dict[str, dict[str, Any]]


class _ArchiveSource:
    """A :class:`trustcheck.core.verify.Source` over the archive's bytes (no disk)."""

    def __init__(self, files: dict[str, bytes], gun: str) -> None:
        self.files = files
        self.gun = gun

    def read(self, role: str, cap: int) -> bytes | None:
        data = self.files.get(role_path(self.gun, role))
        if data is not None and len(data) > cap:
            raise NotTrusted(
                ErrorCode.FILE_TOO_LARGE,
                f"{role}.json in the archive is {len(data)} bytes, cap {cap} bytes",
                role=role,
            )
        return data


@dataclass(slots=True)
class Archive:
    """An archive whose manifest, signature and capture record were checked."""

    path: Path
    captured_at: datetime
    trustcheck_version: str
    manifest_sha256: str
    #: SHA-256 of the key that signed the manifest (checked), None when unsigned
    signer: str | None
    collections: dict[str, CollectionRecord]
    images: list[dict[str, Any]]
    files: dict[str, bytes] = field(repr=False)

    @property
    def as_of(self) -> str:
        return format_time(self.captured_at)

    def describe(self) -> dict[str, object]:
        """The ``archive`` object of ``--json`` outputs."""
        return {
            "path": str(self.path),
            "as_of": self.as_of,
            "captured_at": self.as_of,
            "manifest_sha256": self.manifest_sha256,
            "signed_by": f"sha256:{self.signer}" if self.signer is not None else None,
            "trustcheck_version": self.trustcheck_version,
            "collections": {
                gun: {"server": rec.server, "trust_basis_at_capture": rec.trust_basis}
                for gun, rec in sorted(self.collections.items())
            },
        }

    def check_age(self, now: datetime, max_age: timedelta | None) -> None:
        """Refuse the archive (``archive-too-old``) when captured longer than
        ``max_age`` before ``now``."""
        if max_age is not None and now - self.captured_at > max_age:
            age = now - self.captured_at
            raise NotTrusted(
                ErrorCode.ARCHIVE_TOO_OLD,
                f"trust archive {self.path} was captured {self.as_of}, {age.days} days "
                f"ago, more than the allowed {_days(max_age)}; capture a fresh archive, or "
                "raise the limit deliberately",
            )

    def collection(self, gun: str, options: Options | None = None) -> Collection:
        """Verify ``gun`` from the archive at its capture time.

        Pins apply as for live data; with ``options.state`` the previously
        trusted root and versions are floors (a newer root or version known
        there makes the archive's older data a rollback), and nothing is
        recorded: an archive never moves the state.
        """
        from trustcheck.api import Options as _Options
        from trustcheck.core.reference import identity
        from trustcheck.core.verify import verify_collection
        from trustcheck.local.session import recorded_policy
        from trustcheck.local.trustdir import validate_gun

        opts = options if options is not None else _Options()
        validate_gun(gun)
        key = identity(gun)
        if key not in self.collections:
            raise NotTrusted(
                ErrorCode.NO_TRUST_DATA,
                f"the trust archive {self.path} (captured {self.as_of}) holds no trust data for "
                f"{key}; it holds {len(self.collections)} collection(s): "
                f"{', '.join(sorted(self.collections)[:5])}"
                f"{', ...' if len(self.collections) > 5 else ''}",
            )
        policy = recorded_policy(key, opts)
        return verify_collection(key, _ArchiveSource(self.files, key), self.captured_at, policy)

    def collections_for(
        self, guns: Sequence[str], options: Options | None = None
    ) -> dict[str, Collection | TrustcheckError]:
        """:meth:`collection` for each GUN: its collection or its error."""
        from trustcheck.api import internal_error

        out: dict[str, Collection | TrustcheckError] = {}
        for gun in dict.fromkeys(guns):
            try:
                out[gun] = self.collection(gun, options)
            except NotTrusted as e:
                out[gun] = e
            except (UsageError, KeyboardInterrupt, SystemExit, MemoryError):
                raise
            except Exception as e:
                if os.environ.get("TRUSTCHECK_DEBUG"):
                    raise
                out[gun] = internal_error(gun, e)
        return out

    def verify_images(
        self, images: Sequence[str], options: Options | None = None
    ) -> list[ImageResult]:
        """Each image's answer from the archive (a bad reference is a UsageError)."""
        from trustcheck.api import resolve_image
        from trustcheck.core.reference import parse_reference

        refs: list[ImageRef] = [parse_reference(i) for i in images]
        cols = self.collections_for([r.gun for r in refs], options)
        return [resolve_image(r, cols[r.gun]) for r in refs]


def _manifest_mismatch(path: Path, why: str) -> NotTrusted:
    return NotTrusted(
        ErrorCode.ARCHIVE_MANIFEST_MISMATCH,
        f"trust archive {path}: {why}; the archive was altered or damaged: nothing in it is used",
    )


def _check_manifest(path: Path, members: dict[str, bytes], manifest: Manifest) -> None:
    present = set(members) - {MANIFEST, SIGNATURE}
    listed = set(manifest.files)
    for name in sorted(listed - present):
        raise _manifest_mismatch(path, f"{name} is listed in {MANIFEST} but missing (removed)")
    for name in sorted(present - listed):
        raise _manifest_mismatch(path, f"{name} is not listed in {MANIFEST} (an extra file)")
    for name in sorted(listed):
        digest, length = manifest.files[name]
        data = members[name]
        if len(data) != length or sha256_hex(data) != digest:
            raise _manifest_mismatch(
                path,
                f"{name} has SHA-256 {sha256_hex(data)} ({len(data)} bytes), the manifest says "
                f"{digest} ({length} bytes): the file was changed",
            )


def _parse_capture(
    path: Path, raw: bytes
) -> tuple[datetime, str, dict[str, CollectionRecord], list[Any]]:
    doc = parse_record(path, CAPTURE, raw)
    keys = {
        "format",
        "format_version",
        "captured_at",
        "trustcheck_version",
        "collections",
        "images",
    }
    if (
        set(doc) != keys
        or doc["format"] != CAPTURE_FORMAT
        or not is_version(doc["format_version"], 1)
    ):
        raise invalid(path, f"{CAPTURE} is not a {CAPTURE_FORMAT} version 1 record")
    at = parse_time(doc["captured_at"]) if isinstance(doc["captured_at"], str) else None
    if at is None:
        raise invalid(path, f"{CAPTURE}: captured_at is not an RFC 3339 UTC time to the second")
    if not isinstance(doc["trustcheck_version"], str) or not isinstance(doc["images"], list):
        raise invalid(path, f"{CAPTURE}: trustcheck_version or images has the wrong type")
    cols = doc["collections"]
    if not isinstance(cols, dict) or not cols:
        raise invalid(path, f"{CAPTURE}: collections is empty or not an object")
    records: dict[str, CollectionRecord] = {}
    from trustcheck.core.reference import identity
    from trustcheck.local.trustdir import validate_gun

    for gun, rec in cols.items():
        try:
            validate_gun(gun)
            normal = identity(gun) == gun
        except Exception:  # any refusal of a hostile name, whatever raised it
            normal = False
        if not normal:
            raise invalid(path, f"{CAPTURE}: {gun[:200]!r} is not a repository's normal name")
        ok = (
            isinstance(rec, dict)
            and set(rec) == {"server", "trust_basis", "roles"}
            and (rec["server"] is None or isinstance(rec["server"], str))
            and isinstance(rec["trust_basis"], str)
            and isinstance(rec["roles"], dict)
        )
        if not ok:
            raise invalid(path, f"{CAPTURE}: the record of {str(gun)[:200]!r} is malformed")
        records[gun] = CollectionRecord(gun, rec["server"], rec["trust_basis"], rec["roles"])
    return at, doc["trustcheck_version"], records, doc["images"]


def open_archive(
    path: Path,
    now: datetime,
    *,
    pin: ArchivePin | None = None,
    max_age: timedelta | None = None,
) -> Archive:
    """Read and check the archive at ``path``; ``now`` is the reader's time
    (the age is measured to it).

    Refused, in this order: unreadable or not a tar (``archive-unreadable``),
    a member that is not a regular file of the layout or over its cap
    (``archive-invalid``), a signature that does not verify, or a missing one
    with ``pin`` (``archive-signature-invalid``), another key than ``pin``
    (``archive-pin-mismatch``), a file changed, removed or added
    (``archive-manifest-mismatch``), a malformed capture record or one from
    the future (``archive-invalid``), older than ``max_age``
    (``archive-too-old``).
    """
    members = read_members(path)
    raw_manifest = members.get(MANIFEST)
    if raw_manifest is None:
        raise invalid(path, f"it has no {MANIFEST}")
    signer: str | None = None
    raw_sig = members.get(SIGNATURE)
    if raw_sig is not None:
        signer = verify_signature(path, raw_manifest, raw_sig)
    if pin is not None:
        if signer is None:
            raise NotTrusted(
                ErrorCode.ARCHIVE_SIGNATURE_INVALID,
                f"trust archive {path} is unsigned (no {SIGNATURE}) but --archive-pin "
                f"{pin.source} requires a signature by that key",
            )
        if signer != pin.sha256:
            raise NotTrusted(
                ErrorCode.ARCHIVE_PIN_MISMATCH,
                f"trust archive {path} is signed by key sha256:{signer}, not by the pinned "
                f"sha256:{pin.sha256} ({pin.source})",
            )
    manifest = Manifest.parse(path, raw_manifest)
    _check_manifest(path, members, manifest)
    if CAPTURE not in members:
        raise invalid(path, f"it has no {CAPTURE}")
    captured_at, version, records, images = _parse_capture(path, members[CAPTURE])
    files: dict[str, bytes] = {}
    for name, data in members.items():
        if not name.startswith(TRUST_PREFIX):
            continue
        owners = [
            g
            for g, _role in split_role_path(name[len(TRUST_PREFIX) : -len(".json")])
            if g in records
        ]
        if not owners:
            raise invalid(path, f"{name[:200]} belongs to no collection of {CAPTURE}")
        files[name] = data
    for gun in records:
        if role_path(gun, "root") not in files:
            raise invalid(path, f"the collection {gun[:200]} has no root.json")
    if captured_at > now + MAX_CLOCK_SKEW:
        raise invalid(
            path,
            f"its capture time {format_time(captured_at)} is later than now ({format_time(now)})",
        )
    archive = Archive(
        path=path,
        captured_at=captured_at,
        trustcheck_version=version,
        manifest_sha256=sha256_hex(raw_manifest),
        signer=signer,
        collections=records,
        images=images,
        files=files,
    )
    archive.check_age(now, max_age)
    return archive


def _days(delta: timedelta) -> str:
    if delta.seconds == 0 and delta.microseconds == 0:
        return f"{delta.days} days"
    return f"{delta.total_seconds():.0f} seconds"


def parse_max_age(text: str, what: str = "--max-age") -> timedelta:
    """``--max-age``: ``<N>d``, ``<N>h`` or ``<N>m`` (days, hours, minutes), N > 0."""
    m = re.fullmatch(r"\s*(\d{1,6})\s*([dhm])\s*", text)
    if m is None or int(m.group(1)) == 0:
        raise UsageError(
            ErrorCode.INVALID_ARGUMENT,
            f"{what} {text[:50]!r}: give a positive number of days, hours or minutes, "
            "e.g. 90d, 36h, 30m",
        )
    n = int(m.group(1))
    unit = m.group(2)
    return (
        timedelta(days=n)
        if unit == "d"
        else timedelta(hours=n)
        if unit == "h"
        else timedelta(minutes=n)
    )
