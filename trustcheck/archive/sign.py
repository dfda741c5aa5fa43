"""Signing an archive's manifest with an organisation key, and checking it.

``manifest.sig`` is canonical JSON::

    {"algorithm": "ecdsa-p256-sha256" | "ed25519" | "rsa-pss-sha256",
     "format": "trustcheck-archive-signature", "format_version": 1,
     "key_sha256": "<hex SHA-256 of the DER SubjectPublicKeyInfo>",
     "public_key": "<base64 DER SubjectPublicKeyInfo>",
     "signature": "<base64 signature over the exact bytes of manifest.json>"}

ECDSA signatures are DER (as ``cryptography`` and OpenSSL write them);
RSA-PSS uses SHA-256, MGF1-SHA-256 and a salt as long as the digest. All
cryptography is ``cryptography``'s; nothing here is home-made.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from trustcheck.archive.format import (
    SIGNATURE,
    canonical_json,
    invalid,
    is_version,
    parse_record,
)
from trustcheck.errors import ErrorCode, NotTrusted, UsageError

__all__ = ["ArchivePin", "Signer", "key_sha256", "load_pin", "load_signing_key", "verify_signature"]

SIG_FORMAT = "trustcheck-archive-signature"
_MIN_RSA_BITS = 2048
_MAX_KEY_FILE = 1 << 20
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


def _spki(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_sha256(key: PublicKey) -> str:
    """The pin of a key: hex SHA-256 of its DER SubjectPublicKeyInfo."""
    return hashlib.sha256(_spki(key)).hexdigest()


def _algorithm(key: PublicKey) -> str | None:
    """The signature algorithm of a supported key, else None."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ecdsa-p256-sha256" if isinstance(key.curve, ec.SECP256R1) else None
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa-pss-sha256" if key.key_size >= _MIN_RSA_BITS else None
    return None


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()[: _MAX_KEY_FILE + 1]
    except OSError as e:
        raise UsageError(
            ErrorCode.ARCHIVE_KEY_INVALID, f"cannot read {what} {path}: {e.strerror or e}"
        ) from e
    if len(data) > _MAX_KEY_FILE:
        raise UsageError(ErrorCode.ARCHIVE_KEY_INVALID, f"{what} {path} is larger than 1 MiB")
    return data


_UNSUPPORTED = "supported: ECDSA P-256, Ed25519, RSA of at least 2048 bits"


@dataclass(frozen=True, slots=True)
class Signer:
    """An organisation key that signs archive manifests."""

    key: PrivateKey

    def sign(self, manifest: bytes) -> bytes:
        """The ``manifest.sig`` bytes for ``manifest``."""
        public = self.key.public_key()
        algorithm = _algorithm(public)
        assert algorithm is not None  # load_signing_key refused the others
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            sig = self.key.sign(manifest)
        elif isinstance(self.key, ec.EllipticCurvePrivateKey):
            sig = self.key.sign(manifest, ec.ECDSA(hashes.SHA256()))
        else:
            sig = self.key.sign(manifest, _PSS, hashes.SHA256())
        return canonical_json(
            {
                "format": SIG_FORMAT,
                "format_version": 1,
                "algorithm": algorithm,
                "key_sha256": key_sha256(public),
                "public_key": base64.b64encode(_spki(public)).decode("ascii"),
                "signature": base64.b64encode(sig).decode("ascii"),
            }
        )

    @property
    def key_sha256(self) -> str:
        return key_sha256(self.key.public_key())


def load_signing_key(path: Path, passphrase: bytes | None = None) -> Signer:
    """A PEM private key file (PKCS#8 or traditional) as a :class:`Signer`."""
    data = _read_key_file(path, "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as e:  # encrypted without a passphrase, or the reverse
        raise UsageError(
            ErrorCode.ARCHIVE_KEY_INVALID,
            f"signing key {path}: {e}; set TRUSTCHECK_ARCHIVE_KEY_PASSPHRASE for an encrypted key",
        ) from e
    except (ValueError, UnsupportedAlgorithm) as e:
        raise UsageError(
            ErrorCode.ARCHIVE_KEY_INVALID,
            f"signing key {path} is not a PEM private key, or its passphrase is wrong "
            f"({str(e).splitlines()[0][:120]})",
        ) from e
    if not isinstance(key, PrivateKey) or _algorithm(key.public_key()) is None:
        raise UsageError(
            ErrorCode.ARCHIVE_KEY_INVALID, f"signing key {path}: unsupported key ({_UNSUPPORTED})"
        )
    return Signer(key)


@dataclass(frozen=True, slots=True)
class ArchivePin:
    """``--archive-pin``: the SHA-256 of the one key whose signature is accepted."""

    sha256: str
    source: str


def load_pin(text: str, what: str = "--archive-pin") -> ArchivePin:
    """``sha256:<64 hex>`` or the path of a PEM public key (or certificate) file."""
    value = text.strip()
    if value.lower().startswith("sha256:"):
        digest = value[7:].lower()
        if re.fullmatch(r"[0-9a-f]{64}", digest) is None:
            raise UsageError(
                ErrorCode.ARCHIVE_KEY_INVALID,
                f"{what} {text[:100]!r}: sha256: needs 64 hex digits",
            )
        return ArchivePin(digest, text)
    path = Path(value)
    data = _read_key_file(path, f"{what} key")
    key: object
    try:
        if b"CERTIFICATE" in data:
            from cryptography import x509

            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise UsageError(
            ErrorCode.ARCHIVE_KEY_INVALID,
            f"{what} {path} is not a PEM public key or certificate, nor sha256:<hex>",
        ) from e
    if not isinstance(key, PublicKey) or _algorithm(key) is None:
        raise UsageError("archive-key-invalid", f"{what} {path}: unsupported key ({_UNSUPPORTED})")
    return ArchivePin(key_sha256(key), str(path))


def verify_signature(where: Path | str, manifest: bytes, raw_sig: bytes) -> str:
    """Check ``manifest.sig`` over ``manifest``; the signing key's SHA-256."""
    doc = parse_record(where, SIGNATURE, raw_sig)

    def bad(why: str) -> NotTrusted:
        return NotTrusted(
            ErrorCode.ARCHIVE_SIGNATURE_INVALID,
            f"trust archive {where}: {why}; the archive was altered after it was signed, or "
            "signed wrongly. Use the original copy",
        )

    keys = {"format", "format_version", "algorithm", "key_sha256", "public_key", "signature"}
    if set(doc) != keys or doc["format"] != SIG_FORMAT or not is_version(doc["format_version"], 1):
        raise invalid(where, f"{SIGNATURE} is not a {SIG_FORMAT} version 1 document")
    if not all(isinstance(doc[k], str) for k in keys - {"format_version"}):
        raise invalid(where, f"{SIGNATURE} has a field that is not a string")
    try:
        der = base64.b64decode(doc["public_key"], validate=True)
        sig = base64.b64decode(doc["signature"], validate=True)
        public = serialization.load_der_public_key(der)
    except (binascii.Error, ValueError, UnsupportedAlgorithm) as e:
        raise bad(
            f"{SIGNATURE} holds no usable public key or signature ({type(e).__name__})"
        ) from e
    if not isinstance(public, PublicKey) or _algorithm(public) is None:
        raise bad(f"{SIGNATURE} names an unsupported key ({_UNSUPPORTED})")
    if _algorithm(public) != doc["algorithm"]:
        raise bad(f"{SIGNATURE} says {doc['algorithm'][:40]!r} for a {_algorithm(public)} key")
    if _spki(public) != der or key_sha256(public) != doc["key_sha256"]:
        raise bad(f"{SIGNATURE}: key_sha256 is not the SHA-256 of its public key")
    try:
        if isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(sig, manifest)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(sig, manifest, ec.ECDSA(hashes.SHA256()))
        else:
            public.verify(sig, manifest, _PSS, hashes.SHA256())
    except InvalidSignature:
        raise bad(
            f"the signature in {SIGNATURE} (key sha256:{doc['key_sha256']}) does not verify "
            "over manifest.json"
        ) from None
    return key_sha256(public)
