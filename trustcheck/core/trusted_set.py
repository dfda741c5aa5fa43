"""The trusted set: Notary v1 trust rules over role bytes that are *handed* to it.

In the style of python-tuf's ngclient ``TrustedMetadataSet``, with notary's
semantics (notary-v1-spec.md): a :class:`TrustedSet` is created with the
validation time ``at`` and a :class:`TrustPolicy` (pins, the previously
trusted root, rollback floors), and is then given bytes one role at a time,
in notary's order:

1. :meth:`~TrustedSet.update_root` the root to trust (§4.2), checked against
   the pins or as a rotation from the previously trusted root (§4.5); when a
   rotation skips versions the set asks for them
   (:class:`IntermediateRootsNeeded`) and gets each
   :meth:`~TrustedSet.update_intermediate_root`;
2. :meth:`~TrustedSet.update_timestamp`;
3. :meth:`~TrustedSet.update_snapshot` (hashes and length from the timestamp;
   the trusted root must be the one the snapshot names);
4. :meth:`~TrustedSet.update_targets`, then each delegation
   :meth:`~TrustedSet.next_targets` names, with
   :meth:`~TrustedSet.update_delegated_targets` (notary's pre-order walk,
   §3.2 ``downloadTargets``).

Every trust rule lives here: signatures and thresholds, versions and rollback
floors (one semantic: the maximum), expiry at ``at``, hashes and lengths on the
raw bytes, root pins and rotation, signer pins, path restriction.  It does no
I/O and reads no clock: the caller (:mod:`trustcheck.core.verify` from a
Source, the remote update flow through it) feeds it bytes.
"""

from __future__ import annotations

import hashlib
import hmac
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from trustcheck.core import certs
from trustcheck.core.crypto import TufKey, canonical_key_id, cert_of, verify_signature
from trustcheck.core.model import (
    Delegation,
    FileMeta,
    RootMeta,
    SignedMeta,
    SnapshotMeta,
    TargetsMeta,
    TimestampMeta,
    check_snapshot_structure,
    check_targets_structure,
    check_timestamp_structure,
    parse_root,
    parse_snapshot,
    parse_targets,
    parse_timestamp,
)
from trustcheck.core.record import FrozenRecord, Record
from trustcheck.core.roles import signer_name, validate_role_name
from trustcheck.core.timefmt import iso as _iso
from trustcheck.errors import ErrorCode, NotTrusted, TrustcheckError

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

    from trustcheck.core.identity import Identifier

__all__ = [
    "MAX_ROLES",
    "NEAR_EXPIRY",
    "Collection",
    "IntermediateRootsNeeded",
    "PathPrefixes",
    "PinRule",
    "RoleCheck",
    "TrustPolicy",
    "TrustedSet",
    "cached_version",
    "check_hashes",
    "hashes_match",
    "merge_floors",
    "verify_signatures",
]

#: notary warns when root, targets, delegations or snapshot expire within this.
NEAR_EXPIRY = timedelta(days=182)
#: targets roles loaded for one collection (notary's own tests use 75,000)
MAX_ROLES = 100_000


class PathPrefixes:
    """A delegation's ``paths``: does one of them prefix a name? In O(log n).

    notary tests every path of a role against every target (and every child
    path against every parent path), quadratic in hostile input. Sorted and
    reduced to the paths no other path prefixes, the only candidate prefix of
    a name is the greatest path not above it: the strings between a prefix
    ``p`` of ``name`` and ``name`` all start with ``p``.
    """

    __slots__ = ("_sorted",)

    def __init__(self, paths: Iterable[str]) -> None:
        minimal: list[str] = []
        for p in sorted(paths):  # linear on sorted input; duplicates drop out below
            if not minimal or not p.startswith(minimal[-1]):
                minimal.append(p)
        self._sorted = minimal

    def matches(self, name: str) -> bool:
        i = bisect_right(self._sorted, name)
        return i > 0 and name.startswith(self._sorted[i - 1])


class RoleCheck(Record):
    """What was verified for one role (read by --json, inspect and audits)."""

    __slots__ = ("expires", "keyids", "paths", "role", "signed_by", "threshold", "version")
    role: str
    version: int
    expires: datetime
    keyids: list[str]
    threshold: int
    signed_by: list[str]
    paths: list[str] | None

    def __init__(
        self,
        role: str,
        version: int,
        expires: datetime,
        keyids: list[str],
        threshold: int,
        signed_by: list[str],
        paths: list[str] | None = None,
    ) -> None:
        self.role = role
        self.version = version
        self.expires = expires
        self.keyids = keyids
        self.threshold = threshold
        self.signed_by = signed_by
        self.paths = paths


class Collection(Record):
    """A verified trust collection."""

    __slots__ = (
        "_matchers",
        "at",
        "cache_fallback",
        "checks",
        "children",
        "gun",
        "paths",
        "root",
        "root_keys",
        "root_raw",
        "skipped",
        "snapshot",
        "targets",
        "timestamp",
        "trust_basis",
        "warnings",
    )
    gun: str
    #: why the root is trusted: "pinned", "first use", "previously trusted", "rotated"
    trust_basis: str
    #: the raw root.json bytes that were verified (recorded as state)
    root_raw: bytes
    at: datetime
    root: RootMeta
    root_keys: dict[str, TufKey]
    timestamp: TimestampMeta
    snapshot: SnapshotMeta
    #: every loaded, valid targets role (``targets`` first), in notary's load order
    targets: dict[str, TargetsMeta]
    #: effective (parent-restricted) paths of each loaded role
    paths: dict[str, list[str]]
    #: each loaded role's valid children (paths already restricted), array order
    children: dict[str, list[Delegation]]
    checks: dict[str, RoleCheck]
    #: delegations skipped with their subtree (expired / under threshold), as notary does
    skipped: dict[str, NotTrusted]
    warnings: list[str]
    #: set by fetching when the server could not be used and the cache was
    #: (the reason, one line); None when verified from fresh data or offline
    cache_fallback: str | None
    _matchers: dict[str, PathPrefixes]

    def __init__(
        self,
        gun: str,
        trust_basis: str,
        root_raw: bytes,
        at: datetime,
        root: RootMeta,
        root_keys: dict[str, TufKey],
        timestamp: TimestampMeta,
        snapshot: SnapshotMeta,
        targets: dict[str, TargetsMeta],
        paths: dict[str, list[str]],
        children: dict[str, list[Delegation]],
        checks: dict[str, RoleCheck] | None = None,
        skipped: dict[str, NotTrusted] | None = None,
        warnings: list[str] | None = None,
        cache_fallback: str | None = None,
        _matchers: dict[str, PathPrefixes] | None = None,
    ) -> None:
        self.gun = gun
        self.trust_basis = trust_basis
        self.root_raw = root_raw
        self.at = at
        self.root = root
        self.root_keys = root_keys
        self.timestamp = timestamp
        self.snapshot = snapshot
        self.targets = targets
        self.paths = paths
        self.children = children
        self.checks = {} if checks is None else checks
        self.skipped = {} if skipped is None else skipped
        self.warnings = [] if warnings is None else warnings
        self.cache_fallback = cache_fallback
        self._matchers = {} if _matchers is None else _matchers

    def in_paths(self, role: str, name: str) -> bool:
        """Is ``name`` inside the (restricted) paths of the loaded role ``role``?"""
        m = self._matchers.get(role)
        if m is None:
            m = self._matchers[role] = PathPrefixes(self.paths[role])
        return m.matches(name)


class PinRule(FrozenRecord):
    """The pin that applies to one GUN, as pure data (built by :mod:`trustcheck.local.session`)."""

    __slots__ = ("ca_bundle", "ca_name", "root", "signers", "source")
    #: root identifiers, one of which a root key must answer to (empty: none)
    root: tuple[Identifier, ...]
    #: the pinned CA bundle's certificates (None: no CA pin), read by the session
    ca_bundle: tuple[Certificate, ...] | None
    #: how the CA pin is named in messages (its path)
    ca_name: str
    #: signer name -> identifiers its delegation keys must answer to
    signers: Mapping[str, list[Identifier]]
    #: where the pin comes from (pin file and entry), for messages
    source: str

    def __init__(
        self,
        root: tuple[Identifier, ...] = (),
        ca_bundle: tuple[Certificate, ...] | None = None,
        ca_name: str = "",
        signers: Mapping[str, list[Identifier]] | None = None,
        source: str = "",
    ) -> None:
        object.__setattr__(self, "root", root)
        object.__setattr__(self, "ca_bundle", ca_bundle)
        object.__setattr__(self, "ca_name", ca_name)
        object.__setattr__(self, "signers", {} if signers is None else signers)
        object.__setattr__(self, "source", source)


class TrustPolicy(Record):
    """What the caller trusts beyond the data itself (pins, state); pure input
    (copies with changes: :func:`trustcheck.core.record.replace`)."""

    __slots__ = (
        "cached_root",
        "delegation_cert_expiry",
        "min_versions",
        "no_tofu",
        "pin",
        "previous_root",
    )
    #: the pin that applies to this GUN (its root part and its signers)
    pin: PinRule | None
    #: the raw root.json trusted last time (the state store's, else the trust dir's)
    previous_root: bytes | None
    #: the lowest acceptable version per role (state store, verified cached copies)
    min_versions: Mapping[str, int]
    #: an unpinned GUN is an error (notary's disable_tofu; never trust on first use)
    no_tofu: bool
    #: expired or not-yet-valid delegation certificates: "ignore" (notary), "warn", "reject"
    delegation_cert_expiry: str
    #: the trust dir's cached root.json (notary's oldBuilder root): cached top-level
    #: roles the server replaced still count as floors when they verify against it
    cached_root: bytes | None

    def __init__(
        self,
        pin: PinRule | None = None,
        previous_root: bytes | None = None,
        min_versions: Mapping[str, int] | None = None,
        no_tofu: bool = False,
        delegation_cert_expiry: str = "warn",
        cached_root: bytes | None = None,
    ) -> None:
        self.pin = pin
        self.previous_root = previous_root
        self.min_versions = {} if min_versions is None else min_versions
        self.no_tofu = no_tofu
        self.delegation_cert_expiry = delegation_cert_expiry
        self.cached_root = cached_root


def merge_floors(*floors: Mapping[str, int] | None) -> dict[str, int]:
    """Rollback floors from several places, one semantic: the highest version wins."""
    merged: dict[str, int] = {}
    for one in floors:
        for role, version in (one or {}).items():
            if version > merged.get(role, 0):
                merged[role] = version
    return merged


def verify_signatures(
    meta: SignedMeta, keys: dict[str, TufKey], keyids: list[str], threshold: int
) -> list[str]:
    """notary's VerifySignatures (spec §2.5). Returns the key IDs that signed."""
    role = meta.role
    if not meta.signatures:
        raise NotTrusted(
            ErrorCode.NO_SIGNATURES,
            f"{role} carries no signatures; the metadata was tampered with or never signed",
            role=role,
        )
    if threshold < 1:
        raise NotTrusted(
            ErrorCode.THRESHOLD_NOT_MET,
            f"{role} has threshold {threshold}; it must be at least 1",
            role=role,
        )
    msg = meta.canonical_bytes()
    meta.release_canonical()  # ours is the only use: do not keep a second copy of the file
    role_keys = {k: keys[k] for k in keyids if k in keys}
    valid: list[str] = []
    for sig in meta.signatures:
        key = role_keys.get(sig.keyid)
        if key is None:
            continue  # unknown key IDs are ignored
        if key.id != sig.keyid:
            raise NotTrusted(
                ErrorCode.INVALID_KEY_ID,
                f"{role} is signed with key ID {sig.keyid[:16]}… whose key content has ID "
                f"{key.id[:16]}…; key IDs must be the hash of the key",
                role=role,
            )
        if sig.keyid not in valid and verify_signature(key, sig.method, sig.sig, msg):
            valid.append(sig.keyid)
    # Distinct *public keys*, not key IDs: one key listed under two IDs (e.g. as
    # ecdsa and as an ecdsa-x509 certificate) must not meet a threshold of two.
    # notary counts key IDs (docs/notary-compat.md).
    distinct = (
        len({canonical_key_id(role_keys[k]) for k in valid}) if len(valid) > 1 else len(valid)
    )
    if distinct < threshold:
        listed = ", ".join(k[:12] + "…" for k in keyids) or "none"
        raise NotTrusted(
            ErrorCode.THRESHOLD_NOT_MET,
            f"{role} has {distinct} valid signature(s) from distinct keys, needs {threshold} "
            f"(role keys: {listed}); it was signed with the wrong key or altered after signing",
            role=role,
        )
    return valid


def check_hashes(raw: bytes, expected: FileMeta, role: str, parent: str) -> None:
    """notary's CheckHashes: every sha256/sha512 given must match; at least one."""
    known = 0
    for algo in ("sha256", "sha512"):
        want = expected.hashes.get(algo)
        if want is None:
            continue
        known += 1
        got = hashlib.new(algo, raw).digest()
        if not hmac.compare_digest(got, want):
            raise NotTrusted(
                ErrorCode.HASH_MISMATCH,
                f"{role}.json does not match the {algo} recorded in {parent} "
                f"(expected {want.hex()[:16]}…, file has {got.hex()[:16]}…); the cached file was "
                "modified or mixed with another version: fetch the trust data again",
                role=role,
            )
    if known == 0:
        raise NotTrusted(
            ErrorCode.INVALID_STRUCTURE,
            f"{parent} gives no sha256 or sha512 hash for {role}; it cannot be checked",
            role=role,
        )


def hashes_match(raw: bytes, expected: FileMeta) -> bool:
    """:func:`check_hashes` as a predicate (may a cached copy stand in for a download?)."""
    known = 0
    for algo in ("sha256", "sha512"):
        want = expected.hashes.get(algo)
        if want is None:
            continue
        known += 1
        if not hmac.compare_digest(hashlib.new(algo, raw).digest(), want):
            return False
    return known > 0


def cached_version(
    role: str, cached: bytes, root: RootMeta | None, parent: TargetsMeta | None
) -> int | None:
    """The version of a cached copy of ``role`` that still verifies, else None.

    notary's "old builder": a cached top-level role whose signatures still meet
    the threshold of the cached ``root`` (a delegation: of its loaded
    ``parent``) is a rollback floor for the copy that replaces it.  A cached
    copy that does not parse or verify is no floor (notary ignores it too);
    that is the only case that yields None.
    """
    try:
        meta: SignedMeta
        if role in ("timestamp", "snapshot", "targets"):
            if root is None or role not in root.roles:
                return None
            rk = root.roles[role]
            if role == "timestamp":
                meta = parse_timestamp(cached)
            elif role == "snapshot":
                meta = parse_snapshot(cached)
            else:
                meta = parse_targets(role, cached)
            keys, keyids, threshold = root.keys, rk.keyids, rk.threshold
        else:
            if parent is None:
                return None
            entry = next((d for d in parent.delegations if d.name == role), None)
            if entry is None:
                return None
            meta = parse_targets(role, cached)
            keys, keyids, threshold = parent.delegation_keys, entry.keyids, entry.threshold
        verify_signatures(meta, keys, keyids, threshold)
    except TrustcheckError:  # parsers map every bad input to one; anything else is a bug
        return None
    return meta.version


def _expiry(meta: SignedMeta, at: datetime, fix: str) -> NotTrusted | None:
    if meta.expires < at:
        return NotTrusted(
            ErrorCode.METADATA_EXPIRED,
            f"{meta.role} metadata expired at {_iso(meta.expires)} "
            f"(validation time {_iso(at)}); {fix}",
            role=meta.role,
        )
    return None


def _rotation_error(gun: str, detail: str) -> NotTrusted:
    return NotTrusted(
        ErrorCode.ROOT_ROTATION_INVALID,
        f"root.json of {gun} changed but {detail}; a legitimate rotation is signed by the "
        "previously trusted root keys. If the owner really replaced the root without that, "
        "verify the new root out of band and pin it (trustcheck pin add)",
        role="root",
    )


class IntermediateRootsNeeded(NotTrusted):
    """A root rotation that skips versions and is not signed by the trusted root.

    notary walks ``<N>.root.json`` for each version in between (§4.5): give
    each of :attr:`versions`, in order, to
    :meth:`TrustedSet.update_intermediate_root`, then the new root again to
    :meth:`TrustedSet.update_root`.  Left unhandled it is the rotation error
    itself (fail closed).
    """

    def __init__(self, first: NotTrusted, versions: range) -> None:
        super().__init__(first.code, first.message, role="root")
        self.first = first
        self.versions = versions


def _signed_by_previous(prev: RootMeta, new: RootMeta, gun: str, at: datetime) -> None:
    """notary §4.2 step 4: ``new`` carries the threshold of ``prev``'s root keys."""
    prk = prev.roles["root"]
    prev_keys = certs.root_leaf_keys(prev.keys, prk.keyids, gun, at, check_expiry=False).keys
    try:
        verify_signatures(new, prev_keys, list(prev_keys), prk.threshold)
    except NotTrusted as e:
        raise _rotation_error(
            gun,
            f"version {new.version} is not signed by {prk.threshold} key(s) of version "
            f"{prev.version} ({e.message.split(';')[0]})",
        ) from e


def _delegation_cert_window(key: TufKey, role: str, at: datetime) -> NotTrusted | None:
    """An expired / not-yet-valid delegation certificate (notary ignores both)."""
    cert = cert_of(key)
    if cert is None:
        return None
    if cert.not_valid_after_utc < at:
        when = f"expired at {_iso(cert.not_valid_after_utc)}"
    elif cert.not_valid_before_utc > at:
        when = f"is not valid before {_iso(cert.not_valid_before_utc)}"
    else:
        return None
    return NotTrusted(
        ErrorCode.DELEGATION_CERT_EXPIRED,
        f"the certificate of {role}'s key {key.id[:12]}… {when}; the signer should get a new "
        "certificate (notary accepts it anyway; see --delegation-cert-expiry)",
        role=role,
    )


def _apply_signer_pin(
    pin: PinRule | None, role: Delegation, keys: dict[str, TufKey], gun: str
) -> Delegation:
    """Restrict a pinned signer's role to the keys its pin names."""
    if pin is None or not pin.signers:
        return role
    from trustcheck.core.identity import describe, identifiers_of_key  # only with pins

    wanted = pin.signers.get(signer_name(role.name))
    if wanted is None:
        return role
    allowed = [k for k in role.keyids if k in keys and identifiers_of_key(keys[k]) & set(wanted)]
    if not allowed:
        raise NotTrusted(
            ErrorCode.SIGNER_PIN_MISMATCH,
            f"no key of {role.name} in {gun} matches the pinned signer "
            f"{signer_name(role.name)!r} ({describe(wanted)}); the signer's key was replaced "
            "in the parent role. Check with the signer, then update the pin",
            role=role.name,
        )
    return Delegation(role.name, allowed, role.threshold, role.paths)


def _apply_root_pin(
    pin: PinRule, found: certs.RootCerts, gun: str, at: datetime
) -> dict[str, TufKey]:
    """Keep the root keys that satisfy the pin (identifiers and/or CA)."""
    from trustcheck.core.identity import (  # only with pins
        chains_to_ca,
        describe,
        identifiers_of_key,
    )

    bundle: list[Certificate] | None = None
    if pin.ca_bundle is not None:
        bundle = [c for c in pin.ca_bundle if c.not_valid_before_utc <= at <= c.not_valid_after_utc]
        if not bundle:
            raise NotTrusted(
                ErrorCode.PIN_MISMATCH,
                f"every certificate in the pinned CA bundle {pin.ca_name} is expired or not yet "
                "valid at the validation time; renew the CA bundle",
                role="root",
            )
    allowed: dict[str, TufKey] = {}
    seen: set[Identifier] = set()
    for kid, key in found.keys.items():
        ids = identifiers_of_key(key, found.source_ids.get(kid, kid))
        seen |= ids
        if pin.root and not ids & set(pin.root):
            continue
        if bundle is not None and not chains_to_ca(
            found.leaves[kid], found.intermediates.get(kid, []), bundle, at
        ):
            continue
        allowed[kid] = key
    if not allowed:
        what = []
        if pin.root:
            what.append(f"pinned {describe(pin.root)}")
        if pin.ca_bundle is not None:
            what.append(f"CA {pin.ca_name}")
        has = describe(i for i in seen if i.kind in ("cert-sha256", "keyid"))
        raise NotTrusted(
            ErrorCode.PIN_MISMATCH,
            f"no root certificate of {gun} satisfies {pin.source} ({' and '.join(what)}; "
            f"the root has {has}); the root was replaced. If the owner rotated it on purpose, "
            "check the new certificate out of band and update the pin",
            role="root",
        )
    return allowed


def _restrict_all(
    parent: Delegation, children: list[Delegation], matchers: dict[str, PathPrefixes]
) -> list[Delegation]:
    """RestrictDelegationPathPrefixes for each child: keep the child paths under
    one of the parent's (n log n, see :class:`PathPrefixes`)."""
    if not children:
        return []
    allowed = matchers[parent.name] = PathPrefixes(parent.paths)
    return [
        Delegation(c.name, c.keyids, c.threshold, [p for p in c.paths if allowed.matches(p)])
        for c in children
    ]


class TrustedSet:
    """Notary v1 trust state for one GUN, updated role by role from bytes.

    Each ``update_*`` either accepts the role (it becomes part of the set) or
    raises :class:`~trustcheck.errors.NotTrusted` and leaves the set as it was;
    a set that raised is not reused for that role (start a new one to retry).
    """

    def __init__(self, gun: str, at: datetime, policy: TrustPolicy | None = None) -> None:
        self.gun = gun
        self.at = at
        self.policy = policy if policy is not None else TrustPolicy()
        #: rollback floors: the policy's, raised by :meth:`note_replaced` (maximum wins)
        self.floors: dict[str, int] = merge_floors(self.policy.min_versions)
        self.warnings: list[str] = []
        self.checks: dict[str, RoleCheck] = {}
        self.root: RootMeta | None = None
        self.root_raw = b""
        self.root_keys: dict[str, TufKey] = {}
        self.trust_basis = ""
        self.timestamp: TimestampMeta | None = None
        self.snapshot: SnapshotMeta | None = None
        self.targets: dict[str, TargetsMeta] = {}
        self.paths: dict[str, list[str]] = {}
        self.children: dict[str, list[Delegation]] = {}
        self.skipped: dict[str, NotTrusted] = {}
        self._matchers: dict[str, PathPrefixes] = {}
        #: the root the previously trusted one rotated to so far (intermediates given)
        self._chain: RootMeta | None = None
        self._chain_next = 0
        #: the delegation walk: (role entry, keys of its parent), pre-order
        self._todo: deque[tuple[Delegation, dict[str, TufKey]]] = deque()
        #: the role :meth:`next_targets` named, its entry, keys, and certificate problem
        self._current: tuple[Delegation, dict[str, TufKey], FileMeta, NotTrusted | None] | None
        self._current = None
        self._cached_root: RootMeta | None = None
        self._cached_root_parsed = False

    # --- root (§4.2, §4.5) ---------------------------------------------------------

    def update_root(self, raw: bytes) -> RootMeta:
        """Trust ``raw`` as the root: pinned, first use, previously trusted or a rotation."""
        if self.root is not None:
            raise ValueError("the root of a trusted set is given once")
        gun, at, policy = self.gun, self.at, self.policy
        warnings: list[str] = []
        root = parse_root(raw)
        rk = root.roles["root"]
        found = certs.root_leaf_keys(root.keys, rk.keyids, gun, at, check_expiry=True)
        warnings.extend(found.warnings)
        keys = found.keys
        pin = policy.pin
        if pin is not None and (pin.root or pin.ca_bundle is not None):
            keys = _apply_root_pin(pin, found, gun, at)
            basis = "pinned"
        elif policy.no_tofu:
            raise NotTrusted(
                ErrorCode.NO_PIN,
                f"{gun} has no root pin and trust on first use is disabled (--no-tofu); add one "
                "with `trustcheck pin add` after checking the root certificate out of band",
                role="root",
            )
        elif policy.previous_root is None:
            basis = "first use"
        elif policy.previous_root == raw:
            basis = "previously trusted"
        else:
            self._check_rotation(policy.previous_root, root)
            basis = "rotated"
        try:
            signed_by = verify_signatures(root, keys, list(keys), rk.threshold)
        except NotTrusted as e:
            if e.code != "threshold-not-met":
                raise
            raise NotTrusted(
                ErrorCode.ROOT_INTEGRITY,
                f"root.json is not signed by {rk.threshold} of its own "
                f"{'pinned ' if basis == 'pinned' else ''}root certificate key(s) "
                f"({e.message.split('; ')[0]}); the root was altered, or its certificate PEM "
                "is not in the exact form notary re-encodes",
                role="root",
            ) from e
        self._check_floor(root)
        self._raise_if_expired(
            root, "the repository owner must re-sign root.json (notary key rotate/publish)"
        )
        self._near(root, warnings)
        self.warnings.extend(warnings)
        self.checks["root"] = RoleCheck(
            "root", root.version, root.expires, list(rk.keyids), rk.threshold, signed_by
        )
        self.root, self.root_raw, self.root_keys, self.trust_basis = root, raw, keys, basis
        return root

    def _check_rotation(self, prev_raw: bytes, new: RootMeta) -> None:
        """Accept a changed root only as a rotation chain from the trusted one (§4.5)."""
        gun, at = self.gun, self.at
        prev = parse_root(prev_raw)
        if new.version < prev.version:
            raise NotTrusted(
                ErrorCode.VERSION_ROLLBACK,
                f"root.json of {gun} is version {new.version}, lower than version "
                f"{prev.version} trusted before: an old root is being replayed",
                role="root",
            )
        if self._chain is not None:
            if self._chain_next != new.version:
                raise self.missing_intermediate_root(self._chain_next, new.version, prev.version)
            _signed_by_previous(self._chain, new, gun, at)
            return
        try:
            _signed_by_previous(prev, new, gun, at)
        except NotTrusted as direct:
            if new.version - prev.version < 2:
                raise
            raise IntermediateRootsNeeded(direct, range(prev.version + 1, new.version)) from None

    def update_intermediate_root(self, raw: bytes, version: int) -> None:
        """``<version>.root.json``, the next step of a rotation from the trusted root.

        It must hold ``version``, carry its own root keys' threshold (it may have
        expired) and the threshold of its predecessor's root keys.
        """
        gun, at = self.gun, self.at
        if self._chain is None:
            if self.policy.previous_root is None:
                raise ValueError("no previously trusted root to rotate from")
            self._chain = parse_root(self.policy.previous_root)
            self._chain_next = self._chain.version + 1
        if version != self._chain_next:
            raise ValueError(f"intermediate root {self._chain_next} is due, not {version}")
        inter = parse_root(raw)
        if inter.version != version:
            raise _rotation_error(gun, f"{version}.root.json holds version {inter.version}")
        irk = inter.roles["root"]
        own = certs.root_leaf_keys(inter.keys, irk.keyids, gun, at, check_expiry=False).keys
        try:
            verify_signatures(inter, own, list(own), irk.threshold)  # may be expired
        except NotTrusted as e:
            raise _rotation_error(
                gun, f"intermediate root {version} is not self-signed ({e})"
            ) from e
        _signed_by_previous(self._chain, inter, gun, at)
        self._chain = inter
        self._chain_next = version + 1

    def missing_intermediate_root(
        self, version: int, new_version: int, prev_version: int, first: NotTrusted | None = None
    ) -> NotTrusted:
        """The error when ``<version>.root.json`` of a rotation cannot be had."""
        why = f" ({first.message.split(';')[0].split(' but ')[-1]})" if first is not None else ""
        return _rotation_error(
            self.gun,
            f"version {new_version} is not signed by the keys of version {prev_version} "
            f"and the intermediate root {version}.root.json is not in the trust data{why}",
        )

    # --- timestamp, snapshot -------------------------------------------------------

    def _base(self, role: str) -> tuple[list[str], int]:
        if self.root is None:
            raise ValueError(f"{role} before the root")
        r = self.root.roles[role]
        return r.keyids, r.threshold

    def update_timestamp(self, raw: bytes) -> TimestampMeta:
        """The timestamp (no checksum reference; the caller caps it at 1 MiB)."""
        keyids, threshold = self._base("timestamp")
        assert self.root is not None
        ts = parse_timestamp(raw)
        signed_by = verify_signatures(ts, self.root.keys, keyids, threshold)
        self._check_floor(ts)
        check_timestamp_structure(ts)
        self._raise_if_expired(
            ts,
            "the cached trust data is stale: fetch fresh trust data from the notary server, "
            "or verify as of an earlier time with --at",
        )
        self.checks["timestamp"] = RoleCheck(
            "timestamp", ts.version, ts.expires, keyids, threshold, signed_by
        )
        self.timestamp = ts
        return ts

    def snapshot_meta(self) -> FileMeta:
        """What the trusted timestamp says of the snapshot (its length caps the read)."""
        if self.timestamp is None:
            raise ValueError("snapshot before the timestamp")
        return self.timestamp.meta["snapshot"]

    def update_snapshot(self, raw: bytes) -> SnapshotMeta:
        """The snapshot: hashes from the timestamp on the raw bytes, then as a role;
        the trusted root must be the one it names; no trusted role may vanish."""
        snap_meta = self.snapshot_meta()
        keyids, threshold = self._base("snapshot")
        assert self.root is not None
        check_hashes(raw, snap_meta, "snapshot", "timestamp")
        snap = parse_snapshot(raw)
        signed_by = verify_signatures(snap, self.root.keys, keyids, threshold)
        self._check_floor(snap)
        check_snapshot_structure(snap)
        self._raise_if_expired(
            snap, "the snapshot must be re-signed by the repository owner or server"
        )
        warnings: list[str] = []
        self._near(snap, warnings)
        # the root we trust must be the one the snapshot names (notary checks the
        # root loaded without checksum when the snapshot arrives)
        check_hashes(self.root_raw, snap.meta["root"], "root", "snapshot")
        self._check_no_role_removed(snap)
        self.warnings.extend(warnings)
        self.checks["snapshot"] = RoleCheck(
            "snapshot", snap.version, snap.expires, keyids, threshold, signed_by
        )
        self.snapshot = snap
        base_keyids, base_threshold = self._base("targets")
        self._todo = deque(
            [(Delegation("targets", base_keyids, base_threshold, [""]), self.root.keys)]
        )
        return snap

    def _check_no_role_removed(self, snap: SnapshotMeta) -> None:
        """A targets role trusted before must still be listed in the snapshot.

        TUF 1.0 §5.5.5: any targets metadata listed in the trusted snapshot must
        continue to be listed in the new one; otherwise a delegation (e.g.
        ``targets/releases``) could be dropped to fall back to an older or
        lower-priority signature. notary does not check this (docs/notary-compat.md).
        The state only knows roles that were loaded and verified.
        """
        for role in sorted(self.floors):
            if role != "targets" and not role.startswith("targets/"):
                continue
            fm = snap.meta.get(role)
            if fm is None or (not fm.hashes and fm.length == 0):
                raise NotTrusted(
                    ErrorCode.ROLE_REMOVED,
                    f"snapshot version {snap.version} no longer lists {role}, which was trusted "
                    f"before (version {self.floors[role]}); removing a trusted role is a "
                    "downgrade attack. If the owner really deleted the delegation, remove this "
                    "GUN's state file (see docs/notary-compat.md)",
                    role=role,
                )

    # --- targets and delegations: notary's pre-order walk ---------------------------

    def next_targets(self) -> tuple[str, FileMeta] | None:
        """The next targets role to give (``targets`` first, then delegations in
        notary's pre-order), with what the snapshot says of it; None when done.

        Roles the snapshot gives no checksum are passed over (notary's
        ChecksumKnown); a delegation's keys and signer pin are checked here,
        before its bytes are wanted.
        """
        if self.snapshot is None:
            raise ValueError("targets before the snapshot")
        if self._current is not None:
            raise ValueError(f"{self._current[0].name} was named and not given")
        while self._todo:
            if len(self.targets) + len(self.skipped) >= MAX_ROLES:
                raise NotTrusted(
                    ErrorCode.INVALID_DELEGATION,
                    f"{self.gun} has more than {MAX_ROLES} delegated roles; refusing to walk "
                    "further",
                )
            role, keys = self._todo.popleft()
            name = role.name
            fm = self.snapshot.meta.get(name)
            if fm is None or (not fm.hashes and fm.length == 0):
                # notary silently skips roles without a checksum (ChecksumKnown); a
                # length without hashes is downloaded and fails CheckHashes below
                continue
            cert_problem: NotTrusted | None = None
            if name != "targets":
                for keyid in role.keyids:
                    key = keys.get(keyid)
                    if key is not None:
                        certs.validate_delegation_key(key, name)
                        cert_problem = cert_problem or _delegation_cert_window(key, name, self.at)
                role = _apply_signer_pin(self.policy.pin, role, keys, self.gun)
            self._current = (role, keys, fm, cert_problem)
            return name, fm
        return None

    def update_targets(self, raw: bytes) -> TargetsMeta | None:
        """The base ``targets`` role (after :meth:`next_targets` named it)."""
        return self._update_targets_role("targets", raw)

    def update_delegated_targets(self, raw: bytes, role_name: str) -> TargetsMeta | None:
        """A delegation :meth:`next_targets` named; None when it was skipped
        (expired, under threshold or, by policy, a bad certificate) with its subtree."""
        if role_name == "targets":
            raise ValueError("targets is not a delegation")
        return self._update_targets_role(role_name, raw)

    def _update_targets_role(self, name: str, raw: bytes) -> TargetsMeta | None:
        current = self._current
        if current is None or current[0].name != name:
            raise ValueError(f"{name} was not named by next_targets")
        self._current = None
        role, keys, fm, cert_problem = current
        is_delegation = name != "targets"
        policy = self.policy
        check_hashes(raw, fm, name, "snapshot")
        tm = parse_targets(name, raw)
        if name in self.targets:
            raise NotTrusted("invalid-delegation", f"{name} has already been loaded", role=name)
        if is_delegation:
            # notary's loadDelegation: structure and version before signatures,
            # so these errors are fatal even for a badly signed delegation
            check_targets_structure(tm, validate_role_name)
            self._check_floor(tm)
        try:
            signed_by = verify_signatures(tm, keys, role.keyids, role.threshold)
            if not is_delegation:  # base targets: signatures, then structure, version
                check_targets_structure(tm, validate_role_name)
                self._check_floor(tm)
            self._raise_if_expired(tm, "the role's signer must re-sign it")
            if cert_problem is not None and policy.delegation_cert_expiry == "reject":
                raise cert_problem
        except NotTrusted as e:
            if is_delegation and e.code in (
                "threshold-not-met",
                "metadata-expired",
                "delegation-cert-expired",
            ):
                self.skipped[name] = e
                self.warnings.append(f"skipping {name} and its delegations: {e.message}")
                return None
            raise
        if cert_problem is not None and policy.delegation_cert_expiry == "warn":
            self.warnings.append(cert_problem.message)
        self._near(tm, self.warnings)
        self.targets[name] = tm
        self.paths[name] = role.paths
        self.checks[name] = RoleCheck(
            name, tm.version, tm.expires, role.keyids, role.threshold, signed_by, role.paths
        )
        valid_children = _restrict_all(role, tm.delegations, self._matchers)
        self.children[name] = valid_children
        # pre-order: children go first, in array order
        self._todo.extendleft((d, tm.delegation_keys) for d in reversed(valid_children))
        return tm

    # --- floors ------------------------------------------------------------------

    def note_replaced(self, role: str, cached: bytes) -> None:
        """A cached copy of ``role`` that the new bytes replace: when it still
        verifies (top-level roles against the policy's cached root, delegations
        against their loaded parent) its version is a floor (notary's oldBuilder)."""
        root: RootMeta | None = None
        parent: TargetsMeta | None = None
        if role in ("timestamp", "snapshot", "targets"):
            if not self._cached_root_parsed:
                self._cached_root_parsed = True
                if self.policy.cached_root is not None:
                    try:
                        self._cached_root = parse_root(self.policy.cached_root)
                    except TrustcheckError:
                        self._cached_root = None
            root = self._cached_root
        else:
            parent = self.targets.get(role.rsplit("/", 1)[0])
        version = cached_version(role, cached, root, parent)
        if version is not None and version > self.floors.get(role, 0):
            self.floors[role] = version

    def _check_floor(self, meta: SignedMeta) -> None:
        floor = self.floors.get(meta.role)
        if floor is not None and meta.version < floor:
            raise NotTrusted(
                ErrorCode.VERSION_ROLLBACK,
                f"{meta.role} is version {meta.version}, lower than version {floor} trusted "
                "before: old metadata is being replayed (rollback). Fetch current trust data",
                role=meta.role,
            )

    # --- expiry --------------------------------------------------------------------

    def _raise_if_expired(self, meta: SignedMeta, fix: str) -> None:
        expired = _expiry(meta, self.at, fix)
        if expired:
            raise expired

    def _near(self, meta: SignedMeta, warnings: list[str]) -> None:
        if meta.expires - self.at < NEAR_EXPIRY:
            warnings.append(f"{meta.role} metadata expires soon, at {_iso(meta.expires)}")

    # --- result --------------------------------------------------------------------

    def collection(self) -> Collection:
        """The verified collection (after the targets walk is complete)."""
        if self.root is None or self.timestamp is None or self.snapshot is None:
            raise ValueError("the collection is not verified yet")
        if self._current is not None or self._todo:
            raise ValueError("the targets walk is not complete")
        return Collection(
            gun=self.gun,
            trust_basis=self.trust_basis,
            root_raw=self.root_raw,
            at=self.at,
            root=self.root,
            root_keys=self.root_keys,
            timestamp=self.timestamp,
            snapshot=self.snapshot,
            targets=self.targets,
            paths=self.paths,
            children=self.children,
            checks=self.checks,
            skipped=self.skipped,
            warnings=self.warnings,
            _matchers=self._matchers,
        )
