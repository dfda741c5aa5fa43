"""One JSON document on stdout on every exit path of a command with machine-readable output.

A command prints its own document (its result, or a result that says "not trusted").
When it fails before it printed anything (an invalid reference, a bad option value, a
missing file, an unreadable trust dir, a bug), the CLI's error funnel
(:func:`trustcheck.cli.app.main`) prints the *error document* instead: the command's
document with its lists empty, plus ``error: {code, message, role, exit_code}``. The
one-line diagnostic on stderr and the exit code stay as without JSON output.

Which commands: discovered from their parameters, so a new command is covered without
a list here (docs/design/cli-contract.md, "Machine-readable output"):

* ``--json`` given (every command that has the flag);
* ``--format json`` given, and no ``--output FILE`` (``audit``, ``coverage``): with
  ``--output`` the document goes to the file, and stdout carries nothing;
* JSON by default: a command with ``--pretty`` (``inspect``, ``tuf inspect``) unless
  ``--pretty`` is given. ``inspect`` keeps Docker's shape, a JSON array: its error
  document is ``[]`` (what ``docker trust inspect`` prints for a repository without
  trust data); the error is the stderr line and the exit code.

CSV, table, Markdown and HTML output carry nothing on stdout when the command fails.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from typer._click.core import Command

#: commands whose document is a JSON array (Docker's ``docker trust inspect`` shape)
ARRAY_COMMANDS = frozenset({"trustcheck inspect"})

#: the keys of a command's document that its error document carries empty (the
#: success shape stays; a command not listed gets ``{"error": ...}`` alone)
EMPTY_KEYS: dict[str, dict[str, object]] = {
    "trustcheck verify": {"results": []},
    "trustcheck fetch": {"collections": []},
    "trustcheck thumbprint": {"keys": []},
    "trustcheck pin list": {"pins": []},
    "trustcheck tuf verify": {"results": []},
    "trustcheck tuf download": {"results": []},
    "trustcheck tuf thumbprint": {"keys": []},
    "trustcheck notation verify": {"results": []},
    "trustcheck cosign verify": {"results": []},
    "trustcheck cosign verify-blob": {"trusted": False},
    "trustcheck archive inspect": {"collections": {}},
    "trustcheck coverage": {"repositories": []},
    "trustcheck doctor": {"checks": [], "exit_code": None},  # exit_code: filled in
    "trustcheck gate": {"policy": None, "decisions": []},
    "trustcheck policy check": {"policy": None, "valid": False, "rules": []},
    "trustcheck policy explain": {"policy": None},
    "trustcheck quarantine release": {"policy": None, "decision": None},
    "trustcheck quarantine status": {"registry": None},
}

#: arguments that can select JSON output (a cheap test before any command is resolved)
_HINTS = ("--json", "--format", "--pretty", "inspect")  # as trustcheck.cli.app._JSON_HINTS


def may_select_json(args: list[str]) -> bool:
    """Could ``args`` select JSON output? (False for most runs: nothing is watched.)"""
    return any(a.startswith(_HINTS) for a in args)


class WatchedStdout:
    """stdout, counting what the command writes to it: the funnel prints an error
    document only when the command printed nothing. It offers no ``buffer``, so every
    write (click's ``echo`` included) goes through :meth:`write`."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner
        self.written = 0

    def write(self, text: str) -> int:
        n = self._inner.write(text)
        if text:
            self.written += len(text)
        return n

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._inner.flush()

    def __getattr__(self, name: str) -> Any:
        if name == "buffer":
            raise AttributeError(name)
        return getattr(self._inner, name)


def _resolve(args: list[str]) -> tuple[str, Command, list[str]] | None:
    """The command ``args`` run (its path, click command and its own arguments)."""
    import typer
    import typer.main

    from trustcheck.cli.app import app

    cmd: Any = typer.main.get_group(app)
    ctx = typer.Context(cmd, info_name="trustcheck", resilient_parsing=True)
    path, rest = ["trustcheck"], list(args)
    while hasattr(cmd, "get_command"):  # a group: the next word names a command
        while rest and rest[0].startswith("-"):
            rest.pop(0)
        if not rest:
            return None
        sub = cmd.get_command(ctx, rest[0])
        if sub is None:
            return None
        path.append(rest.pop(0))
        cmd = sub
    return " ".join(path), cmd, rest


def json_selected(args: list[str]) -> str | None:
    """The command path when ``args`` select JSON output on stdout, else None."""
    if not may_select_json(args):
        return None
    # ``--json`` itself (before a ``--``) asks for JSON even where click refuses it
    # (a command without the flag, an unknown command): the usage error is one document
    asked = "--json" in (args[: args.index("--")] if "--" in args else args)
    try:
        found = _resolve(args)
        if found is None:
            return "trustcheck" if asked else None
        path, cmd, rest = found
        ctx = cmd.make_context(path, list(rest), resilient_parsing=True)
        values = ctx.params
    except Exception:  # an unparseable command line: nothing more is known about it
        return "trustcheck" if asked else None
    by_opt = {o: p.name or "" for p in cmd.params for o in p.opts}
    if "--json" in by_opt and values.get(by_opt["--json"]):
        return path
    if "--format" in by_opt:
        fmt = values.get(by_opt["--format"])
        out = values.get(by_opt["--output"]) if "--output" in by_opt else None
        fmt_text = str(getattr(fmt, "value", fmt) or "").lower()
        if fmt_text == "json" and (out is None or str(out) == "-"):
            return path
    if "--pretty" in by_opt and "--json" not in by_opt and not values.get(by_opt["--pretty"]):
        return path
    return path if asked and "--json" not in by_opt else None


def document(
    base: dict[str, object], code: str, message: str, exit_code: int, role: str | None = None
) -> str:
    """``base`` (what the command knew, or its document's keys empty) plus the error."""
    import json  # only on a failure path (a watched run imports nothing more)

    doc = {
        **base,
        "error": {"code": code, "message": message, "role": role, "exit_code": exit_code},
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)


def error_document(
    path: str, code: str, message: str, exit_code: int, role: str | None = None
) -> str:
    """The error document of the command ``path`` (see the module's docstring)."""
    if path in ARRAY_COMMANDS:
        return "[]"
    empty = dict(EMPTY_KEYS.get(path, {}))
    if "exit_code" in empty:  # a document that states its own exit code (doctor)
        empty["exit_code"] = exit_code
    return document(empty, code, message, exit_code, role)


def print_error_document(
    args: list[str],
    watched: WatchedStdout | None,
    code: str,
    message: str,
    exit_code: int,
    role: str | None = None,
) -> None:
    """Print the error document when ``args`` selected JSON output and the command
    has written nothing to stdout (so stdout ends up with exactly one document)."""
    if watched is None or watched.written:
        return
    path = json_selected(args)
    if path is None:
        return
    try:
        watched.write(error_document(path, code, message, exit_code, role) + "\n")
        watched.flush()
    except (OSError, ValueError):  # stdout gone: the exit code still says it
        pass


def install(args: list[str]) -> WatchedStdout | None:
    """Watch stdout for a run whose arguments may select JSON output."""
    if not may_select_json(args):
        return None
    watched = WatchedStdout(sys.stdout)
    sys.stdout = watched
    return watched
