"""trustcheck.remote.notary against real servers on loopback.

* a real notary-server (TLS, memory storage) with repositories published by the
  real notary client, reached through a fault-injection proxy
  (tests/integration/proxy.py) that records every request;
* a notary-server with token auth and a test token issuer signing real ES256
  JWTs (tests/integration/token_issuer.py);
* a real docker-registry (token auth, same issuer) with an image pushed through
  the Registry HTTP API, for ``registry_digest``.

What is checked: the requests notary's update flow makes (cold, warm, after a
publish, after root and timestamp key rotations), byte-identical caches with
the real notary client, every fault (server stopped mid-update, slow answers,
truncated/oversized/wrong bodies, 5xx then success, 401, bad credentials) with
its error code, and that the trust dir is untouched whenever a fetch fails.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from proxy import Fault, FaultProxy
from token_issuer import TokenIssuer, make_signing_material

from fixtures.notary_harness import (
    DockerRegistry,
    NotaryClient,
    NotaryServer,
    free_port,
    make_delegation_key,
    make_tls,
    metadata_files,
    missing_notary_binaries,
    missing_registry_binary,
    push_test_image,
)
from trustcheck.api import Options
from trustcheck.core.reference import parse_reference
from trustcheck.core.verify import Collection
from trustcheck.errors import TrustcheckError
from trustcheck.local.state import StateStore
from trustcheck.local.trustdir import TrustDir
from trustcheck.remote.http import HttpSession
from trustcheck.remote.notary import RemoteConfig, fetch_collection, fetch_many
from trustcheck.remote.registry import check_registry, registry_digest

pytestmark = pytest.mark.integration

BASIC = "127.0.0.1/remote/basic"
SECRET = "s3cret-for-tests"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _require_binaries() -> None:
    missing = missing_notary_binaries()
    reason = missing_registry_binary()
    if missing or reason:
        pytest.skip(
            "!!! REMOTE TESTS SKIPPED: missing "
            + ", ".join([*missing, *([reason] if reason else [])])
            + " (make system-deps installs them) !!!"
        )


def tree(root: Path) -> dict[str, tuple[str, bytes, int]]:
    """Every file and folder under ``root`` with its bytes and mtime."""
    out: dict[str, tuple[str, bytes, int]] = {}
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        rel = p.relative_to(root).as_posix()
        if stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", b"", 0)
        else:
            out[rel] = ("file", p.read_bytes(), st.st_mtime_ns)
    return out


def fails(code: str, fn: object, *args: object, **kwargs: object) -> TrustcheckError:
    """Run ``fn``; it must raise a TrustcheckError with ``code``."""
    assert callable(fn)
    with pytest.raises(TrustcheckError) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value}"
    return info.value


# --------------------------------------------------------------------------- servers


@dataclass
class Notary:
    server: NotaryServer
    publisher: NotaryClient
    proxy: FaultProxy
    base: Path

    def remote(self, **kw: object) -> RemoteConfig:
        opts: dict[str, object] = {"server": self.proxy.url, "tls_ca": self.server.ca_cert}
        opts.update(kw)
        return RemoteConfig(**opts)  # type: ignore[arg-type]

    def notary_cache(self, gun: str, label: str) -> dict[str, bytes]:
        """What a fresh real notary client caches for ``gun`` now."""
        trust = self.base / "notary-caches" / label
        listing = NotaryClient.for_server(trust, self.server).list_targets(gun)
        assert listing.error is None, listing.error
        return metadata_files(trust, gun)

    def publish(self, gun: str, name: str, role: str | None = None) -> None:
        digest = os.urandom(32).hex()
        self.publisher.addhash(gun, name, 100, digest, roles=[role] if role else [])
        self.publisher.publish(gun)


@pytest.fixture(scope="module")
def notary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Notary]:
    _require_binaries()
    base = tmp_path_factory.mktemp("remote")
    with NotaryServer(base / "server") as server:
        assert server.tls is not None
        pub = NotaryClient.for_server(base / "publisher", server)
        pub.init_and_publish(BASIC)
        key = make_delegation_key(base / "keys", "releases")
        pub.delegation_add(BASIC, "targets/releases", [key.public])
        pub.key_import(key.private, "targets/releases")
        pub.addhash(BASIC, "v1", 100, "11" * 32)
        pub.addhash(BASIC, "v2", 100, "22" * 32, roles=["targets/releases"])
        pub.publish(BASIC)
        proxy = FaultProxy(
            server.url, server.ca_cert, server.tls.server_cert, server.tls.server_key
        )
        with proxy:
            yield Notary(server, pub, proxy, base)


@pytest.fixture
def px(notary: Notary) -> Iterator[FaultProxy]:
    notary.proxy.reset()
    yield notary.proxy
    notary.proxy.reset()


def _new_repo(notary: Notary, name: str) -> str:
    gun = f"127.0.0.1/remote/{name}"
    notary.publisher.init_and_publish(gun)
    notary.publish(gun, "v1")
    return gun


def _fetch(
    notary: Notary, gun: str, td: Path, options: Options | None = None, **kw: object
) -> Collection:
    return fetch_collection(gun, TrustDir(td), _now(), options or Options(), notary.remote(**kw))


# --------------------------------------------------------------------------- the update flow


def test_cold_then_warm_fetch_follow_notarys_requests_and_cache(
    notary: Notary, px: FaultProxy, tmp_path: Path
) -> None:
    td = tmp_path / "trust"
    state = StateStore(tmp_path / "state")
    col = _fetch(notary, BASIC, td, Options(state=state))
    assert col.trust_basis == "first use"
    assert set(col.targets) == {"targets", "targets/releases"}
    snap_sha = col.timestamp.meta["snapshot"].sha256_hex()
    tsha = col.snapshot.meta["targets"].sha256_hex()
    rsha = col.snapshot.meta["targets/releases"].sha256_hex()
    assert px.paths() == [
        "/v2/",
        "root.json",
        "timestamp.json",
        f"snapshot.{snap_sha}.json",
        f"targets.{tsha}.json",
        f"targets/releases.{rsha}.json",
    ]
    # byte-identical to what the real notary client caches, in its layout
    assert metadata_files(td, BASIC) == notary.notary_cache(BASIC, "cold")
    recorded = state.load(BASIC)
    assert recorded is not None and recorded.root == col.root_raw
    assert recorded.versions["targets/releases"] == col.checks["targets/releases"].version

    before = tree(td)
    px.reset()
    warm = _fetch(notary, BASIC, td, Options(state=state))
    assert px.paths() == ["/v2/", "timestamp.json"]
    assert warm.trust_basis == "previously trusted"
    assert tree(td) == before  # same bytes: nothing rewritten

    # offline: nothing is requested at all
    px.reset()
    off = _fetch(notary, BASIC, td, Options(state=state), offline=True)
    assert px.paths() == [] and off.checks["timestamp"].version == warm.checks["timestamp"].version


def test_update_downloads_only_changed_roles(
    notary: Notary, px: FaultProxy, tmp_path: Path
) -> None:
    gun = _new_repo(notary, "update")
    key = make_delegation_key(tmp_path / "keys", "releases")
    notary.publisher.delegation_add(gun, "targets/releases", [key.public])
    notary.publisher.key_import(key.private, "targets/releases")
    notary.publish(gun, "r1", "targets/releases")
    td = tmp_path / "trust"
    _fetch(notary, gun, td)
    notary.publish(gun, "v9")  # changes targets, snapshot, timestamp; not releases
    px.reset()
    col = _fetch(notary, gun, td)
    assert "v9" in col.targets["targets"].targets
    names = [p.split(".")[0] for p in px.paths()]
    assert names == ["/v2/", "timestamp", "snapshot", "targets"]
    assert metadata_files(td, gun) == notary.notary_cache(gun, "update")


def test_root_rotation_fetches_the_new_root_by_hash(
    notary: Notary, px: FaultProxy, tmp_path: Path
) -> None:
    gun = _new_repo(notary, "rotate")
    td = tmp_path / "trust"
    state = StateStore(tmp_path / "state")
    first = _fetch(notary, gun, td, Options(state=state))
    notary.publisher.key_rotate(gun, "root")
    px.reset()
    col = _fetch(notary, gun, td, Options(state=state))
    assert col.trust_basis == "rotated"
    assert col.root_raw != first.root_raw
    root_sha = col.snapshot.meta["root"].sha256_hex()
    paths = px.paths()
    # notary's Update(): the first pass fails on the snapshot's root hash,
    # root.<sha>.json is fetched, then the update runs again
    assert f"root.{root_sha}.json" in paths
    assert paths.index(f"root.{root_sha}.json") > paths.index("timestamp.json")
    assert (td / "tuf" / gun / "metadata" / "root.json").read_bytes() == col.root_raw
    assert metadata_files(td, gun)["root.json"] == notary.notary_cache(gun, "rot")["root.json"]
    recorded = state.load(gun)
    assert recorded is not None and recorded.root == col.root_raw


def test_timestamp_key_rotation_refetches_root_json(
    notary: Notary, px: FaultProxy, tmp_path: Path
) -> None:
    gun = _new_repo(notary, "tsrotate")
    td = tmp_path / "trust"
    _fetch(notary, gun, td)
    notary.publisher.key_rotate(gun, "timestamp", server_managed=True)
    px.reset()
    col = _fetch(notary, gun, td)
    paths = px.paths()
    # the timestamp fails under the cached root, no snapshot hash known yet:
    # plain root.json, then the update again (spec §4.5 ROT7)
    assert paths[:4] == ["/v2/", "timestamp.json", "root.json", "timestamp.json"]
    assert col.checks["root"].version >= 2


# --------------------------------------------------------------------------- timestamp fallback


@pytest.mark.parametrize(
    "fault",
    [
        Fault("timestamp.json", "status", times=None, status=503),
        Fault("timestamp.json", "status", times=None, status=404),
        Fault("timestamp.json", "close", times=None),
    ],
    ids=["503", "404", "network"],
)
def test_timestamp_falls_back_to_the_cache_with_a_warning(
    notary: Notary, px: FaultProxy, tmp_path: Path, fault: Fault
) -> None:
    td = tmp_path / "trust"
    _fetch(notary, BASIC, td)
    before = tree(td)
    px.reset()
    px.add(Fault(fault.match, fault.kind, times=None, status=fault.status))
    col = _fetch(notary, BASIC, td, retries=1)
    assert any("using the cached timestamp" in w for w in col.warnings), col.warnings
    expected = 1 if fault.status == 404 and fault.kind == "status" else 2  # 404 is not retried
    assert px.paths().count("timestamp.json") == expected
    assert tree(td) == before


def test_timestamp_401_is_an_auth_error_never_a_silent_fallback(
    notary: Notary, px: FaultProxy, tmp_path: Path
) -> None:
    td = tmp_path / "trust"
    _fetch(notary, BASIC, td)
    before = tree(td)
    px.reset()
    px.add(Fault("timestamp.json", "status", times=None, status=401))
    fails("auth-failed", _fetch, notary, BASIC, td)
    assert tree(td) == before
    # the explicit offline flag is the way to use the cache instead
    assert _fetch(notary, BASIC, td, offline=True).gun == BASIC


def test_timestamp_failure_without_cache_fails(
    notary: Notary, px: FaultProxy, tmp_path: Path
) -> None:
    td = tmp_path / "trust"
    px.add(Fault("timestamp.json", "status", times=None, status=500))
    fails("server-error", _fetch, notary, BASIC, td, retries=0)
    assert tree(td) == {}
    px.reset()
    px.add(Fault("timestamp.json", "status", times=None, status=404))
    fails("role-missing", _fetch, notary, BASIC, td)
    assert tree(td) == {}


def test_validation_errors_never_fall_back_and_change_nothing(
    notary: Notary, px: FaultProxy, tmp_path: Path
) -> None:
    gun = _new_repo(notary, "rollback")
    td = tmp_path / "trust"
    first = _fetch(notary, gun, td)
    old_timestamp = first.timestamp.raw
    notary.publish(gun, "v2")
    _fetch(notary, gun, td)
    before = tree(td)
    # an old, validly signed timestamp: the cached one is a floor (no state store)
    px.add(Fault("timestamp.json", "replace", times=None, body=old_timestamp))
    fails("version-rollback", _fetch, notary, gun, td)
    assert tree(td) == before
    # another role's file served as the timestamp: not signed by the timestamp key
    px.reset()
    px.add(Fault("timestamp.json", "replace", times=None, body=first.snapshot.raw))
    fails("threshold-not-met", _fetch, notary, gun, td)
    assert tree(td) == before


# --------------------------------------------------------------------------- size caps and bodies


def test_content_length_above_the_cap_is_a_malicious_server(
    notary: Notary, px: FaultProxy, tmp_path: Path
) -> None:
    td = tmp_path / "trust"
    _fetch(notary, BASIC, td)
    before = tree(td)
    px.reset()
    px.add(Fault("timestamp.json", "oversize-length", times=None, extra=2 << 20))
    fails("malicious-server", _fetch, notary, BASIC, td)  # no fallback either
    assert tree(td) == before
    # a hash-named role: the cap is the length the snapshot gives
    cold = tmp_path / "cold"
    px.reset()
    px.add(Fault("targets.", "oversize-length", times=None, extra=1))
    fails("malicious-server", _fetch, notary, BASIC, cold)
    assert tree(cold) == {}


def test_chunked_body_past_the_cap_is_cut_and_refused(
    notary: Notary, px: FaultProxy, tmp_path: Path
) -> None:
    td = tmp_path / "trust"
    px.add(Fault("snapshot.", "chunked-oversize", times=None, extra=50_000))
    fails("length-exceeded", _fetch, notary, BASIC, td)
    assert tree(td) == {}


def test_truncated_body_is_retried_then_fails(
    notary: Notary, px: FaultProxy, tmp_path: Path
) -> None:
    td = tmp_path / "trust"
    px.add(Fault("snapshot.", "truncate", times=None))
    fails("network-error", _fetch, notary, BASIC, td, retries=2)
    assert sum(p.startswith("snapshot.") for p in px.paths()) == 3
    assert tree(td) == {}
    px.reset()
    px.add(Fault("snapshot.", "truncate", times=1))
    assert _fetch(notary, BASIC, td, retries=2).gun == BASIC


def test_wrong_content_is_a_hash_mismatch(notary: Notary, px: FaultProxy, tmp_path: Path) -> None:
    td = tmp_path / "trust"
    first = _fetch(notary, BASIC, tmp_path / "other")
    genuine = first.targets["targets/releases"].raw
    at = genuine.index(b'"version":') + len(b'"version":')
    altered = genuine[:at] + (b"7" if genuine[at : at + 1] != b"7" else b"8") + genuine[at + 1 :]
    px.reset()
    px.add(Fault("targets/releases.", "replace", times=None, body=altered))
    fails("hash-mismatch", _fetch, notary, BASIC, td)
    assert tree(td) == {}
    # a longer file than the snapshot allows is refused before it is read
    px.reset()
    px.add(Fault("targets/releases.", "replace", times=None, body=first.targets["targets"].raw))
    fails("malicious-server", _fetch, notary, BASIC, td)
    assert tree(td) == {}


def test_5xx_then_success_is_retried(notary: Notary, px: FaultProxy, tmp_path: Path) -> None:
    td = tmp_path / "trust"
    px.add(Fault("snapshot.", "status", times=2, status=503))
    col = _fetch(notary, BASIC, td, retries=2)
    assert col.gun == BASIC and not col.warnings
    assert sum(p.startswith("snapshot.") for p in px.paths()) == 3


def test_slow_answers_hit_the_request_and_total_timeouts(
    notary: Notary, px: FaultProxy, tmp_path: Path
) -> None:
    td = tmp_path / "trust"
    px.add(Fault("snapshot.", "delay", times=None, delay=1.5))
    started = time.monotonic()
    fails("server-timeout", _fetch, notary, BASIC, td, timeout=0.4, retries=0)
    assert time.monotonic() - started < 1.4
    assert tree(td) == {}
    px.reset()
    px.add(Fault("/_trust/", "delay", times=None, delay=0.4))
    started = time.monotonic()
    fails("server-timeout", _fetch, notary, BASIC, td, timeout=5, total_timeout=0.9)
    assert time.monotonic() - started < 2.0
    assert tree(td) == {}


def test_server_stopped_mid_update(notary: Notary, tmp_path: Path) -> None:
    server = notary.server
    assert server.tls is not None
    with FaultProxy(
        server.url, server.ca_cert, server.tls.server_cert, server.tls.server_key
    ) as proxy:
        remote = RemoteConfig(server=proxy.url, tls_ca=server.ca_cert, retries=1)
        td = tmp_path / "trust"
        proxy.add(Fault("snapshot.", "stop"))
        fails("network-error", fetch_collection, BASIC, TrustDir(td), _now(), Options(), remote)
        assert tree(td) == {}
        assert proxy.stopped

        # a warm cache survives a dead server: every role is cached, the
        # timestamp falls back with a warning
        warm = tmp_path / "warm"
        _fetch(notary, BASIC, warm)
        before = tree(warm)
        col = fetch_collection(BASIC, TrustDir(warm), _now(), Options(), remote)
        assert any("cannot be reached" in w for w in col.warnings), col.warnings
        assert tree(warm) == before


def test_a_corrupt_cached_root_is_fatal_as_in_notary(
    notary: Notary, px: FaultProxy, tmp_path: Path
) -> None:
    td = tmp_path / "trust"
    _fetch(notary, BASIC, td)
    root = td / "tuf" / BASIC / "metadata" / "root.json"
    root.write_bytes(root.read_bytes()[:-20])
    before = tree(td)
    px.reset()
    fails("malformed-json", _fetch, notary, BASIC, td)
    assert px.paths() == ["/v2/"]  # no root update: notary fails hard on its cached root
    assert tree(td) == before


def test_writes_never_leave_the_trust_dir(notary: Notary, px: FaultProxy, tmp_path: Path) -> None:
    td = tmp_path / "trust"
    outside = tmp_path / "outside"
    outside.mkdir()
    (td / "tuf" / "127.0.0.1" / "remote").mkdir(parents=True)
    (td / "tuf" / "127.0.0.1" / "remote" / "basic").symlink_to(outside)
    fails("unsafe-path", _fetch, notary, BASIC, td)
    assert list(outside.iterdir()) == []


def test_tls_errors_and_plain_http(notary: Notary, px: FaultProxy, tmp_path: Path) -> None:
    td = tmp_path / "trust"
    env = {"DOCKER_CONFIG": str(tmp_path / "docker")}
    remote = RemoteConfig(server=px.url)  # the test CA is not trusted
    fails("tls-error", fetch_collection, BASIC, TrustDir(td), _now(), Options(), remote, env)
    assert tree(td) == {}
    # Docker's per-host folder makes it trusted
    folder = tmp_path / "docker" / "tls" / px.host_port
    folder.mkdir(parents=True)
    shutil.copyfile(notary.server.ca_cert, folder / "ca.crt")
    col = fetch_collection(BASIC, TrustDir(td), _now(), Options(), remote, env)
    assert col.gun == BASIC
    fails(
        "insecure-server",
        fetch_collection,
        BASIC,
        TrustDir(tmp_path / "t2"),
        _now(),
        Options(),
        RemoteConfig(server=px.url.replace("https", "http")),
        env,
    )


def test_fetch_many_reuses_one_session(notary: Notary, px: FaultProxy, tmp_path: Path) -> None:
    gun2 = _new_repo(notary, "many")
    missing = "127.0.0.1/remote/never-published"
    seen: list[tuple[int, int]] = []
    results = fetch_many(
        [BASIC, gun2, missing, BASIC],
        TrustDir(tmp_path / "trust"),
        _now(),
        Options(),
        notary.remote(concurrency=3),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert list(results) == [BASIC, gun2, missing]
    assert isinstance(results[BASIC], Collection) and isinstance(results[gun2], Collection)
    err = results[missing]
    assert isinstance(err, TrustcheckError) and err.code == "no-trust-data"
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert px.paths().count("/v2/") == 1  # one ping for the whole run


# --------------------------------------------------------------------------- token auth


@dataclass
class AuthWorld:
    issuer: TokenIssuer
    server: NotaryServer
    registry: DockerRegistry
    gun: str
    image_digest: str
    base: Path

    def docker_config(self, doc: dict[str, object], name: str) -> Path:
        """A DOCKER_CONFIG folder with ``doc`` as config.json and the test CA in
        tls/<host>/ca.crt for the notary server, the issuer and the registry."""
        folder = self.base / "docker-configs" / name
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps(doc))
        for host_port in (
            self.server.host_port,
            f"127.0.0.1:{self.issuer.port}",
            self.registry.host_port,
        ):
            tls = folder / "tls" / host_port
            tls.mkdir(parents=True)
            assert self.server.tls is not None
            shutil.copyfile(self.server.tls.ca_cert, tls / "ca.crt")
        return folder

    def remote(self, config: Path, **kw: object) -> RemoteConfig:
        opts: dict[str, object] = {"server": self.server.url, "docker_config": config}
        opts.update(kw)
        return RemoteConfig(**opts)  # type: ignore[arg-type]


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def auth_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthWorld]:
    _require_binaries()
    base = tmp_path_factory.mktemp("auth")
    tls = make_tls(base / "tls")
    signing = make_signing_material(base / "signing")
    issuer = TokenIssuer(signing, tls.server_cert, tls.server_key, users={"alice": SECRET})
    with issuer:
        notary_auth = {
            "type": "token",
            "options": {
                "realm": issuer.realm,
                "service": "notary-test",
                "issuer": issuer.issuer,
                "rootcertbundle": str(signing.bundle),
                "autoredirect": False,
            },
        }
        registry_auth = {
            "token": {
                "realm": issuer.realm,
                "service": "registry-test",
                "issuer": issuer.issuer,
                "rootcertbundle": str(signing.bundle),
            }
        }
        with (
            NotaryServer(base / "server", auth=notary_auth, tls=tls) as server,
            DockerRegistry(base / "registry", tls=tls, auth=registry_auth) as registry,
        ):
            gun = f"{registry.host_port}/team/app"
            pub = NotaryClient(
                base / "publisher",
                server.url,
                tls.ca_cert,
                extra_env={"NOTARY_AUTH": _basic("alice", SECRET)},
            )
            pub.init_and_publish(gun)
            pub.addhash(gun, "v1", 100, "33" * 32)
            pub.publish(gun)
            token = issuer.make_token("registry-test", ["repository:team/app:push,pull"], "alice")
            digest, _ = push_test_image(registry.url, tls.ca_cert, "team/app", "v1", token=token)
            issuer.requests.clear()
            yield AuthWorld(issuer, server, registry, gun, digest, base)


def test_token_auth_with_config_json_credentials_and_token_reuse(auth_world: AuthWorld) -> None:
    w = auth_world
    w.issuer.requests.clear()
    key = w.server.host_port.split(":")[0]  # Docker matches auths by host name
    config = w.docker_config(
        {"auths": {f"https://{w.registry.host_port}/v1/": {"auth": _basic("alice", SECRET)}}},
        "auths",
    )
    assert key == "127.0.0.1"
    remote = w.remote(config)
    with HttpSession(remote, env={}) as session:
        for label in ("one", "two"):
            col = fetch_collection(
                w.gun,
                TrustDir(w.base / f"trust-{label}"),
                _now(),
                Options(),
                remote,
                session=session,
            )
            assert "v1" in col.targets["targets"].targets
    ok = [r for r in w.issuer.requests if r.status == 200]
    assert len(ok) == 1, w.issuer.requests  # the token was reused for the second fetch
    assert ok[0].scopes == [f"repository:{w.gun}:pull"] and ok[0].service == "notary-test"
    assert ok[0].user == "alice" and ok[0].account == "alice"


def test_token_auth_access_token_and_username_password(auth_world: AuthWorld) -> None:
    w = auth_world
    w.issuer.field_name = "both"  # access_token wins over token
    try:
        remote = w.remote(w.docker_config({}, "userpass"), username="alice", password=SECRET)
        col = fetch_collection(w.gun, TrustDir(w.base / "trust-up"), _now(), Options(), remote)
        assert col.gun == w.gun
    finally:
        w.issuer.field_name = "token"


def test_token_auth_bad_or_missing_credentials(auth_world: AuthWorld) -> None:
    w = auth_world
    td = w.base / "trust-bad"
    bad = w.remote(w.docker_config({}, "bad"), username="alice", password="wrong")
    err = fails("auth-failed", fetch_collection, w.gun, TrustDir(td), _now(), Options(), bad)
    assert "wrong" not in err.message and "alice" in err.message
    anonymous = w.remote(w.docker_config({}, "anonymous"))
    fails("auth-failed", fetch_collection, w.gun, TrustDir(td), _now(), Options(), anonymous)
    assert tree(td) == {}


def test_token_auth_through_a_credential_helper(auth_world: AuthWorld, tmp_path: Path) -> None:
    w = auth_world
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-tctest"
    helper.write_text(
        "#!/bin/sh\n"
        'read server\n[ "$1" = get ] || exit 3\n'
        f'printf \'{{"ServerURL":"%s","Username":"alice","Secret":"{SECRET}"}}\' "$server"\n'
    )
    helper.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    remote = w.remote(w.docker_config({"credsStore": "tctest"}, "helper"))
    col = fetch_collection(w.gun, TrustDir(tmp_path / "trust"), _now(), Options(), remote, env)
    assert col.gun == w.gun
    broken = w.remote(w.docker_config({"credHelpers": {w.registry.host_port: "absent"}}, "gone"))
    fails(
        "credential-helper-failed",
        fetch_collection,
        w.gun,
        TrustDir(tmp_path / "t2"),
        _now(),
        Options(),
        broken,
        env,
    )
    assert tree(tmp_path / "t2") == {}


def test_registry_digest_with_token_auth(auth_world: AuthWorld) -> None:
    w = auth_world
    w.issuer.requests.clear()
    config = w.docker_config(
        {"auths": {w.registry.host_port: {"auth": _basic("alice", SECRET)}}}, "r"
    )
    remote = RemoteConfig(docker_config=config)
    ref = parse_reference(f"{w.gun}:v1")
    assert registry_digest(ref, remote, env={}) == w.image_digest
    scopes = [r.scopes for r in w.issuer.requests if r.status == 200]
    assert scopes == [["repository:team/app:pull"]]  # the path, without the registry host
    assert check_registry(ref, w.image_digest, remote, env={}) == w.image_digest
    fails("registry-digest-mismatch", check_registry, ref, "sha256:" + "0" * 64, remote, {})
    missing = parse_reference(f"{w.gun}:nope")
    fails("registry-tag-missing", registry_digest, missing, remote, {})


# --------------------------------------------------------------------------- the CLI, online


def _cli(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: str,
    stdin: str | None = None,
) -> tuple[int, str, str]:
    import io

    from conftest import run_trustcheck

    monkeypatch.delenv("TRUSTCHECK_OFFLINE", raising=False)
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    r = run_trustcheck(*args)
    return r.code, r.stdout, r.stderr


def test_cli_fetch_then_offline_and_online_verify(
    notary: Notary,
    px: FaultProxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    td = tmp_path / "trust"
    conn = ["--server", px.url, "--tls-ca", str(notary.server.ca_cert), "--trust-dir", str(td)]
    code, out, err = _cli(monkeypatch, capsys, "fetch", *conn, f"{BASIC}:v1")
    assert code == 0, err
    assert out.startswith(f"FETCHED  {BASIC}") and "targets/releases v" in out
    cached = tree(td)
    assert any(p.endswith("metadata/targets/releases.json") for p in cached)
    # the cache now serves --offline, with no request at all
    px.reset()
    code, out, err = _cli(
        monkeypatch, capsys, "verify", "--offline", "--trust-dir", str(td), f"{BASIC}:v2"
    )
    assert code == 0, err
    assert out.startswith("TRUSTED") and "(role targets/releases" in out
    assert px.paths() == []
    # online (the default): only the timestamp is fetched again
    code, out, err = _cli(
        monkeypatch, capsys, "verify", "--json", *conn, f"{BASIC}:v1", f"{BASIC}:nope"
    )
    assert code == 1
    results = json.loads(out)["results"]
    assert results[0]["trusted"] is True and results[0]["role"] == "targets"
    assert results[1]["error"]["code"] == "tag-not-signed"
    assert px.paths() == ["/v2/", "timestamp.json"]  # warm cache: only the timestamp


def test_cli_server_unreachable_is_one_line_with_a_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    code, out, err = _cli(
        monkeypatch,
        capsys,
        "verify",
        "--retries",
        "0",
        "--timeout",
        "2",
        "--server",
        f"https://127.0.0.1:{port}",
        "--trust-dir",
        str(tmp_path),
        "127.0.0.1/remote/none:v1",
    )
    assert code == 1
    assert "[network-error]" in out and "Traceback" not in err


def test_cli_username_password_stdin_and_check_registry(
    auth_world: AuthWorld, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    w = auth_world
    config = w.docker_config({"auths": {}}, "cli")
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    td = w.base / "cli-trust"
    common = [
        "--server",
        w.server.url,
        "--username",
        "alice",
        "--password-stdin",
        "--trust-dir",
        str(td),
        "--registry",
        w.registry.url,
    ]
    # v1 is signed with a digest the registry does not serve: the tag was pushed unsigned
    code, out, err = _cli(
        monkeypatch,
        capsys,
        "verify",
        *common,
        "--check-registry",
        f"{w.gun}:v1",
        stdin=SECRET + "\n",
    )
    assert code == 1, err
    assert "[registry-digest-mismatch]" in out
    # the same without the registry check: the signature itself verifies
    code, out, err = _cli(
        monkeypatch, capsys, "verify", *common, f"{w.gun}:v1", stdin=SECRET + "\n"
    )
    assert code == 0, err
    # a wrong password is an authentication error, never a silent fallback
    code, out, err = _cli(monkeypatch, capsys, "verify", *common, f"{w.gun}:v1", stdin="wrong\n")
    assert code == 1 and "[auth-failed]" in out
    # --password-stdin without --username is a usage error
    code, _, err = _cli(
        monkeypatch, capsys, "verify", "--password-stdin", f"{w.gun}:v1", stdin="x\n"
    )
    assert code == 2 and "--username" in err
