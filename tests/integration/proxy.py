"""A small HTTPS fault-injection proxy for the remote tests.

It forwards every request to a real upstream server (notary-server) and
records it; rules (:class:`Fault`) matched against the request path replace
the upstream answer with a fault:

* ``status``            answer ``status`` (with ``headers``) instead
* ``delay``             wait ``delay`` seconds, then forward
* ``truncate``          announce the full ``Content-Length``, send half, close
* ``oversize-length``   announce ``Content-Length`` = real length + ``extra``
* ``chunked-oversize``  chunked body: the real bytes followed by ``extra`` spaces
* ``replace``           answer 200 with ``body``
* ``close``             close the connection without an answer
* ``stop``              stop the proxy (the server "dies"): this and every later
                        request fails, new connections are refused

Each rule applies ``times`` times (None: always).  Loopback only.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from conftest import BackgroundServer

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}


@dataclass
class Fault:
    match: str
    kind: str
    times: int | None = 1
    status: int = 503
    delay: float = 0.0
    body: bytes = b""
    extra: int = 0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Logged:
    method: str
    path: str
    outcome: str  # "pass" or the fault kind
    status: int | None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # broken pipes after faults are expected


class FaultProxy:
    """Use as a context manager; ``url`` is the proxy's base URL."""

    def __init__(self, upstream: str, upstream_ca: Path, tls_cert: Path, tls_key: Path) -> None:
        self.upstream = urlsplit(upstream)
        self.upstream_ctx = ssl.create_default_context(cafile=str(upstream_ca))
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.faults: list[Fault] = []
        self.log: list[Logged] = []
        self.stopped = False
        self._lock = threading.Lock()
        self._server: BackgroundServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    # --- rules and log ---------------------------------------------------------------

    def add(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def reset(self) -> None:
        with self._lock:
            self.faults.clear()
            self.log.clear()

    def paths(self) -> list[str]:
        """The request paths seen, relative to ``/v2/<gun>/_trust/tuf/`` when they are."""
        with self._lock:
            out = []
            for entry in self.log:
                path = entry.path
                marker = "/_trust/tuf/"
                out.append(path.split(marker, 1)[1] if marker in path else path)
            return out

    def _take(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.match in path and (fault.times is None or fault.times > 0):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def _record(self, method: str, path: str, outcome: str, status: int | None) -> None:
        with self._lock:
            self.log.append(Logged(method, path, outcome, status))

    # --- forwarding ------------------------------------------------------------------

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPSConnection(
            self.upstream.hostname or "127.0.0.1",
            self.upstream.port,
            context=self.upstream_ctx,
            timeout=30,
        )
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP]
            return resp.status, kept, data
        finally:
            conn.close()

    # --- server ----------------------------------------------------------------------

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _drop(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for k, v in headers:
                    if k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self) -> None:
                path = self.path
                if proxy.stopped:
                    proxy._record(self.command, path, "stopped", None)
                    self._drop()
                    return
                fault = proxy._take(path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                kind = fault.kind if fault is not None else "pass"
                if fault is not None and fault.kind == "stop":
                    proxy._record(self.command, path, kind, None)
                    proxy.stop_serving()
                    self._drop()
                    return
                if fault is not None and fault.kind == "close":
                    proxy._record(self.command, path, kind, None)
                    self._drop()
                    return
                if fault is not None and fault.kind == "status":
                    proxy._record(self.command, path, kind, fault.status)
                    self._send(fault.status, list(fault.headers.items()), b'{"errors":[]}')
                    return
                if fault is not None and fault.kind == "replace":
                    proxy._record(self.command, path, kind, 200)
                    self._send(200, [("Content-Type", "application/json")], fault.body)
                    return
                if fault is not None and fault.kind == "delay":
                    time.sleep(fault.delay)
                try:
                    status, up_headers, data = proxy.forward(self.command, path, headers, body)
                except OSError:
                    proxy._record(self.command, path, "upstream-down", None)
                    self._drop()
                    return
                proxy._record(self.command, path, kind, status)
                if fault is None or fault.kind == "delay":
                    self._send(status, up_headers, data)
                    return
                if fault.kind == "truncate":
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self._drop()
                    return
                if fault.kind == "oversize-length":
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(data) + fault.extra))
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                    self._drop()
                    return
                if fault.kind == "chunked-oversize":
                    self.send_response(status)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    payload = data + b" " * fault.extra
                    for i in range(0, len(payload), 4096):
                        piece = payload[i : i + 4096]
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                    return
                raise AssertionError(f"unknown fault kind {fault.kind!r}")

            def do_GET(self) -> None:
                self._handle()

            def do_HEAD(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

        self._server = BackgroundServer(
            Handler, cert=self.tls_cert, key=self.tls_key, port=self.port, server_class=_Server
        )
        self.port = self._server.port
        self.stopped = False
        self._thread = self._server.thread
        return self

    def stop_serving(self) -> None:
        """The server 'dies': new connections are refused, open ones are dropped."""
        self.stopped = True
        server, self._server = self._server, None
        if server is not None:
            threading.Thread(target=server.close, args=(5,), daemon=True).start()

    def restart(self) -> None:
        """Serve again on the same port (after :meth:`stop_serving`)."""
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.start()

    def close(self) -> None:
        self.stopped = True
        server, self._server = self._server, None
        if server is not None:
            server.close(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
