"""TUF key identities: key IDs bound to their key (:func:`keyid_is_bound`), SPKI
identities (:func:`public_key_identity`), and ECDSA keys written as hex points
(:func:`_register_hex_ec_keys`, real data python-tuf cannot read otherwise)."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from securesystemslib.signer import Key  # type: ignore[attr-defined]

    from trustcheck.core.identity import Identifier

__all__ = ["keyid_is_bound", "public_key_identity"]


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(obj: Any) -> bytes | None:
    from securesystemslib.exceptions import FormatError
    from securesystemslib.formats import encode_canonical

    try:
        text = encode_canonical(obj)
    except (FormatError, TypeError, ValueError):
        return None
    return text.encode("utf-8") if isinstance(text, str) else None


#: what securesystemslib < 0.22 added to every key before hashing it, listed or not
_LEGACY_KEYID_HASH_ALGORITHMS = ["sha256", "sha512"]


def _keyid_forms(key: Key) -> set[str]:
    """Every key ID a TUF implementation computed for ``key`` (hex SHA-256 and SHA-512)."""
    d = key.to_dict()
    base = {"keytype": key.keytype, "scheme": key.scheme, "keyval": key.keyval}
    forms: list[dict[str, Any]] = [
        base,  # securesystemslib >= 0.22, python-tuf >= 1.0, go-tuf
        d,  # TUF 0.x: the key as listed, keyid_hash_algorithms and extra fields included
        {k: v for k, v in d.items() if not k.startswith("x-")},  # before x- annotations
        {**base, "keyid_hash_algorithms": _LEGACY_KEYID_HASH_ALGORITHMS},  # sslib < 0.22
    ]
    out: set[str] = set()
    for form in forms:
        data = _canonical(form)
        if data is not None:
            out.add(_sha256_hex(data))
            out.add(hashlib.sha512(data).hexdigest())
    return out


def keyid_is_bound(key: Key) -> bool | None:
    """Whether ``key.keyid`` is a hash of the key (``None``: the key type defines no such hash).

    For the keys of securesystemslib's ``SSlibKey`` family (``ed25519``,
    ``ecdsa``, ``ecdsa-sha2-nistp256/384/521``, ``rsa``, ``ml-dsa``) the key ID
    must be the lower-case hex SHA-256 (or SHA-512, which TUF 0.x also
    wrote) of the OLPC canonical JSON of one of

    * ``{"keytype", "scheme", "keyval"}`` -- what securesystemslib >= 0.22,
      python-tuf >= 1.0 and go-tuf compute (``compute_default_keyid``);
    * the whole key object as the metadata holds it, including
      ``keyid_hash_algorithms`` and any other extra field -- TUF 0.x;
    * that object without its ``x-`` annotation fields;
    * ``{"keytype", "scheme", "keyval", "keyid_hash_algorithms":
      ["sha256", "sha512"]}`` -- securesystemslib < 0.22, which added that
      field to every key before hashing it even where the metadata does not
      list it (python-tuf's own ``ed25519_metadata`` and ``fishy_rolenames``
      test data, sigstore's early roots).

    Other key types (OpenPGP, sigstore-oidc) name their keys their own way and
    are not checked (``None``).
    """
    from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

    if not isinstance(key, SSlibKey):
        return None
    return key.keyid in _keyid_forms(key)


def _expected_keyid(key: Key) -> str:
    base = _canonical({"keytype": key.keytype, "scheme": key.scheme, "keyval": key.keyval})
    return _sha256_hex(base) if base is not None else "?"


_EC_CURVES = {"nistp256": "SECP256R1", "nistp384": "SECP384R1", "nistp521": "SECP521R1"}


_HEX_POINT = re.compile(r"0[234][0-9a-fA-F]{64,264}")


def _hex_ec_point(keytype: str, scheme: str, public: str) -> Any | None:
    """An ECDSA public key written as a hex SEC1 point (go-tuf 0.x, sigstore roots v1-v4).

    Only for ``ecdsa``/``ecdsa-sha2-nistpNNN`` keys whose value is not PEM;
    the curve is the one the key type or scheme names.
    """
    from cryptography.hazmat.primitives.asymmetric import ec

    if not (keytype == "ecdsa" or keytype.startswith("ecdsa-sha2-")):
        return None
    if not _HEX_POINT.fullmatch(public):
        return None
    name = (keytype if keytype.startswith("ecdsa-sha2-") else scheme).rsplit("-", 1)[-1]
    curve_name = _EC_CURVES.get(name)
    if curve_name is None:
        return None
    curve = getattr(ec, curve_name)()
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, bytes.fromhex(public))
    except ValueError:
        return None


_HEX_KEYS_REGISTERED = False


def _register_hex_ec_keys() -> None:
    """Let securesystemslib (hence python-tuf) verify ECDSA keys written as hex points.

    securesystemslib loads ECDSA keys from PEM only, so python-tuf cannot
    verify sigstore's roots v1-v4 (written by go-tuf 0.x with hex-encoded
    points). The key class registered for the ``ecdsa-sha2-nistp256/384``
    key types decodes such a point and defers everything else -- PEM keys,
    verification itself -- to securesystemslib's ``SSlibKey`` unchanged.
    """
    global _HEX_KEYS_REGISTERED
    if _HEX_KEYS_REGISTERED:
        return
    from securesystemslib.signer import (  # type: ignore[attr-defined]
        KEY_FOR_TYPE_AND_SCHEME,
        SSlibKey,
    )

    class HexPointKey(SSlibKey):
        def _crypto_key(self) -> Any:
            public = self.keyval.get("public") if isinstance(self.keyval, dict) else None
            if isinstance(public, str):
                point = _hex_ec_point(self.keytype, self.scheme, public)
                if point is not None:
                    return point
            return super()._crypto_key()

    for keytype in ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384"):
        if KEY_FOR_TYPE_AND_SCHEME.get((keytype, keytype)) is SSlibKey:
            KEY_FOR_TYPE_AND_SCHEME[(keytype, keytype)] = HexPointKey
    _HEX_KEYS_REGISTERED = True


def _spki_der(key: Key) -> bytes | None:
    """The DER SubjectPublicKeyInfo of an ed25519 / ecdsa / rsa key, else None."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_public_key,
    )

    public = key.keyval.get("public") if isinstance(key.keyval, dict) else None
    if not isinstance(public, str):
        return None
    try:
        point = _hex_ec_point(key.keytype, key.scheme, public)
        if point is not None:
            pub: Any = point
        elif key.keytype == "ed25519":
            pub = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public))
        elif key.keytype in ("ecdsa", "rsa") or key.keytype.startswith("ecdsa-sha2-"):
            pub = load_pem_public_key(public.encode("utf-8"))
        else:
            return None
        der: bytes = pub.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except Exception:  # malformed key material: no identity from it
        return None
    return der


def public_key_identity(key: Key) -> str:
    """What makes two keys the same key: their public key, not their key ID.

    ``spki:<sha256 of the DER SubjectPublicKeyInfo>`` for ed25519, ecdsa and
    rsa keys (so a PEM re-wrapped differently, or ``ecdsa`` vs the legacy
    ``ecdsa-sha2-nistp256`` key type, is still one key); otherwise the key type
    and the canonical JSON of ``keyval``.
    """
    der = _spki_der(key)
    if der is not None:
        return "spki:" + _sha256_hex(der)
    raw = _canonical(key.keyval) or repr(key.keyval).encode()
    return f"raw:{key.keytype}:" + _sha256_hex(raw)


def _describe_key(key: Key) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    der = _spki_der(key)
    if der is None:
        return f"{key.keytype} ({key.scheme})"
    pub = load_der_public_key(der)
    if isinstance(pub, ec.EllipticCurvePublicKey):
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return f"ECDSA {names.get(pub.curve.name, pub.curve.name)}"
    if isinstance(pub, rsa.RSAPublicKey):
        return f"RSA {pub.key_size}"
    return "Ed25519"


def _identifiers(key: Key) -> set[Identifier]:
    """Identifiers a pin can name a TUF key by: ``spki-sha256`` and (if bound) ``keyid``."""
    from trustcheck.core.identity import Identifier

    ids: set[Identifier] = set()
    if keyid_is_bound(key) and re.fullmatch(r"[0-9a-f]{64}", key.keyid):
        ids.add(Identifier("keyid", key.keyid))
    der = _spki_der(key)
    if der is not None:
        ids.add(Identifier("spki-sha256", _sha256_hex(der)))
    return ids
