"""Audit benchmark: ``trustcheck audit --all`` of a trust dir with 1,000 collections (issue 7).

The trust dir is built once with the real notary client against a local
notary-server and cached under ``bench/results/`` (keyed by
:data:`DATA_VERSION` and the collection count): 10 teams, each with its own
root key (so the root keys are shared within a team, as with ``docker trust``
on one machine) and a releaser key; every third repository delegates
``targets/releases`` to the team's releaser, every tenth also has a
``targets/dev`` signer holding a tag Docker does not pull.  A fresh client
then downloads every collection (``notary list``): that cache is the input.
The audit runs at the build time (``--at``), so the cached data never
expires for it.

Measured: the whole command in a fresh process (start-up, verification of
every collection, audit, rendering), median of :data:`RUNS`, for the JSON
format (with and without worker processes), the table and HTML.  Target:
<= 10 s on the 2-core machine.

Run by ``make bench`` (bench/run.py calls :func:`run`) or alone:
``.venv/bin/python bench/bench_audit.py``.  ``BENCH_REBUILD=1`` rebuilds the
data; ``BENCH_AUDIT_COLLECTIONS`` and ``BENCH_AUDIT_RUNS`` change the size
and the number of runs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from fixtures.notary_harness import (  # noqa: E402
    HarnessError,
    NotaryClient,
    NotaryServer,
    make_delegation_key,
)

#: Bump when the build recipe changes: cached data of another version is ignored.
DATA_VERSION = "audit-v1"
COLLECTIONS = int(os.environ.get("BENCH_AUDIT_COLLECTIONS", "1000"))
TEAMS = 10
RUNS = int(os.environ.get("BENCH_AUDIT_RUNS", "3"))
WORKERS = 4
TARGET_SECONDS = 10.0
#: (label, format, extra arguments); the first is the figure compared with the target
VARIANTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("`--format json`", "json", ()),
    ("`--format json --jobs 1` (no worker processes)", "json", ("--jobs", "1")),
    ("`--format table`", "table", ()),
    ("`--format html`", "html", ()),
)

RESULTS = REPO_ROOT / "bench" / "results"
TRUSTCHECK = Path(sys.executable).parent / "trustcheck"
BUILD_TIMEOUT = 120.0


def log(msg: str) -> None:
    print(f"[bench-audit] {msg}", file=sys.stderr, flush=True)


def _target(gun: str, tag: str) -> tuple[str, int, str]:
    digest = hashlib.sha256(f"{gun}:{tag}".encode()).hexdigest()
    return tag, 500 + int(digest[:4], 16) % 3000, digest


def _gun(team: int, i: int) -> str:
    return f"127.0.0.1/audit/team{team:02d}/app{i:04d}"


def _publish_team(server: NotaryServer, work: Path, team: int, indexes: list[int]) -> list[str]:
    """One team's repositories, published by its own notary client (its own root key)."""
    pub = NotaryClient(
        work / f"team{team:02d}" / "trust", server.url, server.ca_cert, timeout=BUILD_TIMEOUT
    )
    releaser = make_delegation_key(work / "keys", f"team{team:02d}-releaser")
    dev = make_delegation_key(work / "keys", f"team{team:02d}-dev", "ecdsa")
    pub.key_import(releaser.private, "targets/releases")
    pub.key_import(dev.private, "targets/dev")
    guns = []
    for i in indexes:
        gun = _gun(team, i)
        pub.init(gun)
        if i % 3 == 0:
            pub.delegation_add(gun, "targets/releases", [releaser.public])
            pub.stage_bulk(gun, (_target(gun, f"v{t}") for t in range(3)), role="targets/releases")
            pub.stage_bulk(gun, (_target(gun, t) for t in ("latest", "stable")))
        else:
            pub.stage_bulk(gun, (_target(gun, f"v{t}") for t in range(5)))
        if i % 10 == 0:
            pub.delegation_add(gun, "targets/dev", [dev.public])
            pub.stage_bulk(gun, [_target(gun, "nightly")], role="targets/dev")
        pub.publish(gun)
        guns.append(gun)
    return guns


def _download(server: NotaryServer, trust: Path, guns: list[str]) -> None:
    """What a fresh client caches: ``notary list GUN`` into an empty trust dir."""
    client = NotaryClient(trust, server.url, server.ca_cert, timeout=BUILD_TIMEOUT)
    for gun in guns:
        listing = client.list_targets(gun)
        if listing.error is not None or not listing.rows:
            raise HarnessError(f"fresh list of {gun} failed: {listing.error}")


def build(data_dir: Path) -> dict[str, Any]:
    t0 = time.monotonic()
    per_team: dict[int, list[int]] = {t: [] for t in range(TEAMS)}
    for i in range(COLLECTIONS):
        per_team[i % TEAMS].append(i)
    with (
        tempfile.TemporaryDirectory(prefix="trustcheck-bench-audit-") as tmp,
        NotaryServer(Path(tmp) / "server") as server,
    ):
        work = Path(tmp)
        log(f"publishing {COLLECTIONS} collections ({TEAMS} teams) on {server.url}")
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            teams = list(
                pool.map(lambda t: _publish_team(server, work, t, per_team[t]), range(TEAMS))
            )
        guns = [g for team in teams for g in team]
        log(f"published in {time.monotonic() - t0:.0f}s; downloading with fresh clients")
        shards = [guns[i::WORKERS] for i in range(WORKERS)]
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            list(
                pool.map(
                    lambda n: _download(server, work / f"fresh{n}" / "trust", shards[n]),
                    range(WORKERS),
                )
            )
        built_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
        trust = data_dir / "trust"
        for n in range(WORKERS):
            shutil.copytree(work / f"fresh{n}" / "trust" / "tuf", trust / "tuf", dirs_exist_ok=True)
    seconds = round(time.monotonic() - t0, 1)
    log(f"built {len(guns)} collections in {seconds}s")
    return {
        "version": DATA_VERSION,
        "collections": len(guns),
        "built_at": built_at.isoformat(),
        "at": built_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "build_seconds": seconds,
    }


def load_or_build() -> tuple[Path, dict[str, Any]]:
    data_dir = RESULTS / f"audit-data-{DATA_VERSION}-{COLLECTIONS}"
    meta_path = data_dir / "meta.json"
    if meta_path.exists() and os.environ.get("BENCH_REBUILD") != "1":
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        if meta.get("version") == DATA_VERSION and meta.get("collections") == COLLECTIONS:
            log(f"reusing {COLLECTIONS} collections built {meta['built_at']}")
            return data_dir / "trust", meta
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    meta = build(data_dir)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return data_dir / "trust", meta


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "NOTARY_"))}
    env.pop("TRUSTCHECK_OFFLINE", None)
    env["XDG_CONFIG_HOME"] = str(home / "config")  # no pin file of the user's
    env["XDG_STATE_HOME"] = str(home / "state")
    env["PYTHONPYCACHEPREFIX"] = str(RESULTS / "pycache")
    return env


def audit_once(
    trust: Path, at: str, fmt: str, out: Path, home: Path, extra: tuple[str, ...] = ()
) -> tuple[float, int]:
    """One ``trustcheck audit --all`` in a fresh process: (wall seconds, peak RSS KiB of
    the main process)."""
    args = [
        str(TRUSTCHECK),
        "audit",
        "--all",
        "--trust-dir",
        str(trust),
        "--at",
        at,
        "--format",
        fmt,
        "--output",
        str(out),
        *extra,
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(
        args, env=_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    stderr = proc.stderr.read() if proc.stderr is not None else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"trustcheck audit failed ({proc.returncode}): {stderr[-2000:]}")
    return elapsed, int(usage.ru_maxrss)


def run() -> str:
    """Build (once), measure, and return the markdown section for docs/performance.md."""
    trust, meta = load_or_build()
    samples: dict[str, list[tuple[float, int]]] = {v[0]: [] for v in VARIANTS}
    summary: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        home = Path(tmp)
        audit_once(trust, meta["at"], "json", home / "warmup.json", home)  # page cache, .pyc
        for r in range(RUNS):
            for label, fmt, extra in VARIANTS:
                got = audit_once(trust, meta["at"], fmt, home / f"r.{fmt}", home, extra)
                samples[label].append(got)
            first = VARIANTS[0][0]
            log(f"run {r + 1}/{RUNS}: {first} {samples[first][-1][0]:.2f}s")
        doc = json.loads((home / "r.json").read_text())
        summary = doc["summary"]
    wall = {k: statistics.median(x[0] for x in v) for k, v in samples.items()}
    rss = {k: max(x[1] for x in v) for k, v in samples.items()}
    n = meta["collections"]
    figure = wall[VARIANTS[0][0]]
    verdict = "met" if figure <= TARGET_SECONDS else "**not met**"
    lines = [
        f"## Signer-key audit of {n:,} collections (issue 7)",
        "",
        f"`trustcheck audit --all` of a trust dir with {n:,} collections published by the real "
        f"notary client ({TEAMS} teams; {summary['signed_tags']:,} signed tags, "
        f"{summary['keys']:,} keys) and downloaded by a fresh client; one fresh process per run "
        f"(start-up, verification, audit, rendering), medians of {RUNS} runs on "
        f"{os.cpu_count()} CPUs. Reproduce: `make bench` (or `.venv/bin/python "
        "bench/bench_audit.py`).",
        "",
        "| run | wall time | per collection | peak RSS (main process) |",
        "|---|--:|--:|--:|",
    ]
    for label, _, _ in VARIANTS:
        lines.append(
            f"| {label} | {wall[label]:.2f} s | {wall[label] / n * 1000:.1f} ms | "
            f"{rss[label] / 1024:.0f} MiB |"
        )
    lines += [
        "",
        f"Findings: {summary['findings']['error']} errors, {summary['findings']['warning']} "
        f"warnings. Target <= {TARGET_SECONDS:.0f} s: {verdict} (**{figure:.2f} s**).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
