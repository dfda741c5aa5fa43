"""The doctor's ``server`` section: the server URL, DNS, TCP, one TLS
handshake (TLS 1.2 or later only, certificate chain and name), the ``/v2/``
ping and its ``WWW-Authenticate`` challenge, the token, the first metadata
download (``timestamp.json``).  A failure blocks the checks after it."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from trustcheck.core.timefmt import iso as _iso
from trustcheck.doctor.context import DoctorBase
from trustcheck.errors import TrustcheckError, UsageError
from trustcheck.text import redact_url

if TYPE_CHECKING:
    from cryptography import x509

    from trustcheck.remote.http import Endpoint

__all__ = ["ConnectionChecks", "ServiceChecks", "classify_tls_error", "realm_problem"]

_PING_CAP = 64 << 10
_TIMESTAMP_CAP = 1 << 20
#: ssl reasons that mean "no common protocol version"
_VERSION_REASONS = frozenset(
    {
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "UNSUPPORTED_PROTOCOL",
        "NO_PROTOCOLS_AVAILABLE",
        "VERSION_TOO_LOW",
        "WRONG_SSL_VERSION",
    }
)
# OpenSSL X509_V_ERR_* codes
_X509_NOT_YET_VALID = 9
_X509_EXPIRED = 10
_X509_HOSTNAME_MISMATCH = 62
_X509_IP_MISMATCH = 64


# --------------------------------------------------------------------------- pure helpers


def classify_tls_error(exc: BaseException) -> tuple[str, str]:
    """(doctor code, one-line reason) for a failed TLS handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        code_num = getattr(exc, "verify_code", None)
        reason = str(getattr(exc, "verify_message", "") or exc)
        if code_num in (_X509_EXPIRED, _X509_NOT_YET_VALID):
            return "CONNECTIVITY_TLS_CERT_EXPIRED", reason
        if code_num in (_X509_HOSTNAME_MISMATCH, _X509_IP_MISMATCH):
            return "CONNECTIVITY_TLS_CERT_NAME_ERROR", reason
        return "CONNECTIVITY_TLS_CERT_UNTRUSTED", reason
    if isinstance(exc, ssl.SSLError):
        reason = str(exc.reason or exc)
        if exc.reason in _VERSION_REASONS:
            return (
                "CONNECTIVITY_TLS_VERSION_ERROR",
                f"the server accepts neither TLS 1.2 nor 1.3 ({reason}); it offers only an "
                "older version",
            )
        if exc.reason == "WRONG_VERSION_NUMBER":
            return "CONNECTIVITY_TLS_ERROR", f"{reason} (the port does not speak TLS: plain http?)"
        if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return (
                "CONNECTIVITY_TLS_ERROR",
                "the server closed the connection during the handshake (it may speak only "
                "TLS older than 1.2, or require a client certificate)",
            )
        return "CONNECTIVITY_TLS_ERROR", reason
    if isinstance(exc, TimeoutError):
        return "CONNECTIVITY_TLS_ERROR", "the handshake did not finish in time"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return (
            "CONNECTIVITY_TLS_ERROR",
            "the server reset the connection during the handshake (it may speak only TLS "
            "older than 1.2)",
        )
    return "CONNECTIVITY_TLS_ERROR", (str(exc).strip() or type(exc).__name__)[:200]


def realm_problem(realm: str | None, unsafe_http: bool) -> str | None:
    """Why a Bearer realm is unusable or unsafe, or None when it is fine.

    It must be an absolute https URL with a host, no credentials, and no
    ``.``/``..`` path segments (also percent-encoded) or backslashes.
    """
    if not realm:
        return "the Bearer challenge names no realm"
    try:
        parts = urlsplit(realm)
        _ = parts.port
    except ValueError:
        return f"the realm {realm[:100]!r} is not a valid URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"the realm {realm[:100]!r} is not an absolute http(s) URL"
    if parts.scheme == "http" and not unsafe_http:
        return f"the realm {realm[:100]!r} is plain http: credentials would travel unprotected"
    if parts.username is not None or parts.password is not None:
        return "the realm carries credentials in its URL"
    path = parts.path
    for _round in range(3):  # %252e%252e decodes twice
        if "\\" in path or any(seg in (".", "..") for seg in path.split("/")):
            return f"the realm path {parts.path[:100]!r} contains path traversal"
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    return None


def _resolve(host: str, port: int, timeout: float) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` cut at ``timeout`` (raises TimeoutError).  The lookup runs in
    a daemon thread: a resolver that hangs can neither stall the doctor nor the
    exit of the process."""
    box: list[list[tuple[Any, ...]] | BaseException] = []

    def lookup() -> None:
        try:
            box.append(list(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)))
        except BaseException as e:  # handed to the caller
            box.append(e)

    worker = threading.Thread(target=lookup, name="trustcheck-dns", daemon=True)
    worker.start()
    worker.join(timeout)
    if not box:
        raise TimeoutError(f"{host} did not resolve within {timeout:g} s")
    found = box[0]
    if isinstance(found, BaseException):
        raise found
    return found


def _cert_summary(cert: x509.Certificate) -> dict[str, Any]:
    from cryptography import x509 as _x509

    try:
        san = cert.extensions.get_extension_for_class(_x509.SubjectAlternativeName).value
        names = [str(v) for v in san.get_values_for_type(_x509.DNSName)]
        names += [str(v) for v in san.get_values_for_type(_x509.IPAddress)]
    except _x509.ExtensionNotFound:
        names = []
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "names": names,
        "not_before": _iso(cert.not_valid_before_utc),
        "not_after": _iso(cert.not_valid_after_utc),
    }


def _load_der(der: bytes | None) -> x509.Certificate | None:
    if not der:
        return None
    from cryptography import x509 as _x509

    try:
        return _x509.load_der_x509_certificate(der)
    except ValueError:
        return None


def _proxy_for(url: str, env: Mapping[str, str]) -> str | None:
    """The HTTP(S) proxy a request to ``url`` goes through (httpx reads the same
    variables), or None."""
    parts = urlsplit(url)
    lowered = {k.lower(): v for k, v in env.items() if k.lower().endswith("_proxy")}
    proxy = lowered.get(f"{parts.scheme}_proxy") or lowered.get("all_proxy")
    if not proxy:
        return None
    no_proxy = lowered.get("no_proxy", "")
    host = (parts.hostname or "").lower()
    for item in no_proxy.split(","):
        entry = item.strip().lower().lstrip(".")
        if not entry:
            continue
        if entry == "*" or host == entry or host.endswith("." + entry):
            return None
        if entry == f"{host}:{parts.port}":
            return None
    return proxy


def _origin_of(url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    default = {"https": 443, "http": 80}.get(parts.scheme)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port or default}"


class ConnectionChecks(DoctorBase):
    """DNS, TCP and the TLS handshake, and the order of the ``server`` checks."""

    _SERVER_CHECKS = ("server-url", "dns", "tcp", "tls", "ping", "token", "metadata")

    def _skip_rest(self, names: tuple[str, ...], by: str, *, blocked: bool = True) -> None:
        for name in names:
            if blocked:
                self.blocked("server", name, by)
            else:
                self.skip("server", name, by)

    def _remaining(self, after: str) -> tuple[str, ...]:
        i = self._SERVER_CHECKS.index(after)
        return self._SERVER_CHECKS[i + 1 :]

    def _host_port(self) -> tuple[str, int]:
        assert self.server is not None
        parts = urlsplit(self.server)
        default = 443 if parts.scheme == "https" else 80
        return (parts.hostname or ""), (parts.port or default)

    def _connect_target(self) -> tuple[str, int, str]:
        """(host, port, what) the first TCP connection goes to: the server, or its proxy."""
        assert self.server is not None
        proxy = _proxy_for(self.server, self.env)
        if proxy:
            parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            return (parts.hostname or ""), port, f"proxy {parts.hostname}:{port}"
        host, port = self._host_port()
        return host, port, f"{host}:{port}"

    def check_dns(self) -> str | None:
        import ipaddress

        host, port, what = self._connect_target()
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            self.addresses = [(socket.AF_INET6 if ":" in host else socket.AF_INET, (host, port))]
            self.ok("server", "dns", f"{host} is an IP address (no lookup)", addresses=[host])
            return None
        timeout = self.remote.timeout
        started = time.monotonic()
        try:
            infos = _resolve(host, port, timeout)
        except TimeoutError:
            self.fail(
                "server",
                "dns",
                "CONNECTIVITY_DNS_ERROR",
                f"{host} did not resolve within {timeout:g} s",
                "check the DNS servers (/etc/resolv.conf) and the network; raise --timeout "
                "for slow resolvers",
                host=host,
            )
            return "dns"
        except OSError as e:
            reason = (e.strerror or str(e)) if isinstance(e, socket.gaierror) else str(e)
            self.fail(
                "server",
                "dns",
                "CONNECTIVITY_DNS_ERROR",
                f"{host} does not resolve ({reason})",
                "check the spelling of the image's registry or --server / "
                "DOCKER_CONTENT_TRUST_SERVER, and this machine's DNS (/etc/resolv.conf)",
                host=host,
            )
            return "dns"
        self.addresses = []
        seen: list[str] = []
        for family, _type, _proto, _name, sockaddr in infos:
            if sockaddr[0] not in seen:
                seen.append(str(sockaddr[0]))
                self.addresses.append((family, sockaddr))
        elapsed = (time.monotonic() - started) * 1000
        via = "" if what.startswith(f"{host}:") else f" ({what})"
        self.ok(
            "server",
            "dns",
            f"{host}{via} resolves to {', '.join(seen)} in {elapsed:.0f} ms",
            host=host,
            addresses=seen,
        )
        return None

    def check_tcp(self) -> str | None:
        _host, _port, what = self._connect_target()
        errors: list[str] = []
        for family, sockaddr in self.addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(self.remote.timeout)
            started = time.monotonic()
            try:
                sock.connect(sockaddr)
            except TimeoutError:
                errors.append(f"{sockaddr[0]}: no answer within {self.remote.timeout:g} s")
                continue
            except OSError as e:
                errors.append(f"{sockaddr[0]}: {e.strerror or e}")
                continue
            finally:
                sock.close()
            self.connect_to = (family, sockaddr)
            elapsed = (time.monotonic() - started) * 1000
            self.ok(
                "server",
                "tcp",
                f"connected to {sockaddr[0]} port {sockaddr[1]} ({elapsed:.0f} ms)",
                address=str(sockaddr[0]),
                port=int(sockaddr[1]),
            )
            return None
        refused = any("refused" in e.lower() for e in errors)
        self.fail(
            "server",
            "tcp",
            "CONNECTIVITY_TCP_ERROR",
            f"cannot connect to {what}: " + "; ".join(errors),
            "the server is down or listens elsewhere: check the port in the image name or "
            "--server, and that the server runs"
            if refused
            else "a firewall or the network drops the connection: check routes, firewalls and "
            "HTTPS_PROXY/NO_PROXY",
            errors=errors,
        )
        return "tcp"

    def check_tls(self) -> str | None:
        from trustcheck.remote.http import HttpSession

        assert self.server is not None
        if urlsplit(self.server).scheme != "https":
            self.tls_skipped = "plain http (--unsafe-http): no TLS"
        elif _proxy_for(self.server, self.env):
            self.tls_skipped = "through an HTTP proxy: TLS with the server is checked by the ping"
        if self.tls_skipped is not None:
            self.session = HttpSession(self.remote, self.env)
            self.skip("server", "tls", self.tls_skipped)
            return None
        try:
            self.session = HttpSession(self.remote, self.env)
            netloc = urlsplit(self.server).netloc
            ctx = self.session.tls_context(netloc)
        except UsageError as e:
            self.fail(
                "server",
                "tls",
                "TLS_CONFIG_ERROR",
                e.message,
                "fix or remove the file the message names (--tls-ca, --tls-cert/--tls-key, "
                "$DOCKER_CONFIG/tls/<host>/)",
            )
            return "tls"
        host, _port = self._host_port()
        assert self.connect_to is not None
        family, sockaddr = self.connect_to
        try:
            version, cipher, der = self._handshake(ctx, family, sockaddr, host)
        except Exception as e:
            code, reason = classify_tls_error(e)
            details: dict[str, Any] = {"reason": reason}
            cert = self._peek_certificate(family, sockaddr, host)
            text = f"TLS with {host} failed: {reason}"
            if cert is not None:
                summary = _cert_summary(cert)
                details["certificate"] = summary
                if code == "CONNECTIVITY_TLS_CERT_EXPIRED":
                    text += (
                        f" (valid {summary['not_before']} to {summary['not_after']}; "
                        f"now {_iso(datetime.now(UTC))})"
                    )
                elif code == "CONNECTIVITY_TLS_CERT_NAME_ERROR":
                    names = ", ".join(summary["names"]) or summary["subject"]
                    text += f" (the certificate names {names})"
                elif code == "CONNECTIVITY_TLS_CERT_UNTRUSTED":
                    text += f" (issued by {summary['issuer']})"
            fixes = {
                "CONNECTIVITY_TLS_VERSION_ERROR": "the server must offer TLS 1.2 or 1.3; "
                "trustcheck never negotiates anything older. Upgrade the server's TLS settings",
                "CONNECTIVITY_TLS_CERT_EXPIRED": "renew the server certificate; if it looks "
                "valid, check this machine's clock (date -u)",
                "CONNECTIVITY_TLS_CERT_UNTRUSTED": "give the server's CA with --tls-ca or "
                f"$DOCKER_CONFIG/tls/{netloc}/ca.crt (never disable verification)",
                "CONNECTIVITY_TLS_CERT_NAME_ERROR": "use the host name the certificate names, "
                "or reissue the certificate with this name in its subjectAltName",
                "CONNECTIVITY_TLS_ERROR": "check that the port serves HTTPS, whether the server "
                "requires a client certificate (--tls-cert/--tls-key), and its TLS settings",
            }
            self.fail("server", "tls", code, text, fixes[code], **details)
            return "tls"
        cert = _load_der(der)
        summary = _cert_summary(cert) if cert is not None else {}
        self.server_cert = cert
        self.ok(
            "server",
            "tls",
            f"{version}, {cipher}; certificate for {summary.get('subject', '?')} issued by "
            f"{summary.get('issuer', '?')}, valid until {summary.get('not_after', '?')}",
            version=version,
            cipher=cipher,
            certificate=summary,
        )
        return None

    def _handshake(
        self, ctx: ssl.SSLContext, family: int, sockaddr: tuple[Any, ...], host: str
    ) -> tuple[str, str, bytes | None]:
        with socket.socket(family, socket.SOCK_STREAM) as raw:
            raw.settimeout(self.remote.timeout)
            raw.connect(sockaddr)
            with ctx.wrap_socket(raw, server_hostname=host) as tls:
                cipher = tls.cipher()
                return (
                    tls.version() or "?",
                    cipher[0] if cipher else "?",
                    tls.getpeercert(binary_form=True),
                )

    def _peek_certificate(
        self, family: int, sockaddr: tuple[Any, ...], host: str
    ) -> x509.Certificate | None:
        """The server certificate, read without verifying it, to explain a
        failure (TLS 1.2+ still; nothing is sent over this connection)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            _v, _c, der = self._handshake(ctx, family, sockaddr, host)
        except (OSError, ValueError):
            return None
        return _load_der(der)


class ServiceChecks(ConnectionChecks):
    """The registry's ``/v2/`` ping and challenge, the token, the first metadata download."""

    def check_ping(self) -> str | None:
        from trustcheck.remote.auth import parse_challenges
        from trustcheck.remote.http import Deadline, RemoteError

        assert self.server is not None and self.session is not None
        netloc = urlsplit(self.server).netloc
        sent = time.time()
        try:
            ans = self.session.request(
                "GET",
                self.server + "/v2/",
                deadline=Deadline(self.remote.total_timeout),
                what=f"notary server {self.server}",
                cap=_PING_CAP,
                tls_hosts=(netloc,),
            )
        except RemoteError as e:
            code = "CONNECTIVITY_TLS_ERROR" if e.code == "tls-error" else "CONNECTIVITY_PING_ERROR"
            self.fail(
                "server",
                "ping",
                code,
                f"[{e.code}] {e.message}",
                "check that the URL is a Notary server (GET /v2/ must answer 200 or 401) and "
                "that nothing between here and there (proxy, load balancer) breaks the request",
                remote_code=e.code,
            )
            return "ping"
        except TrustcheckError as e:
            self.fail(
                "server",
                "ping",
                "CONNECTIVITY_PING_ERROR",
                f"[{e.code}] {e.message}",
                "the /v2/ answer is unusable: check the server URL and any proxy in between",
                remote_code=e.code,
            )
            return "ping"
        received = time.time()
        self.ping = ans
        self.ping_window = (sent, received)
        redirected = _origin_of(ans.url) != _origin_of(self.server + "/v2/")
        where = f" (after a redirect to {urlsplit(ans.url).netloc})" if redirected else ""
        if ans.status == 200:
            self.ok("server", "ping", f"GET /v2/: 200, no authentication{where}", http_status=200)
            return None
        if ans.status != 401:
            self.fail(
                "server",
                "ping",
                "CONNECTIVITY_PING_ERROR",
                f"GET /v2/ answered HTTP {ans.status}{where}; a Notary server answers 200 or 401",
                "check the URL (--server, DOCKER_CONTENT_TRUST_SERVER): it must be the Notary "
                "server itself, without a path"
                if ans.status < 500
                else "the server is failing (5xx): retry later or ask its operator",
                http_status=ans.status,
            )
            return "ping"
        headers = ans.headers.get_list("www-authenticate")
        challenges = parse_challenges(headers)
        bearer = next((c for c in challenges if c.scheme == "bearer" and c.realm), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        chosen = bearer or basic
        if chosen is None:
            self.fail(
                "server",
                "ping",
                "CONNECTIVITY_CHALLENGE_ERROR",
                "GET /v2/ answered 401 without a usable Bearer or Basic challenge "
                f"(WWW-Authenticate: {'; '.join(h[:120] for h in headers) or 'missing'})",
                "the server (or a proxy in front of it) must send "
                'WWW-Authenticate: Bearer realm="https://...",service="..."',
                http_status=401,
            )
            return "ping"
        if chosen.scheme == "bearer":
            problem = realm_problem(chosen.realm, self.remote.unsafe_http)
            if problem is not None:
                self.fail(
                    "server",
                    "ping",
                    "CONNECTIVITY_CHALLENGE_ERROR",
                    f"401 with a Bearer challenge, but {problem}",
                    "the token realm must be an https URL without '..' path segments; this is "
                    "a server configuration error (or an attack): tell the server's operator",
                    http_status=401,
                    realm=redact_url(chosen.realm) if chosen.realm else None,
                )
                return "ping"
        self.challenge = chosen
        if chosen.scheme == "bearer":
            text = f"GET /v2/: 401, Bearer realm {redact_url(chosen.realm or '')}" + (
                f", service {chosen.service}" if chosen.service else ""
            )
        else:
            text = "GET /v2/: 401, Basic authentication"
        self.ok(
            "server",
            "ping",
            text + where,
            http_status=401,
            scheme=chosen.scheme,
            realm=redact_url(chosen.realm) if chosen.realm else None,
            service=chosen.service,
        )
        return None

    def _endpoint(self) -> Endpoint:
        assert self.server is not None and self.session is not None
        key = self.auth_key or urlsplit(self.server).netloc
        return self.session.endpoint(self.server, key, "notary server")

    def check_token(self) -> str | None:
        from trustcheck.remote.http import Deadline, RemoteError

        if self.challenge is None:
            self.skip("server", "token", "the server asks for no authentication")
            return None
        if not self.creds_ok:
            self.blocked("server", "token", "credentials failed")
            return "token"
        gun = self.gun
        scope = f"repository:{gun}:pull" if gun is not None else ""
        endpoint = self._endpoint()
        who = self.creds.describe() if self.creds is not None else "anonymous (no credentials)"
        realm = redact_url(self.challenge.realm or "")  # for messages and the report
        try:
            endpoint.authorization(self.challenge, scope, Deadline(self.remote.total_timeout))
        except RemoteError as e:
            refresh = self.creds is not None and self.creds.identity_token is not None
            if e.code == "auth-failed" and e.status == 403:
                code = "CONNECTIVITY_FORBIDDEN_ERROR"
                fix = (
                    f"the credentials work but may not pull {gun or 'from this registry'}: ask "
                    "for pull access to the repository"
                )
            elif e.code == "auth-failed" and self.challenge.scheme == "basic":
                code = "CONNECTIVITY_UNAUTHORIZED_ERROR"
                fix = "`docker login` for this registry, or --username with --password-stdin"
            elif e.code == "auth-failed":
                code = (
                    "CONNECTIVITY_REFRESH_TOKEN_ERROR"
                    if refresh
                    else "CONNECTIVITY_ACCESS_TOKEN_ERROR"
                )
                fix = (
                    "the identity (refresh) token was refused: log in again (`docker login`, "
                    "`az acr login`)"
                    if refresh
                    else "check the user name and password (`docker login`, or --username with "
                    "--password-stdin); a private repository needs credentials"
                )
            else:
                code = "CONNECTIVITY_TOKEN_SERVICE_ERROR"
                fix = (
                    f"the token service {realm} must be reachable from here with a valid TLS "
                    "certificate (its CA in $DOCKER_CONFIG/tls/<host>/ca.crt or --tls-ca)"
                )
            self.fail(
                "server",
                "token",
                code,
                f"[{e.code}] {e.message}",
                fix,
                http_status=e.status,
                scope=scope or None,
                user=who,
            )
            return "token"
        except TrustcheckError as e:
            if e.code == "auth-failed":
                code, fix = (
                    "CONNECTIVITY_ACCESS_TOKEN_ERROR",
                    "the token service answered something that is not a token: check the "
                    "realm the server names",
                )
            elif e.code == "insecure-server":
                code, fix = (
                    "CONNECTIVITY_CHALLENGE_ERROR",
                    "the token realm must be https (--unsafe-http only for test servers)",
                )
            elif e.code == "credential-helper-failed":
                code, fix = ("CREDENTIAL_HELPER_ERROR", "see the credentials check")
            else:
                code, fix = ("CONNECTIVITY_TOKEN_SERVICE_ERROR", "see the message")
            self.fail("server", "token", code, f"[{e.code}] {e.message}", fix, user=who)
            return "token"
        if self.challenge.scheme == "basic":
            self.ok("server", "token", f"Basic authentication as {who}", scheme="basic")
            return None
        scope_text = f"scope {scope}" if scope else "no scope (login check)"
        self.ok(
            "server",
            "token",
            f"token from {realm} for {scope_text} as {who}",
            scope=scope or None,
            realm=realm,
        )
        return None

    def check_metadata(self) -> str | None:
        from trustcheck.remote.http import Deadline, RemoteError

        gun = self.gun
        if gun is None:
            self.skip("server", "metadata", "no image given: no repository to download from")
            return None
        path = f"/v2/{quote(gun, safe='/:@')}/_trust/tuf/timestamp.json"
        endpoint = self._endpoint()
        try:
            ans = endpoint.request(
                "GET",
                path,
                scope=f"repository:{gun}:pull",
                cap=_TIMESTAMP_CAP,
                deadline=Deadline(self.remote.total_timeout),
                what=f"{gun} timestamp.json",
                role="timestamp",
            )
        except RemoteError as e:
            if e.code == "auth-failed" and e.status == 403:
                self.fail(
                    "server",
                    "metadata",
                    "CONNECTIVITY_FORBIDDEN_ERROR",
                    f"[{e.code}] {e.message}",
                    f"the server knows who you are but refuses {gun}: ask for pull access",
                    http_status=403,
                )
            elif e.code == "auth-failed":
                self.fail(
                    "server",
                    "metadata",
                    "CONNECTIVITY_UNAUTHORIZED_ERROR",
                    f"[{e.code}] {e.message}",
                    "`docker login` for the image's registry, or --username with --password-stdin",
                    http_status=e.status,
                )
            else:
                self.fail(
                    "server",
                    "metadata",
                    "METADATA_DOWNLOAD_ERROR",
                    f"[{e.code}] {e.message}",
                    "retry; if it persists, check the server and any proxy in between",
                    remote_code=e.code,
                )
            return "metadata"
        except TrustcheckError as e:
            self.fail(
                "server",
                "metadata",
                "METADATA_DOWNLOAD_ERROR",
                f"[{e.code}] {e.message}",
                "the server sent an unusable timestamp.json; retry, then tell its operator",
                remote_code=e.code,
            )
            return "metadata"
        redirected = _origin_of(ans.url) != _origin_of(self.server or "")
        note = (
            f" (served by {urlsplit(ans.url).netloc} after a redirect; the Authorization "
            "header was not sent there)"
            if redirected
            else ""
        )
        if ans.status == 404:
            self.fail(
                "server",
                "metadata",
                "METADATA_NOT_FOUND",
                f"the server has no trust data for {gun} (404 for timestamp.json){note}",
                "the image is not signed, or the name or server is wrong: check "
                "`docker trust inspect`, --server and DOCKER_CONTENT_TRUST_SERVER",
                http_status=404,
            )
            return "metadata"
        if ans.status != 200:
            self.fail(
                "server",
                "metadata",
                "METADATA_DOWNLOAD_ERROR",
                f"timestamp.json answered HTTP {ans.status}{note}",
                "retry later; 5xx is a server problem, 400 a bad request (check the image name)",
                http_status=ans.status,
            )
            return "metadata"
        version: object = None
        try:
            doc = json.loads(ans.body)
            version = doc["signed"]["version"]
        except (ValueError, KeyError, TypeError, RecursionError):
            pass
        self.ok(
            "server",
            "metadata",
            f"timestamp.json: {len(ans.body)} bytes"
            + (f", version {version} (verified below)" if isinstance(version, int) else "")
            + note,
            http_status=200,
            length=len(ans.body),
            url=redact_url(ans.url),
            redirected=redirected,
        )
        return None
