"""Fair fetching (docs/webhook.md#fair-fetching): one review naming 400 repositories
against a slow Notary server does not starve the others.

A real notary-server with repositories published by the real notary client,
behind the fault proxy (tests/integration/proxy.py) that delays every answer
about the 400 repositories of the big review; a real `trustcheck serve`
process over TLS. While the big review's fetches run (400 x a delayed
request, against 8 workers: its own review ends at the deadline), small cold
reviews are sent, each naming a repository never fetched before:

* on the same Notary server, not delayed;
* on the same Notary server and delayed too (a slow fetch of its own);
* under an offline rule (trust data already in the trust dir: no network).

Each must be admitted: before fetches were scheduled per review they queued
behind the 400 (about 50 s of work) and were denied `admission-deadline`.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import admission_review, pod_spec, workload
from proxy import Fault, FaultProxy

from fixtures.notary_harness import (
    NotaryClient,
    NotaryServer,
    make_tls,
    missing_notary_binaries,
)

sys.path.insert(0, str(Path(__file__).parent))
from test_webhook_server import Webhook

pytestmark = pytest.mark.integration

REG = "registry.example.com"
BIG = 400
DELAY = 1.0
DEADLINE = 6.0
_UIDS = iter(range(1, 1_000_000))


@dataclass
class World:
    webhook: Webhook
    proxy: FaultProxy
    digests: dict[str, str]


def _publish(pub: NotaryClient, gun: str) -> str:
    data = gun.encode()
    digest = hashlib.sha256(data).hexdigest()
    pub.init(gun)
    pub.addhash(gun, "v1", len(data), digest, [])
    pub.publish(gun)
    return "sha256:" + digest


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    missing = missing_notary_binaries()
    if missing:
        pytest.skip("!!! WEBHOOK FAIRNESS TESTS SKIPPED: missing " + ", ".join(missing) + " !!!")
    base = tmp_path_factory.mktemp("fairness")
    tls = make_tls(base / "tls")
    with (
        NotaryServer(base / "notary", tls=tls) as server,
        FaultProxy(server.url, tls.ca_cert, tls.server_cert, tls.server_key) as proxy,
    ):
        pub = NotaryClient.for_server(base / "publisher", server)
        guns = [f"{REG}/team/app", f"{REG}/team/other", f"{REG}/slow/app", f"{REG}/offline/app"]
        digests = {gun: _publish(pub, gun) for gun in guns}
        # the offline rule reads the webhook's trust dir: the notary client's own copy
        # (`notary list` caches the timestamp too)
        assert pub.list_targets(f"{REG}/offline/app")
        trust = base / "serve" / "trust"
        src = base / "publisher" / "tuf" / REG / "offline" / "app"
        shutil.copytree(src, trust / "tuf" / REG / "offline" / "app")
        policy = base / "policy.yaml"
        policy.write_text(
            f"""\
version: 1
defaults:
  trust:
    server: {proxy.url}
rules:
  - name: offline
    pattern: "{REG}/offline/*"
    trust:
      offline: true
  - name: everything
    pattern: "{REG}/**"
"""
        )
        config = {
            "deadline_seconds": DEADLINE,
            "upstream": {
                "tls_ca": str(tls.ca_cert),
                "retries": 0,
                "timeout_seconds": 10,
            },
            "cache": {"workers": 8, "per_review": 4, "per_server": 6},
            "logging": {"reviews": "denied"},
        }
        # every answer about the big review's repositories, and about slow/, waits
        proxy.add(
            Fault(f"/{REG}/big/", "delay", times=None, delay=DELAY),
            Fault(f"/{REG}/slow/", "delay", times=None, delay=DELAY / 4),
        )
        webhook = Webhook(base / "serve", tls, policy, config).start()
        try:
            yield World(webhook, proxy, digests)
        finally:
            webhook.stop()


def _review(w: World, images: list[str]) -> dict[str, Any]:
    doc = admission_review(
        "Pod",
        workload("Pod", pod_spec(images)),
        uid=f"00000000-0000-4000-8000-{next(_UIDS):012d}",
    )
    return w.webhook.review(doc, mutate=False)


def _metrics(w: World) -> dict[str, float]:
    assert w.webhook.client is not None
    out = {}
    for line in w.webhook.client.get("/metrics").text.splitlines():
        if line.startswith("trustcheck_webhook_fetches{"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_small_cold_reviews_are_admitted_while_a_400_repository_review_runs(
    world: World,
) -> None:
    w = world
    big_images = [f"{REG}/big/r{i:03d}:v1" for i in range(BIG)]
    big: dict[str, Any] = {}
    started = threading.Event()

    def send_big() -> None:
        started.set()
        big.update(_review(w, big_images))

    t = threading.Thread(target=send_big)
    t.start()
    started.wait()
    # the big review's first fetches are on their way before the small ones start
    for _ in range(400):
        if any(f"/{REG}/big/" in e.path for e in list(w.proxy.log)):
            break
        time.sleep(0.025)
    # the metrics show the big review's queue, a few of its fetches at a time
    metrics = _metrics(w)
    assert metrics['trustcheck_webhook_fetches{queue="network",state="queued"}'] > BIG / 2
    assert 0 < metrics['trustcheck_webhook_fetches{queue="network",state="running"}'] <= 4
    small: dict[str, dict[str, Any]] = {}
    for gun in (f"{REG}/team/app", f"{REG}/slow/app", f"{REG}/offline/app"):
        small[gun] = _review(w, [f"{gun}:v1"])
    # a review naming two new repositories, one of which the big review also names
    small["pair"] = _review(w, [f"{REG}/team/other:v1", f"{REG}/big/r399:v1"])
    t.join(timeout=120)
    assert not t.is_alive()

    for gun in (f"{REG}/team/app", f"{REG}/slow/app", f"{REG}/offline/app"):
        resp = small[gun]
        assert resp["allowed"] is True, (gun, resp.get("status"))
        assert "admission-deadline" not in str(resp)
    # the shared repository is queued in the small review's group too: it is
    # fetched in time (it does not exist: denied for what it is, not for the deadline)
    pair = small["pair"]
    assert pair["allowed"] is False
    message = pair["status"]["message"]
    assert "admission-deadline" not in message, message
    assert f"{REG}/big/r399" in message
    # the big review itself could not be done within its deadline
    assert big["allowed"] is False
    assert "admission-deadline" in big["status"]["message"]
    # its repositories were fetched a few at a time, not all at once
    big_requests = [e for e in list(w.proxy.log) if f"/{REG}/big/" in e.path]
    assert 0 < len(big_requests) < BIG


# --------------------------------------------------------------------------- the scheduler


class _Recorder:
    """Jobs that record their start and block until released."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.cond = threading.Condition()
        self.released: set[str] = set()

    def job(self, name: str, server: str | None = "https://slow") -> Any:
        from trustcheck.webhook.cache import _Job

        def run() -> None:
            with self.cond:
                self.order.append(name)
                self.cond.notify_all()
                self.cond.wait_for(lambda: name in self.released or "*" in self.released)

        return _Job(run, server)

    def wait_started(self, n: int) -> list[str]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.order) >= n, timeout=30), self.order
            return list(self.order)

    def release(self, name: str) -> None:
        with self.cond:
            self.released.add(name)
            self.cond.notify_all()


def test_scheduler_caps_a_review_and_a_server_and_puts_small_reviews_first() -> None:
    from trustcheck.webhook.cache import FairScheduler

    sched = FairScheduler(workers=4, per_group=2, per_server=3, name="t")
    rec = _Recorder()
    try:
        big = sched.group()
        for i in range(10):
            sched.submit(big, rec.job(f"big{i}"))
        # per_group: the big review runs 2 of its 10 at once, 2 workers stay free
        assert rec.wait_started(2) == ["big0", "big1"]
        small = sched.group()
        sched.submit(small, rec.job("small0"))
        # per_server 3: the small review's fetch takes the third place on the server
        assert rec.wait_started(3)[-1] == "small0"
        other = sched.group()
        sched.submit(other, rec.job("other-slow"))  # the server is full: waits
        sched.submit(other, rec.job("other-fast", server="https://fast"))
        assert rec.wait_started(4)[-1] == "other-fast"
        # a key queued for the big review and asked for by a new small review runs
        # for the small one before the rest of the big review's queue
        shared = rec.job("big-and-small")
        sched.submit(big, shared)
        late = sched.group()
        sched.join(late, shared)
        background = sched.group(low=True)
        sched.submit(background, rec.job("refresh"))
        rec.release("small0")
        # a place on the server is free: the review with nothing running goes first
        assert rec.wait_started(5)[-1] == "big-and-small"
        rec.release("big-and-small")
        assert rec.wait_started(6)[-1] == "other-slow"
        rec.release("other-fast")
        rec.release("other-slow")
        # the big review is at its cap: the background refresh may use a free worker
        assert rec.wait_started(7)[-1] == "refresh"
        rec.release("*")
        names = rec.wait_started(15)
        assert names[7:] == [f"big{i}" for i in range(2, 10)]
        assert names.count("big-and-small") == 1
    finally:
        rec.release("*")
        sched.close()
