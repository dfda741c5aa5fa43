"""Network fuzz harness: notary's update flow against hostile server answers.

A hypothesis property drives ``trustcheck.remote.notary.fetch_collection`` against a
real loopback server (fixtures/hostile_server.py) that serves the genuine
notary-signed ``localhost/basic`` and, per request (ping, token, each role),
may answer instead with a drawn status code, headers (content codings,
redirects, ``Retry-After``, ``Content-Length``, auth challenges), body (another
role's bytes, truncated, padded, random, compressed, stacked-gzip bombs,
oversized, hostile token JSON), a short length or a cut connection -- once
(then the genuine answer: retries) or always.  It starts from an empty or a
warm trust dir, with or without a state store.

Oracles, for every example:

* no exception but :class:`~trustcheck.errors.TrustcheckError` escapes;
* on failure, the trust dir and the state dir are byte-for-byte unchanged;
* on success, every trusted role is the genuine one (its ``signed`` part;
  the bytes may differ only by whitespace around the document, which Go's
  decoder and notary accept too) and the trust dir holds genuine content only;
* the peak of Python memory allocations (tracemalloc) stays under
  :data:`MEMORY_BOUND`.

Run it long (see fuzz/README.md)::

    .venv/bin/python fuzz/fuzz_network.py --examples 5000 --seed 1

``tests/integration/test_fuzz_network.py`` runs a bounded version.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
import time
import tracemalloc
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fixtures.hostile_server import (  # noqa: E402
    GENUINE_GUN,
    Fault,
    HostileServer,
    genuine_roles,
    gzip_bomb,
    validation_time,
)
from trustcheck.api import Options  # noqa: E402
from trustcheck.errors import TrustcheckError  # noqa: E402
from trustcheck.local.state import StateStore  # noqa: E402
from trustcheck.local.trustdir import TrustDir  # noqa: E402
from trustcheck.remote import http as remote_mod  # noqa: E402
from trustcheck.remote.http import RemoteConfig  # noqa: E402
from trustcheck.remote.notary import fetch_collection  # noqa: E402

#: Peak Python allocations allowed for one fetch (bodies are at most a few
#: MiB decoded here; the stacked bombs decode to 2 GiB if ever decoded).
MEMORY_BOUND = 48 << 20

ROLES = genuine_roles()
PLACES = ["/v2/", "/token", "root", "timestamp", "snapshot", "targets"]
_BOMB = gzip_bomb(2 << 30)  # stacked: 2 GiB decoded from ~5 KB


def _token(expires: bytes) -> bytes:
    return b'{"token":"tok","expires_in":' + expires + b"}"


# --------------------------------------------------------------------------- strategies

_STATUSES = [200, 200, 200, 200, 204, 206, 301, 302, 303, 307, 308, 304, 400, 401, 403, 404]
_STATUSES += [405, 407, 410, 413, 418, 429, 500, 502, 503, 504, 599, 999, 100]


@st.composite
def _body(draw: st.DrawFn, place: str) -> bytes | None:
    genuine = ROLES.get(place, b'{"token":"tok","expires_in":300}')
    other = draw(st.sampled_from(sorted(ROLES)))
    kind = draw(
        st.sampled_from(
            [
                "genuine",
                "other-role",
                "truncated",
                "padded",
                "random",
                "empty",
                "zeros-2MiB",
                "json-junk",
                "token",
                "flipped",
            ]
        )
    )
    if kind == "genuine":
        return None
    if kind == "other-role":
        return ROLES[other]
    if kind == "truncated":
        return genuine[: draw(st.integers(0, max(0, len(genuine) - 1)))]
    if kind == "padded":
        return genuine + draw(st.sampled_from([b" ", b"\n", b"\0", b"{}", b" " * 4096]))
    if kind == "random":
        return draw(st.binary(max_size=512))
    if kind == "empty":
        return b""
    if kind == "zeros-2MiB":
        return b"\0" * (2 << 20)
    if kind == "json-junk":
        return draw(
            st.sampled_from(
                [b"[]", b"null", b"{}", b'{"signed":{}}', b"[" * 5000, b"1e999", b'"x"', b"NaN"]
            )
        )
    if kind == "token":
        return _token(
            draw(
                st.sampled_from(
                    [b"300", b"1e999", b"-1e999", b"NaN", b"9" * 400, b"1.5", b'"300"', b"true"]
                )
            )
        )
    flip = draw(st.integers(0, max(0, len(genuine) - 1)))
    return genuine[:flip] + bytes([genuine[flip] ^ 0x20]) + genuine[flip + 1 :] if genuine else b""


@st.composite
def _fault(draw: st.DrawFn, place: str, base: str) -> Fault:
    status = draw(st.sampled_from(_STATUSES))
    body = draw(_body(place))
    headers: list[tuple[str, str]] = []
    coding = draw(
        st.sampled_from(
            [
                None,
                None,
                "gzip",
                "x-gzip",
                "deflate",
                "gzip, gzip",
                "br",
                "identity",
                "gzip,identity",
            ]
        )
    )
    if coding is not None:
        raw = body if body is not None else ROLES.get(place, b"{}")
        if coding == "gzip, gzip" and draw(st.booleans()):
            body = _BOMB
        elif coding in ("gzip", "x-gzip") and draw(st.booleans()):
            body = gzip.compress(raw)
        elif coding == "deflate" and draw(st.booleans()):
            body = zlib.compress(raw)
        elif coding == "gzip" and draw(st.booleans()):
            body = gzip_bomb(8 << 20, layers=1)  # past every cap but root's
        headers.append(("Content-Encoding", coding))
    if status in (301, 302, 303, 307, 308) or draw(st.integers(0, 9)) == 0:
        target = draw(
            st.sampled_from(
                [
                    "/v2/",
                    f"/v2/{GENUINE_GUN}/_trust/tuf/{draw(st.sampled_from(sorted(ROLES)))}.json",
                    f"{base}/v2/{GENUINE_GUN}/_trust/tuf/timestamp.json",
                    "http://127.0.0.1:1/v2/",
                    "https://127.0.0.1:1/v2/",
                    "ftp://127.0.0.1/x",
                    "//[::1",
                    "",
                    "relative/loop",
                ]
            )
        )
        headers.append(("Location", target))
    if draw(st.integers(0, 5)) == 0:
        headers.append(
            (
                "Retry-After",
                draw(st.sampled_from(["0", "1_0", "\u00b2", "9" * 30, "-1", "NaN", "Mon, 01 Jan"])),
            )
        )
    if status == 401 or draw(st.integers(0, 7)) == 0:
        headers.append(
            (
                "WWW-Authenticate",
                draw(
                    st.sampled_from(
                        [
                            f'Bearer realm="{base}/token",service="fuzz"',
                            f'Bearer realm="{base}/token?x=1",service="fuzz",scope="a"',
                            'Bearer realm="ftp://nowhere/"',
                            'Bearer realm="https://127.0.0.1:1/token"',
                            "Bearer",
                            'Basic realm="x"',
                            "Negotiate",
                            'Bearer realm="' + "a" * 3000 + '"',
                        ]
                    )
                ),
            )
        )
    if draw(st.integers(0, 9)) == 0:
        headers.append(
            ("Content-Type", draw(st.sampled_from(["text/html", "application/json; charset=x"])))
        )
    length = draw(st.sampled_from([None, None, None, -1, 0, 1, 10**12]))
    if length is not None and length > 0 and body is not None:
        length = min(length, len(body) + 5)
    close_after = draw(st.sampled_from([None, None, None, 0, 5, 20, 120]))
    times = draw(st.sampled_from([1, 1, 2, None]))
    return Fault(
        status=status,
        headers=headers,
        body=body,
        length=length,
        close_after=close_after,
        times=times,
    )


@dataclass
class Scenario:
    faults: dict[str, Fault]
    warm: bool
    with_state: bool
    retries: int


@st.composite
def scenarios(draw: st.DrawFn, base: str) -> Scenario:
    places = draw(st.lists(st.sampled_from(PLACES), min_size=1, max_size=3, unique=True))
    faults = {place: draw(_fault(place, base)) for place in places}
    return Scenario(
        faults=faults,
        warm=draw(st.booleans()),
        with_state=draw(st.booleans()),
        retries=draw(st.integers(0, 2)),
    )


# --------------------------------------------------------------------------- one run


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes (lock files aside: taking a lock is not a change)."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def _signed(raw: bytes) -> object:
    """The ``signed`` part of a role file (what the signatures cover)."""
    return json.loads(raw)["signed"]


_GENUINE_FILES = {f"{role}.json": data for role, data in ROLES.items()}


@dataclass
class Stats:
    runs: int = 0
    trusted: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    peak: int = 0
    slowest: float = 0.0


def run_scenario(server: HostileServer, scenario: Scenario, stats: Stats) -> None:
    """One fetch under ``scenario``; AssertionError when an oracle fails."""
    work = Path(tempfile.mkdtemp(prefix="fuzznet-"))
    try:
        td = work / "trust"
        meta = td / "tuf" / GENUINE_GUN / "metadata"
        if scenario.warm:
            meta.mkdir(parents=True)
            for name, data in _GENUINE_FILES.items():
                (meta / name).write_bytes(data)
        state_dir = work / "state"
        options = Options()
        if scenario.with_state:
            state_dir.mkdir()
            options = Options(state=StateStore(state_dir))
        before_td, before_state = _snapshot(td), _snapshot(state_dir)

        faults = {k: Fault(**vars(v)) for k, v in scenario.faults.items()}  # fresh counters

        def script(key: str) -> Fault | None:
            if key.startswith("/token"):
                key = "/token"
            fault = faults.get(key)
            if fault is None:
                return None
            if fault.times is not None:
                if fault.times <= 0:
                    return None
                fault.times -= 1
            return fault

        server.script = script
        cfg = RemoteConfig(
            server=server.url,
            unsafe_http=True,
            # short: a stalled exchange (a 1xx with nothing after it, a lying
            # length) costs the search this much
            timeout=0.75,
            total_timeout=2.0,
            retries=scenario.retries,
            docker_config=work / "docker",
        )
        started = time.monotonic()
        tracemalloc.start()
        try:
            col = fetch_collection(GENUINE_GUN, TrustDir(td), validation_time(), options, cfg, {})
        except TrustcheckError as e:
            assert "\n" not in e.message, e.message
            assert _snapshot(td) == before_td, f"trust dir changed on failure ({e.code})"
            assert _snapshot(state_dir) == before_state, f"state changed on failure ({e.code})"
            stats.codes[e.code] += 1
        else:
            stats.trusted += 1
            stats.codes["trusted"] += 1
            got = {"root": col.root_raw, "timestamp": col.timestamp.raw}
            got["snapshot"] = col.snapshot.raw
            got.update((name, role.raw) for name, role in col.targets.items())
            assert set(got) == set(ROLES), "a collection other than the genuine one was trusted"
            for role, raw in got.items():
                # bytes may differ only where JSON allows (whitespace around
                # the document: Go's decoder and notary accept it too)
                assert _signed(raw) == _signed(ROLES[role]), (
                    f"a collection other than the genuine one was trusted ({role})"
                )
            for name, data in _snapshot(meta).items():
                assert name in _GENUINE_FILES and _signed(data) == _signed(_GENUINE_FILES[name]), (
                    f"{name} cached with non-genuine content"
                )
        finally:
            _current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            server.script = None
        stats.peak = max(stats.peak, peak)
        stats.slowest = max(stats.slowest, time.monotonic() - started)
        stats.runs += 1
        assert peak < MEMORY_BOUND, f"peak allocations {peak >> 20} MiB"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fuzz(server: HostileServer, examples: int, seed: int | None, stats: Stats) -> None:
    """Run ``examples`` hypothesis examples against ``server``."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=seed is None,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(scenarios(server.url))
    def prop(scenario: Scenario) -> None:
        run_scenario(server, scenario, stats)

    if seed is not None:
        from hypothesis import seed as with_seed

        prop = with_seed(seed)(prop)
    prop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    remote_mod._RETRY_BASE = 0.001  # backoff sleeps add nothing to the search
    stats = Stats()
    started = time.monotonic()
    with HostileServer() as server:
        fuzz(server, args.examples, args.seed, stats)
    wall = time.monotonic() - started
    print(
        json.dumps(
            {
                "examples": stats.runs,
                "wall_s": round(wall, 1),
                "per_s": round(stats.runs / wall, 1) if wall else None,
                "trusted": stats.trusted,
                "outcomes": dict(stats.codes.most_common()),
                "peak_tracemalloc_mib": round(stats.peak / (1 << 20), 1),
                "slowest_s": round(stats.slowest, 2),
                "findings": 0,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
