"""Sigstore's trusted root obtained through trustcheck's TUF 1.0 client.

sigstore's real production root-signing repository (fixtures/tuf/sigstore-root-signing,
commit 60cf2ce8) and an older real set of the same repository (fixtures/sigstore/
root-signing-2025-09-22) are served over loopback HTTP in the layout of
tuf-repo-cdn.sigstore.dev (metadata at the root, consistent snapshots, targets/ by
hash). The chain TUF root -> trusted_root.json -> Fulcio/Rekor -> a real production
bundle is verified by one tool; a rollback of the trusted root is refused.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest

from tests.conftest import BackgroundServer, run_trustcheck
from trustcheck.api import Options
from trustcheck.errors import NotTrusted, UsageError
from trustcheck.local.state import StateStore
from trustcheck.sigstore.config import IdentityRule
from trustcheck.sigstore.keyless import verify_bundle
from trustcheck.sigstore.trustroot import load_trust_root

REPO = Path(__file__).resolve().parents[2] / "fixtures"
CURRENT = REPO / "tuf" / "sigstore-root-signing"
OLD = REPO / "sigstore" / "root-signing-2025-09-22"
BUNDLES = REPO / "sigstore" / "sigstore-python"
AT = datetime(2026, 8, 22, tzinfo=UTC)
AT_OLD = datetime(2025, 9, 23, tzinfo=UTC)
CURRENT_SHA = "6494e21ea73fa7ee769f85f57d5a3e6a08725eae1e38c755fc3517c9e6bc0b66"
OLD_SHA = "6a0c056d20e3e5a7c04f55c2d1f296e7e422edbbf73bf93d36fb8fd2bfe3fcce"
GH = "https://token.actions.githubusercontent.com"
RFC8785 = "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
ROOT_PINS = [
    "spki-sha256:0673582046e91a71682393136788cb919fec710ff32f0405f8d6c1c4e353b32a",
    "spki-sha256:56cf17e59dacce4f7e8c9066fa9d0f6850c038b3778aa3dad8764d3e3a76356b",
    "spki-sha256:982b189ef57e402bd5a68367ccfdcdb0b771460ee3db5c16c78f097f1df4e5ac",
]


class _Cdn(BaseHTTPRequestHandler):
    """tuf-repo-cdn.sigstore.dev's layout over one of the committed sets."""

    #: "current", "old" (the 2025-09-22 set, roots up to v13), "stale-target" (current
    #: metadata, the older trusted_root.json bytes)
    mode: ClassVar[str] = "current"
    hits: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _file(self) -> Path | None:
        path = self.path.split("?", 1)[0]
        mode = type(self).mode
        meta = OLD / "metadata" if mode == "old" else CURRENT
        max_root = 13 if mode == "old" else 15
        if m := re.fullmatch(r"/(\d+)\.root\.json", path):
            n = int(m.group(1))
            return CURRENT / "root_history" / f"{n}.root.json" if n <= max_root else None
        if path == "/root.json":
            return CURRENT / "root_history" / f"{max_root}.root.json"
        if path == "/timestamp.json":
            return meta / "timestamp.json"
        if m := re.fullmatch(r"/(\d+)\.(snapshot|targets)\.json", path):
            f = meta / f"{m.group(2)}.json"
            return f if json.loads(f.read_bytes())["signed"]["version"] == int(m.group(1)) else None
        if re.fullmatch(r"/targets/[0-9a-f]{64,128}\.trusted_root\.json", path):
            old = mode in ("old", "stale-target")
            return (OLD if old else CURRENT) / "targets" / "trusted_root.json"
        return None

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        f = self._file()
        if f is None or not f.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = f.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def cdn() -> Iterator[str]:
    server = BackgroundServer(_Cdn)
    try:
        yield f"http://{server.netloc}"
    finally:
        server.close()


@pytest.fixture(autouse=True)
def _current() -> Iterator[None]:
    _Cdn.mode = "current"
    yield
    _Cdn.mode = "current"


def _opts(state: Path) -> Options:
    return Options(state=StateStore(state))


def test_trusted_root_through_tuf_verifies_a_real_production_bundle(
    cdn: str, tmp_path: Path
) -> None:
    root = load_trust_root(
        f"tuf:{cdn}", at=AT, options=_opts(tmp_path),
        tuf_root=CURRENT / "root_history" / "1.root.json", unsafe_http=True,
    )  # fmt: skip
    assert root.sha256 == CURRENT_SHA
    assert root.details["tuf_role"] == "targets"
    assert root.details["tuf_digest"] == f"sha256:{CURRENT_SHA}"
    # consistent snapshots: the target was fetched by its hash, the roots walked 2..16
    assert f"/targets/{CURRENT_SHA}.trusted_root.json" in _Cdn.hits
    assert "/15.root.json" in _Cdn.hits and "/16.root.json" in _Cdn.hits
    whl = (BUNDLES / "bundle_v3_github.whl").read_bytes()
    res = verify_bundle(
        (BUNDLES / "bundle_v3_github.whl.sigstore").read_bytes(),
        "sha256:" + hashlib.sha256(whl).hexdigest(),
        root,
        AT,
        [IdentityRule(san=RFC8785, issuer=GH)],
    )
    assert res.identity == RFC8785 and res.issuer == GH
    # the next run starts from the root in the state dir (no --tuf-root)
    again = load_trust_root(f"tuf:{cdn}", at=AT, options=_opts(tmp_path), unsafe_http=True)
    assert again.sha256 == CURRENT_SHA


def test_the_older_set_is_genuine_at_its_time(cdn: str, tmp_path: Path) -> None:
    """Control for the rollback test: the 2025-09-22 set is valid then, for a new client."""
    _Cdn.mode = "old"
    root = load_trust_root(
        f"tuf:{cdn}", at=AT_OLD, options=_opts(tmp_path),
        tuf_root=CURRENT / "root_history" / "13.root.json", unsafe_http=True,
    )  # fmt: skip
    assert root.sha256 == OLD_SHA
    # and, like any stale copy, expired today
    with pytest.raises(NotTrusted) as info:
        load_trust_root(f"tuf:{cdn}", at=AT, options=_opts(tmp_path / "b"), unsafe_http=True)
    assert info.value.code == "metadata-expired"


def test_attack_trusted_root_rollback_is_refused(cdn: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    boot = CURRENT / "root.json"
    assert (
        load_trust_root(
            f"tuf:{cdn}", at=AT, options=_opts(state), tuf_root=boot, unsafe_http=True
        ).sha256
        == CURRENT_SHA
    )
    _Cdn.mode = "old"
    for when in (AT, AT_OLD):  # the state decides, not the clock
        with pytest.raises(NotTrusted) as info:
            load_trust_root(f"tuf:{cdn}", at=when, options=_opts(state), unsafe_http=True)
        assert info.value.code == "version-rollback", info.value.message
        assert "v467" in info.value.message and "v762" in info.value.message
    # the older trusted_root.json under the current metadata: not the signed file
    _Cdn.mode = "stale-target"
    with pytest.raises(NotTrusted) as info:
        load_trust_root(f"tuf:{cdn}", at=AT, options=_opts(tmp_path / "fresh"), tuf_root=boot,
                        unsafe_http=True)  # fmt: skip
    assert info.value.code in ("hash-mismatch", "length-exceeded", "target-download-failed")
    assert "trusted_root.json" in info.value.message


def test_cli_through_tuf_pins_and_rollback(cdn: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    pins = tmp_path / "pins.toml"
    args = [
        "cosign", "verify-blob", str(BUNDLES / "bundle_v3_github.whl"), "--bundle",
        str(BUNDLES / "bundle_v3_github.whl.sigstore"), "--certificate-identity", RFC8785,
        "--certificate-oidc-issuer", GH, "--trusted-root", f"tuf:{cdn}", "--unsafe-http",
        "--at", "2026-08-22T00:00:00Z", "--state-dir", str(state), "--pins", str(pins),
        "--no-tofu",
    ]  # fmt: skip
    pins.write_text(f'version = 1\n[pins."{cdn}"]\nroot = ["{ROOT_PINS[0]}"]\n')
    r = run_trustcheck(*args)
    assert r.code == 1 and "[pin-mismatch]" in r.stderr, r
    pins.write_text(f'version = 1\n[pins."{cdn}"]\nroot = {json.dumps(ROOT_PINS)}\n')
    r = run_trustcheck(*args)
    assert r.code == 0 and r.stdout.startswith("TRUSTED"), r
    assert RFC8785 in r.stdout
    _Cdn.mode = "old"
    r = run_trustcheck(*args)
    assert r.code == 1 and "[version-rollback]" in r.stderr and "Traceback" not in r.stderr
    # plain http needs --unsafe-http
    r = run_trustcheck(*[a for a in args if a != "--unsafe-http"])
    assert r.code == 2 and "[insecure-server]" in r.stderr


def test_trust_root_specs_are_checked(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        load_trust_root("tuf:")
    assert info.value.code == "cosign-config-invalid"
    with pytest.raises(UsageError) as info:
        load_trust_root(tmp_path / "none.json")
    assert "cannot read it" in info.value.message
    # a file is trust on file, and said so
    root = load_trust_root(CURRENT / "targets" / "trusted_root.json")
    assert root.sha256 == CURRENT_SHA and root.details["trust"] == "file (trust on file)"
    # a local checkout works offline too (the TUF client reads the folder)
    local = load_trust_root(
        f"tuf:{CURRENT}", at=AT, options=_opts(tmp_path / "s"), tuf_root=CURRENT / "root.json"
    )
    assert local.sha256 == CURRENT_SHA


def test_cached_trusted_root_is_reverified_offline(cdn: str, tmp_path: Path) -> None:
    """--trusted-root-cached: no request to the repository; the copy kept by the online run
    is checked again against the TUF metadata trusted then, at the validation time."""
    state = tmp_path / "state"
    with pytest.raises(UsageError) as info:  # nothing verified before
        load_trust_root(f"tuf:{cdn}", at=AT, options=_opts(state), cached=True)
    assert info.value.code == "cosign-config-invalid" and "run once without" in info.value.message
    boot = CURRENT / "root.json"
    load_trust_root(f"tuf:{cdn}", at=AT, options=_opts(state), tuf_root=boot, unsafe_http=True)
    before = len(_Cdn.hits)
    root = load_trust_root(f"tuf:{cdn}", at=AT, options=_opts(state), cached=True)
    assert root.sha256 == CURRENT_SHA and len(_Cdn.hits) == before
    assert "offline" in root.details["trust"]
    # a week later the kept timestamp has expired: a frozen copy is not trusted forever
    with pytest.raises(NotTrusted) as stale:
        load_trust_root(
            f"tuf:{cdn}", at=datetime(2026, 8, 30, tzinfo=UTC), options=_opts(state), cached=True
        )
    assert stale.value.code == "metadata-expired"
    # the kept copy altered: not the signed target
    kept = next((state / "sigstore" / "v1").iterdir()) / "trusted_root.json"
    kept.write_bytes(kept.read_bytes().replace(b"rekor", b"rekoR", 1))
    with pytest.raises(NotTrusted) as altered:
        load_trust_root(f"tuf:{cdn}", at=AT, options=_opts(state), cached=True)
    assert altered.value.code in ("hash-mismatch", "target-download-failed")
    assert len(_Cdn.hits) == before
