"""What the doctor is asked (:class:`DoctorConfig`, :func:`parse_target`) and
the state its checks share (:class:`DoctorBase`: the facts gathered along the
way and the helpers that record a result).  The check sections are mixins of
:class:`DoctorBase` (local, network, clock, trust); :mod:`.runner` combines them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from trustcheck.doctor.report import CheckResult
from trustcheck.errors import UsageError

if TYPE_CHECKING:
    from cryptography import x509

    from trustcheck.core.reference import ImageRef
    from trustcheck.local.pinfile import PinSet
    from trustcheck.remote.auth import Challenge, Credentials
    from trustcheck.remote.config import RemoteConfig
    from trustcheck.remote.http import Answer, HttpSession

__all__ = ["DEFAULT_HORIZON", "DoctorBase", "DoctorConfig", "Target", "parse_target"]

DEFAULT_HORIZON = timedelta(days=30)


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


# --------------------------------------------------------------------------- shared state


class DoctorBase:
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

    def _state_store_dir(self) -> Path:
        from trustcheck.local.state import default_state_dir

        if self.cfg.state_dir is not None:
            return self.cfg.state_dir
        return default_state_dir(self.env, self.home)
