"""trustcheck doctor without servers: codes and their docs, the pure helpers,
the local checks, offline runs on the committed fixtures, and the CLI contract."""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import warnings
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from trustcheck.doctor import network as doctor_network
from trustcheck.doctor.clock import clock_skew
from trustcheck.doctor.context import DoctorConfig, parse_target
from trustcheck.doctor.network import classify_tls_error, realm_problem
from trustcheck.doctor.report import CODES, CheckResult, Report
from trustcheck.doctor.runner import run_doctor
from trustcheck.errors import UsageError
from trustcheck.remote.config import RemoteConfig

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures" / "generated"
TRUST = FIXTURES / "trust"
AT = (FIXTURES / "VALIDATION_TIME").read_text().strip()
ERRORS_DOC = REPO / "docs" / "errors.md"
DOCTOR_DOC = REPO / "docs" / "doctor.md"
SOURCES = sorted((REPO / "trustcheck" / "doctor").glob("*.py"))


@pytest.fixture(autouse=True)
def _own_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "docker-config"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    monkeypatch.delenv("DOCKER_CONTENT_TRUST_SERVER", raising=False)
    return config


def cli(*args: str) -> tuple[int, dict[str, Any], str]:
    """``trustcheck doctor --json ARGS`` in-process: exit code, document, stderr."""
    from conftest import run_trustcheck

    r = run_trustcheck("doctor", "--json", *args)
    assert "Traceback" not in r.stderr
    return r.code, (json.loads(r.stdout) if r.stdout else {}), r.stderr


def codes(doc: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["code"] for c in doc["checks"]}


def check(doc: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in doc["checks"] if c["name"] == name]
    assert len(found) == 1, (name, doc["checks"])
    return found[0]


def config(tmp_path: Path, target: str | None = None, **kw: Any) -> DoctorConfig:
    remote = kw.pop("remote", RemoteConfig(offline=True))
    return DoctorConfig(
        target=target,
        trust_dir=kw.pop("trust_dir", TRUST),
        remote=remote,
        at=kw.pop("at", datetime.fromisoformat(AT.replace("Z", "+00:00"))),
        state_dir=kw.pop("state_dir", tmp_path / "state"),
        home=tmp_path / "home",
        env=kw.pop("env", {"HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}),
        **kw,
    )


# --------------------------------------------------------------------------- codes and docs


def _doc_table(text: str, heading: str) -> dict[str, tuple[str, str]]:
    """``code -> (status, exit)`` from the table under ``heading`` (rows ``| CODE | ...``)."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([A-Z][A-Z0-9_]+) \| ([a-z, ]+) \| ([0-9, ]+|-) \|", section, re.M)
    return {code: (status, exit_) for code, status, exit_ in rows}


def test_codes_are_upper_case_and_documented_in_both_docs_with_their_exit_codes() -> None:
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", c) for c in CODES)
    for path, heading in ((ERRORS_DOC, "## trustcheck doctor"), (DOCTOR_DOC, "## Codes")):
        table = _doc_table(path.read_text(), heading)
        assert set(table) == set(CODES), (path, set(table) ^ set(CODES))
        for code, (_status, exit_text) in table.items():
            exit_code = CODES[code][0]
            if code == "TRUST_DATA_INVALID":
                assert exit_text == "1, 2", code
            elif exit_code == 0:
                assert exit_text == "-", (path, code)
            else:
                assert exit_text == str(exit_code), (path, code)


def test_the_doctor_section_does_not_disturb_the_verifier_code_tables() -> None:
    text = ERRORS_DOC.read_text()
    kebab = re.findall(r"^\| `([a-z0-9-]+)` \|", text.split("## trustcheck doctor", 1)[1], re.M)
    assert kebab == []  # the doctor table's rows never look like verifier codes


def test_every_code_the_source_names_is_registered_and_every_code_is_used() -> None:
    # each module's text without its __all__ (names, not codes)
    texts = [re.sub(r"__all__ = \[[^\]]*\]", "", path.read_text()) for path in SOURCES]
    registry = [t for t in texts if "CODES: dict" in t]
    assert len(registry) == 1
    body = "\n".join(
        t.split("CODES: dict", 1)[1].split("\n}\n", 1)[1] if "CODES: dict" in t else t
        for t in texts
    )  # everything but the registry
    named = set(re.findall(r'"([A-Z][A-Z0-9]*_[A-Z0-9_]+|OK|SKIPPED|BLOCKED)"', body))
    not_codes = {r for r in named if r.startswith(("TLSV1_", "UNSUPPORTED_", "NO_PROTOCOLS"))}
    not_codes |= {"VERSION_TOO_LOW", "WRONG_SSL_VERSION", "WRONG_VERSION_NUMBER"}  # ssl reasons
    not_codes |= {"DOCKER_CONTENT_TRUST_SERVER"}  # an environment variable
    assert named - not_codes <= set(CODES), named - not_codes - set(CODES)
    assert set(CODES) <= named, set(CODES) - named


def test_results_refuse_unknown_codes_and_statuses() -> None:
    with pytest.raises(ValueError):
        CheckResult("local", "x", "ok", "NOT_A_CODE", "m")
    with pytest.raises(ValueError):
        CheckResult("local", "x", "bad", "OK", "m")
    with pytest.raises(ValueError):
        CheckResult("elsewhere", "x", "ok", "OK", "m")


def test_exit_code_is_the_largest_of_the_failures() -> None:
    report = Report(None, None, None, None, True, datetime.now(UTC), Path("/t"))
    assert report.exit_code == 0
    report.checks.append(CheckResult("time", "clock", "warn", "CLOCK_SKEW_WARNING", "m"))
    assert report.exit_code == 0
    report.checks.append(CheckResult("server", "dns", "fail", "CONNECTIVITY_DNS_ERROR", "m"))
    assert report.exit_code == 1
    report.checks.append(CheckResult("local", "pin-file", "fail", "PIN_FILE_ERROR", "m"))
    assert report.exit_code == 2
    invalid = CheckResult("trust", "verify", "fail", "TRUST_DATA_INVALID", "m", exit_override=2)
    assert invalid.exit_code == 2
    # a code whose failure exit is "-" still fails with 1 if ever used as a failure
    assert CheckResult("local", "t", "fail", "TRUST_DIR_UNWRITABLE", "m").exit_code == 1


# --------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("text", "kind", "domain", "gun"),
    [
        ("alpine", "image", "docker.io", "docker.io/library/alpine"),
        ("alpine:3.20", "image", "docker.io", "docker.io/library/alpine"),
        ("localhost:5000/team/app:v1", "image", "localhost:5000", "localhost:5000/team/app"),
        ("myreg.azurecr.io/app@sha256:" + "a" * 64, "image", "myreg.azurecr.io", None),
        ("myreg.azurecr.io", "registry", "myreg.azurecr.io", None),
        ("localhost:5000", "registry", "localhost:5000", None),
        ("localhost", "registry", "localhost", None),
        ("https://notary.example.com:4443", "registry", "notary.example.com:4443", None),
        ("https://Notary.Example.com/", "registry", "notary.example.com", None),
    ],
)
def test_parse_target(text: str, kind: str, domain: str, gun: str | None) -> None:
    target = parse_target(text)
    assert (target.kind, target.domain) == (kind, domain)
    if gun is not None:
        assert target.ref is not None and target.ref.gun == gun
    if kind == "registry":
        assert target.ref is None


@pytest.mark.parametrize(
    "text", ["UPPER/Case:v1", "https://host/some/path", "https://host:99999", "a..b/c:v1"]
)
def test_parse_target_refuses_bad_input(text: str) -> None:
    with pytest.raises(UsageError):
        parse_target(text)


@pytest.mark.parametrize(
    ("realm", "unsafe", "problem"),
    [
        ("https://auth.docker.io/token", False, None),
        ("https://127.0.0.1:5001/token?x=1", False, None),
        ("http://auth.example.com/token", True, None),
        ("http://auth.example.com/token", False, "plain http"),
        (None, False, "no realm"),
        ("", False, "no realm"),
        ("/token", False, "not an absolute"),
        ("ftp://auth.example.com/token", False, "not an absolute"),
        ("https://user:pw@auth.example.com/token", False, "credentials"),
        ("https://auth.example.com/a/../token", False, "path traversal"),
        ("https://auth.example.com/a/%2E%2E/token", False, "path traversal"),
        ("https://auth.example.com/a/%252e%252e/token", False, "path traversal"),
        ("https://auth.example.com/a\\..\\token", False, "path traversal"),
        ("https://auth.example.com/./token", False, "path traversal"),
        ("https://auth.example.com:99999/token", False, "not a valid URL"),
    ],
)
def test_realm_problem(realm: str | None, unsafe: bool, problem: str | None) -> None:
    found = realm_problem(realm, unsafe)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_clock_skew() -> None:
    now = 1_800_000_000.0
    date = formatdate(now, usegmt=True)
    assert clock_skew(date, now, now + 0.2) == 0.0
    assert clock_skew(formatdate(now + 120, usegmt=True), now, now + 0.5) == pytest.approx(119.5)
    assert clock_skew(formatdate(now - 3600, usegmt=True), now, now + 0.5) == pytest.approx(-3599)
    assert clock_skew(None, now, now) is None
    assert clock_skew("not a date", now, now) is None


def _cert_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    err = ssl.SSLCertVerificationError(1, message)
    err.verify_code = code
    err.verify_message = message
    return err


def _ssl_error(reason: str, cls: type[ssl.SSLError] = ssl.SSLError) -> ssl.SSLError:
    err = cls(1, reason)
    err.reason = reason
    return err


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (_cert_error(10, "certificate has expired"), "CONNECTIVITY_TLS_CERT_EXPIRED"),
        (_cert_error(9, "certificate is not yet valid"), "CONNECTIVITY_TLS_CERT_EXPIRED"),
        (_cert_error(62, "Hostname mismatch"), "CONNECTIVITY_TLS_CERT_NAME_ERROR"),
        (_cert_error(64, "IP address mismatch"), "CONNECTIVITY_TLS_CERT_NAME_ERROR"),
        (_cert_error(20, "unable to get local issuer"), "CONNECTIVITY_TLS_CERT_UNTRUSTED"),
        (_ssl_error("TLSV1_ALERT_PROTOCOL_VERSION"), "CONNECTIVITY_TLS_VERSION_ERROR"),
        (_ssl_error("UNSUPPORTED_PROTOCOL"), "CONNECTIVITY_TLS_VERSION_ERROR"),
        (_ssl_error("NO_PROTOCOLS_AVAILABLE"), "CONNECTIVITY_TLS_VERSION_ERROR"),
        (_ssl_error("WRONG_VERSION_NUMBER"), "CONNECTIVITY_TLS_ERROR"),
        (_ssl_error("SSLV3_ALERT_HANDSHAKE_FAILURE"), "CONNECTIVITY_TLS_ERROR"),
        (TimeoutError("timed out"), "CONNECTIVITY_TLS_ERROR"),
        (ConnectionResetError(104, "reset"), "CONNECTIVITY_TLS_ERROR"),
    ],
)
def test_classify_tls_error(exc: BaseException, code: str) -> None:
    found, reason = classify_tls_error(exc)
    assert found == code and reason


def test_a_plain_http_port_is_named_as_such() -> None:
    _code, reason = classify_tls_error(_ssl_error("WRONG_VERSION_NUMBER"))
    assert "plain http" in reason


def test_classify_a_real_tls_version_refusal() -> None:
    """A loopback TLS server that stops at 1.1 against trustcheck's client context."""
    from trustcheck.remote.http import HttpSession

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        with warnings.catch_warnings():  # configuring a legacy server on purpose
            warnings.simplefilter("ignore", DeprecationWarning)
            server_ctx.minimum_version = ssl.TLSVersion.TLSv1
            server_ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        server_ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError) as e:
        pytest.fail(f"this OpenSSL cannot even configure a TLS 1.1 server: {e}")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            server_ctx.wrap_socket(conn, server_side=True).close()
        except (ssl.SSLError, OSError):
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with HttpSession(RemoteConfig()) as session:
        ctx = session.tls_context(f"127.0.0.1:{port}")
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        pytest.raises(ssl.SSLError) as info,
    ):
        ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    thread.join(timeout=5)
    listener.close()
    assert classify_tls_error(info.value)[0] == "CONNECTIVITY_TLS_VERSION_ERROR"


# --------------------------------------------------------------------------- offline runs


def test_offline_healthy_run_on_the_committed_fixtures(tmp_path: Path) -> None:
    state = tmp_path / "state"
    code, doc, _ = cli(
        "--offline",
        "--trust-dir",
        str(TRUST),
        "--at",
        AT,
        "--state-dir",
        str(state),
        "localhost/basic:v1",
    )
    assert code == 0, doc
    assert doc["kind"] == "image" and doc["gun"] == "localhost/basic" and doc["offline"] is True
    found = codes(doc)
    assert found["trust-dir"] == "OK" and found["verify"] == "OK"
    for name in ("server-url", "dns", "tcp", "tls", "ping", "token", "metadata", "clock"):
        assert found[name] == "SKIPPED", name
    verify = check(doc, "verify")
    assert verify["details"]["trust_basis"] == "first use"
    assert verify["details"]["digest"].startswith("sha256:")
    assert found["metadata-expiry"] == "OK" and found["signing-cert-expiry"] == "OK"
    assert "localhost/basic" in check(doc, "trust-dir")["details"]["guns"]
    assert not state.exists()  # the doctor recorded nothing (no trust on first use)
    assert doc["summary"]["fail"] == 0 and set(doc) >= {"checks", "summary", "exit_code"}


def test_offline_unsigned_tag_carries_the_verifier_code(tmp_path: Path) -> None:
    code, doc, _ = cli("--offline", "--trust-dir", str(TRUST), "--at", AT, "localhost/basic:nope")
    assert code == 1
    verify = check(doc, "verify")
    assert (verify["status"], verify["code"]) == ("fail", "TRUST_DATA_INVALID")
    assert verify["details"]["verifier_code"] == "tag-not-signed"
    assert "[tag-not-signed]" in verify["message"] and verify["fix"]
    assert codes(doc)["metadata-expiry"] == "BLOCKED"


def test_offline_expired_trust_data_is_trust_data_invalid(tmp_path: Path) -> None:
    later = (datetime.fromisoformat(AT.replace("Z", "+00:00")) + timedelta(days=4000)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    code, doc, _ = cli("--offline", "--trust-dir", str(TRUST), "--at", later, "localhost/basic:v1")
    assert code == 1
    assert check(doc, "verify")["details"]["verifier_code"] in (
        "metadata-expired",
        "root-cert-expired",
    )


def test_horizon_warns_about_expiring_metadata_and_certificates(tmp_path: Path) -> None:
    code, doc, _ = cli(
        "--offline",
        "--trust-dir",
        str(TRUST),
        "--at",
        AT,
        "--horizon",
        "36500",
        "localhost/basic:v1",
    )
    assert code == 0  # warnings do not fail
    meta, certs = check(doc, "metadata-expiry"), check(doc, "signing-cert-expiry")
    assert (meta["status"], meta["code"]) == ("warn", "METADATA_EXPIRING")
    assert any(e.startswith("targets on ") for e in meta["details"]["expiring"])
    assert not any(e.startswith("timestamp") for e in meta["details"]["expiring"])
    assert (certs["status"], certs["code"]) == ("warn", "SIGNING_CERT_EXPIRING")
    assert any(e.startswith("root ") for e in certs["details"]["expiring"])


def test_offline_without_cached_data_fails_early(tmp_path: Path) -> None:
    code, doc, _ = cli("--offline", "--trust-dir", str(TRUST), "localhost/absent:v1")
    assert code == 1
    assert codes(doc)["trust-dir"] == "TRUST_DATA_NOT_CACHED"
    assert codes(doc)["verify"] == "BLOCKED"
    code, doc, _ = cli("--offline", "--trust-dir", str(tmp_path / "none"), "localhost/basic:v1")
    assert code == 1
    assert codes(doc)["trust-dir"] == "TRUST_DIR_MISSING"
    assert check(doc, "trust-dir")["status"] == "fail"


def test_trust_dir_that_is_a_file_is_unreadable(tmp_path: Path) -> None:
    bogus = tmp_path / "trust"
    bogus.write_text("x")
    code, doc, _ = cli("--offline", "--trust-dir", str(bogus))
    assert code == 2
    assert codes(doc)["trust-dir"] == "TRUST_DIR_UNREADABLE"


def test_no_target_checks_only_the_local_setup(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("TRUSTCHECK_OFFLINE", raising=False)
    (tmp_path / "trust").mkdir()
    code, doc, _ = cli("--trust-dir", str(tmp_path / "trust"))
    assert code == 0
    assert doc["target"] is None and doc["server"] is None
    found = codes(doc)
    assert found["trust-dir"] == "OK" and found["credentials"] == "SKIPPED"
    for name in ("server-url", "dns", "clock", "verify", "signing-cert-expiry"):
        assert found[name] == "SKIPPED", name
    assert "no IMAGE, REGISTRY or --server" in check(doc, "dns")["message"]


def test_human_report_lists_sections_codes_and_fixes(tmp_path: Path) -> None:
    from conftest import run_trustcheck

    run = run_trustcheck("doctor", "--offline", "--trust-dir", str(TRUST), "localhost/absent:v1")
    text = run.stdout
    assert run.code == 1 and run.stderr == ""
    for heading in ("\nlocal\n", "\nserver\n", "\ntime\n", "\ntrust\n"):
        assert heading in text
    assert "FAIL  trust-dir" in text and "TRUST_DATA_NOT_CACHED:" in text
    assert "fix: run `trustcheck fetch localhost/absent`" in text
    assert text.rstrip().endswith("-> exit 1")


# --------------------------------------------------------------------------- local checks


def test_malformed_docker_config_blocks_the_credentials(
    tmp_path: Path, _own_docker_config: Path
) -> None:
    (_own_docker_config / "config.json").write_text("{not json")
    code, doc, _ = cli("--offline", "--trust-dir", str(TRUST), "--at", AT, "localhost/basic:v1")
    assert code == 2
    assert codes(doc)["docker-config"] == "DOCKER_CONFIG_ERROR"
    assert codes(doc)["credentials"] == "BLOCKED"
    assert codes(doc)["verify"] == "OK"  # offline verification does not need credentials


def _helper(bin_dir: Path, name: str, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def test_credential_helpers_are_found_and_run(
    tmp_path: Path, _own_docker_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    _helper(bin_dir, "good", 'read s\nprintf \'{"Username":"alice","Secret":"pw-123"}\'\n')
    _helper(bin_dir, "broken", "echo 'the keychain is locked' >&2\nexit 1\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    cfg = _own_docker_config / "config.json"
    cfg.write_text(json.dumps({"credsStore": "good", "credHelpers": {"bad.io": "broken"}}))
    # no image: the helpers are only looked up on PATH
    code, doc, _ = cli("--offline", "--trust-dir", str(TRUST))
    assert code == 0 and codes(doc)["credentials"] == "OK"
    assert "docker-credential-broken" in check(doc, "credentials")["message"]
    # an image on a registry served by the good helper: it is run
    code, doc, _ = cli("--offline", "--trust-dir", str(TRUST), "--at", AT, "localhost/basic:v1")
    creds = check(doc, "credentials")
    assert code == 0 and creds["code"] == "OK"
    assert creds["details"]["user"] == "alice" and "pw-123" not in json.dumps(doc)
    # an image on the registry whose helper fails
    code, doc, _ = cli("--offline", "--trust-dir", str(TRUST), "bad.io/team/app:v1")
    assert code == 2
    creds = check(doc, "credentials")
    assert creds["code"] == "CREDENTIAL_HELPER_ERROR" and "keychain is locked" in creds["message"]
    # a helper that is not installed
    cfg.write_text(json.dumps({"credsStore": "absent"}))
    code, doc, _ = cli("--offline", "--trust-dir", str(TRUST))
    assert code == 2 and codes(doc)["credentials"] == "CREDENTIAL_HELPER_ERROR"
    assert "docker-credential-absent" in check(doc, "credentials")["message"]


def test_bad_pin_file_blocks_the_verification(tmp_path: Path) -> None:
    pins = tmp_path / "pins.toml"
    pins.write_text('[pins."localhost/basic"]\nroot = ["md5:abc"]\n')
    code, doc, _ = cli(
        "--offline",
        "--trust-dir",
        str(TRUST),
        "--at",
        AT,
        "--pins",
        str(pins),
        "localhost/basic:v1",
    )
    assert code == 2
    assert codes(doc)["pin-file"] == "PIN_FILE_ERROR"
    assert check(doc, "verify")["code"] == "BLOCKED"
    assert "pin-file failed" in check(doc, "verify")["message"]


def test_pin_file_that_does_not_match_the_root_is_a_verifier_failure(tmp_path: Path) -> None:
    pins = tmp_path / "pins.toml"
    pins.write_text('[pins."localhost/basic"]\nroot = ["keyid:' + "ab" * 32 + '"]\n')
    code, doc, _ = cli(
        "--offline",
        "--trust-dir",
        str(TRUST),
        "--at",
        AT,
        "--pins",
        str(pins),
        "localhost/basic:v1",
    )
    assert code == 1
    assert codes(doc)["pin-file"] == "OK"
    assert "pinned by 'localhost/basic'" in check(doc, "pin-file")["message"]
    assert check(doc, "verify")["details"]["verifier_code"] == "pin-mismatch"


def test_corrupt_state_is_state_invalid(tmp_path: Path) -> None:
    import hashlib

    state = tmp_path / "state"
    name = hashlib.sha256(b"localhost/basic").hexdigest()[:32]
    (state / "v1").mkdir(parents=True)
    (state / "v1" / f"{name}.json").write_text("{broken")
    code, doc, _ = cli(
        "--offline",
        "--trust-dir",
        str(TRUST),
        "--at",
        AT,
        "--state-dir",
        str(state),
        "localhost/basic:v1",
    )
    assert code == 2
    assert codes(doc)["state"] == "STATE_INVALID" and codes(doc)["verify"] == "BLOCKED"


def test_recorded_state_is_used_and_left_alone(tmp_path: Path) -> None:
    from conftest import run_trustcheck

    state = tmp_path / "state"
    verified = run_trustcheck(
        "verify", "--offline", "--trust-dir", str(TRUST), "--at", AT, "--state-dir", str(state),
        "localhost/basic:v1",
    )
    assert verified.code == 0, verified.stderr
    before = {p: p.read_bytes() for p in state.rglob("*.json")}
    code, doc, _ = cli(
        "--offline",
        "--trust-dir",
        str(TRUST),
        "--at",
        AT,
        "--state-dir",
        str(state),
        "localhost/basic:v1",
    )
    assert code == 0
    assert "a root trusted before" in check(doc, "state")["message"]
    assert check(doc, "verify")["details"]["trust_basis"] == "previously trusted"
    assert {p: p.read_bytes() for p in state.rglob("*.json")} == before


def test_policy_file_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trustcheck.policy import load

    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - pattern: docker.io/**\n    action: deny\n")
    args = ("--offline", "--trust-dir", str(TRUST), "--policy", str(policy))
    code, doc, _ = cli(*args)
    assert code == 0 and codes(doc)["policy-file"] == "OK"
    assert check(doc, "policy-file")["details"]["path"] == str(policy)

    policy.write_text("rules:\n  - pattern: docker.io/**\n    action: maybe\n")
    code, doc, _ = cli(*args)
    assert code == 2 and codes(doc)["policy-file"] == "POLICY_FILE_ERROR"
    assert "[policy-invalid]" in check(doc, "policy-file")["message"]

    def crashes(path: Path) -> object:
        raise RuntimeError("loader bug")

    monkeypatch.setattr(load, "load_policy", crashes)  # a loader bug is reported, no traceback
    code, doc, _ = cli(*args)
    assert code == 2 and "RuntimeError: loader bug" in check(doc, "policy-file")["message"]
    code, doc, _ = cli("--offline", "--trust-dir", str(TRUST))
    assert (
        codes(doc)["policy-file"] == "SKIPPED"
        and "no --policy" in check(doc, "policy-file")["message"]
    )


def test_a_real_policy_file_is_loaded_with_trustcheck_policy(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("rules: []\n")
    code, doc, _ = cli("--offline", "--trust-dir", str(TRUST), "--policy", str(empty))
    policy = check(doc, "policy-file")
    assert code == 2 and policy["code"] == "POLICY_FILE_ERROR"
    assert "[policy-invalid]" in policy["message"] and str(empty) in policy["message"]


# --------------------------------------------------------------------------- server checks, offline


def test_dns_lookup_that_hangs_is_cut_at_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    def slow(*args: object, **kwargs: object) -> list[Any]:
        release.wait(10)
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(doctor_network.socket, "getaddrinfo", slow)
    remote = RemoteConfig(timeout=0.3)
    import time

    started = time.monotonic()
    report = run_doctor(config(tmp_path, "slow.example/team/app:v1", remote=remote))
    release.set()
    assert time.monotonic() - started < 5
    dns = report.by_name()["dns"]
    assert dns.code == "CONNECTIVITY_DNS_ERROR" and "within 0.3 s" in dns.message
    assert report.exit_code == 1


def test_plain_http_server_without_unsafe_http_is_a_url_error(tmp_path: Path) -> None:
    remote = RemoteConfig(server="http://127.0.0.1:1")
    report = run_doctor(config(tmp_path, "127.0.0.1/team/app:v1", remote=remote))
    found = report.by_name()
    assert found["server-url"].code == "SERVER_URL_ERROR"
    assert "insecure-server" in found["server-url"].message
    assert found["dns"].code == "BLOCKED" and report.exit_code == 2


def test_a_proxy_is_named_and_checked_instead_of_the_server(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "HTTPS_PROXY": "http://127.0.0.1:1", "NO_PROXY": "internal"}
    report = run_doctor(
        config(
            tmp_path,
            "notary.example.com/team/app:v1",
            env=env,
            remote=RemoteConfig(retries=0, timeout=2),
        )
    )
    found = report.by_name()
    assert "through the proxy 127.0.0.1:1" in found["server-url"].message
    assert found["dns"].code == "OK"  # the proxy's address, not the server's name
    assert found["tcp"].code == "CONNECTIVITY_TCP_ERROR"
    assert "proxy 127.0.0.1:1" in found["tcp"].message
    no_proxy = {"HOME": str(tmp_path), "HTTPS_PROXY": "http://127.0.0.1:1", "NO_PROXY": ".invalid"}
    report = run_doctor(
        config(tmp_path, "x.invalid/team/app:v1", env=no_proxy, remote=RemoteConfig(retries=0))
    )
    assert report.by_name()["dns"].code == "CONNECTIVITY_DNS_ERROR"  # NO_PROXY: asked directly


# --------------------------------------------------------------------------- CLI contract


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["UPPER/Case:v1"], "[invalid-reference]"),
        (["--delegation-cert-expiry", "maybe", "alpine"], "--delegation-cert-expiry"),
        (["--at", "yesterday", "alpine"], "--at"),
        (["--password-stdin", "alpine"], "--username"),
    ],
)
def test_bad_arguments_exit_2_on_one_line(args: list[str], needle: str) -> None:
    code, doc, err = cli(*args)
    # with --json, the one error document (docs/design/cli-contract.md): no checks ran
    assert code == 2 and doc["checks"] == [] and doc["exit_code"] == 2
    assert doc["error"]["exit_code"] == 2 and doc["error"]["message"]
    assert needle in err and len(err.strip().splitlines()) == 1


def test_help_lists_the_options() -> None:
    from conftest import run_trustcheck

    text = run_trustcheck("doctor", "--help").stdout
    for option in ("--server", "--json", "--offline", "--policy", "--horizon", "--tls-ca"):
        assert option in text
