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

One identity per repository (docs/pinning.md "Names"): on top of Docker's
normalisation, :func:`canonical_domain` folds the spellings of one registry
that Docker keeps apart but that reach the same registry and the same
repository (host case, ``:443``, a port with leading zeros, IPv6 spellings,
the Docker Hub host names ``index.docker.io`` / ``registry-1.docker.io`` /
``registry.hub.docker.com``), and refuses host spellings whose meaning
depends on the resolver (numeric hosts that are not a canonical IPv4
address, IPv4-mapped IPv6, a trailing dot). Every decision keyed on a name
(pins, signer pins, policy rules, state, trust-dir and cache paths, the
webhook cache, audit's key index) uses :func:`identity` of the name.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

from trustcheck.core.record import FrozenRecord
from trustcheck.errors import UsageError

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "MAX_REFERENCE_LENGTH",
    "MAX_REPOSITORY_PATH_LENGTH",
    "ImageRef",
    "canonical_domain",
    "identity",
    "parse_reference",
    "parse_repository_name",
]

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
#: Host names that serve Docker Hub's registry: all folded to ``docker.io``.
DOCKER_HUB_ALIASES = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
#: The port an https registry uses when none is given: ``host:443`` is ``host``.
DEFAULT_HTTPS_PORT = 443
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
# "foo_bar.com", is still accepted when it is a valid path component. One
# pattern gives the name and its split into domain and path (a domain holds no
# '/', so the split of a matched name is the one a separate fullmatch of the
# name would find): one compilation per process instead of two.
_REFERENCE_RE = _LazyPattern(
    r"(?P<name>(?:(?P<domain>" + _DOMAIN + r")/)?(?P<path>" + _REMOTE_NAME + r"))"
    r"(?::(?P<tag>" + _TAG + r"))?"
    r"(?:@(?P<digest>" + _DIGEST + r"))?"
)
_DOMAIN_RE = _LazyPattern(_DOMAIN)
_PATH_COMPONENT_RE = _LazyPattern(_PATH_COMPONENT)
_TAG_RE = _LazyPattern(_TAG)
_DIGEST_RE = _LazyPattern(_DIGEST)
_IDENTIFIER_RE = _LazyPattern(r"[a-f0-9]{64}")
_SHA256_HEX_RE = _LazyPattern(r"[a-f0-9]{64}")
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
#: a host label that inet_aton reads as a number (decimal, octal, 0x hex)
_NUMERIC_LABEL_RE = _LazyPattern(r"0x[0-9a-f]*|[0-9]+")


class ImageRef(FrozenRecord):
    """A normalised image reference.

    ``name`` is the fully qualified repository name, which is also the GUN.
    ``tag`` is ``"latest"`` when the input had neither tag nor digest.
    ``digest`` is ``"sha256:<64 lowercase hex>"`` or ``None``.
    """

    __slots__ = ("digest", "name", "tag")
    name: str
    tag: str | None
    digest: str | None

    def __init__(self, name: str, tag: str | None, digest: str | None) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "tag", tag)
        object.__setattr__(self, "digest", digest)

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


class AmbiguousDomain(ValueError):
    """A registry spelling refused because its meaning depends on the resolver."""


def _split_port(domain: str) -> tuple[str, str | None]:
    if domain.startswith("["):
        host, _, rest = domain.partition("]")
        host += "]"
        return host, (rest[1:] if rest.startswith(":") else None)
    host, sep, port = domain.rpartition(":")
    return (host, port) if sep else (domain, None)


def canonical_domain(domain: str) -> str:
    """The one spelling of a registry ``host[:port]`` (grammar-valid input).

    Folded: letter case; ``:443`` (the https default) and leading zeros of a
    port; an IPv6 address to its compressed lower-case form; the Docker Hub
    host names (:data:`DOCKER_HUB_ALIASES`) to ``docker.io``.

    Refused with :class:`AmbiguousDomain` (a ``ValueError``): a single-label
    host without a port other than ``localhost`` (Docker takes ``Docker/x`` as
    the registry ``Docker`` only for its capital letter; ``docker/x`` is a Docker
    Hub repository, so no spelling of it is safe); port 0 or above
    65535; a host whose labels are all numbers (decimal, octal or ``0x`` hex)
    that is not a canonical dotted-quad IPv4 address (``127.1``,
    ``127.000.000.001``, ``0x7f.0.0.1``: resolvers disagree on what they
    mean); an IPv4-mapped or -compatible IPv6 address (another spelling of an
    IPv4 registry); an invalid IPv6 address.
    """
    host, port = _split_port(domain.lower())
    if port is None and "." not in host and host != "localhost" and not host.startswith("["):
        raise AmbiguousDomain(
            "it is taken as a registry only because of its upper-case letters, and in lower "
            "case it would name a Docker Hub namespace; write the registry's full host name "
            "or host:port"
        )
    if port is not None:
        if not port.isdigit():
            raise AmbiguousDomain(f"port {port[:20]!r} is not a number")
        number = int(port)
        if not 0 < number <= 65535:
            raise AmbiguousDomain(f"port {port[:20]} is not between 1 and 65535")
        port = None if number == DEFAULT_HTTPS_PORT else str(number)
    if host.startswith("["):
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise AmbiguousDomain(f"{host[:60]} is not an IPv6 address") from None
        if address.ipv4_mapped is not None or (
            address.packed[:12] == bytes(12) and int(address) > 1
        ):
            raise AmbiguousDomain(
                f"{host[:60]} is an IPv4 address written as IPv6; write the IPv4 address"
            )
        host = f"[{address.compressed}]"
    elif host and all(_NUMERIC_LABEL_RE.fullmatch(label) for label in host.split(".")):
        try:
            canonical = str(ipaddress.IPv4Address(host))
        except ValueError:
            canonical = ""
        if canonical != host:
            raise AmbiguousDomain(
                f"{host[:60]!r} is not a dotted-quad IPv4 address without leading zeros; "
                "resolvers read such numeric hosts differently"
            )
    if host in DOCKER_HUB_ALIASES:
        host = DEFAULT_DOMAIN
    return host if port is None else f"{host}:{port}"


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
    if _split_port(domain)[0].endswith("."):
        return _fail(
            text,
            f"registry {_show(domain)} ends with '.': a trailing dot is another spelling of "
            "the same host; write the host without it",
        )
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
    path = match.group("path")
    domain_part: str | None = match.group("domain")
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
    if domain_part is not None:
        try:
            host = canonical_domain(domain_part)
        except AmbiguousDomain as e:
            raise _fail(text, f"registry {_show(domain_part)}: {e}") from None
        if host == DEFAULT_DOMAIN and "/" not in path:
            path = OFFICIAL_REPO_PREFIX + path
        name = f"{host}/{path}"
    return ImageRef(name=name, tag=tag, digest=digest)


def parse_repository_name(text: str) -> str:
    """The identity of a repository name given without tag or digest (a pin key,
    a policy name): raises ``invalid-reference`` for anything else."""
    if "@" in text or ":" in text.rpartition("/")[2]:
        raise _fail(text, "a repository name has no tag or digest")
    return parse_reference(text).name


@lru_cache(maxsize=4096)
def identity(name: str) -> str:
    """The one identity of a repository name; every keyed decision calls this.

    A name the reference grammar accepts is normalised as
    :func:`parse_reference` does (Docker's rules, then
    :func:`canonical_domain`); an already normal name is returned unchanged.
    A name the grammar refuses can never come from an image reference, has no
    aliases and is its own identity (a notary GUN may be any string). So is a
    name without a registry (``a/b``): every GUN trustcheck derives from an
    image reference is fully qualified, and user input that may be a familiar
    name (pin keys, policy patterns) goes through :func:`parse_repository_name`.
    """
    first, slash, _ = name.partition("/")
    if not slash or not (
        first == "localhost" or "." in first or ":" in first or first.lower() != first
    ):
        return name
    try:
        return parse_repository_name(name)
    except UsageError:
        return name
