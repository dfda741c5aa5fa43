"""Notary Project signature envelopes: JWS (``application/jose+json``) and COSE
(``application/cose``) parsed into one :class:`Envelope`, strictly.

Parsing checks the structure the specification requires (and notation-core-go
enforces) before any signature is looked at: the protected headers and their
types, the signing scheme and its times, the critical header list (every header
that must be critical is, every critical header is present, and none is unknown
to this verifier), the content type, the certificate chain encoding.  The
signature itself is checked by :func:`verify_signature` with the leaf key, the
algorithm the leaf's key dictates.  Nothing here reads the clock.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.utils import CryptographyDeprecationWarning

from trustcheck.errors import ErrorCode, NotTrusted

__all__ = [
    "COSE_MEDIA_TYPE",
    "JWS_MEDIA_TYPE",
    "PAYLOAD_TYPE",
    "Envelope",
    "EnvelopeError",
    "key_algorithm",
    "parse_envelope",
    "verify_signature",
]

JWS_MEDIA_TYPE = "application/jose+json"
COSE_MEDIA_TYPE = "application/cose"
PAYLOAD_TYPE = "application/vnd.cncf.notary.payload.v1+json"
SCHEME_X509 = "notary.x509"
SCHEME_SA = "notary.x509.signingAuthority"
H_SCHEME = "io.cncf.notary.signingScheme"
H_TIME = "io.cncf.notary.signingTime"
H_AUTH_TIME = "io.cncf.notary.authenticSigningTime"
H_EXPIRY = "io.cncf.notary.expiry"
H_TSA = "io.cncf.notary.timestampSignature"
H_AGENT = "io.cncf.notary.signingAgent"
#: the critical headers this verifier understands and processes
KNOWN_CRITICAL = frozenset({H_SCHEME, H_AUTH_TIME, H_EXPIRY})
MAX_CHAIN = 10
MAX_ENVELOPE_BYTES = 4 << 20

_HASH: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
#: COSE algorithm labels (RFC 8152 / IANA) of the algorithms the spec allows
_COSE_ALGS = {-37: "PS256", -38: "PS384", -39: "PS512", -7: "ES256", -35: "ES384", -36: "ES512"}
_EC_SIZE = {"ES256": 32, "ES384": 48, "ES512": 66}
# RFC 3339 with a zone, seconds required (Go's time.RFC3339 layout)
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


class EnvelopeError(NotTrusted):
    """A malformed envelope (``notation-envelope-invalid``, ``notation-critical-header``,
    ``unsupported-envelope``)."""


@dataclass(frozen=True)
class Envelope:
    """What verification needs from an envelope of either format."""

    media_type: str
    #: the signed payload bytes (the JSON document naming ``targetArtifact``)
    payload: bytes
    #: the bytes the signature covers (JWS signing input, COSE Sig_structure)
    signing_input: bytes
    signature: bytes
    alg: str
    scheme: str
    signing_time: datetime | None
    authentic_signing_time: datetime | None
    expiry: datetime | None
    #: DER certificates, leaf first
    chain: tuple[bytes, ...]
    timestamp_token: bytes | None = None
    signing_agent: str | None = None
    #: the protected header fields beyond the ones above (informational)
    extended: dict[str, Any] = field(default_factory=dict)

    def target(self) -> dict[str, Any]:
        """The payload's ``targetArtifact`` (``notation-envelope-invalid`` if absent)."""
        try:
            doc = json.loads(self.payload)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise EnvelopeError(
                ErrorCode.NOTATION_ENVELOPE_INVALID, f"the signed payload is not JSON ({e})"
            ) from e
        if not isinstance(doc, dict) or not isinstance(doc.get("targetArtifact"), dict):
            raise EnvelopeError(
                ErrorCode.NOTATION_ENVELOPE_INVALID,
                "the signed payload has no targetArtifact descriptor",
            )
        target: dict[str, Any] = doc["targetArtifact"]
        return target


def _bad(message: str) -> EnvelopeError:
    return EnvelopeError(ErrorCode.NOTATION_ENVELOPE_INVALID, message)


def _crit(message: str) -> EnvelopeError:
    return EnvelopeError(ErrorCode.NOTATION_CRITICAL_HEADER, message)


def _b64url(text: object, what: str) -> bytes:
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise _bad(f"the JWS {what} is not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise _bad(f"the JWS {what} is not base64url ({e})") from e


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _bad(f"the JSON names {k!r} twice (parsers would disagree on which counts)")
        out[k] = v
    return out


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data, object_pairs_hook=_no_duplicates)
    except EnvelopeError:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise _bad(f"the {what} is not valid JSON ({e})") from e
    if not isinstance(doc, dict):
        raise _bad(f"the {what} is not a JSON object")
    return doc


def _rfc3339(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise _bad(f"{name} is not an RFC 3339 time string")
    m = _RFC3339.match(value)
    if not m:
        raise _bad(f"{name} {value[:40]!r} is not an RFC 3339 time with a zone")
    try:
        text = value.upper().replace("Z", "+00:00")
        frac = m.group(7)
        if frac and len(frac) > 7:  # Python reads at most microseconds
            text = text.replace(frac, frac[:7])
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError as e:
        raise _bad(f"{name} {value[:40]!r} is not a valid time ({e})") from e


def _check_headers(
    headers: dict[str, Any],
    crit: object,
    registered: frozenset[str],
    times: dict[str, datetime | None],
) -> tuple[str, dict[str, Any]]:
    """The signing scheme and the critical-header rules, shared by JWS and COSE."""
    scheme = headers.get(H_SCHEME)
    if scheme is None:
        raise _bad(f"the protected header has no {H_SCHEME}")
    if scheme not in (SCHEME_X509, SCHEME_SA):
        raise EnvelopeError(
            ErrorCode.UNSUPPORTED_ENVELOPE,
            f"signing scheme {str(scheme)[:60]!r} is not notary.x509 or "
            "notary.x509.signingAuthority",
        )
    if scheme == SCHEME_X509:
        if times[H_AUTH_TIME] is not None:
            raise _bad(f"{H_AUTH_TIME} must not be present for the notary.x509 scheme")
        if times[H_TIME] is None:
            raise _bad(f"{H_TIME} is required for the notary.x509 scheme")
    else:
        if times[H_TIME] is not None:
            raise _bad(f"{H_TIME} must not be present for the signingAuthority scheme")
        if times[H_AUTH_TIME] is None:
            raise _bad(f"{H_AUTH_TIME} is required for the signingAuthority scheme")
    signed = times[H_TIME] or times[H_AUTH_TIME]
    expiry = times[H_EXPIRY]
    if expiry is not None and signed is not None and expiry <= signed:
        raise _bad("the expiry time is not after the signing time")
    if not isinstance(crit, list) or not crit:
        raise _crit("the protected header has no crit list; the Notary Project requires one")
    must = {H_SCHEME}
    if expiry is not None:
        must.add(H_EXPIRY)
    if scheme == SCHEME_SA:
        must.add(H_AUTH_TIME)
    seen: set[str] = set()
    for name in crit:
        if not isinstance(name, str):
            raise _crit(f"crit lists {name!r}, which is not a header name this verifier knows")
        if name in seen:
            raise _crit(f"crit lists {name!r} twice")
        seen.add(name)
        if name in registered:
            raise _crit(f"crit lists the registered header {name!r}, which it must not")
        if name not in headers:
            raise _crit(f"crit lists {name!r}, which is not in the protected header")
        if name not in KNOWN_CRITICAL:
            raise _crit(
                f"the critical header {name[:80]!r} is unknown to this verifier (a plugin "
                "extension?); a signature with an unknown critical header must be refused"
            )
    missing = sorted(must - seen)
    if missing:
        raise _crit(f"required critical header(s) {', '.join(missing)} not marked critical")
    known = {H_SCHEME, H_TIME, H_AUTH_TIME, H_EXPIRY, "crit"} | registered
    extended = {k: v for k, v in headers.items() if k not in known}
    return str(scheme), extended


def _chain(items: object, what: str, decode: bool) -> tuple[bytes, ...]:
    if not isinstance(items, list) or not items:
        raise _bad(f"the envelope has no certificate chain ({what})")
    if len(items) > MAX_CHAIN:
        raise _bad(f"the certificate chain has {len(items)} certificates, over {MAX_CHAIN}")
    out: list[bytes] = []
    for i, item in enumerate(items):
        if decode:
            if not isinstance(item, str):
                raise _bad(f"{what}[{i}] is not a base64 string")
            try:
                der = base64.b64decode(item, validate=True)
            except (binascii.Error, ValueError) as e:
                raise _bad(f"{what}[{i}] is not standard base64 ({e})") from e
        else:
            if not isinstance(item, bytes):
                raise _bad(f"{what}[{i}] is not a byte string")
            der = item
        try:
            with warnings.catch_warnings():
                # a negative serial number: cryptography warns, Go's parser refuses
                warnings.simplefilter("error", CryptographyDeprecationWarning)
                x509.load_der_x509_certificate(der)
        except (ValueError, x509.InvalidVersion, CryptographyDeprecationWarning) as e:
            raise _bad(f"{what}[{i}] is not a DER certificate ({e})") from e
        out.append(der)
    return tuple(out)


# --------------------------------------------------------------------------- JWS


def _parse_jws(data: bytes) -> Envelope:
    doc = _json(data, "JWS envelope")
    extra = set(doc) - {"payload", "protected", "header", "signature"}
    if extra:
        raise _bad(f"the JWS envelope has unsupported top-level members {sorted(extra)[:5]}")
    payload_text = doc.get("payload")
    protected_text = doc.get("protected")
    signature = _b64url(doc.get("signature"), "signature")
    if not signature:
        raise _bad("the JWS signature is empty")
    payload = _b64url(payload_text, "payload")
    protected_raw = _b64url(protected_text, "protected header")
    protected = _json(protected_raw, "JWS protected header")
    header = doc.get("header")
    if not isinstance(header, dict):
        raise _bad("the JWS envelope has no unprotected header (x5c)")
    alg = protected.get("alg")
    if alg not in ("PS256", "PS384", "PS512", "ES256", "ES384", "ES512"):
        raise EnvelopeError(
            ErrorCode.UNSUPPORTED_ENVELOPE,
            f"JWS alg {str(alg)[:40]!r} is not one of PS256/384/512, ES256/384/512",
        )
    cty = protected.get("cty")
    if cty != PAYLOAD_TYPE:
        raise _bad(f"the content type (cty) {str(cty)[:80]!r} is not {PAYLOAD_TYPE}")
    times = {
        name: (_rfc3339(protected[name], name) if name in protected else None)
        for name in (H_TIME, H_AUTH_TIME, H_EXPIRY)
    }
    registered = frozenset(
        {"alg", "cty", "typ", "kid", "x5c", "x5u", "x5t", "x5t#S256", "jku", "jwk", "crit"}
    )
    # RFC 7515 header names a verifier would have to act on must not sneak in
    for name in ("jku", "jwk", "x5u", "kid", "x5c", "b64", "zip"):
        if name in protected:
            raise _bad(
                f"the protected header carries {name!r}, which Notary Project JWS never uses"
            )
    scheme, extended = _check_headers(protected, protected.get("crit"), registered, times)
    tsa = header.get(H_TSA)
    token: bytes | None = None
    if tsa is not None:
        if not isinstance(tsa, str):
            raise _bad(f"{H_TSA} is not a base64 string")
        try:
            token = base64.b64decode(tsa, validate=True)
        except (binascii.Error, ValueError) as e:
            raise _bad(f"{H_TSA} is not base64 ({e})") from e
    agent = header.get(H_AGENT)
    assert isinstance(protected_text, str) and isinstance(payload_text, str)
    return Envelope(
        media_type=JWS_MEDIA_TYPE,
        payload=payload,
        signing_input=f"{protected_text}.{payload_text}".encode("ascii"),
        signature=signature,
        alg=str(alg),
        scheme=scheme,
        signing_time=times[H_TIME],
        authentic_signing_time=times[H_AUTH_TIME],
        expiry=times[H_EXPIRY],
        chain=_chain(header.get("x5c"), "x5c", decode=True),
        timestamp_token=token,
        signing_agent=agent if isinstance(agent, str) else None,
        extended=extended,
    )


# --------------------------------------------------------------------------- COSE


def _cose_time(value: object, name: str) -> datetime:
    import cbor2

    if isinstance(value, cbor2.CBORTag) and value.tag == 1:
        value = value.value
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"{name} is not an epoch date/time")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as e:
        raise _bad(f"{name} {value!r} is out of range") from e


def _parse_cose(data: bytes) -> Envelope:
    try:
        import cbor2
    except ImportError as e:  # pragma: no cover - cbor2 is a dependency
        raise EnvelopeError(
            ErrorCode.UNSUPPORTED_ENVELOPE, "COSE envelopes need the cbor2 package"
        ) from e
    try:
        top = cbor2.loads(data)
    except Exception as e:  # cbor2 raises several types for malformed input
        raise _bad(f"the COSE envelope is not valid CBOR ({type(e).__name__}: {e})") from e
    if not isinstance(top, cbor2.CBORTag) or top.tag != 18:
        raise _bad("the COSE envelope is not a COSE_Sign1_Tagged message (tag 18)")
    msg = top.value
    if not isinstance(msg, list | tuple) or len(msg) != 4:
        raise _bad("the COSE_Sign1 message is not a four-element array")
    protected_raw, unprotected, payload, signature = msg
    if not isinstance(protected_raw, bytes) or not protected_raw:
        raise _bad("the COSE protected header is not a non-empty byte string")
    if not isinstance(unprotected, Mapping):
        raise _bad("the COSE unprotected header is not a map")
    if not isinstance(payload, bytes):
        raise _bad("the COSE payload is detached or not a byte string")
    if not isinstance(signature, bytes) or not signature:
        raise _bad("the COSE signature is not a non-empty byte string")
    try:
        protected = cbor2.loads(protected_raw)
    except Exception as e:
        raise _bad(f"the COSE protected header is not valid CBOR ({e})") from e
    if not isinstance(protected, Mapping):
        raise _bad("the COSE protected header is not a map")
    alg_label = protected.get(1)
    alg = _COSE_ALGS.get(alg_label) if isinstance(alg_label, int) else None
    if alg is None:
        raise EnvelopeError(
            ErrorCode.UNSUPPORTED_ENVELOPE,
            f"COSE alg {str(protected.get(1))[:40]!r} is not PS256/384/512 or ES256/384/512",
        )
    if protected.get(3) != PAYLOAD_TYPE:
        raise _bad(
            f"the content type (label 3) {str(protected.get(3))[:80]!r} is not {PAYLOAD_TYPE}"
        )
    times = {
        name: (_cose_time(protected[name], name) if name in protected else None)
        for name in (H_TIME, H_AUTH_TIME, H_EXPIRY)
    }
    crit = protected.get(2)
    if isinstance(crit, list | tuple):
        for c in crit:
            if isinstance(c, int) and 0 <= c <= 8:
                raise _crit(f"crit lists the registered label {c}, which it must not")
    named = {k: v for k, v in protected.items() if isinstance(k, str)}
    crit_names = list(crit) if isinstance(crit, list | tuple) else crit
    scheme, extended = _check_headers(named, crit_names, frozenset(), times)
    chain_value = unprotected.get(33, protected.get(33))
    if isinstance(chain_value, bytes):
        chain_value = [chain_value]
    elif isinstance(chain_value, tuple):
        chain_value = list(chain_value)
    tsa = unprotected.get(H_TSA)
    if tsa is not None and not isinstance(tsa, bytes):
        raise _bad(f"{H_TSA} is not a byte string")
    agent = unprotected.get(H_AGENT)
    sig_structure = cbor2.dumps(["Signature1", protected_raw, b"", payload])
    return Envelope(
        media_type=COSE_MEDIA_TYPE,
        payload=payload,
        signing_input=sig_structure,
        signature=signature,
        alg=alg,
        scheme=scheme,
        signing_time=times[H_TIME],
        authentic_signing_time=times[H_AUTH_TIME],
        expiry=times[H_EXPIRY],
        chain=_chain(chain_value, "x5chain", decode=False),
        timestamp_token=tsa,
        signing_agent=agent if isinstance(agent, str) else None,
        extended=extended,
    )


def parse_envelope(data: bytes, media_type: str) -> Envelope:
    """An envelope of ``media_type`` (``unsupported-envelope`` for another type)."""
    if len(data) > MAX_ENVELOPE_BYTES:
        raise _bad(f"the envelope is {len(data)} bytes, over the {MAX_ENVELOPE_BYTES}-byte cap")
    if media_type == JWS_MEDIA_TYPE:
        return _parse_jws(data)
    if media_type == COSE_MEDIA_TYPE:
        return _parse_cose(data)
    raise EnvelopeError(
        ErrorCode.UNSUPPORTED_ENVELOPE,
        f"signature envelope type {media_type[:80]!r} is not application/jose+json or "
        "application/cose",
    )


# --------------------------------------------------------------------------- signature


def key_algorithm(cert: x509.Certificate) -> str | None:
    """The one algorithm the spec allows for the certificate's key, or None."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return {2048: "PS256", 3072: "PS384", 4096: "PS512"}.get(key.key_size)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}.get(
            key.curve.name
        )
    return None


def verify_signature(env: Envelope, leaf: x509.Certificate) -> None:
    """The envelope's signature by ``leaf``'s key (``notation-signature-invalid``)."""
    expected = key_algorithm(leaf)
    if expected is None:
        raise EnvelopeError(
            ErrorCode.NOTATION_CERT_INVALID,
            "the signing certificate's key is not RSA 2048/3072/4096 or EC P-256/384/521",
        )
    if expected != env.alg:
        raise EnvelopeError(
            ErrorCode.NOTATION_SIGNATURE_INVALID,
            f"the envelope says {env.alg} but the signing certificate's key dictates "
            f"{expected} (algorithm substitution)",
        )
    algo = _HASH[env.alg[2:]]()
    key = leaf.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(
                env.signature,
                env.signing_input,
                padding.PSS(mgf=padding.MGF1(algo), salt_length=algo.digest_size),
                algo,
            )
        elif isinstance(key, ec.EllipticCurvePublicKey):
            size = _EC_SIZE[env.alg]
            if len(env.signature) != 2 * size:
                raise InvalidSignature
            r = int.from_bytes(env.signature[:size], "big")
            s = int.from_bytes(env.signature[size:], "big")
            key.verify(encode_dss_signature(r, s), env.signing_input, ec.ECDSA(algo))
        else:  # pragma: no cover - key_algorithm returned None above
            raise InvalidSignature
    except InvalidSignature as e:
        raise EnvelopeError(
            ErrorCode.NOTATION_SIGNATURE_INVALID,
            "the envelope's signature does not verify with the signing certificate's key: "
            "the payload or the protected headers were altered",
        ) from e
