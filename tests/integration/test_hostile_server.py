"""trustcheck.remote.notary against a hostile Notary server on loopback (issue 14).

The server (fixtures/hostile_server.py) is a real HTTP(S) server on a real
socket that serves a genuine notary-signed collection and, per request path,
misbehaves in ways a server library never would.  Classes covered, each with
named cases:

* **decoded-size caps** (item 2): stacked content codings (the reviewer's
  ``gzip, gzip`` bomb: 2 GiB decoded from a few KB), unknown codings, a single
  gzip layer past the cap, broken/trailing/truncated gzip, on every response
  kind (ping, each role, error bodies, token answers);
* **deadlines over the whole exchange** (item 3): status line and headers
  dripped one byte at a time, a dripped body, over plain TCP and TLS, a TLS
  handshake that never completes, and the per-collection deadline across
  retries;
* **server-sent numbers** (item 4): token ``expires_in`` of ``1e999``, ``NaN``,
  400 digits...; ``Retry-After`` and ``Content-Length`` spellings;
* **crash isolation** in ``fetch_many`` (item 4);
* **write-back redirection** (item 6): ``metadata/`` and its ancestors swapped
  for a symlink while write-backs run.

Timing is never asserted: a dripping server records whether it got to finish
its answer; the client must have hung up first.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from fixtures.hostile_server import (
    GENUINE_GUN,
    Fault,
    HostileServer,
    genuine_roles,
    gzip_bomb,
    validation_time,
)
from trustcheck.api import Options, load_collection
from trustcheck.errors import TrustcheckError
from trustcheck.local.trustdir import TrustDir
from trustcheck.remote import http as remote_mod
from trustcheck.remote import notary as fetch_mod
from trustcheck.remote.http import RemoteConfig
from trustcheck.remote.notary import fetch_collection, fetch_many

pytestmark = pytest.mark.integration

ROLES = genuine_roles()
BOMB = gzip_bomb(2 << 30)  # the reviewer's case: gzip, gzip -> 2 GiB of zeros


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote_mod, "_RETRY_BASE", 0.001)


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    with HostileServer() as srv:
        yield srv


@pytest.fixture
def srv(server: HostileServer) -> Iterator[HostileServer]:
    server.faults.clear()
    server.script = None
    server.seen.clear()
    yield server
    server.faults.clear()
    server.script = None


def _cfg(srv: HostileServer, **kw: object) -> RemoteConfig:
    opts: dict[str, object] = {
        "server": srv.url,
        "unsafe_http": True,
        "timeout": 2.0,
        "total_timeout": 6.0,
        "retries": 0,
    }
    opts.update(kw)
    return RemoteConfig(**opts)  # type: ignore[arg-type]


def _fetch(srv: HostileServer, td: Path, **kw: object) -> object:
    return fetch_collection(
        GENUINE_GUN, TrustDir(td), validation_time(), Options(), _cfg(srv, **kw), {}
    )


def tree(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _fails(code: str, fn: Callable[..., object], *args: object, **kw: object) -> TrustcheckError:
    with pytest.raises(TrustcheckError) as e:
        fn(*args, **kw)
    assert e.value.code == code, e.value.message
    assert "\n" not in e.value.message
    return e.value


def test_genuine_collection_is_fetched(srv: HostileServer, tmp_path: Path) -> None:
    col = _fetch(srv, tmp_path / "t")
    assert sorted(col.targets) == ["targets"]  # type: ignore[attr-defined]
    meta = tmp_path / "t" / "tuf" / GENUINE_GUN / "metadata"
    assert {p.name for p in meta.iterdir()} == {f"{r}.json" for r in ROLES}
    assert (meta / "root.json").read_bytes() == ROLES["root"]


# --------------------------------------------------------------------------- content codings

_PLACES = ["/v2/", "root", "timestamp", "snapshot", "targets"]


def _zeros_gzip(n: int) -> bytes:
    return gzip_bomb(n, layers=1)


CODING_CASES: dict[str, tuple[list[tuple[str, str]], bytes | None, str]] = {
    # (headers, body (None: the genuine bytes), expected code)
    "gzip-gzip-bomb": ([("Content-Encoding", "gzip, gzip")], BOMB, "malicious-server"),
    "gzip-gzip-two-headers": (
        [("Content-Encoding", "gzip"), ("Content-Encoding", "gzip")],
        BOMB,
        "malicious-server",
    ),
    "gzip-identity-gzip": (
        [("Content-Encoding", "gzip, identity, GZIP")],
        BOMB,
        "malicious-server",
    ),
    # Go decodes only a header that is exactly gzip: notary fails on this too
    "gzip-identity": (
        [("Content-Encoding", "gzip, identity")],
        gzip.compress(b"{}"),
        "malicious-server",
    ),
    "deflate-gzip": ([("Content-Encoding", "deflate, gzip")], BOMB, "malicious-server"),
    # Go's client decodes one gzip layer only: other codings fail in notary too
    "deflate": ([("Content-Encoding", "deflate")], zlib.compress(b"{}"), "malicious-server"),
    "x-gzip": ([("Content-Encoding", "x-gzip")], gzip.compress(b"{}"), "malicious-server"),
    "br": ([("Content-Encoding", "br")], b"\x0b\x02\x80{}\x03", "malicious-server"),
    "zstd": ([("Content-Encoding", "zstd")], b"(\xb5/\xfd", "malicious-server"),
    "compress": ([("Content-Encoding", "compress")], b"\x1f\x9d", "malicious-server"),
    "long-coding-header": ([("Content-Encoding", "gzip," * 200)], BOMB, "malicious-server"),
    "gzip-not-gzip": (
        [("Content-Encoding", "gzip")],
        b"this is not gzip at all",
        "malicious-server",
    ),
    "gzip-trailing-member": (
        [("Content-Encoding", "gzip")],
        gzip.compress(b"{}") + gzip.compress(b"{}"),
        "malicious-server",
    ),
    "gzip-truncated": (
        [("Content-Encoding", "gzip")],
        gzip.compress(b"{}" * 500)[:-12],
        "server-error",
    ),
}


@pytest.mark.parametrize("place", _PLACES)
@pytest.mark.parametrize("case", sorted(CODING_CASES))
def test_content_codings_are_bounded(
    srv: HostileServer, tmp_path: Path, place: str, case: str
) -> None:
    headers, body, code = CODING_CASES[case]
    srv.faults[place] = Fault(headers=headers, body=body)
    td = tmp_path / "t"
    _fails(code, _fetch, srv, td)
    assert tree(td) == {}


@pytest.mark.parametrize(
    ("place", "code"),
    [
        ("timestamp", "file-too-large"),  # 1 MiB cap
        ("root", "file-too-large"),  # 100 MiB cap
        ("snapshot", "length-exceeded"),  # the length the parent role gives
        ("targets", "length-exceeded"),
    ],
)
def test_one_gzip_layer_past_the_cap_is_refused(
    srv: HostileServer, tmp_path: Path, place: str, code: str
) -> None:
    # zeros past the cap, sent without a Content-Length: only the decoded
    # count can stop them (root: 101 MiB decoded from 100 KB on the wire)
    size = (101 << 20) if place == "root" else (2 << 20)
    srv.faults[place] = Fault(
        headers=[("Content-Encoding", "gzip")], body=_zeros_gzip(size), length=-1
    )
    td = tmp_path / "t"
    err = _fails(code, _fetch, srv, td)
    if code == "file-too-large":
        assert "decoded bytes, gzip-encoded" in err.message
    assert tree(td) == {}


@pytest.mark.parametrize("coding", ["gzip", "GZip", " gzip ", "identity", "identity, identity"])
def test_one_honest_gzip_layer_is_decoded(srv: HostileServer, tmp_path: Path, coding: str) -> None:
    for role in ("root", "timestamp", "snapshot", "targets"):
        body = ROLES[role] if "identity" in coding else gzip.compress(ROLES[role])
        srv.faults[role] = Fault(headers=[("Content-Encoding", coding)], body=body)
    _fetch(srv, tmp_path / "t")
    meta = tmp_path / "t" / "tuf" / GENUINE_GUN / "metadata"
    assert (meta / "targets.json").read_bytes() == ROLES["targets"]


@pytest.mark.parametrize("status", [404, 500, 401])
def test_error_bodies_are_bounded_too(srv: HostileServer, tmp_path: Path, status: int) -> None:
    srv.faults["timestamp"] = Fault(
        status=status, headers=[("Content-Encoding", "gzip, gzip")], body=BOMB
    )
    _fails("malicious-server", _fetch, srv, tmp_path / "t")
    # a huge plain error body is cut, never refused for its size
    srv.faults["timestamp"] = Fault(status=500, body=b"x" * (3 << 20))
    err = _fails("server-error", _fetch, srv, tmp_path / "t")
    assert "HTTP 500" in err.message


def _token_server(srv: HostileServer, answer: Fault) -> None:
    challenge = f'Bearer realm="{srv.url}/token",service="hostile"'

    def script(key: str) -> Fault | None:
        if key == "/v2/":
            return Fault(status=401, headers=[("WWW-Authenticate", challenge)], body=b"{}")
        if key.startswith("/token"):
            return answer
        return None

    srv.script = script


@pytest.mark.parametrize(
    ("name", "fault", "code"),
    [
        (
            "token-gzip-gzip-bomb",
            Fault(headers=[("Content-Encoding", "gzip, gzip")], body=BOMB),
            "malicious-server",
        ),
        ("token-huge", Fault(body=b'{"token":"' + b"a" * (2 << 20) + b'"}'), "malicious-server"),
        ("expires-in-1e999", Fault(body=b'{"token":"t","expires_in":1e999}'), "auth-failed"),
        ("expires-in-minus-1e999", Fault(body=b'{"token":"t","expires_in":-1e999}'), "auth-failed"),
        ("expires-in-nan", Fault(body=b'{"token":"t","expires_in":NaN}'), "auth-failed"),
        ("expires-in-infinity", Fault(body=b'{"token":"t","expires_in":Infinity}'), "auth-failed"),
        (
            "expires-in-400-digits",
            Fault(body=b'{"token":"t","expires_in":' + b"9" * 400 + b"}"),
            "auth-failed",
        ),
        (
            "expires-in-5000-digits",
            Fault(body=b'{"token":"t","expires_in":' + b"9" * 5000 + b"}"),
            "auth-failed",
        ),
        ("expires-in-float", Fault(body=b'{"token":"t","expires_in":1.5}'), "auth-failed"),
    ],
)
def test_hostile_token_answers(
    srv: HostileServer, tmp_path: Path, name: str, fault: Fault, code: str
) -> None:
    _token_server(srv, fault)
    td = tmp_path / "t"
    _fails(code, _fetch, srv, td)
    assert tree(td) == {}
    assert any(p.startswith("/token") for p in srv.seen), name


# --------------------------------------------------------------------------- deadlines


class Recording:
    """Wraps a server's drip so the test can tell whether it ever finished."""

    def __init__(self) -> None:
        self.finished = threading.Event()


def _dripping(
    srv: HostileServer, place: str, mp: pytest.MonkeyPatch, *, body: bool = False
) -> Recording:
    rec = Recording()
    genuine = b"{}" if place == "/v2/" else ROLES[place]
    fault = Fault(
        body=genuine,
        headers=[("X-Padding", "p" * 200)],
        drip=0.05,
        drip_body=body,
    )

    def script(key: str) -> Fault | None:
        return fault if key == place else None

    srv.script = script
    original = srv._answer

    def answer(stream: socket.socket, path: str) -> bool:
        keep = original(stream, path)
        if srv._genuine(path)[0] == place:
            rec.finished.set()
        return keep

    mp.setattr(srv, "_answer", answer)
    return rec


@pytest.mark.parametrize("place", ["/v2/", "timestamp", "snapshot", "root"])
@pytest.mark.parametrize("body", [False, True], ids=["headers", "body"])
def test_dripping_answers_are_cut_at_the_deadline(
    srv: HostileServer, tmp_path: Path, place: str, body: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ~300 bytes at one byte per 50 ms: 15 s to finish; the timeout is 0.5 s
    rec = _dripping(srv, place, monkeypatch, body=body)
    td = tmp_path / "t"
    # a ping that times out counts as offline, and without a cache that is
    # server-timeout too: every place ends the same way
    _fails("server-timeout", _fetch, srv, td, timeout=0.5, total_timeout=1.0)
    assert not rec.finished.is_set()
    assert tree(td) == {}


def test_collection_deadline_spans_retries(
    srv: HostileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = _dripping(srv, "timestamp", monkeypatch)
    # ten retries allowed, but the collection's 1.2 s end them after two or three
    _fails(
        "server-timeout", _fetch, srv, tmp_path / "t", timeout=0.5, total_timeout=1.2, retries=10
    )
    attempts = sum(p.endswith("/timestamp.json") for p in srv.seen)
    assert 1 <= attempts <= 3
    assert not rec.finished.is_set()


@pytest.fixture(scope="module")
def tls_pair() -> tuple[trustme.CA, ssl.SSLContext]:
    ca = trustme.CA()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    return ca, ctx


def test_dripping_over_tls(
    tls_pair: tuple[trustme.CA, ssl.SSLContext], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, ctx = tls_pair
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with HostileServer(tls=ctx) as tls_srv:
        cfg: dict[str, object] = {
            "unsafe_http": False,
            "tls_ca": ca_file,
            "docker_config": tmp_path,
        }
        _fetch(tls_srv, tmp_path / "ok", **cfg)  # genuine over TLS first
        rec = _dripping(tls_srv, "timestamp", monkeypatch)
        _fails(
            "server-timeout", _fetch, tls_srv, tmp_path / "t", timeout=0.5, total_timeout=1.0, **cfg
        )
        assert not rec.finished.is_set()


def test_tls_handshake_that_never_completes(tmp_path: Path) -> None:
    # accepts TCP, then says nothing: the TLS handshake must end at the deadline
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        cfg = RemoteConfig(
            server=f"https://127.0.0.1:{port}",
            timeout=0.5,
            total_timeout=1.0,
            retries=0,
            docker_config=tmp_path,
        )
        td = tmp_path / "t"
        _fails(
            "server-timeout",
            fetch_collection,
            GENUINE_GUN,
            TrustDir(td),
            validation_time(),
            Options(),
            cfg,
            {},
        )
        assert held  # the connection was made; the handshake is what stalled
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()


# --------------------------------------------------------------------------- numbers from servers


@pytest.mark.parametrize(
    "value",
    [
        "\u00b2",
        "\u0663",
        "99999999999999999999999",
        "1_0",
        "-1",
        "1e999",
        "NaN",
        "Fri, 31 Dec 1999 23:59:59 GMT",
        "0x10",
        " 1 ",
        "",
    ],
    ids=[
        "superscript-two",
        "arabic-three",
        "23-digits",
        "underscore",
        "negative",
        "1e999",
        "nan",
        "http-date",
        "hex",
        "spaces",
        "empty",
    ],
)
def test_hostile_retry_after_is_ignored(srv: HostileServer, tmp_path: Path, value: str) -> None:
    srv.faults["timestamp"] = Fault(
        status=503, headers=[("Retry-After", value)], body=b"busy", times=1
    )
    _fetch(srv, tmp_path / "t", retries=1)  # retried after the usual backoff, then trusted
    assert sum(p.endswith("/timestamp.json") for p in srv.seen) == 2


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("1_000", "network-error"),
        ("+100", "network-error"),
        ("\u0661\u0660\u0660", "network-error"),
        ("1" * 30, "network-error"),
        ("99999999999", "malicious-server"),
    ],
    ids=["underscore", "plus", "arabic-digits", "30-digits", "over-cap"],
)
def test_hostile_content_length(srv: HostileServer, tmp_path: Path, value: str, code: str) -> None:
    # h11 refuses a malformed length as a protocol error (network-error);
    # a well-formed one above the cap is notary's ErrMaliciousServer
    srv.faults["timestamp"] = Fault(headers=[("Content-Length", value)])
    td = tmp_path / "t"
    _fails(code, _fetch, srv, td)
    assert tree(td) == {}


# --------------------------------------------------------------------------- crash isolation


def test_fetch_many_keeps_every_other_result(
    srv: HostileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_verify = fetch_mod.verify_collection
    boom = {"localhost/broken": MemoryError, "localhost/bug": RuntimeError}

    def verify(gun: str, *args: object) -> object:
        if gun in boom:
            raise boom[gun]("injected fault")
        return real_verify(gun, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(fetch_mod, "verify_collection", verify)
    # the server serves the genuine collection under every name
    guns = ["localhost/broken", GENUINE_GUN, "localhost/bug"]
    original = srv._genuine

    def genuine(path: str) -> tuple[str, bytes | None]:
        for gun in boom:
            path = path.replace(f"/v2/{gun}/", f"/v2/{GENUINE_GUN}/")
        return original(path)

    monkeypatch.setattr(srv, "_genuine", genuine)
    results = fetch_many(
        guns, TrustDir(tmp_path / "t"), validation_time(), Options(), _cfg(srv, concurrency=3)
    )
    assert list(results) == guns
    ok = results[GENUINE_GUN]
    assert not isinstance(ok, TrustcheckError)
    for gun, exc in boom.items():
        err = results[gun]
        assert isinstance(err, TrustcheckError)
        assert err.code == "internal-error"
        assert exc.__name__ in err.message
    # offline mode isolates the same way
    monkeypatch.setattr(
        fetch_mod, "load_collection", lambda *a, **k: (_ for _ in ()).throw(ValueError("x"))
    )
    offline = fetch_many(
        guns, TrustDir(tmp_path / "t"), validation_time(), Options(), _cfg(srv, offline=True)
    )
    assert {g: getattr(r, "code", None) for g, r in offline.items()} == dict.fromkeys(
        guns, "internal-error"
    )


# --------------------------------------------------------------------------- write-back


def _swapper(target: Path, outside: Path, stop: threading.Event, count: list[int]) -> None:
    """Keep swapping ``target`` (a folder) for a symlink to ``outside`` and back."""
    aside = target.with_name(target.name + ".aside")
    extra = 0
    while not stop.is_set():
        try:
            os.rename(target, aside)
        except OSError:
            time.sleep(0.0005)
            continue
        try:
            os.symlink(outside, target)
        except FileExistsError:
            pass  # the write-back re-created the folder in the gap
        else:
            count[0] += 1
            time.sleep(0.0002)
            os.unlink(target)
        while True:
            try:
                os.rename(aside, target)
                break
            except OSError:  # a folder made in the gap: keep it aside (inside the trust dir)
                extra += 1
                with contextlib.suppress(OSError):
                    os.rename(target, target.with_name(f"{target.name}.extra{extra}"))
        time.sleep(0.0002)


@pytest.mark.parametrize("level", ["metadata", "gun", "namespace", "tuf"])
def test_write_back_cannot_be_redirected(tmp_path: Path, level: str) -> None:
    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "generated" / "trust"
    col = load_collection(TrustDir(fixture), GENUINE_GUN, validation_time(), Options())
    td = TrustDir(tmp_path / "trust")
    meta = td.metadata_dir(GENUINE_GUN)
    meta.mkdir(parents=True)
    target = {
        "metadata": meta,
        "gun": meta.parent,
        "namespace": meta.parent.parent,
        "tuf": td.root / "tuf",
    }[level]
    outside = tmp_path / "outside"
    outside.mkdir()
    # the same layout outside, so a followed symlink would find folders to write into
    (outside / "metadata").mkdir()
    (outside / "basic" / "metadata").mkdir(parents=True)
    (outside / "localhost" / "basic" / "metadata").mkdir(parents=True)
    stop = threading.Event()
    swaps = [0]
    thread = threading.Thread(target=_swapper, args=(target, outside, stop, swaps), daemon=True)
    written = refused = 0
    thread.start()
    try:
        # at least 300 write-backs, and on until the swapper raced 50 times
        rounds = 0
        while rounds < 300 or (swaps[0] <= 50 and rounds < 20_000):
            rounds += 1
            seen: dict[str, bytes | None] = dict.fromkeys(
                ("root", "timestamp", "snapshot", "targets")
            )
            try:
                fetch_mod._write_back(td, GENUINE_GUN, col, seen)
                written += 1
            except TrustcheckError as e:
                assert e.code in ("unsafe-path", "trust-dir-unwritable"), e.message
                refused += 1
    finally:
        stop.set()
        thread.join(5)
    assert swaps[0] > 50  # the race really ran
    assert written > 0
    assert [p for p in outside.rglob("*") if p.is_file()] == []
    fetch_mod._write_back(td, GENUINE_GUN, col, {})  # and a calm one afterwards works
    assert {p.name for p in meta.iterdir() if not p.name.startswith(".")} == {
        f"{r}.json" for r in ("root", "timestamp", "snapshot", "targets")
    }
    assert [p.name for p in meta.iterdir() if p.name.endswith(".tmp")] == []


def test_write_back_refuses_a_symlinked_metadata_folder(tmp_path: Path) -> None:
    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "generated" / "trust"
    col = load_collection(TrustDir(fixture), GENUINE_GUN, validation_time(), Options())
    td = TrustDir(tmp_path / "trust")
    meta = td.metadata_dir(GENUINE_GUN)
    meta.parent.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    meta.symlink_to(outside)
    _fails("unsafe-path", fetch_mod._write_back, td, GENUINE_GUN, col, {})
    assert list(outside.iterdir()) == []
    # a symlink that stays inside the trust dir is followed (written at its real place)
    meta.unlink()
    inside = td.root / "elsewhere"
    inside.mkdir()
    meta.symlink_to(inside)
    fetch_mod._write_back(td, GENUINE_GUN, col, {})
    assert (inside / "root.json").read_bytes() == ROLES["root"]
    # a role file that is a symlink out is replaced, never written through
    victim = outside / "victim"
    victim.write_bytes(b"keep")
    (inside / "timestamp.json").unlink()
    (inside / "timestamp.json").symlink_to(victim)
    fetch_mod._write_back(td, GENUINE_GUN, col, {"timestamp": None})
    assert victim.read_bytes() == b"keep"
    assert (inside / "timestamp.json").read_bytes() == ROLES["timestamp"]
    assert not (inside / "timestamp.json").is_symlink()


def test_an_empty_compressed_body_is_empty(srv: HostileServer, tmp_path: Path) -> None:
    # a 404 that says gzip and sends nothing is still a plain 404 (no trust data)
    srv.faults["root"] = Fault(status=404, headers=[("Content-Encoding", "gzip")], body=b"")
    _fails("no-trust-data", _fetch, srv, tmp_path / "t")


def test_cli_verify_json_reports_the_bomb(srv: HostileServer, tmp_path: Path) -> None:
    # the reviewer's case end to end: one JSON document, exit 1, no traceback
    import json
    import subprocess
    import sys

    srv.faults["timestamp"] = Fault(headers=[("Content-Encoding", "gzip, gzip")], body=BOMB)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "DOCKER_CONFIG": str(tmp_path / "docker"),
        "TRUSTCHECK_STATE_DIR": str(tmp_path / "state"),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "trustcheck",
            "verify",
            "--json",
            "--server",
            srv.url,
            "--unsafe-http",
            "--timeout",
            "2",
            "--trust-dir",
            str(tmp_path / "t"),
            "--at",
            validation_time().isoformat().replace("+00:00", "Z"),
            f"{GENUINE_GUN}:v1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert [r["error"]["code"] for r in doc["results"]] == ["malicious-server"]
    assert "Traceback" not in done.stderr
    assert tree(tmp_path / "t") == {}


def test_whole_fetches_racing_a_symlink_swap(srv: HostileServer, tmp_path: Path) -> None:
    # reads of the cache and the write-back both race the swapper: every
    # outcome is trusted or a named error, and nothing lands outside
    td = TrustDir(tmp_path / "trust")
    meta = td.metadata_dir(GENUINE_GUN)
    meta.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    for role, data in ROLES.items():  # what a followed link would find
        (outside / f"{role}.json").write_bytes(data)
    before = tree(outside)
    stop = threading.Event()
    swaps = [0]
    thread = threading.Thread(target=_swapper, args=(meta, outside, stop, swaps), daemon=True)
    outcomes: dict[str, int] = {}
    thread.start()
    try:
        for _ in range(40):
            with contextlib.suppress(OSError):  # so that every fetch writes (never via a link)
                fd = os.open(meta, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
                try:
                    for name in os.listdir(fd):
                        with contextlib.suppress(OSError):
                            os.unlink(name, dir_fd=fd)
                finally:
                    os.close(fd)
            try:
                _fetch(srv, td.root)
                outcomes["trusted"] = outcomes.get("trusted", 0) + 1
            except TrustcheckError as e:
                outcomes[e.code] = outcomes.get(e.code, 0) + 1
    finally:
        stop.set()
        thread.join(5)
    assert swaps[0] > 0
    assert sum(outcomes.values()) == 40
    _fetch(srv, td.root)  # once the swapping stops, the cache is usable again
    assert set(outcomes) <= {
        "trusted",
        "unsafe-path",
        "trust-dir-unwritable",
        "trust-dir-unreadable",
    }
    assert tree(outside) == before
