"""``json``: one document following :data:`~trustcheck.audit.render.schema.JSON_SCHEMA`
(docs/audit.md); values exact."""

from __future__ import annotations

from collections.abc import Iterator

from trustcheck.audit.model import AuditReport

__all__ = ["json_chunks", "render_json"]

#: list items per chunk: a chunk of 10,000 collections' audit is never one string
_ITEMS_PER_CHUNK = 64


def render_json(report: AuditReport) -> str:
    """The JSON document, two-space indented, UTF-8 text (orjson: large audits are big)."""
    return "".join(json_chunks(report))


def json_chunks(report: AuditReport) -> Iterator[str]:
    """:func:`render_json` in pieces, item by item: the same text as
    ``orjson.dumps(report.to_json(), option=OPT_INDENT_2)`` and a newline, without
    the whole document (nor its dict tree) in memory at once.

    Each list item is dumped alone and indented two levels deeper; JSON text
    has no raw newline inside a string, so every newline is a line break.
    """
    import orjson

    indent = orjson.OPT_INDENT_2
    head = orjson.dumps(report.json_head(), option=indent)
    assert head.endswith(b"\n}")
    yield head[:-2].decode()
    for name, items in report.json_lists():
        yield ",\n  " + orjson.dumps(name).decode() + ": "
        if not items:
            yield "[]"
            continue
        yield "["
        for start in range(0, len(items), _ITEMS_PER_CHUNK):
            part = [
                b"\n    " + orjson.dumps(item.to_json(), option=indent).replace(b"\n", b"\n    ")
                for item in items[start : start + _ITEMS_PER_CHUNK]
            ]
            yield ("," if start else "") + b",".join(part).decode()
        yield "\n  ]"
    if report.signatures is not None:
        body = orjson.dumps(report.signatures.to_json(), option=indent).replace(b"\n", b"\n  ")
        yield ',\n  "signatures": ' + body.decode()
    yield "\n}\n"
