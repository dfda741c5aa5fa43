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
* **Fair** (:class:`FairScheduler`): the fetches of one review (one
  :meth:`TrustCache.lookup`) are one group; workers take the next fetch from
  the group with the fewest fetches running, then the fewest waiting (a small
  review goes first), so that one review naming 400 repositories does not
  queue every other review behind it. A group runs at most ``per_review``
  fetches at once, one Notary server gets at most ``per_server`` workers (the
  others stay free for other servers), and offline and archive rules (no
  network) have their own workers: they never wait behind network work. A
  key asked for by a later review while it is still queued is queued in that
  review's group too (it runs once); background refreshes run only when no
  review waits.

Optional **shared cache**: :mod:`trustcheck.webhook.shared` (Redis in production), read
back never as a verdict but as bytes verified here like a fetch's.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from trustcheck.errors import ErrorCode, NotTrusted, TrustcheckError
from trustcheck.webhook.shared import BadValue, SharedCache, is_lock_token

if TYPE_CHECKING:
    from trustcheck.api import Options
    from trustcheck.archive import Archive
    from trustcheck.archive.decide import ArchiveSpec
    from trustcheck.core.verify import Collection
    from trustcheck.local.trustdir import TrustDir
    from trustcheck.policy.model import Policy, Rule
    from trustcheck.remote.config import RemoteConfig
    from trustcheck.remote.http import HttpSession

__all__ = [
    "CacheSettings",
    "FairScheduler",
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
    #: fetches of one review running at once (at most ``workers``)
    per_review: int = 4
    #: workers one Notary server may hold (at most ``workers`` - 1: one stays free)
    per_server: int = 6
    #: workers for rules that need no network (offline, archive)
    local_workers: int = 2


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
                ErrorCode.FILE_TOO_LARGE,
                f"{role}.json from the shared cache is larger than its cap of {cap} bytes",
                role=role,
            )
        return raw


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
    from trustcheck.core.verify import verify_collection
    from trustcheck.local.session import trust_session

    with trust_session(
        gun, options, previous_root=previous_root, floors=floors, trust_dir=trust_dir
    ) as session:
        col = verify_collection(gun, _BytesSource(files), at, session.policy)
        if trust_dir is not None:
            from trustcheck.remote.notary import _write_back

            _write_back(trust_dir, gun, col, {})
        session.record(col)
    return col


# ----------------------------------------------------------------------------- fair scheduling


class _Job:
    """One fetch waiting for a worker; queued in the group of every review that
    asked for it while it waited, run once."""

    __slots__ = ("run", "server", "started")

    def __init__(self, run: Callable[[], None], server: str | None) -> None:
        self.run = run
        self.server = server
        self.started = False


class _Group:
    """The fetches of one review (or of background refreshes: ``low``)."""

    __slots__ = ("jobs", "low", "running", "seq")

    def __init__(self, seq: int, low: bool) -> None:
        self.jobs: deque[_Job] = deque()
        self.running = 0
        self.seq = seq
        self.low = low


class FairScheduler:
    """Worker threads taking jobs group by group (see the module docstring)."""

    def __init__(self, workers: int, per_group: int, per_server: int, name: str) -> None:
        self.workers = max(1, workers)
        self.per_group = max(1, min(per_group, self.workers))
        self.per_server = max(1, min(per_server, self.workers - 1 if self.workers > 1 else 1))
        self.name = name
        self._cond = threading.Condition()
        self._groups: list[_Group] = []
        self._servers: dict[str, int] = {}
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._seq = 0
        self._running = 0
        self._closed = False

    def group(self, *, low: bool = False) -> _Group:
        with self._cond:
            self._seq += 1
            return _Group(self._seq, low)

    def submit(self, group: _Group, job: _Job) -> None:
        """Queue ``job`` in ``group`` (raises RuntimeError once closed)."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the trust cache is closed")
            self._enqueue(group, job)

    def join(self, group: _Group, job: _Job) -> None:
        """Queue a job another group queued in ``group`` as well, unless it started."""
        with self._cond:
            if not job.started and not self._closed:
                self._enqueue(group, job)

    def _enqueue(self, group: _Group, job: _Job) -> None:
        group.jobs.append(job)
        if not any(g is group for g in self._groups):
            self._groups.append(group)
        if self._idle:
            self._cond.notify()
        elif len(self._threads) < self.workers:
            t = threading.Thread(
                target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
            )
            self._threads.append(t)
            t.start()

    def _pick(self) -> tuple[_Group, _Job] | None:
        """The next job to run (the lock is held): from the eligible group with
        the fewest jobs running, then the fewest queued, then the oldest; low
        groups only when no other group has an eligible job."""
        best: tuple[tuple[int, int, int, int], _Group, _Job] | None = None
        for group in list(self._groups):
            jobs = group.jobs
            while jobs and jobs[0].started:
                jobs.popleft()
            if not jobs:
                self._groups.remove(group)
                continue
            if group.running >= self.per_group:
                continue
            job = next(
                (
                    j
                    for j in jobs
                    if not j.started
                    and (j.server is None or self._servers.get(j.server, 0) < self.per_server)
                ),
                None,
            )
            if job is None:
                continue
            rank = (int(group.low), group.running, len(jobs), group.seq)
            if best is None or rank < best[0]:
                best = (rank, group, job)
        if best is None:
            return None
        _rank, group, job = best
        job.started = True
        group.jobs.remove(job)
        group.running += 1
        self._running += 1
        if job.server is not None:
            self._servers[job.server] = self._servers.get(job.server, 0) + 1
        return group, job

    def _work(self) -> None:
        while True:
            with self._cond:
                picked = self._pick()
                while picked is None:
                    if self._closed:
                        return
                    self._idle += 1
                    self._cond.wait()
                    self._idle -= 1
                    picked = self._pick()
                if self._closed:
                    return
            group, job = picked
            try:
                job.run()
            finally:
                with self._cond:
                    group.running -= 1
                    self._running -= 1
                    if job.server is not None:
                        left = self._servers[job.server] - 1
                        if left:
                            self._servers[job.server] = left
                        else:
                            del self._servers[job.server]
                    self._cond.notify_all()

    def load(self) -> tuple[int, int]:
        """(jobs running, jobs queued), for the metrics."""
        with self._cond:
            queued = {id(j) for g in self._groups for j in g.jobs if not j.started}
            return self._running, len(queued)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._groups.clear()
            self._cond.notify_all()


class _Review:
    """The groups of one lookup: its network fetches and its local work."""

    __slots__ = ("local", "local_group", "net", "net_group")

    def __init__(self, net: FairScheduler, local: FairScheduler, *, low: bool = False) -> None:
        self.net = net
        self.local = local
        self.net_group = net.group(low=low)
        self.local_group = local.group(low=low)

    def route(self, server: str | None) -> tuple[FairScheduler, _Group]:
        if server is None:
            return self.local, self.local_group
        return self.net, self.net_group


# ----------------------------------------------------------------------------- the cache


class _Upstream:
    """The default fetcher: each rule's trust settings, one HTTP session per rule."""

    def __init__(self, trust_dir: TrustDir, options: Options, remote: RemoteConfig) -> None:
        self.trust_dir = trust_dir
        self.options = options
        self.remote = remote
        self._sessions: dict[int, HttpSession] = {}
        self._lock = threading.Lock()
        #: trust archives named by the policy, each read once (docs/archive.md)
        self._archives: dict[ArchiveSpec, Archive | TrustcheckError] = {}

    def server(self, rule: Rule, gun: str) -> str | None:
        """The Notary server ``rule`` fetches ``gun`` from (None: offline)."""
        from trustcheck.policy.evaluate import rule_remote
        from trustcheck.remote.http import select_server

        cfg = rule_remote(rule, self.remote)
        if cfg is None or cfg.offline or rule.trust.archive is not None:
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
        if rule.trust.archive is not None:  # docs/archive.md: as of its capture time
            from trustcheck.archive.decide import collections_from_spec

            got = collections_from_spec(rule.trust.archive, [gun], at, opts, self._archives)[gun]
            if isinstance(got, TrustcheckError):
                raise got
            return got
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
        self._lock = threading.RLock()
        st = self.settings
        #: network fetches, and the work of rules with no network (docs: fair scheduling)
        self._net = FairScheduler(st.workers, st.per_review, st.per_server, "trustcheck-cache")
        self._local = FairScheduler(
            st.local_workers, st.per_review, st.local_workers, "trustcheck-local"
        )
        #: the queued fetch of each key (a later review queues it in its group too)
        self._jobs: dict[Key, _Job] = {}
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
        review: _Review | None = None  # this lookup's groups, made at its first miss
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is not None and entry.expires > now:
                    self._entries.move_to_end(key)
                    found[key] = entry.value
                    if entry.refresh_at <= now and key not in self._inflight:
                        refresh.append(key)
                    continue
                if review is None:
                    review = _Review(self._net, self._local)
                future = self._inflight.get(key)
                if future is None:
                    future = self._start(key, review)
                else:
                    job = self._jobs.get(key)
                    if job is not None:  # still queued for another review: queue it here too
                        sched, group = review.route(job.server)
                        sched.join(group, job)
                waiting[key] = future
        for value in found.values():
            self.events("negative_hit" if isinstance(value, TrustcheckError) else "hit", "")
        for _ in waiting:
            self.events("miss", "")
        if refresh:
            background = _Review(self._net, self._local, low=True)
            with self._lock:
                for key in refresh:
                    if key not in self._inflight:
                        self.events("refresh", "")
                        self._start(key, background)
        return found, waiting

    def get(self, key: Key, timeout: float | None = None) -> Collection | TrustcheckError:
        """The answer for ``key``, fetching it if needed (blocking; for tools and tests)."""
        found, waiting = self.lookup([key])
        if key in found:
            return found[key]
        return waiting[key].result(timeout)

    # --- filling ---------------------------------------------------------------------

    def _start(self, key: Key, review: _Review) -> Future[Collection | TrustcheckError]:
        """Start obtaining ``key`` for ``review`` (the lock is held)."""
        future: Future[Collection | TrustcheckError] = Future()
        if self._closed:
            future.set_exception(RuntimeError("the trust cache is closed"))
            return future
        self._inflight[key] = future
        started = time.monotonic()
        if self._shared_pool is not None:
            self._shared_pool.submit(
                self._guard, key, future, self._via_shared, started, review
            )
        else:
            self._submit_fetch(key, future, None, None, None, review)
        return future

    def _queue_of(self, key: Key) -> str | None:
        """The Notary server fetching ``key`` talks to (its queue), None: no network."""
        index, gun = key
        try:
            return self.upstream.server(self.policy.rules[index], gun)
        except TrustcheckError:
            return "?"  # the fetch reports the error; it still goes to the network queue

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
                self._jobs.pop(key, None)
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
        review: _Review,
    ) -> None:
        queue = self._queue_of(key)
        job = _Job(
            lambda: self._guard(key, future, self._via_fetch, server, lock, token), queue
        )
        sched, group = review.route(queue)
        try:
            with self._lock:
                self._jobs[key] = job
                sched.submit(group, job)
        except RuntimeError as e:  # shut down
            with self._lock:
                self._inflight.pop(key, None)
                self._jobs.pop(key, None)
            if not future.done():
                future.set_exception(e)

    def _via_shared(
        self,
        key: Key,
        future: Future[Collection | TrustcheckError],
        started: float,
        review: _Review,
    ) -> None:
        """The shared-pool step: a verified shared entry, or else the lock and a fetch."""
        shared = self.shared
        assert shared is not None
        index, gun = key
        rule = self.policy.rules[index]
        server = self.upstream.server(rule, gun)
        if server is None:
            self._submit_fetch(key, future, None, None, None, review)
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
        self._submit_fetch(key, future, server, lock, token, review)

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
            self._jobs.pop(key, None)
            if life > 0:
                self._entries[key] = _Entry(value, now + life, refresh)
                self._entries.move_to_end(key)
                while len(self._entries) > self.settings.max_entries:
                    self._entries.popitem(last=False)

    def _remember(self, gun: str, col: Collection) -> None:
        from trustcheck.core.trusted_set import merge_floors

        versions = {name: check.version for name, check in col.checks.items()}
        with self._lock:
            known = self._trusted.get(gun)
            floors = merge_floors(versions, known.versions if known is not None else None)
            self._trusted[gun] = _Trusted(col.root_raw, floors)

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

    def fetch_load(self) -> dict[str, tuple[int, int]]:
        """(running, queued) fetches per queue: ``network`` and ``local``."""
        return {"network": self._net.load(), "local": self._local.load()}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pending, self._inflight = list(self._inflight.values()), {}
            self._jobs.clear()
        for future in pending:
            if not future.done():
                with contextlib.suppress(InvalidStateError):
                    future.set_exception(RuntimeError("the trust cache is closed"))
        if self._shared_pool is not None:
            self._shared_pool.shutdown(wait=False, cancel_futures=True)
        self._net.close()
        self._local.close()
        self.upstream.close()
