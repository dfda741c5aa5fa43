"""Fetch benchmark: 100 collections from a local notary-server (issue 5 target).

Cold cache: `trustcheck fetch` of 100 collections (one process, bounded
concurrency) against the real `notary list` run for them one after another,
each with an empty trust dir, as a ratio (target <= 0.5x; issue 18). Warm cache:
the same fetch again (only timestamp.json is downloaded), as latency per
collection. Also: the CPU time (user + system) of the client processes, which
a busy machine disturbs less than wall time, and a cold fetch of one collection
(the fixed cost of a process: start-up, TLS set-up, the ping), so the per-
collection cost can be read off.

Run by `make bench` (bench/run.py) or alone: `.venv/bin/python bench/bench_fetch.py`.
"""

from __future__ import annotations

import hashlib
import os
import resource
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


def _children_cpu() -> float:
    """User + system CPU seconds of every child reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def notary_cold(server: NotaryServer, guns: list[str], work: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of `notary list` for each GUN, one after another."""
    cpu0 = _children_cpu()
    start = time.perf_counter()
    for gun in guns:
        listing = NotaryClient.for_server(work / f"notary-{gun.rsplit('/', 1)[1]}", server)
        got = listing.list_targets(gun)
        if got.error is not None or len(got.rows) != TAGS_PER_COLLECTION:
            raise RuntimeError(f"notary list {gun}: {got.error or got.rows}")
    return time.perf_counter() - start, _children_cpu() - cpu0


def trustcheck_fetch(
    server: NotaryServer, guns: list[str], trust: Path, state: Path
) -> tuple[float, float]:
    """(wall, CPU) seconds of one `trustcheck fetch` of ``guns``."""
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
    cpu0 = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(
        args, env=_env(state), capture_output=True, text=True, timeout=600, check=False
    )
    elapsed = time.perf_counter() - start
    cpu = _children_cpu() - cpu0
    if done.returncode != 0 or done.stdout.count("FETCHED") != len(guns):
        raise RuntimeError(f"trustcheck fetch failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed, cpu


def run() -> str:
    """Build, measure, and return the markdown section for docs/performance.md."""
    with tempfile.TemporaryDirectory(prefix="bench-fetch-") as tmp:
        work = Path(tmp)
        with NotaryServer(work / "server") as server:
            log(f"publishing {COLLECTIONS} collections with the real notary client")
            guns = build(server, work)
            runs: dict[str, list[tuple[float, float]]] = {
                "notary": [],
                "cold": [],
                "warm": [],
                "one": [],
            }
            load_before = os.getloadavg()
            for r in range(RUNS):
                log(f"run {r + 1}/{RUNS}")
                runs["notary"].append(notary_cold(server, guns, work / f"n{r}"))
                trust, state = work / f"tc{r}", work / f"state{r}"
                runs["cold"].append(trustcheck_fetch(server, guns, trust, state))
                runs["warm"].append(trustcheck_fetch(server, guns, trust, state))
                runs["one"].append(
                    trustcheck_fetch(server, guns[:1], work / f"one{r}", work / f"s1-{r}")
                )
            load_after = os.getloadavg()
    load = " / ".join(", ".join(f"{x:.2f}" for x in la) for la in (load_before, load_after))
    wall = {k: statistics.median(x[0] for x in v) for k, v in runs.items()}
    cpu = {k: statistics.median(x[1] for x in v) for k, v in runs.items()}
    n, c, w = wall["notary"], wall["cold"], wall["warm"]
    ratio = c / n
    verdict = "met" if ratio <= 0.5 else "**not met**"
    per_gun = (c - wall["one"]) / max(1, COLLECTIONS - 1)

    def row(label: str, key: str, count: int = COLLECTIONS) -> str:
        return (
            f"| {label} | {wall[key]:.2f} s | {wall[key] / count * 1000:.0f} ms "
            f"| {cpu[key]:.2f} s |"
        )

    return "\n".join(
        [
            "## Fetching from a notary-server (issues 5, 18)",
            "",
            f"{COLLECTIONS} collections ({TAGS_PER_COLLECTION} tags each) published by the real "
            "notary client to a local notary-server (TLS, memory storage); medians of "
            f"{RUNS} runs; load average before / after measuring {load} (2 CPUs: a busy machine"
            " slows the 100 notary processes more than the one trustcheck process). Reproduce:"
            " `make bench` (or `.venv/bin/python bench/bench_fetch.py`).",
            "",
            "| run | wall time | per collection | CPU (user + system) |",
            "|---|--:|--:|--:|",
            row("`notary list` each, cold, one after another", "notary"),
            row("`trustcheck fetch` all, cold (one process, concurrency 8)", "cold"),
            row("`trustcheck fetch` all, warm (only timestamp.json)", "warm"),
            row("`trustcheck fetch` of one collection, cold (fixed cost of a run)", "one", 1),
            "",
            f"Cold ratio trustcheck / notary: **{ratio:.2f}x** (target <= 0.5x: {verdict});"
            f" CPU ratio {cpu['cold'] / cpu['notary']:.2f}x. Warm: {w / n:.2f}x."
            f" A run costs {wall['one'] * 1000:.0f} ms before its first collection"
            f" (start-up, TLS context, ping) and about {max(per_gun, 0.0) * 1000:.1f} ms per"
            " further collection; notary list, a process per collection,"
            f" {n / COLLECTIONS * 1000:.0f} ms each. The notary-server runs on the same"
            " 2 CPUs and its work is in every wall time.",
            "",
            "Changed for issue 18: `fetch` (and an online `verify`) parses the system CA"
            " bundle in a thread while the verifier and httpx are imported"
            " (`remote/http.py` `prewarm_tls`, same"
            " trust anchors as `ssl.create_default_context()`), httpx is imported without its"
            " own CLI (click, rich, pygments), each fetch worker thread has its own connection"
            " pool (one shared pool's lock held a third of the workers' time), and a GUN with"
            " no folder in the trust dir is not looked up there role by role.",
            "",
        ]
    )


if __name__ == "__main__":
    print(run())
