"""Pure, ordered verification of one Notary v1 trust collection.

Bytes come from a :class:`Source` (a trust dir, later a server); pins and
the validation time ``at`` are inputs; the result is a :class:`Collection`
or a :class:`~trustcheck.errors.NotTrusted` exception. The clock, the
environment and the file system are never touched here.

The order follows notary's client (notary-v1-spec.md §3): root (§4.2),
timestamp, snapshot, targets, then delegations in notary's pre-order walk
(§3.2 ``downloadTargets``), each role checked as notary's builder does:
checksum on the raw bytes, parse, signatures on the canonical re-encoding,
structure, version, expiry.
"""

from __future__ import annotations

import hashlib
import hmac
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from trustcheck.core import certs
from trustcheck.core.crypto import TufKey, canonical_key_id, verify_signature
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
from trustcheck.core.timefmt import iso as _iso
from trustcheck.errors import NotTrusted
from trustcheck.local.trustdir import (
    MAX_DOWNLOAD_SIZE,
    MAX_TIMESTAMP_SIZE,
    TrustDir,
    validate_role_name,
)

if TYPE_CHECKING:
    from trustcheck.local.pinfile import Identifier, PinEntry

__all__ = [
    "Collection",
    "PathPrefixes",
    "RoleCheck",
    "Source",
    "TrustPolicy",
    "verify_collection",
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


class Source(Protocol):
    """Where role bytes come from. ``read`` returns None when the role is absent."""

    def read(self, role: str, cap: int) -> bytes | None: ...


@dataclass(slots=True)
class RoleCheck:
    """What was verified for one role (read by --json, inspect and audits)."""

    role: str
    version: int
    expires: datetime
    keyids: list[str]
    threshold: int
    signed_by: list[str]
    paths: list[str] | None = None


@dataclass(slots=True)
class Collection:
    """A verified trust collection."""

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
    checks: dict[str, RoleCheck] = field(default_factory=dict)
    #: delegations skipped with their subtree (expired / under threshold), as notary does
    skipped: dict[str, NotTrusted] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: set by fetching when the server could not be used and the cache was
    #: (the reason, one line); None when verified from fresh data or offline
    cache_fallback: str | None = None
    _matchers: dict[str, PathPrefixes] = field(default_factory=dict, repr=False)

    def in_paths(self, role: str, name: str) -> bool:
        """Is ``name`` inside the (restricted) paths of the loaded role ``role``?"""
        m = self._matchers.get(role)
        if m is None:
            m = self._matchers[role] = PathPrefixes(self.paths[role])
        return m.matches(name)


def verify_signatures(
    meta: SignedMeta, keys: dict[str, TufKey], keyids: list[str], threshold: int
) -> list[str]:
    """notary's VerifySignatures (spec §2.5). Returns the key IDs that signed."""
    role = meta.role
    if not meta.signatures:
        raise NotTrusted(
            "no-signatures",
            f"{role} carries no signatures; the metadata was tampered with or never signed",
            role=role,
        )
    if threshold < 1:
        raise NotTrusted(
            "threshold-not-met",
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
                "invalid-key-id",
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
            "threshold-not-met",
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
                "hash-mismatch",
                f"{role}.json does not match the {algo} recorded in {parent} "
                f"(expected {want.hex()[:16]}…, file has {got.hex()[:16]}…); the cached file was "
                "modified or mixed with another version: fetch the trust data again",
                role=role,
            )
    if known == 0:
        raise NotTrusted(
            "invalid-structure",
            f"{parent} gives no sha256 or sha512 hash for {role}; it cannot be checked",
            role=role,
        )


def _expiry(meta: SignedMeta, at: datetime, fix: str) -> NotTrusted | None:
    if meta.expires < at:
        return NotTrusted(
            "metadata-expired",
            f"{meta.role} metadata expired at {_iso(meta.expires)} "
            f"(validation time {_iso(at)}); {fix}",
            role=meta.role,
        )
    return None


def _near(meta: SignedMeta, at: datetime, warnings: list[str]) -> None:
    if meta.expires - at < NEAR_EXPIRY:
        warnings.append(f"{meta.role} metadata expires soon, at {_iso(meta.expires)}")


def _read(source: Source, role: str, cap: int, parent: str | None, length: int | None) -> bytes:
    if length is not None and length < 0:
        raise NotTrusted(
            "length-exceeded",
            f"{parent} gives {role} a negative length ({length}); the metadata is malicious",
            role=role,
        )
    try:
        raw = source.read(role, cap)
    except NotTrusted as e:
        if e.code == "file-too-large" and length is not None and length <= cap:
            raise NotTrusted(
                "length-exceeded",
                f"{role}.json is longer than the {length} bytes {parent} allows; the cached "
                "file was replaced or padded: fetch the trust data again",
                role=role,
            ) from e
        raise
    if raw is None:
        raise NotTrusted(
            "role-missing",
            f"{role}.json is missing from the trust data; fetch it again (e.g. `docker trust "
            "inspect` or `trustcheck fetch`)",
            role=role,
        )
    return raw


@dataclass(slots=True)
class TrustPolicy:
    """What the caller trusts beyond the data itself (pins, state); pure input."""

    #: the pin entry that applies to this GUN (its root part and its signers)
    pin: PinEntry | None = None
    #: the raw root.json trusted last time (from the state store)
    previous_root: bytes | None = None
    #: the lowest acceptable version per role (from the state store)
    min_versions: Mapping[str, int] = field(default_factory=dict)
    #: an unpinned GUN is an error (notary's disable_tofu; never trust on first use)
    no_tofu: bool = False
    #: expired or not-yet-valid delegation certificates: "ignore" (notary), "warn", "reject"
    delegation_cert_expiry: str = "warn"


def _rotation_error(gun: str, detail: str) -> NotTrusted:
    return NotTrusted(
        "root-rotation-invalid",
        f"root.json of {gun} changed but {detail}; a legitimate rotation is signed by the "
        "previously trusted root keys. If the owner really replaced the root without that, "
        "verify the new root out of band and pin it (trustcheck pin add)",
        role="root",
    )


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


def _check_rotation(prev_raw: bytes, new: RootMeta, gun: str, at: datetime, source: Source) -> None:
    """Accept a changed root only as a rotation chain from the trusted one (§4.5)."""
    prev = parse_root(prev_raw)
    if new.version < prev.version:
        raise NotTrusted(
            "version-rollback",
            f"root.json of {gun} is version {new.version}, lower than version {prev.version} "
            "trusted before: an old root is being replayed",
            role="root",
        )
    try:
        _signed_by_previous(prev, new, gun, at)
        return
    except NotTrusted as direct:
        if new.version - prev.version < 2:
            raise
        first_error = direct
    # walk the intermediate versions N.root.json, each signed by its predecessor
    cur = prev
    for v in range(prev.version + 1, new.version):
        raw_v = source.read(f"{v}.root", MAX_DOWNLOAD_SIZE)
        if raw_v is None:
            raise _rotation_error(
                gun,
                f"version {new.version} is not signed by the keys of version {prev.version} "
                f"and the intermediate root {v}.root.json is not in the trust data "
                f"({first_error.message.split(';')[0].split(' but ')[-1]})",
            )
        inter = parse_root(raw_v)
        if inter.version != v:
            raise _rotation_error(gun, f"{v}.root.json holds version {inter.version}")
        irk = inter.roles["root"]
        own = certs.root_leaf_keys(inter.keys, irk.keyids, gun, at, check_expiry=False).keys
        try:
            verify_signatures(inter, own, list(own), irk.threshold)  # may be expired
        except NotTrusted as e:
            raise _rotation_error(gun, f"intermediate root {v} is not self-signed ({e})") from e
        _signed_by_previous(cur, inter, gun, at)
        cur = inter
    _signed_by_previous(cur, new, gun, at)


def _apply_root_pin(
    pin: PinEntry, found: certs.RootCerts, gun: str, at: datetime
) -> dict[str, TufKey]:
    """Keep the root keys that satisfy the pin (identifiers and/or CA)."""
    from trustcheck.local.pinfile import chains_to_ca, describe, identifiers_of_key, load_ca_bundle

    bundle = load_ca_bundle(pin, at) if pin.ca is not None else None
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
        if pin.ca is not None:
            what.append(f"CA {pin.ca}")
        has = describe(i for i in seen if i.kind in ("cert-sha256", "keyid"))
        raise NotTrusted(
            "pin-mismatch",
            f"no root certificate of {gun} satisfies {pin.source} ({' and '.join(what)}; "
            f"the root has {has}); the root was replaced. If the owner rotated it on purpose, "
            "check the new certificate out of band and update the pin",
            role="root",
        )
    return allowed


def _check_min_version(meta: SignedMeta, policy: TrustPolicy) -> None:
    floor = policy.min_versions.get(meta.role)
    if floor is not None and meta.version < floor:
        raise NotTrusted(
            "version-rollback",
            f"{meta.role} is version {meta.version}, lower than version {floor} trusted before: "
            "old metadata is being replayed (rollback). Fetch current trust data",
            role=meta.role,
        )


def _verify_root(
    raw: bytes,
    gun: str,
    at: datetime,
    warnings: list[str],
    policy: TrustPolicy,
    source: Source,
) -> tuple[RootMeta, dict[str, TufKey], RoleCheck, str]:
    root = parse_root(raw)
    rk = root.roles["root"]
    found = certs.root_leaf_keys(root.keys, rk.keyids, gun, at, check_expiry=True)
    warnings.extend(found.warnings)
    keys = found.keys
    pin = policy.pin
    if pin is not None and (pin.root or pin.ca is not None):
        keys = _apply_root_pin(pin, found, gun, at)
        basis = "pinned"
    elif policy.no_tofu:
        raise NotTrusted(
            "no-pin",
            f"{gun} has no root pin and trust on first use is disabled (--no-tofu); add one "
            "with `trustcheck pin add` after checking the root certificate out of band",
            role="root",
        )
    elif policy.previous_root is None:
        basis = "first use"
    elif policy.previous_root == raw:
        basis = "previously trusted"
    else:
        _check_rotation(policy.previous_root, root, gun, at, source)
        basis = "rotated"
    try:
        signed_by = verify_signatures(root, keys, list(keys), rk.threshold)
    except NotTrusted as e:
        if e.code != "threshold-not-met":
            raise
        raise NotTrusted(
            "root-integrity",
            f"root.json is not signed by {rk.threshold} of its own "
            f"{'pinned ' if basis == 'pinned' else ''}root certificate key(s) "
            f"({e.message.split('; ')[0]}); the root was altered, or its certificate PEM is not "
            "in the exact form notary re-encodes",
            role="root",
        ) from e
    _check_min_version(root, policy)
    expired = _expiry(
        root, at, "the repository owner must re-sign root.json (notary key rotate/publish)"
    )
    if expired:
        raise expired
    _near(root, at, warnings)
    check = RoleCheck("root", root.version, root.expires, list(rk.keyids), rk.threshold, signed_by)
    return root, keys, check, basis


def verify_collection(
    gun: str, source: Source, at: datetime, policy: TrustPolicy | None = None
) -> Collection:
    """Verify everything for ``gun`` at validation time ``at`` (timezone-aware).

    ``policy`` carries pins and what was trusted before (state); without it
    the cached root is trusted on first use, as Docker did.
    """
    policy = policy if policy is not None else TrustPolicy()
    warnings: list[str] = []
    checks: dict[str, RoleCheck] = {}

    # --- root (spec §4.2), then pins or the previously trusted root (§4.5)
    raw_root = source.read("root", MAX_DOWNLOAD_SIZE)
    if raw_root is None:
        td = getattr(source, "trust_dir", None)
        where = td.describe(gun) if isinstance(td, TrustDir) else "the trust dir"
        raise NotTrusted(
            "no-trust-data",
            f"no trust data for {gun} in {where}; pull or inspect it once with "
            "content trust (docker trust inspect) or run trustcheck fetch",
        )
    root, root_keys, checks["root"], basis = _verify_root(
        raw_root, gun, at, warnings, policy, source
    )

    def base(role: str) -> tuple[list[str], int]:
        r = root.roles[role]
        return r.keyids, r.threshold

    # --- timestamp: capped at 1 MiB, no checksum reference
    raw_ts = _read(source, "timestamp", MAX_TIMESTAMP_SIZE, None, None)
    ts = parse_timestamp(raw_ts)
    keyids, threshold = base("timestamp")
    signed_by = verify_signatures(ts, root.keys, keyids, threshold)
    _check_min_version(ts, policy)
    check_timestamp_structure(ts)
    expired = _expiry(
        ts,
        at,
        "the cached trust data is stale: fetch fresh trust data from the notary server, "
        "or verify as of an earlier time with --at",
    )
    if expired:
        raise expired
    checks["timestamp"] = RoleCheck(
        "timestamp", ts.version, ts.expires, keyids, threshold, signed_by
    )

    # --- snapshot: length from the timestamp is a cap, hashes on the raw bytes
    snap_meta = ts.meta["snapshot"]
    raw_snap = _read(
        source, "snapshot", min(snap_meta.length, MAX_DOWNLOAD_SIZE), "timestamp", snap_meta.length
    )
    check_hashes(raw_snap, snap_meta, "snapshot", "timestamp")
    snap = parse_snapshot(raw_snap)
    keyids, threshold = base("snapshot")
    signed_by = verify_signatures(snap, root.keys, keyids, threshold)
    _check_min_version(snap, policy)
    check_snapshot_structure(snap)
    expired = _expiry(snap, at, "the snapshot must be re-signed by the repository owner or server")
    if expired:
        raise expired
    _near(snap, at, warnings)
    checks["snapshot"] = RoleCheck(
        "snapshot", snap.version, snap.expires, keyids, threshold, signed_by
    )

    # the root we trust must be the one the snapshot names (notary checks the
    # root loaded without checksum when the snapshot arrives)
    check_hashes(raw_root, snap.meta["root"], "root", "snapshot")
    _check_no_role_removed(snap, policy)

    # --- targets and delegations: notary's pre-order walk
    targets: dict[str, TargetsMeta] = {}
    paths: dict[str, list[str]] = {}
    children: dict[str, list[Delegation]] = {}
    skipped: dict[str, NotTrusted] = {}
    matchers: dict[str, PathPrefixes] = {}  # built once per role, kept for lookups
    keyids, threshold = base("targets")
    todo: deque[tuple[Delegation, dict[str, TufKey]]] = deque(
        [(Delegation("targets", keyids, threshold, [""]), root.keys)]
    )
    while todo:
        if len(targets) + len(skipped) >= MAX_ROLES:
            raise NotTrusted(
                "invalid-delegation",
                f"{gun} has more than {MAX_ROLES} delegated roles; refusing to walk further",
            )
        role, keys = todo.popleft()
        name = role.name
        fm = snap.meta.get(name)
        if fm is None or (not fm.hashes and fm.length == 0):
            # notary silently skips roles without a checksum (ChecksumKnown); a
            # length without hashes is downloaded and fails CheckHashes below
            continue
        is_delegation = name != "targets"
        cert_problem: NotTrusted | None = None
        if is_delegation:
            for keyid in role.keyids:
                key = keys.get(keyid)
                if key is not None:
                    certs.validate_delegation_key(key, name)
                    cert_problem = cert_problem or _delegation_cert_window(key, name, at)
            role = _apply_signer_pin(policy.pin, role, keys, gun)
        raw = _read(source, name, min(fm.length, MAX_DOWNLOAD_SIZE), "snapshot", fm.length)
        check_hashes(raw, fm, name, "snapshot")
        tm = parse_targets(name, raw)
        if name in targets:
            raise NotTrusted("invalid-delegation", f"{name} has already been loaded", role=name)
        if is_delegation:
            # notary's loadDelegation: structure and version before signatures,
            # so these errors are fatal even for a badly signed delegation
            check_targets_structure(tm, validate_role_name)
            _check_min_version(tm, policy)
        try:
            signed_by = verify_signatures(tm, keys, role.keyids, role.threshold)
            if not is_delegation:  # base targets: signatures, then structure, version
                check_targets_structure(tm, validate_role_name)
                _check_min_version(tm, policy)
            expired = _expiry(tm, at, "the role's signer must re-sign it")
            if expired:
                raise expired
            if cert_problem is not None and policy.delegation_cert_expiry == "reject":
                raise cert_problem
        except NotTrusted as e:
            if is_delegation and e.code in (
                "threshold-not-met",
                "metadata-expired",
                "delegation-cert-expired",
            ):
                skipped[name] = e
                warnings.append(f"skipping {name} and its delegations: {e.message}")
                continue
            raise
        if cert_problem is not None and policy.delegation_cert_expiry == "warn":
            warnings.append(cert_problem.message)
        _near(tm, at, warnings)
        targets[name] = tm
        paths[name] = role.paths
        checks[name] = RoleCheck(
            name, tm.version, tm.expires, role.keyids, role.threshold, signed_by, role.paths
        )
        valid_children = _restrict_all(role, tm.delegations, matchers)
        children[name] = valid_children
        # pre-order: children go first, in array order
        todo.extendleft((d, tm.delegation_keys) for d in reversed(valid_children))

    return Collection(
        gun=gun,
        trust_basis=basis,
        root_raw=raw_root,
        at=at,
        root=root,
        root_keys=root_keys,
        timestamp=ts,
        snapshot=snap,
        targets=targets,
        paths=paths,
        children=children,
        checks=checks,
        skipped=skipped,
        warnings=warnings,
        _matchers=matchers,
    )


def _delegation_cert_window(key: TufKey, role: str, at: datetime) -> NotTrusted | None:
    """An expired / not-yet-valid delegation certificate (notary ignores both)."""
    from trustcheck.core.crypto import cert_of

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
        "delegation-cert-expired",
        f"the certificate of {role}'s key {key.id[:12]}… {when}; the signer should get a new "
        "certificate (notary accepts it anyway; see --delegation-cert-expiry)",
        role=role,
    )


def _apply_signer_pin(
    pin: PinEntry | None, role: Delegation, keys: dict[str, TufKey], gun: str
) -> Delegation:
    """Restrict a pinned signer's role to the keys its pin names."""
    if pin is None or not pin.signers:
        return role
    from trustcheck.core.lookup import signer_name
    from trustcheck.local.pinfile import describe, identifiers_of_key

    wanted = pin.signers.get(signer_name(role.name))
    if wanted is None:
        return role
    allowed = [k for k in role.keyids if k in keys and identifiers_of_key(keys[k]) & set(wanted)]
    if not allowed:
        raise NotTrusted(
            "signer-pin-mismatch",
            f"no key of {role.name} in {gun} matches the pinned signer "
            f"{signer_name(role.name)!r} ({describe(wanted)}); the signer's key was replaced "
            "in the parent role. Check with the signer, then update the pin",
            role=role.name,
        )
    return Delegation(role.name, allowed, role.threshold, role.paths)


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


def _check_no_role_removed(snap: SnapshotMeta, policy: TrustPolicy) -> None:
    """A targets role trusted before must still be listed in the snapshot.

    TUF 1.0 §5.5.5: any targets metadata listed in the trusted snapshot must
    continue to be listed in the new one; otherwise a delegation (e.g.
    ``targets/releases``) could be dropped to fall back to an older or
    lower-priority signature. notary does not check this (docs/notary-compat.md).
    The state only knows roles that were loaded and verified.
    """
    for role in sorted(policy.min_versions):
        if role != "targets" and not role.startswith("targets/"):
            continue
        fm = snap.meta.get(role)
        if fm is None or (not fm.hashes and fm.length == 0):
            raise NotTrusted(
                "role-removed",
                f"snapshot version {snap.version} no longer lists {role}, which was trusted "
                f"before (version {policy.min_versions[role]}); removing a trusted role is a "
                "downgrade attack. If the owner really deleted the delegation, remove this "
                "GUN's state file (see docs/notary-compat.md)",
                role=role,
            )
