"""The doctor's results: statuses, sections, the code registry, one check's
result and the whole report (JSON and the human rendering).

Exit codes: 0 when nothing failed (warnings included), else the largest exit
code of the failed checks -- 1 for connectivity and trust failures, 2 for bad
configuration or input (:data:`CODES`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from trustcheck import __version__

__all__ = ["CODES", "SECTIONS", "STATUSES", "CheckResult", "Report"]

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


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def _days(delta: timedelta) -> str:
    days = delta.total_seconds() / 86400
    if abs(days) < 1:
        return f"{delta.total_seconds() / 3600:.1f} hours"
    return f"{days:.0f} days"
