"""The one pattern language: image-name patterns for policy rules, pin keys and
webhook exemptions, in three explicit modes.

Every pattern anywhere in trustcheck is matched by this module. The three
modes exist because the three documents define ``*`` differently, each for a
reason; all three anchor the whole string (no partial matches):

``path`` (policy rules, docs/policy.md) -- :class:`Pattern`
    A glob over a normalised repository name ``domain/path``. ``*`` and ``?``
    never cross a ``/`` (one path component, or part of one); ``**`` matches any
    run of characters, ``/`` included. Everything else is literal.

``prefix`` (pin files, docs/pinning.md) -- :func:`prefix_matches`
    notary's trust-pinning wildcard (``trustpinning/trustpin.go``): a key is a
    GUN, or a prefix ending in one ``*`` that matches every GUN starting with
    the prefix, at any depth (``registry.example.com/team/*`` matches
    ``registry.example.com/team/a/b``). ``*`` anywhere else is not allowed. The
    longer prefix is the more specific (:func:`prefix_specificity`).

``shell`` (webhook exemptions, docs/webhook.md) -- :func:`shell_matches`
    Kubernetes namespace, kind and object names (which never contain ``/``),
    shell globs as :func:`fnmatch.fnmatchcase` reads them: ``*``, ``?``,
    ``[seq]``, ``[!seq]``; case-sensitive.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from trustcheck.core.reference import (
    AmbiguousDomain,
    ImageRef,
    canonical_domain,
    identity,
    parse_repository_name,
)
from trustcheck.errors import UsageError

__all__ = [
    "Pattern",
    "PatternMode",
    "check_namespace_pattern",
    "check_prefix",
    "globs_overlap",
    "match_name",
    "matches",
    "normalise_pattern_text",
    "normalise_prefix",
    "prefix_matches",
    "prefix_specificity",
    "shell_matches",
]

#: the three modes (see the module docstring)
PatternMode = Literal["path", "prefix", "shell"]

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

    def overlaps(self, other: Pattern) -> bool:
        """Whether some repository name matches both patterns (exact, no sampling:
        :func:`globs_overlap`)."""
        return globs_overlap(self.text, other.text)

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


def globs_overlap(a: str, b: str) -> bool:
    """Whether one string matches both ``a`` and ``b``, read as ``path``-mode globs
    (``**`` any run, ``*`` a run without ``/``, ``?`` one character but ``/``).

    Decided exactly over the pair of positions (at most ``len(a) * len(b)``
    states): from positions ``(i, j)`` a wildcard run may end (skip it), or both
    sides consume one character they can both accept.
    """
    ta, tb = list(_tokens(a)), list(_tokens(b))
    seen: set[tuple[int, int]] = set()
    todo = [(0, 0)]
    while todo:
        i, j = todo.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(ta) and j == len(tb):
            return True
        x = ta[i] if i < len(ta) else None
        y = tb[j] if j < len(tb) else None
        if x in ("*", "**"):
            todo.append((i + 1, j))
        if y in ("*", "**"):
            todo.append((i, j + 1))
        if x is None or y is None or not _one_char_in_common(x, y):
            continue
        ni = i if x in ("*", "**") else i + 1
        nj = j if y in ("*", "**") else j + 1
        if (ni, nj) != (i, j):
            todo.append((ni, nj))
    return False


def _one_char_in_common(x: str, y: str) -> bool:
    """Whether one character is accepted by both tokens (a literal character, ``?``,
    ``*``: any but ``/``; ``**``: any)."""
    if x == "**" or y == "**":
        return True  # '**' accepts whatever character the other side does
    wild_x, wild_y = x in ("?", "*"), y in ("?", "*")
    if wild_x and wild_y:
        return True
    if wild_x:
        return y != "/"
    if wild_y:
        return x != "/"
    return x == y


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


# ----------------------------------------------------------------------------- prefix mode


def prefix_matches(pattern: str, name: str) -> bool:
    """notary's pin wildcard: ``prefix*`` matches every name starting with ``prefix``
    (``/`` included); a pattern without a trailing ``*`` is an exact name."""
    if pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    return name == pattern


def check_prefix(pattern: str) -> None:
    """A prefix-mode pattern's syntax: a name, or a prefix with one ``*`` at the
    end; no whitespace or control characters. Raises ValueError with the reason."""
    body = pattern[:-1] if pattern.endswith("*") else pattern
    if not pattern or "*" in body or any(c.isspace() or ord(c) < 32 for c in pattern):
        raise ValueError(
            "must be a GUN or a prefix ending in '*' (e.g. registry.example.com/team/*)"
        )


def normalise_prefix(pattern: str) -> str:
    """A prefix-mode pattern in identity form (see
    :func:`trustcheck.local.pinfile.normalise_pattern`); raises ValueError."""
    check_prefix(pattern)
    if not pattern.endswith("*"):
        try:
            return parse_repository_name(pattern)
        except UsageError as e:
            reason = e.message.partition(": ")[2].rpartition(" (expected")[0] or e.message
            raise ValueError(
                f"is not a repository name ({reason}); such a pin can never apply"
            ) from None
    body = pattern[:-1]
    first, slash, rest = body.partition("/")
    if not slash:
        return pattern.lower()
    if first == "localhost" or "." in first or ":" in first or first.lower() != first:
        try:
            host = canonical_domain(first)
        except AmbiguousDomain as e:
            raise ValueError(f"registry {first[:60]!r}: {e}") from None
    else:
        host, rest = "docker.io", body
    return f"{host}/{rest}*"


def prefix_specificity(pattern: str) -> tuple[int, int]:
    """Sort key, larger wins: an exact name, then the longer prefix."""
    return (0 if pattern.endswith("*") else 1, len(pattern))


# ----------------------------------------------------------------------------- shell mode


_NAMESPACE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-*?")


def check_namespace_pattern(text: str) -> None:
    """A rule's ``namespaces`` entry: a Kubernetes namespace name (an RFC 1123
    label: lower-case letters, digits, ``-``, at most 63 characters) in which
    ``*`` (any run) and ``?`` (one character) may stand for parts. Matched in
    ``shell`` mode; the restricted syntax (no ``[seq]``) lets the loader tell
    exactly whether two rules' namespaces can meet (:func:`globs_overlap`).
    Raises ValueError with the reason."""
    if not text:
        raise ValueError("is empty")
    bad = sorted({c for c in text if c not in _NAMESPACE_CHARS})
    if bad:
        raise ValueError(
            f"contains {''.join(bad)[:20]!r}; a namespace pattern has lower-case letters, "
            "digits, '-' and the wildcards '*' and '?'"
        )
    if "**" in text:
        raise ValueError("contains '**'; namespaces have no '/', write '*'")
    if not any(c in _WILD for c in text) and len(text) > 63:
        raise ValueError("is longer than 63 characters; no namespace has such a name")


def shell_matches(pattern: str, name: str) -> bool:
    """A shell glob over a whole name (``*``, ``?``, ``[seq]``), case-sensitive."""
    import fnmatch

    return fnmatch.fnmatchcase(name, pattern)


def matches(mode: PatternMode, pattern: str, name: str) -> bool:
    """Whether ``name`` matches ``pattern`` read in ``mode`` (``path`` patterns are
    compiled on each call; keep a :class:`Pattern` where it repeats)."""
    if mode == "prefix":
        return prefix_matches(pattern, name)
    if mode == "shell":
        return shell_matches(pattern, name)
    return Pattern.parse(pattern).matches(name)
