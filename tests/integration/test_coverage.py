"""``trustcheck coverage``: the migration coverage report (issue 19 item 4, issue 20 item 4).

A real notary-server holds DCT trust data for some tags, the real docker-registry
holds the images with Notation signatures (referrers tag schema) and cosign
signatures (``sha256-<hex>.sig``) on others (the world of test_mixed_policy.py):
DCT only, Notation only, both, cosign only, all three, and an unsigned tag.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_mixed_policy import IMAGES, SUBJECT, World, _common, build_world, online

pytestmark = pytest.mark.integration

Cli = Callable[..., Any]
__all__ = ["online"]  # the fixture, imported for these tests


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with build_world(tmp_path_factory.mktemp("coverage")) as w:
        yield w


def _trust(w: World) -> list[str]:
    return [
        "--notation-trust-policy", str(w.notation_dir / "trustpolicy.json"),
        "--notation-trust-store", str(w.notation_dir / "truststore"),
        "--cosign-key", str(w.key_file),
    ]  # fmt: skip


def _json(cli: Cli, w: World, tmp: Path, *args: str) -> tuple[int, dict[str, Any]]:
    run = cli("coverage", "--format", "json", *_common(w, tmp), *args)
    assert "Traceback" not in run.stderr
    assert run.code in (0, 1), run.stderr
    return run.code, json.loads(run.stdout)


def _by_tag(repo: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in repo["digests"]:
        for tag in row["tags"]:
            out[tag] = row
    return out


EXPECTED = {
    "dct": "dct-only",
    "notation": "no-dct",
    "both": "both",
    "neither": "unsigned",
    "cosign": "no-dct",
    "three": "both",
}


def test_coverage_of_a_mixed_registry(
    world: World, online: Path, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    w = world
    code, doc = _json(trustcheck_cli, w, tmp_path, *_trust(w), w.gun)
    assert code == 0
    (repo,) = doc["repositories"]
    assert repo["gun"] == w.gun and repo["dct_verified"] is True and repo["registry_error"] is None
    rows = _by_tag(repo)
    # every image tag once; cosign's .sig tags and the referrers indexes are not images
    assert set(rows) == set(IMAGES)
    assert len(repo["digests"]) == len(IMAGES)
    for tag, status in EXPECTED.items():
        row = rows[tag]
        assert row["digest"] == w.digests[tag]
        assert row["status"] == status, (tag, row)
        assert row["dct"]["signed"] is ("dct" in IMAGES[tag])
        assert row["notation"]["valid"] is ("notation" in IMAGES[tag])
        assert row["cosign"]["valid"] is ("cosign" in IMAGES[tag])
    assert rows["both"]["notation"]["signers"] == [SUBJECT]
    assert rows["three"]["cosign"]["signers"] == [w.key.spki_identity()]
    assert rows["dct"]["dct"]["tags"] == ["dct"] and rows["dct"]["dct"]["roles"] == ["targets"]
    summary = doc["summary"]
    assert summary["counts"] == {"both": 2, "dct-only": 1, "no-dct": 2, "unsigned": 1}
    assert summary["dct_signed"] == 3 and summary["dct_with_successor"] == 2
    assert summary["coverage_percent"] == 66.7 and doc["errors"] == []
    # CI: fail while a DCT-signed digest has no successor
    run = trustcheck_cli(
        "coverage", "--fail-on", "dct-only", *_common(w, tmp_path), *_trust(w), w.gun
    )
    assert run.code == 1 and "1 DCT only" in run.stdout
    # Notation only: cosign signatures are not looked for
    code, doc = _json(trustcheck_cli, w, tmp_path, *_trust(w), "--kinds", "notation", w.gun)
    rows = _by_tag(doc["repositories"][0])
    assert rows["cosign"]["status"] == "unsigned" and rows["three"]["status"] == "both"


def test_formats_and_all(world: World, online: Path, tmp_path: Path, trustcheck_cli: Cli) -> None:
    w = world
    run = trustcheck_cli("coverage", *_common(w, tmp_path), *_trust(w), w.gun)
    assert run.code == 0, run.stderr
    table = run.stdout
    assert "2 both, 1 DCT only, 2 without DCT predecessor, 1 unsigned" in table
    assert "DCT-signed digests with a valid successor signature: 2 of 3 (66.7%)" in table
    lines = {
        line.split()[2]: line
        for line in table.splitlines()
        if line.startswith("  ") and len(line.split()) > 3 and line.split()[0] in EXPECTED.values()
    }
    assert lines["dct"].split()[0] == "dct-only" and lines["neither"].split()[0] == "unsigned"
    # CSV: one row per digest, exact values
    out = tmp_path / "coverage.csv"
    run = trustcheck_cli(
        "coverage", "--format", "csv", "-o", str(out), *_common(w, tmp_path), *_trust(w), w.gun
    )
    assert run.code == 0 and run.stdout == "" and "wrote the coverage of 1" in run.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {r["tags"]: r["status"] for r in rows} == EXPECTED
    assert {r["tags"]: r["digest"] for r in rows} == w.digests
    # HTML: one self-contained page
    run = trustcheck_cli("coverage", "--format", "html", *_common(w, tmp_path), *_trust(w), w.gun)
    page = run.stdout
    assert run.code == 0 and page.startswith("<!doctype html>") and "<script" not in page
    assert "DCT only: to migrate" in page and w.digests["dct"] in page
    # --all: the repositories of the trust dir (filled by the runs above)
    code, doc = _json(trustcheck_cli, w, tmp_path, *_trust(w), "--all")
    assert code == 0 and [r["gun"] for r in doc["repositories"]] == [w.gun]


def test_policy_readiness_and_failures(
    world: World, online: Path, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    w = world
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    policy = w.policy(
        "cutover",
        f"""\
        any_of:
          - dct: {{}}
            until: {yesterday}
          - notation: {{trust_policy: acme-prod}}
          - cosign: {{keys: [{w.key_file}]}}
        """,
    )
    code, doc = _json(trustcheck_cli, w, tmp_path, "--policy", str(policy), w.gun)
    assert code == 0 and doc["policy"] == str(policy)
    (repo,) = doc["repositories"]
    assert repo["rule"] == "cutover"
    rows = _by_tag(repo)
    ready = {t: r["ready"] for t, r in rows.items()}
    assert ready == {
        "dct": False, "notation": True, "both": True, "neither": False, "cosign": True,
        "three": True,
    }  # fmt: skip
    assert "signature-not-found" in rows["dct"]["ready_reason"]
    # an unreachable registry costs only its repository; --fail-on error says so
    dead = "127.0.0.1:1/team/app"
    run = trustcheck_cli(
        "coverage", "--format", "json", "--fail-on", "error", "--timeout", "2", "--retries", "0",
        *_common(w, tmp_path), *_trust(w), w.gun, dead,
    )  # fmt: skip
    assert run.code == 1, run.stderr
    doc = json.loads(run.stdout)
    good, bad = doc["repositories"]
    assert good["counts"]["both"] == 2 and bad["gun"] == dead and bad["digests"] == []
    assert bad["registry_error"] is not None and "127.0.0.1:1" in bad["registry_error"]
    assert any(e.startswith(dead) for e in doc["errors"])
    # bad input is exit 2 with one line
    for args, needle in (
        (["--format", "pdf", w.gun], "--format"),
        (["--kinds", "dct", w.gun], "--kinds"),
        ([], "name the repositories"),
        (["--all", w.gun], "not both"),
        (["--cosign-key", str(tmp_path / "missing.pub"), w.gun], "cosign-config-invalid"),
        (["--notation-trust-policy", str(tmp_path / "missing.json"), w.gun], "notation"),
    ):
        run = trustcheck_cli("coverage", *_common(w, tmp_path), *args)
        assert run.code == 2, (args, run.stdout, run.stderr)
        assert needle in run.stderr and "Traceback" not in run.stderr


def test_progress_and_repositories_without_anything(
    world: World, online: Path, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    w = world
    empty = [f"{w.registry.host_port}/team/none{i}" for i in range(3)]
    run = trustcheck_cli("coverage", "--format", "json", *_common(w, tmp_path), *_trust(w),
                         w.gun, *empty)  # fmt: skip
    assert run.code == 0, run.stderr
    assert "checked the signatures of 4/4 repositories" in run.stderr
    doc = json.loads(run.stdout)
    assert [r["gun"] for r in doc["repositories"]] == [w.gun, *empty]
    for repo in doc["repositories"][1:]:
        # no trust data and no tags: nothing to report, and not an error
        assert repo["digests"] == [] and repo["registry_error"] is None
        assert repo["dct_error"].startswith("[no-trust-data]")
    assert doc["errors"] == [] and doc["summary"]["digests"] == len(IMAGES)
