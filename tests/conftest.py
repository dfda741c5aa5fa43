"""Shared fixtures: the committed trust fixtures and freshly generated ones.

* ``committed_fixtures``: ``fixtures/generated`` as committed (no server needed;
  always validate at its ``VALIDATION_TIME``).
* ``fresh_fixtures``: ``fixtures.generate.generate()`` run now into a temporary
  folder against a real notary-server (integration tests only).  Skipped
  only when the notary programs are missing; ``make test`` installs them.
* ``differential_stats``: counters the differential tests fill; printed in the
  terminal summary and written to ``<pytest basetemp>/differential-counts.json``.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # make the top-level `fixtures` package importable
    sys.path.insert(0, str(REPO_ROOT))

from fixtures.generate import FixtureSet, generate, load_fixture_set  # noqa: E402
from fixtures.notary_harness import docker_unavailable_reason, missing_notary_binaries  # noqa: E402

COMMITTED_FIXTURES = REPO_ROOT / "fixtures" / "generated"


@dataclass(frozen=True)
class CliRun:
    """One trustcheck CLI run: exit code and the two streams."""

    code: int
    stdout: str
    stderr: str


def run_trustcheck(*args: str) -> CliRun:
    """Run the trustcheck CLI in-process through its real entry point (``cli.main``,
    the one place errors become exit codes), capturing stdout and stderr."""
    from trustcheck.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return CliRun(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def trustcheck_cli() -> Callable[..., CliRun]:
    """:func:`run_trustcheck`: the trustcheck CLI in-process."""
    return run_trustcheck


@dataclass
class DifferentialStats:
    """What the differential tests compared, for the terminal summary."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    out_dir: Path | None = None

    def add(self, kind: str, repo: str, n: int) -> None:
        self.counts.setdefault(kind, {})
        self.counts[kind][repo] = self.counts[kind].get(repo, 0) + n

    def summary(self) -> dict[str, Any]:
        return {
            kind: {
                "repos": len(per_repo),
                "comparisons": sum(per_repo.values()),
                "per_repo": dict(sorted(per_repo.items())),
            }
            for kind, per_repo in sorted(self.counts.items())
        } | {"notes": self.notes}


_STATS = pytest.StashKey[DifferentialStats]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_STATS] = DifferentialStats()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    stats = config.stash.get(_STATS, None)
    if stats is None or (not stats.counts and not stats.notes):
        return
    summary = stats.summary()
    tr = terminalreporter
    tr.section("trustcheck differential comparisons")
    for kind, data in summary.items():
        if kind == "notes":
            continue
        tr.write_line(f"{kind}: {data['comparisons']} comparisons over {data['repos']} repos")
    for note in stats.notes:
        tr.write_line(f"note: {note}")
    if stats.out_dir is not None:
        path = stats.out_dir / "differential-counts.json"
        try:
            path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
            tr.write_line(f"counts written to {path}")
        except OSError as e:
            tr.write_line(f"could not write {path}: {e}")


@pytest.fixture(scope="session")
def differential_stats(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> DifferentialStats:
    stats = request.config.stash[_STATS]
    stats.out_dir = tmp_path_factory.getbasetemp()
    return stats


@pytest.fixture(scope="session")
def committed_fixtures() -> FixtureSet:
    """``fixtures/generated`` as committed: path, parsed manifest, validation time."""
    if not (COMMITTED_FIXTURES / "manifest.json").is_file():
        pytest.fail(
            f"{COMMITTED_FIXTURES}/manifest.json is missing: run "
            "`python -m fixtures.generate --out fixtures/generated` and commit the result"
        )
    return load_fixture_set(COMMITTED_FIXTURES)


@dataclass(frozen=True)
class FreshFixtures:
    """Fixtures generated at test time, plus docker's own trust cache (if docker ran)."""

    fixture_set: FixtureSet
    docker_trust_dir: Path | None
    docker_skipped_reason: str | None


@pytest.fixture(scope="session")
def fresh_fixtures(
    tmp_path_factory: pytest.TempPathFactory, differential_stats: DifferentialStats
) -> Iterator[FreshFixtures]:
    """Run the real generator now (real notary-server and client)."""
    missing = missing_notary_binaries()
    if missing:
        pytest.skip(
            "!!! REAL-SERVER TESTS SKIPPED: missing "
            + ", ".join(missing)
            + " (install with `make system-deps`, i.e. apt-get install notary); "
            "the differential comparison against the real notary client did NOT run !!!"
        )
    base = tmp_path_factory.mktemp("fresh-fixtures")
    out, docker_config = base / "generated", base / "docker-config"
    generate(out, docker_config_dir=docker_config)
    reason = docker_unavailable_reason()
    if reason is not None:
        differential_stats.notes.append(f"docker trust inspect comparison skipped: {reason}")
    yield FreshFixtures(
        fixture_set=load_fixture_set(out),
        docker_trust_dir=(docker_config / "trust") if reason is None else None,
        docker_skipped_reason=reason,
    )


@pytest.fixture(autouse=True)
def _isolated_trustcheck_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own state dir and config home (pins), so a run never
    reads or writes the user's, and tests never see each other's trusted roots."""
    home = tmp_path_factory.mktemp("tc-home")
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.delenv("TRUSTCHECK_STATE_DIR", raising=False)
    return home


@pytest.fixture(autouse=True)
def _offline_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests verify committed or freshly generated trust dirs without a server
    unless they say otherwise (tests of fetching unset this and pass --server)."""
    monkeypatch.setenv("TRUSTCHECK_OFFLINE", "1")
