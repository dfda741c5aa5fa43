"""The doctor's ``time`` section: this machine's clock against the server's
``Date`` header; the server certificate's expiry within the horizon."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from trustcheck.core.timefmt import iso as _iso
from trustcheck.doctor.context import DoctorBase
from trustcheck.doctor.report import _days

__all__ = ["SKEW_FAIL", "SKEW_WARN", "ClockChecks", "clock_skew"]

#: clock skew above this is a warning; above :data:`SKEW_FAIL` a failure
SKEW_WARN = 30.0
SKEW_FAIL = 300.0


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


def _describe_skew(skew: float) -> str:
    direction = "behind" if skew > 0 else "ahead of"
    return f"this machine's clock is {abs(skew):.0f} s {direction} the server's"


class ClockChecks(DoctorBase):
    """The checks of the ``time`` section."""

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
