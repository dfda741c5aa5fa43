"""Benchmark ``trustcheck verify`` against the real notary client, offline.

    make bench            (= .venv/bin/python bench/run.py)

1. Builds two repositories with the real ``notary`` client against a real
   ``notary-server`` (memory storage, TLS on 127.0.0.1): a large one (50,000
   targets in ``targets`` plus 20 delegations ``targets/d00``..``targets/d19``)
   and a small one (a handful of tags).  A *fresh* client then downloads both
   (``notary list GUN``) into an empty trust dir: that cache is the input.
   The cache is kept under ``bench/results/`` keyed by :data:`DATA_VERSION` and
   rebuilt when it is older than :data:`MAX_DATA_AGE` (the server-signed
   timestamp lasts 14 days and the real client judges it at "now").
2. Runs each command :data:`RUNS` times (after one warm-up run), round-robin,
   and reports median wall time and median peak RSS (``ru_maxrss`` of the
   child from ``wait4``).
3. Profiles one ``trustcheck verify`` on the large repository with cProfile.

Prints a markdown report and writes it to ``docs/performance.md``.
Environment: ``BENCH_RUNS`` (default 7), ``BENCH_REBUILD=1`` forces a rebuild.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import importlib.metadata
import json
import os
import platform
import pstats
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # make the top-level `fixtures` package importable
    sys.path.insert(0, str(REPO_ROOT))

import startup  # noqa: E402  (bench/startup.py: the issue 18 start-up rows and profile)

from fixtures.notary_harness import (  # noqa: E402
    OFFLINE_SERVER,
    HarnessError,
    NotaryClient,
    NotaryServer,
    copy_trust_dir,
    make_delegation_key,
    missing_notary_binaries,
    notary_env,
    parse_list_output,
    run_command,
)

#: Bump when the build recipe below changes: cached data of another version is ignored.
DATA_VERSION = "v1-50000t-20d-50each-5small"
LARGE_GUN = "127.0.0.1/bench-large"
SMALL_GUN = "127.0.0.1/bench-small"
LARGE_TARGETS = 50_000
DELEGATIONS = 20
PER_DELEGATION = 50
LARGE_TAG = "t37777"  # a tag in `targets`, the role Docker resolves it from
SMALL_TAGS = ("v1", "v2", "v3", "stable", "latest")
SMALL_TAG = "v2"

RUNS = int(os.environ.get("BENCH_RUNS", "7"))
MAX_DATA_AGE = dt.timedelta(days=10)
RUN_TIMEOUT = 120.0
BUILD_TIMEOUT = 300.0

RESULTS = REPO_ROOT / "bench" / "results"
DOC = Path(os.environ.get("BENCH_OUT") or REPO_ROOT / "docs" / "performance.md")
VENV_BIN = Path(sys.executable).parent
TRUSTCHECK = VENV_BIN / "trustcheck"

GNU_TIME = "/usr/bin/time"
TARGETS = {"wall": 0.25, "rss": 0.5, "cold": 1.2}
#: further benchmark modules in bench/, each with run() -> markdown section
EXTRA_BENCHMARKS = ("bench_fetch", "bench_audit", "bench_limits", "bench_webhook")
#: BENCH_EXTRA=bench_fetch,... runs only those (empty: none); BENCH_OUT=FILE writes the
#: report there instead of docs/performance.md (a partial run must not replace the page)
SELECTED_EXTRAS = tuple(
    x for x in os.environ.get("BENCH_EXTRA", ",".join(EXTRA_BENCHMARKS)).split(",") if x
)


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fake_target(gun: str, name: str) -> tuple[str, int, str]:
    """A deterministic (name, size, sha256 hex) for a target that has no real manifest."""
    digest = hashlib.sha256(f"{gun}:{name}".encode()).hexdigest()
    return name, 500 + int(digest[:4], 16) % 3000, digest


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Dataset:
    trust_dir: Path  # pristine fresh-client cache (tuf/ only)
    at: str  # validation time (RFC 3339) == build time
    built_at: dt.datetime
    meta: dict[str, Any]


def load_or_build() -> Dataset:
    data_dir = RESULTS / f"data-{DATA_VERSION}"
    meta_path = data_dir / "meta.json"
    if meta_path.exists() and os.environ.get("BENCH_REBUILD") != "1":
        meta = json.loads(meta_path.read_text())
        built = dt.datetime.fromisoformat(meta["built_at"])
        age = dt.datetime.now(dt.UTC) - built
        if meta.get("version") == DATA_VERSION and age < MAX_DATA_AGE:
            log(f"reusing data built {meta['built_at']} ({age.total_seconds() / 3600:.1f} h ago)")
            return Dataset(data_dir / "fresh", meta["at"], built, meta)
        log(f"cached data too old or stale ({age}); rebuilding")
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    meta = build(data_dir)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return Dataset(
        data_dir / "fresh", meta["at"], dt.datetime.fromisoformat(meta["built_at"]), meta
    )


def build(data_dir: Path) -> dict[str, Any]:
    t0 = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="trustcheck-bench-") as tmp,
        NotaryServer(Path(tmp) / "server") as server,
    ):
        work = Path(tmp)
        log(f"notary-server on {server.url}")
        pub = NotaryClient(work / "publisher", server.url, server.ca_cert, timeout=BUILD_TIMEOUT)

        # (a) large: 50,000 targets in `targets`, 20 delegations with some targets each.
        pub.init_and_publish(LARGE_GUN)
        for i in range(DELEGATIONS):
            role = f"targets/d{i:02d}"
            key = make_delegation_key(work / "keys", f"d{i:02d}")
            pub.key_import(key.private, role)
            pub.delegation_add(LARGE_GUN, role, [key.public])
        staged = pub.stage_bulk(
            LARGE_GUN, (fake_target(LARGE_GUN, f"t{i:05d}") for i in range(LARGE_TARGETS))
        )
        for i in range(DELEGATIONS):
            staged += pub.stage_bulk(
                LARGE_GUN,
                (fake_target(LARGE_GUN, f"d{i:02d}-t{j:03d}") for j in range(PER_DELEGATION)),
                role=f"targets/d{i:02d}",
            )
        t1 = time.monotonic()
        pub.publish(LARGE_GUN)
        log(f"published {staged} targets to {LARGE_GUN} in {time.monotonic() - t1:.1f}s")

        # (b) small: a handful of tags, through the ordinary CLI.
        pub.init_and_publish(SMALL_GUN)
        for tag in SMALL_TAGS:
            name, size, hexd = fake_target(SMALL_GUN, tag)
            pub.addhash(SMALL_GUN, name, size, hexd)
        pub.publish(SMALL_GUN)

        # What a fresh client caches: `notary -d FRESH -s URL list GUN`.
        fresh = NotaryClient(work / "fresh", server.url, server.ca_cert, timeout=BUILD_TIMEOUT)
        counts: dict[str, int] = {}
        for gun, want in (
            (LARGE_GUN, LARGE_TARGETS + DELEGATIONS * PER_DELEGATION),
            (SMALL_GUN, len(SMALL_TAGS)),
        ):
            listing = fresh.list_targets(gun)
            if listing.error is not None or len(listing.rows) != want:
                raise HarnessError(
                    f"fresh list of {gun}: {len(listing.rows)} rows (want {want}), "
                    f"error {listing.error}"
                )
            counts[gun] = len(listing.rows)
        built_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
        copy_trust_dir(fresh.trust_dir, data_dir / "fresh")
    files = sorted((data_dir / "fresh" / "tuf").rglob("*.json"))
    sizes = {
        str(p.relative_to(data_dir / "fresh" / "tuf")): p.stat().st_size
        for p in files
        if p.stat().st_size > 100_000
    }
    log(f"built data in {time.monotonic() - t0:.1f}s")
    return {
        "version": DATA_VERSION,
        "built_at": built_at.isoformat(),
        "at": rfc3339(built_at),
        "build_seconds": round(time.monotonic() - t0, 1),
        "rows": counts,
        "metadata_files": len(files),
        "metadata_bytes": sum(p.stat().st_size for p in files),
        "large_files": sizes,
    }


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Run:
    wall: float  # seconds
    rss_kib: int
    returncode: int
    stdout: str
    stderr: str
    cpu: float = 0.0  # user + system seconds of the program (and GNU time, ~1 ms)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_measured(
    argv: Sequence[str | os.PathLike[str]], env: Mapping[str, str], timeout: float = RUN_TIMEOUT
) -> Run:
    """Run one program under GNU time; wall time from this process, peak RSS from time.

    Why not ``wait4`` here: Linux carries the parent's RSS high-water mark into
    the child's ``ru_maxrss`` across fork/exec, so every child of this (large)
    Python process would report at least its size.  ``/usr/bin/time`` is a
    small parent, and measures exactly the program it execs.
    """
    with (
        tempfile.TemporaryDirectory(prefix="trustcheck-run-") as tmp,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        rss_file = Path(tmp) / "rss"
        cpu0 = _children_cpu()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [GNU_TIME, "-f", "%M", "-o", str(rss_file), "--", *(os.fspath(a) for a in argv)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=dict(env),
            start_new_session=True,  # a timeout kills time and the program it runs
        )
        lock = threading.Lock()
        finished = False
        timed_out = False

        def kill() -> None:
            nonlocal timed_out
            with lock:
                if not finished:  # time is alive or an unreaped zombie: the group is ours
                    timed_out = True
                    os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            # Block (no polling latency) until time exits, without reaping it yet.
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            wall = time.perf_counter() - t0
            with lock:
                finished = True
        finally:
            timer.cancel()
        proc.wait(timeout=10)
        cpu = _children_cpu() - cpu0  # time's rusage includes the program it waited for
        if timed_out:
            raise HarnessError(f"timed out after {timeout:g}s: {' '.join(map(str, argv))}")
        # GNU time writes "Command exited with non-zero status N" before the format.
        rss_lines = rss_file.read_text().strip().splitlines()
        out.seek(0)
        err.seek(0)
        return Run(
            wall,
            int(rss_lines[-1]),
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            cpu,
        )


@dataclass
class Workload:
    key: str
    label: str
    argv: list[str]
    env: dict[str, str]
    check: Callable[[Run], None]
    runs: list[Run]

    @property
    def wall_ms(self) -> float:
        return statistics.median(r.wall for r in self.runs) * 1000

    @property
    def wall_min_ms(self) -> float:
        return min(r.wall for r in self.runs) * 1000

    @property
    def cpu_ms(self) -> float:
        return statistics.median(r.cpu for r in self.runs) * 1000

    @property
    def rss_mib(self) -> float:
        return statistics.median(r.rss_kib for r in self.runs) / 1024


def inherited_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "NOTARY_"))}


def trustcheck_env() -> dict[str, str]:
    """Python with a working bytecode cache, as after a normal install.

    PYTHONDONTWRITEBYTECODE (set in some sandboxes) would make every run compile
    trustcheck's own modules from source; a private PYTHONPYCACHEPREFIX keeps the
    cached bytecode out of the source tree.
    """
    env = inherited_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(RESULTS / "pycache")
    env["TRUSTCHECK_STATE_DIR"] = str(RESULTS / "state")  # not the user's state
    return env


def trustcheck_digest(run: Run) -> str:
    if run.returncode != 0:
        raise HarnessError(f"trustcheck exit {run.returncode}: {run.stderr.strip()}")
    results = json.loads(run.stdout)["results"]
    if len(results) != 1 or not results[0]["trusted"]:
        raise HarnessError(f"trustcheck did not trust the image: {run.stdout}")
    return str(results[0]["digest"])


def notary_lookup_digest(run: Run, tag: str) -> str:
    """``NAME sha256:HEX SIZE`` (notary 0.7.0 may print it on stdout or stderr)."""
    if run.returncode != 0:
        raise HarnessError(f"offline notary lookup exit {run.returncode}: {run.stdout}{run.stderr}")
    for line in (run.stdout + "\n" + run.stderr).splitlines():
        parts = line.strip().split(" ")
        if len(parts) == 3 and parts[0] == tag and parts[1].startswith("sha256:"):
            return parts[1]
    raise HarnessError(f"no lookup answer for {tag!r} in: {run.stdout!r} {run.stderr!r}")


def workloads(trust_dir: Path, at: str, cfg: Path, work: Path) -> list[Workload]:
    tc_env = trustcheck_env()
    # trustcheck uses orjson when it can import it (an optional, undeclared speed-up):
    # a stub that raises ImportError, first on sys.path, shows the pure-Python path.
    stub = work / "no-orjson"
    stub.mkdir(exist_ok=True)
    (stub / "orjson.py").write_text('raise ImportError("orjson hidden by bench/run.py")\n')
    no_orjson_env = {**tc_env, "PYTHONPATH": str(stub)}
    n_env = notary_env()
    notary = ["/usr/bin/notary", "-c", str(cfg), "-d", str(trust_dir), "-s", OFFLINE_SERVER]
    expected: dict[str, str] = {}

    def tc_check(tag: str) -> Callable[[Run], None]:
        def check(run: Run) -> None:
            got = trustcheck_digest(run)
            want = expected.setdefault(tag, got)
            if got != want:
                raise HarnessError(f"trustcheck digest {got} != notary {want} for {tag}")

        return check

    def lookup_check(tag: str) -> Callable[[Run], None]:
        def check(run: Run) -> None:
            got = notary_lookup_digest(run, tag)
            want = expected.setdefault(tag, got)
            if got != want:
                raise HarnessError(f"notary digest {got} != trustcheck {want} for {tag}")

        return check

    def list_check(rows: int) -> Callable[[Run], None]:
        def check(run: Run) -> None:
            if run.returncode != 0:
                raise HarnessError(f"offline notary list exit {run.returncode}: {run.stdout}")
            got = len(parse_list_output(run.stdout))
            if got != rows:
                raise HarnessError(f"offline notary list: {got} rows, want {rows}")

        return check

    def ok(run: Run) -> None:
        if run.returncode != 0:
            raise HarnessError(f"exit {run.returncode}: {run.stderr}")

    out: list[Workload] = []
    for size, gun, tag, rows in (
        ("large", LARGE_GUN, LARGE_TAG, LARGE_TARGETS + DELEGATIONS * PER_DELEGATION),
        ("small", SMALL_GUN, SMALL_TAG, len(SMALL_TAGS)),
    ):
        out += [
            Workload(
                f"{size}-tc",
                f"`trustcheck verify {gun}:{tag}`",
                [
                    str(TRUSTCHECK),
                    "verify",
                    "--offline",
                    "--trust-dir",
                    str(trust_dir),
                    "--at",
                    at,
                    "--json",
                    f"{gun}:{tag}",
                ],
                tc_env,
                tc_check(tag),
                [],
            ),
            Workload(
                f"{size}-lookup",
                f"`notary lookup {gun} {tag}` (offline)",
                [*notary, "lookup", gun, tag],
                n_env,
                lookup_check(tag),
                [],
            ),
            Workload(
                f"{size}-list",
                f"`notary list {gun}` (offline)",
                [*notary, "list", gun],
                n_env,
                list_check(rows),
                [],
            ),
        ]
    large_tc, small_tc = out[0], out[3]
    dont_write = os.environ.get("PYTHONDONTWRITEBYTECODE", "unset")
    out.append(
        Workload(
            "small-tc-inherited",
            f"{small_tc.label} in the inherited environment"
            f" (PYTHONDONTWRITEBYTECODE={dont_write}, no pycache prefix)",
            small_tc.argv,
            inherited_env(),
            tc_check(SMALL_TAG),
            [],
        )
    )
    out.append(
        Workload(
            "large-tc-noorjson",
            f"{large_tc.label} without orjson",
            large_tc.argv,
            no_orjson_env,
            tc_check(LARGE_TAG),
            [],
        )
    )
    out.append(
        Workload(
            "large-decode-floor",
            "`python bench/floor_large.py` (read, hash, decode with orjson, one signature:"
            " the floor of a full decode, see the profile section)",
            [
                sys.executable,
                str(REPO_ROOT / "bench" / "floor_large.py"),
                str(trust_dir),
                LARGE_GUN,
                LARGE_TAG,
            ],
            tc_env,
            lookup_check(LARGE_TAG),
            [],
        )
    )
    out.append(
        Workload(
            "floor",
            '`python -c "import typer, cryptography.x509"` (import floor)',
            [sys.executable, "-c", "import typer, cryptography.x509"],
            tc_env,
            ok,
            [],
        )
    )
    out += startup.workloads(
        Workload,
        trust_dir,
        at,
        tc_env,
        work,
        SMALL_GUN,
        SMALL_TAG,
        lookup_check(SMALL_TAG),  # floor_verify.py prints what notary lookup prints
        tc_check(SMALL_TAG),
    )
    return out


def measure(loads: list[Workload]) -> None:
    # Warm-up (page cache, .pyc) and correctness checks first; notary's lookup is
    # checked after trustcheck's so both digests are compared against each other.
    for w in loads:
        w.check(run_measured(w.argv, w.env))
    for i in range(RUNS):
        for w in loads:  # round-robin, so drift hits every workload alike
            r = run_measured(w.argv, w.env)
            w.check(r)
            w.runs.append(r)
        log(f"round {i + 1}/{RUNS} done")


# --------------------------------------------------------------------------- profile


#: Runs the CLI in-process under cProfile, imports included: argv = OUT, CLI args...
PROFILE_CHILD = """
import cProfile, sys
prof = cProfile.Profile()
prof.enable()
from trustcheck.cli import main
rc = main(sys.argv[2:])
prof.disable()
prof.dump_stats(sys.argv[1])
sys.exit(rc)
"""


def _short(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    stdlib = re.sub(r"^.*/python3\.\d+/", "", path)
    if stdlib != path:
        return stdlib
    try:
        return str(Path(path).relative_to(REPO_ROOT))
    except ValueError:
        return path


def _func_name(key: tuple[str, int, str]) -> str:
    file, line, name = key
    if file == "~":  # built-in
        return f"`{name}`"
    return f"`{_short(file)}:{line}({name})`"


def profile(trust_dir: Path, at: str) -> str:
    with tempfile.TemporaryDirectory(prefix="trustcheck-prof-") as tmp:
        out = Path(tmp) / "verify.prof"
        args = [
            "verify",
            "--offline",
            "--trust-dir",
            str(trust_dir),
            "--at",
            at,
            "--json",
            f"{LARGE_GUN}:{LARGE_TAG}",
        ]
        run_command(
            [sys.executable, "-c", PROFILE_CHILD, out, *args],
            env=trustcheck_env(),
            timeout=RUN_TIMEOUT * 3,
        )
        stats = pstats.Stats(str(out))
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    total = max(ct for _cc, _nc, _tt, ct, _callers in raw.values())
    skip = ("_lsprof", "cProfile", "profile_child")

    def keep(key: tuple[str, int, str]) -> bool:
        return not any(s in key[0] or s in key[2] for s in skip)

    def table(rows: list[tuple[tuple[str, int, str], tuple[int, int, float, float, Any]]]) -> str:
        lines = [
            "| # | function | calls | self (s) | cumulative (s) | cum % |",
            "|--:|---|--:|--:|--:|--:|",
        ]
        for i, (key, (_cc, nc, tt, ct, _)) in enumerate(rows, 1):
            lines.append(
                f"| {i} | {_func_name(key)} | {nc} | {tt:.3f} | {ct:.3f} "
                f"| {100 * ct / total:.0f}% |"
            )
        return "\n".join(lines)

    items = [(k, v) for k, v in raw.items() if keep(k)]
    own = str(REPO_ROOT / "trustcheck") + os.sep
    by_cum = sorted(
        (kv for kv in items if kv[0][0].startswith(own)), key=lambda kv: kv[1][3], reverse=True
    )[:12]
    by_self = sorted(items, key=lambda kv: kv[1][2], reverse=True)[:10]
    imports = max(
        (v[3] for k, v in items if k[2] == "_find_and_load" and "importlib" in k[0]), default=0.0
    )
    decode_calls = sum(v[1] for k, v in items if k[2] == "decode" and k[0].endswith("canonical.py"))
    exact_calls = sum(
        v[1] for k, v in items if k[2] == "_decode_exact" and k[0].endswith("canonical.py")
    )
    decode_note = (
        f" `canonical.decode` ran {decode_calls} times, {exact_calls} of them on the exact"
        " (stdlib json) path rather than the orjson fast path."
        if decode_calls
        else ""
    )
    text = (
        f"Total profiled time {total:.2f} s, of which imports {imports:.2f} s"
        f" ({100 * imports / total:.0f}%). cProfile inflates Python-heavy code:"
        " compare shares, not absolute times." + decode_note + "\n\n"
        "**Top trustcheck functions by cumulative time**\n\n" + table(by_cum) + "\n\n"
        "**Top functions by self time (all code)**\n\n" + table(by_self) + "\n"
    )
    return text


# --------------------------------------------------------------------------- report


def machine_facts() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    notary_version = "unknown"
    try:
        done = run_command(["dpkg-query", "-W", "-f", "${Version}", "notary"], timeout=15)
        notary_version = f"{done.stdout.strip()} (Debian package)"
    except HarnessError:
        pass
    try:
        orjson_version = importlib.metadata.version("orjson")
    except importlib.metadata.PackageNotFoundError:
        orjson_version = "not installed"
    return {
        "orjson": orjson_version,
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "notary": notary_version,
        "kernel": platform.release(),
    }


def verdict(ratio: float, target: float) -> str:
    return "met" if ratio <= target else "**NOT met**"


def report(ds: Dataset, loads: list[Workload], prof: str, load: str) -> str:
    w = {x.key: x for x in loads}
    facts = machine_facts()
    now = dt.datetime.now(dt.UTC)
    rows = [
        "| workload | median wall (ms) | min wall (ms) | median peak RSS (MiB) |",
        "|---|--:|--:|--:|",
    ]
    for x in loads:
        size = "50k repo" if x.key.startswith("large") else "small repo"
        size = "" if x.key == "floor" else f"{size}: "
        rows.append(
            f"| {size}{x.label} | {x.wall_ms:.0f} | {x.wall_min_ms:.0f} | {x.rss_mib:.1f} |"
        )

    wall = w["large-tc"].wall_ms / w["large-lookup"].wall_ms
    rss = w["large-tc"].rss_mib / w["large-lookup"].rss_mib
    cold = w["small-tc"].wall_ms / w["floor"].wall_ms
    ratios = [
        ("50k repo wall: trustcheck verify / notary lookup", wall, TARGETS["wall"]),
        ("50k repo peak RSS: trustcheck verify / notary lookup", rss, TARGETS["rss"]),
        ("small repo cold start: trustcheck verify / import floor", cold, TARGETS["cold"]),
    ]
    ratio_rows = ["| ratio | value | target | |", "|---|--:|--:|---|"]
    for name, value, target in ratios:
        ratio_rows.append(f"| {name} | {value:.2f}x | <= {target}x | {verdict(value, target)} |")
    info = [
        (
            "50k repo wall: trustcheck verify / notary list",
            w["large-tc"].wall_ms / w["large-list"].wall_ms,
        ),
        (
            "50k repo peak RSS: trustcheck verify / notary list",
            w["large-tc"].rss_mib / w["large-list"].rss_mib,
        ),
        (
            "50k repo wall: trustcheck verify without orjson / notary lookup",
            w["large-tc-noorjson"].wall_ms / w["large-lookup"].wall_ms,
        ),
        (
            "small repo cold start, minimum walls (less sensitive to load)",
            w["small-tc"].wall_min_ms / w["floor"].wall_min_ms,
        ),
        (
            "50k repo wall, minimum walls: trustcheck verify / notary lookup",
            w["large-tc"].wall_min_ms / w["large-lookup"].wall_min_ms,
        ),
        (
            "50k repo CPU time (user + system, less sensitive to load): trustcheck verify"
            " / notary lookup",
            w["large-tc"].cpu_ms / w["large-lookup"].cpu_ms,
        ),
        (
            "50k repo wall: trustcheck verify / the full-decode floor (bench/floor_large.py)",
            w["large-tc"].wall_ms / w["large-decode-floor"].wall_ms,
        ),
        (
            "50k repo peak RSS: trustcheck verify / the full-decode floor",
            w["large-tc"].rss_mib / w["large-decode-floor"].rss_mib,
        ),
        (
            "small repo wall: trustcheck verify / notary lookup",
            w["small-tc"].wall_ms / w["small-lookup"].wall_ms,
        ),
        (
            "small repo peak RSS: trustcheck verify / notary lookup",
            w["small-tc"].rss_mib / w["small-lookup"].rss_mib,
        ),
    ]
    for name, value in info:
        ratio_rows.append(f"| {name} | {value:.2f}x | - | (information) |")
    ratio_rows += startup.ratio_rows(w)

    misses = []
    tc, lk, fl = w["large-tc"], w["large-lookup"], w["floor"]
    if wall > TARGETS["wall"]:
        misses.append(
            f"- 50k repo wall: {wall:.2f}x (target <= {TARGETS['wall']}x). trustcheck verify"
            f" takes {tc.wall_ms:.0f} ms, notary lookup {lk.wall_ms:.0f} ms: the target needs"
            f" trustcheck at <= {TARGETS['wall'] * lk.wall_ms:.0f} ms."
        )
    if rss > TARGETS["rss"]:
        misses.append(
            f"- 50k repo peak RSS: {rss:.2f}x (target <= {TARGETS['rss']}x). trustcheck peaks"
            f" at {tc.rss_mib:.1f} MiB, notary lookup at {lk.rss_mib:.1f} MiB: the target"
            f" needs <= {TARGETS['rss'] * lk.rss_mib:.1f} MiB."
        )
    if cold > TARGETS["cold"]:
        misses.append(
            f"- small repo cold start: {cold:.2f}x (target <= {TARGETS['cold']}x). trustcheck"
            f" takes {w['small-tc'].wall_ms:.0f} ms, the import floor {fl.wall_ms:.0f} ms:"
            f" the target needs <= {TARGETS['cold'] * fl.wall_ms:.0f} ms."
            + startup.cold_note(w, TARGETS["cold"])
        )
    miss_text = "\n".join(misses) if misses else "All targets met on this run."

    meta = ds.meta
    big = ", ".join(f"`{k}` {v / 1e6:.1f} MB" for k, v in sorted(meta["large_files"].items()))
    return f"""# Performance

Generated by `bench/run.py` on {now:%Y-%m-%d %H:%M} UTC. Reproduce with:

    make bench

(`BENCH_RUNS=N` changes the number of measured runs, `BENCH_REBUILD=1` rebuilds the data.)

## Machine

| | |
|---|---|
| CPUs (nproc) | {facts["nproc"]} |
| CPU model | {facts["cpu"]} |
| kernel | {facts["kernel"]} |
| Python | {facts["python"]} |
| notary | {facts["notary"]} |
| orjson in the venv | {facts["orjson"]} (optional: trustcheck uses it when importable) |
| load average before / after measuring | {load} |

## Data

Built with the real `notary` client against a real `notary-server` (memory storage,
TLS on 127.0.0.1), then downloaded by a fresh client (`notary -d FRESH -s URL list GUN`):

- `{LARGE_GUN}`: {LARGE_TARGETS:,} targets in `targets`, {DELEGATIONS} delegations
  `targets/d00`..`targets/d{DELEGATIONS - 1:02d}` with {PER_DELEGATION} targets each
  ({meta["rows"][LARGE_GUN]:,} rows in `notary list`). Large files: {big}.
- `{SMALL_GUN}`: {len(SMALL_TAGS)} tags.
- {meta["metadata_files"]} metadata files, {meta["metadata_bytes"] / 1e6:.1f} MB in all; built
  {meta["built_at"]} in {meta["build_seconds"]} s; validation time `--at {ds.at}`.

## Method

Each command ran once as a warm-up, then {RUNS} times round-robin; medians shown.
Wall time is measured by the parent around spawn/exit; peak RSS is GNU time's `%M`
(`/usr/bin/time -f %M`; `ru_maxrss` from this script's own `wait4` would be wrong: Linux
carries the parent's high-water mark into the child across fork/exec); CPU time (user +
system) from this script's rusage of its children, around each run. Every run is
checked: trustcheck must trust the image and print the same digest as `notary lookup`;
notary runs offline against the same trust dir (`-s {OFFLINE_SERVER}`, a closed port)
and must exit 0 with the answer; `notary list` must print every row. "Cold start"
means a new process (warm page cache). The machine is shared: see the load average.
Python runs (trustcheck and the import floor) get a working bytecode cache
(`PYTHONDONTWRITEBYTECODE` removed, `PYTHONPYCACHEPREFIX=bench/results/pycache`), as
after a normal install; one row shows the inherited environment for comparison.

## Results

{chr(10).join(rows)}

{chr(10).join(ratio_rows)}

### Targets not met

{miss_text}

## Large repository profile before/after (issue 18)

{PROFILE_BEFORE_AFTER}

## Profile: `trustcheck verify` on the 50k repository

`trustcheck verify --trust-dir FRESH --at {ds.at} --json {LARGE_GUN}:{LARGE_TAG}`, run
in-process under cProfile around the whole CLI, imports included (`PROFILE_CHILD` in
`bench/run.py`).

{prof}"""


#: The large-repository profile before issue 18's changes (the landed code, commit
#: b032bae, `make bench` on this machine kind) and what changed; the "after" profile
#: is the live one below it.
PROFILE_BEFORE_AFTER = """\
Before (landed code, commit b032bae): `trustcheck verify` of the 50k repository took
272 ms and peaked at 79.0 MiB (0.31x / 0.63x `notary lookup`). Its profile: imports
0.13 s of 0.26 s; then `orjson.loads` 0.063 s (the 4.6 MB targets.json decoded into
about 150,000 Python objects, ~45 MiB), `model._validate_targets` 0.031 s (a pass over
those objects), `orjson.dumps` 0.011 s (canonical re-encoding), sha256 + sha512 0.009 s.
In-process, the verification after start-up took 210-280 ms with a traced (tracemalloc)
peak of 90.4 MiB.

What changed (trustcheck/core/model.py, `LeanTargets`): a targets map written the way
notary writes it -- canonical JSON of the usual shape, `"NAME":{"hashes":{"sha256":B64
[,"sha512":B64]},"length":INT}` with printable-ASCII names in strictly increasing order
-- is proven valid by one regular-expression pass over the bytes and stays in the
file's bytes: no object per target. The rest of the file (a few KB) is decoded and
checked as before, with the map replaced by a placeholder derived from the rest's
hash; the canonical bytes for the signature are the re-encoded rest with the map's own
bytes spliced in (for such a map they are its canonical form). A lookup searches the
bytes for `"NAME":{"hashes":` (in a map of that shape it can only be the entry);
listing all targets parses entries one at a time. Any other shape (a `custom` field,
escapes, non-ASCII names, floats, unsorted or duplicate keys, another hash) takes the
general path unchanged; files under 16 KiB too. Every check notary makes still holds:
hashes and length of the file, base64 and integer types of every entry, signatures
over the canonical bytes (tests/unit/core/test_lean_targets.py compares both paths and
the canonical bytes with the reference encoder on genuine and hostile files). Also:
a role file is read in one `read` (no chunk join copy).

After, in-process: the verification after start-up takes about 125 ms with a traced
peak of 13.7 MiB; `verify_collection` alone (warm, median of 7) 46 ms, of which the
lean map check 22 ms (pattern match 11 ms, name order 11 ms), sha256 + sha512 8 ms,
signature checks 4 ms. The rest of the wall time is start-up (imports: issue 18's
start-up work, helper D). `bench/floor_large.py` (row above) is the least a verifier
that decodes the map must do -- read, hash, orjson decode, one signature, no checks,
no CLI: trustcheck's whole command is compared with it in the ratios.

A check on a quieter machine (load average about 2, 2026-12-04 22:58 UTC, before the
signature-check start-up change below): 5 runs interleaved, trustcheck verify 0.17-0.20 s
(45.0 MiB), notary lookup 0.72-0.86 s (104-131 MiB): 0.24x wall, 0.41x RSS. Since
then a signature check no longer imports cryptography's OpenSSL backend module, ciphers
and SSH serialization (`core/crypto.py`: `ECDSA(SHA256())` is built once without its
constructor, which imported them only to ask about deterministic signing; the DER key
loader is taken from where `serialization` gets it): 15-40 ms less start-up for every
verify, large or small.

After all of issue 18's core changes (2026-12-04 23:42 UTC, load average about 2, the
same script, 9 and 7 runs interleaved): trustcheck verify 191 / 213 ms median, notary
lookup 854 / 933 ms: 0.22x / 0.23x wall; peak RSS 41.7 MiB against notary's 110-145 MiB
(about 0.32x). The last change: when the file holds the canonical bytes of `signed`
(as notary writes it), the signatures are checked on a view of the file instead of a
4.6 MB copy."""


def main() -> int:
    if not TRUSTCHECK.exists():
        log(f"{TRUSTCHECK} not found: run `make bench` (it installs the venv)")
        return 2
    missing = missing_notary_binaries() + ([] if Path(GNU_TIME).exists() else [GNU_TIME])
    if missing:
        log(f"missing programs: {', '.join(missing)} (apt-get install notary openssl time)")
        return 2
    t0 = time.monotonic()
    ds = load_or_build()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="run-", dir=RESULTS) as tmp:
        work = Path(tmp)
        trust = copy_trust_dir(ds.trust_dir, work / "trust")  # notary may add folders
        cfg = work / "notary-offline.json"
        cfg.write_text(
            json.dumps({"trust_dir": str(trust), "remote_server": {"url": OFFLINE_SERVER}})
        )
        loads = workloads(trust, ds.at, cfg, work)
        load_before = os.getloadavg()
        measure(loads)
        load_after = os.getloadavg()
        log("profiling trustcheck verify on the 50k repository")
        prof = profile(trust, ds.at)
        log("start-up profile before/after (issue 18)")
        startup_text = startup.section(trust, ds.at, trustcheck_env(), work, SMALL_GUN, SMALL_TAG)
    load = " / ".join(", ".join(f"{x:.2f}" for x in la) for la in (load_before, load_after))
    text = report(ds, loads, prof, load)
    text = text.rstrip("\n") + "\n\n" + startup_text
    for extra in SELECTED_EXTRAS:
        try:
            module = importlib.import_module(extra)
        except ImportError:
            continue
        log(f"running {extra}")
        text = text.rstrip("\n") + "\n\n" + module.run()
    print(text)
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    (RESULTS / "last-run.json").write_text(
        json.dumps(
            {
                x.key: {
                    "wall_ms": [r.wall * 1000 for r in x.runs],
                    "rss_kib": [r.rss_kib for r in x.runs],
                }
                for x in loads
            },
            indent=2,
        )
        + "\n"
    )
    log(f"wrote {DOC} in {time.monotonic() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
