"""``require:``: one policy for DCT, Notation and cosign (issues 19 and 20).

Parsing (every refusal names file, line and field), the ``from``/``until`` windows,
and :func:`decide` over the committed DCT collection written by the real notary
client plus Notation/cosign :class:`Evidence` records built here (decide is pure;
the end-to-end runs against a real registry are tests/integration/test_mixed_policy.py).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fixtures.generate import FixtureSet
from trustcheck.api import load_collection
from trustcheck.core.reference import parse_reference
from trustcheck.core.verify import Collection
from trustcheck.errors import NotTrusted, TrustcheckError, UsageError
from trustcheck.policy.decide import decide
from trustcheck.policy.evaluate import needs_dct
from trustcheck.policy.load import parse_policy
from trustcheck.policy.model import Decision, Policy
from trustcheck.policy.require import (
    AllOf,
    AnyOf,
    CosignReq,
    DctReq,
    NotationReq,
    key_identity,
    parse_subject,
)
from trustcheck.signatures.evidence import Evidence

GUN = "localhost/signers"
OTHER = "sha256:" + "ab" * 32
SUBJECT = "C=US, ST=WA, L=Seattle, O=Acme, CN=release"
NOTATION = "x509.subject: C=US, ST=WA, O=Acme"
GH = "https://token.actions.githubusercontent.com"


def _pol(rules: str, base: Path | None = None, top: str = "") -> Policy:
    return parse_policy(top + "rules:\n" + textwrap.dedent(rules), "p.yaml", base)


def _refused(rules: str, *needles: str, base: Path | None = None, top: str = "") -> str:
    with pytest.raises(UsageError) as e:
        _pol(rules, base, top)
    assert e.value.code == "policy-invalid"
    for n in needles:
        assert n in e.value.message, e.value.message
    return e.value.message


@pytest.fixture(scope="module")
def col(committed_fixtures: FixtureSet) -> Collection:
    at = datetime.fromisoformat(committed_fixtures.validation_time)
    return load_collection(committed_fixtures.trust_dir, GUN, at)


@pytest.fixture(scope="module")
def listed(committed_fixtures: FixtureSet) -> dict[str, str]:
    (repo,) = (r for r in committed_fixtures.repos() if r["name"] == "signers")
    return {row["name"]: "sha256:" + row["digest"] for row in repo["notary_list"]}


@pytest.fixture(scope="module")
def cosign_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = tmp_path_factory.mktemp("cosign") / "cosign.pub"
    path.write_bytes(pem)
    return path, key_identity(pem)


def _notation(digest: str, subject: str = SUBJECT, *, valid: bool = True, **kw: object) -> Evidence:
    return Evidence(
        kind="notation",
        digest=digest,
        valid=valid,
        identity=subject,
        issuer="ca:acme",
        source="sha256:" + "0" * 64,
        details={"policy": str(kw.get("trust_policy", "acme-prod"))},
        code=None if valid else str(kw.get("code", "notation-untrusted-chain")),
        message="" if valid else "the chain does not end in the trust store ca:acme",
    )


def _cosign(digest: str, identity: str, issuer: str | None = None) -> Evidence:
    return Evidence(kind="cosign", digest=digest, valid=True, identity=identity, issuer=issuer)


def _decide(
    policy: Policy,
    image: str,
    got: Collection | TrustcheckError | None,
    evidence: Mapping[str, Sequence[Evidence]] | None = None,
    at: datetime | None = None,
    digest: str | None = None,
) -> Decision:
    return decide(parse_reference(image), policy, got, evidence=evidence, at=at, digest=digest)


def _codes(d: Decision) -> list[str]:
    return [r.code for r in d.reasons]


# ----------------------------------------------------------------------------- parsing

MIGRATION = f"""\
- name: acme
  pattern: localhost/signers
  require:
    any_of:
      - dct: {{signers: [alice, bob], threshold: 1}}
        until: 2027-03-31
      - notation:
          trust_policy: acme-prod
          identities: ["{NOTATION}"]
"""


def test_migration_policy_parses_into_a_tree() -> None:
    (rule,) = _pol(MIGRATION).rules
    req = rule.require
    assert isinstance(req, AnyOf) and req.window is None and rule.signers == ()
    dct, notation = req.children
    assert isinstance(dct, DctReq) and [s.text for s in dct.signers] == ["alice", "bob"]
    assert dct.threshold == 1 and dct.path == "rules[0].require.any_of[0]"
    assert dct.window is not None and dct.window.end == datetime(2027, 4, 1, tzinfo=UTC)
    assert isinstance(notation, NotationReq) and notation.trust_policy == "acme-prod"
    assert notation.identities == (NOTATION,)
    # the DCT leaf's window decides whether DCT trust data is fetched at all
    assert needs_dct(rule, datetime(2027, 3, 31, 23, 59, tzinfo=UTC))
    assert not needs_dct(rule, datetime(2027, 4, 1, tzinfo=UTC))


def test_windows_dates_and_rfc3339() -> None:
    text = """\
    - pattern: a.example/x
      require:
        all_of:
          - dct: {}
            from: 2026-01-01
            until: "2026-06-30T12:00:00+02:00"
          - cosign: {identities: [{san: me@acme.example, issuer: https://accounts.google.com}]}
            from: "2026-01-01T00:00:00Z"
    """
    req = _pol(text).rules[0].require
    assert isinstance(req, AllOf)
    w = req.children[0].window
    assert w is not None and w.start == datetime(2026, 1, 1, tzinfo=UTC)
    assert w.end == datetime(2026, 6, 30, 10, tzinfo=UTC)
    assert w.contains(datetime(2026, 1, 1, tzinfo=UTC))
    assert not w.contains(datetime(2026, 6, 30, 10, tzinfo=UTC))
    assert not w.contains(datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC))


def test_cosign_keys_from_file_and_inline(cosign_key: tuple[Path, str]) -> None:
    path, ident = cosign_key
    inline = json.dumps(path.read_text())
    text = f"""\
    - pattern: a.example/x
      require:
        cosign:
          keys: [{path.name}, {inline}]
          identities:
            - {{san_regex: "^https://github\\\\.com/acme/.*$", issuer: {GH}}}
    """
    req = _pol(text, path.parent).rules[0].require
    assert isinstance(req, CosignReq)
    assert req.keys == (ident,)  # the same key twice counts once
    (who,) = req.identities
    assert who.matches("https://github.com/acme/app/.github/workflows/r.yml@refs/heads/main", GH)
    assert not who.matches("https://github.com/acme/app", "https://evil.example")
    assert not who.matches("https://github.com/acmeX/app", GH)


BAD_REQUIRE = [
    ("require: {}", "rules[0].require: needs exactly one of dct, notation, cosign"),
    ("require: {dct: {}, notation: {}}", "found: dct, notation"),
    ("require: {dtc: {}}", "rules[0].require.dtc: unknown key"),
    ("require: {any_of: []}", "any_of: is empty"),
    ("require: {any_of: {dct: {}}}", "any_of: must be a list"),
    ("require: {dct: {}, until: 2027-02-30}", "is not a date"),
    ("require: {dct: {}, until: '2027-03-31T00:00:00'}", "RFC 3339 time with a zone"),
    ("require: {dct: {}, until: tomorrow}", "neither a date"),
    ("require: {dct: {}, until: 12}", "must be a date"),
    ("require: {dct: {}, from: 2027-04-01, until: 2027-03-31}", "is not after from 2027-04-01"),
    ("require: {dct: {threshold: 1}}", "threshold: needs a signers list"),
    ("require: {dct: {signers: [a, b], threshold: 3}}", "between 1 and the number of signers"),
    ("require: {dct: {signers: [a, a]}}", "'a' is listed twice"),
    ("require: {notation: {identities: []}}", "identities: is empty"),
    ("require: {notation: {identities: ['C=US, O=Acme']}}", "must be 'x509.subject: <subject>'"),
    ("require: {notation: {identities: ['x509.subject: C=US, C=DE']}}", "appears twice"),
    ("require: {notation: {identities: ['x509.subject: C=US, Acme']}}", "is not TYPE=value"),
    ("require: {notation: {trust_policy: ''}}", "must not be empty"),
    ("require: {cosign: {}}", "needs keys or identities"),
    ("require: {cosign: {keys: []}}", "keys: is empty"),
    ("require: {cosign: {keys: [missing.pub]}}", "cannot read the public key"),
    ("require: {cosign: {keys: ['-----BEGIN PUBLIC KEY-----\nxx']}}", "not a PEM public key"),
    (
        "require: {cosign: {identities: [{san: a@b.c}]}}",
        "needs issuer",
    ),
    (
        "require: {cosign: {identities: [{san: a, san_regex: '^a$', issuer: i}]}}",
        "exactly one of san",
    ),
    ("require: {cosign: {identities: [{issuer: i}]}}", "exactly one of san"),
    ("require: {cosign: {identities: [{san_regex: 'acme', issuer: i}]}}", "is not anchored"),
    ("require: {cosign: {identities: [{san_regex: '^acme', issuer: i}]}}", "is not anchored"),
    ("require: {cosign: {identities: [{san_regex: 'acme$', issuer: i}]}}", "is not anchored"),
    ("require: {cosign: {identities: [{san_regex: '^acme\\$', issuer: i}]}}", "not anchored"),
    ("require: {cosign: {identities: [{san_regex: '^(a$', issuer: i}]}}", "not a regular"),
    ("require: {cosign: {identities: [{san: a, issuer: ''}]}}", "must not be empty"),
    ("require: {cosign: {identities: [{san: a, issuer: i, subject: x}]}}", "unknown key"),
    ("signers: [a]\n  require: {dct: {}}", "signers/threshold are alternatives"),
    ("threshold: 1\n  signers: [a]\n  require: {dct: {}}", "signers/threshold are alternatives"),
    ("action: allow\n  require: {dct: {}}", "applies to action verify, not allow"),
    ("trust: {notation: {}}", "trust.notation: is empty"),
    ("trust: {cosign: {}}", "trust.cosign: is empty"),
    ("trust: {cosign: {trusted_root: ''}}", "must be a path"),
    ("trust: {cosign: {root: x}}", "unknown key"),
]


@pytest.mark.parametrize(("body", "needle"), BAD_REQUIRE)
def test_bad_requirements_are_refused_with_line_and_field(
    body: str, needle: str, tmp_path: Path
) -> None:
    message = _refused(f"- pattern: a.example/x\n  {body}\n", needle, base=tmp_path)
    assert message.startswith("p.yaml:"), message


def test_private_key_is_refused(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "cosign.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    _refused(
        "- pattern: a.example/x\n  require: {cosign: {keys: [cosign.key]}}\n",
        "holds a private key",
        base=tmp_path,
    )


def test_nesting_and_size_are_bounded() -> None:
    deep = "{dct: {}}"
    for _ in range(4):
        deep = f"{{any_of: [{deep}]}}"
    _refused(f"- pattern: a.example/x\n  require: {deep}\n", "deeper than 4 levels")
    ok = "{dct: {}}"
    for _ in range(3):
        ok = f"{{all_of: [{ok}]}}"
    assert _pol(f"- pattern: a.example/x\n  require: {ok}\n").rules[0].require is not None
    many = ", ".join(["{dct: {}}"] * 17)
    _refused(f"- pattern: a.example/x\n  require: {{any_of: [{many}]}}\n", "at most 16")
    wide = ", ".join([f"{{any_of: [{', '.join(['{dct: {}}'] * 16)}]}}"] * 5)
    _refused(f"- pattern: a.example/x\n  require: {{all_of: [{wide}]}}\n", "more than 64 leaves")


def test_trust_material_merges_over_defaults(tmp_path: Path) -> None:
    top = "defaults:\n  trust:\n    notation: notation-cfg\n    cosign: {trusted_root: tr.json}\n"
    rules = """\
    - pattern: a.example/x
      require: {notation: {}}
    - pattern: a.example/y
      require: {notation: {}}
      trust:
        notation: {trust_policy: tp.json, trust_store: store}
    """
    pol = _pol(rules, tmp_path, top)
    x, y = pol.rules
    assert x.trust.notation is not None and x.trust.notation.config_dir == tmp_path / "notation-cfg"
    assert y.trust.notation is not None and y.trust.notation.trust_policy == tmp_path / "tp.json"
    assert y.trust.notation.trust_store == tmp_path / "store"
    assert y.trust.notation.config_dir is None
    assert x.trust.cosign is not None and y.trust.cosign == x.trust.cosign


def test_subjects_parse_like_notation() -> None:
    assert parse_subject("C=US, ST=WA, O=Acme\\, Inc., CN=r") == {
        ("C", "US"),
        ("ST", "WA"),
        ("O", "Acme, Inc."),
        ("CN", "r"),
    }
    assert parse_subject("c=US,s=WA") == {("C", "US"), ("ST", "WA")}
    for bad in ("", "C=US,", "=x", "C=US, C=US", "C=US\\"):
        with pytest.raises(ValueError):
            parse_subject(bad)


# ----------------------------------------------------------------------------- decisions

BEFORE = datetime(2027, 3, 31, 23, 0, tzinfo=UTC)
AFTER = datetime(2027, 4, 1, 0, 0, tzinfo=UTC)


def test_migration_before_until_dct_satisfies(col: Collection, listed: dict[str, str]) -> None:
    pol = _pol(MIGRATION)
    d = _decide(pol, f"{GUN}:v1", col, {}, BEFORE)
    assert d.allowed and d.digest == listed["v1"] and d.digest_source == "dct"
    (by,) = d.satisfied_by
    assert by.kind == "dct" and by.path == "rules[0].require.any_of[0]"
    assert [s["signer"] for s in by.by] == ["alice"]
    assert d.role in ("targets/releases", "targets") and "alice" in d.signers
    (_, notation) = d.alternatives
    assert not notation.satisfied and notation.code == "signature-not-found"
    doc = d.to_json()
    assert doc["satisfied_by"][0]["alternative"] == "rules[0].require.any_of[0]"  # type: ignore[index]
    assert doc["digest_source"] == "dct"


def test_migration_after_until_needs_notation(col: Collection, listed: dict[str, str]) -> None:
    pol = _pol(MIGRATION)
    digest = listed["v1"]
    # DCT alone no longer counts, even though the tag is still DCT-signed
    d = _decide(pol, f"{GUN}:v1", col, {}, AFTER, digest)
    assert not d.allowed and _codes(d) == ["requirement-not-met", "signature-not-found"]
    dct = d.alternatives[0]
    assert not dct.active and "no longer in force at 2027-04-01T00:00:00Z (until 2027-03-31)" in (
        dct.why
    )
    assert d.exit_code == 1
    # a Notation signature by the CA's release identity over the digest does
    d = _decide(pol, f"{GUN}:v1", col, {"notation": [_notation(digest)]}, AFTER, digest)
    assert d.allowed and d.digest == digest and d.digest_source == "registry"
    assert d.pinned == f"{GUN}@{digest}"
    (by,) = d.satisfied_by
    assert by.kind == "notation" and by.by[0]["identity"] == SUBJECT
    assert "signed by C=US" in by.why


def test_notation_only_image_without_dct_data(listed: dict[str, str]) -> None:
    pol = _pol(MIGRATION)
    digest = listed["v2"]
    none = NotTrusted("no-trust-data", f"no trust data for {GUN}")
    d = _decide(pol, f"{GUN}:v2", none, {"notation": [_notation(digest)]}, BEFORE, digest)
    assert d.allowed and d.digest_source == "registry" and d.satisfied_by[0].kind == "notation"
    # neither DCT nor Notation: both failures are named
    d = _decide(pol, f"{GUN}:v2", none, {"notation": []}, BEFORE, digest)
    assert not d.allowed
    assert _codes(d) == ["requirement-not-met", "no-trust-data", "signature-not-found"]
    assert "any_of[0] (dct 1 of [alice, bob]) (until 2027-03-31)" not in d.reasons[0].message
    assert "rules[0].require.any_of[0] (dct 1 of [alice, bob]): [no-trust-data]" in (
        d.reasons[0].message
    )


def test_evidence_must_be_valid_for_this_digest_and_identity(listed: dict[str, str]) -> None:
    pol = _pol(MIGRATION)
    digest = listed["v2"]
    cases: list[tuple[list[Evidence], str]] = [
        ([_notation(OTHER)], "signature-not-found"),  # another image's signature
        ([_notation(digest, valid=False)], "notation-untrusted-chain"),
        ([_notation(digest, "C=US, ST=WA, O=Evil, CN=release")], "signature-identity-mismatch"),
        ([_notation(digest, "C=US, O=Acme, CN=release")], "signature-identity-mismatch"),  # no ST
        ([_notation(digest, trust_policy="other")], "signature-identity-mismatch"),
        ([_notation(digest, "not a subject")], "signature-identity-mismatch"),
    ]
    for records, code in cases:
        d = _decide(pol, f"{GUN}:v2", None, {"notation": records}, AFTER, digest)
        assert not d.allowed and d.verdict == "deny", records
        assert _codes(d) == ["requirement-not-met", code], (records, d.reasons)
    # several records: one good one is enough, whatever the others say
    records = [_notation(digest, valid=False), _notation(OTHER), _notation(digest)]
    assert _decide(pol, f"{GUN}:v2", None, {"notation": records}, AFTER, digest).allowed


def test_all_of_needs_every_kind(
    col: Collection, listed: dict[str, str], cosign_key: tuple[Path, str]
) -> None:
    path, ident = cosign_key
    text = f"""\
    - pattern: localhost/signers
      require:
        all_of:
          - dct: {{signers: [alice]}}
          - notation: {{identities: ["{NOTATION}"]}}
          - cosign:
              keys: [{path.name}]
              identities: [{{san: release@acme.example, issuer: https://accounts.google.com}}]
    """
    pol = _pol(text, path.parent)
    digest = listed["v1"]
    both = {"notation": [_notation(digest)], "cosign": [_cosign(digest, ident)]}
    d = _decide(pol, f"{GUN}:v1", col, both, AFTER)
    assert d.allowed and [r.kind for r in d.satisfied_by] == ["dct", "notation", "cosign"]
    keyless = {
        "notation": [_notation(digest)],
        "cosign": [_cosign(digest, "release@acme.example", "https://accounts.google.com")],
    }
    assert _decide(pol, f"{GUN}:v1", col, keyless, AFTER).allowed
    for missing in ("notation", "cosign"):
        ev = {k: v for k, v in both.items() if k != missing}
        d = _decide(pol, f"{GUN}:v1", col, ev, AFTER)
        assert not d.allowed and "signature-not-found" in _codes(d)
    wrong_issuer = {
        "notation": [_notation(digest)],
        "cosign": [_cosign(digest, "release@acme.example", "https://evil.example")],
    }
    d = _decide(pol, f"{GUN}:v1", col, wrong_issuer, AFTER)
    assert not d.allowed and "signature-identity-mismatch" in _codes(d)
    other_key = {"notation": [_notation(digest)], "cosign": [_cosign(digest, OTHER)]}
    assert not _decide(pol, f"{GUN}:v1", col, other_key, AFTER).allowed
    # bob did not sign v1-alice-only tags: the DCT leaf fails with its own code
    d = _decide(pol, f"{GUN}:bob-only", col, both, AFTER)
    assert not d.allowed and "signer-threshold-not-met" in _codes(d)


def test_one_digest_satisfies_the_whole_rule(col: Collection, listed: dict[str, str]) -> None:
    text = f"""\
    - pattern: localhost/signers
      require:
        all_of:
          - dct: {{}}
          - notation: {{identities: ["{NOTATION}"]}}
    """
    pol = _pol(text)
    v2 = listed["v2"]
    # Notation signed v2's digest, DCT released v1 for the tag: no mixing
    d = _decide(pol, f"{GUN}:v1", col, {"notation": [_notation(v2)]}, AFTER, v2)
    assert not d.allowed and d.digest_source == "dct"
    # a digest reference: DCT must release that very digest
    d = _decide(pol, f"{GUN}@{v2}", col, {"notation": [_notation(v2)]}, AFTER)
    assert d.allowed and d.digest == v2 and d.digest_source == "reference"
    d = _decide(pol, f"{GUN}:v1@{v2}", col, {"notation": [_notation(v2)]}, AFTER)
    assert not d.allowed and "digest-mismatch" in _codes(d)


def test_windows_without_a_time_fail_closed(listed: dict[str, str]) -> None:
    text = f"""\
    - pattern: localhost/signers
      require:
        notation: {{identities: ["{NOTATION}"]}}
        from: 2026-01-01
    """
    pol = _pol(text)
    digest = listed["v1"]
    ev = {"notation": [_notation(digest)]}
    d = _decide(pol, f"{GUN}:v1", None, ev, None, digest)
    assert not d.allowed and _codes(d) == ["requirement-not-met"]
    assert "no alternative is in force" in d.reasons[0].message
    assert _decide(pol, f"{GUN}:v1", None, ev, datetime(2026, 1, 1, tzinfo=UTC), digest).allowed
    d = _decide(pol, f"{GUN}:v1", None, ev, datetime(2026, 1, 1, tzinfo=UTC) - timedelta(1), digest)
    assert not d.allowed and "not yet in force" in d.alternatives[0].why


def test_combinator_window_switches_off_its_leaves(col: Collection, listed: dict[str, str]) -> None:
    text = """\
    - pattern: localhost/signers
      require:
        any_of:
          - any_of: [{dct: {}}]
            until: 2027-03-31
          - cosign: {identities: [{san: a@b.c, issuer: https://i.example}]}
    """
    pol = _pol(text)
    d = _decide(pol, f"{GUN}:v1", col, {}, AFTER, listed["v1"])
    assert not d.allowed
    dct = d.alternatives[0]
    assert not dct.active and "inside rules[0].require.any_of[0], which is no longer" in dct.why
    assert _decide(pol, f"{GUN}:v1", col, {}, BEFORE).allowed


def test_errors_without_a_digest_and_usage_errors(listed: dict[str, str]) -> None:
    pol = _pol(MIGRATION)
    failed = Evidence(
        kind="notation",
        digest="",
        valid=False,
        identity="",
        code="server-error",
        message="the registry answered HTTP 500",
    )
    d = _decide(pol, f"{GUN}:v1", None, {"notation": [failed]}, AFTER)
    assert not d.allowed and _codes(d) == ["requirement-not-met", "server-error"]
    assert "no digest for" in d.reasons[1].message and d.exit_code == 1
    # bad trust material (exit 2) is never waved through...
    bad = Evidence(
        kind="notation",
        digest=listed["v1"],
        valid=False,
        identity="",
        code="notation-config-invalid",
        message="trustpolicy.json: not JSON",
    )
    d = _decide(pol, f"{GUN}:v1", None, {"notation": [bad]}, AFTER, listed["v1"])
    assert not d.allowed and d.exit_code == 2
    # ...and when another alternative satisfies the rule, it is a warning
    ev = {"notation": [bad, _notation(listed["v1"])]}
    d = _decide(pol, f"{GUN}:v1", None, ev, AFTER, listed["v1"])
    assert d.allowed and d.exit_code == 0


def test_warn_mode_and_classic_rules_unchanged(col: Collection, listed: dict[str, str]) -> None:
    pol = _pol("- pattern: localhost/signers\n  mode: warn\n" + MIGRATION.split("\n", 2)[2])
    d = _decide(pol, f"{GUN}:v1", None, {}, AFTER, listed["v1"])
    assert d.allowed and d.verdict == "deny" and d.mode == "warn"
    classic = _pol("- pattern: localhost/signers\n  signers: [alice]\n")
    d = _decide(classic, f"{GUN}:v1", col)
    assert d.allowed and d.alternatives == [] and d.satisfied_by == []
    assert d.to_json()["satisfied_by"] == [] and d.to_json()["digest_source"] is None


def test_policy_check_warns_about_requirements_that_can_never_count() -> None:
    text = """\
    - pattern: a.example/x
      require:
        any_of:
          - dct: {}
          - cosign: {identities: [{san: a@b.c, issuer: https://i.example}]}
    - pattern: a.example/y
      trust: {offline: true}
      require: {notation: {}}
    - pattern: a.example/z
      trust: {cosign: {trusted_root: tr.json}}
      require: {cosign: {identities: [{san: a@b.c, issuer: https://i.example}]}}
    """
    warnings = [w for w in _pol(text).warnings if "require" in w or "cosign" in w or "offline" in w]
    assert len(warnings) == 2, warnings
    assert "p.yaml:2" in warnings[0] and "no trust.cosign.trusted_root" in warnings[0]
    assert "p.yaml:7" in warnings[1] and "is offline" in warnings[1]


def test_gate_archive_judges_windows_at_the_readers_time(
    committed_fixtures: FixtureSet, tmp_path: Path, trustcheck_cli: Callable[..., Any]
) -> None:
    """``gate --archive``: the trust data as of the capture time, the policy's dates at
    ``--at`` (the reader's now): an archived DCT release stops counting after its date."""
    arc = tmp_path / "team.tar"
    run = trustcheck_cli(
        "archive", "create", "--offline", "--trust-dir", str(committed_fixtures.trust_dir),
        "--at", committed_fixtures.validation_time, "-o", str(arc), "localhost/signers:v1",
    )  # fmt: skip
    assert run.code == 0, run.stderr
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "rules:\n  - pattern: localhost/signers\n    require:\n"
        "      dct: {signers: [alice]}\n      until: 2027-03-31\n"
    )
    gate = ("gate", "--json", "--policy", str(policy), "--archive", str(arc), "--at")
    before = trustcheck_cli(*gate, "2027-03-31T23:00:00Z", "localhost/signers:v1")
    assert before.code == 0, before.stdout + before.stderr
    (d,) = json.loads(before.stdout)["decisions"]
    assert d["satisfied_by"][0]["kind"] == "dct"
    after = trustcheck_cli(*gate, "2027-04-01T00:00:00Z", "localhost/signers:v1")
    assert after.code == 1
    (d,) = json.loads(after.stdout)["decisions"]
    assert [r["code"] for r in d["reasons"]] == ["requirement-not-met"]
    assert "no alternative is in force at 2027-04-01T00:00:00Z" in d["reasons"][0]["message"]
