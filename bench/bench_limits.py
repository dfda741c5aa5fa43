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


# --- hostile servers (issue 14): `trustcheck verify` against a loopback server


def _network_cases() -> list[tuple[str, dict[str, dict[str, object]]]]:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from fixtures.hostile_server import gzip_bomb

    bomb = gzip_bomb(2 << 30)  # gzip, gzip: 2 GiB of zeros
    single = gzip_bomb(101 << 20, layers=1)  # one honest-looking layer past root's cap
    return [
        (
            f"timestamp.json `Content-Encoding: gzip, gzip`, {len(bomb):,} B on the wire "
            "-> 2 GiB decoded",
            {"timestamp": {"headers": [("Content-Encoding", "gzip, gzip")], "body": bomb}},
        ),
        (
            f"root.json `Content-Encoding: gzip`, {len(single):,} B on the wire -> 101 MiB "
            "decoded, no Content-Length",
            {"root": {"headers": [("Content-Encoding", "gzip")], "body": single, "length": -1}},
        ),
        (
            "timestamp.json headers dripped 1 byte / 0.5 s (`--timeout 2`, `--retries 0`)",
            {"timestamp": {"drip": 0.5, "headers": [("X-Pad", "p" * 100)]}},
        ),
        (
            "timestamp.json body dripped 1 byte / 0.2 s (`--timeout 2`, `--retries 0`)",
            {"timestamp": {"drip": 0.2, "drip_body": True}},
        ),
    ]


def measure_network(
    faults: dict[str, dict[str, object]], work: Path
) -> tuple[float, int, int, str]:
    from fixtures.hostile_server import Fault, HostileServer

    trust = work / "net-trust"
    if trust.exists():
        shutil.rmtree(trust)
    at = (FIXTURES / "VALIDATION_TIME").read_text().strip()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["TRUSTCHECK_STATE_DIR"] = str(work / "net-state")
    env["DOCKER_CONFIG"] = str(work / "docker")
    env["PYTHONPYCACHEPREFIX"] = str(REPO_ROOT / "bench" / "results" / "pycache")
    with HostileServer() as server:
        for key, spec in faults.items():
            server.faults[key] = Fault(**spec)  # type: ignore[arg-type]
        done = subprocess.run(
            [
                GNU_TIME,
                "-f",
                "%e %M",
                str(TRUSTCHECK),
                "verify",
                "--json",
                "--server",
                server.url,
                "--unsafe-http",
                "--timeout",
                "2",
                "--retries",
                "0",
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


# --- bounded cost on hostile input (issue 14 #5): PEM and delegation paths

R_GUN = "localhost/releases"


def _hostile_root(trust: Path, pem: bytes) -> None:
    """An unsigned root.json whose one root key is ``pem`` (checked before any signature)."""
    import base64
    import hashlib

    key = {"keytype": "ecdsa-x509", "keyval": {"private": None, "public": ""}}
    kid = hashlib.sha256(pem).hexdigest()
    roles = {
        r: {"keyids": [kid], "threshold": 1} for r in ("root", "targets", "snapshot", "timestamp")
    }
    head = json.dumps(
        {
            "signed": {
                "_type": "Root",
                "consistent_snapshot": False,
                "expires": "2030-01-01T00:00:00Z",
                "keys": {kid: key},
                "roles": roles,
                "version": 1,
            },
            "signatures": [],
        }
    ).encode()
    body = head.replace(b'"public": ""', b'"public": "' + base64.b64encode(pem) + b'"')
    (_metadata(trust) / "root.json").write_bytes(body)


def _pem_root(line: bytes, tail: bytes = b"", size: int = 0) -> Callable[[Path], None]:
    def plant(trust: Path) -> None:
        _hostile_root(trust, line * (size // len(line)) + tail)

    return plant


#: the largest PEM a root.json under its 100 MiB cap can carry (base64 in JSON: 3/4)
PEM_CAP = (100 << 20) * 3 // 4 - 4096


def _ctx() -> object:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from fixtures.attacks.cases import Ctx

    return Ctx(FIXTURES)


def _write_repo(trust: Path, repo: object) -> None:
    for rel, data in repo.trust_files().items():  # type: ignore[attr-defined]
        path = trust / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def nested_paths(count: int) -> Callable[[Path], None]:
    """targets/releases delegated ``count`` paths, delegating ``count`` other paths to
    targets/releases/deep (signed by the releaser key): notary restricts each child
    path against every parent path."""

    def plant(trust: Path) -> None:
        import hashlib

        ctx = _ctx()
        from fixtures.attacks.keys import b64

        r = ctx.rebuilt(R_GUN)  # type: ignore[attr-defined]
        parent = [f"a{i:08d}/" for i in range(count)] + ["v"]
        child = [f"b{i:08d}/" for i in range(count)] + ["v"]

        def set_paths(s: dict[str, object]) -> None:
            for role in s["delegations"]["roles"]:  # type: ignore[index]
                if role["name"] == "targets/releases":
                    role["paths"] = parent

        r.edit("targets", set_paths)
        deleg = r.signed("targets")["delegations"]
        (entry,) = [d for d in deleg["roles"] if d["name"] == "targets/releases"]
        kid = entry["keyids"][0]
        r.edit(
            "targets/releases",
            lambda s: s.__setitem__(
                "delegations",
                {
                    "keys": {kid: deleg["keys"][kid]},
                    "roles": [
                        {
                            "keyids": [kid],
                            "name": "targets/releases/deep",
                            "paths": child,
                            "threshold": 1,
                        }
                    ],
                },
            ),
        )
        deep = {
            "_type": "Targets",
            "delegations": {"keys": {}, "roles": []},
            "expires": r.signed("targets/releases")["expires"],
            "targets": {},
            "version": 1,
        }
        r.put("targets/releases/deep", deep)
        raw = r.raw("targets/releases/deep")
        r.edit(
            "snapshot",
            lambda s: s["meta"].__setitem__(
                "targets/releases/deep",
                {"hashes": {"sha256": b64(hashlib.sha256(raw).digest())}, "length": len(raw)},
            ),
        )
        r.refresh()
        _write_repo(trust, r)

    return plant


def many_targets_and_paths(targets: int, paths: int) -> Callable[[Path], None]:
    """targets/releases with ``targets`` targets and ``paths`` delegated paths, the one
    matching path last: a digest reference lists every target against the paths."""

    def plant(trust: Path) -> None:
        ctx = _ctx()
        from fixtures.attacks.keys import b64

        r = ctx.rebuilt(R_GUN)  # type: ignore[attr-defined]
        allowed = [f"a{i:08d}/" for i in range(paths)] + ["t", "v"]

        def set_paths(s: dict[str, object]) -> None:
            for role in s["delegations"]["roles"]:  # type: ignore[index]
                if role["name"] == "targets/releases":
                    role["paths"] = allowed

        r.edit("targets", set_paths)

        def fill(s: dict[str, object]) -> None:
            t = s["targets"]
            for i in range(targets):
                t[f"t{i:07d}"] = {"hashes": {"sha256": b64(i.to_bytes(32, "big"))}, "length": i}  # type: ignore[index]

        r.edit("targets/releases", fill)
        r.refresh()
        _write_repo(trust, r)

    return plant


def _last_digest(targets: int) -> str:
    return "sha256:" + (targets - 1).to_bytes(32, "big").hex()


def cost_cases() -> list[tuple[str, Callable[[Path], None], list[str]]]:
    v1 = [f"{GUN}:v1"]
    rv1 = [f"{R_GUN}:v1"]
    big = 50_000
    return [
        (
            "root key PEM: 1.4 MB of BEGIN lines without END (issue: 11 s)",
            _pem_root(b"-----BEGIN CERTIFICATE-----\nQUFB\n", size=1_400_000),
            v1,
        ),
        (
            f"root key PEM: {PEM_CAP / 2**20:.0f} MiB of BEGIN lines without END "
            "(root.json at its cap)",
            _pem_root(b"-----BEGIN CERTIFICATE-----\nQUFB\n", size=PEM_CAP),
            v1,
        ),
        (
            f"root key PEM: {PEM_CAP / 2**20:.0f} MiB of BEGIN X lines, one END X at the end",
            _pem_root(b"\n-----BEGIN X-----\n", b"-----END X-----\n", PEM_CAP),
            v1,
        ),
        (
            f"root key PEM: {PEM_CAP / 2**20:.0f} MiB of BEGIN X:Y lines each with a header, "
            "one END",
            _pem_root(b"\n-----BEGIN X:Y-----\na:b\n", b"-----END X:Y-----\n", PEM_CAP),
            v1,
        ),
        (
            "nested delegation paths: 2 x 35,000 paths (2 x 350 KB; issue: 134 s, notary 6.7 s)",
            nested_paths(35_000),
            rv1,
        ),
        ("nested delegation paths: 2 x 1,000,000 paths (2 x 10 MB)", nested_paths(1_000_000), rv1),
        (
            f"digest reference: {big:,} targets x 35,001 paths in targets/releases",
            many_targets_and_paths(big, 35_000),
            [f"{R_GUN}@{_last_digest(big)}"],
        ),
    ]


def measure_cost(
    plant: Callable[[Path], None], images: list[str], work: Path, command: str = "verify"
) -> tuple[float, int, int, str]:
    trust = work / "trust"
    if trust.exists():
        shutil.rmtree(trust)
    shutil.copytree(FIXTURES / "trust", trust)
    plant(trust)
    at = (FIXTURES / "VALIDATION_TIME").read_text().strip()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    shutil.rmtree(work / "cost-state", ignore_errors=True)  # each row: a first run
    env["TRUSTCHECK_STATE_DIR"] = str(work / "cost-state")
    env["PYTHONPYCACHEPREFIX"] = str(REPO_ROOT / "bench" / "results" / "pycache")
    argv = [
        GNU_TIME,
        "-f",
        "%e %M",
        str(TRUSTCHECK),
        command,
        "--offline",
        "--trust-dir",
        str(trust),
        "--at",
        at,
    ]
    if command == "verify":
        argv.append("--json")
    done = subprocess.run(
        [*argv, *images], capture_output=True, text=True, timeout=600, env=env, check=False
    )
    wall, rss = done.stderr.strip().splitlines()[-1].split()
    code = "-"
    if command == "verify" and done.stdout:
        error = json.loads(done.stdout)["results"][0]["error"]
        code = error["code"] if error else "trusted"
    return float(wall), int(rss), done.returncode, code


def run_cost() -> list[str]:
    rows = [
        "",
        "Bounded cost on hostile input (issue 14 #5): PEM decoding of an unsigned root.json "
        "and delegation `paths` (restriction across nested delegations, target listing for a "
        "digest reference and `inspect`); one `trustcheck verify --offline` (or `inspect "
        "--offline`) process each, GNU time.",
        "",
        "| input | wall time | peak RSS | exit | result |",
        "|---|--:|--:|--:|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-limits-cost-") as tmp:
        for label, plant, images in cost_cases():
            wall, rss, code, err = measure_cost(plant, images, Path(tmp))
            rows.append(f"| {label} | {wall:.2f} s | {rss / 1024:.1f} MiB | {code} | `{err}` |")
            print(rows[-1], file=sys.stderr, flush=True)
        big = 50_000
        wall, rss, code, _ = measure_cost(
            many_targets_and_paths(big, 35_000), [R_GUN], Path(tmp), command="inspect"
        )
        rows.append(
            f"| `inspect`: {big:,} targets x 35,001 paths in targets/releases | {wall:.2f} s | "
            f"{rss / 1024:.1f} MiB | {code} | - |"
        )
    return rows


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
    rows += [
        "",
        "Hostile servers (issue 14): `trustcheck verify --server URL --unsafe-http` against a "
        "loopback server (fixtures/hostile_server.py) serving the genuine `localhost/basic` "
        "with one hostile answer; empty trust dir; GNU time of the verify process.",
        "",
        "| answer | wall time | peak RSS | exit | error code |",
        "|---|--:|--:|--:|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-limits-net-") as tmp:
        for label, faults in _network_cases():
            wall, rss, code, err = measure_network(faults, Path(tmp))
            rows.append(f"| {label} | {wall:.2f} s | {rss / 1024:.1f} MiB | {code} | `{err}` |")
    rows += run_cost()
    return "\n".join([*rows, ""])


if __name__ == "__main__":
    if sys.argv[1:] == ["--cost"]:  # only the issue 14 #5 rows
        print("\n".join(run_cost()))
    else:
        print(run())
