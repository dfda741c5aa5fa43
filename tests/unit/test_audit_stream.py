"""A large audit is rendered and written piece by piece (issue 18, P5).

The pieces must concatenate to exactly the text the whole-document renderers
give: JSON against ``orjson.dumps(report.to_json(), OPT_INDENT_2)`` (what the
renderer was before), the table against its own lines; and the CLI writes the
same bytes to ``--output`` as it prints.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from trustcheck.audit.collect import audit
from trustcheck.audit.model import AuditReport
from trustcheck.audit.render import FORMATS, render, render_chunks
from trustcheck.audit.render import json as render_json_module

if TYPE_CHECKING:
    from conftest import CliRun

    Cli = Callable[..., CliRun]

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "generated"
AT_TEXT = (FIXTURES / "VALIDATION_TIME").read_text().strip()
AT = datetime.fromisoformat(AT_TEXT.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def report() -> AuditReport:
    from trustcheck.api import collections_for
    from trustcheck.local.trustdir import TrustDir

    td = TrustDir(FIXTURES / "trust")
    return audit(collections_for(td.list_guns(), td, AT), AT)


def _whole_json(report: AuditReport) -> str:
    return orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n"


def test_the_fixture_report_has_every_list(report: AuditReport) -> None:
    assert len(report.collections) >= 5
    assert all(items for _, items in report.json_lists())


@pytest.mark.parametrize("per_chunk", [1, 2, 3, 64])
def test_json_in_pieces_is_the_whole_document(
    report: AuditReport, per_chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render_json_module, "_ITEMS_PER_CHUNK", per_chunk)
    chunks = list(render_chunks(report, "json"))
    text = "".join(chunks)
    assert text == _whole_json(report)
    assert json.loads(text) == report.to_json()
    if per_chunk == 1:  # one piece per list item at least
        assert len(chunks) > len(report.collections) + len(report.findings)


def test_json_in_pieces_with_empty_lists(report: AuditReport) -> None:
    empty = replace(report, findings=[], keys=[], signed_tags=[], timeline=[])
    assert "".join(render_chunks(empty, "json")) == _whole_json(empty)
    nothing = replace(empty, collections=[])
    text = "".join(render_chunks(nothing, "json"))
    assert text == _whole_json(nothing)
    assert json.loads(text)["collections"] == []


def test_strings_with_escapes_and_newlines_stay_exact(report: AuditReport) -> None:
    odd = report.collections[0]
    tricky = replace(odd, warnings=["line\nbreak", 'quote " and \\ backslash', "\u2028 \x00"])
    doc = replace(report, collections=[tricky, *report.collections[1:]])
    text = "".join(render_chunks(doc, "json"))
    assert text == _whole_json(doc)
    assert json.loads(text)["collections"][0]["warnings"][0] == "line\nbreak"


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_in_pieces_is_the_whole_text(report: AuditReport, fmt: str) -> None:
    chunks = list(render_chunks(report, fmt))
    assert "".join(chunks) == render(report, fmt)
    if fmt in ("json", "table"):
        assert len(chunks) > len(report.collections)


def test_the_cli_writes_the_pieces_to_output(trustcheck_cli: Cli, tmp_path: Path) -> None:
    trust = str(FIXTURES / "trust")
    for fmt in ("json", "table"):
        out = tmp_path / f"audit.{fmt}"
        args = ["audit", "--all", "--trust-dir", trust, "--at", AT_TEXT, "--format", fmt]
        written = trustcheck_cli(*args, "--output", str(out))
        printed = trustcheck_cli(*args)
        assert written.code == printed.code
        assert out.read_text(encoding="utf-8") == printed.stdout
        if fmt == "json":
            doc: dict[str, Any] = json.loads(printed.stdout)
            assert doc["summary"]["collections"] == len(doc["collections"]) >= 5
