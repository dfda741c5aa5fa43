"""The one pattern language (trustcheck.policy.pattern): its three modes, table-driven,
and every front end (policy rules, pin files, webhook exemptions) reading its patterns
in the mode its documentation names."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustcheck.core.reference import parse_reference
from trustcheck.local.pinfile import load_pins
from trustcheck.policy.load import parse_policy
from trustcheck.policy.pattern import (
    Pattern,
    PatternMode,
    matches,
    normalise_prefix,
    prefix_matches,
    prefix_specificity,
    shell_matches,
)
from trustcheck.webhook.review import ObjectExemption

# (mode, pattern, name, matches?)
TABLE: list[tuple[PatternMode, str, str, bool]] = [
    # path (docs/policy.md): '*' and '?' stop at '/', '**' crosses it, anchored both ends
    ("path", "registry.example.com/team/*", "registry.example.com/team/app", True),
    ("path", "registry.example.com/team/*", "registry.example.com/team/a/b", False),
    ("path", "registry.example.com/team/**", "registry.example.com/team/a/b", True),
    ("path", "registry.example.com/team/app-?", "registry.example.com/team/app-1", True),
    ("path", "registry.example.com/team/app-?", "registry.example.com/team/app-12", False),
    ("path", "registry.example.com/team/*", "registry.example.com/teamx/app", False),
    ("path", "registry.example.com/team/app", "registry.example.com/team/app-evil", False),
    ("path", "*.azurecr.io/**", "x.azurecr.io/a/b", True),
    ("path", "*.azurecr.io/**", "azurecr.io.evil.example/a", False),
    ("path", "registry.example.com/a.b", "registry.example.com/axb", False),
    ("path", "**", "quay.io/any/depth", True),
    # prefix (docs/pinning.md, notary's trust pinning): 'prefix*' at any depth, else exact
    ("prefix", "registry.example.com/team/*", "registry.example.com/team/app", True),
    ("prefix", "registry.example.com/team/*", "registry.example.com/team/a/b", True),
    ("prefix", "registry.example.com/team*", "registry.example.com/team-evil/app", True),
    ("prefix", "registry.example.com/team/*", "registry.example.com/teamx/app", False),
    ("prefix", "registry.example.com/team/app", "registry.example.com/team/app", True),
    ("prefix", "registry.example.com/team/app", "registry.example.com/team/app2", False),
    ("prefix", "registry.example.com/team/app", "registry.example.com/team/ap", False),
    # prefix mode has exactly one wildcard, the trailing one: '?' and '[' are literal
    ("prefix", "registry.example.com/app-?", "registry.example.com/app-1", False),
    ("prefix", "registry.example.com/app-?", "registry.example.com/app-?", True),
    # shell (docs/webhook.md exemptions): fnmatch globs over Kubernetes names, case-sensitive
    ("shell", "tenant-*", "tenant-a", True),
    ("shell", "tenant-*", "tenant-", True),
    ("shell", "tenant-*", "xtenant-a", False),
    ("shell", "node-exporter?", "node-exporter1", True),
    ("shell", "node-exporter?", "node-exporter", False),
    ("shell", "app-[ab]", "app-a", True),
    ("shell", "app-[ab]", "app-c", False),
    ("shell", "app-[!ab]", "app-c", True),
    ("shell", "kube-system", "kube-system", True),
    ("shell", "kube-system", "Kube-System", False),
    ("shell", "kube-system", "kube-system2", False),
]


@pytest.mark.parametrize(("mode", "pattern", "name", "expected"), TABLE)
def test_pattern_table(mode: PatternMode, pattern: str, name: str, expected: bool) -> None:
    assert matches(mode, pattern, name) is expected


@pytest.mark.parametrize(
    ("mode", "pattern", "name", "expected"), [row for row in TABLE if row[0] == "path"]
)
def test_policy_rules_read_patterns_in_path_mode(
    mode: PatternMode, pattern: str, name: str, expected: bool
) -> None:
    """A one-rule policy decides exactly what the path-mode table says."""
    policy = parse_policy(f'rules:\n  - pattern: "{pattern}"\n    action: allow\n')
    rule = policy.match(parse_reference(name + ":v1"))
    assert (rule is not None) is expected


@pytest.mark.parametrize(
    ("mode", "pattern", "name", "expected"),
    [row for row in TABLE if row[0] == "prefix" and "?" not in row[1]],
)
def test_pin_files_read_keys_in_prefix_mode(
    tmp_path: Path, mode: PatternMode, pattern: str, name: str, expected: bool
) -> None:
    """A one-entry pin file applies exactly where the prefix-mode table says."""
    path = tmp_path / "pins.toml"
    path.write_text(f'[pins."{pattern}"]\nroot = ["keyid:{"a" * 64}"]\n')
    pins = load_pins(path)
    assert (pins.lookup(name) is not None) is expected


@pytest.mark.parametrize(
    ("mode", "pattern", "name", "expected"), [row for row in TABLE if row[0] == "shell"]
)
def test_webhook_exemptions_read_globs_in_shell_mode(
    mode: PatternMode, pattern: str, name: str, expected: bool
) -> None:
    exemption = ObjectExemption(namespace="ops", name=pattern)
    assert exemption.matches("ops", "DaemonSet", name) is expected
    assert not exemption.matches("other", "DaemonSet", name)


def test_the_three_modes_differ_where_their_documents_differ() -> None:
    """The one name on which the three meanings of '*' part ways."""
    name = "registry.example.com/team/a/b"
    assert prefix_matches("registry.example.com/team/*", name)
    assert shell_matches("registry.example.com/team/*", name)  # fnmatch's '*' crosses '/'
    assert not Pattern.parse("registry.example.com/team/*").matches(name)


def test_prefix_specificity_prefers_exact_then_longer() -> None:
    ranked = sorted(
        ["registry.example.com/*", "registry.example.com/team/app", "registry.example.com/team/*"],
        key=prefix_specificity,
        reverse=True,
    )
    assert ranked == [
        "registry.example.com/team/app",
        "registry.example.com/team/*",
        "registry.example.com/*",
    ]


def test_path_mode_refuses_what_the_policy_docs_refuse() -> None:
    with pytest.raises(ValueError, match="other registries"):
        matches("path", "docker.io*/library/alpine", "docker.io/library/alpine")


@pytest.mark.parametrize(
    ("pattern", "normalised"),
    [
        ("EXAMPLE.com:443/team/*", "example.com/team/*"),
        ("Index.Docker.IO/library/*", "docker.io/library/*"),
        ("team/*", "docker.io/team/*"),
        ("alpine", "docker.io/library/alpine"),
        ("Registry.Exa*", "registry.exa*"),
        ("*", "*"),
    ],
)
def test_prefix_mode_folds_names_to_their_identity(pattern: str, normalised: str) -> None:
    assert normalise_prefix(pattern) == normalised


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("", "prefix ending in '*'"),
        ("registry.example.com/*/app", "prefix ending in '*'"),  # '*' only at the end
        ("registry.example.com/team/**", "prefix ending in '*'"),
        ("registry.example.com/te am/*", "prefix ending in '*'"),
        ("registry.example.com/Team/app", "not a repository name"),
    ],
)
def test_prefix_mode_syntax(pattern: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        normalise_prefix(pattern)
