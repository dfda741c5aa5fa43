"""Continuity: the released digests this webhook verified, and the revocation list.

A tag that is re-signed to a new digest must not stall the controllers that run
the old one (docs/webhook.md, "Re-signed tags and controllers"). The webhook
therefore remembers every ``(rule, repository, digest)`` it verified as a
*current* release (the tag carried that digest in ``targets/releases`` or
``targets`` and the rule's signers had signed it) and when it last did so.
Within ``window`` seconds of that last verification, a reference that pins the
digest stays admissible although the tag has moved on, unless the digest is
revoked (:class:`Revocations`, server config ``continuity.revoked``).

Where the memory lives:

* in the process (a dict, at most ``max_entries``, the least recently verified
  dropped first; a record older than the window is gone);
* in one JSON file (the state dir, else the trust dir), written atomically at
  most every 5 s when something changed and at shutdown, read at start: a
  restart keeps it (a crash loses at most the last 5 s, which can deny more,
  never admit more);
* with the shared cache, in Redis, one key per record, authenticated with
  HMAC-SHA256 keyed by the cache secret (like the trust-data entries) and
  expiring at the end of its window: a replica that never saw the digest
  learns it from another. An entry with a wrong MAC, for another key, or out
  of its window is ignored and logged.

A record says only "trustcheck verified, at time T, that this digest was a
signed release of this repository under a rule with this fingerprint". The
fingerprint covers what the rule demands (pattern, action, required signers,
threshold, server, pins source): a record made under a weaker rule never
admits under a stricter one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trustcheck.core.reference import identity

if TYPE_CHECKING:
    from trustcheck.policy.model import Rule
    from trustcheck.webhook.shared import SharedStore

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_WINDOW",
    "Released",
    "ReleasedStore",
    "Revocations",
    "SharedReleased",
    "parse_revocation",
    "rule_fingerprint",
]

log = logging.getLogger("trustcheck.webhook.review")

#: how long a verified release stays admissible after its last verification (7 days)
DEFAULT_WINDOW = 7 * 86400.0
DEFAULT_MAX_ENTRIES = 20000
#: tags kept per record (for messages: which tags released the digest)
MAX_TAGS = 8
#: the file is refused above this size (a record is about 300 bytes)
_MAX_FILE = 64 << 20
#: a clock this far ahead is tolerated in records from other replicas
_SKEW = 30.0
#: the file is written at most this often (and at shutdown)
FLUSH_SECONDS = 5.0
_DIGEST_HEX = frozenset("0123456789abcdef")


def _is_digest(text: str) -> bool:
    return (
        text.startswith("sha256:")
        and len(text) == 71
        and all(c in _DIGEST_HEX for c in text[7:])
    )


def rule_fingerprint(rule: Rule) -> str:
    """What the rule demands of a release, hashed: records made under another
    demand (fewer signers, another server or pins) never count for this rule."""
    doc = {
        "name": rule.name,
        "pattern": rule.pattern.text,
        "action": rule.action,
        "signers": [s.text for s in rule.signers],
        "threshold": rule.threshold,
        "server": rule.trust.server,
        "pins": rule.trust.pins_source,
        "offline": rule.trust.offline,
        "no_tofu": rule.trust.no_tofu,
    }
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def parse_revocation(text: str) -> tuple[str | None, str]:
    """``sha256:<64 hex>`` (any repository) or ``NAME@sha256:<64 hex>`` (that
    repository, any spelling of it): ``(identity or None, digest)``. ValueError
    with what is wrong otherwise."""
    name, at, digest = text.strip().rpartition("@")
    if not at:
        name, digest = "", text.strip()
    if not _is_digest(digest):
        raise ValueError(
            f"{text[:120]!r} is not sha256:<64 lowercase hex> or NAME@sha256:<64 lowercase hex>"
        )
    if not at:
        return None, digest
    from trustcheck.core.reference import parse_reference
    from trustcheck.errors import TrustcheckError

    try:
        ref = parse_reference(f"{name}@{digest}")
    except TrustcheckError as e:
        raise ValueError(f"{text[:120]!r}: {e.message}") from e
    if ref.tag is not None:
        raise ValueError(f"{text[:120]!r}: name a repository and a digest, not a tag")
    return identity(ref.name), digest


@dataclass(frozen=True, slots=True)
class Revocations:
    """Digests that are denied whatever signs or admitted them (``continuity.revoked``)."""

    anywhere: frozenset[str] = frozenset()
    per_name: frozenset[tuple[str, str]] = frozenset()
    #: the entries as written (for messages and the start-up log)
    texts: tuple[str, ...] = ()

    @classmethod
    def parse(cls, texts: Iterable[str]) -> Revocations:
        anywhere: set[str] = set()
        per_name: set[tuple[str, str]] = set()
        kept: list[str] = []
        for text in texts:
            name, digest = parse_revocation(text)
            if name is None:
                anywhere.add(digest)
            else:
                per_name.add((name, digest))
            kept.append(text.strip())
        return cls(frozenset(anywhere), frozenset(per_name), tuple(kept))

    def __bool__(self) -> bool:
        return bool(self.anywhere or self.per_name)

    def revoked(self, name: str, digest: str) -> bool:
        return digest in self.anywhere or (identity(name), digest) in self.per_name


@dataclass(frozen=True, slots=True)
class Released:
    """One verified release: ``digest`` of repository ``name`` under rule ``rule``."""

    rule: str
    name: str
    digest: str
    tags: tuple[str, ...]
    #: wall-clock seconds: first and last verification as a current release
    first: float
    last: float

    def key(self) -> tuple[str, str, str]:
        return (self.rule, self.name, self.digest)

    def to_json(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "name": self.name,
            "digest": self.digest,
            "tags": list(self.tags),
            "first": self.first,
            "last": self.last,
        }

    @classmethod
    def from_json(cls, doc: object) -> Released:
        """A record read back (file or Redis); ValueError when it is not one."""
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        rule, name, digest = doc.get("rule"), doc.get("name"), doc.get("digest")
        tags, first, last = doc.get("tags"), doc.get("first"), doc.get("last")
        if not (isinstance(rule, str) and len(rule) == 32 and isinstance(name, str) and name):
            raise ValueError("rule or name missing")
        if not (isinstance(digest, str) and _is_digest(digest)):
            raise ValueError("digest malformed")
        if not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
            raise ValueError("tags malformed")
        for v in (first, last):
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ValueError("times malformed")
        assert isinstance(first, int | float) and isinstance(last, int | float)
        return cls(rule, name, digest, tuple(tags[:MAX_TAGS]), float(first), float(last))

    def merged(self, other: Released) -> Released:
        tags = tuple(dict.fromkeys((*self.tags, *other.tags)))[:MAX_TAGS]
        return Released(
            self.rule,
            self.name,
            self.digest,
            tags,
            min(self.first, other.first),
            max(self.last, other.last),
        )


_MAC_CONTEXT = b"trustcheck released digests v1\0"


class SharedReleased:
    """Released records in the shared store (Redis), one key each, HMAC'd with the
    shared cache's secret, expiring at the end of their window."""

    def __init__(
        self, store: SharedStore, secret: bytes, *, prefix: str = "trustcheck"
    ) -> None:
        self.store = store
        self.secret = secret
        self.prefix = prefix

    def key(self, rule: str, name: str, digest: str) -> str:
        h = hashlib.sha256(f"{rule}\0{name}\0{digest}".encode()).hexdigest()[:40]
        return f"{self.prefix}:v1:released:{h}"

    def _mac(self, payload: bytes) -> str:
        return hmac.new(self.secret, _MAC_CONTEXT + payload, hashlib.sha256).hexdigest()

    def encode(self, rec: Released) -> bytes:
        payload = json.dumps(rec.to_json(), sort_keys=True, separators=(",", ":")).encode()
        return b"tr1." + self._mac(payload).encode() + b"." + payload

    def decode(
        self, rule: str, name: str, digest: str, value: bytes, now: float, window: float
    ) -> Released | None:
        magic, _, rest = value.partition(b".")
        mac, _, payload = rest.partition(b".")
        if magic != b"tr1" or not hmac.compare_digest(mac, self._mac(payload).encode()):
            log.warning("shared released-digest entry for %s@%s rejected: bad MAC", name, digest)
            return None
        try:
            rec = Released.from_json(json.loads(payload))
        except (ValueError, RecursionError) as e:
            log.warning("shared released-digest entry for %s rejected: malformed (%s)", name, e)
            return None
        if rec.key() != (rule, name, digest):
            log.warning("shared released-digest entry for %s rejected: it is for another", name)
            return None
        if not (now - window < rec.last <= now + _SKEW):
            log.warning(
                "shared released-digest entry for %s@%s rejected: verified %.0fs ago, the "
                "window is %gs",
                name,
                digest,
                now - rec.last,
                window,
            )
            return None
        return rec

    def get(
        self, rule: str, name: str, digest: str, now: float, window: float
    ) -> Released | None:
        value = self.store.get(self.key(rule, name, digest), 4096)
        if value is None or len(value) > 4096:
            return None
        return self.decode(rule, name, digest, value, now, window)

    def put(self, rec: Released, now: float, window: float) -> None:
        life = window - (now - rec.last)
        if life > 0:
            self.store.set(self.key(rec.rule, rec.name, rec.digest), self.encode(rec), life)


class ReleasedStore:
    """The webhook's memory of verified releases (see the module docstring).

    ``record`` and ``known`` are cheap (a dict under a lock) and called on the
    review path; ``flush`` (file) and ``publish`` / ``fetch_shared`` (Redis) do
    the I/O and run in a worker thread.
    """

    def __init__(
        self,
        window: float = DEFAULT_WINDOW,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        path: Path | None = None,
        shared: SharedReleased | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.window = window
        self.max_entries = max_entries
        self.path = path
        self.shared = shared
        self.wall = wall
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str, str], Released] = {}
        self._dirty = False
        self._last_flush = 0.0
        #: records to publish to the shared store, and when each key was last published
        self._outbox: dict[tuple[str, str, str], Released] = {}
        self._published: dict[tuple[str, str, str], float] = {}
        self._write_failed: str | None = None

    def __len__(self) -> int:
        return len(self._records)

    def _granularity(self) -> float:
        """How stale ``last`` may get before a new verification updates it: a
        thousandth of the window, between 1 s and 60 s (a warm replica then writes
        each record at most once a minute)."""
        return max(1.0, min(60.0, self.window / 1000))

    # --- the review path -------------------------------------------------------------

    def record(self, rule: str, name: str, digest: str, tag: str | None) -> None:
        """``digest`` was verified now as a current release of ``name`` under ``rule``."""
        if self.window <= 0:
            return
        now = self.wall()
        key = (rule, identity(name), digest)
        with self._lock:
            old = self._records.get(key)
            tags = (tag,) if tag is not None else ()
            if old is not None:
                if now - old.last < self._granularity() and (tag is None or tag in old.tags):
                    return  # verified again lately: nothing worth a write
                rec = old.merged(Released(*key, tags, now, now))
                del self._records[key]  # re-insert: the dict is in last-verified order
            else:
                rec = Released(*key, tags, now, now)
            self._records[key] = rec
            while len(self._records) > self.max_entries:
                self._records.pop(next(iter(self._records)))
            self._dirty = True
            if self.shared is not None:
                published = self._published.get(key)
                if published is None or now - published > min(3600.0, self.window / 20):
                    self._outbox[key] = rec

    def known(self, rule: str, name: str, digest: str) -> Released | None:
        """The record of ``digest`` under ``rule``, if verified within the window."""
        if self.window <= 0:
            return None
        now = self.wall()
        with self._lock:
            rec = self._records.get((rule, identity(name), digest))
        if rec is None or not (now - self.window < rec.last <= now + _SKEW):
            return None
        return rec

    # --- I/O (worker thread) ----------------------------------------------------------

    def fetch_shared(self, wanted: Iterable[tuple[str, str, str]]) -> int:
        """Look ``(rule, name, digest)`` keys up in the shared store; what is found
        (authentic, within the window) is added to memory. Returns how many."""
        if self.shared is None or self.window <= 0:
            return 0
        found = 0
        now = self.wall()
        for rule, name, digest in wanted:
            try:
                rec = self.shared.get(rule, identity(name), digest, now, self.window)
            except Exception as e:  # a shared store problem only costs the lookup
                log.warning("shared released-digest lookup failed: %s", str(e)[:200])
                return found
            if rec is not None:
                self._merge(rec)
                found += 1
        return found

    def publish(self) -> int:
        """Write queued records to the shared store; how many were written."""
        if self.shared is None:
            return 0
        with self._lock:
            out, self._outbox = self._outbox, {}
        now = self.wall()
        done = 0
        for key, rec in out.items():
            try:
                self.shared.put(rec, now, self.window)
            except Exception as e:
                log.warning("shared released-digest publish failed: %s", str(e)[:200])
                with self._lock:  # try again with the next flush
                    self._outbox.setdefault(key, rec)
                continue
            with self._lock:
                self._published[key] = now
                if len(self._published) > 2 * self.max_entries:
                    self._published.clear()  # only costs extra publishes
            done += 1
        return done

    def _merge(self, rec: Released) -> None:
        with self._lock:
            old = self._records.get(rec.key())
            self._records[rec.key()] = old.merged(rec) if old is not None else rec
            self._dirty = True

    def load(self) -> int:
        """Read the file (if any); records out of the window are dropped. A file that
        cannot be read or parsed is logged and ignored (the memory starts empty:
        that can deny more, never admit more)."""
        if self.path is None or self.window <= 0:
            return 0
        try:
            with self.path.open("rb") as f:
                data = f.read(_MAX_FILE + 1)
        except FileNotFoundError:
            return 0
        except OSError as e:
            log.warning("cannot read the released-digest file %s: %s", self.path, e)
            return 0
        try:
            if len(data) > _MAX_FILE:
                raise ValueError(f"larger than {_MAX_FILE} bytes")
            doc = json.loads(data)
            if not isinstance(doc, dict) or doc.get("version") != 1:
                raise ValueError("not a version 1 released-digest file")
            items = doc.get("released")
            if not isinstance(items, list):
                raise ValueError("released is not a list")
            records = [Released.from_json(x) for x in items]
        except (ValueError, RecursionError) as e:
            log.warning(
                "the released-digest file %s is unusable (%s); starting without it",
                self.path,
                str(e)[:200],
            )
            return 0
        now = self.wall()
        records.sort(key=lambda r: r.last)
        kept = 0
        with self._lock:
            for rec in records:
                if now - self.window < rec.last <= now + _SKEW:
                    old = self._records.pop(rec.key(), None)
                    self._records[rec.key()] = old.merged(rec) if old is not None else rec
                    kept += 1
            while len(self._records) > self.max_entries:
                self._records.pop(next(iter(self._records)))
        return kept

    def flush(self, *, force: bool = False) -> bool:
        """Write the file when something changed (at most every ``FLUSH_SECONDS``
        unless ``force``). A failure is logged once per distinct error."""
        if self.path is None or self.window <= 0:
            return False
        now = self.wall()
        with self._lock:
            if not self._dirty or (not force and now - self._last_flush < FLUSH_SECONDS):
                return False
            live = [r for r in self._records.values() if now - self.window < r.last]
            self._dirty = False
            self._last_flush = now
        doc = {"version": 1, "window": self.window, "released": [r.to_json() for r in live]}
        data = json.dumps(doc, separators=(",", ":")).encode() + b"\n"
        from trustcheck.local.fsutil import atomic_write

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, data, mode=0o600)
        except OSError as e:
            with self._lock:
                self._dirty = True
            if self._write_failed != str(e):
                self._write_failed = str(e)
                log.warning(
                    "cannot write the released-digest file %s (%s); the memory of admitted "
                    "digests will not survive a restart",
                    self.path,
                    e,
                )
            return False
        self._write_failed = None
        return True
