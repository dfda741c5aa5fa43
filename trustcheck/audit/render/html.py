"""``html``: one self-contained page (inline CSS and SVG; no script, no external
reference): findings, an expiry timeline chart, collections, keys, signed tags."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from trustcheck.audit.model import AuditReport
from trustcheck.audit.render.common import (
    KEY_HEADERS_TEXT,
    ROLE_HEADERS,
    TIMELINE_LIMIT,
    _detail,
    _plural,
    _role_rows,
    _signature_sections,
    _tag_list,
    _threshold,
    _timeline_label,
    _where,
)
from trustcheck.core.timefmt import iso
from trustcheck.text import visible

__all__ = ["render_html", "timeline_svg"]


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
    return html.escape(visible(str(value)), quote=True)


def _hcode(value: str | None) -> str:
    return f'<code class="id">{_h(value)}</code>' if value else "-"


def _htable(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{_h(x)}</th>" for x in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


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
    sections = _signature_sections(report)
    if sections:
        assert report.signatures is not None
        body.append('<h2 id="signatures">Notation and cosign trust material</h2>')
        body.append(
            "<ul>" + "".join(f"<li>{_h(src)}</li>" for src in report.signatures.sources) + "</ul>"
        )
        for title, headers, rows in sections:
            body.append(f"<h3>{_h(title)}</h3>")
            body.append(_htable([h.lower() for h in headers], [[_h(c) for c in r] for r in rows]))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_h(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
