"""The Notary Project's own envelopes and certificates (fixtures/notation, from
notation-go) verified with their expected outcomes (fixtures/notation/README.md)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from fixtures.notation_sign import write_notation_config
from trustcheck.notation import Target, load_notation_config, verify_envelope
from trustcheck.notation.config import NotationConfig

DATA = Path(__file__).resolve().parents[2] / "fixtures" / "notation" / "notation-go"
JWS = "application/jose+json"
COSE = "application/cose"
MOCK = Target(
    "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e",
    "application/vnd.docker.distribution.manifest.v2+json",
    528,
)
REPO = "registry.acme-rockets.io/software/net-monitor"
NOTARY = "x509.subject: C=US, ST=WA, O=Notary"


def _config(tmp: Path, store_type: str, pems: list[bytes], **sv: object) -> NotationConfig:
    policy = {
        "name": "conformance",
        "registryScopes": ["*"],
        "signatureVerification": {"level": "strict", **sv},
        "trustStores": [f"{store_type}:notary"],
        "trustedIdentities": [NOTARY],
    }
    folder = write_notation_config(tmp, [policy], {f"{store_type}:notary": pems})
    return load_notation_config(folder / "trustpolicy.json", folder / "truststore")


def _root() -> bytes:
    return (DATA / "NotationTestRoot.pem").read_bytes()


def _alpine_cert_pem() -> bytes:
    env = json.loads((DATA / "jws_signature.sig").read_bytes())
    der = base64.b64decode(env["header"]["x5c"][0])
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)


AT = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "store", "code"),
    [
        ("ca_valid_sig_env.json", "ca", None),
        ("ca_invalid_sig_env.json", "ca", "notation-envelope-invalid"),
        ("ca_expired_sig_env.json", "ca", "notation-signature-expired"),
        ("sa_valid_sig_env.json", "signingAuthority", None),
        ("ca_plugin_sig_env.json", "ca", "notation-critical-header"),
    ],
)
def test_notation_go_mock_envelopes(
    tmp_path: Path, name: str, store: str, code: str | None
) -> None:
    config = _config(tmp_path, store, [_root()])
    ev = verify_envelope(
        (DATA / name).read_bytes(),
        JWS,
        MOCK.digest,
        config=config,
        repository=REPO,
        at=AT,
        target=MOCK,
    )
    assert ev.code == code, ev.message
    assert ev.valid is (code is None)
    if code is None:
        assert ev.issuer == f"{store}:notary"
        assert ev.identity == "C=US, ST=WA, L=Seattle, O=Notary, CN=Notation Test Root"
        assert ev.signed_at == datetime(2020, 11, 9, 7, tzinfo=UTC)


def test_the_expired_mock_is_valid_before_its_expiry(tmp_path: Path) -> None:
    config = _config(tmp_path, "ca", [_root()])
    data = (DATA / "ca_expired_sig_env.json").read_bytes()
    kwargs = {"config": config, "repository": REPO, "target": MOCK}
    before = verify_envelope(
        data, JWS, MOCK.digest, at=datetime(2022, 7, 29, 12, tzinfo=UTC), **kwargs
    )  # type: ignore[arg-type]
    assert before.valid, before.message
    # a signingAuthority envelope needs a signingAuthority store: a ca store is not one
    sa = verify_envelope(
        (DATA / "sa_valid_sig_env.json").read_bytes(), JWS, MOCK.digest, at=AT, **kwargs
    )  # type: ignore[arg-type]
    assert sa.code == "notation-untrusted-chain" and "signingAuthority" in sa.message


@pytest.mark.parametrize(
    ("name", "media_type"), [("jws_signature.sig", JWS), ("cose_signature.sig", COSE)]
)
def test_signatures_notation_made_over_a_real_manifest(
    tmp_path: Path, name: str, media_type: str
) -> None:
    manifest = (DATA / "alpine-manifest.json").read_bytes()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    assert digest == "sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0"
    target = Target(digest, "application/vnd.oci.image.manifest.v1+json", len(manifest))
    envelope = (DATA / name).read_bytes()
    good = _config(tmp_path / "good", "ca", [_alpine_cert_pem()])
    ev = verify_envelope(
        envelope,
        media_type,
        digest,
        config=good,
        repository="docker.io/library/alpine",
        at=AT,
        target=target,
    )
    assert ev.valid, ev.message
    assert ev.identity == "C=US, ST=WA, L=Seattle, O=Notary, CN=alpine"
    other = _config(tmp_path / "other", "ca", [_root()])
    ev = verify_envelope(
        envelope,
        media_type,
        digest,
        config=other,
        repository="docker.io/library/alpine",
        at=AT,
        target=target,
    )
    assert ev.code == "notation-untrusted-chain"
    # another image's digest: the payload does not name it
    wrong = "sha256:" + "1" * 64
    ev = verify_envelope(
        envelope, media_type, wrong, config=good, repository="docker.io/library/alpine", at=AT
    )
    assert ev.code == "notation-subject-mismatch"


SPEC = Path(__file__).resolve().parents[2] / "fixtures" / "notation" / "spec"


@pytest.mark.parametrize(
    "name",
    ["signature-manifest.json", "signature-manifest-legacy.json", "jws-signature-manifest.json"],
)
def test_the_specifications_signature_manifests(name: str) -> None:
    """The signature manifests the specification shows (both forms) are read as it says."""
    from trustcheck.errors import NotTrusted
    from trustcheck.notation.verify import signature_layer

    body = (SPEC / name).read_bytes()
    subject = "sha256:73c803930ea3ba1e54bc25c2bdc53edd0284c62ed651fe7b00369da519a3c333"
    layer = signature_layer(body, subject, name)
    assert layer == {
        "mediaType": JWS,
        "digest": "sha256:9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0",
        "size": 32654,
    }
    with pytest.raises(NotTrusted) as e:
        signature_layer(body, "sha256:" + "0" * 64, name)
    assert e.value.code == "oci-invalid" and "subject" in e.value.message
    doc = json.loads(body)
    for change, word in (
        (lambda d: d["layers"].append(d["layers"][0]), "exactly one layer"),
        (lambda d: d.update(artifactType="application/x-other"), "artifactType"),
        (lambda d: d.update(mediaType="application/vnd.oci.image.index.v1+json"), "mediaType"),
    ):
        bad = json.loads(json.dumps(doc))
        change(bad)
        with pytest.raises(NotTrusted) as e:
            signature_layer(json.dumps(bad).encode(), subject, name)
        assert e.value.code == "oci-invalid" and word in e.value.message
