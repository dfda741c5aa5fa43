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
#: known exceptions, each with its reason; the test fails when one is no longer needed
#: (TUF 1.0 repositories moved onto HttpSession: trustcheck/tuf/fetchers.py, issue 15)
NOT_YET: dict[str, set[str]] = {}


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
    found = _clients_outside_the_stack()
    unexpected = {p: m for p, m in found.items() if not m <= NOT_YET.get(p, set())}
    assert unexpected == {}


def test_known_exceptions_are_still_real() -> None:
    """An exception that is gone must leave NOT_YET (the list never hides anything)."""
    found = _clients_outside_the_stack()
    assert {p: found.get(p, set()) for p in NOT_YET} == NOT_YET


def test_the_scan_sees_the_stack_itself() -> None:
    """The scan is not vacuous: it finds httpx where it is imported."""
    assert any(_is_client(m) for _line, m in _imports(THE_STACK))
    assert len(list(PACKAGE.rglob("*.py"))) > 30
