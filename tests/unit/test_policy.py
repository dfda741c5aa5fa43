"""Policy files, pattern matching and precedence, decide(), and the gate CLI.

Decisions are made on the committed fixtures written by the real notary
client (fixtures/generated, validated at their VALIDATION_TIME):
localhost/signers is set up as `docker trust signer add` does it
(targets/releases holds alice's and bob's keys, targets/alice and
targets/bob one each), so the signer thresholds run on real delegations.
"""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fixtures.generate import FixtureSet
from trustcheck.api import Options, load_collection
from trustcheck.core.reference import parse_reference
from trustcheck.core.verify import Collection
from trustcheck.errors import NotTrusted, UsageError
from trustcheck.local.trustdir import TrustDir
from trustcheck.policy.decide import decide
from trustcheck.policy.evaluate import evaluate, rule_options, rule_remote
from trustcheck.policy.load import load_policy, parse_policy
from trustcheck.policy.model import Decision, Policy
from trustcheck.policy.pattern import Pattern
from trustcheck.remote.config import RemoteConfig

GUN = "localhost/signers"
KEYS = Path(__file__).resolve().parents[2] / "fixtures" / "generated" / "keys" / "delegations"

# ----------------------------------------------------------------------------- patterns

MATCHES = [
    ("docker.io/library/*", "docker.io/library/alpine"),
    ("docker.io/library/alpine", "docker.io/library/alpine"),
    ("docker.io/**", "docker.io/library/x/y"),
    ("docker.io/**", "docker.io/user/app"),
    ("registry.example.com/team/*", "registry.example.com/team/app"),
    ("registry.example.com/team/app-?", "registry.example.com/team/app-1"),
    ("registry.example.com/team/**/prod", "registry.example.com/team/a/b/prod"),
    ("*.azurecr.io/**", "myregistry.azurecr.io/team/app"),
    ("*/library/alpine", "docker.io/library/alpine"),
    ("localhost:5000/app", "localhost:5000/app"),
    ("[::1]:5000/app", "[::1]:5000/app"),
    ("**", "quay.io/any/depth/at/all"),
]

NO_MATCH = [
    # '*' never crosses '/'
    ("docker.io/library/*", "docker.io/library/x/y"),
    # anchored at the start: a registry whose path contains the pattern
    ("docker.io/library/*", "evil.io/docker.io/library/alpine"),
    ("docker.io/library/alpine", "evil.io/docker.io/library/alpine"),
    ("docker.io/**", "evil.io/docker.io/library/alpine"),
    # anchored at the end
    ("docker.io/library/alpine", "docker.io/library/alpine-evil"),
    ("docker.io/library/alpine", "docker.io/library/alpine/x"),
    ("docker.io/library/alpine", "docker.io/library/alpin"),
    # the registry is a whole component
    ("docker.io/**", "docker.io.evil.example/library/alpine"),
    ("*.azurecr.io/**", "azurecr.io.evil.example/team/app"),
    ("*.azurecr.io/**", "evil.example/myregistry.azurecr.io/app"),
    ("*/library/alpine", "registry.example.com/team/library/alpine"),
    ("registry.example.com/team/*", "registry.example.com/team-evil/app"),
    ("registry.example.com/team/*", "registry.example.com/teamx/app"),
    ("registry.example.com/team/app-?", "registry.example.com/team/app-10"),
    ("registry.example.com/team/**/prod", "registry.example.com/team/prod"),
    ("localhost:5000/app", "localhost:50000/app"),
    # '.' is literal, not a regular-expression wildcard
    ("registry.example.com/a.b", "registry.example.com/axb"),
]


@pytest.mark.parametrize(("pattern", "name"), MATCHES)
def test_pattern_matches(pattern: str, name: str) -> None:
    assert Pattern.parse(pattern).matches(name)


@pytest.mark.parametrize(("pattern", "name"), NO_MATCH)
def test_pattern_must_not_match(pattern: str, name: str) -> None:
    assert not Pattern.parse(pattern).matches(name)


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("", "empty"),
        ("alpine", "REGISTRY/REPOSITORY"),
        ("library/alpine", "not a registry"),
        ("docker.io/library/alpine:3", "tags"),
        ("docker.io/library/alpine@sha256:" + "a" * 64, "digests"),
        ("docker.io*/library/alpine", "other registries"),
        ("do*cker.io/x", "other registries"),
        ("docker.io/***", "'***'"),
        ("docker.io/Library/x", "lower-case"),
        ("docker.io/lib rary", "whitespace"),
        ("docker.io/", "REGISTRY/REPOSITORY"),
        ("docker.io//x", "empty path component"),
        ("index.docker.io/library/x", "normalised"),
        ("*", "REGISTRY/REPOSITORY"),
        ("docker.io/library/(a|b)", "only lower-case"),
    ],
)
def test_bad_patterns_are_refused(pattern: str, why: str) -> None:
    with pytest.raises(ValueError, match=why.replace("*", r"\*")):
        Pattern.parse(pattern)


def _policy(patterns: list[str]) -> Policy:
    rules = "".join(f'  - pattern: "{p}"\n' for p in patterns)
    return parse_policy(f"rules:\n{rules}", "p.yaml")


PRECEDENCE = [
    # (patterns in file order, image, index of the rule that decides)
    (["docker.io/**", "docker.io/library/*", "docker.io/library/alpine"], "alpine", 2),
    (["docker.io/**", "docker.io/library/*", "docker.io/library/alpine"], "nginx", 1),
    (["docker.io/**", "docker.io/library/*", "docker.io/library/alpine"], "user/app", 0),
    # equal literal prefix: fewer '**' wins; only '**' reaches deeper
    (["r.example.com/team/**", "r.example.com/team/*"], "r.example.com/team/app", 1),
    (["r.example.com/team/**", "r.example.com/team/*"], "r.example.com/team/a/b", 0),
    # a longer literal prefix wins
    (["r.example.com/team/*-prod", "r.example.com/team/app-*"], "r.example.com/team/app-prod", 1),
    (["*/library/alpine", "docker.io/**"], "alpine", 1),
    (["r.example.com/*/app", "r.example.com/team/*"], "r.example.com/team/app", 1),
    # same prefix and wildcards: more literal characters win
    (["r.example.com/t*/app", "r.example.com/t?am/app"], "r.example.com/team/app", 1),
    # equally specific but disjoint: each decides its own names
    (["r.example.com/a*/x", "r.example.com/b*/x"], "r.example.com/bc/x", 1),
    (["r.example.com/a/*", "r.example.com/b/*"], "r.example.com/a/x", 0),
    # an exact name beats everything
    (["**", "*/**", "r.example.com/**", "r.example.com/a"], "r.example.com/a", 3),
]


@pytest.mark.parametrize(("patterns", "image", "winner"), PRECEDENCE)
def test_most_specific_rule_wins(patterns: list[str], image: str, winner: int) -> None:
    policy = _policy(patterns)
    rule = policy.match(parse_reference(image))
    assert rule is not None and rule.index == winner, (
        rule,
        policy.candidates(parse_reference(image)),
    )


# pairs of equally specific patterns: (a, b, a name both match or None)
TIES = [
    ("r.example.com/x*y*", "r.example.com/x*z*", "r.example.com/xyz"),
    ("r.example.com/*/app", "r.example.com/*/ap?", None),  # not equally specific
    ("*/library/alpine", "*/library/alpina", None),  # equally specific, disjoint
    ("r.example.com/a*/x", "r.example.com/b*/x", None),
    ("*.example.com/**", "*.example.org/**", None),
    ("r.example.com/**/prod", "r.example.com/**/prod", None),  # the repeat check's
    ("r.example.com/t?*m", "r.example.com/t*?m", "r.example.com/team"),
    ("**/x", "r.example.com/**", None),  # not equally specific
    ("*/team/app", "*/team/ap?", None),
    ("*/a/**", "*/b/**", None),
    ("*/*-prod", "*/app-*", None),  # a longer literal prefix: not equally specific
    ("q.io/*-prod/*", "q.io/app-*/*", None),
    ("q.io/*/x/**", "q.io/*/**/y", "q.io/a/x/y"),
    ("q.io/*x/*", "q.io/x*/*", None),  # 'q.io/x' is a longer literal prefix
]


@pytest.mark.parametrize(("a", "b", "common"), TIES)
def test_equally_specific_overlapping_rules_are_refused(a: str, b: str, common: str | None) -> None:
    """Two rules that only their order in the file would settle: refused, naming
    both with file and line; otherwise each decides its own names."""
    pa, pb = Pattern.parse(a), Pattern.parse(b)
    tie = pa.specificity() == pb.specificity() and pa.overlaps(pb)
    if a == b:
        return  # the same pattern twice has its own message (test below)
    assert tie == (common is not None), (pa.specificity(), pb.specificity())
    text = f'rules:\n  - name: first\n    pattern: "{a}"\n  - name: second\n    pattern: "{b}"\n'
    if common is None:
        policy = parse_policy(text, "p.yaml")
        assert len(policy.rules) == 2
        return
    assert pa.matches(common) and pb.matches(common)
    with pytest.raises(UsageError) as info:
        parse_policy(text, "p.yaml")
    msg = info.value.message
    assert info.value.code == "policy-invalid" and info.value.exit_code == 2
    assert msg.startswith(f'p.yaml:4: rule "second" ({b}) and rule "first" ({a}, p.yaml:2)')
    assert "equally specific" in msg and "only their order in the file" in msg


def test_a_repeated_pattern_is_refused_unless_the_namespaces_differ() -> None:
    with pytest.raises(UsageError) as info:
        parse_policy("rules:\n  - pattern: a.io/x\n  - pattern: a.io/x\n    action: deny\n")
    assert "repeats the pattern of rule" in info.value.message
    scoped = (
        "rules:\n  - pattern: a.io/x\n    namespaces: [team-a]\n"
        "  - pattern: a.io/x\n    namespaces: [team-a]\n    action: deny\n"
    )
    with pytest.raises(UsageError) as info:
        parse_policy(scoped, "p.yaml")
    assert "in the same namespaces" in info.value.message
    ok = parse_policy(
        "rules:\n  - pattern: a.io/x\n    namespaces: [team-a]\n"
        "  - pattern: a.io/x\n    namespaces: [team-b]\n    action: deny\n"
        "  - pattern: a.io/x\n    action: allow\n",
        "p.yaml",
    )
    assert [r.namespaces for r in ok.rules] == [("team-a",), ("team-b",), ()]


NAMESPACED = """\
rules:
  - name: everyone
    pattern: r.example.com/**
  - name: team-a-strict
    pattern: r.example.com/**
    namespaces: [team-a-*, "shared"]
    signers: [alice]
  - name: prod-app
    pattern: r.example.com/app
    action: deny
  - name: sandbox-anything
    pattern: "**"
    namespaces: ["sandbox-?"]
    action: allow
"""


@pytest.mark.parametrize(
    ("image", "namespace", "winner"),
    [
        ("r.example.com/lib", None, "everyone"),  # no namespace: scoped rules never apply
        ("r.example.com/lib", "team-b", "everyone"),
        ("r.example.com/lib", "team-a-prod", "team-a-strict"),  # equal pattern: scoped wins
        ("r.example.com/lib", "shared", "team-a-strict"),
        ("r.example.com/lib", "team-a", "everyone"),  # 'team-a-*' needs the dash
        ("r.example.com/app", "team-a-prod", "prod-app"),  # a more specific pattern wins
        ("quay.io/x/y", "sandbox-1", "sandbox-anything"),
        ("quay.io/x/y", "sandbox-12", None),
        ("quay.io/x/y", None, None),
    ],
)
def test_namespaced_rules(image: str, namespace: str | None, winner: str | None) -> None:
    policy = parse_policy(NAMESPACED, "p.yaml")
    rule = policy.match(parse_reference(image), namespace=namespace)
    assert (rule.name if rule is not None else None) == winner
    d = decide(parse_reference(image), policy, None, namespace=namespace)
    assert (d.rule.name if d.rule is not None else None) == winner
    if winner is None:
        assert _codes(d) == ["policy-no-match"]


def test_no_match_says_which_scoped_rule_would_apply() -> None:
    policy = parse_policy(NAMESPACED, "p.yaml")
    d = decide(parse_reference("quay.io/x/y"), policy, None)
    assert 'rule "sandbox-anything" (line 11) matches it only in namespaces sandbox-?' in (
        d.reasons[0].message
    )
    assert "give the namespace with --namespace" in d.reasons[0].message
    d = decide(parse_reference("quay.io/x/y"), policy, None, namespace="prod")
    assert "matches quay.io/x/y in namespace prod" in d.reasons[0].message
    assert d.rule is None and d.candidates == []


@pytest.mark.parametrize(
    ("namespaces", "expected"),
    [
        ("[]", "rules[0].namespaces: is empty"),
        ("team-a", "rules[0].namespaces: must be a list"),
        ("[Team-A]", "rules[0].namespaces[0]: 'Team-A' contains 'AT'"),
        ("['team_a']", "rules[0].namespaces[0]: 'team_a' contains '_'"),
        ("['a/b']", "contains '/'"),
        ("['[ab]*']", "contains '[]'"),
        ("['team-**']", "contains '**'"),
        ("[x, x]", "rules[0].namespaces[1]: 'x' is listed twice"),
        ("[1]", "rules[0].namespaces[0]: must be a string"),
        (f"[{'a' * 64}]", "longer than 63 characters"),
    ],
)
def test_bad_namespaces_are_refused(namespaces: str, expected: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_policy(f"rules:\n  - pattern: a.io/x\n    namespaces: {namespaces}\n", "p.yaml")
    assert info.value.code == "policy-invalid" and expected in info.value.message


@pytest.mark.parametrize(
    ("first", "second", "refused"),
    [
        ("[team-a-*]", "[team-*-prod]", True),  # team-a-prod is in both
        ("[team-a-*]", "[team-b-*]", False),
        ("[team-a]", "[team-a-*]", False),  # 'team-a' is not 'team-a-...'
        ("[x, team-?]", "[team-a, y]", True),
        ("['*']", "[anything]", True),
    ],
)
def test_namespaced_ties_refused_when_the_namespaces_meet(
    first: str, second: str, refused: bool
) -> None:
    """Equally specific, overlapping patterns (a.io/x*y* and a.io/x*z* both match
    a.io/xyz), both scoped: refused only when some namespace is in both scopes; an
    unscoped rule of the same specificity never ties with a scoped one."""
    text = (
        f"rules:\n  - pattern: a.io/x*y*\n    namespaces: {first}\n"
        f"  - pattern: a.io/x*z*\n    namespaces: {second}\n    action: deny\n"
        "  - pattern: a.io/x*w*\n    action: deny\n"
    )
    if refused:
        with pytest.raises(UsageError) as info:
            parse_policy(text, "p.yaml")
        assert "both match some images in some namespaces" in info.value.message
    else:
        assert len(parse_policy(text, "p.yaml").rules) == 3
    # disjoint patterns never tie, whatever the namespaces
    disjoint = text.replace("a.io/x*y*", "a.io/x*y").replace("a.io/x*z*", "a.io/x*z")
    disjoint = disjoint.replace("a.io/x*w*", "a.io/x*w")
    assert len(parse_policy(disjoint, "p.yaml").rules) == 3


def test_no_match_is_none_and_registry_case_does_not_bypass_a_rule() -> None:
    policy = parse_policy(
        "rules:\n  - pattern: evil.example/**\n    action: deny\n"
        "  - pattern: '*/**'\n    action: allow\n",
        "p.yaml",
    )
    rule = policy.match(parse_reference("EVIL.example/x/y:1"))
    assert rule is not None and rule.action == "deny"
    assert _policy(["docker.io/library/*"]).match(parse_reference("quay.io/a/b")) is None
    # patterns are written with the registry in any case, too
    upper = parse_policy("rules:\n  - pattern: Registry.Example.com/app\n", "p.yaml")
    assert upper.rules[0].pattern.text == "registry.example.com/app"


# ----------------------------------------------------------------------------- validation


def _invalid(text: str, expected: str) -> str:
    with pytest.raises(UsageError) as info:
        parse_policy(textwrap.dedent(text), "p.yaml", Path("/nonexistent"))
    assert info.value.code == "policy-invalid"
    assert info.value.message.startswith(expected), info.value.message
    assert "\n" not in info.value.message
    return info.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "p.yaml: the policy is empty"),
        ("# only a comment\n", "p.yaml: the policy is empty"),
        ("rules: []\n", "p.yaml:1: rules: is empty"),
        ("version: 1\n", "p.yaml:1: rules: missing"),
        ("- pattern: a.io/x\n", "p.yaml:1: must be a mapping"),
        ("version: 2\nrules: [{pattern: a.io/x}]\n", "p.yaml:1: version: this trustcheck reads"),
        ("rules:\n  - pattern: a.io/x\n    acton: deny\n", "p.yaml:3: rules[0].acton: unknown key"),
        (
            "rules:\n  - pattern: a.io/x\n    action: verify\n    action: allow\n",
            "p.yaml:4: rules[0].action: appears twice (first at line 3)",
        ),
        ("rules:\n  - pattern: a.io/x\n    action: permit\n", "p.yaml:3: rules[0].action: must be"),
        ("rules:\n  - pattern: a.io/x\n    mode: audit\n", "p.yaml:3: rules[0].mode: must be"),
        ("rules:\n  - action: deny\n", "p.yaml:2: rules[0].pattern: missing"),
        ("rules:\n  - pattern: alpine\n", "p.yaml:2: rules[0].pattern: 'alpine'"),
        ("rules:\n  - pattern: 7\n", "p.yaml:2: rules[0].pattern: must be a string"),
        (
            "rules:\n  - pattern: a.io/x\n  - pattern: a.io/x\n    action: deny\n",
            "p.yaml:3: rules[1].pattern: 'a.io/x' repeats the pattern",
        ),
        (
            "rules:\n  - {name: x, pattern: a.io/x}\n  - {name: x, pattern: a.io/y}\n",
            "p.yaml:3: rules[1].name: 'x' is already the name of rules[0]",
        ),
        (
            "rules:\n  - pattern: a.io/x\n    signers: [alice, bob]\n    threshold: 3\n",
            "p.yaml:4: rules[0].threshold: must be between 1 and the number of signers (2)",
        ),
        (
            "rules:\n  - pattern: a.io/x\n    signers: [alice]\n    threshold: 0\n",
            "p.yaml:4: rules[0].threshold: must be between 1",
        ),
        (
            "rules:\n  - pattern: a.io/x\n    signers: [alice]\n    threshold: true\n",
            "p.yaml:4: rules[0].threshold: must be an integer, got bool",
        ),
        ("rules:\n  - pattern: a.io/x\n    threshold: 1\n", "p.yaml:3: rules[0].threshold: needs"),
        ("rules:\n  - pattern: a.io/x\n    signers: []\n", "p.yaml:3: rules[0].signers: is empty"),
        (
            "rules:\n  - pattern: a.io/x\n    action: deny\n    signers: [alice]\n",
            "p.yaml:4: rules[0].signers: applies to action verify, not deny",
        ),
        (
            "rules:\n  - pattern: a.io/x\n    action: allow\n    trust: {offline: true}\n",
            "p.yaml:4: rules[0].trust: applies to action verify",
        ),
        (
            "rules:\n  - pattern: a.io/x\n    signers: [alice, alice]\n",
            "p.yaml:3: rules[0].signers[1]: 'alice' is listed twice",
        ),
        (
            "rules:\n  - pattern: a.io/x\n    signers: ['cert-sha256:zz']\n",
            "p.yaml:3: rules[0].signers[0]: cert-sha256 value must be 64 hex digits",
        ),
        (
            "rules:\n  - pattern: a.io/x\n    signers: ['sha1:abc']\n",
            "p.yaml:3: rules[0].signers[0]: 'sha1:abc' is neither a signer name",
        ),
        (
            "rules:\n  - pattern: a.io/x\n    signers: ['al ice']\n",
            "p.yaml:3: rules[0].signers[0]: 'al ice' is not a signer name",
        ),
        (
            "rules:\n  - pattern: a.io/x\n    trust: {server: 'ftp://x'}\n",
            "p.yaml:3: rules[0].trust.server: 'ftp://x' must be https://host[:port]",
        ),
        (
            "rules:\n  - pattern: a.io/x\n    trust: {server: 'https://x/v2/'}\n",
            "p.yaml:3: rules[0].trust.server: 'https://x/v2/' must be scheme://host[:port]",
        ),
        (
            "rules:\n  - pattern: a.io/x\n    trust: {offline: 'no'}\n",
            "p.yaml:3: rules[0].trust.offline: must be true or false",
        ),
        (
            "rules:\n  - pattern: a.io/x\n    trust:\n      pins: {}\n",
            "p.yaml:4: rules[0].trust.pins: is empty: an empty pin would trust anything",
        ),
        (
            "rules:\n  - pattern: a.io/x\n    trust:\n      pins: {root: ['keyid:12']}\n",
            "p.yaml:4: rules[0].trust.pins.root[0]: keyid value must be 64 hex digits",
        ),
        (
            "rules:\n  - pattern: a.io/x\n    trust:\n      pins: pins.toml\n",
            "p.yaml:4: rules[0].trust.pins: cannot read pin file /nonexistent/pins.toml",
        ),
        (
            "defaults:\n  mode: warn\n  colour: red\nrules: [{pattern: a.io/x}]\n",
            "p.yaml:3: defaults.colour: unknown key",
        ),
        (  # the anchor is refused where it is defined, before any alias uses it
            "rules:\n  - &r {pattern: a.io/x}\n  - *r\n",
            "p.yaml:2: anchors ('&name') and aliases ('*name') are not supported (&r)",
        ),
        (  # an anchor nothing refers to is refused as well (docs/policy.md)
            "rules:\n  - pattern: a.io/x\n    reason: &why unused\n",
            "p.yaml:3: anchors ('&name') and aliases ('*name') are not supported (&why)",
        ),
        (  # an unquoted pattern starting with '*' is YAML alias syntax
            "rules:\n  - pattern: *.example.com/**\n",
            "p.yaml:2: not valid YAML: ",
        ),
        (  # an alias to an anchor never defined
            "rules:\n  - pattern: *undefined\n",
            "p.yaml:2: anchors ('&name') and aliases ('*name') are not supported (*undefined)",
        ),
        (  # a merge key with an inline mapping (no alias needed)
            "rules:\n  - pattern: a.io/x\n    <<: {action: allow}\n",
            "p.yaml:3: rules[0]: merge keys ('<<') are not supported",
        ),
        (  # duplicates at any depth, quoted or not
            "rules:\n  - pattern: a.io/x\n    trust:\n"
            "      offline: true\n      'offline': false\n",
            "p.yaml:5: rules[0].trust.offline: appears twice (first at line 4)",
        ),
        (
            "rules:\n  - pattern: *.azurecr.io/**\n",
            "p.yaml:2: not valid YAML",
        ),
        ("rules: [\n", "p.yaml:2: not valid YAML"),
        ("rules: [{pattern: a.io/x}]\n---\nrules: []\n", "p.yaml:2: not valid YAML"),
        (
            "rules:\n  - pattern: a.io/x\n    <<: {action: allow}\n",
            "p.yaml:3: rules[0]: merge keys",
        ),
        ("rules:\n  - pattern: a.io/x\n    ? [a]\n    : 1\n", "p.yaml:3: rules[0]: keys must be"),
    ],
)
def test_policy_errors_name_file_line_and_field(text: str, expected: str) -> None:
    _invalid(text, expected)


def test_unquoted_star_pattern_gets_a_hint() -> None:
    message = _invalid("rules:\n  - pattern: *.azurecr.io/**\n", "p.yaml:2")
    assert "quote patterns that start with '*'" in message


def test_load_policy_file_errors(tmp_path: Path) -> None:
    cases: list[tuple[Path, str]] = [
        (tmp_path / "absent.yaml", "cannot read the policy file"),
        (tmp_path, "is a directory"),
    ]
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"rules: \xff\xfe\n")
    cases.append((binary, "not UTF-8"))
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"#" * ((1 << 20) + 1))
    cases.append((huge, "larger than"))
    for path, why in cases:
        with pytest.raises(UsageError) as info:
            load_policy(path)
        assert info.value.code == "policy-invalid" and str(path) in info.value.message
        assert why in info.value.message


def test_full_policy_loads_with_defaults_pins_and_lint(tmp_path: Path) -> None:
    (tmp_path / "pins.toml").write_text(
        'version = 1\n[pins."localhost/signers"]\nroot = ["keyid:' + "ab" * 32 + '"]\n'
    )
    path = tmp_path / "policy.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            version: 1
            defaults:
              mode: enforce
              trust:
                server: https://notary.example.com:4443
                pins: pins.toml
            rules:
              - name: team
                pattern: registry.example.com/team/**
                signers: [alice, 'targets/bob', targets]
                threshold: 2
                trust:
                  offline: true
              - name: mirror
                pattern: "*/**"
                action: allow
                mode: warn
              - pattern: docker.io/library/*
                action: deny
                reason: pull official images through the mirror
            """
        )
    )
    policy = load_policy(path)
    team, mirror, hub = policy.rules
    assert [s.text for s in team.signers] == ["alice", "bob", "targets"]
    assert team.threshold == 2 and team.line == 8
    assert team.trust.server == "https://notary.example.com:4443"
    assert team.trust.offline is True
    assert team.trust.pins is not None and team.trust.pins_source == str(tmp_path / "pins.toml")
    assert mirror.trust.pins is None  # trust settings belong to verify rules only
    assert hub.name == "rules[2]" and hub.reason == "pull official images through the mirror"
    warnings = "\n".join(policy.warnings)
    assert "allows */** without checking any signature" in warnings
    assert "warn mode" in warnings and "any registry" in warnings
    assert "names a server but is offline" in warnings


# ----------------------------------------------------------------------------- decisions


@pytest.fixture(scope="module")
def signers_col(committed_fixtures: FixtureSet) -> Collection:
    at = datetime.fromisoformat(committed_fixtures.validation_time)
    return load_collection(committed_fixtures.trust_dir, GUN, at)


@pytest.fixture(scope="module")
def listed(committed_fixtures: FixtureSet) -> dict[str, str]:
    """tag -> released digest, as the real notary client lists localhost/signers."""
    (repo,) = (r for r in committed_fixtures.repos() if r["name"] == "signers")
    return {row["name"]: "sha256:" + row["digest"] for row in repo["notary_list"]}


def _decide(col: Collection | Any, image: str, rules: str) -> Decision:
    policy = parse_policy("rules:\n" + textwrap.dedent(rules), "p.yaml")
    return decide(parse_reference(image), policy, col)


def _codes(d: Decision) -> list[str]:
    return [r.code for r in d.reasons]


SIGNERS_AB2 = "- pattern: localhost/signers\n  signers: [alice, bob]\n  threshold: 2\n"


def test_threshold_two_of_alice_and_bob(signers_col: Collection, listed: dict[str, str]) -> None:
    v2 = _decide(signers_col, f"{GUN}:v2", SIGNERS_AB2)
    assert v2.allowed and v2.verdict == "allow" and v2.reasons == []
    assert v2.digest == listed["v2"] and v2.pinned == f"{GUN}@{listed['v2']}"
    assert [(s.signer, s.role) for s in v2.required] == [
        ("alice", "targets/alice"),
        ("bob", "targets/bob"),
    ]
    v1 = _decide(signers_col, f"{GUN}:v1", SIGNERS_AB2)
    assert not v1.allowed and _codes(v1) == ["signer-threshold-not-met"]
    assert v1.digest == listed["v1"]  # resolved; the signer requirement failed
    assert "signed: alice; missing: bob" in v1.reasons[0].message
    assert v1.exit_code == 1


def test_threshold_one_and_single_signers(signers_col: Collection) -> None:
    one = "- pattern: localhost/signers\n  signers: [alice, bob]\n  threshold: 1\n"
    for tag in ("v1", "v2", "alice-only", "bob-only"):
        assert _decide(signers_col, f"{GUN}:{tag}", one).allowed, tag
    only_alice = "- pattern: localhost/signers\n  signers: [alice]\n"
    assert not _decide(signers_col, f"{GUN}:bob-only", only_alice).allowed
    assert _decide(signers_col, f"{GUN}:alice-only", only_alice).allowed
    carol = "- pattern: localhost/signers\n  signers: [carol]\n"
    d = _decide(signers_col, f"{GUN}:v2", carol)
    assert _codes(d) == ["signer-unknown"] and not d.required[0].satisfied


def test_a_signer_without_a_delegation_is_named_as_such(signers_col: Collection) -> None:
    """A required name with no ``targets/<name>`` anywhere cannot sign at all: the
    advice is to add the delegation, not to sign; a known signer who did not sign
    keeps the sign advice; key identifiers are never "unknown"."""
    both = "- pattern: localhost/signers\n  signers: [bob, carol, team/ci]\n  threshold: 3\n"
    d = _decide(signers_col, f"{GUN}:alice-only", both)
    assert _codes(d) == ["signer-unknown"], d.reasons
    msg = d.reasons[0].message
    assert 'no delegation "targets/carol", "targets/team/ci" exists in localhost/signers' in msg
    assert "docker trust signer add --key carol.pub carol localhost/signers" in msg
    assert "notary delegation add localhost/signers targets/carol carol.crt" in msg
    assert "also missing: bob" in msg and "docker trust sign " not in msg
    known = "- pattern: localhost/signers\n  signers: [alice, bob]\n"
    d = _decide(signers_col, f"{GUN}:alice-only", known)
    assert _codes(d) == ["signer-threshold-not-met"]
    assert "docker trust sign localhost/signers:alice-only" in d.reasons[0].message
    # the threshold is met without the unknown one: allowed, no reason at all
    one = "- pattern: localhost/signers\n  signers: [alice, carol]\n  threshold: 1\n"
    assert _decide(signers_col, f"{GUN}:alice-only", one).allowed


def test_signers_must_sign_the_released_digest(
    signers_col: Collection, listed: dict[str, str]
) -> None:
    """`split` has digest X in targets and Y in targets/releases + targets/alice.
    Docker releases Y; the repository key (targets) signed only X."""
    alice = _decide(signers_col, f"{GUN}:split", "- pattern: localhost/*\n  signers: [alice]\n")
    assert alice.allowed and alice.digest == listed["split"]
    repo_key = _decide(
        signers_col, f"{GUN}:split", "- pattern: localhost/*\n  signers: [targets]\n"
    )
    assert not repo_key.allowed and _codes(repo_key) == ["signer-threshold-not-met"]
    admin = _decide(signers_col, f"{GUN}:admin", "- pattern: localhost/*\n  signers: [targets]\n")
    assert admin.allowed and admin.required[0].role == "targets"


def _spki(path: Path) -> str:
    pem = path.read_bytes()
    if b"CERTIFICATE" in pem:
        key = x509.load_pem_x509_certificate(pem).public_key()
    else:
        body = b"\n".join(ln for ln in pem.splitlines() if b":" not in ln)
        key = serialization.load_pem_public_key(body)
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def test_key_identifiers_and_distinct_keys(signers_col: Collection) -> None:
    alice = f"spki-sha256:{_spki(KEYS / 'alice.pub')}"
    bob_der = x509.load_pem_x509_certificate((KEYS / "bob.crt").read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    bob = f"cert-sha256:{hashlib.sha256(bob_der).hexdigest()}"
    both = f"- pattern: localhost/signers\n  signers: ['{alice}', '{bob}']\n"
    d = _decide(signers_col, f"{GUN}:v2", both)
    assert d.allowed and all(s.satisfied for s in d.required)
    # one key is one signer, whether named or identified: alice twice is 1 of 2
    same = f"- pattern: localhost/signers\n  signers: [alice, '{alice}']\n  threshold: 2\n"
    d = _decide(signers_col, f"{GUN}:v2", same)
    assert not d.allowed and _codes(d) == ["signer-threshold-not-met"]
    # the publisher signed targets/releases.json with both keys: bob's key vouches for
    # alice-only there, so 'releases' and 'alice' are two different keys
    rel = "- pattern: localhost/signers\n  signers: [releases, alice]\n"
    d = _decide(signers_col, f"{GUN}:alice-only", rel)
    assert d.allowed
    assert {s.signer: s.role for s in d.required} == {
        "releases": "targets/releases",
        "alice": "targets/alice",
    }
    assert d.required[0].key != d.required[1].key


def test_digest_references(signers_col: Collection, listed: dict[str, str]) -> None:
    d = _decide(signers_col, f"{GUN}@{listed['v2']}", SIGNERS_AB2)
    assert d.allowed and d.digest == listed["v2"] and d.tag is None
    d = _decide(signers_col, f"{GUN}@{listed['v1']}", SIGNERS_AB2)
    assert _codes(d) == ["signer-threshold-not-met"]
    d = _decide(signers_col, f"{GUN}:v2@{listed['v1']}", SIGNERS_AB2)
    assert _codes(d) == ["digest-mismatch"] and not d.allowed
    d = _decide(signers_col, f"{GUN}@sha256:{'0' * 64}", SIGNERS_AB2)
    assert _codes(d) == ["digest-not-signed"]


def test_verification_errors_are_the_reasons(signers_col: Collection) -> None:
    rules = "- pattern: localhost/signers\n"
    d = _decide(signers_col, f"{GUN}:alice-unreleased", rules)
    assert _codes(d) == ["tag-not-released"] and d.digest is None and d.role == "targets/alice"
    d = _decide(signers_col, f"{GUN}:nope", rules)
    assert _codes(d) == ["tag-not-signed"]
    error = NotTrusted("pin-mismatch", "the root was replaced", role="root")
    d = _decide(error, f"{GUN}:v2", rules)
    assert _codes(d) == ["pin-mismatch"] and d.reasons[0].role == "root" and not d.allowed
    d = _decide(None, f"{GUN}:v2", rules)  # a verify rule with no trust data: deny
    assert _codes(d) == ["no-trust-data"] and not d.allowed


def test_no_match_deny_allow_and_warn(signers_col: Collection, listed: dict[str, str]) -> None:
    rules = """\
        - pattern: docker.io/library/*
          action: deny
          reason: use the mirror
        - pattern: mirror.example.com/**
          action: allow
        - pattern: localhost/signers
          signers: [alice, bob]
          mode: warn
        """
    d = _decide(None, "quay.io/team/app:1", rules)
    assert _codes(d) == ["policy-no-match"] and d.rule is None and not d.allowed
    d = _decide(None, "alpine:3", rules)
    assert _codes(d) == ["policy-denied"] and d.reasons[0].message.endswith(": use the mirror")
    assert d.rule is not None and d.rule.index == 0
    d = _decide(None, "mirror.example.com/a/b:1", rules)
    assert d.allowed and d.digest is None and "without verifying" in d.warnings[0]
    d = _decide(None, f"mirror.example.com/a/b@{listed['v1']}", rules)
    assert d.allowed and d.pinned == f"mirror.example.com/a/b@{listed['v1']}"
    d = _decide(signers_col, f"{GUN}:v1", rules)  # warn mode: reported, not blocked
    assert d.allowed and d.verdict == "deny" and d.mode == "warn" and d.exit_code == 0
    assert _codes(d) == ["signer-threshold-not-met"]
    # a configuration error is never waved through, even in warn mode
    d = _decide(UsageError("insecure-server", "plain http"), f"{GUN}:v1", rules)
    assert not d.allowed and d.exit_code == 2


def test_decision_json_shape(signers_col: Collection) -> None:
    doc = _decide(signers_col, f"{GUN}:v1", SIGNERS_AB2).to_json()
    assert set(doc) == {
        "image", "name", "tag", "allowed", "verdict", "mode", "digest", "pinned", "rule",
        "reasons", "warnings", "role", "length", "signers", "required_signers", "candidates",
        "trust_basis", "verified", "satisfied_by", "alternatives", "digest_source",
    }  # fmt: skip
    assert doc["reasons"] == [
        {"code": "signer-threshold-not-met", "message": doc["reasons"][0]["message"], "role": None}
    ]
    assert doc["required_signers"]["threshold"] == 2
    assert doc["rule"] == {
        "name": "rules[0]",
        "index": 0,
        "pattern": "localhost/signers",
        "action": "verify",
        "mode": "enforce",
        "line": 2,
        "namespaces": None,
    }
    json.dumps(doc)  # serialisable as it is


# ----------------------------------------------------------------------------- the I/O edge


def test_evaluate_applies_each_rules_pins(committed_fixtures: FixtureSet, tmp_path: Path) -> None:
    policy = parse_policy(
        textwrap.dedent(
            f"""\
            rules:
              - pattern: localhost/signers
                trust:
                  pins: {{root: ['cert-sha256:{"0" * 64}']}}
              - pattern: localhost/*
            """
        ),
        "p.yaml",
    )
    at = datetime.fromisoformat(committed_fixtures.validation_time)
    refs = [parse_reference(f"{GUN}:v2"), parse_reference("localhost/basic:v1")]
    pinned, free = evaluate(refs, policy, TrustDir(committed_fixtures.trust_dir), at)
    assert _codes(pinned) == ["pin-mismatch"] and not pinned.allowed
    assert free.allowed and free.trust_basis == "first use"


def test_rule_settings_override_the_command_line() -> None:
    policy = parse_policy(
        "rules:\n  - pattern: a.io/x\n    trust: {server: 'https://n.example', offline: true, "
        "no_tofu: true}\n  - pattern: a.io/y\n",
        "p.yaml",
    )
    first, second = policy.rules
    remote = RemoteConfig(server="https://cli.example")
    assert rule_remote(first, remote) == RemoteConfig(server="https://n.example", offline=True)
    assert rule_remote(second, remote) == remote
    assert rule_remote(first, None) is None  # no remote config: never any network
    opts = Options()
    assert rule_options(first, opts).no_tofu is True and rule_options(second, opts).no_tofu is False


# ----------------------------------------------------------------------------- the CLI

Cli = Callable[..., Any]


@pytest.fixture
def fx(committed_fixtures: FixtureSet) -> list[str]:
    return [
        "--trust-dir",
        str(committed_fixtures.trust_dir),
        "--at",
        committed_fixtures.validation_time,
    ]


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "rules:\n"
        "  - name: two-signers\n    pattern: localhost/signers\n    signers: [alice, bob]\n"
        "  - name: local\n    pattern: localhost/*\n"
        "  - name: hub\n    pattern: docker.io/**\n    action: deny\n"
        "  - name: watch\n    pattern: localhost/releases\n    mode: warn\n"
        "    signers: [nobody]\n"
        "  - name: mirror\n    pattern: mirror.example.com/**\n    action: allow\n"
    )
    return path


def test_gate_exit_codes_and_lines(trustcheck_cli: Cli, fx: list[str], policy_file: Path) -> None:
    ok = trustcheck_cli(
        "gate", "--policy", str(policy_file), *fx, f"{GUN}:v2", "localhost/basic:v1"
    )
    assert ok.code == 0, ok.stderr
    assert [ln.split()[0] for ln in ok.stdout.splitlines()] == ["ALLOW", "ALLOW"]
    assert 'rule "two-signers" (verify; signed by alice, bob)' in ok.stdout
    bad = trustcheck_cli(
        "gate", "--policy", str(policy_file), *fx, f"{GUN}:v2", f"{GUN}:v1", "alpine"
    )
    assert bad.code == 1
    lines = bad.stdout.splitlines()
    assert lines[0].startswith("ALLOW") and lines[1].startswith("DENY")
    assert "[signer-threshold-not-met]" in lines[1] and "[policy-denied]" in lines[2]
    warned = trustcheck_cli("gate", "--policy", str(policy_file), *fx, "localhost/releases:v1")
    assert warned.code == 0 and warned.stdout.startswith("WARN"), warned.stdout
    assert "(warn mode: not blocked): [signer-unknown]" in warned.stdout
    assert 'no delegation "targets/nobody" exists in localhost/releases' in warned.stdout
    assert "Traceback" not in bad.stderr + ok.stderr + warned.stderr


def test_gate_json_and_print_refs(
    trustcheck_cli: Cli, fx: list[str], policy_file: Path, listed: dict[str, str]
) -> None:
    run = trustcheck_cli(
        "gate", "--json", "--policy", str(policy_file), *fx, f"{GUN}:v2", "quay.io/a/b"
    )
    assert run.code == 1
    doc = json.loads(run.stdout)
    assert doc["policy"] == str(policy_file)
    allowed, denied = doc["decisions"]
    assert allowed["allowed"] is True and allowed["pinned"] == f"{GUN}@{listed['v2']}"
    assert denied["reasons"][0]["code"] == "policy-no-match"
    refs = trustcheck_cli(
        "gate", "--print-refs", "--policy", str(policy_file), *fx, f"{GUN}:v2", f"{GUN}:v1",
        "mirror.example.com/tools/x:1",
    )  # fmt: skip
    assert refs.code == 1
    assert refs.stdout.splitlines() == [f"{GUN}@{listed['v2']}", "mirror.example.com/tools/x:1"]
    assert "DENY" in refs.stderr and "printed unpinned" in refs.stderr
    both = trustcheck_cli("gate", "--json", "--print-refs", "--policy", str(policy_file), *fx, GUN)
    assert both.code == 2 and "[invalid-argument]" in both.stderr


def test_gate_bad_input_is_exit_2(trustcheck_cli: Cli, fx: list[str], tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules:\n  - pattern: localhost/*\n    threshold: 2\n")
    run = trustcheck_cli("gate", "--policy", str(broken), *fx, f"{GUN}:v2")
    assert run.code == 2 and run.stdout == ""
    assert run.stderr.strip() == (
        f"error: [policy-invalid] {broken}:3: rules[0].threshold: needs a signers list"
    )
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    run = trustcheck_cli("gate", "--policy", str(empty), *fx, f"{GUN}:v2")
    assert run.code == 2 and "the policy is empty" in run.stderr
    run = trustcheck_cli("gate", "--policy", str(empty), *fx, "UPPER/case")
    assert run.code == 2
    run = trustcheck_cli("gate", *fx, f"{GUN}:v2")  # --policy is required
    assert run.code == 2


def test_policy_check(trustcheck_cli: Cli, policy_file: Path, tmp_path: Path) -> None:
    run = trustcheck_cli("policy", "check", str(policy_file))
    assert run.code == 0
    assert run.stdout.splitlines()[0] == f"{policy_file}: valid, 5 rule(s)"
    assert "two-signers: localhost/signers -> verify (enforce; 2 of [alice, bob])" in run.stdout
    assert "allows mirror.example.com/** without checking any signature" in run.stderr
    doc = json.loads(trustcheck_cli("policy", "check", "--json", str(policy_file)).stdout)
    assert doc["valid"] is True and [r["name"] for r in doc["rules"]][:2] == [
        "two-signers",
        "local",
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - pattern: docker.io/library/alpine:3\n")
    run = trustcheck_cli("policy", "check", str(bad))
    assert run.code == 2 and run.stdout == ""
    assert run.stderr.startswith(f"error: [policy-invalid] {bad}:2: rules[0].pattern:")
    assert len(run.stderr.strip().splitlines()) == 1


def test_policy_explain_allowed_and_denied(
    trustcheck_cli: Cli, fx: list[str], policy_file: Path, listed: dict[str, str]
) -> None:
    run = trustcheck_cli("policy", "explain", "--policy", str(policy_file), *fx, f"{GUN}:v2")
    assert run.code == 0, run.stderr
    out = run.stdout
    assert "rules      2 of 5 match, most specific first:" in out
    assert "* two-signers  localhost/signers" in out and "  local  localhost/*" in out
    assert f"resolved   v2 -> {listed['v2']} (targets/releases, 948 bytes)" in out
    assert "alice        signed    (targets/alice" in out
    assert f"decision   ALLOW  {GUN}@{listed['v2']}" in out
    run = trustcheck_cli("policy", "explain", "--policy", str(policy_file), *fx, f"{GUN}:v1")
    assert run.code == 1
    assert "bob          missing" in run.stdout and "decision   DENY" in run.stdout
    assert "reason     [signer-threshold-not-met]" in run.stdout
    run = trustcheck_cli("policy", "explain", "--policy", str(policy_file), *fx, "quay.io/x/y")
    assert run.code == 1 and "none of the 5 rule(s)" in run.stdout
    doc = json.loads(
        trustcheck_cli(
            "policy", "explain", "--json", "--policy", str(policy_file), *fx, f"{GUN}:v1"
        ).stdout
    )
    assert [c["name"] for c in doc["candidates"]] == ["two-signers", "local"]


def test_pull_dry_run_and_usage(
    trustcheck_cli: Cli, fx: list[str], policy_file: Path, listed: dict[str, str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    pinned = f"{GUN}@{listed['v2']}"
    base = ["pull", "--dry-run", "--policy", str(policy_file), *fx]
    run = trustcheck_cli(*base, f"{GUN}:v2")
    assert run.code == 0 and run.stdout.splitlines() == [
        f"docker pull {pinned}",
        f"docker tag {pinned} {GUN}:v2",
    ]
    run = trustcheck_cli(*base, "--with", "podman", "--cert-dir", "/etc/certs", f"{GUN}:v2")
    assert run.stdout.splitlines() == [
        f"podman pull --cert-dir /etc/certs {pinned}",
        f"podman tag {pinned} {GUN}:v2",
    ]
    run = trustcheck_cli(*base, "--with", "skopeo", f"{GUN}:v2")
    assert run.stdout.splitlines() == [f"skopeo copy docker://{pinned} containers-storage:{GUN}:v2"]
    run = trustcheck_cli(*base, f"{GUN}@{listed['v2']}")  # by digest: nothing to tag
    assert run.stdout.splitlines() == [f"docker pull {pinned}"]
    denied = trustcheck_cli(*base, f"{GUN}:v1")
    assert denied.code == 1 and denied.stdout == "" and "DENY" in denied.stderr
    for args in (["--with", "nerdctl"], ["--dest", "dir:/x"], ["--cert-dir", "/x"]):
        run = trustcheck_cli(*base, *args, f"{GUN}:v2")
        assert run.code == 2 and "[invalid-argument]" in run.stderr, args
    # without --dry-run, a missing program is a usage error, not a crash
    monkeypatch.setenv("PATH", str(tmp_path))
    run = trustcheck_cli("pull", "--policy", str(policy_file), *fx, f"{GUN}:v2")
    assert run.code == 2 and "[pull-tool-missing]" in run.stderr
    assert "Traceback" not in run.stderr


def test_quarantine_needs_a_digest(trustcheck_cli: Cli, policy_file: Path) -> None:
    run = trustcheck_cli("quarantine", "release", "--policy", str(policy_file), f"{GUN}:v2")
    assert run.code == 2 and "IMAGE@sha256:DIGEST" in run.stderr
    run = trustcheck_cli("quarantine", "status", f"{GUN}:v2")
    assert run.code == 2


# ----------------------------------------------------------------------------- docs/policy.md

DOC = Path(__file__).resolve().parents[2] / "docs" / "policy.md"


# The worked example's commands (and every other console block of the docs) are run
# and compared by tests/unit/test_docs_examples.py.


def test_every_policy_in_the_docs_is_valid(tmp_path: Path) -> None:
    (tmp_path / "pins.toml").write_text(
        'version = 1\n[pins."registry.example.com/*"]\nroot = ["keyid:' + "ab" * 32 + '"]\n'
    )
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).public_key()  # the `require:` example's
    (tmp_path / "cosign.pub").write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 4
    for block in blocks:
        text = block if "rules:" in block else "rules:\n" + block
        policy = parse_policy(text, "docs/policy.md", tmp_path)
        assert policy.rules


def test_an_unquoted_star_pattern_gets_the_quoting_hint() -> None:
    with pytest.raises(UsageError) as info:
        parse_policy("rules:\n  - pattern: *.example.com/**\n", "p.yaml")
    assert info.value.message.endswith(
        "; quote patterns that start with '*', e.g. \"*.example.com/**\""
    )


# ----------------------------------------------------------------------------- --json errors


def _one_json_error(run: Any, code: str, exit_code: int) -> dict[str, Any]:
    """stdout is exactly one JSON document carrying the error; stderr keeps the one line."""
    assert run.code == exit_code, (run.stdout, run.stderr)
    doc = json.loads(run.stdout)  # exactly one document: json.loads refuses trailing text
    assert isinstance(doc, dict)
    assert doc["error"]["code"] == code and doc["error"]["exit_code"] == exit_code
    assert doc["error"]["message"] and "Traceback" not in run.stderr
    return doc


def test_every_early_exit_of_a_json_command_prints_one_json_document(
    trustcheck_cli: Cli, fx: list[str], policy_file: Path, tmp_path: Path
) -> None:
    anchored = tmp_path / "anchored.yaml"
    anchored.write_text("x: &unused 1\nrules:\n  - pattern: a.io/x\n")
    gate = ("gate", "--json")
    cases: list[tuple[tuple[str, ...], str, int]] = [
        ((*gate, "--policy", str(anchored), *fx, f"{GUN}:v2"), "policy-invalid", 2),
        ((*gate, "--policy", str(tmp_path / "missing.yaml"), *fx, GUN), "policy-invalid", 2),
        ((*gate, "--policy", str(policy_file), *fx, f"{GUN}:v2", "UPPER/x"),
         "invalid-reference", 2),
        ((*gate, "--print-refs", "--policy", str(policy_file), *fx, GUN), "invalid-argument", 2),
        ((*gate, "--policy", str(policy_file), "--at", "yesterday", GUN), "invalid-argument", 2),
        ((*gate, "--policy", str(policy_file), *fx, "--namespace", "Team_A", GUN),
         "invalid-argument", 2),
        ((*gate, "--policy", str(policy_file), "--trust-dir", str(tmp_path / "none"),
          "--offline", GUN), "trust-dir-missing", 2),
        ((*gate, *fx, GUN), "invalid-argument", 2),  # click: --policy missing
        ((*gate, "--policy", str(policy_file), "--timeout", "abc", GUN), "invalid-argument", 2),
        (("policy", "check", "--json", str(anchored)), "policy-invalid", 2),
        (("policy", "explain", "--json", "--policy", str(anchored), *fx, GUN),
         "policy-invalid", 2),
        (("policy", "explain", "--json", "--policy", str(policy_file), *fx, "a b"),
         "invalid-reference", 2),
        (("quarantine", "release", "--json", "--policy", str(policy_file), GUN),
         "invalid-argument", 2),
        (("quarantine", "status", "--json", GUN), "invalid-argument", 2),
    ]  # fmt: skip
    for argv, code, exit_code in cases:
        run = trustcheck_cli(*argv)
        doc = _one_json_error(run, code, exit_code)
        if argv[0] == "gate":
            assert doc["decisions"] == [] and "policy" in doc
        if code != "invalid-argument" or "--namespace" in argv:
            assert run.stderr.startswith(f"error: [{code}] "), run.stderr
    # click's usage errors come before any output: one document for any --json command
    run = trustcheck_cli("verify", "--json", "--no-such-option", GUN)
    assert _one_json_error(run, "invalid-argument", 2)["error"]["message"].startswith(
        "No such option"
    )
    run = trustcheck_cli("policy", "check", "--json", str(anchored))
    doc = json.loads(run.stdout)
    assert doc["valid"] is False and doc["policy"] == str(anchored)
    assert doc["error"]["message"].startswith(f"{anchored}:1: anchors ('&name')")
    # without --json nothing goes to stdout
    run = trustcheck_cli("gate", "--policy", str(anchored), *fx, GUN)
    assert run.code == 2 and run.stdout == ""
    # an image that is denied is not an error: the decisions, no "error" key
    run = trustcheck_cli("gate", "--json", "--policy", str(policy_file), *fx, "quay.io/a/b")
    doc = json.loads(run.stdout)
    assert run.code == 1 and "error" not in doc and len(doc["decisions"]) == 1


def test_gate_and_explain_with_namespaces(
    trustcheck_cli: Cli, fx: list[str], tmp_path: Path, listed: dict[str, str]
) -> None:
    policy = tmp_path / "ns.yaml"
    policy.write_text(
        "rules:\n"
        "  - name: signed\n    pattern: localhost/*\n"
        "  - name: team-a-two\n    pattern: localhost/*\n    namespaces: [team-a-*]\n"
        "    signers: [alice, bob]\n"
        "  - name: sandbox\n    pattern: quay.io/**\n    namespaces: [sandbox]\n"
        "    action: allow\n"
    )
    v1 = f"{GUN}:v1"  # signed by alice only
    run = trustcheck_cli("gate", "--policy", str(policy), *fx, v1)
    assert run.code == 0 and 'rule "signed"' in run.stdout, run.stdout
    run = trustcheck_cli("gate", "--policy", str(policy), *fx, "--namespace", "team-a-prod", v1)
    assert run.code == 1 and 'rule "team-a-two"' in run.stdout and "missing: bob" in run.stdout
    run = trustcheck_cli("gate", "--policy", str(policy), *fx, "--namespace", "team-b", v1)
    assert run.code == 0 and 'rule "signed"' in run.stdout
    run = trustcheck_cli(
        "gate",
        "--policy",
        str(policy),
        "--archive",
        str(tmp_path / "a.tar"),
        "--namespace",
        "x",
        v1,
    )
    assert run.code == 2 and "--namespace does not apply with --archive" in run.stderr
    listed = trustcheck_cli("policy", "check", str(policy)).stdout
    assert "  team-a-two: localhost/* in namespaces team-a-* -> verify (enforce; 2 of" in listed
    rules = json.loads(trustcheck_cli("policy", "check", "--json", str(policy)).stdout)["rules"]
    assert [r["namespaces"] for r in rules] == [None, ["team-a-*"], ["sandbox"]]
    explain = ("policy", "explain", "--policy", str(policy), *fx)
    run = trustcheck_cli(*explain, v1)
    assert (
        "scoped out team-a-two (team-a-*)  (no --namespace given: rules with namespaces "
        "never apply)" in run.stdout
    ), run.stdout
    run = trustcheck_cli(*explain, "--namespace", "team-a-x", v1)
    assert "namespace  team-a-x" in run.stdout and "scoped out" not in run.stdout
    assert "* team-a-two  localhost/*  (line 4, verify, enforce, namespaces team-a-*)" in (
        run.stdout
    )
    assert run.code == 1
    run = trustcheck_cli(*explain, "quay.io/x/y")
    assert run.code == 1 and "give the namespace with --namespace" in run.stdout
    doc = json.loads(
        trustcheck_cli(*explain, "--json", "--namespace", "sandbox", "quay.io/x").stdout
    )
    assert doc["namespace"] == "sandbox" and doc["rule"]["namespaces"] == ["sandbox"]
    assert doc["allowed"] is True
