"""``json``: one document following :data:`~trustcheck.audit.render.schema.JSON_SCHEMA`
(docs/audit.md); values exact."""

from __future__ import annotations

from trustcheck.audit.model import AuditReport

__all__ = ["render_json"]


def render_json(report: AuditReport) -> str:
    """The JSON document, two-space indented, UTF-8 text (orjson: large audits are big)."""
    import orjson

    return orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n"
