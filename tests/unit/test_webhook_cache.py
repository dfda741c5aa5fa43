"""The webhook's trust cache, shared cache, server config and HTTP app (in-process).

The cache is fed by a fetcher returning collections of the committed fixtures
(written by the real notary client); the shared cache uses the in-memory
store here (tests/integration/test_webhook.py runs it on a real redis-server).
The app is driven through Starlette's in-process client; the real server over
TLS is in the integration tests.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import pod_review

from fixtures.generate import FixtureSet
from trustcheck.api import Options, load_collection
from trustcheck.core.verify import Collection
from trustcheck.errors import NotTrusted, TrustcheckError, UsageError
from trustcheck.local.state import GunState, StateStore
from trustcheck.local.trustdir import TrustDir
from trustcheck.policy.load import parse_policy
from trustcheck.policy.model import Policy, Rule
from trustcheck.remote.config import RemoteConfig
from trustcheck.webhook.app import WebhookServer
from trustcheck.webhook.cache import CacheSettings, TrustCache, verify_files
from trustcheck.webhook.config import ServerConfig, load_config, parse_config, secret_from_env
from trustcheck.webhook.logs import JsonFormatter, ReviewLog
from trustcheck.webhook.metrics import Metrics
from trustcheck.webhook.review import WebhookConfig
from trustcheck.webhook.shared import MemoryStore, SharedCache, is_lock_token, key_fingerprint

POLICY = """\
version: 1
defaults:
  trust:
    server: https://notary.example.com
rules:
  - name: signed
    pattern: localhost/*
  - name: two
    pattern: localhost/signers
    signers: [alice, bob]
"""
SECRET = b"0123456789abcdef0123456789abcdef"
GUN = "localhost/signers"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return parse_policy(POLICY, "policy.yaml", Path("."))


@pytest.fixture(scope="module")
def at(committed_fixtures: FixtureSet) -> datetime:
    return datetime.fromisoformat(committed_fixtures.validation_time)


@pytest.fixture(scope="module")
def verified(committed_fixtures: FixtureSet, at: datetime) -> dict[str, Collection]:
    return {
        gun: load_collection(committed_fixtures.trust_dir, gun, at)
        for gun in ("localhost/signers", "localhost/basic", "localhost/releases")
    }


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Fetcher:
    """Returns fixture collections; counts calls; can block or fail."""

    def __init__(self, verified: dict[str, Collection]) -> None:
        self.verified = verified
        self.calls: list[tuple[int, str]] = []
        self.gate: threading.Event | None = None
        self.fail: TrustcheckError | Exception | None = None
        self._lock = threading.Lock()

    def __call__(self, rule: Rule, gun: str, at: datetime) -> Collection:
        with self._lock:
            self.calls.append((rule.index, gun))
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        if self.fail is not None:
            raise self.fail
        found = self.verified.get(gun)
        if found is None:
            raise NotTrusted("no-trust-data", f"nothing for {gun}")
        return found


@pytest.fixture
def fetcher(verified: dict[str, Collection]) -> Fetcher:
    return Fetcher(verified)


Make = Callable[..., TrustCache]


@pytest.fixture
def make(
    policy: Policy, fetcher: Fetcher, at: datetime, tmp_path: Path
) -> Iterator[Make]:
    made: list[TrustCache] = []

    def build(**kw: Any) -> TrustCache:
        events: list[tuple[str, str]] = kw.pop("events", [])
        kw.setdefault("fetch", fetcher)
        kw.setdefault("now", lambda: at)
        cache = TrustCache(
            kw.pop("policy", policy),
            TrustDir(tmp_path / "trust"),
            kw.pop("options", Options()),
            RemoteConfig(),
            kw.pop("settings", CacheSettings(ttl=60, negative_ttl=10, max_entries=10)),
            events=lambda name, label: events.append((name, label)),
            **kw,
        )
        made.append(cache)
        return cache

    yield build
    for c in made:
        c.close()


# --------------------------------------------------------------------------- local cache


def test_hit_after_the_first_fetch(make: Make, fetcher: Fetcher) -> None:
    events: list[tuple[str, str]] = []
    cache = make(events=events)
    first = cache.get((0, "localhost/basic"), timeout=5)
    second = cache.get((0, "localhost/basic"), timeout=5)
    assert isinstance(first, Collection) and second is first
    assert fetcher.calls == [(0, "localhost/basic")]
    assert [e for e, _ in events] == ["miss", "hit"]
    assert cache.peek((0, "localhost/basic")) is first
    assert cache.peek((1, "localhost/basic")) is None  # keyed by rule as well


def test_single_flight(make: Make, fetcher: Fetcher) -> None:
    cache = make()
    fetcher.gate = threading.Event()
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(cache.get, (1, GUN), 10) for _ in range(16)]
        time.sleep(0.2)
        assert fetcher.calls == [(1, GUN)]
        fetcher.gate.set()
        results = [f.result() for f in futures]
    assert len({id(r) for r in results}) == 1 and isinstance(results[0], Collection)
    assert fetcher.calls == [(1, GUN)]


def test_ttl_and_refresh_ahead(make: Make, fetcher: Fetcher) -> None:
    clock = Clock()
    events: list[tuple[str, str]] = []
    cache = make(clock=clock, events=events)
    cache.get((0, "localhost/basic"), timeout=5)
    clock.t += 30
    cache.get((0, "localhost/basic"), timeout=5)
    assert len(fetcher.calls) == 1
    clock.t += 20  # 50 s: past 80 % of the TTL: served, and refreshed in the background
    found, waiting = cache.lookup([(0, "localhost/basic")])
    assert (0, "localhost/basic") in found and not waiting
    deadline = time.monotonic() + 5
    while len(fetcher.calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(fetcher.calls) == 2 and ("refresh", "") in events
    clock.t += 59  # the refreshed entry lives 60 s from its refresh
    assert cache.peek((0, "localhost/basic")) is not None
    clock.t += 2
    assert cache.peek((0, "localhost/basic")) is None
    cache.get((0, "localhost/basic"), timeout=5)
    assert len(fetcher.calls) == 3


def test_negative_cache(make: Make, fetcher: Fetcher) -> None:
    clock = Clock()
    events: list[tuple[str, str]] = []
    cache = make(clock=clock, events=events)
    got = cache.get((0, "localhost/absent"), timeout=5)
    assert isinstance(got, NotTrusted) and got.code == "no-trust-data"
    assert cache.get((0, "localhost/absent"), timeout=5) is got
    assert len(fetcher.calls) == 1
    assert ("upstream_error", "no-trust-data") in events and ("negative_hit", "") in events
    clock.t += 11
    cache.get((0, "localhost/absent"), timeout=5)
    assert len(fetcher.calls) == 2


def test_bounded_size(make: Make, fetcher: Fetcher) -> None:
    cache = make(settings=CacheSettings(ttl=60, negative_ttl=10, max_entries=2))
    for gun in ("localhost/basic", "localhost/signers", "localhost/releases"):
        cache.get((0, gun), timeout=5)
    assert len(cache) == 2
    assert cache.peek((0, "localhost/basic")) is None  # least recently used went first
    assert cache.peek((0, "localhost/releases")) is not None


def test_life_never_passes_the_metadata_expiry(
    make: Make, verified: dict[str, Collection]
) -> None:
    col = verified["localhost/basic"]
    earliest = min(c.expires for c in col.checks.values())
    clock = Clock()
    cache = make(clock=clock, now=lambda: earliest - timedelta(seconds=5))
    cache.get((0, "localhost/basic"), timeout=5)
    clock.t += 4
    assert cache.peek((0, "localhost/basic")) is not None
    clock.t += 2
    assert cache.peek((0, "localhost/basic")) is None


def test_an_unexpected_exception_is_not_cached(make: Make, fetcher: Fetcher) -> None:
    cache = make()
    fetcher.fail = RuntimeError("bug")
    with pytest.raises(RuntimeError):
        cache.get((0, "localhost/basic"), timeout=5)
    fetcher.fail = None
    assert isinstance(cache.get((0, "localhost/basic"), timeout=5), Collection)
    assert len(fetcher.calls) == 2


# --------------------------------------------------------------------------- shared cache


def test_shared_cache_lets_a_second_replica_skip_the_fetch(
    make: Make, fetcher: Fetcher, at: datetime
) -> None:
    store = MemoryStore()
    wall = lambda: 5000.0  # noqa: E731
    a = make(shared=SharedCache(store, SECRET, 60, wall=wall))
    b_events: list[tuple[str, str]] = []
    b_fetcher = Fetcher(fetcher.verified)
    b = make(shared=SharedCache(store, SECRET, 60, wall=wall), fetch=b_fetcher, events=b_events)
    col_a = a.get((1, GUN), timeout=5)
    assert isinstance(col_a, Collection) and fetcher.calls == [(1, GUN)]
    col_b = b.get((1, GUN), timeout=5)
    assert b_fetcher.calls == []  # not fetched: read from the shared cache...
    assert ("shared_hit", "") in b_events
    # ... and verified again here: a new collection with the same content
    assert isinstance(col_b, Collection) and col_b is not col_a
    assert col_b.root_raw == col_a.root_raw
    assert {n: c.version for n, c in col_b.checks.items()} == {
        n: c.version for n, c in col_a.checks.items()
    }


def _tamper(shared: SharedCache, key: str, change: Callable[[dict[str, Any]], None]) -> None:
    value = shared.store.get(key, shared.max_bytes)
    assert value is not None
    payload = value.split(b".", 2)[2]
    doc = orjson.loads(payload)
    change(doc)
    files = {k: base64.b64decode(v) for k, v in doc["files"].items()}
    shared.store.set(key, shared.encode(doc["server"], doc["gun"], files, doc["fetched"]), 60)


def test_shared_entries_are_verified_again_even_with_a_good_mac(
    make: Make, fetcher: Fetcher
) -> None:
    store = MemoryStore()
    wall = lambda: 5000.0  # noqa: E731
    shared = SharedCache(store, SECRET, 60, wall=wall)
    make(shared=shared).get((1, GUN), timeout=5)
    key = shared.key("https://notary.example.com", GUN)

    def swap_digest(doc: dict[str, Any]) -> None:
        raw = base64.b64decode(doc["files"]["targets/releases"])
        doc["files"]["targets/releases"] = base64.b64encode(raw.replace(b'"v2"', b'"v9"')).decode()

    _tamper(shared, key, swap_digest)
    events: list[tuple[str, str]] = []
    b_fetcher = Fetcher(fetcher.verified)
    b = make(shared=SharedCache(store, SECRET, 60, wall=wall), fetch=b_fetcher, events=events)
    got = b.get((1, GUN), timeout=5)
    assert isinstance(got, Collection)
    assert ("shared_rejected", "hash-mismatch") in events
    assert b_fetcher.calls == [(1, GUN)]  # fetched from the server instead


@pytest.mark.parametrize("case", ["wrong-secret", "too-old", "garbage", "other-gun"])
def test_shared_entries_that_are_not_authentic_or_fresh_are_ignored(
    case: str, make: Make, fetcher: Fetcher, verified: dict[str, Collection]
) -> None:
    store = MemoryStore()
    server = "https://notary.example.com"
    writer = SharedCache(store, b"another secret of 32 bytes......", 60, wall=lambda: 5000.0)
    reader = SharedCache(store, SECRET, 60, wall=lambda: 5000.0)
    key = reader.key(server, GUN)
    col = verified[GUN]
    if case == "wrong-secret":
        writer.put(server, GUN, col)
    elif case == "too-old":
        old = SharedCache(store, SECRET, 60, wall=lambda: 5000.0 - 61)
        old.put(server, GUN, col)
    elif case == "garbage":
        store.set(key, b"tc1.00.{not json", 60)
    else:
        files = {"root": col.root_raw}
        store.set(key, reader.encode(server, "localhost/basic", files, 5000.0), 60)
    events: list[tuple[str, str]] = []
    cache = make(shared=reader, events=events)
    assert isinstance(cache.get((1, GUN), timeout=5), Collection)
    assert fetcher.calls == [(1, GUN)]
    if case != "too-old":
        assert ("shared_rejected", "") in events


def test_shared_bytes_cannot_roll_back_what_was_trusted(
    make: Make, fetcher: Fetcher, tmp_path: Path, verified: dict[str, Collection]
) -> None:
    store = MemoryStore()
    wall = lambda: 5000.0  # noqa: E731
    make(shared=SharedCache(store, SECRET, 60, wall=wall)).get((1, GUN), timeout=5)
    state = StateStore(tmp_path / "state")
    col = verified[GUN]
    with state.session(GUN) as (_previous, recorder):
        recorder.state = GunState(GUN, col.root_raw, {"timestamp": 10_000})
    events: list[tuple[str, str]] = []
    b_fetcher = Fetcher(fetcher.verified)
    b_fetcher.fail = NotTrusted("version-rollback", "the server is behind too")
    b = make(
        shared=SharedCache(store, SECRET, 60, wall=wall),
        fetch=b_fetcher,
        events=events,
        options=Options(state=state),
    )
    got = b.get((1, GUN), timeout=5)
    assert isinstance(got, NotTrusted)
    assert ("shared_rejected", "version-rollback") in events


def test_waiting_for_another_replica(
    make: Make, fetcher: Fetcher, verified: dict[str, Collection]
) -> None:
    store = MemoryStore()
    shared = SharedCache(store, SECRET, 60, wall=lambda: 5000.0)
    server = "https://notary.example.com"
    assert store.acquire(shared.lock_key(server, GUN), 10)  # "another replica" is fetching
    events: list[tuple[str, str]] = []
    cache = make(shared=shared, events=events, shared_wait=5.0)
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(cache.get, (1, GUN), 10)
        time.sleep(0.2)
        assert not future.done()
        shared.put(server, GUN, verified[GUN])  # the other replica publishes
        assert isinstance(future.result(), Collection)
    assert fetcher.calls == []
    assert ("shared_hit", "") in events

def test_waiting_is_bounded_and_implausible_locks_are_not_waited_on(
    make: Make, fetcher: Fetcher, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore()
    server = "https://notary.example.com"
    shared = SharedCache(store, SECRET, 60, wall=lambda: 5000.0)
    lock = shared.lock_key(server, GUN)
    # a lock without expiry (no replica writes one): fetched at once, no waiting
    store.set(lock, b"held by an attacker", None)
    events: list[tuple[str, str]] = []
    cache = make(shared=shared, events=events, shared_wait=30.0)
    with caplog.at_level(logging.WARNING, "trustcheck.webhook.review"):
        assert isinstance(cache.get((1, GUN), timeout=5), Collection)
    assert fetcher.calls == [(1, GUN)]
    assert ("shared_rejected", "lock") in events
    assert "holds a value no replica writes" in caplog.text
    assert store.get(lock, 100) == b"held by an attacker"  # not ours: never deleted
    # a well-formed lock is waited on for shared_wait at most, then fetched anyway
    other = "localhost/basic"
    token = store.acquire(shared.lock_key(server, other), 20)
    assert token is not None and is_lock_token(token)
    cache2 = make(shared=shared, shared_wait=0.3)
    got = cache2.get((0, other), timeout=5)
    assert isinstance(got, Collection) and (0, other) in fetcher.calls
    assert store.get(shared.lock_key(server, other), 100) == token


def test_a_shared_hit_lives_ttl_minus_its_age(
    make: Make, fetcher: Fetcher, verified: dict[str, Collection]
) -> None:
    store = MemoryStore()
    server = "https://notary.example.com"
    wall = [5000.0]
    shared = SharedCache(store, SECRET, 60, wall=lambda: wall[0])
    shared.put(server, GUN, verified[GUN], fetched=5000.0)
    wall[0] += 40  # another replica fetched it 40 s ago
    clock = Clock()
    events: list[tuple[str, str]] = []
    cache = make(shared=shared, clock=clock, events=events)
    assert isinstance(cache.get((1, GUN), timeout=5), Collection)
    assert ("shared_hit", "") in events and fetcher.calls == []
    clock.t += 19
    assert cache.peek((1, GUN)) is not None
    clock.t += 2  # 61 s after the other replica's fetch: gone (not 40 + 60 s)
    assert cache.peek((1, GUN)) is None
    # an entry in the last fifth of its life is not taken: fetched instead
    wall[0] = 5000.0 + 55
    cache2 = make(shared=SharedCache(store, SECRET, 60, wall=lambda: wall[0]))
    assert isinstance(cache2.get((1, GUN), timeout=5), Collection)
    assert fetcher.calls == [(1, GUN)]


def test_entries_rejected_for_age_or_size_are_logged(
    verified: dict[str, Collection], caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore()
    server = "https://notary.example.com"
    old = SharedCache(store, SECRET, 60, wall=lambda: 5000.0 - 61)
    old.put(server, GUN, verified[GUN])
    reader = SharedCache(store, SECRET, 60, wall=lambda: 5000.0, max_bytes=64 << 10)
    with caplog.at_level(logging.WARNING, "trustcheck.webhook.review"):
        assert reader.get(server, GUN) is None
    assert f"shared cache entry for {GUN} rejected: fetched 61.0s ago, the TTL is 60s" in (
        caplog.text
    )
    store.set(reader.key(server, GUN), b"x" * (100 << 10), 60)
    raw = reader.read(server, GUN)
    assert raw is not None and len(raw) == (64 << 10) + 1  # never more than cap + 1 bytes
    with caplog.at_level(logging.WARNING, "trustcheck.webhook.review"):
        assert reader.decode(server, GUN, raw) is None
    assert "larger than 65536 bytes" in caplog.text
    with pytest.raises(UsageError, match="only whitespace"):
        SharedCache(store, b" " * 32, 60)
    assert key_fingerprint(SECRET) == reader.fingerprint and len(reader.fingerprint) == 16
    assert key_fingerprint(SECRET + b"x") != reader.fingerprint


def test_floors_outlive_evicted_entries_and_come_from_the_trust_dir(
    make: Make, fetcher: Fetcher, verified: dict[str, Collection], at: datetime,
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    shared = SharedCache(store, SECRET, 60, wall=lambda: 5000.0)
    cache = make(shared=shared, settings=CacheSettings(max_entries=1))
    for gun in ("localhost/basic", "localhost/releases", "localhost/signers"):
        assert isinstance(cache.get((0, gun), timeout=5), Collection)
    assert len(cache) == 1
    for gun in ("localhost/basic", "localhost/releases", "localhost/signers"):
        assert cache.floors(gun) == {n: c.version for n, c in verified[gun].checks.items()}
    # a shared hit is verified against the trust dir's root and written back to it
    col = verified["localhost/basic"]
    td = TrustDir(tmp_path / "td")
    files = {"root": col.root_raw, "timestamp": col.timestamp.raw, "snapshot": col.snapshot.raw}
    files.update((n, m.raw) for n, m in col.targets.items())
    verify_files("localhost/basic", files, at, Options(), trust_dir=td)
    meta = td.metadata_dir("localhost/basic")
    assert (meta / "root.json").read_bytes() == col.root_raw
    assert (meta / "timestamp.json").read_bytes() == col.timestamp.raw
    # another repository's root in the trust dir: the shared root is a rotation it
    # does not sign
    other = verified["localhost/releases"].root_raw
    (meta / "root.json").write_bytes(other)
    with pytest.raises(NotTrusted) as e:
        verify_files("localhost/basic", files, at, Options(), trust_dir=td)
    assert e.value.code in ("root-rotation-invalid", "root-cert-cn-mismatch")
    assert (meta / "root.json").read_bytes() == other  # nothing written



def test_shared_cache_secret_and_files(verified: dict[str, Collection], at: datetime) -> None:
    with pytest.raises(UsageError, match="at least 16 bytes"):
        SharedCache(MemoryStore(), b"short", 60)
    col = verified["localhost/basic"]
    files = {"root": col.root_raw, "timestamp": col.timestamp.raw, "snapshot": col.snapshot.raw}
    files.update((n, m.raw) for n, m in col.targets.items())
    again = verify_files("localhost/basic", files, at, Options())
    assert again.root_raw == col.root_raw
    with pytest.raises(NotTrusted) as e:
        tampered = files["snapshot"].replace(b'"version":', b'"versioN":', 1)
        verify_files("localhost/basic", {**files, "snapshot": tampered}, at, Options())
    assert e.value.code == "hash-mismatch"
    with pytest.raises(NotTrusted) as e:
        verify_files("localhost/signers", files, at, Options())
    assert e.value.code == "root-cert-cn-mismatch"


# --------------------------------------------------------------------------- config


def test_config_defaults() -> None:
    cfg = parse_config({})
    assert cfg.webhook == WebhookConfig()
    assert cfg.webhook.deadline == 8.0 and cfg.webhook.mutation == "tag-digest"
    assert cfg.cache == CacheSettings()
    assert cfg.remote is not None and cfg.remote.timeout == 3.0 and cfg.remote.retries == 1
    assert cfg.acr.secret is None and cfg.cache_url is None
    assert load_config(None).webhook == cfg.webhook


def test_config_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "cache").write_text("c" * 32 + "\n")
    (tmp_path / "secrets" / "acr").write_text("a" * 20)
    (tmp_path / "secrets" / "notary").write_text("pw\n")
    path = tmp_path / "config.yaml"
    path.write_text(
        """\
version: 1
deadline_seconds: 5
mutation: digest
updates: changed
annotation: example.com/images
exempt:
  namespaces: [kube-system, trustcheck, "tenant-*"]
  objects:
    - {namespace: ops, kind: DaemonSet, name: "node-exporter*"}
cache:
  ttl_seconds: 120
  negative_ttl_seconds: 5
  max_entries: 50
  workers: 4
  url: redis://redis.trustcheck.svc:6379/0
  secret_file: secrets/cache
trust:
  trust_dir: /var/lib/trustcheck/trust
  no_tofu: true
  delegation_cert_expiry: reject
upstream:
  server: https://notary.example.com:4443
  username: robot
  password_file: secrets/notary
  timeout_seconds: 2
  retries: 0
acr:
  secret_file: secrets/acr
  header: X-Acr-Secret
  mark_failed: true
  registry: https://myreg.azurecr.io
logging:
  reviews: denied
"""
    )
    cfg = load_config(path)
    w = cfg.webhook
    assert (w.deadline, w.mutation, w.updates, w.annotation) == (
        5.0,
        "digest",
        "changed",
        "example.com/images",
    )
    assert w.exempt_namespaces == ("kube-system", "trustcheck", "tenant-*")
    assert [str(o) for o in w.exempt_objects] == [
        "namespace=ops, kind=DaemonSet, name=node-exporter*"
    ]
    assert cfg.cache == CacheSettings(ttl=120, negative_ttl=5, max_entries=50, workers=4)
    assert cfg.cache_url == "redis://redis.trustcheck.svc:6379/0"
    assert cfg.cache_secret == b"c" * 32
    assert cfg.trust_dir == Path("/var/lib/trustcheck/trust") and cfg.no_tofu is True
    assert cfg.delegation_cert_expiry == "reject"
    r = cfg.remote
    assert r is not None
    assert (r.server, r.username, r.password, r.timeout, r.retries) == (
        "https://notary.example.com:4443",
        "robot",
        "pw",
        2.0,
        0,
    )
    assert cfg.acr.secret == b"a" * 20 and cfg.acr.header == "X-Acr-Secret"
    assert cfg.acr.mark_failed is True and cfg.log_reviews == "denied"
    assert cfg.acr.registry == "https://myreg.azurecr.io"


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"deadline": 5}, "deadline: unknown key"),
        ({"deadline_seconds": 30}, "deadline_seconds: must be between 0.1 and 29"),
        ({"deadline_seconds": "5"}, "deadline_seconds: must be a number"),
        ({"mutation": "yes"}, "mutation: must be one of tag-digest, digest, off"),
        ({"exempt": {"namespaces": ["*"]}}, "only wildcards"),
        ({"exempt": {"objects": [{}]}}, "is empty"),
        ({"exempt": {"objects": [{"kind": "Pod"}]}}, "names only a kind"),
        ({"exempt": {"object": []}}, "exempt.object: unknown key"),
        ({"cache": {"ttl_seconds": -1}}, "cache.ttl_seconds"),
        ({"cache": {"max_entries": True}}, "cache.max_entries: must be an integer"),
        ({"cache": {"max_entry_bytes": 1 << 30}}, "cache.max_entry_bytes: must be between"),
        ({"tls_reload_seconds": 0}, "tls_reload_seconds: must be between 0.1"),
        ({"upstream": {"server": "http://notary.example.com"}}, "upstream"),
        ({"upstream": {"username": "robot"}}, "username and password_file go together"),
        ({"upstream": {"offline": "no"}}, "upstream.offline: must be true or false"),
        ({"trust": {"delegation_cert_expiry": "maybe"}}, "delegation_cert_expiry"),
        ({"logging": {"reviews": "some"}}, "logging.reviews"),
        ({"version": 2}, "version: must be between 1 and 1"),
        ([1], "must be a mapping"),
    ],
)
def test_config_errors(doc: Any, needle: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_config(doc, "config.yaml")
    assert e.value.code == "webhook-config-invalid"
    assert e.value.message.startswith("config.yaml: ") and needle in e.value.message


def test_config_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("deadline_seconds: 5\ndeadline_seconds: 6\n")
    with pytest.raises(UsageError, match="line 2: 'deadline_seconds' appears twice"):
        load_config(path)
    path.write_text("cache: [\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_config(path)
    path.write_text("acr:\n  secret_file: missing\n")
    with pytest.raises(UsageError, match=r"acr\.secret_file: cannot read"):
        load_config(path)
    (tmp_path / "short").write_text("abc")
    path.write_text("acr:\n  secret_file: short\n")
    with pytest.raises(UsageError, match="at least 16 characters"):
        load_config(path)
    with pytest.raises(UsageError, match="cannot read it"):
        load_config(tmp_path / "absent.yaml")
    # the receiver's credentials need the one registry they may go to
    (tmp_path / "long").write_text("a" * 20 + "\n")
    path.write_text("acr:\n  secret_file: long\n  mark_failed: true\n")
    with pytest.raises(UsageError, match=r"acr\.registry: the ACR receiver needs the registry"):
        load_config(path)
    path.write_text("acr:\n  secret_file: long\n  registry: ftp://r.example.com\n")
    with pytest.raises(UsageError, match=r"acr\.registry: "):
        load_config(path)
    # a secret of only whitespace is refused (file and environment alike)
    (tmp_path / "blank").write_text("  \n\t\n")
    path.write_text("cache:\n  secret_file: blank\n")
    with pytest.raises(UsageError, match="empty or only whitespace"):
        load_config(path)
    with pytest.raises(UsageError, match="only whitespace"):
        secret_from_env("TRUSTCHECK_CACHE_SECRET", {"TRUSTCHECK_CACHE_SECRET": " \n"})
    (tmp_path / "nl").write_text("c" * 32 + "\n")
    path.write_text("cache:\n  secret_file: nl\n")
    from_file = load_config(path).cache_secret
    env = {"TRUSTCHECK_CACHE_SECRET": "c" * 32 + "\n"}
    assert from_file == secret_from_env("TRUSTCHECK_CACHE_SECRET", env) == b"c" * 32
    assert secret_from_env("TRUSTCHECK_CACHE_SECRET", {}) is None


# --------------------------------------------------------------------------- the app, in-process


class App:
    def __init__(self, server: WebhookServer, fetcher: Fetcher, logs: io.StringIO) -> None:
        self.server = server
        self.fetcher = fetcher
        self.logs = logs

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs.getvalue().splitlines() if line]

    @asynccontextmanager
    async def client(self, *, lifespan: bool = True) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=self.server.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://webhook") as c:
            if not lifespan:
                yield c
                return
            async with self.server.lifespan(self.server._starlette):
                yield c

    def run(self, test: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
        async def main() -> None:
            async with self.client() as c:
                await test(c)

        asyncio.run(main())


@pytest.fixture
def app(
    policy: Policy, fetcher: Fetcher, at: datetime, tmp_path: Path
) -> Iterator[App]:
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("trustcheck.webhook.review")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    metrics = Metrics()
    cache = TrustCache(
        policy,
        TrustDir(tmp_path / "trust"),
        Options(),
        RemoteConfig(),
        fetch=fetcher,
        now=lambda: at,
        events=metrics.event,
    )
    config = ServerConfig(webhook=WebhookConfig(deadline=0.5), max_body_bytes=64 * 1024)
    server = WebhookServer(
        policy, config, cache, options=Options(), metrics=metrics, review_log=ReviewLog(logs)
    )
    yield App(server, fetcher, logs)
    logger.removeHandler(handler)
    cache.close()


def test_app_reviews_probes_and_metrics(app: App) -> None:
    async def test(client: httpx.AsyncClient) -> None:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).json()["status"] == "ready"
        r = await client.post("/mutate", json=pod_review(["localhost/basic:v1"], "u-1"))
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        resp = r.json()["response"]
        assert resp["allowed"] is True and resp["patchType"] == "JSONPatch"
        r = await client.post("/validate", json=pod_review(["localhost/basic:nope"], "u-2"))
        resp = r.json()["response"]
        assert resp["uid"] == "u-2" and resp["allowed"] is False
        assert "[tag-not-signed]" in resp["status"]["message"]
        metrics = (await client.get("/metrics")).text
        reviews = "trustcheck_webhook_reviews_total"
        assert f'{reviews}{{endpoint="mutate",result="allowed"}} 1.0' in metrics
        assert f'{reviews}{{endpoint="validate",result="denied"}} 1.0' in metrics
        assert 'trustcheck_webhook_decisions_total{result="deny",rule="signed"} 1.0' in metrics
        assert 'trustcheck_webhook_cache_lookups_total{result="miss"} 1.0' in metrics
        assert 'trustcheck_webhook_cache_lookups_total{result="hit"} 1.0' in metrics
        assert "trustcheck_webhook_review_seconds_bucket" in metrics
        assert "trustcheck_webhook_cache_entries 1.0" in metrics

    app.run(test)
    reviews = [line for line in app.log_lines() if line["msg"] == "review"]
    assert [r["result"] for r in reviews] == ["allowed", "denied"]
    assert reviews[1]["images"][0]["code"] == "tag-not-signed"
    assert reviews[1]["user"] == "system:serviceaccount:ci:deployer"
    assert reviews[1]["dry_run"] is False


def test_app_bad_bodies(app: App) -> None:
    async def test(client: httpx.AsyncClient) -> None:
        assert (await client.post("/validate", content=b"{not json")).status_code == 400
        r = await client.post("/validate", json={"kind": "Nope"})
        assert r.status_code == 400 and "not an AdmissionReview" in r.json()["error"]
        r = await client.post("/validate", content=b"x" * (64 * 1024 + 1))
        assert r.status_code == 413

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield b" " * 1024

        # no Content-Length: cut while streaming
        assert (await client.post("/mutate", content=chunks())).status_code == 413
        assert (await client.get("/validate")).status_code == 405
        assert (await client.get("/healthz")).status_code == 200  # still serving

    app.run(test)


def test_app_internal_error_is_a_deny_with_a_full_log(app: App) -> None:
    app.fetcher.fail = RuntimeError("a bug in the fetcher")
    got: list[httpx.Response] = []

    async def test(client: httpx.AsyncClient) -> None:
        got.append(await client.post("/validate", json=pod_review(["localhost/basic:v1"], "u-9")))

    app.run(test)
    assert got[0].status_code == 200
    resp = got[0].json()["response"]
    assert resp["uid"] == "u-9" and resp["allowed"] is False
    assert resp["status"]["message"].startswith("trustcheck: [internal-error] the webhook failed")
    (line,) = [x for x in app.log_lines() if x["level"] == "error"]
    assert line["uid"] == "u-9" and line["error"] == "RuntimeError: a bug in the fetcher"
    assert "Traceback" in line["traceback"] and line["error_id"] in resp["status"]["message"]


def test_app_deadline(app: App) -> None:
    gate = app.fetcher.gate = threading.Event()

    async def test(client: httpx.AsyncClient) -> None:
        start = time.monotonic()
        r = await client.post("/validate", json=pod_review(["localhost/basic:v1"], "u-1"))
        took = time.monotonic() - start
        gate.set()
        resp = r.json()["response"]
        assert resp["allowed"] is False and "[admission-deadline]" in resp["status"]["message"]
        assert 0.45 <= took < 2.0
        # the fetch finished into the cache: the retry passes at once
        deadline = time.monotonic() + 5
        while app.server.cache.peek((0, "localhost/basic")) is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        r = await client.post("/validate", json=pod_review(["localhost/basic:v1"], "u-1"))
        assert r.json()["response"]["allowed"] is True
        metrics = (await client.get("/metrics")).text
        assert "trustcheck_webhook_deadline_exceeded_total 1.0" in metrics

    app.run(test)


def test_app_acr_receiver_needs_its_secret(app: App) -> None:
    async def test(client: httpx.AsyncClient) -> None:
        ping = {"action": "ping"}
        assert (await client.post("/acr/quarantine", json=ping)).status_code == 404
        app.server.config.acr.secret = b"s" * 20
        assert (await client.post("/acr/quarantine", json=ping)).status_code == 401
        wrong = {"X-Trustcheck-Secret": "wrong" * 4}
        r = await client.post("/acr/quarantine", json=ping, headers=wrong)
        assert r.status_code == 401
        h = {"X-Trustcheck-Secret": "s" * 20}
        r = await client.post("/acr/quarantine", json=ping, headers=h)
        assert r.json() == {"status": "pong"}
        r = await client.post("/acr/quarantine", json={"action": "push"}, headers=h)
        assert r.status_code == 202
        r = await client.post("/acr/quarantine", json={"action": "quarantine"}, headers=h)
        assert r.status_code == 400
        bad = {
            "action": "quarantine",
            "target": {"repository": "team/app", "digest": "sha256:1"},
            "request": {"host": "r.example.com"},
        }
        # no registry configured: no event is acted on (credentials go nowhere)
        r = await client.post("/acr/quarantine", json=bad, headers=h)
        assert r.status_code == 403 and "acr.registry" in r.json()["error"]
        app.server.config.acr.registry = "https://r.example.com"
        r = await client.post("/acr/quarantine", json=bad, headers=h)
        assert r.status_code == 400 and r.json()["code"] == "invalid-reference"
        for host in ("evil.example.com", "r.example.com:8443", "r.example.com.evil.io",
                     "user@r.example.com.evil.io", "[::1]", "r.example.com/x",
                     "r.example.com@evil.io", "r.example.com:443/../x", " r.example.com"):
            other = {**bad, "request": {"host": host}}
            r = await client.post("/acr/quarantine", json=other, headers=h)
            assert r.status_code == 403, host
        ok = {**bad, "request": {"host": "R.example.com:443"}}
        r = await client.post("/acr/quarantine", json=ok, headers=h)
        assert r.status_code == 400 and r.json()["code"] == "invalid-reference"

    app.run(test)


def test_readyz_is_503_outside_the_lifespan(app: App) -> None:
    async def main() -> None:
        async with app.client(lifespan=False) as client:
            assert (await client.get("/readyz")).status_code == 503

    asyncio.run(main())


# --------------------------------------------------------------------------- serve refuses


def test_serve_refuses_bad_input(trustcheck_cli: Callable[..., Any], tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nrules:\n  - pattern: localhost/*\n")
    cert = tmp_path / "tls.crt"
    base = ["serve", "--policy", str(policy), "--tls-key", str(tmp_path / "tls.key")]
    run = trustcheck_cli(*base, "--tls-cert", str(cert))
    assert run.code == 2 and "--tls-cert" in run.stderr and "TLS only" in run.stderr
    cert.write_text("not a certificate")
    (tmp_path / "tls.key").write_text("not a key")
    run = trustcheck_cli(*base, "--tls-cert", str(cert), "--cache", "http://redis")
    assert run.code == 2 and "--cache must be a redis://" in run.stderr
    bad = tmp_path / "config.yaml"
    bad.write_text("mutation: always\n")
    run = trustcheck_cli(*base, "--tls-cert", str(cert), "--config", str(bad))
    assert run.code == 2 and "[webhook-config-invalid]" in run.stderr
    run = trustcheck_cli(*base, "--tls-cert", str(cert), "--cache", "redis://127.0.0.1:1/0")
    assert run.code == 2 and "cache.secret_file" in run.stderr
    (tmp_path / "empty.yaml").write_text("")
    run = trustcheck_cli(
        "serve", "--policy", str(tmp_path / "empty.yaml"), "--tls-cert", str(cert),
        "--tls-key", str(tmp_path / "tls.key"),
    )
    assert run.code == 2 and "[policy-invalid]" in run.stderr
    run = trustcheck_cli(*base, "--tls-cert", str(cert), "--trust-dir", str(tmp_path / "t"))
    assert run.code == 2 and "cannot load --tls-cert/--tls-key" in run.stderr
    assert "Traceback" not in run.stderr
