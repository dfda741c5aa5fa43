"""Notation verification without a registry: every check of the specification and the
attack cases (verify_envelope), the trust policy and trust store rules (config),
distinguished names.  Certificates are made with cryptography, envelopes signed by
fixtures/notation_sign.py as the specification describes."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from fixtures.notation_sign import (
    COSE,
    JWS,
    NOW,
    Pki,
    Signer,
    cose_envelope,
    jws_envelope,
    make_pki,
    payload_for,
    write_notation_config,
)
from trustcheck.errors import UsageError
from trustcheck.notation import Target, load_notation_config, verify_envelope
from trustcheck.notation.config import NotationConfig, config_dir
from trustcheck.notation.dn import DnError, dn_subset, parse_dn
from trustcheck.signatures.evidence import Evidence

REPO = "registry.example.com/team/app"
TARGET = Target("sha256:" + "ab" * 32, "application/vnd.oci.image.manifest.v1+json", 1234)
DESC = {"mediaType": TARGET.media_type, "digest": TARGET.digest, "size": TARGET.size}
ACME = "x509.subject: C=US, ST=WA, O=Acme Rockets"


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def signer(pki: Pki) -> Signer:
    return pki.signer()


Configure = Callable[..., NotationConfig]


@pytest.fixture
def configure(tmp_path: Path, pki: Pki) -> Configure:
    count = 0

    def make(
        level: str = "strict",
        *,
        stores: tuple[str, ...] = ("ca:acme",),
        identities: tuple[str, ...] = (ACME,),
        pems: dict[str, list[bytes]] | None = None,
        **sv: Any,
    ) -> NotationConfig:
        nonlocal count
        count += 1
        policy = {
            "name": "p",
            "registryScopes": ["*"],
            "signatureVerification": {"level": level, **sv},
            "trustStores": list(stores),
            "trustedIdentities": list(identities),
        }
        all_pems = {s: [pki.root_pem()] for s in stores}
        all_pems.update(pems or {})
        folder = write_notation_config(tmp_path / f"cfg{count}", [policy], all_pems)
        return load_notation_config(folder / "trustpolicy.json", folder / "truststore")

    return make


def check(
    envelope: bytes,
    config: NotationConfig,
    *,
    media_type: str = JWS,
    at: dt.datetime | None = None,
    target: Target = TARGET,
) -> Evidence:
    return verify_envelope(
        envelope,
        media_type,
        target.digest,
        config=config,
        repository=REPO,
        at=at or NOW,
        target=target,
    )


# --------------------------------------------------------------------------- valid


@pytest.mark.parametrize("key", ["ec256", "ec384", "rsa2048", "rsa3072"])
@pytest.mark.parametrize("media_type", [JWS, COSE])
def test_valid_signatures_of_every_algorithm_and_envelope(
    pki: Pki, configure: Configure, key: str, media_type: str
) -> None:
    signer = pki.signer(key=key)
    make = jws_envelope if media_type == JWS else cose_envelope
    ev = check(make(signer, payload_for(DESC)), configure(), media_type=media_type)
    assert ev.valid, ev.message
    assert ev.kind == "notation" and ev.digest == TARGET.digest and ev.code is None
    assert ev.identity == "C=US, ST=WA, O=Acme Rockets, CN=release"
    assert ev.issuer == "ca:acme" and ev.level == "strict"
    assert ev.details["alg"] == signer.alg and ev.details["outcome"] == "passed"


def test_wildcard_identity_and_the_s_alias(signer: Signer, configure: Configure) -> None:
    env = jws_envelope(signer, payload_for(DESC))
    assert check(env, configure(identities=("*",))).valid
    alias = "x509.subject: C=US, S=WA, O=Acme Rockets, CN=release"
    assert check(env, configure(identities=(alias,))).valid


# --------------------------------------------------------------------------- attack cases


def test_wrong_subject_digest_media_type_or_size(signer: Signer, configure: Configure) -> None:
    config = configure()
    other = dict(DESC, digest="sha256:" + "cd" * 32)
    assert check(jws_envelope(signer, payload_for(other)), config).code == (
        "notation-subject-mismatch"
    )
    for field, value in (("size", 1235), ("mediaType", "application/vnd.oci.image.index.v1+json")):
        ev = check(jws_envelope(signer, payload_for(dict(DESC, **{field: value}))), config)
        assert ev.code == "notation-subject-mismatch" and not ev.valid, field


def test_tampered_payload_and_headers(signer: Signer, configure: Configure) -> None:
    config = configure()
    forged = payload_for(dict(DESC, digest="sha256:" + "ee" * 32))
    for media_type, env in (
        (JWS, jws_envelope(signer, payload_for(DESC), tamper_payload=forged)),
        (COSE, cose_envelope(signer, payload_for(DESC), tamper_payload=forged)),
    ):
        ev = check(env, config, media_type=media_type)
        assert ev.code == "notation-signature-invalid" and not ev.valid, media_type
    # a protected header changed after signing (expiry pushed out)
    doc = json.loads(jws_envelope(signer, payload_for(DESC), expiry=NOW + dt.timedelta(days=1)))
    pad = "=" * (-len(doc["protected"]) % 4)
    header = json.loads(base64.urlsafe_b64decode(doc["protected"] + pad))
    header["io.cncf.notary.expiry"] = "2099-01-01T00:00:00Z"
    raw = json.dumps(header, separators=(",", ":")).encode()
    doc["protected"] = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    assert check(json.dumps(doc).encode(), config).code == "notation-signature-invalid"


def test_the_real_notation_envelope_tampered(configure: Configure, tmp_path: Path) -> None:
    """notation-go's own valid mock envelope with one byte of its payload changed."""
    data = Path(__file__).resolve().parents[2] / "fixtures/notation/notation-go"
    doc = json.loads((data / "ca_valid_sig_env.json").read_bytes())
    payload = base64.urlsafe_b64decode(doc["payload"] + "==").replace(b'"size":528', b'"size":529')
    doc["payload"] = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    folder = write_notation_config(
        tmp_path / "mock",
        [
            {
                "name": "m",
                "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:n"],
                "trustedIdentities": ["*"],
            }
        ],
        {"ca:n": [(data / "NotationTestRoot.pem").read_bytes()]},
    )
    config = load_notation_config(folder / "trustpolicy.json", folder / "truststore")
    digest = "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e"
    ev = verify_envelope(
        json.dumps(doc).encode(),
        JWS,
        digest,
        config=config,
        repository=REPO,
        at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    )
    assert ev.code == "notation-signature-invalid"


def test_algorithm_substitution_is_refused(signer: Signer, configure: Configure) -> None:
    ev = check(jws_envelope(signer, payload_for(DESC), alg="ES384"), configure())
    assert ev.code == "notation-signature-invalid" and "algorithm substitution" in ev.message


def test_untrusted_chain(signer: Signer, configure: Configure) -> None:
    stranger = make_pki("Stranger Root")
    config = configure(pems={"ca:acme": [stranger.root_pem()]})
    ev = check(jws_envelope(signer, payload_for(DESC)), config)
    assert ev.code == "notation-untrusted-chain" and not ev.valid
    # a chain whose certificates are not issued by each other
    mixed = [signer.ders[0], stranger.signer().ders[1], signer.ders[2]]
    ev = check(jws_envelope(signer, payload_for(DESC), chain=mixed), configure())
    assert ev.code == "notation-cert-invalid" and "not issued by" in ev.message
    # the leaf alone (no root): the chain must end in a self-signed root
    ev = check(jws_envelope(signer, payload_for(DESC), chain=signer.ders[:1]), configure())
    assert ev.code == "notation-cert-invalid"


def test_expired_and_not_yet_valid_certificates(pki: Pki, configure: Configure) -> None:
    old = pki.signer(not_before=NOW - dt.timedelta(hours=20), not_after=NOW - dt.timedelta(hours=1))
    env = jws_envelope(old, payload_for(DESC), signing_time=NOW - dt.timedelta(hours=3))
    ev = check(env, configure())
    assert ev.code == "notation-cert-expired" and not ev.valid
    # --at inside the validity: valid
    assert check(env, configure(), at=NOW - dt.timedelta(hours=2)).valid
    # permissive only logs the authentic timestamp: notation accepts it, and so does trustcheck
    ev = check(env, configure("permissive"))
    assert ev.valid and "notation-cert-expired" in ev.details["logged"]
    future = pki.signer(not_before=NOW + dt.timedelta(days=1))
    ev = check(jws_envelope(future, payload_for(DESC)), configure())
    assert ev.code == "notation-cert-expired"


def test_identity_mismatch(signer: Signer, configure: Configure) -> None:
    env = jws_envelope(signer, payload_for(DESC))
    config = configure(identities=("x509.subject: C=US, ST=WA, O=Other Org",))
    ev = check(env, config)
    assert ev.code == "notation-identity-mismatch" and not ev.valid
    # audit logs authenticity: notation would accept; trustcheck does not count it
    ev = check(env, configure("audit", identities=("x509.subject: C=US, ST=WA, O=Other Org",)))
    assert not ev.valid and ev.code == "notation-identity-mismatch"
    assert ev.details["outcome"] == "passed" and "notation would accept" in ev.message
    # a longer identity than the subject has: no match
    ev = check(env, configure(identities=(ACME + ", OU=Builds",)))
    assert ev.code == "notation-identity-mismatch"


def test_a_subject_notation_cannot_parse_never_matches(pki: Pki, configure: Configure) -> None:
    nameless = pki.signer(state="")
    ev = check(jws_envelope(nameless, payload_for(DESC)), configure())
    assert ev.code == "notation-identity-mismatch" and "C, ST and O" in ev.message


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"crit": []}, "no crit"),
        (
            {"expiry": NOW + dt.timedelta(days=9), "crit": ["io.cncf.notary.expiry"]},
            "signingScheme not marked critical",
        ),
        (
            {"expiry": NOW + dt.timedelta(days=9), "crit": ["io.cncf.notary.signingScheme"]},
            "expiry",
        ),
        (
            {
                "extra_protected": {"io.cncf.notary.verificationPlugin": "acme-plugin"},
                "crit": ["io.cncf.notary.signingScheme", "io.cncf.notary.verificationPlugin"],
            },
            "unknown",
        ),
        ({"crit": ["io.cncf.notary.signingScheme", "io.example.absent"]}, "not in the protected"),
        ({"crit": ["io.cncf.notary.signingScheme", "alg"]}, "registered"),
        (
            {"crit": ["io.cncf.notary.signingScheme", "io.cncf.notary.signingScheme"]},
            "twice",
        ),
    ],
)
def test_critical_header_rules(
    signer: Signer, configure: Configure, kwargs: dict[str, Any], word: str
) -> None:
    ev = check(jws_envelope(signer, payload_for(DESC), **kwargs), configure())
    assert ev.code == "notation-critical-header" and word in ev.message, ev.message


def test_cose_critical_header_rules(signer: Signer, configure: Configure) -> None:
    ev = check(cose_envelope(signer, payload_for(DESC), crit=[]), configure(), media_type=COSE)
    assert ev.code == "notation-critical-header"
    ev = check(
        cose_envelope(signer, payload_for(DESC), crit=["io.cncf.notary.signingScheme", 1]),
        configure(),
        media_type=COSE,
    )
    assert ev.code == "notation-critical-header" and "label 1" in ev.message


def test_signature_expiry(signer: Signer, configure: Configure) -> None:
    env = jws_envelope(
        signer,
        payload_for(DESC),
        signing_time=NOW - dt.timedelta(hours=2),
        expiry=NOW - dt.timedelta(hours=1),
    )
    ev = check(env, configure())
    assert ev.code == "notation-signature-expired"
    ev = check(env, configure(override={"expiry": "log"}))
    assert ev.valid and "notation-signature-expired" in ev.details["logged"]
    assert check(env, configure(), at=NOW - dt.timedelta(hours=1, seconds=1)).valid
    # expiry not after the signing time: malformed
    same = jws_envelope(signer, payload_for(DESC), signing_time=NOW, expiry=NOW)
    assert check(same, configure()).code == "notation-envelope-invalid"


def test_signing_authority_scheme(signer: Signer, configure: Configure, pki: Pki) -> None:
    env = jws_envelope(signer, payload_for(DESC), scheme="notary.x509.signingAuthority")
    ev = check(env, configure(stores=("signingAuthority:acme",)))
    assert ev.valid and ev.issuer == "signingAuthority:acme", ev.message
    assert check(env, configure()).code == "notation-untrusted-chain"
    # the authentic signing time must lie within the chain's validity
    late = jws_envelope(
        signer,
        payload_for(DESC),
        scheme="notary.x509.signingAuthority",
        signing_time=NOW + dt.timedelta(days=4000),
    )
    ev = check(late, configure(stores=("signingAuthority:acme",)))
    assert ev.code == "notation-cert-expired"
    # notary.x509 must not carry an authentic signing time, nor SA a signing time
    mixed = jws_envelope(
        signer,
        payload_for(DESC),
        extra_protected={"io.cncf.notary.authenticSigningTime": "2026-01-01T00:00:00Z"},
    )
    assert check(mixed, configure()).code == "notation-envelope-invalid"
    unknown = jws_envelope(signer, payload_for(DESC), scheme="notary.x509.someday")
    assert check(unknown, configure()).code == "unsupported-envelope"


def test_certificate_requirements(pki: Pki, configure: Configure) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"eku": [ExtendedKeyUsageOID.SERVER_AUTH]}, "serverAuth"),
        ({"eku": [ExtendedKeyUsageOID.CODE_SIGNING, ExtendedKeyUsageOID.TIME_STAMPING]}, "time"),
        ({"key_usage_critical": False}, "critical"),
        ({"key_usage": "ca"}, "digitalSignature"),
        ({"key_usage": "leaf+encipher"}, "keyEncipherment"),
    ]
    config = configure()
    for kw, word in cases:
        bad = pki.signer(**kw)
        ev = check(jws_envelope(bad, payload_for(DESC)), config)
        assert ev.code == "notation-cert-invalid" and word in ev.message, (kw, ev.message)
    # no EKU at all is allowed
    assert check(jws_envelope(pki.signer(eku=None), payload_for(DESC)), config).valid


def test_revocation_information_cannot_be_checked(pki: Pki, configure: Configure) -> None:
    env = jws_envelope(pki.signer(ocsp_url="http://ocsp.example/"), payload_for(DESC))
    assert check(env, configure()).code == "notation-revocation-unchecked"
    ev = check(env, configure("permissive"))
    assert ev.valid and "notation-revocation-unchecked" in ev.details["logged"]
    assert check(env, configure(override={"revocation": "skip"})).valid


def test_timestamp_stores_are_refused_not_skipped(signer: Signer, configure: Configure) -> None:
    env = jws_envelope(signer, payload_for(DESC))
    config = configure(stores=("ca:acme", "tsa:stamps"))
    assert check(env, config).code == "timestamp-unsupported"
    after = configure(stores=("ca:acme", "tsa:stamps"), verifyTimestamp="afterCertExpiry")
    assert check(env, after).valid
    # permissive only logs the authentic timestamp
    ev = check(env, configure("permissive", stores=("ca:acme", "tsa:stamps")))
    assert ev.valid and "timestamp-unsupported" in ev.details["logged"]


def test_skip_level_verifies_nothing_and_counts_for_nothing(signer: Signer, tmp_path: Path) -> None:
    folder = write_notation_config(
        tmp_path,
        [{"name": "s", "registryScopes": [REPO], "signatureVerification": {"level": "skip"}}],
        {},
    )
    config = load_notation_config(folder / "trustpolicy.json", folder / "truststore")
    ev = check(b"not even json", config)
    assert not ev.valid and ev.code == "notation-verification-skipped" and ev.level == "skip"
    with pytest.raises(Exception) as e:
        verify_envelope(
            b"{}", JWS, TARGET.digest, config=config, repository="other.example/x", at=NOW
        )
    assert getattr(e.value, "code", None) == "notation-no-policy"


@pytest.mark.parametrize(
    ("envelope", "media_type", "code"),
    [
        (b"{}", JWS, "notation-envelope-invalid"),
        (b"[1]", JWS, "notation-envelope-invalid"),
        (b"\xff\xfe", JWS, "notation-envelope-invalid"),
        (b"\xa0", COSE, "notation-envelope-invalid"),
        (b"{}", "application/pkcs7-signature", "unsupported-envelope"),
        (b" " * ((4 << 20) + 1), JWS, "notation-envelope-invalid"),
    ],
)
def test_malformed_envelopes_are_data(
    configure: Configure, envelope: bytes, media_type: str, code: str
) -> None:
    ev = check(envelope, configure(), media_type=media_type)
    assert ev.code == code and not ev.valid


def test_duplicate_and_extra_json_members_are_refused(signer: Signer, configure: Configure) -> None:
    doc = json.loads(jws_envelope(signer, payload_for(DESC)))
    text = json.dumps(doc)
    dup = text[:-1] + ', "signature": "AAAA"}'
    assert check(dup.encode(), configure()).code == "notation-envelope-invalid"
    doc["extra"] = 1
    ev = check(json.dumps(doc).encode(), configure())
    assert ev.code == "notation-envelope-invalid" and "top-level" in ev.message
    jwk = jws_envelope(signer, payload_for(DESC), extra_protected={"jwk": {"kty": "EC"}})
    assert check(jwk, configure()).code == "notation-envelope-invalid"


# --------------------------------------------------------------------------- config


def _policy_file(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "trustpolicy.json"
    path.write_text(json.dumps(doc))
    return path


def _stmt(**kw: Any) -> dict[str, Any]:
    base = {
        "name": "p",
        "registryScopes": [REPO],
        "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:acme"],
        "trustedIdentities": ["*"],
    }
    base.update(kw)
    return base


@pytest.mark.parametrize(
    ("doc", "word"),
    [
        ({"version": "2.0", "trustPolicies": [_stmt()]}, "version"),
        ({"version": "1.0", "trustPolicies": []}, "no trustPolicies"),
        ({"version": "1.0", "trustPolicies": [_stmt(), _stmt()]}, "named"),
        ({"version": "1.0", "trustPolicies": [_stmt(), _stmt(name="q")]}, "registry scope"),
        ({"version": "1.0", "trustPolicies": [_stmt(registryScopes=["*", REPO])]}, "mixes"),
        ({"version": "1.0", "trustPolicies": [_stmt(registryScopes=["r.example/*"])]}, "fully"),
        ({"version": "1.0", "trustPolicies": [_stmt(registryScopes=["app"])]}, "fully"),
        ({"version": "1.0", "trustPolicies": [_stmt(registryScopes=[])]}, "no registryScopes"),
        ({"version": "1.0", "trustPolicies": [_stmt(trustStores=[])]}, "both"),
        ({"version": "1.0", "trustPolicies": [_stmt(trustStores=["x509:acme"])]}, "type"),
        ({"version": "1.0", "trustPolicies": [_stmt(trustStores=["ca:a/b"])]}, "name"),
        ({"version": "1.0", "trustPolicies": [_stmt(trustStores=["acme"])]}, "TYPE:NAME"),
        (
            {
                "version": "1.0",
                "trustPolicies": [_stmt(signatureVerification={"level": "skip"})],
            },
            "skip",
        ),
        (
            {"version": "1.0", "trustPolicies": [_stmt(signatureVerification={"level": "lax"})]},
            "level",
        ),
        (
            {
                "version": "1.0",
                "trustPolicies": [
                    _stmt(
                        signatureVerification={"level": "strict", "override": {"integrity": "log"}}
                    )
                ],
            },
            "integrity",
        ),
        (
            {
                "version": "1.0",
                "trustPolicies": [
                    _stmt(signatureVerification={"level": "strict", "override": {"expiry": "skip"}})
                ],
            },
            "cannot be skipped",
        ),
        (
            {
                "version": "1.0",
                "trustPolicies": [
                    _stmt(signatureVerification={"level": "strict", "verifyTimestamp": "sometimes"})
                ],
            },
            "verifyTimestamp",
        ),
        ({"version": "1.0", "trustPolicies": [_stmt(trustedIdentities=["*", ACME])]}, "mixes"),
        (
            {"version": "1.0", "trustPolicies": [_stmt(trustedIdentities=["x509.subject: C=US"])]},
            "C, ST",
        ),
        (
            {
                "version": "1.0",
                "trustPolicies": [_stmt(trustedIdentities=[ACME, ACME + ", OU=x"])],
            },
            "overlapping",
        ),
        ({"version": "1.0", "trustPolicies": [_stmt(trustedIdentities=["acme"])]}, "prefix"),
        ("[]", "JSON object"),
    ],
)
def test_invalid_trust_policies(tmp_path: Path, doc: object, word: str) -> None:
    path = _policy_file(tmp_path, doc)
    with pytest.raises(UsageError) as e:
        load_notation_config(path, tmp_path / "truststore")
    assert e.value.code == "notation-config-invalid" and word in e.value.message, e.value.message
    assert str(path) in e.value.message


def test_trust_store_rules(tmp_path: Path, pki: Pki, signer: Signer) -> None:
    path = _policy_file(tmp_path, {"version": "1.0", "trustPolicies": [_stmt()]})
    store = tmp_path / "truststore"
    config = load_notation_config(path, store)
    env = jws_envelope(signer, payload_for(DESC))

    def problem() -> str:
        fresh = load_notation_config(path, store)
        with pytest.raises(UsageError) as e:
            verify_envelope(env, JWS, TARGET.digest, config=fresh, repository=REPO, at=NOW)
        assert e.value.code == "notation-config-invalid"
        return e.value.message

    assert "does not exist" in problem()
    folder = store / "x509" / "ca" / "acme"
    folder.mkdir(parents=True)
    assert "no certificates" in problem()
    (folder / "junk.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"
    )
    assert "not a PEM or DER" in problem()
    (folder / "junk.pem").unlink()
    (folder / "sub").mkdir()
    assert "regular file" in problem()
    (folder / "sub").rmdir()
    real = tmp_path / "root.pem"
    real.write_bytes(pki.root_pem())
    os.symlink(real, folder / "link.pem")
    assert "regular file" in problem()
    (folder / "link.pem").unlink()
    # a leaf (neither a CA nor self-signed) in a ca store: notation refuses the store
    from cryptography.hazmat.primitives.serialization import Encoding

    (folder / "leaf.pem").write_bytes(signer.chain[0].public_bytes(Encoding.PEM))
    assert "neither a CA nor self-signed" in problem()
    (folder / "leaf.pem").unlink()
    # DER works as well as PEM

    (folder / "root.der").write_bytes(pki.root.public_bytes(Encoding.DER))
    ev = verify_envelope(env, JWS, TARGET.digest, config=config, repository=REPO, at=NOW)
    assert ev.valid, ev.message


def test_config_locations(tmp_path: Path) -> None:
    assert config_dir({"NOTATION_CONFIG": "/x/n"}) == Path("/x/n")
    assert config_dir({"XDG_CONFIG_HOME": "/x/c", "HOME": "/h"}) == Path("/x/c/notation")
    assert config_dir({"HOME": "/h"}) == Path("/h/.config/notation")
    with pytest.raises(UsageError) as e:
        config_dir({})
    assert e.value.code == "home-unknown"
    base = tmp_path / "notation"
    write_notation_config(base, [_stmt(name="legacy")], {})
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    assert load_notation_config(env=env).policies[0].name == "legacy"
    (base / "trustpolicy.oci.json").write_text(
        json.dumps({"version": "1.0", "trustPolicies": [_stmt(name="oci")]})
    )
    assert load_notation_config(env=env).policies[0].name == "oci"


def test_policy_selection_prefers_the_exact_scope(tmp_path: Path) -> None:
    path = _policy_file(
        tmp_path,
        {
            "version": "1.0",
            "trustPolicies": [
                _stmt(name="global", registryScopes=["*"]),
                _stmt(name="exact"),
            ],
        },
    )
    config = load_notation_config(path, tmp_path)
    assert config.policy_for(REPO).name == "exact"  # type: ignore[union-attr]
    assert config.policy_for("other.example/app").name == "global"  # type: ignore[union-attr]


# --------------------------------------------------------------------------- DN


def test_distinguished_names() -> None:
    assert parse_dn("C=US, ST=WA, O=Acme\\, Inc.") == {"C": "US", "ST": "WA", "O": "Acme, Inc."}
    assert parse_dn("C=US;S=WA;O=A") == {"C": "US", "ST": "WA", "O": "A"}
    assert parse_dn("C=US, ST=WA, O=\\20Lead") == {"C": "US", "ST": "WA", "O": " Lead"}
    for bad in ("C=US, ST=WA", "C=US+ST=WA, O=A", "C=US, ST=WA, O=#0101", "C=US, C=CA, ST=W, O=A"):
        with pytest.raises(DnError):
            parse_dn(bad)
    assert dn_subset({"O": "A"}, {"C": "US", "O": "A"})
    assert not dn_subset({"O": "A", "OU": "x"}, {"C": "US", "O": "A"})


def test_mutated_envelopes_are_refused_as_data(signer: Signer, configure: Configure) -> None:
    """Bytes flipped in JWS and COSE envelopes, and header values replaced by values of
    every JSON type: each result is an Evidence with a code (or, rarely, still valid),
    never an exception; and never valid once a signed byte changed."""
    import random

    import cbor2

    config = configure(identities=("*",))
    rnd = random.Random(19)
    jws = jws_envelope(signer, payload_for(DESC))
    cose = cose_envelope(signer, payload_for(DESC))
    values: list[Any] = [None, True, 0, -1, 2**70, 1.5, "", "x", [], {}, [1], {"a": 1}]
    for i in range(400):
        if i % 3 == 0:
            data = bytearray(jws if i % 2 else cose)
            for _ in range(rnd.randint(1, 4)):
                data[rnd.randrange(len(data))] = rnd.randrange(256)
            media_type = JWS if i % 2 else COSE
            envelope = bytes(data)
        elif i % 3 == 1:
            doc = json.loads(jws)
            header = json.loads(base64.urlsafe_b64decode(doc["protected"] + "=="))
            header[rnd.choice(list(header))] = rnd.choice(values)
            raw = json.dumps(header).encode()
            doc["protected"] = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
            media_type, envelope = JWS, json.dumps(doc).encode()
        else:
            msg = list(cbor2.loads(cose).value)
            protected = dict(cbor2.loads(msg[0]))
            protected[rnd.choice(list(protected))] = rnd.choice(values)
            msg[0] = cbor2.dumps(protected)
            media_type, envelope = COSE, cbor2.dumps(cbor2.CBORTag(18, msg))
        ev = check(envelope, config, media_type=media_type)
        assert isinstance(ev, Evidence)
        assert ev.valid or (ev.code is not None and ev.message)
        if i % 3 != 0:  # a protected header changed after signing
            assert not ev.valid
