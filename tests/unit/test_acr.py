"""The ACR quarantine client against httpx.MockTransport: the cases a loopback
emulator does not reach (foreign token realms, retries, odd answers, plain http).
The documented flows run against the emulator in tests/integration/test_gate.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from trustcheck.core.reference import parse_reference
from trustcheck.errors import TrustcheckError
from trustcheck.policy.decide import decide
from trustcheck.policy.load import parse_policy
from trustcheck.remote.acr import NULL_GUID, AcrClient, quarantine_details
from trustcheck.remote.config import RemoteConfig

HOST = "myregistry.azurecr.io"
BASE = f"https://{HOST}"
DIGEST = "sha256:" + "ab" * 32
PATH = f"/acr/v1/team/app/_manifests/{DIGEST}"


def _attrs(state: str | None = "Quarantined", nested: bool = True) -> dict[str, object]:
    manifest: dict[str, object] = {"digest": DIGEST, "tags": ["v1"]}
    fields = {"quarantineState": state, "quarantineDetails": "{}"}
    if nested:
        manifest["changeableAttributes"] = {"readEnabled": True, **fields}
    else:
        manifest.update(fields)
    return {"registry": HOST, "imageName": "team/app", "manifest": manifest}


def _client(
    handler: Callable[[httpx.Request], httpx.Response],
    tmp_path: Path,
    **remote: object,
) -> AcrClient:
    cfg = RemoteConfig(**{"docker_config": tmp_path, "retries": 1, **remote})  # type: ignore[arg-type]
    return AcrClient(BASE, HOST, cfg, env={}, transport=httpx.MockTransport(handler))


def _challenge(realm: str = f"{BASE}/oauth2/token") -> dict[str, str]:
    return {"WWW-Authenticate": f'Bearer realm="{realm}",service="{HOST}"'}


def _fails(code: str, fn: Callable[[], object]) -> str:
    with pytest.raises(TrustcheckError) as info:
        fn()
    assert info.value.code == code, info.value.message
    return info.value.message


def test_token_realm_on_another_host_is_refused(tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url.host))
        return httpx.Response(401, headers=_challenge("https://evil.example/oauth2/token"))

    client = _client(handler, tmp_path, username="bot", password="pw")
    message = _fails("auth-failed", lambda: client.get_manifest("team/app", DIGEST))
    assert "not the login server" in message
    assert seen == [HOST]  # the credentials never went to evil.example


def test_refresh_token_grant_and_bearer_retry(tmp_path: Path) -> None:
    seen: list[tuple[str, str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.headers.get("authorization")))
        if request.url.path == "/oauth2/token":
            form = dict(x.split("=", 1) for x in request.content.decode().split("&"))
            assert form["grant_type"] == "refresh_token" and form["refresh_token"] == "rt"
            assert form["scope"] == "repository%3Ateam%2Fapp%3Apull"
            return httpx.Response(200, json={"access_token": "tok"})
        if request.headers.get("authorization") != "Bearer tok":
            return httpx.Response(401, headers=_challenge())
        return httpx.Response(200, json=_attrs())

    client = _client(handler, tmp_path, username=NULL_GUID, password="rt")
    state = client.get_manifest("team/app", DIGEST)
    assert state.state == "Quarantined" and state.tags == ["v1"]
    assert seen == [
        ("GET", PATH, None),
        ("POST", "/oauth2/token", None),
        ("GET", PATH, "Bearer tok"),
    ]


def test_basic_challenge_gets_the_credentials(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization", "").startswith("Basic "):
            return httpx.Response(200, json=_attrs("Passed", nested=False))
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="acr"'})

    client = _client(handler, tmp_path, username="bot", password="pw")
    state = client.get_manifest("team/app", DIGEST)
    assert state.state == "Passed" and state.details == "{}"  # the older, flat shape


def test_patch_sends_the_documented_body_then_reads_the_state(tmp_path: Path) -> None:
    bodies: list[object] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            assert request.headers["content-type"] == "application/json"
            bodies.append(json.loads(request.content))
            return httpx.Response(204)
        return httpx.Response(200, json=_attrs("Passed"))

    client = _client(handler, tmp_path)
    state = client.set_quarantine("team/app", DIGEST, "Passed", '{"x":1}')
    assert bodies == [{"quarantineState": "Passed", "quarantineDetails": '{"x":1}'}]
    assert state.state == "Passed"


def test_server_errors_are_retried_then_reported(tmp_path: Path) -> None:
    answers = [httpx.Response(503), httpx.Response(200, json=_attrs())]
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return answers.pop(0) if answers else httpx.Response(503)

    assert _client(handler, tmp_path).get_manifest("team/app", DIGEST).state == "Quarantined"
    assert len(calls) == 2
    message = _fails("server-error", lambda: _client(handler, tmp_path).get_manifest("t/a", DIGEST))
    assert "HTTP 503" in message


def test_odd_answers(tmp_path: Path) -> None:
    def not_json(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"<html>")

    _fails("server-error", lambda: _client(not_json, tmp_path).get_manifest("team/app", DIGEST))

    def missing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}
        )

    message = _fails(
        "manifest-not-found", lambda: _client(missing, tmp_path).get_manifest("team/app", DIGEST)
    )
    assert "MANIFEST_UNKNOWN manifest unknown" in message

    def huge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"{" + b" " * (2 << 20))

    _fails("malicious-server", lambda: _client(huge, tmp_path).get_manifest("team/app", DIGEST))


def test_no_credentials_and_refused_password(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            return httpx.Response(401, json={"errors": [{"code": "UNAUTHORIZED", "message": "no"}]})
        return httpx.Response(401, headers=_challenge())

    message = _fails("auth-failed", lambda: _client(handler, tmp_path).get_manifest("t/a", DIGEST))
    assert f"docker login {HOST}" in message
    client = _client(handler, tmp_path, username="bot", password="hunter2-secret")
    message = _fails("auth-failed", lambda: client.get_manifest("t/a", DIGEST))
    assert "hunter2-secret" not in message and "user 'bot'" in message


def test_plain_http_needs_unsafe_http(tmp_path: Path) -> None:
    cfg = RemoteConfig(docker_config=tmp_path)
    client = AcrClient("http://127.0.0.1:5000", "127.0.0.1:5000", cfg, env={})
    _fails("insecure-server", lambda: client.get_manifest("team/app", DIGEST))


def test_quarantine_details_record_signers_rule_and_time() -> None:
    policy = parse_policy("rules:\n  - pattern: a.example/**\n    action: deny\n", "p.yaml")
    decision = decide(parse_reference(f"a.example/team/app@{DIGEST}"), policy, None)
    when = datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC)
    doc = json.loads(quarantine_details(decision, "p.yaml", when, "Failed", DIGEST))
    assert doc["state"] == "Failed" and doc["time"] == "2026-11-27T01:02:03Z"
    assert doc["rule"] == {
        "name": "rules[0]",
        "pattern": "a.example/**",
        "action": "deny",
        "mode": "enforce",
    }
    assert doc["verdict"] == "deny" and doc["reasons"][0]["code"] == "policy-denied"
    assert doc["policy"] == "p.yaml" and doc["digest"] == DIGEST


# --------------------------------------------------------------------------- the shared HTTP stack


def test_retry_after_beyond_the_deadline_stops_the_retries(tmp_path: Path) -> None:
    """ACR calls go through the one HTTP stack: a Retry-After the call's deadline
    cannot wait for ends the retries at once (ACR's own stack slept through them)."""
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return httpx.Response(503, headers={"Retry-After": "4"})

    client = _client(handler, tmp_path, retries=5, total_timeout=1.0)
    message = _fails("server-error", lambda: client.get_manifest("team/app", DIGEST))
    assert "HTTP 503" in message
    assert calls == ["GET"]


def test_retry_after_within_the_deadline_is_honoured_and_patch_is_retried(
    tmp_path: Path,
) -> None:
    answers = [
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.Response(204),
        httpx.Response(200, json=_attrs("Passed")),
    ]
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return answers.pop(0)

    client = _client(handler, tmp_path, retries=2)
    assert client.set_quarantine("team/app", DIGEST, "Passed", "{}").state == "Passed"
    assert calls == ["PATCH", "PATCH", "GET"]  # setting a state is idempotent


def test_an_acr_redirect_to_plain_http_is_refused(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(307, headers={"Location": "http://evil.example/x"})

    message = _fails(
        "malicious-server", lambda: _client(handler, tmp_path).get_manifest("team/app", DIGEST)
    )
    assert "non-https" in message


@dataclass
class _MutualTLS:
    """conftest's TLS server demanding a client certificate from its CA, answering ACR's
    manifest attributes; the peers' certificates as the server saw them."""

    ca_file: Path
    client_cert: Path
    client_key: Path
    netloc: str
    peers: list[object]


@pytest.fixture
def mtls(tmp_path: Path) -> Iterator[_MutualTLS]:
    from http.server import BaseHTTPRequestHandler

    from conftest import tls_server

    folder = tmp_path / "tls-material"
    folder.mkdir()
    peers: list[object] = []
    body = json.dumps(_attrs("Passed")).encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            peers.append(self.request.getpeercert())
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with tls_server(Handler, folder, client_auth=True) as server:
        cert, key = server.client_cert(folder)
        yield _MutualTLS(server.ca_file, cert, key, server.netloc, peers)


def test_client_certificate_options_reach_acr(mtls: _MutualTLS, tmp_path: Path) -> None:
    cfg = RemoteConfig(
        docker_config=tmp_path,
        tls_ca=mtls.ca_file,
        client_cert=mtls.client_cert,
        client_key=mtls.client_key,
        retries=0,
    )
    with AcrClient(f"https://{mtls.netloc}", mtls.netloc, cfg, env={}) as client:
        assert client.get_manifest("team/app", DIGEST).state == "Passed"
    assert len(mtls.peers) == 1 and mtls.peers[0]


def test_docker_per_host_client_certificate_reaches_acr(mtls: _MutualTLS, tmp_path: Path) -> None:
    """Docker's certs.d-style folder ($DOCKER_CONFIG/tls/<host:port>/) with ca.crt,
    client.cert and client.key, the way docker itself reads it."""
    import shutil

    folder = tmp_path / "tls" / mtls.netloc
    folder.mkdir(parents=True)
    shutil.copy(mtls.ca_file, folder / "ca.crt")
    shutil.copy(mtls.client_cert, folder / "client.cert")
    shutil.copy(mtls.client_key, folder / "client.key")
    cfg = RemoteConfig(docker_config=tmp_path, retries=0)
    with AcrClient(f"https://{mtls.netloc}", mtls.netloc, cfg, env={}) as client:
        assert client.get_manifest("team/app", DIGEST).state == "Passed"
    assert len(mtls.peers) == 1


def test_without_a_client_certificate_the_handshake_fails_as_one_error(
    mtls: _MutualTLS, tmp_path: Path
) -> None:
    cfg = RemoteConfig(docker_config=tmp_path, tls_ca=mtls.ca_file, retries=0)
    with (
        AcrClient(f"https://{mtls.netloc}", mtls.netloc, cfg, env={}) as client,
        pytest.raises(TrustcheckError) as info,
    ):
        client.get_manifest("team/app", DIGEST)
    assert info.value.code in ("tls-error", "network-error"), info.value.message
    assert mtls.netloc in info.value.message and info.value.exit_code == 1
    assert mtls.peers == []


def test_the_registry_error_text_is_shown_escaped(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"errors": [{"code": "DENIED", "message": "no\x1b[2J\nFAKE: trusted"}]}
        return httpx.Response(404, json=body)

    message = _fails(
        "manifest-not-found", lambda: _client(handler, tmp_path).get_manifest("team/app", DIGEST)
    )
    assert "DENIED no\\u001b[2J\\u000aFAKE: trusted" in message
    assert "\x1b" not in message and "\n" not in message
