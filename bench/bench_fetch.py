"""Fetch benchmark: 100 collections from a local notary-server (issue 5 target).

Cold cache: `trustcheck fetch` of 100 collections (one process, bounded
concurrency) against the real `notary list` run for them one after another,
each with an empty trust dir, as a ratio (target <= 0.5x). Warm cache: the same
fetch again (only timestamp.json is downloaded), as latency per collection.

Run by `make bench` (bench/run.py) or alone: `.venv/bin/python bench/bench_fetch.py`.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from fixtures.notary_harness import NotaryClient, NotaryServer  # noqa: E402

COLLECTIONS = int(os.environ.get("BENCH_FETCH_COLLECTIONS", "100"))
TAGS_PER_COLLECTION = 5
RUNS = int(os.environ.get("BENCH_FETCH_RUNS", "3"))
TRUSTCHECK = Path(sys.executable).parent / "trustcheck"


def log(msg: str) -> None:
    print(f"[bench-fetch] {msg}", file=sys.stderr, flush=True)


def _env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "NOTARY_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("TRUSTCHECK_OFFLINE", None)
    env["PYTHONPYCACHEPREFIX"] = str(REPO_ROOT / "bench" / "results" / "pycache")
    env["TRUSTCHECK_STATE_DIR"] = str(state)
    return env


def build(server: NotaryServer, work: Path) -> list[str]:
    publisher = NotaryClient.for_server(work / "publisher", server)
    guns = [f"127.0.0.1/fetch/app{i:03d}" for i in range(COLLECTIONS)]
    for n, gun in enumerate(guns, start=1):
        publisher.init(gun)
        publisher.stage_bulk(
            gun,
            (
                (f"v{t}", 1000 + t, hashlib.sha256(f"{gun}:{t}".encode()).hexdigest())
                for t in range(TAGS_PER_COLLECTION)
            ),
        )
        publisher.publish(gun)
        if n % 20 == 0:
            log(f"published {n}/{len(guns)}")
    return guns


def notary_cold(server: NotaryServer, guns: list[str], work: Path) -> float:
    start = time.perf_counter()
    for gun in guns:
        listing = NotaryClient.for_server(work / f"notary-{gun.rsplit('/', 1)[1]}", server)
        got = listing.list_targets(gun)
        if got.error is not None or len(got.rows) != TAGS_PER_COLLECTION:
            raise RuntimeError(f"notary list {gun}: {got.error or got.rows}")
    return time.perf_counter() - start


def trustcheck_fetch(server: NotaryServer, guns: list[str], trust: Path, state: Path) -> float:
    args = [
        str(TRUSTCHECK),
        "fetch",
        "--server",
        server.url,
        "--tls-ca",
        str(server.ca_cert),
        "--trust-dir",
        str(trust),
        *guns,
    ]
    start = time.perf_counter()
    done = subprocess.run(
        args, env=_env(state), capture_output=True, text=True, timeout=600, check=False
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or done.stdout.count("FETCHED") != len(guns):
        raise RuntimeError(f"trustcheck fetch failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed


def run() -> str:
    """Build, measure, and return the markdown section for docs/performance.md."""
    with tempfile.TemporaryDirectory(prefix="bench-fetch-") as tmp:
        work = Path(tmp)
        with NotaryServer(work / "server") as server:
            log(f"publishing {COLLECTIONS} collections with the real notary client")
            guns = build(server, work)
            notary_s, cold_s, warm_s = [], [], []
            for r in range(RUNS):
                log(f"run {r + 1}/{RUNS}")
                notary_s.append(notary_cold(server, guns, work / f"n{r}"))
                trust, state = work / f"tc{r}", work / f"state{r}"
                cold_s.append(trustcheck_fetch(server, guns, trust, state))
                warm_s.append(trustcheck_fetch(server, guns, trust, state))
    n, c, w = (statistics.median(x) for x in (notary_s, cold_s, warm_s))
    ratio = c / n
    verdict = "met" if ratio <= 0.5 else "**not met**"

    def row(label: str, seconds: float) -> str:
        return f"| {label} | {seconds:.2f} s | {seconds / COLLECTIONS * 1000:.0f} ms |"

    return "\n".join(
        [
            "## Fetching from a notary-server (issue 5)",
            "",
            f"{COLLECTIONS} collections ({TAGS_PER_COLLECTION} tags each) published by the real "
            "notary client to a local notary-server (TLS, memory storage); medians of "
            f"{RUNS} runs. Reproduce: `make bench` (or `.venv/bin/python bench/bench_fetch.py`).",
            "",
            "| run | wall time | per collection |",
            "|---|--:|--:|",
            row("`notary list` each, cold, one after another", n),
            row("`trustcheck fetch` all, cold (one process, concurrency 8)", c),
            row("`trustcheck fetch` all, warm (only timestamp.json)", w),
            "",
            f"Cold ratio trustcheck / notary: **{ratio:.2f}x** (target <= 0.5x: {verdict}).",
            "",
        ]
    )


if __name__ == "__main__":
    print(run())
