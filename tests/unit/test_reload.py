"""trustcheck.webhook.reload: watching --policy and --config, swapping atomically.

A real :func:`trustcheck.webhook.app.build_server` server, real files laid out
as kubelet lays out a ConfigMap volume (``policy.yaml -> ..data/policy.yaml``,
``..data -> ..<version>``), the reloader's two halves driven by hand:
:meth:`PolicyReloader.prepare` (what a worker thread does) and
:meth:`PolicyReloader.apply` (on the event loop). The end-to-end reload under
load over TLS is tests/integration/test_policy_reload.py.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import admission_review, pod_spec, workload

from trustcheck.errors import NotTrusted
from trustcheck.policy.load import load_policy
from trustcheck.webhook.app import WebhookServer, build_server
from trustcheck.webhook.config import ServerConfig, load_config
from trustcheck.webhook.reload import PolicyReloader, Watched

IMAGE = "registry.example.com/team/app:v1"
GUN = "registry.example.com/team/app"


class ConfigMap:
    """kubelet's atomic writer: a new folder, ``..data`` swapped by a rename."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.version = 0

    def publish(self, **files: str) -> None:
        self.version += 1
        new = self.root / f"..v{self.version}"
        new.mkdir()
        for name, text in files.items():
            (new / name).write_text(text)
        data = self.root / "..data"
        old = data.resolve() if data.is_symlink() else None
        os.symlink(new.name, self.root / "..tmp")
        os.replace(self.root / "..tmp", data)
        for name in files:
            if not (self.root / name).is_symlink():
                os.symlink(f"..data/{name}", self.root / name)
        if old is not None:
            shutil.rmtree(old)


POLICY = """\
rules:
  - name: team
    pattern: "registry.example.com/team/*"
    trust: {server: "https://notary.example.com"}
  - name: rest
    pattern: "**"
    action: deny
"""
CONFIG = "deadline_seconds: 2\nreload_seconds: 1\nupstream: {offline: true, timeout_seconds: 2}\n"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[ConfigMap, WebhookServer, PolicyReloader]]:
    cm = ConfigMap(tmp_path / "cm")
    cm.publish(**{"policy.yaml": POLICY, "config.yaml": CONFIG})
    policy_path, config_path = cm.root / "policy.yaml", cm.root / "config.yaml"

    def read_config() -> ServerConfig:
        cfg = load_config(config_path)
        cfg.trust_dir = tmp_path / "trust"
        return cfg

    server = build_server(load_policy(policy_path), read_config(), env={})
    reloader = PolicyReloader(server, policy_path, config_path, read_config)
    server.reloader = reloader
    try:
        yield cm, server, reloader
    finally:
        reloader.close()
        server.cache.close()


def _round(reloader: PolicyReloader) -> bool:
    """One reload round as the server runs it; whether anything was found."""

    async def run() -> bool:
        prepared = await asyncio.get_running_loop().run_in_executor(None, reloader.prepare)
        if prepared:
            reloader.apply(prepared)
        return bool(prepared)

    return asyncio.run(run())


def _metric(server: WebhookServer, sample: str) -> float:
    from prometheus_client import generate_latest

    for line in generate_latest(server.metrics.registry).decode().splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    raise AssertionError(sample)


def test_watched_sees_symlink_swaps_and_ignores_same_content(tmp_path: Path) -> None:
    cm = ConfigMap(tmp_path / "cm")
    cm.publish(**{"policy.yaml": "a\n"})
    watched = Watched(cm.root / "policy.yaml", 1 << 20)
    assert watched.changed() is None
    cm.publish(**{"policy.yaml": "a\n"})  # a re-sync: new folder, same bytes
    assert watched.changed() is None
    os.utime(cm.root / "policy.yaml", (1, 1))  # touch
    assert watched.changed() is None
    cm.publish(**{"policy.yaml": "b\n"})
    got = watched.changed()
    assert got is not None and got[0] == b"b\n"
    assert watched.changed() is None  # seen: not reported twice
    (cm.root / "..data").unlink()  # mid-swap: the path resolves nowhere
    assert watched.changed() is None
    # a plain file replaced in place (no symlinks): the inode and size change
    plain = tmp_path / "plain.yaml"
    plain.write_text("x\n")
    w = Watched(plain, 1 << 20)
    tmp = tmp_path / "plain.new"
    tmp.write_text("xy\n")
    os.replace(tmp, plain)
    got = w.changed()
    assert got is not None and got[0] == b"xy\n"


def test_a_bad_policy_keeps_the_old_one_and_is_reported_once(world: Any) -> None:
    cm, server, reloader = world
    before = server.policy
    cm.publish(**{"policy.yaml": POLICY + "x: &anchor 1\n", "config.yaml": CONFIG})
    assert _round(reloader)
    assert server.policy is before
    status = reloader.status()
    assert status["policy_generation"] == 1
    assert "[policy-invalid]" in str(status["policy_error"]) and "anchors" in str(
        status["policy_error"]
    )
    assert _metric(server, 'trustcheck_policy_reloads_total{result="error"}') == 1
    assert _metric(server, 'trustcheck_reload_failing{file="policy"}') == 1
    os.utime(cm.root / "policy.yaml", (5, 5))
    assert not _round(reloader)  # the same bad content is not tried again
    cm.publish(**{"policy.yaml": "not: [valid\n", "config.yaml": CONFIG})
    assert _round(reloader)
    assert _metric(server, 'trustcheck_policy_reloads_total{result="error"}') == 2
    assert server.policy is before


def test_a_good_policy_is_swapped_with_a_cache_of_its_own(world: Any) -> None:
    cm, server, reloader = world
    old_cache = server.cache
    remembered = NotTrusted("tag-not-signed", "remembered answer")
    old_cache._store((0, GUN), remembered, old_cache.now())
    assert old_cache.peek((0, GUN)) is remembered
    # rule 0 becomes a deny rule; the verify rule with the same trust settings moves
    # to index 1 and keeps the entry; one with another server does not get it
    new = (
        "rules:\n"
        '  - name: frozen\n    pattern: "registry.example.com/team/app"\n    action: deny\n'
        '  - name: team\n    pattern: "registry.example.com/team/*"\n'
        '    trust: {server: "https://notary.example.com"}\n'
        '  - name: other\n    pattern: "registry.example.com/other/*"\n'
        '    trust: {server: "https://elsewhere.example.com"}\n'
    )
    cm.publish(**{"policy.yaml": new, "config.yaml": CONFIG})
    assert _round(reloader)
    assert server.policy is not None and [r.name for r in server.policy.rules] == [
        "frozen",
        "team",
        "other",
    ]
    assert server.cache is not old_cache
    assert server.cache.peek((1, GUN)) is remembered
    assert server.cache.peek((0, GUN)) is None and server.cache.peek((2, GUN)) is None
    assert server.cache._trusted is old_cache._trusted  # one set of rollback floors
    assert reloader.status()["policy_generation"] == 2 and "policy_error" not in (reloader.status())
    assert _metric(server, "trustcheck_policy_generation") == 2
    assert not old_cache._closed  # reviews in flight may still wait on it
    reloader.close()
    assert old_cache._closed


def test_config_reload_applies_live_keys_and_keeps_the_others(
    world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cm, server, reloader = world
    ttl = server.config.cache.ttl
    changed = (
        # upstream.timeout_seconds is given: its default follows deadline_seconds
        "deadline_seconds: 4\nreload_seconds: 1\nupstream: {offline: true, timeout_seconds: 2}\n"
        "exempt: {namespaces: [team-b]}\ncache: {ttl_seconds: 5}\n"
    )
    cm.publish(**{"policy.yaml": POLICY, "config.yaml": changed})
    with caplog.at_level("INFO", logger="trustcheck.webhook.review"):
        assert _round(reloader)
    assert server.config.webhook.deadline == 4
    assert server.config.webhook.exempt_namespaces == ("team-b",)
    assert server.config.cache.ttl == ttl  # needs a restart: unchanged
    record = next(r for r in caplog.records if r.getMessage().startswith("config reloaded"))
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["needs_restart"] == ["cache"] and fields["applied"] == ["webhook"]
    # continuity: the revoked list and the window apply live (the review hands the
    # window to the continuity memory), its max_entries at restart
    digest = "sha256:" + "ab" * 32
    continuity = changed + (
        f"continuity: {{window_seconds: 60, max_entries: 7, revoked: ['{digest}']}}\n"
    )
    cm.publish(**{"policy.yaml": POLICY, "config.yaml": continuity})
    with caplog.at_level("INFO", logger="trustcheck.webhook.review"):
        assert _round(reloader)
    assert server.config.webhook.continuity_window == 60
    assert server.config.webhook.revoked.revoked(GUN, digest)
    record = [r for r in caplog.records if r.getMessage().startswith("config reloaded")][-1]
    assert record.fields["needs_restart"] == [  # type: ignore[attr-defined]
        "cache",
        "continuity.max_entries",
    ]
    _review(server, "team")  # a review takes the new window into the memory
    assert server.released.window == 60
    cm.publish(**{"policy.yaml": POLICY, "config.yaml": "deadline_seconds: 99\n"})
    assert _round(reloader)
    assert server.config.webhook.deadline == 4  # refused: out of range
    assert "webhook-config-invalid" in str(reloader.status()["config_error"])
    assert _metric(server, 'trustcheck_config_reloads_total{result="error"}') == 1


def _review(server: WebhookServer, namespace: str) -> dict[str, Any]:
    doc = admission_review("Pod", workload("Pod", pod_spec([IMAGE])), namespace=namespace)
    status, body = asyncio.run(server.review(orjson.dumps(doc), mutate=False))
    assert status == 200
    resp: dict[str, Any] = orjson.loads(body)["response"]
    return resp


def test_namespaced_rules_in_reviews_do_not_share_memo_entries(world: Any) -> None:
    """The same image decided for two namespaces, back and forth: the memo (per
    image string) must not hand one namespace's rule or decision to the other."""
    cm, server, reloader = world
    scoped = (
        "rules:\n"
        '  - name: sandbox\n    pattern: "registry.example.com/**"\n'
        "    namespaces: [sandbox-*]\n    action: allow\n"
        '  - name: nowhere\n    pattern: "registry.example.com/**"\n    action: deny\n'
        "    reason: not outside the sandbox\n"
    )
    cm.publish(**{"policy.yaml": scoped, "config.yaml": CONFIG})
    assert _round(reloader)
    check: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
        ("sandbox-1", lambda r: r["allowed"] is True),
        (
            "prod",
            lambda r: not r["allowed"] and "not outside the sandbox" in r["status"]["message"],
        ),
        ("sandbox-2", lambda r: r["allowed"] is True),
        ("prod", lambda r: not r["allowed"]),
        ("sandbox-1", lambda r: r["allowed"] is True),
    ]
    for namespace, ok in check:
        resp = _review(server, namespace)
        assert ok(resp), (namespace, resp)
