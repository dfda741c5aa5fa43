"""Helpers the audit renderings share: visible text (attacker-controlled
characters escaped), widths, aligned tables, the headline, role and key rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from trustcheck.audit.model import AuditReport, CollectionAudit, Finding, TimelineItem
from trustcheck.core.timefmt import iso
from trustcheck.text import table, visible

#: Tags listed per collection in the table before "… N more" (JSON, Markdown,
#: HTML and --targets-csv list them all).
TABLE_TAG_LIMIT = 20
#: Rows of the HTML timeline chart (the soonest expiries; the JSON has all).
TIMELINE_LIMIT = 150


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Aligned columns, two spaces apart, the last column not padded; every cell
    made :func:`~trustcheck.text.visible` first (attacker-controlled text)."""
    return table(
        [visible(h) for h in headers], [[visible(c) for c in r] for r in rows], indent=indent
    )


def _short(value: str | None, n: int = 12) -> str:
    if not value:
        return "-"
    return value if len(value) <= n else value[:n] + "…"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _headline(report: AuditReport) -> list[str]:
    s = report.summary()
    counts = s["findings"]
    lines = [
        f"trustcheck audit at {iso(report.at)}, horizon {report.horizon_days} days",
        f"{_plural(s['collections'], 'collection')} ({s['verified']} verified, "
        f"{s['unverifiable']} unverifiable), {_plural(s['keys'], 'key')}, "
        f"{_plural(s['signed_tags'], 'signed tag')} ({s['released_tags']} released)",
        f"findings: {_plural(counts['error'], 'error')}, {_plural(counts['warning'], 'warning')}",
    ]
    if report.key_filter is not None:
        lines.append(f"key filter: {report.key_filter} ({_plural(len(report.keys), 'key')} match)")
    return lines


def _where(f: Finding) -> str:
    if f.gun is not None:
        return f.gun
    guns = f.guns()
    if not guns:  # Notation / cosign / Sigstore trust material: no collection
        return "-"
    return guns[0] if len(guns) == 1 else f"{len(guns)} collections"


def _detail(f: Finding) -> str:
    """The message without the ``GUN: `` it starts with (the row names the collection)."""
    if f.gun is not None and f.message.startswith(f.gun + ": "):
        return f.message[len(f.gun) + 2 :]
    return f.message


def _threshold(threshold: int | None, keys: int) -> str:
    return f"{threshold}/{keys}" if threshold is not None else "-"


def _date(value: datetime | None) -> str:
    return iso(value) if value is not None else "-"


def _paths(paths: list[str] | None) -> str:
    if paths is None:
        return "-"
    if "" in paths:
        return "(all)"
    return ", ".join(paths) if paths else "(none)"


def _status_line(c: CollectionAudit) -> str:
    if c.status == "verified":
        extra = f"root: {c.trust_basis}; pinned: {'yes' if c.pinned else 'no'}"
        if c.fetched:
            extra += "; fetched"
        return f"{c.gun}  verified ({extra})"
    assert c.error is not None
    return f"{c.gun}  UNVERIFIABLE [{c.error.code}] {c.error.message}"


def _role_rows(c: CollectionAudit) -> list[list[str]]:
    rows = []
    for r in c.roles:
        rows.append(
            [
                r.name,
                r.status,
                str(r.version) if r.version is not None else "-",
                _threshold(r.threshold, len(r.keyids)),
                ", ".join(_short(k) for k in r.signed_by) or "-",
                _date(r.expires),
                _paths(r.paths),
                str(r.tags) if r.tags is not None else "-",
            ]
        )
    return rows


ROLE_HEADERS = ("ROLE", "STATUS", "VERSION", "THRESHOLD", "SIGNED BY", "EXPIRES", "PATHS", "TAGS")
KEY_HEADERS = (
    "ROLE",
    "TYPE",
    "ALGORITHM",
    "KEY ID",
    "CANONICAL ID",
    "CERT SHA-256",
    "SUBJECT CN",
    "ISSUER",
    "VALID FROM",
    "VALID TO",
)

KEY_HEADERS_TEXT = (
    "role",
    "type",
    "algorithm",
    "key ID",
    "canonical ID",
    "cert SHA-256",
    "subject CN",
    "issuer",
    "valid from",
    "valid to",
)


def _key_rows(c: CollectionAudit, n: int = 12) -> list[list[str]]:
    return [
        [
            k.role,
            k.key_type,
            k.algorithm,
            _short(k.key_id, n),
            _short(k.canonical_key_id, n),
            _short(k.cert_sha256, n),
            k.subject_cn if k.subject_cn is not None else "-",
            k.issuer if k.issuer is not None else "-",
            k.not_before or "-",
            k.not_after or "-",
        ]
        for k in c.keys
    ]


def _tag_list(tags: Sequence[str], limit: int | None) -> str:
    if not tags:
        return "(none)"
    if limit is not None and len(tags) > limit:
        return ", ".join(tags[:limit]) + f", … {len(tags) - limit} more"
    return ", ".join(tags)


def _timeline_label(t: TimelineItem) -> str:
    if t.kind == "certificate":
        return f"{t.label} ({', '.join(t.roles)})"
    return f"{t.label} metadata"


def _signature_sections(report: AuditReport) -> list[tuple[str, list[str], list[list[str]]]]:
    """The ``signatures`` section as (title, headers, rows) tables: Notation trust
    policy statements and certificates, cosign keys and identities, Sigstore
    authorities (empty lists left out)."""
    s = report.signatures
    if s is None:
        return []
    out: list[tuple[str, list[str], list[list[str]]]] = []
    if s.notation_policies:
        out.append(
            (
                "Notation trust policy statements",
                [
                    "STATEMENT",
                    "LEVEL",
                    "REGISTRY SCOPES",
                    "TRUST STORES",
                    "TRUSTED IDENTITIES",
                    "MISSING STORES",
                    "POLICY RULES",
                ],
                [
                    [
                        p.name,
                        p.level,
                        ", ".join(p.scopes),
                        ", ".join(p.stores) or "-",
                        "; ".join(p.identities) or "-",
                        ", ".join(p.missing) or "-",
                        "; ".join(p.rules) or "-",
                    ]
                    for p in s.notation_policies
                ],
            )
        )
    if s.notation_certificates:
        out.append(
            (
                "Notation trust store certificates",
                [
                    "STORE",
                    "SUBJECT",
                    "ISSUER",
                    "SHA-256",
                    "KEY",
                    "VALID FROM",
                    "VALID TO",
                    "DAYS LEFT",
                    "STATUS",
                    "TRUST POLICIES",
                    "REGISTRY SCOPES",
                    "IDENTITIES",
                ],
                [
                    [
                        c.store,
                        c.subject,
                        c.issuer,
                        c.sha256,
                        c.key,
                        c.not_before,
                        c.not_after,
                        str(c.days_left),
                        c.status,
                        ", ".join(c.policies) or "-",
                        ", ".join(c.scopes) or "-",
                        "; ".join(c.identities) or "-",
                    ]
                    for c in s.notation_certificates
                ],
            )
        )
    if s.cosign_keys:
        out.append(
            (
                "Cosign public keys",
                ["FINGERPRINT", "KEY", "SOURCE", "RULES"],
                [[k.fingerprint, k.key, k.source, "; ".join(k.rules)] for k in s.cosign_keys],
            )
        )
    if s.cosign_identities:
        out.append(
            (
                "Cosign keyless identities",
                ["SAN", "MATCH", "ISSUER", "BROAD", "RULES"],
                [
                    [
                        i.san if i.san is not None else i.san_regex or "",
                        "exact" if i.san is not None else "regex",
                        i.issuer,
                        "yes" if i.broad else "no",
                        "; ".join(i.rules),
                    ]
                    for i in s.cosign_identities
                ],
            )
        )
    if s.sigstore_authorities:
        out.append(
            (
                "Sigstore trusted root authorities",
                [
                    "KIND",
                    "NAME",
                    "KEY",
                    "VALID FROM",
                    "VALID UNTIL",
                    "STATUS",
                    "CERT SHA-256",
                    "CERT NOT AFTER",
                ],
                [
                    [
                        a.kind,
                        a.name,
                        a.key,
                        a.valid_from or "-",
                        a.valid_until or "(open)",
                        a.status,
                        a.sha256 or "-",
                        a.not_after or "-",
                    ]
                    for a in s.sigstore_authorities
                ],
            )
        )
    return out
