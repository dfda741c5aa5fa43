"""Trust session: the one place where :class:`~trustcheck.api.Options` become trust policy.

Everything the core trusts beyond the data itself is assembled here, for
every front end (offline verify, the remote update flow, the webhook's shared
cache):

* the pin that applies to the GUN, with its CA bundle read from disk
  (:func:`pin_rule`; the core never reads files);
* the previously trusted root, in one order: the state store's, else the trust
  dir's cached ``root.json`` (notary's trusted root), else what this process
  trusted before;
* rollback floors with one semantic, the maximum of: the state store, this
  process, the trust dir's cached roles that still verify (notary's
  oldBuilder), and (during an update) cached copies the server replaced;
* notary's root-update retry rules (:func:`should_update_root`,
  :func:`root_for_retry`);
* recording the new state after a success, under the GUN's lock.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from trustcheck.core.model import parse_root
from trustcheck.core.record import replace
from trustcheck.core.roles import MAX_DOWNLOAD_SIZE
from trustcheck.core.trusted_set import PinRule, TrustPolicy, cached_version, merge_floors
from trustcheck.errors import ErrorCode, NotTrusted, TrustcheckError, UsageError

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

    from trustcheck.api import Options
    from trustcheck.core.trusted_set import Collection
    from trustcheck.local.pinfile import PinEntry
    from trustcheck.local.state import GunState, StateStore, _Recorder
    from trustcheck.local.trustdir import TrustDir

__all__ = [
    "TrustSession",
    "base_policy",
    "load_ca_bundle",
    "pin_rule",
    "recorded_policy",
    "retry_policy",
    "root_for_retry",
    "should_update_root",
    "trust_dir_view",
    "trust_session",
]


def load_ca_bundle(entry: PinEntry) -> tuple[Certificate, ...]:
    """The certificates of the CA bundle ``entry`` pins (its validity at the
    validation time is the core's business)."""
    from trustcheck.core.certs import load_cert_bundle

    assert entry.ca is not None
    try:
        data = entry.ca.read_bytes()
    except OSError as e:
        raise UsageError(
            ErrorCode.PIN_FILE_INVALID,
            f"{entry.source}: cannot read CA bundle {entry.ca}: {e.strerror or e}",
        ) from e
    certs = load_cert_bundle(data)
    if not certs:
        raise UsageError(
            ErrorCode.PIN_FILE_INVALID,
            f"{entry.source}: {entry.ca} holds no PEM certificates",
        )
    return tuple(certs)


def pin_rule(entry: PinEntry | None) -> PinRule | None:
    """A pin entry as the core's pure :class:`PinRule` (the CA bundle read here)."""
    if entry is None:
        return None
    return PinRule(
        root=tuple(entry.root),
        ca_bundle=load_ca_bundle(entry) if entry.ca is not None else None,
        ca_name=str(entry.ca) if entry.ca is not None else "",
        signers=entry.signers,
        source=entry.source,
    )


def base_policy(gun: str, options: Options) -> TrustPolicy:
    """Pins, no-tofu and the delegation certificate rule of ``options`` for ``gun``."""
    pins = options.pins
    return TrustPolicy(
        pin=pin_rule(pins.lookup(gun) if pins is not None else None),
        no_tofu=options.no_tofu or (pins is not None and pins.no_tofu),
        delegation_cert_expiry=options.delegation_cert_expiry,
    )


def trust_dir_view(trust_dir: TrustDir, gun: str) -> tuple[bytes | None, dict[str, int]]:
    """What an update starts from in the trust dir: its root.json (notary's
    trusted root) and, as rollback floors, the versions of the cached top-level
    roles whose signatures still verify against it (notary's oldBuilder).

    An unreadable or unusable cached file contributes nothing (notary starts
    without it too); the fetched data is verified in full either way.
    """
    try:
        root_raw = trust_dir.read_role(gun, "root", MAX_DOWNLOAD_SIZE)
    except TrustcheckError:
        return None, {}
    floors: dict[str, int] = {}
    if root_raw is None:
        return None, floors
    try:
        root = parse_root(root_raw)
    except TrustcheckError:
        return root_raw, floors
    for role in ("timestamp", "snapshot", "targets"):
        try:
            raw = trust_dir.read_role(gun, role, MAX_DOWNLOAD_SIZE)
        except TrustcheckError:
            continue
        version = cached_version(role, raw, root, None) if raw is not None else None
        if version is not None:
            floors[role] = version
    return root_raw, floors


def recorded_policy(gun: str, options: Options) -> TrustPolicy:
    """The policy of a verification that reads the state store but never moves
    it (an archive): the recorded root and versions, no lock, nothing recorded."""
    policy = base_policy(gun, options)
    previous = options.state.load(gun) if options.state is not None else None
    if previous is not None:
        policy.previous_root = previous.root
        policy.min_versions = merge_floors(previous.versions)
    return policy


class TrustSession:
    """The policy for one verification of one GUN, and where its result goes."""

    __slots__ = ("_recorder", "_store", "gun", "policy", "state", "state_root")

    def __init__(
        self,
        gun: str,
        policy: TrustPolicy,
        state: GunState | None = None,
        state_root: bytes | None = None,
        store: StateStore | None = None,
        recorder: _Recorder | None = None,
    ) -> None:
        self.gun = gun
        self.policy = policy
        #: the state store's record for the GUN (None: no store, or nothing recorded)
        self.state = state
        #: the root the state store trusted (None: none recorded)
        self.state_root = state_root
        self._store = store
        self._recorder = recorder

    def with_cached_root(self, cached_root: bytes | None) -> TrustPolicy:
        """The policy of an update that starts from the trust dir's ``cached_root``:
        the previous root is the state store's, else this one (notary's trusted
        root), and cached copies the server replaces are floors when they verify
        against it."""
        previous = self.policy.previous_root
        if self.state_root is None and cached_root is not None:
            previous = cached_root
        return replace(self.policy, previous_root=previous, cached_root=cached_root)

    def record(self, col: Collection) -> None:
        """Record a verified collection as the GUN's new state (root, versions never lowered)."""
        if self._store is None or self._recorder is None:
            return
        versions = {name: check.version for name, check in col.checks.items()}
        self._recorder.state = self._store.record(self.state, self.gun, col.root_raw, versions)


@contextmanager
def trust_session(
    gun: str,
    options: Options,
    *,
    previous_root: bytes | None = None,
    floors: Mapping[str, int] | None = None,
    trust_dir: TrustDir | None = None,
) -> Iterator[TrustSession]:
    """The trust policy for ``gun``, holding the state store's lock for the GUN.

    ``previous_root`` and ``floors`` are what this process trusted before (the
    webhook); with ``trust_dir`` its cached root and verifying cached roles
    count too (notary's trusted root and oldBuilder).  The previous root is the
    state store's, else the trust dir's, else ``previous_root``; floors are the
    maximum of all.  Call :meth:`TrustSession.record` after a success; nothing
    is recorded otherwise.
    """
    policy = base_policy(gun, options)
    td_floors: dict[str, int] = {}
    if trust_dir is not None:
        td_root, td_floors = trust_dir_view(trust_dir, gun)
        if td_root is not None:
            previous_root = td_root
    store = options.state
    if store is None:
        policy.previous_root = previous_root
        policy.min_versions = merge_floors(floors, td_floors)
        yield TrustSession(gun, policy)
        return
    with store.session(gun) as (previous, recorder):
        state_root = previous.root if previous is not None else None
        policy.previous_root = state_root if state_root is not None else previous_root
        policy.min_versions = merge_floors(
            floors, td_floors, previous.versions if previous is not None else None
        )
        yield TrustSession(gun, policy, previous, state_root, store, recorder)


# ------------------------------------------------------------------ notary's root update

#: Failures of a *cached* root that no server data can repair: notary fails
#: hard when its cached root does not load (spec §3.1; R10/R10b).
CACHED_ROOT_FATAL = frozenset(
    {
        "malformed-json",
        "invalid-structure",
        "wrong-type",
        "invalid-expires",
        "non-canonical-number",
        "invalid-key-id",
        "no-signatures",
        "threshold-not-met",
        "root-cert-invalid",
        "root-cert-expired",
        "root-cert-not-yet-valid",
        "root-cert-cn-mismatch",
        "root-cert-weak",
        "root-integrity",
    }
)
#: Failures a root update cannot change.
NO_ROOT_UPDATE = frozenset({"no-pin", "unsafe-path", "trust-dir-unreadable", "state-invalid"})


def should_update_root(
    error: NotTrusted, *, remote: bool, offline: bool, root_verified: bool, root_from_cache: bool
) -> bool:
    """notary's Update(): after a failed verification, update the root once and try again?

    Not after a transport failure (``remote``) or offline, not for failures a
    root cannot change, not when the cached root itself is unusable (notary
    fails hard), not when the root was too large to read.
    """
    if remote or error.code in NO_ROOT_UPDATE or offline:
        return False
    if root_from_cache and not root_verified and error.code in CACHED_ROOT_FATAL:
        return False  # the cached root itself is unusable: notary fails hard
    return not (error.code == "file-too-large" and error.role == "root")


def root_for_retry(
    error: NotTrusted,
    *,
    root_verified: bool,
    root_from_cache: bool,
    tried_root: bytes,
    state_root: bytes | None,
) -> bytes | None:
    """The previously trusted root the retry verifies the new root against.

    The root just tried, when it verified (or only expired) or when it is the
    cache's and no state records another; else the state store's root.
    """
    root_ok = root_verified or (error.role == "root" and error.code == "metadata-expired")
    if root_ok or (root_from_cache and state_root is None):
        return tried_root
    return state_root


def retry_policy(
    policy: TrustPolicy,
    error: NotTrusted,
    *,
    root_verified: bool,
    root_from_cache: bool,
    tried_root: bytes,
    state_root: bytes | None,
) -> TrustPolicy:
    """The policy of notary's root-update retry: ``policy`` with the previously
    trusted root :func:`root_for_retry` chooses (floors and pins unchanged)."""
    previous = root_for_retry(
        error,
        root_verified=root_verified,
        root_from_cache=root_from_cache,
        tried_root=tried_root,
        state_root=state_root,
    )
    return replace(policy, previous_root=previous)
