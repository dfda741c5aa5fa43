"""The one internal failure of a signature check: becomes an invalid Evidence."""

from __future__ import annotations

from trustcheck.errors import ErrorCode

__all__ = ["Fail"]


class Fail(Exception):
    """One signature did not verify: its code (docs/errors.md) and one line."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        identity: str | None = None,
        issuer: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        #: who signed, when it is known though the signature does not count (a keyless
        #: signer that is not the required one): reports say who it was
        self.identity = identity
        self.issuer = issuer
