"""An EMULATOR of Azure Container Registry's documented quarantine endpoints (tests only).

This is not ACR. It answers the requests trustcheck's ACR client makes, the
way ACR documents them, so that ``trustcheck quarantine`` can be tested on
loopback without an Azure subscription:

* Azure/acr ``docs/preview/quarantine/readme.md``: ``GET`` and ``PATCH
  /acr/v1/<repo>/_manifests/<digest>``, body ``{"quarantineState":
  "Passed"|"Failed", "quarantineDetails": "<json string>"}``, a token with
  ``repository:<repo>:pull`` to read and ``repository:<repo>:pull,push`` to
  write, obtained from ``GET /oauth2/token?service=...&scope=...`` with HTTP
  Basic credentials;
* Azure/acr ``docs/AAD-OAuth.md``: the ``401`` challenge
  ``WWW-Authenticate: Bearer realm="https://<host>/oauth2/token",service="<host>"``
  (with ``scope="..."`` on API answers), ``POST /oauth2/token`` with
  ``grant_type=refresh_token``, ``service``, ``scope``, ``refresh_token``
  answering ``{"access_token": ...}``, and the user name
  ``00000000-0000-0000-0000-000000000000`` meaning "the password is a refresh
  token"; error bodies ``{"errors": [{"code", "message"}]}``;
* the ACR data-plane API's manifest attributes (``registry``, ``imageName``,
  ``manifest.{digest, imageSize, createdTime, lastUpdateTime, mediaType, tags,
  changeableAttributes.{deleteEnabled, writeEnabled, readEnabled, listEnabled,
  quarantineState, quarantineDetails}}}``).

Assumptions where the documentation is silent (kept simple on purpose): a
freshly quarantined manifest reports ``quarantineState: "Quarantined"``;
tokens are opaque random strings valid for 300 s; a token grants the
requested actions the user holds (``AcrQuarantineReader`` ~ pull,
``AcrQuarantineWriter`` ~ pull and push). ``POST /oauth2/exchange`` (AAD
tokens to ACR refresh tokens) is not emulated. Every request is recorded in
:attr:`AcrEmulator.requests` for assertions.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, unquote, urlsplit

from conftest import BackgroundServer

from fixtures.notary_harness import TLSMaterial, make_tls

NULL_GUID = "00000000-0000-0000-0000-000000000000"
QUARANTINED = "Quarantined"
_TOKEN_LIFETIME = 300


@dataclass
class Recorded:
    """One request as the emulator saw it (secrets replaced by their kind)."""

    method: str
    path: str
    query: dict[str, list[str]]
    auth: str | None  # "basic:<user>", "bearer", or None
    form: dict[str, list[str]] = field(default_factory=dict)
    body: object = None
    status: int = 0


@dataclass
class _Manifest:
    digest: str
    tags: list[str]
    size: int
    state: str | None = QUARANTINED
    details: str | None = None
    created: str = ""
    updated: str = ""


@dataclass
class _Grant:
    user: str
    repository: str
    actions: frozenset[str]
    expires: float


class AcrEmulator:
    """A loopback HTTPS server speaking ACR's quarantine API (see the module doc)."""

    def __init__(self, workdir: Path, *, tls: TLSMaterial | None = None) -> None:
        self.workdir = workdir
        self.tls = tls
        self.users: dict[str, tuple[str, frozenset[str]]] = {}
        self.refresh_tokens: dict[str, str] = {}
        self.manifests: dict[tuple[str, str], _Manifest] = {}
        self.requests: list[Recorded] = []
        self._grants: dict[str, _Grant] = {}
        self._lock = threading.Lock()
        self._server: BackgroundServer | None = None
        self.port = 0

    # --- set-up ------------------------------------------------------------------------

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.host_port}"

    def add_user(self, name: str, password: str, actions: set[str]) -> None:
        """A user (admin user, service principal, token) holding ``actions`` on every
        repository: {"pull"} is a quarantine reader, {"pull", "push"} a writer."""
        self.users[name] = (password, frozenset(actions))

    def add_refresh_token(self, token: str, user: str) -> None:
        """An ACR refresh token standing for ``user`` (as /oauth2/exchange hands out)."""
        self.refresh_tokens[token] = user

    def add_manifest(self, repository: str, digest: str, tags: list[str], size: int = 528) -> None:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        self.manifests[(repository, digest)] = _Manifest(
            digest, tags, size, created=now, updated=now
        )

    def state(self, repository: str, digest: str) -> tuple[str | None, str | None]:
        m = self.manifests[(repository, digest)]
        return m.state, m.details

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> AcrEmulator:
        if self.tls is None:
            self.tls = make_tls(self.workdir / "tls")
        emulator = self

        class Handler(_Handler):
            acr = emulator

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.tls.server_cert), str(self.tls.server_key))
        self._server = BackgroundServer(Handler, context=ctx)
        self.port = self._server.port
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()

    def __enter__(self) -> AcrEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- auth --------------------------------------------------------------------------

    def _grant(self, user: str, scope: str) -> str | None:
        """A token for ``scope`` (``repository:<repo>:<a,b>``) with the actions ``user`` holds."""
        kind, _, rest = scope.partition(":")
        repo, _, wanted = rest.rpartition(":")
        if kind != "repository" or not repo:
            return None
        held = self.users[user][1]
        actions = frozenset(a for a in wanted.split(",") if a in held)
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._grants[token] = _Grant(user, repo, actions, time.monotonic() + _TOKEN_LIFETIME)
        return token

    def _user_for(self, name: str, secret: str) -> str | None:
        if name == NULL_GUID:
            return self.refresh_tokens.get(secret)
        known = self.users.get(name)
        if known is not None and secrets.compare_digest(known[0], secret):
            return name
        return None

    def allowed(self, token: str | None, repository: str, actions: set[str]) -> bool:
        if token is None:
            return False
        with self._lock:
            grant = self._grants.get(token)
        return (
            grant is not None
            and grant.expires > time.monotonic()
            and grant.repository == repository
            and actions <= grant.actions
        )


class _Handler(BaseHTTPRequestHandler):
    acr: AcrEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    # --- helpers -----------------------------------------------------------------------

    def _host(self) -> str:
        return self.acr.host_port

    def _challenge(self, scope: str | None = None) -> str:
        host = self._host()
        text = f'Bearer realm="https://{host}/oauth2/token",service="{host}"'
        return text + (f',scope="{scope}"' if scope else "")

    def _send(
        self, status: int, doc: object, rec: Recorded, headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(doc).encode()
        rec.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    @staticmethod
    def _error(code: str, message: str) -> dict[str, object]:
        return {"errors": [{"code": code, "message": message}]}

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _record(self) -> tuple[Recorded, str | None, tuple[str, str] | None]:
        parts = urlsplit(self.path)
        auth = self.headers.get("Authorization")
        bearer: str | None = None
        basic: tuple[str, str] | None = None
        shown: str | None = None
        if auth and auth.lower().startswith("bearer "):
            bearer, shown = auth[7:].strip(), "bearer"
        elif auth and auth.lower().startswith("basic "):
            try:
                user, _, pw = base64.b64decode(auth[6:].strip()).decode().partition(":")
                basic, shown = (user, pw), f"basic:{user}"
            except (ValueError, UnicodeDecodeError):
                shown = "basic:<malformed>"
        rec = Recorded(self.command, unquote(parts.path), parse_qs(parts.query), shown)
        with self.acr._lock:
            self.acr.requests.append(rec)
        return rec, bearer, basic

    # --- routes ------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._route()

    def do_PATCH(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def _route(self) -> None:
        rec, bearer, basic = self._record()
        path = rec.path
        if path == "/v2/" and self.command == "GET":
            if bearer is not None and bearer in self.acr._grants:
                self._send(200, {}, rec)
            else:
                self._send(
                    401,
                    self._error("UNAUTHORIZED", "authentication required"),
                    rec,
                    {"WWW-Authenticate": self._challenge()},
                )
            return
        if path == "/oauth2/token":
            self._token(rec, basic)
            return
        if path.startswith("/acr/v1/") and "/_manifests/" in path:
            repo, _, digest = path[len("/acr/v1/") :].partition("/_manifests/")
            self._manifest(rec, bearer, repo, digest)
            return
        self._send(404, self._error("NAME_UNKNOWN", "no such endpoint"), rec)

    def _token(self, rec: Recorded, basic: tuple[str, str] | None) -> None:
        host = self._host()
        if self.command == "GET":
            params = rec.query
            user = self.acr._user_for(*basic) if basic is not None else None
        elif self.command == "POST":
            raw = self._body().decode("utf-8", "replace")
            params = parse_qs(raw)
            rec.form = {k: (["<secret>"] if k == "refresh_token" else v) for k, v in params.items()}
            if params.get("grant_type") != ["refresh_token"]:
                self._send(400, self._error("BADREQUEST", "unsupported grant_type"), rec)
                return
            token = (params.get("refresh_token") or [""])[0]
            user = self.acr.refresh_tokens.get(token)
        else:
            self._send(405, self._error("UNSUPPORTED", "method not allowed"), rec)
            return
        if (params.get("service") or [""])[0] != host:
            self._send(400, self._error("BADREQUEST", f"service must be {host}"), rec)
            return
        if user is None:
            self._send(401, self._error("UNAUTHORIZED", "invalid credentials"), rec)
            return
        scope = (params.get("scope") or [""])[0]
        token = self.acr._grant(user, scope)
        if token is None:
            self._send(400, self._error("BADREQUEST", f"invalid scope {scope!r}"), rec)
            return
        self._send(200, {"access_token": token}, rec)

    def _attributes(self, repo: str, m: _Manifest) -> dict[str, object]:
        return {
            "registry": self._host(),
            "imageName": repo,
            "manifest": {
                "digest": m.digest,
                "imageSize": m.size,
                "createdTime": m.created,
                "lastUpdateTime": m.updated,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "tags": m.tags,
                "changeableAttributes": {
                    "deleteEnabled": True,
                    "writeEnabled": True,
                    "readEnabled": True,
                    "listEnabled": True,
                    "quarantineState": m.state,
                    "quarantineDetails": m.details,
                },
            },
        }

    def _manifest(self, rec: Recorded, bearer: str | None, repo: str, digest: str) -> None:
        body = self._body() if self.command == "PATCH" else b""
        need = {"pull", "push"} if self.command == "PATCH" else {"pull"}
        if self.command not in ("GET", "PATCH"):
            self._send(405, self._error("UNSUPPORTED", "method not allowed"), rec)
            return
        if not self.acr.allowed(bearer, repo, need):
            scope = f"repository:{repo}:{','.join(sorted(need, key=['pull', 'push'].index))}"
            self._send(
                401,
                self._error("UNAUTHORIZED", "authentication required"),
                rec,
                {"WWW-Authenticate": self._challenge(scope)},
            )
            return
        m = self.acr.manifests.get((repo, digest))
        if m is None:
            self._send(404, self._error("MANIFEST_UNKNOWN", "manifest unknown"), rec)
            return
        if self.command == "PATCH":
            try:
                doc = json.loads(body)
            except ValueError:
                doc = None
            rec.body = doc
            if not isinstance(doc, dict):
                self._send(400, self._error("BADREQUEST", "the body is not a JSON object"), rec)
                return
            state = doc.get("quarantineState")
            details = doc.get("quarantineDetails")
            if state is not None and state not in ("Passed", "Failed"):
                self._send(
                    400, self._error("BADREQUEST", f"invalid quarantineState {state!r}"), rec
                )
                return
            if details is not None and not isinstance(details, str):
                self._send(
                    400, self._error("BADREQUEST", "quarantineDetails must be a string"), rec
                )
                return
            if state is not None:
                m.state = state
            if details is not None:
                m.details = details
            m.updated = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        self._send(200, self._attributes(repo, m), rec)
