"""Connection limits of ``trustcheck serve`` (``server:``, docs/webhook.md#connection-limits).

uvicorn alone keeps every accepted connection for as long as the client
wants: an idle TLS connection (handshake done, no request) or a client that
drips its request head a byte at a time is never closed, and each costs the
TLS layer's read buffer. 1,500 of them took the server past the Deployment's
512Mi limit. This module bounds that:

* :class:`LimitedServer` keeps at most ``max_connections`` connections
  (TLS handshakes included, :class:`ConnectionTable`). A new connection past
  the limit closes the connection that has waited longest without a request
  in progress (a handshake, an idle or a half-sent request head), so that an
  idle flood cannot lock the API server out; only when every connection is
  serving a request is the new one closed, at once, before any TLS. TLS
  handshakes time out after ``tls_handshake_timeout`` (asyncio's default is
  60 s).
* :class:`LimitedH11` (the HTTP protocol uvicorn runs, h11 underneath): a
  request head and body must arrive within ``request_timeout`` of the
  connection being ready (or of the first byte of a later request on a
  kept-alive connection), else the connection is closed; a request head
  larger than ``max_header_bytes`` is a 400 (h11's limit).
* :func:`limit_requests` answers 503 (``Retry-After``, ``Connection: close``)
  to a request past ``max_concurrent_requests`` without reading its body, so
  that buffered bodies are bounded too (each at most ``max_body_bytes``).
* asyncio gives every TLS connection a 256 KiB read buffer, filled with zeros
  when the connection is accepted; a TLS record carries at most 16 KiB, so
  the connections here read 32 KiB at a time (:class:`_TlsConnection`).

The idle timeout between requests is uvicorn's own ``timeout_keep_alive``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
from asyncio import sslproto
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import uvicorn
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    from trustcheck.webhook.config import ServerLimits

__all__ = [
    "ConnectionMetrics",
    "ConnectionTable",
    "FetchMetrics",
    "LimitedH11",
    "LimitedServer",
    "limit_requests",
    "uvicorn_settings",
]

log = logging.getLogger("trustcheck.webhook.review")

#: the read buffer of each TLS connection (asyncio's default: 256 KiB)
TLS_READ_BUFFER = 32 * 1024

ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


@dataclass(slots=True)
class ConnectionTable:
    """The open connections, oldest first, and what the limits did since start."""

    limits: ServerLimits
    conns: dict[_TlsConnection, None] = field(default_factory=dict)
    refused: int = 0
    evicted: int = 0
    timed_out: int = 0
    busy: int = 0
    #: connections closed by :meth:`make_room` that are not gone yet
    closing: int = 0

    def report(self, what: str, n: int, message: str) -> None:
        """A log line for the 1st, 10th, 100th, ... event of a kind (a flood is
        not a flood of log lines)."""
        if n == 1 or math.log10(n).is_integer():
            log.warning(
                message, extra={"fields": {"event": what, "count": n, "open": len(self.conns)}}
            )

    def make_room(self) -> bool:
        """Whether a new connection may be kept: there is room, or the oldest
        connection without a request in progress is closed for it. Closed
        connections count until they are gone (their memory is freed an event
        loop turn later): past ``max_connections`` plus a quarter, new
        connections are closed before any TLS until those are gone."""
        limit = self.limits.max_connections
        live = len(self.conns)
        if live >= limit + max(8, limit // 4):
            return self._refuse()
        if live - self.closing < limit:
            return True
        for conn in self.conns:
            if not conn.closing and conn.waiting():
                conn.close_now()
                self.evicted += 1
                self.report(
                    "connection-evicted",
                    self.evicted,
                    f"closed a connection with no request in progress: "
                    f"{limit} connections are open (server.max_connections)",
                )
                return True
        return self._refuse()

    def _refuse(self) -> bool:
        self.refused += 1
        self.report(
            "connection-refused",
            self.refused,
            f"new connection closed before TLS: {len(self.conns)} connections are open or "
            "closing, none of them idle (server.max_connections "
            f"{self.limits.max_connections})",
        )
        return False


class _TlsConnection(sslproto.SSLProtocol):
    """asyncio's TLS layer for one accepted connection, in the table from accept
    to close. Its read buffer is 32 KiB instead of 256 KiB (filled with zeros
    for every accepted connection): a TLS record carries at most 16 KiB."""

    max_size = TLS_READ_BUFFER

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        app: LimitedH11,
        ctx: ssl.SSLContext,
        table: ConnectionTable,
        handshake_timeout: float,
    ) -> None:
        super().__init__(
            loop,
            app,
            ctx,
            None,  # type: ignore[arg-type]  # no one waits for the handshake
            server_side=True,
            ssl_handshake_timeout=handshake_timeout,  # type: ignore[arg-type]
        )
        self.app = app
        self.table = table
        self.raw: asyncio.BaseTransport | None = None
        self.closing = False
        table.conns[self] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = transport
        if self.closing:  # evicted before the socket was handed over: no TLS at all
            assert isinstance(transport, asyncio.Transport)
            transport.abort()
            return
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.table.conns.pop(self, None)
        if self.closing:
            self.table.closing -= 1
        super().connection_lost(exc)

    def waiting(self) -> bool:
        """No request in progress: in its TLS handshake, or waiting for (the rest
        of the head of) a request."""
        return self.app.waiting()

    def close_now(self) -> None:
        self.closing = True
        self.table.closing += 1
        raw = self.raw
        if raw is not None and not raw.is_closing():
            assert isinstance(raw, asyncio.Transport)
            raw.abort()


class _Refused(asyncio.Protocol):
    """A connection past ``max_connections`` while every open one is serving a
    request: closed as soon as it is accepted, before any TLS."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()  # nothing was read or written: closes at once


class LimitedH11(H11Protocol):
    """uvicorn's h11 protocol with a request read timeout."""

    limits: ServerLimits
    table: ConnectionTable

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._read_timer: asyncio.TimerHandle | None = None
        self._ready = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # the TLS handshake is done
        self._ready = True
        self._arm()

    def _states(self) -> tuple[str, str]:
        """h11's states of the client and of this side, by name (``IDLE``,
        ``SEND_BODY``, ``DONE``, ...): the HTTP library stays uvicorn's business
        (tests/unit/test_http_stack.py)."""
        return self.conn.their_state.__name__, self.conn.our_state.__name__

    def waiting(self) -> bool:
        if not self._ready:
            return True  # in the TLS handshake
        their, ours = self._states()
        # IDLE: no complete request head yet (a new, kept-alive or slow connection);
        # DONE on both sides: a finished cycle not yet restarted
        return their == "IDLE" or (their == "DONE" and ours == "DONE")

    def _arm(self) -> None:
        if self._read_timer is None:
            self._read_timer = self.loop.call_later(self.limits.request_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._states()[0] in ("IDLE", "SEND_BODY"):
            self._arm()  # a request is on its way: it has request_timeout to arrive
        else:
            self._disarm()  # received whole (DONE), or the connection is over

    def _too_slow(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        table = self.table
        table.timed_out += 1
        table.report(
            "request-timeout",
            table.timed_out,
            f"connection closed: its request did not arrive within "
            f"{self.limits.request_timeout:g} s (server.request_timeout_seconds)",
        )
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


class LimitedServer(uvicorn.Server):
    """uvicorn's server with the connection table and TLS handshake timeout on
    its listening sockets."""

    def __init__(self, config: uvicorn.Config, table: ConnectionTable) -> None:
        self.limits = table.limits
        self.table = table
        protocol = type("LimitedH11", (LimitedH11,), {"limits": table.limits, "table": table})
        config.http = protocol
        config.http_protocol_class = protocol  # also when the config is loaded already
        super().__init__(config)

    def _accept(
        self,
        factory: Callable[[], asyncio.BaseProtocol],
        ctx: ssl.SSLContext,
        loop: asyncio.AbstractEventLoop,
    ) -> asyncio.BaseProtocol:
        if not self.table.make_room():
            return _Refused()
        app = factory()
        assert isinstance(app, LimitedH11)
        return _TlsConnection(loop, app, ctx, self.table, self.limits.tls_handshake_timeout)

    async def startup(self, sockets: list[Any] | None = None) -> None:
        loop = asyncio.get_running_loop()
        create = loop.create_server

        async def create_server(
            factory: Callable[[], asyncio.BaseProtocol], *args: Any, **kwargs: Any
        ) -> asyncio.Server:
            ctx = kwargs.pop("ssl", None)
            if ctx is None:  # pragma: no cover - serve runs TLS only
                return await create(factory, *args, **kwargs)
            # TLS is layered here, per accepted connection (what asyncio does itself)
            return await create(lambda: self._accept(factory, ctx, loop), *args, **kwargs)

        loop.create_server = create_server  # type: ignore[method-assign,assignment]
        try:
            await super().startup(sockets)
        finally:
            del loop.create_server  # the loop's own method again


_BUSY = b'{"error":"the webhook is busy (server.max_concurrent_requests); retry"}'


def limit_requests(app: ASGIApp, limit: int, table: ConnectionTable) -> ASGIApp:
    """``app`` answering 503 to HTTP requests past ``limit`` at once (GET /healthz
    always passes: liveness must not fail because the server is busy)."""
    running = 0

    async def limited(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        nonlocal running
        if scope["type"] != "http" or (
            scope["path"] == "/healthz" and scope["method"] == "GET"
        ):
            await app(scope, receive, send)
            return
        if running >= limit:
            table.busy += 1
            table.report(
                "busy",
                table.busy,
                f"request answered 503: {limit} requests are being served "
                "(server.max_concurrent_requests)",
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(_BUSY)).encode()),
                        (b"retry-after", b"1"),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _BUSY})
            return
        running += 1
        try:
            await app(scope, receive, send)
        finally:
            running -= 1

    return limited


class ConnectionMetrics(Collector):
    """The connection limits' Prometheus families (docs/webhook.md#metrics)."""

    def __init__(self, table: ConnectionTable) -> None:
        self.table = table

    def collect(self) -> Iterator[Metric]:
        t = self.table
        open_ = GaugeMetricFamily(
            "trustcheck_webhook_connections", "Connections open (TLS handshakes included)"
        )
        open_.add_metric([], float(len(t.conns)))
        yield open_
        closed = CounterMetricFamily(
            "trustcheck_webhook_connections_closed",
            "Connections closed by the server.* limits, by reason",
            labels=["reason"],
        )
        for reason, n in (
            ("evicted", t.evicted),
            ("refused", t.refused),
            ("request_timeout", t.timed_out),
        ):
            closed.add_metric([reason], float(n))
        yield closed
        busy = CounterMetricFamily(
            "trustcheck_webhook_busy",
            "Requests answered 503 past server.max_concurrent_requests",
        )
        busy.add_metric([], float(t.busy))
        yield busy


class FetchMetrics(Collector):
    """The trust cache's fetch queues (docs/webhook.md#fair-fetching): fetches
    running and queued, per queue (``network``, ``local``)."""

    def __init__(self, load: Callable[[], dict[str, tuple[int, int]]]) -> None:
        self.load = load

    def collect(self) -> Iterator[Metric]:
        fam = GaugeMetricFamily(
            "trustcheck_webhook_fetches",
            "Trust data fetches running and queued, per queue",
            labels=["queue", "state"],
        )
        for queue, (running, queued) in sorted(self.load().items()):
            fam.add_metric([queue, "running"], float(running))
            fam.add_metric([queue, "queued"], float(queued))
        yield fam


def uvicorn_settings(limits: ServerLimits) -> dict[str, Any]:
    """The keyword arguments of :class:`uvicorn.Config` the limits set."""
    return {
        "timeout_keep_alive": max(1, math.ceil(limits.idle_timeout)),
        "h11_max_incomplete_event_size": limits.max_header_bytes,
    }
