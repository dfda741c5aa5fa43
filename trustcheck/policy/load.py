"""Reading and validating policy files: every error is a ``policy-invalid``
:class:`~trustcheck.errors.UsageError` naming the file, the line and the field.
An empty policy is an error (docs/policy.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from trustcheck.core.identity import KINDS, Identifier
from trustcheck.errors import ErrorCode, UsageError
from trustcheck.local.pinfile import PinEntry, PinSet
from trustcheck.policy.model import (
    ACTIONS,
    MODES,
    Action,
    Mode,
    Policy,
    Rule,
    SignerSpec,
    Trust,
)
from trustcheck.policy.pattern import (
    Pattern,
    check_namespace_pattern,
    globs_overlap,
    normalise_pattern_text,
)

if TYPE_CHECKING:
    import yaml

    from trustcheck.archive.decide import ArchiveSpec

__all__ = ["MAX_POLICY_SIZE", "load_policy", "parse_policy", "policy_from_bytes"]

#: a policy file larger than this is refused before it is parsed
MAX_POLICY_SIZE = 1 << 20


def _bad(where: str, message: str) -> UsageError:
    return UsageError(ErrorCode.POLICY_INVALID, f"{where}: {message}")


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
        """The keys of a mapping node (``allowed=None``: any key); duplicates were
        refused when the file was read (:mod:`trustcheck.yamlfile`)."""
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
        keys = self.mapping(
            node,
            where,
            ("pins", "server", "offline", "no_tofu", "archive", "notation", "cosign"),
        )
        out = Trust()
        if "archive" in keys:
            out.archive = self.archive(keys["archive"][1], f"{where}.archive")
        if "server" in keys:
            value = keys["server"][1]
            out.server = self.server(value, f"{where}.server")
        if "offline" in keys:
            out.offline = self.boolean(keys["offline"][1], f"{where}.offline")
        if "no_tofu" in keys:
            out.no_tofu = self.boolean(keys["no_tofu"][1], f"{where}.no_tofu")
        if "pins" in keys:
            out.pins, out.pins_source = self.pins(keys["pins"][1], f"{where}.pins")
        from trustcheck.policy.require import trust_material  # notation:, cosign:

        trust_material(self, keys, where, out)
        return out

    def archive(self, node: yaml.Node, where: str) -> ArchiveSpec:
        """``archive: {path: FILE, pin: PEM-FILE|sha256:HEX, max_age: 90d}`` (docs/archive.md)."""
        from trustcheck.archive import load_pin, parse_max_age
        from trustcheck.archive.decide import ArchiveSpec

        keys = self.mapping(node, where, ("path", "pin", "max_age"))
        if "path" not in keys:
            raise self.fail(node, where, "needs path: the trust archive file")
        path = self.base_dir / self.string(keys["path"][1], f"{where}.path")
        pin = age = None
        if "pin" in keys:
            text = self.string(keys["pin"][1], f"{where}.pin")
            is_file = not text.lower().startswith("sha256:")
            try:
                pin = load_pin(str(self.base_dir / text) if is_file else text, "pin")
            except UsageError as e:
                raise self.fail(keys["pin"][1], f"{where}.pin", e.message) from e
        if "max_age" in keys:
            text = self.string(keys["max_age"][1], f"{where}.max_age")
            try:
                age = parse_max_age(text, "max_age")
            except UsageError as e:
                raise self.fail(keys["max_age"][1], f"{where}.max_age", e.message) from e
        return ArchiveSpec(path, pin, age)

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
    """The node tree, read by :mod:`trustcheck.yamlfile` (no anchors, aliases, merge
    keys or duplicate keys)."""
    from trustcheck.yamlfile import YamlProblem, compose

    try:
        return compose(text)
    except YamlProblem as e:
        where = f"{source}:{e.line}" if e.line is not None else source
        message = f"{e.path}: {e.message}" if e.path else e.message
        if e.message == "nested too deeply":
            message = "nested too deeply to be a policy"
        if e.alias:
            message += (
                "; write each value out (quote patterns that start with '*', e.g. "
                '"*.example.com/**")'
                if e.message.startswith("anchors")
                else "; quote patterns that start with '*', e.g. \"*.example.com/**\""
            )
        raise _bad(where, message) from e


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
    _ties(policy)
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
        (
            "name",
            "pattern",
            "namespaces",
            "action",
            "mode",
            "signers",
            "threshold",
            "trust",
            "reason",
            "require",
        ),
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
    namespaces: tuple[str, ...] = ()
    if "namespaces" in keys:
        nsnode = keys["namespaces"][1]
        entries = ld.sequence(nsnode, f"{where}.namespaces")
        if not entries:
            raise ld.fail(
                nsnode, f"{where}.namespaces", "is empty; leave it out for every namespace"
            )
        seen: list[str] = []
        for j, entry in enumerate(entries):
            text = ld.string(entry, f"{where}.namespaces[{j}]").strip()
            try:
                check_namespace_pattern(text)
            except ValueError as e:
                raise ld.fail(entry, f"{where}.namespaces[{j}]", f"{text[:80]!r} {e}") from e
            if text in seen:
                raise ld.fail(entry, f"{where}.namespaces[{j}]", f"{text!r} is listed twice")
            seen.append(text)
        namespaces = tuple(seen)
    same = f"{pattern.text}\0{','.join(sorted(namespaces))}"
    if same in patterns:
        first = patterns[same]
        scope = " in the same namespaces" if namespaces else ""
        raise ld.fail(
            pnode,
            f"{where}.pattern",
            f"{pattern.text!r} repeats the pattern of rule {first.label} (line {first.line})"
            f"{scope}; the second rule could never decide anything",
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
    from trustcheck.policy.require import rule_require  # require: (docs/policy.md)

    require = rule_require(ld, node, keys, where, action, bool(signers))
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
        namespaces=namespaces,
        require=require,
    )
    patterns[same] = rule
    return rule


def _namespaces_meet(a: Rule, b: Rule) -> bool:
    """Whether some review can be in the scope of both rules (both unscoped, or a
    namespace matching a pattern of each)."""
    if not a.namespaces or not b.namespaces:
        return not a.namespaces and not b.namespaces
    return any(globs_overlap(x, y) for x in a.namespaces for y in b.namespaces)


def _literal_suffix(text: str) -> str:
    """The characters after the last wildcard of a pattern."""
    return text[max(text.rfind("*"), text.rfind("?")) + 1 :]


def _ties(policy: Policy) -> None:
    """Refuse two rules that would be settled by their order in the file: the same
    pattern specificity, both scoped or both unscoped, and at least one image name
    (and namespace) that both match (docs/policy.md, "Precedence")."""
    # equally specific patterns have literal prefixes of the same length: when those
    # differ, no name matches both; exact names tie only with themselves (refused
    # as a repeat). So only rules with the same prefix are compared (cheap for
    # large policies).
    groups: dict[tuple[object, ...], list[Rule]] = {}
    for r in policy.rules:
        if r.pattern.exact:
            continue
        text = r.pattern.text
        prefix = text[: min((text.find(c) for c in "*?" if c in text), default=len(text))]
        key = (r.pattern.specificity(), bool(r.namespaces), prefix)
        groups.setdefault(key, []).append(r)
    for rules in groups.values():
        # the literal suffixes (after the last wildcard) both end every common
        # name: unless one ends the other, the patterns are disjoint (cheap test)
        suffixes = [_literal_suffix(r.pattern.text) for r in rules]
        for i, a in enumerate(rules):
            for j in range(i + 1, len(rules)):
                b, sa, sb = rules[j], suffixes[i], suffixes[j]
                if not (sa.endswith(sb) or sb.endswith(sa)):
                    continue
                if not a.pattern.overlaps(b.pattern) or not _namespaces_meet(a, b):
                    continue
                raise _bad(
                    f"{policy.source}:{b.line}",
                    f"rule {b.label} ({b.pattern.text}) and rule {a.label} "
                    f"({a.pattern.text}, {policy.source}:{a.line}) are equally specific and "
                    "both match some images"
                    + (" in some namespaces" if a.namespaces else "")
                    + "; only their order in the file would decide between them. Make one "
                    "more specific (a longer literal prefix, or a name without wildcards), "
                    "make their patterns disjoint, or merge them into one rule",
                )


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
        if r.require is not None:  # require: (docs/policy.md)
            from trustcheck.policy.require import lint

            out.extend(lint(r, at))
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
    return policy_from_bytes(data, path)


def policy_from_bytes(data: bytes, path: Path) -> Policy:
    """The policy in ``data``, the content of the file at ``path`` (read by the
    caller: the webhook's reloader hashes the very bytes it parses)."""
    if len(data) > MAX_POLICY_SIZE:
        raise _bad(str(path), f"larger than {MAX_POLICY_SIZE} bytes; this is not a policy")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _bad(str(path), f"not UTF-8 text (byte {e.start})") from e
    policy = parse_policy(text, str(path), path.parent)
    policy.path = path
    return policy
