"""Keys, key IDs, Go PEM decoding and notary's signature verifiers (trustcheck.core.crypto).

Real crypto throughout: keys are generated with ``cryptography`` and real-world
trust data written by notary 0.1 / 0.3 is verified byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from trustcheck.core.crypto import (
    TufKey,
    canonical_key_id,
    cert_key_algorithm,
    cert_of,
    describe_key,
    go_b64decode,
    key_id,
    load_cert_from_pem,
    pem_blocks,
    pem_first_block,
    verify_signature,
)

REALWORLD = Path(__file__).resolve().parents[2] / "fixtures" / "realworld"
META03 = REALWORLD / "notary0.3" / "tuf" / "docker.com" / "notary0.3" / "tst" / "metadata"
META01 = REALWORLD / "notary0.1" / "tuf" / "docker.com" / "notary0.1" / "samplerepo" / "metadata"
REAL_FILES = sorted(REALWORLD.rglob("*.json"))

MSG = b'{"_type":"Targets","version":1}'


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def canon(obj: Any) -> bytes:
    # Good enough for the real-world files (no control characters, no floats).
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_bytes())
    return data


def file_keys(doc: dict[str, Any]) -> dict[str, TufKey]:
    signed = doc["signed"]
    raw = dict(signed.get("keys") or {})
    raw.update((signed.get("delegations") or {}).get("keys") or {})
    return {
        kid: TufKey(k["keytype"], base64.b64decode(k["keyval"]["public"])) for kid, k in raw.items()
    }


def spki(pub: Any) -> bytes:
    der: bytes = pub.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return der


def raw_ecdsa_sign(priv: ec.EllipticCurvePrivateKey, msg: bytes) -> bytes:
    r, s = decode_dss_signature(priv.sign(msg, ec.ECDSA(hashes.SHA256())))
    size = (priv.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


PSS32 = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


def self_signed_pem(priv: Any, cn: str = "example.com/app") -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.now(UTC)
    algo = None if isinstance(priv, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(priv.public_key())
        .serial_number(7)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(priv, algo)
    )
    return cert.public_bytes(Encoding.PEM)


@pytest.fixture(scope="module")
def rsa2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture(scope="module")
def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


# --------------------------------------------------------------------------
# key IDs (spec 2.3 / 2.4) on real-world data
# --------------------------------------------------------------------------


def test_realworld_files_are_present() -> None:
    assert len(REAL_FILES) == 9, REAL_FILES


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: str(p.relative_to(REALWORLD)))
def test_every_realworld_key_id_recomputes_from_content(path: Path) -> None:
    keys = file_keys(load(path))
    for kid, key in keys.items():
        assert key.id == kid
        assert key_id(key.keytype, key.public) == kid


def test_realworld_files_hold_keys_at_all() -> None:
    n = sum(len(file_keys(load(p))) for p in REAL_FILES)
    assert n == 9  # 4 + 4 root keys, 1 delegation key


def test_notary03_root_cert_canonical_id() -> None:
    keys = file_keys(load(META03 / "root.json"))
    root_key = keys["354e203ba09dbe17807b6a9d191bff887167c06d121e738d849446a9c76c2866"]
    assert root_key.keytype == "ecdsa-x509"
    cid = canonical_key_id(root_key)
    assert cid.startswith("f4eaf871")
    assert cid != root_key.id
    # It is the ID of an `ecdsa` key holding the certificate's SPKI.
    cert = cert_of(root_key)
    assert cert is not None
    assert cid == key_id("ecdsa", spki(cert.public_key()))


def test_notary03_delegation_key_canonical_id() -> None:
    keys = file_keys(load(META03 / "targets.json"))
    (kid,) = [k for k in keys if k.startswith("68243a1f")]
    key = keys[kid]
    assert key.keytype == "rsa-x509"
    assert canonical_key_id(key).startswith("fa842f66")
    assert describe_key(key) == "rsa-x509 2048-bit"


def test_canonical_id_of_plain_keys_is_the_key_id() -> None:
    keys = file_keys(load(META01 / "root.json"))
    plain = [k for k in keys.values() if k.keytype == "ecdsa"]
    assert len(plain) == 3
    for key in plain:
        assert canonical_key_id(key) == key.id


def test_key_id_is_sha256_of_go_canonical_json() -> None:
    public = b"\x00\x01binary\xff"
    expected = hashlib.sha256(
        b'{"keytype":"ed25519","keyval":{"private":null,"public":"'
        + base64.b64encode(public)
        + b'"}}'
    ).hexdigest()
    assert key_id("ed25519", public) == expected


def test_key_id_escapes_only_quote_and_backslash_in_keytype() -> None:
    weird = 'a"b\\c\nd<é'
    expected = hashlib.sha256(
        b'{"keytype":"a\\"b\\\\c\nd<\xc3\xa9","keyval":{"private":null,"public":"AQ=="}}'
    ).hexdigest()
    assert key_id(weird, b"\x01") == expected


def test_tufkey_is_immutable_hashable_and_compares_by_content() -> None:
    a = TufKey("ecdsa", b"abc")
    b = TufKey("ecdsa", bytearray(b"abc"))  # type: ignore[arg-type]
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != TufKey("ECDSA", b"abc")
    assert isinstance(b.public, bytes)
    with pytest.raises(AttributeError):
        a.keytype = "rsa"
    assert a.id == key_id("ecdsa", b"abc")


# --------------------------------------------------------------------------
# real signatures
# --------------------------------------------------------------------------


def _realworld_signature_cases() -> list[tuple[str, Path, Path]]:
    cases = []
    for meta in (META01, META03):
        for name in ("root.json", "targets.json", "snapshot.json", "timestamp.json"):
            cases.append((f"{meta.parent.name}/{name}", meta / name, meta / "root.json"))
    cases.append(
        ("tst/targets/releases.json", META03 / "targets/releases.json", META03 / "targets.json")
    )
    return cases


@pytest.mark.parametrize(
    ("label", "path", "keysource"), _realworld_signature_cases(), ids=lambda v: str(v)
)
def test_realworld_signatures_verify(label: str, path: Path, keysource: Path) -> None:
    doc = load(path)
    keys = file_keys(load(keysource))
    msg = canon(doc["signed"])
    assert doc["signatures"], label
    for sig in doc["signatures"]:
        key = keys[sig["keyid"]]
        raw = base64.b64decode(sig["sig"])
        method = sig["method"].lower()
        assert verify_signature(key, method, raw, msg), label
        # One changed byte in the message, or in the signature, breaks it.
        assert not verify_signature(key, method, raw, msg.replace(b'"version":', b'"version" :'))
        assert not verify_signature(key, method, raw[:-1] + bytes([raw[-1] ^ 1]), msg)


def test_realworld_rsapss_delegation_signature_needs_the_right_method() -> None:
    doc = load(META03 / "targets/releases.json")
    key = file_keys(load(META03 / "targets.json"))[doc["signatures"][0]["keyid"]]
    raw = base64.b64decode(doc["signatures"][0]["sig"])
    msg = canon(doc["signed"])
    assert doc["signatures"][0]["method"] == "rsapss"
    assert verify_signature(key, "rsapss", raw, msg)
    assert not verify_signature(key, "rsapkcs1v15", raw, msg)
    assert not verify_signature(key, "ecdsa", raw, msg)
    assert not verify_signature(key, "RSAPSS", raw, msg)  # the caller lower-cases


# --------------------------------------------------------------------------
# ECDSA
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "curve", [ec.SECP224R1(), ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()], ids=lambda c: c.name
)
def test_ecdsa_raw_rs_with_sha256_accepted_on_every_go_curve(curve: ec.EllipticCurve) -> None:
    priv = ec.generate_private_key(curve)
    key = TufKey("ecdsa", spki(priv.public_key()))
    sig = raw_ecdsa_sign(priv, MSG)
    assert len(sig) == 2 * ((curve.key_size + 7) // 8)
    assert verify_signature(key, "ecdsa", sig, MSG)
    assert not verify_signature(key, "ecdsa", sig, MSG + b" ")


def test_ecdsa_p384_signed_with_sha384_is_rejected() -> None:
    priv = ec.generate_private_key(ec.SECP384R1())
    r, s = decode_dss_signature(priv.sign(MSG, ec.ECDSA(hashes.SHA384())))
    sig = r.to_bytes(48, "big") + s.to_bytes(48, "big")
    assert not verify_signature(TufKey("ecdsa", spki(priv.public_key())), "ecdsa", sig, MSG)


def test_ecdsa_der_signature_rejected(p256: ec.EllipticCurvePrivateKey) -> None:
    der_sig = p256.sign(MSG, ec.ECDSA(hashes.SHA256()))
    assert not verify_signature(TufKey("ecdsa", spki(p256.public_key())), "ecdsa", der_sig, MSG)


def test_ecdsa_unpadded_rs_rejected(p256: ec.EllipticCurvePrivateKey) -> None:
    key = TufKey("ecdsa", spki(p256.public_key()))
    # Find a signature whose r has a leading zero byte, then strip it.
    for _ in range(2000):
        r, s = decode_dss_signature(p256.sign(MSG, ec.ECDSA(hashes.SHA256())))
        if r < 1 << 248:
            break
    else:  # pragma: no cover - probability 2^-8 per try
        pytest.skip("no short r found")
    padded = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert verify_signature(key, "ecdsa", padded, MSG)
    assert not verify_signature(key, "ecdsa", padded[1:], MSG)


def test_ecdsa_over_padded_rs_rejected(p256: ec.EllipticCurvePrivateKey) -> None:
    # Mathematically the same r and s, one zero byte too many each: Go checks the length.
    key = TufKey("ecdsa", spki(p256.public_key()))
    sig = raw_ecdsa_sign(p256, MSG)
    assert verify_signature(key, "ecdsa", sig, MSG)
    assert not verify_signature(key, "ecdsa", b"\x00" + sig[:32] + b"\x00" + sig[32:], MSG)


def test_ecdsa_curve_go_cannot_parse_is_rejected() -> None:
    priv = ec.generate_private_key(ec.SECP256K1())
    key = TufKey("ecdsa", spki(priv.public_key()))
    assert not verify_signature(key, "ecdsa", raw_ecdsa_sign(priv, MSG), MSG)
    assert describe_key(key) == "ecdsa (undecodable)"


def test_ecdsa_compressed_point_is_rejected_like_go(p256: ec.EllipticCurvePrivateKey) -> None:
    pub = p256.public_key()
    point = pub.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    uncompressed = spki(pub)
    # Same SPKI header but a compressed point (the header's lengths change).
    header = bytes.fromhex("3039301306072a8648ce3d020106082a8648ce3d030107032200")
    compressed = header + point
    assert len(compressed) == len(uncompressed) - 32
    sig = raw_ecdsa_sign(p256, MSG)
    assert verify_signature(TufKey("ecdsa", uncompressed), "ecdsa", sig, MSG)
    assert not verify_signature(TufKey("ecdsa", compressed), "ecdsa", sig, MSG)


def test_ecdsa_x509_key_verifies_with_certificate_key(p256: ec.EllipticCurvePrivateKey) -> None:
    key = TufKey("ecdsa-x509", self_signed_pem(p256))
    sig = raw_ecdsa_sign(p256, MSG)
    assert verify_signature(key, "ecdsa", sig, MSG)
    assert describe_key(key) == "ecdsa-x509 P-256"
    # The same PEM under the plain `ecdsa` type is not DER SPKI: rejected.
    assert not verify_signature(TufKey("ecdsa", key.public), "ecdsa", sig, MSG)


# --------------------------------------------------------------------------
# RSA
# --------------------------------------------------------------------------


def test_rsa_pss_and_pkcs1v15_accepted_with_2048_bits(rsa2048: rsa.RSAPrivateKey) -> None:
    key = TufKey("rsa", spki(rsa2048.public_key()))
    pss = rsa2048.sign(MSG, PSS32, hashes.SHA256())
    v15 = rsa2048.sign(MSG, padding.PKCS1v15(), hashes.SHA256())
    assert verify_signature(key, "rsapss", pss, MSG)
    assert verify_signature(key, "rsapkcs1v15", v15, MSG)
    assert not verify_signature(key, "rsapss", v15, MSG)
    assert not verify_signature(key, "rsapkcs1v15", pss, MSG)
    assert not verify_signature(key, "rsapss", pss, MSG + b"x")
    assert describe_key(key) == "rsa 2048-bit"


def test_rsa_pss_needs_salt_length_32(rsa2048: rsa.RSAPrivateKey) -> None:
    key = TufKey("rsa", spki(rsa2048.public_key()))
    for salt in (20, padding.PSS.MAX_LENGTH):
        sig = rsa2048.sign(
            MSG, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt), hashes.SHA256()
        )
        assert not verify_signature(key, "rsapss", sig, MSG)


def test_rsa_pkcs1v15_with_other_hash_rejected(rsa2048: rsa.RSAPrivateKey) -> None:
    key = TufKey("rsa", spki(rsa2048.public_key()))
    sig = rsa2048.sign(MSG, padding.PKCS1v15(), hashes.SHA512())
    assert not verify_signature(key, "rsapkcs1v15", sig, MSG)


def test_rsa_1024_rejected_even_with_a_valid_signature() -> None:
    priv = rsa.generate_private_key(65537, 1024)
    key = TufKey("rsa", spki(priv.public_key()))
    assert not verify_signature(key, "rsapss", priv.sign(MSG, PSS32, hashes.SHA256()), MSG)
    v15 = priv.sign(MSG, padding.PKCS1v15(), hashes.SHA256())
    assert not verify_signature(key, "rsapkcs1v15", v15, MSG)


def test_rsa_signature_with_wrong_length_rejected(rsa2048: rsa.RSAPrivateKey) -> None:
    key = TufKey("rsa", spki(rsa2048.public_key()))
    sig = rsa2048.sign(MSG, padding.PKCS1v15(), hashes.SHA256())
    assert verify_signature(key, "rsapkcs1v15", sig, MSG)
    assert not verify_signature(key, "rsapkcs1v15", b"\x00" + sig, MSG)
    assert not verify_signature(key, "rsapkcs1v15", sig[:255], MSG)


def test_rsa_x509_key_accepts_pss(rsa2048: rsa.RSAPrivateKey) -> None:
    key = TufKey("rsa-x509", self_signed_pem(rsa2048))
    assert verify_signature(key, "rsapss", rsa2048.sign(MSG, PSS32, hashes.SHA256()), MSG)
    assert describe_key(key) == "rsa-x509 2048-bit"


def test_pycrypto_method_takes_pem_spki_for_rsa_keys_only(rsa2048: rsa.RSAPrivateKey) -> None:
    pem = rsa2048.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    sig = rsa2048.sign(MSG, PSS32, hashes.SHA256())
    pem_key = TufKey("rsa", pem)
    assert verify_signature(pem_key, "pycrypto-pkcs#1 pss", sig, MSG)
    assert describe_key(pem_key) == "rsa 2048-bit (PEM)"
    # DER public with the pycrypto method, PEM public with rsapss, and rsa-x509: all rejected.
    assert not verify_signature(
        TufKey("rsa", spki(rsa2048.public_key())), "pycrypto-pkcs#1 pss", sig, MSG
    )
    assert not verify_signature(pem_key, "rsapss", sig, MSG)
    x509_key = TufKey("rsa-x509", self_signed_pem(rsa2048))
    assert not verify_signature(x509_key, "pycrypto-pkcs#1 pss", sig, MSG)
    assert not verify_signature(TufKey("rsa-x509", pem), "pycrypto-pkcs#1 pss", sig, MSG)


# --------------------------------------------------------------------------
# Ed25519
# --------------------------------------------------------------------------


def test_ed25519_eddsa_accepted() -> None:
    priv = ed25519.Ed25519PrivateKey.generate()
    public = priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key = TufKey("ed25519", public)
    sig = priv.sign(MSG)
    assert verify_signature(key, "eddsa", sig, MSG)
    assert not verify_signature(key, "eddsa", sig, MSG + b"!")
    assert not verify_signature(key, "eddsa", sig + b"\x00", MSG)
    assert not verify_signature(TufKey("ed25519", public + b"\x00"), "eddsa", sig, MSG)
    assert not verify_signature(TufKey("ed25519", public[:31]), "eddsa", sig, MSG)
    assert describe_key(key) == "ed25519"


# --------------------------------------------------------------------------
# methods and key types that do not belong together
# --------------------------------------------------------------------------


def test_wrong_method_for_key_type_rejected(
    p256: ec.EllipticCurvePrivateKey, rsa2048: rsa.RSAPrivateKey
) -> None:
    ed = ed25519.Ed25519PrivateKey.generate()
    ed_key = TufKey("ed25519", ed.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    ec_key = TufKey("ecdsa", spki(p256.public_key()))
    rsa_key = TufKey("rsa", spki(rsa2048.public_key()))
    ec_sig = raw_ecdsa_sign(p256, MSG)
    rsa_sig = rsa2048.sign(MSG, PSS32, hashes.SHA256())
    ed_sig = ed.sign(MSG)
    # sanity: each is valid with its own method
    assert verify_signature(ec_key, "ecdsa", ec_sig, MSG)
    assert verify_signature(rsa_key, "rsapss", rsa_sig, MSG)
    assert verify_signature(ed_key, "eddsa", ed_sig, MSG)
    for method in ("eddsa", "rsapss", "rsapkcs1v15", "pycrypto-pkcs#1 pss", "", "sha256"):
        assert not verify_signature(ec_key, method, ec_sig, MSG)
    for method in ("ecdsa", "eddsa", "rsa", "rsassa-pss"):
        assert not verify_signature(rsa_key, method, rsa_sig, MSG)
    for method in ("ecdsa", "rsapss", "ed25519"):
        assert not verify_signature(ed_key, method, ed_sig, MSG)


def test_keytype_is_case_sensitive_and_unknown_types_verify_nothing(
    p256: ec.EllipticCurvePrivateKey,
) -> None:
    sig = raw_ecdsa_sign(p256, MSG)
    for keytype in ("ECDSA", "ecdsa-X509", "ecdsa-sha2-nistp256", ""):
        key = TufKey(keytype, spki(p256.public_key()))
        assert not verify_signature(key, "ecdsa", sig, MSG)
    assert describe_key(TufKey("ECDSA", b"")) == "ECDSA (unsupported key type)"


def test_ecdsa_key_type_holding_rsa_key_rejected(rsa2048: rsa.RSAPrivateKey) -> None:
    sig = rsa2048.sign(MSG, PSS32, hashes.SHA256())
    assert not verify_signature(TufKey("ecdsa", spki(rsa2048.public_key())), "rsapss", sig, MSG)
    assert not verify_signature(TufKey("ecdsa-x509", self_signed_pem(rsa2048)), "rsapss", sig, MSG)
    assert not verify_signature(TufKey("rsa-x509", self_signed_pem(rsa2048)), "ecdsa", sig, MSG)


@pytest.mark.parametrize("keytype", ["ecdsa", "ecdsa-x509", "rsa", "rsa-x509", "ed25519"])
@pytest.mark.parametrize(
    "public", [b"", b"garbage", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_undecodable_keys_never_raise(keytype: str, public: bytes) -> None:
    key = TufKey(keytype, public)
    for method in ("ecdsa", "rsapss", "rsapkcs1v15", "pycrypto-pkcs#1 pss", "eddsa"):
        assert verify_signature(key, method, b"\x01" * 64, MSG) is False
    assert describe_key(key) == f"{keytype} (undecodable)"
    assert canonical_key_id(key) == key.id


# --------------------------------------------------------------------------
# Go PEM decoding
# --------------------------------------------------------------------------

DER = bytes(range(100))
B64 = base64.b64encode(DER)


def block(kind: bytes = b"CERTIFICATE", body: bytes = B64, end: bytes | None = None) -> bytes:
    return b"-----BEGIN " + kind + b"-----\n" + body + b"\n-----END " + (end or kind) + b"-----\n"


def test_pem_first_block_basic_and_with_junk_before() -> None:
    assert pem_first_block(block()) == ("CERTIFICATE", DER)
    assert pem_first_block(b"junk line\nmore junk\n" + block()) == ("CERTIFICATE", DER)
    assert pem_first_block(b"no pem here") is None
    assert pem_first_block(b"") is None


def test_pem_begin_must_start_a_line() -> None:
    assert pem_first_block(b"xx" + block()) is None


def test_pem_tolerates_trailing_whitespace_crlf_and_wrapped_base64() -> None:
    wrapped = b"\n".join(B64[i : i + 10] for i in range(0, len(B64), 10))
    text = (
        b"-----BEGIN CERTIFICATE-----  \t\r\n"
        + wrapped.replace(b"\n", b" \r\n")
        + b"\r\n-----END CERTIFICATE-----   \r\n"
    )
    assert pem_first_block(text) == ("CERTIFICATE", DER)


def test_pem_end_type_must_match() -> None:
    assert pem_first_block(block(end=b"PUBLIC KEY")) is None
    # A mismatched block is skipped and the next good one is found.
    found = list(pem_blocks(block(end=b"X509 CRL") + block(b"PUBLIC KEY")))
    assert [(b.type, b.data) for b in found] == [("PUBLIC KEY", DER)]


def test_pem_rejects_text_after_end_marker_and_bad_base64() -> None:
    assert pem_first_block(block()[:-1] + b" trailing\n") is None
    assert pem_first_block(block(body=B64[:-1])) is None  # unpadded
    assert pem_first_block(block(body=B64 + b"$")) is None
    assert pem_first_block(block()[: -len(b"-----END CERTIFICATE-----\n")]) is None


def test_pem_blocks_iterates_all_and_keeps_headers() -> None:
    text = (
        block()
        + b"between\n"
        + b"-----BEGIN X-----\nProc-Type: 4,ENCRYPTED\n\nAAEC\n-----END X-----\n"
    )
    found = list(pem_blocks(text))
    assert [b.type for b in found] == ["CERTIFICATE", "X"]
    assert found[1].headers == {"Proc-Type": "4,ENCRYPTED"}
    assert found[1].data == b"\x00\x01\x02"


def test_pem_empty_block() -> None:
    assert pem_first_block(b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n") == (
        "CERTIFICATE",
        b"",
    )


def test_go_b64decode_matches_go_std_encoding() -> None:
    assert go_b64decode(b"YWJj") == b"abc"
    assert go_b64decode(b"YW\r\nJj\n") == b"abc"
    assert go_b64decode(b"YQ==") == b"a"
    assert go_b64decode(b"") == b""
    for bad in (b"YQ", b"YQ=", b"YQ==YQ==", b"Y-_j", b"YW Jj", b"====", b"YWJj="):
        assert go_b64decode(bad) is None, bad


def test_first_block_type_is_not_checked_for_x509_keys(p256: ec.EllipticCurvePrivateKey) -> None:
    cert_pem = self_signed_pem(p256)
    cert_der = x509.load_pem_x509_certificate(cert_pem).public_bytes(Encoding.DER)
    relabelled = go_block(b"TRUSTED CERTIFICATE", cert_der)
    key = TufKey("ecdsa-x509", relabelled)
    # The verifier takes the first block whatever its type ...
    assert verify_signature(key, "ecdsa", raw_ecdsa_sign(p256, MSG), MSG)
    assert cert_of(key) is not None
    # ... but LoadCertFromPEM (canonical IDs) only takes header-less CERTIFICATE blocks.
    assert load_cert_from_pem(relabelled) is None
    assert canonical_key_id(key) == key.id
    combined = TufKey("ecdsa-x509", relabelled + cert_pem)
    assert canonical_key_id(combined) == key_id("ecdsa", spki(p256.public_key()))


def go_block(kind: bytes, der: bytes) -> bytes:
    b64 = base64.b64encode(der)
    body = b"".join(b64[i : i + 64] + b"\n" for i in range(0, len(b64), 64))
    return b"-----BEGIN " + kind + b"-----\n" + body + b"-----END " + kind + b"-----\n"


def test_cert_of_and_key_algorithm(
    p256: ec.EllipticCurvePrivateKey, rsa2048: rsa.RSAPrivateKey
) -> None:
    ec_cert = cert_of(TufKey("ecdsa-x509", self_signed_pem(p256)))
    rsa_cert = cert_of(TufKey("rsa-x509", self_signed_pem(rsa2048)))
    assert ec_cert is not None and rsa_cert is not None
    assert cert_key_algorithm(ec_cert) == "ecdsa"
    assert cert_key_algorithm(rsa_cert) == "rsa"
    ed_cert = cert_of(TufKey("ecdsa-x509", self_signed_pem(ed25519.Ed25519PrivateKey.generate())))
    assert ed_cert is not None and cert_key_algorithm(ed_cert) == "ed25519"
    assert cert_of(TufKey("ecdsa", spki(p256.public_key()))) is None
