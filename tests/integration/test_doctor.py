"""``trustcheck doctor`` against real servers on loopback.

* a healthy notary-server (TLS) with a repository published by the real
  notary client, reached directly, by the name ``localhost``, through the
  fault-injection proxy (403 / 401 / a bad challenge), and through a small
  proxy that rewrites the ``Date`` header (clock skew);
* a notary-server with token auth and the test token issuer: right, wrong and
  missing credentials, a registry-only login check, and a redirect of
  ``timestamp.json`` to another host (127.0.0.2) that must not get the
  ``Authorization`` header;
* ``openssl s_server -tls1_1`` (TLS 1.1 only, checked with ``s_client``): refused;
* a server whose certificate expired; a stopped server; a name under ``.invalid``.

Every test runs the real CLI (``--json``) and asserts check codes, not only
the exit status.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import http.client
import io
import json
import socket
import ssl
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from conftest import BackgroundServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from proxy import Fault, FaultProxy
from token_issuer import TokenIssuer, make_signing_material

from fixtures.notary_harness import (
    NotaryClient,
    NotaryServer,
    TLSMaterial,
    find_binary,
    free_port,
    make_tls,
    missing_notary_binaries,
)
from trustcheck.doctor.report import CODES

pytestmark = pytest.mark.integration

GUN = "127.0.0.1/doctor/app"
SECRET = "doctor-secret"
_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "date", "server"}


def _require() -> None:
    missing = missing_notary_binaries()
    if missing:
        pytest.skip(
            "!!! DOCTOR REAL-SERVER TESTS SKIPPED: missing "
            + ", ".join(missing)
            + " (make system-deps installs them) !!!"
        )


# --------------------------------------------------------------------------- helpers


def issue_cert(
    tls: TLSMaterial,
    directory: Path,
    name: str,
    *,
    ips: tuple[str, ...] = ("127.0.0.1",),
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> tuple[Path, Path]:
    """A server certificate for ``ips`` signed by the test CA of ``tls``."""
    import ipaddress

    now = dt.datetime.now(dt.UTC)
    ca_key = serialization.load_pem_private_key(tls.ca_key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(tls.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(days=1))
        .not_valid_after(not_after or now + dt.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(i)) for i in ips]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


@dataclass
class Forwarder:
    """An HTTPS forwarder to a real upstream: records each request's headers,
    sends its ``Date`` header ``skew`` seconds off, and (``upstream_auth``)
    talks to the upstream with its own credentials instead of the client's."""

    upstream: str
    upstream_ca: Path
    cert: Path
    key: Path
    host: str = "127.0.0.1"
    port: int = 0
    skew: float = 0.0
    upstream_auth: str | None = None
    seen: list[Seen] = field(default_factory=list)
    _server: BackgroundServer | None = None

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def start(self) -> Forwarder:
        fwd = self
        up = self.upstream.split("://", 1)[1]
        up_host, up_port = up.rsplit(":", 1)
        up_ctx = ssl.create_default_context(cafile=str(self.upstream_ca))

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def date_time_string(self, timestamp: float | None = None) -> str:
                return email.utils.formatdate(time.time() + fwd.skew, usegmt=True)

            def do_GET(self) -> None:
                headers = dict(self.headers.items())
                fwd.seen.append(Seen(self.path, headers))
                sent = {k: v for k, v in headers.items() if k.lower() not in _HOP}
                if fwd.upstream_auth is not None:
                    sent = {k: v for k, v in sent.items() if k.lower() != "authorization"}
                    sent["Authorization"] = fwd.upstream_auth
                conn = http.client.HTTPSConnection(up_host, int(up_port), context=up_ctx)
                try:
                    conn.request("GET", self.path, headers=sent)
                    resp = conn.getresponse()
                    body = resp.read()
                    kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP]
                finally:
                    conn.close()
                self.send_response(resp.status)
                for k, v in kept:
                    if k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = BackgroundServer(
            Handler, cert=self.cert, key=self.key, host=self.host, port=self.port
        )
        self.port = self._server.port
        return self

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close(timeout=5)

    def __enter__(self) -> Forwarder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def tree(root: Path) -> dict[str, bytes]:
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): (b"" if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
        if not stat.S_ISLNK(p.lstat().st_mode)
    }


@dataclass
class Run:
    code: int
    doc: dict[str, Any]
    stderr: str

    @property
    def checks(self) -> dict[str, dict[str, Any]]:
        return {c["name"]: c for c in self.doc["checks"]}

    def codes(self) -> dict[str, str]:
        return {c["name"]: c["code"] for c in self.doc["checks"]}

    def status(self, name: str) -> str:
        return str(self.checks[name]["status"])


@pytest.fixture
def doctor(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Any:
    """Run ``trustcheck doctor --json ...`` online through the real CLI."""
    from conftest import run_trustcheck

    monkeypatch.delenv("TRUSTCHECK_OFFLINE", raising=False)
    monkeypatch.delenv("DOCKER_CONTENT_TRUST_SERVER", raising=False)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    config = tmp_path / "docker-config"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))

    def run(*args: str, stdin: str | None = None) -> Run:
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        r = run_trustcheck("doctor", "--json", *args)
        code, out, err = r.code, r.stdout, r.stderr
        assert "Traceback" not in err, err
        doc = json.loads(out)
        assert doc["exit_code"] == code
        for check in doc["checks"]:
            assert check["code"] in CODES, check
        return Run(code, doc, err)

    return run


# --------------------------------------------------------------------------- servers


@dataclass
class Plain:
    server: NotaryServer
    tls: TLSMaterial
    proxy: FaultProxy
    base: Path


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plain]:
    _require()
    base = tmp_path_factory.mktemp("doctor-plain")
    tls = make_tls(base / "tls", days=365)
    with NotaryServer(base / "server", tls=tls) as server:
        pub = NotaryClient.for_server(base / "publisher", server)
        pub.init_and_publish(GUN)
        pub.addhash(GUN, "v1", 100, "11" * 32)
        pub.publish(GUN)
        with FaultProxy(server.url, tls.ca_cert, tls.server_cert, tls.server_key) as proxy:
            yield Plain(server, tls, proxy, base)


@pytest.fixture
def px(plain: Plain) -> Iterator[FaultProxy]:
    plain.proxy.reset()
    yield plain.proxy
    plain.proxy.reset()


@dataclass
class Auth:
    server: NotaryServer
    tls: TLSMaterial
    issuer: TokenIssuer
    gun: str
    base: Path


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Auth]:
    _require()
    base = tmp_path_factory.mktemp("doctor-auth")
    tls = make_tls(base / "tls", days=365)
    signing = make_signing_material(base / "signing")
    issuer = TokenIssuer(signing, tls.server_cert, tls.server_key, users={"alice": SECRET})
    with issuer:
        notary_auth = {
            "type": "token",
            "options": {
                "realm": issuer.realm,
                "service": "notary-doctor",
                "issuer": issuer.issuer,
                "rootcertbundle": str(signing.bundle),
                "autoredirect": False,
            },
        }
        with NotaryServer(base / "server", auth=notary_auth, tls=tls) as server:
            gun = f"{server.host_port}/team/app"
            import base64

            basic = base64.b64encode(f"alice:{SECRET}".encode()).decode()
            pub = NotaryClient(
                base / "publisher",
                server.url,
                tls.ca_cert,
                extra_env={"NOTARY_AUTH": basic},
            )
            pub.init_and_publish(gun)
            pub.addhash(gun, "v1", 100, "33" * 32)
            pub.publish(gun)
            yield Auth(server, tls, issuer, gun, base)


# --------------------------------------------------------------------------- healthy


def test_healthy_server_every_check_passes_and_nothing_is_changed(
    plain: Plain, doctor: Any, tmp_path: Path, trustcheck_cli: Any
) -> None:
    td, state = tmp_path / "trust", tmp_path / "state"
    conn = ["--tls-ca", str(plain.tls.ca_cert), "--trust-dir", str(td), "--state-dir", str(state)]
    # cache the collection and record its root, as a user's earlier `fetch` would have
    fetched = trustcheck_cli("fetch", "--server", plain.server.url, *conn, f"{GUN}:v1")
    assert fetched.code == 0, fetched.stderr
    before = (tree(td), tree(state))
    # the server by the name localhost: a real DNS lookup that succeeds
    url = f"https://localhost:{plain.server.port}"
    run = doctor("--server", url, *conn, f"{GUN}:v1")
    assert run.code == 0, run.doc
    statuses = {c["name"]: c["status"] for c in run.doc["checks"]}
    assert set(statuses.values()) <= {"ok", "skip"}, statuses
    assert run.codes() == {
        "trust-dir": "OK",
        "docker-config": "OK",
        "credentials": "OK",
        "pin-file": "OK",
        "state": "OK",
        "policy-file": "SKIPPED",
        "server-url": "OK",
        "dns": "OK",
        "tcp": "OK",
        "tls": "OK",
        "ping": "OK",
        "token": "SKIPPED",
        "metadata": "OK",
        "clock": "OK",
        "tls-cert-expiry": "OK",
        "verify": "OK",
        "metadata-expiry": "OK",
        "signing-cert-expiry": "OK",
    }
    checks = run.checks
    assert "127.0.0.1" in checks["dns"]["details"]["addresses"]
    assert checks["tls"]["details"]["version"] in ("TLSv1.2", "TLSv1.3")
    assert checks["verify"]["details"]["trust_basis"] == "previously trusted"
    assert checks["verify"]["details"]["digest"] == "sha256:" + "11" * 32
    assert GUN in checks["trust-dir"]["details"]["guns"]
    # the doctor changes nothing: no cache write, no state record
    assert (tree(td), tree(state)) == before


def test_unsigned_tag_is_trust_data_invalid_with_the_verifier_code(
    plain: Plain, doctor: Any, tmp_path: Path
) -> None:
    run = doctor(
        "--server",
        plain.server.url,
        "--tls-ca",
        str(plain.tls.ca_cert),
        "--trust-dir",
        str(tmp_path / "t"),
        f"{GUN}:nope",
    )
    assert run.code == 1
    verify = run.checks["verify"]
    assert (verify["status"], verify["code"]) == ("fail", "TRUST_DATA_INVALID")
    assert verify["details"]["verifier_code"] == "tag-not-signed"
    assert run.codes()["metadata-expiry"] == "BLOCKED"
    assert run.codes()["trust-dir"] == "TRUST_DIR_MISSING" and run.status("trust-dir") == "warn"
    assert not (tmp_path / "t").exists()  # the first fetch happened in a scratch copy


def test_dns_failure_under_invalid_is_fast_and_blocks_the_rest(doctor: Any, tmp_path: Path) -> None:
    started = time.monotonic()
    run = doctor("--trust-dir", str(tmp_path), "--timeout", "5", "doctor-test.invalid/team/app:v1")
    assert time.monotonic() - started < 5
    assert run.code == 1
    codes = run.codes()
    assert codes["server-url"] == "OK"
    assert codes["dns"] == "CONNECTIVITY_DNS_ERROR"
    assert run.checks["dns"]["details"]["host"] == "doctor-test.invalid"
    for name in ("tcp", "tls", "ping", "token", "metadata", "clock", "verify"):
        assert codes[name] == "BLOCKED", (name, codes)


def test_stopped_server_is_a_tcp_error(plain: Plain, doctor: Any, tmp_path: Path) -> None:
    gone = FaultProxy(
        plain.server.url, plain.tls.ca_cert, plain.tls.server_cert, plain.tls.server_key
    ).start()
    url = gone.url
    gone.close()  # the server stopped: its port refuses connections
    run = doctor("--server", url, "--trust-dir", str(tmp_path), f"{GUN}:v1")
    assert run.code == 1
    assert run.codes()["dns"] == "OK"
    tcp = run.checks["tcp"]
    assert tcp["code"] == "CONNECTIVITY_TCP_ERROR" and "refused" in tcp["message"].lower()
    assert run.codes()["tls"] == "BLOCKED"


# --------------------------------------------------------------------------- TLS


def test_tls_1_1_only_server_is_refused(plain: Plain, doctor: Any, tmp_path: Path) -> None:
    openssl = find_binary("openssl")
    assert openssl is not None
    port = free_port()
    seclevel0 = "DEFAULT:@SECLEVEL=0"  # OpenSSL 3 offers TLS 1.1 only at security level 0
    server = subprocess.Popen(
        [
            openssl,
            "s_server",
            "-tls1_1",
            "-cipher",
            seclevel0,
            "-www",
            "-quiet",
            "-cert",
            str(plain.tls.server_cert),
            "-key",
            str(plain.tls.server_key),
            "-accept",
            f"127.0.0.1:{port}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "openssl s_server did not start"
                time.sleep(0.05)
        # the endpoint really speaks TLS 1.1 (to a client that allows it)
        probe = subprocess.run(
            [
                openssl,
                "s_client",
                "-connect",
                f"127.0.0.1:{port}",
                "-tls1_1",
                "-cipher",
                seclevel0,
                "-CAfile",
                str(plain.tls.ca_cert),
            ],
            input="",
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        assert "Protocol  : TLSv1.1" in probe.stdout, probe.stdout + probe.stderr
        run = doctor(
            "--tls-ca",
            str(plain.tls.ca_cert),
            "--trust-dir",
            str(tmp_path),
            f"127.0.0.1:{port}/team/app:v1",
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert run.code == 1
    assert run.codes()["tcp"] == "OK"
    tls = run.checks["tls"]
    assert tls["code"] == "CONNECTIVITY_TLS_VERSION_ERROR", tls
    assert "1.2" in tls["fix"]
    assert run.codes()["ping"] == "BLOCKED"


def test_expired_server_certificate(plain: Plain, doctor: Any, tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    cert, key = issue_cert(
        plain.tls,
        tmp_path / "expired",
        "expired",
        not_before=now - dt.timedelta(days=400),
        not_after=now - dt.timedelta(days=35),
    )
    with FaultProxy(plain.server.url, plain.tls.ca_cert, cert, key) as stale:
        run = doctor(
            "--server",
            stale.url,
            "--tls-ca",
            str(plain.tls.ca_cert),
            "--trust-dir",
            str(tmp_path / "t"),
            f"{GUN}:v1",
        )
        assert stale.paths() == []  # no HTTP request went over the failed handshake
    assert run.code == 1
    tls = run.checks["tls"]
    assert tls["code"] == "CONNECTIVITY_TLS_CERT_EXPIRED", tls
    not_after = (now - dt.timedelta(days=35)).strftime("%Y-%m-%d")
    assert tls["details"]["certificate"]["not_after"].startswith(not_after)
    assert not_after in tls["message"]
    assert run.codes()["tls-cert-expiry"] == "BLOCKED"
    # the same server without its CA: an untrusted chain is named as such
    run = doctor("--server", plain.server.url, "--trust-dir", str(tmp_path / "t"), f"{GUN}:v1")
    assert run.codes()["tls"] == "CONNECTIVITY_TLS_CERT_UNTRUSTED"


# --------------------------------------------------------------------------- HTTP answers


def test_403_and_401_are_told_apart(
    plain: Plain, px: FaultProxy, doctor: Any, tmp_path: Path
) -> None:
    conn = ["--server", px.url, "--tls-ca", str(plain.tls.ca_cert), "--retries", "0"]
    px.add(Fault("timestamp.json", "status", status=403, times=None))
    run = doctor(*conn, "--trust-dir", str(tmp_path), f"{GUN}:v1")
    assert run.code == 1
    assert run.codes()["ping"] == "OK"
    assert run.codes()["metadata"] == "CONNECTIVITY_FORBIDDEN_ERROR"
    assert run.checks["metadata"]["details"]["http_status"] == 403
    assert run.codes()["verify"] == "BLOCKED"
    px.reset()
    px.add(Fault("timestamp.json", "status", status=401, times=None))
    run = doctor(*conn, "--trust-dir", str(tmp_path), f"{GUN}:v1")
    assert run.codes()["metadata"] == "CONNECTIVITY_UNAUTHORIZED_ERROR"
    assert run.checks["metadata"]["details"]["http_status"] == 401
    px.reset()
    px.add(Fault("timestamp.json", "status", status=404, times=None))
    run = doctor(*conn, "--trust-dir", str(tmp_path), f"{GUN}:v1")
    assert run.codes()["metadata"] == "METADATA_NOT_FOUND"


def test_token_service_answers_are_told_apart(
    plain: Plain, px: FaultProxy, doctor: Any, tmp_path: Path
) -> None:
    """The proxy challenges with a realm on itself and answers the token requests."""
    import base64
    import os

    conn = [
        "--server",
        px.url,
        "--tls-ca",
        str(plain.tls.ca_cert),
        "--retries",
        "0",
        "--trust-dir",
        str(tmp_path),
    ]
    header = f'Bearer realm="{px.url}/token",service="doctor"'
    cases = [
        (403, {}, "CONNECTIVITY_FORBIDDEN_ERROR"),
        (401, {}, "CONNECTIVITY_ACCESS_TOKEN_ERROR"),
        (503, {}, "CONNECTIVITY_TOKEN_SERVICE_ERROR"),
        # an identity token (docker login to ACR and others): the refresh grant, refused
        (
            401,
            {"auths": {"127.0.0.1": {"identitytoken": "refresh-123"}}},
            "CONNECTIVITY_REFRESH_TOKEN_ERROR",
        ),
    ]
    config = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    for status, docker_config, code in cases:
        config.write_text(json.dumps(docker_config))
        px.reset()
        px.add(
            Fault("/v2/", "status", status=401, times=1, headers={"WWW-Authenticate": header}),
            Fault("/token", "status", status=status, times=None),
        )
        run = doctor(*conn, f"{GUN}:v1")
        assert run.code == 1, (status, run.doc)
        assert run.codes()["ping"] == "OK"
        token = run.checks["token"]
        assert token["code"] == code, (status, token)
        assert run.codes()["metadata"] == "BLOCKED"
        methods = [e.method for e in px.log if "/token" in e.path]
        assert methods == (["POST"] if docker_config else ["GET"]), methods
    assert "refresh-123" not in json.dumps(run.doc)
    assert base64.b64encode(b"refresh-123").decode() not in json.dumps(run.doc)


@pytest.mark.parametrize(
    ("realm", "why"),
    [
        ("https://127.0.0.1:1/auth/../../admin/token", "path traversal"),
        ("https://127.0.0.1:1/auth/%2e%2e/token", "path traversal"),
        ("http://127.0.0.1:1/token", "plain http"),
    ],
)
def test_unsafe_token_realm_is_a_challenge_error(
    plain: Plain, px: FaultProxy, doctor: Any, tmp_path: Path, realm: str, why: str
) -> None:
    header = f'Bearer realm="{realm}",service="x"'
    px.add(Fault("/v2/", "status", status=401, headers={"WWW-Authenticate": header}))
    run = doctor(
        "--server",
        px.url,
        "--tls-ca",
        str(plain.tls.ca_cert),
        "--trust-dir",
        str(tmp_path),
        f"{GUN}:v1",
    )
    assert run.code == 1
    ping = run.checks["ping"]
    assert ping["code"] == "CONNECTIVITY_CHALLENGE_ERROR" and why in ping["message"]
    assert run.codes()["token"] == "BLOCKED"
    assert px.paths() == ["/v2/"]  # the realm was never contacted


def test_the_report_shows_the_token_realm_redacted(
    plain: Plain, px: FaultProxy, doctor: Any, tmp_path: Path
) -> None:
    """A realm carrying an account or a secret in its query string is shown without
    it, in the messages and in the report's fields (trustcheck.text.redact_url)."""
    header = f'Bearer realm="{px.url}/token?account=bob&secret=s3cret",service="doctor"'
    px.add(
        Fault("/v2/", "status", status=401, times=1, headers={"WWW-Authenticate": header}),
        Fault("/token", "status", status=503, times=None),
    )
    run = doctor(
        "--server",
        px.url,
        "--tls-ca",
        str(plain.tls.ca_cert),
        "--retries",
        "0",
        "--trust-dir",
        str(tmp_path),
        f"{GUN}:v1",
    )
    assert run.codes()["token"] == "CONNECTIVITY_TOKEN_SERVICE_ERROR", run.doc
    assert f"{px.url}/token" in json.dumps(run.doc)
    assert "s3cret" not in json.dumps(run.doc) and "account=bob" not in json.dumps(run.doc)


# --------------------------------------------------------------------------- time


def test_clock_skew_through_the_date_header(plain: Plain, doctor: Any, tmp_path: Path) -> None:
    tls = plain.tls
    conn = ["--tls-ca", str(tls.ca_cert), "--trust-dir", str(tmp_path)]
    with Forwarder(plain.server.url, tls.ca_cert, tls.server_cert, tls.server_key) as fwd:
        fwd.skew = -2 * 3600.0  # the server says it is two hours earlier
        run = doctor("--server", fwd.url, *conn, f"{GUN}:v1")
        assert run.code == 1
        clock = run.checks["clock"]
        assert (clock["status"], clock["code"]) == ("fail", "CLOCK_SKEW_ERROR")
        assert -7300 < clock["details"]["skew_seconds"] < -7100
        assert "ahead of" in clock["message"]
        assert run.codes()["verify"] == "OK"  # the other branches still ran
        fwd.skew = 90.0
        run = doctor("--server", fwd.url, *conn, f"{GUN}:v1")
        assert run.code == 0
        clock = run.checks["clock"]
        assert (clock["status"], clock["code"]) == ("warn", "CLOCK_SKEW_WARNING")
        assert "behind" in clock["message"]


# --------------------------------------------------------------------------- token auth


def test_token_auth_right_wrong_and_missing_credentials(
    auth: Auth, doctor: Any, tmp_path: Path
) -> None:
    conn = ["--tls-ca", str(auth.tls.ca_cert), "--trust-dir", str(tmp_path)]
    auth.issuer.requests.clear()
    run = doctor(
        *conn, "--username", "alice", "--password-stdin", f"{auth.gun}:v1", stdin=SECRET + "\n"
    )
    assert run.code == 0, run.doc
    assert run.checks["ping"]["details"]["scheme"] == "bearer"
    assert run.codes()["token"] == "OK" and run.codes()["verify"] == "OK"
    assert run.checks["server-url"]["details"]["source"] == "the registry host"
    assert [r.scopes for r in auth.issuer.requests if r.status == 200] == [
        [f"repository:{auth.gun}:pull"]
    ]
    # a wrong password: the token service answers 401
    run = doctor(
        *conn, "--username", "alice", "--password-stdin", f"{auth.gun}:v1", stdin="Wr0ng-pa55\n"
    )
    assert run.code == 1
    token = run.checks["token"]
    assert (
        token["code"] == "CONNECTIVITY_ACCESS_TOKEN_ERROR"
        and token["details"]["http_status"] == 401
    )
    assert "Wr0ng-pa55" not in json.dumps(run.doc)  # the secret never appears
    assert run.codes()["metadata"] == "BLOCKED" and run.codes()["verify"] == "BLOCKED"
    # no credentials at all
    run = doctor(*conn, f"{auth.gun}:v1")
    assert run.codes()["credentials"] == "OK"
    assert run.checks["credentials"]["details"]["source"] is None
    assert run.codes()["token"] == "CONNECTIVITY_ACCESS_TOKEN_ERROR"
    assert "anonymous" in run.checks["token"]["message"]


def test_registry_only_login_check_asks_for_a_token_without_scope(
    auth: Auth, doctor: Any, tmp_path: Path
) -> None:
    auth.issuer.requests.clear()
    run = doctor(
        "--tls-ca",
        str(auth.tls.ca_cert),
        "--trust-dir",
        str(tmp_path),
        "--username",
        "alice",
        "--password-stdin",
        auth.server.host_port,
        stdin=SECRET + "\n",
    )
    assert run.code == 0, run.doc
    assert run.doc["kind"] == "registry" and run.doc["gun"] is None
    assert run.codes()["token"] == "OK"
    assert run.codes()["metadata"] == "SKIPPED" and run.codes()["verify"] == "SKIPPED"
    ok = [r for r in auth.issuer.requests if r.status == 200]
    assert len(ok) == 1 and ok[0].scopes == [] and ok[0].user == "alice"


def test_redirect_to_another_host_never_carries_the_credentials(
    auth: Auth, doctor: Any, tmp_path: Path
) -> None:
    tls = auth.tls
    try:  # a second loopback address: another host, same kind of server
        socket.create_server(("127.0.0.2", 0)).close()
    except OSError:
        pytest.fail("127.0.0.2 is not usable on this machine's loopback interface")
    cert, key = issue_cert(tls, tmp_path / "other", "other", ips=("127.0.0.2",))
    scope = f"repository:{auth.gun}:pull"
    own = "Bearer " + auth.issuer.make_token("notary-doctor", [scope], "storage")
    with (
        Forwarder(
            auth.server.url, tls.ca_cert, cert, key, host="127.0.0.2", upstream_auth=own
        ) as other,
        FaultProxy(auth.server.url, tls.ca_cert, tls.server_cert, tls.server_key) as front,
    ):
        path = f"/v2/{auth.gun}/_trust/tuf/timestamp.json"
        front.add(
            Fault(
                "timestamp.json",
                "status",
                status=302,
                times=None,
                headers={"Location": other.url + path},
            )
        )
        auth.issuer.requests.clear()
        run = doctor(
            "--server",
            front.url,
            "--tls-ca",
            str(tls.ca_cert),
            "--trust-dir",
            str(tmp_path / "t"),
            "--username",
            "alice",
            "--password-stdin",
            f"{auth.gun}:v1",
            stdin=SECRET + "\n",
        )
        assert run.code == 0, run.doc
        metadata = run.checks["metadata"]
        assert metadata["code"] == "OK" and metadata["details"]["redirected"] is True
        assert "127.0.0.2" in metadata["message"]
        assert run.codes()["verify"] == "OK"
        # the first host needed the token (notary-server refuses requests without it) ...
        assert any(r.status == 200 for r in auth.issuer.requests)
        assert "root.json" in front.paths()
        # ... and the second host got the redirected requests, never the credentials
        assert [s.path for s in other.seen] == [path, path]  # metadata check + verification
        for seen in other.seen:
            assert "authorization" not in {k.lower() for k in seen.headers}, seen.headers


def test_missing_credential_helper_blocks_the_token(
    auth: Auth, doctor: Any, tmp_path: Path
) -> None:
    import os

    config = Path(os.environ["DOCKER_CONFIG"])
    (config / "config.json").write_text(json.dumps({"credsStore": "doctor-absent"}))
    run = doctor("--tls-ca", str(auth.tls.ca_cert), "--trust-dir", str(tmp_path), f"{auth.gun}:v1")
    assert run.code == 2  # a configuration problem
    assert run.codes()["docker-config"] == "OK"
    assert run.codes()["credentials"] == "CREDENTIAL_HELPER_ERROR"
    assert "docker-credential-doctor-absent" in run.checks["credentials"]["message"]
    assert run.codes()["ping"] == "OK"  # the server branch runs up to the token
    assert run.codes()["token"] == "BLOCKED"
