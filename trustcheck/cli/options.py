"""Options and helpers shared by every CLI command (see app.py).

Command modules (``trustcheck/cli/*.py``) import these so that every
command spells an option the same way. Only ``typer`` is imported at module
level: start-up time matters.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn, TypeVar

import typer
import typer.core

from trustcheck.errors import ErrorCode

if TYPE_CHECKING:
    from collections.abc import Callable

    from trustcheck.api import Options
    from trustcheck.remote.config import RemoteConfig

#: every command (and group) takes -h as well as --help; sub-commands inherit it
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}


def _usage_metavar(self: Any, ctx: Any, *, usage: bool = False) -> str:
    """``IMAGE...`` / ``[IMAGE]...`` in usage lines, instead of typer's ``{images}...``."""
    if not usage:
        return str(_typer_metavar(self, ctx, usage=usage))
    var = self.metavar or (self.name or "").upper()
    if self.nargs != 1 and not var.endswith("..."):
        var += "..."
    return f"[{var}]" if not self.required else str(var)


_typer_metavar = typer.core.TyperArgument.make_metavar
typer.core.TyperArgument.make_metavar = _usage_metavar  # type: ignore[method-assign]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"trustcheck {version()}")
        raise typer.Exit(0)


def version() -> str:
    """The installed trustcheck version (also in the metadata of ``--json`` reports)."""
    from trustcheck import __version__

    return __version__


VersionOpt = Annotated[
    bool,
    typer.Option(
        "--version",
        help="Print the trustcheck version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
]

TrustDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--trust-dir",
        help="Docker trust dir (default: $DOCKER_CONFIG/trust, else ~/.docker/trust).",
        show_default=False,
    ),
]
AtOpt = Annotated[
    str | None,
    typer.Option("--at", help="Validation time, RFC 3339 (default: now).", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]
PinsOpt = Annotated[
    Path | None,
    typer.Option(
        "--pins",
        help="Pin file (TOML, or a notary client config). Default: "
        "$XDG_CONFIG_HOME/trustcheck/pins.toml when it exists.",
        show_default=False,
    ),
]
StateOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Where trusted roots and versions are kept between runs (rollback and TOFU). "
        "Default: $TRUSTCHECK_STATE_DIR, else $XDG_STATE_HOME/trustcheck.",
        show_default=False,
    ),
]
NoTofuOpt = Annotated[
    bool,
    typer.Option("--no-tofu", help="Refuse GUNs without a root pin (never trust on first use)."),
]
DceOpt = Annotated[
    str,
    typer.Option(
        "--delegation-cert-expiry",
        help="Expired or not-yet-valid delegation certificates: ignore (as notary), "
        "warn, or reject (skip that signer's role).",
    ),
]
ImagesArg = Annotated[
    list[str],
    typer.Argument(help="Image references, e.g. alpine:3.20.", metavar="IMAGE", show_default=False),
]


class Exit(Exception):
    """Leave a command with an exit code (cli.main turns it into the process status)."""

    def __init__(self, code: int) -> None:
        self.code = code


#: ``--delegation-cert-expiry``: what an expired delegation certificate does
DceMode = Literal["ignore", "warn", "reject"]
DCE_MODES: tuple[DceMode, ...] = ("ignore", "warn", "reject")
#: ``verify --dialect``
Dialect = Literal["notary", "tuf"]
DIALECTS: tuple[Dialect, ...] = ("notary", "tuf")
#: ``pull --with``
PullTool = Literal["docker", "podman", "skopeo"]
PULL_TOOLS: tuple[PullTool, ...] = ("docker", "podman", "skopeo")
#: ``audit --fail-on``
FailOn = Literal["warning", "error"]
FAIL_ON: tuple[FailOn, ...] = ("warning", "error")

_C = TypeVar("_C", bound=str)


def choice(option: str, value: str, allowed: tuple[_C, ...]) -> _C:
    """``value`` as one of ``allowed`` (a Literal's values), or a usage error naming
    ``option`` and every allowed value (one line, exit 2: not click's usage block)."""
    for a in allowed:
        if value == a:
            return a
    *head, last = allowed
    spelled = f"{', '.join(head)} or {last}" if head else last
    fail_usage(f"{option} must be {spelled}, not {value[:80]!r}")


def fail_usage(message: str) -> NoReturn:
    from trustcheck.errors import UsageError

    raise UsageError(ErrorCode.INVALID_ARGUMENT, message)


def _at_or_none(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None


def _suggest_at(text: str) -> str:
    """An RFC 3339 time (UTC) close to what was meant by ``text``, which
    :func:`parse_at` accepts: ``2026-11-27`` -> ``2026-11-27T00:00:00Z``."""
    cleaned = text.replace("/", "-").replace(".", "-", 2) if "T" not in text else text
    at = _at_or_none(cleaned) or _at_or_none(text)
    if at is None:
        at = datetime.now(UTC).replace(microsecond=0)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.isoformat().replace("+00:00", "Z")


def parse_at(value: str | None) -> datetime:
    """``--at``: an RFC 3339 time with a zone. A date, a time without a zone or
    another spelling is a usage error that suggests a value this accepts."""
    if value is None:
        return datetime.now(UTC)
    text = value.strip()
    at = _at_or_none(text)
    if at is None:
        fail_usage(f"--at {value!r} is not an RFC 3339 time; use e.g. --at {_suggest_at(text)}")
    if at.tzinfo is None:
        dated = "T" not in text.upper() and " " not in text
        what = "is a date without a time" if dated else "has no time zone"
        fail_usage(f"--at {value!r} {what}; for UTC use --at {_suggest_at(text)}")
    return at


def trust_dir_path(value: Path | None, *, must_exist: bool = False) -> Path:
    """``--trust-dir``, else Docker's default trust dir.

    ``must_exist``: the command only reads the trust dir (``--offline``), so an
    explicit ``--trust-dir`` that is not a directory is a typo, not an empty
    cache: ``trust-dir-missing`` (exit 2) naming it. Commands that fetch
    create the folder, as docker does.
    """
    if value is not None:
        if must_exist and not value.is_dir():
            from trustcheck.errors import UsageError

            what = "is not a directory" if value.exists() else "does not exist"
            raise UsageError(
                ErrorCode.TRUST_DIR_MISSING,
                f"--trust-dir {value} {what}; give the folder that holds tuf/<GUN>/metadata "
                "(Docker's is ~/.docker/trust), or run trustcheck fetch to fill a new one",
            )
        return value
    from trustcheck.local.trustdir import default_trust_dir

    if os.environ.get("DOCKER_CONFIG"):
        return default_trust_dir()
    return default_trust_dir(home=home_dir("trust dir", "give --trust-dir or $DOCKER_CONFIG"))


OfflineOpt = Annotated[
    bool,
    typer.Option(
        "--offline",
        envvar="TRUSTCHECK_OFFLINE",
        help="Do not contact any server: verify the trust dir as it is.",
    ),
]
ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        help="Notary server URL (default: $DOCKER_CONTENT_TRUST_SERVER, notary.docker.io for "
        "docker.io, else https://<registry host>).",
        show_default=False,
    ),
]
UnsafeHttpOpt = Annotated[
    bool, typer.Option("--unsafe-http", help="Allow plain-http servers and token realms.")
]
TlsCaOpt = Annotated[
    Path | None,
    typer.Option("--tls-ca", help="Extra CA bundle for servers (PEM).", show_default=False),
]
TlsCertOpt = Annotated[
    Path | None,
    typer.Option("--tls-cert", help="Client certificate (PEM) for mutual TLS.", show_default=False),
]
TlsKeyOpt = Annotated[
    Path | None,
    typer.Option("--tls-key", help="Key of the client certificate (PEM).", show_default=False),
]
UserOpt = Annotated[
    str | None,
    typer.Option(
        "--username",
        help="User for the token service; the password comes from --password-stdin or "
        "$TRUSTCHECK_PASSWORD (default: Docker's config.json and credential helpers).",
        show_default=False,
    ),
]
PasswordStdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds per request.", min=0.1)]
RetriesOpt = Annotated[
    int, typer.Option("--retries", help="Retries of a request after 5xx or network errors.", min=0)
]
ConcurrencyOpt = Annotated[
    int, typer.Option("--concurrency", help="Collections fetched at once.", min=1)
]


@dataclass
class RemoteArgs:
    offline: bool
    server: str | None
    unsafe_http: bool
    tls_ca: Path | None
    tls_cert: Path | None
    tls_key: Path | None
    username: str | None
    password_stdin: bool
    timeout: float
    retries: int
    concurrency: int
    registry: str | None = None

    def config(self) -> RemoteConfig:
        from trustcheck.remote.config import RemoteConfig

        password = None
        if self.password_stdin:
            if self.username is None:
                fail_usage("--password-stdin needs --username")
            password = sys.stdin.readline().rstrip("\r\n")
        elif self.username is not None:
            password = os.environ.get("TRUSTCHECK_PASSWORD")
            if password is None:
                fail_usage("--username needs a password: --password-stdin or $TRUSTCHECK_PASSWORD")
        cfg = RemoteConfig(
            server=self.server,
            unsafe_http=self.unsafe_http,
            tls_ca=self.tls_ca,
            client_cert=self.tls_cert,
            client_key=self.tls_key,
            username=self.username,
            password=password,
            timeout=self.timeout,
            retries=self.retries,
            concurrency=self.concurrency,
            offline=self.offline,
            registry=self.registry,
        )
        cfg.validate()
        return cfg


def progress_reporter(total_images: int) -> Callable[[int, int], None] | None:
    if total_images <= 3:
        return None

    def report(done: int, total: int) -> None:
        typer.echo(f"fetched {done}/{total} collections", err=True)

    return report


def home_dir(needed_for: str, fix: str) -> Path:
    """The user's home directory, or a ``home-unknown`` usage error (exit 2) saying
    what it was needed for and how to do without it: a container user without a
    passwd entry and without ``$HOME`` has none."""
    try:
        return Path.home()
    except RuntimeError:
        from trustcheck.errors import UsageError

        uid = os.getuid() if hasattr(os, "getuid") else "?"
        raise UsageError(
            ErrorCode.HOME_UNKNOWN,
            f"the home directory is unknown ($HOME is not set and uid {uid} has no passwd "
            f"entry), so there is no default {needed_for}; set HOME, or {fix}",
        ) from None


def default_pins(pins: Path | None) -> Path | None:
    """``--pins``, else the default pin file when it exists (none without a home)."""
    if pins is not None:
        return pins
    env = os.environ
    base = env.get("XDG_CONFIG_HOME")
    if not base:
        try:
            base = str(Path.home() / ".config")
        except RuntimeError:
            return None  # no home: no default pin file either
    # pinfile.default_pin_file, without importing the pin parser when there is no file
    # (tests/unit/test_import_discipline.py checks the two agree)
    candidate = Path(base) / "trustcheck" / "pins.toml"
    return candidate if candidate.is_file() else None


def make_options(pins: Path | None, state_dir: Path | None, no_tofu: bool, dce: str) -> Options:
    from trustcheck.api import Options
    from trustcheck.local.state import StateStore, default_state_dir

    dce = choice("--delegation-cert-expiry", dce, DCE_MODES)
    env = os.environ
    pins = default_pins(pins)
    if state_dir is None:
        if env.get("TRUSTCHECK_STATE_DIR") or env.get("XDG_STATE_HOME"):
            state_dir = default_state_dir(env, Path("/"))  # the variables win over the home
        else:
            home = home_dir("state dir", "give --state-dir or $TRUSTCHECK_STATE_DIR")
            state_dir = default_state_dir(env, home)
    pin_set = None
    if pins is not None:  # the pin parser (tomllib, identities) only when there is a file
        from trustcheck.local.pinfile import load_pins

        pin_set = load_pins(pins)
    return Options(
        pins=pin_set,
        state=StateStore(state_dir),
        no_tofu=no_tofu,
        delegation_cert_expiry=dce,
    )


def warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


#: what a command receives when called directly (tests); the CLI passes the options
DEFAULT_REMOTE = RemoteArgs(False, None, False, None, None, None, None, False, 10.0, 2, 8)

#: the options every command that may reach a server takes, in help order
_REMOTE_OPTIONS: tuple[tuple[str, object, object], ...] = (
    ("offline", OfflineOpt, False),
    ("server", ServerOpt, None),
    ("unsafe_http", UnsafeHttpOpt, False),
    ("tls_ca", TlsCaOpt, None),
    ("tls_cert", TlsCertOpt, None),
    ("tls_key", TlsKeyOpt, None),
    ("username", UserOpt, None),
    ("password_stdin", PasswordStdinOpt, False),
    ("timeout", TimeoutOpt, 10.0),
    ("retries", RetriesOpt, 2),
    ("concurrency", ConcurrencyOpt, 8),
)


def remote_options(fn: Callable[..., None]) -> Callable[..., None]:
    """Give a command the server options (``--offline``, ``--server``, TLS, auth,
    timeouts) without repeating them: the command declares ``remote: RemoteArgs``
    and receives them bundled. Typer sees the individual options."""
    import functools
    import inspect
    import typing

    hints = typing.get_type_hints(fn, include_extras=True)
    sig = inspect.signature(fn)
    own = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in sig.parameters.values()
        if p.name != "remote"
    ]
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann)
        for name, ann, default in _REMOTE_OPTIONS
    ]
    names = [name for name, _, _ in _REMOTE_OPTIONS]

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> None:
        bundle = RemoteArgs(**{n: kwargs.pop(n) for n in names})  # type: ignore[arg-type]
        fn(*args, remote=bundle, **kwargs)

    params = own + extra
    wrapper.__signature__ = sig.replace(parameters=params, return_annotation=None)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # typer must see the new signature, not fn's
    return wrapper
