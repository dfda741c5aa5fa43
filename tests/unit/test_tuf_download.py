"""`trustcheck tuf download` / `tuf refresh`, the library's refresh() and download_targets(),
and the tuf-conformance client (trustcheck/tuf/conformance.py).

Target files are served over real loopback HTTP by a server that can misbehave
on purpose: other bytes of the right length, more bytes than signed, a
connection cut half way (with and without a Content-Length), a 404.
Repositories are built with python-tuf's repository API (tests/unit/test_tuf10.py).
"""

from __future__ import annotations

import hashlib
import http.server
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BackgroundServer, tls_server
from tests.unit.test_tuf10 import AT, AT_TEXT, Repo, basic, state_options, tc
from trustcheck.errors import NotTrusted, UsageError
from trustcheck.tuf.client import refresh
from trustcheck.tuf.conformance import run as conformance
from trustcheck.tuf.download import download_targets, local_target_name
from trustcheck.tuf.fetchers import ClientLimits

PAYLOAD = b"the verified artifact\n" * 1000  # 22,000 bytes: several chunks


@dataclass
class Misbehave:
    """What the server does for a target URL tail (else: serve the file)."""

    replace: dict[str, bytes] = field(default_factory=dict)  # other bytes instead
    cut: dict[str, int] = field(default_factory=dict)  # send only N bytes, then close
    no_length: set[str] = field(default_factory=set)  # with cut: no Content-Length either
    hits: list[str] = field(default_factory=list)
    #: request path -> canned answers (status, headers, body), used up one per request
    canned: dict[str, list[tuple[int, dict[str, str], bytes]]] = field(default_factory=dict)


@dataclass
class Site:
    url: str  # .../metadata
    root: Path  # the served folder (metadata/ and targets/)
    repo: Repo
    bad: Misbehave

    @property
    def metadata(self) -> Path:
        return self.root / "metadata"

    def put_target(self, path: str, data: bytes) -> None:
        """The file as python-tuf fetches it with consistent snapshots (dir/HASH.name)."""
        digest = hashlib.sha256(data).hexdigest()
        head, sep, base = path.rpartition("/")
        dest = self.root / "targets" / f"{head}{sep}{digest}.{base}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)

    def url_tail(self, path: str, data: bytes) -> str:
        head, sep, base = path.rpartition("/")
        return f"{head}{sep}{hashlib.sha256(data).hexdigest()}.{base}"


def _handler(root: Path, bad: Misbehave) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            tail = self.path.removeprefix("/targets/")
            bad.hits.append(self.path)
            if bad.canned.get(self.path):
                status, headers, body = bad.canned[self.path].pop(0)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if tail in bad.replace or tail in bad.cut:
                body = bad.replace.get(tail) or (root / "targets" / tail).read_bytes()
                send = body[: bad.cut[tail]] if tail in bad.cut else body
                self.send_response(200)
                if tail not in bad.no_length:
                    self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(send)
                self.wfile.flush()
                self.close_connection = True
                return
            super().do_GET()

    return Handler


def _site(tmp_path: Path) -> Iterator[Site]:
    repo = basic()
    repo.add_target("targets", "bin/app.tgz", PAYLOAD)
    repo.commit()
    root = tmp_path / "www"
    repo.publish(root / "metadata")
    bad = Misbehave()
    server = BackgroundServer(_handler(root, bad))
    try:
        site = Site(f"http://{server.netloc}/metadata", root, repo, bad)
        site.put_target("file.txt", b"hello, TUF\n")
        site.put_target("bin/app.tgz", PAYLOAD)
        yield site
    finally:
        server.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from _site(tmp_path)


def _download(site: Site, tmp_path: Path, *targets: str) -> list[Any]:
    return download_targets(
        site.url, list(targets), tmp_path / "out", AT, state_options(tmp_path), unsafe_http=True
    )


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_download_streams_verifies_and_stores_under_the_target_path(
    site: Site, tmp_path: Path
) -> None:
    (r,) = _download(site, tmp_path, "bin/app.tgz")
    assert r.error is None, r.error
    assert Path(r.file) == tmp_path / "out" / "bin" / "app.tgz"
    assert Path(r.file).read_bytes() == PAYLOAD
    assert (r.digest, r.length, r.role, r.reused) == (
        "sha256:" + hashlib.sha256(PAYLOAD).hexdigest(),
        len(PAYLOAD),
        "targets",
        False,
    )
    # consistent snapshots: fetched as dir/HASH.name, as python-tuf does
    assert f"/targets/{site.url_tail('bin/app.tgz', PAYLOAD)}" in site.bad.hits


def test_a_verified_local_copy_is_reused_and_a_bad_one_replaced(site: Site, tmp_path: Path) -> None:
    (first,) = _download(site, tmp_path, "bin/app.tgz")
    assert first.error is None and not first.reused
    tail = site.url_tail("bin/app.tgz", PAYLOAD)
    (site.root / "targets" / tail).unlink()  # the server no longer has it
    site.bad.hits.clear()
    (again,) = _download(site, tmp_path, "bin/app.tgz")
    assert (again.error, again.reused) == (None, True)
    assert not [h for h in site.bad.hits if h.startswith("/targets/")]
    # a local copy that no longer matches is fetched again (and fails here: the server lost it)
    Path(first.file).write_bytes(PAYLOAD[:-1] + b"X")
    (third,) = _download(site, tmp_path, "bin/app.tgz")
    assert third.error is not None and third.error.code == "target-download-failed"
    assert "HTTP 404" in third.error.message
    site.put_target("bin/app.tgz", PAYLOAD)
    (fourth,) = _download(site, tmp_path, "bin/app.tgz")
    assert (fourth.error, fourth.reused) == (None, False)
    assert Path(fourth.file).read_bytes() == PAYLOAD


def test_other_bytes_of_the_signed_length_are_a_hash_mismatch(site: Site, tmp_path: Path) -> None:
    tail = site.url_tail("bin/app.tgz", PAYLOAD)
    site.bad.replace[tail] = b"X" * len(PAYLOAD)
    (r,) = _download(site, tmp_path, "bin/app.tgz")
    assert r.error is not None and r.error.code == "hash-mismatch"
    assert "sha256" in r.error.message and r.error.role == "targets"
    assert _leftovers(tmp_path / "out") == []  # no partial file, no temp file


def test_more_bytes_than_signed_are_cut_off(site: Site, tmp_path: Path) -> None:
    tail = site.url_tail("bin/app.tgz", PAYLOAD)
    site.bad.replace[tail] = PAYLOAD + b"endless" * 100_000
    (r,) = _download(site, tmp_path, "bin/app.tgz")
    assert r.error is not None and r.error.code == "length-exceeded"
    assert str(len(PAYLOAD)) in r.error.message
    assert _leftovers(tmp_path / "out") == []


def test_a_connection_cut_half_way_stores_nothing(site: Site, tmp_path: Path) -> None:
    tail = site.url_tail("bin/app.tgz", PAYLOAD)
    site.bad.cut[tail] = len(PAYLOAD) // 2
    (r,) = _download(site, tmp_path, "bin/app.tgz")
    # Content-Length announced, fewer bytes sent: the HTTP stack sees the short read
    assert r.error is not None and r.error.code == "network-error", r.error
    assert _leftovers(tmp_path / "out") == []
    # the body was streamed into the file when it broke: not tried again
    assert site.bad.hits.count(f"/targets/{tail}") == 1
    site.bad.no_length.add(tail)  # no Content-Length: the file just ends early
    (r,) = _download(site, tmp_path, "bin/app.tgz")
    assert r.error is not None and r.error.code == "target-download-failed"
    assert f"{len(PAYLOAD) // 2} of the {len(PAYLOAD)} bytes" in r.error.message
    assert _leftovers(tmp_path / "out") == []


def test_every_target_gets_its_own_result(site: Site, tmp_path: Path) -> None:
    results = _download(site, tmp_path, "file.txt", "not/signed.txt", "bin/app.tgz")
    assert [(r.path, r.error.code if r.error else None) for r in results] == [
        ("file.txt", None),
        ("not/signed.txt", "target-not-found"),
        ("bin/app.tgz", None),
    ]


def test_target_paths_that_would_leave_the_folder_are_stored_percent_encoded() -> None:
    assert local_target_name("bin/app.tgz") == "bin/app.tgz"
    for hostile in ("../x", "/etc/passwd", "a//b", "a/./b", ".", "a\\b", "x\x00y", ""):
        name = local_target_name(hostile)
        assert "/" not in name and name not in ("", ".", ".."), hostile
    assert local_target_name("../x") == "..%2Fx"


def test_download_from_a_local_repository_folder(tmp_path: Path) -> None:
    """A local python-tuf layout: repo/metadata and repo/targets (plain names when the root
    has no consistent snapshots); a hostile signed path is stored inside the folder."""
    repo = basic(consistent=False)
    repo.add_target("targets", "../escape.txt", b"e")
    repo.commit()
    repo.publish(tmp_path / "repo" / "metadata")
    (tmp_path / "repo" / "targets").mkdir()
    (tmp_path / "repo" / "targets" / "file.txt").write_bytes(b"hello, TUF\n")
    (tmp_path / "escape.txt").write_bytes(b"e")  # outside the targets folder
    out = tmp_path / "out"
    results = download_targets(
        str(tmp_path / "repo"), ["file.txt", "../escape.txt"], out, AT, state_options(tmp_path)
    )
    assert results[0].error is None and (out / "file.txt").read_bytes() == b"hello, TUF\n"
    err = results[1].error
    assert err is not None and err.code == "target-download-failed"
    assert "cannot be a file" in err.message
    assert _leftovers(out) == ["file.txt"]


def test_refresh_raises_and_keeps_what_verified_before_the_failure(
    site: Site, tmp_path: Path
) -> None:
    opts = state_options(tmp_path)
    result = refresh(site.url, AT, opts, unsafe_http=True)
    assert [r.name for r in result.roles] == ["root", "timestamp", "snapshot", "targets"]
    site.repo.rotate_root()
    site.repo.commit()
    site.repo.publish(site.metadata)
    (site.metadata / "timestamp.json").write_bytes(b"[]")
    with pytest.raises(NotTrusted) as e:
        refresh(site.url, AT, opts, unsafe_http=True)
    assert e.value.code == "invalid-structure"
    (state,) = (tmp_path / "state" / "tuf" / "v1").glob("*/current")
    assert json.loads((state / "root.json").read_bytes())["signed"]["version"] == 2


def test_cli_refresh_and_download(site: Site, tmp_path: Path) -> None:
    common = ["--repo", site.url, "--unsafe-http", "--at", AT_TEXT, "--state-dir", str(tmp_path)]
    ok = tc("tuf", "refresh", *common)
    assert ok.code == 0, ok.stderr
    assert ok.stdout.splitlines()[0].startswith("TRUSTED      root       v1 ")
    out = tmp_path / "dl"
    run = tc("tuf", "download", *common, "-o", str(out), "bin/app.tgz", "file.txt")
    assert run.code == 0, run.stderr
    assert (out / "bin" / "app.tgz").read_bytes() == PAYLOAD
    assert "(downloaded; role targets)" in run.stdout
    again = tc("tuf", "download", *common, "-o", str(out), "--json", "bin/app.tgz")
    assert again.code == 0
    assert json.loads(again.stdout)["results"][0]["reused"] is True
    site.bad.replace[site.url_tail("file.txt", b"hello, TUF\n")] = b"HELLO, TUF\n"
    (out / "file.txt").unlink()
    bad = tc("tuf", "download", *common, "-o", str(out), "file.txt")
    assert bad.code == 1
    assert bad.stdout.startswith("NOT TRUSTED  file.txt  [hash-mismatch] ")
    assert "Traceback" not in bad.stderr
    (site.metadata / "timestamp.json").write_bytes(b"{")
    broken = tc("tuf", "refresh", *common)
    assert broken.code == 1 and "malformed-json" in broken.stderr


def test_conformance_client_protocol(site: Site, tmp_path: Path) -> None:
    """CLIENT-CLI.md of tuf-conformance: init, refresh, download; exit 0 or 1."""
    meta, targets = tmp_path / "cmeta", tmp_path / "ctargets"
    meta.mkdir()
    targets.mkdir()
    (tmp_path / "root.json").write_bytes(site.repo.files["root"][1])
    assert conformance(["--metadata-dir", str(meta), "init", str(tmp_path / "root.json")]) == 0
    assert site.bad.hits == []  # init makes no request
    base = ["--metadata-dir", str(meta), "--metadata-url", site.url]
    assert conformance([*base, "refresh"]) == 0
    assert sorted(p.name for p in meta.glob("*.json")) == [
        "root.json",
        "snapshot.json",
        "targets.json",
        "timestamp.json",
    ]
    dl = [*base, "--target-base-url", site.url.rsplit("/", 1)[0] + "/targets"]
    dl += ["--target-dir", str(targets)]
    assert conformance([*dl, "--target-name", "bin/app.tgz", "download"]) == 0
    assert (targets / "bin" / "app.tgz").read_bytes() == PAYLOAD
    # targets in order; stop at the first failure with exit 1
    assert conformance([*dl, "--target-name", "nope", "--target-name", "file.txt", "download"]) == 1
    assert not (targets / "file.txt").exists()
    (meta / "timestamp.json").unlink()
    (site.metadata / "timestamp.json").write_bytes(b"{")
    assert conformance([*base, "refresh"]) == 1


# --- the one HTTP stack (trustcheck/remote/http.py) for TUF 1.0 repositories -------------


def test_an_error_status_is_retried_after_retry_after_and_404_stays_missing(
    site: Site, tmp_path: Path
) -> None:
    """503 and 429 with Retry-After are tried again (HttpSession's retries); 404 of a
    role file is python-tuf's missing file: ``role-missing``, after one request."""
    site.bad.canned["/metadata/timestamp.json"] = [
        (503, {"Retry-After": "0"}, b"busy"),
        (429, {"Retry-After": "0"}, b"slow down"),
    ]
    result = refresh(site.url, AT, state_options(tmp_path), unsafe_http=True)
    assert [r.name for r in result.roles] == ["root", "timestamp", "snapshot", "targets"]
    assert site.bad.hits.count("/metadata/timestamp.json") == 3
    # 2.root.json answered 404: the end of the root walk, not an error
    assert "/metadata/2.root.json" in site.bad.hits
    site.bad.hits.clear()
    site.bad.canned["/metadata/timestamp.json"] = [(404, {}, b"gone")]
    with pytest.raises(NotTrusted) as e:
        refresh(site.url, AT, state_options(tmp_path), unsafe_http=True)
    assert e.value.code == "role-missing", e.value
    assert "timestamp.json" in e.value.message
    assert site.bad.hits.count("/metadata/timestamp.json") == 1  # a 404 is not retried


def test_metadata_over_the_cap_is_cut_whatever_the_length_or_coding(
    site: Site, tmp_path: Path
) -> None:
    """python-tuf's cap holds on decoded bytes: an announced huge length, an endless body
    and a gzip bomb all end as ``file-too-large`` (not read past the cap + 1)."""
    import gzip

    limits = ClientLimits(timestamp_max_length=4096)
    bomb = gzip.compress(b" " * 50_000_000)
    site.bad.canned["/metadata/timestamp.json"] = [
        (200, {"Content-Length": str(10**12)}, b"{" * 8192),
        (200, {"Content-Encoding": "gzip"}, bomb),
    ]
    for _ in range(2):
        with pytest.raises(NotTrusted) as e:
            refresh(site.url, AT, state_options(tmp_path), limits=limits, unsafe_http=True)
        assert e.value.code == "file-too-large", e.value
        assert "4096" in e.value.message and "timestamp" in e.value.message
    assert len(bomb) < 100_000  # the bomb is small on the wire, 50 MB decoded


def test_https_repository_with_dockers_per_host_tls_folder(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TUF over TLS through HttpSession: the server's CA and the client certificate come
    from $DOCKER_CONFIG/tls/<host:port>/ (the server demands a client certificate); an
    unknown CA is ``tls-error``; a redirect from https to http is refused."""
    config = tmp_path / "docker"
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    with tls_server(_handler(site.root, site.bad), tmp_path, client_auth=True) as srv:
        url = f"https://{srv.netloc}/metadata"
        with pytest.raises(NotTrusted) as e:
            refresh(url, AT, state_options(tmp_path / "a"))
        assert e.value.code == "tls-error", e.value
        assert srv.netloc in e.value.message
        folder = config / "tls" / srv.netloc
        folder.mkdir(parents=True)
        (folder / "ca.crt").write_bytes(srv.ca_file.read_bytes())
        srv.client_cert(folder, "client")
        result = refresh(url, AT, state_options(tmp_path / "b"))
        assert [r.name for r in result.roles] == ["root", "timestamp", "snapshot", "targets"]
        (r,) = download_targets(
            url, ["bin/app.tgz"], tmp_path / "out", AT, state_options(tmp_path / "c")
        )
        assert r.error is None and (tmp_path / "out" / "bin" / "app.tgz").read_bytes() == PAYLOAD
        site.bad.canned["/metadata/timestamp.json"] = [
            (302, {"Location": f"http://{srv.netloc}/metadata/timestamp.json"}, b"")
        ]
        with pytest.raises(NotTrusted) as e:
            refresh(url, AT, state_options(tmp_path / "d"))
        assert e.value.code == "malicious-server", e.value
        assert "non-https" in e.value.message


def test_local_metadata_with_targets_over_http_and_a_retried_target(
    site: Site, tmp_path: Path
) -> None:
    """Metadata from a folder, target files from an http --target-base-url (a session of
    its own); a 503 with Retry-After before any byte of a target is tried again."""
    tail = site.url_tail("bin/app.tgz", PAYLOAD)
    site.bad.canned[f"/targets/{tail}"] = [(503, {"Retry-After": "0"}, b"busy")]
    base = site.url.rsplit("/", 1)[0] + "/targets"
    out = tmp_path / "out"
    (r,) = download_targets(
        str(site.metadata),
        ["bin/app.tgz"],
        out,
        AT,
        state_options(tmp_path),
        target_base_url=base,
        unsafe_http=True,
    )
    assert r.error is None, r.error
    assert (out / "bin" / "app.tgz").read_bytes() == PAYLOAD
    assert site.bad.hits == [f"/targets/{tail}"] * 2
    with pytest.raises(UsageError) as e:  # plain http needs the flag, before any request
        download_targets(
            str(site.metadata), ["file.txt"], out, AT, state_options(tmp_path), target_base_url=base
        )
    assert e.value.code == "insecure-server"
    assert site.bad.hits == [f"/targets/{tail}"] * 2
