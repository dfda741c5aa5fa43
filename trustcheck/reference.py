"""Docker image references: grammar, normalisation and the GUN.

This follows the behaviour of ``ParseNormalizedNamed`` + ``TagNameOnly`` in
``github.com/distribution/reference`` v0.6 (the version the Docker 28 CLI
uses), with two deliberate restrictions for Docker Content Trust:

* the only digest accepted is ``sha256:<64 lowercase hex>`` (Docker Content
  Trust signs sha256 manifest digests only);
* inputs longer than :data:`MAX_REFERENCE_LENGTH` characters are refused
  before any regular expression runs.

Normalisation (what Docker does):

* The first ``/``-separated component is a registry domain when it is
  ``localhost``, contains ``.`` or ``:``, or contains an upper-case letter.
  Otherwise the registry is ``docker.io``.  A reference with no ``/`` always
  lives on ``docker.io`` (``localhost:5000`` alone is the image
  ``docker.io/library/localhost`` with tag ``5000``).
* ``index.docker.io`` is rewritten to ``docker.io``; a single-component
  ``docker.io`` repository gets the ``library/`` prefix.
* ``latest`` is added only when neither a tag nor a digest was given.

The GUN (trust collection name) is the normalised repository name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trustcheck.errors import UsageError

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "MAX_REFERENCE_LENGTH",
    "MAX_REPOSITORY_PATH_LENGTH",
    "ImageRef",
    "parse_reference",
]

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"

#: Longest repository path (the name without its domain), as in
#: distribution/reference v0.6 ``RepositoryNameTotalLengthMax``.
MAX_REPOSITORY_PATH_LENGTH = 255

#: Longest input accepted at all.  A valid Docker Content Trust reference has
#: a path of at most 255 characters, a tag of at most 128 and a 71-character
#: digest; this leaves ample room for the domain.
MAX_REFERENCE_LENGTH = 1024

_EXPECTED = (
    "expected NAME[:TAG][@sha256:DIGEST], e.g. alpine:3.19 or registry.example.com/org/app:v1"
)

# --- the grammar (same language as distribution/reference's regexp.go) -------
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = _ALNUM + r"(?:" + _SEPARATOR + _ALNUM + r")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_DOMAIN = r"(?:" + _DOMAIN_NAME + r"|" + _IPV6 + r")(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"


class _LazyPattern:
    """A regular expression compiled on first use (keeps import cheap)."""

    __slots__ = ("_compiled", "_source")

    def __init__(self, source: str) -> None:
        self._source = source
        self._compiled: re.Pattern[str] | None = None

    def fullmatch(self, text: str) -> re.Match[str] | None:
        if self._compiled is None:
            self._compiled = re.compile(self._source)
        return self._compiled.fullmatch(text)


# As in Docker, the domain is optional in the grammar: a first component that
# was taken as a registry (it has a '.') but is not a valid host name, such as
# "foo_bar.com", is still accepted when it is a valid path component.
_REFERENCE_RE = _LazyPattern(
    r"(?P<name>(?:" + _DOMAIN + r"/)?" + _REMOTE_NAME + r")"
    r"(?::(?P<tag>" + _TAG + r"))?"
    r"(?:@(?P<digest>" + _DIGEST + r"))?"
)
_DOMAIN_RE = _LazyPattern(_DOMAIN)
_NAME_SPLIT_RE = _LazyPattern(r"(?:(?P<domain>" + _DOMAIN + r")/)?(?P<path>" + _REMOTE_NAME + r")")
_PATH_COMPONENT_RE = _LazyPattern(_PATH_COMPONENT)
_TAG_RE = _LazyPattern(_TAG)
_DIGEST_RE = _LazyPattern(_DIGEST)
_IDENTIFIER_RE = _LazyPattern(r"[a-f0-9]{64}")
_SHA256_HEX_RE = _LazyPattern(r"[a-f0-9]{64}")
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A normalised image reference.

    ``name`` is the fully qualified repository name, which is also the GUN.
    ``tag`` is ``"latest"`` when the input had neither tag nor digest.
    ``digest`` is ``"sha256:<64 lowercase hex>"`` or ``None``.
    """

    name: str
    tag: str | None
    digest: str | None

    @property
    def gun(self) -> str:
        """The Notary globally unique name of the trust collection."""
        return self.name

    @property
    def domain(self) -> str:
        """The registry part of the name, e.g. ``docker.io`` or ``localhost:5000``."""
        return self.name.split("/", 1)[0]

    @property
    def path(self) -> str:
        """The repository path without the registry, e.g. ``library/alpine``."""
        return self.name.split("/", 1)[1]

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += ":" + self.tag
        if self.digest is not None:
            text += "@" + self.digest
        return text


def _show(text: str, limit: int = 80) -> str:
    """Render user input safely on one line (escape controls, shorten)."""
    shown = text if len(text) <= limit else text[: limit - 3] + "..."
    return repr(shown)


def _fail(text: str, reason: str) -> UsageError:
    return UsageError(
        "invalid-reference", f"invalid image reference {_show(text)}: {reason} ({_EXPECTED})"
    )


def _split_docker_domain(text: str) -> tuple[str, str]:
    """Split into (domain, remainder) the way Docker's splitDockerDomain does."""
    first, sep, rest = text.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + text
    if first == "localhost":
        domain, remainder = first, rest
    elif first == LEGACY_DEFAULT_DOMAIN:
        domain, remainder = DEFAULT_DOMAIN, rest
    elif ("." in first or ":" in first) or first.lower() != first:
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_DOMAIN, text
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def _precheck(text: str) -> None:
    """Refuse the things no reference may contain, with a precise reason."""
    if text == "":
        raise _fail(text, "it is empty")
    if len(text) > MAX_REFERENCE_LENGTH:
        raise _fail(text, f"it is longer than {MAX_REFERENCE_LENGTH} characters")
    if "\x00" in text:
        raise _fail(text, "it contains a NUL byte")
    if any(ch.isspace() for ch in text):
        raise _fail(text, "it contains whitespace")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise _fail(text, "it contains a control character")
    if "\\" in text:
        raise _fail(text, "it contains a backslash")
    if not text.isascii():
        raise _fail(text, "it contains non-ASCII characters")
    if "://" in text:
        raise _fail(text, "it is a URL; give the image name without a scheme")
    if _IDENTIFIER_RE.fullmatch(text):
        raise _fail(text, "a bare 64-character hex string is an image ID, not a repository name")


def _diagnose(text: str, domain: str, remainder: str) -> UsageError:
    """Explain why ``domain/remainder`` does not match the grammar."""
    name_tag, at, digest = remainder.partition("@")
    if at:
        if "@" in digest:
            return _fail(text, "it contains more than one '@'")
        if not digest:
            return _fail(text, "the digest after '@' is empty")
        if not _DIGEST_RE.fullmatch(digest):
            return _fail(
                text, f"digest {_show(digest)} is not ALGORITHM:HEX (sha256:<64 hex digits>)"
            )
    path, tag = name_tag, None
    colon = name_tag.rfind(":")
    if colon != -1:
        path, tag = name_tag[:colon], name_tag[colon + 1 :]
    if ":" in path:
        return _fail(
            text,
            "it contains ':' inside the repository path "
            "(a registry host[:port] must be followed by /REPOSITORY)",
        )
    if tag is not None and not _TAG_RE.fullmatch(tag):
        if tag == "":
            return _fail(text, "the tag after ':' is empty")
        return _fail(
            text,
            f"tag {_show(tag)} is invalid (letters, digits, '_', '.', '-'; "
            "must not start with '.' or '-'; at most 128 characters)",
        )
    if domain in (".", ".."):
        return _fail(text, f"the repository path has a {domain!r} component")
    if not _DOMAIN_RE.fullmatch(domain) and not _PATH_COMPONENT_RE.fullmatch(domain):
        return _fail(
            text, f"registry {_show(domain)} is not a valid host name[:port] or [IPv6][:port]"
        )
    for component in path.split("/"):
        if component == "":
            return _fail(
                text,
                "the repository path has an empty component ('//', or a leading or trailing '/')",
            )
        if component in (".", ".."):
            return _fail(text, f"the repository path has a {component!r} component")
        if component.lower() != component:
            return _fail(text, "repository name must be lowercase")
        if not _PATH_COMPONENT_RE.fullmatch(component):
            return _fail(
                text,
                f"path component {_show(component)} is invalid (lowercase letters and digits, "
                "separated by single '.', '_' or '__', or by dashes)",
            )
    return _fail(text, "it does not follow Docker's reference grammar")


def _check_digest(text: str, digest: str) -> None:
    algorithm, _, hex_part = digest.partition(":")
    if algorithm != "sha256":
        if algorithm.lower() == "sha256":
            raise _fail(text, "digest algorithm must be written in lowercase ('sha256')")
        if algorithm in _DIGEST_HEX_LENGTHS:
            raise _fail(text, f"Docker Content Trust signs sha256 digests only, not {algorithm}")
        raise _fail(
            text, f"unsupported digest algorithm {_show(algorithm)}; only sha256 is accepted"
        )
    if len(hex_part) != 64:
        raise _fail(text, f"a sha256 digest has 64 hex digits, this one has {len(hex_part)}")
    if not _SHA256_HEX_RE.fullmatch(hex_part):
        raise _fail(text, "the digest's hex digits must be lowercase")


def parse_reference(text: str) -> ImageRef:
    """Parse and normalise a Docker image reference.

    Raises :class:`~trustcheck.errors.UsageError` with code
    ``invalid-reference`` and a one-line reason when ``text`` is not a valid
    reference.
    """
    _precheck(text)
    domain, remainder = _split_docker_domain(text)
    # Docker checks case on the part before the first ':' of the remainder.
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise _fail(text, "repository name must be lowercase")
    match = _REFERENCE_RE.fullmatch(domain + "/" + remainder)
    if match is None:
        raise _diagnose(text, domain, remainder)
    name = match.group("name")
    # Docker measures the path without the domain; when the first component is
    # not a valid host name, the whole name counts as the path.
    split = _NAME_SPLIT_RE.fullmatch(name)
    path = split.group("path") if split is not None else name
    if len(path) > MAX_REPOSITORY_PATH_LENGTH:
        raise _fail(
            text,
            f"repository path is {len(path)} characters, more than {MAX_REPOSITORY_PATH_LENGTH}",
        )
    tag: str | None = match.group("tag")
    digest: str | None = match.group("digest")
    if digest is not None:
        _check_digest(text, digest)
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return ImageRef(name=name, tag=tag, digest=digest)
