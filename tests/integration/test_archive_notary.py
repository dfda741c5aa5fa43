"""Trust archives made from a real notary-server (docs/archive.md).

One real notary-server (TLS on loopback, memory storage) with three
repositories published by the real notary client: ``app`` with a
targets/releases delegation (its own key, imported as a user would), ``lib``
signed by the repository key only, and ``tool`` with a releases delegation and
a nested targets/releases/team delegation. ``trustcheck archive create``
fetches them over HTTPS, and then, with no server:

* the archive is byte-identical when made twice (two fresh trust dirs, the same
  capture time), and its trust files are byte for byte what a fresh real notary
  client caches;
* it verifies every image a month later, when the server-signed timestamps
  (14 days) have expired and a live verification of the same trust dir fails,
  with the digests the real client's ``notary lookup`` gave at capture time;
* changed, removed, extra files, a changed capture time, a wrong signature and
  a wrong pin are refused (exit 1, one line, the code);
* ``--max-age`` is enforced;
* ``gate`` and the webhook's ``handle`` decide from it;
* after the server published newer versions (and a live verification recorded
  them in the state dir), the archive's older data is a rollback for that state.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fixtures.notary_harness import (
    NotaryClient,
    NotaryServer,
    make_delegation_key,
    metadata_files,
    missing_notary_binaries,
)

if TYPE_CHECKING:
    from conftest import CliRun

pytestmark = pytest.mark.integration

APP = "127.0.0.1/archive/app"
LIB = "127.0.0.1/archive/lib"
TOOL = "127.0.0.1/archive/tool"
GUNS = (APP, LIB, TOOL)
PREFIX = "trust/tuf/"
MISMATCH = "archive-manifest-mismatch"
POLICY = """
rules:
  - name: app needs the release key
    pattern: 127.0.0.1/archive/app
    action: verify
    signers: [releases]
  - name: the rest
    pattern: "127.0.0.1/archive/*"
    action: verify
"""


def _hex(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


@dataclass
class World:
    server: NotaryServer
    publisher: NotaryClient
    base: Path
    captured: str  # the capture time (RFC 3339, seconds)
    month_later: str
    #: released image -> the digest the real client's ``notary lookup`` gave
    expected: dict[str, str]

    def remote(self) -> list[str | Path]:
        return ["--server", self.server.url, "--tls-ca", self.server.ca_cert]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    missing = missing_notary_binaries()
    if missing:
        pytest.skip(f"!!! ARCHIVE TESTS SKIPPED: missing {', '.join(missing)} !!!")
    base = tmp_path_factory.mktemp("archive")
    with NotaryServer(base / "server") as server:
        pub = NotaryClient.for_server(base / "publisher", server)
        for gun in GUNS:
            pub.init_and_publish(gun)
        rel = make_delegation_key(base / "keys", "releases")
        team = make_delegation_key(base / "keys", "team")
        pub.delegation_add(APP, "targets/releases", [rel.public])
        pub.key_import(rel.private, "targets/releases")
        pub.addhash(APP, "v1", 1001, _hex("app v1"), roles=["targets/releases"])
        pub.addhash(APP, "dev", 1002, _hex("app dev"))
        pub.publish(APP)
        pub.addhash(LIB, "v1", 2001, _hex("lib v1"))
        pub.addhash(LIB, "v2", 2002, _hex("lib v2"))
        pub.publish(LIB)
        pub.delegation_add(TOOL, "targets/releases", [rel.public])
        pub.delegation_add(TOOL, "targets/releases/team", [team.public])
        pub.key_import(team.private, "targets/releases/team")
        pub.addhash(TOOL, "v1", 3001, _hex("tool v1"), roles=["targets/releases"])
        pub.addhash(TOOL, "v2", 3002, _hex("tool v2"), roles=["targets/releases/team"])
        pub.publish(TOOL)
        fresh = NotaryClient.for_server(base / "lookup", server)
        expected: dict[str, str] = {}
        for gun, tag in [(APP, "v1"), (APP, "dev"), (LIB, "v2"), (TOOL, "v1")]:
            row = fresh.lookup(gun, tag)
            assert row is not None, (gun, tag)
            expected[f"{gun}:{tag}"] = "sha256:" + row.digest
        now = datetime.now(UTC).replace(microsecond=0)
        yield World(
            server,
            pub,
            base,
            now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            (now + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            expected,
        )


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRUSTCHECK_OFFLINE", raising=False)


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        out = {}
        for info in tar:
            f = tar.extractfile(info)
            assert f is not None
            out[info.name] = f.read()
    return out


def _write_members(path: Path, files: dict[str, bytes]) -> Path:
    from trustcheck.archive.format import write_tar

    path.write_bytes(write_tar(files))
    return path


def _sign_key(base: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    private = base / f"{name}.key"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public = base / f"{name}.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def _create(
    cli: Callable[..., CliRun], world: World, trust: Path, out: Path, *extra: str | Path
) -> CliRun:
    images = [f"{APP}:v1", f"{LIB}:v2", f"{TOOL}:v1"]
    args = ["archive", "create", *world.remote(), "--trust-dir", trust, "--at", world.captured]
    return cli(*[str(a) for a in [*args, *extra, "-o", out, *images]])


@pytest.fixture(scope="module")
def signed(world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A signed archive of the three repositories: (archive, public key, trust dir)."""
    from conftest import run_trustcheck

    base = tmp_path_factory.mktemp("signed")
    private, public = _sign_key(base, "org")
    previous = os.environ.pop("TRUSTCHECK_OFFLINE", None)
    try:
        # module scope runs before the per-test isolated home: its own state dir
        done = _create(
            run_trustcheck,
            world,
            base / "trust",
            base / "org.tar",
            "--sign-key",
            private,
            "--state-dir",
            base / "state",
        )
    finally:
        if previous is not None:
            os.environ["TRUSTCHECK_OFFLINE"] = previous
    assert done.code == 0, done.stderr
    return base / "org.tar", public, base / "trust"


def test_archive_from_the_real_server_is_deterministic_and_complete(
    world: World, online: None, trustcheck_cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    one = _create(trustcheck_cli, world, tmp_path / "t1", tmp_path / "one.tar", "--json")
    two = _create(trustcheck_cli, world, tmp_path / "t2", tmp_path / "two.tar")
    assert one.code == 0 and two.code == 0, one.stderr + two.stderr
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    doc = json.loads(one.stdout)
    assert doc["captured_at"] == world.captured and doc["signed_by"] is None
    assert doc["collections"] == {g: {"server": world.server.url} for g in (APP, LIB, TOOL)}
    files = _members(tmp_path / "one.tar")
    capture = json.loads(files["capture.json"])
    assert {g: c["server"] for g, c in capture["collections"].items()} == dict.fromkeys(
        GUNS, world.server.url
    )
    assert capture["collections"][TOOL]["roles"]["targets/releases/team"]["version"] >= 1
    # --all: every collection of the trust dir, fetched fresh, the same bytes again
    every = trustcheck_cli(
        "archive", "create", "--all", *[str(a) for a in world.remote()], "--trust-dir",
        str(tmp_path / "t1"), "--at", world.captured, "-o", str(tmp_path / "all.tar"),
    )  # fmt: skip
    assert every.code == 0, every.stderr
    all_files = _members(tmp_path / "all.tar")
    assert {n: d for n, d in all_files.items() if n.startswith("trust/")} == {
        n: d for n, d in files.items() if n.startswith("trust/")
    }
    assert json.loads(all_files["capture.json"])["images"] == []
    # the trust files are what a fresh real notary client caches, byte for byte
    for gun in GUNS:
        listing = NotaryClient.for_server(tmp_path / "notary" / gun, world.server).list_targets(gun)
        assert listing.error is None
        cached = metadata_files(tmp_path / "notary" / gun, gun)
        prefix = f"trust/tuf/{gun}/metadata/"
        archived = {n[len(prefix) :]: d for n, d in files.items() if n.startswith(prefix)}
        assert archived == cached, gun


def test_verified_offline_a_month_later_as_of_capture_time(
    world: World, signed: tuple[Path, Path, Path], trustcheck_cli: Callable[..., CliRun]
) -> None:
    archive, public, trust = signed
    images = sorted(world.expected)
    live = trustcheck_cli(
        "verify", "--offline", "--trust-dir", str(trust), "--at", world.month_later, *images
    )
    assert live.code == 1 and live.stdout.count("[metadata-expired]") == len(images)
    done = trustcheck_cli(
        "verify", "--archive", str(archive), "--archive-pin", str(public),
        "--at", world.month_later, "--json", *images,
    )  # fmt: skip
    assert done.code == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert doc["as_of"] == world.captured
    got = {r["image"]: r["digest"] for r in doc["results"] if r["trusted"]}
    assert got == world.expected
    roles = {r["image"]: r["role"] for r in doc["results"]}
    assert roles[f"{APP}:v1"] == "targets/releases" and roles[f"{APP}:dev"] == "targets"
    assert roles[f"{TOOL}:v1"] == "targets/releases"
    # signed only in the nested delegation: not released, as Docker decides
    nested = trustcheck_cli(
        "verify", "--archive", str(archive), "--at", world.month_later, f"{TOOL}:v2"
    )
    assert nested.code == 1 and "[tag-not-released]" in nested.stdout
    text = trustcheck_cli("verify", "--archive", str(archive), "--at", world.month_later, *images)
    assert text.code == 0
    assert f"as of capture time {world.captured}" in text.stdout.splitlines()[0]
    assert all(world.captured in line for line in text.stdout.splitlines())


def _tampered(archive: Path, tmp: Path, change: Callable[[dict[str, bytes]], object]) -> Path:
    files = _members(archive)
    change(files)
    return _write_members(tmp / "tampered.tar", files)


def _earlier(files: dict[str, bytes]) -> None:
    """Move the recorded capture time back (to when the data was fresh, say)."""
    doc = json.loads(files["capture.json"])
    files["capture.json"] = files["capture.json"].replace(
        doc["captured_at"].encode(), b"2026-01-01T00:00:00Z"
    )


def _recaptured(files: dict[str, bytes]) -> None:
    """:func:`_earlier`, and the manifest made consistent again (re-hashed)."""
    _earlier(files)
    manifest = json.loads(files["manifest.json"])
    manifest["files"]["capture.json"] = {
        "sha256": hashlib.sha256(files["capture.json"]).hexdigest(),
        "length": len(files["capture.json"]),
    }
    files["manifest.json"] = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def _snapshot_of(gun: str) -> str:
    return f"trust/tuf/{gun}/metadata/snapshot.json"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (
            lambda f: f.__setitem__(_snapshot_of(LIB), f[_snapshot_of(LIB)][:-1] + b" "),
            "archive-manifest-mismatch",
        ),
        (lambda f: f.pop(f"{PREFIX}{APP}/metadata/targets/releases.json"), MISMATCH),
        (lambda f: f.__setitem__(f"{PREFIX}{APP}/metadata/targets/x.json", b"{}"), MISMATCH),
        (_earlier, "archive-manifest-mismatch"),
        (_recaptured, "archive-signature-invalid"),
        (lambda f: f.pop("manifest.sig"), "archive-signature-invalid"),
    ],
    ids=["changed-file", "removed-file", "extra-file", "changed-capture-time",
         "capture-time-and-manifest-rewritten", "signature-removed"],
)  # fmt: skip
def test_tampered_archives_are_refused(
    world: World,
    signed: tuple[Path, Path, Path],
    trustcheck_cli: Callable[..., CliRun],
    tmp_path: Path,
    change: Callable[[dict[str, bytes]], object],
    code: str,
) -> None:
    archive, public, _ = signed
    bad = _tampered(archive, tmp_path, change)
    done = trustcheck_cli(
        "verify", "--archive", str(bad), "--archive-pin", str(public),
        "--at", world.month_later, f"{APP}:v1",
    )  # fmt: skip
    assert done.code == 1 and done.stdout == ""
    assert done.stderr.startswith(f"error: [{code}]") and len(done.stderr.splitlines()) == 1


def test_wrong_signature_key_and_max_age(
    world: World,
    signed: tuple[Path, Path, Path],
    trustcheck_cli: Callable[..., CliRun],
    tmp_path: Path,
) -> None:
    archive, public, _ = signed
    _other_private, other_public = _sign_key(tmp_path, "other")
    done = trustcheck_cli(
        "verify", "--archive", str(archive), "--archive-pin", str(other_public), f"{APP}:v1"
    )
    assert done.code == 1 and "[archive-pin-mismatch]" in done.stderr
    digest = hashlib.sha256(
        serialization.load_pem_public_key(public.read_bytes()).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).hexdigest()
    ok = trustcheck_cli(
        "verify", "--archive", str(archive), "--archive-pin", f"sha256:{digest}",
        "--max-age", "31d", "--at", world.month_later, f"{APP}:v1",
    )  # fmt: skip
    assert ok.code == 0, ok.stderr
    old = trustcheck_cli(
        "verify", "--archive", str(archive), "--max-age", "29d", "--at", world.month_later,
        f"{APP}:v1",
    )  # fmt: skip
    assert old.code == 1 and "[archive-too-old]" in old.stderr


def test_gate_and_webhook_decide_from_the_archive(
    world: World,
    signed: tuple[Path, Path, Path],
    trustcheck_cli: Callable[..., CliRun],
    tmp_path: Path,
) -> None:
    archive, public, _ = signed
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    done = trustcheck_cli(
        "gate", "--policy", str(policy), "--archive", str(archive), "--archive-pin", str(public),
        "--at", world.month_later, "--json", f"{APP}:v1", f"{APP}:dev", f"{LIB}:v2",
    )  # fmt: skip
    assert done.code == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc["as_of"] == world.captured
    verdicts = {d["image"]: d["verdict"] for d in doc["decisions"]}
    assert verdicts == {f"{APP}:v1": "allow", f"{APP}:dev": "deny", f"{LIB}:v2": "allow"}
    allowed = {d["image"]: d["digest"] for d in doc["decisions"] if d["verdict"] == "allow"}
    assert allowed == {i: world.expected[i] for i in allowed}

    from trustcheck.archive import load_pin, open_archive
    from trustcheck.archive.decide import archive_lookup
    from trustcheck.policy.load import parse_policy
    from trustcheck.webhook.review import WebhookConfig, handle

    later = datetime.fromisoformat(world.month_later.replace("Z", "+00:00"))
    opened = open_archive(archive, later, pin=load_pin(str(public)))
    pol = parse_policy(POLICY)
    lookup = archive_lookup(opened, pol)

    def review(*images: str) -> dict[str, Any]:
        containers = [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
        return {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "4f1c",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "prod",
                "operation": "CREATE",
                "object": {"metadata": {"name": "web"}, "spec": {"containers": containers}},
            },
        }

    ok = handle(review(f"{APP}:v1", f"{TOOL}:v1"), pol, WebhookConfig(), lookup, mutate=True)
    assert ok["response"]["allowed"] is True
    patch = json.loads(base64.b64decode(ok["response"]["patch"]))
    assert {p["value"] for p in patch if p["op"] == "replace"} == {
        f"{APP}:v1@{world.expected[f'{APP}:v1']}",
        f"{TOOL}:v1@{world.expected[f'{TOOL}:v1']}",
    }
    denied = handle(review(f"{APP}:dev"), pol, WebhookConfig(), lookup)
    assert denied["response"]["allowed"] is False
    message = denied["response"]["status"]["message"]
    assert "[signer-threshold-not-met]" in message and "missing: releases" in message


def test_archive_never_overrides_newer_state(
    world: World,
    signed: tuple[Path, Path, Path],
    online: None,
    trustcheck_cli: Callable[..., CliRun],
    tmp_path: Path,
) -> None:
    archive, _, _ = signed
    state = tmp_path / "state"
    world.publisher.addhash(LIB, "v3", 2003, _hex("lib v3"))
    world.publisher.publish(LIB)
    live = trustcheck_cli(
        "verify", *[str(a) for a in world.remote()], "--trust-dir", str(tmp_path / "trust"),
        "--state-dir", str(state), f"{LIB}:v3",
    )  # fmt: skip
    assert live.code == 0, live.stdout + live.stderr
    done = trustcheck_cli(
        "verify", "--archive", str(archive), "--state-dir", str(state), "--json", f"{LIB}:v2",
        f"{APP}:v1",
    )  # fmt: skip
    assert done.code == 1
    lib, app = json.loads(done.stdout)["results"]
    assert lib["error"]["code"] == "version-rollback" and not lib["trusted"]
    assert app["trusted"]  # a GUN the state does not know is verified as archived
    assert json.loads(done.stdout)["as_of"] == world.captured


def test_webhook_server_decides_from_a_policy_archive(
    world: World, signed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """`trustcheck serve` with a policy whose trust block names the archive (pinned,
    with a max age): the admission answers come from it, marked as of capture time."""
    import signal
    import ssl
    import subprocess
    import sys
    import time

    import httpx

    from fixtures.notary_harness import free_port, make_tls

    archive, public, _ = signed
    tls = make_tls(tmp_path / "tls")
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "defaults:\n  trust:\n    archive:\n"
        f"      path: {archive}\n      pin: {public}\n      max_age: 30d\n" + POLICY
    )
    (tmp_path / "config.yaml").write_text("{}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "NOTARY_"))}
    env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")
    env["TRUSTCHECK_STATE_DIR"] = str(tmp_path / "state")
    port = free_port()
    argv = [
        str(Path(sys.executable).parent / "trustcheck"), "serve", "--policy", str(policy),
        "--tls-cert", str(tls.server_cert), "--tls-key", str(tls.server_key),
        "--host", "127.0.0.1", "--port", str(port), "--config", str(tmp_path / "config.yaml"),
        "--trust-dir", str(tmp_path / "trust"),
    ]  # fmt: skip
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    ctx = ssl.create_default_context(cafile=str(tls.ca_cert))
    url = f"https://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            try:
                if httpx.get(f"{url}/readyz", verify=ctx, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < end, "trustcheck serve did not start"
            time.sleep(0.05)

        def review(*images: str) -> dict[str, Any]:
            containers = [{"name": f"c{i}", "image": im} for i, im in enumerate(images)]
            doc = {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": "a1",
                    "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "namespace": "prod",
                    "operation": "CREATE",
                    "object": {"metadata": {"name": "web"}, "spec": {"containers": containers}},
                },
            }
            r = httpx.post(f"{url}/validate", json=doc, verify=ctx, timeout=15)
            assert r.status_code == 200, r.text
            resp: dict[str, Any] = r.json()["response"]
            return resp

        ok = review(f"{APP}:v1", f"{LIB}:v2")
        assert ok["allowed"] is True, ok
        assert any(f"as of capture time {world.captured}" in w for w in ok.get("warnings", []))
        denied = review(f"{APP}:dev")
        assert (
            denied["allowed"] is False
            and "[signer-threshold-not-met]" in denied["status"]["message"]
        )
        absent = review("127.0.0.1/archive/absent:v1")
        assert absent["allowed"] is False
        assert "holds no trust data for 127.0.0.1/archive/absent" in absent["status"]["message"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def test_compare_live_reports_keys_revoked_since_the_capture(
    world: World, online: None, trustcheck_cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    """After the capture, the owner replaces the releases signer's key (notary
    delegation remove + add): the archive's answer stands as of its capture time,
    and --compare-live names the revoked key from the live data."""
    gun = "127.0.0.1/archive/rotating"
    pub = world.publisher
    pub.init_and_publish(gun)
    old = make_delegation_key(tmp_path / "keys", "old")
    pub.delegation_add(gun, "targets/releases", [old.public])
    pub.key_import(old.private, "targets/releases")
    pub.addhash(gun, "v1", 4001, _hex("rotating v1"), roles=["targets/releases"])
    pub.publish(gun)
    out = tmp_path / "rotating.tar"
    done = trustcheck_cli(
        "archive", "create", *[str(a) for a in world.remote()], "--trust-dir",
        str(tmp_path / "trust"), "--state-dir", str(tmp_path / "state"), "-o", str(out),
        f"{gun}:v1",
    )  # fmt: skip
    assert done.code == 0, done.stderr
    with tarfile.open(out) as tar:
        f = tar.extractfile("capture.json")
        assert f is not None
        capture = json.loads(f.read())
    (old_id,) = capture["collections"][gun]["roles"]["targets/releases"]["keyids"]
    # notary's delegation list and remove name a certificate by its public key's ID
    listed = pub.run("delegation", "list", gun).stdout
    (canonical,) = re.findall(r"\b[0-9a-f]{64}\b", listed)
    new = make_delegation_key(tmp_path / "keys", "new")
    pub.run("delegation", "remove", gun, "targets/releases", canonical)
    pub.delegation_add(gun, "targets/releases", [new.public])
    pub.key_import(new.private, "targets/releases")
    pub.addhash(gun, "v1", 4001, _hex("rotating v1"), roles=["targets/releases"])
    pub.publish(gun)

    live = trustcheck_cli(
        "verify", "--archive", str(out), "--compare-live", *[str(a) for a in world.remote()],
        "--trust-dir", str(tmp_path / "trust2"), "--json", f"{gun}:v1",
    )  # fmt: skip
    assert live.code == 0, live.stdout + live.stderr
    (result,) = json.loads(live.stdout)["results"]
    assert result["trusted"] and result["as_of"] == capture["captured_at"]
    assert result["live_error"] is None
    assert {"role": "targets/releases", "keyid": old_id} in [
        {"role": k["role"], "keyid": k["keyid"]} for k in result["revoked_since_capture"]
    ]
    assert f"key {old_id[:12]}… trusted for targets/releases" in live.stderr
    # a live answer is not needed for the verdict: unreachable live data is reported
    down = trustcheck_cli(
        "verify", "--archive", str(out), "--compare-live", "--server", "https://127.0.0.1:1",
        "--tls-ca", str(world.server.ca_cert), "--timeout", "2", "--trust-dir",
        str(tmp_path / "trust3"), "--json", f"{gun}:v1",
    )  # fmt: skip
    assert down.code == 0, down.stderr
    (result,) = json.loads(down.stdout)["results"]
    assert result["trusted"] and result["live_error"]["code"] in ("network-error", "no-trust-data")
    assert "live data unavailable for comparison" in down.stderr
    offline = trustcheck_cli("verify", "--archive", str(out), "--compare-live", "--offline", gun)
    assert offline.code == 2 and "[invalid-argument]" in offline.stderr
