"""Notation signatures end to end against the real docker-registry (distribution 2.8).

Images and signature artifacts are pushed with plain Registry API calls
(fixtures/oci_push.py), signatures made as the Notary Project specification says
(fixtures/notation_sign.py), and verified through ``notation_evidence`` and the
real CLI (``trustcheck notation verify``) with Notation's own trust policy and
trust store files.  The registry-side attack cases live here: wrong subject,
another registry scope, too many signatures, an oversized envelope, a malformed
signature manifest next to a good one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fixtures.notation_sign import (
    COSE,
    JWS,
    SIGNATURE_TYPE,
    Pki,
    cose_envelope,
    jws_envelope,
    make_pki,
    payload_for,
    push_signature,
    write_notation_config,
)
from fixtures.oci_push import OciPusher, Pushed, RunningRegistry, registry_server
from tests.conftest import CliRun, run_trustcheck
from trustcheck.core.reference import parse_reference
from trustcheck.errors import NotTrusted
from trustcheck.notation import load_notation_config, notation_evidence
from trustcheck.notation.config import NotationConfig
from trustcheck.remote.config import RemoteConfig
from trustcheck.remote.oci import OciRegistry, clear_cache

pytestmark = pytest.mark.integration


@dataclass
class World:
    reg: RunningRegistry
    pusher: OciPusher
    pki: Pki
    other_pki: Pki
    config_dir: Path
    config: NotationConfig

    def ref(self, repo: str, digest: str) -> str:
        return f"{self.reg.host_port}/{repo}@{digest}"

    def oci(self) -> OciRegistry:
        return OciRegistry(RemoteConfig(tls_ca=self.reg.ca_cert, retries=0), env={})

    def cli(self, *args: str) -> CliRun:
        return run_trustcheck(
            "notation",
            "verify",
            "--trust-policy",
            str(self.config_dir / "trustpolicy.json"),
            "--trust-store",
            str(self.config_dir / "truststore"),
            "--tls-ca",
            str(self.reg.ca_cert),
            *args,
        )


@pytest.fixture(scope="module", name="w")
def _world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from fixtures.notary_harness import missing_registry_binary

    reason = missing_registry_binary()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("notation-registry")
    pki, other = make_pki(), make_pki("Other Corp Root")
    with registry_server(base) as reg:
        host = reg.host_port
        policies = [
            {
                "name": "team-app",
                "registryScopes": [f"{host}/team/app", f"{host}/team/many"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:acme"],
                "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Acme Rockets"],
            },
            {
                "name": "skipped",
                "registryScopes": [f"{host}/team/skipped"],
                "signatureVerification": {"level": "skip"},
            },
            {
                "name": "other-team",
                "registryScopes": [f"{host}/other/app"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:other"],
                "trustedIdentities": ["*"],
            },
        ]
        stores = {"ca:acme": [pki.root_pem()], "ca:other": [other.root_pem()]}
        cfg_dir = write_notation_config(base / "notation", policies, stores)
        config = load_notation_config(cfg_dir / "trustpolicy.json", cfg_dir / "truststore")
        with OciPusher(reg.url, reg.ca_cert) as pusher:
            yield World(reg, pusher, pki, other, cfg_dir, config)


@pytest.fixture(autouse=True)
def _online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRUSTCHECK_OFFLINE", raising=False)
    clear_cache()


def _sign(w: World, image: Pushed, *, cose: bool = False, legacy: bool = False) -> Pushed:
    signer = w.pki.signer()
    if cose:
        env = cose_envelope(signer, payload_for(image))
        return push_signature(w.pusher, image, env, media_type=COSE, signer=signer, legacy=legacy)
    env = jws_envelope(signer, payload_for(image))
    return push_signature(w.pusher, image, env, media_type=JWS, signer=signer, legacy=legacy)


def test_signed_images_verify_through_the_library_and_the_cli(w: World) -> None:
    image = w.pusher.push_image("team/app", "v1")
    jws_sig = _sign(w, image)
    legacy_cose = _sign(w, image, cose=True, legacy=True)
    ref = parse_reference(w.ref("team/app", image.digest))
    with w.oci() as oci:
        found = notation_evidence(ref, image.digest, w.config, datetime.now(UTC), oci)
    assert [e.source for e in found] == [jws_sig.digest, legacy_cose.digest]
    assert all(e.valid and e.kind == "notation" for e in found), [e.message for e in found]
    assert found[0].identity == "C=US, ST=WA, O=Acme Rockets, CN=release"
    assert found[0].issuer == "ca:acme" and found[0].level == "strict"
    assert {e.details["envelope"] for e in found} == {JWS, COSE}
    run = w.cli(f"{w.reg.host_port}/team/app:v1")
    assert run.code == 0, run.stderr
    assert run.stdout.startswith(f"TRUSTED      {w.reg.host_port}/team/app:v1  {image.digest}")
    run = w.cli("--json", f"{w.reg.host_port}/team/app:v1")
    doc = json.loads(run.stdout)["results"][0]
    assert run.code == 0 and doc["trusted"] and doc["digest"] == image.digest
    assert len(doc["evidence"]) == 2 and doc["signature"]["issuer"] == "ca:acme"


def test_an_unsigned_image_is_not_trusted(w: World) -> None:
    image = w.pusher.push_image("team/app", "unsigned")
    run = w.cli(f"{w.reg.host_port}/team/app:unsigned")
    assert run.code == 1
    assert "[notation-no-signature]" in run.stdout and image.digest in run.stdout


def test_a_signature_for_another_image_is_refused(w: World) -> None:
    """The signature of image A, attached to image B (the subject says B)."""
    a = w.pusher.push_image("team/app", "a")
    b = w.pusher.push_image("team/app", "b")
    signer = w.pki.signer()
    envelope = jws_envelope(signer, payload_for(a))
    push_signature(w.pusher, b, envelope, signer=signer)
    run = w.cli("--json", f"{w.reg.host_port}/team/app:b")
    doc = json.loads(run.stdout)["results"][0]
    assert run.code == 1
    assert doc["error"]["code"] == "notation-subject-mismatch"
    assert a.digest in doc["error"]["message"] and b.digest in doc["error"]["message"]
    # the same payload digest with another size or media type: also refused
    forged = dict(b.descriptor(), size=b.size + 1)
    push_signature(w.pusher, b, jws_envelope(signer, payload_for(forged)), signer=signer)
    with w.oci() as oci:
        found = notation_evidence(
            parse_reference(w.ref("team/app", b.digest)), b.digest, w.config, datetime.now(UTC), oci
        )
    assert [e.code for e in found] == ["notation-subject-mismatch"] * 2
    assert "size" in found[1].message


def test_scopes_select_the_policy_and_its_trust_store(w: World) -> None:
    # no statement for this repository and no '*': notation-no-policy
    lone = w.pusher.push_image("nobody/app", "v1")
    _sign(w, lone)
    run = w.cli(f"{w.reg.host_port}/nobody/app:v1")
    assert run.code == 1 and "[notation-no-policy]" in run.stdout
    # a valid Acme signature on an image whose scope trusts only Other Corp's CA
    other = w.pusher.push_image("other/app", "v1")
    _sign(w, other)
    run = w.cli("--json", f"{w.reg.host_port}/other/app:v1")
    doc = json.loads(run.stdout)["results"][0]
    assert run.code == 1 and doc["error"]["code"] == "notation-untrusted-chain"
    assert "ca:other" in doc["error"]["message"]


def test_one_bad_artifact_does_not_hide_a_good_one_and_oversized_is_not_fetched(
    w: World,
) -> None:
    image = w.pusher.push_image("team/app", "mixed")
    # two layers: not a signature manifest the spec allows
    two = w.pusher.push_artifact(
        "team/app",
        subject=image,
        artifact_type=SIGNATURE_TYPE,
        blobs=[(JWS, b"{}"), (JWS, b"{ }")],
    )
    big = w.pusher.push_artifact(
        "team/app",
        subject=image,
        artifact_type=SIGNATURE_TYPE,
        blobs=[(JWS, b" " * ((4 << 20) + 1))],
    )
    good = _sign(w, image)
    ref = parse_reference(w.ref("team/app", image.digest))
    with w.oci() as oci:
        found = notation_evidence(ref, image.digest, w.config, datetime.now(UTC), oci)
    by_source = {e.source: e for e in found}
    assert by_source[two.digest].code == "oci-invalid"
    assert "exactly one layer" in by_source[two.digest].message
    assert by_source[big.digest].code == "notation-envelope-invalid"
    assert "not fetched" in by_source[big.digest].message
    assert by_source[good.digest].valid
    run = w.cli(f"{w.reg.host_port}/team/app:mixed")
    assert run.code == 0, run.stdout + run.stderr


def test_too_many_signatures_are_refused(w: World) -> None:
    image = w.pusher.push_image("team/many", "v1")
    for _ in range(3):
        _sign(w, image)
    ref = parse_reference(w.ref("team/many", image.digest))
    with w.oci() as oci, pytest.raises(NotTrusted) as e:
        notation_evidence(ref, image.digest, w.config, datetime.now(UTC), oci, max_signatures=2)
    assert e.value.code == "referrers-limit-exceeded"
    run = w.cli("--max-signatures", "2", f"{w.reg.host_port}/team/many:v1")
    assert run.code == 1 and "[referrers-limit-exceeded]" in run.stdout
    run = w.cli("--max-referrers", "2", f"{w.reg.host_port}/team/many:v1")
    assert run.code == 1 and "[referrers-limit-exceeded]" in run.stdout
    assert w.cli(f"{w.reg.host_port}/team/many:v1").code == 0


def test_usage_errors_exit_2(w: World, tmp_path: Path) -> None:
    run = w.cli("--offline", f"{w.reg.host_port}/team/app:v1")
    assert run.code == 2 and "drop --offline" in run.stderr
    bad = tmp_path / "trustpolicy.json"
    bad.write_text('{"version": "2.0", "trustPolicies": []}')
    run = run_trustcheck("notation", "verify", "--trust-policy", str(bad), "x.example/a:b")
    assert run.code == 2 and "[notation-config-invalid]" in run.stderr
    assert "Traceback" not in run.stderr


def test_skip_level_and_the_validation_time(w: World) -> None:
    image = w.pusher.push_image("team/skipped", "v1")
    run = w.cli("--json", f"{w.reg.host_port}/team/skipped:v1")
    doc = json.loads(run.stdout)["results"][0]
    assert run.code == 0 and doc["skipped"] and not doc["trusted"]
    assert doc["evidence"][0]["code"] == "notation-verification-skipped"
    assert "says skip" in run.stderr
    run = w.cli(f"{w.reg.host_port}/team/skipped:v1")
    assert run.stdout.startswith(f"SKIPPED      {w.reg.host_port}/team/skipped:v1  {image.digest}")
    # --at after the signing certificate's validity: the same signature is refused
    signed = w.pusher.push_image("team/app", "dated")
    _sign(w, signed)
    assert w.cli(f"{w.reg.host_port}/team/app:dated").code == 0
    run = w.cli("--at", "2099-01-01T00:00:00Z", f"{w.reg.host_port}/team/app:dated")
    assert run.code == 1 and "[notation-cert-expired]" in run.stdout
    run = w.cli("--at", "tomorrow", f"{w.reg.host_port}/team/app:dated")
    assert run.code == 2 and "--at" in run.stderr
