"""Real Sigstore bundles (fixtures/sigstore, made by Sigstore's staging and production
services) verified offline against the trusted root of their time, with their expected
identities; and the attack cases, each made from a real bundle by one change."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.conftest import run_trustcheck
from trustcheck.sigstore.config import IdentityRule
from trustcheck.sigstore.errors import Fail
from trustcheck.sigstore.keyless import verify_bundle, verify_legacy
from trustcheck.sigstore.trustroot import TrustRoot, load_trust_root, parse_trust_root

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "sigstore" / "sigstore-python"
AT = datetime(2026, 8, 22, tzinfo=UTC)
GH = "https://token.actions.githubusercontent.com"
GH_OAUTH = "https://github.com/login/oauth"
RFC8785 = "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)

#: artifact, bundle, trusted root, SAN, issuer, signing time (Rekor or TSA), log index
REAL = [
    ("bundle.txt", "bundle.txt.sigstore", "staging", "a@tny.town", GH_OAUTH,
     "2023-04-26T00:21:09Z", "7390977"),
    ("bundle_v3.txt", "bundle_v3.txt.sigstore", "staging", "william@yossarian.net", GH_OAUTH,
     "2024-04-02T19:19:09Z", "25915956"),
    ("bundle_v3_alt.txt", "bundle_v3_alt.txt.sigstore", "staging", "william@yossarian.net",
     GH_OAUTH, "2024-04-02T19:20:16Z", "25915997"),
    ("staging-rekor-v2.txt", "staging-rekor-v2.txt.sigstore.json", "staging", "jku@goto.fi",
     GH_OAUTH, "2025-06-09T11:57:38Z", "645"),
    ("bundle_v3_github.whl", "bundle_v3_github.whl.sigstore", "production", RFC8785, GH,
     "2024-03-19T22:41:16Z", "79605083"),
]  # fmt: skip


@pytest.fixture(scope="module")
def roots() -> dict[str, TrustRoot]:
    return {
        "staging": load_trust_root(FIX / "staging_trusted_root.json"),
        "production": load_trust_root(FIX / "production_trusted_root.json"),
    }


def _digest(name: str) -> str:
    return "sha256:" + hashlib.sha256((FIX / name).read_bytes()).hexdigest()


def _fail(data: bytes, digest: str, root: TrustRoot, **kw: Any) -> Fail:
    with pytest.raises(Fail) as info:
        verify_bundle(data, digest, root, kw.pop("at", AT), **kw)
    assert "\n" not in info.value.message
    return info.value


@pytest.mark.parametrize(("artifact", "bundle", "root", "san", "issuer", "when", "index"), REAL)
def test_real_bundles_verify_offline_with_their_identities(
    roots: dict[str, TrustRoot],
    artifact: str,
    bundle: str,
    root: str,
    san: str,
    issuer: str,
    when: str,
    index: str,
) -> None:
    rules = [IdentityRule(san=san, issuer=issuer)]
    res = verify_bundle((FIX / bundle).read_bytes(), _digest(artifact), roots[root], AT, rules)
    assert (res.identity, res.issuer) == (san, issuer)
    assert res.signed_at.strftime("%Y-%m-%dT%H:%M:%SZ") == when
    assert res.details["rekor_log_index"] == index
    # the other instance's root does not chain it
    other = roots["production" if root == "staging" else "staging"]
    e = _fail((FIX / bundle).read_bytes(), _digest(artifact), other)
    assert e.code in ("cosign-cert-invalid", "cosign-tlog-invalid")


def test_real_dsse_bundle_binds_its_statement_subject(roots: dict[str, TrustRoot]) -> None:
    data = (FIX / "a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes()
    statement = json.loads(base64.b64decode(json.loads(data)["dsseEnvelope"]["payload"]))
    subject = "sha256:" + statement["subject"][0]["digest"]["sha256"]
    res = verify_bundle(data, subject, roots["staging"], AT, [IdentityRule(san=BEACON, issuer=GH)])
    assert res.identity == BEACON and res.predicate_type == "https://slsa.dev/provenance/v1"
    # the statement is about a.txt: any other digest is a bundle for another artifact
    e = _fail(data, _digest("a.dsse.staging-rekor-v2.txt"), roots["staging"])
    assert e.code == "cosign-digest-mismatch" and "a bundle for another artifact" in e.message


def test_attack_identity_or_issuer_mismatch(roots: dict[str, TrustRoot]) -> None:
    data = (FIX / "bundle_v3_github.whl.sigstore").read_bytes()
    d = _digest("bundle_v3_github.whl")
    root = roots["production"]
    cases = [
        IdentityRule(san=RFC8785.replace("v0.1.2", "v0.1.3"), issuer=GH),  # another tag
        IdentityRule(san=RFC8785, issuer=GH_OAUTH),  # right SAN, wrong issuer
        # regular expressions are anchored: a prefix or a substring is not enough
        IdentityRule(san_regexp=r"https://github\.com/trailofbits/", issuer=GH),
        IdentityRule(san_regexp=r"rfc8785\.py", issuer=GH),
        IdentityRule(san_regexp=r".*", issuer_regexp=r"https://token\.actions"),
    ]
    for rule in cases:
        e = _fail(data, d, root, rules=[rule])
        assert e.code == "cosign-identity-mismatch", rule
        assert RFC8785 in e.message and GH in e.message
    ok = IdentityRule(san_regexp=r"https://github\.com/trailofbits/rfc8785\.py/.*", issuer=GH)
    assert verify_bundle(data, d, root, AT, [ok]).identity == RFC8785


def test_attack_bundle_for_another_artifact(roots: dict[str, TrustRoot]) -> None:
    e = _fail(
        (FIX / "bundle_v3.txt.sigstore").read_bytes(), _digest("bundle.txt"), roots["staging"]
    )
    assert e.code == "cosign-digest-mismatch"
    # the same bundle without the messageDigest field: the signature does not verify
    doc = json.loads((FIX / "bundle_v3.txt.sigstore").read_bytes())
    del doc["messageSignature"]["messageDigest"]
    e = _fail(json.dumps(doc).encode(), _digest("bundle.txt"), roots["staging"])
    assert e.code in ("cosign-signature-invalid", "cosign-tlog-invalid")


def _mutated(name: str, change: Any) -> bytes:
    doc = json.loads((FIX / name).read_bytes())
    change(doc)
    return json.dumps(doc).encode()


def _entry(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["verificationMaterial"]["tlogEntries"][0]  # type: ignore[no-any-return]


def test_attack_certificate_outside_its_validity_at_signing_time(
    roots: dict[str, TrustRoot],
) -> None:
    """The Rekor time moved after (and before) the 10-minute certificate window."""
    d = _digest("bundle.txt")
    for delta in (3600, -3600):
        data = _mutated(
            "bundle.txt.sigstore",
            lambda doc, delta=delta: _entry(doc).update(
                integratedTime=str(int(_entry(doc)["integratedTime"]) + delta)
            ),
        )
        e = _fail(data, d, roots["staging"])
        assert e.code == "cosign-cert-invalid", e.message


def test_attack_missing_or_invalid_inclusion_proof(roots: dict[str, TrustRoot]) -> None:
    staging = roots["staging"]
    d3 = _digest("bundle_v3.txt")
    no_proof = _mutated("bundle_v3.txt.sigstore", lambda doc: _entry(doc).pop("inclusionProof"))
    assert _fail(no_proof, d3, staging).code == "cosign-tlog-invalid"

    def flip_hash(doc: dict[str, Any]) -> None:
        hashes = _entry(doc)["inclusionProof"]["hashes"]
        raw = bytearray(base64.b64decode(hashes[0]))
        raw[0] ^= 1
        hashes[0] = base64.b64encode(bytes(raw)).decode()

    assert _fail(_mutated("bundle_v3.txt.sigstore", flip_hash), d3, staging).code == (
        "cosign-tlog-invalid"
    )

    def other_root_hash(doc: dict[str, Any]) -> None:
        _entry(doc)["inclusionProof"]["rootHash"] = base64.b64encode(b"\0" * 32).decode()

    assert _fail(_mutated("bundle_v3.txt.sigstore", other_root_hash), d3, staging).code == (
        "cosign-tlog-invalid"
    )

    def bad_set(doc: dict[str, Any]) -> None:
        promise = _entry(doc)["inclusionPromise"]
        raw = bytearray(base64.b64decode(promise["signedEntryTimestamp"]))
        raw[-1] ^= 1
        promise["signedEntryTimestamp"] = base64.b64encode(bytes(raw)).decode()

    e = _fail(_mutated("bundle.txt.sigstore", bad_set), _digest("bundle.txt"), staging)
    assert e.code == "cosign-tlog-invalid"
    # sigstore-python's own assets: no log entry, no checkpoint, an entry for another
    # signature (CVE-2022-36056)
    for name in (
        "bundle_no_log_entry.txt",
        "bundle_no_checkpoint.txt",
        "bundle_cve_2022_36056.txt",
    ):
        e = _fail((FIX / f"{name}.sigstore").read_bytes(), _digest(name), staging)
        assert e.code == "cosign-tlog-invalid", (name, e.message)


def test_attack_tampered_signature_and_malformed_bundles(roots: dict[str, TrustRoot]) -> None:
    staging = roots["staging"]

    def flip_sig(doc: dict[str, Any]) -> None:
        raw = bytearray(base64.b64decode(doc["messageSignature"]["signature"]))
        raw[-1] ^= 1
        doc["messageSignature"]["signature"] = base64.b64encode(bytes(raw)).decode()

    e = _fail(_mutated("bundle_v3.txt.sigstore", flip_sig), _digest("bundle_v3.txt"), staging)
    assert e.code in ("cosign-signature-invalid", "cosign-tlog-invalid")
    for junk in (b"", b"[]", b"{", b'{"mediaType": "application/vnd.dev.sigstore.bundle.v9+json"}'):
        assert _fail(junk, _digest("bundle_v3.txt"), staging).code == "cosign-bundle-invalid"
    assert _fail(b" " * (1024 * 1024 + 1), _digest("bundle_v3.txt"), staging).code == (
        "cosign-bundle-invalid"
    )


def _root_with(root: TrustRoot, change: Any) -> TrustRoot:
    raw = json.loads(root.root._inner.to_json())
    change(raw)
    return parse_trust_root(json.dumps(raw).encode(), "test")


def test_ca_and_rekor_key_windows_of_the_trusted_root_are_enforced(
    roots: dict[str, TrustRoot],
) -> None:
    """Stricter than sigstore-python (as cosign): the Fulcio CA and the Rekor key must be
    valid at the signing time per the trusted root's validFor."""
    data = (FIX / "bundle_v3.txt.sigstore").read_bytes()
    d = _digest("bundle_v3.txt")

    def ca_ends_early(raw: dict[str, Any]) -> None:
        for ca in raw["certificateAuthorities"]:
            ca["validFor"]["end"] = "2020-01-01T00:00:00Z"

    e = _fail(data, d, _root_with(roots["staging"], ca_ends_early))
    assert e.code == "cosign-cert-invalid" and "was valid at the signing time" in e.message

    def rekor_ends_early(raw: dict[str, Any]) -> None:
        for tlog in raw["tlogs"]:
            tlog["publicKey"]["validFor"]["end"] = "2020-01-01T00:00:00Z"

    e = _fail(data, d, _root_with(roots["staging"], rekor_ends_early))
    assert e.code == "cosign-tlog-invalid" and "was not valid at the integrated time" in e.message


def test_signed_after_the_validation_time(roots: dict[str, TrustRoot]) -> None:
    data = (FIX / "bundle_v3.txt.sigstore").read_bytes()
    e = _fail(data, _digest("bundle_v3.txt"), roots["staging"], at=datetime(2024, 1, 1, tzinfo=UTC))
    assert e.code == "cosign-cert-invalid" and "after the validation time" in e.message


def _legacy_parts(name: str = "bundle.txt.sigstore") -> tuple[bytes, bytes, bytes, dict[str, Any]]:
    """cosign's legacy annotations (certificate PEM, Rekor bundle) from a real v0.1 bundle."""
    b = json.loads((FIX / name).read_bytes())
    entry = b["verificationMaterial"]["tlogEntries"][0]
    vm = b["verificationMaterial"]
    cert = (
        vm["certificate"] if "certificate" in vm else vm["x509CertificateChain"]["certificates"][0]
    )
    der = base64.b64decode(cert["rawBytes"])
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    rekor = {
        "SignedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
        "Payload": {
            "body": entry["canonicalizedBody"],
            "integratedTime": int(entry["integratedTime"]),
            "logIndex": int(entry["logIndex"]),
            "logID": base64.b64decode(entry["logId"]["keyId"]).hex(),
        },
    }
    return base64.b64decode(b["messageSignature"]["signature"]), pem, b"", rekor


def test_legacy_keyless_signature_with_a_rekor_set(roots: dict[str, TrustRoot]) -> None:
    sig, pem, _, rekor = _legacy_parts()
    payload = (FIX / "bundle.txt").read_bytes()
    staging = roots["staging"]
    rules = [IdentityRule(san="a@tny.town", issuer=GH_OAUTH)]
    res = verify_legacy(payload, sig, pem, json.dumps(rekor).encode(), staging, AT, rules)
    assert (res.identity, res.issuer) == ("a@tny.town", GH_OAUTH)
    assert res.details["rekor_log_index"] == "7390977"

    def fails(**kw: Any) -> Fail:
        args: dict[str, Any] = {
            "payload": payload,
            "signature": sig,
            "cert_pem": pem,
            "rekor_bundle": json.dumps(rekor).encode(),
            "root": staging,
            "at": AT,
            "rules": rules,
        }
        args.update(kw)
        with pytest.raises(Fail) as info:
            verify_legacy(**args)
        return info.value

    # no Rekor bundle: never shown to be logged
    assert fails(rekor_bundle=None).code == "cosign-tlog-invalid"
    # a SET that does not verify
    bad = copy.deepcopy(rekor)
    bad["Payload"]["integratedTime"] += 1
    assert fails(rekor_bundle=json.dumps(bad).encode()).code == "cosign-tlog-invalid"
    # the entry of another signature (a real one: bundle_v3.txt's)
    _, _, _, other = _legacy_parts("bundle_cve_2022_36056.txt.sigstore")
    assert fails(rekor_bundle=json.dumps(other).encode()).code == "cosign-tlog-invalid"
    # another payload under the same logged signature
    assert fails(payload=payload + b"x").code == "cosign-tlog-invalid"
    # identity and issuer
    assert fails(rules=[IdentityRule(san="b@tny.town", issuer=GH_OAUTH)]).code == (
        "cosign-identity-mismatch"
    )
    assert fails(rules=[IdentityRule(san="a@tny.town", issuer=GH)]).code == (
        "cosign-identity-mismatch"
    )
    # the wrong trusted root; not a certificate
    assert fails(root=roots["production"]).code == "cosign-tlog-invalid"
    assert fails(cert_pem=b"junk").code == "cosign-bundle-invalid"


def test_cli_verify_blob_real_bundles(roots: dict[str, TrustRoot]) -> None:
    r = run_trustcheck(
        "cosign", "verify-blob", str(FIX / "bundle_v3.txt"), "--bundle",
        str(FIX / "bundle_v3.txt.sigstore"), "--certificate-identity", "william@yossarian.net",
        "--certificate-oidc-issuer", GH_OAUTH, "--trusted-root",
        str(FIX / "staging_trusted_root.json"), "--at", "2026-08-22T00:00:00Z", "--json",
    )  # fmt: skip
    assert r.code == 0, r
    doc = json.loads(r.stdout)
    assert doc["trusted"] is True and doc["identity"] == "william@yossarian.net"
    assert doc["signed_at"] == "2024-04-02T19:19:09Z" and doc["error"] is None
    r = run_trustcheck(
        "cosign", "verify-blob", str(FIX / "bundle.txt"), "--bundle",
        str(FIX / "bundle_v3.txt.sigstore"), "--certificate-identity", "william@yossarian.net",
        "--certificate-oidc-issuer", GH_OAUTH, "--trusted-root",
        str(FIX / "staging_trusted_root.json"),
    )  # fmt: skip
    assert r.code == 1 and "[cosign-digest-mismatch]" in r.stdout
    assert len(r.stdout.splitlines()) == 1 and "Traceback" not in r.stderr
    r = run_trustcheck(
        "cosign", "verify-blob", str(FIX / "bundle.txt"), "--bundle", str(FIX / "nosuch"),
        "--certificate-identity", "x@y", "--certificate-oidc-issuer", GH_OAUTH,
        "--trusted-root", str(FIX / "staging_trusted_root.json"),
    )  # fmt: skip
    assert r.code == 2 and "nosuch" in r.stderr


def test_trusted_root_files_are_checked(tmp_path: Path) -> None:
    for content, why in ((b"{}", "not a usable"), (b"[", "not a usable")):
        p = tmp_path / "tr.json"
        p.write_bytes(content)
        r = run_trustcheck(
            "cosign", "verify-blob", str(FIX / "bundle.txt"), "--bundle",
            str(FIX / "bundle.txt.sigstore"), "--certificate-identity", "a@tny.town",
            "--certificate-oidc-issuer", GH_OAUTH, "--trusted-root", str(p),
        )  # fmt: skip
        assert r.code == 2 and "[cosign-config-invalid]" in r.stderr and why in r.stderr
    r = run_trustcheck(
        "cosign", "verify-blob", str(FIX / "bundle.txt"), "--bundle",
        str(FIX / "bundle.txt.sigstore"), "--certificate-identity", "a@tny.town",
        "--certificate-oidc-issuer", GH_OAUTH, "--trusted-root", str(tmp_path / "missing.json"),
    )  # fmt: skip
    assert r.code == 2 and "cannot read it" in r.stderr


def test_without_the_extra_keyless_is_extra_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """sigstore-python not importable (an install without trustcheck[sigstore])."""
    import sys

    monkeypatch.setitem(sys.modules, "sigstore", None)
    r = run_trustcheck(
        "cosign", "verify", "--certificate-identity", "a@tny.town", "--certificate-oidc-issuer",
        GH_OAUTH, "--trusted-root", str(FIX / "staging_trusted_root.json"), "localhost:5000/a:b",
    )  # fmt: skip
    assert r.code == 2 and "[extra-missing]" in r.stderr and "trustcheck[sigstore]" in r.stderr


IMAGE_SIG = FIX.parent / "cosign-image"
IMAGE_DIGEST = "sha256:c05263d2ff654c3a94243662440913f045075d59c436e2c69e9145ec2b87a321"
WORKFLOW = (
    "https://github.com/salrashid123/go-bazel-github-workflow/.github/workflows/"
    "release.yaml@refs/tags/v0.0.30"
)


def test_real_cosign_image_signature_from_a_github_release(tmp_path: Path) -> None:
    """A real legacy keyless .sig layer (public-good Fulcio and Rekor, 2026-02-27) against
    sigstore's production trusted root obtained through TUF."""
    from trustcheck.api import Options
    from trustcheck.local.state import StateStore
    from trustcheck.sigstore.keyed import decode_signature
    from trustcheck.sigstore.simplesigning import check_payload

    tuf = FIX.parents[1] / "tuf" / "sigstore-root-signing"
    root = load_trust_root(
        f"tuf:{tuf}", at=AT, options=Options(state=StateStore(tmp_path)), tuf_root=tuf / "root.json"
    )
    (layer,) = json.loads((IMAGE_SIG / "sig-manifest.json").read_bytes())["layers"]
    ann = layer["annotations"]
    payload = (IMAGE_SIG / "payload.json").read_bytes()
    assert "sha256:" + hashlib.sha256(payload).hexdigest() == layer["digest"]
    sig = decode_signature(ann["dev.cosignproject.cosign/signature"], "w")
    cert = ann["dev.sigstore.cosign/certificate"].encode()
    rekor = ann["dev.sigstore.cosign/bundle"].encode()
    rules = [IdentityRule(san=WORKFLOW, issuer=GH)]
    res = verify_legacy(payload, sig, cert, rekor, root, AT, rules)
    assert (res.identity, res.issuer) == (WORKFLOW, GH)
    assert res.signed_at == datetime(2026, 2, 27, 18, 20, 46, tzinfo=UTC)
    assert res.details["rekor_log_index"] == "1004096555"
    assert check_payload(payload, IMAGE_DIGEST, "w").docker_reference == (
        "index.docker.io/salrashid123/server_image"
    )
    # another release tag of the same workflow, the staging root, a validation time
    # before the signature: each refused
    with pytest.raises(Fail) as info:
        other_tag = IdentityRule(san=WORKFLOW.replace("v0.0.30", "v0.0.31"), issuer=GH)
        verify_legacy(payload, sig, cert, rekor, root, AT, [other_tag])
    assert info.value.code == "cosign-identity-mismatch"
    staging = load_trust_root(FIX / "staging_trusted_root.json")
    with pytest.raises(Fail) as info:
        verify_legacy(payload, sig, cert, rekor, staging, AT, rules)
    assert info.value.code == "cosign-tlog-invalid"
    with pytest.raises(Fail) as info:
        verify_legacy(payload, sig, cert, rekor, root, datetime(2026, 2, 1, tzinfo=UTC), rules)
    assert (
        info.value.code == "cosign-cert-invalid"
        and "after the validation time" in info.value.message
    )


def test_cli_prints_one_line_and_nothing_of_sigstore_python(tmp_path: Path) -> None:
    """A real process (no pytest log capture): sigstore-python's own warning about the
    root CA this bundle carries is not printed; the refusal is one line."""
    import subprocess
    import sys

    case = FIX.parent / "conformance" / "bundle-verify" / "bundle-with-root-cert_fail"
    root = FIX.parents[1] / "tuf" / "sigstore-root-signing" / "targets" / "trusted_root.json"
    code = "import sys; from trustcheck.cli import main; sys.exit(main())"
    proc = subprocess.run(
        [sys.executable, "-c", code, "cosign", "verify-blob", str(case / "artifact"),
         "--bundle", str(case / "bundle.sigstore.json"), "--certificate-identity-regexp", ".*",
         "--certificate-oidc-issuer-regexp", ".*", "--trusted-root", str(root)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1, proc
    assert proc.stderr == ""
    assert len(proc.stdout.splitlines()) == 1 and "[cosign-tlog-invalid]" in proc.stdout
