"""``markdown``: the table's sections as GitHub-flavoured Markdown."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

from trustcheck.audit.model import AuditReport
from trustcheck.audit.render.common import (
    KEY_HEADERS_TEXT,
    ROLE_HEADERS,
    _detail,
    _role_rows,
    _signature_sections,
    _tag_list,
    _threshold,
    _timeline_label,
    _where,
)
from trustcheck.core.timefmt import iso
from trustcheck.text import visible

__all__ = ["render_markdown"]


def _md(value: object) -> str:
    text = visible(str(value))
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    for ch in "*_[]":
        text = text.replace(ch, "\\" + ch)
    return html.escape(text, quote=False)


def _md_code(value: str | None) -> str:
    return f"`{value}`" if value else "-"


def _md_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render_markdown(report: AuditReport) -> str:
    s = report.summary()
    out = [
        "# trustcheck audit",
        "",
        f"Validation time {iso(report.at)}, horizon {report.horizon_days} days"
        + (f", key filter `{report.key_filter}`" if report.key_filter else "")
        + ".",
        "",
    ]
    out += _md_table(
        ["collections", "verified", "unverifiable", "keys", "signed tags", "errors", "warnings"],
        [
            [
                str(s["collections"]),
                str(s["verified"]),
                str(s["unverifiable"]),
                str(s["keys"]),
                str(s["signed_tags"]),
                str(s["findings"]["error"]),
                str(s["findings"]["warning"]),
            ]
        ],
    )
    out += ["", "## Findings", ""]
    if report.findings:
        out += _md_table(
            ["severity", "code", "collection", "role", "detail"],
            [
                [
                    f"**{f.severity}**" if f.severity == "error" else f.severity,
                    f"`{f.code}`",
                    _md(_where(f)),
                    _md(f.role or "-"),
                    _md(_detail(f)),
                ]
                for f in report.findings
            ],
        )
    else:
        out.append("No findings.")
    out += ["", "## Collections"]
    for c in report.collections:
        out += ["", f"### {_md(c.gun)}", ""]
        if c.status == "verified":
            out.append(
                f"Verified (root: {_md(c.trust_basis)}; pinned: {'yes' if c.pinned else 'no'}"
                + ("; fetched" if c.fetched else "")
                + ")."
            )
        else:
            assert c.error is not None
            out.append(f"**Unverifiable**: `{c.error.code}` {_md(c.error.message)}")
        for w in c.warnings:
            out += ["", f"> warning: {_md(w)}"]
        if c.roles:
            out += ["", "#### Roles", ""]
            out += _md_table(
                [h.lower() for h in ROLE_HEADERS],
                [[_md(x) for x in row] for row in _role_rows(c)],
            )
        if c.keys:
            out += ["", "#### Keys", ""]
            out += _md_table(
                list(KEY_HEADERS_TEXT),
                [
                    [
                        _md(k.role),
                        _md(k.key_type),
                        _md(k.algorithm),
                        _md_code(k.key_id),
                        _md_code(k.canonical_key_id),
                        _md_code(k.cert_sha256),
                        _md(k.subject_cn or "-"),
                        _md(k.issuer or "-"),
                        k.not_before or "-",
                        k.not_after or "-",
                    ]
                    for k in c.keys
                ],
            )
        if c.signers:
            out += ["", "#### Signers", ""]
            out += _md_table(
                ["signer", "role", "keys (canonical IDs)", "tags signed"],
                [
                    [
                        _md(x.name),
                        _md(x.role),
                        ", ".join(_md_code(k[:12]) for k in x.keys) or "-",
                        _md(_tag_list([t.tag for t in x.tags], None)),
                    ]
                    for x in c.signers
                ],
            )
        if c.status == "verified":
            out += ["", "#### Released tags", ""]
            if c.released:
                out += _md_table(
                    ["tag", "digest", "role", "signers"],
                    [
                        [_md(t.tag), _md_code(t.digest), _md(t.role), _md(", ".join(t.signers))]
                        for t in c.released
                    ],
                )
            else:
                out.append("None.")
    out += ["", "## Key index", ""]
    out += _md_table(
        ["canonical ID", "algorithm", "collection", "role", "threshold", "can sign"],
        [
            [
                _md_code(e.canonical_key_id),
                _md(e.algorithm),
                _md(u.gun),
                _md(u.role),
                _threshold(u.threshold, u.role_keys),
                _md(u.can_sign),
            ]
            for e in report.keys
            for u in e.uses
        ],
    )
    out += ["", "## Expiry", ""]
    out += _md_table(
        ["expires", "status", "collection", "kind", "item"],
        [
            [iso(t.expires), t.status, _md(t.gun), t.kind, _md(_timeline_label(t))]
            for t in report.timeline
        ],
    )
    sections = _signature_sections(report)
    if sections:
        out += ["", "## Notation and cosign trust material", ""]
        assert report.signatures is not None
        out += [f"- {_md(src)}" for src in report.signatures.sources]
        for title, headers, rows in sections:
            out += ["", f"### {title}", ""]
            out += _md_table([h.lower() for h in headers], [[_md(c) for c in r] for r in rows])
    return "\n".join(out) + "\n"
