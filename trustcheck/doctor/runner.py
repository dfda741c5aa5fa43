"""``trustcheck doctor``: why can trust verification not work here?

Ordered checks in four sections, each answering with a status (``ok``,
``warn``, ``fail``, ``skip``), a stable UPPER_CASE code, a one-line
explanation and the fix to try (docs/doctor.md lists every code):

* **local** -- the trust dir and the GUNs it holds; Docker's config.json and
  the credentials (credential helpers are run); the pin file; the state
  record of the GUN; the policy file (when :mod:`trustcheck.policy.load` exists);
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

This module runs the sections in order (:func:`run_doctor`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from trustcheck.doctor.clock import ClockChecks
from trustcheck.doctor.context import DoctorConfig, parse_target
from trustcheck.doctor.local import LocalChecks
from trustcheck.doctor.network import ServiceChecks, _proxy_for
from trustcheck.doctor.report import Report
from trustcheck.doctor.trust import TrustChecks
from trustcheck.errors import UsageError

__all__ = ["run_doctor"]


class _Doctor(LocalChecks, ServiceChecks, ClockChecks, TrustChecks):
    """Every check, run in order."""

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


def run_doctor(cfg: DoctorConfig) -> Report:
    """Run every check; never raises for what it diagnoses (a bad IMAGE argument
    is a :class:`~trustcheck.errors.UsageError`)."""
    return _Doctor(cfg).run()
