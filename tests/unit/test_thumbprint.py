"""trustcheck.core.thumbprint against openssl, the metadata and docker trust inspect.

Real certificates only: the root and delegation certificates of the generated
fixtures (written by the real notary client) and of the notary 0.3 real-world
trust dir.  Fingerprints are compared with ``openssl`` run as a subprocess.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from trustcheck.api import load_collection
from trustcheck.core.certs import go_pem_encode
from trustcheck.core.crypto import pem_first_block
from trustcheck.core.thumbprint import (
    KeyReport,
    keys_of_collection,
    keys_of_pem,
    openssl_fingerprint,
    render_json,
    render_text,
)
from trustcheck.core.verify import Collection
from trustcheck.errors import UsageError

REPO = Path(__file__).resolve().parents[2]
GENERATED = REPO / "fixtures" / "generated"
TRUST = GENERATED / "trust"
DELEG_KEYS = GENERATED / "keys" / "delegations"
N03 = REPO / "fixtures" / "realworld" / "notary0.3"
GUN03 = "docker.com/notary0.3/tst"
PAST = datetime(2020, 1, 1, tzinfo=UTC)

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")


def _at() -> datetime:
    return datetime.fromisoformat((GENERATED / "VALIDATION_TIME").read_text().strip())


def _col(gun: str) -> Collection:
    return load_collection(TRUST, gun, _at())


def _manifest_repo(gun: str) -> dict[str, object]:
    manifest = json.loads((GENERATED / "manifest.json").read_text(encoding="utf-8"))
    for repo in manifest["repos"]:
        if repo["gun"] == gun:
            return repo  # type: ignore[no-any-return]
    raise AssertionError(f"{gun} not in manifest")


def _openssl(args: list[str], stdin: bytes | None = None) -> bytes:
    return subprocess.run(
        ["openssl", *args], input=stdin, capture_output=True, check=True, timeout=30
    ).stdout


def _openssl_fingerprint_line(pem_path: Path, digest: str) -> str:
    out = _openssl(["x509", "-noout", "-fingerprint", f"-{digest}", "-in", str(pem_path)])
    return out.decode().strip()


def _openssl_spki_sha256(pem_path: Path) -> str:
    pub_pem = _openssl(["x509", "-pubkey", "-noout", "-in", str(pem_path)])
    der = _openssl(["pkey", "-pubin", "-outform", "DER"], pub_pem)
    out = subprocess.run(["sha256sum"], input=der, capture_output=True, check=True).stdout
    return out.decode().split()[0]


def _openssl_time(text: str) -> str:
    """``Nov 27 00:11:19 2026 GMT`` (openssl -dates) -> ``2026-11-27T00:11:19Z``."""
    t = datetime.strptime(" ".join(text.split()), "%b %d %H:%M:%S %Y %Z")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _cert_reports() -> list[tuple[str, KeyReport, bytes]]:
    """(label, report, DER certificate) for every certificate key of the test collections."""
    cols = [_col("localhost/signers"), _col("localhost/rsa"), _col("localhost/releases")]
    cols.append(load_collection(N03, GUN03, PAST))
    out: list[tuple[str, KeyReport, bytes]] = []
    for col in cols:
        keys = dict(col.root.keys)
        for meta in col.targets.values():
            keys.update(meta.delegation_keys)
        for report in keys_of_collection(col):
            if not report.is_certificate:
                continue
            assert report.key_id is not None
            first = pem_first_block(keys[report.key_id].public)
            assert first is not None
            out.append((f"{report.gun} {report.role}", report, first[1]))
    return out


# --------------------------------------------------------------------------
# Collections
# --------------------------------------------------------------------------


def test_collection_order_roles_and_ids_match_the_metadata() -> None:
    col = _col("localhost/signers")
    reports = keys_of_collection(col)
    assert [r.role for r in reports] == [
        "root",
        "targets",
        "snapshot",
        "timestamp",
        "targets/releases",
        "targets/releases",
        "targets/alice",
        "targets/bob",
    ]
    assert all(r.gun == "localhost/signers" and r.source is None for r in reports)
    for role in ("root", "targets", "snapshot", "timestamp"):
        assert [r.key_id for r in reports if r.role == role] == col.root.roles[role].keyids
    delegations = {d.name: d for d in col.targets["targets"].delegations}
    for name, d in delegations.items():
        assert sorted(r.key_id or "" for r in reports if r.role == name) == sorted(d.keyids)
    # key types as in the metadata, algorithms decoded
    by_role = {r.role: r for r in reports}
    assert (by_role["root"].key_type, by_role["root"].algorithm) == ("ecdsa-x509", "ECDSA P-256")
    assert (by_role["timestamp"].key_type, by_role["timestamp"].algorithm) == (
        "ed25519",
        "Ed25519",
    )
    assert by_role["targets/bob"].subject_cn == "bob"
    assert by_role["targets/alice"].cert_sha256 is None  # a bare PUBLIC KEY signer


def test_canonical_ids_equal_docker_trust_inspect() -> None:
    """Signer key IDs in docker's output are canonical IDs; the Root key is the root.json ID."""
    repo = _manifest_repo("localhost/signers")
    docker = repo["docker_inspect"]["json"][0]  # type: ignore[index]
    reports = keys_of_collection(_col("localhost/signers"))
    for signer in docker["Signers"]:
        want = {k["ID"] for k in signer["Keys"]}
        got = {r.canonical_key_id for r in reports if r.role == f"targets/{signer['Name']}"}
        assert got == want, signer["Name"]
    admin = {a["Name"]: {k["ID"] for k in a["Keys"]} for a in docker["AdministrativeKeys"]}
    assert admin["Root"] == {r.key_id for r in reports if r.role == "root"}
    assert admin["Repository"] == {r.canonical_key_id for r in reports if r.role == "targets"}
    # the x509 signer (bob) really differs between the two IDs
    bob = next(r for r in reports if r.role == "targets/bob")
    assert bob.key_id != bob.canonical_key_id


def test_notary03_ids_from_the_spec() -> None:
    reports = keys_of_collection(load_collection(N03, GUN03, PAST))
    root = next(r for r in reports if r.role == "root")
    assert root.key_id is not None and root.key_id.startswith("354e203ba09d")
    assert root.canonical_key_id is not None and root.canonical_key_id.startswith("f4eaf871a74a")
    rel = next(r for r in reports if r.role == "targets/releases")
    assert (rel.key_type, rel.algorithm) == ("rsa-x509", "RSA 2048")
    assert rel.key_id is not None and rel.key_id.startswith("68243a1f")
    assert rel.canonical_key_id is not None and rel.canonical_key_id.startswith("fa842f66")
    assert rel.not_after == "2017-07-27T20:24:52Z"
    assert rel.issuer == "CN=avaid96,OU=Sec,O=Docker,L=SF,ST=CA,C=US"


def test_spki_hash_survives_a_new_certificate_for_the_same_key() -> None:
    """localhost/signers and localhost/rsa share one root key with two certificates."""
    a = next(r for r in keys_of_collection(_col("localhost/signers")) if r.role == "root")
    b = next(r for r in keys_of_collection(_col("localhost/rsa")) if r.role == "root")
    assert a.subject_cn == "localhost/signers" and b.subject_cn == "localhost/rsa"
    assert a.cert_sha256 != b.cert_sha256 and a.key_id != b.key_id
    assert a.spki_sha256 == b.spki_sha256 and a.canonical_key_id == b.canonical_key_id


# --------------------------------------------------------------------------
# openssl agreement
# --------------------------------------------------------------------------


@needs_openssl
def test_fingerprints_equal_openssl(tmp_path: Path) -> None:
    cases = _cert_reports()
    labels = [label for label, _, _ in cases]
    assert any("rsa targets/releases" in lb for lb in labels)  # the rsa-x509 delegation
    assert f"{GUN03} targets/releases" in labels
    for i, (label, report, der) in enumerate(cases):
        path = tmp_path / f"{i}.pem"
        path.write_bytes(go_pem_encode(der))
        sha256_line = _openssl_fingerprint_line(path, "sha256")
        sha1_line = _openssl_fingerprint_line(path, "sha1")
        text = render_text([report])
        assert sha256_line in text.splitlines()[4], label  # same line, character for character
        assert sha1_line in text.splitlines()[5], label
        assert report.cert_sha256 == sha256_line.split("=")[1].replace(":", "").lower()
        assert report.cert_sha1 == sha1_line.split("=")[1].replace(":", "").lower()
        assert report.spki_sha256 == _openssl_spki_sha256(path), label


@needs_openssl
def test_signature_algorithm_and_validity_equal_openssl(tmp_path: Path) -> None:
    for i, (label, report, der) in enumerate(_cert_reports()):
        path = tmp_path / f"{i}.pem"
        path.write_bytes(go_pem_encode(der))
        text = _openssl(["x509", "-noout", "-text", "-in", str(path)]).decode()
        m = re.search(r"Signature Algorithm: (\S+)", text)
        assert m is not None and m.group(1) == report.signature_algorithm, label
        dates = _openssl(["x509", "-noout", "-dates", "-in", str(path)]).decode()
        fields = dict(line.split("=", 1) for line in dates.split("\n") if line)
        assert _openssl_time(fields["notBefore"]) == report.not_before, label
        assert _openssl_time(fields["notAfter"]) == report.not_after, label


@needs_openssl
def test_bare_key_spki_equals_openssl() -> None:
    path = DELEG_KEYS / "alice.pub"
    # docker writes a "role: alice" PEM header, which openssl refuses: strip it
    first = pem_first_block(path.read_bytes())
    assert first is not None and first[0] == "PUBLIC KEY"
    plain = go_pem_encode(first[1], "PUBLIC KEY")
    der = _openssl(["pkey", "-pubin", "-outform", "DER"], plain)
    out = subprocess.run(["sha256sum"], input=der, capture_output=True, check=True).stdout
    (report,) = keys_of_pem(path.read_bytes(), str(path))
    assert report.spki_sha256 == out.decode().split()[0]
    col_alice = next(
        r for r in keys_of_collection(_col("localhost/signers")) if r.role == "targets/alice"
    )
    assert col_alice.spki_sha256 == report.spki_sha256


# --------------------------------------------------------------------------
# PEM files
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gun", "role", "name"),
    [
        ("localhost/signers", "targets/bob", "bob.crt"),
        ("localhost/rsa", "targets/releases", "rsa-releaser.crt"),
        ("localhost/signers", "targets/alice", "alice.pub"),
    ],
)
def test_pem_file_ids_equal_the_delegation_in_targets_json(gun: str, role: str, name: str) -> None:
    """A signer's certificate / public key file yields the ID notary put in targets.json."""
    path = DELEG_KEYS / name
    (from_file,) = keys_of_pem(path.read_bytes(), str(path))
    (from_col,) = [r for r in keys_of_collection(_col(gun)) if r.role == role]
    assert (from_file.gun, from_file.role, from_file.source, from_file.index) == (
        None,
        None,
        str(path),
        1,
    )
    for attr in ("key_type", "algorithm", "key_id", "canonical_key_id", "cert_sha256",
                 "cert_sha1", "spki_sha256", "subject_cn", "issuer", "not_before",
                 "not_after", "signature_algorithm"):  # fmt: skip
        assert getattr(from_file, attr) == getattr(from_col, attr), attr


def test_pem_id_uses_go_reencoding_of_the_certificate() -> None:
    """CRLF line endings, other line widths or surrounding text do not change the IDs."""
    pem = (DELEG_KEYS / "rsa-releaser.crt").read_bytes()
    (want,) = keys_of_pem(pem, "a.pem")
    first = pem_first_block(pem)
    assert first is not None
    b64 = base64.b64encode(first[1]).decode()
    wide = "\r\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))
    odd = f"subject=CN = rsa-releaser\r\n-----BEGIN CERTIFICATE-----\r\n{wide}\r\n"
    odd += "-----END CERTIFICATE-----\r\n"
    (got,) = keys_of_pem(odd.encode(), "b.pem")
    assert (got.key_id, got.canonical_key_id, got.cert_sha256) == (
        want.key_id,
        want.canonical_key_id,
        want.cert_sha256,
    )


def test_bundle_der_and_skipped_blocks(tmp_path: Path) -> None:
    bob = (DELEG_KEYS / "bob.crt").read_bytes()
    rsa = (DELEG_KEYS / "rsa-releaser.crt").read_bytes()
    key = (DELEG_KEYS / "bob.key").read_bytes()
    alice = (DELEG_KEYS / "alice.pub").read_bytes()
    reports = keys_of_pem(key + bob + rsa + alice, "bundle.pem")  # private key block skipped
    assert [(r.index, r.key_type) for r in reports] == [
        (1, "ecdsa-x509"),
        (2, "rsa-x509"),
        (3, "ecdsa"),
    ]
    text = render_text(reports)
    assert "bundle.pem (key 2 of 3)" in text
    first = pem_first_block(rsa)
    assert first is not None
    (der_report,) = keys_of_pem(first[1], "rsa.der")
    assert der_report.cert_sha256 == reports[1].cert_sha256
    assert der_report.key_id == reports[1].key_id


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a certificate",
        b"-----BEGIN EC PRIVATE KEY-----\nMAA=\n-----END EC PRIVATE KEY-----\n",
        b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
    ],
)
def test_nothing_usable_is_a_usage_error(data: bytes) -> None:
    with pytest.raises(UsageError) as exc:
        keys_of_pem(data, "x.pem")
    assert exc.value.code == "invalid-argument" and "x.pem" in exc.value.message


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------


def test_json_document_and_stable_keys() -> None:
    reports = keys_of_collection(_col("localhost/rsa"))
    doc = json.loads(render_json(reports))
    assert list(doc) == ["keys"] and len(doc["keys"]) == len(reports)
    expected_keys = [
        "gun", "role", "source", "index", "key_type", "algorithm", "key_id",
        "canonical_key_id", "cert_sha256", "cert_sha1", "spki_sha256", "subject_cn",
        "issuer", "not_before", "not_after", "signature_algorithm",
    ]  # fmt: skip
    for entry in doc["keys"]:
        assert list(entry) == expected_keys
        for field in ("key_id", "canonical_key_id", "cert_sha256", "cert_sha1", "spki_sha256"):
            if entry[field] is not None:
                assert re.fullmatch(r"[0-9a-f]+", entry[field]), field
    rel = doc["keys"][-1]
    assert rel["role"] == "targets/releases" and rel["key_type"] == "rsa-x509"
    assert len(rel["cert_sha256"]) == 64 and len(rel["cert_sha1"]) == 40
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rel["not_after"])
    snapshot = next(e for e in doc["keys"] if e["role"] == "snapshot")
    assert snapshot["cert_sha256"] is None and snapshot["spki_sha256"] is not None


def test_text_block_is_aligned_and_labelled() -> None:
    reports = keys_of_collection(_col("localhost/rsa"))
    blocks = render_text(reports).split("\n\n")
    assert len(blocks) == len(reports)
    rel = blocks[-1].splitlines()
    assert rel[0] == "localhost/rsa  targets/releases"
    labels = [line[2:34].rstrip() for line in rel[1:]]
    assert labels == [
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
    ]
    assert all(line[32:34] == "  " and line[34] != " " for line in rel[1:])  # one value column
    assert rel[4][34:].startswith("sha256 Fingerprint=") and rel[5][34:].startswith("sha1 ")
    assert openssl_fingerprint("0aff") == "0A:FF"


def test_import_does_not_load_cryptography() -> None:
    code = (
        "import sys, trustcheck.core.thumbprint; "
        "sys.exit(1 if any(m.startswith('cryptography') for m in sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0
