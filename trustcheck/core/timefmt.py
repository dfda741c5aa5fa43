"""One way to print a time: RFC 3339 in UTC, whole seconds (``2026-07-25T22:56:32Z``)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso"]


def iso(t: datetime) -> str:
    """``t`` as RFC 3339 UTC with seconds; a naive time is taken as UTC (as
    cryptography's certificate times are)."""
    u = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    return f"{u.year:04d}-{u:%m-%dT%H:%M:%S}Z"
