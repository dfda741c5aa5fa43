"""One HTTP stack: trustcheck/remote/http.py is the only module that imports an HTTP
client library, so TLS (client certificates, Docker's per-host folder), redirects,
decoded-size caps, deadlines and retries with Retry-After hold for every request
(Notary servers, registries, token services, ACR, doctor's checks)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "trustcheck"
THE_STACK = PACKAGE / "remote" / "http.py"
#: client libraries, and the standard library's HTTP clients
CLIENTS = ("httpx", "httpcore", "h11", "h2", "requests", "urllib3", "aiohttp", "http.client")
#: HTTP clients inside other libraries (python-tuf's fetchers make their own requests)
CLIENT_CALLS = (
    "urllib.request",
    "tuf.ngclient.urllib3_fetcher",
    "tuf.ngclient.Urllib3Fetcher",
    "tuf.ngclient.requests_fetcher",
    "tuf.ngclient.RequestsFetcher",
)
# No exceptions: TUF 1.0 repositories (trustcheck/tuf/fetchers.py, download.py) moved
# onto HttpSession behind python-tuf's FetcherInterface (issue 15).


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, at any level (TYPE_CHECKING blocks and function
    bodies included)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
    return found


def _is_client(module: str) -> bool:
    return any(module == c or module.startswith(c + ".") for c in CLIENTS + CLIENT_CALLS)


def _clients_outside_the_stack() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == THE_STACK:
            continue
        for _line, module in _imports(path):
            if _is_client(module):
                found.setdefault(str(path.relative_to(PACKAGE.parent)), set()).add(module)
    return found


def test_only_remote_http_imports_an_http_client() -> None:
    assert _clients_outside_the_stack() == {}


def test_the_scan_sees_a_client_import_outside_the_stack(tmp_path: Path) -> None:
    """The scan catches each spelling: a plain import, from-imports of a client and of
    python-tuf's fetchers, an import inside a function."""
    mod = tmp_path / "m.py"
    mod.write_text(
        "import urllib3\n"
        "from httpx import Client\n"
        "def f():\n"
        "    from tuf.ngclient import Urllib3Fetcher\n"
        "    import urllib.request\n",
        encoding="utf-8",
    )
    found = sorted(m for _line, m in _imports(mod) if _is_client(m))
    assert found == [
        "httpx",
        "httpx.Client",
        "tuf.ngclient.Urllib3Fetcher",
        "urllib.request",
        "urllib3",
    ]


def test_the_scan_sees_the_stack_itself() -> None:
    """The scan is not vacuous: it finds httpx where it is imported."""
    assert any(_is_client(m) for _line, m in _imports(THE_STACK))
    assert len(list(PACKAGE.rglob("*.py"))) > 30
