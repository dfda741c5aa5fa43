"""The typer app, its lazily loaded command groups and the one error funnel.

Results go to stdout, diagnostics and warnings to stderr. Exit codes follow
the contract: 0 trusted / ok, 1 not trusted, 2 usage or input error.

Every command lives in a module of this package (:data:`COMMANDS`) with a
``register(app: typer.Typer) -> None``. The root group is a
:class:`LazyGroup` (typer's documented ``cls=``: a click group overriding
``list_commands``/``get_command``): ``trustcheck verify ...`` imports and
converts only :mod:`trustcheck.cli.verify`; ``--help`` and an unknown name
load every module. A command module imports only ``typer`` and
:mod:`trustcheck.cli.options` at module level; its work is imported inside the
command functions, so start-up stays fast.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import io
import os
import stat
import sys
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import typer
import typer.core
import typer.main

from trustcheck.cli.options import CONTEXT_SETTINGS, Exit, VersionOpt

if TYPE_CHECKING:
    from collections.abc import Callable

    # typer's own click (typer >= 0.27 vendors it): types only
    from typer._click.core import Command, Context

_F = TypeVar("_F", bound="Callable[..., Any]")

#: command name -> the module that registers it, in the order ``--help`` lists them
COMMANDS: dict[str, str] = {
    "verify": "trustcheck.cli.verify",
    "inspect": "trustcheck.cli.verify",
    "fetch": "trustcheck.cli.verify",
    "thumbprint": "trustcheck.cli.thumbprint",
    "pin": "trustcheck.cli.pin",
    "audit": "trustcheck.cli.audit",
    "doctor": "trustcheck.cli.doctor",
    "gate": "trustcheck.cli.gate",
    "pull": "trustcheck.cli.gate",
    "policy": "trustcheck.cli.gate",
    "quarantine": "trustcheck.cli.gate",
    "serve": "trustcheck.cli.serve",
    "tuf": "trustcheck.cli.tuf",
    "archive": "trustcheck.cli.archive",
    "notation": "trustcheck.cli.notation",
    "cosign": "trustcheck.cli.cosign",
    "coverage": "trustcheck.cli.coverage",
}


class _Only(typer.Typer):
    """Takes what a module's ``register`` adds, keeping only the command (or group) named
    ``wanted``: ``trustcheck verify`` converts verify's parameters, not inspect's and fetch's."""

    def __init__(self, wanted: str | None) -> None:
        super().__init__()
        self._wanted = wanted

    def _keeps(self, name: object) -> bool:
        return self._wanted is None or not isinstance(name, str) or name == self._wanted

    def command(self, name: str | None = None, **kwargs: Any) -> Callable[[_F], _F]:
        if not self._keeps(name):
            return lambda f: f
        return super().command(name, **kwargs)

    def add_typer(self, typer_instance: typer.Typer, **kwargs: Any) -> None:
        if self._keeps(kwargs.get("name")):
            super().add_typer(typer_instance, **kwargs)


def load_commands(module_name: str, only: str | None = None) -> dict[str, Command]:
    """The click commands (and groups) that ``module_name``'s ``register`` adds, by name
    (only the one named ``only`` when given)."""
    module = importlib.import_module(module_name)
    holder = _Only(only)
    module.register(holder)
    return dict(typer.main.get_group(holder).commands)


class LazyGroup(typer.core.TyperGroup):
    """The root group: a command's module is imported the first time the command is needed."""

    def list_commands(self, ctx: Context) -> list[str]:
        """Every name (help, completion): each module's commands loaded in one pass."""
        for module_name in dict.fromkeys(COMMANDS.values()):
            if any(m == module_name and n not in self.commands for n, m in COMMANDS.items()):
                for name, cmd in load_commands(module_name).items():
                    self.commands.setdefault(name, cmd)
        return list(COMMANDS)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        """One name (a run): its module imported, only that command converted."""
        module_name = COMMANDS.get(cmd_name)
        if cmd_name not in self.commands and module_name is not None:
            for name, cmd in load_commands(module_name, cmd_name).items():
                self.commands.setdefault(name, cmd)
        return self.commands.get(cmd_name)

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        if args and args[0] not in COMMANDS:  # the error's "did you mean" needs every name
            self.list_commands(ctx)
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="trustcheck",
    cls=LazyGroup,
    help="Verify Docker Content Trust (Notary v1) trust data offline, exactly as notary does.",
    no_args_is_help=True,
    add_completion=False,
    context_settings=CONTEXT_SETTINGS,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,  # locals can hold keys and tokens
)


@app.callback()
def _root(version: VersionOpt = False) -> None:
    """Verify Docker Content Trust (Notary v1) trust data offline, exactly as notary does."""


def root_command() -> LazyGroup:
    """The root click group with every command loaded (for tests and tools that walk it)."""
    group = typer.main.get_group(app)
    assert isinstance(group, LazyGroup)
    group.list_commands(group.make_context("trustcheck", ["--help"], resilient_parsing=True))
    return group


#: exit code when stdout's reader went away (``trustcheck inspect ... | head -1``):
#: 128 + SIGPIPE, what a shell reports for any program a closed pipe ends
EXIT_BROKEN_PIPE = 141


def _stdout_gone() -> int:
    """stdout is a closed pipe: point it at /dev/null so the final flush at exit
    cannot fail again (no 'Exception ignored' traceback), and report 141."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (tests): nothing to do
        pass
    return EXIT_BROKEN_PIPE


def _stdout_is_pipe() -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(1).st_mode)
    except OSError:
        return False


def _pipe_closed(was_pipe: bool) -> bool:
    """Did a library turn a closed stdout pipe into ``sys.exit(1)``? typer then wraps
    stdout in click's PacifyFlushWrapper; rich (help pages) points fd 1, which was a
    pipe when the run started, at /dev/null."""
    if type(sys.stdout).__name__ == "PacifyFlushWrapper":
        return True
    try:
        return was_pipe and os.path.samestat(os.fstat(1), os.stat(os.devnull))
    except OSError:
        return False


def _reliable_stdout() -> TextIO | None:
    """With ``PYTHONUNBUFFERED=1`` or ``-u`` (common in container images), stdout is a
    text layer straight over the file descriptor, and CPython drops the rest of a
    partial write without an error: ``trustcheck inspect IMAGE | head -1`` would
    exit 0 with its output cut short. Put a buffered writer in between (it retries
    partial writes and raises on a closed pipe), flushed at every newline as
    unbuffered output expects. Returns the replacement, or None when stdout is
    already buffered (or not a real file, as under test capture)."""
    out = sys.stdout
    if not isinstance(getattr(out, "buffer", None), io.FileIO):
        return None
    raw = io.FileIO(out.fileno(), "w", closefd=False)  # fd 1 stays open when this goes
    return io.TextIOWrapper(
        io.BufferedWriter(raw), encoding=out.encoding, errors=out.errors, line_buffering=True
    )


def _status(code: object) -> int:
    """A click/typer exit status as an int; anything that is not a clean 0 fails."""
    if code is None:
        return 0
    if isinstance(code, bool) or not isinstance(code, int):
        return 1
    return code


def main(argv: list[str] | None = None) -> int:
    """Console entry point: the one place errors become exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    was_pipe = _stdout_is_pipe()
    prior, reliable = sys.stdout, _reliable_stdout()
    if reliable is not None:
        sys.stdout = reliable
    try:
        return _run(args, was_pipe)
    finally:
        if reliable is not None:
            with contextlib.suppress(OSError, ValueError):
                reliable.flush()
            sys.stdout = prior


def _run(args: list[str], was_pipe: bool) -> int:
    """Run the command; with JSON output selected, a failure before the command printed
    anything still leaves one JSON document on stdout (:mod:`trustcheck.cli.jsonout`)."""
    prior, watched = sys.stdout, None
    if any(a.startswith(_JSON_HINTS) for a in args):  # else jsonout is not even imported
        from trustcheck.cli import jsonout

        watched = jsonout.install(args)
    try:
        return _run_watched(args, was_pipe, watched)
    finally:
        if watched is not None and sys.stdout is watched:
            sys.stdout = prior


#: arguments that may select JSON output (``--json``, ``--format json``, ``inspect``
#: without ``--pretty``): only then is stdout watched (:mod:`trustcheck.cli.jsonout`)
_JSON_HINTS = ("--json", "--format", "--pretty", "inspect")


def _print_error_document(
    args: list[str], watched: Any, code: str, message: str, exit_code: int, role: object = None
) -> None:
    if watched is not None:
        from trustcheck.cli.jsonout import print_error_document

        print_error_document(
            args, watched, code, message, exit_code, role if isinstance(role, str) else None
        )


def _run_watched(args: list[str], was_pipe: bool, watched: Any) -> int:
    from trustcheck.errors import TrustcheckError

    try:
        rv = app(args=args, prog_name="trustcheck", standalone_mode=False)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        # non-standalone click returns ctx.exit(N)'s code, or the command's return value
        return _status(rv) if isinstance(rv, int) else 0
    except Exit as e:
        return e.code
    except TrustcheckError as e:
        _print_error_document(args, watched, e.code, e.message, e.exit_code, e.role)
        typer.echo(f"error: [{e.code}] {e.message}", err=True)
        return e.exit_code
    except typer.Exit as e:
        return _status(e.exit_code)
    except typer.Abort:
        typer.echo("error: aborted; nothing was trusted", err=True)
        return 1
    except SystemExit as e:  # typer and rich turn a broken pipe into sys.exit(1)
        if e.code == 1 and _pipe_closed(was_pipe):
            return _stdout_gone()
        return _status(e.code) if e.code is not None else 0
    except BrokenPipeError:
        return _stdout_gone()
    except KeyboardInterrupt:  # only in-process (the entry point exits on SIGINT itself)
        typer.echo("interrupted; nothing was trusted", err=True)
        return 130
    except typer.TyperException as e:  # usage errors from the (vendored) click parser
        text = e.format_message() if hasattr(e, "format_message") else str(e)
        code = int(getattr(e, "exit_code", 2) or 2)
        _print_error_document(args, watched, "invalid-argument", text, code)
        show = getattr(e, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"error: {e}", err=True)
        return int(getattr(e, "exit_code", 2) or 2)
    except Exception as e:  # anything unexpected: fail closed, one line
        if isinstance(e, OSError) and e.errno == errno.EPIPE:
            return _stdout_gone()
        message = f"unexpected {type(e).__name__}: {e}; nothing was trusted"
        _print_error_document(args, watched, "internal-error", message[:500], 1)
        typer.echo(
            f"error: [internal-error] unexpected {type(e).__name__}: {e}; "
            "nothing was trusted. Please report this as a trustcheck bug.",
            err=True,
        )
        if os.environ.get("TRUSTCHECK_DEBUG"):
            raise
        return 1
    return 0


def run() -> None:  # pragma: no cover - thin wrapper
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
