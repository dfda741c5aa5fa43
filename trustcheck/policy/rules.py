"""Policy files and the one decision function every front end uses.

A policy (YAML, docs/policy.md) is an ordered list of rules. Each rule has an
image ``pattern`` (a glob over the normalised repository name
``domain/path``, always anchored at both ends), an ``action``
(``verify``/``allow``/``deny``), trust settings (pins, server, offline),
required ``signers`` with a ``threshold``, and a ``mode``
(``enforce``/``warn``).

* :func:`load_policy` / :func:`parse_policy` read and validate a policy; every
  error is a ``policy-invalid`` :class:`~trustcheck.errors.UsageError` naming
  the file, the line and the field. An empty policy is an error.
* :meth:`Policy.match` picks the most specific matching rule (see
  :meth:`Pattern.specificity`); no match means deny.
* :func:`decide` is pure: an image reference, the policy and the verified
  collection (or the error obtaining it) in, a :class:`Decision` out. The CLI
  (``gate``, ``pull``, ``policy explain``, ``quarantine release``) and the
  admission webhook all call it.
* :func:`evaluate` is the I/O edge around it: it obtains the collections each
  matched rule asks for (trust dir or Notary server, with the rule's pins and
  server) and calls :func:`decide` for each image.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from trustcheck.core.reference import (
    AmbiguousDomain,
    ImageRef,
    canonical_domain,
    identity,
    parse_repository_name,
)
from trustcheck.errors import NotTrusted, TrustcheckError, UsageError
from trustcheck.local.pinfile import KINDS, Identifier, PinEntry, PinSet

if TYPE_CHECKING:
    import yaml

    from trustcheck.api import Options
    from trustcheck.core.verify import Collection
    from trustcheck.local.trustdir import TrustDir
    from trustcheck.remote.config import RemoteConfig

__all__ = [
    "Decision",
    "Pattern",
    "Policy",
    "Reason",
    "Rule",
    "RuleRef",
    "SignerResult",
    "SignerSpec",
    "Trust",
    "decide",
    "evaluate",
    "load_policy",
    "parse_policy",
]

Action = Literal["verify", "allow", "deny"]
Mode = Literal["enforce", "warn"]
ACTIONS: tuple[Action, ...] = ("verify", "allow", "deny")
MODES: tuple[Mode, ...] = ("enforce", "warn")

#: a policy file larger than this is refused before it is parsed
MAX_POLICY_SIZE = 1 << 20

# ----------------------------------------------------------------------------- patterns

_LITERAL = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-/:[]")
_WILD = frozenset("*?")


def _is_registry(component: str) -> bool:
    """Docker's rule for the first name component: a registry when it has '.' or ':'
    or is ``localhost``."""
    return component == "localhost" or "." in component or ":" in component


def _tokens(text: str) -> Iterator[str]:
    """Split a pattern into literal characters and the wildcards ``**``, ``*``, ``?``."""
    i = 0
    while i < len(text):
        if text.startswith("**", i):
            yield "**"
            i += 2
        else:
            yield text[i]
            i += 1


@dataclass(frozen=True, slots=True)
class Pattern:
    """An anchored glob over a normalised repository name (``domain/path``).

    ``*`` and ``?`` never cross a ``/`` (one path component, or part of one);
    ``**`` matches any run of characters, ``/`` included. Everything else is
    literal. The whole name must match: ``docker.io/library/*`` matches
    ``docker.io/library/alpine`` but neither ``docker.io/library/x/y`` nor
    ``evil.io/docker.io/library/alpine``.
    """

    text: str
    regex: re.Pattern[str] = field(compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Pattern:
        """Validate and compile; raises ValueError with a one-line reason."""
        if not text:
            raise ValueError("is empty")
        if any(c.isspace() or ord(c) < 0x20 for c in text):
            raise ValueError("contains whitespace or a control character")
        if "@" in text:
            raise ValueError(
                "contains '@': patterns match repository names; digests are not part of them"
            )
        if "***" in text:
            raise ValueError("contains '***'; use '*' (one component) or '**' (any depth)")
        bad = sorted({c for c in text if c not in _LITERAL and c not in _WILD})
        if bad:
            raise ValueError(
                f"contains {''.join(bad)!r}; only lower-case letters, digits, '.', '_', '-', "
                "'/', ':' (registry port), '[' ']' (IPv6 registry) and the wildcards "
                "'*', '**', '?' are allowed"
            )
        if text != "**":
            domain, slash, path = text.partition("/")
            if not slash or not path:
                raise ValueError(
                    "must be REGISTRY/REPOSITORY (e.g. docker.io/library/alpine), or '**' for "
                    "every image"
                )
            if domain not in ("*", "**") and any(c in _WILD for c in domain):
                if not (domain.startswith("*.") and not any(c in _WILD for c in domain[2:])):
                    raise ValueError(
                        f"registry {domain!r}: a wildcard inside a registry name can match "
                        "other registries ('docker.io*' matches 'docker.io.evil.example'); use "
                        "a literal registry, '*.' + a domain, '*' or '**'"
                    )
            elif domain not in ("*", "**") and not _is_registry(domain):
                raise ValueError(
                    f"{domain!r} is not a registry (no '.' or ':' and not localhost): names "
                    f"are fully qualified, e.g. docker.io/library/alpine or docker.io/{text}"
                )
            if domain == "index.docker.io":
                raise ValueError(
                    "names are normalised to docker.io; write docker.io/..., not index.docker.io"
                )
            if ":" in path:
                raise ValueError(
                    "contains ':' after the registry: patterns match repository names; tags "
                    "are not part of them"
                )
            if "//" in path or path.startswith("/") or path.endswith("/"):
                raise ValueError("has an empty path component")
        parts: list[str] = []
        for tok in _tokens(text):
            if tok == "**":
                parts.append(".*")
            elif tok == "*":
                parts.append("[^/]*")
            elif tok == "?":
                parts.append("[^/]")
            else:
                parts.append(re.escape(tok))
        return cls(text, re.compile("".join(parts)))

    def matches(self, name: str) -> bool:
        """Whether the whole of ``name`` (``domain/path``) matches."""
        return self.regex.fullmatch(name) is not None

    @property
    def exact(self) -> bool:
        return not any(c in _WILD for c in self.text)

    def specificity(self) -> tuple[int, int, int, int, int]:
        """Sort key, larger = more specific (ties: earlier rule in the file wins).

        1. an exact name beats every pattern with a wildcard;
        2. a longer literal prefix (the characters before the first wildcard);
        3. fewer ``**``;
        4. fewer ``*`` and ``?``;
        5. more literal characters in total.
        """
        toks = list(_tokens(self.text))
        prefix = 0
        for tok in toks:
            if tok in ("**", "*", "?"):
                break
            prefix += 1
        doubles = sum(1 for t in toks if t == "**")
        singles = sum(1 for t in toks if t in ("*", "?"))
        literal = sum(1 for t in toks if t not in ("**", "*", "?"))
        return (1 if self.exact else 0, prefix, -doubles, -singles, literal)


def match_name(ref: ImageRef) -> str:
    """The string patterns are matched against: the repository's identity
    (:func:`trustcheck.core.reference.identity`; a deny rule must not be bypassed by
    ``EVIL.io``, ``evil.io:443`` or ``index.docker.io``)."""
    return identity(ref.name)


def normalise_pattern_text(text: str) -> str:
    """A rule's pattern with its registry in identity form (the same folding as
    image names, :func:`trustcheck.core.reference.canonical_domain`); a pattern with
    no wildcard is a name and becomes its identity (``docker.io/alpine`` is
    ``docker.io/library/alpine``), and a single ``docker.io`` component gets
    ``library/`` as in names (``docker.io/*`` is ``docker.io/library/*``).
    Raises ValueError for a registry spelling refused as ambiguous."""
    domain, slash, rest = text.partition("/")
    if not slash or domain in ("*", "**"):
        return text
    if any(c in _WILD for c in domain):
        return f"{domain.lower()}/{rest}"  # '*.Example.com': only the case folds
    if _is_registry(domain.lower()) or domain.lower() != domain:
        try:
            domain = canonical_domain(domain)
        except AmbiguousDomain as e:
            raise ValueError(f"registry {domain[:60]!r}: {e}") from None
    if domain == "docker.io" and "/" not in rest and "**" not in rest:
        rest = "library/" + rest  # as for names: docker.io/* is docker.io/library/*
    folded = f"{domain}/{rest}"
    if not any(c in _WILD for c in folded):
        try:
            return parse_repository_name(folded)
        except UsageError:
            return folded  # Pattern.parse says what is wrong with it
    return folded


# ----------------------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class SignerSpec:
    """One required signer: a delegation name (``alice``, ``releases``, ``targets``
    for the repository key) or a key identifier as in the pin file."""

    text: str
    name: str | None = None
    identifier: Identifier | None = None

    def __str__(self) -> str:
        return self.text


@dataclass(slots=True)
class Trust:
    """How a rule's trust data is obtained. ``None`` = not set (the CLI's option applies)."""

    pins: PinSet | None = None
    #: where the pins came from, for messages ("pins.toml", "policy.yaml:12 (inline)")
    pins_source: str | None = None
    server: str | None = None
    offline: bool | None = None
    no_tofu: bool | None = None

    def merged_over(self, base: Trust) -> Trust:
        """This rule's settings, field by field over the policy's ``defaults``."""
        return Trust(
            pins=self.pins if self.pins is not None else base.pins,
            pins_source=self.pins_source if self.pins is not None else base.pins_source,
            server=self.server if self.server is not None else base.server,
            offline=self.offline if self.offline is not None else base.offline,
            no_tofu=self.no_tofu if self.no_tofu is not None else base.no_tofu,
        )


@dataclass(slots=True)
class Rule:
    index: int
    name: str
    pattern: Pattern
    action: Action
    mode: Mode
    signers: tuple[SignerSpec, ...] = ()
    threshold: int = 0
    trust: Trust = field(default_factory=Trust)
    reason: str | None = None
    line: int = 0

    @property
    def label(self) -> str:
        return f'"{self.name}"'

    def ref(self) -> RuleRef:
        return RuleRef(self.name, self.index, self.pattern.text, self.action, self.mode, self.line)


@dataclass(frozen=True, slots=True)
class RuleRef:
    """A rule as decisions report it."""

    name: str
    index: int
    pattern: str
    action: str
    mode: str
    line: int

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "index": self.index,
            "pattern": self.pattern,
            "action": self.action,
            "mode": self.mode,
            "line": self.line,
        }


@dataclass(slots=True)
class Policy:
    rules: list[Rule]
    source: str = "<policy>"
    path: Path | None = None
    #: lint findings (`policy check` prints them); never change a decision
    warnings: list[str] = field(default_factory=list)

    def candidates(self, ref: ImageRef) -> list[Rule]:
        """Every rule whose pattern matches ``ref``, most specific first."""
        name = match_name(ref)
        found = [r for r in self.rules if r.pattern.matches(name)]
        return sorted(found, key=lambda r: (r.pattern.specificity(), -r.index), reverse=True)

    def match(self, ref: ImageRef) -> Rule | None:
        """The rule that decides ``ref``; None means deny."""
        found = self.candidates(ref)
        return found[0] if found else None

    @classmethod
    def docker_content_trust(cls) -> Policy:
        """What ``DOCKER_CONTENT_TRUST=1 docker pull`` enforced: every image must verify."""
        rule = Rule(0, "docker-content-trust", Pattern.parse("**"), "verify", "enforce")
        return cls([rule], source="built-in policy (every image must be signed)")


# ----------------------------------------------------------------------------- loading


def _bad(where: str, message: str) -> UsageError:
    return UsageError("policy-invalid", f"{where}: {message}")


class _Loader:
    """Walks the composed YAML node tree, keeping line numbers for messages."""

    def __init__(self, source: str, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir

    def at(self, node: yaml.Node | None) -> str:
        if node is None:
            return self.source
        return f"{self.source}:{node.start_mark.line + 1}"

    def fail(self, node: yaml.Node | None, where: str, message: str) -> UsageError:
        return _bad(self.at(node), f"{where}: {message}" if where else message)

    def mapping(
        self, node: yaml.Node, where: str, allowed: Sequence[str] | None
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """The keys of a mapping node (``allowed=None``: any key), refusing duplicates."""
        import yaml

        if not isinstance(node, yaml.MappingNode):
            if allowed is None:
                raise self.fail(node, where, "must be a mapping")
            raise self.fail(node, where, f"must be a mapping with keys {', '.join(allowed)}")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "<<":
                raise self.fail(key, where, "merge keys ('<<') are not supported")
            if not isinstance(key, yaml.ScalarNode) or key.tag != "tag:yaml.org,2002:str":
                raise self.fail(key, where, "keys must be plain strings")
            name = str(key.value)
            sub = f"{where}.{name}" if where else name
            if name in out:
                raise self.fail(
                    key,
                    sub,
                    f"appears twice (first at line {out[name][0].start_mark.line + 1}); YAML "
                    "would silently keep the last one",
                )
            if allowed is not None and name not in allowed:
                raise self.fail(key, sub, f"unknown key; the keys here are {', '.join(allowed)}")
            out[name] = (key, value)
        return out

    def sequence(self, node: yaml.Node, where: str) -> list[yaml.Node]:
        import yaml

        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, where, "must be a list")
        return list(node.value)

    def string(self, node: yaml.Node, where: str) -> str:
        import yaml

        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str":
            raise self.fail(node, where, f"must be a string, got {self.describe(node)}")
        return str(node.value)

    def boolean(self, node: yaml.Node, where: str) -> bool:
        import yaml

        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:bool":
            return node.value.lower() in ("true", "yes", "on")
        raise self.fail(node, where, f"must be true or false, got {self.describe(node)}")

    def integer(self, node: yaml.Node, where: str) -> int:
        import yaml

        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:int":
            try:
                return int(str(node.value).replace("_", ""), 0)
            except ValueError:
                pass
        raise self.fail(node, where, f"must be an integer, got {self.describe(node)}")

    def choice(self, node: yaml.Node, where: str, choices: Sequence[str]) -> str:
        value = self.string(node, where)
        if value not in choices:
            raise self.fail(node, where, f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    @staticmethod
    def describe(node: yaml.Node) -> str:
        import yaml

        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        kind = str(node.tag).rsplit(":", 1)[-1]
        shown = str(node.value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        return f"{kind} {shown!r}" if kind != "null" else "nothing (null)"

    # --- sections ---------------------------------------------------------------------

    def trust(self, node: yaml.Node, where: str) -> Trust:
        keys = self.mapping(node, where, ("pins", "server", "offline", "no_tofu"))
        out = Trust()
        if "server" in keys:
            value = keys["server"][1]
            out.server = self.server(value, f"{where}.server")
        if "offline" in keys:
            out.offline = self.boolean(keys["offline"][1], f"{where}.offline")
        if "no_tofu" in keys:
            out.no_tofu = self.boolean(keys["no_tofu"][1], f"{where}.no_tofu")
        if "pins" in keys:
            out.pins, out.pins_source = self.pins(keys["pins"][1], f"{where}.pins")
        return out

    def server(self, node: yaml.Node, where: str) -> str:
        text = self.string(node, where).strip()
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as e:
            raise self.fail(node, where, f"{text!r} is not a URL ({e})") from e
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise self.fail(node, where, f"{text!r} must be https://host[:port]")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise self.fail(
                node, where, f"{text!r} must be scheme://host[:port] (no path, query or user)"
            )
        return text

    def pins(self, node: yaml.Node, where: str) -> tuple[PinSet, str]:
        import yaml

        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:str":
            from trustcheck.local.pinfile import load_pins

            path = self.base_dir / str(node.value)
            try:
                return load_pins(path), str(path)
            except UsageError as e:
                raise self.fail(node, where, e.message) from e
        keys = self.mapping(node, where, ("root", "ca", "signers"))
        if not keys:
            raise self.fail(node, where, "is empty: an empty pin would trust anything")
        entry = PinEntry(pattern="*", source=f"{self.at(node)} ({where}, inline)")
        if "root" in keys:
            entry.root = self.identifiers(keys["root"][1], f"{where}.root")
        if "ca" in keys:
            ca = self.string(keys["ca"][1], f"{where}.ca")
            if not ca:
                raise self.fail(keys["ca"][1], f"{where}.ca", "must be a path to a PEM bundle")
            entry.ca = (self.base_dir / ca).resolve()
        if "signers" in keys:
            snode = keys["signers"][1]
            signers = self.mapping(snode, f"{where}.signers", None)
            if not signers:
                raise self.fail(
                    snode, f"{where}.signers", "must be a mapping of signer name: [identifiers]"
                )
            from trustcheck.local.pinfile import signer_pin_problem

            for name, (knode, vnode) in signers.items():
                problem = signer_pin_problem(name)
                if problem is not None:
                    raise self.fail(knode, f"{where}.signers", problem)
                entry.signers[name] = self.identifiers(vnode, f"{where}.signers.{name}")
        return PinSet(entries=[entry]), f"{self.at(node)} ({where}, inline)"

    def identifiers(self, node: yaml.Node, where: str) -> list[Identifier]:
        import yaml

        items = [node] if isinstance(node, yaml.ScalarNode) else self.sequence(node, where)
        if not items:
            raise self.fail(node, where, "must be a non-empty list of identifiers")
        out: list[Identifier] = []
        for i, item in enumerate(items):
            text = self.string(item, f"{where}[{i}]")
            try:
                out.append(Identifier.parse(text, f"{where}[{i}]"))
            except UsageError as e:
                raise self.fail(item, "", e.message) from e
        return out

    def signer(self, node: yaml.Node, where: str) -> SignerSpec:
        text = self.string(node, where).strip()
        kind, colon, _ = text.partition(":")
        if colon:
            if kind.strip().lower() not in KINDS:
                raise self.fail(
                    node,
                    where,
                    f"{text[:80]!r} is neither a signer name nor an identifier "
                    f"(<kind>:<hex> with kind one of {', '.join(KINDS)})",
                )
            try:
                ident = Identifier.parse(text, where)
            except UsageError as e:
                raise self.fail(node, "", e.message) from e
            return SignerSpec(str(ident), identifier=ident)
        name = text.removeprefix("targets/") if text != "targets" else text
        if (
            not name
            or any(c.isspace() or ord(c) < 0x20 for c in name)
            or name.startswith("/")
            or name.endswith("/")
            or "//" in name
        ):
            raise self.fail(
                node,
                where,
                f"{text[:80]!r} is not a signer name (a delegation name such as alice, "
                "releases or team/ci; targets for the repository key)",
            )
        return SignerSpec(name, name=name)


def _check_yaml(text: str, source: str) -> yaml.Node | None:
    import yaml

    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark is not None else "?"
                raise _bad(
                    f"{source}:{line}",
                    "anchors and aliases ('*name') are not supported; write each value out "
                    "(quote patterns that start with '*', e.g. \"*.example.com/**\")",
                )
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = (e.problem or e.context or "syntax error").strip()
        hint = ""
        if any(w in f"{e.context or ''} {problem}" for w in ("alias", "anchor")):
            hint = "; quote patterns that start with '*', e.g. \"*.example.com/**\""
        raise _bad(where, f"not valid YAML: {problem}{hint}") from e
    except yaml.YAMLError as e:
        raise _bad(source, f"not valid YAML: {str(e).splitlines()[0] if str(e) else e}") from e
    except RecursionError as e:
        raise _bad(source, "nested too deeply to be a policy") from e


def parse_policy(text: str, source: str = "<policy>", base_dir: Path | None = None) -> Policy:
    """Validate a policy document. Relative pin and CA paths resolve against ``base_dir``."""
    root = _check_yaml(text, source)
    if root is None:
        raise _bad(
            source,
            "the policy is empty; an empty policy would decide nothing (write `rules:` with "
            "at least one rule, see docs/policy.md)",
        )
    ld = _Loader(source, base_dir if base_dir is not None else Path.cwd())
    top = ld.mapping(root, "", ("version", "defaults", "rules"))
    if "version" in top:
        vnode = top["version"][1]
        if ld.integer(vnode, "version") != 1:
            raise ld.fail(vnode, "version", "this trustcheck reads version 1")
    default_mode: Mode = "enforce"
    default_trust = Trust()
    if "defaults" in top:
        dkeys = ld.mapping(top["defaults"][1], "defaults", ("mode", "trust"))
        if "mode" in dkeys:
            default_mode = _mode(ld.choice(dkeys["mode"][1], "defaults.mode", MODES))
        if "trust" in dkeys:
            default_trust = ld.trust(dkeys["trust"][1], "defaults.trust")
    if "rules" not in top:
        raise ld.fail(root, "rules", "missing; a policy without rules would decide nothing")
    rnode = top["rules"][1]
    items = ld.sequence(rnode, "rules")
    if not items:
        raise ld.fail(rnode, "rules", "is empty; a policy without rules would decide nothing")
    rules: list[Rule] = []
    names: dict[str, int] = {}
    patterns: dict[str, Rule] = {}
    for i, item in enumerate(items):
        rules.append(_rule(ld, item, i, default_mode, default_trust, names, patterns))
    policy = Policy(rules=rules, source=source)
    policy.warnings = _lint(policy)
    return policy


def _mode(value: str) -> Mode:
    return "warn" if value == "warn" else "enforce"


def _action(value: str) -> Action:
    return "allow" if value == "allow" else "deny" if value == "deny" else "verify"


def _rule(
    ld: _Loader,
    node: yaml.Node,
    i: int,
    default_mode: Mode,
    default_trust: Trust,
    names: dict[str, int],
    patterns: dict[str, Rule],
) -> Rule:
    where = f"rules[{i}]"
    keys = ld.mapping(
        node,
        where,
        ("name", "pattern", "action", "mode", "signers", "threshold", "trust", "reason"),
    )
    if "pattern" not in keys:
        raise ld.fail(node, f"{where}.pattern", "missing; every rule needs an image pattern")
    pnode = keys["pattern"][1]
    ptext = ld.string(pnode, f"{where}.pattern").strip()
    try:  # one identity per repository: registry aliases fold as in image names
        ptext = normalise_pattern_text(ptext)
        pattern = Pattern.parse(ptext)
    except ValueError as e:
        raise ld.fail(pnode, f"{where}.pattern", f"{ptext[:100]!r} {e}") from e
    if pattern.text in patterns:
        first = patterns[pattern.text]
        raise ld.fail(
            pnode,
            f"{where}.pattern",
            f"{pattern.text!r} repeats the pattern of rule {first.label} (line {first.line}); "
            "the second rule could never decide anything",
        )
    name = f"rules[{i}]"
    if "name" in keys:
        nnode = keys["name"][1]
        name = ld.string(nnode, f"{where}.name").strip()
        if not name or any(ord(c) < 0x20 for c in name):
            raise ld.fail(nnode, f"{where}.name", "must be a non-empty single-line string")
    if name in names:
        raise ld.fail(
            keys["name"][1] if "name" in keys else node,
            f"{where}.name",
            f"{name!r} is already the name of rules[{names[name]}]",
        )
    names[name] = i
    action: Action = "verify"
    if "action" in keys:
        action = _action(ld.choice(keys["action"][1], f"{where}.action", ACTIONS))
    mode = default_mode
    if "mode" in keys:
        mode = _mode(ld.choice(keys["mode"][1], f"{where}.mode", MODES))
    signers: list[SignerSpec] = []
    if "signers" in keys:
        snode = keys["signers"][1]
        if action != "verify":
            raise ld.fail(snode, f"{where}.signers", f"applies to action verify, not {action}")
        entries = ld.sequence(snode, f"{where}.signers")
        if not entries:
            raise ld.fail(snode, f"{where}.signers", "is empty; leave it out to require no signer")
        for j, entry in enumerate(entries):
            spec = ld.signer(entry, f"{where}.signers[{j}]")
            if spec in signers:
                raise ld.fail(entry, f"{where}.signers[{j}]", f"{spec.text!r} is listed twice")
            signers.append(spec)
    threshold = len(signers)
    if "threshold" in keys:
        tnode = keys["threshold"][1]
        if not signers:
            raise ld.fail(tnode, f"{where}.threshold", "needs a signers list")
        threshold = ld.integer(tnode, f"{where}.threshold")
        if not 1 <= threshold <= len(signers):
            raise ld.fail(
                tnode,
                f"{where}.threshold",
                f"must be between 1 and the number of signers ({len(signers)}), got {threshold}",
            )
    trust = Trust()
    if "trust" in keys:
        trnode = keys["trust"][1]
        if action != "verify":
            raise ld.fail(
                trnode, f"{where}.trust", f"applies to action verify; {action} reads no trust data"
            )
        trust = ld.trust(trnode, f"{where}.trust")
    reason = None
    if "reason" in keys:
        reason = ld.string(keys["reason"][1], f"{where}.reason").strip() or None
    rule = Rule(
        index=i,
        name=name,
        pattern=pattern,
        action=action,
        mode=mode,
        signers=tuple(signers),
        threshold=threshold,
        trust=trust.merged_over(default_trust) if action == "verify" else Trust(),
        reason=reason,
        line=node.start_mark.line + 1,
    )
    patterns[pattern.text] = rule
    return rule


def _lint(policy: Policy) -> list[str]:
    """Things that are valid but probably not meant (``policy check`` prints them)."""
    out: list[str] = []
    for r in policy.rules:
        at = f"{policy.source}:{r.line}: rule {r.label}"
        if r.action == "allow":
            out.append(
                f"{at} allows {r.pattern.text} without checking any signature "
                "(action allow is an escape hatch)"
            )
        if r.mode == "warn":
            out.append(f"{at} is in warn mode: it reports but never blocks")
        domain = r.pattern.text.partition("/")[0]
        if r.action != "deny" and domain in ("*", "**"):
            out.append(
                f"{at}: pattern {r.pattern.text!r} matches images on any registry; "
                "an attacker's registry included"
            )
        if r.trust.offline and r.trust.server:
            out.append(f"{at} names a server but is offline: the server is never asked")
    return out


def load_policy(path: Path) -> Policy:
    """Read and validate the policy file at ``path`` (``policy-invalid`` on any problem)."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_POLICY_SIZE + 1)
    except IsADirectoryError:
        raise _bad(str(path), "is a directory, not a policy file") from None
    except OSError as e:
        raise _bad(str(path), f"cannot read the policy file: {e.strerror or e}") from e
    if len(data) > MAX_POLICY_SIZE:
        raise _bad(str(path), f"larger than {MAX_POLICY_SIZE} bytes; this is not a policy")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _bad(str(path), f"not UTF-8 text (byte {e.start})") from e
    policy = parse_policy(text, str(path), path.parent)
    policy.path = path
    return policy


# ----------------------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an image was denied: a stable error code (docs/errors.md) and one line."""

    code: str
    message: str
    role: str | None = None

    @property
    def exit_code(self) -> int:
        from trustcheck.errors import CODES

        return CODES[self.code][0] if self.code in CODES else 1

    def to_json(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "role": self.role}

    @classmethod
    def of(cls, error: TrustcheckError) -> Reason:
        return cls(error.code, error.message, error.role)


@dataclass(frozen=True, slots=True)
class SignerResult:
    """One required signer: whether it signed the released digest, with which key, in
    which role."""

    signer: str
    satisfied: bool
    key: str | None = None  # "canonical:<hex>" of the key counted for it
    role: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "signer": self.signer,
            "satisfied": self.satisfied,
            "key": self.key,
            "role": self.role,
        }


@dataclass(slots=True)
class Decision:
    """The answer for one image. ``allowed`` is final (a ``warn`` rule never blocks);
    ``verdict`` is what the rule concluded before its mode applied."""

    image: str
    name: str
    tag: str | None
    allowed: bool
    verdict: Literal["allow", "deny"]
    mode: Mode
    digest: str | None = None
    rule: RuleRef | None = None
    reasons: list[Reason] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: the role the digest was released from, and every signer of that digest
    role: str | None = None
    length: int | None = None
    signers: list[str] = field(default_factory=list)
    threshold: int = 0
    required: list[SignerResult] = field(default_factory=list)
    #: every rule that matched, most specific first (``policy explain``)
    candidates: list[RuleRef] = field(default_factory=list)
    #: why the root was trusted and the version of each verified role
    trust_basis: str | None = None
    verified: dict[str, int] = field(default_factory=dict)

    @property
    def pinned(self) -> str | None:
        """``name@sha256:...`` for deploy manifests (None without a digest)."""
        return f"{self.name}@{self.digest}" if self.digest is not None else None

    @property
    def exit_code(self) -> int:
        """2 if any reason is a usage/configuration error, else 1 when denied, else 0."""
        if any(r.exit_code == 2 for r in self.reasons):
            return 2
        return 0 if self.allowed else 1

    def to_json(self) -> dict[str, object]:
        return {
            "image": self.image,
            "name": self.name,
            "tag": self.tag,
            "allowed": self.allowed,
            "verdict": self.verdict,
            "mode": self.mode,
            "digest": self.digest,
            "pinned": self.pinned if self.allowed else None,
            "rule": self.rule.to_json() if self.rule is not None else None,
            "reasons": [r.to_json() for r in self.reasons],
            "warnings": self.warnings,
            "role": self.role,
            "length": self.length,
            "signers": self.signers,
            "required_signers": (
                {"threshold": self.threshold, "signers": [s.to_json() for s in self.required]}
                if self.required
                else None
            ),
            "candidates": [c.to_json() for c in self.candidates],
            "trust_basis": self.trust_basis,
            "verified": self.verified,
        }


def _role_keys(col: Collection, role: str) -> dict[str, Any]:
    if role == "targets":
        return dict(col.root.keys)
    parent = role.rsplit("/", 1)[0]
    tm = col.targets.get(parent)
    return dict(tm.delegation_keys) if tm is not None else {}


def _released_names(col: Collection, ref: ImageRef, sha: str) -> list[str]:
    """Target names released with digest ``sha``: the tag, or for ``name@digest`` every
    released tag carrying that digest."""
    if ref.tag is not None:
        return [ref.tag]
    from trustcheck.core.lookup import RELEASED_ROLES, list_targets

    return sorted(
        h.name
        for h in list_targets(col, RELEASED_ROLES).values()
        if h.role in RELEASED_ROLES and h.sha256 == sha
    )


def _match_keys(options: list[list[str]]) -> dict[int, str]:
    """Assign distinct keys to as many signers as possible (augmenting paths)."""
    owner: dict[str, int] = {}

    def assign(i: int, seen: set[str]) -> bool:
        for key in options[i]:
            if key in seen:
                continue
            seen.add(key)
            if key not in owner or assign(owner[key], seen):
                owner[key] = i
                return True
        return False

    for i in range(len(options)):
        assign(i, set())
    return {i: k for k, i in owner.items()}


def check_signers(
    col: Collection, ref: ImageRef, digest: str, specs: Sequence[SignerSpec]
) -> list[SignerResult]:
    """Which required signers signed ``digest`` for ``ref``, each backed by a distinct key.

    A name is satisfied when role ``targets/<name>`` (``targets`` for the
    repository key) holds the tag with that digest; the keys that validly signed
    that role's file back it. A key identifier is satisfied when a key it
    identifies validly signed any role holding the tag with that digest. One key
    never counts for two signers.
    """
    from trustcheck.core.crypto import canonical_key_id
    from trustcheck.core.lookup import all_target_metadata, signer_name
    from trustcheck.local.pinfile import identifiers_of_key

    sha = digest.removeprefix("sha256:")
    # role -> canonical IDs (and all identifiers) of the keys that signed it
    roles: dict[str, list[tuple[str, set[Identifier]]]] = {}
    for tname in _released_names(col, ref, sha):
        for hit in all_target_metadata(col, tname):
            if hit.sha256 != sha or hit.role in roles:
                continue
            check = col.checks.get(hit.role)
            keys = _role_keys(col, hit.role)
            signed: list[tuple[str, set[Identifier]]] = []
            for kid in check.signed_by if check is not None else []:
                key = keys.get(kid)
                if key is not None:
                    signed.append((canonical_key_id(key), identifiers_of_key(key, kid)))
            roles[hit.role] = signed
    options: list[list[str]] = []
    where: list[dict[str, str]] = []  # per spec: canonical id -> role it came from
    for spec in specs:
        found: dict[str, str] = {}
        for role, signed in roles.items():
            if spec.name is not None and signer_name(role) != spec.name:
                continue
            for cid, ids in signed:
                if spec.identifier is not None and spec.identifier not in ids:
                    continue
                found.setdefault(cid, role)
        options.append(sorted(found))
        where.append(found)
    chosen = _match_keys(options)
    out: list[SignerResult] = []
    for i, spec in enumerate(specs):
        key = chosen.get(i)
        if key is None:
            out.append(SignerResult(spec.text, False))
        else:
            out.append(SignerResult(spec.text, True, f"canonical:{key}", where[i][key]))
    return out


def decide(
    ref: ImageRef,
    policy: Policy,
    got: Collection | TrustcheckError | None,
    *,
    image: str | None = None,
) -> Decision:
    """The policy decision for ``ref`` (pure: no I/O, no clock).

    ``got`` is the verified collection of ``ref.gun`` obtained with the matched
    rule's trust settings (see :func:`evaluate`), or the error obtaining it;
    None when the caller fetched nothing (enough for allow/deny rules; a verify
    rule then denies). Fails closed: no matching rule, any verification error,
    or too few required signers is a deny.
    """
    decision = Decision(
        image=image if image is not None else str(ref),
        name=ref.name,
        tag=ref.tag,
        allowed=False,
        verdict="deny",
        mode="enforce",
    )
    found = policy.candidates(ref)
    decision.candidates = [r.ref() for r in found]
    if not found:
        decision.reasons.append(
            Reason(
                "policy-no-match",
                f"no rule of {policy.source} matches {ref.name}; an image no rule names is "
                "denied (add a rule whose pattern matches it, see docs/policy.md)",
            )
        )
        return decision
    rule = found[0]
    decision.rule = rule.ref()
    decision.mode = rule.mode
    if rule.action == "deny":
        why = f": {rule.reason}" if rule.reason else ""
        decision.reasons.append(
            Reason(
                "policy-denied",
                f"rule {rule.label} ({rule.pattern.text}) denies {ref.name}{why}",
            )
        )
    elif rule.action == "allow":
        decision.verdict = "allow"
        decision.digest = ref.digest
        decision.warnings.append(
            f"rule {rule.label} allows {ref.name} without verifying any signature"
        )
    else:
        _verify(decision, rule, ref, got)
    # warn mode: report (verdict deny, the reasons) but do not block
    decision.allowed = decision.verdict == "allow" or rule.mode == "warn"
    if decision.exit_code == 2:
        decision.allowed = False  # bad configuration is never waved through
    return decision


def _verify(
    decision: Decision, rule: Rule, ref: ImageRef, got: Collection | TrustcheckError | None
) -> None:
    from trustcheck.core.lookup import resolve

    if got is None:
        decision.reasons.append(
            Reason(
                "no-trust-data",
                f"rule {rule.label} requires verified trust data for {ref.name}, and none "
                "was supplied",
            )
        )
        return
    if isinstance(got, TrustcheckError):
        decision.reasons.append(Reason.of(got))
        return
    decision.trust_basis = got.trust_basis
    decision.verified = {name: c.version for name, c in got.checks.items()}
    decision.warnings.extend(got.warnings)
    try:
        res = resolve(got, ref)
    except NotTrusted as e:
        decision.reasons.append(Reason.of(e))
        decision.role = e.role
        return
    decision.digest = res.digest
    decision.length = res.length
    decision.role = res.role
    decision.signers = list(res.signers)
    decision.threshold = rule.threshold
    if rule.signers:
        decision.required = check_signers(got, ref, res.digest, rule.signers)
        have = [s for s in decision.required if s.satisfied]
        if len(have) < rule.threshold:
            missing = [s.signer for s in decision.required if not s.satisfied]
            signed = ", ".join(s.signer for s in have) or "none of them"
            tags = _released_names(got, ref, res.digest.removeprefix("sha256:"))
            what = f"{ref.name}:{tags[0]}" if tags else ref.name
            decision.reasons.append(
                Reason(
                    "signer-threshold-not-met",
                    f"rule {rule.label} needs {rule.threshold} of "
                    f"[{', '.join(s.text for s in rule.signers)}] to have signed {res.digest} "
                    f"for {what}, each with its own key; signed: {signed}; missing: "
                    f"{', '.join(missing)} (they sign with `docker trust sign {what}`)",
                )
            )
            return
    decision.verdict = "allow"


# ----------------------------------------------------------------------------- the I/O edge


def rule_options(rule: Rule, options: Options) -> Options:
    """The verification options for ``rule``: its pins replace the CLI's, ``no_tofu``
    is added."""
    return replace(
        options,
        pins=rule.trust.pins if rule.trust.pins is not None else options.pins,
        no_tofu=options.no_tofu or bool(rule.trust.no_tofu),
    )


def rule_remote(rule: Rule, remote: RemoteConfig | None) -> RemoteConfig | None:
    """The server settings for ``rule``: its server replaces the CLI's; offline when
    either says so. None stays None (no network)."""
    if remote is None:
        return None
    return replace(
        remote,
        server=rule.trust.server if rule.trust.server is not None else remote.server,
        offline=remote.offline or bool(rule.trust.offline),
    )


def evaluate(
    refs: Sequence[ImageRef],
    policy: Policy,
    trust_dir: TrustDir,
    at: datetime,
    options: Options | None = None,
    remote: RemoteConfig | None = None,
    *,
    images: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Decision]:
    """Decide every image: obtain the trust data each matched verify rule asks for
    (fetched unless ``remote`` is None or offline, as
    :func:`trustcheck.api.collections_for`), then :func:`decide`."""
    from trustcheck.api import Options, collections_for

    opts = options if options is not None else Options()
    texts = list(images) if images is not None else [str(r) for r in refs]
    by_rule: dict[int, list[ImageRef]] = {}
    for ref in refs:
        rule = policy.match(ref)
        if rule is not None and rule.action == "verify":
            by_rule.setdefault(rule.index, []).append(ref)
    got: dict[tuple[int, str], Collection | TrustcheckError] = {}
    for index, group in by_rule.items():
        rule = policy.rules[index]
        cols = collections_for(
            [r.gun for r in group],
            trust_dir,
            at,
            rule_options(rule, opts),
            rule_remote(rule, remote),
            progress,
        )
        for gun, col in cols.items():
            got[(index, gun)] = col
    out: list[Decision] = []
    for ref, text in zip(refs, texts, strict=True):
        rule = policy.match(ref)
        found = got.get((rule.index, ref.gun)) if rule is not None else None
        out.append(decide(ref, policy, found, image=text))
    return out
