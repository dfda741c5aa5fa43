"""Policy and config reload without a restart, under load (issue 17, item 6).

The real `trustcheck serve` over TLS, a real notary-server holding a repository
signed by the real notary client, and the policy and config files mounted as
kubelet mounts a ConfigMap: ``policy.yaml -> ..data/policy.yaml``, ``..data ->
..<timestamp>``, an update writes a new folder and swaps ``..data`` atomically
(rename of a temporary symlink), then removes the old folder.

A thread sends AdmissionReviews continuously while the ConfigMap is updated
several times (a deny, a broken file, back to allow, namespace-scoped rules, a
config change): every review must be answered (HTTP 200, an AdmissionReview,
never an internal error), the verdicts switch to each new policy and never
back, and the broken file leaves the previous policy in force, reported in the
log, the metrics and /readyz.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from conftest import pod_spec, workload
from test_webhook_server import Webhook, _require, _sign, admission

from fixtures.notary_harness import NotaryClient, NotaryServer, make_tls

pytestmark = pytest.mark.integration

REG = "registry.example.com"
IMAGE = f"{REG}/team/app:v1"
RELOAD = 0.2  # reload_seconds


class ConfigMap:
    """A folder laid out and updated as kubelet's atomic writer does it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True)
        self.version = 0

    def publish(self, files: dict[str, str]) -> None:
        self.version += 1
        new = self.root / f"..2026_12_04_00_00_{self.version:02d}.{os.getpid()}"
        new.mkdir()
        for name, text in files.items():
            (new / name).write_text(text)
        data = self.root / "..data"
        old = data.resolve() if data.is_symlink() else None
        tmp = self.root / "..data_tmp"
        os.symlink(new.name, tmp)
        os.replace(tmp, data)  # the atomic swap
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                os.symlink(f"..data/{name}", link)
        if old is not None:
            shutil.rmtree(old)


@dataclass
class Load:
    """Reviews sent back to back from a thread: (time, allowed, message) or a failure."""

    hook: Webhook
    namespace: str
    results: list[tuple[float, bool, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        pod = workload("Pod", pod_spec([IMAGE]))
        with httpx.Client(base_url=self.hook.url, verify=self.hook.ctx, timeout=15) as client:
            while not self.stop.is_set():
                doc = admission("Pod", pod, namespace=self.namespace)
                try:
                    r = client.post(
                        "/validate",
                        content=orjson.dumps(doc),
                        headers={"Content-Type": "application/json"},
                    )
                    out = r.json()
                    resp = out["response"]
                    assert r.status_code == 200 and resp["uid"] == doc["request"]["uid"]
                    message = str(resp.get("status", {}).get("message", ""))
                    if "internal-error" in message or "admission-deadline" in message:
                        self.failures.append(message)
                    self.results.append((time.monotonic(), bool(resp["allowed"]), message))
                except Exception as e:  # every review must be answered
                    self.failures.append(f"{type(e).__name__}: {e}")

    def wait_for(self, want: Callable[[bool, str], bool], since: float) -> float:
        """The time of the first result after ``since`` that ``want`` accepts."""
        end = time.monotonic() + 15
        while time.monotonic() < end:
            for t, allowed, message in list(self.results):
                if t > since and want(allowed, message):
                    return t
            time.sleep(0.02)
        raise AssertionError(f"no such verdict; the last ones: {self.results[-5:]}")


def _policy(server_url: str, extra: str = "") -> str:
    return (
        f"version: 1\ndefaults:\n  trust:\n    server: {server_url}\nrules:\n"
        f'  - name: team-signed\n    pattern: "{REG}/team/*"\n'
        '  - name: nothing-else\n    pattern: "**"\n    action: deny\n' + extra
    )


def _metric(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{sample} not in the metrics")


@dataclass
class Setup:
    hook: Webhook
    cm: ConfigMap
    server: NotaryServer
    config: dict[str, Any]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    _require()
    base = tmp_path_factory.mktemp("reload")
    tls = make_tls(base / "tls")
    with NotaryServer(base / "notary", tls=tls) as server:
        pub = NotaryClient.for_server(base / "publisher", server)
        gun = f"{REG}/team/app"
        pub.init(gun)
        _sign(pub, gun, "v1", b"app v1", ())
        pub.publish(gun)
        cm = ConfigMap(base / "configmap")
        config: dict[str, Any] = {
            "deadline_seconds": 5,
            "reload_seconds": RELOAD,
            "exempt": {"namespaces": ["kube-system"]},
            "upstream": {"tls_ca": str(tls.ca_cert), "timeout_seconds": 5, "retries": 0},
        }
        cm.publish({"policy.yaml": _policy(server.url), "config.yaml": yaml.safe_dump(config)})
        hook = Webhook(base / "serve", tls, cm.root / "policy.yaml", {})
        hook.config = cm.root / "config.yaml"  # the ConfigMap's, not a file of its own
        hook.start()
        try:
            yield Setup(hook, cm, server, config)
        finally:
            hook.stop()


def test_policy_reload_under_load_with_zero_failed_reviews(setup: Setup) -> None:
    hook, cm, url = setup.hook, setup.cm, setup.server.url
    cfg_text = yaml.safe_dump(setup.config)
    load = Load(hook, "team-a-web")
    thread = threading.Thread(target=load.run, daemon=True)
    thread.start()
    try:
        t0 = load.wait_for(lambda ok, _m: ok, 0.0)  # generation 1: signed, allowed

        # 2: a more specific deny; the verify rule's cached collection is kept
        deny = f'  - name: frozen\n    pattern: "{REG}/team/app"\n    action: deny\n' \
            "    reason: frozen by generation 2\n"  # fmt: skip
        cm.publish({"policy.yaml": _policy(url, deny), "config.yaml": cfg_text})
        t1 = load.wait_for(lambda ok, m: not ok and "frozen by generation 2" in m, t0)

        # 3: broken (a key written twice): refused, generation 2 stays in force
        broken = _policy(url, deny) + "    action: allow\n"
        cm.publish({"policy.yaml": broken, "config.yaml": cfg_text})
        end = time.monotonic() + 10
        while _metric(hook.metrics(), 'trustcheck_policy_reloads_total{result="error"}') < 1:
            assert time.monotonic() < end, "the broken policy was never reported"
            time.sleep(0.05)
        t2 = time.monotonic()
        load.wait_for(lambda ok, m: not ok and "frozen by generation 2" in m, t2 + 0.5)
        ready = hook.client.get("/readyz") if hook.client is not None else None
        assert ready is not None and ready.status_code == 200  # still serving generation 2
        status = ready.json()["reload"]
        assert status["policy_generation"] == 2
        assert (
            "policy-invalid" in status["policy_error"]
            and "appears twice" in (status["policy_error"])
        )
        metrics = hook.metrics()
        assert _metric(metrics, 'trustcheck_reload_failing{file="policy"}') == 1
        assert _metric(metrics, "trustcheck_policy_generation") == 2

        # 4: fixed, back to allowing (a comment makes it new content)
        cm.publish({"policy.yaml": _policy(url) + "# generation 4\n", "config.yaml": cfg_text})
        t3 = load.wait_for(lambda ok, _m: ok, t2)

        # 5: namespace-scoped rules: the load's namespace (team-a-web) stays allowed
        scoped = (
            f'  - name: team-b-frozen\n    pattern: "{REG}/team/*"\n'
            "    namespaces: [team-b, team-b-*]\n    action: deny\n"
            "    reason: team b is frozen\n"
        )
        cm.publish({"policy.yaml": _policy(url, scoped), "config.yaml": cfg_text})
        pod = workload("Pod", pod_spec([IMAGE]))
        end = time.monotonic() + 10
        while hook.review(admission("Pod", pod, namespace="team-b"), mutate=False)["allowed"]:
            assert time.monotonic() < end, "the namespace-scoped rule never applied"
            time.sleep(0.05)
        denied = hook.review(admission("Pod", pod, namespace="team-b-api"), mutate=False)
        assert not denied["allowed"] and "team b is frozen" in denied["status"]["message"]
        assert 'rule "team-b-frozen"' in denied["status"]["message"]
        assert hook.review(admission("Pod", pod, namespace="team-c"), mutate=False)["allowed"]

        # 6: the config: a new exemption applies live; a changed cache key needs a restart
        live = dict(setup.config, exempt={"namespaces": ["kube-system", "team-b"]})
        live["cache"] = {"ttl_seconds": 30}
        cm.publish({"policy.yaml": _policy(url, scoped), "config.yaml": yaml.safe_dump(live)})
        end = time.monotonic() + 10
        while not hook.review(admission("Pod", pod, namespace="team-b"), mutate=False)["allowed"]:
            assert time.monotonic() < end, "the new exemption never applied"
            time.sleep(0.05)
        assert not hook.review(admission("Pod", pod, namespace="team-b-api"), mutate=False)[
            "allowed"
        ]
        time.sleep(0.5)  # a few more reviews under the last generation
    finally:
        load.stop.set()
        thread.join(timeout=20)

    assert not thread.is_alive()
    assert load.failures == [], load.failures[:5]
    verdicts = [ok for t, ok, _m in load.results]
    assert len(verdicts) > 50, len(verdicts)
    # allow, then deny (generations 2 and 3), then allow: each switch happens once
    runs = [v for i, v in enumerate(verdicts) if i == 0 or v != verdicts[i - 1]]
    assert runs == [True, False, True], runs
    assert all(not ok for t, ok, _m in load.results if t1 <= t < t3 - 0.0)
    assert any(t > t2 and not ok for t, ok, _m in load.results)  # broken: still denying

    metrics = hook.metrics()
    assert _metric(metrics, 'trustcheck_policy_reloads_total{result="ok"}') == 3
    assert _metric(metrics, 'trustcheck_policy_reloads_total{result="error"}') == 1
    assert _metric(metrics, 'trustcheck_config_reloads_total{result="ok"}') == 1
    assert _metric(metrics, "trustcheck_policy_generation") == 4
    assert _metric(metrics, 'trustcheck_reload_failing{file="policy"}') == 0
    info = [ln for ln in metrics.splitlines() if ln.startswith("trustcheck_policy_info{")]
    assert len(info) == 1 and re.search(r'sha256="[0-9a-f]{64}"', info[0]), info

    logs = hook.log_lines()
    reloaded = [x for x in logs if x.get("msg") == "policy reloaded"]
    assert [x["generation"] for x in reloaded] == [2, 3, 4], reloaded
    assert all(x["cache_entries_kept"] >= 1 for x in reloaded)  # team-signed's entry moved
    unexpected = [x for x in logs if x.get("level") == "error" and "does not load" not in x["msg"]]
    assert unexpected == [], unexpected  # no round failed, no review errored
    failed = [x for x in logs if "does not load" in str(x.get("msg"))]
    assert len(failed) == 1 and "appears twice" in failed[0]["error"]
    config = [x for x in logs if str(x.get("msg", "")).startswith("config reloaded")]
    assert len(config) == 1 and config[0]["needs_restart"] == ["cache"]
    assert "webhook" in config[0]["applied"]
