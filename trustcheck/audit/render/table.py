"""``table``: aligned plain text for a terminal: summary, findings, each
collection (roles, keys, signers, released tags), the key index."""

from __future__ import annotations

from collections.abc import Iterator

from trustcheck.audit.model import AuditReport
from trustcheck.audit.render.common import (
    KEY_HEADERS,
    ROLE_HEADERS,
    TABLE_TAG_LIMIT,
    _detail,
    _headline,
    _key_rows,
    _plural,
    _role_rows,
    _short,
    _signature_sections,
    _status_line,
    _table,
    _tag_list,
    _threshold,
    _where,
)
from trustcheck.text import visible

__all__ = ["render_table", "table_chunks"]


def render_table(report: AuditReport) -> str:
    return "".join(table_chunks(report))


def _lines(out: list[str]) -> str:
    return "".join(line + "\n" for line in out)


def table_chunks(report: AuditReport) -> Iterator[str]:
    """:func:`render_table` in pieces (a collection at a time)."""
    out = _headline(report)
    out.append("")
    out.append("FINDINGS")
    if report.findings:
        out += _table(
            ["SEVERITY", "CODE", "COLLECTION", "ROLE", "DETAIL"],
            [[f.severity, f.code, _where(f), f.role or "-", _detail(f)] for f in report.findings],
            "  ",
        )
    else:
        out.append("  none")
    for c in report.collections:
        yield _lines(out)
        out = ["", _status_line(c)]
        if c.warnings:
            out += [f"  warning: {visible(w)}" for w in c.warnings]
        if c.roles:
            out.append("  roles")
            out += _table(ROLE_HEADERS, _role_rows(c), "    ")
        if c.keys:
            out.append("  keys")
            out += _table(KEY_HEADERS, _key_rows(c), "    ")
        if c.signers:
            out.append("  signers")
            out += _table(
                ["SIGNER", "ROLE", "KEYS (CANONICAL IDS)", "TAGS SIGNED"],
                [
                    [
                        s.name,
                        s.role,
                        ", ".join(_short(k) for k in s.keys) or "-",
                        _tag_list([t.tag for t in s.tags], TABLE_TAG_LIMIT),
                    ]
                    for s in c.signers
                ],
                "    ",
            )
        if c.status == "verified":
            out.append(f"  released tags ({len(c.released)})")
            shown = c.released[:TABLE_TAG_LIMIT]
            if shown:
                out += _table(
                    ["TAG", "DIGEST", "ROLE", "SIGNERS"],
                    [[t.tag, t.digest, t.role, ", ".join(t.signers)] for t in shown],
                    "    ",
                )
            if len(c.released) > len(shown):
                out.append(
                    f"    … {len(c.released) - len(shown)} more "
                    "(--format json, markdown or html, or --targets-csv, list them all)"
                )
    if report.collections or report.signatures is None:  # no DCT index for trust material alone
        out += ["", f"KEY INDEX ({len(report.keys)} keys)"]
    for e in report.keys:
        if len(out) > 256:
            yield _lines(out)
            out = []
        out.append(
            f"  {e.canonical_key_id}  {e.algorithm}  "
            f"({_plural(len(e.uses), 'use')} in {_plural(len(e.guns()), 'collection')})"
        )
        out += _table(
            ["COLLECTION", "ROLE", "THRESHOLD", "CAN SIGN"],
            [[u.gun, u.role, _threshold(u.threshold, u.role_keys), u.can_sign] for u in e.uses],
            "    ",
        )
    sections = _signature_sections(report)
    if sections:
        assert report.signatures is not None
        out += ["", "NOTATION AND COSIGN TRUST MATERIAL"]
        out += [f"  from {visible(src)}" for src in report.signatures.sources]
        for title, headers, rows in sections:
            out += ["", f"  {title.lower()} ({len(rows)})"]
            out += _table(headers, rows, "    ")
    yield _lines(out)
