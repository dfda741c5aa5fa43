"""`trustcheck pull --with skopeo --dest dir:PATH` never leaves a half-written PATH.

The real skopeo copies from a real docker-registry whose layer blob was removed
from its storage: skopeo fails mid-copy (after the manifest resolved and the
config blob was written). The destination must then be exactly as before:
absent when it did not exist, the previous copy when there was one, and no
temporary folder left next to it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fixtures.notary_harness import (
    DockerRegistry,
    NotaryClient,
    NotaryServer,
    TLSMaterial,
    find_binary,
    make_tls,
    missing_notary_binaries,
    push_test_image,
)

pytestmark = pytest.mark.integration

Cli = Callable[..., Any]


@dataclass
class World:
    base: Path
    tls: TLSMaterial
    cert_dir: Path
    server: NotaryServer
    registry: DockerRegistry
    good: str
    broken: str
    digests: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    missing = missing_notary_binaries()
    for tool in ("skopeo", "docker-registry"):
        if find_binary(tool) is None:
            missing.append(tool)
    if missing:
        pytest.skip("!!! PULL TESTS SKIPPED: missing " + ", ".join(missing) + " !!!")
    base = tmp_path_factory.mktemp("pull-dest")
    tls = make_tls(base / "tls")
    cert_dir = base / "registry-ca"
    cert_dir.mkdir()
    shutil.copyfile(tls.ca_cert, cert_dir / "ca.crt")
    with (
        NotaryServer(base / "notary", tls=tls) as server,
        DockerRegistry(base / "registry", tls=tls) as registry,
    ):
        gun = f"{registry.host_port}/team/app"
        pub = NotaryClient.for_server(base / "publisher", server)
        pub.init(gun)
        digests: dict[str, str] = {}
        for tag in ("good", "broken"):
            digest, manifest = push_test_image(
                registry.url, tls.ca_cert, "team/app", tag, seed=tag.encode()
            )
            pub.addhash(gun, tag, len(manifest), digest.removeprefix("sha256:"))
            digests[tag] = digest
            if tag == "broken":
                # the layer blob disappears from the registry's storage
                layer = json.loads(manifest)["layers"][0]["digest"].removeprefix("sha256:")
                blob = (
                    registry.workdir / "data" / "docker" / "registry" / "v2" / "blobs"
                    / "sha256" / layer[:2] / layer / "data"
                )
                assert blob.is_file(), blob
                blob.unlink()
        pub.publish(gun)
        yield World(base, tls, cert_dir, server, registry, f"{gun}:good", f"{gun}:broken",
                    digests)


def _pull(w: World, cli: Cli, tmp: Path, image: str, dest: Path) -> Any:
    return cli(
        "pull", "--with", "skopeo", "--cert-dir", str(w.cert_dir), "--server", w.server.url,
        "--tls-ca", str(w.tls.ca_cert), "--trust-dir", str(tmp / "trust"),
        "--dest", f"dir:{dest}", image,
    )


def test_a_failed_pull_leaves_no_half_written_destination(
    world: World, tmp_path: Path, trustcheck_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world
    monkeypatch.delenv("TRUSTCHECK_OFFLINE", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "copy"
    # the broken image fails mid-copy: nothing is left, not even a temporary folder
    run = _pull(w, trustcheck_cli, tmp_path, w.broken, dest)
    assert run.code == 1 and "[pull-failed]" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert list(out.iterdir()) == []
    # a good copy lands in place
    run = _pull(w, trustcheck_cli, tmp_path, w.good, dest)
    assert run.code == 0, run.stderr
    manifest = (dest / "manifest.json").read_bytes()
    assert "sha256:" + hashlib.sha256(manifest).hexdigest() == w.digests["good"]
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    # a failed pull over an existing copy leaves that copy exactly as it was
    run = _pull(w, trustcheck_cli, tmp_path, w.broken, dest)
    assert run.code == 1 and "[pull-failed]" in run.stderr, run.stderr
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
    assert [p.name for p in out.iterdir()] == ["copy"]
    # and a successful pull replaces it whole
    run = _pull(w, trustcheck_cli, tmp_path, w.good, dest)
    assert run.code == 0, run.stderr
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
    assert [p.name for p in out.iterdir()] == ["copy"]


def test_skopeo_itself_leaves_a_partial_folder(world: World, tmp_path: Path) -> None:
    """Why the temporary folder is needed: skopeo writes into dir: as it goes."""
    import subprocess

    w = world
    dest = tmp_path / "raw"
    done = subprocess.run(
        ["skopeo", "copy", "--src-cert-dir", str(w.cert_dir),
         f"docker://{w.broken.rsplit(':', 1)[0]}@{w.digests['broken']}", f"dir:{dest}"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert done.returncode != 0
    assert dest.is_dir() and any(dest.iterdir())  # a half-written copy
