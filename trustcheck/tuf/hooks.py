"""python-tuf's ``Updater`` driven through its non-public parts, all in this module.

python-tuf (7.x) offers no public API for either:

* persistence hooks: trustcheck's stricter checks must run on each role
  *before* python-tuf persists it (spec-exact persistence: a role trustcheck
  refuses is never written), so :func:`_checked_updater` overrides
  ``Updater._persist_root`` / ``_persist_metadata`` / ``_load_targets`` and
  reads ``Updater._trusted_set``;
* the reference time: python-tuf fixes the update start time in
  ``TrustedMetadataSet.reference_time`` (spec §5.1); :func:`_set_reference_time`
  sets it to ``--at``.

Both fail closed (``invalid-argument`` naming the python-tuf release) when a
python-tuf release renames them; tests/unit/test_tuf_python_tuf_api.py fails
loudly on such a release before any user sees it."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from trustcheck.errors import ErrorCode, UsageError

if TYPE_CHECKING:
    from tuf.api.metadata import (  # type: ignore[attr-defined]
        Targets,
    )
    from tuf.ngclient.updater import Updater

    from trustcheck.tuf.session import _Session


_UPDATER_HOOKS = ("_persist_root", "_persist_metadata", "_load_targets", "_trusted_set")


def _checked_updater(sess: _Session, bootstrap: bytes) -> Updater:
    """python-tuf's Updater, with trustcheck's checks run before each role is persisted.

    python-tuf verifies each role of the client workflow and persists it at
    once (``_persist_root`` / ``_persist_metadata``); trustcheck hooks both
    so that its stricter checks (distinct keys, bound key IDs, fields written
    twice, signer pins) run first: a role trustcheck refuses is never
    persisted, and every role both accept is persisted exactly when the
    specification says. Fails closed if a python-tuf release renames them.
    """
    from tuf.api.metadata import Root, Targets  # type: ignore[attr-defined]
    from tuf.ngclient.updater import Updater

    missing = [n for n in _UPDATER_HOOKS[:3] if not callable(getattr(Updater, n, None))]
    if missing:
        raise UsageError(
            ErrorCode.INVALID_ARGUMENT,
            f"this python-tuf release lacks {', '.join(missing)}, which trustcheck hooks to check "
            "each role before it is persisted; install tuf>=7.0.1,<8",
        )

    class CheckedUpdater(Updater):
        def __init__(self) -> None:
            self._tc_parents: dict[str, str] = {}
            self._tc_bootstrapped = False
            super().__init__(
                metadata_dir=str(sess.ws.dir),
                metadata_base_url=sess.loc.base_url,
                fetcher=sess.loc.fetcher,
                config=sess.limits.config(),
                bootstrap=bootstrap,
            )

        def _persist_root(self, version: int, data: bytes) -> None:
            sess.check_persist_root(version, data, bootstrap=not self._tc_bootstrapped)
            self._tc_bootstrapped = True
            super()._persist_root(version, data)

        def _persist_metadata(self, rolename: str, data: bytes) -> None:
            trusted = self._trusted_set
            parent = self._tc_parents.get(rolename, "root")
            delegator = trusted.root if parent == "root" else trusted[parent]
            assert isinstance(delegator, Root | Targets)
            sess.check_persist(rolename, data, delegator)
            super()._persist_metadata(rolename, data)

        def _load_targets(self, role: str, parent_role: str) -> Targets:
            self._tc_parents[role] = parent_role
            got: Targets = super()._load_targets(role, parent_role)
            return got

    return CheckedUpdater()


def _set_reference_time(updater: Updater, at: datetime) -> None:
    """Make ``at`` python-tuf's reference time for every expiry check.

    python-tuf (7.x) fixes the update start time in
    ``TrustedMetadataSet.reference_time`` (spec §5.1) and offers no public way
    to set it; trustcheck sets that attribute right after the Updater is built,
    before any expiry is checked. Fails closed if a python-tuf release renames it.
    """
    trusted = getattr(updater, "_trusted_set", None)
    if trusted is None or not isinstance(getattr(trusted, "reference_time", None), datetime):
        raise UsageError(
            ErrorCode.INVALID_ARGUMENT,
            "this python-tuf release does not let trustcheck set the validation time; "
            "install tuf>=7.0.1,<8",
        )
    trusted.reference_time = at
