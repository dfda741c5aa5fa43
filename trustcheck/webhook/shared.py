"""The webhook's shared trust-data cache (Redis in production; :class:`SharedCache`).

The shared cache holds the raw metadata bytes of each verified collection, per
Notary server and GUN, so that replicas fetch once. What is read back is never trusted as a verdict:

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
import hashlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from trustcheck.errors import ErrorCode, UsageError
from trustcheck.text import redact_url

if TYPE_CHECKING:
    from trustcheck.core.verify import Collection

__all__ = [
    "DEFAULT_MAX_ENTRY_BYTES",
    "MemoryStore",
    "RedisStore",
    "SharedCache",
    "SharedEntry",
    "SharedStore",
    "key_fingerprint",
]

log = logging.getLogger("trustcheck.webhook.review")

#: lock values written by replicas: this prefix and 32 hex digits (random per lock)
LOCK_PREFIX = b"tc-lock."


def new_lock_token() -> bytes:
    return LOCK_PREFIX + os.urandom(16).hex().encode()


def is_lock_token(value: bytes | None) -> bool:
    """Whether ``value`` has the shape of a lock a replica writes (an attacker with
    write access can write one too: a lock is only ever waited on briefly)."""
    if value is None or len(value) != len(LOCK_PREFIX) + 32 or not value.startswith(LOCK_PREFIX):
        return False
    return all(c in b"0123456789abcdef" for c in value[len(LOCK_PREFIX) :])


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
                ErrorCode.WEBHOOK_CONFIG_INVALID,
                "--cache redis://... needs the redis client: pip install 'trustcheck[redis]'",
            ) from e
        try:
            self._redis = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        except ValueError as e:
            raise UsageError("webhook-config-invalid", f"cache URL {redact_url(url)}: {e}") from e
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


def _files_of(col: Collection) -> dict[str, bytes]:
    files = {
        "root": col.root_raw,
        "timestamp": col.timestamp.raw,
        "snapshot": col.snapshot.raw,
    }
    files.update((name, meta.raw) for name, meta in col.targets.items())
    return files


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
                ErrorCode.WEBHOOK_CONFIG_INVALID,
                "the shared cache secret must be at least 16 bytes (e.g. 32 random bytes, "
                "base64): it authenticates what replicas read back from the cache",
            )
        if not secret.strip():
            raise UsageError(
                ErrorCode.WEBHOOK_CONFIG_INVALID,
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
            files = {str(k): base64.b64decode(v, validate=True) for k, v in doc["files"].items()}
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
                "trust data of %s not shared: %d bytes, more than %d",
                gun,
                len(value),
                self.max_bytes,
            )
            return False
        self.store.set(self.key(server, gun), value, life)
        return True
