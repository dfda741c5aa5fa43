"""trustcheck.remote.http / trustcheck.remote.notary without a network: server selection, the
auth flow, redirects, caps and retries against ``httpx.MockTransport``.

The real-server behaviour (notary-server, token issuer, docker-registry, fault
proxy) is in tests/integration/test_remote.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from trustcheck.api import Options
from trustcheck.core.reference import parse_reference
from trustcheck.errors import TrustcheckError
from trustcheck.local.trustdir import TrustDir
from trustcheck.remote import http as remote_mod
from trustcheck.remote.http import (
    Deadline,
    HttpSession,
    RemoteConfig,
    registry_base_url,
    select_server,
)
from trustcheck.remote.notary import fetch_collection
from trustcheck.remote.registry import MANIFEST_MEDIA_TYPES, registry_digest

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote_mod, "_RETRY_BASE", 0.001)


def _code(e: pytest.ExceptionInfo[TrustcheckError]) -> str:
    return e.value.code


def _session(handler: Handler, tmp_path: Path, **kw: object) -> HttpSession:
    opts: dict[str, object] = {"docker_config": tmp_path / "docker"}
    opts.update(kw)
    return HttpSession(
        RemoteConfig(**opts),  # type: ignore[arg-type]
        env={},
        transport=httpx.MockTransport(handler),
    )


class Recorder:
    """A scripted server: ``routes`` maps (method, path) to a response factory."""

    def __init__(self) -> None:
        self.seen: list[httpx.Request] = []
        self.routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        key = (request.method, f"{request.url.host}{request.url.path}")
        route = self.routes.get(key)
        if route is None:
            return httpx.Response(404)
        return route(request)

    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.host}{r.url.path}" for r in self.seen]


@pytest.fixture
def rec() -> Iterator[Recorder]:
    yield Recorder()


# --------------------------------------------------------------------------- selection


def test_server_selection_follows_docker() -> None:
    cfg = RemoteConfig()
    assert select_server("docker.io/library/alpine", cfg, {}) == "https://notary.docker.io"
    assert select_server("myreg.azurecr.io/app", cfg, {}) == "https://myreg.azurecr.io"
    assert select_server("localhost:5000/app", cfg, {}) == "https://localhost:5000"
    env = {"DOCKER_CONTENT_TRUST_SERVER": "https://notary.example:4443/"}
    assert select_server("docker.io/library/alpine", cfg, env) == "https://notary.example:4443"
    flag = RemoteConfig(server="https://Flag.Example")
    assert select_server("docker.io/x/y", flag, env) == "https://flag.example"
    assert registry_base_url("docker.io", cfg) == "https://registry-1.docker.io"
    assert registry_base_url("reg.example:5000", cfg) == "https://reg.example:5000"


@pytest.mark.parametrize(
    ("server", "code"),
    [
        ("http://notary.example", "insecure-server"),
        ("ftp://notary.example", "invalid-argument"),
        ("https://user:pw@notary.example", "invalid-argument"),
        ("https://notary.example/prefix", "invalid-argument"),
        ("https://notary.example:99999", "invalid-argument"),
        ("https://", "invalid-argument"),
    ],
)
def test_bad_server_urls(server: str, code: str) -> None:
    with pytest.raises(TrustcheckError) as e:
        select_server("reg.example/app", RemoteConfig(server=server), {})
    assert _code(e) == code


def test_plain_http_needs_unsafe_http() -> None:
    cfg = RemoteConfig(server="http://127.0.0.1:4443", unsafe_http=True)
    assert select_server("reg.example/app", cfg, {}) == "http://127.0.0.1:4443"
    env = {"DOCKER_CONTENT_TRUST_SERVER": "http://notary.example"}
    with pytest.raises(TrustcheckError) as e:
        select_server("reg.example/app", RemoteConfig(), env)
    assert _code(e) == "insecure-server"


@pytest.mark.parametrize(
    "kw",
    [
        {"timeout": 0},
        {"total_timeout": -1},
        {"retries": -1},
        {"concurrency": 0},
        {"client_cert": Path("c.pem")},
    ],
)
def test_remote_config_validation(kw: dict[str, object]) -> None:
    with pytest.raises(TrustcheckError) as e:
        RemoteConfig(**kw).validate()  # type: ignore[arg-type]
    assert _code(e) == "invalid-argument"


def test_unreadable_tls_files(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    for kw in (
        {"tls_ca": bad},
        {"tls_ca": tmp_path / "missing.pem"},
        {"client_cert": bad, "client_key": bad},
    ):
        session = _session(lambda r: httpx.Response(200), tmp_path, **kw)
        ep = session.endpoint("https://n.example", "n.example", "notary server")
        with pytest.raises(TrustcheckError) as e:
            ep.ping(Deadline(5))
        assert _code(e) == "tls-config-invalid"


# --------------------------------------------------------------------------- auth flow


def _bearer(realm: str = "https://auth.example/token") -> httpx.Response:
    header = f'Bearer realm="{realm}",service="notary.example",scope="registry:catalog:*"'
    return httpx.Response(401, headers={"WWW-Authenticate": header})


def _authed(expected: str) -> Callable[[httpx.Request], httpx.Response]:
    def route(req: httpx.Request) -> httpx.Response:
        if req.headers.get("Authorization") != expected:
            return _bearer()
        return httpx.Response(200, content=b"{}")

    return route


def test_bearer_token_flow_and_reuse(rec: Recorder, tmp_path: Path) -> None:
    rec.routes[("GET", "n.example/v2/")] = lambda r: _bearer()

    def token(req: httpx.Request) -> httpx.Response:
        q = parse_qs(urlsplit(str(req.url)).query)
        assert q == {
            "service": ["notary.example"],
            "scope": ["repository:n.example/app:pull"],
            "account": ["alice"],
        }
        assert req.headers["Authorization"] == "Basic " + base64.b64encode(b"alice:pw").decode()
        return httpx.Response(200, json={"token": "T1", "expires_in": 300})

    rec.routes[("GET", "auth.example/token")] = token
    rec.routes[("GET", "n.example/v2/n.example/app/_trust/tuf/timestamp.json")] = _authed(
        "Bearer T1"
    )
    session = _session(rec, tmp_path, username="alice", password="pw")
    ep = session.endpoint("https://n.example", "n.example", "notary server")
    for _ in range(3):
        ans = ep.request(
            "GET",
            "/v2/n.example/app/_trust/tuf/timestamp.json",
            scope="repository:n.example/app:pull",
            cap=100,
            deadline=Deadline(5),
            what="timestamp",
        )
        assert ans.status == 200
    assert rec.paths().count("GET auth.example/token") == 1
    assert rec.paths().count("GET n.example/v2/") == 1


def test_rejected_token_is_refreshed_once_then_auth_failed(rec: Recorder, tmp_path: Path) -> None:
    rec.routes[("GET", "n.example/v2/")] = lambda r: _bearer()
    rec.routes[("GET", "auth.example/token")] = lambda r: httpx.Response(200, json={"token": "T"})
    rec.routes[("GET", "n.example/x")] = lambda r: _bearer()
    ep = _session(rec, tmp_path).endpoint("https://n.example", "n.example", "notary server")
    with pytest.raises(TrustcheckError) as e:
        ep.request("GET", "/x", scope="s", cap=10, deadline=Deadline(5), what="x")
    assert _code(e) == "auth-failed"
    assert rec.paths().count("GET auth.example/token") == 2
    assert rec.paths().count("GET n.example/x") == 2


def test_token_service_refusal_is_auth_failed(rec: Recorder, tmp_path: Path) -> None:
    rec.routes[("GET", "n.example/v2/")] = lambda r: _bearer()
    rec.routes[("GET", "auth.example/token")] = lambda r: httpx.Response(401)
    ep = _session(rec, tmp_path, username="bob", password="nope").endpoint(
        "https://n.example", "n.example", "notary server"
    )
    with pytest.raises(TrustcheckError) as e:
        ep.request("GET", "/x", scope="s", cap=10, deadline=Deadline(5), what="x")
    assert _code(e) == "auth-failed"
    assert "bob" in e.value.message and "nope" not in e.value.message


def test_plain_http_realm_is_refused(rec: Recorder, tmp_path: Path) -> None:
    rec.routes[("GET", "n.example/v2/")] = lambda r: _bearer("http://auth.example/token")
    ep = _session(rec, tmp_path).endpoint("https://n.example", "n.example", "notary server")
    with pytest.raises(TrustcheckError) as e:
        ep.request("GET", "/x", scope="s", cap=10, deadline=Deadline(5), what="x")
    assert _code(e) == "insecure-server"
    assert "GET auth.example/token" not in rec.paths()


def test_identity_token_uses_the_refresh_grant(rec: Recorder, tmp_path: Path) -> None:
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text(
        '{"auths": {"n.example": {"identitytoken": "REFRESH"}}}'
    )
    rec.routes[("GET", "n.example/v2/")] = lambda r: _bearer()

    def grant(req: httpx.Request) -> httpx.Response:
        form = parse_qs(req.content.decode())
        assert form["grant_type"] == ["refresh_token"]
        assert form["refresh_token"] == ["REFRESH"]
        assert form["scope"] == ["s"] and form["service"] == ["notary.example"]
        return httpx.Response(200, json={"access_token": "A"})

    rec.routes[("POST", "auth.example/token")] = grant
    rec.routes[("GET", "n.example/x")] = _authed("Bearer A")
    ep = _session(rec, tmp_path).endpoint("https://n.example", "n.example", "notary server")
    ans = ep.request("GET", "/x", scope="s", cap=10, deadline=Deadline(5), what="x")
    assert ans.status == 200


def test_basic_challenge(rec: Recorder, tmp_path: Path) -> None:
    basic = httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
    rec.routes[("GET", "n.example/v2/")] = lambda r: basic
    expected = "Basic " + base64.b64encode(b"u:p").decode()
    rec.routes[("GET", "n.example/x")] = lambda r: httpx.Response(
        200 if r.headers.get("Authorization") == expected else 401
    )
    ep = _session(rec, tmp_path, username="u", password="p").endpoint(
        "https://n.example", "n.example", "notary server"
    )
    assert ep.request("GET", "/x", scope="s", cap=10, deadline=Deadline(5), what="x").status == 200
    anon = _session(rec, tmp_path).endpoint("https://n.example", "n.example", "notary server")
    with pytest.raises(TrustcheckError) as e:
        anon.request("GET", "/x", scope="s", cap=10, deadline=Deadline(5), what="x")
    assert _code(e) == "auth-failed"


# ------------------------------------------------------------------ redirects, caps, retries


def test_redirect_to_another_host_drops_authorization(rec: Recorder, tmp_path: Path) -> None:
    rec.routes[("GET", "n.example/x")] = lambda r: httpx.Response(
        302, headers={"Location": "https://cdn.example/blob"}
    )
    rec.routes[("GET", "cdn.example/blob")] = lambda r: httpx.Response(200, content=b"data")
    session = _session(rec, tmp_path)
    ans = session.request(
        "GET",
        "https://n.example/x",
        deadline=Deadline(5),
        what="x",
        cap=10,
        headers={"Authorization": "Bearer secret"},
    )
    assert ans.body == b"data" and ans.url == "https://cdn.example/blob"
    assert rec.seen[0].headers["Authorization"] == "Bearer secret"
    assert "Authorization" not in rec.seen[1].headers
    rec.routes[("GET", "n.example/y")] = lambda r: httpx.Response(
        301, headers={"Location": "http://n.example/z"}
    )
    with pytest.raises(TrustcheckError) as e:
        session.request("GET", "https://n.example/y", deadline=Deadline(5), what="y", cap=10)
    assert _code(e) == "malicious-server"


def test_caps(rec: Recorder, tmp_path: Path) -> None:
    rec.routes[("GET", "n.example/big")] = lambda r: httpx.Response(200, content=b"x" * 11)
    rec.routes[("GET", "n.example/stream")] = lambda r: httpx.Response(
        200, content=iter([b"x" * 6, b"x" * 6, b"x" * 1000])
    )
    rec.routes[("GET", "n.example/ok")] = lambda r: httpx.Response(200, content=b"x" * 10)
    rec.routes[("GET", "n.example/err")] = lambda r: httpx.Response(400, content=b"e" * 100_000)
    session = _session(rec, tmp_path)

    def get(path: str) -> bytes:
        return session.request(
            "GET", f"https://n.example/{path}", deadline=Deadline(5), what=path, cap=10
        ).body

    with pytest.raises(TrustcheckError) as e:
        get("big")
    assert _code(e) == "malicious-server"
    with pytest.raises(TrustcheckError) as e:
        get("stream")
    assert _code(e) == "file-too-large"
    assert get("ok") == b"x" * 10
    assert len(get("err")) == 64 << 10  # error bodies are cut at 64 KiB, not refused


def test_retries_on_5xx_and_network_errors(rec: Recorder, tmp_path: Path) -> None:
    answers = iter([httpx.Response(503), httpx.Response(502), httpx.Response(200, content=b"ok")])
    rec.routes[("GET", "n.example/flaky")] = lambda r: next(answers)
    session = _session(rec, tmp_path, retries=2)
    ans = session.request("GET", "https://n.example/flaky", deadline=Deadline(5), what="f", cap=9)
    assert ans.body == b"ok" and len(rec.seen) == 3

    def down(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=req)

    rec.routes[("GET", "n.example/down")] = down
    with pytest.raises(TrustcheckError) as e:
        session.request("GET", "https://n.example/down", deadline=Deadline(5), what="d", cap=9)
    assert _code(e) == "network-error"
    assert rec.paths().count("GET n.example/down") == 3
    # no retries for a POST
    rec.routes[("POST", "n.example/post")] = down
    with pytest.raises(TrustcheckError) as e:
        session.request("POST", "https://n.example/post", deadline=Deadline(5), what="p", cap=9)
    assert rec.paths().count("POST n.example/post") == 1


def test_tls_failures_and_timeouts_are_classified(rec: Recorder, tmp_path: Path) -> None:
    def bad_cert(req: httpx.Request) -> httpx.Response:
        try:
            raise ssl.SSLCertVerificationError("certificate verify failed")
        except ssl.SSLError as inner:
            raise httpx.ConnectError("tls", request=req) from inner

    def slow(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=req)

    rec.routes[("GET", "n.example/tls")] = bad_cert
    rec.routes[("GET", "n.example/slow")] = slow
    session = _session(rec, tmp_path, retries=1)
    with pytest.raises(TrustcheckError) as e:
        session.request("GET", "https://n.example/tls", deadline=Deadline(5), what="t", cap=9)
    assert _code(e) == "tls-error"
    assert rec.paths().count("GET n.example/tls") == 1  # never retried
    with pytest.raises(TrustcheckError) as e:
        session.request("GET", "https://n.example/slow", deadline=Deadline(5), what="s", cap=9)
    assert _code(e) == "server-timeout"
    assert rec.paths().count("GET n.example/slow") == 2
    with pytest.raises(TrustcheckError) as e:
        session.request("GET", "https://n.example/ok", deadline=Deadline(0), what="o", cap=9)
    assert _code(e) == "server-timeout"


# --------------------------------------------------------------------------- fetch and registry


def test_unreachable_server_without_cache(tmp_path: Path) -> None:
    def down(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=req)

    session = _session(down, tmp_path, retries=0)
    td = tmp_path / "trust"
    with pytest.raises(TrustcheckError) as e:
        fetch_collection(
            "n.example/app",
            TrustDir(td),
            dt.datetime.now(dt.UTC),
            Options(),
            session.remote,
            {},
            session=session,
        )
    assert _code(e) == "network-error"
    assert not td.exists()


def test_unknown_repository_is_no_trust_data(rec: Recorder, tmp_path: Path) -> None:
    rec.routes[("GET", "n.example/v2/")] = lambda r: httpx.Response(200)
    session = _session(rec, tmp_path)
    with pytest.raises(TrustcheckError) as e:
        fetch_collection(
            "n.example/app",
            TrustDir(tmp_path / "trust"),
            dt.datetime.now(dt.UTC),
            Options(),
            session.remote,
            {},
            session=session,
        )
    assert _code(e) == "no-trust-data"
    assert rec.paths() == [
        "GET n.example/v2/",
        "GET n.example/v2/n.example/app/_trust/tuf/root.json",
    ]
    assert not (tmp_path / "trust").exists()


def test_registry_digest_head_then_get(rec: Recorder, tmp_path: Path) -> None:
    manifest = b'{"schemaVersion":2}'
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    rec.routes[("GET", "reg.example/v2/")] = lambda r: httpx.Response(200)

    def head(req: httpx.Request) -> httpx.Response:
        assert req.headers["Accept"] == ", ".join(MANIFEST_MEDIA_TYPES)
        return httpx.Response(200, headers={"Docker-Content-Digest": digest})

    rec.routes[("HEAD", "reg.example/v2/team/app/manifests/v1")] = head
    # a registry that omits the header on HEAD: GET and hash the body
    rec.routes[("HEAD", "reg.example/v2/team/app/manifests/v2")] = lambda r: httpx.Response(200)
    rec.routes[("GET", "reg.example/v2/team/app/manifests/v2")] = lambda r: httpx.Response(
        200, content=manifest
    )
    rec.routes[("HEAD", "reg.example/v2/team/app/manifests/bad")] = lambda r: httpx.Response(
        200, headers={"Docker-Content-Digest": "md5:abc"}
    )
    session = _session(rec, tmp_path)
    remote = session.remote
    for tag in ("v1", "v2"):
        ref = parse_reference(f"reg.example/team/app:{tag}")
        assert registry_digest(ref, remote, {}, session=session) == digest
    with pytest.raises(TrustcheckError) as e:
        registry_digest(parse_reference("reg.example/team/app:bad"), remote, {}, session=session)
    assert _code(e) == "server-error"
    with pytest.raises(TrustcheckError) as e:
        registry_digest(parse_reference("reg.example/team/app:gone"), remote, {}, session=session)
    assert _code(e) == "registry-tag-missing"


# --------------------------------------------------------------------------- server-sent numbers


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("1234", 1234),
        (" 12 ", 12),
        ("1_000", None),
        ("+5", None),
        ("-1", None),
        ("\u0661\u0662", None),
        ("\u00b2", None),
        ("1" * 20, None),
        ("", None),
        ("0x10", None),
    ],
)
def test_content_length_is_ascii_digits(text: str, value: int | None) -> None:
    assert remote_mod.parse_length(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3.0),
        (" 0 ", 0.0),
        ("\u00b2", None),
        ("\u0663", None),
        ("9" * 11, None),
        ("1e3", None),
        ("NaN", None),
        ("Fri, 31 Dec 1999 23:59:59 GMT", None),
        (None, None),
    ],
)
def test_retry_after_is_ascii_delay_seconds(text: str | None, value: float | None) -> None:
    assert remote_mod.parse_retry_after(text) == value


def test_content_codings_are_listed_and_bounded() -> None:
    assert remote_mod.content_codings(["gzip, identity", " GZIP"]) == ["gzip", "identity", "gzip"]
    assert remote_mod.content_codings(["identity", "", " IDENTITY"]) == []
    assert remote_mod.content_codings([" GZip "]) == ["gzip"]
    with pytest.raises(remote_mod.BodyError) as e:
        remote_mod.content_codings(["gzip," * 100])
    assert e.value.code == "malicious-server"


def test_nested_deadlines_keep_the_earlier_end() -> None:
    with remote_mod.until(100.0):
        with remote_mod.until(200.0):
            assert remote_mod._DEADLINE.end == 100.0
        with remote_mod.until(50.0):
            assert remote_mod._DEADLINE.end == 50.0
        assert remote_mod._DEADLINE.end == 100.0
    assert remote_mod._DEADLINE.end is None
    with remote_mod.until(0.0), pytest.raises(Exception, match="deadline passed"):
        remote_mod._left(5.0, "read")


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://bot:s3cret@registry.example.com/v2/?account=bob", "insecure-server"),
        ("ftp://bot:s3cret@registry.example.com/v2/?account=bob", "server-error"),
    ],
)
def test_messages_never_show_url_credentials(tmp_path: Path, url: str, code: str) -> None:
    """The HTTP stack redacts URLs with trustcheck.text.redact_url: no password, no
    query string in any message."""
    with (
        remote_mod.HttpSession(RemoteConfig(docker_config=tmp_path), env={}) as session,
        pytest.raises(TrustcheckError) as info,
    ):
        session.request("GET", url, deadline=remote_mod.Deadline(5), what="test", cap=100)
    assert info.value.code == code
    assert "registry.example.com" in info.value.message
    assert "s3cret" not in info.value.message and "bob" not in info.value.message


def test_a_redirect_to_a_url_with_credentials_is_reported_redacted(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "http://bot:s3cret@evil.example/x?t=T0K"})

    with (
        remote_mod.HttpSession(
            RemoteConfig(docker_config=tmp_path), env={}, transport=httpx.MockTransport(handler)
        ) as session,
        pytest.raises(TrustcheckError) as info,
    ):
        session.request(
            "GET",
            "https://registry.example.com/v2/",
            deadline=remote_mod.Deadline(5),
            what="test",
            cap=100,
        )
    assert info.value.code == "malicious-server"
    assert "evil.example" in info.value.message
    assert "s3cret" not in info.value.message and "T0K" not in info.value.message
