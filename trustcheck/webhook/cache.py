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

0. at most ``max_bytes + 1`` bytes of a value are ever read (``GETRANGE``): a
   huge junk value costs nothing;
1. every entry carries an HMAC-SHA256 over its server, GUN, fetch time and
   files, keyed by a secret only the replicas hold; an entry with a wrong MAC,
   for another server or GUN, or older than ``ttl`` is ignored (a Redis writer
   without the key cannot replay old, still-unexpired metadata);
2. the bytes are then verified locally, exactly as fetched bytes are: the
   trusted root is this replica's (state store, trust dir ``root.json``, the
   last one verified), pins, thresholds, hashes, expiry at this replica's
   clock, rollback against the highest versions this replica has seen (kept
   for every GUN, never evicted), the trust dir's cached versions and the
   state store; verified bytes are written back to the trust dir like a
   fetch's. Any failure falls back to a fetch from the Notary server;
3. a shared hit lives ``ttl`` minus its age: revocation takes at most ``ttl``.

Replicas also take a short lock per entry (``SET NX PX`` with a random owner
token, released by compare-and-delete) so that a cold GUN is fetched by one
replica while the others wait a little for its entry: at most
``shared_wait`` from the lookup's start, in a pool of its own (never a fetch
worker), and not at all for a lock no replica would have written. Redis being
down only costs the fetches it would have saved; an error about one key
(``WRONGTYPE``) affects that key only.
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
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from trustcheck.errors import NotTrusted, TrustcheckError, UsageError

if TYPE_CHECKING:
    from trustcheck.api import Options
    from trustcheck.core.verify import Collection
    from trustcheck.local.trustdir import TrustDir
    from trustcheck.policy.model import Policy, Rule
    from trustcheck.remote.config import RemoteConfig
    from trustcheck.remote.http import HttpSession

__all__ = [
    "CacheSettings",
    "MemoryStore",
    "RedisStore",
    "SharedCache",
    "SharedStore",
    "TrustCache",
    "verify_files",
]

log = logging.getLogger("trustcheck.webhook.review")

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
    """A :class:`trustcheck.core.verify.Source` over role bytes held in memory."""

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


def _trust_dir_view(trust_dir: TrustDir, gun: str) -> tuple[bytes | None, dict[str, int]]:
    """What a fetch starts from in the trust dir: its root.json (notary's trusted
    root) and, as rollback floors, the versions of the cached top-level roles
    whose signatures still verify against it (notary's oldBuilder)."""
    from trustcheck.core.model import (
        SignedMeta,
        parse_root,
        parse_snapshot,
        parse_targets,
        parse_timestamp,
    )
    from trustcheck.core.verify import verify_signatures
    from trustcheck.core.roles import MAX_DOWNLOAD_SIZE

    try:
        root_raw = trust_dir.read_role(gun, "root", MAX_DOWNLOAD_SIZE)
    except TrustcheckError:
        return None, {}
    floors: dict[str, int] = {}
    if root_raw is None:
        return None, floors
    try:
        root = parse_root(root_raw)
    except (TrustcheckError, KeyError, ValueError):
        return root_raw, floors
    for role in ("timestamp", "snapshot", "targets"):
        try:
            raw = trust_dir.read_role(gun, role, MAX_DOWNLOAD_SIZE)
            if raw is None or role not in root.roles:
                continue
            meta: SignedMeta
            if role == "timestamp":
                meta = parse_timestamp(raw)
            elif role == "snapshot":
                meta = parse_snapshot(raw)
            else:
                meta = parse_targets(role, raw)
            rk = root.roles[role]
            verify_signatures(meta, root.keys, rk.keyids, rk.threshold)
        except (TrustcheckError, KeyError, ValueError):
            continue
        floors[role] = meta.version
    return root_raw, floors


def verify_files(
    gun: str,
    files: Mapping[str, bytes],
    at: datetime,
    options: Options,
    previous_root: bytes | None = None,
    floors: Mapping[str, int] | None = None,
    trust_dir: TrustDir | None = None,
) -> Collection:
    """Verify role bytes from memory as fetched bytes are verified: the pins and
    state of ``options``, plus ``previous_root`` and version ``floors`` this
    process trusted before. With ``trust_dir``, its root.json is the trusted root
    and its cached roles' versions are floors (exactly as a fetch starts), and
    the verified bytes are written back to it (exactly as a fetch ends). The
    state store's root, when there is one, comes first."""
    from trustcheck.core.verify import TrustPolicy, verify_collection

    merged = dict(floors or {})
    if trust_dir is not None:
        td_root, td_floors = _trust_dir_view(trust_dir, gun)
        if td_root is not None:
            previous_root = td_root
        for role, version in td_floors.items():
            merged[role] = max(version, merged.get(role, 0))
    policy = TrustPolicy(
        pin=options.pins.lookup(gun) if options.pins is not None else None,
        no_tofu=options.no_tofu or (options.pins is not None and options.pins.no_tofu),
        delegation_cert_expiry=options.delegation_cert_expiry,
        previous_root=previous_root,
        min_versions=merged,
    )
    source = _BytesSource(files)

    def write_back(col: Collection) -> None:
        if trust_dir is not None:
            from trustcheck.remote.notary import _write_back

            _write_back(trust_dir, gun, col, {})

    if options.state is None:
        col = verify_collection(gun, source, at, policy)
        write_back(col)
        return col
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
        write_back(col)
        versions = {name: check.version for name, check in col.checks.items()}
        recorder.state = store.record(previous, gun, col.root_raw, versions)
    return col


# ----------------------------------------------------------------------------- shared stores

#: lock values written by replicas: this prefix and 32 hex digits (random per lock)
LOCK_PREFIX = b"tc-lock."


def new_lock_token() -> bytes:
    return LOCK_PREFIX + os.urandom(16).hex().encode()


def is_lock_token(value: bytes | None) -> bool:
    """Whether ``value`` has the shape of a lock a replica writes (an attacker with
    write access can write one too: a lock is only ever waited on briefly)."""
    if value is None or len(value) != len(LOCK_PREFIX) + 32 or not value.startswith(LOCK_PREFIX):
        return False
    return all(c in b"0123456789abcdef" for c in value[len(LOCK_PREFIX):])


class BadValue(Exception):
    """One key of the shared store holds something unusable (e.g. a Redis value of
    another type): that key is skipped, the store stays in use for every other key."""


class SharedStore(Protocol):
    """The few operations the shared cache needs (Redis, or memory in tests).

    ``get`` returns at most ``cap + 1`` bytes of the value (a longer value is
    never read whole); ``acquire`` returns the lock's owner token (None when the
    lock is held); ``release`` deletes the lock only if it still holds ``token``;
    ``lock_state`` is the lock's value and remaining life in seconds (None: no
    expiry). Per-key problems raise :class:`BadValue`, an unusable store
    ``ConnectionError``."""

    def get(self, key: str, cap: int) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl: float) -> None: ...

    def acquire(self, key: str, ttl: float) -> bytes | None: ...

    def release(self, key: str, token: bytes) -> None: ...

    def lock_state(self, key: str) -> tuple[bytes | None, float | None]: ...

    def ping(self) -> bool: ...


class MemoryStore:
    """A :class:`SharedStore` in this process (tests; one replica)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        #: key -> (value, expiry on ``clock``; None: no expiry)
        self.data: dict[str, tuple[bytes, float | None]] = {}
        self.clock = clock
        self._lock = threading.Lock()

    def _live(self, key: str) -> tuple[bytes, float | None] | None:
        found = self.data.get(key)
        if found is None or (found[1] is not None and found[1] <= self.clock()):
            return None
        return found

    def get(self, key: str, cap: int) -> bytes | None:
        with self._lock:
            found = self._live(key)
            return found[0][: cap + 1] if found is not None else None

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        with self._lock:
            self.data[key] = (value, self.clock() + ttl if ttl is not None else None)

    def acquire(self, key: str, ttl: float) -> bytes | None:
        with self._lock:
            if self._live(key) is not None:
                return None
            token = new_lock_token()
            self.data[key] = (token, self.clock() + ttl)
            return token

    def release(self, key: str, token: bytes) -> None:
        with self._lock:
            found = self._live(key)
            if found is not None and found[0] == token:
                del self.data[key]

    def lock_state(self, key: str) -> tuple[bytes | None, float | None]:
        with self._lock:
            found = self._live(key)
            if found is None:
                return None, 0.0
            return found[0], (found[1] - self.clock() if found[1] is not None else None)

    def ping(self) -> bool:
        return True


#: compare-and-delete: a replica releases only the lock it holds
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisStore:
    """A :class:`SharedStore` on Redis (``redis://`` or ``rediss://`` URL).

    Short socket timeouts: a slow or dead Redis must not eat the review's
    deadline. After a connection failure Redis is skipped for ``backoff``
    seconds; an error about one key (``WRONGTYPE``...) affects that key only.
    Values are read with ``GETRANGE 0 cap``: a huge value is never transferred.
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
        self._key_errors: tuple[type[BaseException], ...] = (redis.ResponseError,)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._backoff = backoff
        self._down_until = 0.0
        self._release = self._redis.register_script(_RELEASE)

    def _usable(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, e: BaseException) -> None:
        self._down_until = time.monotonic() + self._backoff
        log.warning("shared cache unavailable for %gs: %s", self._backoff, e)

    def _call(self, key: str, op: Callable[[], object]) -> object:
        if not self._usable():
            raise ConnectionError("the shared cache failed recently")
        try:
            return op()
        except self._key_errors as e:
            raise BadValue(f"{key}: {str(e)[:200]}") from e
        except self._errors as e:
            self._failed(e)
            raise ConnectionError(str(e)) from e

    def get(self, key: str, cap: int) -> bytes | None:
        value = self._call(key, lambda: self._redis.getrange(key, 0, cap))
        # GETRANGE answers "" for a missing key; an empty entry is worthless anyway
        return value if isinstance(value, bytes) and value else None

    def set(self, key: str, value: bytes, ttl: float) -> None:
        self._call(key, lambda: self._redis.set(key, value, px=max(1, int(ttl * 1000))))

    def acquire(self, key: str, ttl: float) -> bytes | None:
        token = new_lock_token()
        ok = self._call(
            key, lambda: self._redis.set(key, token, nx=True, px=max(1, int(ttl * 1000)))
        )
        return token if ok else None

    def release(self, key: str, token: bytes) -> None:
        self._call(key, lambda: self._release(keys=[key], args=[token]))

    def lock_state(self, key: str) -> tuple[bytes | None, float | None]:
        def read() -> tuple[object, object]:
            pipe = self._redis.pipeline(transaction=True)
            pipe.getrange(key, 0, len(LOCK_PREFIX) + 32)
            pipe.pttl(key)
            value, pttl = pipe.execute()
            return value, pttl

        got = self._call(key, read)
        assert isinstance(got, tuple)
        value, pttl = got
        if not isinstance(value, bytes) or not value or not isinstance(pttl, int) or pttl == -2:
            return None, 0.0
        return value, (pttl / 1000.0 if pttl >= 0 else None)

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
_FINGERPRINT_CONTEXT = b"trustcheck shared cache key fingerprint v1\0"

#: the largest shared entry read or written (all role files, base64, JSON)
DEFAULT_MAX_ENTRY_BYTES = 4 << 20


def key_fingerprint(secret: bytes) -> str:
    """A short public name of the cache secret (logged at start: replicas with
    different secrets can be spotted; it does not reveal the secret)."""
    return hashlib.sha256(_FINGERPRINT_CONTEXT + secret).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class SharedEntry:
    """The files of an authentic, fresh shared entry and its age in seconds."""

    files: dict[str, bytes]
    age: float


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
        max_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
    ) -> None:
        if len(secret) < 16:
            raise UsageError(
                "webhook-config-invalid",
                "the shared cache secret must be at least 16 bytes (e.g. 32 random bytes, "
                "base64): it authenticates what replicas read back from the cache",
            )
        if not secret.strip():
            raise UsageError(
                "webhook-config-invalid",
                "the shared cache secret is only whitespace; use 32 random bytes (base64)",
            )
        self.store = store
        self.secret = secret
        self.ttl = ttl
        self.prefix = prefix
        self.wall = wall
        self.max_bytes = max_bytes

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.secret)

    def key(self, server: str, gun: str) -> str:
        from trustcheck.core.reference import identity

        # keyed on the identity: an alias spelling shares the entry (docs/pinning.md)
        h = hashlib.sha256(f"{server}\0{identity(gun)}".encode()).hexdigest()[:40]
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

    def decode(self, server: str, gun: str, value: bytes) -> SharedEntry | None:
        """The files and age of an entry, or None (with the reason logged) when the
        entry is too large, not authentic, not for ``server``/``gun``, or older
        than the TTL."""
        import orjson

        if len(value) > self.max_bytes:
            log.warning(
                "shared cache entry for %s rejected: larger than %d bytes", gun, self.max_bytes
            )
            return None
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
            if not age <= self.ttl or age < -30:
                log.warning(
                    "shared cache entry for %s rejected: fetched %.1fs ago, the TTL is %gs",
                    gun,
                    age,
                    self.ttl,
                )
                return None
            files = {
                str(k): base64.b64decode(v, validate=True) for k, v in doc["files"].items()
            }
            return SharedEntry(files, max(0.0, age))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, binascii.Error):
            log.warning("shared cache entry for %s rejected: malformed", gun)
            return None

    def read(self, server: str, gun: str) -> bytes | None:
        """The raw entry (at most ``max_bytes + 1`` bytes of it), or None."""
        return self.store.get(self.key(server, gun), self.max_bytes)

    def get(self, server: str, gun: str) -> SharedEntry | None:
        value = self.read(server, gun)
        return self.decode(server, gun, value) if value is not None else None

    def put(self, server: str, gun: str, col: Collection, fetched: float | None = None) -> bool:
        """Publish ``col`` fetched at wall time ``fetched`` (default: now); False
        when it is too large to share or already too old."""
        when = self.wall() if fetched is None else fetched
        life = self.ttl - max(0.0, self.wall() - when)
        if life <= 0:
            return False
        value = self.encode(server, gun, _files_of(col), when)
        if len(value) > self.max_bytes:
            log.info(
                "trust data of %s not shared: %d bytes, more than %d", gun, len(value),
                self.max_bytes,
            )
            return False
        self.store.set(self.key(server, gun), value, life)
        return True


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
        from trustcheck.policy.evaluate import rule_remote
        from trustcheck.remote.http import select_server

        cfg = rule_remote(rule, self.remote)
        if cfg is None or cfg.offline:
            return None
        return select_server(gun, cfg)

    def options_for(self, rule: Rule) -> Options:
        from trustcheck.policy.evaluate import rule_options

        return rule_options(rule, self.options)

    def _session(self, rule: Rule) -> HttpSession:
        from trustcheck.policy.evaluate import rule_remote
        from trustcheck.remote.http import HttpSession

        with self._lock:
            found = self._sessions.get(rule.index)
            if found is None:
                cfg = rule_remote(rule, self.remote)
                assert cfg is not None
                found = HttpSession(cfg)
                self._sessions[rule.index] = found
            return found

    def __call__(self, rule: Rule, gun: str, at: datetime) -> Collection:
        from trustcheck.api import load_collection
        from trustcheck.policy.evaluate import rule_remote
        from trustcheck.remote.notary import fetch_collection

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
        shared_wait: float = 1.0,
        lock_ttl: float = 30.0,
    ) -> None:
        self.policy = policy
        self.settings = settings if settings is not None else CacheSettings()
        self.upstream = _Upstream(trust_dir, options, remote)
        self.fetch: Fetcher = fetch if fetch is not None else self.upstream
        self.shared = shared
        self.clock = clock
        self.now = now
        self.events: Events = events if events is not None else _no_events
        #: the longest a lookup waits for another replica's entry (from its start)
        self.shared_wait = shared_wait
        #: the life of the lock a replica takes while it fetches
        self.lock_ttl = lock_ttl
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._inflight: dict[Key, Future[Collection | TrustcheckError]] = {}
        #: rollback floors of every GUN verified since start (never evicted: small)
        self._trusted: dict[str, _Trusted] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=self.settings.workers, thread_name_prefix="trustcheck-cache"
        )
        # reading and verifying shared entries, and waiting for another replica's
        # entry, happen here: never in a fetch worker
        self._shared_pool = (
            ThreadPoolExecutor(
                max_workers=max(4, 4 * self.settings.workers),
                thread_name_prefix="trustcheck-shared",
            )
            if shared is not None
            else None
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
        """Start obtaining ``key`` (the lock is held)."""
        future: Future[Collection | TrustcheckError] = Future()
        if self._closed:
            future.set_exception(RuntimeError("the trust cache is closed"))
            return future
        self._inflight[key] = future
        started = time.monotonic()
        if self._shared_pool is not None:
            self._shared_pool.submit(self._guard, key, future, self._via_shared, started)
        else:
            self._pool.submit(self._guard, key, future, self._via_fetch, None, None, None)
        return future

    def _guard(
        self,
        key: Key,
        future: Future[Collection | TrustcheckError],
        step: Callable[..., None],
        *args: object,
    ) -> None:
        """Run one step of obtaining ``key``; an unexpected exception ends its future."""
        try:
            step(key, future, *args)
        except BaseException as e:
            with self._lock:
                self._inflight.pop(key, None)
            if not future.done():
                future.set_exception(e)
            if not isinstance(e, Exception):
                raise

    def _submit_fetch(
        self,
        key: Key,
        future: Future[Collection | TrustcheckError],
        server: str | None,
        lock: str | None,
        token: bytes | None,
    ) -> None:
        try:
            self._pool.submit(self._guard, key, future, self._via_fetch, server, lock, token)
        except RuntimeError as e:  # shut down
            with self._lock:
                self._inflight.pop(key, None)
            future.set_exception(e)

    def _via_shared(
        self, key: Key, future: Future[Collection | TrustcheckError], started: float
    ) -> None:
        """The shared-pool step: a verified shared entry, or else the lock and a fetch."""
        shared = self.shared
        assert shared is not None
        index, gun = key
        rule = self.policy.rules[index]
        server = self.upstream.server(rule, gun)
        if server is None:
            self._submit_fetch(key, future, None, None, None)
            return
        got = self._from_shared(shared, rule, server, gun)
        if got is not None:
            self._finish(key, future, got[0], got[1])
            return
        lock = shared.lock_key(server, gun)
        token: bytes | None = None
        try:
            token = shared.store.acquire(lock, self.lock_ttl)
            held = token is None
        except (ConnectionError, BadValue):
            held = False
        if held and self._plausible_lock(shared, lock, gun):
            # another replica is fetching it: wait a little (counted from the lookup's
            # start, so that a queued lookup does not wait again) for its entry
            end = started + self.shared_wait
            while time.monotonic() < end and not self._closed:
                time.sleep(min(0.02, max(0.0, end - time.monotonic())))
                got = self._from_shared(shared, rule, server, gun, quiet=True)
                if got is not None:
                    self._finish(key, future, got[0], got[1])
                    return
            log.info(
                "another replica holds the fetch lock of %s; fetching it here too", gun
            )
        self._submit_fetch(key, future, server, lock, token)

    def _plausible_lock(self, shared: SharedCache, lock: str, gun: str) -> bool:
        """Whether the held ``lock`` looks like a replica's: a lock token that
        expires within ``lock_ttl``. Anything else is not waited on at all."""
        try:
            value, left = shared.store.lock_state(lock)
        except (ConnectionError, BadValue):
            return False
        if value is None:
            return True  # released meanwhile: the entry may be there
        if is_lock_token(value) and left is not None and 0 < left <= self.lock_ttl + 1:
            return True
        log.warning(
            "the fetch lock of %s holds a value no replica writes (%s); not waiting on it",
            gun,
            "no expiry" if left is None else f"expires in {left:.0f}s",
        )
        self.events("shared_rejected", "lock")
        return False

    def _via_fetch(
        self,
        key: Key,
        future: Future[Collection | TrustcheckError],
        server: str | None,
        lock: str | None,
        token: bytes | None,
    ) -> None:
        """The fetch-pool step: fetch, publish to the shared cache, release the lock."""
        index, gun = key
        shared = self.shared
        started = self.clock()
        fetched = shared.wall() if shared is not None else 0.0
        try:
            rule = self.policy.rules[index]
            at = self.now()
            try:
                value: Collection | TrustcheckError = self.fetch(rule, gun, at)
            except TrustcheckError as e:
                self.events("upstream_error", e.code)
                value = e
            if shared is not None and server is not None and not isinstance(
                value, TrustcheckError
            ):
                try:
                    shared.put(server, gun, value, fetched)
                except ConnectionError:
                    self.events("shared_error", "")
                except BadValue as e:
                    log.warning("shared cache: cannot write the entry of %s: %s", gun, e)
                    self.events("shared_error", "")
        finally:
            if shared is not None and lock is not None and token is not None:
                with contextlib.suppress(ConnectionError, BadValue):
                    shared.store.release(lock, token)
        self._finish(key, future, value, max(0.0, self.clock() - started), at)

    def _finish(
        self,
        key: Key,
        future: Future[Collection | TrustcheckError],
        value: Collection | TrustcheckError,
        age: float,
        at: datetime | None = None,
    ) -> None:
        self._store(key, value, at if at is not None else self.now(), age)
        with contextlib.suppress(InvalidStateError):
            future.set_result(value)

    def _store(
        self, key: Key, value: Collection | TrustcheckError, at: datetime, age: float = 0.0
    ) -> None:
        """Keep ``value`` for its life: ``ttl`` minus ``age`` (how long ago the
        bytes were fetched, by this replica or another one), never past the
        earliest expiry of its roles; errors for ``negative_ttl``."""
        now = self.clock()
        if isinstance(value, TrustcheckError):
            life = self.settings.negative_ttl
            refresh = now + life  # errors are not refreshed ahead
        else:
            life = max(0.0, self.settings.ttl - age)
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

    def floors(self, gun: str) -> dict[str, int]:
        """The highest version of each role of ``gun`` verified since start."""
        with self._lock:
            known = self._trusted.get(gun)
            return dict(known.versions) if known is not None else {}

    def _from_shared(
        self,
        shared: SharedCache,
        rule: Rule,
        server: str,
        gun: str,
        *,
        quiet: bool = False,
    ) -> tuple[Collection, float] | None:
        """A shared entry verified here as a fetch is (trust dir root and floors,
        state, pins, this process's floors) and written back, with its age."""
        try:
            value = shared.read(server, gun)
        except ConnectionError:
            self.events("shared_error", "")
            return None
        except BadValue as e:
            log.warning("shared cache entry for %s rejected: unusable key (%s)", gun, e)
            self.events("shared_rejected", "")
            return None
        if value is None:
            if not quiet:
                self.events("shared_miss", "")
            return None
        entry = shared.decode(server, gun, value)
        if entry is None:
            self.events("shared_rejected", "")
            return None
        if entry.age > 0.8 * shared.ttl:
            # in the last fifth of its life: a refresh would read it again and again
            if not quiet:
                self.events("shared_miss", "")
            return None
        with self._lock:
            known = self._trusted.get(gun)
        at = self.now()
        try:
            col = verify_files(
                gun,
                entry.files,
                at,
                self.upstream.options_for(rule),
                previous_root=known.root if known is not None else None,
                floors=known.versions if known is not None else None,
                trust_dir=self.upstream.trust_dir,
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
        return col, entry.age

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
            pending, self._inflight = list(self._inflight.values()), {}
        for future in pending:
            if not future.done():
                with contextlib.suppress(InvalidStateError):
                    future.set_exception(RuntimeError("the trust cache is closed"))
        if self._shared_pool is not None:
            self._shared_pool.shutdown(wait=False, cancel_futures=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.upstream.close()
