"""Start-up of a small-repository ``verify`` (issue 18, P2): floors, before/after, profile.

Used by bench/run.py (``make bench``):

* :func:`workloads` adds two measured rows beside the import floor:
  the *work floor* (bench/floor_verify.py: the import floor's imports, read the
  four metadata files, check hashes, verify four signatures, print the digest)
  and ``trustcheck verify`` as it was at :data:`BASELINE_REV` (the commit before
  issue 18's start-up work), run from ``git archive`` of that commit.
* :func:`ratio_rows` and :func:`cold_note` put them into the ratio table.
* :func:`section` writes "Start-up profile before/after": ``python -X importtime``
  of the import floor, the baseline and the current tree (modules trustcheck adds
  to the floor, by self time), and an in-process phase breakdown (perf_counter
  around the CLI's steps), medians of several runs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
FLOOR_SCRIPT = REPO_ROOT / "bench" / "floor_verify.py"
#: the commit before issue 18's start-up work
BASELINE_REV = "9b680e9"
#: what the console script does (``trustcheck = trustcheck.__main__:main``)
CONSOLE = "import sys; from trustcheck.__main__ import main; sys.exit(main())"
IMPORT_FLOOR = "import typer, cryptography.x509"
#: the import floor, leaving as the console script does (no interpreter teardown)
IMPORT_FLOOR_NO_TEARDOWN = IMPORT_FLOOR + ", os; os._exit(0)"
PROFILE_RUNS = int(os.environ.get("BENCH_STARTUP_RUNS", "5"))

#: in-process phases of one CLI run (perf_counter around each step); argv: CLI args
PHASES_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import typer, cryptography.x509
t1 = time.perf_counter()
import trustcheck.cli.app as app
t2 = time.perf_counter()
marks = {}
def timed(owner, name, label):
    orig = getattr(owner, name)
    def wrapper(*a, **k):
        s = time.perf_counter()
        try:
            return orig(*a, **k)
        finally:
            marks[label] = marks.get(label, 0.0) + time.perf_counter() - s
    setattr(owner, name, wrapper)
timed(app, "load_commands", "command module import + typer conversion")
import trustcheck.cli.options as options
s = time.perf_counter()
import trustcheck.api as api
marks["import trustcheck.api (verifier core)"] = time.perf_counter() - s
timed(options, "make_options", "make_options (state, pins)")
timed(api, "verify_images", "verify_images (read, verify, record)")
import io, contextlib
s = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    rc = app.main(sys.argv[1:])
t3 = time.perf_counter()
inner = sum(v for k, v in marks.items() if not k.startswith("import trustcheck.api"))
marks["typer parsing, output, the rest"] = (t3 - s) - inner
marks = {"import typer, cryptography.x509 (the import floor's imports)": t1 - t0,
         "import trustcheck.cli (app, options, errors)": t2 - t1, **marks}
print(json.dumps({"rc": rc, "phases": marks}))
"""


def baseline_tree(work: Path) -> Path | None:
    """``trustcheck/`` as of :data:`BASELINE_REV` under ``work`` (None outside a git checkout)."""
    dest = work / f"baseline-{BASELINE_REV}"
    if (dest / "trustcheck").is_dir():
        return dest
    try:
        blob = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", BASELINE_REV, "trustcheck"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as f:
        f.write(blob)
        f.seek(0)
        with tarfile.open(fileobj=f) as tar:
            tar.extractall(dest, filter="data")
    return dest


def _with_path(env: Mapping[str, str], tree: Path | None) -> dict[str, str]:
    out = dict(env)
    if tree is not None:  # first on sys.path: ahead of the editable install's finder
        out["PYTHONPATH"] = str(tree)
        # and no current directory before it (`python -c` puts "" first: from the
        # repository root, that would be this tree's trustcheck, not the baseline's)
        out["PYTHONSAFEPATH"] = "1"
    return out


def _checked(env: dict[str, str], tree: Path) -> dict[str, str]:
    """``env`` after checking that a child with it imports trustcheck from ``tree``."""
    done = subprocess.run(
        [sys.executable, "-c", "import trustcheck; print(trustcheck.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    found = Path(done.stdout.strip()).resolve()
    if not found.is_relative_to(tree.resolve()):
        raise RuntimeError(f"the baseline run imports {found}, not the tree under {tree}")
    return env


def verify_args(trust_dir: Path, at: str, gun: str, tag: str) -> list[str]:
    return [
        "verify",
        "--offline",
        "--trust-dir",
        str(trust_dir),
        "--at",
        at,
        "--json",
        f"{gun}:{tag}",
    ]


def _exit_zero(run: Any) -> None:
    if run.returncode != 0:
        raise RuntimeError(f"exit {run.returncode}: {run.stderr}")


def workloads(
    make: Callable[..., Any],
    trust_dir: Path,
    at: str,
    env: Mapping[str, str],
    work: Path,
    gun: str,
    tag: str,
    floor_check: Callable[[Any], None],
    tc_check: Callable[[Any], None],
) -> list[Any]:
    """The work floor and the baseline rows (``make`` is bench/run.py's Workload)."""
    rows = [
        make(
            "floor-work",
            f"`python bench/floor_verify.py TRUST_DIR {gun} {tag}` (work floor: the import"
            " floor + read 4 files, verify 4 signatures, print)",
            [sys.executable, str(FLOOR_SCRIPT), str(trust_dir), gun, tag],
            dict(env),
            floor_check,
            [],
        )
    ]
    rows.append(
        make(
            "floor-noteardown",
            f'`python -c "{IMPORT_FLOOR_NO_TEARDOWN}"` (the import floor without the'
            " interpreter's teardown, as trustcheck's console script leaves)",
            [sys.executable, "-c", IMPORT_FLOOR_NO_TEARDOWN],
            dict(env),
            _exit_zero,
            [],
        )
    )
    rows.append(
        make(
            "small-tc-teardown",
            f"`trustcheck verify {gun}:{tag}` with the interpreter's ordinary exit"
            " (`sys.exit(main())`, teardown included)",
            [sys.executable, "-c", CONSOLE, *verify_args(trust_dir, at, gun, tag)],
            dict(env),
            tc_check,
            [],
        )
    )
    base = baseline_tree(work)
    if base is not None:
        rows.append(
            make(
                "small-tc-before",
                f"`trustcheck verify {gun}:{tag}` as of {BASELINE_REV} (before issue 18)",
                [sys.executable, "-c", CONSOLE, *verify_args(trust_dir, at, gun, tag)],
                _checked(_with_path(env, base), base),
                tc_check,
                [],
            )
        )
    return rows


def ratio_rows(w: Mapping[str, Any]) -> list[str]:
    """Information rows for the ratio table."""
    out = []
    tc, floor, work = w["small-tc"], w["floor"], w.get("floor-work")
    if work is not None:
        out.append(
            "| small repo cold start: trustcheck verify / work floor (bench/floor_verify.py) "
            f"| {tc.wall_ms / work.wall_ms:.2f}x | - | (information) |"
        )
        out.append(
            "| work floor / import floor (the least any verifier with these imports needs) "
            f"| {work.wall_ms / floor.wall_ms:.2f}x | - | (information) |"
        )
    quick, teardown = w.get("floor-noteardown"), w.get("small-tc-teardown")
    if quick is not None:
        out.append(
            "| small repo cold start, both without the interpreter's teardown: trustcheck"
            " verify / import floor with `os._exit(0)` (the like-for-like ratio)"
            f" | {tc.wall_ms / quick.wall_ms:.2f}x | - | ({tc.wall_ms:.0f} / {quick.wall_ms:.0f}"
            " ms) |"
        )
    if teardown is not None:
        out.append(
            "| small repo cold start, both with the teardown: trustcheck verify through"
            " `sys.exit(main())` / import floor"
            f" | {teardown.wall_ms / floor.wall_ms:.2f}x | - | ({teardown.wall_ms:.0f} ms) |"
        )
    out.append(
        "| small repo cold start, CPU time (user + system, less sensitive to load):"
        f" trustcheck verify / import floor | {tc.cpu_ms / floor.cpu_ms:.2f}x | - |"
        f" ({tc.cpu_ms:.0f} / {floor.cpu_ms:.0f} ms) |"
    )
    if work is not None:
        out.append(
            "| small repo cold start, CPU time: trustcheck verify / work floor"
            f" | {tc.cpu_ms / work.cpu_ms:.2f}x | - | ({work.cpu_ms:.0f} ms) |"
        )
    before = w.get("small-tc-before")
    if before is not None:
        out.append(
            f"| small repo cold start as of {BASELINE_REV} (before issue 18) / import floor "
            f"| {before.wall_ms / floor.wall_ms:.2f}x | - | (information) |"
        )
        out.append(
            f"| small repo cold start, CPU time, as of {BASELINE_REV} / import floor"
            f" | {before.cpu_ms / floor.cpu_ms:.2f}x | - | ({before.cpu_ms:.0f} ms) |"
        )
    return out


def cold_note(w: Mapping[str, Any], target: float) -> str:
    """What stops the cold-start target, measured: appended to its "not met" line."""
    work, floor, tc = w.get("floor-work"), w["floor"], w["small-tc"]
    if work is None:
        return ""
    room = target * floor.wall_ms - work.wall_ms
    return (
        f" The work floor (bench/floor_verify.py: the same imports, read 4 files, check"
        f" 2 hashes, verify 4 signatures, print) alone takes {work.wall_ms:.0f} ms"
        f" ({work.wall_ms / floor.wall_ms:.2f}x the import floor), so the target leaves"
        f" {room:.0f} ms for everything else a verdict needs (option parsing, expiry,"
        f" versions, thresholds, delegations, pins, the state store, error handling);"
        f" trustcheck is {tc.wall_ms - work.wall_ms:.0f} ms above the work floor."
    )


# --------------------------------------------------------------------------- profile


def _importtime(argv: Sequence[str], env: Mapping[str, str]) -> dict[str, int]:
    """Self import time (us) per module of one run of ``python -X importtime ...``."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"importtime run failed ({done.returncode}): {done.stderr[-500:]}")
    found: dict[str, int] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, _cum, name = line[len("import time:") :].split("|")
        found[name.strip()] = int(self_us)
    return found


def _median_importtime(argv: Sequence[str], env: Mapping[str, str]) -> dict[str, float]:
    runs = [_importtime(argv, env) for _ in range(PROFILE_RUNS + 1)][1:]  # first: warm-up
    names = set().union(*runs)
    return {n: statistics.median(r.get(n, 0) for r in runs) for n in names}


def _phases(argv: Sequence[str], env: Mapping[str, str]) -> dict[str, float]:
    runs: list[dict[str, float]] = []
    for _ in range(PROFILE_RUNS + 1):
        done = subprocess.run(
            [sys.executable, "-c", PHASES_CHILD, *argv],
            capture_output=True,
            text=True,
            env=dict(env),
            timeout=120,
            check=False,
        )
        data = json.loads(done.stdout.strip().splitlines()[-1])
        if data["rc"] != 0:
            raise RuntimeError(f"phase run exit {data['rc']}: {done.stderr[-500:]}")
        runs.append(data["phases"])
    runs = runs[1:]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def _top_added(mods: Mapping[str, float], floor: Mapping[str, float], n: int) -> list[str]:
    added = sorted(((v, k) for k, v in mods.items() if k not in floor), reverse=True)[:n]
    return [f"`{k}` {v / 1000:.1f}" for v, k in added]


_GROUPS = {
    "HTTP stack (httpx, httpcore, h11, ssl)": ("httpx", "httpcore", "h11", "ssl", "_ssl"),
    "httpx's CLI (click, rich, pygments)": ("click", "rich", "pygments"),
    "policy / YAML": ("trustcheck.policy", "yaml"),
}


def _count(mods: Mapping[str, float], prefixes: tuple[str, ...]) -> int:
    return sum(1 for m in mods if any(m == p or m.startswith(p + ".") for p in prefixes))


def section(
    trust_dir: Path, at: str, env: Mapping[str, str], work: Path, gun: str, tag: str
) -> str:
    """The markdown section "Start-up profile before/after"."""
    args = verify_args(trust_dir, at, gun, tag)
    cur_env = dict(env)
    base = baseline_tree(work)
    trees: list[tuple[str, dict[str, str]]] = []
    if base is not None:
        trees.append((f"before ({BASELINE_REV})", _checked(_with_path(env, base), base)))
    trees.append(("after (this tree)", cur_env))
    floor = _median_importtime(["-c", IMPORT_FLOOR], cur_env)
    imports = {name: _median_importtime(["-c", CONSOLE, *args], e) for name, e in trees}
    phases = {name: _phases(args, e) for name, e in trees}
    names = [name for name, _ in trees]

    head = "| | import floor | " + " | ".join(names) + " |"
    rule = "|---|--:|" + "--:|" * len(names)
    rows = [head, rule]

    def total(m: Mapping[str, float]) -> str:
        return f"{sum(m.values()) / 1000:.1f} ms"

    rows.append(
        "| import time, all modules (sum of self) | "
        + total(floor)
        + " | "
        + " | ".join(total(imports[n]) for n in names)
        + " |"
    )
    rows.append(
        "| import time of modules the floor does not load | - | "
        + " | ".join(
            f"{sum(v for k, v in imports[n].items() if k not in floor) / 1000:.1f} ms"
            for n in names
        )
        + " |"
    )
    rows.append(
        f"| modules loaded | {len(floor)} | "
        + " | ".join(str(len(imports[n])) for n in names)
        + " |"
    )
    for label, prefixes in _GROUPS.items():
        rows.append(
            f"| {label}: modules loaded | {_count(floor, prefixes)} | "
            + " | ".join(str(_count(imports[n], prefixes)) for n in names)
            + " |"
        )

    top = ["| # | " + " | ".join(f"{n}: module, self ms" for n in names) + " |"]
    top.append("|--:|" + "---|" * len(names))
    lists = [_top_added(imports[n], floor, 12) for n in names]
    for i in range(max(len(x) for x in lists)):
        top.append(f"| {i + 1} | " + " | ".join(x[i] if i < len(x) else "" for x in lists) + " |")

    ph = ["| phase (in-process, median ms) | " + " | ".join(names) + " |"]
    ph.append("|---|" + "--:|" * len(names))
    keys = list(dict.fromkeys(k for n in names for k in phases[n]))
    for k in keys:
        ph.append(
            f"| {k} | "
            + " | ".join(f"{phases[n][k] * 1000:.1f}" if k in phases[n] else "-" for n in names)
            + " |"
        )
    ph.append(
        "| total (after interpreter start) | "
        + " | ".join(f"{sum(phases[n].values()) * 1000:.1f}" for n in names)
        + " |"
    )

    return "\n".join(
        [
            "## Start-up profile before/after (issue 18)",
            "",
            f"`trustcheck verify --offline ... --json {gun}:{tag}` on the small repository,"
            f" as of {BASELINE_REV} (before issue 18's start-up work, from `git archive`,"
            " first on `PYTHONPATH`) and now; `python -X importtime`, median self time per"
            f" module of {PROFILE_RUNS} runs after a warm-up (`STARTUP` helpers in"
            " `bench/startup.py`). importtime adds its own overhead and does not time"
            " modules loaded through `importlib.import_module` (the command module), only"
            " what they import.",
            "",
            *rows,
            "",
            "**What trustcheck adds to the import floor: the modules `import typer,"
            " cryptography.x509` does not load, by self import time (ms)**",
            "",
            *top,
            "",
            "**Where the time after interpreter start goes** (perf_counter around each step"
            " of one in-process CLI run, `PHASES_CHILD` in `bench/startup.py`; nested steps"
            " are counted once)",
            "",
            *ph,
            "",
            "Changed for start-up in issue 18: httpx is imported without its own command-line"
            " client (`httpx._main` pulls in click, rich and pygments whenever they are"
            " installed, as next to typer; every online command paid for them), the pin"
            " parser (`local.pinfile`, `core.identity`, `tomllib`) is imported only when a pin"
            " file exists, and an image reference is parsed with one regular expression"
            " compilation instead of two; `core/crypto.py` checks signatures without importing"
            " cryptography's SSH serialization, ciphers and OpenSSL backend modules (the work"
            " floor takes the same shortcuts). Then (helper W1): the core's data classes"
            " (model, trusted set, lookup, reference, certificates, `api.ImageResult`) are"
            " plain `__slots__` classes with a hand-written `__init__` (`core/record.py`)"
            " instead of `@dataclass`, which compiles each class's methods with `exec` at"
            " import (about 0.5 ms a class, 9 ms in all); `ErrorCode` is built without"
            " enum's per-member machinery (a StrEnum to the type checker, 0.6 ms); and the"
            " console script (`trustcheck.__main__:run`) leaves with `os._exit` once the"
            " command is done and its atexit callbacks ran and its output is flushed,"
            " skipping the interpreter's teardown (12-17 ms: the ratio table shows the"
            " like-for-like ratio against the import floor without teardown, and trustcheck"
            " with it). `tests/unit/test_import_discipline.py` pins what an"
            " offline `verify` and a `fetch` may import (no HTTP stack, TLS, policy, YAML,"
            " rich or other commands offline; no httpx CLI online). What is left above the"
            " work floor is the verifier itself: the import of `trustcheck.api` (the core:"
            " model, trusted set, certificates, canonical JSON, errors) and the verification"
            " steps the work floor skips (expiry, versions, thresholds, delegations, the state"
            " store), plus typer's conversion and parsing of the command's options.",
            "",
        ]
    )
