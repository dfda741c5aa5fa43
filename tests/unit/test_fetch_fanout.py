"""fetch_many's fan-out (issue 18, P3): a connection pool per worker thread.

One pool shared by the worker threads makes every request and every response
close wait for the pool's lock; ``HttpSession(client_per_thread=True)`` gives each
thread its own client (same TLS context, same limits), other sessions keep one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

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
