"""Verified trust collections for the admission webhook.

:class:`TrustCache` keeps, per ``(rule index, GUN)``, the collection the rule's
trust settings verified (or the error), so that a warm review decides without
any request:

* **TTL** (``ttl``), never past the earliest ``expires`` of the verified roles;
  an entry in the last fifth of its life is refreshed in the background while
  it is still served.
* **Negative cache**: errors are kept for ``negative_ttl`` (a failing or
  unsigned repository is not fetched again for every Pod of a ReplicaSet).
* **Single flight**: concurrent reviews needing the same key share one fetch
  (a :class:`concurrent.futures.Future`); the fetch runs in a bounded thread
  pool and finishes into the cache even when the review that asked for it has
  passed its deadline.
* **Bounded**: at most ``max_entries`` entries, least recently used evicted.

Optional **shared cache** (:class:`SharedCache`, Redis in production): the raw
metadata bytes of each verified collection, per Notary server and GUN, so that
replicas fetch once. What is read back is never trusted as a verdict:

1. every entry carries an HMAC-SHA256 over its server, GUN, fetch time and
   files, keyed by a secret only the replicas hold; an entry with a wrong MAC,
   for another server or GUN, or older than ``ttl`` is ignored (a Redis writer
   without the key cannot replay old, still-unexpired metadata);
2. the bytes are then verified locally, exactly as fetched bytes are (root and
   its pins, thresholds, hashes, expiry at this replica's clock, rollback
   against the highest versions this replica has seen and its state store);
   any failure falls back to a fetch from the Notary server.

Replicas also take a short lock per entry (``SET NX``) so that a cold GUN is
fetched by one replica while the others wait a little for its entry. Redis
being down only costs the fetches it would have saved.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from .errors import NotTrusted, TrustcheckError, UsageError

if TYPE_CHECKING:
    from .api import Options
    from .policy import Policy, Rule
    from .remote import HttpSession
    from .remoteconfig import RemoteConfig
    from .trustdir import TrustDir
    from .verify import Collection

__all__ = [
    "CacheSettings",
    "MemoryStore",
    "RedisStore",
    "SharedCache",
    "SharedStore",
    "TrustCache",
    "verify_files",
]

log = logging.getLogger("trustcheck.webhook")

Key = tuple[int, str]
#: ``fetch(rule, gun, at)``: the verified collection, or raises TrustcheckError
Fetcher = Callable[["Rule", str, datetime], "Collection"]
#: ``events(name, label)``: hit, miss, negative_hit, shared_hit, shared_miss,
#: shared_rejected, shared_error, upstream_error (label: the code), refresh
Events = Callable[[str, str], None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _no_events(name: str, label: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class CacheSettings:
    ttl: float = 60.0
    negative_ttl: float = 10.0
    max_entries: int = 1000
    #: fetches at once (threads)
    workers: int = 8


@dataclass(slots=True)
class _Entry:
    value: Collection | TrustcheckError
    expires: float
    refresh_at: float


@dataclass(slots=True)
class _Trusted:
    """What this process verified last for a GUN: rollback floors for shared bytes."""

    root: bytes
    versions: dict[str, int] = field(default_factory=dict)


# ----------------------------------------------------------------------------- local verification


class _BytesSource:
    """A :class:`trustcheck.verify.Source` over role bytes held in memory."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self.files = files

    def read(self, role: str, cap: int) -> bytes | None:
        raw = self.files.get(role)
        if raw is not None and len(raw) > cap:
            raise NotTrusted(
                "file-too-large",
                f"{role}.json from the shared cache is larger than its cap of {cap} bytes",
                role=role,
            )
        return raw


def _files_of(col: Collection) -> dict[str, bytes]:
    files = {
        "root": col.root_raw,
        "timestamp": col.timestamp.raw,
        "snapshot": col.snapshot.raw,
    }
    files.update((name, meta.raw) for name, meta in col.targets.items())
    return files


def verify_files(
    gun: str,
    files: Mapping[str, bytes],
    at: datetime,
    options: Options,
    previous_root: bytes | None = None,
    floors: Mapping[str, int] | None = None,
) -> Collection:
    """Verify role bytes from memory as fetched bytes are verified: the pins and
    state of ``options``, plus ``previous_root`` and version ``floors`` this
    process trusted before (the state store's, when there is one, come first)."""
    from .verify import TrustPolicy, verify_collection

    policy = TrustPolicy(
        pin=options.pins.lookup(gun) if options.pins is not None else None,
        no_tofu=options.no_tofu or (options.pins is not None and options.pins.no_tofu),
        delegation_cert_expiry=options.delegation_cert_expiry,
        previous_root=previous_root,
        min_versions=dict(floors or {}),
    )
    source = _BytesSource(files)
    if options.state is None:
        return verify_collection(gun, source, at, policy)
    store = options.state
    with store.session(gun) as (previous, recorder):
        if previous is not None:
            if previous.root is not None:
                policy.previous_root = previous.root
            merged = dict(policy.min_versions)
            for role, version in previous.versions.items():
                merged[role] = max(version, merged.get(role, 0))
            policy.min_versions = merged
        col = verify_collection(gun, source, at, policy)
        versions = {name: check.version for name, check in col.checks.items()}
        recorder.state = store.record(previous, gun, col.root_raw, versions)
    return col


# ----------------------------------------------------------------------------- shared stores


class SharedStore(Protocol):
    """The few operations the shared cache needs (Redis, or memory in tests)."""

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl: float) -> None: ...

    def acquire(self, key: str, ttl: float) -> bool: ...

    def release(self, key: str) -> None: ...

    def ping(self) -> bool: ...


class MemoryStore:
    """A :class:`SharedStore` in this process (tests; one replica)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.data: dict[str, tuple[bytes, float]] = {}
        self.clock = clock
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            found = self.data.get(key)
            if found is None or found[1] <= self.clock():
                return None
            return found[0]

    def set(self, key: str, value: bytes, ttl: float) -> None:
        with self._lock:
            self.data[key] = (value, self.clock() + ttl)

    def acquire(self, key: str, ttl: float) -> bool:
        with self._lock:
            found = self.data.get(key)
            if found is not None and found[1] > self.clock():
                return False
            self.data[key] = (b"1", self.clock() + ttl)
            return True

    def release(self, key: str) -> None:
        with self._lock:
            self.data.pop(key, None)

    def ping(self) -> bool:
        return True


class RedisStore:
    """A :class:`SharedStore` on Redis (``redis://`` or ``rediss://`` URL).

    Short socket timeouts: a slow or dead Redis must not eat the review's
    deadline. After a failure Redis is skipped for ``backoff`` seconds.
    """

    def __init__(self, url: str, *, timeout: float = 0.5, backoff: float = 5.0) -> None:
        try:
            import redis
        except ImportError as e:
            raise UsageError(
                "webhook-config-invalid",
                "--cache redis://... needs the redis client: pip install 'trustcheck[redis]'",
            ) from e
        try:
            self._redis = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        except ValueError as e:
            raise UsageError("webhook-config-invalid", f"cache URL {_redact(url)}: {e}") from e
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._backoff = backoff
        self._down_until = 0.0
        self._owner = base64.b32encode(os.urandom(10)).decode()

    def _usable(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, e: BaseException) -> None:
        self._down_until = time.monotonic() + self._backoff
        log.warning("shared cache unavailable for %gs: %s", self._backoff, e)

    def get(self, key: str) -> bytes | None:
        if not self._usable():
            raise ConnectionError("the shared cache failed recently")
        try:
            value = self._redis.get(key)
        except self._errors as e:
            self._failed(e)
            raise ConnectionError(str(e)) from e
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, ttl: float) -> None:
        if not self._usable():
            raise ConnectionError("the shared cache failed recently")
        try:
            self._redis.set(key, value, px=max(1, int(ttl * 1000)))
        except self._errors as e:
            self._failed(e)
            raise ConnectionError(str(e)) from e

    def acquire(self, key: str, ttl: float) -> bool:
        if not self._usable():
            return True  # no coordination without Redis: fetch
        try:
            return bool(self._redis.set(key, self._owner, nx=True, px=max(1, int(ttl * 1000))))
        except self._errors as e:
            self._failed(e)
            return True

    def release(self, key: str) -> None:
        try:
            if self._redis.get(key) == self._owner.encode():
                self._redis.delete(key)
        except self._errors as e:
            self._failed(e)

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except self._errors:
            return False

    def close(self) -> None:
        self._redis.close()


def _redact(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password:
        return url.replace(parts.password, "***")
    return url


_MAC_CONTEXT = b"trustcheck shared trust-data cache v1\0"


class SharedCache:
    """Verified raw metadata per (Notary server, GUN) in a :class:`SharedStore`,
    authenticated with HMAC-SHA256 (see the module docstring)."""

    def __init__(
        self,
        store: SharedStore,
        secret: bytes,
        ttl: float,
        *,
        prefix: str = "trustcheck",
        wall: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < 16:
            raise UsageError(
                "webhook-config-invalid",
                "the shared cache secret must be at least 16 bytes (e.g. 32 random bytes, "
                "base64): it authenticates what replicas read back from the cache",
            )
        self.store = store
        self.secret = secret
        self.ttl = ttl
        self.prefix = prefix
        self.wall = wall

    def key(self, server: str, gun: str) -> str:
        h = hashlib.sha256(f"{server}\0{gun}".encode()).hexdigest()[:40]
        return f"{self.prefix}:v1:trust:{h}"

    def lock_key(self, server: str, gun: str) -> str:
        return self.key(server, gun).replace(":trust:", ":lock:")

    def _mac(self, payload: bytes) -> str:
        return hmac.new(self.secret, _MAC_CONTEXT + payload, hashlib.sha256).hexdigest()

    def encode(self, server: str, gun: str, files: Mapping[str, bytes], fetched: float) -> bytes:
        import orjson

        payload = orjson.dumps(
            {
                "server": server,
                "gun": gun,
                "fetched": fetched,
                "files": {k: base64.b64encode(v).decode() for k, v in sorted(files.items())},
            }
        )
        return b"tc1." + self._mac(payload).encode() + b"." + payload

    def decode(self, server: str, gun: str, value: bytes) -> dict[str, bytes] | None:
        """The files of an entry, or None (with the reason logged) when the entry is
        not authentic, not for ``server``/``gun``, or older than the TTL."""
        import orjson

        magic, _, rest = value.partition(b".")
        mac, _, payload = rest.partition(b".")
        if magic != b"tc1" or not hmac.compare_digest(mac, self._mac(payload).encode()):
            log.warning("shared cache entry for %s rejected: bad MAC", gun)
            return None
        try:
            doc = orjson.loads(payload)
            if doc["server"] != server or doc["gun"] != gun:
                log.warning("shared cache entry for %s rejected: it is for another GUN", gun)
                return None
            age = self.wall() - float(doc["fetched"])
            if age > self.ttl or age < -30:
                return None
            return {
                str(k): base64.b64decode(v, validate=True) for k, v in doc["files"].items()
            }
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, binascii.Error):
            log.warning("shared cache entry for %s rejected: malformed", gun)
            return None

    def get(self, server: str, gun: str) -> dict[str, bytes] | None:
        value = self.store.get(self.key(server, gun))
        return self.decode(server, gun, value) if value is not None else None

    def put(self, server: str, gun: str, col: Collection) -> None:
        self.store.set(
            self.key(server, gun), self.encode(server, gun, _files_of(col), self.wall()), self.ttl
        )


# ----------------------------------------------------------------------------- the cache


class _Upstream:
    """The default fetcher: each rule's trust settings, one HTTP session per rule."""

    def __init__(self, trust_dir: TrustDir, options: Options, remote: RemoteConfig) -> None:
        self.trust_dir = trust_dir
        self.options = options
        self.remote = remote
        self._sessions: dict[int, HttpSession] = {}
        self._lock = threading.Lock()

    def server(self, rule: Rule, gun: str) -> str | None:
        """The Notary server ``rule`` fetches ``gun`` from (None: offline)."""
        from .policy import rule_remote
        from .remote import select_server

        cfg = rule_remote(rule, self.remote)
        if cfg is None or cfg.offline:
            return None
        return select_server(gun, cfg)

    def options_for(self, rule: Rule) -> Options:
        from .policy import rule_options

        return rule_options(rule, self.options)

    def _session(self, rule: Rule) -> HttpSession:
        from .policy import rule_remote
        from .remote import HttpSession

        with self._lock:
            found = self._sessions.get(rule.index)
            if found is None:
                cfg = rule_remote(rule, self.remote)
                assert cfg is not None
                found = HttpSession(cfg)
                self._sessions[rule.index] = found
            return found

    def __call__(self, rule: Rule, gun: str, at: datetime) -> Collection:
        from .api import load_collection
        from .fetch import fetch_collection
        from .policy import rule_remote

        cfg = rule_remote(rule, self.remote)
        opts = self.options_for(rule)
        if cfg is None or cfg.offline:
            return load_collection(self.trust_dir, gun, at, opts)
        return fetch_collection(gun, self.trust_dir, at, opts, cfg, session=self._session(rule))

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for s in sessions:
            s.close()


class TrustCache:
    """Verified collections per (rule index, GUN); see the module docstring."""

    def __init__(
        self,
        policy: Policy,
        trust_dir: TrustDir,
        options: Options,
        remote: RemoteConfig,
        settings: CacheSettings | None = None,
        *,
        shared: SharedCache | None = None,
        fetch: Fetcher | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utcnow,
        events: Events | None = None,
        shared_wait: float = 5.0,
    ) -> None:
        self.policy = policy
        self.settings = settings if settings is not None else CacheSettings()
        self.upstream = _Upstream(trust_dir, options, remote)
        self.fetch: Fetcher = fetch if fetch is not None else self.upstream
        self.shared = shared
        self.clock = clock
        self.now = now
        self.events: Events = events if events is not None else _no_events
        self.shared_wait = shared_wait
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._inflight: dict[Key, Future[Collection | TrustcheckError]] = {}
        self._trusted: dict[str, _Trusted] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=self.settings.workers, thread_name_prefix="trustcheck-cache"
        )
        self._closed = False

    # --- reading ---------------------------------------------------------------------

    def peek(self, key: Key) -> Collection | TrustcheckError | None:
        """The cached answer for ``key`` if it is fresh (no I/O, no event)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.expires <= self.clock():
                return None
            return entry.value

    def lookup(self, keys: Iterable[Key]) -> tuple[
        dict[Key, Collection | TrustcheckError], dict[Key, Future[Collection | TrustcheckError]]
    ]:
        """Fresh answers for ``keys``, and a (shared) future for each of the others."""
        found: dict[Key, Collection | TrustcheckError] = {}
        waiting: dict[Key, Future[Collection | TrustcheckError]] = {}
        refresh: list[Key] = []
        now = self.clock()
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is not None and entry.expires > now:
                    self._entries.move_to_end(key)
                    found[key] = entry.value
                    if entry.refresh_at <= now and key not in self._inflight:
                        refresh.append(key)
                    continue
                future = self._inflight.get(key)
                if future is None:
                    future = self._start(key)
                waiting[key] = future
        for value in found.values():
            self.events("negative_hit" if isinstance(value, TrustcheckError) else "hit", "")
        for _ in waiting:
            self.events("miss", "")
        if refresh:
            with self._lock:
                for key in refresh:
                    if key not in self._inflight:
                        self.events("refresh", "")
                        self._start(key)
        return found, waiting

    def get(self, key: Key, timeout: float | None = None) -> Collection | TrustcheckError:
        """The answer for ``key``, fetching it if needed (blocking; for tools and tests)."""
        found, waiting = self.lookup([key])
        if key in found:
            return found[key]
        return waiting[key].result(timeout)

    # --- filling ---------------------------------------------------------------------

    def _start(self, key: Key) -> Future[Collection | TrustcheckError]:
        """Submit the fetch of ``key`` (the lock is held)."""
        if self._closed:
            future: Future[Collection | TrustcheckError] = Future()
            future.set_exception(RuntimeError("the trust cache is closed"))
            return future
        future = self._pool.submit(self._load, key)
        self._inflight[key] = future
        return future

    def _load(self, key: Key) -> Collection | TrustcheckError:
        index, gun = key
        try:
            rule = self.policy.rules[index]
            at = self.now()
            try:
                value: Collection | TrustcheckError = self._obtain(rule, gun, at)
            except TrustcheckError as e:
                self.events("upstream_error", e.code)
                value = e
            self._store(key, value, at)
            return value
        except BaseException:
            with self._lock:
                self._inflight.pop(key, None)
            raise

    def _store(self, key: Key, value: Collection | TrustcheckError, at: datetime) -> None:
        now = self.clock()
        if isinstance(value, TrustcheckError):
            life = self.settings.negative_ttl
            refresh = now + life  # errors are not refreshed ahead
        else:
            life = self.settings.ttl
            if value.checks:
                earliest = min(c.expires for c in value.checks.values())
                life = max(0.0, min(life, (earliest - at).total_seconds()))
            refresh = now + life * 0.8
            self._remember(key[1], value)
        with self._lock:
            self._inflight.pop(key, None)
            if life > 0:
                self._entries[key] = _Entry(value, now + life, refresh)
                self._entries.move_to_end(key)
                while len(self._entries) > self.settings.max_entries:
                    self._entries.popitem(last=False)

    def _remember(self, gun: str, col: Collection) -> None:
        versions = {name: check.version for name, check in col.checks.items()}
        with self._lock:
            known = self._trusted.get(gun)
            if known is not None:
                for role, v in known.versions.items():
                    versions[role] = max(v, versions.get(role, 0))
            self._trusted[gun] = _Trusted(col.root_raw, versions)
            while len(self._trusted) > self.settings.max_entries:
                self._trusted.pop(next(iter(self._trusted)))

    def _obtain(self, rule: Rule, gun: str, at: datetime) -> Collection:
        shared = self.shared
        server = self.upstream.server(rule, gun) if shared is not None else None
        if shared is None or server is None:
            return self.fetch(rule, gun, at)
        col = self._from_shared(shared, rule, server, gun, at)
        if col is not None:
            return col
        lock = shared.lock_key(server, gun)
        try:
            mine = shared.store.acquire(lock, self.shared_wait)
        except ConnectionError:
            mine = True
        if not mine:
            # another replica is fetching it: wait a little for its entry
            end = time.monotonic() + self.shared_wait
            while time.monotonic() < end:
                time.sleep(0.02)
                col = self._from_shared(shared, rule, server, gun, at, quiet=True)
                if col is not None:
                    return col
        try:
            col = self.fetch(rule, gun, at)
            try:
                shared.put(server, gun, col)
            except ConnectionError:
                self.events("shared_error", "")
            return col
        finally:
            if mine:
                with contextlib.suppress(ConnectionError):
                    shared.store.release(lock)

    def _from_shared(
        self,
        shared: SharedCache,
        rule: Rule,
        server: str,
        gun: str,
        at: datetime,
        *,
        quiet: bool = False,
    ) -> Collection | None:
        try:
            value = shared.store.get(shared.key(server, gun))
        except ConnectionError:
            self.events("shared_error", "")
            return None
        if value is None:
            if not quiet:
                self.events("shared_miss", "")
            return None
        files = shared.decode(server, gun, value)
        if files is None:
            self.events("shared_rejected", "")
            return None
        with self._lock:
            known = self._trusted.get(gun)
        try:
            col = verify_files(
                gun,
                files,
                at,
                self.upstream.options_for(rule),
                previous_root=known.root if known is not None else None,
                floors=known.versions if known is not None else None,
            )
        except TrustcheckError as e:
            log.warning(
                "shared cache entry for %s did not verify ([%s] %s); fetching from %s",
                gun,
                e.code,
                e.message,
                server,
            )
            self.events("shared_rejected", e.code)
            return None
        self.events("shared_hit", "")
        return col

    # --- housekeeping ----------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.upstream.close()
