"""cosign trust material and the simple-signing payload: what is refused, and why."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from fixtures.cosign_sign import CosignKeyPair, simple_signing
from trustcheck.errors import UsageError
from trustcheck.sigstore.config import IdentityRule, load_cosign_config, load_public_key
from trustcheck.sigstore.errors import Fail
from trustcheck.sigstore.keyed import decode_signature, verify_with_keys
from trustcheck.sigstore.simplesigning import check_payload

DIGEST = "sha256:" + "ab" * 32


def _pem(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_key_types_and_identities() -> None:
    for private in (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ed25519.Ed25519PrivateKey.generate(),
    ):
        pub = private.public_key()
        key = load_public_key(_pem(pub), "k")
        der = pub.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert key.identity == "sha256:" + hashlib.sha256(der).hexdigest()


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda: _pem(ec.generate_private_key(ec.SECP224R1()).public_key()), "curve secp224r1"),
        (
            lambda: _pem(
                rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
            ),
            "1024 bits is too weak",
        ),
        (
            lambda: ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            "holds a private key",
        ),
        (lambda: b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a PEM"),
        (lambda: b"x" * (64 * 1024 + 1), "not a PEM public key (cap"),
    ],
)
def test_unusable_keys_are_refused(make: object, why: str) -> None:
    with pytest.raises(UsageError) as info:
        load_public_key(make(), "--key k.pub")  # type: ignore[operator]
    assert info.value.code == "cosign-config-invalid" and why in info.value.message
    assert info.value.message.startswith("--key k.pub")


def test_identity_options(tmp_path: Path) -> None:
    bad = [
        {"certificate_identity": "a", "certificate_identity_regexp": "a"},
        {"certificate_oidc_issuer": "i", "certificate_oidc_issuer_regexp": "i"},
        {"certificate_identity": "a"},
        {"certificate_oidc_issuer": "i"},
        {"certificate_identity_regexp": "(", "certificate_oidc_issuer": "i"},
        {"keys": [tmp_path / "missing.pub"]},
    ]
    for kw in bad:
        with pytest.raises(UsageError) as info:
            load_cosign_config(**kw)  # type: ignore[arg-type]
        assert info.value.code == "cosign-config-invalid", kw
    cfg = load_cosign_config(
        certificate_identity_regexp=r"a@.*\.example", certificate_oidc_issuer="i"
    )
    (rule,) = cfg.identities
    assert rule.matches("a@b.example", "i")
    assert not rule.matches("a@b.example.evil", "i")  # anchored at the end
    assert not rule.matches("xa@b.example", "i")  # and at the start
    assert not rule.matches("a@b.example", "j")
    assert not IdentityRule(san="a", issuer="i").matches("a", None)


def test_payload_binding_and_shape() -> None:
    good = simple_signing("registry.example/app", DIGEST)
    ss = check_payload(good, DIGEST, "w")
    assert ss.digest == DIGEST and ss.docker_reference == "registry.example/app"
    cases = {
        simple_signing("r", "sha256:" + "cd" * 32): "cosign-digest-mismatch",
        simple_signing("r", DIGEST.upper()): "cosign-bundle-invalid",
        simple_signing("r", DIGEST, kind="atomic container signature"): "cosign-bundle-invalid",
        b'{"critical": 1}': "cosign-bundle-invalid",
        b"[]": "cosign-bundle-invalid",
        b"\xff": "cosign-bundle-invalid",
        b" " * (256 * 1024 + 1): "cosign-bundle-invalid",
        # a field written twice: parsers disagree on which one counts
        good.replace(
            b'"critical":', b'"critical":{"image":{"docker-manifest-digest":"x"}},"critical":', 1
        ): ("cosign-bundle-invalid"),
    }
    for payload, code in cases.items():
        with pytest.raises(Fail) as info:
            check_payload(payload, DIGEST, "w")
        assert info.value.code == code, payload[:80]
    doc = json.loads(good)
    doc["critical"]["image"]["docker-manifest-digest"] = "sha256:" + "cd" * 32
    with pytest.raises(Fail) as info:
        check_payload(json.dumps(doc).encode(), DIGEST, "w")
    assert "a signature for another image" in info.value.message


def test_signatures_decode_and_verify() -> None:
    pair = CosignKeyPair.generate()
    key = load_public_key(pair.public_pem(), "k")
    data = b"payload"
    import base64

    sig = decode_signature(base64.b64encode(pair.sign(data)).decode(), "w")
    assert verify_with_keys([key], sig, data, "w") is key
    for bad, why in (("!!", "not base64"), ("", "empty"), ("A" * 8193, "over the 8192 cap")):
        with pytest.raises(Fail) as info:
            decode_signature(bad, "w")
        assert why in info.value.message
    with pytest.raises(Fail) as info:
        verify_with_keys([key], sig, data + b"x", "w")
    assert info.value.code == "cosign-signature-invalid" and key.identity in info.value.message
