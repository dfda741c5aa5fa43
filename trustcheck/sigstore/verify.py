"""cosign signatures of one image digest, found in its registry and verified.

Discovery (through :class:`trustcheck.remote.oci.OciRegistry`):

* cosign's tag ``sha256-<hex>.sig`` in the image's repository: an OCI manifest whose
  layers are simple-signing payloads, each with a ``dev.cosignproject.cosign/signature``
  annotation, and for keyless signing ``dev.sigstore.cosign/certificate`` (+ ``chain``)
  and ``dev.sigstore.cosign/bundle`` (Rekor signed entry timestamp);
* Sigstore bundle referrers (artifactType ``application/vnd.dev.sigstore.bundle.v0.3+json``,
  cosign's ``--new-bundle-format``): the bundle is the manifest's first layer. DSSE
  bundles whose in-toto predicate is not cosign's signing predicate are attestations,
  not signatures, and are skipped.

One :class:`~trustcheck.signatures.evidence.Evidence` per signature examined.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from trustcheck.errors import ErrorCode, TrustcheckError
from trustcheck.signatures.evidence import Evidence
from trustcheck.sigstore.config import CosignConfig, CosignKey
from trustcheck.sigstore.errors import Fail
from trustcheck.sigstore.keyed import decode_signature, verify_with_keys
from trustcheck.sigstore.simplesigning import MAX_PAYLOAD_BYTES, check_payload

if TYPE_CHECKING:
    from trustcheck.core.reference import ImageRef
    from trustcheck.remote.oci import OciRegistry

__all__ = [
    "ANN_BUNDLE",
    "ANN_CERTIFICATE",
    "ANN_CHAIN",
    "ANN_SIGNATURE",
    "BUNDLE_ARTIFACT_TYPE",
    "SIMPLESIGNING_MEDIA_TYPE",
    "cosign_evidence",
    "signature_tag",
]

SIMPLESIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
ANN_SIGNATURE = "dev.cosignproject.cosign/signature"
ANN_CERTIFICATE = "dev.sigstore.cosign/certificate"
ANN_CHAIN = "dev.sigstore.cosign/chain"
ANN_BUNDLE = "dev.sigstore.cosign/bundle"
BUNDLE_ARTIFACT_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
_BUNDLE_MEDIA_TYPES = (BUNDLE_ARTIFACT_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3")
#: a .sig manifest with more layers than this is cut (the excess is reported)
MAX_SIG_MANIFEST_BYTES = 1024 * 1024
MAX_ANNOTATION_BYTES = 64 * 1024


def signature_tag(digest: str) -> str:
    """cosign's legacy signature tag for ``digest``: ``sha256-<hex>.sig``."""
    algo, _, hex_part = digest.partition(":")
    return f"{algo}-{hex_part}.sig"


def _json_object(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise Fail(ErrorCode.COSIGN_BUNDLE_INVALID, f"{where} is not JSON") from None
    if not isinstance(doc, dict):
        raise Fail(ErrorCode.COSIGN_BUNDLE_INVALID, f"{where} is not a JSON object")
    return doc


def _layers(manifest: dict[str, Any], where: str) -> list[dict[str, Any]]:
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not all(isinstance(x, dict) for x in layers):
        raise Fail(ErrorCode.COSIGN_BUNDLE_INVALID, f"{where} has no layers list")
    return layers


def _annotations(layer: Mapping[str, Any]) -> dict[str, str]:
    raw = layer.get("annotations")
    if not isinstance(raw, dict):
        return {}
    out: dict[str, str] = {}
    for k, v in raw.items():
        if isinstance(k, str) and isinstance(v, str):
            if len(v) > MAX_ANNOTATION_BYTES:
                raise Fail(
                    ErrorCode.COSIGN_BUNDLE_INVALID,
                    f"the annotation {k[:60]} is {len(v)} bytes, over the "
                    f"{MAX_ANNOTATION_BYTES}-byte cap",
                )
            out[k] = v
    return out


class _Collector:
    def __init__(self, ref: ImageRef, digest: str, config: CosignConfig, at: datetime) -> None:
        self.ref = ref
        self.digest = digest
        self.config = config
        self.at = at
        self.out: list[Evidence] = []

    def full(self) -> bool:
        return len(self.out) >= self.config.max_signatures

    def bad(
        self,
        source: str,
        code: str,
        message: str,
        identity: str = "",
        details: Mapping[str, str] | None = None,
        issuer: str | None = None,
    ) -> None:
        self.out.append(
            Evidence(
                kind="cosign",
                digest=self.digest,
                valid=False,
                identity=identity,
                issuer=issuer,
                source=source,
                code=str(code),
                message=message,
                details=dict(details or {}),
            )
        )

    def good(
        self,
        source: str,
        identity: str,
        message: str,
        *,
        issuer: str | None = None,
        signed_at: datetime | None = None,
        details: Mapping[str, str] | None = None,
    ) -> None:
        self.out.append(
            Evidence(
                kind="cosign",
                digest=self.digest,
                valid=True,
                identity=identity,
                issuer=issuer,
                signed_at=signed_at,
                source=source,
                message=message,
                details=dict(details or {}),
            )
        )


def _key_name(key: CosignKey) -> str:
    return key.source.removeprefix("--key ")


def _keyed(keys: tuple[CosignKey, ...], sig: bytes, payload: bytes, where: str) -> CosignKey:
    if not keys:
        raise Fail(
            ErrorCode.COSIGN_SIGNATURE_INVALID,
            f"{where}: a key-based signature and no --key to verify it with",
        )
    return verify_with_keys(keys, sig, payload, where)


def _legacy_layer(c: _Collector, registry: OciRegistry, layer: dict[str, Any], source: str) -> None:
    from trustcheck.sigstore.keyless import verify_legacy

    ann = _annotations(layer)
    media = layer.get("mediaType")
    if media != SIMPLESIGNING_MEDIA_TYPE:
        raise Fail(
            ErrorCode.COSIGN_BUNDLE_INVALID,
            f"{source}: layer media type {str(media)[:80]!r} is not {SIMPLESIGNING_MEDIA_TYPE}",
        )
    sig_text = ann.get(ANN_SIGNATURE)
    if sig_text is None:
        raise Fail(ErrorCode.COSIGN_BUNDLE_INVALID, f"{source}: no {ANN_SIGNATURE} annotation")
    sig = decode_signature(sig_text, source)
    ldigest = layer.get("digest")
    if not isinstance(ldigest, str):
        raise Fail(ErrorCode.COSIGN_BUNDLE_INVALID, f"{source}: the layer has no digest")
    size = layer.get("size")
    if isinstance(size, int) and size > MAX_PAYLOAD_BYTES:
        raise Fail(
            ErrorCode.COSIGN_BUNDLE_INVALID,
            f"{source}: the payload is {size} bytes, over the {MAX_PAYLOAD_BYTES}-byte cap",
        )
    payload = registry.blob(c.ref, ldigest, max_bytes=MAX_PAYLOAD_BYTES)
    cert_pem = ann.get(ANN_CERTIFICATE)
    if cert_pem is not None and c.config.trusted_root is not None:
        bundle = ann.get(ANN_BUNDLE)
        # the signature is checked over exactly these bytes; then they must name the digest
        result = verify_legacy(
            payload,
            sig,
            cert_pem.encode(),
            bundle.encode() if bundle is not None else None,
            c.config.trusted_root,
            c.at,
            c.config.identities,
            where=source,
        )
        ss = check_payload(payload, c.digest, source)
        details = dict(result.details)
        if ss.docker_reference is not None:
            details["docker_reference"] = ss.docker_reference
        c.good(
            source,
            result.identity,
            f"keyless signature by {result.identity} ({result.issuer}), logged in Rekor at "
            f"{result.signed_at:%Y-%m-%dT%H:%M:%SZ}",
            issuer=result.issuer,
            signed_at=result.signed_at,
            details=details,
        )
        return
    if cert_pem is not None and not c.config.keys:
        raise Fail(
            ErrorCode.COSIGN_CERT_INVALID,
            f"{source}: a keyless signature and no trusted root to verify its certificate "
            "(--trusted-root)",
        )
    key = _keyed(c.config.keys, sig, payload, source)
    ss = check_payload(payload, c.digest, source)
    details = {"form": "legacy", "key": _key_name(key)}
    if ss.docker_reference is not None:
        details["docker_reference"] = ss.docker_reference
    signed_at = None
    bundle = ann.get(ANN_BUNDLE)
    root = c.config.trusted_root
    if root is not None and not c.config.ignore_tlog:
        # as cosign verify --key: the signature must be in the transparency log
        from cryptography.hazmat.primitives import serialization

        from trustcheck.sigstore.keyless import verify_rekor_set

        if bundle is None:
            raise Fail(
                ErrorCode.COSIGN_TLOG_INVALID,
                f"{source}: a key-based signature without a Rekor entry "
                f"({ANN_BUNDLE}); sign with the transparency log on, or accept it without "
                "(--insecure-ignore-tlog, as cosign)",
            )
        der = key.key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        signed_at, index = verify_rekor_set(bundle.encode(), payload, sig, der, root, where=source)
        if signed_at > c.at:
            raise Fail(
                ErrorCode.COSIGN_TLOG_INVALID,
                f"{source}: logged at {signed_at:%Y-%m-%dT%H:%M:%SZ}, after the validation "
                "time; use a later --at",
            )
        details["rekor_log_index"] = str(index)
    elif bundle is not None:
        details["rekor_bundle"] = (
            "present, not verified (--insecure-ignore-tlog)"
            if root is not None
            else "present, not verified (no trusted root)"
        )
    c.good(
        source,
        key.identity,
        f"signed by the key {_key_name(key)}",
        signed_at=signed_at,
        details=details,
    )


def _pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(t), t, len(payload), payload)


def _keyed_bundle(c: _Collector, doc: dict[str, Any], source: str) -> None:
    """A bundle whose verification material is a public key hint (cosign --key with
    --new-bundle-format): DSSE over an in-toto statement, checked with --key."""
    from trustcheck.sigstore.keyless import COSIGN_SIGN_PREDICATE, _statement_subjects

    env = doc.get("dsseEnvelope")
    if not isinstance(env, dict):
        raise Fail(
            ErrorCode.COSIGN_BUNDLE_INVALID,
            f"{source}: a key-based bundle with neither a message signature nor a DSSE envelope",
        )
    if c.config.trusted_root is not None and not c.config.ignore_tlog:
        raise Fail(
            ErrorCode.COSIGN_TLOG_INVALID,
            f"{source}: the transparency log entry of a key-based DSSE bundle is not checked by "
            "trustcheck, and a trusted root asks for one; accept it on the key alone with "
            "--insecure-ignore-tlog",
        )
    try:
        payload = base64.b64decode(env["payload"], validate=True)
        ptype = env["payloadType"]
        sigs = [base64.b64decode(s["sig"], validate=True) for s in env["signatures"]]
        if not isinstance(ptype, str) or not sigs:
            raise TypeError
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise Fail(ErrorCode.COSIGN_BUNDLE_INVALID, f"{source}: malformed DSSE envelope") from None
    if len(sigs) != 1:
        raise Fail(
            ErrorCode.COSIGN_BUNDLE_INVALID,
            f"{source}: the DSSE envelope carries {len(sigs)} signatures; cosign writes one",
        )
    key = _keyed(c.config.keys, sigs[0], _pae(ptype, payload), source)
    if ptype != "application/vnd.in-toto+json":
        raise Fail(ErrorCode.COSIGN_BUNDLE_INVALID, f"{source}: the DSSE payload is not in-toto")
    predicate, subjects = _statement_subjects(payload, source)
    if c.digest not in subjects:
        raise Fail(
            ErrorCode.COSIGN_DIGEST_MISMATCH,
            f"{source}: the statement's subjects do not include {c.digest}: a bundle for "
            "another artifact",
        )
    if predicate != COSIGN_SIGN_PREDICATE:
        return
    c.good(
        source,
        key.identity,
        f"signed by the key {_key_name(key)} (Sigstore bundle)",
        details={"form": "bundle", "key": _key_name(key), "predicate_type": predicate or ""},
    )


def _peek_predicate(doc: dict[str, Any]) -> str | None:
    env = doc.get("dsseEnvelope")
    if not isinstance(env, dict):
        return None
    try:
        stmt = json.loads(base64.b64decode(env.get("payload", ""), validate=True))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    pt = stmt.get("predicateType") if isinstance(stmt, dict) else None
    return pt if isinstance(pt, str) else ""


def _bundle_referrer(c: _Collector, registry: OciRegistry, desc_digest: str) -> None:
    from trustcheck.sigstore.keyless import (
        COSIGN_SIGN_PREDICATE,
        MAX_BUNDLE_BYTES,
        verify_bundle,
    )

    source = f"referrer {desc_digest}"
    manifest = _json_object(
        registry.manifest(c.ref, desc_digest, max_bytes=MAX_SIG_MANIFEST_BYTES), source
    )
    subject = manifest.get("subject")
    if not isinstance(subject, dict) or subject.get("digest") != c.digest:
        raise Fail(
            ErrorCode.COSIGN_DIGEST_MISMATCH,
            f"{source}: its subject is not {c.digest}: a bundle attached to another manifest",
        )
    layers = _layers(manifest, source)
    if not layers or layers[0].get("mediaType") not in _BUNDLE_MEDIA_TYPES:
        raise Fail(
            ErrorCode.COSIGN_BUNDLE_INVALID,
            f"{source}: the first layer is not a Sigstore bundle ({BUNDLE_ARTIFACT_TYPE})",
        )
    ldigest = layers[0].get("digest")
    if not isinstance(ldigest, str):
        raise Fail(ErrorCode.COSIGN_BUNDLE_INVALID, f"{source}: the bundle layer has no digest")
    data = registry.blob(c.ref, ldigest, max_bytes=MAX_BUNDLE_BYTES)
    doc = _json_object(data, source)
    predicate = _peek_predicate(doc)
    if predicate is not None and predicate != COSIGN_SIGN_PREDICATE:
        return  # an attestation (SLSA, SBOM...), not a signature
    vm = doc.get("verificationMaterial")
    if isinstance(vm, dict) and "publicKey" in vm:
        if "messageSignature" in doc:
            from trustcheck.sigstore.keyless import verify_key_bundle

            key, signed_at, details = verify_key_bundle(
                data,
                c.digest,
                c.config.keys,
                c.config.trusted_root,
                c.at,
                ignore_tlog=c.config.ignore_tlog,
                where=source,
            )
            c.good(
                source,
                key.identity,
                f"signed by the key {_key_name(key)} (Sigstore bundle)",
                signed_at=signed_at,
                details=details,
            )
            return
        _keyed_bundle(c, doc, source)
        return
    if c.config.trusted_root is None:
        raise Fail(
            ErrorCode.COSIGN_CERT_INVALID,
            f"{source}: a keyless Sigstore bundle and no trusted root to verify it "
            "(--trusted-root)",
        )
    result = verify_bundle(
        data, c.digest, c.config.trusted_root, c.at, c.config.identities, where=source
    )
    c.good(
        source,
        result.identity,
        f"keyless signature by {result.identity} ({result.issuer}), logged at "
        f"{result.signed_at:%Y-%m-%dT%H:%M:%SZ}",
        issuer=result.issuer,
        signed_at=result.signed_at,
        details=result.details,
    )


def cosign_evidence(
    ref: ImageRef,
    digest: str,
    config: CosignConfig,
    at: datetime,
    registry: OciRegistry,
) -> list[Evidence]:
    """Every cosign signature of ``digest`` in ``ref``'s repository, verified.

    Registry failures while discovering (the ``.sig`` tag lookup, the referrers
    listing) raise :class:`~trustcheck.errors.TrustcheckError`; a failure with one
    signature (its blob, its bundle, its checks) is that signature's invalid evidence.
    An empty list: no cosign signature is attached (``cosign-no-signatures`` is the
    caller's to report).
    """
    c = _Collector(ref, digest, config, at)
    tag = signature_tag(digest)
    found = registry.tag_manifest(ref, tag, max_bytes=MAX_SIG_MANIFEST_BYTES)
    if found is not None:
        sig_digest, body = found
        try:
            layers = _layers(_json_object(body, f"{tag}@{sig_digest}"), f"{tag}@{sig_digest}")
        except Fail as e:
            c.bad(f"{tag}@{sig_digest}", e.code, e.message)
            layers = []
        for i, layer in enumerate(layers):
            source = f"{tag}@{sig_digest} layer {i}"
            if c.full():
                c.bad(
                    source,
                    ErrorCode.COSIGN_BUNDLE_INVALID,
                    f"{tag} has {len(layers)} signatures; only the first "
                    f"{config.max_signatures} are examined",
                )
                break
            try:
                _legacy_layer(c, registry, layer, source)
            except Fail as e:
                c.bad(
                    source,
                    e.code,
                    e.message,
                    e.identity or "",
                    {"form": "legacy"},
                    e.issuer,
                )
            except TrustcheckError as e:
                c.bad(source, e.code, e.message, details={"form": "legacy"})
    for desc in registry.referrers(ref, digest, artifact_type=BUNDLE_ARTIFACT_TYPE):
        source = f"referrer {desc.digest}"
        if c.full():
            c.bad(
                source,
                ErrorCode.COSIGN_BUNDLE_INVALID,
                f"more than {config.max_signatures} cosign signatures; the rest are not examined",
            )
            break
        try:
            _bundle_referrer(c, registry, desc.digest)
        except Fail as e:
            c.bad(source, e.code, e.message, e.identity or "", {"form": "bundle"}, e.issuer)
        except TrustcheckError as e:
            c.bad(source, e.code, e.message, details={"form": "bundle"})
    return c.out
