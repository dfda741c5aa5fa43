"""core/ does no I/O and imports nothing of the outer layers; the package has no import cycles.

Both read the source with ``ast`` (nothing is imported or executed):

* every ``trustcheck/core/*.py`` may import only the standard library's pure
  modules, cryptography, orjson and other ``trustcheck.core`` modules (plus
  ``trustcheck.errors``); it may not name the file system (``open``,
  ``pathlib``, ``os``), sockets, HTTP, subprocesses, the environment or the
  clock (``time.time``, ``datetime.now`` ...);
* the module-level import graph of the whole ``trustcheck`` package (imports
  under ``if TYPE_CHECKING:`` and inside functions excluded: they run later,
  or never) has no cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "trustcheck"
CORE = PACKAGE / "core"

#: top-level modules core may import (besides trustcheck.core.* and trustcheck.errors)
ALLOWED_MODULES = frozenset(
    {
        "__future__",
        "base64",
        "binascii",
        "bisect",
        "calendar",
        "codecs",
        "collections",
        "contextlib",
        "cryptography",
        "dataclasses",
        "datetime",
        "enum",
        "functools",
        "hashlib",
        "hmac",
        "ipaddress",
        "itertools",
        "json",
        "math",
        "operator",
        "orjson",
        "posixpath",
        "re",
        "struct",
        "types",
        "typing",
        "unicodedata",
    }
)
#: names whose use is I/O, the environment or the clock, wherever they come from
FORBIDDEN_ATTRIBUTES = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "monotonic"),
    ("os", "environ"),
    ("os", "getenv"),
    ("Path", "read_bytes"),
    ("Path", "read_text"),
}
FORBIDDEN_CALLS = frozenset({"open", "input", "exec", "eval", "__import__"})
ALLOWED_TRUSTCHECK = ("trustcheck.core", "trustcheck.errors")


def _modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[str, int]]:
    """Every imported module name (absolute), with its line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            yield mod, node.lineno
            for alias in node.names:  # "from trustcheck.core import certs" imports a module
                yield f"{mod}.{alias.name}", node.lineno


def core_violations(source: str, module: str) -> list[str]:
    """What in ``source`` (a core module) does I/O or reaches outside core."""
    tree = ast.parse(source)
    found = []
    for mod, line in _imports(tree, module, False):
        top = mod.split(".")[0]
        if top == "trustcheck":
            if not mod.startswith(ALLOWED_TRUSTCHECK) and mod != "trustcheck":
                found.append(f"{module}:{line} imports {mod}")
        elif top not in ALLOWED_MODULES:
            found.append(f"{module}:{line} imports {mod}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in FORBIDDEN_ATTRIBUTES:
                found.append(f"{module}:{node.lineno} uses {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
            if (node.value.attr, node.attr) in FORBIDDEN_ATTRIBUTES:
                found.append(f"{module}:{node.lineno} uses {node.value.attr}.{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in FORBIDDEN_CALLS
        ):
            found.append(f"{module}:{node.lineno} calls {node.func.id}()")
    return found


@pytest.mark.parametrize("path", _modules(CORE), ids=lambda p: p.name)
def test_core_module_does_no_io_and_stays_inside_core(path: Path) -> None:
    assert core_violations(path.read_text(), _name(path)) == []


@pytest.mark.parametrize(
    "source",
    [
        "import os\n",
        "from pathlib import Path\n",
        "import socket\n",
        "import httpx\n",
        "import subprocess\n",
        "from trustcheck.local.trustdir import TrustDir\n",
        "from trustcheck.remote import http\n",
        "from trustcheck import cli\n",
        "def f():\n    from trustcheck.webhook.cache import verify_files\n",
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from trustcheck.local.pinfile import PinEntry\n",
        "import time\nt = time.time()\n",
        "from datetime import datetime\nt = datetime.now()\n",
        "import datetime\nt = datetime.datetime.now()\n",
        "data = open('x').read()\n",
        "from ..local import state\n",
    ],
)
def test_the_scan_catches_each_kind_of_io(source: str) -> None:
    assert core_violations(source, "trustcheck.core.example") != []


def _graph() -> dict[str, set[str]]:
    """Module-level imports between trustcheck modules (not TYPE_CHECKING, not in functions)."""
    names = {_name(p): p for p in _modules(PACKAGE)}
    graph: dict[str, set[str]] = {}
    for module, path in names.items():
        tree = ast.parse(path.read_text())
        edges: set[str] = set()
        for node in tree.body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for mod, _line in _imports(node, module, path.name == "__init__.py"):
                while mod and mod not in names:
                    mod = mod.rpartition(".")[0]
                if mod and mod != module:
                    edges.add(mod)
        graph[module] = edges
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_no_import_cycles_in_the_package() -> None:
    graph = _graph()
    assert len(graph) > 40  # the whole package was read
    # a package's __init__ importing its own modules is no cycle through them
    for module in graph:
        graph[module] = {m for m in graph[module] if not module.startswith(m + ".")}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


#: the only modules that may assemble a TrustPolicy (pins, previous root, floors)
POLICY_OWNERS = frozenset({"trustcheck.core.trusted_set", "trustcheck.local.session"})
POLICY_FIELDS = frozenset({"min_versions", "previous_root", "cached_root", "pin"})


def policy_assembly(source: str, module: str) -> list[str]:
    """Where ``source`` builds or changes a trust policy by hand."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name == "TrustPolicy":
                found.append(f"{module}:{node.lineno} builds a TrustPolicy")
            elif name == "replace" and any(k.arg in POLICY_FIELDS for k in node.keywords):
                found.append(f"{module}:{node.lineno} replaces policy fields")
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if (
                    isinstance(t, ast.Attribute)
                    and t.attr in ("min_versions", "previous_root", "cached_root")
                    and not (isinstance(t.value, ast.Name) and t.value.id == "self")
                ):
                    found.append(f"{module}:{node.lineno} sets .{t.attr}")
    return found


def test_trust_policy_is_assembled_in_one_place() -> None:
    """Pins, the previous root and rollback floors come from local/session.py only
    (the network layer, the webhook, archives and the API ask it)."""
    found = []
    for path in _modules(PACKAGE):
        module = _name(path)
        if module not in POLICY_OWNERS:
            found += policy_assembly(path.read_text(), module)
    assert found == []


@pytest.mark.parametrize(
    "source",
    [
        "policy = TrustPolicy(pin=None)\n",
        "p = verify.TrustPolicy()\n",
        "p2 = replace(policy, previous_root=root)\n",
        "policy.min_versions = state.versions\n",
        "policy.previous_root = previous.root\n",
    ],
)
def test_the_policy_scan_catches_each_spelling(source: str) -> None:
    assert policy_assembly(source, "trustcheck.remote.example") != []
