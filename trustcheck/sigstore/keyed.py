"""Key-based cosign signatures, checked with ``cryptography``.

cosign signs the simple-signing payload bytes: ECDSA with SHA-256 (ASN.1 DER
signature; P-256 by default, P-384/P-521 for some KMS keys), RSA PKCS#1 v1.5 with
SHA-256, or Ed25519 over the bytes themselves. The signature annotation is base64.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from trustcheck.errors import ErrorCode
from trustcheck.sigstore.config import CosignKey
from trustcheck.sigstore.errors import Fail

__all__ = ["MAX_SIGNATURE_B64", "decode_signature", "verify_with_keys"]

#: an RSA-8192 signature is 1 KiB; base64 of more than this is not a signature
MAX_SIGNATURE_B64 = 8192


def decode_signature(text: str, where: str) -> bytes:
    if len(text) > MAX_SIGNATURE_B64:
        raise Fail(
            ErrorCode.COSIGN_BUNDLE_INVALID,
            f"{where}: the signature annotation is {len(text)} characters, over the "
            f"{MAX_SIGNATURE_B64} cap",
        )
    try:
        sig = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Fail(
            ErrorCode.COSIGN_BUNDLE_INVALID,
            f"{where}: the signature annotation is not base64",
        ) from None
    if not sig:
        raise Fail(ErrorCode.COSIGN_BUNDLE_INVALID, f"{where}: the signature is empty")
    return sig


def _verifies(key: object, signature: bytes, data: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_with_keys(
    keys: Sequence[CosignKey], signature: bytes, data: bytes, where: str
) -> CosignKey:
    """The first of ``keys`` whose signature ``signature`` over ``data`` is; else Fail."""
    for key in keys:
        if _verifies(key.key, signature, data):
            return key
    names = ", ".join(k.identity for k in keys) or "none given"
    raise Fail(
        ErrorCode.COSIGN_SIGNATURE_INVALID,
        f"{where}: the signature does not verify with any trusted key ({names}); it was made "
        "with another key or the payload was altered",
    )
