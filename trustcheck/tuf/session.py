"""One verification of one repository (:class:`_Session`): python-tuf's Updater
(:mod:`.hooks`) plus trustcheck's checks (:mod:`.checks`, :mod:`.legacy`,
:mod:`.walk`), bootstrapped from ``--root``, the pinned or the trusted root."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

from trustcheck.errors import ErrorCode, NotTrusted, TrustcheckError, UsageError
from trustcheck.tuf.dialect import _dialect_of_document
from trustcheck.tuf.errors import _map_error
from trustcheck.tuf.fetchers import ClientLimits
from trustcheck.tuf.hooks import _checked_updater, _set_reference_time
from trustcheck.tuf.keys import _register_hex_ec_keys
from trustcheck.tuf.legacy import LegacyRoots
from trustcheck.tuf.walk import TargetsWalk

if TYPE_CHECKING:
    from trustcheck.api import Options


class _Session(LegacyRoots, TargetsWalk):
    """One verification of one repository: python-tuf's Updater plus trustcheck's checks."""

    def _bootstrap(self) -> bytes:
        if self.root_arg is not None:
            self.ctx.root_origin = "the root given with --root"
            return self.root_arg
        pinned = self.pin is not None and bool(self.pin.root)
        if self._no_tofu() and not pinned:
            raise NotTrusted(
                ErrorCode.NO_PIN,
                f"{self.name} has no root pin and trust on first use is off: pass its "
                "root.json with --root, or pin its root keys (trustcheck tuf thumbprint "
                "--repo ... prints them) after checking them out of band",
                role="root",
            )
        cached = self.ws.dir / "root.json"
        if self.ws.had_state and cached.exists():
            self.ctx.root_origin = f"the root trusted before (state dir, {cached})"
            try:
                return cached.read_bytes()
            except OSError as e:
                raise UsageError(
                    ErrorCode.STATE_INVALID,
                    f"cannot read the trusted root of {self.name} from {cached} "
                    f"({e.strerror or e}); remove that folder to trust on first use again",
                ) from e
        # trust on first use (or bootstrap for a pin): the repository's root
        from tuf.api.exceptions import DownloadError, DownloadHTTPError

        fetcher = self.loc.fetcher
        for name in ("root.json", "1.root.json"):
            try:
                data = fetcher.download_bytes(
                    self.loc.base_url + quote(name, ""), self.limits.root_max_length
                )
            except DownloadHTTPError as e:
                if e.status_code in (403, 404):
                    continue
                raise _map_error(e, self.ctx) from e
            except DownloadError as e:
                raise _map_error(e, self.ctx) from e
            self.ctx.root_origin = f"{name} of {self.name} (trusted on first use)"
            if not pinned:
                self.warnings.append(
                    f"trusting {self.name} on first use ({name}); pin its root keys or pass "
                    "--root to stop trusting whatever root is served first"
                )
            return data
        raise NotTrusted(
            ErrorCode.NO_TRUST_DATA,
            f"{self.name} holds no root.json or 1.root.json: is --repo the metadata folder "
            "of a TUF repository (e.g. .../metadata or https://host/metadata)?",
            role="root",
        )

    def refresh(self) -> None:
        """Bootstrap, python-tuf's refresh, then trustcheck's checks of the top-level roles."""
        _register_hex_ec_keys()
        bootstrap = self._bootstrap()
        dialect = None
        with contextlib.suppress(UsageError, UnicodeDecodeError, ValueError, RecursionError):
            dialect = _dialect_of_document(json.loads(bootstrap.decode("utf-8")), "root")
        if dialect == "notary":
            origin = self.ctx.root_origin
            what = (
                f"{origin} is"
                if self.root_arg is not None
                else f"the root of {self.name} ({origin}) is"
            )
            raise UsageError(
                ErrorCode.INVALID_ARGUMENT,
                f"{what} Notary v1 (Docker Content Trust) metadata, not a TUF 1.0 root; "
                "verify Notary data with `trustcheck verify` (or --dialect notary), or give "
                "the TUF repository's own root.json",
            )
        self.ctx.phase = "bootstrap"
        self.loc.recorder.last_name = "root.json"
        bootstrap = self._walk_legacy_roots(bootstrap)
        self.loc.recorder.last_name = "root.json"
        try:
            self.updater = _checked_updater(self, bootstrap)
            _set_reference_time(self.updater, self.at)
            self.ctx.phase = "refresh"
            self.updater.refresh()
        except TrustcheckError:
            raise
        except Exception as e:
            err = _map_error(e, self.ctx)
            if self.ctx.phase == "bootstrap" and err.code == "threshold-not-met":
                raise self._unreadable_root_keys(bootstrap, err) from e
            raise err from e
        self.ctx.phase = "target"
        self._check_top_level(bootstrap)


def _session(
    repo: str,
    at: datetime,
    options: Options | None,
    root: bytes | None,
    limits: ClientLimits | None,
    unsafe_http: bool,
    timeout: float,
    allow_arbitrary_keyids: bool,
) -> _Session:
    return _Session(
        repo,
        at,
        options,
        root,
        limits if limits is not None else ClientLimits(),
        unsafe_http,
        timeout,
        allow_arbitrary_keyids,
    )
