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

One module per format (:mod:`.table`, :mod:`.json`, :mod:`.csv`,
:mod:`.markdown`, :mod:`.html`); :mod:`.schema` holds :data:`JSON_SCHEMA`;
:mod:`.common` the helpers they share.
"""

from __future__ import annotations

from collections.abc import Iterator

from trustcheck.audit.model import AuditReport
from trustcheck.audit.render.csv import render_csv
from trustcheck.audit.render.html import render_html
from trustcheck.audit.render.json import json_chunks, render_json
from trustcheck.audit.render.markdown import render_markdown
from trustcheck.audit.render.table import render_table, table_chunks

__all__ = ["FORMATS", "render", "render_chunks"]


FORMATS = ("table", "json", "csv", "markdown", "html")


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


def render_chunks(report: AuditReport, fmt: str) -> Iterator[str]:
    """:func:`render` in pieces whose concatenation is the same text: JSON and the
    table a collection at a time (an audit of 10,000 collections is never one
    string), the other formats whole."""
    if fmt == "json":
        return json_chunks(report)
    if fmt == "table":
        return table_chunks(report)
    return iter((render(report, fmt),))
