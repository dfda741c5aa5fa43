"""cosign signatures in the real docker-registry (distribution 2.8), found and verified.

Key-based signatures are made here with ``cryptography`` in cosign's format
(fixtures/cosign_sign.py) and pushed as cosign pushes them: the ``sha256-<hex>.sig``
tag and Sigstore bundle referrers (the referrers tag schema, as distribution 2.8 has no
Referrers API). Real keyless Sigstore material (fixtures/sigstore) is pushed too, to
show it never counts for an image it does not sign.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fixtures.cosign_sign import (
    CosignKeyPair,
    key_bundle,
    key_message_bundle,
    private_trusted_root,
    push_bundle,
    push_signatures,
    rekor_bundle,
    signature_layer,
    simple_signing,
)
from fixtures.oci_push import OciPusher, Pushed, RunningRegistry, registry_server
from tests.conftest import run_trustcheck
from trustcheck.core.reference import parse_reference
from trustcheck.remote.config import RemoteConfig
from trustcheck.remote.oci import OciRegistry, clear_cache
from trustcheck.signatures.evidence import Evidence
from trustcheck.sigstore import cosign_evidence, load_cosign_config

pytestmark = pytest.mark.integration

SIGSTORE = Path(__file__).resolve().parents[2] / "fixtures" / "sigstore" / "sigstore-python"
AT = datetime(2026, 8, 22, tzinfo=UTC)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    from fixtures.notary_harness import missing_registry_binary

    reason = missing_registry_binary()
    if reason:
        pytest.skip(reason)
    with registry_server(tmp_path_factory.mktemp("cosign-registry")) as reg:
        yield reg


@pytest.fixture
def pusher(registry: RunningRegistry) -> Iterator[OciPusher]:
    clear_cache()
    with OciPusher(registry.url, registry.ca_cert) as p:
        yield p


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[CosignKeyPair, Path]]:
    d = tmp_path_factory.mktemp("cosign-keys")
    out = {}
    for kind in ("p256", "p384", "rsa", "ed25519", "other"):
        pair = CosignKeyPair.generate("p256" if kind == "other" else kind)
        path = d / f"{kind}.pub"
        path.write_bytes(pair.public_pem())
        out[kind] = (pair, path)
    return out


def _evidence(registry: RunningRegistry, image: str, digest: str, **config: Any) -> list[Evidence]:
    cfg = load_cosign_config(**config)
    with OciRegistry(RemoteConfig(tls_ca=registry.ca_cert, retries=0), env={}) as oci:
        return cosign_evidence(parse_reference(image), digest, cfg, AT, oci)


def _signed(
    pusher: OciPusher, repo: str, pair: CosignKeyPair, ref_name: str
) -> tuple[Pushed, bytes]:
    image = pusher.push_image(repo, "v1")
    payload = simple_signing(ref_name, image.digest)
    push_signatures(pusher, repo, image.digest, [signature_layer(payload, pair.sign(payload))])
    return image, payload


def test_key_based_signatures_of_each_key_type_verify(
    registry: RunningRegistry, pusher: OciPusher, keys: dict[str, tuple[CosignKeyPair, Path]]
) -> None:
    repo = "team/keys"
    image = pusher.push_image(repo, "v1")
    payload = simple_signing(f"{registry.host_port}/{repo}", image.digest)
    layers = [
        signature_layer(payload, keys[k][0].sign(payload))
        for k in ("p256", "p384", "rsa", "ed25519")
    ]
    push_signatures(pusher, repo, image.digest, layers)
    ev = _evidence(
        registry,
        f"{registry.host_port}/{repo}:v1",
        image.digest,
        keys=[keys[k][1] for k in ("p256", "p384", "rsa", "ed25519")],
    )
    assert [e.valid for e in ev] == [True, True, True, True]
    assert [e.identity for e in ev] == [
        keys[k][0].spki_identity() for k in ("p256", "p384", "rsa", "ed25519")
    ]
    assert all(e.kind == "cosign" and e.digest == image.digest for e in ev)
    assert ev[0].source.startswith(f"sha256-{image.digest[7:]}.sig@sha256:")
    assert ev[0].details["docker_reference"] == f"{registry.host_port}/{repo}"
    # only the P-256 key trusted: the other three are not valid, each with its reason
    ev = _evidence(
        registry, f"{registry.host_port}/{repo}:v1", image.digest, keys=[keys["p256"][1]]
    )
    assert [e.valid for e in ev] == [True, False, False, False]
    assert {e.code for e in ev[1:]} == {"cosign-signature-invalid"}


def test_cli_verify_key_based_text_and_json(
    registry: RunningRegistry, pusher: OciPusher, keys: dict[str, tuple[CosignKeyPair, Path]]
) -> None:
    pair, pub = keys["p256"]
    image, _ = _signed(pusher, "team/cli", pair, f"{registry.host_port}/team/cli")
    ref = f"{registry.host_port}/team/cli:v1"
    ca = str(registry.ca_cert)
    r = run_trustcheck("cosign", "verify", "--key", str(pub), "--tls-ca", ca, ref)
    assert r.code == 0, r
    assert r.stdout.startswith(f"TRUSTED      {ref}@{image.digest}  (1 of 1 cosign signatures; ")
    assert pair.spki_identity() in r.stdout
    r = run_trustcheck("cosign", "verify", "--key", str(pub), "--tls-ca", ca, "--json", ref)
    doc = json.loads(r.stdout)
    assert r.code == 0 and doc["results"][0]["trusted"] is True
    assert doc["results"][0]["digest"] == image.digest
    sig = doc["results"][0]["signatures"][0]
    assert sig["valid"] is True and sig["identity"] == pair.spki_identity()
    # another key: not trusted, exit 1, one line naming the code
    r = run_trustcheck("cosign", "verify", "--key", str(keys["other"][1]), "--tls-ca", ca, ref)
    assert r.code == 1
    assert r.stdout.splitlines()[0].startswith(
        f"NOT TRUSTED  {ref}@{image.digest}  [cosign-signature-invalid]"
    )
    assert "Traceback" not in r.stdout + r.stderr


def test_unsigned_image_and_usage_errors(
    registry: RunningRegistry,
    pusher: OciPusher,
    keys: dict[str, tuple[CosignKeyPair, Path]],
    tmp_path: Path,
) -> None:
    pusher.push_image("team/unsigned", "v1")
    ref = f"{registry.host_port}/team/unsigned:v1"
    ca = str(registry.ca_cert)
    r = run_trustcheck("cosign", "verify", "--key", str(keys["p256"][1]), "--tls-ca", ca, ref)
    assert r.code == 1 and "[cosign-no-signatures]" in r.stdout
    # whom to trust must be said; a bad key file; half an identity; a bad regexp
    r = run_trustcheck("cosign", "verify", "--tls-ca", ca, ref)
    assert r.code == 2 and "[cosign-config-invalid]" in r.stderr and "--key" in r.stderr
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    r = run_trustcheck("cosign", "verify", "--key", str(bad), ref)
    assert r.code == 2 and f"--key {bad}" in r.stderr and "[cosign-config-invalid]" in r.stderr
    r = run_trustcheck("cosign", "verify", "--certificate-identity", "a@b.c", ref)
    assert r.code == 2 and "--certificate-oidc-issuer" in r.stderr
    r = run_trustcheck(
        "cosign",
        "verify",
        "--certificate-identity-regexp",
        "(",
        "--certificate-oidc-issuer",
        "https://x",
        "--trusted-root",
        str(SIGSTORE / "staging_trusted_root.json"),
        ref,
    )
    assert r.code == 2 and "not a valid regular expression" in r.stderr
    r = run_trustcheck(
        "cosign",
        "verify",
        "--certificate-identity",
        "a@b.c",
        "--certificate-oidc-issuer",
        "https://x",
        ref,
    )
    assert r.code == 2 and "--trusted-root" in r.stderr
    for line in (r.stderr,):
        assert len(line.strip().splitlines()) == 1


def test_attack_wrong_digest_in_the_payload(
    registry: RunningRegistry, pusher: OciPusher, keys: dict[str, tuple[CosignKeyPair, Path]]
) -> None:
    """A valid signature by the trusted key over a payload naming another digest (a
    signature copied from another image) never counts."""
    pair, pub = keys["p256"]
    other, other_payload = _signed(pusher, "team/copy", pair, f"{registry.host_port}/team/copy")
    image = pusher.push_image("team/copy", "v2")
    push_signatures(
        pusher,
        "team/copy",
        image.digest,
        [signature_layer(other_payload, pair.sign(other_payload))],
    )
    ev = _evidence(registry, f"{registry.host_port}/team/copy:v2", image.digest, keys=[pub])
    assert len(ev) == 1 and not ev[0].valid
    assert ev[0].code == "cosign-digest-mismatch"
    assert other.digest in ev[0].message and image.digest in ev[0].message


def test_attack_tampered_payload_and_malformed_layers(
    registry: RunningRegistry, pusher: OciPusher, keys: dict[str, tuple[CosignKeyPair, Path]]
) -> None:
    pair, pub = keys["p256"]
    repo = "team/tamper"
    image = pusher.push_image(repo, "v1")
    good = simple_signing(repo, image.digest)
    altered = simple_signing(repo, image.digest, optional={"creator": "mallory"})
    not_cosign = simple_signing(repo, image.digest, kind="atomic container signature")
    layers = [
        signature_layer(altered, pair.sign(good)),  # payload changed after signing
        signature_layer(not_cosign, pair.sign(not_cosign)),  # wrong critical.type
        (good, {"dev.cosignproject.cosign/signature": "%%% not base64"}),
        (good, {}),  # no signature annotation
        signature_layer(b"[1, 2", pair.sign(b"[1, 2")),  # not JSON
    ]
    push_signatures(pusher, repo, image.digest, layers)
    ev = _evidence(registry, f"{registry.host_port}/{repo}:v1", image.digest, keys=[pub])
    assert [(e.valid, e.code) for e in ev] == [
        (False, "cosign-signature-invalid"),
        (False, "cosign-bundle-invalid"),
        (False, "cosign-bundle-invalid"),
        (False, "cosign-bundle-invalid"),
        (False, "cosign-bundle-invalid"),
    ]
    assert "critical.type" in ev[1].message and "not base64" in ev[2].message


def test_signature_cap(
    registry: RunningRegistry, pusher: OciPusher, keys: dict[str, tuple[CosignKeyPair, Path]]
) -> None:
    pair, pub = keys["p256"]
    repo = "team/many"
    image = pusher.push_image(repo, "v1")
    payload = simple_signing(repo, image.digest)
    push_signatures(pusher, repo, image.digest, [signature_layer(payload, pair.sign(payload))] * 3)
    ev = _evidence(
        registry, f"{registry.host_port}/{repo}:v1", image.digest, keys=[pub], max_signatures=2
    )
    assert [e.valid for e in ev] == [True, True, False]
    assert "only the first 2 are examined" in ev[2].message


def test_key_bundle_referrers_and_bundle_for_another_artifact(
    registry: RunningRegistry, pusher: OciPusher, keys: dict[str, tuple[CosignKeyPair, Path]]
) -> None:
    pair, pub = keys["p256"]
    repo = "team/bundles"
    image = pusher.push_image(repo, "v1")
    other = pusher.push_image(repo, "v2")
    push_bundle(pusher, repo, image, key_bundle(pair, image.digest))
    # an attestation is not a signature: skipped
    push_bundle(
        pusher,
        repo,
        image,
        key_bundle(pair, image.digest, predicate_type="https://slsa.dev/provenance/v1"),
    )
    # a valid bundle for `other`, attached to `image`: a bundle for another artifact
    push_bundle(pusher, repo, image, key_bundle(pair, other.digest))
    ev = _evidence(registry, f"{registry.host_port}/{repo}:v1", image.digest, keys=[pub])
    assert sorted((e.valid, e.code) for e in ev) == [
        (False, "cosign-digest-mismatch"),
        (True, None),
    ]
    valid = next(e for e in ev if e.valid)
    assert valid.identity == pair.spki_identity() and valid.source.startswith("referrer sha256:")
    assert valid.details["form"] == "bundle"


def test_real_keyless_material_never_counts_for_another_image(
    registry: RunningRegistry, pusher: OciPusher
) -> None:
    """Real Sigstore bundles and a real keyless signature (Fulcio certificate + Rekor
    SET from bundle.txt.sigstore), pushed as cosign pushes them to an image they do not
    sign: fully verified against the staging trusted root, and refused for this image."""
    repo = "team/keyless"
    image = pusher.push_image(repo, "v1")
    push_bundle(pusher, repo, image, (SIGSTORE / "bundle_v3.txt.sigstore").read_bytes())
    push_bundle(
        pusher, repo, image, (SIGSTORE / "a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes()
    )
    # cosign's legacy keyless layer, made of the parts of a real v0.1 bundle
    b = json.loads((SIGSTORE / "bundle.txt.sigstore").read_bytes())
    entry = b["verificationMaterial"]["tlogEntries"][0]
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    der = base64.b64decode(
        b["verificationMaterial"]["x509CertificateChain"]["certificates"][0]["rawBytes"]
    )
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()
    rekor = json.dumps(
        {
            "SignedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
            "Payload": {
                "body": entry["canonicalizedBody"],
                "integratedTime": int(entry["integratedTime"]),
                "logIndex": int(entry["logIndex"]),
                "logID": base64.b64decode(entry["logId"]["keyId"]).hex(),
            },
        }
    )
    payload = (SIGSTORE / "bundle.txt").read_bytes()
    push_signatures(
        pusher,
        repo,
        image.digest,
        [
            (
                payload,
                {
                    "dev.cosignproject.cosign/signature": b["messageSignature"]["signature"],
                    "dev.sigstore.cosign/certificate": pem,
                    "dev.sigstore.cosign/bundle": rekor,
                },
            )
        ],
    )
    ev = _evidence(
        registry,
        f"{registry.host_port}/{repo}:v1",
        image.digest,
        trusted_root=SIGSTORE / "staging_trusted_root.json",
    )
    by_form = sorted((e.details.get("form", ""), e.code or "", e.message) for e in ev)
    assert not any(e.valid for e in ev)
    assert [(f, c) for f, c, _ in by_form] == [
        ("bundle", "cosign-digest-mismatch"),  # message signature over bundle.txt
        # (the DSSE bundle is SLSA provenance: an attestation, not a signature, skipped)
        ("legacy", "cosign-bundle-invalid"),  # SET, chain, SCT, signature ok; not a payload
    ]
    assert "a bundle for another artifact" in by_form[0][2]
    assert "not simple-signing JSON" in by_form[1][2]
    # the CLI with the identity of the real signer: still not trusted for this image
    r = run_trustcheck(
        "cosign",
        "verify",
        "--certificate-identity",
        "a@tny.town",
        "--certificate-oidc-issuer",
        "https://github.com/login/oauth",
        "--trusted-root",
        str(SIGSTORE / "staging_trusted_root.json"),
        "--tls-ca",
        str(registry.ca_cert),
        "--at",
        "2026-08-22T00:00:00Z",
        f"{registry.host_port}/{repo}:v1",
    )
    assert r.code == 1 and "NOT TRUSTED" in r.stdout


def test_key_based_signatures_need_a_rekor_entry_when_a_trusted_root_is_given(
    registry: RunningRegistry,
    pusher: OciPusher,
    keys: dict[str, tuple[CosignKeyPair, Path]],
    tmp_path: Path,
) -> None:
    """As ``cosign verify --key``: with a trusted root, the signature must be in the
    transparency log (a private deployment's Rekor here: the test's own log key added to
    the staging trusted root), unless ``--insecure-ignore-tlog``."""
    pair, pub = keys["p256"]
    rekor = CosignKeyPair.generate("p256")
    root = tmp_path / "trusted_root.json"
    root.write_bytes(
        private_trusted_root((SIGSTORE / "staging_trusted_root.json").read_bytes(), rekor)
    )
    repo = "team/tlog"
    image = pusher.push_image(repo, "v1")
    payload = simple_signing(f"{registry.host_port}/{repo}", image.digest)
    sig = pair.sign(payload)
    when = int(datetime(2026, 8, 1, tzinfo=UTC).timestamp())
    logged = rekor_bundle(rekor, payload, sig, pair.public_pem(), integrated_time=when, log_index=7)
    # the entry of another signature (same key, another payload), a SET by a key the
    # root does not list, an entry logged after --at
    other_payload = simple_signing("elsewhere", image.digest)
    other_entry = rekor_bundle(
        rekor, other_payload, pair.sign(other_payload), pair.public_pem(), integrated_time=when
    )
    rogue = rekor_bundle(
        CosignKeyPair.generate("p256"), payload, sig, pair.public_pem(), integrated_time=when
    )
    late = rekor_bundle(rekor, payload, sig, pair.public_pem(), integrated_time=when + 365 * 86400)
    ann = "dev.sigstore.cosign/bundle"
    push_signatures(
        pusher,
        repo,
        image.digest,
        [
            signature_layer(payload, sig, {ann: logged}),
            signature_layer(payload, sig),
            signature_layer(payload, sig, {ann: other_entry}),
            signature_layer(payload, sig, {ann: rogue}),
            signature_layer(payload, sig, {ann: late}),
        ],
    )
    image_ref = f"{registry.host_port}/{repo}:v1"
    ev = _evidence(registry, image_ref, image.digest, keys=[pub], trusted_root=root)
    assert [(e.valid, e.code) for e in ev] == [
        (True, None),
        (False, "cosign-tlog-invalid"),
        (False, "cosign-tlog-invalid"),
        (False, "cosign-tlog-invalid"),
        (False, "cosign-tlog-invalid"),
    ]
    assert ev[0].details["rekor_log_index"] == "7"
    assert ev[0].signed_at == datetime.fromtimestamp(when, tz=UTC)
    assert "without a Rekor entry" in ev[1].message and "--insecure-ignore-tlog" in ev[1].message
    assert "not the entry of this signature" in ev[2].message
    assert "does not verify with a Rekor key" in ev[3].message
    assert "after the validation time" in ev[4].message
    # cosign's --insecure-ignore-tlog: the key alone, and the CLI says the same
    ev = _evidence(
        registry, image_ref, image.digest, keys=[pub], trusted_root=root, ignore_tlog=True
    )
    assert all(e.valid for e in ev)
    assert ev[0].details["rekor_bundle"] == "present, not verified (--insecure-ignore-tlog)"
    base = ["cosign", "verify", "--key", str(pub), "--trusted-root", str(root), "--tls-ca",
            str(registry.ca_cert), "--at", "2026-08-22T00:00:00Z", "--json", image_ref]  # fmt: skip
    r = run_trustcheck(*base)
    doc = json.loads(r.stdout)
    assert r.code == 0 and [s["valid"] for s in doc["results"][0]["signatures"]] == [
        True, False, False, False, False,
    ]  # fmt: skip
    assert doc["trusted_root"]["source"] == f"file:{root}"
    r = run_trustcheck(*base, "--insecure-ignore-tlog")
    assert r.code == 0 and all(s["valid"] for s in json.loads(r.stdout)["results"][0]["signatures"])


def test_registry_failures_cost_only_that_image(
    registry: RunningRegistry, pusher: OciPusher, keys: dict[str, tuple[CosignKeyPair, Path]]
) -> None:
    pair, pub = keys["p256"]
    _signed(pusher, "team/ok", pair, "team/ok")
    ca = str(registry.ca_cert)
    good = f"{registry.host_port}/team/ok:v1"
    missing = f"{registry.host_port}/team/ok:nosuchtag"
    r = run_trustcheck(
        "cosign", "verify", "--key", str(pub), "--tls-ca", ca, "--json", good, missing
    )
    doc = json.loads(r.stdout)
    assert r.code == 1
    assert [x["trusted"] for x in doc["results"]] == [True, False]
    assert doc["results"][1]["error"]["code"] == "registry-tag-missing"
    # no CA for the registry: a TLS error for the image, one line, exit 1
    r = run_trustcheck("cosign", "verify", "--key", str(pub), "--retries", "0", good)
    assert r.code == 1 and "[tls-error]" in r.stdout and "Traceback" not in r.stderr
    r = run_trustcheck("cosign", "verify", "--key", str(pub), "Not/A Reference")
    assert r.code == 2 and "[invalid-reference]" in r.stderr


def test_real_keyless_image_signature_through_the_registry(
    registry: RunningRegistry, pusher: OciPusher, tmp_path: Path
) -> None:
    """A real cosign keyless signature of a GitHub release image (public-good Fulcio and
    Rekor; fixtures/sigstore/cosign-image), pushed as cosign pushed it, verified by
    ``trustcheck cosign verify`` with the production trusted root obtained through TUF.
    Only the ``.sig`` tag is read: the signature names the image digest."""
    real = SIGSTORE.parent / "cosign-image"
    tuf = SIGSTORE.parents[1] / "tuf" / "sigstore-root-signing"
    digest = "sha256:c05263d2ff654c3a94243662440913f045075d59c436e2c69e9145ec2b87a321"
    workflow = (
        "https://github.com/salrashid123/go-bazel-github-workflow/.github/workflows/"
        "release.yaml@refs/tags/v0.0.30"
    )
    (layer,) = json.loads((real / "sig-manifest.json").read_bytes())["layers"]
    push_signatures(
        pusher,
        "salrashid123/server_image",
        digest,
        [((real / "payload.json").read_bytes(), layer["annotations"])],
    )
    image = f"{registry.host_port}/salrashid123/server_image@{digest}"
    base = [
        "cosign", "verify", "--trusted-root", f"tuf:{tuf}", "--tuf-root", str(tuf / "root.json"),
        "--at", "2026-08-22T00:00:00Z", "--state-dir", str(tmp_path / "state"),
        "--tls-ca", str(registry.ca_cert), "--certificate-oidc-issuer",
        "https://token.actions.githubusercontent.com",
    ]  # fmt: skip
    r = run_trustcheck(*base, "--certificate-identity", workflow, "--json", image)
    assert r.code == 0, r
    (sig,) = json.loads(r.stdout)["results"][0]["signatures"]
    assert sig["valid"] is True and sig["identity"] == workflow
    assert sig["issuer"] == "https://token.actions.githubusercontent.com"
    assert sig["signed_at"] == "2026-02-27T18:20:46Z"
    assert sig["details"]["rekor_log_index"] == "1004096555"
    assert sig["details"]["docker_reference"] == "index.docker.io/salrashid123/server_image"
    doc = json.loads(r.stdout)
    assert doc["trusted_root"]["tuf_role"] == "targets"
    # cosign's unanchored habit: a prefix regexp is not the whole SAN
    r = run_trustcheck(
        *base, "--certificate-identity-regexp", "https://github.com/salrashid123/", "--json", image
    )
    assert r.code == 1
    (sig,) = json.loads(r.stdout)["results"][0]["signatures"]
    # not counted, and the report still says who signed
    assert sig["code"] == "cosign-identity-mismatch" and sig["valid"] is False
    assert sig["identity"] == workflow
    assert sig["issuer"] == "https://token.actions.githubusercontent.com"
    r = run_trustcheck(
        *base,
        "--certificate-identity-regexp",
        r"https://github\.com/salrashid123/go-bazel-github-workflow/\.github/workflows/.*",
        image,
    )
    assert r.code == 0 and r.stdout.startswith("TRUSTED")


def test_key_message_bundles_and_the_log_requirement(
    registry: RunningRegistry,
    pusher: OciPusher,
    keys: dict[str, tuple[CosignKeyPair, Path]],
    tmp_path: Path,
) -> None:
    """A key-based bundle with a message signature over the image digest counts on the key;
    with a trusted root, key-based bundles need their log entry (none here), unless
    --insecure-ignore-tlog."""
    pair, pub = keys["p256"]
    repo = "team/keymsg"
    image = pusher.push_image(repo, "v1")
    other = pusher.push_image(repo, "v2")
    push_bundle(pusher, repo, image, key_message_bundle(pair, image.digest))
    push_bundle(pusher, repo, image, key_message_bundle(pair, other.digest))
    push_bundle(pusher, repo, image, key_bundle(pair, image.digest))
    ref = f"{registry.host_port}/{repo}:v1"
    ev = _evidence(registry, ref, image.digest, keys=[pub])
    assert sorted((e.valid, e.code or "") for e in ev) == [
        (False, "cosign-digest-mismatch"),
        (True, ""),
        (True, ""),
    ]
    root = SIGSTORE / "staging_trusted_root.json"
    ev = _evidence(registry, ref, image.digest, keys=[pub], trusted_root=root)
    assert sorted((e.valid, e.code or "") for e in ev) == [
        (False, "cosign-digest-mismatch"),
        (False, "cosign-tlog-invalid"),
        (False, "cosign-tlog-invalid"),
    ]
    ev = _evidence(registry, ref, image.digest, keys=[pub], trusted_root=root, ignore_tlog=True)
    assert sorted(e.valid for e in ev) == [False, True, True]
