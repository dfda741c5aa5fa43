"""Signer-key audit: who can sign what, which keys and certificates are weak or expiring.

Pure: verified collections (or the errors that stopped them), the validation
time and the horizon go in; an :class:`AuditReport` comes out.  Nothing here
reads files, the clock, the network or the environment -- the command
(``trustcheck/cli/audit.py``) gathers the collections and renders the
report (``trustcheck/audit/render/``).  docs/audit.md explains every finding.

API
---

* :func:`~trustcheck.audit.collect.audit_collection` -- one collection (or its error) to a
  :class:`CollectionAudit`: status, roles with thresholds and expiry, every
  key, delegations and their effective paths, the tags each signer signed, the
  released tags with their signers, and the findings that concern only it.
  Call it as each collection is verified and drop the collection: a
  1,000-collection audit then never holds 1,000 collections.
* :func:`~trustcheck.audit.index.build_report` -- the :class:`CollectionAudit` list to an
  :class:`AuditReport`: adds the cross-collection findings (``shared-key``),
  the key -> (collection, role) index with what each key lets its holder sign,
  every signed tag (for re-signing elsewhere) and the expiry timeline.  With
  ``key_filter`` the report keeps only the keys matching it and the
  collections they are used in.
* :func:`~trustcheck.audit.collect.audit` -- both steps for a ``{gun: Collection | error}`` mapping.

Findings (:data:`FINDINGS`): a stable kebab-case code, a severity
(``error`` or ``warning``), a one-line message, and where it applies the GUN,
role, canonical key ID, tag and date.  Codes are never renamed.

This module: the finding registry and the report's data classes; the
``--horizon`` and ``--key`` inputs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from trustcheck.core.timefmt import iso
from trustcheck.errors import ErrorCode, TrustcheckError, UsageError

if TYPE_CHECKING:
    from trustcheck.audit.signatures import SignatureAudit

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
    "notation-store-missing": (
        "error",
        "a Notation trust policy statement names a trust store that is missing, empty or unusable",
    ),
    "notation-statement-missing": (
        "error",
        "a policy rule requires Notation under a trust policy statement Notation's trust "
        "policy does not have",
    ),
    "notation-any-identity": (
        "warning",
        'a Notation trust policy statement trusts any identity (trustedIdentities ["*"])',
    ),
    "cosign-broad-identity": (
        "warning",
        "a cosign keyless identity's SAN expression accepts signers of other owners",
    ),
    "sigstore-no-active-authority": (
        "error",
        "the Sigstore trusted root has no Fulcio CA or no Rekor log valid at the audit time",
    ),
}

BASE_ROLES = ("root", "targets", "snapshot", "timestamp")
DEFAULT_HORIZON = timedelta(days=90)

#: RSA below this is an error (notary refuses such certificates), below the
#: second a warning (NIST SP 800-57: 3072 bits for use beyond 2030).
RSA_ERROR_BITS = 2048
RSA_WARNING_BITS = 3072


#: a Docker signer role: targets/<name>, not targets/releases
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


class _JsonItem(Protocol):
    def to_json(self) -> dict[str, Any]: ...


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
    #: Notation / cosign / Sigstore trust material (``--policy``, ``--notation-*``,
    #: ``--trusted-root``): a :class:`~trustcheck.audit.signatures.SignatureAudit`
    signatures: SignatureAudit | None = None

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
        """The JSON document (its schema: ``trustcheck.audit.render.schema.JSON_SCHEMA``)."""
        doc = self.json_head()
        for name, items in self.json_lists():
            doc[name] = [item.to_json() for item in items]
        if self.signatures is not None:
            doc["signatures"] = self.signatures.to_json()
        return doc

    def json_head(self) -> dict[str, Any]:
        """The document's members before its lists (:meth:`to_json` in parts, so that
        a renderer can write a large audit one item at a time)."""
        from trustcheck import __version__

        return {
            "schema": "trustcheck-audit/1",
            "trustcheck_version": __version__,
            "at": iso(self.at),
            "horizon_days": self.horizon_days,
            "key_filter": self.key_filter,
            "summary": self.summary(),
        }

    def json_lists(self) -> list[tuple[str, Sequence[_JsonItem]]]:
        """The document's lists, in order, after :meth:`json_head`."""
        return [
            ("findings", self.findings),
            ("collections", self.collections),
            ("keys", self.keys),
            ("signed_tags", self.signed_tags),
            ("timeline", self.timeline),
        ]


# --------------------------------------------------------------------------- inputs


def parse_horizon(text: str) -> timedelta:
    """``90d``, ``12w``, ``1y`` (365 days) or a plain number of days."""
    m = re.fullmatch(r"\s*(\d{1,5})\s*([dwy]?)\s*", text.lower())
    if m is None:
        raise UsageError(
            ErrorCode.INVALID_ARGUMENT,
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
            ErrorCode.INVALID_ARGUMENT,
            f"--key {text!r} is not a key identifier: give at least 8 hex digits of a key ID, "
            "canonical ID, certificate SHA-256 or SPKI SHA-256",
        )
    return value
