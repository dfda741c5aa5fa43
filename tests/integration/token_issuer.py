"""A small Docker token issuer for tests (HTTPS on loopback).

It answers ``GET /token?service=...&scope=...[&account=...]`` the way Docker
Hub's and docker/distribution's token servers do, with a real JWT that
notary-server's and docker-registry's ``token`` auth accept:

* header ``{"typ": "JWT", "alg": "ES256", "x5c": [<leaf DER, base64>]}``; the
  leaf certificate is signed by a test CA whose PEM is the servers'
  ``rootcertbundle``;
* claims ``iss``, ``sub``, ``aud`` (the service), ``exp``, ``nbf``, ``iat``,
  ``jti`` and ``access`` (one entry per requested scope, with the requested
  actions granted);
* signature: ECDSA P-256 / SHA-256, raw ``r || s`` (JWS), base64url.

Users and passwords are checked with HTTP Basic auth; anonymous requests get
a token only when ``anonymous`` is set.  Every request is recorded (path,
scopes, user) so tests can count token fetches and check scopes.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from conftest import BackgroundServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class SigningMaterial:
    """The JWT signing key, its certificate and the CA bundle the servers trust."""

    key: ec.EllipticCurvePrivateKey
    leaf_der: bytes
    bundle: Path


def make_signing_material(directory: Path) -> SigningMaterial:
    """A test CA and an ES256 leaf certificate for signing tokens."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trustcheck token CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token signer")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    bundle = directory / "token-ca.pem"
    bundle.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return SigningMaterial(key, leaf.public_bytes(serialization.Encoding.DER), bundle)


@dataclass
class TokenRequest:
    """One request the issuer saw."""

    method: str
    service: str | None
    scopes: list[str]
    account: str | None
    user: str | None  # the Basic-auth user, when the password was right
    status: int


@dataclass
class TokenIssuer:
    """An HTTPS token server on 127.0.0.1 (use as a context manager)."""

    signing: SigningMaterial
    tls_cert: Path
    tls_key: Path
    issuer: str = "trustcheck-test-issuer"
    users: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False
    #: "token", "access_token" or "both" (then ``access_token`` differs and wins)
    field_name: str = "token"
    expires_in: int | None = 300
    port: int = 0
    requests: list[TokenRequest] = field(default_factory=list)
    _server: BackgroundServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def realm(self) -> str:
        return f"https://127.0.0.1:{self.port}/token"

    # --- tokens ---------------------------------------------------------------------

    def make_token(self, service: str, scopes: list[str], subject: str) -> str:
        now = int(time.time())
        access: list[dict[str, Any]] = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        header = {
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [base64.b64encode(self.signing.leaf_der).decode()],
        }
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": service,
            "exp": now + 600,
            "nbf": now - 10,
            "iat": now,
            "jti": _b64url(os.urandom(12)),
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        der = self.signing.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return signing_input + "." + _b64url(sig)

    def count(self, status: int = 200) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.status == status)

    # --- server ---------------------------------------------------------------------

    def start(self) -> TokenIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _user(self) -> tuple[bool, str | None]:
                header = self.headers.get("Authorization")
                if header is None:
                    return True, None
                scheme, _, value = header.partition(" ")
                if scheme.lower() != "basic":
                    return False, None
                try:
                    user, _, password = base64.b64decode(value).decode().partition(":")
                except ValueError:
                    return False, None
                if issuer.users.get(user) == password:
                    return True, user
                return False, None

            def _answer(self, status: int, body: dict[str, Any], extra: TokenRequest) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="trustcheck test"')
                self.end_headers()
                self.wfile.write(data)
                extra.status = status
                with issuer._lock:
                    issuer.requests.append(extra)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                service = (query.get("service") or [None])[0]
                scopes = query.get("scope") or []
                account = (query.get("account") or [None])[0]
                ok, user = self._user()
                rec = TokenRequest("GET", service, scopes, account, user, 0)
                if url.path != "/token":
                    self._answer(404, {"errors": [{"code": "NOT_FOUND"}]}, rec)
                    return
                if not ok or (user is None and not issuer.anonymous):
                    self._answer(401, {"errors": [{"code": "UNAUTHORIZED"}]}, rec)
                    return
                token = issuer.make_token(service or "", scopes, user or "")
                body: dict[str, Any] = {}
                if issuer.field_name in ("token", "both"):
                    body["token"] = token if issuer.field_name == "token" else "not-this-one"
                if issuer.field_name in ("access_token", "both"):
                    body["access_token"] = token
                if issuer.expires_in is not None:
                    body["expires_in"] = issuer.expires_in
                body["issued_at"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                self._answer(200, body, rec)

        self._server = BackgroundServer(
            Handler, cert=self.tls_cert, key=self.tls_key, port=self.port
        )
        self.port = self._server.port
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close(timeout=5)

    def __enter__(self) -> TokenIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
