"""One collection (or the error that stopped it) to a :class:`CollectionAudit`
(:func:`audit_collection`), and :func:`audit`, both steps for a mapping."""

from __future__ import annotations

from collections.abc import Collection as AbstractSet
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from trustcheck.audit.index import build_report
from trustcheck.audit.keys import (
    _cert_timeline,
    _entry,
    _expiry_status,
    _key_findings,
    _root_findings,
    _root_key_reports,
)
from trustcheck.audit.model import (
    BASE_ROLES,
    DEFAULT_HORIZON,
    AuditError,
    AuditReport,
    CollectionAudit,
    Finding,
    ReleasedTag,
    RoleAudit,
    SignerAudit,
    TagRef,
    TimelineItem,
    UnreleasedTag,
)
from trustcheck.core.lookup import RELEASED_ROLES, all_target_metadata, list_targets
from trustcheck.core.model import Delegation, RootMeta
from trustcheck.core.roles import signer_name
from trustcheck.core.timefmt import iso
from trustcheck.core.verify import Collection
from trustcheck.errors import TrustcheckError

if TYPE_CHECKING:
    from trustcheck.core.lookup import TargetHit
    from trustcheck.local.pinfile import PinSet

__all__ = ["audit", "audit_collection", "unreadable_collection"]


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
