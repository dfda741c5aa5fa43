"""Audit benchmark: ``trustcheck audit --all`` of a trust dir with 10,000 collections
(issues 7 and 18, P5: <= 30 s and <= 1 GiB peak memory, progress on stderr).

The genuine base is built once with the real notary client against a local
notary-server and cached under ``bench/results/`` (keyed by
:data:`DATA_VERSION` and :data:`GENUINE`, 1,000 collections): 10 teams, each
with its own root key (so the root keys are shared within a team, as with
``docker trust`` on one machine) and a releaser key; every third repository
delegates ``targets/releases`` to the team's releaser, every tenth also has a
``targets/dev`` signer holding a tag Docker does not pull.  A fresh client
then downloads every collection (``notary list``): that cache is the input.
Publishing 10,000 through notary would take about 11 minutes, so the other
9,000 are re-signed copies of the genuine ones under other GUNs
(:func:`load_or_derive`; why and how: the comment above it).  The audit runs at
the build time (``--at``), so the cached data never expires for it.

Measured: the whole command in a fresh process (start-up, verification of
every collection, audit, rendering, writing ``--output``), for the JSON format
(median of :data:`RUNS`; with and without worker processes), the table and
HTML (one run each); peak RSS of the main process and of all its processes.

Run by ``make bench`` (bench/run.py calls :func:`run`) or alone:
``.venv/bin/python bench/bench_audit.py``.  ``BENCH_REBUILD=1`` rebuilds the
data; ``BENCH_AUDIT_COLLECTIONS`` (a multiple of ``BENCH_AUDIT_GENUINE``) and
``BENCH_AUDIT_RUNS`` change the size and the number of runs.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
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
#: the derived data set (copies of the genuine collections, re-signed; see derive())
DERIVED_VERSION = "audit-v2-derived"
#: collections published by the real notary client (the genuine base)
GENUINE = int(os.environ.get("BENCH_AUDIT_GENUINE", "1000"))
#: collections audited: the genuine base plus re-signed copies of it under other GUNs
COLLECTIONS = int(os.environ.get("BENCH_AUDIT_COLLECTIONS", "10000"))
TEAMS = 10
RUNS = int(os.environ.get("BENCH_AUDIT_RUNS", "3"))
WORKERS = 4
#: issue 18 (P5): 10,000 collections in at most 30 s and 1 GiB
TARGET_SECONDS = 30.0
TARGET_RSS_MIB = 1024
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
    for i in range(GENUINE):
        per_team[i % TEAMS].append(i)
    with (
        tempfile.TemporaryDirectory(prefix="trustcheck-bench-audit-") as tmp,
        NotaryServer(Path(tmp) / "server") as server,
    ):
        work = Path(tmp)
        log(f"publishing {GENUINE} collections ({TEAMS} teams) on {server.url}")
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
    """The genuine base (built once with notary), then the derived set when asked for more."""
    data_dir = RESULTS / f"audit-data-{DATA_VERSION}-{GENUINE}"
    meta_path = data_dir / "meta.json"
    meta: dict[str, Any] | None = None
    if meta_path.exists() and os.environ.get("BENCH_REBUILD") != "1":
        meta = json.loads(meta_path.read_text())
        if meta is not None and (
            meta.get("version") != DATA_VERSION or meta.get("collections") != GENUINE
        ):
            meta = None
        else:
            log(f"reusing {GENUINE} genuine collections built {meta['built_at']}")
    if meta is None:
        if data_dir.exists():
            shutil.rmtree(data_dir)
        data_dir.mkdir(parents=True)
        meta = build(data_dir)
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    if COLLECTIONS <= GENUINE:
        return data_dir / "trust", meta
    return load_or_derive(data_dir / "trust", meta)


# --------------------------------------------------------------------------- derived data
#
# 10,000 collections published through notary would take ~11 minutes to build.
# The genuine 1,000 are copied under other GUNs instead (127.0.0.1/audit-copyK/...).
# A copy cannot keep its signatures: notary's root certificate carries the GUN as
# its common name, so trustcheck (like notary) refuses a root.json under another
# GUN. Each copy is therefore re-signed with the test key helpers of the attack
# corpus (fixtures/attacks/keys.py, deterministic keys): a new root certificate for
# the new GUN, new targets, snapshot and timestamp keys per (copy, team) -- so root
# keys are again shared within a team -- while the delegation files
# (targets/releases, targets/dev, signed by the team's releaser and dev keys) stay
# byte for byte the genuine ones. Every copy verifies completely: the audit does
# the full work for each of the 10,000.


def _derive_unit(args: tuple[str, str, str, int, list[str]]) -> int:
    """Copy ``guns`` (one team) to copy number ``k``; returns how many were written."""
    from fixtures.attacks.keys import (
        PrivateKey,
        TufKeyEntry,
        cert_pem,
        ed25519_from_seed,
        entry_for,
        make_cert,
        p256_from_seed,
        signature,
    )
    from fixtures.attacks.repo import wire

    src_root, dst_root, at_text, k, guns = args
    at = dt.datetime.strptime(at_text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    team = guns[0].split("/")[2]
    seed = f"trustcheck bench audit copy {k} {team}".encode()
    root_key = p256_from_seed(seed + b" root")
    role_keys: dict[str, PrivateKey] = {
        "targets": p256_from_seed(seed + b" targets"),
        "snapshot": p256_from_seed(seed + b" snapshot"),
        "timestamp": ed25519_from_seed(seed + b" timestamp"),
    }
    role_entries = {role: entry_for(key) for role, key in role_keys.items()}

    def meta_of(raw: bytes) -> dict[str, Any]:
        return {
            "hashes": {
                "sha256": base64.b64encode(hashlib.sha256(raw).digest()).decode(),
                "sha512": base64.b64encode(hashlib.sha512(raw).digest()).decode(),
            },
            "length": len(raw),
        }

    def resign(doc: dict[str, Any], keyid: str, key: Any) -> bytes:
        return wire(doc, [signature(keyid, key, doc)])

    for gun in guns:
        new_gun = gun.replace("127.0.0.1/audit/", f"127.0.0.1/audit-copy{k}/", 1)
        src = Path(src_root) / gun / "metadata"
        dst = Path(dst_root) / new_gun / "metadata"
        dst.mkdir(parents=True, exist_ok=True)
        if (src / "targets").is_dir():  # delegations: the genuine files, unchanged
            shutil.copytree(src / "targets", dst / "targets")
        cert = make_cert(
            root_key, new_gun, at - dt.timedelta(hours=1), at + dt.timedelta(days=3650)
        )
        root_entry = TufKeyEntry("ecdsa-x509", cert_pem(cert))
        root = json.loads((src / "root.json").read_bytes())["signed"]
        root["keys"] = {root_entry.id: root_entry.to_json()}
        root["roles"]["root"]["keyids"] = [root_entry.id]
        for role, entry in role_entries.items():
            root["keys"][entry.id] = entry.to_json()
            root["roles"][role]["keyids"] = [entry.id]
        root_raw = resign(root, root_entry.id, root_key)
        targets = json.loads((src / "targets.json").read_bytes())["signed"]
        targets_raw = resign(targets, role_entries["targets"].id, role_keys["targets"])
        snapshot = json.loads((src / "snapshot.json").read_bytes())["signed"]
        snapshot["meta"]["root"] = meta_of(root_raw)
        snapshot["meta"]["targets"] = meta_of(targets_raw)
        snapshot_raw = resign(snapshot, role_entries["snapshot"].id, role_keys["snapshot"])
        timestamp = json.loads((src / "timestamp.json").read_bytes())["signed"]
        timestamp["meta"]["snapshot"] = meta_of(snapshot_raw)
        timestamp_raw = resign(timestamp, role_entries["timestamp"].id, role_keys["timestamp"])
        for name, raw in (
            ("root", root_raw),
            ("targets", targets_raw),
            ("snapshot", snapshot_raw),
            ("timestamp", timestamp_raw),
        ):
            (dst / f"{name}.json").write_bytes(raw)
    return len(guns)


def load_or_derive(genuine: Path, base: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    if COLLECTIONS % GENUINE:
        raise HarnessError(f"BENCH_AUDIT_COLLECTIONS must be a multiple of {GENUINE}")
    data_dir = RESULTS / f"audit-data-{DERIVED_VERSION}-{COLLECTIONS}"
    meta_path = data_dir / "meta.json"
    if meta_path.exists() and os.environ.get("BENCH_REBUILD") != "1":
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        if (
            meta.get("version") == DERIVED_VERSION
            and meta.get("collections") == COLLECTIONS
            and meta.get("base_built_at") == base["built_at"]
        ):
            log(f"reusing {COLLECTIONS} derived collections")
            return data_dir / "trust", meta
    if data_dir.exists():
        shutil.rmtree(data_dir)
    t0 = time.monotonic()
    trust = data_dir / "trust"
    shutil.copytree(genuine, trust)
    src_root = genuine / "tuf"
    guns = sorted(
        str(p.parent.relative_to(src_root)) for p in src_root.glob("*/audit/*/*/metadata")
    )
    by_team: dict[str, list[str]] = {}
    for gun in guns:
        by_team.setdefault(gun.split("/")[2], []).append(gun)
    units = [
        (str(src_root), str(trust / "tuf"), base["at"], k, team_guns)
        for k in range(1, COLLECTIONS // GENUINE)
        for team_guns in by_team.values()
    ]
    log(f"deriving {COLLECTIONS - len(guns)} re-signed copies of {len(guns)} collections")
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        written = sum(pool.map(_derive_unit, units))
    seconds = round(time.monotonic() - t0, 1)
    log(f"derived {written} collections in {seconds}s")
    meta = {
        "version": DERIVED_VERSION,
        "collections": len(guns) + written,
        "genuine": len(guns),
        "base_built_at": base["built_at"],
        "built_at": base["built_at"],
        "at": base["at"],
        "build_seconds": base["build_seconds"],
        "derive_seconds": seconds,
    }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return trust, meta


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "NOTARY_"))}
    env.pop("TRUSTCHECK_OFFLINE", None)
    env["XDG_CONFIG_HOME"] = str(home / "config")  # no pin file of the user's
    env["XDG_STATE_HOME"] = str(home / "state")
    env["PYTHONPYCACHEPREFIX"] = str(RESULTS / "pycache")
    return env


GNU_TIME = "/usr/bin/time"
SAMPLE_SECONDS = 0.05


def _tree_rss_kib(pid: int) -> int:
    """Sum of VmRSS of ``pid`` and its descendants (Linux /proc); 0 when gone."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def audit_once(
    trust: Path, at: str, fmt: str, out: Path, home: Path, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One ``trustcheck audit --all`` in a fresh process: wall seconds, peak RSS of the
    main process (GNU time), peak summed RSS of the process tree (main and workers,
    sampled every 50 ms; copy-on-write pages count in each process, so an upper
    bound), and the progress lines it wrote on stderr."""
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
    rss_file = home / "rss"
    start = time.perf_counter()
    proc = subprocess.Popen(
        [GNU_TIME, "-f", "%M %U %S", "-o", str(rss_file), "--", *args],
        env=_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss_kib(proc.pid))
            stop.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = proc.communicate()
    elapsed = time.perf_counter() - start
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"trustcheck audit failed ({proc.returncode}): {stderr[-2000:]}")
    # GNU time: the main process, with the worker processes it waited for in %U %S
    main_rss, user, system = rss_file.read_text().strip().splitlines()[-1].split()
    main_kib = int(main_rss)
    progress = [ln for ln in stderr.splitlines() if ln.startswith("audited ")]
    return {
        "wall": elapsed,
        "main_kib": main_kib,
        "tree_kib": max(peak, main_kib),
        "cpu": float(user) + float(system),
        "progress": progress,
    }


def run() -> str:
    """Build (once), measure, and return the markdown section for docs/performance.md."""
    trust, meta = load_or_build()
    samples: dict[str, list[dict[str, Any]]] = {v[0]: [] for v in VARIANTS}
    load = [f"{os.getloadavg()[0]:.1f}"]
    summary: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        home = Path(tmp)
        audit_once(trust, meta["at"], "json", home / "warmup.json", home)  # page cache, .pyc
        for r in range(RUNS):
            for i, (label, fmt, extra) in enumerate(VARIANTS):
                if i and r:  # the other variants once: 10,000 collections take a while
                    continue
                got = audit_once(trust, meta["at"], fmt, home / f"r.{fmt}", home, extra)
                samples[label].append(got)
            first = VARIANTS[0][0]
            log(f"run {r + 1}/{RUNS}: {first} {samples[first][-1]['wall']:.2f}s")
        load.append(f"{os.getloadavg()[0]:.1f}")
        doc = json.loads((home / "r.json").read_text())
        summary = doc["summary"]
        out_mb = (home / "r.json").stat().st_size / 1e6
    wall = {k: statistics.median(x["wall"] for x in v) for k, v in samples.items()}
    main_rss = {k: max(x["main_kib"] for x in v) for k, v in samples.items()}
    tree_rss = {k: max(x["tree_kib"] for x in v) for k, v in samples.items()}
    cpu = {k: statistics.median(x["cpu"] for x in v) for k, v in samples.items()}
    n = meta["collections"]
    first = VARIANTS[0][0]
    figure, figure_rss = wall[first], max(tree_rss.values()) / 1024
    progress = samples[first][-1]["progress"]
    verdict = "met" if figure <= TARGET_SECONDS else "**not met**"
    rss_verdict = "met" if figure_rss <= TARGET_RSS_MIB else "**not met**"
    genuine = meta.get("genuine", n)
    if genuine < n:
        data = (
            f"{genuine:,} collections published by the real notary client ({TEAMS} teams) and "
            f"downloaded by a fresh client, plus {n - genuine:,} re-signed copies of them under "
            "other GUNs (`127.0.0.1/audit-copyK/...`: a new root certificate for each GUN, new "
            "targets, snapshot and timestamp keys per copy and team, made with the attack "
            "corpus's test key helpers `fixtures/attacks/keys.py`; the delegation files stay "
            "the genuine ones; every copy verifies, so each of the "
            f"{n:,} collections is fully verified and audited; derived in "
            f"{meta.get('derive_seconds', 0):.0f} s, see `derive()` in bench/bench_audit.py)"
        )
    else:
        data = (
            f"{n:,} collections published by the real notary client ({TEAMS} teams) and "
            "downloaded by a fresh client"
        )
    lines = [
        f"## Signer-key audit of {n:,} collections (issues 7 and 18, P5)",
        "",
        f"`trustcheck audit --all` of a trust dir with {data}: {summary['signed_tags']:,} "
        f"signed tags, {summary['keys']:,} keys, {summary['verified']:,} collections verified. "
        "One fresh process per run (start-up, verification, audit, rendering, writing "
        f"`--output`); the JSON document is {out_mb:.0f} MB. Median of {RUNS} runs for the "
        f"first row, one run for the others, on {os.cpu_count()} CPUs. Peak memory: GNU time's "
        "`%M` of the main process, and the sum of the RSS of the main process and its worker "
        "processes sampled every 50 ms (copy-on-write pages counted in each: an upper bound). "
        "Reproduce: `make bench` (or `.venv/bin/python bench/bench_audit.py`).",
        "",
        "| run | wall time | per collection | CPU time, all processes | peak RSS, main "
        "| peak RSS, all processes |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for label, _, _ in VARIANTS:
        lines.append(
            f"| {label} | {wall[label]:.2f} s | {wall[label] / n * 1000:.2f} ms | "
            f"{cpu[label]:.1f} s | {main_rss[label] / 1024:.0f} MiB | "
            f"{tree_rss[label] / 1024:.0f} MiB |"
        )
    lines += [
        "",
        f"Findings: {summary['findings']['error']} errors, {summary['findings']['warning']} "
        f"warnings. CPU time (user + system of the main process and the workers it waited "
        "for, GNU time) does not depend on what else the machine runs; wall time does: "
        f"load average {' / '.join(load)}. "
        f"Target <= {TARGET_SECONDS:.0f} s: {verdict} (**{figure:.2f} s**); "
        f"<= {TARGET_RSS_MIB / 1024:.0f} GiB peak memory: {rss_verdict} "
        f"(**{figure_rss:.0f} MiB**, all processes). Progress on stderr (not a terminal: a "
        f"line every 10%): {len(progress)} lines, "
        + (f"`{progress[0]}` ... `{progress[-1]}`." if progress else "**none**.")
        + "",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
