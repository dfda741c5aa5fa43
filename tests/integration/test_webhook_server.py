"""The admission webhook as the API server meets it: `trustcheck serve` over TLS on loopback.

* a real notary-server with repositories published by the real notary client
  (delegations set up as `docker trust signer add` does: targets/releases with
  alice's and bob's keys, targets/alice and targets/bob);
* `trustcheck serve` started as a process (uvicorn, TLS only) and driven by an
  httpx client sending AdmissionReviews shaped like the API server's, for every
  workload kind;
* the fault-injection proxy (tests/integration/proxy.py) in front of the
  notary-server to serve tampered trust data and to hang;
* a second notary-server that is stopped mid-run;
* the ACR quarantine emulator (tests/integration/acr_emulator.py) for
  `POST /acr/quarantine`;
* a real redis-server (Debian `redis-server`) shared by two more server
  processes.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from acr_emulator import AcrEmulator
from conftest import K8S_KINDS, admission_review, pod_spec, spec_of, workload
from proxy import Fault, FaultProxy

from fixtures.notary_harness import (
    DelegationKey,
    NotaryClient,
    NotaryServer,
    TLSMaterial,
    find_binary,
    free_port,
    make_delegation_key,
    make_tls,
    missing_notary_binaries,
)

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
TRUSTCHECK = Path(sys.executable).parent / "trustcheck"
REG = "registry.example.com"
DEADLINE = 2.0
SECRET = "shared-cache-secret-of-the-test-0123456789"
ACR_SECRET = "acr-webhook-secret-0123456789"


def _require() -> None:
    missing = missing_notary_binaries()
    if missing:
        pytest.skip(
            "!!! WEBHOOK TESTS SKIPPED: missing "
            + ", ".join(missing)
            + " (make system-deps installs them) !!!"
        )


def _sign(pub: NotaryClient, gun: str, tag: str, data: bytes, signers: tuple[str, ...]) -> str:
    digest = hashlib.sha256(data).hexdigest()
    roles = ["targets/releases", *(f"targets/{s}" for s in signers)] if signers else []
    pub.addhash(gun, tag, len(data), digest, roles)
    return "sha256:" + digest


def _with_signers(pub: NotaryClient, gun: str, keys: dict[str, DelegationKey]) -> None:
    pub.init_and_publish(gun)
    pub.delegation_add(gun, "targets/releases", [k.public for k in keys.values()])
    for name, key in keys.items():
        pub.delegation_add(gun, f"targets/{name}", [key.public])
    pub.publish(gun)


# --------------------------------------------------------------------------- the server process


class Webhook:
    """One `trustcheck serve` process on a free loopback port."""

    def __init__(
        self,
        base: Path,
        tls: TLSMaterial,
        policy: Path,
        config: dict[str, Any],
        *,
        extra: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.base = base
        self.tls = tls
        base.mkdir(parents=True, exist_ok=True)
        self.config = base / "config.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.policy = policy
        self.extra = extra
        self.env_extra = env or {}
        self.log = base / "server.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.ctx = ssl.create_default_context(cafile=str(tls.ca_cert))
        self.client: httpx.Client | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> Webhook:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "NOTARY_"))}
        env.pop("TRUSTCHECK_OFFLINE", None)
        config_dir = self.base / "docker-config"
        config_dir.mkdir(exist_ok=True)
        env["DOCKER_CONFIG"] = str(config_dir)
        env.update(self.env_extra)
        for _attempt in range(3):
            self.port = free_port()
            argv = [
                str(TRUSTCHECK),
                "serve",
                "--policy",
                str(self.policy),
                "--tls-cert",
                str(self.tls.server_cert),
                "--tls-key",
                str(self.tls.server_key),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--config",
                str(self.config),
                "--trust-dir",
                str(self.base / "trust"),
                *self.extra,
            ]
            with self.log.open("ab") as log:
                self.proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env
                )
            if self._wait_ready():
                self.client = httpx.Client(base_url=self.url, verify=self.ctx, timeout=15)
                return self
            self.stop()
        raise RuntimeError(f"trustcheck serve did not start:\n{self.log.read_text()[-3000:]}")

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            try:
                r = httpx.get(f"{self.url}/readyz", verify=self.ctx, timeout=1)
                if r.status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def post(self, path: str, doc: Any) -> httpx.Response:
        assert self.client is not None
        return self.client.post(path, content=orjson.dumps(doc), headers=_JSON)

    def review(self, doc: dict[str, Any], *, mutate: bool = True) -> dict[str, Any]:
        r = self.post("/mutate" if mutate else "/validate", doc)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["apiVersion"] == doc["apiVersion"] and out["kind"] == "AdmissionReview"
        assert out["response"]["uid"] == doc["request"]["uid"]
        resp: dict[str, Any] = out["response"]
        return resp

    def metrics(self) -> str:
        assert self.client is not None
        return self.client.get("/metrics").text

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def wait_log(self, match: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """The log lines matching, once there are some (review lines of allowed reviews
        are written in batches, every 0.25 s)."""
        end = time.monotonic() + 5
        while True:
            found = [x for x in self.log_lines() if match(x)]
            if found or time.monotonic() > end:
                return found
            time.sleep(0.05)


_JSON = {"Content-Type": "application/json"}


# --------------------------------------------------------------------------- AdmissionReviews

#: kind -> (group, version, resource, path of the pod spec)
_UIDS = iter(range(1, 1_000_000))


def admission(kind: str, obj: Any, **kw: Any) -> dict[str, Any]:
    """:func:`conftest.admission_review` with a fresh uid for every review."""
    return admission_review(kind, obj, uid=f"00000000-0000-4000-8000-{next(_UIDS):012d}", **kw)


def apply_patch(obj: Any, resp: dict[str, Any]) -> Any:
    """RFC 6902 add/replace with RFC 6901 pointers (all the webhook emits)."""
    out = copy.deepcopy(obj)
    if "patch" not in resp:
        return out
    assert resp["patchType"] == "JSONPatch"
    for op in json.loads(base64.b64decode(resp["patch"])):
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in op["path"].split("/")[1:]]
        parent = out
        for t in tokens[:-1]:
            parent = parent[int(t)] if isinstance(parent, list) else parent[t]
        key: Any = int(tokens[-1]) if isinstance(parent, list) else tokens[-1]
        if op["op"] == "replace":
            assert isinstance(parent, list) or key in parent
        else:
            assert op["op"] == "add"
        parent[key] = op["value"]
    return out


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    base: Path
    tls: TLSMaterial
    server: NotaryServer
    proxy: FaultProxy
    doomed: NotaryServer
    acr: AcrEmulator
    webhook: Webhook
    digests: dict[str, str] = field(default_factory=dict)


def _policy(path: Path, server: NotaryServer, proxy: FaultProxy, doomed: NotaryServer,
            acr: AcrEmulator) -> Path:
    path.write_text(
        f"""\
version: 1
defaults:
  trust:
    server: {server.url}
rules:
  - name: two-maintainers
    pattern: {REG}/team/app
    signers: [alice, bob]
    threshold: 2
  - name: team-signed
    pattern: "{REG}/team/*"
  - name: rollout
    pattern: "{REG}/rollout/*"
    signers: [bob]
    mode: warn
  - name: via-proxy
    pattern: "{REG}/proxied/*"
    trust:
      server: {proxy.url}
  - name: doomed
    pattern: "{REG}/doomed/*"
    trust:
      server: {doomed.url}
  - name: acr-two
    pattern: "{acr.host_port}/team/*"
    signers: [alice, bob]
    threshold: 2
  - name: no-docker-hub
    pattern: docker.io/**
    action: deny
    reason: use the mirror
"""
    )
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    _require()
    base = tmp_path_factory.mktemp("webhook")
    tls = make_tls(base / "tls")
    with (
        NotaryServer(base / "notary", tls=tls) as server,
        NotaryServer(base / "doomed", tls=tls) as doomed,
        FaultProxy(server.url, tls.ca_cert, tls.server_cert, tls.server_key) as proxy,
        AcrEmulator(base / "acr", tls=tls) as acr,
    ):
        digests: dict[str, str] = {}
        keys = {n: make_delegation_key(base / "keys", n) for n in ("alice", "bob")}
        pub = NotaryClient.for_server(base / "publisher", server)
        app, qapp = f"{REG}/team/app", f"{acr.host_port}/team/app"
        for gun in (app, qapp):
            _with_signers(pub, gun, keys)
        for name, key in keys.items():
            pub.key_import(key.private, f"targets/{name}")
        digests["app:v1"] = _sign(pub, app, "v1", b"app v1", ("alice",))
        digests["app:v2"] = _sign(pub, app, "v2", b"app v2", ("alice", "bob"))
        pub.publish(app)
        digests["acr:v1"] = _sign(pub, qapp, "v1", b"acr v1", ("alice",))
        digests["acr:v2"] = _sign(pub, qapp, "v2", b"acr v2", ("alice", "bob"))
        pub.publish(qapp)
        acr.add_manifest("team/app", digests["acr:v1"], ["v1"])
        acr.add_manifest("team/app", digests["acr:v2"], ["v2"])
        acr.add_user("writer", "writer-secret", {"pull", "push"})
        for gun in (f"{REG}/team/other", f"{REG}/rollout/app", f"{REG}/proxied/app",
                    f"{REG}/proxied/slow"):
            pub.init(gun)
            digests[gun] = _sign(pub, gun, "v1", gun.encode(), ())
            pub.publish(gun)
        dpub = NotaryClient.for_server(base / "doomed-publisher", doomed)
        for gun in (f"{REG}/doomed/a", f"{REG}/doomed/b"):
            dpub.init(gun)
            digests[gun] = _sign(dpub, gun, "v1", gun.encode(), ())
            dpub.publish(gun)
        policy = _policy(base / "policy.yaml", server, proxy, doomed, acr)
        (base / "acr-secret").write_text(ACR_SECRET)
        (base / "acr-password").write_text("writer-secret")
        config = {
            "deadline_seconds": DEADLINE,
            "max_body_bytes": 256 * 1024,
            "exempt": {
                "namespaces": ["kube-system", "trustcheck"],
                "objects": [{"namespace": "ops", "kind": "DaemonSet", "name": "node-*"}],
            },
            "upstream": {"tls_ca": str(tls.ca_cert), "timeout_seconds": 10, "retries": 0},
            "acr": {
                "secret_file": str(base / "acr-secret"),
                "username": "writer",
                "password_file": str(base / "acr-password"),
                "tls_ca": str(tls.ca_cert),
                "registry": acr.url,
            },
        }
        webhook = Webhook(base / "serve", tls, policy, config).start()
        try:
            yield World(base, tls, server, proxy, doomed, acr, webhook, digests)
        finally:
            webhook.stop()


# --------------------------------------------------------------------------- admitted, patched


@pytest.mark.parametrize("kind", sorted(K8S_KINDS))
def test_signed_images_are_admitted_with_the_right_patch(world: World, kind: str) -> None:
    w = world
    app, other = f"{REG}/team/app", f"{REG}/team/other"
    obj = workload(kind, pod_spec([f"{app}:v2"], init=[f"{other}:v1"]))
    api = "admission.k8s.io/v1beta1" if kind in ("Pod", "CronJob") else "admission.k8s.io/v1"
    resp = w.webhook.review(admission(kind, obj, api=api))
    assert resp["allowed"] is True, resp
    patched = apply_patch(obj, resp)
    spec = spec_of(kind, patched)
    assert spec["containers"][0]["image"] == f"{app}:v2@{w.digests['app:v2']}"
    assert spec["initContainers"][0]["image"] == f"{other}:v1@{w.digests[other]}"
    originals = json.loads(patched["metadata"]["annotations"]["trustcheck.io/original-images"])
    assert originals == {"containers/c0": f"{app}:v2", "initContainers/init0": f"{other}:v1"}
    # the validating endpoint, called after the mutation, admits the pinned object as it is
    again = w.webhook.review(admission(kind, patched, api=api), mutate=False)
    assert again == {"uid": again["uid"], "allowed": True}


def test_ephemeral_containers_and_dry_run(world: World) -> None:
    w = world
    pod = workload("Pod", pod_spec([f"{REG}/team/app:v2"]))
    debug = copy.deepcopy(pod)
    debug["spec"]["ephemeralContainers"] = [
        {"name": "dbg", "image": f"{REG}/team/other:nope", "targetContainerName": "c0"}
    ]
    doc = admission("Pod", debug, operation="UPDATE", sub="ephemeralcontainers", old=pod)
    resp = w.webhook.review(doc)
    assert resp["allowed"] is False
    assert f'image "{REG}/team/other:nope" (ephemeralContainers/dbg)' in resp["status"]["message"]
    assert "[tag-not-signed]" in resp["status"]["message"]
    dry = admission("Pod", pod, dry_run=True)
    resp = w.webhook.review(dry)
    assert resp["allowed"] is True and "patch" in resp
    line = w.webhook.wait_log(lambda x: x.get("uid") == dry["request"]["uid"])
    assert line and line[0]["dry_run"] is True and line[0]["msg"] == "review"
    delete = admission("Pod", None, operation="DELETE", old=debug)
    assert w.webhook.review(delete)["allowed"] is True


# --------------------------------------------------------------------------- denied


def _denied(w: World, image: str, kind: str = "Deployment") -> str:
    resp = w.webhook.review(admission(kind, workload(kind, pod_spec([image]))))
    assert resp["allowed"] is False, resp
    assert "patch" not in resp and resp["status"]["code"] == 403
    message: str = resp["status"]["message"]
    assert message.startswith(f"trustcheck denied {kind} team/app: 1 of 1 image(s) not allowed")
    assert f'image "{image}" (containers/c0)' in message
    return message


def test_unsigned_tampered_and_policy_denied_images(world: World) -> None:
    w = world
    app = f"{REG}/team/app"
    msg = _denied(w, f"{app}:unsigned")
    assert 'rule "two-maintainers": [tag-not-signed]' in msg
    msg = _denied(w, f"{app}:v1")
    assert 'rule "two-maintainers": [signer-threshold-not-met]' in msg and "missing: bob" in msg
    # the reference names another digest than the signed one
    forged = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    msg = _denied(w, f"{app}:v2@{forged}")
    assert "[digest-mismatch]" in msg
    msg = _denied(w, "alpine:3.20")
    assert 'rule "no-docker-hub": [policy-denied]' in msg and "use the mirror" in msg
    msg = _denied(w, "quay.io/team/app:1")
    assert "no rule: [policy-no-match]" in msg
    msg = _denied(w, f"{REG}/team/never-published:v1")
    assert 'rule "team-signed": [no-trust-data]' in msg


def test_tampered_trust_data_is_denied(world: World) -> None:
    w = world
    gun = f"{REG}/proxied/app"
    real = httpx.get(
        f"{w.server.url}/v2/{gun}/_trust/tuf/targets.json",
        verify=ssl.create_default_context(cafile=str(w.tls.ca_cert)),
    ).content
    hexdigest = w.digests[gun].removeprefix("sha256:")
    sha_b64 = base64.b64encode(bytes.fromhex(hexdigest)).decode()
    evil = base64.b64encode(hashlib.sha256(b"evil").digest()).decode()
    assert sha_b64.encode() in real
    w.proxy.add(Fault(f"{gun}/_trust/tuf/targets.", "replace", times=None,
                      body=real.replace(sha_b64.encode(), evil.encode())))
    msg = _denied(w, f"{gun}:v1")
    assert 'rule "via-proxy": [hash-mismatch]' in msg


def test_warn_mode_admits_with_warnings(world: World) -> None:
    w = world
    image = f"{REG}/rollout/app:v1"
    resp = w.webhook.review(admission("Job", workload("Job", pod_spec([image]))))
    assert resp["allowed"] is True
    assert any(
        x.startswith(f'trustcheck (warn mode) image "{image}": rule "rollout" would deny: '
                     "[signer-unknown]")
        for x in resp["warnings"]
    )


def test_exemptions(world: World) -> None:
    w = world
    bad = workload("DaemonSet", pod_spec([f"{REG}/team/app:unsigned"]))
    assert w.webhook.review(admission("DaemonSet", bad, namespace="kube-system"))["allowed"]
    bad["metadata"]["name"] = "node-exporter"
    doc = admission("DaemonSet", bad, namespace="ops")
    doc["request"]["name"] = "node-exporter"
    assert w.webhook.review(doc)["allowed"] is True
    doc = admission("DaemonSet", bad, namespace="team")
    assert w.webhook.review(doc)["allowed"] is False


# --------------------------------------------------------------------------- failures upstream


def test_a_hanging_server_is_denied_within_the_deadline(world: World) -> None:
    w = world
    gun = f"{REG}/proxied/slow"
    w.proxy.add(Fault(f"{gun}/_trust/tuf/timestamp.json", "delay", times=None, delay=8.0))
    start = time.monotonic()
    resp = w.webhook.review(admission("Pod", workload("Pod", pod_spec([f"{gun}:v1"]))))
    took = time.monotonic() - start
    assert resp["allowed"] is False
    assert "[admission-deadline]" in resp["status"]["message"]
    assert f"deadline of {DEADLINE:g} s" in resp["status"]["message"]
    assert DEADLINE - 0.1 <= took < DEADLINE + 1.0
    assert "trustcheck_webhook_deadline_exceeded_total 1.0" in w.webhook.metrics()


def test_notary_server_stopped_mid_run(world: World) -> None:
    w = world
    a, b = f"{REG}/doomed/a", f"{REG}/doomed/b"
    resp = w.webhook.review(admission("Pod", workload("Pod", pod_spec([f"{a}:v1"]))))
    assert resp["allowed"] is True
    w.doomed.stop()
    start = time.monotonic()
    resp = w.webhook.review(admission("Pod", workload("Pod", pod_spec([f"{b}:v1"]))))
    took = time.monotonic() - start
    assert resp["allowed"] is False and took < DEADLINE
    assert 'rule "doomed": [network-error]' in resp["status"]["message"]
    # what was verified before the server went away is still served from the cache
    resp = w.webhook.review(admission("Pod", workload("Pod", pod_spec([f"{a}:v1"]))))
    assert resp["allowed"] is True
    metrics = w.webhook.metrics()
    assert 'trustcheck_webhook_upstream_errors_total{code="network-error"}' in metrics


# --------------------------------------------------------------------------- bad input


def test_malformed_and_oversized_bodies(world: World) -> None:
    w = world
    hook = w.webhook
    r = hook.client.post("/validate", content=b"{not json", headers=_JSON)  # type: ignore[union-attr]
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
    r = hook.client.post("/mutate", content=b"[" * 100_000, headers=_JSON)  # type: ignore[union-attr]
    assert r.status_code == 400
    for doc in ({}, {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
                {"apiVersion": "v1", "kind": "Pod"}, [1, 2], "x", None):
        assert hook.post("/validate", doc).status_code == 400
    big = admission("Pod", workload("Pod", pod_spec(["x" * 300_000])))
    assert hook.post("/validate", big).status_code == 413
    # a well-formed review of a malformed object is answered: deny
    broken = admission("Pod", {"metadata": {"name": "p"}, "spec": {"containers": "nginx"}})
    resp = hook.review(broken)
    assert resp["allowed"] is False and "[admission-invalid]" in resp["status"]["message"]
    typed = admission("Pod", {"metadata": {"name": "p"}, "spec": {"containers": [{"image": 7}]}})
    assert hook.review(typed)["allowed"] is False
    # raw garbage on the TLS socket
    with httpx.Client(verify=hook.ctx, timeout=5) as c:
        assert c.request("BREW", f"{hook.url}/validate").status_code == 405
    assert hook.alive()
    assert hook.client.get("/healthz").json() == {"status": "ok"}  # type: ignore[union-attr]
    metrics = hook.metrics()
    assert 'trustcheck_webhook_reviews_total{endpoint="validate",result="invalid"}' in metrics


def test_plain_http_is_refused(world: World) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{world.webhook.port}/healthz", timeout=3)
    assert world.webhook.alive()


def test_metrics_and_logs(world: World) -> None:
    w = world
    w.webhook.review(admission("Pod", workload("Pod", pod_spec([f"{REG}/team/app:v2"]))))
    metrics = w.webhook.metrics()
    for needle in (
        'trustcheck_webhook_reviews_total{endpoint="mutate",result="allowed"}',
        'trustcheck_webhook_decisions_total{result="allow",rule="two-maintainers"}',
        'trustcheck_webhook_cache_lookups_total{result="hit"}',
        'trustcheck_webhook_cache_lookups_total{result="miss"}',
        'trustcheck_webhook_review_seconds_bucket{endpoint="mutate",le="0.01"}',
    ):
        assert needle in metrics
    reviews = w.webhook.wait_log(lambda x: x.get("msg") == "review")
    assert reviews and all(x["level"] == "info" and "duration_ms" in x for x in reviews)
    assert w.webhook.client is not None
    ready = w.webhook.client.get("/readyz").json()
    assert ready["status"] == "ready"


# --------------------------------------------------------------------------- ACR quarantine


def _acr_event(w: World, tag: str) -> dict[str, Any]:
    return {
        "id": "e1",
        "timestamp": "2026-11-27T00:00:00Z",
        "action": "quarantine",
        "target": {
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "size": 528,
            "digest": w.digests[f"acr:{tag}"],
            "length": 528,
            "repository": "team/app",
            "tag": tag,
        },
        "request": {"id": "r1", "host": w.acr.host_port, "method": "PUT", "useragent": "docker"},
    }


def test_acr_quarantine_release(world: World) -> None:
    w = world
    client = w.webhook.client
    assert client is not None
    r = client.post("/acr/quarantine", json=_acr_event(w, "v2"))
    assert r.status_code == 401
    h = {"X-Trustcheck-Secret": ACR_SECRET}
    r = client.post("/acr/quarantine", json=_acr_event(w, "v2"), headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["action"] == "released"
    state, details = w.acr.state("team/app", w.digests["acr:v2"])
    assert state == "Passed" and details is not None
    assert json.loads(details)["rule"]["name"] == "acr-two"
    r = client.post("/acr/quarantine", json=_acr_event(w, "v1"), headers=h)
    assert r.status_code == 200 and r.json()["action"] == "left in quarantine"
    assert r.json()["decision"]["reasons"][0]["code"] == "signer-threshold-not-met"
    assert w.acr.state("team/app", w.digests["acr:v1"]) == ("Quarantined", None)


# --------------------------------------------------------------------------- shared cache in Redis


class Redis:
    """A throw-away redis-server on a free loopback port."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Redis:
        binary = find_binary("redis-server")
        assert binary is not None
        self.base.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                 str(self.base), "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
                stdin=subprocess.DEVNULL,
                stdout=(self.base / "redis.log").open("ab"),
                stderr=subprocess.STDOUT,
            )
            import redis

            client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
            end = time.monotonic() + 10
            while time.monotonic() < end and self.proc.poll() is None:
                try:
                    if client.ping():
                        client.close()
                        return self
                except redis.RedisError:
                    time.sleep(0.05)
            self.__exit__()
        raise RuntimeError(f"redis-server did not start: {(self.base / 'redis.log').read_text()}")

    def __exit__(self, *exc: object) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _metric(text: str, sample: str) -> float:
    """The value of one sample (name with labels, as exposed) of a Prometheus text page."""
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_redis_shared_cache_between_two_servers(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    if find_binary("redis-server") is None:
        pytest.skip(
            "!!! SHARED-CACHE TEST SKIPPED: redis-server is missing "
            "(apt-get install redis-server) !!!"
        )
    import redis

    w = world
    base = tmp_path_factory.mktemp("shared")
    pub = NotaryClient.for_server(base / "publisher", w.server)
    x, y = f"{REG}/shared/x", f"{REG}/shared/y"
    digests = {}
    for gun in (x, y):
        pub.init(gun)
        digests[gun] = _sign(pub, gun, "v1", gun.encode(), ())
        pub.publish(gun)
    policy = base / "policy.yaml"
    policy.write_text(
        f'version: 1\nrules:\n  - name: shared\n    pattern: "{REG}/shared/*"\n'
        f"    trust:\n      server: {w.proxy.url}\n"
    )
    config = {
        "deadline_seconds": 5,
        "upstream": {"tls_ca": str(w.tls.ca_cert), "retries": 0},
        "cache": {"ttl_seconds": 120},
    }
    with Redis(base / "redis") as rs:
        env = {"TRUSTCHECK_CACHE_SECRET": SECRET}
        extra = ("--cache", rs.url)
        a = Webhook(base / "a", w.tls, policy, config, extra=extra, env=env).start()
        b = Webhook(base / "b", w.tls, policy, config, extra=extra, env=env).start()
        try:
            w.proxy.reset()
            resp = a.review(admission("Deployment", workload("Deployment", pod_spec([f"{x}:v1"]))))
            assert resp["allowed"] is True
            fetched = [p for p in w.proxy.paths() if "shared/x" in p or p.endswith(".json")]
            assert any(p.startswith("timestamp") for p in fetched), fetched
            seen = len(w.proxy.paths())
            # the second replica finds the verified bytes in Redis: no request to the server
            obj = workload("Deployment", pod_spec([f"{x}:v1"]))
            resp = b.review(admission("Deployment", obj))
            assert resp["allowed"] is True
            patched = apply_patch(obj, resp)
            assert spec_of("Deployment", patched)["containers"][0]["image"] == (
                f"{x}:v1@{digests[x]}"
            )
            assert len(w.proxy.paths()) == seen
            mb = b.metrics()
            assert _metric(mb, 'trustcheck_webhook_shared_cache_total{result="hit"}') == 1.0
            # a tampered entry (with a valid MAC: the attacker holds the secret here) is
            # verified locally, refused, and fetched again from the server
            resp = a.review(admission("Pod", workload("Pod", pod_spec([f"{y}:v1"]))))
            assert resp["allowed"] is True
            r = redis.Redis.from_url(rs.url)
            (key,) = [k for k in r.keys("trustcheck:v1:trust:*") if _gun_of(r.get(k)) == y]
            value = r.get(key)
            assert isinstance(value, bytes)
            doc = orjson.loads(value.split(b".", 2)[2])
            raw = base64.b64decode(doc["files"]["targets"])
            doc["files"]["targets"] = base64.b64encode(raw.replace(b'"v1"', b'"v2"')).decode()
            payload = orjson.dumps(doc)
            import hmac as _hmac

            mac = _hmac.new(
                SECRET.encode(),
                b"trustcheck shared trust-data cache v1\0" + payload,
                hashlib.sha256,
            ).hexdigest()
            r.set(key, b"tc1." + mac.encode() + b"." + payload, px=60_000)
            before = len(w.proxy.paths())
            resp = b.review(admission("Pod", workload("Pod", pod_spec([f"{y}:v1"]))))
            assert resp["allowed"] is True
            assert len(w.proxy.paths()) > before  # b went to the server itself
            mb = b.metrics()
            assert _metric(mb, 'trustcheck_webhook_shared_cache_total{result="rejected"}') == 1.0
            assert b.wait_log(
                lambda x: "did not verify" in x.get("msg", "") and "hash-mismatch" in x["msg"]
            )
            r.close()
        finally:
            a.stop()
            b.stop()


def _gun_of(value: bytes | None) -> str | None:
    if value is None:
        return None
    gun = orjson.loads(value.split(b".", 2)[2])["gun"]
    return str(gun)


# --------------------------------------------------------------------------- deploy/


DEPLOY = REPO_ROOT / "deploy"


def _docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "base").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def test_deploy_manifests_carry_the_required_fields() -> None:
    docs = _docs()
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    (dep,) = by_kind["Deployment"]
    ns = dep["metadata"]["namespace"]
    assert dep["spec"]["replicas"] >= 2
    pod = dep["spec"]["template"]["spec"]
    anti = pod["affinity"]["podAntiAffinity"]
    terms = anti.get("requiredDuringSchedulingIgnoredDuringExecution") or [
        t["podAffinityTerm"] for t in anti["preferredDuringSchedulingIgnoredDuringExecution"]
    ]
    assert terms[0]["topologyKey"] == "kubernetes.io/hostname"
    (container,) = pod["containers"]
    args = container["args"]
    assert args[0] == "serve" and "--tls-cert" in args and "--tls-key" in args
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    (pdb,) = by_kind["PodDisruptionBudget"]
    assert pdb["spec"].get("minAvailable", 0) >= 1 or pdb["spec"].get("maxUnavailable") == 1
    (svc,) = by_kind["Service"]
    assert svc["metadata"]["namespace"] == ns
    port = svc["spec"]["ports"][0]
    assert port["port"] == 443
    (config_map,) = [c for c in by_kind["ConfigMap"] if "config.yaml" in c.get("data", {})]
    server_config = yaml.safe_load(config_map["data"]["config.yaml"])
    deadline = server_config["deadline_seconds"]
    from trustcheck.policy.load import parse_policy
    from trustcheck.webhook.config import parse_config

    parse_config(server_config, "deploy config.yaml")
    policies = [c for c in by_kind["ConfigMap"] if "policy.yaml" in c.get("data", {})]
    parse_policy(policies[0]["data"]["policy.yaml"], "deploy policy.yaml", DEPLOY)
    for kind, path in (
        ("ValidatingWebhookConfiguration", "/validate"),
        ("MutatingWebhookConfiguration", "/mutate"),
    ):
        (cfg,) = by_kind[kind]
        (hook,) = cfg["webhooks"]
        assert hook["failurePolicy"] == "Fail"
        assert hook["sideEffects"] == "None"
        assert hook["admissionReviewVersions"][0] == "v1"
        assert deadline < hook["timeoutSeconds"] <= 30
        assert hook["clientConfig"]["service"] == {
            "name": svc["metadata"]["name"],
            "namespace": ns,
            "path": path,
            "port": 443,
        }
        exprs = hook["namespaceSelector"]["matchExpressions"]
        (exempt,) = [e for e in exprs if e["key"] == "kubernetes.io/metadata.name"]
        assert exempt["operator"] == "NotIn"
        assert {"kube-system", ns} <= set(exempt["values"])
        resources = {r for rule in hook["rules"] for r in rule["resources"]}
        assert {
            "pods",
            "pods/ephemeralcontainers",
            "deployments",
            "replicasets",
            "statefulsets",
            "daemonsets",
            "jobs",
            "cronjobs",
            "replicationcontrollers",
            "podtemplates",
        } <= resources
        ops = {op for rule in hook["rules"] for op in rule["operations"]}
        assert ops == {"CREATE", "UPDATE"}
    mutating = by_kind["MutatingWebhookConfiguration"][0]["webhooks"][0]
    assert mutating["reinvocationPolicy"] == "IfNeeded"
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "ENTRYPOINT [\"trustcheck\"]" in dockerfile and "USER 65532" in dockerfile
