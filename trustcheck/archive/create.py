"""Creating a trust archive: fetch (or read the trust dir), verify, record, write."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from trustcheck.archive.format import (
    CAPTURE,
    MANIFEST,
    SIGNATURE,
    Manifest,
    canonical_json,
    role_path,
    sha256_hex,
    write_tar,
)
from trustcheck.archive.read import CAPTURE_FORMAT, format_time
from trustcheck.errors import ErrorCode, NotTrusted, TrustcheckError, UsageError

if TYPE_CHECKING:
    from trustcheck.api import Options
    from trustcheck.archive.sign import Signer
    from trustcheck.core.verify import Collection
    from trustcheck.local.trustdir import TrustDir
    from trustcheck.remote.config import RemoteConfig

__all__ = ["Created", "create_archive", "write_archive"]


class _RecordingSource:
    """Reads a GUN from the trust dir and keeps every file verification read."""

    def __init__(self, trust_dir: TrustDir, gun: str) -> None:
        self.trust_dir = trust_dir
        self.gun = gun
        self.seen: dict[str, bytes] = {}

    def read(self, role: str, cap: int) -> bytes | None:
        data = self.trust_dir.read_role(self.gun, role, cap)
        if data is not None:
            self.seen[role] = data
        return data

    def describe(self) -> str:
        return self.trust_dir.describe(self.gun)


@dataclass(frozen=True, slots=True)
class Created:
    """A finished archive: its bytes and what it holds."""

    data: bytes
    manifest_sha256: str
    captured_at: str
    collections: dict[str, str | None]  # GUN -> server it came from (None: the trust dir)
    signer: str | None
    #: collections the server could not give (the trust dir's cache was captured)
    warnings: list[str] = field(default_factory=list)


def _collection_record(col: Collection, server: str | None) -> dict[str, object]:
    return {
        "server": server,
        "trust_basis": col.trust_basis,
        "roles": {
            name: {
                "version": check.version,
                "expires": format_time(check.expires),
                "threshold": check.threshold,
                "keyids": sorted(check.keyids),
                "signed_by": sorted(check.signed_by),
            }
            for name, check in sorted(col.checks.items())
        },
    }


def create_archive(
    guns: Sequence[str],
    trust_dir: TrustDir,
    at: datetime,
    options: Options | None = None,
    remote: RemoteConfig | None = None,
    *,
    images: Sequence[str] = (),
    signer: Signer | None = None,
) -> Created:
    """Capture ``guns`` (and the GUNs of ``images``) at ``at``, the capture time.

    Unless ``remote`` is None or offline, each collection is fetched from its
    server first (and cached in ``trust_dir``, as ``fetch`` does). Every
    collection is then verified from the trust dir at ``at`` with ``options``
    (pins, state floors; the state is not written by this step), and exactly
    the files that verification read go into the archive. A collection that
    does not verify, or an image that is not trusted, fails the whole capture
    with its error: an archive only holds what was trusted when it was made.
    """
    import trustcheck
    from trustcheck.api import Options as _Options
    from trustcheck.api import resolve_image
    from trustcheck.core.reference import identity, parse_reference
    from trustcheck.core.verify import verify_collection
    from trustcheck.local.session import recorded_policy

    opts = options if options is not None else _Options()
    at = at.replace(microsecond=0)
    refs = [parse_reference(i) for i in images]
    wanted = list(dict.fromkeys([identity(g) for g in guns] + [r.gun for r in refs]))
    if not wanted:
        raise UsageError(ErrorCode.INVALID_ARGUMENT, "nothing to archive: give images or --all")
    for gun in wanted:
        trust_dir.metadata_dir(gun)  # validates each GUN before anything is fetched
    servers: dict[str, str | None] = dict.fromkeys(wanted)
    fallbacks: list[str] = []
    if remote is not None and not remote.offline:
        from trustcheck.remote.http import select_server
        from trustcheck.remote.notary import fetch_many

        fetched = fetch_many(wanted, trust_dir, at, opts, remote)
        _fail_on_errors({g: c for g, c in fetched.items() if isinstance(c, TrustcheckError)})
        for gun, col in fetched.items():
            if isinstance(col, TrustcheckError):  # pragma: no cover - refused just above
                continue
            if col.cache_fallback is not None:
                # the server was not used: the record must not claim it was
                fallbacks.append(f"{gun}: {col.cache_fallback}; captured from the trust dir")
            else:
                servers[gun] = select_server(gun, remote)
    members: dict[str, bytes] = {}
    records: dict[str, object] = {}
    cols: dict[str, Collection | TrustcheckError] = {}
    errors: dict[str, TrustcheckError] = {}
    for gun in wanted:
        source = _RecordingSource(trust_dir, gun)
        policy = recorded_policy(gun, opts)
        try:
            col = verify_collection(gun, source, at, policy)
        except NotTrusted as e:
            errors[gun] = e
            continue
        cols[gun] = col
        for role, data in source.seen.items():
            members[role_path(gun, role)] = data
        records[gun] = _collection_record(col, servers[gun])
    _fail_on_errors(errors)
    results = [resolve_image(r, cols[r.gun]) for r in refs]
    untrusted = [r for r in results if not r.trusted]
    if untrusted:
        r = untrusted[0]
        assert r.error is not None
        raise _like(
            r.error,
            f"archive not written: {r.image} is not trusted at capture time "
            f"{format_time(at)}: {r.error.message}",
        )
    capture = {
        "format": CAPTURE_FORMAT,
        "format_version": 1,
        "captured_at": format_time(at),
        "trustcheck_version": trustcheck.__version__,
        "collections": records,
        "images": [r.to_json() for r in results],
    }
    members[CAPTURE] = canonical_json(capture)
    manifest = Manifest.of(members).to_bytes()
    members[MANIFEST] = manifest
    if signer is not None:
        members[SIGNATURE] = signer.sign(manifest)
    return Created(
        data=write_tar(members),
        manifest_sha256=sha256_hex(manifest),
        captured_at=format_time(at),
        collections=servers,
        signer=signer.key_sha256 if signer is not None else None,
        warnings=fallbacks,
    )


def _fail_on_errors(errors: dict[str, TrustcheckError]) -> None:
    if not errors:
        return
    gun, first = next(iter(errors.items()))
    more = f" (and {len(errors) - 1} more collection(s))" if len(errors) > 1 else ""
    raise _like(first, f"archive not written: {gun} does not verify{more}: {first.message}")


def _like(error: TrustcheckError, message: str) -> TrustcheckError:
    """``error`` with another message, of the same kind (exit code)."""
    if isinstance(error, UsageError):
        return UsageError(error.code, message, role=error.role)
    return NotTrusted(error.code, message, role=error.role)


def write_archive(data: bytes, output: Path) -> None:
    """Write the archive atomically (``archive-unreadable`` when it cannot be)."""
    from trustcheck.local.fsutil import atomic_write

    try:
        atomic_write(output, data, mode=0o644)
    except OSError as e:
        raise UsageError(
            ErrorCode.ARCHIVE_UNREADABLE,
            f"cannot write trust archive {output}: {e.strerror or e}; nothing was written",
        ) from e
