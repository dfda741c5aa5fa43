"""Certificate chains of Notary Project signatures (code signing).

:func:`check_chain` applies the specification's certificate requirements as
notation-core-go applies them: an ordered chain, leaf first, each certificate
issued (signature and name) by the next, ending in a self-signed root, no
self-signed leaf or intermediate; CA certificates with basicConstraints CA and
a path length that fits, critical keyUsage with keyCertSign; the leaf with no
CA flag, critical keyUsage with digitalSignature and no other bit but
nonRepudiation, no extended key usage other than code signing (serverAuth,
clientAuth, emailProtection, timeStamping, OCSPSigning and anyExtendedKeyUsage
are refused); no SHA-1 signatures; RSA 2048+ and EC P-256/384/521 keys.

:func:`anchor` is notation's authenticity: some certificate of the chain is one
of the trust store's certificates (byte for byte).  Validity periods are checked
by the caller at the time the scheme dictates (:func:`outside_validity`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, ExtensionOID

from trustcheck.errors import ErrorCode, NotTrusted

__all__ = [
    "ChainError",
    "anchor",
    "check_chain",
    "has_revocation_info",
    "load_chain",
    "outside_validity",
]

_FORBIDDEN_EKU = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
}


class ChainError(NotTrusted):
    """``notation-cert-invalid`` or ``notation-untrusted-chain``."""


def _who(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()[:120] or "(empty subject)"


def load_chain(ders: Sequence[bytes]) -> list[x509.Certificate]:
    return [x509.load_der_x509_certificate(d) for d in ders]


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    if child.issuer.public_bytes() != parent.subject.public_bytes():
        return False
    try:
        child.verify_directly_issued_by(parent)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _invalid(message: str) -> ChainError:
    return ChainError(ErrorCode.NOTATION_CERT_INVALID, message)


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage:
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE)
    except x509.ExtensionNotFound as e:
        raise _invalid(f"certificate {_who(cert)}: the keyUsage extension must be present") from e
    if not ext.critical:
        raise _invalid(f"certificate {_who(cert)}: the keyUsage extension must be critical")
    value = ext.value
    assert isinstance(value, x509.KeyUsage)
    return value


def _basic(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        value = cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value
    except x509.ExtensionNotFound:
        return None
    assert isinstance(value, x509.BasicConstraints)
    return value


def _check_algorithms(cert: x509.Certificate) -> None:
    try:
        algo = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        algo = None
    if isinstance(algo, hashes.SHA1 | hashes.MD5):
        raise _invalid(f"certificate {_who(cert)} is signed with SHA-1/MD5, which is refused")
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise _invalid(
                f"certificate {_who(cert)} has an RSA key of {key.key_size} bits (< 2048)"
            )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
            raise _invalid(f"certificate {_who(cert)} uses the curve {key.curve.name}")
    else:
        raise _invalid(f"certificate {_who(cert)} has a key that is neither RSA nor EC")


def _check_leaf(cert: x509.Certificate) -> None:
    bc = _basic(cert)
    if bc is not None and bc.ca:
        raise _invalid(f"signing certificate {_who(cert)} is a CA (basicConstraints CA:TRUE)")
    ku = _key_usage(cert)
    if not ku.digital_signature:
        raise _invalid(f"signing certificate {_who(cert)} lacks the digitalSignature key usage")
    extra = [
        name
        for name, on in (
            ("keyEncipherment", ku.key_encipherment),
            ("dataEncipherment", ku.data_encipherment),
            ("keyAgreement", ku.key_agreement),
            ("keyCertSign", ku.key_cert_sign),
            ("cRLSign", ku.crl_sign),
            ("encipherOnly", ku.key_agreement and ku.encipher_only),
            ("decipherOnly", ku.key_agreement and ku.decipher_only),
        )
        if on
    ]
    if extra:
        raise _invalid(
            f"signing certificate {_who(cert)} has key usage {', '.join(extra)}; only "
            "digitalSignature is allowed"
        )
    try:
        eku = cert.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is not None:
        assert isinstance(eku, x509.ExtendedKeyUsage)
        bad = [_FORBIDDEN_EKU[o] for o in eku if o in _FORBIDDEN_EKU]
        if bad:
            raise _invalid(
                f"signing certificate {_who(cert)} has extended key usage {', '.join(bad)}; a "
                "code signing certificate must not"
            )
    _check_algorithms(cert)


def _check_ca(cert: x509.Certificate, below: int) -> None:
    bc = _basic(cert)
    if bc is None or not bc.ca:
        raise _invalid(f"CA certificate {_who(cert)} lacks basicConstraints CA:TRUE")
    if bc.path_length is not None and bc.path_length < below:
        raise _invalid(
            f"CA certificate {_who(cert)} allows a path length of {bc.path_length}, the "
            f"chain needs {below}"
        )
    if not _key_usage(cert).key_cert_sign:
        raise _invalid(f"CA certificate {_who(cert)} lacks the keyCertSign key usage")
    _check_algorithms(cert)


def check_chain(chain: Sequence[x509.Certificate]) -> None:
    """The certificate requirements of the specification (``notation-cert-invalid``)."""
    if not chain:
        raise _invalid("the certificate chain is empty")
    if len(chain) == 1:
        cert = chain[0]
        if not _issued_by(cert, cert):
            raise _invalid(
                f"the only certificate {_who(cert)} is not self-signed; the chain must end in "
                "a root"
            )
        _check_leaf(cert)
        return
    for i, cert in enumerate(chain):
        last = i == len(chain) - 1
        if last:
            if not _issued_by(cert, cert):
                raise _invalid(f"the last certificate {_who(cert)} is not a self-signed root")
        else:
            if _issued_by(cert, cert):
                kind = "signing" if i == 0 else "intermediate"
                raise _invalid(f"the {kind} certificate {_who(cert)} is self-signed")
            if not _issued_by(cert, chain[i + 1]):
                raise _invalid(
                    f"certificate {_who(cert)} is not issued by the next one in the chain, "
                    f"{_who(chain[i + 1])}"
                )
        if i == 0:
            _check_leaf(cert)
        else:
            _check_ca(cert, i - 1)


def anchor(chain: Sequence[x509.Certificate], trusted: Sequence[bytes]) -> int | None:
    """The index of the first chain certificate that is in ``trusted`` (DER), or None."""
    wanted = set(trusted)
    for i, cert in enumerate(chain):
        from cryptography.hazmat.primitives.serialization import Encoding

        if cert.public_bytes(Encoding.DER) in wanted:
            return i
    return None


def outside_validity(chain: Sequence[x509.Certificate], at: datetime) -> x509.Certificate | None:
    """The first certificate not valid at ``at`` (not before <= at <= not after), or None."""
    for cert in chain:
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            return cert
    return None


def has_revocation_info(cert: x509.Certificate) -> bool:
    """The certificate names an OCSP responder or a CRL distribution point."""
    try:
        aia = cert.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS)
        value = aia.value
        assert isinstance(value, x509.AuthorityInformationAccess)
        if any(d.access_method == AuthorityInformationAccessOID.OCSP for d in value):
            return True
    except x509.ExtensionNotFound:
        pass
    try:
        cert.extensions.get_extension_for_oid(ExtensionOID.CRL_DISTRIBUTION_POINTS)
        return True
    except x509.ExtensionNotFound:
        return False
