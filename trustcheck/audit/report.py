"""Signer-key audit: who can sign what, which keys and certificates are weak or expiring.

Pure: verified collections (or the errors that stopped them), the validation
time and the horizon go in; an :class:`AuditReport` comes out.  Nothing here
reads files, the clock, the network or the environment -- the command
(``trustcheck/commands/audit.py``) gathers the collections and renders the
report (``trustcheck/audit/render.py``).  docs/audit.md explains every finding.

API
---

* :func:`audit_collection` -- one collection (or its error) to a
  :class:`CollectionAudit`: status, roles with thresholds and expiry, every
  key, delegations and their effective paths, the tags each signer signed, the
  released tags with their signers, and the findings that concern only it.
  Call it as each collection is verified and drop the collection: a
  1,000-collection audit then never holds 1,000 collections.
* :func:`build_report` -- the :class:`CollectionAudit` list to an
  :class:`AuditReport`: adds the cross-collection findings (``shared-key``),
  the key -> (collection, role) index with what each key lets its holder sign,
  every signed tag (for re-signing elsewhere) and the expiry timeline.  With
  ``key_filter`` the report keeps only the keys matching it and the
  collections they are used in.
* :func:`audit` -- both steps for a ``{gun: Collection | error}`` mapping.

Findings (:data:`FINDINGS`): a stable kebab-case code, a severity
(``error`` or ``warning``), a one-line message, and where it applies the GUN,
role, canonical key ID, tag and date.  Codes are never renamed.
"""

from __future__ import annotations

import re
from collections.abc import Collection as AbstractSet
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from trustcheck.core.lookup import RELEASED_ROLES, all_target_metadata, list_targets, signer_name
from trustcheck.core.model import Delegation, RootMeta
from trustcheck.core.timefmt import iso
from trustcheck.core.verify import Collection
from trustcheck.errors import TrustcheckError, UsageError

if TYPE_CHECKING:
    from trustcheck.core.lookup import TargetHit
    from trustcheck.core.thumbprint import KeyReport
    from trustcheck.local.pinfile import PinSet

__all__ = [
    "BASE_ROLES",
    "DEFAULT_HORIZON",
    "FINDINGS",
    "SEVERITIES",
    "AuditError",
    "AuditReport",
    "CollectionAudit",
    "Finding",
    "KeyEntry",
    "KeyIndexEntry",
    "KeyUse",
    "ReleasedTag",
    "RoleAudit",
    "SignedTag",
    "SignerAudit",
    "TimelineItem",
    "UnreleasedTag",
    "audit",
    "audit_collection",
    "build_report",
    "normalise_key_query",
    "parse_horizon",
]

#: Severities, most severe first.  ``--fail-on warning`` fails on both.
SEVERITIES = ("error", "warning")

#: code -> (severity, one-line summary).  docs/audit.md explains each one;
#: tests/unit/test_audit.py keeps the two in step.
FINDINGS: dict[str, tuple[str, str]] = {
    "unverifiable": ("error", "the collection does not verify (the error code says why)"),
    "collection-unreadable": (
        "error",
        "a collection in the trust dir cannot be read safely (symlink out of the trust dir, "
        "unreadable folder, root.json not a regular file); it was not audited",
    ),
    "cert-expired": ("error", "a root or signer certificate has expired"),
    "cert-expiring": ("warning", "a root or signer certificate expires within the horizon"),
    "cert-not-yet-valid": ("warning", "a root or signer certificate is not valid yet"),
    "role-expired": ("error", "a role's metadata has expired"),
    "role-expiring": ("warning", "a role's metadata expires within the horizon"),
    "weak-key": ("error", "an RSA key under 2048 bits"),
    "short-rsa-key": ("warning", "an RSA key under 3072 bits"),
    "sha1-certificate": ("error", "a certificate signed with SHA-1"),
    "root-single-key": ("warning", "the root role has threshold 1 and a single key"),
    "shared-key": ("warning", "one key is used by several roles or collections (blast radius)"),
    "signer-signed-nothing": ("warning", "a delegated signer has signed nothing"),
    "unreleased-tag": (
        "warning",
        "a tag is signed only outside targets/releases and targets (Docker will not pull it)",
    ),
    "delegation-not-in-snapshot": (
        "error",
        "a delegation's role file is cached but the snapshot does not list it (notary ignores it)",
    ),
    "delegation-skipped": (
        "error",
        "a delegation fails verification and is ignored with its subtree",
    ),
    "root-cn-mismatch": ("error", "a root certificate's common name does not match the GUN"),
    "unpinned": ("warning", "no pin applies to the collection (trust on first use)"),
    "cache-only": (
        "warning",
        "the server could not be reached: the collection verified from the cache only",
    ),
}

BASE_ROLES = ("root", "targets", "snapshot", "timestamp")
DEFAULT_HORIZON = timedelta(days=90)

#: RSA below this is an error (notary refuses such certificates), below the
#: second a warning (NIST SP 800-57: 3072 bits for use beyond 2030).
RSA_ERROR_BITS = 2048
RSA_WARNING_BITS = 3072

#: Certificate signature algorithms (OpenSSL names, as thumbprint.py reports
#: them, or the dotted OID it falls back to) that hash with SHA-1.
_SHA1_SIGNATURES = frozenset(
    {
        "sha1WithRSAEncryption",
        "ecdsa-with-SHA1",
        "dsa_with_SHA1",
        "1.3.14.3.2.29",  # sha1WithRSASignature (OIW)
        "1.3.14.3.2.27",  # dsaWithSHA1 (OIW)
    }
)

#: fetch.py's warnings when a server was unreachable and the cache was used

_DOCKER_SIGNER = re.compile(r"targets/(?!releases$)[^/]+")
_HEX = frozenset("0123456789abcdef")


# --------------------------------------------------------------------------- model


@dataclass(slots=True)
class Finding:
    """One problem found, with a stable ``code`` (see :data:`FINDINGS`)."""

    code: str
    message: str
    gun: str | None = None
    role: str | None = None
    #: canonical key ID of the key concerned
    key: str | None = None
    tag: str | None = None
    #: the expiry (or start of validity) concerned, ``YYYY-MM-DDTHH:MM:SSZ``
    date: str | None = None
    #: for ``unverifiable``: the verification error code
    error_code: str | None = None
    #: ``"GUN ROLE"`` of every use, for ``shared-key``
    locations: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.code not in FINDINGS:  # a programming error, caught by the tests
            raise ValueError(f"undocumented finding code {self.code!r}")

    @property
    def severity(self) -> str:
        return FINDINGS[self.code][0]

    def guns(self) -> list[str]:
        """Every collection the finding concerns."""
        if self.gun is not None:
            return [self.gun]
        return list(dict.fromkeys(loc.split(" ", 1)[0] for loc in self.locations))

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "gun": self.gun,
            "role": self.role,
            "key": self.key,
            "tag": self.tag,
            "date": self.date,
            "error_code": self.error_code,
            "locations": list(self.locations),
            "message": self.message,
        }


@dataclass(slots=True)
class RoleAudit:
    """A role of a collection: base roles, then every delegation a loaded role lists."""

    name: str
    #: ``verified``; ``skipped`` (notary ignores it and its subtree);
    #: ``not-in-snapshot`` (listed by its parent, absent from the snapshot);
    #: ``unverified`` (read from the root of a collection that does not verify)
    status: str
    parent: str | None = None
    version: int | None = None
    expires: datetime | None = None
    threshold: int | None = None
    keyids: list[str] = field(default_factory=list)
    signed_by: list[str] = field(default_factory=list)
    #: effective (parent-restricted) path prefixes of a delegation
    paths: list[str] | None = None
    #: visible tags in the role (None when the role was not loaded)
    tags: int | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "parent": self.parent,
            "version": self.version,
            "expires": iso(self.expires) if self.expires is not None else None,
            "threshold": self.threshold,
            "keyids": list(self.keyids),
            "signed_by": list(self.signed_by),
            "paths": list(self.paths) if self.paths is not None else None,
            "tags": self.tags,
            "reason": self.reason,
        }


@dataclass(slots=True)
class KeyEntry:
    """One key of one role (thumbprint's :class:`~trustcheck.thumbprint.KeyReport` facts)."""

    role: str
    key_type: str
    algorithm: str
    key_id: str | None
    canonical_key_id: str | None
    bits: int | None = None
    curve: str | None = None
    cert_sha256: str | None = None
    spki_sha256: str | None = None
    subject_cn: str | None = None
    issuer: str | None = None
    not_before: str | None = None
    not_after: str | None = None
    signature_algorithm: str | None = None

    @property
    def ident(self) -> str:
        """What identifies the key across roles and collections (canonical ID)."""
        return self.canonical_key_id or self.key_id or ""

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "key_type": self.key_type,
            "algorithm": self.algorithm,
            "bits": self.bits,
            "curve": self.curve,
            "key_id": self.key_id,
            "canonical_key_id": self.canonical_key_id,
            "cert_sha256": self.cert_sha256,
            "spki_sha256": self.spki_sha256,
            "subject_cn": self.subject_cn,
            "issuer": self.issuer,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "signature_algorithm": self.signature_algorithm,
        }


@dataclass(slots=True)
class TagRef:
    tag: str
    digest: str | None

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "digest": self.digest}


@dataclass(slots=True)
class SignerAudit:
    """A targets role as a signer and the tags visible in it."""

    role: str
    name: str
    keys: list[str]
    tags: list[TagRef]

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "name": self.name,
            "keys": list(self.keys),
            "tags": [t.to_json() for t in self.tags],
        }


@dataclass(slots=True)
class ReleasedTag:
    """A tag as Docker pulls it (targets/releases, then targets) and who signed that digest."""

    tag: str
    digest: str
    length: int
    role: str
    signers: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "digest": self.digest,
            "length": self.length,
            "role": self.role,
            "signers": list(self.signers),
        }


@dataclass(slots=True)
class UnreleasedTag:
    """A tag Docker will not pull: the role it resolves to is not a released role."""

    tag: str
    digest: str | None
    length: int
    role: str

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "digest": self.digest, "length": self.length, "role": self.role}


@dataclass(slots=True)
class TimelineItem:
    """A certificate or a role's metadata, and when it expires."""

    gun: str
    #: ``certificate`` or ``metadata``
    kind: str
    #: the role (metadata) or ``CN=<subject>`` (certificate)
    label: str
    roles: list[str]
    expires: datetime
    #: ``expired``, ``expiring`` (within the horizon) or ``ok``
    status: str
    cert_sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "gun": self.gun,
            "kind": self.kind,
            "label": self.label,
            "roles": list(self.roles),
            "expires": iso(self.expires),
            "status": self.status,
            "cert_sha256": self.cert_sha256,
        }


@dataclass(frozen=True, slots=True)
class AuditError:
    """Why a collection does not verify (a plain record of the :class:`TrustcheckError`)."""

    code: str
    message: str
    role: str | None = None

    @classmethod
    def of(cls, error: TrustcheckError) -> AuditError:
        return cls(error.code, error.message, error.role)

    def to_json(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "role": self.role}


@dataclass(slots=True)
class CollectionAudit:
    """Everything the audit knows about one collection."""

    gun: str
    #: ``verified`` or ``unverifiable``
    status: str
    pinned: bool
    fetched: bool = False
    error: AuditError | None = None
    trust_basis: str | None = None
    warnings: list[str] = field(default_factory=list)
    roles: list[RoleAudit] = field(default_factory=list)
    keys: list[KeyEntry] = field(default_factory=list)
    signers: list[SignerAudit] = field(default_factory=list)
    released: list[ReleasedTag] = field(default_factory=list)
    unreleased: list[UnreleasedTag] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    timeline: list[TimelineItem] = field(default_factory=list)

    def role(self, name: str) -> RoleAudit | None:
        return next((r for r in self.roles if r.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "gun": self.gun,
            "status": self.status,
            "error": self.error.to_json() if self.error is not None else None,
            "trust_basis": self.trust_basis,
            "pinned": self.pinned,
            "fetched": self.fetched,
            "warnings": list(self.warnings),
            "roles": [r.to_json() for r in self.roles],
            "keys": [k.to_json() for k in self.keys],
            "signers": [s.to_json() for s in self.signers],
            "released_tags": [t.to_json() for t in self.released],
            "unreleased_tags": [t.to_json() for t in self.unreleased],
            "findings": [f.to_json() for f in self.findings],
        }


@dataclass(slots=True)
class KeyUse:
    """One (collection, role) a key can sign for, and what that allows."""

    gun: str
    role: str
    key_id: str | None
    threshold: int | None
    #: distinct keys in the role (the holder needs threshold - 1 others)
    role_keys: int
    paths: list[str] | None
    can_sign: str
    #: visible tags the role holds today (None for non-targets roles)
    tags: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "gun": self.gun,
            "role": self.role,
            "key_id": self.key_id,
            "threshold": self.threshold,
            "role_keys": self.role_keys,
            "paths": list(self.paths) if self.paths is not None else None,
            "can_sign": self.can_sign,
            "tags": self.tags,
        }


@dataclass(slots=True)
class KeyIndexEntry:
    """A key (by canonical ID) and every (collection, role) it is used in."""

    canonical_key_id: str
    algorithm: str
    key_types: list[str]
    key_ids: list[str]
    cert_sha256: list[str]
    spki_sha256: str | None
    uses: list[KeyUse]

    def guns(self) -> list[str]:
        return list(dict.fromkeys(u.gun for u in self.uses))

    def to_json(self) -> dict[str, Any]:
        return {
            "canonical_key_id": self.canonical_key_id,
            "algorithm": self.algorithm,
            "key_types": list(self.key_types),
            "key_ids": list(self.key_ids),
            "cert_sha256": list(self.cert_sha256),
            "spki_sha256": self.spki_sha256,
            "collections": len(self.guns()),
            "uses": [u.to_json() for u in self.uses],
        }


@dataclass(slots=True)
class SignedTag:
    """One signed tag of one collection: the migration list (re-sign with Notation or cosign)."""

    gun: str
    tag: str
    digest: str | None
    length: int
    role: str
    released: bool
    signers: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "gun": self.gun,
            "tag": self.tag,
            "digest": self.digest,
            "length": self.length,
            "role": self.role,
            "released": self.released,
            "signers": list(self.signers),
        }


@dataclass(slots=True)
class AuditReport:
    at: datetime
    horizon: timedelta
    collections: list[CollectionAudit]
    findings: list[Finding]
    keys: list[KeyIndexEntry]
    signed_tags: list[SignedTag]
    timeline: list[TimelineItem]
    key_filter: str | None = None

    @property
    def horizon_days(self) -> int:
        return self.horizon.days

    def counts(self) -> dict[str, int]:
        """Findings per severity (every severity present, zero or not)."""
        out = dict.fromkeys(SEVERITIES, 0)
        for f in self.findings:
            out[f.severity] += 1
        return out

    def reaches(self, fail_on: str | None) -> bool:
        """Whether any finding is at least as severe as ``fail_on``."""
        if fail_on is None:
            return False
        worst = SEVERITIES.index(fail_on)
        return any(SEVERITIES.index(f.severity) <= worst for f in self.findings)

    def summary(self) -> dict[str, Any]:
        verified = sum(1 for c in self.collections if c.status == "verified")
        return {
            "collections": len(self.collections),
            "verified": verified,
            "unverifiable": len(self.collections) - verified,
            "keys": len(self.keys),
            "signed_tags": len(self.signed_tags),
            "released_tags": sum(1 for t in self.signed_tags if t.released),
            "findings": self.counts(),
        }

    def to_json(self) -> dict[str, Any]:
        """The JSON document (schema: ``audit_render.JSON_SCHEMA``, docs/audit.md)."""
        from trustcheck import __version__

        return {
            "schema": "trustcheck-audit/1",
            "trustcheck_version": __version__,
            "at": iso(self.at),
            "horizon_days": self.horizon_days,
            "key_filter": self.key_filter,
            "summary": self.summary(),
            "findings": [f.to_json() for f in self.findings],
            "collections": [c.to_json() for c in self.collections],
            "keys": [k.to_json() for k in self.keys],
            "signed_tags": [t.to_json() for t in self.signed_tags],
            "timeline": [t.to_json() for t in self.timeline],
        }


# --------------------------------------------------------------------------- inputs


def parse_horizon(text: str) -> timedelta:
    """``90d``, ``12w``, ``1y`` (365 days) or a plain number of days."""
    m = re.fullmatch(r"\s*(\d{1,5})\s*([dwy]?)\s*", text.lower())
    if m is None:
        raise UsageError(
            "invalid-argument",
            f"--horizon {text!r} is not a duration; use days, weeks or years: 90d, 12w, 1y",
        )
    n = int(m.group(1))
    days = n * {"": 1, "d": 1, "w": 7, "y": 365}[m.group(2)]
    return timedelta(days=days)


def normalise_key_query(text: str) -> str:
    """A ``--key`` value as lower-case hex: any identifier kind prefix, ``sha256:`` and
    OpenSSL's colons are dropped.  At least 8 hex digits (a prefix is enough)."""
    value = text.strip().lower()
    for prefix in ("cert-sha256:", "spki-sha256:", "keyid:", "canonical:", "sha256:"):
        if value.startswith(prefix):
            value = value[len(prefix) :]
            break
    value = value.replace(":", "")
    if len(value) < 8 or len(value) > 64 or not set(value) <= _HEX:
        raise UsageError(
            "invalid-argument",
            f"--key {text!r} is not a key identifier: give at least 8 hex digits of a key ID, "
            "canonical ID, certificate SHA-256 or SPKI SHA-256",
        )
    return value


# --------------------------------------------------------------------------- one collection


def _entry(report: KeyReport) -> KeyEntry:
    bits: int | None = None
    curve: str | None = None
    kind, _, rest = report.algorithm.partition(" ")
    if kind in ("RSA", "DSA") and rest.isdigit():
        bits = int(rest)
    elif kind == "ECDSA" and rest:
        curve = rest
    elif kind == "Ed25519":
        curve = "Ed25519"
    return KeyEntry(
        role=report.role or "",
        key_type=report.key_type,
        algorithm=report.algorithm,
        key_id=report.key_id,
        canonical_key_id=report.canonical_key_id,
        bits=bits,
        curve=curve,
        cert_sha256=report.cert_sha256,
        spki_sha256=report.spki_sha256,
        subject_cn=report.subject_cn,
        issuer=report.issuer,
        not_before=report.not_before,
        not_after=report.not_after,
        signature_algorithm=report.signature_algorithm,
    )


def _root_key_reports(root: RootMeta, gun: str) -> list[KeyReport]:
    """thumbprint's reports for the base-role keys of a root that did not verify."""
    from trustcheck.core.thumbprint import _report_of_key

    reports: list[KeyReport] = []
    seen: set[tuple[str, str]] = set()
    for role in BASE_ROLES:
        rk = root.roles.get(role)
        if rk is None:
            continue
        for kid in rk.keyids:
            key = root.keys.get(kid)
            if key is None or (role, kid) in seen:
                continue
            seen.add((role, kid))
            reports.append(_report_of_key(key, gun, role))
    return reports


def _parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _key_findings(
    gun: str, keys: list[KeyEntry], at: datetime, horizon: timedelta
) -> list[Finding]:
    """Weak keys, SHA-1 and out-of-window certificates: once per key / certificate."""
    out: list[Finding] = []
    by_key: dict[str, list[KeyEntry]] = {}
    for k in keys:
        by_key.setdefault(k.ident, []).append(k)
    for ident, entries in by_key.items():
        first = entries[0]
        roles = ", ".join(dict.fromkeys(e.role for e in entries))
        short = ident[:12]
        if first.algorithm.startswith("RSA") and first.bits is not None:
            if first.bits < RSA_ERROR_BITS:
                out.append(
                    Finding(
                        "weak-key",
                        f"{gun}: {roles} key {short}… is RSA {first.bits}: under "
                        f"{RSA_ERROR_BITS} bits it can be factored; notary refuses such "
                        "certificates and signatures. Replace the key",
                        gun=gun,
                        role=first.role,
                        key=ident,
                    )
                )
            elif first.bits < RSA_WARNING_BITS:
                out.append(
                    Finding(
                        "short-rsa-key",
                        f"{gun}: {roles} key {short}… is RSA {first.bits}: use RSA 3072+ or "
                        "ECDSA P-256 for keys meant to last beyond 2030",
                        gun=gun,
                        role=first.role,
                        key=ident,
                    )
                )
    by_cert: dict[str, list[KeyEntry]] = {}
    for k in keys:
        if k.cert_sha256 is not None:
            by_cert.setdefault(k.cert_sha256, []).append(k)
    for entries in by_cert.values():
        first = entries[0]
        roles = ", ".join(dict.fromkeys(e.role for e in entries))
        what = f"{gun}: certificate CN={first.subject_cn!r} ({roles}, key {first.ident[:12]}…)"
        if first.signature_algorithm in _SHA1_SIGNATURES:
            out.append(
                Finding(
                    "sha1-certificate",
                    f"{what} is signed with {first.signature_algorithm}; SHA-1 collisions are "
                    "practical and notary refuses it. Re-issue it with SHA-256",
                    gun=gun,
                    role=first.role,
                    key=first.ident,
                )
            )
        not_after = _parse_time(first.not_after)
        not_before = _parse_time(first.not_before)
        if not_after is not None and not_after < at:
            out.append(
                Finding(
                    "cert-expired",
                    f"{what} expired at {first.not_after}",
                    gun=gun,
                    role=first.role,
                    key=first.ident,
                    date=first.not_after,
                )
            )
        elif not_after is not None and not_after < _until(at, horizon):
            out.append(
                Finding(
                    "cert-expiring",
                    f"{what} expires at {first.not_after}, within {horizon.days} days",
                    gun=gun,
                    role=first.role,
                    key=first.ident,
                    date=first.not_after,
                )
            )
        if not_before is not None and not_before > at:
            out.append(
                Finding(
                    "cert-not-yet-valid",
                    f"{what} is not valid before {first.not_before}",
                    gun=gun,
                    role=first.role,
                    key=first.ident,
                    date=first.not_before,
                )
            )
    return out


def _root_findings(gun: str, root: RootMeta, keys: list[KeyEntry]) -> list[Finding]:
    from trustcheck.core.certs import cn_matches_gun

    out: list[Finding] = []
    rk = root.roles.get("root")
    root_keys = [k for k in keys if k.role == "root"]
    distinct = {k.ident for k in root_keys}
    if rk is not None and rk.threshold == 1 and len(distinct) == 1:
        out.append(
            Finding(
                "root-single-key",
                f"{gun}: the root role has threshold 1 and a single key "
                f"({root_keys[0].ident[:12]}…); losing it makes rotation impossible. Add a "
                "second root key kept offline (notary key rotate GUN root --key A --key B)",
                gun=gun,
                role="root",
                key=root_keys[0].ident,
            )
        )
    seen: set[str] = set()
    for k in root_keys:
        if k.cert_sha256 is None or k.cert_sha256 in seen:
            continue
        seen.add(k.cert_sha256)
        if not cn_matches_gun(k.subject_cn or "", gun):
            out.append(
                Finding(
                    "root-cn-mismatch",
                    f"{gun}: root certificate {k.cert_sha256[:12]}… (key {k.ident[:12]}…) is "
                    f"issued to CN={k.subject_cn!r}, not to this GUN; notary cannot use it",
                    gun=gun,
                    role="root",
                    key=k.ident,
                )
            )
    return out


def _until(at: datetime, horizon: timedelta) -> datetime:
    """``at + horizon``, clamped to the latest time Python holds (``--at 9999-12-31``)."""
    try:
        return at + horizon
    except OverflowError:
        return datetime.max.replace(tzinfo=at.tzinfo)


def _expiry_status(expires: datetime, at: datetime, horizon: timedelta) -> str:
    if expires < at:
        return "expired"
    if expires < _until(at, horizon):
        return "expiring"
    return "ok"


def _cert_timeline(
    gun: str, keys: list[KeyEntry], at: datetime, horizon: timedelta
) -> list[TimelineItem]:
    items: dict[str, TimelineItem] = {}
    for k in keys:
        if k.cert_sha256 is None:
            continue
        expires = _parse_time(k.not_after)
        if expires is None:
            continue
        item = items.get(k.cert_sha256)
        if item is None:
            items[k.cert_sha256] = TimelineItem(
                gun,
                "certificate",
                f"CN={k.subject_cn or ''}",
                [k.role],
                expires,
                _expiry_status(expires, at, horizon),
                k.cert_sha256,
            )
        elif k.role not in item.roles:
            item.roles.append(k.role)
    return list(items.values())


def _failed(
    gun: str,
    error: TrustcheckError,
    at: datetime,
    horizon: timedelta,
    pinned: bool,
    root: RootMeta | None,
    fetched: bool,
) -> CollectionAudit:
    audit_ = CollectionAudit(gun=gun, status="unverifiable", pinned=pinned, fetched=fetched)
    audit_.error = AuditError.of(error)
    audit_.findings.append(
        Finding(
            "unverifiable",
            f"{gun}: [{error.code}] {error.message}",
            gun=gun,
            role=error.role,
            error_code=error.code,
        )
    )
    if root is not None:
        for role in BASE_ROLES:
            rk = root.roles.get(role)
            if rk is None:
                continue
            audit_.roles.append(
                RoleAudit(
                    name=role,
                    status="unverified",
                    version=root.version if role == "root" else None,
                    expires=root.expires if role == "root" else None,
                    threshold=rk.threshold,
                    keyids=list(rk.keyids),
                )
            )
        audit_.keys = [_entry(r) for r in _root_key_reports(root, gun)]
        audit_.findings += _key_findings(gun, audit_.keys, at, horizon)
        audit_.findings += _root_findings(gun, root, audit_.keys)
        audit_.timeline = _cert_timeline(gun, audit_.keys, at, horizon)
        audit_.timeline.append(
            TimelineItem(
                gun,
                "metadata",
                "root",
                ["root"],
                root.expires,
                _expiry_status(root.expires, at, horizon),
            )
        )
    if not pinned:
        audit_.findings.append(_unpinned(gun))
    return audit_


def unreadable_collection(path: str, code: str, why: str) -> CollectionAudit:
    """A collection ``audit --all`` found but cannot read safely (see
    :meth:`trustcheck.local.trustdir.TrustDir.list_guns`): unverifiable, with a
    ``collection-unreadable`` finding, so it is counted and ``--fail-on error``
    fails for it."""
    where = f"tuf/{path}" if path else "tuf"
    message = f"{where} in the trust dir: {why}"
    audit_ = CollectionAudit(gun=path or "tuf", status="unverifiable", pinned=False)
    audit_.error = AuditError(code, message)
    audit_.findings.append(
        Finding("collection-unreadable", f"{message}; not audited", gun=audit_.gun, error_code=code)
    )
    return audit_


def _unpinned(gun: str) -> Finding:
    return Finding(
        "unpinned",
        f"{gun}: no pin applies; its root is trusted on first use. Check the root out of band "
        "and pin it (trustcheck pin add)",
        gun=gun,
    )


def audit_collection(
    gun: str,
    got: Collection | TrustcheckError,
    at: datetime,
    *,
    horizon: timedelta = DEFAULT_HORIZON,
    pinned: bool = False,
    root: RootMeta | None = None,
    cached_roles: AbstractSet[str] | None = None,
    fetched: bool = False,
) -> CollectionAudit:
    """Audit one collection (or the error verifying it) at validation time ``at``.

    * ``pinned``: whether a pin applies to ``gun`` (else ``unpinned``).
    * ``root``: for a collection that does not verify, its root.json parsed
      without verification (its keys are then listed and checked), or None.
    * ``cached_roles``: the role files the trust dir holds for ``gun``
      (``targets/alice``...): a delegation absent from the snapshot whose file
      is cached is ``delegation-not-in-snapshot``; one without a file is a
      signer that never published (``signer-signed-nothing``).  None = no files.
    * ``fetched``: the collection was fetched from a server in this run
      (``cache-only`` applies only then).
    """
    if isinstance(got, TrustcheckError):
        return _failed(gun, got, at, horizon, pinned, root, fetched)
    from trustcheck.core.thumbprint import keys_of_collection

    col = got
    audit_ = CollectionAudit(
        gun=gun,
        status="verified",
        pinned=pinned,
        fetched=fetched,
        trust_basis=col.trust_basis,
        warnings=list(col.warnings),
    )
    findings = audit_.findings
    audit_.keys = keys = [_entry(r) for r in keys_of_collection(col)]

    # --- tags: every visible (tag, role), and Docker's resolution of each tag
    hits = all_target_metadata(col, "")
    by_role: dict[str, list[TargetHit]] = {}
    by_tag: dict[str, list[TargetHit]] = {}
    for h in hits:
        by_role.setdefault(h.role, []).append(h)
        by_tag.setdefault(h.name, []).append(h)
    for name, hit in sorted(list_targets(col, RELEASED_ROLES).items()):
        sha = hit.sha256
        digest = "sha256:" + sha if sha is not None else None
        if hit.role in RELEASED_ROLES:
            if sha is None:
                continue  # no digest: nothing Docker could pull
            signers = [signer_name(h.role) for h in by_tag.get(name, ()) if h.sha256 == sha]
            audit_.released.append(
                ReleasedTag(name, digest or "", hit.meta.length, hit.role, signers)
            )
        else:
            audit_.unreleased.append(UnreleasedTag(name, digest, hit.meta.length, hit.role))
            findings.append(
                Finding(
                    "unreleased-tag",
                    f"{gun}:{name} resolves to {hit.role} (Docker searches targets/releases "
                    "and its delegations, then targets), a role Docker does not pull from; "
                    "sign the tag into targets/releases",
                    gun=gun,
                    role=hit.role,
                    tag=name,
                )
            )

    # --- roles: base roles, then every delegation a loaded role lists
    for role in BASE_ROLES:
        check = col.checks.get(role)
        rk = col.root.roles.get(role)
        if check is None or rk is None:
            continue
        audit_.roles.append(
            RoleAudit(
                name=role,
                status="verified",
                version=check.version,
                expires=check.expires,
                threshold=check.threshold,
                keyids=list(check.keyids),
                signed_by=list(check.signed_by),
                tags=len(by_role.get(role, ())) if role == "targets" else None,
            )
        )
    keys_by_role: dict[str, list[str]] = {}
    for k in keys:
        keys_by_role.setdefault(k.role, []).append(k.ident)
    for parent in col.targets:
        for d in col.children.get(parent, ()):
            audit_.roles.append(_delegation_role(col, parent, d, by_role))
    for r in audit_.roles:
        if r.name in BASE_ROLES:
            continue
        if r.status == "verified" and r.tags == 0 and not col.children.get(r.name):
            findings.append(
                Finding(
                    "signer-signed-nothing",
                    f"{gun}: {r.name} is published but holds no tag; its keys can sign without "
                    "anyone noticing. Remove the delegation if the signer is gone",
                    gun=gun,
                    role=r.name,
                )
            )
        elif r.status == "not-in-snapshot":
            if cached_roles is not None and r.name in cached_roles:
                findings.append(
                    Finding(
                        "delegation-not-in-snapshot",
                        f"{gun}: {r.name}.json is cached but the snapshot does not list it; "
                        "notary ignores it, so none of its tags are trusted. Publish again "
                        "(notary publish) so the snapshot includes it",
                        gun=gun,
                        role=r.name,
                    )
                )
            else:
                findings.append(
                    Finding(
                        "signer-signed-nothing",
                        f"{gun}: {r.name} was delegated but has never published anything; its "
                        "keys can still sign. Remove the delegation if the signer is gone "
                        "(notary delegation remove)",
                        gun=gun,
                        role=r.name,
                    )
                )
        elif r.status == "skipped":
            err = col.skipped.get(r.name)
            if err is not None and err.code == "metadata-expired":
                findings.append(
                    Finding(
                        "role-expired",
                        f"{gun}: {err.message}; the role and its delegations are ignored",
                        gun=gun,
                        role=r.name,
                    )
                )
            else:
                findings.append(
                    Finding(
                        "delegation-skipped",
                        f"{gun}: {r.name} is ignored with its delegations: "
                        f"[{err.code if err else '?'}] {err.message if err else ''}",
                        gun=gun,
                        role=r.name,
                        error_code=err.code if err else None,
                    )
                )

    # --- signers: each loaded targets role and the tags visible in it
    for name in col.targets:
        tags = [
            TagRef(h.name, "sha256:" + h.sha256 if h.sha256 else None)
            for h in by_role.get(name, ())
        ]
        tags.sort(key=lambda t: t.tag)
        keys_of = keys_by_role.get(name, [])
        audit_.signers.append(
            SignerAudit(name, signer_name(name), list(dict.fromkeys(keys_of)), tags)
        )

    # --- metadata expiry (timestamp excluded: the server re-signs it on demand)
    for r in audit_.roles:
        if r.expires is None or r.name == "timestamp" or r.status != "verified":
            continue
        status = _expiry_status(r.expires, at, horizon)
        audit_.timeline.append(TimelineItem(gun, "metadata", r.name, [r.name], r.expires, status))
        if status == "expiring":
            findings.append(
                Finding(
                    "role-expiring",
                    f"{gun}: {r.name} metadata expires at {iso(r.expires)}, within "
                    f"{horizon.days} days; its signer must re-sign it before then",
                    gun=gun,
                    role=r.name,
                    date=iso(r.expires),
                )
            )
        elif status == "expired":  # only reachable with a verifier that accepts it
            findings.append(
                Finding(
                    "role-expired",
                    f"{gun}: {r.name} metadata expired at {iso(r.expires)}",
                    gun=gun,
                    role=r.name,
                    date=iso(r.expires),
                )
            )
    audit_.timeline = _cert_timeline(gun, keys, at, horizon) + audit_.timeline

    findings += _key_findings(gun, keys, at, horizon)
    findings += _root_findings(gun, col.root, keys)
    if not pinned:
        findings.append(_unpinned(gun))
    if fetched and col.cache_fallback is not None:
        reason = col.cache_fallback
        findings.append(
            Finding(
                "cache-only",
                f"{gun}: verified only from the cache: {reason}. Once the cached timestamp "
                "expires this collection stops verifying",
                gun=gun,
                role="timestamp",
                date=iso(col.timestamp.expires),
            )
        )
    return audit_


def _delegation_role(
    col: Collection, parent: str, d: Delegation, by_role: Mapping[str, list[TargetHit]]
) -> RoleAudit:
    name = d.name
    check = col.checks.get(name)
    if check is not None and name in col.targets:
        return RoleAudit(
            name=name,
            status="verified",
            parent=parent,
            version=check.version,
            expires=check.expires,
            threshold=check.threshold,
            keyids=list(check.keyids),
            signed_by=list(check.signed_by),
            paths=list(col.paths.get(name, d.paths)),
            tags=len(by_role.get(name, ())),
        )
    base = RoleAudit(
        name=name,
        status="not-in-snapshot",
        parent=parent,
        threshold=d.threshold,
        keyids=list(d.keyids),
        paths=list(d.paths),
    )
    skipped = col.skipped.get(name)
    if skipped is not None:
        base.status = "skipped"
        base.reason = f"[{skipped.code}] {skipped.message}"
    elif name in col.snapshot.meta and col.snapshot.meta[name].hashes:
        base.status = "not-loaded"  # e.g. beyond the role limit: not expected in practice
    return base


# --------------------------------------------------------------------------- across collections


def _can_sign(gun: str, role: RoleAudit | None, role_name: str) -> str:
    if role_name == "root":
        return f"everything in {gun}: it can replace every key of the collection (new root.json)"
    if role_name == "targets":
        return f"every tag of {gun}, and it can add or replace signers (delegations)"
    if role_name == "snapshot":
        return (
            f"the snapshot of {gun}: with the timestamp key it can freeze or mix versions "
            "(no tags of its own)"
        )
    if role_name == "timestamp":
        return f"the freshness of {gun} (timestamp; no tags of its own)"
    paths = role.paths if role is not None else None
    if paths is None or paths == [""] or "" in paths:
        scope = "any tag"
    else:
        scope = "tags starting with " + ", ".join(repr(p) for p in paths)
    pulled = (
        "Docker pulls them"
        if role_name == "targets/releases"
        else "Docker pulls them only if they are also in targets/releases or targets"
    )
    state = "" if role is None or role.status == "verified" else f" (role {role.status})"
    return f"{scope} of {gun} via {role_name}{state}; {pulled}; it can delegate further"


def _shared_findings(index: list[KeyIndexEntry]) -> list[Finding]:
    out: list[Finding] = []
    for entry in index:
        guns = entry.guns()
        roles_per_gun: dict[str, list[str]] = {}
        for u in entry.uses:
            roles_per_gun.setdefault(u.gun, [])
            if u.role not in roles_per_gun[u.gun]:
                roles_per_gun[u.gun].append(u.role)
        shared = len(guns) > 1
        if not shared:
            roles = set(roles_per_gun[guns[0]])
            docker_pair = (
                len(roles) == 2
                and "targets/releases" in roles
                and all(r == "targets/releases" or _DOCKER_SIGNER.fullmatch(r) for r in roles)
            )
            shared = len(roles) > 1 and not docker_pair
        if not shared:
            continue
        locations = [f"{g} {r}" for g, rs in roles_per_gun.items() for r in rs]
        where = (
            f"{len(locations)} roles in {len(guns)} collections"
            if len(guns) > 1
            else f"{len(locations)} roles of {guns[0]}"
        )
        out.append(
            Finding(
                "shared-key",
                f"key {entry.canonical_key_id[:12]}… ({entry.algorithm}) is used by {where}: "
                f"{', '.join(locations[:6])}{' …' if len(locations) > 6 else ''}; whoever holds "
                "it can sign for all of them",
                gun=guns[0] if len(guns) == 1 else None,
                role=entry.uses[0].role if len(locations) == 1 else None,
                key=entry.canonical_key_id,
                locations=locations,
            )
        )
    return out


def _key_index(audits: Sequence[CollectionAudit]) -> list[KeyIndexEntry]:
    from trustcheck.core.reference import identity

    index: dict[str, KeyIndexEntry] = {}
    for a in audits:
        roles = {r.name: r for r in a.roles}
        seen: set[tuple[str, str]] = set()
        for k in a.keys:
            ident = k.ident
            if not ident or (ident, k.role) in seen:
                continue
            seen.add((ident, k.role))
            entry = index.get(ident)
            if entry is None:
                entry = index[ident] = KeyIndexEntry(
                    canonical_key_id=ident,
                    algorithm=k.algorithm,
                    key_types=[],
                    key_ids=[],
                    cert_sha256=[],
                    spki_sha256=k.spki_sha256,
                    uses=[],
                )
            if k.key_type not in entry.key_types:
                entry.key_types.append(k.key_type)
            if k.key_id is not None and k.key_id not in entry.key_ids:
                entry.key_ids.append(k.key_id)
            if k.cert_sha256 is not None and k.cert_sha256 not in entry.cert_sha256:
                entry.cert_sha256.append(k.cert_sha256)
            role = roles.get(k.role)
            role_keys = len({x.ident for x in a.keys if x.role == k.role})
            entry.uses.append(
                KeyUse(
                    gun=identity(a.gun),  # one identity per repository (docs/pinning.md)
                    role=k.role,
                    key_id=k.key_id,
                    threshold=role.threshold if role is not None else None,
                    role_keys=role_keys,
                    paths=role.paths if role is not None else None,
                    can_sign=_can_sign(a.gun, role, k.role),
                    tags=role.tags if role is not None else None,
                )
            )
    return sorted(index.values(), key=lambda e: (-len(e.uses), e.canonical_key_id))


def _matches(entry: KeyIndexEntry, query: str) -> bool:
    ids: Iterable[str | None] = (
        entry.canonical_key_id,
        entry.spki_sha256,
        *entry.key_ids,
        *entry.cert_sha256,
    )
    return any(i is not None and i.lower().startswith(query) for i in ids)


def _signed_tags(a: CollectionAudit) -> list[SignedTag]:
    rows: dict[str, SignedTag] = {}
    for t in a.released:
        rows[t.tag] = SignedTag(a.gun, t.tag, t.digest, t.length, t.role, True, list(t.signers))
    for u in a.unreleased:
        if u.tag in rows:
            continue
        signers = [
            s.name
            for s in a.signers
            if any(x.tag == u.tag and x.digest == u.digest for x in s.tags)
        ]
        rows[u.tag] = SignedTag(a.gun, u.tag, u.digest, u.length, u.role, False, signers)
    return sorted(rows.values(), key=lambda r: r.tag)


def _finding_order(f: Finding) -> tuple[int, str, str, str, str]:
    return (
        SEVERITIES.index(f.severity),
        f.code,
        f.gun or "",
        f.role or "",
        f.tag or f.key or "",
    )


def build_report(
    audits: Sequence[CollectionAudit],
    at: datetime,
    *,
    horizon: timedelta = DEFAULT_HORIZON,
    key_filter: str | None = None,
) -> AuditReport:
    """Combine per-collection audits: cross-collection findings, key index, tag list, timeline.

    ``key_filter`` (hex, see :func:`normalise_key_query`): keep only the keys
    whose key ID, canonical ID, certificate or SPKI SHA-256 starts with it, the
    collections they are used in, and those collections' findings.
    """
    ordered = sorted(audits, key=lambda a: a.gun)
    index = _key_index(ordered)
    findings = [f for a in ordered for f in a.findings] + _shared_findings(index)
    collections = list(ordered)
    if key_filter is not None:
        index = [e for e in index if _matches(e, key_filter)]
        wanted = {g for e in index for g in e.guns()}
        wanted_keys = {e.canonical_key_id for e in index}
        collections = [a for a in ordered if a.gun in wanted]
        findings = [
            f
            for f in findings
            if (f.key is not None and f.key in wanted_keys)
            or (f.key is None and any(g in wanted for g in f.guns()))
        ]
    findings.sort(key=_finding_order)
    signed = [row for a in collections for row in _signed_tags(a)]
    timeline = sorted(
        (t for a in collections for t in a.timeline), key=lambda t: (t.expires, t.gun, t.label)
    )
    return AuditReport(
        at=at,
        horizon=horizon,
        collections=collections,
        findings=findings,
        keys=index,
        signed_tags=signed,
        timeline=timeline,
        key_filter=key_filter,
    )


def audit(
    results: Mapping[str, Collection | TrustcheckError],
    at: datetime,
    *,
    horizon: timedelta = DEFAULT_HORIZON,
    pins: PinSet | None = None,
    roots: Mapping[str, RootMeta] | None = None,
    cached_roles: Mapping[str, AbstractSet[str]] | None = None,
    fetched: bool = False,
    key_filter: str | None = None,
) -> AuditReport:
    """:func:`audit_collection` for each entry, then :func:`build_report`."""
    audits = [
        audit_collection(
            gun,
            got,
            at,
            horizon=horizon,
            pinned=pins is not None and pins.lookup(gun) is not None,
            root=(roots or {}).get(gun),
            cached_roles=(cached_roles or {}).get(gun),
            fetched=fetched,
        )
        for gun, got in results.items()
    ]
    return build_report(audits, at, horizon=horizon, key_filter=key_filter)
