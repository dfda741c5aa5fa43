"""The one internal failure of a signature check: becomes an invalid Evidence."""

from __future__ import annotations

from trustcheck.errors import ErrorCode

__all__ = ["Fail"]


class Fail(Exception):
    """One signature did not verify: its code (docs/errors.md) and one line."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
