"""``trustcheck doctor``: why can trust verification not work here?

Ordered checks in four sections, each answering with a status (``ok``,
``warn``, ``fail``, ``skip``), a stable UPPER_CASE code, a one-line
explanation and the fix to try (docs/doctor.md lists every code):

* **local** -- the trust dir and the GUNs it holds; Docker's config.json and
  the credentials (credential helpers are run); the pin file; the state
  record of the GUN; the policy file (when :mod:`trustcheck.policy.rules` exists);
* **server** -- the server URL, DNS, TCP, one TLS handshake (TLS 1.2 or later
  only, certificate chain and name), the ``/v2/`` ping and its
  ``WWW-Authenticate`` challenge, the token, the first metadata download
  (``timestamp.json``);
* **time** -- this machine's clock against the server's ``Date`` header; the
  server certificate's expiry within the horizon;
* **trust** -- a full verification of the image (fetched, or the trust dir
  with ``--offline``) with the verifier's verdict and code; root/delegation
  certificates and metadata expiring within the horizon.

A section is a chain: after a failure, the checks that depend on it are
reported as ``skip`` with code ``BLOCKED``.  The doctor changes nothing: the
verification runs on a scratch copy of the cached collection and of its state
record, so no root is trusted on first use and no cache is updated.

Exit codes: 0 when nothing failed (warnings included), else the largest exit
code of the failed checks -- 1 for connectivity and trust failures, 2 for bad
configuration or input (:data:`CODES`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, unquote, urlsplit

from trustcheck import __version__
from trustcheck.core.timefmt import iso as _iso
from trustcheck.errors import NotTrusted, TrustcheckError, UsageError

if TYPE_CHECKING:
    from cryptography import x509

    from trustcheck.api import Options
    from trustcheck.core.reference import ImageRef
    from trustcheck.core.verify import Collection
    from trustcheck.local.pinfile import PinSet
    from trustcheck.local.trustdir import TrustDir
    from trustcheck.remote.auth import Challenge, Credentials
    from trustcheck.remote.config import RemoteConfig
    from trustcheck.remote.http import Answer, Endpoint, HttpSession

__all__ = [
    "CODES",
    "SECTIONS",
    "STATUSES",
    "CheckResult",
    "DoctorConfig",
    "Report",
    "classify_tls_error",
    "clock_skew",
    "parse_target",
    "realm_problem",
    "run_doctor",
]

STATUSES = ("ok", "warn", "fail", "skip")
SECTIONS = ("local", "server", "time", "trust")

#: code -> (exit code when the check fails, one-line summary).  Codes used only
#: with ``warn`` or ``skip`` have exit code 0.  ``TRUST_DATA_INVALID`` takes the
#: verifier code's exit code (1, or 2 for e.g. ``state-invalid``).
#: docs/errors.md and docs/doctor.md list them; tests/unit/test_doctor_checks.py checks.
CODES: dict[str, tuple[int, str]] = {
    "OK": (0, "the check passed"),
    "SKIPPED": (0, "the check does not apply here (no image, --offline, no policy ...)"),
    "BLOCKED": (0, "not run: a check it depends on failed"),
    # local
    "TRUST_DIR_MISSING": (1, "the trust dir does not exist"),
    "TRUST_DIR_UNREADABLE": (2, "the trust dir cannot be read"),
    "TRUST_DIR_UNWRITABLE": (0, "the trust dir cannot be written: fetched data cannot be cached"),
    "TRUST_DATA_NOT_CACHED": (1, "the trust dir holds no trust data for the image (--offline)"),
    "DOCKER_CONFIG_ERROR": (2, "Docker's config.json is unreadable or malformed"),
    "CREDENTIAL_HELPER_ERROR": (
        2,
        "a configured credential helper (docker-credential-NAME) is missing or failed",
    ),
    "PIN_FILE_ERROR": (2, "the pin file cannot be read or does not follow the schema"),
    "STATE_INVALID": (2, "the state record of the GUN is unreadable or corrupt"),
    "POLICY_FILE_ERROR": (2, "the policy file cannot be loaded"),
    # server
    "SERVER_URL_ERROR": (2, "the Notary server URL is invalid or plain http"),
    "CONNECTIVITY_DNS_ERROR": (1, "the server's host name does not resolve"),
    "CONNECTIVITY_TCP_ERROR": (
        1,
        "no TCP connection to the server (refused, timeout, unreachable)",
    ),
    "TLS_CONFIG_ERROR": (2, "a TLS CA file, client certificate or key cannot be loaded"),
    "CONNECTIVITY_TLS_VERSION_ERROR": (1, "the server does not speak TLS 1.2 or later"),
    "CONNECTIVITY_TLS_CERT_EXPIRED": (1, "the server certificate is expired or not yet valid"),
    "CONNECTIVITY_TLS_CERT_UNTRUSTED": (1, "the server certificate does not chain to a trusted CA"),
    "CONNECTIVITY_TLS_CERT_NAME_ERROR": (1, "the server certificate does not name the host"),
    "CONNECTIVITY_TLS_ERROR": (1, "the TLS handshake failed"),
    "CONNECTIVITY_PING_ERROR": (1, "GET /v2/ did not answer 200 or 401"),
    "CONNECTIVITY_CHALLENGE_ERROR": (1, "the 401 challenge is missing, unusable or unsafe"),
    "CONNECTIVITY_TOKEN_SERVICE_ERROR": (1, "the token service cannot be reached or is broken"),
    "CONNECTIVITY_ACCESS_TOKEN_ERROR": (1, "the token service refused the credentials (401)"),
    "CONNECTIVITY_REFRESH_TOKEN_ERROR": (1, "the token service refused the identity token"),
    "CONNECTIVITY_UNAUTHORIZED_ERROR": (1, "the server answered 401: no or wrong credentials"),
    "CONNECTIVITY_FORBIDDEN_ERROR": (1, "403: the credentials are valid but not allowed to pull"),
    "METADATA_NOT_FOUND": (1, "the server has no trust data for the GUN (404)"),
    "METADATA_DOWNLOAD_ERROR": (1, "downloading trust data failed"),
    # time
    "CLOCK_SKEW_WARNING": (0, "this machine's clock is off by more than 30 s"),
    "CLOCK_SKEW_ERROR": (1, "this machine's clock is off by more than 5 minutes"),
    "TLS_CERT_EXPIRING": (0, "the server certificate expires within the horizon"),
    # trust
    "TRUST_DATA_INVALID": (1, "the verifier refused the image; its code says why"),
    "METADATA_EXPIRING": (0, "root, targets, snapshot or a delegation expires within the horizon"),
    "SIGNING_CERT_EXPIRING": (0, "a root or delegation certificate expires within the horizon"),
}

#: clock skew above this is a warning; above :data:`SKEW_FAIL` a failure
SKEW_WARN = 30.0
SKEW_FAIL = 300.0
DEFAULT_HORIZON = timedelta(days=30)
_PING_CAP = 64 << 10
_TIMESTAMP_CAP = 1 << 20
_REMOTE_CODES = frozenset(
    {
        "network-error",
        "server-timeout",
        "server-error",
        "auth-failed",
        "tls-error",
        "malicious-server",
    }
)
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


# --------------------------------------------------------------------------- results


@dataclass
class CheckResult:
    """One check: where it belongs, how it went, why, and what to try."""

    section: str
    name: str
    status: str
    code: str
    message: str
    fix: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    #: for TRUST_DATA_INVALID: the verifier error's exit code
    exit_override: int | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}")
        if self.code not in CODES:
            raise ValueError(f"undocumented doctor code {self.code!r}")
        if self.section not in SECTIONS:
            raise ValueError(f"unknown section {self.section!r}")

    @property
    def exit_code(self) -> int:
        if self.status != "fail":
            return 0
        if self.exit_override is not None:
            return self.exit_override
        return max(1, CODES[self.code][0])

    def to_json(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "name": self.name,
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "fix": self.fix,
            "details": self.details,
        }


@dataclass
class Report:
    """Everything the doctor found, in the order the checks ran."""

    target: str | None
    kind: str | None
    gun: str | None
    server: str | None
    offline: bool
    at: datetime
    trust_dir: Path
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return max((c.exit_code for c in self.checks), default=0)

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for c in self.checks if c.status == s) for s in STATUSES}

    def by_name(self) -> dict[str, CheckResult]:
        return {c.name: c for c in self.checks}

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "kind": self.kind,
            "gun": self.gun,
            "server": self.server,
            "offline": self.offline,
            "at": self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "trust_dir": str(self.trust_dir),
            "checks": [c.to_json() for c in self.checks],
            "summary": self.counts(),
            "exit_code": self.exit_code,
            "trustcheck_version": __version__,
        }

    def render(self) -> str:
        """The human report (stdout)."""
        head = f"trustcheck doctor: {self.target or '(no image or registry given)'}"
        facts = []
        if self.gun:
            facts.append(f"GUN {self.gun}")
        facts.append(f"server {self.server}" if self.server else "no server")
        if self.offline:
            facts.append("offline")
        facts.append(f"trust dir {self.trust_dir}")
        lines = [head, "  " + " · ".join(facts)]
        width = max((len(c.name) for c in self.checks), default=8) + 2
        for section in SECTIONS:
            rows = [c for c in self.checks if c.section == section]
            if not rows:
                continue
            lines.append("")
            lines.append(section)
            for c in rows:
                label = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "skip"}[c.status]
                text = c.message if c.code == "OK" else f"{c.code}: {c.message}"
                lines.append(f"  {label:<5} {c.name:<{width}}{text}")
                if c.fix and c.status in ("warn", "fail"):
                    lines.append(f"  {'':<5} {'':<{width}}fix: {c.fix}")
        n = self.counts()
        lines.append("")
        lines.append(
            f"{n['fail']} failed, {_count(n['warn'], 'warning')}, {n['ok']} ok, {n['skip']} skipped"
            f" -> exit {self.exit_code}"
        )
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- configuration


@dataclass
class DoctorConfig:
    """What to diagnose and with which settings (the CLI fills it from options)."""

    target: str | None
    trust_dir: Path
    remote: RemoteConfig
    #: validation time for the verification (None: now)
    at: datetime | None = None
    pins: Path | None = None
    state_dir: Path | None = None
    no_tofu: bool = False
    delegation_cert_expiry: str = "warn"
    policy: Path | None = None
    horizon: timedelta = DEFAULT_HORIZON
    env: Mapping[str, str] | None = None
    home: Path | None = None


@dataclass(frozen=True)
class Target:
    """The doctor's argument: an image (with its GUN) or a registry host."""

    kind: str  # "image" or "registry"
    domain: str
    ref: ImageRef | None = None


def parse_target(text: str) -> Target:
    """``IMAGE`` (a Docker reference) or ``REGISTRY`` (``host[:port]`` or ``https://host``).

    A word without ``/`` that looks like a host (a dot, ``localhost``, or a
    numeric port) is a registry; anything else is parsed as an image
    reference (``invalid-reference`` when it is not one).
    """
    from trustcheck.core.reference import parse_reference

    raw = text.strip()
    if raw.startswith(("https://", "http://")):
        try:
            parts = urlsplit(raw)
            port = parts.port
        except ValueError as e:
            raise UsageError("invalid-argument", f"{text!r} is not a valid URL ({e})") from e
        if not parts.hostname or parts.path not in ("", "/") or parts.query:
            raise UsageError(
                "invalid-argument", f"a registry URL must be scheme://host[:port], not {text!r}"
            )
        host = parts.hostname.lower()
        return Target("registry", host + (f":{port}" if port is not None else ""))
    if raw and "/" not in raw and "@" not in raw:
        host, sep, port_text = raw.partition(":")
        looks_like_host = "." in host or host == "localhost"
        if (sep and port_text.isdigit() and host) or (not sep and looks_like_host):
            if host != host.lower() or not all(c.isalnum() or c in "-." for c in host):
                raise UsageError("invalid-argument", f"{text!r} is not a registry host name")
            return Target("registry", raw.lower())
    ref = parse_reference(raw)
    return Target("image", ref.domain, ref)


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


def clock_skew(date_header: str | None, sent: float, received: float) -> float | None:
    """Seconds the server's clock is ahead of this machine (negative: behind),
    from a ``Date`` header seen between ``sent`` and ``received`` (epoch
    seconds); None without a parseable header.  Within the header's one-second
    resolution and the round trip, the result is 0."""
    if not date_header:
        return None
    try:
        server = parsedate_to_datetime(date_header.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if server.tzinfo is None:
        server = server.replace(tzinfo=UTC)
    stamp = server.timestamp()
    # the server stamped a time in [sent, received], truncated to the second
    if sent - 1.0 <= stamp <= received:
        return 0.0
    return stamp - received if stamp > received else stamp - (sent - 1.0)


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


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def _describe_skew(skew: float) -> str:
    direction = "behind" if skew > 0 else "ahead of"
    return f"this machine's clock is {abs(skew):.0f} s {direction} the server's"


def _days(delta: timedelta) -> str:
    days = delta.total_seconds() / 86400
    if abs(days) < 1:
        return f"{delta.total_seconds() / 3600:.1f} hours"
    return f"{days:.0f} days"


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


# --------------------------------------------------------------------------- the doctor


class _Doctor:
    def __init__(self, cfg: DoctorConfig) -> None:
        self.cfg = cfg
        self.env: Mapping[str, str] = os.environ if cfg.env is None else cfg.env
        self.home = cfg.home if cfg.home is not None else Path.home()
        self.remote = cfg.remote
        self.at = cfg.at if cfg.at is not None else datetime.now(UTC)
        self.target: Target | None = None
        self.checks: list[CheckResult] = []
        # facts gathered along the way
        self.pinset: PinSet | None = None
        self.pins_ok = True
        self.state_ok = True
        self.trust_dir_ok = True
        self.creds_ok = True
        self.creds: Credentials | None = None
        self.server: str | None = None
        self.server_ok = False
        #: why the server section did not run at all (offline, nothing to check)
        self.server_skip: str | None = None
        #: "<check> failed" for the first failed server check
        self.server_failed: str | None = None
        #: why no TLS handshake was made (plain http, a proxy)
        self.tls_skipped: str | None = None
        self.session: HttpSession | None = None
        self.addresses: list[tuple[Any, ...]] = []
        self.connect_to: tuple[Any, ...] | None = None
        self.server_cert: x509.Certificate | None = None
        self.ping: Answer | None = None
        self.ping_window = (0.0, 0.0)
        self.challenge: Challenge | None = None

    # --- helpers ----------------------------------------------------------------

    def add(
        self,
        section: str,
        name: str,
        status: str,
        code: str,
        message: str,
        fix: str | None = None,
        **details: Any,
    ) -> CheckResult:
        result = CheckResult(section, name, status, code, message, fix, dict(details))
        self.checks.append(result)
        return result

    def ok(self, section: str, name: str, message: str, **details: Any) -> CheckResult:
        return self.add(section, name, "ok", "OK", message, None, **details)

    def fail(
        self, section: str, name: str, code: str, message: str, fix: str, **details: Any
    ) -> CheckResult:
        return self.add(section, name, "fail", code, message, fix, **details)

    def skip(self, section: str, name: str, why: str) -> CheckResult:
        return self.add(section, name, "skip", "SKIPPED", why)

    def blocked(self, section: str, name: str, by: str) -> CheckResult:
        return self.add(section, name, "skip", "BLOCKED", f"not run: {by}")

    @property
    def gun(self) -> str | None:
        if self.target is None or self.target.ref is None:
            return None
        return self.target.ref.gun

    @property
    def auth_key(self) -> str | None:
        """Docker's credential key: the image's registry; with only --server, its host."""
        from trustcheck.remote.auth import credentials_key

        if self.target is not None:
            return credentials_key(self.target.domain)
        server = self.server or self.remote.server
        if server:
            try:
                return urlsplit(server).netloc.lower() or None
            except ValueError:
                return None
        return None

    # --- run --------------------------------------------------------------------

    def run(self) -> Report:
        if self.cfg.target is not None:
            self.target = parse_target(self.cfg.target)
        try:
            self.local()
            self.server_checks()
            self.time_checks()
            self.trust_checks()
        finally:
            if self.session is not None:
                self.session.close()
        return Report(
            target=self.cfg.target,
            kind=self.target.kind if self.target is not None else None,
            gun=self.gun,
            server=self.server,
            offline=self.remote.offline,
            at=self.at,
            trust_dir=self.cfg.trust_dir,
            checks=self.checks,
        )

    # --- local ------------------------------------------------------------------

    def local(self) -> None:
        self.check_trust_dir()
        config_ok = self.check_docker_config()
        if config_ok:
            self.check_credentials()
        else:
            self.creds_ok = False
            self.blocked("local", "credentials", "docker-config failed")
        self.check_pins()
        self.check_state()
        self.check_policy()

    def check_trust_dir(self) -> None:
        from trustcheck.local.trustdir import TrustDir

        path = self.cfg.trust_dir
        online = not self.remote.offline
        gun = self.gun
        if not path.exists():
            self.trust_dir_ok = not self.remote.offline
            if online:
                self.add(
                    "local",
                    "trust-dir",
                    "warn",
                    "TRUST_DIR_MISSING",
                    f"{path} does not exist yet; the first fetch creates it",
                    "nothing to do, unless you expected cached trust data there: then pass "
                    "--trust-dir or set DOCKER_CONFIG",
                    path=str(path),
                )
            else:
                self.fail(
                    "local",
                    "trust-dir",
                    "TRUST_DIR_MISSING",
                    f"{path} does not exist, and --offline verifies only cached trust data",
                    "run `trustcheck fetch IMAGE` (or `docker trust inspect IMAGE`) once, or "
                    "point --trust-dir / DOCKER_CONFIG at the right folder",
                    path=str(path),
                )
            return
        if not path.is_dir() or not os.access(path, os.R_OK | os.X_OK):
            self.trust_dir_ok = False
            why = "is not a directory" if not path.is_dir() else "is not readable by this user"
            self.fail(
                "local",
                "trust-dir",
                "TRUST_DIR_UNREADABLE",
                f"{path} {why}",
                f"check the permissions of {path} (ls -ld), or pass another --trust-dir",
                path=str(path),
            )
            return
        guns = TrustDir(path).list_guns()
        shown = ", ".join(guns[:5]) + (f" (+{len(guns) - 5} more)" if len(guns) > 5 else "")
        summary = f"{path}: {_count(len(guns), 'collection')}" + (f": {shown}" if guns else "")
        details: dict[str, Any] = {"path": str(path), "guns": guns}
        if gun is not None:
            has = gun in guns
            details["cached"] = has
            if not has and not online:
                self.trust_dir_ok = False
                self.fail(
                    "local",
                    "trust-dir",
                    "TRUST_DATA_NOT_CACHED",
                    f"{summary}; nothing cached for {gun}, and --offline uses only the cache",
                    f"run `trustcheck fetch {gun}` once (or drop --offline), or check the "
                    "trust dir and the image name",
                    **details,
                )
                return
            summary += (
                f"; {gun} is cached"
                if has
                else f"; nothing cached for {gun} yet (the first fetch trusts the server's "
                "root on first use unless pinned)"
            )
        if online and not os.access(path, os.W_OK):
            self.add(
                "local",
                "trust-dir",
                "warn",
                "TRUST_DIR_UNWRITABLE",
                f"{summary}; but it is not writable, so new trust data cannot be cached and "
                "`trustcheck verify` fails when the server has newer data",
                f"make {path} writable for this user, or pass a writable --trust-dir",
                **details,
            )
            return
        self.ok("local", "trust-dir", summary, **details)

    def check_docker_config(self) -> bool:
        from trustcheck.remote.auth import docker_config_dir, load_docker_config

        folder = docker_config_dir(self.remote.docker_config, self.env)
        try:
            doc = load_docker_config(folder)
        except UsageError as e:
            self.fail(
                "local",
                "docker-config",
                "DOCKER_CONFIG_ERROR",
                e.message,
                f"fix or remove {folder / 'config.json'} (it must be a JSON object), or run "
                "`docker login` again",
                path=str(folder / "config.json"),
            )
            return False
        if doc is None:
            self.ok(
                "local",
                "docker-config",
                f"no {folder / 'config.json'}: no stored credentials (anonymous access)",
                path=str(folder / "config.json"),
            )
            return True
        helpers = doc.get("credHelpers")
        auths = doc.get("auths")
        store = doc.get("credsStore")
        parts = []
        if isinstance(store, str) and store:
            parts.append(f"credsStore {store!r}")
        if isinstance(helpers, dict) and helpers:
            parts.append(f"credHelpers for {_count(len(helpers), 'registry', 'registries')}")
        if isinstance(auths, dict) and auths:
            parts.append(f"auths for {_count(len(auths), 'registry', 'registries')}")
        self.ok(
            "local",
            "docker-config",
            f"{folder / 'config.json'}: " + (", ".join(parts) if parts else "no credentials"),
            path=str(folder / "config.json"),
        )
        return True

    def check_credentials(self) -> None:
        from trustcheck.remote.auth import (
            docker_config_dir,
            load_docker_config,
            resolve_credentials,
        )

        key = self.auth_key
        if key is None:
            # no registry to ask for: are the configured helpers at least there?
            folder = docker_config_dir(self.remote.docker_config, self.env)
            try:
                doc = load_docker_config(folder) or {}
            except UsageError:
                doc = {}
            names: set[str] = set()
            store = doc.get("credsStore")
            if isinstance(store, str) and store:
                names.add(store)
            helpers = doc.get("credHelpers")
            if isinstance(helpers, dict):
                names.update(v for v in helpers.values() if isinstance(v, str) and v)
            if not names:
                self.skip("local", "credentials", "no registry given and no credential helper")
                return
            missing = [
                n
                for n in sorted(names)
                if shutil.which(f"docker-credential-{n}", path=self.env.get("PATH")) is None
            ]
            if missing:
                self.creds_ok = False
                self.fail(
                    "local",
                    "credentials",
                    "CREDENTIAL_HELPER_ERROR",
                    "not on PATH: " + ", ".join(f"docker-credential-{n}" for n in missing),
                    "install the helper, or remove it from credsStore/credHelpers in "
                    f"{folder / 'config.json'}",
                )
                return
            self.ok(
                "local",
                "credentials",
                "credential helpers on PATH: "
                + ", ".join(f"docker-credential-{n}" for n in sorted(names))
                + " (give an IMAGE or REGISTRY to ask them for credentials)",
            )
            return
        try:
            creds = resolve_credentials(
                key,
                username=self.remote.username,
                password=self.remote.password,
                config_dir=self.remote.docker_config,
                env=self.env,
            )
        except UsageError as e:
            self.creds_ok = False
            code = (
                "CREDENTIAL_HELPER_ERROR"
                if e.code == "credential-helper-failed"
                else "DOCKER_CONFIG_ERROR"
            )
            self.fail(
                "local",
                "credentials",
                code,
                e.message,
                "run the helper by hand: `echo "
                + key
                + " | docker-credential-<name> get`; install it or fix credsStore/credHelpers"
                if code == "CREDENTIAL_HELPER_ERROR"
                else "fix the docker config, or pass --username with --password-stdin",
                registry=key,
            )
            return
        self.creds = creds
        if creds is None:
            self.ok(
                "local",
                "credentials",
                f"none for {key}: anonymous access",
                registry=key,
                source=None,
            )
        else:
            self.ok(
                "local",
                "credentials",
                f"{creds.describe()} for {key}",
                registry=key,
                source=creds.source,
                user=creds.username or None,
                identity_token=creds.identity_token is not None,
            )

    def check_pins(self) -> None:
        from trustcheck.local.pinfile import default_pin_file, load_ca_bundle, load_pins

        path = self.cfg.pins
        if path is None:
            candidate = default_pin_file(self.env, self.home)
            if not candidate.is_file():
                self.ok(
                    "local",
                    "pin-file",
                    f"no pin file ({candidate}): roots are trusted on first use, then kept in "
                    "the state dir",
                    path=None,
                )
                return
            path = candidate
        try:
            pinset = load_pins(path)
            gun = self.gun
            entry = pinset.lookup(gun) if gun is not None else None
            for e in pinset.entries:
                if e.ca is not None:
                    # an expired bundle is the verifier's pin-mismatch, reported by verify
                    with contextlib.suppress(NotTrusted):
                        load_ca_bundle(e, self.at)
        except UsageError as e:
            self.pins_ok = False
            self.fail(
                "local",
                "pin-file",
                "PIN_FILE_ERROR",
                e.message,
                "fix the entry the message names (docs/pinning.md has the schema), or "
                "check it with `trustcheck pin list`",
                path=str(path),
            )
            return
        self.pinset = pinset
        text = f"{path}: {_count(len(pinset.entries), 'pin')}" + (
            ", no_tofu" if pinset.no_tofu else ""
        )
        if gun is not None:
            if entry is not None:
                text += f"; {gun} is pinned by {entry.pattern!r}"
            elif pinset.no_tofu:
                text += f"; {gun} is not pinned and no_tofu is set (it will be refused)"
            else:
                text += f"; {gun} is not pinned (trust on first use)"
        self.ok(
            "local",
            "pin-file",
            text,
            path=str(path),
            pinned_by=entry.pattern if entry is not None else None,
        )

    def _state_store_dir(self) -> Path:
        from trustcheck.local.state import default_state_dir

        if self.cfg.state_dir is not None:
            return self.cfg.state_dir
        return default_state_dir(self.env, self.home)

    def check_state(self) -> None:
        from trustcheck.local.state import StateStore

        gun = self.gun
        folder = self._state_store_dir()
        if gun is None:
            self.skip("local", "state", f"no image given (state dir {folder})")
            return
        try:
            state = StateStore(folder).load(gun)
        except UsageError as e:
            self.state_ok = False
            self.fail(
                "local",
                "state",
                "STATE_INVALID",
                e.message,
                "inspect the file; removing it makes the next run trust the collection's root "
                "on first use again (or pin it first)",
                path=str(folder),
            )
            return
        if state is None or state.root is None:
            self.ok(
                "local",
                "state",
                f"{folder}: nothing recorded for {gun} yet (first use)",
                path=str(folder),
            )
            return
        versions = ", ".join(f"{r} v{v}" for r, v in sorted(state.versions.items()))
        self.ok(
            "local",
            "state",
            f"{folder}: a root trusted before (recorded {state.updated or 'earlier'}); "
            f"versions seen: {versions or 'none'}",
            path=str(folder),
            versions=dict(state.versions),
        )

    def check_policy(self) -> None:
        loader = _policy_loader()
        if isinstance(loader, str):
            self.skip("local", "policy-file", loader)
            return
        if self.cfg.policy is None:
            self.skip("local", "policy-file", "no --policy given")
            return
        try:
            loader(self.cfg.policy)
        except TrustcheckError as e:
            self.fail(
                "local",
                "policy-file",
                "POLICY_FILE_ERROR",
                f"[{e.code}] {e.message}",
                "fix the file, line and field the message names (docs/policy.md)",
                path=str(self.cfg.policy),
            )
            return
        except Exception as e:  # a loader bug must not become a traceback
            self.fail(
                "local",
                "policy-file",
                "POLICY_FILE_ERROR",
                f"loading {self.cfg.policy} raised {type(e).__name__}: {str(e)[:200]}",
                "fix the policy file; if it looks right, report this as a trustcheck bug",
                path=str(self.cfg.policy),
            )
            return
        self.ok("local", "policy-file", f"{self.cfg.policy} loads", path=str(self.cfg.policy))

    # --- server -----------------------------------------------------------------

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

    def server_checks(self) -> None:
        from trustcheck.remote.http import select_server

        if self.remote.offline:
            self.server_skip = "--offline"
            self._skip_rest(self._SERVER_CHECKS, self.server_skip, blocked=False)
            return
        has_env = bool(self.env.get("DOCKER_CONTENT_TRUST_SERVER"))
        if self.target is None and not self.remote.server and not has_env:
            self.server_skip = "no IMAGE, REGISTRY or --server given"
            self._skip_rest(self._SERVER_CHECKS, self.server_skip, blocked=False)
            return
        anchor = self.gun or (self.target.domain if self.target is not None else "docker.io")
        try:
            self.server = select_server(anchor, self.remote, self.env)
        except UsageError as e:
            self.fail(
                "server",
                "server-url",
                "SERVER_URL_ERROR",
                f"[{e.code}] {e.message}",
                "give https://host[:port] with --server or DOCKER_CONTENT_TRUST_SERVER "
                "(--unsafe-http only for test servers)",
            )
            self.server_failed = "server-url failed"
            self._skip_rest(self._remaining("server-url"), self.server_failed)
            return
        if self.remote.server:
            source = "--server"
        elif has_env:
            source = "DOCKER_CONTENT_TRUST_SERVER"
        elif anchor.split("/", 1)[0] in ("docker.io", "index.docker.io"):
            source = "Docker Hub's notary server"
        else:
            source = "the registry host"
        proxy = _proxy_for(self.server, self.env)
        note = f"; requests go through the proxy {urlsplit(proxy).netloc}" if proxy else ""
        self.ok(
            "server",
            "server-url",
            f"{self.server} (from {source}){note}",
            url=self.server,
            source=source,
            proxy=proxy,
        )
        steps = (
            self.check_dns,
            self.check_tcp,
            self.check_tls,
            self.check_ping,
            self.check_token,
            self.check_metadata,
        )
        for step in steps:
            name = step()
            if name is not None:
                self.server_failed = f"{name} failed"
                self._skip_rest(self._remaining(name), self.server_failed)
                return
        self.server_ok = True

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
                    realm=chosen.realm,
                )
                return "ping"
        self.challenge = chosen
        if chosen.scheme == "bearer":
            text = f"GET /v2/: 401, Bearer realm {chosen.realm}" + (
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
            realm=chosen.realm,
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
        realm = self.challenge.realm
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
            url=_redact(ans.url),
            redirected=redirected,
        )
        return None

    # --- time -------------------------------------------------------------------

    def time_checks(self) -> None:
        self.check_clock()
        self.check_tls_cert_expiry()

    def check_clock(self) -> None:
        if self.ping is None:
            if self.server_failed is not None:
                self.blocked("time", "clock", self.server_failed)
            else:
                self.skip("time", "clock", f"{self.server_skip}: no server answer to compare with")
            return
        dates = self.ping.headers.get_list("date")
        sent, received = self.ping_window
        skew = None
        for value in dates:
            skew = clock_skew(value, sent, received)
            if skew is not None:
                break
        if skew is None:
            self.skip("time", "clock", "the server sent no usable Date header")
            return
        text = _describe_skew(skew) if skew else "this machine's clock agrees with the server's"
        details = {"skew_seconds": round(skew, 1), "server_date": dates[0] if dates else None}
        if abs(skew) > SKEW_FAIL:
            self.fail(
                "time",
                "clock",
                "CLOCK_SKEW_ERROR",
                f"{text} (Date: {dates[0]}); expiry checks of certificates and trust data "
                "use this machine's clock",
                "synchronise the clock (timedatectl set-ntp true, or chrony/ntpd); "
                "--at only changes the validation time",
                **details,
            )
        elif abs(skew) > SKEW_WARN:
            self.add(
                "time",
                "clock",
                "warn",
                "CLOCK_SKEW_WARNING",
                f"{text} (Date: {dates[0]})",
                "synchronise the clock (timedatectl set-ntp true, or chrony/ntpd)",
                **details,
            )
        else:
            self.ok("time", "clock", f"{text} (within {SKEW_WARN:g} s)", **details)

    def check_tls_cert_expiry(self) -> None:
        cert = self.server_cert
        if cert is None:
            if self.tls_skipped is not None:
                self.skip("time", "tls-cert-expiry", self.tls_skipped)
            elif self.server_failed is not None:
                self.blocked("time", "tls-cert-expiry", self.server_failed)
            else:
                self.skip("time", "tls-cert-expiry", str(self.server_skip))
            return
        now = datetime.now(UTC)
        left = cert.not_valid_after_utc - now
        horizon = self.cfg.horizon
        if left <= horizon:
            self.add(
                "time",
                "tls-cert-expiry",
                "warn",
                "TLS_CERT_EXPIRING",
                f"the server certificate expires {_iso(cert.not_valid_after_utc)}, in "
                f"{_days(left)} (horizon {_days(horizon)})",
                "renew the server certificate before it expires",
                not_after=_iso(cert.not_valid_after_utc),
            )
            return
        self.ok(
            "time",
            "tls-cert-expiry",
            f"the server certificate is valid for {_days(left)} more "
            f"(until {_iso(cert.not_valid_after_utc)})",
            not_after=_iso(cert.not_valid_after_utc),
        )

    # --- trust ------------------------------------------------------------------

    def trust_checks(self) -> None:
        names = ("verify", "metadata-expiry", "signing-cert-expiry")
        ref = self.target.ref if self.target is not None else None
        if ref is None:
            for name in names:
                self.skip("trust", name, "no image given")
            return
        blockers = [
            (self.pins_ok, "pin-file failed"),
            (self.state_ok, "state failed"),
            (self.trust_dir_ok, "trust-dir failed"),
        ]
        if not self.remote.offline:
            blockers.append(
                (
                    self.server_ok,
                    f"{self.server_failed or self.server_skip} (--offline verifies the cached "
                    "trust data instead)",
                )
            )
        for good, why in blockers:
            if not good:
                self.blocked("trust", "verify", why)
                for name in names[1:]:
                    self.blocked("trust", name, "verify not run")
                return
        col = self.check_verify(ref)
        if col is None:
            for name in names[1:]:
                self.blocked("trust", name, "verify failed")
            return
        self.check_metadata_expiry(col)
        self.check_signing_cert_expiry(col)

    def _options(self, state_dir: Path) -> Options:
        from trustcheck.api import Options
        from trustcheck.local.state import StateStore

        return Options(
            pins=self.pinset,
            state=StateStore(state_dir),
            no_tofu=self.cfg.no_tofu,
            delegation_cert_expiry=self.cfg.delegation_cert_expiry,
        )

    def check_verify(self, ref: ImageRef) -> Collection | None:
        from trustcheck.api import load_collection, resolve_image
        from trustcheck.local.state import StateStore
        from trustcheck.local.trustdir import TrustDir
        from trustcheck.remote.notary import fetch_collection

        gun = ref.gun
        with tempfile.TemporaryDirectory(prefix="trustcheck-doctor-") as tmp:
            scratch = Path(tmp)
            # the state record, copied so that nothing is recorded (no TOFU by the doctor)
            previous = StateStore(self._state_store_dir()).load(gun)
            if previous is not None:
                with StateStore(scratch / "state").session(gun) as (_old, recorder):
                    recorder.state = previous
            options = self._options(scratch / "state")
            try:
                if self.remote.offline:
                    col = load_collection(TrustDir(self.cfg.trust_dir), gun, self.at, options)
                    how = "cached trust data (--offline)"
                else:
                    td = TrustDir(scratch / "trust")
                    _copy_collection(TrustDir(self.cfg.trust_dir), td, gun)
                    assert self.session is not None
                    col = fetch_collection(
                        gun, td, self.at, options, self.remote, self.env, session=self.session
                    )
                    how = f"trust data fetched from {self.server}"
            except TrustcheckError as e:
                self._verify_failed(ref, e)
                return None
        result = resolve_image(ref, col)
        if result.error is not None:
            self._verify_failed(ref, result.error, col)
            return None
        basis = col.trust_basis
        signers = ", ".join(result.signers) or "-"
        text = (
            f"TRUSTED {ref} {result.digest} (role {result.role}; signers: {signers}); "
            f"{how}; root: {basis}"
        )
        details: dict[str, Any] = {
            "trusted": True,
            "digest": result.digest,
            "role": result.role,
            "signers": result.signers,
            "trust_basis": basis,
            "warnings": list(col.warnings),
        }
        if basis == "first use":
            text += " (no pin and nothing recorded: `trustcheck verify` records it; or pin it)"
        if col.warnings:
            text += f"; {_count(len(col.warnings), 'warning')}: " + "; ".join(col.warnings[:3])
        self.ok("trust", "verify", text, **details)
        return col

    def _verify_failed(
        self, ref: ImageRef, e: TrustcheckError, col: Collection | None = None
    ) -> None:
        from trustcheck.errors import CODES as VERIFIER_CODES

        remote = e.code in _REMOTE_CODES
        code = "METADATA_DOWNLOAD_ERROR" if remote else "TRUST_DATA_INVALID"
        summary = VERIFIER_CODES.get(e.code, (1, ""))[1]
        fix = (
            "see docs/errors.md for this code"
            + (f" ({summary})" if summary else "")
            + ("; the server checks above passed, so retry once" if remote else "")
        )
        result = CheckResult(
            "trust",
            "verify",
            "fail",
            code,
            f"NOT TRUSTED {ref}: [{e.code}] {e.message}",
            fix,
            {
                "trusted": False,
                "verifier_code": e.code,
                "role": e.role,
                "warnings": list(col.warnings) if col is not None else [],
            },
            exit_override=e.exit_code,
        )
        self.checks.append(result)

    def check_metadata_expiry(self, col: Collection) -> None:
        horizon = self.cfg.horizon
        soon: list[str] = []
        earliest: tuple[datetime, str] | None = None
        for name, check in col.checks.items():
            if name == "timestamp":  # re-signed by the server every fetch (14 days)
                continue
            if earliest is None or check.expires < earliest[0]:
                earliest = (check.expires, name)
            if check.expires - self.at <= horizon:
                soon.append(f"{name} on {_iso(check.expires)}")
        if soon:
            self.add(
                "trust",
                "metadata-expiry",
                "warn",
                "METADATA_EXPIRING",
                f"expiring within {_days(horizon)}: " + ", ".join(soon),
                "the repository owner must re-sign (notary publish / docker trust sign); "
                "snapshot: `notary witness` or a publish",
                expiring=soon,
            )
            return
        first = f" (first: {earliest[1]} on {_iso(earliest[0])})" if earliest else ""
        self.ok(
            "trust",
            "metadata-expiry",
            f"no role but the timestamp expires within {_days(horizon)}{first}",
        )

    def check_signing_cert_expiry(self, col: Collection) -> None:
        from trustcheck.core.crypto import cert_of

        horizon = self.cfg.horizon
        found: list[tuple[str, x509.Certificate]] = []
        for kid, key in col.root_keys.items():
            cert = cert_of(key)
            if cert is not None:
                found.append((f"root {kid[:12]}", cert))
        for role, meta in col.targets.items():
            for kid, key in meta.delegation_keys.items():
                cert = cert_of(key)
                if cert is not None:
                    found.append((f"delegation key {kid[:12]} (in {role})", cert))
        if not found:
            self.skip("trust", "signing-cert-expiry", "no certificates among the signing keys")
            return
        soon = [
            f"{label} on {_iso(cert.not_valid_after_utc)}"
            for label, cert in found
            if cert.not_valid_after_utc - self.at <= horizon
        ]
        if soon:
            self.add(
                "trust",
                "signing-cert-expiry",
                "warn",
                "SIGNING_CERT_EXPIRING",
                f"expiring within {_days(horizon)}: " + ", ".join(soon),
                "root: rotate the root key (notary key rotate GUN root); delegations: add a "
                "new certificate for the signer (docker trust signer add)",
                expiring=soon,
            )
            return
        earliest = min(found, key=lambda item: item[1].not_valid_after_utc)
        self.ok(
            "trust",
            "signing-cert-expiry",
            f"{_count(len(found), 'certificate')}, none expiring within {_days(horizon)} (first: "
            f"{earliest[0]} on {_iso(earliest[1].not_valid_after_utc)})",
        )


def _policy_loader() -> Callable[[Path], object] | str:
    """``trustcheck.policy.rules.load_policy``, or why there is none (the policy
    module is optional: the doctor works without it)."""
    import importlib
    import importlib.util

    try:
        if importlib.util.find_spec("trustcheck.policy.rules") is None:
            return "this trustcheck has no policy module (trustcheck.policy.rules)"
        module = importlib.import_module("trustcheck.policy.rules")
    except Exception as e:  # a broken optional module is reported, never a traceback
        return f"trustcheck.policy.rules cannot be imported ({type(e).__name__}: {str(e)[:120]})"
    loader = getattr(module, "load_policy", None)
    if not callable(loader):
        return "trustcheck.policy.rules has no load_policy(path) to check the file with"
    return cast("Callable[[Path], object]", loader)


def _origin_of(url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    default = {"https": 443, "http": 80}.get(parts.scheme)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port or default}"


def _redact(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _copy_collection(src: TrustDir, dst: TrustDir, gun: str) -> None:
    """Copy the cached role files of ``gun`` from trust dir ``src`` to ``dst``,
    each read with ``src``'s path and size checks (symlinks out of the trust dir
    are not followed).  Files that are not role files are left out."""
    from trustcheck.local.trustdir import MAX_DOWNLOAD_SIZE

    folder = src.metadata_dir(gun)
    if not folder.is_dir():
        return
    target = dst.metadata_dir(gun)
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            if not name.endswith(".json"):
                continue
            rel = (Path(dirpath) / name).relative_to(folder).as_posix()[: -len(".json")]
            try:
                data = src.read_role(gun, rel, MAX_DOWNLOAD_SIZE)
            except TrustcheckError:
                if rel == "root":
                    raise
                continue
            if data is not None:
                out = target / (rel + ".json")
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data)


# --------------------------------------------------------------------------- entry point


def run_doctor(cfg: DoctorConfig) -> Report:
    """Run every check; never raises for what it diagnoses (a bad IMAGE argument
    is a :class:`~trustcheck.errors.UsageError`)."""
    return _Doctor(cfg).run()
