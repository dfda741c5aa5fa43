"""HTTP access to Notary servers and registries: selection, TLS, auth, caps, retries.

* **Server selection** (Docker's ``trust.Server``): ``--server``, else
  ``DOCKER_CONTENT_TRUST_SERVER``, else ``https://notary.docker.io`` for
  ``docker.io``, else ``https://<registry host>``.  Plain ``http`` only with
  ``unsafe_http``.
* **TLS**: system CAs, plus ``--tls-ca``, plus every ``*.crt`` in
  ``$DOCKER_CONFIG/tls/<host[:port]>/`` (Docker's per-host folder, which may
  also hold ``client.cert``/``client.key``); an optional client certificate.
* **Auth**: ``GET /v2/`` once per server; on a ``401`` with a ``Bearer``
  challenge, tokens from the realm (``scope=repository:<name>:pull``, Basic auth
  when credentials exist, refresh-token grant for identity tokens), reused
  until they expire; ``Basic`` challenges get the credentials directly.  The
  realm must be https unless ``unsafe_http``; ``Authorization`` is never sent
  to another origin after a redirect.
* **Downloads** are streamed and capped on *decoded* bytes: a
  ``Content-Length`` above the cap is ``malicious-server``; a body running
  past the cap is cut at ``cap + 1`` decoded bytes and refused
  (``file-too-large``).  Identity is asked for; one ``gzip`` layer (the one
  coding Go's client decodes) is decoded here with a running cap; stacked
  (``gzip, gzip``) or other codings are ``malicious-server``.  Error bodies
  are cut at 64 KiB.
* **Deadlines** cover the whole exchange: connect, TLS handshake, status line,
  headers and body of a request all end by one deadline (``--timeout``,
  enforced on every socket operation by a deadline-aware network backend, so
  a server dripping bytes is cut), and every request of a collection by the
  collection's deadline (``total_timeout``).
* **Retries** for GET/HEAD on network errors, timeouts, 5xx and 429, with
  exponential backoff and jitter (``Retry-After`` in ASCII delay-seconds only),
  within those deadlines.

Every failure is a :class:`~trustcheck.errors.TrustcheckError`; httpx and ssl
exceptions are wrapped where they enter.  httpx is imported lazily.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import re
import ssl
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode, urljoin, urlsplit

from trustcheck.errors import ErrorCode, NotTrusted, UsageError
from trustcheck.remote.auth import (
    Challenge,
    Credentials,
    TokenCache,
    docker_config_dir,
    parse_challenges,
    parse_token_response,
    resolve_credentials,
)
from trustcheck.remote.config import RemoteConfig
from trustcheck.text import redact_url, visible

if TYPE_CHECKING:
    import httpcore
    import httpx

    #: what replaces the network (tests: ``httpx.MockTransport``); modules other
    #: than this one name it so, never importing httpx themselves
    Transport = httpx.BaseTransport

__all__ = [
    "DOCKER_HUB_NOTARY",
    "DOCKER_HUB_REGISTRY",
    "Answer",
    "Deadline",
    "Endpoint",
    "HttpSession",
    "RemoteConfig",
    "RemoteError",
    "error_detail",
    "registry_base_url",
    "select_server",
]

DOCKER_HUB_NOTARY = "https://notary.docker.io"
DOCKER_HUB_REGISTRY = "https://registry-1.docker.io"
_DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io"})
_MAX_REDIRECTS = 5
_ERROR_BODY_CAP = 64 << 10
_RETRY_BASE = 0.2
_RETRY_MAX = 4.0
_USER_AGENT = "trustcheck/0.1 (notary-v1 client)"


def _import_httpx() -> None:
    """Import httpx without its own command-line client (call before ``import httpx``).

    httpx's ``__init__`` imports ``httpx._main`` (its CLI) whenever click and rich are
    installed, as they are next to typer: click, rich and pygments, about a third of
    the HTTP stack's import time, for a CLI trustcheck never runs. A ``None`` in
    ``sys.modules`` makes that import fail and httpx falls back to its stub, as when
    click is missing; the entry is removed again, so nothing else sees a change.
    """
    if "httpx" in sys.modules:
        return
    blocked = "httpx._main" not in sys.modules
    if blocked:
        sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        import httpx  # noqa: F401
    finally:
        if blocked and sys.modules.get("httpx._main", sys) is None:
            del sys.modules["httpx._main"]


def default_tls_context() -> ssl.SSLContext:
    """``ssl.create_default_context()``: the system's CA certificates, verified hosts.

    The file and folder OpenSSL's defaults name (``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR`` when set, else its built-in paths) are given to
    ``create_default_context`` explicitly: the same trust anchors, but loaded by
    ``load_verify_locations``, which parses the bundle (20-40 ms) with the GIL
    released, so :func:`prewarm_tls` can do it while the main thread imports. A
    file that is missing or cannot be loaded: the stdlib default as it is.
    """
    paths = ssl.get_default_verify_paths()
    cafile = os.environ.get(paths.openssl_cafile_env) or paths.openssl_cafile
    capath = os.environ.get(paths.openssl_capath_env) or paths.openssl_capath
    ca = cafile if os.path.isfile(cafile) else None
    folder = capath if ":" in capath or os.path.isdir(capath) else None  # OpenSSL splits on ':'
    if ca is None and folder is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=ca, capath=folder)
    except (OSError, ValueError, ssl.SSLError):
        return ssl.create_default_context()


#: the pending prewarm: its thread, its result, the TLS variables it was built under
_prewarmed: list[tuple[threading.Thread, list[ssl.SSLContext], tuple[str, str]]] = []
_prewarm_lock = threading.Lock()


def prewarm_tls() -> None:
    """Start building :func:`default_tls_context` in a thread (online commands call
    this first: the CA bundle is parsed while the verifier and httpx are imported).
    The first :class:`HttpSession` context takes it; nothing else changes."""
    box: list[ssl.SSLContext] = []

    def build() -> None:
        with contextlib.suppress(Exception):  # the session builds its own, as without this
            box.append(default_tls_context())

    thread = threading.Thread(target=build, name="trustcheck-tls-prewarm", daemon=True)
    with _prewarm_lock:
        _prewarmed[:] = [(thread, box, _tls_env())]
    thread.start()


def _tls_env() -> tuple[str, str]:
    return os.environ.get("SSL_CERT_FILE", ""), os.environ.get("SSL_CERT_DIR", "")


def _take_prewarmed() -> ssl.SSLContext | None:
    with _prewarm_lock:
        if not _prewarmed:
            return None
        ((thread, box, env),) = _prewarmed
        _prewarmed.clear()
    thread.join()
    if not box or env != _tls_env():  # built under other TLS variables: not this one's
        return None
    return box[0]


class RemoteError(NotTrusted):
    """A failure talking to a server.  ``status`` is the HTTP status, if any;
    ``retryable`` marks transport failures worth another attempt."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        role: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(code, message, role=role)
        self.status = status
        self.retryable = retryable

    def copy(self, message: str | None = None, role: str | None = None) -> RemoteError:
        """A fresh exception with the same code (shared errors are never re-raised)."""
        return RemoteError(
            self.code,
            message if message is not None else self.message,
            status=self.status,
            role=role if role is not None else self.role,
        )


# --------------------------------------------------------------------------- URLs


def _clean_base(url: str, what: str, unsafe_http: bool) -> str:
    """``scheme://host[:port]`` of a configured server URL, checked."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises ValueError on a bad port
    except ValueError as e:
        raise UsageError("invalid-argument", f"{what} {url!r} is not a valid URL ({e})") from e
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UsageError(
            ErrorCode.INVALID_ARGUMENT, f"{what} {url!r} must be an https:// URL with a host name"
        )
    if parts.username is not None or parts.password is not None:
        raise UsageError(
            ErrorCode.INVALID_ARGUMENT,
            f"{what} must not carry credentials in the URL; use docker login or --username",
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(
            ErrorCode.INVALID_ARGUMENT,
            f"{what} {url!r} must be scheme://host[:port] (notary ignores any path)",
        )
    if parts.scheme == "http" and not unsafe_http:
        raise UsageError(
            ErrorCode.INSECURE_SERVER,
            f"{what} {url!r} is plain http: trust data and credentials would travel "
            "unprotected. Use https, or --unsafe-http for a test server",
        )
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def select_server(gun: str, remote: RemoteConfig, env: Mapping[str, str] | None = None) -> str:
    """The Notary server base URL for ``gun``, chosen as Docker chooses it."""
    environ: Mapping[str, str] = os.environ if env is None else env
    if remote.server:
        return _clean_base(remote.server, "--server", remote.unsafe_http)
    from_env = environ.get("DOCKER_CONTENT_TRUST_SERVER", "")
    if from_env:
        return _clean_base(from_env, "DOCKER_CONTENT_TRUST_SERVER", remote.unsafe_http)
    domain = gun.split("/", 1)[0]
    if domain in _DOCKER_HUB_NAMES:
        return DOCKER_HUB_NOTARY
    return _clean_base(f"https://{domain}", f"the notary server of {gun}", remote.unsafe_http)


def registry_base_url(domain: str, remote: RemoteConfig) -> str:
    """The registry base URL for an image on ``domain``."""
    if remote.registry:
        return _clean_base(remote.registry, "--registry", remote.unsafe_http)
    if domain in _DOCKER_HUB_NAMES:
        return DOCKER_HUB_REGISTRY
    return _clean_base(f"https://{domain}", f"the registry {domain}", remote.unsafe_http)


def _port(url: str) -> tuple[str, str, int | None]:
    """(scheme, lower-case host, port) of ``url``; a bad URL is a server error."""
    try:
        parts = urlsplit(url)
        return parts.scheme, (parts.hostname or "").lower(), parts.port
    except ValueError as e:
        raise RemoteError(ErrorCode.SERVER_ERROR, f"invalid URL {url[:100]!r} from a server") from e


def _origin(url: str) -> str:
    scheme, host, port = _port(url)
    default = {"https": 443, "http": 80}.get(scheme)
    return f"{scheme}://{host}:{port if port is not None else default}"


def _netloc(url: str) -> str:
    """``host[:port]`` as written: the name of Docker's per-host tls folder."""
    _scheme, host, port = _port(url)
    if ":" in host:
        host = f"[{host}]"
    return host + (f":{port}" if port is not None else "")


# --------------------------------------------------------------------------- time


class Deadline:
    """An overall time budget (monotonic clock)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0


# --------------------------------------------------------------------------- deadlines
#
# httpx's timeouts bound each socket operation, not the exchange: a server that
# sends one header byte per second never trips a 2 s read timeout.  Every
# socket operation of a request therefore runs against the request's end
# time, kept per thread (httpx's sync client does its I/O in the calling
# thread): the network backend below shortens each connect, TLS handshake,
# read and write to what is left, and fails once nothing is.

_DEADLINE = threading.local()


@contextlib.contextmanager
def until(end: float) -> Iterator[None]:
    """Socket operations of this thread's requests end by ``end`` (monotonic);
    nested calls keep the earlier end."""
    previous: float | None = getattr(_DEADLINE, "end", None)
    _DEADLINE.end = end if previous is None else min(previous, end)
    try:
        yield
    finally:
        _DEADLINE.end = previous


def _left(timeout: float | None, kind: str) -> float | None:
    """``timeout`` shortened to the thread's deadline; a timeout error once it passed."""
    end: float | None = getattr(_DEADLINE, "end", None)
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        import httpcore

        error: type[Exception] = {
            "connect": httpcore.ConnectTimeout,
            "write": httpcore.WriteTimeout,
        }.get(kind, httpcore.ReadTimeout)
        raise error(f"the request's deadline passed during {kind}")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream:
    """A network stream whose every operation ends by the thread's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout, "read"))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout, "write"))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> _DeadlineStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, _left(timeout, "connect"))
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class _DeadlineBackend:
    """httpcore's network backend with :class:`_DeadlineStream` streams."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: object = None,
    ) -> _DeadlineStream:
        stream = self._inner.connect_tcp(
            host,
            port,
            _left(timeout, "connect"),
            local_address,
            socket_options,  # type: ignore[arg-type]
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: object = None
    ) -> _DeadlineStream:
        stream = self._inner.connect_unix_socket(
            path,
            _left(timeout, "connect"),
            socket_options,  # type: ignore[arg-type]
        )
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def bounded_client(client: httpx.Client) -> httpx.Client:
    """``client`` with every connection pool (direct and proxies) on the
    deadline-aware network backend, so :func:`until` bounds whole exchanges."""
    transports: list[object] = [client._transport, *client._mounts.values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is not None and not isinstance(backend, _DeadlineBackend):
            pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]
    return client


# --------------------------------------------------------------------------- bodies
#
# Caps hold on decoded bytes.  Bodies are read raw (``iter_raw``: no
# decoding by httpx) and decoded here with a running cap: identity, or one
# ``gzip`` layer (identity is asked for; a proxy may still compress).  That is
# what notary's Go client decodes: it asks for gzip and decodes exactly one
# ``gzip`` layer, and any other coding reaches its JSON decoder undecoded and
# fails there.  Stacked codings (``gzip, gzip``: 1.8 KB on the wire, 2 GB
# decoded) and any other coding (``deflate``, ``x-gzip``, ``br``...) are
# refused as a malicious server.

_ZLIB_CODINGS = {"gzip": 16 + zlib.MAX_WBITS}
_MAX_CODING_HEADER = 200


class BodyError(Exception):
    """Why a body was refused: ``(code, message)``, wrapped by the caller."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def content_codings(values: list[str]) -> list[str]:
    """The content codings of ``Content-Encoding`` header values, lower case,
    empty items dropped; a body in ``identity`` only has none.  ``identity``
    next to another coding stays (Go decodes only a header that is exactly
    ``gzip``, so ``gzip, identity`` counts as stacked)."""
    joined = ",".join(values)
    if len(joined) > _MAX_CODING_HEADER:
        raise BodyError(
            "malicious-server",
            f"a Content-Encoding header of {len(joined)} characters; refused",
        )
    codings = [c for c in (p.strip().lower() for p in joined.split(",")) if c]
    return [] if all(c == "identity" for c in codings) else codings


_PIECE = 1 << 20


class _Decoder:
    """At most one gzip layer, decoded with a running output cap, in pieces of
    at most 1 MiB (so a body at its cap never needs a second cap-sized buffer)."""

    def __init__(self, coding: str | None) -> None:
        self.coding = coding
        self._zlib: zlib._Decompress | None = None
        self._fed = False
        if coding is not None:
            self._zlib = zlib.decompressobj(_ZLIB_CODINGS[coding])

    def feed(self, raw: bytes, room: int) -> Iterator[bytes]:
        """Decoded pieces of ``raw``; stops once more than ``room`` bytes came out."""
        if self.coding is None:
            yield raw
            return
        if not raw:
            return
        self._fed = True
        assert self._zlib is not None
        data, given = raw, 0
        try:
            while data:
                out = self._zlib.decompress(data, min(room + 1 - given, _PIECE))
                if self._zlib.unused_data:
                    raise BodyError(
                        "malicious-server",
                        f"data after the end of the {self.coding} stream (stacked or "
                        "concatenated encodings are refused)",
                    )
                given += len(out)
                yield out
                if given > room:
                    return
                data = self._zlib.unconsumed_tail
        except zlib.error as e:
            raise BodyError(
                "malicious-server", f"the {self.coding} body does not decode ({e})"
            ) from None

    def finish(self) -> None:
        if self._zlib is None or not self._fed:  # identity, or no body at all
            return
        if not self._zlib.eof:
            raise BodyError("server-error", f"the {self.coding} body ends before its stream does")


def read_body(
    resp: httpx.Response,
    cap: int,
    *,
    strict: bool,
    end: float | None = None,
    sink: Callable[[bytes], None] | None = None,
) -> bytes:
    """The decoded body of ``resp``: at most ``cap`` bytes.

    ``strict``: more than ``cap`` decoded bytes (or raw bytes, whatever the
    coding) raise :class:`BodyError` ``file-too-large``; otherwise the body is
    cut at ``cap`` (error bodies).  Content codings as described above; memory
    stays within twice ``cap`` plus 1 MiB (the buffer and the returned copy).  ``end``: a
    monotonic time the body must have arrived by (``server-timeout``).  ``sink``:
    the decoded pieces are handed to it as they arrive (at most ``cap`` bytes in all)
    instead of being kept, and ``b""`` is returned (a stream of any size in
    constant memory).
    """
    if resp.is_stream_consumed:  # an in-memory response (httpx.MockTransport): already read
        held = resp.content
        if strict and len(held) > cap:
            raise BodyError("file-too-large", f"the body runs past the {cap}-byte cap")
        if sink is not None:
            sink(held[:cap])
            return b""
        return held[:cap]
    codings = content_codings(resp.headers.get_list("content-encoding"))
    if len(codings) > 1:
        raise BodyError(
            "malicious-server",
            f"stacked content codings ({', '.join(codings)[:80]}) refused: identity was asked "
            "for, and stacked layers multiply the decoded size (decompression bomb)",
        )
    if codings and codings[0] not in _ZLIB_CODINGS:
        raise BodyError(
            "malicious-server",
            f"unknown content coding {codings[0][:40]!r} refused (identity was asked for)",
        )
    decoder = _Decoder(codings[0] if codings else None)
    buf = bytearray()
    total = 0
    raw_total = 0
    raw_cap = cap + (64 << 10)  # compressed data may be slightly larger than plain
    for raw in resp.iter_raw():
        raw_total += len(raw)
        for piece in decoder.feed(raw, cap - total):
            if sink is None:
                buf += piece
            elif total < cap:
                sink(piece[: cap - total])
            total += len(piece)
        if total > cap or raw_total > raw_cap:
            if not strict:
                return bytes(buf[:cap])
            raise BodyError(
                "file-too-large",
                f"the body runs past the {cap}-byte cap (cut at {cap + 1} decoded bytes"
                + (f", {decoder.coding}-encoded" if decoder.coding else "")
                + "); endless-data attack or a wrong file",
            )
        if end is not None and time.monotonic() > end:
            raise BodyError("server-timeout", "the body did not arrive in time")
    decoder.finish()
    return bytes(buf)


# --------------------------------------------------------------------------- HTTP


@dataclass
class Answer:
    """A finished HTTP exchange: status, headers and the (capped) body."""

    status: int
    headers: httpx.Headers
    body: bytes
    url: str


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLError):
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0][:200] if text else "") or type(exc).__name__


class HttpSession:
    """Connection pools, TLS contexts, endpoints and tokens shared by one run.

    One per ``fetch_collection`` call, or shared by every collection of a
    ``fetch_many`` run (connection reuse).  Thread-safe.  Close it when done.
    """

    def __init__(
        self,
        remote: RemoteConfig,
        env: Mapping[str, str] | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        client_per_thread: bool = False,
    ) -> None:
        """``transport`` replaces the network (tests use ``httpx.MockTransport``).

        ``client_per_thread``: each thread gets its own connection pool (for a fixed
        set of worker threads, as :func:`trustcheck.remote.notary.fetch_many` has):
        one shared pool makes every request and every response close wait for the
        pool's lock, a third of a 100-collection fetch's worker time on 2 CPUs.
        """
        remote.validate()
        self.remote = remote
        self._transport = transport
        self._per_thread = client_per_thread
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.docker_config = docker_config_dir(remote.docker_config, self.env)
        self.tokens = TokenCache()
        self._lock = threading.Lock()
        self._contexts: dict[tuple[tuple[str, ...], bool], ssl.SSLContext] = {}
        self._clients: dict[tuple[tuple[str, ...], bool, int], httpx.Client] = {}
        self._endpoints: dict[tuple[str, str, str], Endpoint] = {}
        self._closed = False

    # --- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
            self._closed = True
        for client in clients:
            client.close()

    def __enter__(self) -> HttpSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def endpoint(self, base_url: str, auth_key: str, what: str) -> Endpoint:
        """The shared :class:`Endpoint` for a server (pinged once per session)."""
        key = (base_url, auth_key, what)
        with self._lock:
            found = self._endpoints.get(key)
            if found is None:
                found = Endpoint(self, base_url, auth_key, what)
                self._endpoints[key] = found
            return found

    # --- TLS -------------------------------------------------------------------------

    def _tls_error(self, path: Path, why: str) -> UsageError:
        return UsageError(ErrorCode.TLS_CONFIG_INVALID, f"cannot load TLS file {path}: {why}")

    def _ssl_context(self, hosts: tuple[str, ...], client_cert: bool) -> ssl.SSLContext:
        key = (hosts, client_cert)
        with self._lock:
            found = self._contexts.get(key)
        if found is not None:
            return found
        ctx = _take_prewarmed() or default_tls_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.remote.tls_ca is not None:
            self._load_ca(ctx, Path(self.remote.tls_ca))
        docker_pair: tuple[Path, Path] | None = None
        for host in hosts:
            folder = self.docker_config / "tls" / host
            if not folder.is_dir():
                continue
            for ca in sorted(folder.glob("*.crt")):
                self._load_ca(ctx, ca)
            for cert in sorted(folder.glob("*.cert")):
                pair = cert.with_suffix(".key")
                if pair.is_file() and docker_pair is None:
                    docker_pair = (cert, pair)
        if client_cert:
            if self.remote.client_cert is not None and self.remote.client_key is not None:
                self._load_pair(ctx, Path(self.remote.client_cert), Path(self.remote.client_key))
            elif docker_pair is not None:
                self._load_pair(ctx, *docker_pair)
        with self._lock:
            self._contexts.setdefault(key, ctx)
            return self._contexts[key]

    def tls_context(self, host: str) -> ssl.SSLContext:
        """The TLS context requests to ``host`` (``host[:port]``) use: for a single
        handshake outside HTTP (``trustcheck doctor``)."""
        return self._ssl_context((host,), True)

    def _load_ca(self, ctx: ssl.SSLContext, path: Path) -> None:
        try:
            ctx.load_verify_locations(cafile=str(path))
        except FileNotFoundError:
            raise self._tls_error(path, "no such file") from None
        except (OSError, ssl.SSLError, ValueError) as e:
            raise self._tls_error(path, _short(e)) from e

    def _load_pair(self, ctx: ssl.SSLContext, cert: Path, key: Path) -> None:
        try:
            ctx.load_cert_chain(str(cert), str(key))
        except (OSError, ssl.SSLError, ValueError) as e:
            raise self._tls_error(cert, f"with key {key}: {_short(e)}") from e

    def _client(self, hosts: tuple[str, ...], client_cert: bool) -> httpx.Client:
        _import_httpx()
        import httpx

        key = (hosts, client_cert, threading.get_ident() if self._per_thread else 0)
        with self._lock:
            found = self._clients.get(key)
        if found is not None:
            return found
        ctx = self._ssl_context(hosts, client_cert)
        n = max(1, self.remote.concurrency)
        client = bounded_client(
            httpx.Client(
                verify=ctx,
                transport=self._transport,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=2 * n, max_keepalive_connections=n),
                headers={"User-Agent": _USER_AGENT},
            )
        )
        with self._lock:
            if self._closed:
                client.close()
                raise RuntimeError("the HTTP session is closed")
            existing = self._clients.setdefault(key, client)
        if existing is not client:
            client.close()
        return existing

    # --- requests --------------------------------------------------------------------

    def _check_scheme(self, url: str, what: str) -> None:
        if urlsplit(url).scheme == "http" and not self.remote.unsafe_http:
            raise UsageError(
                ErrorCode.INSECURE_SERVER,
                f"{what}: {redact_url(url)} is plain http; refusing without --unsafe-http",
            )
        if urlsplit(url).scheme not in ("http", "https"):
            raise RemoteError(ErrorCode.SERVER_ERROR, f"{what}: unsupported URL {redact_url(url)}")

    def request(
        self,
        method: str,
        url: str,
        *,
        deadline: Deadline,
        what: str,
        cap: int,
        tls_hosts: tuple[str, ...] = (),
        client_cert: bool = True,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        content: bytes | None = None,
        role: str | None = None,
        idempotent: bool | None = None,
        announced_cap: bool = True,
        sink: Callable[[bytes], None] | None = None,
    ) -> Answer:
        """One HTTP exchange with retries on transient failures: GET and HEAD, and
        any method the caller marks ``idempotent`` (setting a value, as ACR's PATCH).

        A 200 body longer than ``cap`` raises (``malicious-server`` when the
        ``Content-Length`` says so up front, ``file-too-large`` when the body
        runs past it); other statuses are returned with their body cut at 64 KiB.
        ``announced_cap=False``: a ``Content-Length`` above ``cap`` is not refused up
        front; the body is read and cut at ``cap + 1`` decoded bytes (``file-too-large``),
        as python-tuf's fetchers do (TUF 1.0 repositories).  ``sink``: a 200 body
        is streamed into it (see :func:`read_body`) and the answer's body is empty;
        once a piece was handed over, a failure is not retried (the sink holds part
        of a body).
        """
        if idempotent is None:
            idempotent = method in ("GET", "HEAD")
        attempts = 1 + (self.remote.retries if idempotent else 0)
        attempt = 0
        started = False
        counted: Callable[[bytes], None] | None = None
        if sink is not None:
            handed = sink

            def counted(piece: bytes) -> None:
                nonlocal started
                started = True
                handed(piece)

        while True:
            attempt += 1
            try:
                answer = self._exchange(
                    method,
                    url,
                    deadline,
                    what,
                    cap,
                    tls_hosts,
                    client_cert,
                    headers,
                    form,
                    content,
                    role,
                    announced_cap,
                    counted,
                )
            except RemoteError as e:
                if (
                    not e.retryable
                    or started
                    or attempt >= attempts
                    or not self._backoff(attempt, deadline)
                ):
                    raise
                continue
            if (
                (answer.status >= 500 or answer.status == 429)
                and attempt < attempts
                and self._backoff(attempt, deadline, answer.headers.get("retry-after"))
            ):
                continue
            return answer

    def _backoff(self, attempt: int, deadline: Deadline, retry_after: str | None = None) -> bool:
        """Sleep before the next attempt; False when the deadline leaves no room."""
        delay = min(_RETRY_MAX, _RETRY_BASE * (2 ** (attempt - 1)))
        delay *= 0.75 + random.random() / 2
        wanted = parse_retry_after(retry_after)
        if wanted is not None:
            delay = max(delay, min(wanted, _RETRY_MAX))
        if deadline.remaining() <= delay + 0.05:
            return False
        time.sleep(delay)
        return True

    def _exchange(
        self,
        method: str,
        url: str,
        deadline: Deadline,
        what: str,
        cap: int,
        tls_hosts: tuple[str, ...],
        client_cert: bool,
        headers: Mapping[str, str] | None,
        form: Mapping[str, str] | None,
        content: bytes | None,
        role: str | None,
        announced_cap: bool = True,
        sink: Callable[[bytes], None] | None = None,
    ) -> Answer:
        _import_httpx()
        import httpx

        current = url
        sent: dict[str, str] = {"Accept-Encoding": "identity", **(headers or {})}
        body_form = dict(form) if form is not None else None
        for _hop in range(_MAX_REDIRECTS + 1):
            self._check_scheme(current, what)
            per_request = min(self.remote.timeout, deadline.remaining())
            if per_request <= 0:
                raise RemoteError(
                    ErrorCode.SERVER_TIMEOUT,
                    f"{what}: the overall timeout of {deadline.seconds:g} s ran out before "
                    f"{redact_url(current)} could be requested",
                    role=role,
                )
            host = _netloc(current)
            hosts = tls_hosts if host in tls_hosts else (*tls_hosts, host)
            client = self._client(hosts, client_cert)
            end = time.monotonic() + per_request
            try:
                with (
                    until(end),
                    client.stream(
                        method,
                        current,
                        headers=sent,
                        data=body_form,
                        content=content,
                        timeout=httpx.Timeout(per_request),
                    ) as resp,
                ):
                    status = resp.status_code
                    location = resp.headers.get("location")
                    if status in (301, 302, 303, 307, 308) and location:
                        target = urljoin(current, location)
                        if _origin(target) != _origin(current):
                            sent.pop("Authorization", None)
                        downgrade = urlsplit(target).scheme != "https"
                        if urlsplit(current).scheme == "https" and downgrade:
                            raise RemoteError(
                                ErrorCode.MALICIOUS_SERVER,
                                f"{what}: {redact_url(current)} redirects to a non-https URL "
                                f"({redact_url(target)}); refused",
                                role=role,
                            )
                        if status == 303 and method != "HEAD":
                            method, body_form, content = "GET", None, None
                        current = target
                        continue
                    if method == "HEAD":
                        body = b""
                    elif status == 200:
                        body = self._read_capped(
                            resp, cap, what, role, end, per_request, True, announced_cap, sink
                        )
                    else:
                        body = self._read_capped(
                            resp, _ERROR_BODY_CAP, what, role, end, per_request, False
                        )
                    return Answer(status, resp.headers, body, current)
            except httpx.TimeoutException as e:
                raise RemoteError(
                    ErrorCode.SERVER_TIMEOUT,
                    f"{what}: {redact_url(current)} did not answer within {per_request:.3g} s",
                    role=role,
                    retryable=True,
                ) from e
            except httpx.TransportError as e:
                tls = _ssl_cause(e)
                closed = isinstance(tls, ssl.SSLEOFError | ssl.SSLZeroReturnError)
                if tls is not None and not closed:
                    raise RemoteError(
                        ErrorCode.TLS_ERROR,
                        f"{what}: TLS with {host} failed ({_short(tls)}); give the server's CA "
                        f"with --tls-ca or {self.docker_config}/tls/{host}/ca.crt",
                        role=role,
                    ) from e
                raise RemoteError(
                    ErrorCode.NETWORK_ERROR,
                    f"{what}: {redact_url(current)}: {_short(e)}",
                    role=role,
                    retryable=True,
                ) from e
            except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as e:
                raise RemoteError(
                    ErrorCode.SERVER_ERROR, f"{what}: {redact_url(current)}: {_short(e)}", role=role
                ) from e
        raise RemoteError(
            "server-error", f"{what}: more than {_MAX_REDIRECTS} redirects from {redact_url(url)}"
        )

    def _read_capped(
        self,
        resp: httpx.Response,
        cap: int,
        what: str,
        role: str | None,
        end: float,
        per_request: float,
        strict: bool,
        announced_cap: bool = True,
        sink: Callable[[bytes], None] | None = None,
    ) -> bytes:
        announced = resp.headers.get("content-length")
        if strict and announced_cap and announced is not None:
            length = parse_length(announced)
            if length is None or length > cap:
                raise RemoteError(
                    ErrorCode.MALICIOUS_SERVER,
                    f"{what}: the server announced {announced.strip()[:20]!r} bytes "
                    f"(Content-Length), more than the {cap}-byte cap or not a length; notary "
                    "refuses such an answer as a malicious server (endless-data attack)",
                    role=role,
                )
        try:
            return read_body(resp, cap, strict=strict, end=end, sink=sink)
        except BodyError as e:
            if e.code == "server-timeout":
                raise RemoteError(
                    ErrorCode.SERVER_TIMEOUT,
                    f"{what}: the body did not arrive within {per_request:.3g} s",
                    role=role,
                    retryable=True,
                ) from None
            if e.code == "file-too-large":
                raise NotTrusted("file-too-large", f"{what}: {e.message}", role=role) from None
            raise RemoteError(e.code, f"{what}: {e.message}", role=role) from None


def error_detail(body: bytes) -> str:
    """``: <text>`` from ``errors[0].detail`` or ``message`` of a Docker
    distribution-style error body (``{"errors": [...]}``), one line, at most 200
    characters, made visible; ``""`` when there is none."""
    import json

    try:
        doc = json.loads(body)
        err = doc["errors"][0]
        text = str(err.get("detail") or err.get("message") or "")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError):
        return ""
    text = visible(" ".join(text.split()))[:200]
    return f": {text}" if text else ""


_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_length(text: str) -> int | None:
    """A ``Content-Length`` as HTTP defines it (ASCII digits only, no sign, no
    ``_``), or None."""
    value = text.strip()
    return int(value) if _DIGITS.fullmatch(value) else None


def parse_retry_after(text: str | None) -> float | None:
    """``Retry-After`` delay-seconds (ASCII digits), or None: an HTTP date or
    anything else is ignored (the usual backoff applies)."""
    if text is None:
        return None
    value = text.strip()
    if not re.fullmatch(r"[0-9]{1,10}", value):
        return None
    return float(int(value))


# --------------------------------------------------------------------------- endpoints


@dataclass
class _Ping:
    challenge: Challenge | None = None
    #: the server could not be reached: the error, for offline fallback
    offline: RemoteError | None = None


class Endpoint:
    """One server (a Notary server or a registry) with its auth state.

    ``auth_key`` is Docker's credential key of the registry the repository
    lives on (credentials for a Notary server are the registry's).
    """

    def __init__(self, session: HttpSession, base_url: str, auth_key: str, what: str) -> None:
        self.session = session
        self.base = base_url
        self.auth_key = auth_key
        self.what = what
        self.host = _netloc(base_url)
        self._ping: _Ping | None = None
        self._ping_lock = threading.Lock()
        self._creds_lock = threading.Lock()
        self._creds: Credentials | None = None
        self._creds_loaded = False

    # --- ping ------------------------------------------------------------------------

    def ping(self, deadline: Deadline) -> _Ping:
        """``GET /v2/`` once per session: the auth challenge, or why it is offline."""
        with self._ping_lock:
            if self._ping is None:
                self._ping = self._do_ping(deadline)
            return self._ping

    def _do_ping(self, deadline: Deadline) -> _Ping:
        try:
            ans = self.session.request(
                "GET",
                self.base + "/v2/",
                deadline=deadline,
                what=f"{self.what} {self.base}",
                cap=_ERROR_BODY_CAP,
                tls_hosts=(self.host,),
            )
        except RemoteError as e:
            if e.code in ("network-error", "server-timeout"):
                return _Ping(offline=e)
            raise
        except NotTrusted as e:  # a huge ping answer: not a usable server
            return _Ping(offline=RemoteError(ErrorCode.SERVER_ERROR, e.message))
        if ans.status == 401:
            return _Ping(challenge=self._pick(ans))
        if ans.status >= 500:
            return _Ping(
                offline=RemoteError(
                    ErrorCode.SERVER_ERROR,
                    f"{self.what} {self.base} answered HTTP {ans.status} to /v2/",
                    status=ans.status,
                )
            )
        return _Ping()

    def _pick(self, ans: Answer) -> Challenge | None:
        challenges = parse_challenges(ans.headers.get_list("www-authenticate"))
        for scheme in ("bearer", "basic"):
            for ch in challenges:
                if ch.scheme == scheme and (scheme == "basic" or ch.realm):
                    return ch
        return None

    # --- credentials and tokens ---------------------------------------------------------

    def credentials(self) -> Credentials | None:
        with self._creds_lock:
            if not self._creds_loaded:
                remote = self.session.remote
                self._creds = resolve_credentials(
                    self.auth_key,
                    username=remote.username,
                    password=remote.password,
                    config_dir=self.session.docker_config,
                    env=self.session.env,
                )
                self._creds_loaded = True
            return self._creds

    def _who(self) -> str:
        creds = self.credentials()
        if creds is None:
            return (
                f"anonymous access (no credentials for {self.auth_key}: docker login, or "
                "--username with the password on stdin)"
            )
        return creds.describe()

    def authorization(self, challenge: Challenge, scope: str, deadline: Deadline) -> str:
        """The ``Authorization`` value for ``scope`` (a token fetched if needed)."""
        return self._authorization(challenge, scope, deadline)

    def _authorization(self, challenge: Challenge, scope: str, deadline: Deadline) -> str:
        if challenge.scheme == "basic":
            creds = self.credentials()
            if creds is None or not creds.username:
                raise RemoteError(
                    ErrorCode.AUTH_FAILED,
                    f"{self.what} {self.base} asks for a user name and password and there are "
                    f"none for {self.auth_key} (docker login, or --username)",
                    status=401,
                )
            raw = f"{creds.username}:{creds.password}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        return "Bearer " + self._token(challenge, scope, deadline)

    def _token_key(self, challenge: Challenge, scope: str) -> tuple[str, ...]:
        creds = self.credentials()
        who = "" if creds is None else f"{creds.source}\x00{creds.username}"
        return (challenge.realm or "", challenge.service or "", scope, who)

    def _token(self, challenge: Challenge, scope: str, deadline: Deadline) -> str:
        key = self._token_key(challenge, scope)
        cached = self.session.tokens.get(key)
        if cached is not None:
            return cached
        realm = challenge.realm or ""
        what = f"token service {redact_url(realm)} (for {self.what} {self.base})"
        try:
            parts = urlsplit(realm)
        except ValueError:
            parts = urlsplit("")
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise RemoteError(
                ErrorCode.AUTH_FAILED,
                f"{self.what} {self.base} names an unusable token realm {realm[:100]!r}",
                status=401,
            )
        if parts.scheme == "http" and not self.session.remote.unsafe_http:
            raise UsageError(
                ErrorCode.INSECURE_SERVER,
                f"{self.what} {self.base} sends clients to the plain-http token realm "
                f"{redact_url(realm)}; credentials and tokens would travel unprotected "
                "(--unsafe-http for a test server)",
            )
        creds = self.credentials()
        params: list[tuple[str, str]] = []
        if challenge.service:
            params.append(("service", challenge.service))
        if scope:  # no scope: a plain login check, as `docker login` asks
            params.append(("scope", scope))
        headers: dict[str, str] = {}
        form: dict[str, str] | None = None
        method = "GET"
        if creds is not None and creds.identity_token:
            method = "POST"
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.identity_token,
                "client_id": "trustcheck",
                "scope": scope,
            }
            if challenge.service:
                form["service"] = challenge.service
            url = realm
        else:
            if creds is not None and creds.username:
                params.append(("account", creds.username))
                raw = f"{creds.username}:{creds.password}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
            sep = "&" if parts.query else "?"
            url = realm + sep + urlencode(params, quote_via=quote)
        ans = self.session.request(
            method,
            url,
            deadline=deadline,
            what=what,
            cap=1 << 20,
            tls_hosts=(self.host, _netloc(realm)),
            headers=headers,
            form=form,
        )
        if ans.status in (401, 403):
            raise RemoteError(
                ErrorCode.AUTH_FAILED,
                f"{what} refused {self._who()} for scope {scope} (HTTP {ans.status})",
                status=ans.status,
            )
        if ans.status != 200:
            raise RemoteError(
                ErrorCode.SERVER_ERROR if ans.status >= 500 else "auth-failed",
                f"{what} answered HTTP {ans.status} for scope {scope}",
                status=ans.status,
            )
        token, lifetime = parse_token_response(ans.body, redact_url(realm))
        self.session.tokens.put(key, token, lifetime)
        return token

    # --- requests --------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        cap: int,
        deadline: Deadline,
        what: str,
        role: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """``method base+path`` with auth.  401/403 raise ``auth-failed``; other
        statuses come back to the caller (5xx after the retries)."""
        ping = self.ping(deadline)
        if ping.offline is not None:
            raise ping.offline.copy()
        challenge = ping.challenge
        refreshed = False
        while True:
            sent = dict(headers or {})
            if challenge is not None:
                sent["Authorization"] = self._authorization(challenge, scope, deadline)
            ans = self.session.request(
                method,
                self.base + path,
                deadline=deadline,
                what=what,
                cap=cap,
                tls_hosts=(self.host,),
                headers=sent,
                role=role,
            )
            if ans.status not in (401, 403):
                return ans
            fresh = self._pick(ans) if ans.status == 401 else None
            if not refreshed and (fresh is not None or challenge is not None):
                # an expired or revoked token, or a server that challenges only here
                if challenge is not None and challenge.scheme == "bearer":
                    self.session.tokens.drop(self._token_key(challenge, scope))
                challenge = fresh or challenge
                refreshed = True
                continue
            sent_what = "without credentials" if challenge is None else f"as {self._who()}"
            raise RemoteError(
                ErrorCode.AUTH_FAILED,
                f"{what}: {self.what} {self.base} refused access {sent_what} for {scope} "
                f"(HTTP {ans.status})",
                status=ans.status,
                role=role,
            )
