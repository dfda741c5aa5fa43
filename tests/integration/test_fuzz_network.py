"""The network fuzz harness (fuzz/fuzz_network.py), bounded: a fixed-seed
hypothesis run of the update flow against hostile server answers on a real
loopback server (no escaped exception, trust dir and state unchanged on
failure, only genuine content trusted and cached, bounded memory).  The long
runs and their numbers are in fuzz/README.md.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from fixtures.hostile_server import Fault, HostileServer, genuine_roles
from trustcheck.remote import http as remote_mod

pytestmark = pytest.mark.integration

_PATH = Path(__file__).resolve().parents[2] / "fuzz" / "fuzz_network.py"


@pytest.fixture(scope="module")
def harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_network", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_network"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileServer]:
    monkeypatch.setattr(remote_mod, "_RETRY_BASE", 0.001)
    with HostileServer() as srv:
        yield srv


def test_bounded_network_fuzz(harness: ModuleType, server: HostileServer) -> None:
    stats = harness.Stats()
    harness.fuzz(server, 100, 20261204, stats)
    assert stats.runs >= 100
    # the search reaches both ends: genuine data trusted, hostile answers refused
    assert stats.trusted > 0
    assert sum(n for code, n in stats.codes.items() if code != "trusted") > 0
    assert stats.peak < harness.MEMORY_BOUND


def test_the_oracles_can_fail(
    harness: ModuleType, server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    genuine = harness.Scenario(faults={}, warm=False, with_state=True, retries=0)
    harness.run_scenario(server, genuine, harness.Stats())
    # memory: a bound below what a fetch needs is reported
    low = harness.Scenario(faults={}, warm=False, with_state=False, retries=0)
    with monkeypatch.context() as mp:
        mp.setattr(harness, "MEMORY_BOUND", 1024)
        with pytest.raises(AssertionError, match="peak allocations"):
            harness.run_scenario(server, low, harness.Stats())
    # genuine content: had the harness expected another targets role, the trusted
    # collection would be reported as not the genuine one
    expected = dict(harness.ROLES)
    harness.ROLES["targets"] = genuine_roles("localhost/releases")["targets"]
    try:
        with pytest.raises(AssertionError, match="other than the genuine one"):
            harness.run_scenario(server, low, harness.Stats())
    finally:
        harness.ROLES.clear()
        harness.ROLES.update(expected)
    # a refused answer is counted with its code
    stats = harness.Stats()
    bad = harness.Scenario({"timestamp": Fault(body=b"{}")}, True, True, 0)
    harness.run_scenario(server, bad, stats)
    assert stats.trusted == 0 and sum(stats.codes.values()) == 1


def test_whitespace_around_a_role_is_trusted_as_notary_trusts_it(
    harness: ModuleType, server: HostileServer
) -> None:
    # found by the long run (seed 11): a timestamp with a trailing space is
    # valid JSON for Go's decoder too; it verifies, and the oracle compares
    # what the signatures cover
    stats = harness.Stats()
    padded = harness.ROLES["timestamp"] + b" \n"
    harness.run_scenario(
        server, harness.Scenario({"timestamp": Fault(body=padded)}, False, False, 0), stats
    )
    assert stats.trusted == 1
