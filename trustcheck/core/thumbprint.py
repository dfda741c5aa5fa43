"""Every identifier of the root and signer keys of a collection, or of PEM files.

Library behind ``trustcheck thumbprint`` (issue 3, item 1).  A key can be named
several ways, and each tool uses a different one:

* the notary **key ID** (notary-v1-spec.md §2.3): the ID root.json and
  targets.json use, and what notary trust pinning (``certs``) matches;
* the **canonical key ID** (§2.4): the ID of the bare public key, used by
  ``notary key list``, private key file names and ``docker trust inspect``'s
  ``Signers[].Keys[].ID``;
* for certificates, the **SHA-256 and SHA-1 fingerprints of the DER
  certificate**, which ``openssl x509 -noout -fingerprint -sha256`` / ``-sha1``
  print.  SHA-1 is only there for legacy tools: Windows and Azure call it the
  "thumbprint";
* the **SPKI SHA-256**: the SHA-256 of the DER SubjectPublicKeyInfo
  (``openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER |
  sha256sum``).  Unlike the certificate fingerprints and the key ID it survives
  renewing a certificate for the same key.

API
---

* :func:`keys_of_collection` -- one :class:`KeyReport` per (role, key) of a
  verified :class:`~trustcheck.verify.Collection`: root (the root.json key
  IDs), targets, snapshot, timestamp, then the keys of every delegation listed
  in a loaded targets role, in load order.
* :func:`keys_of_pem` -- one report per CERTIFICATE or PUBLIC KEY block of a
  PEM file (a DER certificate is accepted too).  A certificate is identified
  as notary would identify it if it were used as a key (``docker trust signer
  add``, or a root key): an ``ecdsa-x509`` / ``rsa-x509`` key holding Go's PEM
  encoding of that one certificate.
* :func:`render_text` / :func:`render_json` -- the two output forms.

JSON
----

``render_json`` writes one document ``{"keys": [<report>, ...]}``.  Each report
(:meth:`KeyReport.to_json`) always has all of these keys, ``null`` where they
do not apply:

=====================  ======================================================
``gun``                the collection's GUN; ``null`` for a PEM file
``role``               ``root``, ``targets``, ``snapshot``, ``timestamp`` or a
                       delegation name (``targets/releases``); ``null`` for a
                       PEM file
``source``             the PEM file as given; ``null`` for a collection
``index``              1-based position of the key in its PEM file; ``null``
                       for a collection
``key_type``           notary key type: ``ecdsa``, ``ecdsa-x509``, ``rsa``,
                       ``rsa-x509``, ``ed25519`` (a certificate for which
                       notary has no key type: ``x509``)
``algorithm``          ``ECDSA P-256``, ``RSA 2048``, ``Ed25519``, ...
``key_id``             notary key ID (64 hex digits)
``canonical_key_id``   canonical key ID (64 hex digits)
``cert_sha256``        SHA-256 of the DER certificate, lower-case hex
``cert_sha1``          SHA-1 of the DER certificate (legacy thumbprint)
``spki_sha256``        SHA-256 of the DER SubjectPublicKeyInfo
``subject_cn``         the certificate's subject common name
``issuer``             the issuer as an RFC 4514 string
``not_before``         validity start, ``YYYY-MM-DDTHH:MM:SSZ``
``not_after``          validity end, same format
``signature_algorithm`` the certificate's signature algorithm, named as
                       OpenSSL names it (``ecdsa-with-SHA256``)
=====================  ======================================================

Fingerprints are lower-case hex without separators in JSON; the text form
prints certificate fingerprints exactly as OpenSSL 3 does
(``sha256 Fingerprint=AB:CD:...``) so they can be compared line by line.

``cryptography`` is imported only when a key is examined.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trustcheck.core.crypto import (
    ECDSA,
    ECDSA_X509,
    ED25519,
    RSA,
    RSA_X509,
    TufKey,
    canonical_key_id,
    key_id,
    parse_certificate,
    pem_blocks,
    pem_first_block,
)
from trustcheck.core.timefmt import iso as _iso
from trustcheck.errors import ErrorCode, UsageError

if TYPE_CHECKING:
    from cryptography import x509

    from trustcheck.core.verify import Collection

__all__ = [
    "KeyReport",
    "keys_of_collection",
    "keys_of_pem",
    "openssl_fingerprint",
    "render_json",
    "render_text",
]

#: The base roles, in report order.
BASE_ROLES = ("root", "targets", "snapshot", "timestamp")

#: Key type reported for a certificate whose key notary cannot use.
X509_OTHER = "x509"

_CURVE_NAMES = {
    "secp224r1": "P-224",
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
}

# Signature algorithms, named as OpenSSL prints them.
_SIGNATURE_NAMES = {
    "1.2.840.10045.4.1": "ecdsa-with-SHA1",
    "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
    "1.2.840.10045.4.3.3": "ecdsa-with-SHA384",
    "1.2.840.10045.4.3.4": "ecdsa-with-SHA512",
    "1.2.840.113549.1.1.4": "md5WithRSAEncryption",
    "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
    "1.2.840.113549.1.1.10": "rsassaPss",
    "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
    "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
    "1.2.840.113549.1.1.13": "sha512WithRSAEncryption",
    "1.2.840.10040.4.3": "dsa_with_SHA1",
    "2.16.840.1.101.3.4.3.2": "dsa_with_SHA256",
    "1.3.101.112": "ED25519",
    "1.3.101.113": "ED448",
}


@dataclass(slots=True)
class KeyReport:
    """The identifiers of one key; certificate fields are ``None`` for bare keys.

    Hashes are lower-case hex; times are ``YYYY-MM-DDTHH:MM:SSZ`` strings.
    """

    gun: str | None
    role: str | None
    key_type: str
    algorithm: str
    key_id: str | None
    canonical_key_id: str | None
    cert_sha256: str | None = None
    cert_sha1: str | None = None
    spki_sha256: str | None = None
    subject_cn: str | None = None
    issuer: str | None = None
    not_before: str | None = None
    not_after: str | None = None
    signature_algorithm: str | None = None
    source: str | None = None
    index: int | None = None

    @property
    def is_certificate(self) -> bool:
        return self.cert_sha256 is not None

    def to_json(self) -> dict[str, Any]:
        """The stable JSON object described in the module docstring."""
        return {
            "gun": self.gun,
            "role": self.role,
            "source": self.source,
            "index": self.index,
            "key_type": self.key_type,
            "algorithm": self.algorithm,
            "key_id": self.key_id,
            "canonical_key_id": self.canonical_key_id,
            "cert_sha256": self.cert_sha256,
            "cert_sha1": self.cert_sha1,
            "spki_sha256": self.spki_sha256,
            "subject_cn": self.subject_cn,
            "issuer": self.issuer,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "signature_algorithm": self.signature_algorithm,
        }


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def openssl_fingerprint(hex_digest: str) -> str:
    """``"ab12cd"`` -> ``"AB:12:CD"``: a digest as OpenSSL prints fingerprints."""
    h = hex_digest.upper()
    return ":".join(h[i : i + 2] for i in range(0, len(h), 2))


def _describe(pub: Any) -> str:
    """``ECDSA P-256`` / ``RSA 2048`` / ``Ed25519`` for a ``cryptography`` public key."""
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    if isinstance(pub, ec.EllipticCurvePublicKey):
        return f"ECDSA {_CURVE_NAMES.get(pub.curve.name, pub.curve.name)}"
    if isinstance(pub, rsa.RSAPublicKey):
        return f"RSA {pub.key_size}"
    if isinstance(pub, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(pub, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(pub, dsa.DSAPublicKey):
        return f"DSA {pub.key_size}"
    return "unknown"


def _spki_der(pub: Any) -> bytes | None:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    try:
        der: bytes = pub.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except Exception:
        return None
    return der


def _load_cert(der: bytes) -> x509.Certificate | None:
    """Parse a DER certificate: Go-strict first, then leniently (fingerprints need no more)."""
    cert = parse_certificate(der)
    if cert is not None:
        return cert
    from cryptography import x509 as _x509

    try:
        return _x509.load_der_x509_certificate(der)
    except Exception:
        return None


def _x509_type(pub: Any) -> str:
    """The notary key type a certificate with this public key gets (``CertToKey``)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(pub, ec.EllipticCurvePublicKey):
        return ECDSA_X509
    if isinstance(pub, rsa.RSAPublicKey):
        return RSA_X509
    return X509_OTHER


def _fill_certificate(report: KeyReport, der: bytes, cert: x509.Certificate) -> None:
    """Set the certificate fields of ``report`` from the DER bytes and parsed ``cert``."""
    from trustcheck.core.certs import cert_common_name

    report.cert_sha256 = hashlib.sha256(der).hexdigest()
    report.cert_sha1 = hashlib.sha1(der, usedforsecurity=False).hexdigest()
    report.subject_cn = cert_common_name(cert)
    try:
        report.issuer = cert.issuer.rfc4514_string()
    except ValueError:
        report.issuer = None
    report.not_before = _iso(cert.not_valid_before_utc)
    report.not_after = _iso(cert.not_valid_after_utc)
    oid = cert.signature_algorithm_oid.dotted_string
    report.signature_algorithm = _SIGNATURE_NAMES.get(oid, oid)
    try:
        pub = cert.public_key()
    except Exception:
        report.algorithm = "unsupported public key"
        return
    report.algorithm = _describe(pub)
    spki = _spki_der(pub)
    report.spki_sha256 = None if spki is None else hashlib.sha256(spki).hexdigest()


def _bare_public_key(key: TufKey) -> Any:
    """The public key object of a non-certificate key, or ``None``."""
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        if key.keytype == ED25519:
            return ed25519.Ed25519PublicKey.from_public_bytes(key.public)
        if key.keytype in (ECDSA, RSA):
            try:
                return load_der_public_key(key.public)
            except ValueError:
                first = pem_first_block(key.public)  # the pycrypto PEM form of rsa keys
                if first is None:
                    return None
                return load_der_public_key(first[1])
    except Exception:
        return None
    return None


def _report_of_key(key: TufKey, gun: str, role: str) -> KeyReport:
    report = KeyReport(
        gun=gun,
        role=role,
        key_type=key.keytype,
        algorithm="undecodable",
        key_id=key.id,
        canonical_key_id=canonical_key_id(key),
    )
    if key.is_x509:
        first = pem_first_block(key.public)  # the block notary's verifier reads
        cert = None if first is None else _load_cert(first[1])
        if first is not None and cert is not None:
            _fill_certificate(report, first[1], cert)
        return report
    pub = _bare_public_key(key)
    if pub is None:
        if key.keytype not in (ECDSA, RSA, ED25519):
            report.algorithm = "unsupported key type"
        return report
    report.algorithm = _describe(pub)
    spki = _spki_der(pub)
    report.spki_sha256 = None if spki is None else hashlib.sha256(spki).hexdigest()
    return report


# --------------------------------------------------------------------------
# Collections
# --------------------------------------------------------------------------


def keys_of_collection(col: Collection) -> list[KeyReport]:
    """Every root, base-role and delegation key of a verified collection.

    Root keys carry their root.json IDs.  Base roles come in the order root,
    targets, snapshot, timestamp (keys in ``keyids`` order); then, for each
    loaded targets role in load order, the keys of each delegation it lists
    (role = delegation name), whether or not that delegation's own file was
    loaded.  Each (role, key ID) pair is reported once.
    """
    reports: list[KeyReport] = []
    seen: set[tuple[str, str]] = set()

    def add(role: str, keyids: Iterable[str], keys: dict[str, TufKey]) -> None:
        for kid in keyids:
            key = keys.get(kid)
            if key is None or (role, kid) in seen:
                continue
            seen.add((role, kid))
            reports.append(_report_of_key(key, col.gun, role))

    for role in BASE_ROLES:
        role_keys = col.root.roles.get(role)
        if role_keys is not None:
            add(role, role_keys.keyids, col.root.keys)
    for meta in col.targets.values():
        for delegation in meta.delegations:
            add(delegation.name, delegation.keyids, meta.delegation_keys)
    return reports


# --------------------------------------------------------------------------
# PEM files
# --------------------------------------------------------------------------


def _report_of_certificate(der: bytes, source: str, index: int) -> KeyReport:
    from trustcheck.core.certs import go_pem_encode

    cert = _load_cert(der)
    if cert is None:
        raise UsageError(
            ErrorCode.INVALID_ARGUMENT,
            f"{source}: certificate {index} is not a valid X.509 certificate",
        )
    try:
        key_type = _x509_type(cert.public_key())
    except Exception:
        key_type = X509_OTHER
    report = KeyReport(
        gun=None,
        role=None,
        key_type=key_type,
        algorithm="unsupported public key",
        key_id=None,
        canonical_key_id=None,
        source=source,
        index=index,
    )
    if key_type != X509_OTHER:
        as_key = TufKey(key_type, go_pem_encode(der))
        report.key_id = as_key.id
        report.canonical_key_id = canonical_key_id(as_key)
    _fill_certificate(report, der, cert)
    return report


def _report_of_public_key(der: bytes, source: str, index: int) -> KeyReport:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_der_public_key,
    )

    try:
        pub = load_der_public_key(der)
    except Exception as e:
        raise UsageError(
            ErrorCode.INVALID_ARGUMENT, f"{source}: public key {index} cannot be decoded"
        ) from e
    report = KeyReport(
        gun=None,
        role=None,
        key_type="unknown",
        algorithm=_describe(pub),
        key_id=None,
        canonical_key_id=None,
        spki_sha256=hashlib.sha256(der).hexdigest(),
        source=source,
        index=index,
    )
    # notary's ParsePEMPublicKey: ecdsa / rsa keys hold the DER SPKI; ed25519
    # keys hold the raw 32 bytes.
    if isinstance(pub, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        report.key_type = ECDSA if isinstance(pub, ec.EllipticCurvePublicKey) else RSA
        report.key_id = report.canonical_key_id = key_id(report.key_type, der)
    elif isinstance(pub, ed25519.Ed25519PublicKey):
        report.key_type = ED25519
        raw = pub.public_bytes(Encoding.Raw, PublicFormat.Raw)
        report.key_id = report.canonical_key_id = key_id(ED25519, raw)
    return report


def keys_of_pem(data: bytes, source: str) -> list[KeyReport]:
    """One report per CERTIFICATE / PUBLIC KEY block of ``data`` (the file named ``source``).

    PEM is read as Go reads it; other block types (private keys, CRLs) are
    skipped.  Input without any PEM block is tried as one DER certificate.
    A certificate's key ID and canonical ID are those of the notary
    ``ecdsa-x509`` / ``rsa-x509`` key holding Go's PEM encoding of just that
    certificate; a public key's are those of the ``ecdsa`` / ``rsa`` /
    ``ed25519`` key holding it.

    Raises :class:`~trustcheck.errors.UsageError` (``invalid-argument``) if
    nothing in ``data`` is a certificate or public key, or a block is corrupt.
    """
    reports: list[KeyReport] = []
    found_pem = False
    for block in pem_blocks(data):
        found_pem = True
        if block.type in ("CERTIFICATE", "TRUSTED CERTIFICATE", "X509 CERTIFICATE"):
            reports.append(_report_of_certificate(block.data, source, len(reports) + 1))
        elif block.type == "PUBLIC KEY":
            reports.append(_report_of_public_key(block.data, source, len(reports) + 1))
    if not found_pem and _load_cert(data) is not None:
        reports.append(_report_of_certificate(data, source, 1))
    if not reports:
        raise UsageError(
            ErrorCode.INVALID_ARGUMENT,
            f"{source}: no certificate or public key found "
            "(expected PEM CERTIFICATE or PUBLIC KEY blocks, or a DER certificate)",
        )
    return reports


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------

_LABELS = (
    "key type",
    "key ID",
    "canonical ID",
    "cert SHA-256",
    "cert SHA-1 (legacy thumbprint)",
    "SPKI SHA-256",
    "subject CN",
    "issuer",
    "valid",
    "signature",
)
_WIDTH = max(len(label) for label in _LABELS)


def _header(report: KeyReport, total_in_source: int) -> str:
    if report.source is not None:
        if total_in_source > 1 and report.index is not None:
            return f"{report.source} (key {report.index} of {total_in_source})"
        return report.source
    return f"{report.gun or '?'}  {report.role or '?'}"


def _block(report: KeyReport, total_in_source: int) -> list[str]:
    rows: list[tuple[str, str]] = [
        ("key type", f"{report.key_type}, {report.algorithm}"),
        ("key ID", report.key_id or "-  (no notary key type for this key)"),
        ("canonical ID", report.canonical_key_id or "-"),
    ]
    if report.cert_sha256 is not None and report.cert_sha1 is not None:
        rows += [
            ("cert SHA-256", f"sha256 Fingerprint={openssl_fingerprint(report.cert_sha256)}"),
            (
                "cert SHA-1 (legacy thumbprint)",
                f"sha1 Fingerprint={openssl_fingerprint(report.cert_sha1)}",
            ),
        ]
    rows.append(("SPKI SHA-256", report.spki_sha256 or "-"))
    if report.is_certificate:
        rows += [
            ("subject CN", report.subject_cn or "-"),
            ("issuer", report.issuer or "-"),
            ("valid", f"{report.not_before} to {report.not_after}"),
            ("signature", report.signature_algorithm or "-"),
        ]
    lines = [_header(report, total_in_source)]
    lines += [f"  {label.ljust(_WIDTH)}  {value}" for label, value in rows]
    return lines


def render_text(reports: list[KeyReport]) -> str:
    """Aligned human-readable blocks, one per key, separated by blank lines (no final newline).

    Certificate fingerprints are printed as ``openssl x509 -noout -fingerprint``
    prints them; the SPKI hash as ``sha256sum`` prints it.
    """
    per_source: dict[str, int] = {}
    for r in reports:
        if r.source is not None:
            per_source[r.source] = per_source.get(r.source, 0) + 1
    blocks = ["\n".join(_block(r, per_source.get(r.source or "", 0))) for r in reports]
    return "\n\n".join(blocks)


def render_json(reports: list[KeyReport]) -> str:
    """One JSON document ``{"keys": [...]}`` (no final newline)."""
    return json.dumps({"keys": [r.to_json() for r in reports]}, indent=2, ensure_ascii=False)
