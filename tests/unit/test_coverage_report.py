"""The coverage report's model and renderings (pure; the end-to-end runs against a
real registry are tests/integration/test_coverage.py)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

from trustcheck.coverage.model import CoverageReport, DigestRow, RepoCoverage
from trustcheck.coverage.render import CSV_COLUMNS, render
from trustcheck.signatures.evidence import Evidence

D1, D2, D3, D4 = ("sha256:" + c * 64 for c in "1234")
HOSTILE = "v1\x1b[31m<script>alert(1)</script>\u202e"


def _ev(kind: str, digest: str, valid: bool, identity: str = "C=US, O=Acme") -> Evidence:
    return Evidence(
        kind=kind,  # type: ignore[arg-type]
        digest=digest,
        valid=valid,
        identity=identity if valid else "",
        code=None if valid else f"{kind}-signature-invalid",
        message="" if valid else "the signature does not verify",
    )


def _report() -> CoverageReport:
    repo = RepoCoverage("reg.example/team/app", dct_verified=True)
    repo.rows = [
        DigestRow(repo.gun, D1, tags=["v1"], dct_tags=["v1"], dct_roles=["targets/releases"],
                  evidence={"notation": [_ev("notation", D1, True)]}),
        DigestRow(repo.gun, D2, tags=[HOSTILE], dct_tags=["v2"], dct_roles=["targets"],
                  evidence={"notation": [_ev("notation", D2, False)]}),
        DigestRow(repo.gun, D3, tags=["v3"],
                  evidence={"cosign": [_ev("cosign", D3, True, "sha256:" + "e" * 64)]}),
        # a valid signature over ANOTHER digest does not cover this one
        DigestRow(repo.gun, D4, tags=["v4"], evidence={"notation": [_ev("notation", D1, True)]}),
    ]  # fmt: skip
    down = RepoCoverage("reg.example/team/down", registry_error="[server-error] HTTP 503")
    return CoverageReport(datetime(2026, 12, 4, tzinfo=UTC), [repo, down])


def test_statuses_and_summary() -> None:
    report = _report()
    assert [r.status for r in report.rows] == ["both", "dct-only", "no-dct", "unsigned"]
    s = report.summary()
    assert s["counts"] == {"both": 1, "dct-only": 1, "no-dct": 1, "unsigned": 1}
    assert s["dct_signed"] == 2 and s["dct_with_successor"] == 1 and s["coverage_percent"] == 50.0
    assert report.errors() == ["reg.example/team/down: [server-error] HTTP 503"]
    doc = json.loads(render(report, "json"))
    assert doc["summary"] == s and doc["repositories"][1]["registry_error"] is not None
    row = doc["repositories"][0]["digests"][1]
    assert row["signatures"][0]["code"] == "notation-signature-invalid"


def test_renderings_escape_what_the_registry_says() -> None:
    report = _report()
    table = render(report, "table")
    assert "\x1b" not in table and "\u202e" not in table and "\\u001b" in table
    assert "1 of 2 (50.0%)" in table and "registry: [server-error] HTTP 503" in table
    page = render(report, "html")
    assert "<script>" not in page and "&lt;script&gt;" in page and "\x1b" not in page
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["status"] for r in rows] == ["both", "dct-only", "no-dct", "unsigned"]
    assert rows[1]["tags"] == HOSTILE  # CSV keeps exact values, as audit's
    assert "notation: [notation-signature-invalid]" in rows[1]["problems"]
