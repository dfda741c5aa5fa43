"""Render an :class:`~trustcheck.audit.AuditReport`: table, JSON, CSV, Markdown, HTML.

* ``table`` -- aligned plain text for a terminal: summary, findings, each
  collection (roles, keys, signers, released tags), the key index.
* ``json`` -- one document following :data:`JSON_SCHEMA` (docs/audit.md).
* ``csv`` -- one row per finding (:data:`FINDINGS_CSV_COLUMNS`).
* ``markdown`` -- the same sections as the table, as GitHub-flavoured Markdown.
* ``html`` -- one self-contained page (inline CSS and SVG; no script, no
  external reference): findings, an expiry timeline chart, collections, keys,
  signed tags.

:func:`render_targets_csv` writes the migration list: every signed tag with
its digest and signers (:data:`TARGETS_CSV_COLUMNS`).

Text from trust data (tag names, certificate subjects) is attacker-controlled:
control and invisible characters are shown escaped (``\\u2028``) in the
table, Markdown and HTML, and HTML is escaped.  JSON and CSV keep values
exact.
"""

from __future__ import annotations

import csv
import html
import io
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from trustcheck.audit.report import FINDINGS, AuditReport, CollectionAudit, Finding, TimelineItem
from trustcheck.core.timefmt import iso

__all__ = [
    "FINDINGS_CSV_COLUMNS",
    "FORMATS",
    "JSON_SCHEMA",
    "TARGETS_CSV_COLUMNS",
    "render",
    "render_csv",
    "render_html",
    "render_json",
    "render_markdown",
    "render_table",
    "render_targets_csv",
]

FORMATS = ("table", "json", "csv", "markdown", "html")

FINDINGS_CSV_COLUMNS = (
    "severity",
    "code",
    "gun",
    "role",
    "key",
    "tag",
    "date",
    "error_code",
    "locations",
    "message",
)
TARGETS_CSV_COLUMNS = ("gun", "tag", "digest", "length", "role", "released", "signers", "image")

#: Tags listed per collection in the table before "… N more" (JSON, Markdown,
#: HTML and --targets-csv list them all).
TABLE_TAG_LIMIT = 20
#: Rows of the HTML timeline chart (the soonest expiries; the JSON has all).
TIMELINE_LIMIT = 150


def render(report: AuditReport, fmt: str) -> str:
    """The report in ``fmt`` (one of :data:`FORMATS`), ending with a newline."""
    if fmt == "table":
        return render_table(report)
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "markdown":
        return render_markdown(report)
    if fmt == "html":
        return render_html(report)
    raise ValueError(f"unknown format {fmt!r}")


# --------------------------------------------------------------------------- helpers


def _visible(text: str) -> str:
    """Control, format and line/paragraph separator characters as ``\\uXXXX``."""
    if text.isascii() and text.isprintable():
        return text
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn") and ch != " ":
            code = ord(ch)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def _width(text: str) -> int:
    total = 0
    for ch in text:
        if ch.isascii():
            total += 1
        elif unicodedata.combining(ch):
            continue
        else:
            total += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return total


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Aligned columns, two spaces apart; the last column is not padded."""
    cells = [[_visible(c) for c in row] for row in [list(headers), *rows]]
    widths = [max(_width(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for r in cells:
        parts = [c + " " * (widths[i] - _width(c)) for i, c in enumerate(r[:-1])]
        lines.append((indent + "  ".join([*parts, r[-1]])).rstrip())
    return lines


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


# --------------------------------------------------------------------------- table


def render_table(report: AuditReport) -> str:
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
        out += ["", _status_line(c)]
        if c.warnings:
            out += [f"  warning: {_visible(w)}" for w in c.warnings]
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
    out += ["", f"KEY INDEX ({len(report.keys)} keys)"]
    for e in report.keys:
        out.append(
            f"  {e.canonical_key_id}  {e.algorithm}  "
            f"({_plural(len(e.uses), 'use')} in {_plural(len(e.guns()), 'collection')})"
        )
        out += _table(
            ["COLLECTION", "ROLE", "THRESHOLD", "CAN SIGN"],
            [[u.gun, u.role, _threshold(u.threshold, u.role_keys), u.can_sign] for u in e.uses],
            "    ",
        )
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- json


def render_json(report: AuditReport) -> str:
    """The JSON document, two-space indented, UTF-8 text (orjson: large audits are big)."""
    import orjson

    return orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n"


_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}
_STR_LIST = {"type": "array", "items": {"type": "string"}}
_TIME = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"}
_TIME_OR_NULL = {
    "anyOf": [{"type": "null"}, _TIME],
}
_HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_HEX64_OR_NULL = {"anyOf": [{"type": "null"}, _HEX64]}
_DIGEST_OR_NULL = {"type": ["string", "null"], "pattern": "^sha256:[0-9a-f]{64}$"}


def _object(props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }


_FINDING = _object(
    {
        "code": {"enum": sorted(FINDINGS)},
        "severity": {"enum": ["error", "warning"]},
        "gun": _STR_OR_NULL,
        "role": _STR_OR_NULL,
        "key": _STR_OR_NULL,
        "tag": _STR_OR_NULL,
        "date": _TIME_OR_NULL,
        "error_code": _STR_OR_NULL,
        "locations": _STR_LIST,
        "message": _STR,
    }
)
_ROLE = _object(
    {
        "name": _STR,
        "status": {"enum": ["verified", "skipped", "not-in-snapshot", "not-loaded", "unverified"]},
        "parent": _STR_OR_NULL,
        "version": _INT_OR_NULL,
        "expires": _TIME_OR_NULL,
        "threshold": _INT_OR_NULL,
        "keyids": _STR_LIST,
        "signed_by": _STR_LIST,
        "paths": {"type": ["array", "null"], "items": {"type": "string"}},
        "tags": _INT_OR_NULL,
        "reason": _STR_OR_NULL,
    }
)
_KEY = _object(
    {
        "role": _STR,
        "key_type": _STR,
        "algorithm": _STR,
        "bits": _INT_OR_NULL,
        "curve": _STR_OR_NULL,
        "key_id": _HEX64_OR_NULL,
        "canonical_key_id": _HEX64_OR_NULL,
        "cert_sha256": _HEX64_OR_NULL,
        "spki_sha256": _HEX64_OR_NULL,
        "subject_cn": _STR_OR_NULL,
        "issuer": _STR_OR_NULL,
        "not_before": _TIME_OR_NULL,
        "not_after": _TIME_OR_NULL,
        "signature_algorithm": _STR_OR_NULL,
    }
)
_TAGREF = _object({"tag": _STR, "digest": _DIGEST_OR_NULL})
_SIGNER = _object(
    {"role": _STR, "name": _STR, "keys": _STR_LIST, "tags": {"type": "array", "items": _TAGREF}}
)
_RELEASED = _object(
    {
        "tag": _STR,
        "digest": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
        "length": {"type": "integer"},
        "role": {"enum": ["targets/releases", "targets"]},
        "signers": _STR_LIST,
    }
)
_UNRELEASED = _object(
    {"tag": _STR, "digest": _DIGEST_OR_NULL, "length": {"type": "integer"}, "role": _STR}
)
_ERROR = _object({"code": _STR, "message": _STR, "role": _STR_OR_NULL})
_COLLECTION = _object(
    {
        "gun": _STR,
        "status": {"enum": ["verified", "unverifiable"]},
        "error": {"anyOf": [{"type": "null"}, _ERROR]},
        "trust_basis": _STR_OR_NULL,
        "pinned": {"type": "boolean"},
        "fetched": {"type": "boolean"},
        "warnings": _STR_LIST,
        "roles": {"type": "array", "items": _ROLE},
        "keys": {"type": "array", "items": _KEY},
        "signers": {"type": "array", "items": _SIGNER},
        "released_tags": {"type": "array", "items": _RELEASED},
        "unreleased_tags": {"type": "array", "items": _UNRELEASED},
        "findings": {"type": "array", "items": _FINDING},
    }
)
_USE = _object(
    {
        "gun": _STR,
        "role": _STR,
        "key_id": _STR_OR_NULL,
        "threshold": _INT_OR_NULL,
        "role_keys": {"type": "integer"},
        "paths": {"type": ["array", "null"], "items": {"type": "string"}},
        "can_sign": _STR,
        "tags": _INT_OR_NULL,
    }
)
_INDEX = _object(
    {
        "canonical_key_id": _STR,
        "algorithm": _STR,
        "key_types": _STR_LIST,
        "key_ids": _STR_LIST,
        "cert_sha256": _STR_LIST,
        "spki_sha256": _HEX64_OR_NULL,
        "collections": {"type": "integer"},
        "uses": {"type": "array", "items": _USE},
    }
)
_SIGNED_TAG = _object(
    {
        "gun": _STR,
        "tag": _STR,
        "digest": _DIGEST_OR_NULL,
        "length": {"type": "integer"},
        "role": _STR,
        "released": {"type": "boolean"},
        "signers": _STR_LIST,
    }
)
_TIMELINE = _object(
    {
        "gun": _STR,
        "kind": {"enum": ["certificate", "metadata"]},
        "label": _STR,
        "roles": _STR_LIST,
        "expires": _TIME,
        "status": {"enum": ["expired", "expiring", "ok"]},
        "cert_sha256": _HEX64_OR_NULL,
    }
)

#: JSON Schema (draft 2020-12) of ``--format json``; printed in docs/audit.md.
JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "trustcheck audit report",
    **_object(
        {
            "schema": {"const": "trustcheck-audit/1"},
            "trustcheck_version": {"type": "string"},
            "at": _TIME,
            "horizon_days": {"type": "integer", "minimum": 0},
            "key_filter": _STR_OR_NULL,
            "summary": _object(
                {
                    "collections": {"type": "integer"},
                    "verified": {"type": "integer"},
                    "unverifiable": {"type": "integer"},
                    "keys": {"type": "integer"},
                    "signed_tags": {"type": "integer"},
                    "released_tags": {"type": "integer"},
                    "findings": _object(
                        {"error": {"type": "integer"}, "warning": {"type": "integer"}}
                    ),
                }
            ),
            "findings": {"type": "array", "items": _FINDING},
            "collections": {"type": "array", "items": _COLLECTION},
            "keys": {"type": "array", "items": _INDEX},
            "signed_tags": {"type": "array", "items": _SIGNED_TAG},
            "timeline": {"type": "array", "items": _TIMELINE},
        }
    ),
}


# --------------------------------------------------------------------------- csv


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def render_csv(report: AuditReport) -> str:
    """One row per finding; ``locations`` joined with ``; ``."""
    return _csv(
        FINDINGS_CSV_COLUMNS,
        (
            [
                f.severity,
                f.code,
                f.gun or "",
                f.role or "",
                f.key or "",
                f.tag or "",
                f.date or "",
                f.error_code or "",
                "; ".join(f.locations),
                f.message,
            ]
            for f in report.findings
        ),
    )


def render_targets_csv(report: AuditReport) -> str:
    """Every signed tag: ``gun,tag,digest,length,role,released,signers,image``.

    ``signers`` joined with ``;``; ``image`` is ``GUN@DIGEST``, the reference to
    re-sign (``cosign sign``, ``notation sign``).  ``released`` is ``false`` for
    tags Docker does not pull (only in other delegations).
    """
    return _csv(
        TARGETS_CSV_COLUMNS,
        (
            [
                t.gun,
                t.tag,
                t.digest or "",
                t.length,
                t.role,
                "true" if t.released else "false",
                ";".join(t.signers),
                f"{t.gun}@{t.digest}" if t.digest else "",
            ]
            for t in report.signed_tags
        ),
    )


# --------------------------------------------------------------------------- markdown


def _md(value: object) -> str:
    text = _visible(str(value))
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
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- html

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem;color:#1d2330;
background:#fff;line-height:1.4}
h1{margin:0 0 .3rem}h2{margin-top:2.2rem;border-bottom:1px solid #d8dde6;padding-bottom:.2rem}
h3{margin:1.4rem 0 .4rem}
.meta{color:#5a6476}
.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
.card{border:1px solid #d8dde6;border-radius:6px;padding:.5rem .9rem;min-width:7rem}
.card b{display:block;font-size:1.5rem}
table{border-collapse:collapse;margin:.4rem 0 1rem;font-size:.88rem}
th,td{border:1px solid #d8dde6;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f2f4f8}
code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.82rem;white-space:nowrap}
code.id{white-space:normal;word-break:break-all}
.error{color:#b3261e;font-weight:600}.warning{color:#9a5b00;font-weight:600}
.verified{color:#1e7b45;font-weight:600}.unverifiable{color:#b3261e;font-weight:600}
details{margin:.6rem 0;border:1px solid #d8dde6;border-radius:6px;padding:.4rem .8rem}
summary{cursor:pointer;font-weight:600}
svg text{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:11px}
.note{color:#5a6476;font-size:.85rem}
"""

_COLORS = {"expired": "#c0392b", "expiring": "#e08e0b", "ok": "#2e8b57"}


def _h(value: object) -> str:
    return html.escape(_visible(str(value)), quote=True)


def _hcode(value: str | None) -> str:
    return f'<code class="id">{_h(value)}</code>' if value else "-"


def _htable(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{_h(x)}</th>" for x in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _timeline_label(t: TimelineItem) -> str:
    if t.kind == "certificate":
        return f"{t.label} ({', '.join(t.roles)})"
    return f"{t.label} metadata"


def _ticks(start: datetime, end: datetime) -> list[datetime]:
    span = (end - start).days
    if span > 3 * 365:
        step_years = max(1, span // 365 // 8)
        years = range(start.year + 1, end.year + 1, step_years)
        return [datetime(y, 1, 1, tzinfo=UTC) for y in years]
    out: list[datetime] = []
    y, m = start.year, start.month
    step = 1 if span <= 200 else 3 if span <= 730 else 6
    while True:
        m += step
        while m > 12:
            m -= 12
            y += 1
        t = datetime(y, m, 1, tzinfo=UTC)
        if t > end:
            return out
        out.append(t)


def timeline_svg(report: AuditReport) -> str:
    """The expiry timeline as inline SVG (no namespace needed inside HTML5)."""
    items = report.timeline[:TIMELINE_LIMIT]
    at = report.at.astimezone(UTC)
    horizon_end = at + report.horizon
    if not items:
        return '<p class="note">Nothing with an expiry date.</p>'
    start = min([at - timedelta(days=30), *(t.expires for t in items)])
    end = max([horizon_end + timedelta(days=30), *(t.expires for t in items)])
    label_w, chart_w, row_h, top = 420, 560, 18, 34
    width = label_w + chart_w + 150
    height = top + row_h * len(items) + 12
    total = (end - start).total_seconds() or 1.0

    def x(t: datetime) -> float:
        return label_w + chart_w * (t - start).total_seconds() / total

    parts = [
        f'<svg role="img" aria-label="expiry timeline" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f"<title>Expiry timeline: {len(items)} certificates and metadata, "
        f"validation time {iso(at)}</title>",
        f'<rect x="{x(at):.1f}" y="{top - 6}" width="{x(horizon_end) - x(at):.1f}" '
        f'height="{height - top}" fill="#fff4e0"/>',
    ]
    for tick in _ticks(start, end):
        tx = x(tick)
        label = tick.strftime("%Y") if tick.month == 1 else tick.strftime("%Y-%m")
        parts.append(
            f'<line x1="{tx:.1f}" y1="{top - 6}" x2="{tx:.1f}" y2="{height}" stroke="#e6e9ef"/>'
            f'<text x="{tx:.1f}" y="{top - 10}" text-anchor="middle" fill="#5a6476">{label}</text>'
        )
    for i, t in enumerate(items):
        y = top + i * row_h
        color = _COLORS[t.status]
        x0, x1 = (x(at), x(t.expires)) if t.expires >= at else (x(t.expires), x(at))
        name = f"{t.gun} · {_timeline_label(t)}"
        shown = name if len(name) <= 60 else name[:59] + "…"
        parts.append(
            f"<g><title>{_h(name)}: {t.status}, expires {iso(t.expires)}</title>"
            f'<text x="{label_w - 8}" y="{y + 12}" text-anchor="end">{_h(shown)}</text>'
            f'<rect x="{x0:.1f}" y="{y + 3}" width="{max(x1 - x0, 1.5):.1f}" height="{row_h - 6}" '
            f'rx="2" fill="{color}"/>'
            f'<text x="{max(x0, x1) + 6:.1f}" y="{y + 12}" fill="{color}">'
            f"{t.expires.strftime('%Y-%m-%d')}</text></g>"
        )
    for when, label, dx, anchor in (
        (at, "now", -3, "end"),
        (horizon_end, f"+{report.horizon_days}d", 3, "start"),
    ):
        parts.append(
            f'<line x1="{x(when):.1f}" y1="{top - 6}" x2="{x(when):.1f}" y2="{height}" '
            f'stroke="#1d2330" stroke-dasharray="3,3"/>'
            f'<text x="{x(when) + dx:.1f}" y="{height - 2}" text-anchor="{anchor}" '
            f'fill="#1d2330">{label}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: AuditReport) -> str:
    s = report.summary()
    title = f"trustcheck audit at {iso(report.at)}"
    body: list[str] = [
        f'<h1>Signer-key audit</h1><p class="meta">Validation time {_h(iso(report.at))}, '
        f"horizon {report.horizon_days} days"
        + (f", key filter <code>{_h(report.key_filter)}</code>" if report.key_filter else "")
        + ". Made by trustcheck from verified Notary v1 trust data.</p>",
        '<div class="cards">'
        + "".join(
            f'<div class="card"><b>{v}</b>{_h(k)}</div>'
            for k, v in (
                ("collections", s["collections"]),
                ("verified", s["verified"]),
                ("unverifiable", s["unverifiable"]),
                ("keys", s["keys"]),
                ("signed tags", s["signed_tags"]),
                ("errors", s["findings"]["error"]),
                ("warnings", s["findings"]["warning"]),
            )
        )
        + "</div>",
        '<h2 id="findings">Findings</h2>',
    ]
    if report.findings:
        body.append(
            _htable(
                ["severity", "code", "collection", "role", "detail"],
                [
                    [
                        f'<span class="{f.severity}">{f.severity}</span>',
                        f"<code>{_h(f.code)}</code>",
                        _h(_where(f)),
                        _h(f.role or "-"),
                        _h(_detail(f)),
                    ]
                    for f in report.findings
                ],
            )
        )
    else:
        body.append("<p>No findings.</p>")
    body.append('<h2 id="timeline">Expiry timeline</h2>')
    body.append(
        '<p class="note">Certificates and role metadata (timestamps excluded: the server '
        "re-signs them), soonest first; the shaded band is the horizon. "
        + " ".join(
            f'<span style="color:{_COLORS[k]}">&#9632;</span> {label}'
            for k, label in (
                ("expired", "expired"),
                ("expiring", "expires within the horizon"),
                ("ok", "later"),
            )
        )
        + "</p>"
    )
    body.append(timeline_svg(report))
    if len(report.timeline) > TIMELINE_LIMIT:
        body.append(
            f'<p class="note">… {len(report.timeline) - TIMELINE_LIMIT} later expiries are not '
            "drawn (the JSON report lists them all).</p>"
        )
    body.append('<h2 id="collections">Collections</h2>')
    for c in report.collections:
        status = (
            '<span class="verified">verified</span>'
            if c.status == "verified"
            else '<span class="unverifiable">unverifiable</span>'
        )
        n = len(c.findings)
        parts = [f"<details><summary>{_h(c.gun)} — {status} — {_plural(n, 'finding')}</summary>"]
        if c.status == "verified":
            parts.append(
                f"<p>Root: {_h(c.trust_basis)}; pinned: {'yes' if c.pinned else 'no'}"
                + ("; fetched" if c.fetched else "")
                + ".</p>"
            )
        else:
            assert c.error is not None
            parts.append(
                f'<p class="unverifiable"><code>{_h(c.error.code)}</code> {_h(c.error.message)}</p>'
            )
        parts += [f'<p class="warning">warning: {_h(w)}</p>' for w in c.warnings]
        if c.roles:
            parts.append("<h3>Roles</h3>")
            parts.append(
                _htable(
                    [h.lower() for h in ROLE_HEADERS],
                    [[_h(x) for x in row] for row in _role_rows(c)],
                )
            )
        if c.keys:
            parts.append("<h3>Keys</h3>")
            parts.append(
                _htable(
                    list(KEY_HEADERS_TEXT),
                    [
                        [
                            _h(k.role),
                            _h(k.key_type),
                            _h(k.algorithm),
                            _hcode(k.key_id),
                            _hcode(k.canonical_key_id),
                            _hcode(k.cert_sha256),
                            _h(k.subject_cn or "-"),
                            _h(k.issuer or "-"),
                            _h(k.not_before or "-"),
                            _h(k.not_after or "-"),
                        ]
                        for k in c.keys
                    ],
                )
            )
        if c.signers:
            parts.append("<h3>Signers</h3>")
            parts.append(
                _htable(
                    ["signer", "role", "keys (canonical IDs)", "tags signed"],
                    [
                        [
                            _h(x.name),
                            _h(x.role),
                            ", ".join(_hcode(k[:12]) for k in x.keys) or "-",
                            _h(_tag_list([t.tag for t in x.tags], None)),
                        ]
                        for x in c.signers
                    ],
                )
            )
        if c.released:
            parts.append("<h3>Released tags</h3>")
            parts.append(
                _htable(
                    ["tag", "digest", "role", "signers"],
                    [
                        [_h(t.tag), _hcode(t.digest), _h(t.role), _h(", ".join(t.signers))]
                        for t in c.released
                    ],
                )
            )
        parts.append("</details>")
        body.append("".join(parts))
    body.append('<h2 id="keys">Keys: what each key lets its holder sign</h2>')
    body.append(
        _htable(
            ["canonical ID", "algorithm", "collection", "role", "threshold", "can sign"],
            [
                [
                    _hcode(e.canonical_key_id),
                    _h(e.algorithm),
                    _h(u.gun),
                    _h(u.role),
                    _h(_threshold(u.threshold, u.role_keys)),
                    _h(u.can_sign),
                ]
                for e in report.keys
                for u in e.uses
            ],
        )
    )
    body.append('<h2 id="tags">Signed tags</h2>')
    body.append(
        _htable(
            ["collection", "tag", "digest", "role", "released", "signers"],
            [
                [
                    _h(t.gun),
                    _h(t.tag),
                    _hcode(t.digest),
                    _h(t.role),
                    "yes" if t.released else '<span class="warning">no</span>',
                    _h(", ".join(t.signers)),
                ]
                for t in report.signed_tags
            ],
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_h(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
