"""The webhook's shared Redis cache, TLS reload and ACR receiver as trust boundaries.

Two (or more) real `trustcheck serve` replicas (uvicorn, TLS) share a real
redis-server and fetch from a real notary-server; the attacker writes to Redis
directly and does NOT hold the HMAC key. Every scenario here failed before
issue 22 was fixed:

* a shared hit is verified against the replica's own trust dir (root, floors)
  and written back: a repository re-created with an unrelated root is denied
  (`root-rotation-invalid`) even though another replica shared the new root;
* a shared hit lives ttl minus its age: the revocation window is at most ttl;
* rollback floors survive `max_entries` evictions: a replayed older entry is
  refused;
* a 500 MB junk value is never read (GETRANGE, capped): memory stays bounded;
* held lock keys cost at most a small part of the deadline (9 cold images
  admitted while the attacker holds their locks); locks are owner tokens and
  only the owner's lock is deleted;
* a WRONGTYPE value affects only its key;
* a broken certificate/key pair written while serving keeps handshakes working;
* ACR credentials go to `acr.registry` only; the receiver reports a manifest
  already `Passed` as such.

Numbers (revocation window, peak RSS) are printed: run with `-s` to see them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from acr_emulator import AcrEmulator
from conftest import pod_spec, workload
from test_webhook_server import Redis, Webhook, _metric, admission

from fixtures.notary_harness import (
    NotaryClient,
    NotaryServer,
    TLSMaterial,
    find_binary,
    make_tls,
    missing_notary_binaries,
)
from trustcheck.webhook.shared import (
    LOCK_PREFIX,
    BadValue,
    MemoryStore,
    RedisStore,
    SharedCache,
    is_lock_token,
)

pytestmark = pytest.mark.integration

REG = "registry.example.com"
SECRET = "redis-trust-boundary-secret-0123456789"
TRUSTCHECK = Path(sys.executable).parent / "trustcheck"


def _require() -> None:
    missing = missing_notary_binaries()
    if find_binary("redis-server") is None:
        missing.append("redis-server")
    if missing:
        pytest.skip(
            "!!! SHARED-CACHE TESTS SKIPPED: missing " + ", ".join(missing)
            + " (make system-deps installs them) !!!"
        )


def _sign(pub: NotaryClient, gun: str, tag: str, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    pub.addhash(gun, tag, len(data), digest)
    return "sha256:" + digest


@dataclass
class World:
    base: Path
    tls: TLSMaterial
    server: NotaryServer
    redis: Redis
    pub: NotaryClient
    policy: Path
    created: set[str] = field(default_factory=set)

    def publish(self, gun: str, tag: str = "v1", data: bytes | None = None) -> str:
        """Create (if needed) and sign ``gun:tag``; the signed digest."""
        if gun not in self.created:
            self.pub.init(gun)
            self.created.add(gun)
        digest = _sign(self.pub, gun, tag, data if data is not None else gun.encode())
        self.pub.publish(gun)
        return digest

    def replica(
        self, name: str, *, ttl: float = 60, deadline: float = 4, secret: str = SECRET,
        **cache: Any,
    ) -> Webhook:
        config = {
            "deadline_seconds": deadline,
            "upstream": {"tls_ca": str(self.tls.ca_cert), "retries": 0},
            "cache": {"ttl_seconds": ttl, **cache},
            # these tests measure how fresh the trust data is: continuity (a digest
            # verified before stays admissible after its tag is re-signed, issue 17;
            # tests/integration/test_webhook_lifecycle.py) is off, so a re-sign denies
            "continuity": {"window_seconds": 0},
        }
        return Webhook(
            self.base / name, self.tls, self.policy, config,
            extra=("--cache", self.redis.url), env={"TRUSTCHECK_CACHE_SECRET": secret},
        )

    def client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.redis.url)

    def key(self, gun: str) -> str:
        """The Redis key of ``gun``'s entry (what a replica computes)."""
        return SharedCache(MemoryStore(), SECRET.encode(), 60).key(self.server.url, gun)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    _require()
    base = tmp_path_factory.mktemp("redis-boundary")
    tls = make_tls(base / "tls")
    with (
        NotaryServer(base / "notary", tls=tls) as server,
        Redis(base / "redis") as rs,
    ):
        pub = NotaryClient.for_server(base / "publisher", server)
        policy = base / "policy.yaml"
        policy.write_text(
            f'version: 1\nrules:\n  - name: shared\n    pattern: "{REG}/r/*"\n'
            f"    trust:\n      server: {server.url}\n"
        )
        yield World(base, tls, server, rs, pub, policy)


def _pod(*images: str) -> dict[str, Any]:
    return admission("Pod", workload("Pod", pod_spec(list(images))))


def _denied_with(resp: dict[str, Any], code: str) -> bool:
    return resp["allowed"] is False and f"[{code}]" in resp["status"]["message"]


def _start_log(hook: Webhook) -> dict[str, Any]:
    (line,) = [x for x in hook.log_lines() if x.get("msg") == "starting"][-1:]
    return line


# --------------------------------------------------------------------------- 1. trusted root


def test_shared_hit_is_checked_against_the_replicas_trust_dir(world: World) -> None:
    w = world
    gun = f"{REG}/r/rotate"
    w.publish(gun)
    a = w.replica("rotate-a").start()
    try:
        assert a.review(_pod(f"{gun}:v1"))["allowed"] is True
        r1 = (a.base / "trust" / "tuf" / gun / "metadata" / "root.json").read_bytes()
        assert w.client().exists(w.key(gun)) == 1  # the key the test computes is the real one
    finally:
        a.stop()
    # the repository is deleted and re-created by someone else, with an unrelated root
    w.pub.run("delete", gun, "--remote")
    other = NotaryClient.for_server(w.base / "publisher-2", w.server)
    other.init(gun)
    new_digest = _sign(other, gun, "v1", b"another image")
    other.publish(gun)
    w.client().delete(w.key(gun))  # A's entry has expired meanwhile
    c = w.replica("rotate-c").start()  # a fresh replica trusts R2 on first use and shares it
    d = w.replica("rotate-d").start()
    try:
        assert c.review(_pod(f"{gun}:v1@{new_digest}"))["allowed"] is True
        # a second fresh replica takes C's entry: verified, and written back to its trust dir
        assert d.review(_pod(f"{gun}:v1"))["allowed"] is True
        assert _metric(d.metrics(), 'trustcheck_webhook_shared_cache_total{result="hit"}') == 1
        c_meta = c.base / "trust" / "tuf" / gun / "metadata"
        d_meta = d.base / "trust" / "tuf" / gun / "metadata"
        for role in ("root", "timestamp", "snapshot", "targets"):
            assert (d_meta / f"{role}.json").read_bytes() == (c_meta / f"{role}.json").read_bytes()
        r2 = (c_meta / "root.json").read_bytes()
        assert r2 != r1
        # A restarts with R1 in its trust dir: the shared R2 is refused as notary refuses it
        a.start()
        resp = a.review(_pod(f"{gun}:v1"))
        assert _denied_with(resp, "root-rotation-invalid"), resp
        assert a.wait_log(
            lambda x: "did not verify" in x.get("msg", "") and "root-rotation-invalid" in x["msg"]
        )
        assert _metric(a.metrics(), 'trustcheck_webhook_shared_cache_total{result="hit"}') == 0
        # and A's trusted root is untouched (no flapping on its next fetch)
        assert (a.base / "trust" / "tuf" / gun / "metadata" / "root.json").read_bytes() == r1
        resp = a.review(_pod(f"{gun}:v1"))
        assert _denied_with(resp, "root-rotation-invalid"), resp
    finally:
        for hook in (a, c, d):
            hook.stop()


# --------------------------------------------------------------------------- 2. revocation, floors


def test_revocation_window_is_at_most_the_ttl(world: World) -> None:
    w = world
    ttl = 6.0
    gun = f"{REG}/r/revoke"
    old = w.publish(gun, "v1", b"revoke v1")
    a = w.replica("revoke-a", ttl=ttl).start()
    b = w.replica("revoke-b", ttl=ttl).start()
    try:
        image = f"{gun}:v1@{old}"
        assert a.review(_pod(image))["allowed"] is True
        fetched = time.monotonic()  # A's fetch started before this
        time.sleep(ttl / 2)
        # B takes A's entry when it is ttl/2 old
        assert b.review(_pod(image))["allowed"] is True
        assert _metric(b.metrics(), 'trustcheck_webhook_shared_cache_total{result="hit"}') == 1
        _sign(w.pub, gun, "v1", b"revoke v1, re-signed")  # the old digest is revoked
        w.pub.publish(gun)
        revoked = time.monotonic()
        last_admit = {"a": 0.0, "b": 0.0}
        denied_since = {"a": 0, "b": 0}
        end = revoked + 3 * ttl
        while time.monotonic() < end and min(denied_since.values()) < 3:
            for name, hook in (("a", a), ("b", b)):
                sent = time.monotonic()
                resp = hook.review(_pod(image))
                if resp["allowed"]:
                    last_admit[name] = sent
                    denied_since[name] = 0
                else:
                    assert _denied_with(resp, "digest-mismatch"), resp
                    denied_since[name] += 1
            time.sleep(0.1)
        assert min(denied_since.values()) >= 3, "the old digest was still admitted"
        # no replica admitted the old digest once ttl had passed since the fetch
        assert last_admit["a"] < fetched + ttl and last_admit["b"] < fetched + ttl, (
            last_admit, fetched
        )
        window = max(last_admit.values()) - revoked
        print(f"\nrevocation window (ttl {ttl:g} s): old digest last admitted "
              f"{max(window, 0.0):.2f} s after the re-signed tag was published")
        assert window <= ttl
    finally:
        a.stop()
        b.stop()


def test_rollback_floors_survive_eviction(world: World) -> None:
    w = world
    gun, filler = f"{REG}/r/floor", f"{REG}/r/floor-filler"
    old = w.publish(gun, "v1", b"floor v1")
    w.publish(filler)
    r = w.client()
    a = w.replica("floor-a").start()
    b = w.replica("floor-b", max_entries=1).start()
    try:
        assert a.review(_pod(f"{gun}:v1@{old}"))["allowed"] is True
        captured = r.get(w.key(gun))  # the attacker keeps a copy of the old entry
        assert captured is not None
        new = _sign(w.pub, gun, "v1", b"floor v1, re-signed")
        w.pub.publish(gun)
        r.delete(w.key(gun))
        assert b.review(_pod(f"{gun}:v1@{new}"))["allowed"] is True  # B trusts the new versions
        assert b.review(_pod(f"{filler}:v1"))["allowed"] is True  # evicts gun (max_entries 1)
        r.set(w.key(gun), captured, px=60_000)  # replayed: authentic, still young
        resp = b.review(_pod(f"{gun}:v1@{old}"))
        assert _denied_with(resp, "digest-mismatch"), resp
        assert b.wait_log(
            lambda x: "did not verify" in x.get("msg", "") and "version-rollback" in x["msg"]
        )
        # a replica restarted since still refuses it: the floors are in its trust dir
        b.stop()
        r.set(w.key(gun), captured, px=60_000)
        b.start()
        resp = b.review(_pod(f"{gun}:v1@{old}"))
        assert _denied_with(resp, "digest-mismatch"), resp
        assert _metric(b.metrics(), 'trustcheck_webhook_shared_cache_total{result="hit"}') == 0
    finally:
        a.stop()
        b.stop()


# --------------------------------------------------------------------------- 3. huge values


def _rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def test_a_500_mb_value_is_never_read(world: World) -> None:
    w = world
    gun = f"{REG}/r/huge"
    w.publish(gun)
    r = w.client()
    key = w.key(gun)
    size = 500_000_000
    r.setrange(key, size - 1, b"x")  # 500 MB of junk, made inside Redis
    assert r.strlen(key) == size
    b = w.replica("huge-b").start()
    try:
        assert b.proc is not None
        _rss0, hwm0 = _rss_kib(b.proc.pid)
        resp = b.review(_pod(f"{gun}:v1"))
        assert resp["allowed"] is True  # fetched from the server instead
        rss1, hwm1 = _rss_kib(b.proc.pid)
        print(f"\n500 MB value: replica peak RSS {hwm0 / 1024:.0f} MiB before the review, "
              f"{hwm1 / 1024:.0f} MiB after (RSS {rss1 / 1024:.0f} MiB)")
        assert hwm1 < 256 * 1024, "the replica's memory grew with the junk value"
        assert b.wait_log(lambda x: "larger than" in x.get("msg", ""))
        assert r.strlen(key) < 1_000_000  # the replica replaced it with its verified entry
    finally:
        b.stop()


# --------------------------------------------------------------------------- 4. locks


def test_held_locks_never_turn_into_denials(world: World) -> None:
    w = world
    guns = [f"{REG}/r/cold-{i}" for i in range(10)]
    digests = {g: w.publish(g) for g in guns}
    r = w.client()
    attacker: dict[str, bytes] = {}
    for i, gun in enumerate(guns[:9]):
        lock = w.key(gun).replace(":trust:", ":lock:")
        if i < 5:  # well-formed tokens, as a replica writes them, and a plausible expiry
            value = LOCK_PREFIX + os.urandom(16).hex().encode()
            r.set(lock, value, px=20_000)
        elif i < 7:  # no expiry at all
            value = b"held forever"
            r.set(lock, value)
        elif i == 7:  # far too long
            value = LOCK_PREFIX + os.urandom(16).hex().encode()
            r.set(lock, value, px=3_600_000)
        else:  # not even a string
            value = b"list"
            r.rpush(lock, value)
        attacker[lock] = value
    hook = w.replica("locks", deadline=4).start()
    try:
        images = [f"{g}:v1" for g in guns]
        sent = time.monotonic()
        resp = hook.review(_pod(*images))
        took = time.monotonic() - sent
        assert resp["allowed"] is True, resp
        print(f"\n9 lock keys held by the attacker: a Pod with 10 cold images answered in "
              f"{took:.2f} s (deadline 4 s)")
        patches = json.loads(__import__("base64").b64decode(resp["patch"]))
        pinned = json.dumps(patches)
        assert all(digests[g] in pinned for g in guns)
        # the attacker's locks are untouched (a replica deletes only its own lock) ...
        for lock, value in attacker.items():
            if value == b"list":
                assert r.lrange(lock, 0, -1) == [b"list"]
            else:
                assert r.get(lock) == value
        # ... and the replica's own lock (the one GUN not attacked) is released
        assert r.exists(w.key(guns[9]).replace(":trust:", ":lock:")) == 0
        assert hook.wait_log(lambda x: "holds a value no replica writes" in x.get("msg", ""))
        assert "admission-deadline" not in json.dumps(resp)
    finally:
        hook.stop()


def test_redis_store_locks_caps_and_wrongtype(world: World) -> None:
    """RedisStore against the real redis-server: owner tokens with expiry,
    compare-and-delete, GETRANGE caps, a WRONGTYPE key affects only itself."""
    r = world.client()
    store = RedisStore(world.redis.url)
    try:
        token = store.acquire("t:lock:1", 5)
        assert token is not None and is_lock_token(token)
        assert store.acquire("t:lock:1", 5) is None  # held
        value, left = store.lock_state("t:lock:1")
        assert value == token and left is not None and 0 < left <= 5
        store.release("t:lock:1", LOCK_PREFIX + b"0" * 32)  # not the owner: kept
        assert r.get("t:lock:1") == token
        store.release("t:lock:1", token)
        assert r.exists("t:lock:1") == 0
        r.set("t:value", b"x" * 1000)
        got = store.get("t:value", 100)
        assert got is not None and len(got) == 101  # never more than cap + 1 bytes
        assert store.get("t:missing", 100) is None
        r.rpush("t:list", b"1")
        with pytest.raises(BadValue):
            store.get("t:list", 100)
        assert store.get("t:value", 10) == b"x" * 11  # the store is still in use
        r.set("t:forever", b"held")
        assert store.lock_state("t:forever") == (b"held", None)
    finally:
        store.close()
        r.delete("t:value", "t:list", "t:forever")


def test_a_wrongtype_key_affects_only_its_repository(world: World) -> None:
    w = world
    x, y = f"{REG}/r/wrongtype-x", f"{REG}/r/wrongtype-y"
    w.publish(x)
    w.publish(y)
    r = w.client()
    a = w.replica("wrongtype-a").start()
    b = w.replica("wrongtype-b").start()
    try:
        assert a.review(_pod(f"{y}:v1"))["allowed"] is True  # y's entry is in Redis
        r.rpush(w.key(x), b"not a string")
        r.rpush(w.key(x).replace(":trust:", ":lock:"), b"nor this")
        assert b.review(_pod(f"{x}:v1"))["allowed"] is True
        # right away (the old code skipped Redis for 5 s): y still comes from Redis
        assert b.review(_pod(f"{y}:v1"))["allowed"] is True
        mb = b.metrics()
        assert _metric(mb, 'trustcheck_webhook_shared_cache_total{result="hit"}') == 1
        assert _metric(mb, 'trustcheck_webhook_shared_cache_total{result="error"}') == 0
        assert b.wait_log(lambda x: "unusable key" in x.get("msg", ""))
    finally:
        a.stop()
        b.stop()


def test_key_fingerprint_is_logged_and_a_foreign_key_is_refused(world: World) -> None:
    w = world
    gun = f"{REG}/r/fingerprint"
    w.publish(gun)
    a = w.replica("fp-a").start()
    b = w.replica("fp-b", secret=SECRET + "\n").start()  # a trailing newline: the same key
    c = w.replica("fp-c", secret="another-secret-of-enough-length-42").start()
    try:
        prints = [_start_log(h)["config"]["cache_key_fingerprint"] for h in (a, b, c)]
        assert prints[0] == prints[1] != prints[2]
        assert len(prints[0]) == 16 and SECRET not in json.dumps(_start_log(a))
        assert a.review(_pod(f"{gun}:v1"))["allowed"] is True
        assert b.review(_pod(f"{gun}:v1"))["allowed"] is True
        assert _metric(b.metrics(), 'trustcheck_webhook_shared_cache_total{result="hit"}') == 1
        # a replica with another key cannot use (or be fed) the others' entries
        assert c.review(_pod(f"{gun}:v1"))["allowed"] is True
        assert c.wait_log(lambda x: "bad MAC" in x.get("msg", ""))
        assert _metric(c.metrics(), 'trustcheck_webhook_shared_cache_total{result="hit"}') == 0
    finally:
        for h in (a, b, c):
            h.stop()


def test_a_whitespace_secret_is_refused(world: World) -> None:
    w = world
    hook = w.replica("blank", secret=" \n\t ")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "NOTARY_"))}
    env["TRUSTCHECK_CACHE_SECRET"] = " \n\t "
    done = subprocess.run(
        [str(TRUSTCHECK), "serve", "--policy", str(w.policy), "--tls-cert",
         str(w.tls.server_cert), "--tls-key", str(w.tls.server_key), "--config",
         str(hook.config), "--cache", w.redis.url, "--trust-dir", str(hook.base / "trust"),
         "--port", "1"],
        env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert "only whitespace" in done.stderr and "Traceback" not in done.stderr


# --------------------------------------------------------------------------- 5. TLS reload


def _peer_cert(port: int, sni: str | None) -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        ctx.wrap_socket(sock, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def _der(pem_path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem_path.read_text())


def test_tls_reload_never_breaks_handshakes(world: World) -> None:
    w = world
    live = w.base / "tls-live"
    live.mkdir()
    shutil.copy(w.tls.server_cert, live / "server.crt")
    shutil.copy(w.tls.server_key, live / "server.key")
    tls = TLSMaterial(w.tls.ca_cert, w.tls.ca_key, live / "server.crt", live / "server.key")
    fresh = make_tls(w.base / "tls-new")
    hook = Webhook(w.base / "tls-hook", tls, w.policy, {"tls_reload_seconds": 0.2}).start()
    old, new = _der(w.tls.server_cert), _der(fresh.server_cert)
    try:
        for sni in (None, "localhost"):
            assert _peer_cert(hook.port, sni) == old
        # the new certificate is written before its key: a mismatched pair on disk
        shutil.copy(fresh.server_cert, live / "server.crt")
        assert hook.wait_log(lambda x: "do not load" in x.get("msg", ""))
        for sni in (None, "localhost"):
            assert _peer_cert(hook.port, sni) == old  # still the old, working pair
        assert hook.client is not None
        assert hook.client.get("/healthz").json() == {"status": "ok"}
        # the key follows: the new pair is served from now on
        shutil.copy(fresh.server_key, live / "server.key")
        assert hook.wait_log(lambda x: x.get("msg") == "reloaded the TLS certificate")
        for sni in (None, "localhost"):
            assert _peer_cert(hook.port, sni) == new
        ctx = ssl.create_default_context(cafile=str(fresh.ca_cert))
        r = httpx.get(f"{hook.url}/healthz", verify=ctx, timeout=5)
        assert r.json() == {"status": "ok"}
        # garbage written over the certificate: the new pair keeps serving
        (live / "server.crt").write_text("-----BEGIN CERTIFICATE-----\ngarbage\n")
        end = time.monotonic() + 5
        while time.monotonic() < end:
            lines = [x for x in hook.log_lines() if "do not load" in x.get("msg", "")]
            if len(lines) >= 2:
                break
            time.sleep(0.05)
        assert len(lines) >= 2
        assert _peer_cert(hook.port, None) == new
        assert hook.alive()
    finally:
        hook.stop()


# --------------------------------------------------------------------------- 6. ACR receiver


ACR_SECRET = "acr-receiver-secret-0123456789"


def _event(host: str, digest: str) -> dict[str, Any]:
    return {
        "id": "e1",
        "timestamp": "2026-11-27T00:00:00Z",
        "action": "quarantine",
        "target": {"digest": digest, "repository": "team/app", "tag": "v1"},
        "request": {"id": "r1", "host": host, "method": "PUT", "useragent": "docker"},
    }


def test_acr_credentials_go_to_the_configured_registry_only(world: World) -> None:
    w = world
    base = w.base / "acr"
    base.mkdir()
    with (
        AcrEmulator(base / "good", tls=w.tls) as good,
        AcrEmulator(base / "evil", tls=w.tls) as evil,
    ):
        signed = {}
        for acr in (good, evil):
            gun = f"{acr.host_port}/team/app"
            signed[acr.host_port] = w.publish(gun, "v1", gun.encode())
            acr.add_manifest("team/app", signed[acr.host_port], ["v1"])
            acr.add_user("writer", "writer-secret", {"pull", "push"})
        unsigned = "sha256:" + hashlib.sha256(b"never signed").hexdigest()
        good.add_manifest("team/app", unsigned, ["v0"])
        good.manifests[("team/app", unsigned)].state = "Passed"  # released by hand earlier
        policy = base / "policy.yaml"
        policy.write_text(
            "version: 1\nrules:\n"
            + "".join(
                f'  - pattern: "{a.host_port}/team/*"\n    trust:\n      server: {w.server.url}\n'
                for a in (good, evil)
            )
        )
        (base / "secret").write_text(ACR_SECRET + "\n")
        (base / "password").write_text("writer-secret\n")
        acr_cfg = {
            "secret_file": str(base / "secret"),
            "username": "writer",
            "password_file": str(base / "password"),
            "tls_ca": str(w.tls.ca_cert),
        }
        # mark_failed without a registry is a config error: serve refuses to start
        bad = Webhook(base / "bad", w.tls, policy, {"acr": {**acr_cfg, "mark_failed": True}})
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "NOTARY_"))}
        done = subprocess.run(
            [str(TRUSTCHECK), "serve", "--policy", str(policy), "--tls-cert",
             str(w.tls.server_cert), "--tls-key", str(w.tls.server_key), "--config",
             str(bad.config), "--trust-dir", str(base / "bad" / "trust"), "--port", "1"],
            env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 2 and "acr.registry" in done.stderr, done.stderr
        config = {
            "upstream": {"tls_ca": str(w.tls.ca_cert), "retries": 0},
            "acr": {**acr_cfg, "registry": good.url},
        }
        hook = Webhook(base / "hook", w.tls, policy, config).start()
        try:
            assert hook.client is not None
            h = {"X-Trustcheck-Secret": ACR_SECRET}
            # an authenticated event naming another host: refused, nothing is sent there
            r = hook.client.post(
                "/acr/quarantine", json=_event(evil.host_port, signed[evil.host_port]), headers=h
            )
            assert r.status_code == 403 and good.host_port in r.text
            assert evil.requests == []
            assert evil.state("team/app", signed[evil.host_port])[0] == "Quarantined"
            # the configured registry's event: released, with the credentials
            r = hook.client.post(
                "/acr/quarantine", json=_event(good.host_port, signed[good.host_port]), headers=h
            )
            assert r.status_code == 200 and r.json()["action"] == "released", r.text
            assert good.state("team/app", signed[good.host_port])[0] == "Passed"
            assert any(q.auth is not None for q in good.requests)
            # a denied image whose manifest is already Passed is reported as it is
            r = hook.client.post("/acr/quarantine", json=_event(good.host_port, unsigned),
                                 headers=h)
            assert r.status_code == 200, r.text
            assert r.json()["action"] == "already passed"
            assert r.json()["state"]["quarantineState"] == "Passed"
            assert r.json()["decision"]["allowed"] is False
            assert good.state("team/app", unsigned)[0] == "Passed"
            assert evil.requests == []
        finally:
            hook.stop()
