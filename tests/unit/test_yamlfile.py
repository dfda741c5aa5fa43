"""trustcheck.yamlfile: the one YAML reader (policy files, the webhook's server config)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from trustcheck.yamlfile import (
    ALIAS_PROBLEM,
    DIRECTIVE_PROBLEM,
    TAG_PROBLEM,
    YamlProblem,
    compose,
    load,
)

# (document, line, path, message start)
REFUSED = [
    ("a: &x 1\nb: *x\n", 1, "", ALIAS_PROBLEM),  # the anchor, where it is defined
    ("a: &unused 1\n", 1, "", ALIAS_PROBLEM),
    ("a: 1\nb: *undefined\n", 2, "", ALIAS_PROBLEM),
    ("a:\n  b: 1\n  <<: {c: 2}\n", 3, "a", "merge keys ('<<') are not supported"),
    ("a: 1\nb: 2\na: 3\n", 3, "a", "appears twice (first at line 1)"),
    ("x:\n  - y: 1\n    'y': 2\n", 3, "x[0].y", "appears twice (first at line 2)"),
    ('x:\n  "k": 1\n  k: 2\n', 3, "x.k", "appears twice (first at line 2)"),
    ("a: [1\n", 2, "", "not valid YAML"),
    ("a: 1\n---\nb: 2\n", 2, "", "not valid YAML"),  # one document only
    # explicit tags: a value whose type is not what it looks like (and never a
    # Python object: the safe loader would refuse it anyway)
    ("a: !!python/object:os.system x\n", 1, "", TAG_PROBLEM),
    ("a: !!str 1\n", 1, "", TAG_PROBLEM),
    ("a: !!int '2'\n", 1, "", TAG_PROBLEM),
    ("a: !!binary aGk=\n", 1, "", TAG_PROBLEM),
    ("a:\n  b: !custom x\n", 2, "", TAG_PROBLEM),
    ("a: ! x\n", 1, "", TAG_PROBLEM),  # the non-specific tag
    ("--- !!map\na: 1\n", 1, "", TAG_PROBLEM),
    ("a: !!set {x, y}\n", 1, "", TAG_PROBLEM),
    ("a:\n  - !!seq [1]\n", 2, "", TAG_PROBLEM),
    # directives
    ("%YAML 1.1\n---\na: 1\n", 1, "", DIRECTIVE_PROBLEM),
    ("%TAG !e! tag:example.com,2000:\n---\na: 1\n", 1, "", DIRECTIVE_PROBLEM),
    # anchors anywhere, used or not, on any kind of node
    ("a:\n  - &s [1]\n", 2, "", ALIAS_PROBLEM),
    ("a: &m {b: 1}\n", 1, "", ALIAS_PROBLEM),
    ("&top\na: 1\n", 1, "", ALIAS_PROBLEM),
    ("a: &empty\nb: 1\n", 1, "", ALIAS_PROBLEM),
]


def test_the_message_names_the_anchor_and_the_tag() -> None:
    with pytest.raises(YamlProblem) as info:
        load("a: 1\nb: &unused 2\n")
    assert info.value.message == ALIAS_PROBLEM + " (&unused)" and info.value.alias
    with pytest.raises(YamlProblem) as info:
        load("a: !!str 1\n")
    assert "(!!str)" in info.value.message and "quote it" in info.value.message


def test_quoted_values_that_look_like_yaml_syntax_are_plain_strings() -> None:
    assert load("a: '&x'\nb: \"*y\"\nc: '!!str'\nd: '%YAML'\ne: 'x <<'\n") == {
        "a": "&x",
        "b": "*y",
        "c": "!!str",
        "d": "%YAML",
        "e": "x <<",
    }


@pytest.mark.parametrize(("text", "line", "path", "message"), REFUSED)
def test_refused(text: str, line: int, path: str, message: str) -> None:
    with pytest.raises(YamlProblem) as info:
        load(text)
    assert (info.value.line, info.value.path) == (line, path), info.value.message
    assert info.value.message.startswith(message)


def test_duplicate_names_its_key() -> None:
    with pytest.raises(YamlProblem) as info:
        load("cache:\n  ttl_seconds: 1\n  ttl_seconds: 2\n")
    assert info.value.key == "ttl_seconds" and info.value.path == "cache.ttl_seconds"


def test_the_same_key_in_different_mappings_is_fine() -> None:
    assert load("a: {k: 1}\nb: {k: 2}\nc: [{k: 3}, {k: 4}]\n") == {
        "a": {"k": 1},
        "b": {"k": 2},
        "c": [{"k": 3}, {"k": 4}],
    }


def test_plain_data_and_safe_types() -> None:
    assert load(b"n: 0x10\nf: 1.5\nb: yes\nd: 2026-11-27\nz: ~\ns: '*x'\n") == {
        "n": 16,
        "f": 1.5,
        "b": True,
        "d": dt.date(2026, 11, 27),
        "z": None,
        "s": "*x",
    }


def test_empty_document() -> None:
    assert compose("") is None and load("# nothing\n") is None


def test_deep_nesting_is_a_problem_not_a_crash() -> None:
    with pytest.raises(YamlProblem) as info:
        load("[" * 100_000 + "]" * 100_000)
    assert "nested too deeply" in info.value.message or "not valid YAML" in info.value.message


def test_an_unquoted_star_pattern_is_flagged_as_alias_syntax() -> None:
    with pytest.raises(YamlProblem) as info:
        load("pattern: *.example.com/**\n")
    assert info.value.alias and info.value.line == 1


# both readers, one set of rules: (policy document, webhook config document, line)
BOTH = [
    (  # an anchor and an alias
        "rules:\n  - &r {pattern: a.io/x, action: allow}\n  - *r\n",
        "exempt:\n  namespaces: &ns [kube-system]\ncache: {}\nother: *ns\n",
        2,
    ),
    (  # a merge key (no alias needed)
        "rules:\n  - pattern: a.io/x\n    <<: {action: allow}\n",
        "cache:\n  ttl_seconds: 5\n  <<: {ttl_seconds: 1}\n",
        3,
    ),
    (  # an anchor nothing uses
        "rules:\n  - pattern: a.io/x\n    reason: &why unused\n    action: deny\n",
        "cache:\n  ttl_seconds: 5\n  prefix: &p trustcheck\n",
        3,
    ),
    (  # an explicit tag
        "rules:\n  - pattern: a.io/x\n    action: !!str deny\n",
        "cache:\n  ttl_seconds: !!float 5\n",
        None,
    ),
    (  # a directive
        "%YAML 1.1\n---\nrules:\n  - pattern: a.io/x\n",
        "%YAML 1.1\n---\ncache: {}\n",
        1,
    ),
    (  # a duplicate key, nested, quoted once
        "rules:\n  - pattern: a.io/x\n    action: deny\n    'action': allow\n",
        "cache:\n  ttl_seconds: 5\n  'ttl_seconds': 1\n",
        None,
    ),
]


@pytest.mark.parametrize(("policy", "config", "line"), BOTH)
def test_policy_and_webhook_config_refuse_the_same_constructs(
    tmp_path: Path, policy: str, config: str, line: int | None
) -> None:
    from trustcheck.errors import UsageError
    from trustcheck.policy.load import parse_policy
    from trustcheck.webhook.config import load_config

    with pytest.raises(UsageError) as p_info:
        parse_policy(policy, "p.yaml")
    path = tmp_path / "c.yaml"
    path.write_text(config)
    with pytest.raises(UsageError) as c_info:
        load_config(path)
    assert p_info.value.code == "policy-invalid"
    assert c_info.value.code == "webhook-config-invalid"
    if line is not None:
        assert p_info.value.message.startswith(f"p.yaml:{line}: ")
        assert f"{path}: line {line}: " in c_info.value.message
    else:
        word = "tags" if "!!" in policy else "appears twice"
        assert word in p_info.value.message
        assert word in c_info.value.message
