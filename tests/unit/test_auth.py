"""trustcheck.remote.auth: docker config credentials, credential helpers, challenges, tokens."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from trustcheck.errors import TrustcheckError
from trustcheck.remote.auth import (
    DOCKER_HUB_AUTH_KEY,
    Challenge,
    Credentials,
    TokenCache,
    credentials_key,
    docker_config_dir,
    parse_challenges,
    parse_token_response,
    resolve_credentials,
    run_credential_helper,
)


def _code(exc: pytest.ExceptionInfo[TrustcheckError]) -> str:
    return exc.value.code


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _config(tmp_path: Path, doc: object) -> Path:
    folder = tmp_path / "docker"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return folder


def _helper(tmp_path: Path, name: str, script: str) -> dict[str, str]:
    """A fake docker-credential-<name> on a private PATH; returns the env to use."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


# --------------------------------------------------------------------------- keys and folders


def test_credentials_key_is_dockers() -> None:
    assert credentials_key("docker.io") == DOCKER_HUB_AUTH_KEY
    assert credentials_key("index.docker.io") == DOCKER_HUB_AUTH_KEY
    assert credentials_key("myreg.azurecr.io") == "myreg.azurecr.io"
    assert credentials_key("localhost:5000") == "localhost:5000"


def test_docker_config_dir_precedence(tmp_path: Path) -> None:
    assert docker_config_dir(tmp_path / "x", {"DOCKER_CONFIG": "/y"}) == tmp_path / "x"
    assert docker_config_dir(None, {"DOCKER_CONFIG": "/y"}) == Path("/y")
    assert docker_config_dir(None, {"HOME": "/home/u"}) == Path("/home/u/.docker")


# --------------------------------------------------------------------------- resolve_credentials


def test_username_and_password_win(tmp_path: Path) -> None:
    folder = _config(tmp_path, {"auths": {"reg.example": {"auth": _b64("other:pw")}}})
    creds = resolve_credentials("reg.example", username="me", password="pw", config_dir=folder)
    assert creds == Credentials("me", "pw", source="--username")
    assert "pw" not in repr(creds)


def test_username_needs_password_and_password_needs_username(tmp_path: Path) -> None:
    with pytest.raises(TrustcheckError) as e:
        resolve_credentials("r", username="me", config_dir=tmp_path)
    assert _code(e) == "invalid-argument"
    with pytest.raises(TrustcheckError) as e:
        resolve_credentials("r", password="pw", config_dir=tmp_path)
    assert _code(e) == "invalid-argument"


def test_auths_entry_forms(tmp_path: Path) -> None:
    folder = _config(
        tmp_path,
        {
            "auths": {
                "https://reg.example/v1/": {"auth": _b64("alice:pa:ss")},
                "fields.example": {"username": "bob", "password": "pw2"},
                "idtok.example": {"auth": _b64("carol:"), "identitytoken": "refresh-me"},
                "empty.example": {},
            }
        },
    )
    alice = resolve_credentials("reg.example", config_dir=folder, env={})
    assert alice is not None and (alice.username, alice.password) == ("alice", "pa:ss")
    assert "auths['https://reg.example/v1/']" in alice.source
    bob = resolve_credentials("fields.example", config_dir=folder, env={})
    assert bob is not None and (bob.username, bob.password) == ("bob", "pw2")
    carol = resolve_credentials("idtok.example", config_dir=folder, env={})
    assert carol is not None and carol.identity_token == "refresh-me"
    assert resolve_credentials("empty.example", config_dir=folder, env={}) is None
    assert resolve_credentials("unknown.example", config_dir=folder, env={}) is None


def test_missing_or_empty_config_means_no_credentials(tmp_path: Path) -> None:
    assert resolve_credentials("r", config_dir=tmp_path / "none", env={}) is None
    assert resolve_credentials("r", config_dir=_config(tmp_path, "  \n"), env={}) is None


@pytest.mark.parametrize(
    "doc",
    [
        "{not json",
        "[1, 2]",
        {"auths": []},
        {"auths": {"r": "x"}},
        {"auths": {"r": {"auth": "!!!"}}},
        {"auths": {"r": {"auth": _b64("no-colon")}}},
        {"auths": {"r": {"username": 3}}},
        {"credsStore": 7},
    ],
    ids=["json", "array", "auths-list", "entry-str", "b64", "colon", "username-int", "store-int"],
)
def test_malformed_docker_config(tmp_path: Path, doc: object) -> None:
    folder = _config(tmp_path, doc)
    with pytest.raises(TrustcheckError) as e:
        resolve_credentials("r", config_dir=folder, env={})
    assert _code(e) == "docker-config-invalid"


# --------------------------------------------------------------------------- credential helpers


def test_creds_store_helper_gets_the_server_on_stdin(tmp_path: Path) -> None:
    env = _helper(
        tmp_path,
        "fake",
        'read server\n[ "$1" = get ] || exit 9\n'
        'printf \'{"ServerURL":"%s","Username":"u-%s","Secret":"s"}\' "$server" "$server"\n',
    )
    folder = _config(tmp_path, {"credsStore": "fake", "auths": {"reg.example": {}}})
    creds = resolve_credentials("reg.example", config_dir=folder, env=env)
    assert creds is not None
    assert (creds.username, creds.password) == ("u-reg.example", "s")
    assert creds.source == "credential helper docker-credential-fake"


def test_cred_helpers_beat_creds_store_and_match_by_host(tmp_path: Path) -> None:
    env = _helper(tmp_path, "one", 'printf \'{"Username":"one","Secret":"1"}\'\n')
    env = _helper(tmp_path, "two", 'printf \'{"Username":"two","Secret":"2"}\'\n')
    folder = _config(tmp_path, {"credsStore": "two", "credHelpers": {"https://reg.example": "one"}})
    one = resolve_credentials("reg.example", config_dir=folder, env=env)
    assert one is not None and one.username == "one"
    two = resolve_credentials("other.example", config_dir=folder, env=env)
    assert two is not None and two.username == "two"


def test_helper_identity_token_and_not_found(tmp_path: Path) -> None:
    env = _helper(
        tmp_path,
        "tok",
        'read server\nif [ "$server" = none ]; then\n'
        "  echo 'credentials not found in native keychain'; exit 1\nfi\n"
        'printf \'{"Username":"<token>","Secret":"refresh"}\'\n',
    )
    creds = run_credential_helper("tok", "reg.example", env=env)
    assert creds is not None and creds.identity_token == "refresh" and creds.username == ""
    assert run_credential_helper("tok", "none", env=env) is None


@pytest.mark.parametrize(
    ("name", "script"),
    [
        ("missing", None),
        ("../evil", None),
        ("fails", "echo 'helper exploded' >&2; exit 2\n"),
        ("garbage", "echo not-json\n"),
        ("array", "echo '[]'\n"),
        ("types", 'printf \'{"Username":1,"Secret":"x"}\'\n'),
    ],
)
def test_helper_failures(tmp_path: Path, name: str, script: str | None) -> None:
    env = _helper(tmp_path, name, script) if script is not None else {"PATH": str(tmp_path)}
    with pytest.raises(TrustcheckError) as e:
        run_credential_helper(name, "reg.example", env=env)
    assert _code(e) == "credential-helper-failed"


def test_helper_timeout(tmp_path: Path) -> None:
    env = _helper(tmp_path, "slow", "sleep 5\n")
    with pytest.raises(TrustcheckError) as e:
        run_credential_helper("slow", "reg.example", env=env, timeout=0.3)
    assert _code(e) == "credential-helper-failed"


def test_helper_output_never_leaks_into_messages(tmp_path: Path) -> None:
    env = _helper(tmp_path, "leaky", "echo 'oops'; exit 1\n")
    with pytest.raises(TrustcheckError) as e:
        run_credential_helper("leaky", "reg.example", env=env)
    assert _code(e) == "credential-helper-failed" and "oops" in str(e.value)
    assert os.linesep not in str(e.value)


# --------------------------------------------------------------------------- challenges


def test_parse_bearer_challenge() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull"'
    )
    (ch,) = parse_challenges([header])
    assert ch == Challenge(
        "bearer",
        {
            "realm": "https://auth.docker.io/token",
            "service": "registry.docker.io",
            "scope": "repository:library/alpine:pull",
        },
    )
    assert ch.realm == "https://auth.docker.io/token" and ch.service == "registry.docker.io"


def test_parse_several_challenges_tokens_and_escapes() -> None:
    got = parse_challenges(
        [
            'Basic realm="a \\"quoted\\" realm", Bearer realm=https://x/t, service=svc',
            "Negotiate",
            'bearer realm="https://y/t",error="invalid_token"',
        ]
    )
    assert [(c.scheme, dict(c.params)) for c in got] == [
        ("basic", {"realm": 'a "quoted" realm'}),
        ("bearer", {"realm": "https://x/t", "service": "svc"}),
        ("negotiate", {}),
        ("bearer", {"realm": "https://y/t", "error": "invalid_token"}),
    ]


def test_parse_malformed_challenges_keeps_what_it_understood() -> None:
    assert parse_challenges(["", "=oops", ",,,"]) == []
    (ch,) = parse_challenges(['Bearer realm="unterminated'])
    assert ch.scheme == "bearer"


# --------------------------------------------------------------------------- tokens


def test_token_response_fields() -> None:
    assert parse_token_response(b'{"token":"abc","expires_in":300}', "r") == ("abc", 300)
    assert parse_token_response(b'{"token":"t","access_token":"a"}', "r") == ("a", 60)
    assert parse_token_response(b'{"access_token":"a","expires_in":5}', "r") == ("a", 60)
    assert parse_token_response(b'{"token":"a","expires_in":null}', "r") == ("a", 60)
    assert parse_token_response(b'{"token":"a","expires_in":-7}', "r") == ("a", 60)
    # never cached longer than a day, whatever the service says
    assert parse_token_response(b'{"token":"a","expires_in":9223372036854775807}', "r") == (
        "a",
        86400,
    )


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"token":""}',
        b'{"token":5}',
        b'{"token":"a b"}',
        b"[" * 100_000,
        # expires_in is a Go int in docker/distribution: anything else fails there
        b'{"token":"a","expires_in":true}',
        b'{"token":"a","expires_in":1e999}',
        b'{"token":"a","expires_in":-1e999}',
        b'{"token":"a","expires_in":NaN}',
        b'{"token":"a","expires_in":Infinity}',
        b'{"token":"a","expires_in":' + b"9" * 400 + b"}",
        b'{"token":"a","expires_in":' + b"9" * 5000 + b"}",
        b'{"token":"a","expires_in":9223372036854775808}',
        b'{"token":"a","expires_in":300.5}',
        b'{"token":"a","expires_in":"300"}',
    ],
    ids=[
        "text",
        "array",
        "empty",
        "blank",
        "int",
        "space",
        "deep",
        "expires-bool",
        "expires-1e999",
        "expires-minus-1e999",
        "expires-nan",
        "expires-infinity",
        "expires-400-digits",
        "expires-5000-digits",
        "expires-past-int64",
        "expires-float",
        "expires-string",
    ],
)
def test_token_response_refused(body: bytes) -> None:
    with pytest.raises(TrustcheckError) as e:
        parse_token_response(body, "https://auth.example/token")
    assert _code(e) == "auth-failed"


def test_token_cache_reuses_until_expiry() -> None:
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0])
    key = ("realm", "svc", "repository:a:pull", "")
    cache.put(key, "tok", 60)
    assert cache.get(key) == "tok"
    now[0] += 54.0
    assert cache.get(key) == "tok"
    now[0] += 1.5  # inside the safety margin before expiry
    assert cache.get(key) is None
    assert len(cache) == 0
    cache.put(key, "tok2", 300)
    cache.drop(key)
    assert cache.get(key) is None
    assert cache.get(("other",)) is None
