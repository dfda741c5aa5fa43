"""The admission webhook in a cluster's life (issue 17): controllers after a re-signed tag,
deletions, `kubectl debug`, image volumes, over TLS with the real `trustcheck serve`.

* a real notary-server; the tag is signed, then re-signed to a new digest with
  the real notary client (`notary addhash` + `notary publish`);
* `trustcheck serve` as a process (tests/integration/test_webhook_server.py's
  `Webhook`), with a state dir, a 1-second cache TTL (so the re-sign is seen at
  once) and the default continuity window;
* AdmissionReviews in kube-apiserver's shape (conftest.admission_review), the
  requests the deployment, ReplicaSet and garbage collector controllers,
  `kubectl rollout restart`, `kubectl label` and `kubectl debug` send.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import pod_spec, workload
from test_webhook_server import Webhook, _metric, _require, _sign, admission, apply_patch

from fixtures.notary_harness import NotaryClient, NotaryServer, TLSMaterial, make_tls

pytestmark = pytest.mark.integration

REG = "registry.example.com"
APP = f"{REG}/team/app"
TOOLS = f"{REG}/team/tools"
NEVER = "sha256:" + "0e" * 32
CONNAISSEUR_28 = (
    Path(__file__).resolve().parents[2]
    / "fixtures"
    / "k8s"
    / "connaisseur"
    / "28_deleted_deployment_updated.json"
)


@dataclass
class Cluster:
    base: Path
    tls: TLSMaterial
    server: NotaryServer
    pub: NotaryClient
    policy: Path
    config: dict[str, Any]
    webhook: Webhook
    d1: str
    tools: str


def _config(base: Path, tls: TLSMaterial, **extra: Any) -> dict[str, Any]:
    return {
        "deadline_seconds": 6,
        "cache": {"ttl_seconds": 1, "negative_ttl_seconds": 0},
        "upstream": {"tls_ca": str(tls.ca_cert), "timeout_seconds": 5, "retries": 0},
        "trust": {"state_dir": str(base / "state")},
        **extra,
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    _require()
    base = tmp_path_factory.mktemp("lifecycle")
    tls = make_tls(base / "tls")
    with NotaryServer(base / "notary", tls=tls) as server:
        pub = NotaryClient.for_server(base / "publisher", server)
        for gun in (APP, TOOLS):
            pub.init(gun)
        d1 = _sign(pub, APP, "v1", b"app v1", ())
        pub.publish(APP)
        tools = _sign(pub, TOOLS, "v1", b"tools v1", ())
        pub.publish(TOOLS)
        policy = base / "policy.yaml"
        policy.write_text(
            f"""\
version: 1
defaults:
  trust:
    server: {server.url}
rules:
  - name: team-signed
    pattern: "{REG}/team/*"
  - name: no-docker-hub
    pattern: docker.io/**
    action: deny
    reason: use the mirror
"""
        )
        config = _config(base, tls)
        webhook = Webhook(base / "serve", tls, policy, config).start()
        try:
            yield Cluster(base, tls, server, pub, policy, config, webhook, d1, tools)
        finally:
            webhook.stop()


def _owned(obj: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    """``obj`` as a controller creates it: generateName, an ownerReference, no name."""
    out = copy.deepcopy(obj)
    meta = out["metadata"]
    meta.pop("name", None)
    meta["generateName"] = f"{name}-"
    meta["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "kind": kind,
            "name": name,
            "uid": "6f1e4b52-0c71-4a0e-9f0a-5c2f1a7d9e11",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    return out


def _continuity(resp: dict[str, Any]) -> list[str]:
    return [w for w in resp.get("warnings", []) if "continuity" in w]


def test_controllers_keep_working_after_the_tag_is_re_signed(cluster: Cluster) -> None:
    c = cluster
    w = c.webhook
    # kubectl apply: the Deployment is admitted and pinned to D1 by /mutate
    deploy = workload("Deployment", pod_spec([f"{APP}:v1"]))
    resp = w.review(admission("Deployment", deploy))
    assert resp["allowed"] is True, resp
    deploy = apply_patch(deploy, resp)
    pinned = f"{APP}:v1@{c.d1}"
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == pinned
    assert w.review(admission("Deployment", deploy), mutate=False)["allowed"] is True
    # the deployment controller creates the ReplicaSet, the ReplicaSet controller a Pod
    rs = workload("ReplicaSet", pod_spec([pinned]), name="app-5d8f7c")
    rs["metadata"]["ownerReferences"] = _owned(rs, "Deployment", "app")["metadata"][
        "ownerReferences"
    ]
    assert w.review(admission("ReplicaSet", rs))["allowed"] is True
    pod = _owned(workload("Pod", pod_spec([pinned])), "ReplicaSet", "app-5d8f7c")
    assert w.review(admission("Pod", pod))["allowed"] is True
    cron = workload("CronJob", pod_spec([f"{APP}:v1"]), name="nightly")
    resp = w.review(admission("CronJob", cron))
    assert resp["allowed"] is True
    cron = apply_patch(cron, resp)

    # the publisher re-signs v1 to a new digest with the real notary client
    d2 = _sign(c.pub, APP, "v1", b"app v1, rebuilt", ())
    c.pub.publish(APP)
    assert d2 != c.d1
    end = time.monotonic() + 15
    while True:  # the cache (TTL 1 s) picks the new collection up
        fresh = workload("Deployment", pod_spec([f"{APP}:v1"]), name="fresh")
        resp = w.review(admission("Deployment", fresh))
        image = apply_patch(fresh, resp)["spec"]["template"]["spec"]["containers"][0]["image"]
        if image.endswith(d2) or time.monotonic() > end:
            break
        time.sleep(0.3)
    assert image == f"{APP}:v1@{d2}"

    # the old ReplicaSet is scaled down (an UPDATE that changes no image)
    scaled = copy.deepcopy(rs)
    scaled["spec"]["replicas"] = 1
    resp = w.review(admission("ReplicaSet", scaled, operation="UPDATE", old=rs))
    assert resp["allowed"] is True, resp
    assert "patch" not in resp and _continuity(resp), resp
    # ... and replaces a Pod that died (a CREATE by the ReplicaSet controller)
    resp = w.review(admission("Pod", pod))
    assert resp["allowed"] is True and "patch" not in resp, resp
    assert _continuity(resp), resp
    # kubectl rollout restart: a pod template annotation changes, the image does not
    restarted = copy.deepcopy(deploy)
    restarted["spec"]["template"]["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/restartedAt": "2026-12-04T23:59:00Z"
    }
    resp = w.review(admission("Deployment", restarted, operation="UPDATE", old=deploy))
    assert resp["allowed"] is True and "patch" not in resp, resp
    new_rs = workload("ReplicaSet", pod_spec([pinned]), name="app-7b9c4d")
    assert w.review(admission("ReplicaSet", new_rs))["allowed"] is True
    # the CronJob controller creates tonight's Job from the pinned template
    job_spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert job_spec["containers"][0]["image"] == pinned
    job = workload("Job", copy.deepcopy(job_spec), name="nightly-29411520")
    resp = w.review(admission("Job", job))
    assert resp["allowed"] is True and _continuity(resp), resp
    # kubectl label pod
    named = copy.deepcopy(pod)
    named["metadata"]["name"] = "app-5d8f7c-x2x4q"
    labelled = copy.deepcopy(named)
    labelled["metadata"]["labels"] = {"app": "app", "tier": "web"}
    resp = w.review(admission("Pod", labelled, operation="UPDATE", old=named))
    assert resp["allowed"] is True, resp
    # scale-down, replacement Pod, rollout restart, new ReplicaSet, Job, label update
    remembered = 'trustcheck_webhook_continuity_total{result="remembered"}'
    assert _metric(w.metrics(), remembered) == 6.0

    # fail closed: a digest never signed, by any spelling, is denied
    for image in (f"{APP}@{NEVER}", f"{APP}:v1@{NEVER}"):
        resp = w.review(admission("Pod", workload("Pod", pod_spec([image]))))
        assert resp["allowed"] is False, image
        assert "[digest-not-signed]" in resp["status"]["message"] or (
            "[digest-mismatch]" in resp["status"]["message"]
        )
    # ... so is an UPDATE that brings one in
    swapped = copy.deepcopy(scaled)
    swapped["spec"]["template"]["spec"]["containers"][0]["image"] = f"{APP}:v1@{NEVER}"
    resp = w.review(admission("ReplicaSet", swapped, operation="UPDATE", old=scaled))
    assert resp["allowed"] is False and "[digest-mismatch]" in resp["status"]["message"]

    # the log says why: continuity, and how
    lines = w.wait_log(lambda x: any("continuity" in i for i in x.get("images", [])))
    assert lines and "verified as a release as v1" in lines[0]["images"][0]["continuity"]

    # a restart keeps the memory (state dir); a revocation ends it
    w.stop()
    again = Webhook(c.base / "serve", c.tls, c.policy, c.config).start()
    try:
        resp = again.review(admission("Pod", pod))
        assert resp["allowed"] is True and _continuity(resp), resp
    finally:
        again.stop()
    revoking = dict(c.config, continuity={"revoked": [f"{APP}@{c.d1}"]})
    revoked = Webhook(c.base / "serve-revoked", c.tls, c.policy, revoking).start()
    try:
        resp = revoked.review(admission("ReplicaSet", scaled, operation="UPDATE", old=rs))
        assert resp["allowed"] is False
        assert "[admission-revoked]" in resp["status"]["message"]
        revoked_total = 'trustcheck_webhook_continuity_total{result="revoked"}'
        assert _metric(revoked.metrics(), revoked_total) == 1.0
    finally:
        revoked.stop()
    c.webhook = Webhook(c.base / "serve", c.tls, c.policy, c.config).start()


def test_kubectl_debug_verifies_only_the_new_ephemeral_container(cluster: Cluster) -> None:
    w = cluster.webhook
    # the running Pod's image is one the webhook never verified (and no longer verifies)
    pod = workload("Pod", pod_spec([f"{APP}:v0@{NEVER}"]))
    pod["metadata"]["name"] = "app-debugged"
    debug = copy.deepcopy(pod)
    debug["spec"]["ephemeralContainers"] = [
        {"name": "debugger-x7k2p", "image": f"{TOOLS}:v1", "targetContainerName": "c0"}
    ]
    doc = admission("Pod", debug, operation="UPDATE", sub="ephemeralcontainers", old=pod)
    resp = w.review(doc)
    assert resp["allowed"] is True, resp
    patched = apply_patch(debug, resp)
    assert patched["spec"]["ephemeralContainers"][0]["image"] == f"{TOOLS}:v1@{cluster.tools}"
    assert patched["spec"]["containers"][0]["image"] == f"{APP}:v0@{NEVER}"
    # an unsigned debug image is denied
    bad = copy.deepcopy(pod)
    bad["spec"]["ephemeralContainers"] = [
        {"name": "debugger-q9", "image": f"{TOOLS}:unsigned", "targetContainerName": "c0"}
    ]
    doc = admission("Pod", bad, operation="UPDATE", sub="ephemeralcontainers", old=pod)
    resp = w.review(doc)
    assert resp["allowed"] is False
    message = resp["status"]["message"]
    assert message.startswith("trustcheck denied Pod team/app-debugged: 1 of 1 image(s)")
    assert "[tag-not-signed]" in message and "ephemeralContainers/debugger-q9" in message


def test_finalizer_removal_during_deletion_is_admitted(cluster: Cluster) -> None:
    w = cluster.webhook
    # Connaisseur's payload, as written: busybox is denied by a rule, yet the update passes
    doc = json.loads(CONNAISSEUR_28.read_text())
    resp = w.review(doc)
    assert resp == {"uid": "3a3a7b38-5512-4a85-94bb-3562269e0a6a", "allowed": True}
    # a Deployment whose image no longer verifies, being deleted, loses its finalizer
    old = workload("Deployment", pod_spec([f"{APP}:v0@{NEVER}"]), name="leaving")
    old["metadata"]["deletionTimestamp"] = "2026-12-04T23:00:00Z"
    old["metadata"]["finalizers"] = ["foregroundDeletion"]
    new = copy.deepcopy(old)
    del new["metadata"]["finalizers"]
    resp = w.review(admission("Deployment", new, operation="UPDATE", old=old))
    assert resp["allowed"] is True and "patch" not in resp, resp
    line = w.wait_log(lambda x: x.get("name") == "leaving")
    assert line and line[0]["result"] == "skipped"
    assert line[0]["note"] == "the update finishes a deletion and changes no image"
    # the same update with the object alive is checked (updates: all)
    alive_old = copy.deepcopy(old)
    del alive_old["metadata"]["deletionTimestamp"]
    alive = copy.deepcopy(alive_old)
    alive["metadata"]["labels"]["x"] = "y"
    resp = w.review(admission("Deployment", alive, operation="UPDATE", old=alive_old))
    assert resp["allowed"] is False and "[tag-not-signed]" in resp["status"]["message"]


@pytest.mark.parametrize("kind", ["Pod", "Deployment", "CronJob"])
def test_image_volumes_are_verified_and_pinned(cluster: Cluster, kind: str) -> None:
    w = cluster.webhook
    spec = pod_spec([f"{TOOLS}:v1"])
    spec["volumes"] = [
        {"name": "model", "image": {"reference": f"{TOOLS}:v1", "pullPolicy": "IfNotPresent"}}
    ]
    obj = workload(kind, spec)
    resp = w.review(admission(kind, obj))
    assert resp["allowed"] is True, resp
    ops = json.loads(base64.b64decode(resp["patch"]))
    paths = [op["path"] for op in ops if op["op"] == "replace"]
    assert any(p.endswith("/volumes/0/image/reference") for p in paths), paths
    patched = apply_patch(obj, resp)
    node = patched
    for key in {"Pod": ["spec"], "Deployment": ["spec", "template", "spec"],
                "CronJob": ["spec", "jobTemplate", "spec", "template", "spec"]}[kind]:
        node = node[key]
    assert node["volumes"][0]["image"]["reference"] == f"{TOOLS}:v1@{cluster.tools}"
    bad = copy.deepcopy(obj)
    bad["metadata"] = {"generateName": "batch-", "namespace": "team"}
    node = bad
    for key in {"Pod": ["spec"], "Deployment": ["spec", "template", "spec"],
                "CronJob": ["spec", "jobTemplate", "spec", "template", "spec"]}[kind]:
        node = node[key]
    node["volumes"][0]["image"]["reference"] = f"{TOOLS}:nope"
    resp = w.review(admission(kind, bad))
    assert resp["allowed"] is False
    message = resp["status"]["message"]
    assert message.startswith(
        f"trustcheck denied {kind} team/batch-*: 1 of 2 image(s) not allowed (tag-not-signed)"
    )
    assert f'image "{TOOLS}:nope" (volumes/model)' in message


def test_replicas_share_the_releases_they_verified_through_redis(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Replica A admits D1; the tag is re-signed; replica B, which never saw D1, admits
    the ReplicaSet controller's replacement Pod because A's record is in Redis, and
    refuses a record planted without the secret."""
    from test_webhook_server import Redis

    from fixtures.notary_harness import find_binary
    from trustcheck.core.reference import parse_reference
    from trustcheck.policy.load import parse_policy
    from trustcheck.webhook.admitted import Released, SharedReleased, rule_fingerprint
    from trustcheck.webhook.shared import MemoryStore

    if find_binary("redis-server") is None:
        pytest.skip("!!! SHARED RELEASES TEST SKIPPED: redis-server is missing !!!")
    import redis

    c = cluster
    base = tmp_path_factory.mktemp("lifecycle-redis")
    gun = f"{REG}/team/shared-app"
    c.pub.init(gun)
    d1 = _sign(c.pub, gun, "v1", b"shared v1", ())
    c.pub.publish(gun)
    secret = "released-digests-secret-0123456789"
    with Redis(base / "redis") as rs:
        env = {"TRUSTCHECK_CACHE_SECRET": secret}
        extra = ("--cache", rs.url)
        a = Webhook(base / "a", c.tls, c.policy, _config(base / "a", c.tls), extra=extra, env=env)
        b = Webhook(base / "b", c.tls, c.policy, _config(base / "b", c.tls), extra=extra, env=env)
        a.start()
        b.start()
        r = redis.Redis.from_url(rs.url)
        try:
            deploy = workload("Deployment", pod_spec([f"{gun}:v1"]))
            resp = a.review(admission("Deployment", deploy))
            assert resp["allowed"] is True, resp
            end = time.monotonic() + 10
            while not r.keys("trustcheck:v1:released:*") and time.monotonic() < end:
                time.sleep(0.1)  # A publishes from its flush loop
            assert r.keys("trustcheck:v1:released:*")
            d2 = _sign(c.pub, gun, "v1", b"shared v1, rebuilt", ())
            c.pub.publish(gun)
            pod = _owned(workload("Pod", pod_spec([f"{gun}:v1@{d1}"])), "ReplicaSet", "app-1")
            end = time.monotonic() + 15
            while True:  # until B serves the re-signed collection (v1 -> d2)
                fresh = workload("Pod", pod_spec([f"{gun}:v1"]))
                got = apply_patch(fresh, b.review(admission("Pod", fresh)))
                if got["spec"]["containers"][0]["image"].endswith(d2):
                    break
                assert time.monotonic() < end, "B never saw the re-signed tag"
                time.sleep(0.3)
            resp = b.review(admission("Pod", pod))
            assert resp["allowed"] is True, resp
            assert _continuity(resp), resp
            # a record planted without the secret is refused: the digest stays denied
            policy = parse_policy(c.policy.read_text(), "policy.yaml", c.policy.parent)
            rule = policy.match(parse_reference(gun))
            assert rule is not None
            forged = SharedReleased(MemoryStore(), b"not-the-secret-0123456789abcdef")
            now = time.time()
            rec = Released(rule_fingerprint(rule), gun, NEVER, ("v1",), now, now)
            r.set(forged.key(rec.rule, gun, NEVER), forged.encode(rec), px=60_000)
            resp = b.review(admission("Pod", workload("Pod", pod_spec([f"{gun}:v1@{NEVER}"]))))
            assert resp["allowed"] is False and "[digest-mismatch]" in resp["status"]["message"]
            assert b.wait_log(lambda x: "bad MAC" in x.get("msg", ""))
        finally:
            r.close()
            a.stop()
            b.stop()


def test_a_dry_run_records_no_release(cluster: Cluster) -> None:
    """`kubectl apply --dry-run=server` is answered as the real request but leaves no
    trace: a digest only a dry run saw is denied once its tag moves."""
    c = cluster
    w = c.webhook
    gun = f"{REG}/team/dry"
    c.pub.init(gun)
    d1 = _sign(c.pub, gun, "v1", b"dry v1", ())
    c.pub.publish(gun)
    resp = w.review(admission("Pod", workload("Pod", pod_spec([f"{gun}:v1"])), dry_run=True))
    assert resp["allowed"] is True and "patch" in resp
    d2 = _sign(c.pub, gun, "v1", b"dry v1, rebuilt", ())
    c.pub.publish(gun)
    end = time.monotonic() + 15
    while True:
        fresh = workload("Pod", pod_spec([f"{gun}:v1"]))
        got = apply_patch(fresh, w.review(admission("Pod", fresh, dry_run=True)))
        if got["spec"]["containers"][0]["image"].endswith(d2):
            break
        assert time.monotonic() < end, "the webhook never saw the re-signed tag"
        time.sleep(0.3)
    resp = w.review(admission("Pod", workload("Pod", pod_spec([f"{gun}:v1@{d1}"]))))
    assert resp["allowed"] is False and "[digest-mismatch]" in resp["status"]["message"]
