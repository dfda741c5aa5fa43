"""Connection limits of `trustcheck serve` (docs/webhook.md#connection-limits), over TLS.

A real `trustcheck serve` process (uvicorn, TLS) verifying a repository
published by the real notary client to a real notary-server, hit by hostile
clients on loopback:

* a flood of 1,500 idle TLS connections: the server's peak RSS (VmHWM from
  /proc/PID/status) stays under a bound derived from ``server.max_connections``
  (without the limits it grew by ~300 KiB per connection, 45 -> 503 MB), every
  idle connection is closed, and reviews sent during the flood are answered;
* slowloris clients dripping a request head or a body: closed after
  ``server.request_timeout_seconds``, reviews answered meanwhile;
* requests past ``server.max_concurrent_requests`` get a 503 without their
  body being read; a head past ``server.max_header_bytes`` is a 400; silent
  sockets that never start TLS are closed after the handshake timeout and
  do not keep their place.

The config checks of the ``server:`` section are at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import admission_review, pod_spec, workload

from fixtures.notary_harness import (
    NotaryClient,
    NotaryServer,
    TLSMaterial,
    make_tls,
    missing_notary_binaries,
)

sys.path.insert(0, str(Path(__file__).parent))
from test_webhook_server import Webhook

pytestmark = pytest.mark.integration

REG = "registry.example.com"
GUN = f"{REG}/team/app"
MAX_CONNECTIONS = 64
MAX_REQUESTS = 4
REQUEST_TIMEOUT = 2.0
HANDSHAKE_TIMEOUT = 1.0
FLOOD = 1500


@dataclass
class World:
    tls: TLSMaterial
    webhook: Webhook
    digest: str

    @property
    def pid(self) -> int:
        assert self.webhook.proc is not None
        return self.webhook.proc.pid


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    missing = missing_notary_binaries()
    if missing:
        pytest.skip("!!! WEBHOOK LIMIT TESTS SKIPPED: missing " + ", ".join(missing) + " !!!")
    base = tmp_path_factory.mktemp("limits")
    tls = make_tls(base / "tls")
    with NotaryServer(base / "notary", tls=tls) as server:
        pub = NotaryClient.for_server(base / "publisher", server)
        pub.init(GUN)
        digest = hashlib.sha256(b"app v1").hexdigest()
        pub.addhash(GUN, "v1", 6, digest, [])
        pub.publish(GUN)
        policy = base / "policy.yaml"
        policy.write_text(
            f"version: 1\ndefaults:\n  trust:\n    server: {server.url}\nrules:\n"
            f"  - name: team\n    pattern: \"{REG}/team/*\"\n"
        )
        config = {
            "deadline_seconds": 5,
            "upstream": {"tls_ca": str(tls.ca_cert), "retries": 0},
            "server": {
                "max_connections": MAX_CONNECTIONS,
                "max_concurrent_requests": MAX_REQUESTS,
                "request_timeout_seconds": REQUEST_TIMEOUT,
                "tls_handshake_timeout_seconds": HANDSHAKE_TIMEOUT,
                "idle_timeout_seconds": 5,
                "max_header_bytes": 8192,
                "max_body_bytes": 64 * 1024,
            },
            "logging": {"reviews": "denied"},
        }
        webhook = Webhook(base / "serve", tls, policy, config).start()
        try:
            yield World(tls, webhook, "sha256:" + digest)
        finally:
            webhook.stop()


# --------------------------------------------------------------------------- helpers


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of ``pid`` in KiB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


def _review_body(uid: int) -> bytes:
    doc = admission_review(
        "Pod",
        workload("Pod", pod_spec([f"{GUN}:v1"])),
        uid=f"00000000-0000-4000-8000-{uid:012d}",
    )
    return orjson.dumps(doc)


async def _open(w: World, ctx: ssl.SSLContext) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", w.webhook.port, ssl=ctx)


async def _review(w: World, ctx: ssl.SSLContext, uid: int) -> dict[str, Any]:
    """One /validate review on a new connection; the AdmissionReview response."""
    body = _review_body(uid)
    reader, writer = await _open(w, ctx)
    try:
        writer.write(
            b"POST /validate HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
        )
        raw = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw[:300]
    doc: dict[str, Any] = orjson.loads(payload)
    return doc


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    """Whether the server closes the connection (EOF or reset) within ``within`` s
    (a generous wait for the close, not a measurement)."""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), timeout=within)
            if not chunk:
                return True
    except (ConnectionError, ssl.SSLError):
        return True
    except TimeoutError:
        return False


def _metric(w: World, sample: str) -> float:
    """The value of one sample of GET /metrics (0 when absent)."""
    assert w.webhook.client is not None
    for line in w.webhook.client.get("/metrics").text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _allowed(w: World, doc: dict[str, Any]) -> None:
    resp = doc["response"]
    assert resp["allowed"] is True, resp
    assert resp["uid"].startswith("00000000-0000-4000-8000-")


# --------------------------------------------------------------------------- the tests


def test_idle_tls_flood_keeps_memory_bounded_and_reviews_answered(world: World) -> None:
    w = world
    ctx = ssl.create_default_context(cafile=str(w.tls.ca_cert))

    async def run() -> tuple[int, int, list[dict[str, Any]], int]:
        _allowed(w, await _review(w, ctx, 1))  # warm: fetched, verified, cached
        before = _status(w.pid)["VmRSS"]
        conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

        async def one() -> None:
            # closed by the server before or during its handshake: the limit at work
            with contextlib.suppress(OSError, ssl.SSLError):
                conns.append(await _open(w, ctx))

        await asyncio.gather(*(one() for _ in range(FLOOD)))
        # reviews on new connections while the flood holds its sockets open
        during = [await _review(w, ctx, 10 + i) for i in range(5)]
        peak = _status(w.pid)["VmHWM"]
        # every flood connection is closed: evicted, or after the request timeout
        closed = await asyncio.gather(
            *(_closed_by_server(r, REQUEST_TIMEOUT + 20) for r, _ in conns)
        )
        for _, writer in conns:
            writer.close()
        return before, peak, during, sum(1 for c in closed if not c)

    before, peak, during, still_open = asyncio.run(run())
    for doc in during:
        _allowed(w, doc)
    assert still_open == 0
    # at most MAX_CONNECTIONS connections live at once: 512 KiB each is generous
    # (a TLS connection costs ~90 KiB here), plus 48 MiB for everything else;
    # without the limits 1,500 connections cost ~450 MiB
    bound = before + MAX_CONNECTIONS * 512 + 48 * 1024
    assert peak < bound, f"peak RSS {peak} KiB, before {before} KiB, bound {bound} KiB"
    assert w.webhook.alive()
    log = w.webhook.log.read_text()
    assert '"event":"connection-refused"' in log or '"event":"connection-evicted"' in log
    assert "server.max_connections" in log
    closed = sum(
        _metric(w, f'trustcheck_webhook_connections_closed_total{{reason="{r}"}}')
        for r in ("evicted", "refused")
    )
    assert closed >= FLOOD - MAX_CONNECTIONS * 2
    # the one connection open is the one asking for the metrics
    assert _metric(w, "trustcheck_webhook_connections") <= 2


def test_slow_heads_and_bodies_are_closed_while_reviews_go_on(world: World) -> None:
    w = world
    ctx = ssl.create_default_context(cafile=str(w.tls.ca_cert))

    async def drip(writer: asyncio.StreamWriter, data: bytes) -> None:
        try:
            for i in range(len(data)):
                writer.write(data[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0.2)
        except (ConnectionError, ssl.SSLError, RuntimeError):
            return

    async def run() -> tuple[list[bool], list[bool], list[dict[str, Any]]]:
        head = b"POST /validate HTTP/1.1\r\nHost: webhook\r\n" + b"X-Pad: " + b"a" * 400
        heads = [await _open(w, ctx) for _ in range(20)]
        bodies = []
        for _ in range(MAX_REQUESTS - 1):  # below max_concurrent_requests: reviews go on
            r, wr = await _open(w, ctx)
            wr.write(
                b"POST /validate HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n"
                b"Content-Length: 5000\r\n\r\n{"
            )
            bodies.append((r, wr))
        drips = [asyncio.create_task(drip(wr, head)) for _, wr in heads]
        drips += [asyncio.create_task(drip(wr, b" " * 4000)) for _, wr in bodies]
        during = [await _review(w, ctx, 100 + i) for i in range(3)]
        within = REQUEST_TIMEOUT + 20
        heads_closed = await asyncio.gather(*(_closed_by_server(r, within) for r, _ in heads))
        bodies_closed = await asyncio.gather(*(_closed_by_server(r, within) for r, _ in bodies))
        for t in drips:
            t.cancel()
        for _, wr in heads + bodies:
            wr.close()
        return list(heads_closed), list(bodies_closed), during

    heads_closed, bodies_closed, during = asyncio.run(run())
    assert all(heads_closed), heads_closed
    assert all(bodies_closed), bodies_closed
    for doc in during:
        _allowed(w, doc)
    assert '"event":"request-timeout"' in w.webhook.log.read_text()
    timed_out = 'trustcheck_webhook_connections_closed_total{reason="request_timeout"}'
    assert _metric(w, timed_out) >= len(heads_closed) + len(bodies_closed)


def test_requests_past_the_limit_get_503_unread(world: World) -> None:
    w = world
    ctx = ssl.create_default_context(cafile=str(w.tls.ca_cert))

    async def run() -> tuple[list[bytes], dict[str, Any]]:
        # MAX_REQUESTS requests whose bodies never finish hold every request slot
        held = []
        for _ in range(MAX_REQUESTS):
            r, wr = await _open(w, ctx)
            wr.write(
                b"POST /validate HTTP/1.1\r\nHost: webhook\r\nContent-Length: 5000\r\n\r\n{"
            )
            await wr.drain()
            held.append((r, wr))
        await asyncio.sleep(0.3)  # let the server start serving them
        answers = []
        for _ in range(2):
            r, wr = await _open(w, ctx)
            body = _review_body(200)
            wr.write(
                b"POST /validate HTTP/1.1\r\nHost: webhook\r\nContent-Length: %d\r\n\r\n"
                % len(body) + body
            )
            answers.append(await asyncio.wait_for(r.read(), timeout=10))
            wr.close()
        for _, wr in held:
            wr.close()
        await asyncio.sleep(0.3)  # the slots are free again once those are gone
        after = await _review(w, ctx, 201)
        return answers, after

    answers, after = asyncio.run(run())
    for raw in answers:
        head, _, payload = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503"), raw[:200]
        assert b"retry-after: 1" in head.lower()
        assert b"server.max_concurrent_requests" in payload
    _allowed(w, after)
    assert _metric(w, "trustcheck_webhook_busy_total") >= 2
    # liveness is never refused for being busy
    assert w.webhook.client is not None
    assert w.webhook.client.get("/healthz").status_code == 200


def test_oversized_heads_and_bodies_and_silent_sockets(world: World) -> None:
    w = world
    ctx = ssl.create_default_context(cafile=str(w.tls.ca_cert))

    async def run() -> tuple[bytes, bytes, list[bool], dict[str, Any]]:
        r, wr = await _open(w, ctx)
        big = b"X-Big: " + b"b" * 20000
        wr.write(b"POST /validate HTTP/1.1\r\nHost: webhook\r\n" + big + b"\r\n\r\n")
        big_head = await asyncio.wait_for(r.read(), timeout=10)
        wr.close()
        body = b"{" + b" " * (70 * 1024) + b"}"
        r, wr = await _open(w, ctx)
        wr.write(
            b"POST /validate HTTP/1.1\r\nHost: webhook\r\nContent-Length: %d\r\n\r\n" % len(body)
            + body
        )
        big_body = await asyncio.wait_for(r.read(), timeout=10)
        wr.close()
        # more silent plain sockets than max_connections: they never start TLS
        silent = [
            await asyncio.open_connection("127.0.0.1", w.webhook.port)
            for _ in range(MAX_CONNECTIONS + 16)
        ]
        closed = await asyncio.gather(
            *(_closed_by_server(sr, HANDSHAKE_TIMEOUT + 20) for sr, _ in silent)
        )
        for _, sw in silent:
            sw.close()
        # their places are given back: a review goes through
        after = await _review(w, ctx, 300)
        return big_head, big_body, list(closed), after

    big_head, big_body, closed, after = asyncio.run(run())
    assert big_head.startswith(b"HTTP/1.1 400"), big_head[:200]
    assert big_body.startswith(b"HTTP/1.1 413"), big_body[:200]
    assert all(closed)
    _allowed(w, after)
    assert w.webhook.alive()


def test_kept_alive_connections_outlive_the_request_timeout_not_the_idle_timeout(
    world: World,
) -> None:
    """The API server keeps its connections: a quiet spell longer than the request
    timeout does not close one, a spell longer than the idle timeout does."""
    w = world
    ctx = ssl.create_default_context(cafile=str(w.tls.ca_cert))

    async def run() -> tuple[list[dict[str, Any]], bool]:
        r, wr = await _open(w, ctx)
        answers = []
        for uid in (400, 401):
            body = _review_body(uid)
            wr.write(
                b"POST /validate HTTP/1.1\r\nHost: webhook\r\nContent-Length: %d\r\n\r\n"
                % len(body) + body
            )
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), timeout=30)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            answers.append(orjson.loads(await r.readexactly(length)))
            await asyncio.sleep(REQUEST_TIMEOUT + 1)  # quiet, but kept alive
        closed = await _closed_by_server(r, 5 + 20)  # idle_timeout_seconds: 5
        wr.close()
        return answers, closed

    answers, closed = asyncio.run(run())
    for doc in answers:
        _allowed(w, doc)
    assert closed


# --------------------------------------------------------------------------- the config


def test_server_section_defaults_and_checks() -> None:
    from trustcheck.errors import UsageError
    from trustcheck.webhook.config import DEFAULT_MAX_BODY, ServerLimits, parse_config

    cfg = parse_config({})
    assert cfg.limits == ServerLimits()
    assert cfg.max_body_bytes == DEFAULT_MAX_BODY
    cfg = parse_config(
        {
            "server": {
                "max_connections": 10,
                "max_concurrent_requests": 3,
                "idle_timeout_seconds": 7,
                "request_timeout_seconds": 1.5,
                "tls_handshake_timeout_seconds": 2,
                "max_header_bytes": 4096,
                "max_body_bytes": 2048,
            }
        }
    )
    assert cfg.limits == ServerLimits(10, 3, 7.0, 1.5, 2.0, 4096)
    assert cfg.max_body_bytes == 2048
    assert parse_config({"max_body_bytes": 4096}).max_body_bytes == 4096  # the older key
    for doc, words in (
        ({"server": {"max_connections": 0}}, "server.max_connections: must be between 1"),
        ({"server": {"request_timeout_seconds": "10"}}, "server.request_timeout_seconds: must"),
        ({"server": {"max_connection": 5}}, "server.max_connection: unknown key"),
        ({"server": {"max_header_bytes": 10}}, "server.max_header_bytes: must be between"),
        ({"server": [1]}, "server: must be a mapping"),
        (
            {"max_body_bytes": 4096, "server": {"max_body_bytes": 4096}},
            "server.max_body_bytes: is also set at the top level",
        ),
    ):
        with pytest.raises(UsageError) as info:
            parse_config(doc, "c.yaml")
        assert info.value.code == "webhook-config-invalid"
        assert words in info.value.message, info.value.message

