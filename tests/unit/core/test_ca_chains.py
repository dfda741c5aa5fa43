"""CA pins: chains checked by cryptography.x509.verification (core.identity.chains_to_ca).

Certificates are built in memory with cryptography (no files): what the
web-PKI CA profile enforces (path length, key usage, name constraints,
validity at the given time) and what notary's root leaves need (codeSigning
only, no subject alternative name) are both shown.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trustcheck.core.identity import chains_to_ca

AT = datetime(2026, 6, 1, tzinfo=UTC)
Key = ec.EllipticCurvePrivateKey


def _cert(
    name: str,
    key: Key,
    issuer: tuple[x509.Certificate, Key] | None,
    *,
    ca: bool,
    path_length: int | None = None,
    key_cert_sign: bool = True,
    eku: list[x509.ObjectIdentifier] | None = None,
    san: list[str] | None = None,
    permitted: list[str] | None = None,
    days: tuple[int, int] = (-30, 365),
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name = issuer[0].subject if issuer else subject
    signer = issuer[1] if issuer else key
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(AT + timedelta(days=days[0]))
        .not_valid_after(AT + timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
            critical=False,
        )
    b = b.add_extension(
        x509.KeyUsage(
            digital_signature=not ca,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=ca and key_cert_sign,
            crl_sign=ca,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if san:
        b = b.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in san]), critical=False
        )
    if permitted:
        b = b.add_extension(
            x509.NameConstraints(
                permitted_subtrees=[x509.DNSName(d) for d in permitted], excluded_subtrees=None
            ),
            critical=True,
        )
    return b.sign(signer, hashes.SHA256())


def _key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def root() -> tuple[x509.Certificate, Key]:
    k = _key()
    return _cert("Test Root CA", k, None, ca=True), k


def _leaf(issuer: tuple[x509.Certificate, Key], **kw: object) -> x509.Certificate:
    return _cert(
        "localhost/app",
        _key(),
        issuer,
        ca=False,
        eku=kw.pop("eku", [ExtendedKeyUsageOID.CODE_SIGNING]),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def test_a_notary_style_codesigning_leaf_without_san_chains(
    root: tuple[x509.Certificate, Key],
) -> None:
    leaf = _leaf(root)
    assert chains_to_ca(leaf, [], [root[0]], AT)
    # through an intermediate the leaf's bundle carries
    ik = _key()
    inter = _cert("Intermediate", ik, root, ca=True, path_length=0)
    assert chains_to_ca(_leaf((inter, ik)), [inter], [root[0]], AT)
    # the intermediate must be given: the anchor alone did not issue this leaf
    assert not chains_to_ca(_leaf((inter, ik)), [], [root[0]], AT)


def test_a_leaf_without_extended_key_usage_or_with_serverauth_chains(
    root: tuple[x509.Certificate, Key],
) -> None:
    assert chains_to_ca(_leaf(root, eku=[]), [], [root[0]], AT)
    assert chains_to_ca(_leaf(root, eku=[ExtendedKeyUsageOID.SERVER_AUTH]), [], [root[0]], AT)


def test_path_length_is_enforced(root: tuple[x509.Certificate, Key]) -> None:
    k1, k2 = _key(), _key()
    first = _cert("First", k1, root, ca=True, path_length=0)
    second = _cert("Second", k2, (first, k1), ca=True, path_length=0)
    # the hand-written walk accepted this: First may not issue another CA
    assert not chains_to_ca(_leaf((second, k2)), [first, second], [root[0]], AT)
    ok_first = _cert("First", k1, root, ca=True, path_length=1)
    assert chains_to_ca(_leaf((second, k2)), [ok_first, second], [root[0]], AT)


def test_a_ca_without_keycertsign_or_not_a_ca_cannot_issue(
    root: tuple[x509.Certificate, Key],
) -> None:
    k = _key()
    no_sign = _cert("No keyCertSign", k, root, ca=True, key_cert_sign=False)
    assert not chains_to_ca(_leaf((no_sign, k)), [no_sign], [root[0]], AT)
    k2 = _key()
    not_ca = _cert("Leaf as issuer", k2, root, ca=False, eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    assert not chains_to_ca(_leaf((not_ca, k2)), [not_ca], [root[0]], AT)


def test_name_constraints_are_enforced(root: tuple[x509.Certificate, Key]) -> None:
    k = _key()
    constrained = _cert("Constrained", k, root, ca=True, permitted=["example.com"])
    inside = _leaf((constrained, k), san=["registry.example.com"])
    outside = _leaf((constrained, k), san=["registry.evil.org"])
    assert chains_to_ca(inside, [constrained], [root[0]], AT)
    assert not chains_to_ca(outside, [constrained], [root[0]], AT)


def test_validity_at_the_given_time(root: tuple[x509.Certificate, Key]) -> None:
    k = _key()
    expired_inter = _cert("Expired", k, root, ca=True, days=(-400, -1))
    assert not chains_to_ca(_leaf((expired_inter, k)), [expired_inter], [root[0]], AT)
    assert chains_to_ca(
        _leaf((expired_inter, k), days=(-400, 10)),
        [expired_inter],
        [root[0]],
        AT - timedelta(days=30),
    )
    future_leaf = _leaf(root, days=(5, 365))
    assert not chains_to_ca(future_leaf, [], [root[0]], AT)
    # an expired anchor anchors nothing
    rk = _key()
    old_root = _cert("Old Root", rk, None, ca=True, days=(-400, -1))
    assert not chains_to_ca(_leaf((old_root, rk)), [], [old_root], AT)


def test_another_ca_or_a_self_signed_leaf_does_not_chain(
    root: tuple[x509.Certificate, Key],
) -> None:
    ok = _key()
    other = _cert("Other Root", ok, None, ca=True)
    assert not chains_to_ca(_leaf((other, ok)), [], [root[0]], AT)
    sk = _key()
    self_signed = _cert("localhost/app", sk, None, ca=False)
    assert not chains_to_ca(self_signed, [], [root[0]], AT)
    # a leaf that is itself pinned is accepted when valid
    assert chains_to_ca(self_signed, [], [root[0], self_signed], AT)
