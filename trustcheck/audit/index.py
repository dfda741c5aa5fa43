"""Across collections: the ``shared-key`` findings, the key -> (collection, role)
index with what each key lets its holder sign, every signed tag, the timeline
(:func:`build_report`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from trustcheck.audit.model import (
    _DOCKER_SIGNER,
    DEFAULT_HORIZON,
    SEVERITIES,
    AuditReport,
    CollectionAudit,
    Finding,
    KeyIndexEntry,
    KeyUse,
    RoleAudit,
    SignedTag,
)

__all__ = ["build_report"]


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
