"""Every ``$ trustcheck ...`` console block of README.md and docs/**.md runs here, and
what it prints is compared with what the page shows.

How a page is run (one fresh working directory and ``$HOME`` per page, blocks in page
order, so a later block sees what an earlier one left: pins, state, variables):

* The working directory holds a copy of ``fixtures/generated``, ``fixtures/realworld``,
  ``fixtures/tuf`` and ``fixtures/sigstore`` (relative paths in the docs, such as ``--trust-dir
  fixtures/generated/trust``, work as they do from a checkout). ``trustcheck`` on
  ``PATH`` is the installed console script.
  Nothing else of the caller's environment leaks in (no ``DOCKER_CONFIG``, no
  ``TRUSTCHECK_*``, no ``XDG_*``; ``TZ=UTC``).
* Each ``$ `` line (with ``\\``-continued lines) runs with bash in that directory;
  variables it sets (``$ AT=...``, ``$ export ...``) stay set for the rest of the page,
  and ``$ echo $?`` sees the previous command's exit code. Its output (stdout and stderr
  together, in the order written) must equal the lines shown up to the next ``$ `` line.
* Inputs are defined in the page itself: a ``$ cat NAME`` line whose output is shown
  writes that output to ``NAME`` first (the page shows the file), and a fenced block
  right after ``<!-- docs-test: file NAME -->`` is written to ``NAME`` when reached.
* Placeholders in shown output: ``<time>`` stands for an RFC 3339 UTC time, ``<n>`` for
  a number (milliseconds), and ``~`` for ``$HOME`` (as a shell user would read it).
  Nothing else is loose: ``…`` is a real character of trustcheck's output (shortened
  key IDs).
* ``<!-- docs-test: free-port 55705 -->`` before a block: the page's port 55705 is
  replaced, in commands and shown output, by a port that is free here (a block that
  starts its own server, such as ``openssl s_server``, then cannot collide). Every
  process a command leaves running is ended when the page is done.
* A console block that needs a live server, the network or a Kubernetes cluster is
  marked with ``<!-- docs-test: needs-server: how to start one -->`` (or
  ``needs-network:``, ``needs-cluster:``); the page itself says so in prose. These are
  not run and are counted separately. Their commands are still checked to be real:
  every option they use exists in ``--help``.

``pytest -s tests/unit/test_docs_examples.py`` prints the counts.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
DIRECTIVE = re.compile(r"^<!-- docs-test: (?P<body>.*?) -->$")
NOT_RUN = re.compile(r"^(?P<kind>needs-server|needs-network|needs-cluster): (?P<why>\S.*)$")
FILE = re.compile(r"^file (?P<name>[\w.-]+)$")
FREE_PORT = re.compile(r"^free-port (?P<port>\d{4,5})$")
SCRIPT = Path(sys.executable).parent / "trustcheck"
# The installed console script; without one, the CLI's entry point through this Python.
TRUSTCHECK = (
    [str(SCRIPT)]
    if SCRIPT.exists()
    else [sys.executable, "-c", "import sys; from trustcheck.cli import main; sys.exit(main())"]
)
PLACEHOLDERS = {"<time>": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<n>": r"\d+"}


@dataclass
class Command:
    line: int  # 1-based line of the `$ ` in the page
    text: str  # the command, continuation lines joined
    shown: list[str]  # the output the page shows


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    info: str  # the fence's info string
    body: list[str]
    directives: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        name = self.page.relative_to(REPO) if self.page.is_relative_to(REPO) else self.page
        return f"{name}:{self.line}"

    @property
    def is_console(self) -> bool:
        """A console block of trustcheck: the blocks this test is about."""
        return any(line.startswith("$ trustcheck") for line in self.body)

    @property
    def is_shell(self) -> bool:
        """Any console transcript (also `$ export ...` set-up blocks): run in page order."""
        return bool(self.body) and self.body[0].startswith("$ ")

    @property
    def not_run(self) -> re.Match[str] | None:
        for d in self.directives:
            if m := NOT_RUN.match(d):
                return m
        return None

    @property
    def free_ports(self) -> list[str]:
        return [m.group("port") for d in self.directives if (m := FREE_PORT.match(d))]

    @property
    def file_name(self) -> str | None:
        for d in self.directives:
            if m := FILE.match(d):
                return m.group("name")
        return None

    def commands(self) -> list[Command]:
        out: list[Command] = []
        lines = self.body
        i = 0
        while i < len(lines):
            if not lines[i].startswith("$ "):
                raise AssertionError(f"{self.where}: output before any command: {lines[i]!r}")
            start = i
            text = lines[i][2:]
            while text.endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text + "\n" + lines[i]
            i += 1
            shown = []
            while i < len(lines) and not lines[i].startswith("$ "):
                shown.append(lines[i])
                i += 1
            out.append(Command(self.line + 1 + start, text, shown))
        return out


def parse_page(page: Path) -> list[Block]:
    """Every fenced block of ``page``, with the docs-test directives just above it."""
    blocks: list[Block] = []
    lines = page.read_text(encoding="utf-8").split("\n")
    pending: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if m := DIRECTIVE.match(line.strip()):
            pending.append(m.group("body").strip())
        elif line.startswith("```"):
            fence = line[: len(line) - len(line.lstrip("`"))]
            start, info, body = i, line[len(fence) :].strip(), []
            i += 1
            while i < len(lines) and lines[i].rstrip() != fence:
                body.append(lines[i])
                i += 1
            blocks.append(Block(page, start + 1, info, body, pending))
            pending = []
        elif line.strip():
            pending = []
        i += 1
    return blocks


ALL_BLOCKS = {page: parse_page(page) for page in PAGES}
CONSOLE_PAGES = [p for p, blocks in ALL_BLOCKS.items() if any(b.is_console for b in blocks)]


def _matches(shown: list[str], actual: list[str]) -> bool:
    if len(shown) != len(actual):
        return False
    for want, got in zip(shown, actual, strict=True):
        pattern = re.escape(want)
        for token, rx in PLACEHOLDERS.items():
            pattern = pattern.replace(re.escape(token), rx)
        if not re.fullmatch(pattern, got):
            return False
    return True


class Page:
    """One page's working directory, environment and exit status, shared by its blocks."""

    def __init__(self, root: Path) -> None:
        self.cwd = root / "work"
        self.cwd.mkdir()
        fixtures = self.cwd / "fixtures"
        for name in ("generated", "realworld", "tuf", "sigstore"):
            shutil.copytree(REPO / "fixtures" / name, fixtures / name)
        home = self.home = root / "home"
        home.mkdir()
        bindir = root / "bin"
        bindir.mkdir()
        wrapper = bindir / "trustcheck"
        wrapper.write_text("#!/bin/sh\nexec " + shlex.join(TRUSTCHECK) + ' "$@"\n')
        wrapper.chmod(0o755)
        self.env = {
            "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TZ": "UTC",
            "COLUMNS": "100",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        if "PYTHONPATH" in os.environ:  # e.g. a copy of the repository under test
            self.env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        self.status = 0
        self._envfile = root / "env"
        self.ports: dict[str, str] = {}
        self._groups: list[int] = []

    def free_port(self, documented: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.ports[documented] = str(s.getsockname()[1])

    def localise(self, text: str) -> str:
        """The page's text with its documented ports replaced by the ones used here."""
        for documented, actual in self.ports.items():
            text = re.sub(rf"(?<!\d){documented}(?!\d)", actual, text)
        return text

    def close(self) -> None:
        """End what commands left running (each command is its own process group)."""
        for pgid in self._groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGTERM)

    def write(self, name: str, lines: list[str]) -> None:
        (self.cwd / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")

    def run(self, command: str) -> list[str]:
        script = (
            f"set -a\n(exit {self.status})\n{command}\n"
            f'__rc=$?\nenv -0 > "{self._envfile}"\nexit $__rc\n'
        )
        with subprocess.Popen(
            ["bash", "-c", script],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ) as proc:
            self._groups.append(proc.pid)
            try:
                stdout, _ = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                raise
        self.status = proc.returncode
        if self._envfile.exists():
            pairs = self._envfile.read_bytes().decode().split("\0")
            self.env = dict(p.split("=", 1) for p in pairs if "=" in p)
            for noise in ("PWD", "OLDPWD", "SHLVL", "_", "__rc"):
                self.env.pop(noise, None)
            self._envfile.unlink()
        text = stdout.decode("utf-8", "replace")
        return text.removesuffix("\n").split("\n") if text else []


@dataclass
class Tally:
    found: int = 0
    executed: int = 0
    needs_server: int = 0
    needs_network: int = 0  # or a cluster
    commands: int = 0


def run_page(page: Path, tmp: Path) -> tuple[Tally, list[str]]:
    """Run every console block of ``page``; the tally and the differences found."""
    tally, problems = Tally(), list[str]()
    ctx = Page(tmp)
    try:
        _run_blocks(page, ctx, tally, problems)
    finally:
        ctx.close()
    return tally, problems


def _run_blocks(page: Path, ctx: Page, tally: Tally, problems: list[str]) -> None:
    for block in ALL_BLOCKS[page]:
        if (name := block.file_name) is not None:
            ctx.write(name, block.body)
            continue
        if not block.is_shell:
            continue
        if (m := block.not_run) is not None:
            if block.is_console:
                tally.found += 1
                if m.group("kind") == "needs-server":
                    tally.needs_server += 1
                else:
                    tally.needs_network += 1
            continue
        if block.is_console:
            tally.found += 1
            tally.executed += 1
        for port in block.free_ports:
            ctx.free_port(port)
        for cmd in block.commands():
            tally.commands += 1
            shown = [ctx.localise(line) for line in cmd.shown]
            cat = re.fullmatch(r"cat ([\w.-]+)", cmd.text)
            if cat is not None:  # the page shows the file: that defines it
                ctx.write(cat.group(1), shown)
            run = ctx.localise(cmd.text)
            actual = [line.replace(str(ctx.home), "~") for line in ctx.run(run)]
            if any("Traceback (most recent call last)" in line for line in actual):
                problems.append(f"{page.name}:{cmd.line}: `{cmd.text}` printed a traceback")
            if not _matches(shown, actual):
                problems.append(
                    f"{page.relative_to(REPO)}:{cmd.line}: `$ {run}` prints\n"
                    + "\n".join(actual)
                    + "\n--- but the page shows ---\n"
                    + "\n".join(shown)
                )


@pytest.mark.parametrize("page", CONSOLE_PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_console_blocks_print_what_the_page_shows(page: Path, tmp_path: Path) -> None:
    tally, problems = run_page(page, tmp_path)
    print(
        f"{page.relative_to(REPO)}: {tally.found} console blocks, {tally.executed} executed "
        f"({tally.commands} commands), {tally.needs_server} need a server, "
        f"{tally.needs_network} need the network"
    )
    assert tally.executed + tally.needs_server + tally.needs_network == tally.found
    assert not problems, "\n\n".join(problems)


def test_every_console_block_is_run_or_marked() -> None:
    """The count: every console block found is run (by the test above, which checks
    its own tally), or marked as needing a server, the network or a cluster (saying
    how to get one); most are run."""
    found = runnable = marked = 0
    for blocks in ALL_BLOCKS.values():
        for block in blocks:
            if not block.is_console:
                continue
            found += 1
            m = block.not_run
            if m is None:
                runnable += 1
            else:
                marked += 1
                assert len(m.group("why")) > 20, f"{block.where}: say how to start it"
    print(f"console blocks: {found} found, {runnable} run, {marked} need a server/network")
    assert found >= 20
    assert runnable + marked == found
    assert runnable > 2 * marked


def _help(*words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TRUSTCHECK, *words, "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def _subcommands(group: str) -> set[str]:
    """The sub-commands ``trustcheck GROUP --help`` lists (none for a plain command)."""
    proc = _help(group)
    return set(re.findall(r"^│ (\w[\w-]*) ", proc.stdout, re.M)) if proc.returncode == 0 else set()


def test_marked_blocks_use_only_real_options() -> None:
    """Blocks that are not run still name options every command really has."""
    helps: dict[str, str] = {}
    for blocks in ALL_BLOCKS.values():
        for block in blocks:
            if not block.is_console or block.not_run is None:
                continue
            for cmd in block.commands():
                if not cmd.text.startswith("trustcheck "):
                    continue
                words = cmd.text.replace("\\\n", " ").split()
                sub = [w for w in words[1:3] if not w.startswith("-")]
                if len(sub) == 2 and sub[1] not in _subcommands(sub[0]):
                    sub = sub[:1]
                key = " ".join(sub)
                if key not in helps:
                    proc = _help(*sub)
                    assert proc.returncode == 0, f"{block.where}: {key} --help: {proc.stderr}"
                    helps[key] = proc.stdout
                for opt in re.findall(r"(?<!\S)(--[a-z][a-z-]*)", cmd.text):
                    assert opt in helps[key], f"{block.where}: `{key}` has no {opt}"


def test_parser_sees_the_blocks_the_pages_hold(tmp_path: Path) -> None:
    """The parser is only as good as what it finds: a page with fences of both styles."""
    text = "\n".join(
        [
            "intro",
            "<!-- docs-test: file p.yaml -->",
            "```yaml",
            "rules: []",
            "```",
            "<!-- docs-test: needs-server: start one with `notary-server -config x.json` -->",
            "<!-- docs-test: free-port 4443 -->",
            "```console",
            "$ trustcheck fetch a/b \\",
            "    --server https://127.0.0.1:4443",
            "fetched",
            "$ echo $?",
            "0",
            "```",
            "```",
            "$ trustcheck verify x",
            "```",
        ]
    )
    page = tmp_path / "probe.md"
    page.write_text(text)
    blocks = parse_page(page)
    assert [b.file_name for b in blocks] == ["p.yaml", None, None]
    assert [b.is_console for b in blocks] == [False, True, True]
    marked = blocks[1].not_run
    assert marked is not None and marked.group("kind") == "needs-server"
    assert blocks[1].free_ports == ["4443"] and blocks[2].free_ports == []
    (fetch, echo) = blocks[1].commands()
    assert fetch.text == "trustcheck fetch a/b \\\n    --server https://127.0.0.1:4443"
    assert fetch.shown == ["fetched"] and echo.shown == ["0"] and echo.line == 12
    assert _matches(["at <time> ok"], ["at 2026-11-27T00:11:36Z ok"])
    assert not _matches(["at <time> ok"], ["at yesterday ok"])
    assert not _matches(["a…"], ["abc"])
