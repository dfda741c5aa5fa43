"""Keyless (Fulcio certificate) signatures against a Sigstore trusted root, offline.

Two forms:

* a **Sigstore bundle** (v0.1-v0.3): verified by sigstore-python's ``Verifier``
  (Fulcio chain at the signing time, SCT, code-signing usage, Rekor inclusion proof
  with its signed checkpoint, the signed entry timestamp when present, RFC 3161
  timestamps, the log entry's consistency with the signature, the signature), then
  bound to the digest (message digest, or the in-toto statement's subject);
* cosign's **legacy ``.sig`` layer**: certificate and Rekor bundle (signed entry
  timestamp only, no inclusion proof) as annotations. sigstore-python requires an
  inclusion proof, so trustcheck makes cosign's checks itself with the same parts:
  the SET with the trusted root's Rekor key, the entry body against the signature,
  payload hash and certificate, the chain at the integrated time, the SCT, the
  code-signing usage and the signature.

On top of both, stricter than sigstore-python: the Fulcio CA and the Rekor key used must
be within their ``validFor`` window of the trusted root at the signing time (as cosign
and sigstore-go check), and the signing time must not be after the validation time.
The signer's identity is then matched against the configured rules.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from trustcheck.errors import ErrorCode
from trustcheck.sigstore.config import IdentityRule
from trustcheck.sigstore.errors import Fail
from trustcheck.sigstore.trustroot import TrustRoot

__all__ = [
    "COSIGN_SIGN_PREDICATE",
    "MAX_BUNDLE_BYTES",
    "KeylessResult",
    "cert_identity",
    "check_identity",
    "verify_bundle",
    "verify_key_bundle",
    "verify_legacy",
    "verify_rekor_set",
]

MAX_BUNDLE_BYTES = 1024 * 1024
#: cosign (v3, --new-bundle-format) signs images with an in-toto statement of this type
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
_OID_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"
_OID_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"


@dataclass(slots=True)
class KeylessResult:
    identity: str
    issuer: str | None
    signed_at: datetime
    details: dict[str, str] = field(default_factory=dict)
    #: the DSSE in-toto predicate type, or None for a message signature
    predicate_type: str | None = None


def _der_utf8(raw: bytes) -> str | None:
    # a DER UTF8String: tag 0x0c, short or long length
    if len(raw) >= 2 and raw[0] == 0x0C:
        n = raw[1]
        if n < 0x80:
            return raw[2 : 2 + n].decode("utf-8", "replace")
        k = n & 0x7F
        size = int.from_bytes(raw[2 : 2 + k], "big")
        return raw[2 + k : 2 + k + size].decode("utf-8", "replace")
    return None


def cert_identity(cert: Any) -> tuple[str, str | None]:
    """The SAN (e-mail, URI, else otherName) and OIDC issuer of a Fulcio certificate."""
    from cryptography import x509

    san = ""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        ext = None
    if ext is not None:
        for kind in (x509.RFC822Name, x509.UniformResourceIdentifier):
            values = ext.get_values_for_type(kind)
            if values:
                san = str(values[0])
                break
        else:
            others = ext.get_values_for_type(x509.OtherName)
            if others:
                san = _der_utf8(others[0].value) or others[0].value.hex()
    issuer: str | None = None
    for ext_item in cert.extensions:
        oid = ext_item.oid.dotted_string
        if oid == _OID_ISSUER_V2:
            issuer = _der_utf8(ext_item.value.value) or issuer
            break
        if oid == _OID_ISSUER_V1 and issuer is None:
            issuer = ext_item.value.value.decode("utf-8", "replace")
    return san, issuer


def check_identity(
    rules: Sequence[IdentityRule], identity: str, issuer: str | None, where: str
) -> None:
    if not rules or any(r.matches(identity, issuer) for r in rules):
        return
    wanted = "; ".join(r.describe() for r in rules)
    raise Fail(
        ErrorCode.COSIGN_IDENTITY_MISMATCH,
        f"{where}: signed by {identity!r} from issuer {issuer!r}, but the trusted signers are: "
        f"{wanted}",
        identity=identity,
        issuer=issuer,
    )


def _classify(message: str) -> ErrorCode:
    """sigstore-python's VerificationError text -> the code of the step that failed."""
    m = message.lower()
    if any(
        w in m for w in ("certificate chain", "sct", "key usage", "extended usage", "signing cert")
    ):
        return ErrorCode.COSIGN_CERT_INVALID
    if any(
        w in m
        for w in (
            "inclusion",
            "checkpoint",
            "log entry",
            "set:",
            "merkle",
            "sources of verified time",
            "inconsistent",
            "timestamp",
            "tlog",
            "rekor",
        )
    ):
        return ErrorCode.COSIGN_TLOG_INVALID
    if "digest mismatch" in m:
        return ErrorCode.COSIGN_DIGEST_MISMATCH
    return ErrorCode.COSIGN_SIGNATURE_INVALID


class _NoPolicy:
    """Identity is matched by trustcheck after verification (its own code and message)."""

    def verify(self, cert: Any) -> None:
        return None


def _window(valid_for: Any) -> tuple[datetime | None, datetime | None]:
    if valid_for is None:
        return None, None
    start = getattr(valid_for, "start", None)
    end = getattr(valid_for, "end", None)
    return (
        start.astimezone(UTC) if isinstance(start, datetime) else None,
        end.astimezone(UTC) if isinstance(end, datetime) else None,
    )


def _inside(t: datetime, window: tuple[datetime | None, datetime | None]) -> bool:
    start, end = window
    return (start is None or start <= t) and (end is None or t <= end)


def _chain_at(root: TrustRoot, cert: Any, when: datetime, where: str) -> list[Any]:
    """The chain of ``cert`` through a Fulcio CA of the root valid at ``when``."""
    from cryptography.x509 import ExtendedKeyUsage, load_der_x509_certificate
    from cryptography.x509.verification import (
        Criticality,
        ExtensionPolicy,
        PolicyBuilder,
        Store,
        VerificationError,
    )

    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    errors: list[str] = []
    for ca in root.root._inner.certificate_authorities:
        if not _inside(when, _window(ca.valid_for)):
            continue
        certs = [load_der_x509_certificate(c.raw_bytes) for c in ca.cert_chain.certificates]
        if not certs:
            continue
        verifier = (
            PolicyBuilder()
            .store(Store(certs))
            .time(when)
            .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
            .build_client_verifier()
        )
        try:
            return list(verifier.verify(cert, []).chain[1:])
        except (VerificationError, ValueError) as e:
            errors.append(str(e)[:120])
    raise Fail(
        ErrorCode.COSIGN_CERT_INVALID,
        f"{where}: the signing certificate (valid {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}"
        f" to {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}) does not chain to a Fulcio CA of "
        f"the trusted root that was valid at the signing time "
        f"{when:%Y-%m-%dT%H:%M:%SZ}"
        + (f" ({errors[0]})" if errors else " (no CA of the trusted root covers that time)"),
    )


def _tlog_key_window(root: TrustRoot, log_id: bytes, when: datetime, where: str) -> None:
    for tlog in root.root._inner.tlogs:
        if bytes(tlog.log_id.key_id) == log_id:
            if not _inside(when, _window(tlog.public_key.valid_for)):
                raise Fail(
                    ErrorCode.COSIGN_TLOG_INVALID,
                    f"{where}: the Rekor key {log_id.hex()[:16]}... was not valid at the "
                    f"integrated time {when:%Y-%m-%dT%H:%M:%SZ} per the trusted root",
                )
            return
    raise Fail(
        ErrorCode.COSIGN_TLOG_INVALID,
        f"{where}: the log entry names the Rekor log {log_id.hex()[:16]}..., which is not in "
        "the trusted root",
    )


def _not_after(signed_at: datetime, at: datetime, where: str) -> None:
    if signed_at > at:
        raise Fail(
            ErrorCode.COSIGN_CERT_INVALID,
            f"{where}: signed at {signed_at:%Y-%m-%dT%H:%M:%SZ}, after the validation time "
            f"{at:%Y-%m-%dT%H:%M:%SZ}; use a later --at",
        )


def _statement_subjects(payload: bytes, where: str) -> tuple[str | None, set[str]]:
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise Fail(
            ErrorCode.COSIGN_BUNDLE_INVALID, f"{where}: the DSSE payload is not JSON"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("subject"), list):
        raise Fail(
            ErrorCode.COSIGN_BUNDLE_INVALID,
            f"{where}: the DSSE payload is not an in-toto statement (no subject list)",
        )
    subjects: set[str] = set()
    for s in doc["subject"]:
        d = s.get("digest") if isinstance(s, dict) else None
        if isinstance(d, dict) and isinstance(d.get("sha256"), str):
            subjects.add("sha256:" + d["sha256"].lower())
    pt = doc.get("predicateType")
    return (pt if isinstance(pt, str) else None), subjects


def _quiet_sigstore() -> None:
    """sigstore-python logs warnings (a root CA inside a bundle...) through logging;
    without a handler Python prints them bare on stderr. What matters reaches the user
    as the signature's code and message; the rest stays out of the CLI's output."""
    import logging

    log = logging.getLogger("sigstore")
    if not any(isinstance(h, logging.NullHandler) for h in log.handlers):
        log.addHandler(logging.NullHandler())


def verify_bundle(
    data: bytes,
    digest: str,
    root: TrustRoot,
    at: datetime,
    rules: Sequence[IdentityRule] = (),
    *,
    where: str = "bundle",
) -> KeylessResult:
    """Verify the Sigstore bundle ``data`` for the artifact ``digest`` (``sha256:<hex>``).

    For a message-signature bundle, ``digest`` is what was signed (a file's SHA-256, or
    an image's manifest digest); for a DSSE bundle, an in-toto statement subject.
    """
    from sigstore.errors import Error as SigstoreError
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle, InvalidBundle

    _quiet_sigstore()
    from sigstore.verify import Verifier
    from sigstore_models.common.v1 import HashAlgorithm

    if len(data) > MAX_BUNDLE_BYTES:
        raise Fail(
            ErrorCode.COSIGN_BUNDLE_INVALID,
            f"{where} is {len(data)} bytes, over the {MAX_BUNDLE_BYTES}-byte cap",
        )
    algo, _, hex_part = digest.partition(":")
    if algo != "sha256" or len(hex_part) != 64:
        raise Fail(ErrorCode.COSIGN_BUNDLE_INVALID, f"{where}: only sha256 digests are supported")
    try:
        bundle = Bundle.from_json(data)
    except InvalidBundle as e:
        lines = [x.strip() for x in str(e).splitlines() if x.strip()] or ["invalid bundle"]
        text = lines[0][:160]
        if "validation error" in text and len(lines) > 1:
            text += f" ({lines[1][:100]}: {lines[2][:80] if len(lines) > 2 else ''})"
        full = " ".join(lines[:3]).lower()
        code = (
            ErrorCode.COSIGN_TLOG_INVALID
            if any(w in full for w in ("inclusion", "log entry", "checkpoint", "tlogentries"))
            else ErrorCode.COSIGN_BUNDLE_INVALID
        )
        raise Fail(code, f"{where}: {text}") from None
    except (SigstoreError, ValueError, TypeError, KeyError) as e:
        text = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise Fail(
            ErrorCode.COSIGN_BUNDLE_INVALID, f"{where}: not a Sigstore bundle ({text})"
        ) from None
    envelope = bundle._dsse_envelope
    msg = bundle._inner.message_signature
    if envelope is None and msg is not None and msg.message_digest is not None:
        signed = bytes(msg.message_digest.digest).hex()
        if signed != hex_part:
            raise Fail(
                ErrorCode.COSIGN_DIGEST_MISMATCH,
                f"{where} signs sha256:{signed}, not {digest}: a bundle for another artifact",
            )
    verifier = Verifier(trusted_root=root.root)
    predicate: str | None = None
    try:
        if envelope is not None:
            ptype, payload = verifier.verify_dsse(bundle, _NoPolicy())
            if ptype != "application/vnd.in-toto+json":
                raise Fail(
                    ErrorCode.COSIGN_BUNDLE_INVALID,
                    f"{where}: the DSSE payload type is {ptype[:80]!r}, not an in-toto statement",
                )
            predicate, subjects = _statement_subjects(payload, where)
            if digest not in subjects:
                raise Fail(
                    ErrorCode.COSIGN_DIGEST_MISMATCH,
                    f"{where}: the statement's subjects ({', '.join(sorted(subjects))[:200]}) do "
                    f"not include {digest}: a bundle for another artifact",
                )
        else:
            hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(hex_part))
            verifier.verify_artifact(hashed, bundle, _NoPolicy())
    except Fail:
        raise
    except SigstoreError as e:
        text = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise Fail(_classify(text), f"{where}: {text}") from None
    cert = bundle.signing_certificate
    entry = bundle.log_entry._inner
    signed_at = _signing_time(bundle)
    _chain_at(root, cert, signed_at, where)
    _tlog_key_window(root, bytes(entry.log_id.key_id), signed_at, where)
    _not_after(signed_at, at, where)
    identity, issuer = cert_identity(cert)
    check_identity(rules, identity, issuer, where)
    details = {
        "form": "bundle",
        "bundle_media_type": str(bundle._inner.media_type),
        "rekor_log_index": str(entry.log_index),
        "rekor_entry": f"{entry.kind_version.kind}/{entry.kind_version.version}",
        "certificate_not_after": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "trusted_root": root.source,
    }
    if predicate is not None:
        details["predicate_type"] = predicate
    return KeylessResult(identity, issuer, signed_at, details, predicate)


def _signing_time(bundle: Any) -> datetime:
    """The verified signing time: Rekor's integrated time, else the first TSA time."""
    entry = bundle.log_entry._inner
    if entry.integrated_time:
        return datetime.fromtimestamp(int(entry.integrated_time), tz=UTC)
    tvd = bundle.verification_material.timestamp_verification_data
    if tvd is not None and tvd.rfc3161_timestamps:
        t: datetime = tvd.rfc3161_timestamps[0].tst_info.gen_time
        return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    raise Fail(ErrorCode.COSIGN_TLOG_INVALID, "the bundle proves no signing time")


def _b64(text: object, what: str, where: str) -> bytes:
    if not isinstance(text, str):
        raise Fail(ErrorCode.COSIGN_BUNDLE_INVALID, f"{where}: {what} is missing")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Fail(ErrorCode.COSIGN_BUNDLE_INVALID, f"{where}: {what} is not base64") from None


def _logged_key_der(pem: bytes) -> bytes:
    """The DER of the certificate, or of the SubjectPublicKeyInfo, a log entry names."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    except ValueError:
        pass
    try:
        return serialization.load_pem_public_key(pem).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, TypeError):
        return b""


def verify_rekor_set(
    rekor_bundle: bytes,
    payload: bytes,
    signature: bytes,
    signer_der: bytes,
    root: TrustRoot,
    *,
    where: str = "signature",
) -> tuple[datetime, int]:
    """cosign's Rekor bundle annotation (``dev.sigstore.cosign/bundle``): the signed entry
    timestamp verifies with a Rekor key of ``root`` valid at the integrated time, and the
    entry (``hashedrekord`` 0.0.1) is this signature's: the SHA-256 of ``payload``,
    ``signature``, and ``signer_der`` (the certificate's DER, or the public key's DER
    SubjectPublicKeyInfo for key-based signatures). Returns the integrated time and the
    log index."""
    import rfc8785
    from sigstore._internal.trust import KeyringPurpose
    from sigstore._utils import KeyID
    from sigstore.errors import Error as SigstoreError

    try:
        rb = json.loads(rekor_bundle)
        set_b64 = rb["SignedEntryTimestamp"]
        p = rb["Payload"]
        body_b64, integrated, log_index, log_id_hex = (
            p["body"],
            p["integratedTime"],
            p["logIndex"],
            p["logID"],
        )
        if not (
            isinstance(integrated, int)
            and isinstance(log_index, int)
            and isinstance(log_id_hex, str)
            and isinstance(body_b64, str)
        ):
            raise TypeError("wrong types")
        log_id = bytes.fromhex(log_id_hex)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise Fail(
            ErrorCode.COSIGN_TLOG_INVALID,
            f"{where}: the Rekor bundle annotation is not {{SignedEntryTimestamp, Payload: "
            "{body, integratedTime, logIndex, logID}}",
        ) from None
    set_sig = _b64(set_b64, "the signed entry timestamp", where)
    canonical = rfc8785.dumps(
        {"body": body_b64, "integratedTime": integrated, "logID": log_id_hex, "logIndex": log_index}
    )
    try:
        root.root.rekor_keyring(KeyringPurpose.VERIFY).verify(
            key_id=KeyID(log_id), signature=set_sig, data=canonical
        )
    except SigstoreError as e:
        raise Fail(
            ErrorCode.COSIGN_TLOG_INVALID,
            f"{where}: the signed entry timestamp does not verify with a Rekor key of the "
            f"trusted root ({str(e)[:100]})",
        ) from None
    signed_at = datetime.fromtimestamp(integrated, tz=UTC)
    _tlog_key_window(root, log_id, signed_at, where)
    try:
        body = json.loads(_b64(body_b64, "the entry body", where))
        kind = (body["kind"], body["apiVersion"])
        spec = body["spec"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise Fail(
            ErrorCode.COSIGN_TLOG_INVALID, f"{where}: the log entry body is not JSON"
        ) from None
    if kind != ("hashedrekord", "0.0.1"):
        raise Fail(
            ErrorCode.COSIGN_TLOG_INVALID,
            f"{where}: the log entry is {kind[0]}/{kind[1]}, not hashedrekord/0.0.1",
        )
    try:
        logged_hash = spec["data"]["hash"]
        logged_sig = _b64(spec["signature"]["content"], "the logged signature", where)
        logged_key = _b64(spec["signature"]["publicKey"]["content"], "the logged key", where)
    except (KeyError, TypeError):
        raise Fail(
            ErrorCode.COSIGN_TLOG_INVALID, f"{where}: the log entry body lacks data or signature"
        ) from None
    if (
        not isinstance(logged_hash, dict)
        or logged_hash.get("algorithm") != "sha256"
        or logged_hash.get("value") != hashlib.sha256(payload).hexdigest()
        or logged_sig != signature
        or _logged_key_der(logged_key) != signer_der
    ):
        raise Fail(
            ErrorCode.COSIGN_TLOG_INVALID,
            f"{where}: the Rekor entry (log index {log_index}) is not the entry of this "
            "signature (payload hash, signature or signer differ)",
        )
    return signed_at, log_index


def verify_legacy(
    payload: bytes,
    signature: bytes,
    cert_pem: bytes,
    rekor_bundle: bytes | None,
    root: TrustRoot,
    at: datetime,
    rules: Sequence[IdentityRule] = (),
    *,
    where: str = "signature",
) -> KeylessResult:
    """cosign's legacy keyless signature: ``signature`` over ``payload`` by the Fulcio
    certificate ``cert_pem``, logged in Rekor as ``rekor_bundle`` (the
    ``dev.sigstore.cosign/bundle`` annotation: SET and the entry)."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from sigstore._internal.sct import verify_sct
    from sigstore._internal.trust import KeyringPurpose
    from sigstore.errors import Error as SigstoreError

    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise Fail(
            ErrorCode.COSIGN_BUNDLE_INVALID,
            f"{where}: the dev.sigstore.cosign/certificate annotation is not a PEM certificate",
        ) from None
    if rekor_bundle is None:
        raise Fail(
            ErrorCode.COSIGN_TLOG_INVALID,
            f"{where}: a keyless signature without a Rekor bundle (dev.sigstore.cosign/bundle): "
            "it was never shown to be in the transparency log; sign again with the log on",
        )
    signed_at, log_index = verify_rekor_set(
        rekor_bundle,
        payload,
        signature,
        cert.public_bytes(serialization.Encoding.DER),
        root,
        where=where,
    )
    chain = _chain_at(root, cert, signed_at, where)
    try:
        verify_sct(cert, chain, root.root.ct_keyring(KeyringPurpose.VERIFY))
    except SigstoreError as e:
        raise Fail(
            ErrorCode.COSIGN_CERT_INVALID,
            f"{where}: the certificate's SCT does not verify with a CT log of the trusted root "
            f"({str(e)[:100]})",
        ) from None
    try:
        ku_ok = cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        code_signing = x509.oid.ExtendedKeyUsageOID.CODE_SIGNING in eku
    except x509.ExtensionNotFound:
        ku_ok = code_signing = False
    if not (ku_ok and code_signing):
        raise Fail(
            ErrorCode.COSIGN_CERT_INVALID,
            f"{where}: the certificate is not for code signing (key usage / extended key usage)",
        )
    key = cert.public_key()
    try:
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise InvalidSignature
        key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Fail(
            ErrorCode.COSIGN_SIGNATURE_INVALID,
            f"{where}: the signature does not verify with the certificate's key",
        ) from None
    _not_after(signed_at, at, where)
    identity, issuer = cert_identity(cert)
    check_identity(rules, identity, issuer, where)
    return KeylessResult(
        identity,
        issuer,
        signed_at,
        {
            "form": "legacy",
            "rekor_log_index": str(log_index),
            "rekor_entry": "hashedrekord/0.0.1 (signed entry timestamp)",
            "certificate_not_after": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "trusted_root": root.source,
        },
    )


def verify_key_bundle(
    data: bytes,
    digest: str,
    keys: Sequence[Any],
    root: TrustRoot | None,
    at: datetime,
    *,
    ignore_tlog: bool = False,
    where: str = "bundle",
) -> tuple[Any, datetime | None, dict[str, str]]:
    """A Sigstore bundle signed with a key (``verificationMaterial.publicKey``) over the
    artifact ``digest`` (a message signature): the signature with one of ``keys``
    (:class:`~trustcheck.sigstore.config.CosignKey`); with a trusted root (and not
    ``ignore_tlog``), its transparency log entry: the inclusion proof and signed
    checkpoint, the SET when present, with a Rekor key of the root valid at the
    integrated time, and the entry must be this signature's (artifact hash, signature,
    key). Returns the key, the integrated time (None without a log check) and details.
    """
    from cryptography.hazmat.primitives import serialization

    if len(data) > MAX_BUNDLE_BYTES:
        raise Fail(
            ErrorCode.COSIGN_BUNDLE_INVALID,
            f"{where} is {len(data)} bytes, over the {MAX_BUNDLE_BYTES}-byte cap",
        )
    try:
        doc = json.loads(data)
        msg = doc["messageSignature"]
        signature = base64.b64decode(msg["signature"], validate=True)
        signed = msg.get("messageDigest")
        entries = doc["verificationMaterial"].get("tlogEntries") or []
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise Fail(
            ErrorCode.COSIGN_BUNDLE_INVALID,
            f"{where}: not a key-based Sigstore bundle with a message signature",
        ) from None
    hex_part = digest.partition(":")[2]
    if isinstance(signed, dict):
        try:
            named = base64.b64decode(signed.get("digest", ""), validate=True).hex()
        except (ValueError, binascii.Error):
            named = ""
        if named != hex_part:
            raise Fail(
                ErrorCode.COSIGN_DIGEST_MISMATCH,
                f"{where} signs sha256:{named[:64]}, not {digest}: a bundle for another artifact",
            )
    # cosign and sigstore sign the SHA-256 of the artifact: verify over the prehash
    if not keys:
        raise Fail(
            ErrorCode.COSIGN_SIGNATURE_INVALID,
            f"{where}: a key-based bundle and no --key to verify it with",
        )
    key = _verify_prehashed(keys, signature, bytes.fromhex(hex_part), where)
    details = {"form": "bundle", "key": key.source.removeprefix("--key ")}
    if root is None or ignore_tlog:
        if entries:
            details["rekor_entry"] = "present, not verified" + (
                " (--insecure-ignore-tlog)" if root is not None else " (no trusted root)"
            )
        return key, None, details
    if len(entries) != 1:
        raise Fail(
            ErrorCode.COSIGN_TLOG_INVALID,
            f"{where}: {len(entries)} transparency log entries; one is needed (sign with the "
            "log on, or accept it without: --insecure-ignore-tlog)",
        )
    from sigstore._internal.trust import KeyringPurpose
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import TransparencyLogEntry
    from sigstore_models.rekor.v1 import TransparencyLogEntry as _Entry

    try:
        entry = TransparencyLogEntry(_Entry.from_json(json.dumps(entries[0])))
        entry._verify(root.root.rekor_keyring(KeyringPurpose.VERIFY))
    except (SigstoreError, ValueError, TypeError) as e:
        text = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise Fail(ErrorCode.COSIGN_TLOG_INVALID, f"{where}: invalid log entry: {text}") from None
    inner = entry._inner
    if not inner.integrated_time or not inner.inclusion_promise:
        raise Fail(
            ErrorCode.COSIGN_TLOG_INVALID,
            f"{where}: the log entry proves no signing time (no signed entry timestamp)",
        )
    signed_at = datetime.fromtimestamp(int(inner.integrated_time), tz=UTC)
    _tlog_key_window(root, bytes(inner.log_id.key_id), signed_at, where)
    _not_after(signed_at, at, where)
    der = key.key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        body = json.loads(bytes(inner.canonicalized_body))
        spec = body["spec"]
        ok = (
            (body["kind"], body["apiVersion"]) == ("hashedrekord", "0.0.1")
            and spec["data"]["hash"] == {"algorithm": "sha256", "value": hex_part}
            and base64.b64decode(spec["signature"]["content"]) == signature
            and _logged_key_der(base64.b64decode(spec["signature"]["publicKey"]["content"])) == der
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        ok = False
    if not ok:
        raise Fail(
            ErrorCode.COSIGN_TLOG_INVALID,
            f"{where}: the Rekor entry (log index {inner.log_index}) is not the entry of this "
            "signature (artifact hash, signature or key differ)",
        )
    details["rekor_log_index"] = str(inner.log_index)
    return key, signed_at, details


def _verify_prehashed(keys: Sequence[Any], signature: bytes, digest: bytes, where: str) -> Any:
    """The key of ``keys`` that signed the SHA-256 ``digest`` (ECDSA/RSA over the
    prehash); Ed25519 signs the message itself and cannot be checked from a digest."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

    for key in keys:
        k = key.key
        try:
            if isinstance(k, ec.EllipticCurvePublicKey):
                k.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            elif isinstance(k, rsa.RSAPublicKey):
                k.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
            else:
                continue
        except (InvalidSignature, ValueError):
            continue
        return key
    names = ", ".join(k.identity for k in keys) or "none given"
    raise Fail(
        ErrorCode.COSIGN_SIGNATURE_INVALID,
        f"{where}: the signature does not verify with any trusted key ({names}); it was made "
        "with another key or the artifact differs",
    )
