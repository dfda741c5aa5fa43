"""The ACR quarantine client against httpx.MockTransport: the cases a loopback
emulator does not reach (foreign token realms, retries, odd answers, plain http).
The documented flows run against the emulator in tests/integration/test_gate.py."""

from __future__ import annotations

import json
from collections.abc import Callable
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
    cfg = RemoteConfig(docker_config=tmp_path, retries=1, **remote)  # type: ignore[arg-type]
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
