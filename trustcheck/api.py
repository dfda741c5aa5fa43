"""The library entry points: verify images against a trust dir.

This module wires the pure core (verify, lookup) to a trust dir. Library users
import from :mod:`trustcheck` (see ``__all__`` there).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from trustcheck.core.lookup import resolve
from trustcheck.core.record import Record
from trustcheck.core.reference import ImageRef, parse_reference
from trustcheck.core.verify import Collection, verify_collection
from trustcheck.errors import ErrorCode, NotTrusted, TrustcheckError, UsageError
from trustcheck.local.trustdir import TrustDir

if TYPE_CHECKING:
    from trustcheck.local.pinfile import PinSet
    from trustcheck.local.state import StateStore
    from trustcheck.remote.config import RemoteConfig

__all__ = [
    "ImageResult",
    "Options",
    "TrustDirSource",
    "collections_for",
    "load_collection",
    "resolve_image",
    "verify_image",
    "verify_images",
]


class TrustDirSource:
    """A :class:`trustcheck.core.verify.Source` reading one GUN from a trust dir."""

    def __init__(self, trust_dir: TrustDir, gun: str) -> None:
        self.trust_dir = trust_dir
        self.gun = gun

    def read(self, role: str, cap: int) -> bytes | None:
        return self.trust_dir.read_role(self.gun, role, cap)

    def describe(self) -> str:
        return self.trust_dir.describe(self.gun)


class Options(Record):
    """How to establish trust beyond the data: pins, state, strictness."""

    __slots__ = ("delegation_cert_expiry", "no_tofu", "pins", "state")
    pins: PinSet | None
    state: StateStore | None
    no_tofu: bool
    delegation_cert_expiry: str

    def __init__(
        self,
        pins: PinSet | None = None,
        state: StateStore | None = None,
        no_tofu: bool = False,
        delegation_cert_expiry: str = "warn",
    ) -> None:
        self.pins = pins
        self.state = state
        self.no_tofu = no_tofu
        self.delegation_cert_expiry = delegation_cert_expiry


def load_collection(
    trust_dir: TrustDir | Path, gun: str, at: datetime, options: Options | None = None
) -> Collection:
    """Verify the collection ``gun`` cached in ``trust_dir`` at time ``at``.

    With ``options.state``, the previously trusted root and versions are
    enforced and the new ones recorded (under the GUN's lock), only when the
    verification succeeds.
    """
    from trustcheck.local.session import trust_session

    opts = options if options is not None else Options()
    td = trust_dir if isinstance(trust_dir, TrustDir) else TrustDir(Path(trust_dir))
    td.metadata_dir(gun)  # validates the GUN before any file is touched
    with trust_session(gun, opts) as session:
        col = verify_collection(gun, TrustDirSource(td, gun), at, session.policy)
        session.record(col)
    return col


def internal_error(gun: str, exc: BaseException) -> NotTrusted:
    """An unexpected exception while handling ``gun``, as that collection's error.

    A bug must cost only this collection its verdict (fail closed for it),
    never the answers for the other images of the run.
    """
    detail = str(exc).splitlines()[0][:200] if str(exc) else ""
    return NotTrusted(
        ErrorCode.INTERNAL_ERROR,
        f"unexpected {type(exc).__name__} while verifying {gun}"
        f"{': ' + detail if detail else ''}; nothing was trusted for it. Please report this "
        "as a trustcheck bug (with TRUSTCHECK_DEBUG=1 for the traceback)",
    )


def _guarded_load(
    trust_dir: TrustDir, gun: str, at: datetime, options: Options | None
) -> Collection | TrustcheckError:
    """:func:`load_collection` for one GUN of many: its error, never an exception.

    Usage errors (bad GUN, unreadable trust dir or state) stay exceptions: they
    concern the whole run.
    """
    try:
        return load_collection(trust_dir, gun, at, options)
    except NotTrusted as e:
        return e
    except (UsageError, KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as e:
        if os.environ.get("TRUSTCHECK_DEBUG"):
            raise
        return internal_error(gun, e)


class ImageResult(Record):
    """The answer for one image, in the shape of ``verify --json``."""

    __slots__ = (
        "digest",
        "error",
        "gun",
        "image",
        "length",
        "role",
        "signers",
        "tag",
        "trusted",
        "warnings",
    )
    image: str
    gun: str
    tag: str | None
    trusted: bool
    digest: str | None
    length: int | None
    role: str | None
    signers: list[str]
    error: TrustcheckError | None
    warnings: list[str]

    def __init__(
        self,
        image: str,
        gun: str,
        tag: str | None,
        trusted: bool,
        digest: str | None = None,
        length: int | None = None,
        role: str | None = None,
        signers: list[str] | None = None,
        error: TrustcheckError | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self.image = image
        self.gun = gun
        self.tag = tag
        self.trusted = trusted
        self.digest = digest
        self.length = length
        self.role = role
        self.signers = [] if signers is None else signers
        self.error = error
        self.warnings = [] if warnings is None else warnings

    def to_json(self) -> dict[str, object]:
        return {
            "image": self.image,
            "gun": self.gun,
            "tag": self.tag,
            "trusted": self.trusted,
            "digest": self.digest,
            "length": self.length,
            "role": self.role,
            "signers": self.signers,
            "error": self.error.to_json() if self.error is not None else None,
        }


def verify_image(
    ref: ImageRef,
    trust_dir: TrustDir,
    at: datetime,
    cache: dict[str, Collection | TrustcheckError] | None = None,
    options: Options | None = None,
) -> ImageResult:
    """Verify the trust data of ``ref`` and resolve it with Docker's semantics.

    ``cache`` maps GUNs to collections (or their errors) already obtained, e.g.
    by :func:`collections_for`; missing ones are verified from the trust dir.
    """
    cache = {} if cache is None else cache
    got = cache.get(ref.gun)
    if got is None:
        got = _guarded_load(trust_dir, ref.gun, at, options)
        cache[ref.gun] = got
    return resolve_image(ref, got)


def resolve_image(ref: ImageRef, got: Collection | TrustcheckError) -> ImageResult:
    """The answer for ``ref`` given its collection (or the error obtaining it)."""
    result = ImageResult(image=str(ref), gun=ref.gun, tag=ref.tag, trusted=False)
    if isinstance(got, TrustcheckError):
        result.error = got
        return result
    result.warnings = list(got.warnings)
    try:
        res = resolve(got, ref)
    except NotTrusted as e:
        result.error = e
        result.role = e.role
        return result
    except Exception as e:  # a bug in lookup: this image only
        if os.environ.get("TRUSTCHECK_DEBUG"):
            raise
        result.error = internal_error(ref.gun, e)
        return result
    result.trusted = True
    result.digest = res.digest
    result.length = res.length
    result.role = res.role
    result.signers = res.signers
    return result


def collections_for(
    guns: list[str],
    trust_dir: TrustDir,
    at: datetime,
    options: Options | None = None,
    remote: RemoteConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Collection | TrustcheckError]:
    """Verified collections for ``guns``: fetched from their servers (and cached)
    unless ``remote`` is None or offline, else verified from the trust dir."""
    if remote is not None and not remote.offline:
        from trustcheck.remote.notary import fetch_many

        return fetch_many(guns, trust_dir, at, options, remote, progress)
    out: dict[str, Collection | TrustcheckError] = {}
    for gun in dict.fromkeys(guns):
        out[gun] = _guarded_load(trust_dir, gun, at, options)
    return out


def verify_images(
    images: list[str],
    trust_dir: Path,
    at: datetime,
    options: Options | None = None,
    remote: RemoteConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    check_registry: bool = False,
) -> list[ImageResult]:
    """Parse and verify each image reference (raises UsageError on a bad reference).

    With ``remote`` (and not offline), trust data is fetched first; with
    ``check_registry`` the registry must serve the signed digest for each tag.
    """
    refs = [parse_reference(i) for i in images]
    td = TrustDir(trust_dir)
    cols = collections_for([r.gun for r in refs], td, at, options, remote, progress)
    results = [resolve_image(r, cols[r.gun]) for r in refs]
    if check_registry:
        from trustcheck.errors import UsageError
        from trustcheck.remote.http import HttpSession, RemoteConfig
        from trustcheck.remote.registry import check_registry as _check

        cfg = remote if remote is not None else RemoteConfig()
        if cfg.offline:
            raise UsageError(
                "invalid-argument", "--check-registry asks the registry: it cannot run --offline"
            )
        with HttpSession(cfg) as session:
            for ref, res in zip(refs, results, strict=True):
                if res.trusted and res.digest is not None and ref.tag is not None:
                    try:
                        _check(ref, res.digest, cfg, session=session)
                    except TrustcheckError as e:
                        res.trusted = False
                        res.error = e
    return results
