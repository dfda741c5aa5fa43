"""Root and delegation certificate rules (trustcheck.core.certs), notary-v1-spec.md 4.2 / 5.2.

Certificates are built with cryptography's x509 builder.  Where the builder
refuses to produce what an attacker could (SHA-1 signatures, a validity window
that ends before it starts), the DER is edited directly: notary never checks a
root certificate's own signature, so the edited certificates are as good as
re-signed ones for these rules.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from trustcheck.core.certs import (
    RootCerts,
    _add_months,
    cert_common_name,
    cn_matches_gun,
    go_pem_encode,
    is_ca,
    load_cert_bundle,
    root_leaf_keys,
    validate_certificate,
    validate_delegation_key,
)
from trustcheck.core.crypto import TufKey, verify_signature
from trustcheck.errors import NotTrusted

REALWORLD = Path(__file__).resolve().parents[2] / "fixtures" / "realworld"
META03 = REALWORLD / "notary0.3" / "tuf" / "docker.com" / "notary0.3" / "tst" / "metadata"
META01 = REALWORLD / "notary0.1" / "tuf" / "docker.com" / "notary0.1" / "samplerepo" / "metadata"
GUN03 = "docker.com/notary0.3/tst"
GUN01 = "docker.com/notary0.1/samplerepo"
ROOT03_ID = "354e203ba09dbe17807b6a9d191bff887167c06d121e738d849446a9c76c2866"

GUN = "example.com/org/app"
AT = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
MSG = b'{"_type":"Root"}'


# --------------------------------------------------------------------------
# certificate building
# --------------------------------------------------------------------------

_P256 = ec.generate_private_key(ec.SECP256R1())
_RSA2048 = rsa.generate_private_key(65537, 2048)


def make_cert(
    cn: str = GUN,
    *,
    key: Any = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    ca: bool | None = False,
    signer: Any = None,
) -> x509.Certificate:
    """A certificate; ``ca=None`` leaves out basicConstraints entirely."""
    key = key if key is not None else _P256
    signer = signer if signer is not None else key
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or AT - timedelta(days=30))
        .not_valid_after(not_after or AT + timedelta(days=3650))
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
    algo = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(signer, algo)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def x509_key(*certs: x509.Certificate, keytype: str | None = None) -> TufKey:
    """A root key as notary writes it: Go PEM of each certificate, concatenated."""
    if keytype is None:
        keytype = (
            "rsa-x509" if isinstance(certs[0].public_key(), rsa.RSAPublicKey) else "ecdsa-x509"
        )
    return TufKey(keytype, b"".join(go_pem_encode(der(c)) for c in certs))


def roots(*keys: TufKey, at: datetime = AT, gun: str = GUN, **kw: Any) -> RootCerts:
    return root_leaf_keys({k.id: k for k in keys}, [k.id for k in keys], gun, at, **kw)


def rejected(*keys: TufKey, at: datetime = AT, gun: str = GUN) -> NotTrusted:
    with pytest.raises(NotTrusted) as info:
        roots(*keys, at=at, gun=gun)
    assert info.value.role == "root"
    return info.value


# Minimal DER editing, to produce certificates the builder refuses to make.


def _tlv(buf: bytes, pos: int) -> tuple[int, int]:
    length = buf[pos + 1]
    start = pos + 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(buf[start : start + n], "big")
        start += n
    return start, start + length


def _children(seq: bytes) -> list[bytes]:
    start, end = _tlv(seq, 0)
    out = []
    while start < end:
        _, nxt = _tlv(seq, start)
        out.append(seq[start:nxt])
        start = nxt
    return out


def _seq(parts: list[bytes]) -> bytes:
    body = b"".join(parts)
    n = len(body)
    if n < 0x80:
        return bytes([0x30, n]) + body
    lb = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x30, 0x80 | len(lb)]) + lb + body


def edit_cert(
    cert: x509.Certificate, *, sig_alg: bytes | None = None, swap_validity: bool = False
) -> x509.Certificate:
    tbs, outer_alg, signature = _children(der(cert))
    fields = _children(tbs)  # version, serial, sigalg, issuer, validity, subject, spki, exts
    if sig_alg is not None:
        fields[2] = outer_alg = sig_alg
    if swap_validity:
        fields[4] = _seq(list(reversed(_children(fields[4]))))
    return x509.load_der_x509_certificate(_seq([_seq(fields), outer_alg, signature]))


ECDSA_WITH_SHA1 = bytes.fromhex("300906072a8648ce3d0401")
SHA1_WITH_RSA = bytes.fromhex("300d06092a864886f70d0101050500")


def sign_raw(priv: ec.EllipticCurvePrivateKey, msg: bytes) -> bytes:
    r, s = decode_dss_signature(priv.sign(msg, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def load_keys(path: Path) -> tuple[dict[str, Any], dict[str, TufKey]]:
    doc: dict[str, Any] = json.loads(path.read_bytes())
    keys = {
        kid: TufKey(k["keytype"], base64.b64decode(k["keyval"]["public"]))
        for kid, k in doc["signed"]["keys"].items()
    }
    return doc, keys


# --------------------------------------------------------------------------
# Go PEM and bundles
# --------------------------------------------------------------------------


def test_go_pem_encode_matches_an_independent_encoder() -> None:
    cert = make_cert()
    assert go_pem_encode(der(cert)) == cert.public_bytes(Encoding.PEM)
    lines = go_pem_encode(der(cert)).split(b"\n")
    assert lines[0] == b"-----BEGIN CERTIFICATE-----"
    assert lines[-2:] == [b"-----END CERTIFICATE-----", b""]
    assert all(len(line) == 64 for line in lines[1:-3])
    assert 0 < len(lines[-3]) <= 64


def test_go_pem_encode_exact_line_multiple_and_empty() -> None:
    assert go_pem_encode(bytes(48), "X") == (
        b"-----BEGIN X-----\n" + b"A" * 64 + b"\n-----END X-----\n"
    )
    assert go_pem_encode(b"") == b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"


def test_load_cert_bundle() -> None:
    leaf, ca = make_cert(), make_cert("Some CA", ca=True)
    bundle = load_cert_bundle(go_pem_encode(der(leaf)) + b"junk\n" + go_pem_encode(der(ca)))
    assert bundle is not None and [der(c) for c in bundle] == [der(leaf), der(ca)]
    assert not is_ca(bundle[0]) and is_ca(bundle[1])
    # A block of another type anywhere spoils the bundle; so does an unparseable cert.
    spki_pem = _P256.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    assert load_cert_bundle(go_pem_encode(der(leaf)) + spki_pem) is None
    assert load_cert_bundle(go_pem_encode(b"\x30\x03\x02\x01\x01")) is None
    assert load_cert_bundle(b"") is None
    assert load_cert_bundle(der(leaf)) is None


def test_is_ca_needs_basic_constraints_with_ca_true() -> None:
    assert not is_ca(make_cert(ca=None))
    assert not is_ca(make_cert(ca=False))
    assert is_ca(make_cert(ca=True))


# --------------------------------------------------------------------------
# CN matching
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cn", "gun", "ok"),
    [
        (GUN, GUN, True),
        (GUN + "x", GUN, False),
        (GUN.upper(), GUN, False),
        ("example.com/*", GUN, True),
        ("example.com/org/ap*", GUN, True),
        ("fake.t*", "fake.test/x", True),
        ("example.com/org/app/*", GUN, False),
        ("other.com/*", GUN, False),
        ("*", GUN, True),
        ("example.com/org**", GUN, True),  # every trailing '*' is stripped, as in notary
        ("", GUN, False),
    ],
)
def test_cn_matches_gun(cn: str, gun: str, ok: bool) -> None:
    assert cn_matches_gun(cn, gun) is ok


def test_cn_mismatch_rejected() -> None:
    err = rejected(x509_key(make_cert("example.com/org/other")))
    assert err.code == "root-cert-cn-mismatch"
    assert "'example.com/org/other'" in err.message and GUN in err.message


def test_wildcard_cn_accepted() -> None:
    key = x509_key(make_cert("example.com/org/*"))
    result = roots(key)
    assert list(result.keys) == [key.id]
    assert cert_common_name(result.leaves[key.id]) == "example.com/org/*"


def test_cn_is_the_last_common_name_attribute() -> None:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "first"),
            x509.NameAttribute(NameOID.COMMON_NAME, GUN),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_P256.public_key())
        .serial_number(1)
        .not_valid_before(AT - timedelta(days=1))
        .not_valid_after(AT + timedelta(days=3650))
        .sign(_P256, hashes.SHA256())
    )
    assert cert_common_name(cert) == GUN
    assert len(roots(x509_key(cert)).keys) == 1


# --------------------------------------------------------------------------
# ValidateCertificate rules
# --------------------------------------------------------------------------


def test_valid_leaf_rebuilds_to_the_same_key_and_verifies() -> None:
    cert = make_cert()
    key = x509_key(cert)
    result = roots(key)
    assert list(result.keys) == [key.id]
    assert result.keys[key.id] == key
    assert der(result.leaves[key.id]) == der(cert)
    assert result.source_ids == {key.id: key.id}
    assert result.intermediates == {key.id: []}
    assert result.warnings == []
    assert verify_signature(result.keys[key.id], "ecdsa", sign_raw(_P256, MSG), MSG)


def test_rsa_leaf_rebuilds_as_rsa_x509() -> None:
    key = x509_key(make_cert(key=_RSA2048), keytype="ecdsa-x509")  # declared type is ignored
    result = roots(key)
    (rebuilt,) = result.keys.values()
    assert rebuilt.keytype == "rsa-x509"
    assert rebuilt.public == key.public and rebuilt.id != key.id


def test_expired_leaf_rejected_with_date_in_message() -> None:
    cert = make_cert(not_before=AT - timedelta(days=400), not_after=AT - timedelta(seconds=1))
    key = x509_key(cert)
    err = rejected(key)
    assert err.code == "root-cert-expired"
    assert "expired at 2026-01-15T11:59:59Z" in err.message
    assert key.id[:8] in err.message and f"'{GUN}'" in err.message and "--at" in err.message
    assert "\n" not in err.message
    # At notAfter itself it is still valid.
    assert len(roots(key, at=AT - timedelta(seconds=1)).keys) == 1


def test_not_before_leeway_is_one_day() -> None:
    soon = x509_key(make_cert(not_before=AT + timedelta(hours=12)))
    assert len(roots(soon).keys) == 1
    later = x509_key(make_cert(not_before=AT + timedelta(days=2)))
    err = rejected(later)
    assert err.code == "root-cert-not-yet-valid"
    assert "2026-01-17T12:00:00Z" in err.message
    edge = x509_key(make_cert(not_before=AT + timedelta(days=1)))
    assert len(roots(edge).keys) == 1
    assert rejected(edge, at=AT - timedelta(seconds=1)).code == "root-cert-not-yet-valid"


@pytest.mark.parametrize(
    ("key", "sig_alg"), [(_P256, ECDSA_WITH_SHA1), (_RSA2048, SHA1_WITH_RSA)], ids=["ecdsa", "rsa"]
)
def test_sha1_signed_leaf_rejected(key: Any, sig_alg: bytes) -> None:
    cert = edit_cert(make_cert(key=key), sig_alg=sig_alg)
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha1"
    err = rejected(x509_key(cert))
    assert err.code == "root-cert-weak"
    assert "SHA-1" in err.message


def test_rsa_1024_leaf_rejected() -> None:
    weak = rsa.generate_private_key(65537, 1024)
    err = rejected(x509_key(make_cert(key=weak)))
    assert err.code == "root-cert-weak"
    assert "1024-bit" in err.message


def test_validity_window_ending_before_it_starts_rejected() -> None:
    cert = edit_cert(make_cert(), swap_validity=True)
    assert cert.not_valid_before_utc > cert.not_valid_after_utc
    problem = validate_certificate(cert, AT, False)
    assert problem is not None and problem[0] == "root-cert-invalid"
    assert rejected(x509_key(cert)).code == "root-cert-invalid"


def test_validate_certificate_directly() -> None:
    expired = make_cert(not_after=AT - timedelta(days=1))
    assert validate_certificate(make_cert(), AT, True) is None
    assert validate_certificate(expired, AT, False) is None
    problem = validate_certificate(expired, AT, True, gun=GUN, key_id="ab" * 32)
    assert problem is not None
    code, message = problem
    assert code == "root-cert-expired"
    assert message.startswith(f"root certificate for {GUN} (key abababab…, CN '{GUN}') expired")


def test_naive_validation_time_is_utc() -> None:
    cert = make_cert(not_after=AT)
    assert validate_certificate(cert, AT.replace(tzinfo=None), True) is None
    late = (AT + timedelta(seconds=1)).replace(tzinfo=None)
    assert validate_certificate(cert, late, True) is not None


# --------------------------------------------------------------------------
# bundles with intermediates, leaf position, PEM formatting
# --------------------------------------------------------------------------


def test_leaf_plus_ca_bundle_accepted_and_rebuilt_identically() -> None:
    leaf, ca = make_cert(), make_cert("Intermediate CA", ca=True)
    key = x509_key(leaf, ca)
    result = roots(key)
    assert list(result.keys) == [key.id]
    assert [der(c) for c in result.intermediates[key.id]] == [der(ca)]


def test_expired_intermediate_is_dropped_and_changes_the_key_id() -> None:
    leaf = make_cert()
    old_ca = make_cert("Old CA", ca=True, not_after=AT - timedelta(days=1))
    key = x509_key(leaf, old_ca)
    result = roots(key)
    (rid,) = result.keys
    assert rid != key.id
    assert result.keys[rid].public == go_pem_encode(der(leaf))
    assert result.source_ids[rid] == key.id
    # For a previous root (no expiry check) notary keeps every intermediate.
    assert list(roots(key, check_expiry=False).keys) == [key.id]


def test_sha1_intermediate_is_dropped() -> None:
    leaf = make_cert()
    ca = edit_cert(make_cert("SHA1 CA", ca=True), sig_alg=ECDSA_WITH_SHA1)
    result = roots(x509_key(leaf, ca))
    (rebuilt,) = result.keys.values()
    assert rebuilt == x509_key(leaf)


def test_ca_first_is_skipped() -> None:
    err = rejected(x509_key(make_cert("CA", ca=True), make_cert()))
    assert err.code == "root-cert-invalid"
    assert "leaf certificate first" in err.message


def test_two_leaves_are_skipped() -> None:
    err = rejected(x509_key(make_cert(), make_cert()))
    assert err.code == "root-cert-invalid"
    assert "2 leaf" in err.message


def test_only_a_ca_is_skipped() -> None:
    err = rejected(x509_key(make_cert(GUN, ca=True)))
    assert err.code == "root-cert-invalid"
    assert "0 leaf" in err.message


def test_leaf_without_basic_constraints_is_a_leaf() -> None:
    assert len(roots(x509_key(make_cert(ca=None))).keys) == 1


def _reflow(pem: bytes, width: int, eol: bytes = b"\n") -> bytes:
    lines = pem.strip().split(b"\n")
    body = b"".join(lines[1:-1])
    chunks = [body[i : i + width] for i in range(0, len(body), width)]
    return eol.join([lines[0], *chunks, lines[-1]]) + eol


@pytest.mark.parametrize(
    "variant",
    [
        lambda p: _reflow(p, 76),
        lambda p: _reflow(p, 64, b"\r\n"),
        lambda p: p.rstrip(b"\n"),
    ],
    ids=["76-char-lines", "crlf", "no-trailing-newline"],
)
def test_non_go_pem_is_accepted_but_rebuilt_key_id_differs(variant: Any) -> None:
    cert = make_cert()
    go_key = x509_key(cert)
    odd = TufKey("ecdsa-x509", variant(go_key.public))
    assert odd.public != go_key.public
    result = roots(odd)
    assert list(result.keys) == [go_key.id]
    assert odd.id not in result.keys
    assert result.source_ids[go_key.id] == odd.id


# --------------------------------------------------------------------------
# several keys, reasons, non-certificate keys
# --------------------------------------------------------------------------


def test_good_key_survives_next_to_bad_ones() -> None:
    bad = x509_key(make_cert("nope"))
    plain = TufKey(
        "ecdsa", _P256.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    good = x509_key(make_cert())
    result = roots(bad, plain, good)
    assert list(result.keys) == [good.id]


def test_first_keys_reason_is_reported() -> None:
    mismatch = x509_key(make_cert("nope"))
    expired = x509_key(make_cert(not_after=AT - timedelta(days=1)))
    err = rejected(mismatch, expired)
    assert err.code == "root-cert-cn-mismatch"
    assert "1 other root key also rejected" in err.message
    assert rejected(expired, mismatch).code == "root-cert-expired"


def test_certificate_reason_preferred_over_non_certificate_keys() -> None:
    plain = TufKey(
        "ecdsa", _P256.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    expired = x509_key(make_cert(not_after=AT - timedelta(days=1)))
    assert rejected(plain, expired).code == "root-cert-expired"


def test_non_certificate_root_keys_rejected() -> None:
    plain = TufKey(
        "ecdsa", _P256.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    ed = TufKey("ed25519", bytes(32))
    err = rejected(plain, ed)
    assert err.code == "root-cert-invalid"
    assert "x509 certificate" in err.message
    assert "ecdsa, ed25519" in err.message


def test_broken_x509_root_key_reported_as_such() -> None:
    plain = TufKey("ecdsa", bytes(10))
    broken = TufKey("ecdsa-x509", go_pem_encode(b"\x30\x03\x02\x01\x01"))
    err = rejected(plain, broken)
    assert err.code == "root-cert-invalid"
    assert "cannot be parsed" in err.message and broken.id[:8] in err.message


def test_certificate_under_a_plain_key_type_still_counts() -> None:
    # notary reads the certificate bundle whatever the declared keytype.
    cert = make_cert()
    key = TufKey("ecdsa", go_pem_encode(der(cert)))
    (rebuilt,) = roots(key).keys.values()
    assert rebuilt == x509_key(cert)


def test_ed25519_leaf_cannot_sign_root() -> None:
    ed = ed25519.Ed25519PrivateKey.generate()
    err = rejected(x509_key(make_cert(key=ed), keytype="ecdsa-x509"))
    assert err.code == "root-integrity"
    assert "ed25519" in err.message


def test_missing_and_duplicate_root_keyids() -> None:
    key = x509_key(make_cert())
    result = root_leaf_keys({key.id: key, "alias": key}, ["missing", key.id, "alias"], GUN, AT)
    assert list(result.keys) == [key.id]
    with pytest.raises(NotTrusted) as info:
        root_leaf_keys({key.id: key}, ["missing"], GUN, AT)
    assert info.value.code == "root-cert-invalid"


def test_only_root_role_keyids_are_considered() -> None:
    key = x509_key(make_cert())
    with pytest.raises(NotTrusted):
        root_leaf_keys({key.id: key}, [], GUN, AT)


# --------------------------------------------------------------------------
# near-expiry warnings and the previous-root mode
# --------------------------------------------------------------------------


def test_warns_within_six_months() -> None:
    key = x509_key(make_cert(not_after=AT + timedelta(days=90)))
    result = roots(key)
    assert len(result.keys) == 1
    assert len(result.warnings) == 1
    assert "within 6 months" in result.warnings[0] and "2026-04-15T12:00:00Z" in result.warnings[0]
    assert roots(x509_key(make_cert(not_after=AT + timedelta(days=200)))).warnings == []
    assert roots(key, check_expiry=False).warnings == []


def test_add_months_rolls_over_like_go() -> None:
    assert _add_months(datetime(2025, 8, 31, tzinfo=UTC), 6) == datetime(2026, 3, 3, tzinfo=UTC)
    assert _add_months(datetime(2023, 8, 31, tzinfo=UTC), 6) == datetime(2024, 3, 2, tzinfo=UTC)
    assert _add_months(datetime(2026, 7, 15, 3, tzinfo=UTC), 6) == datetime(
        2027, 1, 15, 3, tzinfo=UTC
    )


def test_previous_root_mode_ignores_expiry_but_not_cn_or_weakness() -> None:
    expired = x509_key(make_cert(not_after=AT - timedelta(days=1)))
    assert list(roots(expired, check_expiry=False).keys) == [expired.id]
    with pytest.raises(NotTrusted) as info:
        roots(x509_key(make_cert("nope", not_after=AT - timedelta(days=1))), check_expiry=False)
    assert info.value.code == "root-cert-cn-mismatch"
    with pytest.raises(NotTrusted) as info:
        roots(x509_key(make_cert(key=rsa.generate_private_key(65537, 1024))), check_expiry=False)
    assert info.value.code == "root-cert-weak"


# --------------------------------------------------------------------------
# real-world roots
# --------------------------------------------------------------------------


def test_notary03_root_cert_expired_now() -> None:
    doc, keys = load_keys(META03 / "root.json")
    with pytest.raises(NotTrusted) as info:
        root_leaf_keys(
            keys,
            doc["signed"]["roles"]["root"]["keyids"],
            GUN03,
            datetime(2026, 11, 26, tzinfo=UTC),
        )
    assert info.value.code == "root-cert-expired"
    assert info.value.role == "root"
    assert "2026-07-25T" in info.value.message and "354e203b" in info.value.message


def test_notary03_root_cert_valid_in_2020_and_verifies_root() -> None:
    doc, keys = load_keys(META03 / "root.json")
    result = root_leaf_keys(
        keys, doc["signed"]["roles"]["root"]["keyids"], GUN03, datetime(2020, 1, 1, tzinfo=UTC)
    )
    assert list(result.keys) == [ROOT03_ID]  # notary wrote Go PEM: the rebuild is identical
    assert result.warnings == []
    msg = json.dumps(
        doc["signed"], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
    (sig,) = doc["signatures"]
    assert verify_signature(
        result.keys[sig["keyid"]], sig["method"], base64.b64decode(sig["sig"]), msg
    )
    # As a previous root, expiry does not matter.
    late = root_leaf_keys(
        keys,
        doc["signed"]["roles"]["root"]["keyids"],
        GUN03,
        datetime(2026, 11, 26, tzinfo=UTC),
        check_expiry=False,
    )
    assert list(late.keys) == [ROOT03_ID]


def test_notary03_root_warns_months_before_expiry() -> None:
    doc, keys = load_keys(META03 / "root.json")
    result = root_leaf_keys(
        keys, doc["signed"]["roles"]["root"]["keyids"], GUN03, datetime(2026, 3, 1, tzinfo=UTC)
    )
    assert len(result.warnings) == 1 and "2026-07-25T" in result.warnings[0]


def test_notary03_root_wrong_gun() -> None:
    doc, keys = load_keys(META03 / "root.json")
    with pytest.raises(NotTrusted) as info:
        root_leaf_keys(
            keys, doc["signed"]["roles"]["root"]["keyids"], GUN01, datetime(2020, 1, 1, tzinfo=UTC)
        )
    assert info.value.code == "root-cert-cn-mismatch"


def test_notary01_root_still_valid() -> None:
    doc, keys = load_keys(META01 / "root.json")
    result = root_leaf_keys(
        keys, doc["signed"]["roles"]["root"]["keyids"], GUN01, datetime(2026, 11, 26, tzinfo=UTC)
    )
    assert [k[:8] for k in result.keys] == ["4ff57dc9"]


# --------------------------------------------------------------------------
# delegation certificates (spec 5.2)
# --------------------------------------------------------------------------


def test_expired_delegation_certificate_accepted() -> None:
    expired = make_cert(
        "someone",
        key=_RSA2048,
        not_after=datetime(2017, 1, 1, tzinfo=UTC),
        not_before=datetime(2016, 1, 1, tzinfo=UTC),
    )
    validate_delegation_key(x509_key(expired), "targets/releases")


def test_realworld_delegation_key_accepted() -> None:
    doc = json.loads((META03 / "targets.json").read_bytes())
    for k in doc["signed"]["delegations"]["keys"].values():
        key = TufKey(k["keytype"], base64.b64decode(k["keyval"]["public"]))
        assert key.keytype == "rsa-x509"
        validate_delegation_key(key, "targets/releases")


def test_weak_delegation_certificates_rejected() -> None:
    weak = x509_key(make_cert("dev", key=rsa.generate_private_key(65537, 1024)))
    with pytest.raises(NotTrusted) as info:
        validate_delegation_key(weak, "targets/releases")
    assert info.value.code == "delegation-cert-invalid"
    assert info.value.role == "targets/releases"
    assert "1024-bit" in info.value.message and "targets/releases" in info.value.message

    sha1 = x509_key(edit_cert(make_cert("dev"), sig_alg=ECDSA_WITH_SHA1))
    with pytest.raises(NotTrusted) as info:
        validate_delegation_key(sha1, "targets/qa")
    assert info.value.code == "delegation-cert-invalid"

    window = x509_key(edit_cert(make_cert("dev"), swap_validity=True))
    with pytest.raises(NotTrusted) as info:
        validate_delegation_key(window, "targets/qa")
    assert info.value.code == "delegation-cert-invalid"


def test_non_x509_delegation_keys_are_not_checked() -> None:
    validate_delegation_key(
        TufKey(
            "ecdsa",
            _P256.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
        ),
        "targets/a",
    )
    validate_delegation_key(TufKey("ed25519", bytes(32)), "targets/a")
    validate_delegation_key(TufKey("rsa-x509", b"not pem at all"), "targets/a")
