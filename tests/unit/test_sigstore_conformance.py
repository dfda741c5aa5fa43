"""sigstore-conformance's bundle verification cases (fixtures/sigstore/conformance), run
through trustcheck's keyless verifier with the suite's rules: a case whose folder name
ends in ``_fail`` must be refused, every other one accepted, with the case's identity,
issuer, artifact and trusted root (default: sigstore's production trusted root, here
the one of fixtures/tuf/sigstore-root-signing)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fixtures.cosign_sign import CosignKeyPair
from trustcheck.errors import CODES, UsageError
from trustcheck.sigstore.config import IdentityRule, load_public_key
from trustcheck.sigstore.errors import Fail
from trustcheck.sigstore.keyless import verify_bundle, verify_key_bundle
from trustcheck.sigstore.trustroot import parse_trust_root

REPO = Path(__file__).resolve().parents[2] / "fixtures"
CASES = REPO / "sigstore" / "conformance" / "bundle-verify"
PRODUCTION = REPO / "tuf" / "sigstore-root-signing" / "targets" / "trusted_root.json"
IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
ISSUER = "https://token.actions.githubusercontent.com"
AT = datetime(2026, 8, 22, tzinfo=UTC)

#: cases the suite expects to pass that trustcheck refuses, failing closed, and why
#: (docs/sigstore.md, "Differences from cosign")
REFUSED: dict[str, str] = {
    # sigstore-python takes an integrated time as a signing time only for dsse and
    # hashedrekord 0.0.1 entries; this bundle's entry is intoto 0.0.2
    "intoto-with-custom-trust-root": "Integrated time only supported",
    # sigstore-python treats a TSA's validFor end as exclusive; the timestamp is on it
    "trust-root-tsa-validity-end-inclusive": "not enough sources of verified time",
}
#: malformed trusted roots, refused before any bundle is looked at
BAD_ROOTS = {"trust-root-tlog-missing-validity-start_fail"}
#: key-based cases (``key.pub``); the wrong key is not even a PEM key: refused at load
KEY_CASES = {"managed-key-and-trusted-root", "managed-key-happy-path", "managed-key-wrong-key_fail"}


def _cases() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if p.is_dir() and p.name not in KEY_CASES)


def test_the_cases_are_all_there() -> None:
    names = {p.name for p in CASES.iterdir() if p.is_dir()}
    assert len(names) == 70 and names >= KEY_CASES
    assert all((CASES / n / "key.pub").is_file() for n in KEY_CASES)
    assert not any((CASES / n / "key.pub").exists() for n in _cases())


@pytest.mark.parametrize("name", sorted(KEY_CASES))
def test_conformance_key_case(name: str) -> None:
    """Key-based bundles: the signature with the key, and the transparency log entry
    (inclusion proof, checkpoint, SET, the entry of this signature) with the root."""
    case = CASES / name
    root_file = case / "trusted_root.json" if (case / "trusted_root.json").exists() else PRODUCTION
    root = parse_trust_root(root_file.read_bytes(), str(root_file))
    digest = "sha256:" + hashlib.sha256((CASES / "a.txt").read_bytes()).hexdigest()
    data = (case / "bundle.sigstore.json").read_bytes()
    if name.endswith("_fail"):
        with pytest.raises(UsageError) as info:
            load_public_key((case / "key.pub").read_bytes(), "--key key.pub")
        assert info.value.code == "cosign-config-invalid"
        return
    key = load_public_key((case / "key.pub").read_bytes(), "--key key.pub")
    signer, signed_at, details = verify_key_bundle(data, digest, [key], root, AT)
    assert signer is key and signed_at is not None and details["rekor_log_index"]
    # another key, another artifact, the staging root: each refused
    other = load_public_key(CosignKeyPair.generate().public_pem(), "--key other.pub")
    with pytest.raises(Fail) as bad:
        verify_key_bundle(data, digest, [other], root, AT)
    assert bad.value.code == "cosign-signature-invalid"
    with pytest.raises(Fail) as bad:
        verify_key_bundle(data, "sha256:" + "00" * 32, [key], root, AT)
    assert bad.value.code in ("cosign-digest-mismatch", "cosign-signature-invalid")
    # the other instance's root (the custom root of one case is staging's)
    other_file = (
        REPO / "sigstore" / "sigstore-python" / "staging_trusted_root.json"
        if root_file == PRODUCTION
        else PRODUCTION
    )
    other_root = parse_trust_root(other_file.read_bytes(), str(other_file))
    with pytest.raises(Fail) as bad:
        verify_key_bundle(data, digest, [key], other_root, AT)
    assert bad.value.code == "cosign-tlog-invalid"


@pytest.mark.parametrize("name", _cases())
def test_conformance_case(name: str) -> None:
    case = CASES / name
    artifact = case / "artifact" if (case / "artifact").exists() else CASES / "a.txt"
    identity = (case / "identity").read_text().strip() if (case / "identity").exists() else IDENTITY
    issuer = (case / "issuer").read_text().strip() if (case / "issuer").exists() else ISSUER
    root_file = case / "trusted_root.json" if (case / "trusted_root.json").exists() else PRODUCTION
    if name in BAD_ROOTS:  # refused when the trusted root is loaded: exit 2, one line
        with pytest.raises(UsageError) as bad_root:
            parse_trust_root(root_file.read_bytes(), str(root_file))
        assert bad_root.value.code == "cosign-config-invalid"
        assert "\n" not in bad_root.value.message
        return
    root = parse_trust_root(root_file.read_bytes(), str(root_file))
    digest = "sha256:" + hashlib.sha256(artifact.read_bytes()).hexdigest()
    data = (case / "bundle.sigstore.json").read_bytes()
    rules = [IdentityRule(san=identity, issuer=issuer)]
    if name.endswith("_fail") or name in REFUSED:
        with pytest.raises(Fail) as info:
            verify_bundle(data, digest, root, AT, rules)
        assert info.value.code in CODES and CODES[info.value.code][0] == 1
        assert "\n" not in info.value.message
        if name in REFUSED:
            assert REFUSED[name] in info.value.message
    else:
        res = verify_bundle(data, digest, root, AT, rules)
        assert (res.identity, res.issuer) == (identity, issuer)
