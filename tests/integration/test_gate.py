"""Policy gates against real servers on loopback.

* a real notary-server with repositories published by the real notary client,
  signed the way `docker trust signer add` sets them up: targets/releases
  holding alice's and bob's keys, targets/alice and targets/bob one each;
* a real docker-registry with images pushed through the Registry HTTP API,
  pulled with the real skopeo (`trustcheck pull --with skopeo`);
* the ACR quarantine emulator (tests/integration/acr_emulator.py, an emulator
  of ACR's documented endpoints, not ACR) for `trustcheck quarantine`.

What is checked: signer thresholds on real delegations (names and key
identifiers); the copy happens by the signed digest, so a registry tag moved
to another manifest is never pulled; denied images run no pull; quarantine
release PATCHes Passed only when the policy allows, records who signed, which
rule and when, leaves denied images quarantined (or Failed with
--mark-failed), and authenticates with a password, a refresh token or
Docker's identity token.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from acr_emulator import NULL_GUID, AcrEmulator
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fixtures.notary_harness import (
    DelegationKey,
    DockerRegistry,
    NotaryClient,
    NotaryServer,
    TLSMaterial,
    find_binary,
    make_delegation_key,
    make_tls,
    missing_notary_binaries,
    missing_registry_binary,
    push_test_image,
)

pytestmark = pytest.mark.integration

ALICE_AND_BOB = ("alice", "bob")


def _require() -> None:
    missing = missing_notary_binaries()
    reason = missing_registry_binary()
    if find_binary("skopeo") is None:
        missing.append("skopeo (apt-get install skopeo)")
    if missing or reason:
        pytest.skip(
            "!!! GATE TESTS SKIPPED: missing "
            + ", ".join([*missing, *([reason] if reason else [])])
            + " (make system-deps installs them) !!!"
        )


@dataclass
class World:
    base: Path
    tls: TLSMaterial
    cert_dir: Path  # only the CA certificate, for skopeo --src-cert-dir
    server: NotaryServer
    registry: DockerRegistry
    acr: AcrEmulator
    keys: dict[str, DelegationKey]
    app: str  # <registry>/team/app
    qapp: str  # <acr emulator>/team/app
    digests: dict[str, str] = field(default_factory=dict)
    manifests: dict[str, bytes] = field(default_factory=dict)
    qdigests: dict[str, str] = field(default_factory=dict)

    def policy(self, name: str, rules: str) -> Path:
        path = self.base / "policies" / f"{name}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(
            f"version: 1\ndefaults:\n  trust:\n    server: {self.server.url}\nrules:\n{rules}"
        )
        return path


def _sign(pub: NotaryClient, gun: str, tag: str, data: bytes, signers: tuple[str, ...]) -> str:
    digest = hashlib.sha256(data).hexdigest()
    roles = ["targets/releases", *(f"targets/{s}" for s in signers)] if signers else []
    pub.addhash(gun, tag, len(data), digest, roles)
    return "sha256:" + digest


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    _require()
    base = tmp_path_factory.mktemp("gate")
    tls = make_tls(base / "tls")
    cert_dir = base / "registry-ca"
    cert_dir.mkdir()
    shutil.copyfile(tls.ca_cert, cert_dir / "ca.crt")
    with (
        NotaryServer(base / "notary", tls=tls) as server,
        DockerRegistry(base / "registry", tls=tls) as registry,
        AcrEmulator(base / "acr", tls=tls) as acr,
    ):
        keys = {n: make_delegation_key(base / "keys", n) for n in ALICE_AND_BOB}
        w = World(
            base,
            tls,
            cert_dir,
            server,
            registry,
            acr,
            keys,
            app=f"{registry.host_port}/team/app",
            qapp=f"{acr.host_port}/team/app",
        )
        pub = NotaryClient.for_server(base / "publisher", server)
        for gun in (w.app, w.qapp):
            pub.init_and_publish(gun)
            pub.delegation_add(gun, "targets/releases", [k.public for k in keys.values()])
            for name, key in keys.items():
                pub.delegation_add(gun, f"targets/{name}", [key.public])
            pub.publish(gun)
        for name, key in keys.items():
            pub.key_import(key.private, f"targets/{name}")
        # images in the real registry, signed by the real notary client
        plan = {"v1": ("alice",), "v2": ALICE_AND_BOB, "stable": ALICE_AND_BOB}
        for tag, signers in plan.items():
            digest, manifest = push_test_image(
                registry.url, tls.ca_cert, "team/app", tag, seed=tag.encode()
            )
            w.manifests[tag] = manifest
            assert _sign(pub, w.app, tag, manifest, signers) == digest
            w.digests[tag] = digest
        push_test_image(registry.url, tls.ca_cert, "team/app", "unsigned", seed=b"unsigned")
        # signed, but never pushed: the registry has no such manifest
        w.digests["ghost"] = _sign(pub, w.app, "ghost", b'{"ghost": true}', ALICE_AND_BOB)
        pub.publish(w.app)
        # quarantined images in the ACR emulator, signed in the notary server
        for tag, signers in {"v1": ("alice",), "v2": ALICE_AND_BOB, "v3": ALICE_AND_BOB}.items():
            digest = _sign(pub, w.qapp, tag, f'{{"image": "{tag}"}}'.encode(), signers)
            w.qdigests[tag] = digest
            acr.add_manifest("team/app", digest, [tag])
        w.qdigests["ghost"] = _sign(pub, w.qapp, "ghost", b'{"ghost": 1}', ALICE_AND_BOB)
        pub.publish(w.qapp)
        acr.add_user("writer", "writer-secret", {"pull", "push"})
        acr.add_user("reader", "reader-secret", {"pull"})
        acr.add_refresh_token("refresh-token-of-writer", "writer")
        yield w


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Fetching allowed; a fresh empty docker config (no credentials, no tls dir)."""
    monkeypatch.delenv("TRUSTCHECK_OFFLINE", raising=False)
    monkeypatch.delenv("DOCKER_CONTENT_TRUST_SERVER", raising=False)
    monkeypatch.delenv("TRUSTCHECK_PASSWORD", raising=False)
    config = tmp_path / "docker-config"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    return config


Cli = Callable[..., Any]


def _common(w: World, tmp: Path) -> list[str]:
    return ["--trust-dir", str(tmp / "trust"), "--tls-ca", str(w.tls.ca_cert)]


def _decisions(out: str) -> dict[str, dict[str, object]]:
    doc = json.loads(out)
    return {d["image"]: d for d in doc["decisions"]}


# --------------------------------------------------------------------------- signer thresholds


def test_signer_thresholds_with_real_notary_delegations(
    world: World, online: Path, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    w = world
    two = w.policy(
        "two",
        f'  - name: two-of-two\n    pattern: "{w.registry.host_port}/team/*"\n'
        "    signers: [alice, bob]\n    threshold: 2\n",
    )
    images = [f"{w.app}:v1", f"{w.app}:v2", f"{w.app}@{w.digests['v2']}"]
    run = trustcheck_cli("gate", "--json", "--policy", str(two), *_common(w, tmp_path), *images)
    assert run.code == 1, run.stderr
    got = _decisions(run.stdout)
    v1, v2, by_digest = (got[i] for i in images)
    assert v2["allowed"] is True and v2["digest"] == w.digests["v2"]
    assert v2["rule"]["name"] == "two-of-two"
    assert {s["signer"]: s["role"] for s in v2["required_signers"]["signers"]} == {
        "alice": "targets/alice",
        "bob": "targets/bob",
    }
    assert by_digest["allowed"] is True and by_digest["digest"] == w.digests["v2"]
    assert v1["allowed"] is False
    assert [r["code"] for r in v1["reasons"]] == ["signer-threshold-not-met"]
    assert v1["digest"] == w.digests["v1"]  # resolved; only the signer check failed
    assert "missing: bob" in v1["reasons"][0]["message"]

    # one of two is enough for v1; bob alone is not
    one = w.policy(
        "one",
        f'  - pattern: "{w.registry.host_port}/team/*"\n    signers: [alice, bob]\n'
        "    threshold: 1\n",
    )
    run = trustcheck_cli("gate", "--policy", str(one), *_common(w, tmp_path), f"{w.app}:v1")
    assert run.code == 0 and run.stdout.startswith("ALLOW"), run.stdout
    bob = w.policy("bob", f'  - pattern: "{w.registry.host_port}/team/*"\n    signers: [bob]\n')
    run = trustcheck_cli("gate", "--policy", str(bob), *_common(w, tmp_path), f"{w.app}:v1")
    assert run.code == 1 and "[signer-threshold-not-met]" in run.stdout


def test_key_identifier_signers_and_distinct_keys(
    world: World, online: Path, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    w = world
    cert = x509.load_pem_x509_certificate(w.keys["bob"].public.read_bytes())
    bob_cert = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    by_key = w.policy(
        "by-key",
        f"  - pattern: {w.app}\n    signers: [alice, 'cert-sha256:{bob_cert}']\n",
    )
    run = trustcheck_cli(
        "gate", "--json", "--policy", str(by_key), *_common(w, tmp_path), f"{w.app}:v2"
    )
    assert run.code == 0, run.stdout
    (d,) = _decisions(run.stdout).values()
    results = d["required_signers"]["signers"]
    assert all(s["satisfied"] for s in results)
    # bob's key also signed targets/releases.json (the publisher holds both keys), so his
    # certificate is found there or in targets/bob; either way a key of his own
    assert results[1]["role"] in ("targets/bob", "targets/releases")
    # one key never counts twice: alice's name and alice's certificate are one signer
    cert = x509.load_pem_x509_certificate(w.keys["alice"].public.read_bytes())
    alice_cert = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    same = w.policy(
        "same-key",
        f"  - pattern: {w.app}\n    signers: [alice, 'cert-sha256:{alice_cert}']\n"
        "    threshold: 2\n",
    )
    run = trustcheck_cli("gate", "--policy", str(same), *_common(w, tmp_path), f"{w.app}:v1")
    assert run.code == 1 and "[signer-threshold-not-met]" in run.stdout


# --------------------------------------------------------------------------- pull


def _pull_policy(w: World) -> Path:
    return w.policy("pull", f'  - pattern: "{w.registry.host_port}/team/*"\n    signers: [alice]\n')


def test_pull_with_skopeo_copies_the_signed_digest(
    world: World, online: Path, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    w = world
    dest = tmp_path / "copy"
    args = ["--with", "skopeo", "--cert-dir", str(w.cert_dir), "--policy", str(_pull_policy(w))]
    run = trustcheck_cli(
        "pull", *args, *_common(w, tmp_path), "--dest", f"dir:{dest}", f"{w.app}:v2"
    )
    assert run.code == 0, run.stderr
    assert run.stdout.strip() == f"PULLED {w.app}@{w.digests['v2']} -> dir:{dest}"
    copied = (dest / "manifest.json").read_bytes()
    assert "sha256:" + hashlib.sha256(copied).hexdigest() == w.digests["v2"]
    assert copied == w.manifests["v2"]


def test_tampered_tag_is_never_pulled(
    world: World, online: Path, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    """The registry's tag is moved to another manifest; the pull copies the signed one."""
    from trustcheck.core.reference import parse_reference
    from trustcheck.remote.config import RemoteConfig
    from trustcheck.remote.registry import registry_digest

    w = world
    tampered, _ = push_test_image(
        w.registry.url, w.tls.ca_cert, "team/app", "stable", seed=b"tampered"
    )
    remote = RemoteConfig(tls_ca=w.tls.ca_cert)
    served = registry_digest(parse_reference(f"{w.app}:stable"), remote, env={})
    assert served == tampered != w.digests["stable"]  # the tag now names another manifest

    policy = str(_pull_policy(w))
    dry = trustcheck_cli(
        "pull",
        "--dry-run",
        "--with",
        "skopeo",
        "--dest",
        "oci:/out:stable",
        "--policy",
        policy,
        *_common(w, tmp_path),
        f"{w.app}:stable",
    )
    assert dry.code == 0
    assert dry.stdout.strip() == (
        f"skopeo copy docker://{w.app}@{w.digests['stable']} oci:/out:stable"
    )
    for dest in (f"dir:{tmp_path / 'dir'}", f"oci:{tmp_path / 'oci'}:stable"):
        run = trustcheck_cli(
            "pull",
            "--with",
            "skopeo",
            "--cert-dir",
            str(w.cert_dir),
            "--dest",
            dest,
            "--policy",
            policy,
            *_common(w, tmp_path),
            f"{w.app}:stable",
        )
        assert run.code == 0, run.stderr
    copied = (tmp_path / "dir" / "manifest.json").read_bytes()
    assert "sha256:" + hashlib.sha256(copied).hexdigest() == w.digests["stable"]
    index = json.loads((tmp_path / "oci" / "index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "stable"
    blobs = tmp_path / "oci" / "blobs" / "sha256"
    oci_manifest = json.loads((blobs / entry["digest"].split(":")[1]).read_bytes())
    config = json.loads((blobs / oci_manifest["config"]["digest"].split(":")[1]).read_bytes())
    # skopeo converts to OCI (recompressing the layer); the uncompressed content is the
    # signed image's: its one layer blob, which is the image's diff_id
    signed_layers = [layer["digest"] for layer in json.loads(w.manifests["stable"])["layers"]]
    assert config["rootfs"]["diff_ids"] == signed_layers


def test_denied_image_is_not_pulled(
    world: World, online: Path, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    w = world
    dest = tmp_path / "never"
    run = trustcheck_cli(
        "pull",
        "--with",
        "skopeo",
        "--cert-dir",
        str(w.cert_dir),
        "--dest",
        f"dir:{dest}",
        "--policy",
        str(_pull_policy(w)),
        *_common(w, tmp_path),
        f"{w.app}:unsigned",
    )
    assert run.code == 1
    assert run.stdout == ""
    assert "DENY" in run.stderr and "[tag-not-signed]" in run.stderr
    assert not dest.exists()


def test_pull_without_a_policy_requires_a_signature(
    world: World, online: Path, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    w = world
    common = [*_common(w, tmp_path), "--server", w.server.url, "--dry-run", "--with", "podman"]
    ok = trustcheck_cli("pull", *common, f"{w.app}:v1")
    assert ok.code == 0
    assert ok.stdout.splitlines() == [
        f"podman pull {w.app}@{w.digests['v1']}",
        f"podman tag {w.app}@{w.digests['v1']} {w.app}:v1",
    ]
    bad = trustcheck_cli("pull", *common, f"{w.app}:unsigned")
    assert bad.code == 1 and "[tag-not-signed]" in bad.stderr


def test_signed_digest_missing_from_the_registry_fails_the_pull(
    world: World, online: Path, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    w = world
    run = trustcheck_cli(
        "pull",
        "--with",
        "skopeo",
        "--cert-dir",
        str(w.cert_dir),
        "--dest",
        f"dir:{tmp_path / 'ghost'}",
        "--policy",
        str(_pull_policy(w)),
        *_common(w, tmp_path),
        f"{w.app}:ghost",
    )
    assert run.code == 1, run.stderr
    assert "[pull-failed]" in run.stderr and "skopeo copy" in run.stderr
    assert "Traceback" not in run.stderr


def test_pull_runs_docker_by_digest_then_tags(
    world: World, online: Path, tmp_path: Path, trustcheck_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docker needs a daemon; a stand-in `docker` on PATH records what would run."""
    w = world
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "docker.log"
    fake = bindir / "docker"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    run = trustcheck_cli(
        "pull", "--policy", str(_pull_policy(w)), *_common(w, tmp_path), f"{w.app}:v2"
    )
    assert run.code == 0, run.stderr
    pinned = f"{w.app}@{w.digests['v2']}"
    assert log.read_text().splitlines() == [f"pull {pinned}", f"tag {pinned} {w.app}:v2"]
    assert run.stdout.strip() == f"PULLED {pinned} (tagged {w.app}:v2)"


# --------------------------------------------------------------------------- quarantine


def _qpolicy(w: World) -> Path:
    return w.policy(
        "quarantine",
        f'  - name: release-needs-two\n    pattern: "{w.acr.host_port}/team/*"\n'
        "    signers: [alice, bob]\n    threshold: 2\n",
    )


def _qargs(w: World, tmp: Path) -> list[str]:
    return ["--policy", str(_qpolicy(w)), *_common(w, tmp)]


def test_quarantine_release_passes_an_allowed_digest(
    world: World,
    online: Path,
    tmp_path: Path,
    trustcheck_cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = world
    digest = w.qdigests["v2"]
    w.acr.reset_requests()
    monkeypatch.setenv("TRUSTCHECK_PASSWORD", "writer-secret")
    run = trustcheck_cli(
        "quarantine", "release", *_qargs(w, tmp_path), "--username", "writer", f"{w.qapp}@{digest}"
    )
    assert run.code == 0, run.stderr
    assert "RELEASED" in run.stdout
    state, details = w.acr.state("team/app", digest)
    assert state == "Passed"
    assert details is not None
    doc = json.loads(details)
    assert doc["state"] == "Passed" and doc["digest"] == digest
    assert doc["rule"]["name"] == "release-needs-two"
    assert doc["required_signers"]["satisfied"] == ["alice", "bob"]
    assert set(doc["signers"]) >= {"alice", "bob"}
    assert doc["time"].endswith("Z")
    # the documented exchange: challenge, Basic token request for pull,push, PATCH with it
    seen = [(r.method, r.path, r.auth, r.status) for r in w.acr.requests]
    path = f"/acr/v1/team/app/_manifests/{digest}"
    assert seen == [
        ("PATCH", path, None, 401),
        ("GET", "/oauth2/token", "basic:writer", 200),
        ("PATCH", path, "bearer", 200),
    ]
    token_request = w.acr.requests[1]
    assert token_request.query["scope"] == ["repository:team/app:pull,push"]
    assert token_request.query["service"] == [w.acr.host_port]
    assert w.acr.requests[2].body == {"quarantineState": "Passed", "quarantineDetails": details}

    status = trustcheck_cli(
        "quarantine",
        "status",
        "--json",
        "--tls-ca",
        str(w.tls.ca_cert),
        "--username",
        "writer",
        f"{w.qapp}@{digest}",
    )
    assert status.code == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["quarantineState"] == "Passed" and shown["tags"] == ["v2"]


def test_quarantine_release_leaves_a_denied_digest_quarantined(
    world: World,
    online: Path,
    tmp_path: Path,
    trustcheck_cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = world
    digest = w.qdigests["v1"]  # signed by alice only
    w.acr.reset_requests()
    monkeypatch.setenv("TRUSTCHECK_PASSWORD", "writer-secret")
    run = trustcheck_cli(
        "quarantine", "release", *_qargs(w, tmp_path), "--username", "writer", f"{w.qapp}@{digest}"
    )
    assert run.code == 1
    assert "QUARANTINED" in run.stdout and "[signer-threshold-not-met]" in run.stderr
    assert w.acr.state("team/app", digest) == ("Quarantined", None)
    assert w.acr.requests == []  # nothing was sent to the registry

    run = trustcheck_cli(
        "quarantine",
        "release",
        "--mark-failed",
        *_qargs(w, tmp_path),
        "--username",
        "writer",
        f"{w.qapp}@{digest}",
    )
    assert run.code == 1
    state, details = w.acr.state("team/app", digest)
    assert state == "Failed" and details is not None
    doc = json.loads(details)
    assert doc["reasons"][0]["code"] == "signer-threshold-not-met"
    assert doc["required_signers"]["missing"] == ["bob"]


def test_quarantine_release_with_a_refresh_token(
    world: World,
    online: Path,
    tmp_path: Path,
    trustcheck_cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = world
    digest = w.qdigests["v3"]
    # Docker's identitytoken (what `az acr login` leaves in the docker config)
    (online / "config.json").write_text(
        json.dumps({"auths": {w.acr.host_port: {"identitytoken": "refresh-token-of-writer"}}})
    )
    w.acr.reset_requests()
    run = trustcheck_cli("quarantine", "release", *_qargs(w, tmp_path), f"{w.qapp}@{digest}")
    assert run.code == 0, run.stderr
    token = [r for r in w.acr.requests if r.path == "/oauth2/token"]
    assert [(r.method, r.form.get("grant_type"), r.form.get("scope")) for r in token] == [
        ("POST", ["refresh_token"], ["repository:team/app:pull,push"])
    ]
    assert w.acr.state("team/app", digest)[0] == "Passed"

    # the null-GUID user name with the refresh token as password (docker login style)
    (online / "config.json").write_text("{}")
    monkeypatch.setenv("TRUSTCHECK_PASSWORD", "refresh-token-of-writer")
    w.acr.reset_requests()
    run = trustcheck_cli(
        "quarantine",
        "status",
        "--tls-ca",
        str(w.tls.ca_cert),
        "--username",
        NULL_GUID,
        f"{w.qapp}@{digest}",
    )
    assert run.code == 0 and "quarantineState    Passed" in run.stdout, run.stderr
    assert [r.method for r in w.acr.requests if r.path == "/oauth2/token"] == ["POST"]


def test_quarantine_auth_failures(
    world: World,
    online: Path,
    tmp_path: Path,
    trustcheck_cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = world
    digest = w.qdigests["v2"]
    ref = f"{w.qapp}@{digest}"
    before = w.acr.state("team/app", digest)
    # no credentials at all
    run = trustcheck_cli("quarantine", "release", *_qargs(w, tmp_path), ref)
    assert run.code == 1 and "[auth-failed]" in run.stderr
    assert "docker login" in run.stderr
    # a quarantine reader may read but not release
    monkeypatch.setenv("TRUSTCHECK_PASSWORD", "reader-secret")
    run = trustcheck_cli("quarantine", "release", *_qargs(w, tmp_path), "--username", "reader", ref)
    assert run.code == 1 and "[auth-failed]" in run.stderr
    assert "AcrQuarantineWriter" in run.stderr
    assert w.acr.state("team/app", digest) == before
    run = trustcheck_cli(
        "quarantine", "status", "--tls-ca", str(w.tls.ca_cert), "--username", "reader", ref
    )
    assert run.code == 0, run.stderr
    # a wrong password
    monkeypatch.setenv("TRUSTCHECK_PASSWORD", "wrong")
    run = trustcheck_cli("quarantine", "release", *_qargs(w, tmp_path), "--username", "writer", ref)
    assert run.code == 1 and "[auth-failed]" in run.stderr and "wrong" not in run.stderr


def test_quarantine_unknown_manifest_and_bad_input(
    world: World,
    online: Path,
    tmp_path: Path,
    trustcheck_cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = world
    monkeypatch.setenv("TRUSTCHECK_PASSWORD", "writer-secret")
    # signed as policy requires, but the registry holds no such manifest
    run = trustcheck_cli(
        "quarantine",
        "release",
        *_qargs(w, tmp_path),
        "--username",
        "writer",
        f"{w.qapp}@{w.qdigests['ghost']}",
    )
    assert run.code == 1 and "[manifest-not-found]" in run.stderr
    # quarantine needs a digest
    run = trustcheck_cli("quarantine", "release", *_qargs(w, tmp_path), f"{w.qapp}:v2")
    assert run.code == 2 and "IMAGE@sha256:DIGEST" in run.stderr
