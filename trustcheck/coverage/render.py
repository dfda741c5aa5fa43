"""The coverage report as ``table``, ``json``, ``csv`` or ``html``, in the style of
``audit`` (its table and HTML helpers: attacker-controlled text escaped, one
self-contained page without scripts)."""

from __future__ import annotations

import json

from trustcheck.audit.render.common import _plural, _short, _table
from trustcheck.core.timefmt import iso
from trustcheck.coverage.model import CoverageReport, DigestRow

__all__ = ["CSV_COLUMNS", "FORMATS", "render"]

FORMATS = ("table", "json", "csv", "html")
CSV_COLUMNS = (
    "gun",
    "digest",
    "status",
    "tags",
    "dct_tags",
    "dct_roles",
    "notation",
    "notation_signers",
    "cosign",
    "cosign_signers",
    "ready",
    "problems",
)
_WHAT = {
    "both": "DCT and Notation/cosign",
    "dct-only": "DCT only: to migrate",
    "no-dct": "Notation/cosign, no DCT predecessor",
    "unsigned": "unsigned tag",
}


def render(report: CoverageReport, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        return render_csv(report)
    if fmt == "html":
        return render_html(report)
    return render_table(report)


def _headline(report: CoverageReport) -> list[str]:
    s = report.summary()
    c = report.counts()
    pct = s["coverage_percent"]
    cover = f"{pct}%" if pct is not None else "n/a"
    return [
        f"trustcheck coverage at {iso(report.at)} ({', '.join(report.kinds)})"
        + (f", policy {report.policy}" if report.policy else ""),
        f"{_plural(len(report.repos), 'repository')}, {_plural(len(report.rows), 'digest')}: "
        f"{c['both']} both, {c['dct-only']} DCT only, {c['no-dct']} without DCT predecessor, "
        f"{c['unsigned']} unsigned",
        f"DCT-signed digests with a valid successor signature: {s['dct_with_successor']} of "
        f"{s['dct_signed']} ({cover})",
    ]


def _problems(r: DigestRow) -> str:
    out = []
    for kind in ("notation", "cosign"):
        for e in r.invalid(kind):
            if e.code not in ("notation-no-signature", "cosign-no-signatures"):
                out.append(f"{kind}: [{e.code}] {e.message}")
    if r.ready is False and r.ready_reason:
        out.append(f"policy: {r.ready_reason}")
    return "; ".join(out)


def _ready(r: DigestRow) -> str:
    return "-" if r.ready is None else "yes" if r.ready else "no"


def render_table(report: CoverageReport) -> str:
    lines = _headline(report)
    for e in report.errors():
        lines.append(f"error: {e}")
    headers = ["STATUS", "DIGEST", "TAGS", "DCT", "NOTATION", "COSIGN"]
    if report.policy:
        headers.append("READY")
    for repo in report.repos:
        c = repo.counts()
        lines += [
            "",
            f"{repo.gun}  ({c['both']} both, {c['dct-only']} DCT only, "
            f"{c['no-dct']} no DCT, {c['unsigned']} unsigned)",
        ]
        if repo.dct_error is not None:
            lines.append(f"  DCT: {repo.dct_error}")
        if repo.registry_error is not None:
            lines.append(f"  registry: {repo.registry_error}")
        if repo.tags_truncated:
            lines.append("  registry: more tags than listed (truncated)")
        rows = []
        for r in repo.rows:
            tags = ", ".join(r.tags) or "-"
            dct = ", ".join(r.dct_tags) if r.dct_tags else "no"
            row = [r.status, _short(r.digest, 19), tags, dct, r.cell("notation"), r.cell("cosign")]
            if report.policy:
                row.append(_ready(r))
            rows.append(row)
        if rows:
            lines += _table(headers, rows, indent="  ")
        else:
            lines.append("  (no digests)")
    return "\n".join(lines) + "\n"


def render_csv(report: CoverageReport) -> str:
    from trustcheck.audit.render.csv import _csv

    return _csv(
        CSV_COLUMNS,
        (
            [
                r.gun,
                r.digest,
                r.status,
                " ".join(r.tags),
                " ".join(r.dct_tags),
                " ".join(r.dct_roles),
                "yes" if r.valid("notation") else "no",
                "; ".join(r.signers("notation")),
                "yes" if r.valid("cosign") else "no",
                "; ".join(r.signers("cosign")),
                "" if r.ready is None else "yes" if r.ready else "no",
                _problems(r),
            ]
            for r in report.rows
        ),
    )


def render_html(report: CoverageReport) -> str:
    from trustcheck.audit.render.html import _CSS, _h, _hcode, _htable

    s = report.summary()
    c = report.counts()
    cards = "".join(
        f'<div class="card"><b>{_h(v)}</b>{_h(k)}</div>'
        for k, v in (
            ("repositories", s["repositories"]),
            ("digests", s["digests"]),
            ("DCT + successor", c["both"]),
            ("DCT only", c["dct-only"]),
            ("no DCT predecessor", c["no-dct"]),
            ("unsigned", c["unsigned"]),
        )
    )
    parts = [
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>trustcheck coverage {_h(iso(report.at))}</title>\n<style>{_CSS}</style>\n"
        "</head>\n<body>\n<h1>Signature migration coverage</h1>\n",
        "".join(f'<p class="meta">{_h(x)}</p>' for x in _headline(report)),
        f'<div class="cards">{cards}</div>',
    ]
    for e in report.errors():
        parts.append(f'<p class="error">{_h(e)}</p>')
    headers = ["status", "digest", "tags", "DCT", "Notation", "cosign", "ready", "problems"]
    for repo in report.repos:
        parts.append(f"<h2>{_h(repo.gun)}</h2>")
        for label, value in (("DCT", repo.dct_error), ("registry", repo.registry_error)):
            if value is not None:
                parts.append(f'<p class="warning">{_h(label)}: {_h(value)}</p>')
        rows = [
            [
                f'<span class="{"verified" if r.status == "both" else "warning"}">'
                f"{_h(_WHAT[r.status])}</span>",
                _hcode(r.digest),
                _h(", ".join(r.tags) or "-"),
                _h(", ".join(r.dct_tags) or "no"),
                _h(r.cell("notation")) + "<br>" + _h("; ".join(r.signers("notation"))),
                _h(r.cell("cosign")) + "<br>" + _h("; ".join(r.signers("cosign"))),
                _h(_ready(r)),
                _h(_problems(r)),
            ]
            for r in repo.rows
        ]
        parts.append(_htable(headers, rows))
    parts.append("</body>\n</html>\n")
    return "".join(parts)
