"""One policy for DCT, Notation and cosign, end to end (issues 19 item 3, 20 item 4).

The real notary-server holds the DCT trust data (published by the real notary
client), the real docker-registry (distribution 2.8: referrers tag schema) holds
the images, their Notation signatures (made by fixtures/notation_sign.py, which
follows the Notary Project specification) and their cosign signatures (cosign's
``sha256-<hex>.sig`` format, fixtures/cosign_sign.py). ``trustcheck gate`` and
``policy explain`` run in-process through the CLI's entry point.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fixtures.cosign_sign import CosignKeyPair, push_signatures, signature_layer, simple_signing
from fixtures.notary_harness import (
    DockerRegistry,
    NotaryClient,
    NotaryServer,
    TLSMaterial,
    find_binary,
    make_tls,
    missing_notary_binaries,
)
from fixtures.oci_push import OciPusher

pytestmark = pytest.mark.integration

Cli = Callable[..., Any]
REPO = "team/app"
#: tag -> the signature kinds it carries
IMAGES: dict[str, tuple[str, ...]] = {
    "dct": ("dct",),
    "notation": ("notation",),
    "both": ("dct", "notation"),
    "neither": (),
    "cosign": ("cosign",),
    "three": ("dct", "notation", "cosign"),
}
SUBJECT = "C=US, ST=WA, O=Acme Rockets, CN=release"
ACME = "x509.subject: C=US, ST=WA, O=Acme Rockets"


@dataclass
class World:
    base: Path
    tls: TLSMaterial
    server: NotaryServer
    registry: DockerRegistry
    gun: str
    key: CosignKeyPair
    key_file: Path
    notation_dir: Path
    digests: dict[str, str] = field(default_factory=dict)

    def image(self, tag: str) -> str:
        return f"{self.gun}:{tag}"

    def policy(self, name: str, require: str, *, extra: str = "") -> Path:
        """A policy whose one rule for the repository has ``require`` (YAML, indented
        under ``require:``)."""
        path = self.base / f"{name}.yaml"
        body = textwrap.indent(textwrap.dedent(require).strip(), " " * 6)
        path.write_text(
            "defaults:\n"
            "  trust:\n"
            f"    notation: {self.notation_dir}\n"
            "rules:\n"
            f"  - name: {name}\n"
            f'    pattern: "{self.registry.host_port}/team/*"\n'
            f"{extra}"
            "    require:\n"
            f"{body}\n"
        )
        return path


@contextlib.contextmanager
def build_world(base: Path) -> Iterator[World]:
    """The notary-server, the registry and the signed images of :data:`IMAGES`
    (also used by test_coverage.py)."""
    missing = missing_notary_binaries()
    if find_binary("docker-registry") is None:
        missing.append("docker-registry")
    if missing:
        pytest.skip("!!! SIGNATURE POLICY TESTS SKIPPED: missing " + ", ".join(missing) + " !!!")
    from fixtures.notation_sign import (
        jws_envelope,
        make_pki,
        payload_for,
        push_signature,
        write_notation_config,
    )

    tls = make_tls(base / "tls")
    with (
        NotaryServer(base / "notary", tls=tls) as server,
        DockerRegistry(base / "registry", tls=tls) as registry,
        OciPusher(registry.url, tls.ca_cert) as pusher,
    ):
        gun = f"{registry.host_port}/{REPO}"
        key = CosignKeyPair.generate()
        key_file = base / "cosign.pub"
        key_file.write_bytes(key.public_pem())
        pki = make_pki()
        signer = pki.signer()
        trust_policy = {
            "name": "acme-prod",
            "registryScopes": [gun],
            "signatureVerification": {"level": "strict"},
            "trustStores": ["ca:acme"],
            "trustedIdentities": ["*"],
        }
        notation_dir = write_notation_config(
            base / "notation", [trust_policy], {"ca:acme": [pki.root_pem()]}
        )
        w = World(base, tls, server, registry, gun, key, key_file, notation_dir)
        pub = NotaryClient.for_server(base / "publisher", server)
        pub.init(gun)
        for tag, kinds in IMAGES.items():
            image = pusher.push_image(REPO, tag, seed=tag.encode())
            w.digests[tag] = image.digest
            if "dct" in kinds:
                pub.addhash(gun, tag, image.size, image.digest.removeprefix("sha256:"))
            if "notation" in kinds:
                envelope = jws_envelope(signer, payload_for(image))
                push_signature(pusher, image, envelope, signer=signer)
            if "cosign" in kinds:
                payload = simple_signing(gun, image.digest)
                push_signatures(
                    pusher, REPO, image.digest, [signature_layer(payload, key.sign(payload))]
                )
        pub.publish(gun)
        yield w


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with build_world(tmp_path_factory.mktemp("mixed")) as w:
        yield w


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("TRUSTCHECK_OFFLINE", raising=False)
    monkeypatch.delenv("DOCKER_CONTENT_TRUST_SERVER", raising=False)
    config = tmp_path / "docker-config"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    return config


def _common(w: World, tmp: Path) -> list[str]:
    return [
        "--trust-dir", str(tmp / "trust"), "--tls-ca", str(w.tls.ca_cert),
        "--server", w.server.url,
    ]  # fmt: skip


def _gate(cli: Cli, w: World, tmp: Path, policy: Path, *args: str) -> tuple[int, dict[str, Any]]:
    images = [w.image(t) for t in IMAGES]
    run = cli("gate", "--json", "--policy", str(policy), *_common(w, tmp), *args, *images)
    assert run.code in (0, 1), run.stderr
    assert "Traceback" not in run.stderr
    doc = json.loads(run.stdout)
    return run.code, {d["tag"]: d for d in doc["decisions"]}


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


MIGRATION = """\
any_of:
  - dct: {{signers: [targets]}}
    until: {until}
  - notation:
      trust_policy: acme-prod
      identities: ["{acme}"]
"""


def _migration(until: date) -> str:
    return MIGRATION.format(acme=ACME, until=until.isoformat())


def test_migration_gate_before_and_after_until(
    world: World, online: Path, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    """ "DCT releases or Notation by our CA until a date, then Notation only"."""
    w = world
    today = datetime.now(UTC).date()
    later = w.policy("later", _migration(today + timedelta(days=30)))
    code, got = _gate(trustcheck_cli, w, tmp_path, later)
    assert code == 1
    allowed = {t for t, d in got.items() if d["allowed"]}
    assert allowed == {"dct", "notation", "both", "three"}
    assert got["dct"]["satisfied_by"][0]["kind"] == "dct"
    assert got["dct"]["digest"] == w.digests["dct"] and got["dct"]["digest_source"] == "dct"
    assert got["both"]["satisfied_by"][0]["kind"] == "dct"  # the first alternative that holds
    n = got["notation"]
    assert n["satisfied_by"][0]["kind"] == "notation" and n["digest_source"] == "registry"
    assert n["satisfied_by"][0]["signatures"][0]["identity"] == SUBJECT
    assert n["pinned"] == f"{w.gun}@{w.digests['notation']}"
    for tag in ("neither", "cosign"):
        d = got[tag]
        assert [r["code"] for r in d["reasons"]] == [
            "requirement-not-met", "tag-not-signed", "signature-not-found",
        ], d["reasons"]  # fmt: skip
    # the same policy after its date: DCT alone no longer counts
    past = w.policy("past", _migration(today - timedelta(days=1)))
    code, got = _gate(trustcheck_cli, w, tmp_path, past)
    allowed = {t for t, d in got.items() if d["allowed"]}
    assert code == 1 and allowed == {"notation", "both", "three"}
    assert got["both"]["satisfied_by"][0]["kind"] == "notation"
    dct = got["dct"]
    assert [r["code"] for r in dct["reasons"]] == ["requirement-not-met", "signature-not-found"]
    assert dct["alternatives"][0]["in_force"] is False
    assert "no longer in force" in dct["alternatives"][0]["why"]
    # --at moves the validation time, and with it the windows
    at = _stamp(datetime.now(UTC) + timedelta(days=2))
    tomorrow = w.policy("tomorrow", _migration(today + timedelta(days=1)))
    code, got = _gate(trustcheck_cli, w, tmp_path, tomorrow, "--at", at)
    assert not got["dct"]["allowed"] and got["notation"]["allowed"]


def test_three_kind_gate(world: World, online: Path, tmp_path: Path, trustcheck_cli: Cli) -> None:
    """Issue 20: DCT, Notation and cosign in one rule."""
    w = world
    every = w.policy(
        "every",
        f"""\
        all_of:
          - dct: {{}}
          - notation: {{identities: ["{ACME}"]}}
          - cosign: {{keys: [{w.key_file}]}}
        """,
    )
    code, got = _gate(trustcheck_cli, w, tmp_path, every)
    assert code == 1
    assert {t for t, d in got.items() if d["allowed"]} == {"three"}
    three = got["three"]
    assert [r["kind"] for r in three["satisfied_by"]] == ["dct", "notation", "cosign"]
    assert three["satisfied_by"][2]["signatures"][0]["identity"] == w.key.spki_identity()
    assert "signature-not-found" in [r["code"] for r in got["both"]["reasons"]]  # no cosign
    any_kind = w.policy(
        "any",
        f"""\
        any_of:
          - dct: {{}}
          - notation: {{}}
          - cosign: {{keys: [{w.key_file}]}}
        """,
    )
    code, got = _gate(trustcheck_cli, w, tmp_path, any_kind)
    assert {t for t, d in got.items() if d["allowed"]} == set(IMAGES) - {"neither"}
    assert got["cosign"]["satisfied_by"][0]["kind"] == "cosign"
    # another key: the signature does not verify with it; the image is denied
    other = CosignKeyPair.generate()
    other_file = tmp_path / "other.pub"
    other_file.write_bytes(other.public_pem())
    wrong = w.policy("wrong", f"cosign: {{keys: [{other_file}]}}")
    code, got = _gate(trustcheck_cli, w, tmp_path, wrong)
    assert code == 1 and not any(d["allowed"] for d in got.values())
    reasons = got["cosign"]["reasons"]
    assert [r["code"] for r in reasons] == ["requirement-not-met", "cosign-signature-invalid"]
    assert "rules[0].require" in reasons[1]["message"]


def test_explain_names_the_satisfying_signature(
    world: World, online: Path, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    w = world
    today = datetime.now(UTC).date()
    past = w.policy("explain", _migration(today - timedelta(days=1)))
    run = trustcheck_cli(
        "policy", "explain", "--policy", str(past), *_common(w, tmp_path), w.image("both")
    )
    assert run.code == 0, run.stdout + run.stderr
    out = run.stdout
    assert "requires   any of [dct 1 of [targets] (until" in out
    assert "not in force" in out and "no longer in force" in out
    assert "SATISFIED" in out and f"satisfied  by notation {SUBJECT}" in out
    assert f"decision   ALLOW  {w.gun}@{w.digests['both']}" in out
    run = trustcheck_cli(
        "policy", "explain", "--json", "--policy", str(past), *_common(w, tmp_path),
        w.image("neither"),
    )  # fmt: skip
    assert run.code == 1
    doc = json.loads(run.stdout)
    d = doc.get("decision", doc)
    assert d["satisfied_by"] == [] and d["reasons"][0]["code"] == "requirement-not-met"
    # the gate's line for people names it too
    run = trustcheck_cli("gate", "--policy", str(past), *_common(w, tmp_path), w.image("notation"))
    assert run.code == 0 and f"satisfied by notation {SUBJECT}" in run.stdout


def test_offline_and_unreachable_registry_fail_closed(
    world: World, online: Path, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    w = world
    only = w.policy("only", "notation: {}")
    (tmp_path / "trust").mkdir()
    run = trustcheck_cli(
        "gate", "--json", "--offline", "--policy", str(only), *_common(w, tmp_path),
        w.image("notation"),
    )  # fmt: skip
    assert run.code == 1, run.stderr
    (d,) = json.loads(run.stdout)["decisions"]
    assert [r["code"] for r in d["reasons"]] == ["requirement-not-met", "signatures-offline"]
    # a registry that does not answer costs only its own images
    both = w.base / "two-registries.yaml"
    both.write_text(
        "defaults:\n"
        f"  trust: {{notation: {w.notation_dir}}}\n"
        "rules:\n"
        f'  - pattern: "{w.registry.host_port}/team/*"\n'
        "    require: {notation: {}}\n"
        '  - pattern: "127.0.0.1:1/team/*"\n'
        "    require: {notation: {}}\n"
    )
    dead = f"127.0.0.1:1/{REPO}:v1"
    run = trustcheck_cli(
        "gate", "--json", "--policy", str(both), *_common(w, tmp_path), "--timeout", "2",
        "--retries", "0", dead, w.image("notation"),
    )  # fmt: skip
    assert run.code == 1 and "Traceback" not in run.stderr
    doc = {d["image"]: d for d in json.loads(run.stdout)["decisions"]}
    assert doc[w.image("notation")]["allowed"] is True
    codes = [r["code"] for r in doc[dead]["reasons"]]
    assert not doc[dead]["allowed"] and codes[0] == "requirement-not-met" and len(codes) == 2
    assert "127.0.0.1:1" in doc[dead]["reasons"][1]["message"]


def test_pull_by_the_digest_a_notation_signature_binds(
    world: World, online: Path, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    """``pull`` goes through the same evaluate(): a Notation-only image is pulled by the
    registry digest its signature binds (real skopeo), an unsigned one is not."""
    if find_binary("skopeo") is None:
        pytest.skip("!!! PULL TEST SKIPPED: skopeo is not installed !!!")
    import shutil

    w = world
    cert_dir = tmp_path / "certs"
    cert_dir.mkdir()
    shutil.copyfile(w.tls.ca_cert, cert_dir / "ca.crt")
    policy = w.policy("pull", f'notation: {{identities: ["{ACME}"]}}')
    dest = tmp_path / "image"
    common = ["--with", "skopeo", "--cert-dir", str(cert_dir), *_common(w, tmp_path)]
    run = trustcheck_cli(
        "pull", "--policy", str(policy), *common, "--dest", f"dir:{dest}", w.image("notation")
    )
    assert run.code == 0, run.stdout + run.stderr
    assert f"{w.gun}@{w.digests['notation']}" in run.stdout
    manifest = (dest / "manifest.json").read_bytes()
    assert "sha256:" + hashlib.sha256(manifest).hexdigest() == w.digests["notation"]
    denied = tmp_path / "denied"
    run = trustcheck_cli(
        "pull", "--policy", str(policy), *common, "--dest", f"dir:{denied}", w.image("neither")
    )
    assert run.code == 1 and not denied.exists()
    assert "[requirement-not-met]" in run.stdout + run.stderr


def test_webhook_admits_by_the_same_require_rule(
    world: World, online: Path, tmp_path: Path
) -> None:
    """The admission webhook (in-process, real notary-server and registry) decides a
    ``require:`` rule as ``gate`` does: Notation evidence and the dates count."""
    import asyncio

    import httpx
    from conftest import pod_review

    from trustcheck.api import Options
    from trustcheck.local.trustdir import TrustDir
    from trustcheck.policy.load import load_policy
    from trustcheck.remote.config import RemoteConfig
    from trustcheck.webhook.app import WebhookServer
    from trustcheck.webhook.cache import TrustCache
    from trustcheck.webhook.config import ServerConfig, WebhookConfig

    w = world
    today = datetime.now(UTC).date()
    past = load_policy(w.policy("hook-past", _migration(today - timedelta(days=1))))
    later = load_policy(w.policy("hook-later", _migration(today + timedelta(days=30))))
    remote = RemoteConfig(server=w.server.url, tls_ca=w.tls.ca_cert)
    trust = TrustDir(tmp_path / "trust")

    def allowed(policy: Any, tags: list[str]) -> dict[str, Any]:
        cache = TrustCache(policy, trust, Options(), remote)
        config = ServerConfig(webhook=WebhookConfig(deadline=20.0), remote=remote)
        server = WebhookServer(policy, config, cache, options=Options())
        out: dict[str, Any] = {}

        async def main() -> None:
            transport = httpx.ASGITransport(app=server.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hook") as c:
                for tag in tags:
                    body = pod_review([w.image(tag)], f"uid-{tag}")
                    out[tag] = (await c.post("/validate", json=body)).json()["response"]

        try:
            asyncio.run(main())
        finally:
            cache.close()
        return out

    got = allowed(past, ["notation", "dct", "neither"])
    assert got["notation"]["allowed"] is True
    assert got["dct"]["allowed"] is False  # after the date DCT no longer counts
    assert "[requirement-not-met]" in got["dct"]["status"]["message"]
    assert got["neither"]["allowed"] is False
    got = allowed(later, ["dct", "notation"])
    assert got["dct"]["allowed"] is True and got["notation"]["allowed"] is True


def test_notation_identity_and_trust_policy_must_match(
    world: World, online: Path, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    w = world
    evil = w.policy("evil", 'notation: {identities: ["x509.subject: C=US, ST=WA, O=Evil Corp"]}')
    code, got = _gate(trustcheck_cli, w, tmp_path, evil)
    assert code == 1 and not any(d["allowed"] for d in got.values())
    reasons = got["notation"]["reasons"]
    assert [r["code"] for r in reasons] == ["requirement-not-met", "signature-identity-mismatch"]
    assert SUBJECT in reasons[1]["message"]  # who did sign
    other = w.policy("other-tp", "notation: {trust_policy: another-statement}")
    code, got = _gate(trustcheck_cli, w, tmp_path, other)
    assert code == 1 and not got["notation"]["allowed"]
    assert got["notation"]["reasons"][1]["code"] == "signature-identity-mismatch"
