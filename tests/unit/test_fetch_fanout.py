"""fetch_many's fan-out (issue 18, P3): a connection pool per worker thread, and no
trust-dir lookups for a GUN that has no folder there yet.

One pool shared by the worker threads makes every request and every response
close wait for the pool's lock; ``HttpSession(client_per_thread=True)`` gives each
thread its own client (same TLS context, same limits), other sessions keep one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from fixtures.generate import FixtureSet
from trustcheck.local.trustdir import TrustDir
from trustcheck.remote.config import RemoteConfig
from trustcheck.remote.http import HttpSession


def _clients_by_thread(session: HttpSession, threads: int) -> list[object]:
    got: list[object] = [None] * threads
    barrier = threading.Barrier(threads)

    def work(i: int) -> None:
        barrier.wait()  # all alive at once: no thread id is reused
        first = session._client(("notary.example",), True)
        assert session._client(("notary.example",), True) is first  # reused in a thread
        got[i] = first

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return got


@pytest.mark.parametrize(
    ("per_thread", "distinct"),
    [(True, lambda n: n), (False, lambda n: 1)],
)
def test_clients_per_thread_only_when_asked(
    per_thread: bool, distinct: Callable[[int], int]
) -> None:
    session = HttpSession(RemoteConfig(), {}, client_per_thread=per_thread)
    try:
        clients = _clients_by_thread(session, 4)
        assert len({id(c) for c in clients}) == distinct(4)
        # one TLS context for all of them: the CA bundle is parsed once
        assert len(session._contexts) == 1
    finally:
        session.close()
    assert all(c.is_closed for c in clients)  # type: ignore[attr-defined]


def test_fetch_many_gives_each_worker_its_own_pool() -> None:
    """The one caller that asks for it (by source, so that a refactoring keeps it)."""
    import inspect

    from trustcheck.remote import notary

    assert "client_per_thread=True" in inspect.getsource(notary.fetch_many)


class _CountingTrustDir(TrustDir):
    """A real TrustDir whose role reads are counted."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads = 0

    def read_role(self, gun: str, role: str, cap: int) -> bytes | None:
        self.reads += 1
        return super().read_role(gun, role, cap)


def _source(td: TrustDir, gun: str) -> object:
    from trustcheck.remote.http import Deadline
    from trustcheck.remote.notary import RemoteSource

    session = HttpSession(RemoteConfig(), {})
    endpoint = session.endpoint("https://notary.example", "notary.example", "notary server")
    return RemoteSource(gun, td, endpoint, Deadline(10.0), [])


def test_first_fetch_of_a_gun_looks_nothing_up_in_the_trust_dir(tmp_path: Path) -> None:
    td = _CountingTrustDir(tmp_path / "trust")
    source = _source(td, "registry.example/team/app")
    for role in ("root", "timestamp", "snapshot", "targets"):
        assert source.cached(role, 1 << 20) is None  # type: ignore[attr-defined]
    assert td.reads == 0
    assert source.seen_in_cache == dict.fromkeys(  # type: ignore[attr-defined]
        ("root", "timestamp", "snapshot", "targets")
    )


def test_a_cached_gun_is_read_from_the_trust_dir(committed_fixtures: FixtureSet) -> None:
    td = _CountingTrustDir(committed_fixtures.trust_dir)
    source = _source(td, "localhost/basic")
    raw = source.cached("root", 1 << 20)  # type: ignore[attr-defined]
    assert raw is not None and raw.startswith(b"{")
    assert td.reads == 1
