"""The state one TUF verification session shares between its parts (repository,
validation time, pins, workspace, what was loaded), pins for TUF keys, and the
session's lifecycle."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

from trustcheck.errors import ErrorCode, NotTrusted, UsageError
from trustcheck.tuf.dialect import _role_of_file
from trustcheck.tuf.errors import _Ctx
from trustcheck.tuf.fetchers import ClientLimits, _locate
from trustcheck.tuf.report import RoleInfo
from trustcheck.tuf.workspace import _state_root, _Workspace

if TYPE_CHECKING:
    from tuf.api.metadata import (
        Metadata,
    )
    from tuf.ngclient.updater import Updater

    from trustcheck.api import Options
    from trustcheck.local.pinfile import PinEntry


class _Refused(NotTrusted):
    """A check trustcheck adds to python-tuf's failed (distinct keys, bound key IDs, signer
    pins): fetching the file again cannot help, unlike python-tuf's own failures."""


@dataclass(slots=True)
class _Loaded:
    """A targets role verified by trustcheck, and the role that delegated it."""

    md: Metadata[Any]
    parent: str
    info: RoleInfo


class SessionBase:
    """One verification of one repository: the state its checks share."""

    def __init__(
        self,
        repo: str,
        at: datetime,
        options: Options | None,
        root: bytes | None,
        limits: ClientLimits,
        unsafe_http: bool,
        timeout: float,
        allow_arbitrary_keyids: bool,
        metadata_dir: Path | None = None,
    ) -> None:
        limits.validate()
        if at.tzinfo is None:
            raise UsageError(ErrorCode.INVALID_ARGUMENT, "the validation time needs a time zone")
        self.at = at.astimezone(UTC)
        self.options = options
        self.root_arg = root
        self.limits = limits
        self.allow_arbitrary_keyids = allow_arbitrary_keyids
        self.unsafe_http = unsafe_http
        self.loc = _locate(repo, unsafe_http, timeout)
        self.name = self.loc.name
        self.ctx = _Ctx(self.name, limits, self.loc.recorder)
        self.warnings: list[str] = []
        self.pin = self._pin_entry()
        self.ws = _Workspace(_state_root(options), self.name, metadata_dir)
        self.updater: Updater | None = None
        self.roots: list[Metadata[Any]] = []
        self.root_md: Metadata[Any] | None = None
        self.timestamp_md: Metadata[Any] | None = None
        self.snapshot_md: Metadata[Any] | None = None
        self.loaded: dict[str, _Loaded] = {}
        self.failed_roles: dict[str, NotTrusted] = {}
        self.top_infos: list[RoleInfo] = []
        self.skipped: list[dict[str, str | None]] = []
        self._warned_keyids: set[str] = set()
        self._bindings: dict[int, dict[str, str]] = {}

    def _pin_entry(self) -> PinEntry | None:
        opts = self.options
        if opts is None or opts.pins is None:
            return None
        entry = opts.pins.lookup(self.name)
        if entry is None:
            return None
        where = entry.source or f'pins."{entry.pattern}"'
        if entry.ca is not None:
            raise UsageError(
                ErrorCode.PIN_FILE_INVALID,
                f"{where}: a ca pin applies to Notary root certificates; TUF 1.0 keys have no "
                "certificates, pin them with spki-sha256: or keyid:",
            )
        for ids in [entry.root, *entry.signers.values()]:
            for ident in ids:
                if ident.kind not in ("keyid", "spki-sha256"):
                    raise UsageError(
                        ErrorCode.PIN_FILE_INVALID,
                        f"{where}: {ident.kind}: identifiers name Notary certificates or "
                        "canonical IDs; TUF 1.0 keys are pinned with spki-sha256: or keyid: "
                        "(trustcheck tuf thumbprint --repo ... prints them)",
                    )
        return entry

    def _no_tofu(self) -> bool:
        opts = self.options
        if opts is None:
            return False
        return opts.no_tofu or (opts.pins is not None and opts.pins.no_tofu)

    def __enter__(self) -> Self:
        self.ws.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ws.__exit__(*exc)

    def commit(self) -> None:
        """Forget delegated roles found in the metadata folder that trustcheck now refuses."""
        for role in self.failed_roles:
            with_name = self.ws.dir / f"{quote(role, '')}.json"
            with contextlib.suppress(OSError):
                with_name.unlink()

    def _read_ws(self, rel: str) -> bytes:
        path = self.ws.dir / rel
        try:
            return path.read_bytes()
        except OSError as e:
            raise NotTrusted(
                ErrorCode.ROLE_MISSING,
                f"python-tuf trusted {rel} of {self.name} but it is not in its metadata folder "
                f"{self.ws.dir} ({e.strerror or e}); run again",
                role=_role_of_file(rel),
            ) from e
