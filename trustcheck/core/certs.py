"""X.509 rules for root and delegation certificates, as notary 0.7.0 applies them.

* :func:`root_leaf_keys` is notary-v1-spec.md section 4.2 steps 2 and 3 plus
  the key rebuild of step 6: it picks the valid leaf certificates among the
  root role's keys and rebuilds each as notary does (Go PEM of the leaf
  followed by the valid intermediates), so signatures on root.json must
  reference the ID of that rebuilt key.
* :func:`validate_delegation_key` is the section 5.2 rule (no expiry check).

All failures are :class:`~trustcheck.errors.NotTrusted` with a one-line message
naming the certificate and what to do.
"""

from __future__ import annotations

import base64
import calendar
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from trustcheck.core.crypto import (
    ECDSA_X509,
    RSA_X509,
    TufKey,
    cert_key_algorithm,
    load_cert_from_pem,
    parse_certificate,
    pem_blocks,
)
from trustcheck.core.record import Record
from trustcheck.core.timefmt import iso as _iso
from trustcheck.errors import ErrorCode, NotTrusted

__all__ = [
    "RootCerts",
    "cert_common_name",
    "cn_matches_gun",
    "go_pem_encode",
    "is_ca",
    "load_cert_bundle",
    "root_leaf_keys",
    "validate_certificate",
    "validate_delegation_key",
]

_MIN_RSA_BITS = 2048
_NOT_BEFORE_LEEWAY = timedelta(days=1)
_NEAR_EXPIRY_MONTHS = 6

# Signature algorithm OIDs Go maps to SHA1WithRSA, DSAWithSHA1 and ECDSAWithSHA1.
_SHA1_SIGNATURES = {
    "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
    "1.3.14.3.2.29": "sha1WithRSASignature",
    "1.2.840.10040.4.3": "dsa-with-sha1",
    "1.2.840.10045.4.1": "ecdsa-with-SHA1",
}


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def go_pem_encode(der: bytes, block_type: str = "CERTIFICATE") -> bytes:
    """Go's ``pem.EncodeToMemory`` of a header-less block: 64-column base64, ``\\n`` endings."""
    b64 = base64.b64encode(der)
    lines = b"".join(b64[i : i + 64] + b"\n" for i in range(0, len(b64), 64))
    kind = block_type.encode()
    return b"-----BEGIN " + kind + b"-----\n" + lines + b"-----END " + kind + b"-----\n"


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _later(t: datetime, delta: timedelta) -> datetime:
    """``t + delta``, or the latest time Python holds (a validation time near year
    9999 must not crash: nothing expires after it anyway)."""
    try:
        return t + delta
    except OverflowError:
        return datetime.max.replace(tzinfo=t.tzinfo)


def _add_months(t: datetime, months: int) -> datetime:
    """Go's ``t.AddDate(0, months, 0)``: day overflow rolls into the next month."""
    total = t.year * 12 + (t.month - 1) + months
    year, month = divmod(total, 12)
    month += 1
    if year > 9999:
        return datetime.max.replace(tzinfo=t.tzinfo)
    last = calendar.monthrange(year, month)[1]
    base = t.replace(year=year, month=month, day=min(t.day, last))
    return _later(base, timedelta(days=max(0, t.day - last)))


def _short(kid: str) -> str:
    return kid[:8] + "…" if len(kid) > 8 else kid


def cert_common_name(cert: x509.Certificate) -> str:
    """The subject CN as Go reads it (the last CN attribute; ``""`` if none)."""
    try:
        attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return ""
    for attr in reversed(attrs):
        if isinstance(attr.value, str):
            return attr.value
    return ""


def is_ca(cert: x509.Certificate) -> bool:
    """Go's ``IsCA``: basicConstraints present with ``cA`` true."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def cn_matches_gun(common_name: str, gun: str) -> bool:
    """notary's ``MatchCNToGun``: equal, or ``prefix*`` with the GUN starting with ``prefix``.

    As in notary every trailing ``*`` is stripped and the prefix is a plain
    string prefix (``fake.t*`` matches ``fake.test/x``).
    """
    if common_name.endswith("*"):
        return gun.startswith(common_name.rstrip("*"))
    return common_name == gun


def _rsa_bits(cert: x509.Certificate) -> int | None:
    if cert_key_algorithm(cert) != "rsa":
        return None
    try:
        pub = cert.public_key()
    except Exception:
        return 0
    return pub.key_size if isinstance(pub, rsa.RSAPublicKey) else 0


# --------------------------------------------------------------------------
# Certificate bundles (LoadCertBundleFromPEM)
# --------------------------------------------------------------------------


def _load_bundle(pem: bytes) -> tuple[list[tuple[bytes, x509.Certificate]], str | None]:
    """``([(der, cert)...], None)`` or ``([], reason)`` per notary's LoadCertBundleFromPEM."""
    out: list[tuple[bytes, x509.Certificate]] = []
    for block in pem_blocks(pem):
        if block.type != "CERTIFICATE":
            return [], f"it holds a PEM block of type {block.type!r}, not only CERTIFICATE blocks"
        cert = parse_certificate(block.data)
        if cert is None:
            return [], "one of its certificates cannot be parsed"
        out.append((block.data, cert))
    if not out:
        return [], "it holds no PEM certificate"
    return out, None


def load_cert_bundle(pem: bytes) -> list[x509.Certificate] | None:
    """Every certificate of a PEM bundle; ``None`` on a non-CERTIFICATE block, a bad cert, none."""
    bundle, _ = _load_bundle(pem)
    return [cert for _, cert in bundle] or None


# --------------------------------------------------------------------------
# ValidateCertificate
# --------------------------------------------------------------------------


def _cert_problem(
    cert: x509.Certificate, at: datetime | None, check_expiry: bool
) -> tuple[str, str, str] | None:
    """``(code, what is wrong, what to do)`` per notary's ValidateCertificate, or ``None``."""
    not_before = cert.not_valid_before_utc
    not_after = cert.not_valid_after_utc
    if not_before > not_after:
        return (
            "root-cert-invalid",
            f"has a validity window that ends ({_iso(not_after)}) before it starts "
            f"({_iso(not_before)})",
            "the certificate must be re-issued",
        )
    sig_name = _SHA1_SIGNATURES.get(cert.signature_algorithm_oid.dotted_string)
    if sig_name is not None:
        return (
            "root-cert-weak",
            f"is signed with {sig_name}, and notary rejects SHA-1 certificates",
            "the certificate must be re-issued with SHA-256 or better",
        )
    bits = _rsa_bits(cert)
    if bits is not None and bits < _MIN_RSA_BITS:
        return (
            "root-cert-weak",
            f"has a {bits}-bit RSA key, and notary requires at least {_MIN_RSA_BITS} bits",
            "the key must be replaced by a stronger one",
        )
    if check_expiry and at is not None:
        at = _utc(at)
        if not_before > _later(at, _NOT_BEFORE_LEEWAY):
            return (
                "root-cert-not-yet-valid",
                f"is not valid until {_iso(not_before)} (validation time {_iso(at)}; "
                "notary allows 1 day of clock skew)",
                "check the clock, or verify as of a later time with --at",
            )
        if at > not_after:
            return (
                "root-cert-expired",
                f"expired at {_iso(not_after)}",
                "the repository owner must rotate the root key, "
                "or verify as of an earlier time with --at",
            )
    return None


def _label(cert: x509.Certificate, gun: str | None, key_id: str | None, what: str) -> str:
    parts = [f"key {_short(key_id)}"] if key_id else []
    parts.append(f"CN {cert_common_name(cert)!r}")
    where = f"{what} for {gun}" if gun else what
    return f"{where} ({', '.join(parts)})"


def validate_certificate(
    cert: x509.Certificate,
    at: datetime,
    check_expiry: bool,
    *,
    gun: str | None = None,
    key_id: str | None = None,
) -> tuple[str, str] | None:
    """notary's ``utils.ValidateCertificate``: ``None`` if valid, else ``(code, message)``.

    Invalid: notBefore after notAfter (``root-cert-invalid``); a SHA-1
    signature or an RSA key under 2048 bits (``root-cert-weak``); with
    ``check_expiry``, notBefore more than a day after ``at``
    (``root-cert-not-yet-valid``) or ``at`` after notAfter
    (``root-cert-expired``).  ``gun`` and ``key_id`` only enrich the message.
    """
    problem = _cert_problem(cert, at, check_expiry)
    if problem is None:
        return None
    code, what, todo = problem
    return code, f"{_label(cert, gun, key_id, 'root certificate')} {what}; {todo}"


def _near_expiry(cert: x509.Certificate, at: datetime) -> bool:
    return cert.not_valid_after_utc < _add_months(_utc(at), _NEAR_EXPIRY_MONTHS)


# --------------------------------------------------------------------------
# Root certificates (spec 4.2)
# --------------------------------------------------------------------------


class RootCerts(Record):
    """The usable root certificates of a root.json, keyed by the ID of the rebuilt key.

    * ``keys``: the rebuilt keys (Go PEM of the leaf + valid intermediates).
      Root signatures must reference these IDs.
    * ``leaves``: the leaf certificate behind each rebuilt key.
    * ``intermediates``: the intermediates included in each rebuilt key.
    * ``source_ids``: the root.json key ID (content ID) each rebuilt key came from.
    * ``warnings``: certificates expiring within 6 months of the validation time.
    """

    __slots__ = ("intermediates", "keys", "leaves", "source_ids", "warnings")
    keys: dict[str, TufKey]
    leaves: dict[str, x509.Certificate]
    intermediates: dict[str, list[x509.Certificate]]
    source_ids: dict[str, str]
    warnings: list[str]

    def __init__(
        self,
        keys: dict[str, TufKey] | None = None,
        leaves: dict[str, x509.Certificate] | None = None,
        intermediates: dict[str, list[x509.Certificate]] | None = None,
        source_ids: dict[str, str] | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self.keys = {} if keys is None else keys
        self.leaves = {} if leaves is None else leaves
        self.intermediates = {} if intermediates is None else intermediates
        self.source_ids = {} if source_ids is None else source_ids
        self.warnings = [] if warnings is None else warnings


class _Rejection(Record):
    __slots__ = ("code", "is_certificate", "message")
    code: str
    message: str
    is_certificate: bool

    def __init__(self, code: str, message: str, is_certificate: bool) -> None:
        self.code = code
        self.message = message
        self.is_certificate = is_certificate


def root_leaf_keys(
    keys: Mapping[str, TufKey],
    root_keyids: Sequence[str],
    gun: str,
    at: datetime,
    *,
    check_expiry: bool = True,
) -> RootCerts:
    """The valid root leaf certificates of a root, rebuilt into keys as notary does.

    For each ID in ``root_keyids`` present in ``keys``: the key's public bytes
    must be a PEM bundle of certificates only, with exactly one non-CA
    certificate, first; its CN must match ``gun``; it must pass
    :func:`validate_certificate`.  CA certificates are intermediates; with
    ``check_expiry`` they are validated the same way and invalid ones are
    dropped (for a previous root, ``check_expiry=False``, notary keeps them all).

    Raises :class:`NotTrusted` (role ``root``) if no key survives.
    """
    result = RootCerts()
    rejections: list[_Rejection] = []
    non_cert_types: list[str] = []
    # notary keys its certificate maps by the content ID, so duplicate keys collapse.
    seen: set[str] = set()

    for listed_id in root_keyids:
        key = keys.get(listed_id)
        if key is None:
            continue
        content_id = key.id
        if content_id in seen:
            continue
        seen.add(content_id)
        label_id = _short(content_id)

        bundle, reason = _load_bundle(key.public)
        if reason is not None:
            claims_x509 = key.keytype in (ECDSA_X509, RSA_X509)
            if not claims_x509:
                non_cert_types.append(key.keytype)
            rejections.append(
                _Rejection(
                    "root-cert-invalid",
                    f"root key {label_id} of {gun} ({key.keytype}) is not a usable certificate "
                    f"bundle: {reason}; root keys must be x509 certificates",
                    is_certificate=claims_x509,
                )
            )
            continue

        leaves = [(der, c) for der, c in bundle if not is_ca(c)]
        if len(leaves) != 1 or is_ca(bundle[0][1]):
            problem = (
                f"holds {len(leaves)} leaf (non-CA) certificates; exactly one is required"
                if len(leaves) != 1
                else "does not start with its leaf certificate"
            )
            rejections.append(
                _Rejection(
                    "root-cert-invalid",
                    f"root key {label_id} of {gun} {problem}; the repository owner must "
                    "publish the leaf certificate first, followed only by CA certificates",
                    is_certificate=True,
                )
            )
            continue
        leaf_der, leaf = leaves[0]

        cn = cert_common_name(leaf)
        if not cn_matches_gun(cn, gun):
            rejections.append(
                _Rejection(
                    "root-cert-cn-mismatch",
                    f"root certificate (key {label_id}) has CN {cn!r}, which does not match "
                    f"the repository {gun}; the certificate's CN must be the repository name "
                    "(or a prefix ending in '*')",
                    is_certificate=True,
                )
            )
            continue

        invalid = validate_certificate(leaf, at, check_expiry, gun=gun, key_id=content_id)
        if invalid is not None:
            rejections.append(_Rejection(invalid[0], invalid[1], is_certificate=True))
            continue

        intermediates: list[tuple[bytes, x509.Certificate]] = []
        for der, cert in bundle:
            if not is_ca(cert):
                continue
            if check_expiry and _cert_problem(cert, at, True) is not None:
                continue  # notary drops invalid intermediates silently
            intermediates.append((der, cert))

        algorithm = cert_key_algorithm(leaf)
        if algorithm not in ("rsa", "ecdsa"):
            rejections.append(
                _Rejection(
                    "root-integrity",
                    f"root certificate for {gun} (key {label_id}, CN {cn!r}) holds "
                    f"{'an ed25519' if algorithm == 'ed25519' else 'an unsupported'} key, "
                    "which notary cannot use to verify root.json; the root key must be "
                    "ECDSA or RSA",
                    is_certificate=True,
                )
            )
            continue

        pem = go_pem_encode(leaf_der) + b"".join(go_pem_encode(der) for der, _ in intermediates)
        rebuilt = TufKey(RSA_X509 if algorithm == "rsa" else ECDSA_X509, pem)
        rid = rebuilt.id
        result.keys[rid] = rebuilt
        result.leaves[rid] = leaf
        result.intermediates[rid] = [c for _, c in intermediates]
        result.source_ids[rid] = content_id

        if check_expiry:
            if _near_expiry(leaf, at):
                result.warnings.append(
                    f"root certificate for {gun} (key {label_id}, CN {cn!r}) expires at "
                    f"{_iso(leaf.not_valid_after_utc)}, within 6 months; the repository "
                    "owner should rotate the root key soon"
                )
            for _, cert in intermediates:
                if _near_expiry(cert, at):
                    result.warnings.append(
                        f"intermediate certificate CN {cert_common_name(cert)!r} of root key "
                        f"{label_id} expires at {_iso(cert.not_valid_after_utc)}, within 6 months"
                    )

    if result.keys:
        return result
    raise _no_root_keys(gun, rejections, non_cert_types)


def _no_root_keys(gun: str, rejections: list[_Rejection], non_cert_types: list[str]) -> NotTrusted:
    if not rejections:
        return NotTrusted(
            ErrorCode.ROOT_CERT_INVALID,
            f"the root role of {gun} lists no key present in root.json; "
            "root keys must be x509 certificates whose CN is the repository name",
            role="root",
        )
    certs = [r for r in rejections if r.is_certificate]
    if not certs:
        types = ", ".join(sorted(set(non_cert_types)))
        return NotTrusted(
            ErrorCode.ROOT_CERT_INVALID,
            f"no root key of {gun} is an x509 certificate (key types: {types}); notary "
            "requires root keys of type ecdsa-x509 or rsa-x509 holding a certificate whose CN "
            "is the repository name",
            role="root",
        )
    first = certs[0]
    others = len(rejections) - 1
    plural = "s" if others != 1 else ""
    extra = f" ({others} other root key{plural} also rejected)" if others else ""
    return NotTrusted(first.code, first.message + extra, role="root")


# --------------------------------------------------------------------------
# Delegation certificates (spec 5.2)
# --------------------------------------------------------------------------


def validate_delegation_key(key: TufKey, role: str) -> None:
    """notary's check of a delegation key's certificate (``Repo.GetDelegationRole``).

    As in notary, any key whose public bytes hold a (header-less, parseable)
    CERTIFICATE PEM block is checked -- in practice the x509 key types.  Only
    the validity window, SHA-1 signatures and RSA key size are checked:
    expired delegation certificates are accepted (spec 5.2, D5).

    Raises :class:`NotTrusted` ``delegation-cert-invalid``.
    """
    cert = load_cert_from_pem(key.public)
    if cert is None:
        return
    problem = _cert_problem(cert, None, check_expiry=False)
    if problem is None:
        return
    _, what, todo = problem
    raise NotTrusted(
        ErrorCode.DELEGATION_CERT_INVALID,
        f"delegation certificate of {role} (key {_short(key.id)}, "
        f"CN {cert_common_name(cert)!r}) {what}; {todo} and the delegation updated",
        role=role,
    )
