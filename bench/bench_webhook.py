"""Admission webhook benchmark (issue 8 targets), TLS on loopback.

1. **Throughput, warm cache**: closed-loop clients (``CONNECTIONS`` keep-alive TLS
   connections) post the same Deployment review to ``trustcheck serve``'s
   ``/mutate`` for ``SECONDS`` s, against a bare uvicorn app (a raw ASGI
   callable answering a fixed AdmissionReview of the same size) run the same
   way. Target: trustcheck >= 50 % of the bare app.
2. **Latency at 100 reviews/s, warm cache**: an open-loop schedule (one review
   every 10 ms, latency counted from the scheduled time, so queueing is not
   hidden). Target: p99 <= 20 ms.
3. **Cold cache**: every review names a repository the server has never seen
   (``COLD_REPOS`` repositories published by the real notary client to a local
   notary-server), one after another: fetch, verify, cache, decide. Target:
   p99 <= 250 ms.

Both servers are single uvicorn processes with the same TLS certificate and
the same uvicorn defaults; the load generator is this process (asyncio, raw
HTTP/1.1 over TLS, no HTTP library in the loop). Server CPU use is read from
/proc to show which side was the bottleneck.

Run by ``make bench`` (bench/run.py, EXTRA_BENCHMARKS) or alone:
``.venv/bin/python bench/bench_webhook.py``. Environment: ``BENCH_WEBHOOK_SECONDS``
(default 5), ``BENCH_WEBHOOK_RUNS`` (3), ``BENCH_WEBHOOK_COLD`` (100 repositories).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from fixtures.notary_harness import (  # noqa: E402
    NotaryClient,
    NotaryServer,
    TLSMaterial,
    free_port,
    make_delegation_key,
    make_tls,
)

SECONDS = float(os.environ.get("BENCH_WEBHOOK_SECONDS", "5"))
RUNS = int(os.environ.get("BENCH_WEBHOOK_RUNS", "3"))
COLD_REPOS = int(os.environ.get("BENCH_WEBHOOK_COLD", "100"))
CONNECTIONS = 16
RATE = 100.0
PACED_SECONDS = 10.0
TRUSTCHECK = Path(sys.executable).parent / "trustcheck"
APP = "127.0.0.1/bench/app"
OTHER = "127.0.0.1/bench/other"


def log(msg: str) -> None:
    print(f"[bench-webhook] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- servers


def _bare_app(body: bytes) -> Callable[..., Awaitable[None]]:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        more = True
        while more:  # read the request body, as a real handler must
            msg = await receive()
            more = msg.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def serve_bare(port: int, cert: str, key: str, body_file: str) -> None:
    import uvicorn

    body = Path(body_file).read_bytes()
    uvicorn.run(
        _bare_app(body),
        host="127.0.0.1",
        port=port,
        ssl_certfile=cert,
        ssl_keyfile=key,
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="on",
    )


class Server:
    """A server process (trustcheck serve, or the bare app) on a free loopback port."""

    def __init__(self, argv: list[str], port: int, log_file: Path, ca: Path) -> None:
        self.argv = argv
        self.port = port
        self.log_file = log_file
        self.ctx = ssl.create_default_context(cafile=str(ca))
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "NOTARY_"))}
        env.pop("TRUSTCHECK_OFFLINE", None)
        with self.log_file.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env
            )
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_file.read_text()[-2000:]}")
            try:
                status, _ = asyncio.run(_once(self.port, self.ctx, b"GET /healthz HTTP/1.1\r\n"
                                              b"Host: x\r\nContent-Length: 0\r\n\r\n"))
                if status in (200, 404, 405):
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not start")

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def __exit__(self, *exc: object) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --------------------------------------------------------------------------- load generator

_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, ctx: ssl.SSLContext) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        m = _LENGTH.search(head)
        body = await self.reader.readexactly(int(m.group(1))) if m else b""
        return int(head[9:12]), body

    def close(self) -> None:
        self.writer.close()


async def _once(port: int, ctx: ssl.SSLContext, raw: bytes) -> tuple[int, bytes]:
    conn = await Conn.open(port, ctx)
    try:
        return await conn.request(raw)
    finally:
        conn.close()


def _raw(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _check(status: int, body: bytes, expect: bytes) -> None:
    if status != 200 or expect not in body:
        raise RuntimeError(f"unexpected answer {status}: {body[:300]!r}")


async def closed_loop(
    port: int, ctx: ssl.SSLContext, raw: bytes, expect: bytes, seconds: float
) -> int:
    conns = [await Conn.open(port, ctx) for _ in range(CONNECTIONS)]
    for c in conns:  # warm every connection
        _check(*await c.request(raw), expect)
    done = 0
    end = time.perf_counter() + seconds

    async def worker(c: Conn) -> None:
        nonlocal done
        while time.perf_counter() < end:
            _check(*await c.request(raw), expect)
            done += 1

    await asyncio.gather(*(worker(c) for c in conns))
    for c in conns:
        c.close()
    return done


async def paced(
    port: int, ctx: ssl.SSLContext, raws: list[bytes], expect: bytes, rate: float
) -> list[float]:
    """Open loop: request i is due at start + i / rate; latency from when it was due."""
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(8):
        c = await Conn.open(port, ctx)
        _check(*await c.request(raws[0]), expect)
        await pool.put(c)
    latencies: list[float] = []
    start = time.perf_counter() + 0.05

    async def one(i: int, due: float) -> None:
        c = await pool.get()
        status, body = await c.request(raws[i % len(raws)])
        latencies.append(time.perf_counter() - due)
        await pool.put(c)
        _check(status, body, expect)

    tasks = []
    for i in range(len(raws)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait().close()
    return latencies


async def sequential(
    port: int, ctx: ssl.SSLContext, raws: list[bytes], expect: bytes
) -> list[float]:
    conn = await Conn.open(port, ctx)
    out = []
    for raw in raws:
        t0 = time.perf_counter()
        _check(*await conn.request(raw), expect)
        out.append(time.perf_counter() - t0)
    conn.close()
    return out


# --------------------------------------------------------------------------- reviews


def review(images: list[str], uid: str = "bench") -> bytes:
    doc = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "web",
            "namespace": "team",
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:ci:deployer",
                "groups": ["system:serviceaccounts", "system:authenticated"],
            },
            "object": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "team", "labels": {"app": "web"}},
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {
                            "containers": [
                                {
                                    "name": f"c{i}",
                                    "image": image,
                                    "ports": [{"containerPort": 8080}],
                                    "resources": {"requests": {"cpu": "100m"}},
                                }
                                for i, image in enumerate(images)
                            ]
                        },
                    },
                },
            },
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }
    return json.dumps(doc).encode()


# --------------------------------------------------------------------------- set-up


@dataclass
class Setup:
    tls: TLSMaterial
    server: NotaryServer
    cold: list[str]


def publish(server: NotaryServer, work: Path) -> list[str]:
    pub = NotaryClient.for_server(work / "publisher", server)
    keys = {n: make_delegation_key(work / "keys", n) for n in ("alice", "bob")}
    pub.init_and_publish(APP)
    pub.delegation_add(APP, "targets/releases", [k.public for k in keys.values()])
    for name, key in keys.items():
        pub.delegation_add(APP, f"targets/{name}", [key.public])
        pub.key_import(key.private, f"targets/{name}")
    roles = ["targets/releases", "targets/alice", "targets/bob"]
    pub.addhash(APP, "v1", 100, hashlib.sha256(b"app").hexdigest(), roles)
    pub.publish(APP)
    pub.init(OTHER)
    pub.addhash(OTHER, "v1", 100, hashlib.sha256(b"other").hexdigest())
    pub.publish(OTHER)
    cold = [f"127.0.0.1/bench-cold/app{i:03d}" for i in range(COLD_REPOS)]
    for n, gun in enumerate(cold, start=1):
        pub.init(gun)
        pub.stage_bulk(gun, [("v1", 100, hashlib.sha256(gun.encode()).hexdigest())])
        pub.publish(gun)
        if n % 25 == 0:
            log(f"published {n}/{len(cold)} cold repositories")
    return cold


def trustcheck_server(work: Path, tls: TLSMaterial, notary: NotaryServer, name: str) -> Server:
    base = work / name
    base.mkdir()
    policy = base / "policy.yaml"
    policy.write_text(
        f"version: 1\ndefaults:\n  trust:\n    server: {notary.url}\nrules:\n"
        f"  - name: two\n    pattern: {APP}\n    signers: [alice, bob]\n"
        "  - name: signed\n    pattern: 127.0.0.1/**\n"
    )
    config = base / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "deadline_seconds": 8,
                "cache": {"ttl_seconds": 900, "max_entries": 5000},
                "upstream": {"tls_ca": str(tls.ca_cert)},
            }
        )
    )
    port = free_port()
    argv = [
        str(TRUSTCHECK), "serve", "--policy", str(policy), "--config", str(config),
        "--tls-cert", str(tls.server_cert), "--tls-key", str(tls.server_key),
        "--host", "127.0.0.1", "--port", str(port), "--trust-dir", str(base / "trust"),
    ]
    return Server(argv, port, base / "server.log", tls.ca_cert)


def bare_server(work: Path, tls: TLSMaterial, body: bytes) -> Server:
    body_file = work / "bare-response.json"
    body_file.write_bytes(body)
    port = free_port()
    argv = [
        sys.executable, str(Path(__file__).resolve()), "--serve-bare", "--port", str(port),
        "--cert", str(tls.server_cert), "--key", str(tls.server_key), "--body", str(body_file),
    ]
    return Server(argv, port, work / "bare.log", tls.ca_cert)


# --------------------------------------------------------------------------- measuring


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def measure() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-webhook-") as tmp:
        work = Path(tmp)
        tls = make_tls(work / "tls")
        with NotaryServer(work / "notary", tls=tls) as notary:
            t0 = time.monotonic()
            cold = publish(notary, work)
            log(f"published {len(cold) + 2} repositories in {time.monotonic() - t0:.0f}s")
            images = [f"{APP}:v1", f"{OTHER}:v1"]
            raw = _raw("/mutate", review(images))
            expect = b'"allowed":true'
            ctx = ssl.create_default_context(cafile=str(tls.ca_cert))
            with trustcheck_server(work, tls, notary, "warm") as tc:
                status, answer = asyncio.run(_once(tc.port, tc.ctx, raw))
                _check(status, answer, expect)
                if b'"patch"' not in answer:
                    raise RuntimeError(f"no patch in {answer[:300]!r}")
                with bare_server(work, tls, answer) as bare:
                    tput: dict[str, list[float]] = {"bare": [], "trustcheck": []}
                    cpu: dict[str, list[float]] = {"bare": [], "trustcheck": []}
                    capacity: dict[str, list[float]] = {"bare": [], "trustcheck": []}
                    for r in range(RUNS):
                        for label, srv in (("bare", bare), ("trustcheck", tc)):
                            c0, w0 = srv.cpu_seconds(), time.perf_counter()
                            n = asyncio.run(closed_loop(srv.port, ctx, raw, expect, SECONDS))
                            wall = time.perf_counter() - w0
                            used = srv.cpu_seconds() - c0
                            tput[label].append(n / SECONDS)
                            cpu[label].append(used / wall)
                            capacity[label].append(n / used)
                            log(
                                f"run {r + 1}: {label} {n / SECONDS:.0f} reviews/s, server CPU "
                                f"{used / wall:.0%}, {used / n * 1e6:.0f} us CPU per review"
                            )
                    count = int(RATE * PACED_SECONDS)
                    paced_bare = asyncio.run(paced(bare.port, ctx, [raw] * count, expect, RATE))
                    paced_tc = asyncio.run(paced(tc.port, ctx, [raw] * count, expect, RATE))
            log("cold reviews")
            with trustcheck_server(work, tls, notary, "cold") as tc:
                # a server that has been running: one review done, its notary session open
                asyncio.run(_once(tc.port, tc.ctx, raw))
                raws = [_raw("/mutate", review([f"{gun}:v1"], uid=gun)) for gun in cold]
                cold_lat = asyncio.run(sequential(tc.port, ctx, raws, expect))
    return {
        "throughput": tput,
        "cpu": cpu,
        "capacity": capacity,
        "paced_bare": paced_bare,
        "paced_trustcheck": paced_tc,
        "cold": cold_lat,
    }


def report(m: dict[str, Any]) -> str:
    bare = statistics.median(m["throughput"]["bare"])
    tc = statistics.median(m["throughput"]["trustcheck"])
    cap_bare = statistics.median(m["capacity"]["bare"])
    cap_tc = statistics.median(m["capacity"]["trustcheck"])
    # the verdict uses the lower ratio: a load generator that cannot saturate the
    # faster server makes the plain throughput ratio look better than it is
    ratio = min(tc / bare, cap_tc / cap_bare)
    pt, pb, cold = m["paced_trustcheck"], m["paced_bare"], m["cold"]
    p99, cold99 = _pct(pt, 99) * 1000, _pct(cold, 99) * 1000

    def ok(good: bool) -> str:
        return "met" if good else "**not met**"

    def ms(values: list[float], p: float) -> str:
        return f"{_pct(values, p) * 1000:.1f} ms"

    cpu_b = statistics.median(m["cpu"]["bare"]) * 100
    cpu_t = statistics.median(m["cpu"]["trustcheck"]) * 100
    return "\n".join(
        [
            "## Admission webhook (issue 8)",
            "",
            "`trustcheck serve` (one uvicorn process, TLS, policy with a two-signer rule) "
            "answering `POST /mutate` for a Deployment with two containers (both verified, "
            "both pinned by a JSON Patch, one JSON log line per review), against a bare uvicorn "
            "app (raw ASGI, same TLS certificate and uvicorn settings) answering the same "
            "AdmissionReview bytes. Load: this machine, an asyncio client speaking raw "
            f"HTTP/1.1 over TLS. Throughput: {CONNECTIONS} keep-alive connections, closed "
            f"loop, {SECONDS:g} s, median of {RUNS} runs. Reproduce: `make bench` (or "
            "`.venv/bin/python bench/bench_webhook.py`).",
            "",
            "| measurement | bare uvicorn | trustcheck serve | target |",
            "|---|--:|--:|---|",
            f"| throughput, warm cache | {bare:.0f} reviews/s | {tc:.0f} reviews/s "
            f"({tc / bare:.0%}) | |",
            f"| server CPU during the throughput runs | {cpu_b:.0f} % of a core | "
            f"{cpu_t:.0f} % of a core | |",
            f"| server CPU per review (reviews per CPU-second) | {1e6 / cap_bare:.0f} us "
            f"({cap_bare:.0f}) | {1e6 / cap_tc:.0f} us ({cap_tc:.0f}, {cap_tc / cap_bare:.0%}) | |",
            f"| **throughput ratio** (the lower of the two above) | | **{ratio:.0%}** | "
            f">= 50 %: {ok(ratio >= 0.5)} |",
            f"| latency at {RATE:g} reviews/s, warm (p50 / p99 / max) | {ms(pb, 50)} / "
            f"{ms(pb, 99)} / {ms(pb, 100)} | {ms(pt, 50)} / **{ms(pt, 99)}** / {ms(pt, 100)} | "
            f"p99 <= 20 ms: {ok(p99 <= 20)} |",
            f"| cold: cache miss, {len(cold)} new repositories one after another (p50 / p99 / "
            f"max) | | {ms(cold, 50)} / **{ms(cold, 99)}** / {ms(cold, 100)} | "
            f"p99 <= 250 ms: {ok(cold99 <= 250)} |",
            "",
            f"uvicorn parsed HTTP with {_parser()} (uvicorn alone uses h11; with httptools, "
            "`uvicorn[standard]`, both servers need less CPU per request). "
            "Open loop at the fixed rate: latency is counted from when each review was due, "
            "so waiting for a busy connection is included. A cold review makes the requests "
            "of a cold fetch to the local notary-server (root, timestamp, snapshot, targets), "
            "verifies, writes the trust cache and decides.",
            "",
        ]
    )


# --------------------------------------------------------------------------- connection limits

FLOOD = int(os.environ.get("BENCH_WEBHOOK_FLOOD", "1500"))
SLOW = 200
BIG_BODIES = 32


def _vm(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of ``pid`` in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) / 1024
    return out


def limits_server(work: Path, tls: TLSMaterial, name: str, server: dict[str, Any]) -> Server:
    """trustcheck serve with an allow-everything policy (no Notary server needed)."""
    base = work / name
    base.mkdir()
    policy = base / "policy.yaml"
    policy.write_text("version: 1\nrules:\n  - name: all\n    pattern: '**'\n    action: allow\n")
    config = base / "config.yaml"
    config.write_text(json.dumps({"server": server, "logging": {"reviews": "none"}}))
    port = free_port()
    argv = [
        str(TRUSTCHECK), "serve", "--policy", str(policy), "--config", str(config),
        "--tls-cert", str(tls.server_cert), "--tls-key", str(tls.server_key),
        "--host", "127.0.0.1", "--port", str(port), "--trust-dir", str(base / "trust"),
    ]
    return Server(argv, port, base / "server.log", tls.ca_cert)


async def _closed(reader: asyncio.StreamReader, within: float) -> float | None:
    """Seconds until the server closed the connection (None: still open after ``within``)."""
    t0 = time.monotonic()
    try:
        while await asyncio.wait_for(reader.read(65536), timeout=within):
            pass
    except (ConnectionError, ssl.SSLError):
        pass
    except TimeoutError:
        return None
    return time.monotonic() - t0


async def _flood(srv: Server, raw: bytes, within: float) -> dict[str, Any]:
    assert srv.proc is not None
    pid = srv.proc.pid
    before = _vm(pid)["VmRSS"]
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def one() -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            conns.append(await asyncio.open_connection("127.0.0.1", srv.port, ssl=srv.ctx))

    t0 = time.monotonic()
    await asyncio.gather(*(one() for _ in range(FLOOD)))
    opened = len(conns)
    status, _body = await _once(srv.port, srv.ctx, raw)  # a review during the flood
    held = _vm(pid)
    closes = await asyncio.gather(*(_closed(r, within) for r, _ in conns))
    for _, w in conns:
        w.close()
    done = [c for c in closes if c is not None]
    return {
        "before": before,
        "peak": held["VmHWM"],
        "held": held["VmRSS"],
        "after": _vm(pid)["VmRSS"],
        "opened": opened,
        "review_status": status,
        "closed": len(done),
        "close_max": max(done) if done else None,
        "seconds": time.monotonic() - t0,
    }


async def _slowloris(srv: Server, raw: bytes, within: float) -> dict[str, Any]:
    conns = [await asyncio.open_connection("127.0.0.1", srv.port, ssl=srv.ctx)
             for _ in range(SLOW)]
    stop = False

    async def drip(w: asyncio.StreamWriter) -> None:
        data = b"POST /validate HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
        try:
            for i in range(len(data)):
                if stop:
                    return
                w.write(data[i : i + 1])
                await w.drain()
                await asyncio.sleep(0.5)
        except (ConnectionError, ssl.SSLError, RuntimeError):
            return

    tasks = [asyncio.create_task(drip(w)) for _, w in conns]
    status, _ = await _once(srv.port, srv.ctx, raw)
    closes = await asyncio.gather(*(_closed(r, within) for r, _ in conns))
    stop = True
    for t in tasks:
        t.cancel()
    for _, w in conns:
        w.close()
    done = [c for c in closes if c is not None]
    return {"review_status": status, "closed": len(done), "close_max": max(done) if done else None}


async def _big_bodies(srv: Server, size: int) -> dict[str, Any]:
    """BIG_BODIES reviews of ``size`` bytes at once (a Pod with a large annotation)."""
    assert srv.proc is not None
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "big", "namespace": "team", "annotations": {"x": ""}},
           "spec": {"containers": [{"name": "c", "image": "example.com/app:v1"}]}}
    doc = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
           "request": {"uid": "b", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                       "resource": {"group": "", "version": "v1", "resource": "pods"},
                       "namespace": "team", "operation": "CREATE", "object": pod,
                       "userInfo": {"username": "u"}}}
    base_len = len(json.dumps(doc))
    pod["metadata"]["annotations"]["x"] = "y" * (size - base_len - 64)  # type: ignore[index]
    raw = _raw("/validate", json.dumps(doc).encode())
    before = _vm(srv.proc.pid)["VmRSS"]
    results = await asyncio.gather(*(_once(srv.port, srv.ctx, raw) for _ in range(BIG_BODIES)))
    vm = _vm(srv.proc.pid)
    return {"before": before, "peak": vm["VmHWM"], "after": vm["VmRSS"],
            "statuses": sorted({s for s, _ in results}), "body": len(raw)}


def measure_limits() -> dict[str, Any]:
    from trustcheck.webhook.config import DEFAULT_MAX_BODY, ServerLimits

    d = ServerLimits()
    out: dict[str, Any] = {"defaults": d, "max_body": DEFAULT_MAX_BODY}
    raw = _raw("/validate", review(["example.com/app:v1"]))
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as tmp:
        work = Path(tmp)
        tls = make_tls(work / "tls")
        within = d.request_timeout + 30
        with limits_server(work, tls, "flood", {}) as srv:
            asyncio.run(_once(srv.port, srv.ctx, raw))
            out["flood"] = asyncio.run(_flood(srv, raw, within))
            log(f"flood with the defaults: {out['flood']}")
        # the limits lifted as far as the config allows (asyncio's 60 s handshake
        # timeout, no request timeout to speak of): what the defaults save
        lifted = {"max_connections": 100_000, "request_timeout_seconds": 300,
                  "tls_handshake_timeout_seconds": 120}
        with limits_server(work, tls, "lifted", lifted) as srv:
            asyncio.run(_once(srv.port, srv.ctx, raw))
            out["lifted"] = asyncio.run(_flood(srv, raw, 3.0))
            log(f"flood with the limits lifted: {out['lifted']}")
        with limits_server(work, tls, "slow", {}) as srv:
            asyncio.run(_once(srv.port, srv.ctx, raw))
            out["slow"] = asyncio.run(_slowloris(srv, raw, within))
            log(f"slowloris: {out['slow']}")
        with limits_server(work, tls, "bodies", {"max_concurrent_requests": BIG_BODIES}) as srv:
            asyncio.run(_once(srv.port, srv.ctx, raw))
            out["bodies"] = asyncio.run(_big_bodies(srv, DEFAULT_MAX_BODY))
            log(f"big bodies: {out['bodies']}")
    return out


def report_limits(m: dict[str, Any]) -> str:
    d = m["defaults"]
    f, lifted, slow, b = m["flood"], m["lifted"], m["slow"], m["bodies"]
    per_body = (b["peak"] - b["before"]) / BIG_BODIES / (b["body"] / (1 << 20))

    def closed(x: dict[str, Any], n: int) -> str:
        if x["close_max"] is None:
            return f"0 of {n} closed"
        return f"{x['closed']} of {n} closed, the last after {x['close_max']:.1f} s"

    return "\n".join(
        [
            "## Admission webhook: connection limits (issue 17)",
            "",
            f"`trustcheck serve` with the default `server:` limits (max_connections "
            f"{d.max_connections}, request_timeout_seconds {d.request_timeout:g}, "
            f"tls_handshake_timeout_seconds {d.tls_handshake_timeout:g}, "
            f"max_concurrent_requests {d.max_concurrent_requests}) and an allow-everything "
            "policy; RSS from /proc/PID/status (VmHWM: the peak). Reproduce: "
            "`.venv/bin/python bench/bench_webhook.py --limits`.",
            "",
            "| scenario | RSS before | peak RSS | RSS after | connections | review meanwhile |",
            "|---|--:|--:|--:|---|---|",
            f"| {FLOOD} idle TLS connections, defaults | {f['before']:.0f} MiB | "
            f"{f['peak']:.0f} MiB | {f['after']:.0f} MiB | {f['opened']} completed TLS; "
            f"{closed(f, f['opened'])} | HTTP {f['review_status']} |",
            f"| {FLOOD} idle TLS connections, limits lifted | {lifted['before']:.0f} MiB | "
            f"{lifted['peak']:.0f} MiB | {lifted['after']:.0f} MiB | {lifted['opened']} "
            f"completed TLS; {closed(lifted, lifted['opened'])} within 3 s | "
            f"HTTP {lifted['review_status']} |",
            f"| {SLOW} clients dripping a request head (1 byte / 0.5 s) | | | | "
            f"{closed(slow, SLOW)} | HTTP {slow['review_status']} |",
            f"| {BIG_BODIES} reviews of {b['body'] / (1 << 20):.1f} MiB at once | "
            f"{b['before']:.0f} MiB | {b['peak']:.0f} MiB | {b['after']:.0f} MiB | "
            f"about {per_body:.1f} x the body per request | HTTP {b['statuses']} |",
            "",
        ]
    )


def _parser() -> str:
    import importlib.util

    return "httptools" if importlib.util.find_spec("httptools") is not None else "h11"


def run() -> str:
    return report(measure()) + "\n" + report_limits(measure_limits())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve-bare", action="store_true")
    parser.add_argument("--port", type=int)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--body")
    parser.add_argument("--limits", action="store_true", help="only the connection limits")
    parser.add_argument(
        "--no-limits", action="store_true", help="only throughput, latency and cold reviews"
    )
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.port, args.cert, args.key, args.body)
    elif args.limits:
        print(report_limits(measure_limits()))
    elif args.no_limits:
        print(report(measure()))
    else:
        print(run())
