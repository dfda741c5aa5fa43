"""Credentials and token bookkeeping for Notary servers and registries.

Where credentials come from, in Docker's order (``docker/cli`` config file and
credential-store logic):

1. ``--username`` with a password the CLI read from stdin or an environment
   variable (never from argv);
2. ``credHelpers[<registry>]`` in ``config.json`` -> ``docker-credential-<name> get``;
3. ``credsStore`` -> ``docker-credential-<name> get``;
4. ``auths[<registry>]``: ``auth`` (base64 ``user:password``), or
   ``username``/``password``, or ``identitytoken`` (an OAuth2 refresh token).

The registry key is Docker's: ``https://index.docker.io/v1/`` for Docker Hub,
``host[:port]`` otherwise; ``auths`` keys written as URLs
(``https://host/v1/``) match by host name, as Docker matches them.

Also here: the ``WWW-Authenticate`` challenge parser, the token response
parser (``token`` / ``access_token``, ``expires_in`` with a 60 s minimum) and a
thread-safe in-memory token cache.  Secrets never appear in ``repr`` or in
error messages.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from trustcheck.errors import ErrorCode, NotTrusted, UsageError

__all__ = [
    "DOCKER_HUB_AUTH_KEY",
    "MIN_TOKEN_LIFETIME",
    "Challenge",
    "Credentials",
    "TokenCache",
    "credentials_key",
    "docker_config_dir",
    "load_docker_config",
    "parse_challenges",
    "parse_token_response",
    "resolve_credentials",
    "run_credential_helper",
]

#: The key Docker stores Docker Hub credentials under.
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
#: Tokens are reused until ``expires_in`` (at least this long, as
#: docker/distribution's token handler assumes) minus a small margin.
MIN_TOKEN_LIFETIME = 60
#: ... and never longer than a day, whatever the service says.
MAX_TOKEN_LIFETIME = 86400
_TOKEN_MARGIN = 5.0
_MAX_CONFIG = 16 << 20
_MAX_HELPER_OUTPUT = 1 << 20
_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: What credential helpers print when they hold nothing for a server
#: (docker-credential-helpers ``credentials.errCredentialsNotFound``).
_NOT_FOUND = "credentials not found in native keychain"


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class Credentials:
    """A user name and secret for one registry (``repr`` hides the secrets)."""

    username: str
    password: str = field(repr=False)
    #: an OAuth2 refresh token (Docker's ``identitytoken``); used instead of the password
    identity_token: str | None = field(default=None, repr=False)
    #: where they came from, for messages ("--username", "config.json auths", ...)
    source: str = ""

    def describe(self) -> str:
        who = f"user {self.username!r}" if self.username else "an identity token"
        return f"{who} from {self.source}" if self.source else who


def credentials_key(registry_domain: str) -> str:
    """Docker's credential key for a registry: Docker Hub's URL, else ``host[:port]``."""
    if registry_domain in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        return DOCKER_HUB_AUTH_KEY
    return registry_domain


def _hostname(key: str) -> str:
    """Docker's ``ConvertToHostname``: drop the scheme and any path."""
    stripped = key
    for prefix in ("http://", "https://"):
        if stripped.startswith(prefix):
            stripped = stripped[len(prefix) :]
            break
    return stripped.split("/", 1)[0]


def docker_config_dir(explicit: Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """``explicit``, else ``$DOCKER_CONFIG``, else ``~/.docker``."""
    if explicit is not None:
        return Path(explicit)
    environ: Mapping[str, str] = os.environ if env is None else env
    if environ.get("DOCKER_CONFIG"):
        return Path(environ["DOCKER_CONFIG"])
    home = environ.get("HOME")
    return (Path(home) if home else Path.home()) / ".docker"


def _config_error(path: Path, why: str) -> UsageError:
    return UsageError(ErrorCode.DOCKER_CONFIG_INVALID, f"docker config {path} is unusable: {why}")


def load_docker_config(config_dir: Path) -> dict[str, object] | None:
    """The parsed ``config.json`` of ``config_dir``; None when there is none."""
    path = config_dir / "config.json"
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_CONFIG + 1)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise _config_error(path, "it is a directory") from None
    except OSError as e:
        raise _config_error(path, e.strerror or type(e).__name__) from e
    if len(data) > _MAX_CONFIG:
        raise _config_error(path, f"larger than {_MAX_CONFIG} bytes")
    if not data.strip():
        return None  # Docker treats an empty file as no configuration
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise _config_error(path, f"not valid JSON ({e})") from e
    if not isinstance(doc, dict):
        raise _config_error(path, "the top level is not a JSON object")
    return doc


def _str_map(doc: Mapping[str, object], name: str, path: Path) -> dict[str, object]:
    value = doc.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _config_error(path, f"{name!r} is not a JSON object")
    return value


def _lookup(mapping: Mapping[str, object], key: str) -> tuple[str, object] | None:
    """Exact key first, then any key with the same host name (Docker's rule)."""
    if key in mapping:
        return key, mapping[key]
    host = _hostname(key)
    for k in sorted(mapping):
        if _hostname(k) == host:
            return k, mapping[k]
    return None


def _from_auths_entry(entry: object, key: str, path: Path) -> Credentials | None:
    if not isinstance(entry, dict):
        raise _config_error(path, f"auths[{key!r}] is not a JSON object")
    where = f"{path} auths[{key!r}]"
    identity = entry.get("identitytoken")
    if identity is not None and not isinstance(identity, str):
        raise _config_error(path, f"auths[{key!r}].identitytoken is not a string")
    username = entry.get("username")
    password = entry.get("password")
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise _config_error(
                path, f"auths[{key!r}].auth is not base64 of user:password"
            ) from None
        user, sep, secret = decoded.partition(":")
        if not sep:
            raise _config_error(path, f"auths[{key!r}].auth does not hold user:password")
        username, password = user, secret
    if username is not None and not isinstance(username, str):
        raise _config_error(path, f"auths[{key!r}].username is not a string")
    if password is not None and not isinstance(password, str):
        raise _config_error(path, f"auths[{key!r}].password is not a string")
    if identity:
        return Credentials(username or "", "", identity_token=identity, source=where)
    if username:
        return Credentials(username, password or "", source=where)
    return None


def run_credential_helper(
    name: str,
    server: str,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> Credentials | None:
    """``docker-credential-<name> get`` with ``server`` on stdin.

    Returns None when the helper holds no credentials for ``server``; raises
    ``credential-helper-failed`` when it is missing, fails or answers nonsense.
    """
    if not _HELPER_NAME.fullmatch(name):
        raise UsageError(
            ErrorCode.CREDENTIAL_HELPER_FAILED,
            f"credential helper name {name!r} in the docker config is not a plain program name",
        )
    program = f"docker-credential-{name}"
    environ = dict(os.environ if env is None else env)
    binary = shutil.which(program, path=environ.get("PATH"))
    if binary is None:
        raise UsageError(
            ErrorCode.CREDENTIAL_HELPER_FAILED,
            f"{program} (configured in the docker config for {server}) is not on PATH",
        )
    try:
        # its own process group, so that a hung helper and its children can be
        # killed together on timeout
        proc = subprocess.Popen(
            [binary, "get"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environ,
            start_new_session=True,
        )
    except OSError as e:
        raise UsageError(
            ErrorCode.CREDENTIAL_HELPER_FAILED, f"cannot run {program}: {e.strerror or e}"
        ) from e
    try:
        stdout, stderr = proc.communicate(server.encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise UsageError(
            ErrorCode.CREDENTIAL_HELPER_FAILED, f"{program} get did not answer within {timeout:g} s"
        ) from None
    out = stdout[:_MAX_HELPER_OUTPUT].decode("utf-8", "replace")
    if proc.returncode != 0:
        said = (out.strip() or stderr.decode("utf-8", "replace").strip()).splitlines()
        first = said[0][:200] if said else f"exit status {proc.returncode}"
        if _NOT_FOUND in first.lower():
            return None
        raise UsageError("credential-helper-failed", f"{program} get failed for {server}: {first}")
    try:
        doc = json.loads(out)
    except (ValueError, RecursionError):
        raise UsageError(
            ErrorCode.CREDENTIAL_HELPER_FAILED, f"{program} get printed something that is not JSON"
        ) from None
    if not isinstance(doc, dict):
        raise UsageError("credential-helper-failed", f"{program} get did not print a JSON object")
    username, secret = doc.get("Username", ""), doc.get("Secret", "")
    if not isinstance(username, str) or not isinstance(secret, str):
        raise UsageError(
            "credential-helper-failed", f"{program} get printed a non-string Username or Secret"
        )
    if not secret:
        return None
    source = f"credential helper {program}"
    if username == "<token>":  # docker-credential-helpers: an identity token
        return Credentials("", "", identity_token=secret, source=source)
    return Credentials(username, secret, source=source)


def resolve_credentials(
    key: str,
    *,
    username: str | None = None,
    password: str | None = None,
    config_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    helper_timeout: float = 10.0,
) -> Credentials | None:
    """The credentials for registry ``key`` (see :func:`credentials_key`), or None."""
    if username is not None or password is not None:
        if not username:
            raise UsageError(
                ErrorCode.INVALID_ARGUMENT, "a password was given without a user name (--username)"
            )
        if password is None:
            raise UsageError(
                ErrorCode.INVALID_ARGUMENT,
                f"--username {username!r} needs a password (from stdin or an environment "
                "variable; never on the command line)",
            )
        return Credentials(username, password, source="--username")
    directory = docker_config_dir(config_dir, env)
    doc = load_docker_config(directory)
    if doc is None:
        return None
    path = directory / "config.json"
    helpers = _str_map(doc, "credHelpers", path)
    found = _lookup(helpers, key)
    helper: object = found[1] if found is not None else doc.get("credsStore")
    if helper is not None and helper != "":
        if not isinstance(helper, str):
            raise _config_error(path, "a credential helper name is not a string")
        return run_credential_helper(helper, key, env=env, timeout=helper_timeout)
    auths = _str_map(doc, "auths", path)
    entry = _lookup(auths, key)
    if entry is None:
        return None
    return _from_auths_entry(entry[1], entry[0], path)


# --------------------------------------------------------------------------- challenges


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: scheme (lower case) and parameters."""

    scheme: str
    params: Mapping[str, str]

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")


_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def token(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _TOKEN_CHARS:
            self.pos += 1
        return self.text[start : self.pos]

    def bare(self) -> str:
        """An unquoted value, leniently: up to the next comma or blank."""
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ", \t":
            self.pos += 1
        return self.text[start : self.pos]

    def quoted(self) -> str | None:
        if self.peek() != '"':
            return None
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            self.pos += 1
            if ch == "\\" and self.pos < len(self.text):
                out.append(self.text[self.pos])
                self.pos += 1
            elif ch == '"':
                return "".join(out)
            else:
                out.append(ch)
        return None  # unterminated


def parse_challenges(headers: list[str]) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` header values (RFC 7235 auth-params).

    Several challenges may share one header, separated by commas; a malformed
    remainder ends the parse of that header (what was understood is kept).
    """
    found: list[Challenge] = []
    for header in headers:
        s = _Scanner(header)
        scheme: str | None = None
        params: dict[str, str] = {}
        while True:
            s.skip_ws()
            while s.peek() == ",":
                s.pos += 1
                s.skip_ws()
            if s.peek() == "":
                break
            start = s.pos
            name = s.token()
            if not name:
                break
            s.skip_ws()
            if s.peek() == "=" and scheme is not None:
                s.pos += 1
                s.skip_ws()
                value = s.quoted()
                if value is None:
                    value = s.bare()
                params[name.lower()] = value
                continue
            if s.peek() == "=" and scheme is None:
                s.pos = start
                break
            # a new challenge starts
            if scheme is not None:
                found.append(Challenge(scheme, dict(params)))
            scheme, params = name.lower(), {}
        if scheme is not None:
            found.append(Challenge(scheme, dict(params)))
    return found


# --------------------------------------------------------------------------- tokens


def parse_token_response(body: bytes, realm: str) -> tuple[str, int]:
    """``(token, lifetime in seconds)`` from a token service's JSON answer.

    ``access_token`` wins over ``token`` (OAuth2 answers carry both);
    ``expires_in`` below 60 s (or absent) counts as 60 s.
    """
    try:
        doc = json.loads(body, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise NotTrusted(
            ErrorCode.AUTH_FAILED, f"the token service {realm} did not answer with JSON"
        ) from None
    if not isinstance(doc, dict):
        raise NotTrusted("auth-failed", f"the token service {realm} did not answer a JSON object")
    token: object = doc.get("access_token") or doc.get("token")
    if not isinstance(token, str) or not token:
        raise NotTrusted(
            "auth-failed", f"the token service {realm} answered without a token or access_token"
        )
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in token):
        raise NotTrusted(
            "auth-failed", f"the token service {realm} answered a token with invalid characters"
        )
    lifetime = doc.get("expires_in")
    if lifetime is None:
        seconds = 0
    elif (
        isinstance(lifetime, int)
        and not isinstance(lifetime, bool)
        and _INT64_MIN <= lifetime <= _INT64_MAX
    ):
        seconds = lifetime
    else:
        # docker/distribution decodes expires_in into a Go int: a float, a
        # string or a number outside int64 fails the whole token answer there
        shown = (
            json.dumps(lifetime)[:40]
            if isinstance(lifetime, int | float)
            else type(lifetime).__name__
        )
        raise NotTrusted(
            ErrorCode.AUTH_FAILED,
            f"the token service {realm} answered expires_in {shown}, not an integer number "
            "of seconds (Docker refuses such a token answer)",
        )
    return token, min(max(seconds, MIN_TOKEN_LIFETIME), MAX_TOKEN_LIFETIME)


_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def _no_constant(name: str) -> object:
    """``NaN``/``Infinity`` are not JSON (Go's decoder refuses them)."""
    raise ValueError(f"{name} is not JSON")


@dataclass
class _Entry:
    token: str = field(repr=False)
    expires: float


class TokenCache:
    """Bearer tokens by (realm, service, scope, identity), reused until they expire.

    In memory only (tokens are never written to disk); safe to share between threads.
    """

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, ...], _Entry] = {}
        self._clock: Callable[[], float] = clock if clock is not None else time.monotonic

    def _now(self) -> float:
        return self._clock()

    def get(self, key: tuple[str, ...]) -> str | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self._now() >= entry.expires:
                del self._entries[key]
                return None
            return entry.token

    def put(self, key: tuple[str, ...], token: str, lifetime: int) -> None:
        with self._lock:
            margin = min(_TOKEN_MARGIN, lifetime / 4)
            self._entries[key] = _Entry(token, self._now() + lifetime - margin)

    def drop(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
