"""Resource limits: hostile inputs are refused quickly with bounded memory (issue 4).

Each case copies a genuine collection (fixtures/generated, localhost/basic),
plants one hostile file, and runs `trustcheck verify --offline` as a new
process under GNU time: wall time, peak RSS, exit code and error code.

Run by `make bench` (bench/run.py) or alone: `.venv/bin/python bench/bench_limits.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "fixtures" / "generated"
GUN = "localhost/basic"
TRUSTCHECK = Path(sys.executable).parent / "trustcheck"
GNU_TIME = "/usr/bin/time"


def _metadata(trust: Path) -> Path:
    return trust / "tuf" / GUN / "metadata"


def huge_targets(trust: Path) -> None:
    # 200 MB: refused from fstat before a byte is read (cap = length in snapshot)
    with (_metadata(trust) / "targets.json").open("r+b") as f:
        f.truncate(200 * 1000 * 1000)


def huge_root(trust: Path) -> None:
    # 200 MB root.json: above the 100 MiB cap for files without a parent length
    with (_metadata(trust) / "root.json").open("r+b") as f:
        f.truncate(200 * 1000 * 1000)


def deep_timestamp(trust: Path) -> None:
    # 100,000-deep nesting, under the 1 MiB timestamp cap
    depth = 100_000
    (_metadata(trust) / "timestamp.json").write_bytes(b"[" * depth + b"]" * depth)


def many_signatures(trust: Path) -> None:
    path = _metadata(trust) / "timestamp.json"
    doc = json.loads(path.read_bytes())
    sig = doc["signatures"][0]
    doc["signatures"] = [sig] * 5000
    path.write_text(json.dumps(doc))


CASES: tuple[tuple[str, Callable[[Path], None]], ...] = (
    ("targets.json of 200 MB", huge_targets),
    ("root.json of 200 MB", huge_root),
    ("timestamp.json nested 100,000 deep", deep_timestamp),
    ("timestamp.json with 5,000 signatures", many_signatures),
)


def measure(plant: Callable[[Path], None], work: Path) -> tuple[float, int, int, str]:
    trust = work / "trust"
    if trust.exists():
        shutil.rmtree(trust)
    shutil.copytree(FIXTURES / "trust", trust)
    plant(trust)
    at = (FIXTURES / "VALIDATION_TIME").read_text().strip()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["TRUSTCHECK_STATE_DIR"] = str(work / "state")
    env["PYTHONPYCACHEPREFIX"] = str(REPO_ROOT / "bench" / "results" / "pycache")
    done = subprocess.run(
        [
            GNU_TIME,
            "-f",
            "%e %M",
            str(TRUSTCHECK),
            "verify",
            "--offline",
            "--json",
            "--trust-dir",
            str(trust),
            "--at",
            at,
            f"{GUN}:v1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    wall, rss = done.stderr.strip().splitlines()[-1].split()
    code = json.loads(done.stdout)["results"][0]["error"]["code"] if done.stdout else "-"
    return float(wall), int(rss), done.returncode, code


def run() -> str:
    rows = [
        "## Resource limits (issue 4)",
        "",
        "Hostile files planted in a copy of `localhost/basic`; one `trustcheck verify --offline` "
        "process each, GNU time. Reproduce: `make bench` (or `.venv/bin/python "
        "bench/bench_limits.py`).",
        "",
        "| input | wall time | peak RSS | exit | error code |",
        "|---|--:|--:|--:|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as tmp:
        for label, plant in CASES:
            wall, rss, code, err = measure(plant, Path(tmp))
            rows.append(f"| {label} | {wall:.2f} s | {rss / 1024:.1f} MiB | {code} | `{err}` |")
    return "\n".join([*rows, ""])


if __name__ == "__main__":
    print(run())
