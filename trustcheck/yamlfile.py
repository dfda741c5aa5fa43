"""The one YAML reader (policy files, the webhook's server config).

YAML can say one thing two ways, and a reviewer reading a policy must see what
trustcheck sees, so both readers refuse the same constructs (docs/policy.md):

* **anchors and aliases** (``&name``, ``*name``): a value defined in one place
  and used in another (and the "billion laughs" expansion);
* **merge keys** (``<<``): keys taken from another mapping;
* **duplicate keys**: YAML keeps the last one silently;
* **explicit tags** (``!!str 1``, ``!!binary``, ``!custom``): a value whose type is
  not what it looks like;
* **directives** (``%YAML``, ``%TAG``) and more than one document.

Every anchor is refused where it is defined, used or not; every alias where it
is written (even one naming no anchor).

Only PyYAML's safe loader runs (no Python objects), libyaml's C parser when
PyYAML has it (linear time; it refuses nesting deeper than 1,000 levels, where
the pure-Python scanner takes quadratic time). Every problem is a
:class:`YamlProblem` with the line and the path of the field (``rules[0].action``);
each caller turns it into its own error code. ``yaml`` is imported when a file
is read, never at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import yaml

__all__ = ["ALIAS_PROBLEM", "DIRECTIVE_PROBLEM", "TAG_PROBLEM", "YamlProblem", "compose", "load"]

ALIAS_PROBLEM = "anchors ('&name') and aliases ('*name') are not supported"
TAG_PROBLEM = "explicit tags ('!!str', '!name') are not supported"
DIRECTIVE_PROBLEM = "directives ('%YAML', '%TAG') are not supported"


class YamlProblem(Exception):
    """What is wrong, where: ``line`` (1-based, None when unknown), ``path`` (the
    field, ``""`` at the top), ``key`` (the repeated key of a duplicate) and
    ``alias`` (an anchor or alias was involved: an unquoted value starting with
    ``*`` or ``&`` is one)."""

    def __init__(
        self,
        line: int | None,
        path: str,
        message: str,
        *,
        key: str | None = None,
        alias: bool = False,
    ) -> None:
        super().__init__(message)
        self.line = line
        self.path = path
        self.message = message
        self.key = key
        self.alias = alias


def _loader() -> type[yaml.SafeLoader]:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def compose(text: str | bytes) -> yaml.Node | None:
    """The node tree of a single YAML document (None for an empty one), refusing
    anchors, aliases, merge keys and duplicate keys."""
    import yaml

    loader = _loader()
    try:
        for event in yaml.parse(text, Loader=loader):
            anchor = getattr(event, "anchor", None)
            if isinstance(event, yaml.AliasEvent) or anchor is not None:
                sigil = "*" if isinstance(event, yaml.AliasEvent) else "&"
                what = f" ({sigil}{str(anchor or '')[:40]})"
                raise YamlProblem(_line(event.start_mark), "", ALIAS_PROBLEM + what, alias=True)
            explicit = getattr(event, "tag", None)
            if explicit is not None:
                tag = str(explicit).replace("tag:yaml.org,2002:", "!!")[:40]
                raise YamlProblem(
                    _line(event.start_mark),
                    "",
                    f"{TAG_PROBLEM} ({tag}); write the value plainly (quote it to make it "
                    "a string)",
                )
            if isinstance(event, yaml.DocumentStartEvent) and (
                event.version is not None or event.tags
            ):
                raise YamlProblem(_line(event.start_mark), "", DIRECTIVE_PROBLEM)
        root = yaml.compose(text, Loader=loader)
        if root is not None:
            _check(root, "")
        return root
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = (e.problem or e.context or "syntax error").strip()
        alias = any(w in f"{e.context or ''} {problem}" for w in ("alias", "anchor"))
        raise YamlProblem(_line(mark), "", f"not valid YAML: {problem}", alias=alias) from e
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise YamlProblem(None, "", f"not valid YAML: {first}") from e
    except RecursionError as e:
        raise YamlProblem(None, "", "nested too deeply") from e


def load(text: str | bytes) -> object:
    """The document as plain data (dict, list, str, int, float, bool, None, and the
    safe loader's dates and bytes), read by :func:`compose`'s rules."""
    import yaml

    root = compose(text)
    if root is None:
        return None
    try:
        return yaml.SafeLoader("").construct_document(root)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = (e.problem or e.context or "cannot be read").strip()
        raise YamlProblem(_line(mark), "", f"not valid YAML: {problem}") from e
    except (yaml.YAMLError, TypeError) as e:  # an unhashable key, e.g. a list
        raise YamlProblem(None, "", f"not valid YAML: {str(e).splitlines()[0]}") from e
    except RecursionError as e:
        raise YamlProblem(None, "", "nested too deeply") from e


def _line(mark: object) -> int | None:
    """The 1-based line of a PyYAML mark (either of its two Mark classes)."""
    line = getattr(mark, "line", None)
    return line + 1 if isinstance(line, int) else None


def _check(node: yaml.Node, path: str) -> None:
    import yaml

    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check(item, f"{path}[{i}]")
    elif isinstance(node, yaml.MappingNode):
        first: dict[str, int | None] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag == "tag:yaml.org,2002:merge":
                raise YamlProblem(
                    _line(key.start_mark), path, "merge keys ('<<') are not supported"
                )
            if not isinstance(key, yaml.ScalarNode):
                _check(key, path)  # a complex key: the caller's schema refuses it
                _check(value, path)
                continue
            name = str(key.value)
            sub = f"{path}.{name}" if path else name
            label = f"{key.tag}\0{name}"
            if label in first:
                raise YamlProblem(
                    _line(key.start_mark),
                    sub,
                    f"appears twice (first at line {first[label]}); YAML would silently keep "
                    "the last one",
                    key=name,
                )
            first[label] = _line(key.start_mark)
            _check(value, sub)
