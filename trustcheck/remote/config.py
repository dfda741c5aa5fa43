"""How to reach Notary servers and registries: a plain settings object.

Kept apart from :mod:`trustcheck.remote.http` so that commands can build it without
importing the HTTP stack (``ssl``, httpx) when they run ``--offline``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trustcheck.errors import ErrorCode, UsageError

__all__ = ["RemoteConfig"]


@dataclass
class RemoteConfig:
    """How to reach Notary servers and registries (the CLI fills it from options)."""

    #: --server; else DOCKER_CONTENT_TRUST_SERVER; else notary.docker.io for
    #: docker.io; else https://<registry host>
    server: str | None = None
    #: allow http:// servers, registries and token realms (--unsafe-http)
    unsafe_http: bool = False
    #: extra CA bundle (--tls-ca), on top of the system CAs and Docker's tls dir
    tls_ca: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    username: str | None = None
    #: read by the CLI from stdin or an environment variable, never from argv
    password: str | None = field(default=None, repr=False)
    #: default $DOCKER_CONFIG or ~/.docker (config.json, tls/<host>/)
    docker_config: Path | None = None
    #: seconds per request (connect, each read, and the whole body)
    timeout: float = 10.0
    #: seconds per collection (every request of one GUN, retries included)
    total_timeout: float = 60.0
    #: extra attempts for GET/HEAD after a network error, timeout, 5xx or 429
    retries: int = 2
    #: collections fetched at once by fetch_many
    concurrency: int = 8
    #: do not contact any server: verify the trust dir as it is
    offline: bool = False
    #: registry base URL for registry_digest (default https://<registry host>,
    #: https://registry-1.docker.io for docker.io)
    registry: str | None = None

    def validate(self) -> None:
        """Refuse values that cannot work (``invalid-argument``)."""
        checks: list[tuple[bool, str]] = [
            (self.timeout > 0, f"the request timeout must be positive, got {self.timeout}"),
            (
                self.total_timeout > 0,
                f"the total timeout must be positive, got {self.total_timeout}",
            ),
            (self.retries >= 0, f"retries must not be negative, got {self.retries}"),
            (self.concurrency >= 1, f"concurrency must be at least 1, got {self.concurrency}"),
            (
                (self.client_cert is None) == (self.client_key is None),
                "a client certificate needs its key and a key its certificate",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(ErrorCode.INVALID_ARGUMENT, message)
