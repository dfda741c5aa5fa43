"""``trustcheck audit`` over Notation and cosign trust material (issue 20 item 4).

Real material: a Notation config written in Notation's own layout with
certificates made here with ``cryptography`` (the issuer of fixtures/notation_sign.py),
cosign public keys made here, Sigstore's published trusted roots
(fixtures/sigstore/sigstore-python/); fingerprints cross-checked with the real
``openssl`` binary. Every format of the CLI is run once.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import run_trustcheck
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from test_audit import assert_valid_report

from fixtures.notation_sign import NOW, _name, make_cert, make_pki, new_key, write_notation_config
from trustcheck.audit.model import Finding
from trustcheck.audit.signatures import broad_identity, gather
from trustcheck.notation.config import load_notation_config
from trustcheck.policy.load import load_policy

ROOT = Path(__file__).resolve().parents[2]
SIGSTORE = ROOT / "fixtures" / "sigstore" / "sigstore-python"
PRODUCTION = SIGSTORE / "production_trusted_root.json"
GH = "https://token.actions.githubusercontent.com"
BROAD = r"^https://github\.com/.+$"
NARROW = r"^https://github\.com/acme/app/\.github/workflows/[a-z]+\.yml@refs/tags/v.+$"
HORIZON = dt.timedelta(days=90)


def _pem(cert: object) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)  # type: ignore[attr-defined,no-any-return]


def _pub_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _openssl(*args: str, data: bytes) -> bytes:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


@dataclass(frozen=True)
class Material:
    folder: Path
    notation: Path
    policy: Path
    good_pem: bytes
    expiring_pem: bytes
    expired_pem: bytes
    ec_pub: bytes
    rsa_pub: bytes


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    folder = tmp_path_factory.mktemp("audit-signatures")
    good = make_pki("Acme Rockets Root").root
    expiring_key = new_key("rsa2048")
    expiring = make_cert(
        _name("Acme Expiring CA"),
        expiring_key,
        ca=True,
        not_before=NOW - dt.timedelta(days=300),
        not_after=NOW + dt.timedelta(days=30),
    )
    old_key = rsa.generate_private_key(65537, 1024)
    expired = make_cert(
        _name("Acme Legacy CA"),
        old_key,
        ca=True,
        not_before=NOW - dt.timedelta(days=800),
        not_after=NOW - dt.timedelta(days=10),
    )
    notation = write_notation_config(
        folder / "notation",
        [
            {
                "name": "acme-prod",
                "registryScopes": ["registry.acme.example/app", "registry.acme.example/api"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:acme"],
                "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Acme Rockets"],
            },
            {
                "name": "legacy",
                "registryScopes": ["*"],
                "signatureVerification": {"level": "permissive"},
                "trustStores": ["ca:legacy", "ca:gone", "signingAuthority:junk"],
                "trustedIdentities": ["*"],
            },
        ],
        {
            "ca:acme": [_pem(good), _pem(expiring)],
            "ca:legacy": [_pem(expired)],
            "tsa:spare": [_pem(expired)],  # in the store, named by no statement
        },
    )
    (notation / "truststore" / "x509" / "ca" / "unused-junk").mkdir()  # empty, unused
    # a store notation refuses: a file that is not a certificate
    junk = notation / "truststore" / "x509" / "signingAuthority" / "junk"
    junk.mkdir(parents=True)
    (junk / "notes.txt").write_text("not a certificate\n")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(65537, 2048)
    (folder / "cosign.pub").write_bytes(_pub_pem(ec_key))
    (folder / "rsa.pub").write_bytes(_pub_pem(rsa_key))
    policy = folder / "policy.yaml"
    policy.write_text(
        textwrap.dedent(
            f"""\
            defaults:
              trust:
                notation: notation
                cosign: {{trusted_root: {PRODUCTION}}}
            rules:
              - pattern: registry.acme.example/app
                require:
                  any_of:
                    - notation: {{trust_policy: acme-prod}}
                    - notation: {{trust_policy: acme-staging}}
                    - cosign:
                        keys: [cosign.pub]
                        identities:
                          - {{san: release@acme.example, issuer: https://accounts.google.com}}
                          - {{san_regex: '{NARROW}', issuer: '{GH}'}}
              - pattern: registry.acme.example/**
                require:
                  cosign:
                    keys: [cosign.pub, rsa.pub]
                    identities: [{{san_regex: '{BROAD}', issuer: '{GH}'}}]
            """
        )
    )
    return Material(
        folder,
        notation,
        policy,
        _pem(good),
        _pem(expiring),
        _pem(expired),
        _pub_pem(ec_key),
        _pub_pem(rsa_key),
    )


def _codes(findings: list[Finding]) -> list[tuple[str, str | None]]:
    return sorted((f.code, f.role) for f in findings)


# --------------------------------------------------------------------------- the model


def test_policy_material_is_listed_with_its_rules_and_findings(material: Material) -> None:
    got = gather(NOW, HORIZON, policy=load_policy(material.policy))
    # cosign keys: fingerprint = sha256 of the DER SPKI, checked with openssl
    keys = {k.fingerprint: k for k in got.cosign_keys}
    assert len(keys) == 2
    for pem, kind in ((material.ec_pub, "ECDSA P-256"), (material.rsa_pub, "RSA 2048")):
        der = _openssl("pkey", "-pubin", "-outform", "DER", data=pem)
        fp = "sha256:" + _openssl("dgst", "-sha256", "-r", data=der).split()[0].decode()
        assert keys[fp].key == kind
    ec_fp = next(fp for fp, k in keys.items() if k.key == "ECDSA P-256")
    assert keys[ec_fp].rules == [
        'rule "rules[0]" (registry.acme.example/app)',
        'rule "rules[1]" (registry.acme.example/**)',
    ]
    rsa_entry = next(k for k in keys.values() if k.key == "RSA 2048")
    assert len(rsa_entry.rules) == 1 and "registry.acme.example/**" in rsa_entry.rules[0]
    # identities: exact and regex, broad flagged
    ids = {(i.san, i.san_regex): i for i in got.cosign_identities}
    assert ids[("release@acme.example", None)].issuer == "https://accounts.google.com"
    assert ids[(None, NARROW)].broad is False
    assert ids[(None, BROAD)].broad is True
    assert "registry.acme.example/**" in ids[(None, BROAD)].rules[0]
    # the rule's Notation files and trusted root are audited too
    statements = {p.name: p for p in got.notation_policies}
    assert statements["acme-prod"].rules == ['rule "rules[0]" (registry.acme.example/app)']
    assert statements["legacy"].rules == []
    missing = next(f for f in got.findings if f.code == "notation-statement-missing")
    assert "'acme-staging'" in missing.message and "acme-prod, legacy" in missing.message
    assert {a.kind for a in got.sigstore_authorities} == {"fulcio", "rekor", "ctlog", "tsa"}
    assert _codes(got.findings) == [
        ("cert-expired", "notation ca:legacy"),
        ("cert-expiring", "notation ca:acme"),
        ("cosign-broad-identity", "cosign identity"),
        ("notation-any-identity", "notation legacy"),
        ("notation-statement-missing", "notation acme-staging"),
        ("notation-store-missing", "notation legacy"),
        ("notation-store-missing", "notation legacy"),
        ("short-rsa-key", "cosign key"),
        ("short-rsa-key", "notation ca:acme"),
        ("weak-key", "notation ca:legacy"),
    ]


def test_notation_certificates_name_their_statements_scopes_and_identities(
    material: Material,
) -> None:
    config = load_notation_config(
        material.notation / "trustpolicy.json", material.notation / "truststore"
    )
    got = gather(NOW, HORIZON, notation=config)
    spare = [c for c in got.notation_certificates if c.store == "tsa:spare"]
    assert [(c.status, c.policies, c.scopes) for c in spare] == [("expired", [], [])]
    assert not [f for f in got.findings if f.role == "notation tsa:spare"]
    assert "unused-junk" not in str([c.store for c in got.notation_certificates])
    certs = {c.subject: c for c in got.notation_certificates if c.store != "tsa:spare"}
    assert len(certs) == 3
    good = next(c for c in certs.values() if "Acme Rockets Root" in c.subject)
    assert good.store == "ca:acme" and good.status == "ok" and good.key == "ECDSA P-384"
    assert good.policies == ["acme-prod"]
    assert good.scopes == ["registry.acme.example/app", "registry.acme.example/api"]
    assert good.identities == ["x509.subject: C=US, ST=WA, O=Acme Rockets"]
    want = _openssl("x509", "-noout", "-fingerprint", "-sha256", data=material.good_pem)
    assert good.sha256 == want.decode().split("=", 1)[1].strip().replace(":", "").lower()
    expiring = next(c for c in certs.values() if "Expiring" in c.subject)
    assert (expiring.status, expiring.days_left, expiring.key) == ("expiring", 30, "RSA 2048")
    legacy = next(c for c in certs.values() if "Legacy" in c.subject)
    assert (legacy.status, legacy.days_left, legacy.identities) == ("expired", -10, ["*"])
    statement = next(p for p in got.notation_policies if p.name == "legacy")
    assert statement.missing == ["ca:gone", "signingAuthority:junk"]
    missing = [f.message for f in got.findings if f.code == "notation-store-missing"]
    assert "ca:gone" in missing[0] and "does not exist" in missing[0]
    assert "signingAuthority:junk" in missing[1] and "not a PEM or DER certificate" in missing[1]
    # a shorter horizon: the 30-day certificate is no longer "expiring"
    later = gather(NOW, dt.timedelta(days=7), notation=config)
    assert "cert-expiring" not in {f.code for f in later.findings}


def test_trusted_root_windows(tmp_path: Path) -> None:
    at = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    got = gather(at, HORIZON, trusted_roots=[PRODUCTION])
    fulcio = [a for a in got.sigstore_authorities if a.kind == "fulcio"]
    assert [(a.status, a.valid_until) for a in fulcio] == [
        ("retired", "2022-12-31T23:59:59Z"),
        ("active", None),
    ]
    assert fulcio[1].not_after == "2031-10-05T13:56:58Z" and fulcio[1].key == "ECDSA P-384"
    assert got.findings == []
    # near the end of the Fulcio CA certificate: expiring
    late = gather(dt.datetime(2031, 8, 1, tzinfo=dt.UTC), HORIZON, trusted_roots=[PRODUCTION])
    assert [(f.code, f.role) for f in late.findings] == [("cert-expiring", "sigstore fulcio")]
    # a root whose every CA window has ended cannot verify new keyless signatures
    doc = json.loads(PRODUCTION.read_text())
    for ca in doc["certificateAuthorities"]:
        ca["validFor"]["end"] = "2023-01-01T00:00:00Z"
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(doc))
    old = gather(at, HORIZON, trusted_roots=[stale])
    assert [(f.code, f.role) for f in old.findings] == [
        ("sigstore-no-active-authority", "sigstore fulcio")
    ]


@pytest.mark.parametrize(
    ("regex", "broad"),
    [
        (r"^.*$", True),
        (r"^.+@acme\.example$", False),
        (r"^.*@.*$", True),
        (BROAD, True),
        (r"^https://github\.com/[^/]+/app/.+$", True),
        (NARROW, False),
        (r"^https://github\.com/acme/.+$", False),
        (r"^(.*)$", True),
    ],
)
def test_broad_identity(regex: str, broad: bool) -> None:
    assert broad_identity(regex) is broad


# --------------------------------------------------------------------------- the CLI


def test_cli_every_format_and_fail_on(material: Material, tmp_path: Path) -> None:
    base = ["audit", "--policy", str(material.policy)]
    run = run_trustcheck(*base, "--format", "json")
    assert run.code == 0, run.stderr
    doc = json.loads(run.stdout)
    assert_valid_report(doc)
    sig = doc["signatures"]
    assert len(sig["cosign_keys"]) == 2 and len(sig["notation_certificates"]) == 4
    assert doc["summary"]["findings"] == {"error": 5, "warning": 5}
    assert {f["code"] for f in doc["findings"]} >= {"notation-store-missing", "weak-key"}

    run = run_trustcheck(*base, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    assert sorted(r["code"] for r in rows) == sorted(f["code"] for f in doc["findings"])
    assert all(r["gun"] == "" for r in rows)

    fp = sig["cosign_keys"][0]["fingerprint"]
    cert = sig["notation_certificates"][0]["sha256"]
    for fmt, heading in (
        ("table", "NOTATION AND COSIGN TRUST MATERIAL"),
        ("markdown", "## Notation and cosign trust material"),
        ("html", '<h2 id="signatures">Notation and cosign trust material</h2>'),
    ):
        run = run_trustcheck(*base, "--format", fmt)
        assert run.code == 0, run.stderr
        assert heading in run.stdout and fp in run.stdout and cert in run.stdout, fmt
        assert "cosign-broad-identity" in run.stdout, fmt
    # --fail-on applies to the new findings
    assert run_trustcheck(*base, "--format", "csv", "--fail-on", "error").code == 1
    clean = run_trustcheck(
        "audit",
        "--trusted-root",
        str(PRODUCTION),
        "--at",
        "2026-12-05T00:00:00Z",
        "--fail-on",
        "warning",
    )
    assert clean.code == 0, clean.stderr
    assert "sigstore trusted root authorities (7)" in clean.stdout


def test_cli_notation_defaults_and_with_a_trust_dir(
    material: Material, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTATION_CONFIG", str(material.notation))
    run = run_trustcheck("audit", "--notation", "--format", "json", "--fail-on", "warning")
    assert run.code == 1
    doc = json.loads(run.stdout)
    assert doc["signatures"]["sources"] == [
        f"notation trust policy {material.notation / 'trustpolicy.json'}",
        f"notation trust store {material.notation / 'truststore'}",
    ]
    assert doc["collections"] == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--notation-trust-policy", "{bad}"], "not valid JSON"),
        (["--trusted-root", "{bad}"], "not JSON"),
        (["--trusted-root", "{missing}"], "cannot be read"),
        (["--policy", "{missing}"], "missing.yaml"),
        (
            ["--trusted-root", "{badcert}"],
            "certificateAuthorities[0] (https://fulcio.sigstore.dev)",
        ),
        (["--trusted-root", "{badtime}"], "validFor.start 'yesterday' is not an RFC 3339 time"),
        (["--trusted-root", "tuf:https://tuf-repo-cdn.sigstore.dev"], "tuf download --repo"),
    ],
)
def test_cli_bad_material_is_a_usage_error(tmp_path: Path, args: list[str], needle: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    doc = json.loads(PRODUCTION.read_text())
    doc["certificateAuthorities"][0]["certChain"]["certificates"][0]["rawBytes"] = "!!"
    (tmp_path / "badcert.json").write_text(json.dumps(doc))
    doc = json.loads(PRODUCTION.read_text())
    doc["tlogs"][0]["publicKey"]["validFor"]["start"] = "yesterday"
    (tmp_path / "badtime.json").write_text(json.dumps(doc))
    names = {"bad": bad, "missing": tmp_path / "missing.yaml"}
    names |= {k: tmp_path / f"{k}.json" for k in ("badcert", "badtime")}
    args = [a.format(**names) for a in args]
    run = run_trustcheck("audit", *args)
    assert run.code == 2
    assert needle in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert run.stdout == ""


def test_a_trusted_root_obtained_through_tuf(tmp_path: Path) -> None:
    """Sigstore's real root-signing repository (fixtures/tuf/sigstore-root-signing):
    trusted_root.json downloaded and verified with ``tuf download``, then audited."""
    at = "2026-08-22T00:00:00Z"
    got = run_trustcheck(
        "tuf", "download", "--repo", str(ROOT / "fixtures" / "tuf" / "sigstore-root-signing"),
        "-o", str(tmp_path / "out"), "--at", at, "--state-dir", str(tmp_path / "state"),
        "trusted_root.json",
    )  # fmt: skip
    assert got.code == 0 and got.stdout.startswith("TRUSTED"), got
    run = run_trustcheck(
        "audit", "--trusted-root", str(tmp_path / "out" / "trusted_root.json"), "--at", at,
        "--format", "json", "--fail-on", "warning",
    )  # fmt: skip
    assert run.code == 0, run
    doc = json.loads(run.stdout)
    assert_valid_report(doc)
    active = {(a["kind"], a["name"]) for a in doc["signatures"]["sigstore_authorities"]
              if a["status"] == "active"}  # fmt: skip
    assert ("fulcio", "https://fulcio.sigstore.dev") in active
    assert ("rekor", "https://rekor.sigstore.dev") in active


def test_the_notary_projects_own_test_root(tmp_path: Path) -> None:
    """notation-go's trust store certificate (fixtures/notation/notation-go), in
    notation-go's own store name: read as it is, no finding."""
    pem = (ROOT / "fixtures" / "notation" / "notation-go" / "NotationTestRoot.pem").read_bytes()
    folder = write_notation_config(
        tmp_path / "notation",
        [
            {
                "name": "wabbit-networks-images",
                "registryScopes": ["localhost:5000/net-monitor"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:valid-trust-store"],
                "trustedIdentities": ["x509.subject: C=US, ST=WA, L=Seattle, O=Notary"],
            }
        ],
        {"ca:valid-trust-store": [pem]},
    )
    run = run_trustcheck(
        "audit", "--notation-trust-policy", str(folder / "trustpolicy.json"),
        "--notation-trust-store", str(folder / "truststore"), "--format", "json",
        "--at", "2026-12-05T00:00:00Z", "--fail-on", "warning",
    )  # fmt: skip
    assert run.code == 0, run
    (cert,) = json.loads(run.stdout)["signatures"]["notation_certificates"]
    assert cert["subject"] == "CN=Notation Test Root,O=Notary,L=Seattle,ST=WA,C=US"
    assert (cert["key"], cert["signature_algorithm"]) == ("RSA 3072", "sha256WithRSAEncryption")
    assert (cert["not_before"], cert["not_after"]) == (
        "2020-09-09T07:00:00Z",
        "2122-09-05T20:38:45Z",
    )
    assert cert["status"] == "ok" and cert["trust_policies"] == ["wabbit-networks-images"]
    want = _openssl("x509", "-noout", "-fingerprint", "-sha256", data=pem).decode()
    assert cert["sha256"] == want.split("=", 1)[1].strip().replace(":", "").lower()


def test_streamed_json_is_the_whole_document(material: Material) -> None:
    """json_chunks writes the ``signatures`` member as to_json() has it, byte for byte."""
    import orjson

    from trustcheck.audit.index import build_report
    from trustcheck.audit.render import render_chunks

    report = build_report([], NOW, horizon=HORIZON)
    report.signatures = gather(NOW, HORIZON, policy=load_policy(material.policy))
    report.findings += report.signatures.findings
    whole = orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n"
    assert "".join(render_chunks(report, "json")) == whole


def test_weak_material_of_every_kind(tmp_path: Path) -> None:
    """A SHA-1 store certificate (made with the real openssl: cryptography refuses SHA-1),
    cosign keys on a short curve and DSA: each is a finding with the audit's codes."""
    subprocess.run(
        ["openssl", "req", "-x509", "-sha1", "-newkey", "rsa:3072", "-nodes", "-keyout",
         str(tmp_path / "k.pem"), "-out", str(tmp_path / "sha1.pem"), "-subj",
         "/C=US/ST=WA/O=Acme Rockets/CN=Acme SHA1 CA", "-days", "365", "-addext",
         "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
        capture_output=True, check=True,
    )  # fmt: skip
    folder = write_notation_config(
        tmp_path / "notation",
        [
            {
                "name": "old",
                "registryScopes": ["registry.acme.example/old"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:sha1"],
                "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Acme Rockets"],
            }
        ],
        {"ca:sha1": [(tmp_path / "sha1.pem").read_bytes()]},
    )
    p192 = ec.generate_private_key(ec.SECP192R1()).public_key()
    dsa_key = dsa.generate_private_key(2048).public_key()
    for name, pub in (("p192.pub", p192), ("dsa.pub", dsa_key)):
        (tmp_path / name).write_bytes(
            pub.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    (tmp_path / "policy.yaml").write_text(
        "rules:\n  - pattern: registry.acme.example/**\n"
        "    require: {cosign: {keys: [p192.pub, dsa.pub]}}\n"
    )
    got = gather(
        dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1),  # openssl's not-before is now
        HORIZON,
        policy=load_policy(tmp_path / "policy.yaml"),
        notation=load_notation_config(folder / "trustpolicy.json", folder / "truststore"),
    )
    assert sorted((f.code, f.role, f.message.split(": ", 1)[0]) for f in got.findings) == [
        ("sha1-certificate", "notation ca:sha1",
         "notation trust store ca:sha1 certificate 'CN=Acme SHA1 CA,O=Acme Rockets,ST=WA,C=US'"),
        ("weak-key", "cosign key", "cosign key dsa.pub (" + got.cosign_keys[1].fingerprint + ")"),
        ("weak-key", "cosign key", "cosign key p192.pub (" + got.cosign_keys[0].fingerprint + ")"),
    ]  # fmt: skip
    assert [k.key for k in got.cosign_keys] == ["ECDSA secp192r1", "DSA 2048"]
