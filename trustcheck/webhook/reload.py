"""Live reload of ``trustcheck serve --policy`` and ``--config`` (docs/webhook.md,
"Reloading the policy and the config").

Every ``reload_seconds`` the two files are checked; a change is seen through
their path's target (``realpath``: a Kubernetes ConfigMap volume swaps a
``..data`` symlink to a new folder), device, inode, size and mtime, and
confirmed by the SHA-256 of the content (a ``touch`` reloads nothing).

* **Atomic.** The new file is read once, hashed and parsed from those bytes
  in a worker thread; only a policy that parses and validates is swapped in,
  together with a trust cache of its own (:meth:`PolicyReloader.apply`, on the
  event loop, between two reviews' synchronous steps). A review captures the
  policy and the cache when it starts and finishes with them: in-flight reviews
  end with the old policy, the next ones start with the new one.
* **The cache survives what it may.** Entries are keyed by the rule that
  fetched them; an entry moves to each new rule whose trust settings (pins,
  server, offline, no_tofu, archive) are equal, so that a reload does not turn
  every review cold. The rollback floors of every GUN verified since start are
  shared by all generations. The old cache is closed once no review can still
  wait for it (the review deadline, plus a margin).
* **A bad file keeps the old policy.** The error is logged once per content
  (one line, the file and the reason), counted
  (``trustcheck_policy_reloads_total{result="error"}``), flagged
  (``trustcheck_reload_failing{file="policy"} 1``) and shown by ``/readyz``
  (which stays 200: the previous policy is still enforced, and a webhook that
  turns unready over a bad ConfigMap would block the cluster under
  ``failurePolicy: Fail``).
* **Config keys.** :data:`LIVE_CONFIG_KEYS` change live; any other key that
  changed is named in a warning ("needs a restart") and keeps its old value.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from trustcheck.errors import TrustcheckError

if TYPE_CHECKING:
    from trustcheck.policy.model import Policy
    from trustcheck.webhook.app import WebhookServer
    from trustcheck.webhook.cache import TrustCache
    from trustcheck.webhook.config import ServerConfig

__all__ = ["LIVE_CONFIG_KEYS", "PolicyReloader", "Stamp", "Watched", "watch"]

log = logging.getLogger("trustcheck.webhook.review")

#: ServerConfig fields a reload applies; every other field needs a restart
LIVE_CONFIG_KEYS: tuple[str, ...] = (
    "webhook",  # deadline, mutation, updates, annotation, exemptions, max_warnings, ...
    "max_body_bytes",
    "log_reviews",
    "tls_reload_seconds",
    "reload_seconds",
)

#: the config file's key (docs/webhook.md) of each ServerConfig field, for messages
_CONFIG_KEY_NAMES = {
    "webhook": "deadline_seconds/mutation/updates/annotation/exempt/max_warnings",
    "cache": "cache",
    "cache_url": "cache.url",
    "cache_secret": "cache.secret_file",
    "cache_prefix": "cache.prefix",
    "cache_max_entry_bytes": "cache.max_entry_bytes",
    "trust_dir": "trust.trust_dir",
    "state_dir": "trust.state_dir",
    "pins": "trust.pins",
    "no_tofu": "trust.no_tofu",
    "delegation_cert_expiry": "trust.delegation_cert_expiry",
    "remote": "upstream",
    "acr": "acr",
    "log_level": "logging.level",
    "log_reviews": "logging.reviews",
    "limits": "server",
    "continuity_max_entries": "continuity.max_entries",
}


@dataclass(frozen=True, slots=True)
class Stamp:
    """What identifies a file's current version without reading it."""

    real: str
    dev: int
    ino: int
    size: int
    mtime_ns: int


def stamp(path: Path) -> Stamp | None:
    """The file's stamp through every symlink (None when it cannot be read now: a
    ConfigMap swap in progress, a file being replaced)."""
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return None
    return Stamp(real, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class Watched:
    """One watched file: the stamp last seen and the SHA-256 of the content in use."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.stamp = stamp(path)
        self.sha256 = ""
        if self.stamp is not None:
            try:
                self.sha256 = self._hash(self._read())
            except OSError:  # a folder, no permission: the file's reader says so
                self.stamp = None
        #: the SHA-256 of the last content that failed (not retried until it changes)
        self.failed: str | None = None
        self.error: str | None = None

    def _read(self) -> bytes:
        with self.path.open("rb") as f:
            return f.read(self.limit + 1)

    @staticmethod
    def _hash(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    def changed(self) -> tuple[bytes, str] | None:
        """The new content and its SHA-256 when the file changed since it was last
        looked at (and is not the content in use, nor the content that failed)."""
        now = stamp(self.path)
        if now is None or now == self.stamp:
            return None
        try:
            data = self._read()
        except OSError:
            return None  # gone between stat and open: the next round sees it
        self.stamp = now
        sha = self._hash(data)
        if sha == self.sha256 or sha == self.failed:
            return None
        return data, sha


@dataclass(slots=True)
class _Prepared:
    """What a round found: a new policy (with its cache) or config, or the errors."""

    policy: Policy | None = None
    policy_sha: str = ""
    cache: TrustCache | None = None
    policy_error: str | None = None
    config: ServerConfig | None = None
    config_sha: str = ""
    config_error: str | None = None

    def __bool__(self) -> bool:
        return any(
            x is not None for x in (self.policy, self.policy_error, self.config, self.config_error)
        )


class _Metrics:
    def __init__(self, server: WebhookServer) -> None:
        r = server.metrics.registry
        self.policy_reloads = Counter(
            "trustcheck_policy_reloads",
            "Policy file reloads by result (ok: swapped in; error: refused, the previous "
            "policy stays)",
            ["result"],
            registry=r,
        )
        self.config_reloads = Counter(
            "trustcheck_config_reloads",
            "Server config reloads by result (ok: live keys applied; error: refused)",
            ["result"],
            registry=r,
        )
        for c in (self.policy_reloads, self.config_reloads):
            for result in ("ok", "error"):
                c.labels(result)
        self.generation = Gauge(
            "trustcheck_policy_generation",
            "The policy in use: 1 at start, one more at each successful reload",
            registry=r,
        )
        self.info = Gauge(
            "trustcheck_policy_info",
            "The policy in use (value 1), by the SHA-256 of its file",
            ["sha256"],
            registry=r,
        )
        self.failing = Gauge(
            "trustcheck_reload_failing",
            "1 while the newest version of the file does not load (the previous one is "
            "still in use)",
            ["file"],
            registry=r,
        )
        self.failing.labels("policy").set(0)
        self.failing.labels("config").set(0)


def watch(policy_path: Path, config_path: Path | None) -> tuple[Watched, Watched | None]:
    """Watches of ``--policy`` and ``--config``; make them *before* reading the files
    (a change after this is then seen by the first round, at worst as a reload of
    the content already in use)."""
    from trustcheck.policy.load import MAX_POLICY_SIZE

    config = Watched(config_path, 1 << 20) if config_path is not None else None
    return Watched(policy_path, MAX_POLICY_SIZE), config


class PolicyReloader:
    """Watches ``--policy`` and ``--config`` of one :class:`WebhookServer`."""

    def __init__(
        self,
        server: WebhookServer,
        policy_path: Path,
        config_path: Path | None,
        read_config: Callable[[], ServerConfig] | None = None,
        *,
        watched: tuple[Watched, Watched | None] | None = None,
    ) -> None:
        """``watched``: the two files' watches, made before the server read them (see
        :func:`watch`), so that a change between that read and this call is seen."""
        self.server = server
        policy_watch, config_watch = (
            watched if watched is not None else watch(policy_path, config_path)
        )
        self.policy_file = policy_watch
        self.config_file = config_watch if read_config is not None else None
        self.read_config = read_config
        self.generation = 1
        self.metrics = _Metrics(server)
        self.metrics.generation.set(1)
        self.metrics.info.labels(self.policy_file.sha256).set(1)
        #: old caches waiting to be closed: their timer and the closing call
        self._closing: dict[asyncio.TimerHandle, Callable[[], None]] = {}

    # --- one round -------------------------------------------------------------------

    def prepare(self) -> _Prepared:
        """Look at both files; parse what changed (in a worker thread: no event loop)."""
        out = _Prepared()
        got = self.policy_file.changed()
        if got is not None:
            data, sha = got
            out.policy_sha = sha
            try:
                from trustcheck.policy.load import policy_from_bytes

                policy = policy_from_bytes(data, self.policy_file.path)
                out.cache = self._successor(policy)
                out.policy = policy
            except TrustcheckError as e:
                out.policy_error = f"[{e.code}] {e.message}"
            except Exception as e:  # a bug: the old policy stays, and it is said
                out.policy_error = f"[internal-error] {type(e).__name__}: {e}"
        if self.config_file is not None and self.read_config is not None:
            got = self.config_file.changed()
            if got is not None:
                out.config_sha = got[1]
                try:
                    out.config = self.read_config()
                except TrustcheckError as e:
                    out.config_error = f"[{e.code}] {e.message}"
                except Exception as e:
                    out.config_error = f"[internal-error] {type(e).__name__}: {e}"
        return out

    def apply(self, p: _Prepared) -> None:
        """Swap in what :meth:`prepare` made (on the event loop: atomic for reviews)."""
        if p.policy is not None and p.cache is not None:
            self._swap_policy(p.policy, p.cache, p.policy_sha)
        elif p.policy_error is not None:
            self._policy_failed(p.policy_error, p.policy_sha)
        if p.config is not None:
            self._swap_config(p.config, p.config_sha)
        elif p.config_error is not None:
            self._config_failed(p.config_error, p.config_sha)

    async def run(self, interval: Callable[[], float]) -> None:
        """Check every ``interval()`` seconds (read each round: the interval is a live
        key) until cancelled; a round that fails unexpectedly is logged."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(0.05, interval()))
            try:
                prepared = await loop.run_in_executor(None, self.prepare)
                if prepared:
                    self.apply(prepared)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("checking the policy and config files failed")

    def close(self) -> None:
        """Close every old cache still waiting for its reviews to end."""
        for handle, close in list(self._closing.items()):
            handle.cancel()
            close()
        self._closing.clear()

    # --- the policy ------------------------------------------------------------------

    def _successor(self, policy: Policy) -> TrustCache:
        """A trust cache for ``policy``: the server's settings, this process's rollback
        floors, and every fresh entry whose rule has the same trust settings."""
        old = self.server.cache
        make = self.server.make_cache
        if make is None:
            raise RuntimeError("this server cannot build a trust cache for a new policy")
        new = make(policy)
        old_rules = old.policy.rules
        same: dict[int, list[int]] = {}
        for i, rule in enumerate(old_rules):
            for j, candidate in enumerate(policy.rules):
                if rule.action == candidate.action == "verify" and rule.trust == candidate.trust:
                    same.setdefault(i, []).append(j)
        trusted = getattr(old, "_trusted", None)
        entries = getattr(old, "_entries", None)
        lock = getattr(old, "_lock", None)
        if trusted is None or entries is None or lock is None:
            return new  # a cache without these: nothing to carry over (cold start)
        with lock:
            new._trusted = trusted  # one set of floors for every generation
            moved = [
                ((j, gun), entry) for (i, gun), entry in entries.items() for j in same.get(i, ())
            ]
        with new._lock:
            for key, entry in moved:
                new._entries[key] = entry
        return new

    def _swap_policy(self, policy: Policy, cache: TrustCache, sha: str) -> None:
        server = self.server
        old_cache, old_sha = server.cache, self.policy_file.sha256
        server.policy, server.cache = policy, cache  # one step: no await in between
        self.generation += 1
        self.policy_file.sha256 = sha
        self.policy_file.failed = None
        self.policy_file.error = None
        m = self.metrics
        m.policy_reloads.labels("ok").inc()
        m.generation.set(self.generation)
        with contextlib.suppress(KeyError):
            m.info.remove(old_sha)
        m.info.labels(sha).set(1)
        m.failing.labels("policy").set(0)
        log.info(
            "policy reloaded",
            extra={
                "fields": {
                    "policy": policy.source,
                    "sha256": sha,
                    "generation": self.generation,
                    "rules": len(policy.rules),
                    "cache_entries_kept": len(cache),
                }
            },
        )
        self._close_later(old_cache)

    def _close_later(self, cache: TrustCache) -> None:
        """Close ``cache`` once no review can wait for it any more: a review waits for
        collections at most its deadline (plus a margin for its last steps)."""
        loop = asyncio.get_running_loop()
        delay = self.server.config.webhook.deadline + 5.0
        handle: asyncio.TimerHandle

        def close() -> None:
            self._closing.pop(handle, None)
            cache.close()

        handle = loop.call_later(delay, close)
        self._closing[handle] = close

    def _policy_failed(self, error: str, sha: str) -> None:
        f = self.policy_file
        f.failed, f.error = sha, error
        self.metrics.policy_reloads.labels("error").inc()
        self.metrics.failing.labels("policy").set(1)
        log.error(
            "the new policy file does not load; still enforcing the previous policy",
            extra={
                "fields": {
                    "policy": str(f.path),
                    "sha256": sha,
                    "error": error[:1000],
                    "generation": self.generation,
                    "policy_sha256": f.sha256,
                }
            },
        )

    # --- the config ------------------------------------------------------------------

    def _swap_config(self, new: ServerConfig, sha: str) -> None:
        server = self.server
        old = server.config
        live = {k: getattr(new, k) for k in LIVE_CONFIG_KEYS if hasattr(new, k)}
        restart = [
            _CONFIG_KEY_NAMES.get(f.name, f.name)
            for f in dataclasses.fields(old)
            if f.name not in LIVE_CONFIG_KEYS and getattr(old, f.name) != getattr(new, f.name)
        ]
        changed = [k for k, v in live.items() if getattr(old, k) != v]
        server.config = dataclasses.replace(old, **live)
        f = self.config_file
        assert f is not None
        f.sha256, f.failed, f.error = sha, None, None
        self.metrics.config_reloads.labels("ok").inc()
        self.metrics.failing.labels("config").set(0)
        fields: dict[str, Any] = {
            "config": str(f.path),
            "sha256": sha,
            "applied": changed,
        }
        if restart:
            fields["needs_restart"] = restart
            log.warning(
                "config reloaded; some changed keys apply only after a restart and keep "
                "their old values until then",
                extra={"fields": fields},
            )
        else:
            log.info("config reloaded", extra={"fields": fields})

    def _config_failed(self, error: str, sha: str) -> None:
        f = self.config_file
        assert f is not None
        f.failed, f.error = sha, error
        self.metrics.config_reloads.labels("error").inc()
        self.metrics.failing.labels("config").set(1)
        log.error(
            "the new config file does not load; still using the previous config",
            extra={"fields": {"config": str(f.path), "sha256": sha, "error": error[:1000]}},
        )

    # --- /readyz ---------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        """What ``/readyz`` shows of the reloads."""
        doc: dict[str, object] = {
            "policy_generation": self.generation,
            "policy_sha256": self.policy_file.sha256,
            "checked_every_seconds": self.server.config.reload_seconds,
        }
        if self.policy_file.error is not None:
            doc["policy_error"] = self.policy_file.error
        if self.config_file is not None and self.config_file.error is not None:
            doc["config_error"] = self.config_file.error
        return doc
