"""The release check: what users install is what is tested.

Run by ``make test`` (so by CI). Nothing here imports trustcheck from the source
tree: every trustcheck command runs from an installed wheel, in a temporary
directory outside the repository.

1. ``python -m build`` makes the sdist and, from it, the wheel; both are compared
   with the source tree (every package, module and data file under trustcheck/
   ships; license metadata; the web stack is the ``webhook`` extra).
2. The wheel is installed with ``--no-index --no-deps`` into a fresh venv
   outside the repository (its dependencies come from the package index or
   pip's cache). With only the core dependencies, ``trustcheck serve`` refuses
   with ``extra-missing`` (exit 2); then the extras are added and, with the
   working directory outside the repository, every command and sub-command's
   ``--help`` runs (discovered from the help screens themselves, not from a
   list), a real ``verify``/``inspect``/``gate``/``audit``/``doctor --offline``
   runs on a copy of fixtures/generated, and ``trustcheck serve`` answers
   AdmissionReviews over TLS (trustme CA) in front of a real notary-server.
3. deploy/Dockerfile is replayed step by step: the build context is the
   repository filtered by .dockerignore (Docker's matching rules), each stage's
   ``python:*-slim`` base is a fresh venv at ``<stage root>/usr/local``, absolute
   paths are mapped under the stage root, and RUN/COPY/ENV/USER/ENTRYPOINT are
   carried out as written. The image's entrypoint then runs as the pod's
   securityContext says: uid/gid 65532, no supplementary groups, HOME=/, and a
   read-only root (every mount read-only in a private mount namespace except
   the emptyDir /var/lib/trustcheck), with the arguments, ConfigMaps and mounts
   of the Deployment in deploy/base/trustcheck.yaml: ``verify`` and ``serve``
   answering reviews; without TRUSTCHECK_STATE_DIR a one-line exit 2.
4. With a container runtime that can run containers here, the real image is
   built and run; without one the test is skipped with the runtime's own error.

Every command run (with its exit code) is printed in the terminal summary and
written to ``$TMPDIR/trustcheck-release-commands.txt``: the list release notes cite.
"""

from __future__ import annotations

import base64
import email.parser
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import ssl
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import yaml
from packaging.requirements import Requirement

from fixtures.notary_harness import (
    NotaryClient,
    NotaryServer,
    free_port,
    make_tls,
    missing_notary_binaries,
)

pytestmark = pytest.mark.release

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures" / "generated"
IMAGE_UID = 65532
REG = "registry.example.com"
APP = f"{REG}/team/app"


# --------------------------------------------------------------------------- recording runs


@dataclass(frozen=True)
class Ran:
    argv: tuple[str, ...]
    code: int
    out: str
    err: str


@dataclass
class Recorder:
    """Runs commands and writes each one (with its exit code) to the log."""

    base: Path
    lines: list[str] = field(default_factory=list)

    def show(self, argv: Sequence[str | os.PathLike[str]]) -> str:
        text = shlex.join(str(a) for a in argv)
        return text.replace(str(self.base), "$REL").replace(sys.executable, "$DEVPYTHON")

    def note(self, text: str) -> None:
        self.lines.append(text)

    def run(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        cwd: Path,
        env: dict[str, str] | None = None,
        jail: Jail | None = None,
        timeout: float = 300,
        check: bool = False,
        label: str = "",
    ) -> Ran:
        start = time.monotonic()
        p = subprocess.run(
            jail.wrap(argv) if jail is not None else [str(a) for a in argv],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        who = f"[{jail.show(self)}] " if jail is not None else ""
        self.lines.append(f"{label}{who}{self.show(argv)}  -> exit {p.returncode} "
                          f"({time.monotonic() - start:.1f} s)")
        ran = Ran(tuple(str(a) for a in argv), p.returncode, p.stdout, p.stderr)
        if check and p.returncode != 0:
            pytest.fail(f"{self.show(argv)} exited {p.returncode}:\n{p.stdout[-3000:]}\n"
                        f"{p.stderr[-3000:]}")
        return ran


class _Summary:
    """A plugin registered at run time (no conftest.py here: tests import `conftest` by
    name, and a second one would shadow tests/conftest.py)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.lines:
            terminalreporter.section("release check: commands run from the built wheel and image")
            for line in self.lines:
                terminalreporter.write_line(line)


@pytest.fixture(scope="module")
def release_summary(request: pytest.FixtureRequest) -> list[str]:
    """Lines for the terminal summary (CI's log then cites the commands)."""
    summary = _Summary()
    request.config.pluginmanager.register(summary, "trustcheck-release-summary")
    return summary.lines


@pytest.fixture(scope="module")
def rel(release_summary: list[str]) -> Iterator[Recorder]:
    """A 0755 directory outside the repository (uid 65532 must reach the image replay)."""
    base = Path(tempfile.mkdtemp(prefix="trustcheck-release-")).resolve()
    assert REPO not in base.parents
    base.chmod(0o755)
    rec = Recorder(base)
    rec.note(f"# $REL = {base}; $DEVPYTHON = {sys.executable}; repository {REPO}")
    start = time.monotonic()
    try:
        yield rec
    finally:
        rec.note(f"# release check wall time: {time.monotonic() - start:.1f} s")
        log = Path(tempfile.gettempdir()) / "trustcheck-release-commands.txt"
        log.write_text("\n".join(rec.lines) + "\n")
        count = sum(1 for x in rec.lines if not x.startswith("#"))
        release_summary.extend([*rec.lines, f"# {count} commands; also in {log}"])
        shutil.rmtree(base, ignore_errors=True)


def clean_env(home: Path, path: Sequence[Path], **extra: str) -> dict[str, str]:
    """An environment that knows nothing of the source tree or the dev venv."""
    env = {
        "PATH": os.pathsep.join([*map(str, path), "/usr/bin", "/bin"]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "COLUMNS": "200",
        "TERM": "dumb",
        "NO_COLOR": "1",
    }
    for name in ("PIP_FIND_LINKS", "PIP_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_INDEX_URL",
                 "PIP_EXTRA_INDEX_URL", "PIP_CONFIG_FILE", "SSL_CERT_FILE"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra)
    return env


def pip(venv_python: Path) -> list[str]:
    """The dev venv's pip, installing into another interpreter (no pip in the new venv)."""
    return [sys.executable, "-m", "pip", "--python", str(venv_python)]


# --------------------------------------------------------------------------- 1. build


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path
    log: str


@pytest.fixture(scope="module")
def dist(rel: Recorder) -> Dist:
    out = rel.base / "dist"
    ran = rel.run([sys.executable, "-m", "build", "--outdir", out, REPO], cwd=rel.base,
                  check=True, label="build: ")
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return Dist(wheels[0], sdists[0], ran.out + ran.err)


def _cache_or_hidden(rel: Path) -> bool:
    return any(part == "__pycache__" or part.startswith(".") for part in rel.parts) or (
        rel.suffix in (".pyc", ".pyo", ".pyd")
    )


def source_files() -> set[str]:
    """Every file under trustcheck/ that a user must get (caches and dot files left out)."""
    out = set()
    for p in (REPO / "trustcheck").rglob("*"):
        rel = p.relative_to(REPO)
        if p.is_file() and not _cache_or_hidden(rel):
            out.add(rel.as_posix())
    return out


def test_every_directory_is_a_package() -> None:
    """Package discovery skips a directory without __init__.py (namespaces are off), and
    package data is taken from package folders: a plain folder would be left out."""
    missing = sorted(
        d.relative_to(REPO).as_posix()
        for d in (REPO / "trustcheck").rglob("*")
        if d.is_dir() and not _cache_or_hidden(d.relative_to(REPO))
        and not (d / "__init__.py").is_file()
    )
    assert not missing, f"add __init__.py to {missing}: without it the wheel leaves them out"


def test_wheel_and_sdist_ship_every_file_of_the_package(dist: Dist) -> None:
    expected = source_files()
    packages = {Path(f).parent.as_posix() for f in expected if f.endswith("/__init__.py")}
    assert {"trustcheck", "trustcheck/cli"} <= packages
    assert "trustcheck/py.typed" in expected
    with zipfile.ZipFile(dist.wheel) as z:
        names = z.namelist()
    in_wheel = {n for n in names if n.startswith("trustcheck/")}
    strays = [n for n in names if not n.startswith(("trustcheck/", "trustcheck-"))]
    assert not strays, f"the wheel ships more than trustcheck: {strays}"
    assert in_wheel == expected, (
        f"missing from the wheel: {sorted(expected - in_wheel)}; "
        f"not in the source tree: {sorted(in_wheel - expected)}"
    )
    wheel_packages = {Path(n).parent.as_posix() for n in in_wheel if n.endswith("/__init__.py")}
    assert wheel_packages == packages
    with tarfile.open(dist.sdist) as t:
        members = [m.name.split("/", 1)[1] for m in t.getmembers() if "/" in m.name and m.isfile()]
    in_sdist = {m for m in members if m.startswith("trustcheck/")}
    assert in_sdist == expected, sorted(expected ^ in_sdist)
    assert {"LICENSE", "README.md", "pyproject.toml"} <= set(members)


def test_wheel_metadata_license_and_extras(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as z:
        info = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(z.read(info).decode())
        licenses = [n for n in z.namelist() if ".dist-info/licenses/" in n]
        license_text = z.read(licenses[0]).decode() if licenses else ""
        entry_points = z.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert re.search(r"^trustcheck = trustcheck[.\w]*:\w+$", entry_points, re.M), entry_points
    assert set(meta.get_all("Provides-Extra") or []) >= {"webhook", "redis", "dev"}
    core = {Requirement(r).name for r in meta.get_all("Requires-Dist") or []
            if Requirement(r).marker is None}
    webhook = {Requirement(r).name for r in meta.get_all("Requires-Dist") or []
               if Requirement(r).marker is not None
               and Requirement(r).marker.evaluate({"extra": "webhook"})}  # type: ignore[union-attr]
    assert {"starlette", "uvicorn", "prometheus-client"} <= webhook
    assert not core & {"starlette", "uvicorn", "prometheus-client", "redis"}, core


def test_build_has_no_packaging_warnings(dist: Dist) -> None:
    """setuptools' deprecations (license tables, classifiers) and MANIFEST.in misses are
    errors here; the byte-compiling notes come from PYTHONDONTWRITEBYTECODE, not from us."""
    bad = [
        line for line in dist.log.splitlines()
        if re.search(r"^\s*warning:|warning|deprecat", line, re.I)
        and "byte-compiling is disabled" not in line
        and "neither a file nor a directory" not in line  # pip: this machine's index list
    ]
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------------- 2. the installed wheel


@dataclass(frozen=True)
class Installed:
    venv: Path
    bin: Path
    work: Path
    env: dict[str, str]
    serve_without_extra: Ran
    requires: tuple[str, ...]


def requirements(wheel: Path, extras: Sequence[str]) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        info = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(z.read(info).decode())
    out = []
    for text in meta.get_all("Requires-Dist") or []:
        req = Requirement(text)
        envs = [{"extra": e} for e in ("", *extras)]
        if req.marker is None or any(req.marker.evaluate(e) for e in envs):
            req.marker = None
            out.append(str(req))
    return out


@pytest.fixture(scope="module")
def installed(rel: Recorder, dist: Dist) -> Installed:
    venv = rel.base / "venv"
    work = rel.base / "work"
    home = rel.base / "home"
    work.mkdir()
    home.mkdir()
    rel.run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=work, check=True,
            label="install: ")
    py = venv / "bin" / "python"
    rel.run([*pip(py), "install", "-q", "--no-index", "--no-deps", dist.wheel], cwd=work,
            check=True, label="install: ")
    core = requirements(dist.wheel, ())
    rel.run([*pip(py), "install", "-q", *core], cwd=work, check=True, label="install: ")
    env = clean_env(home, [venv / "bin"])
    bin_ = venv / "bin" / "trustcheck"
    # before the extras: serve must refuse in one line, exit 2
    without = rel.run([bin_, "serve", "--policy", "p.yaml", "--tls-cert", "c", "--tls-key", "k"],
                      cwd=work, env=env, label="core only: ")
    full = requirements(dist.wheel, ("webhook", "redis"))
    rel.run([*pip(py), "install", "-q", *full], cwd=work, check=True, label="install: ")
    rel.run([*pip(py), "check"], cwd=work, check=True, label="install: ")
    return Installed(venv, bin_, work, env, without, tuple(full))


def test_installed_from_the_wheel_not_the_source_tree(rel: Recorder, installed: Installed) -> None:
    i = installed
    ran = rel.run([i.venv / "bin" / "python", "-c",
                   "import trustcheck, trustcheck.cli, sys; print(trustcheck.__file__)"],
                  cwd=i.work, env=i.env, check=True)
    where = Path(ran.out.strip())
    assert i.venv in where.parents and REPO not in where.parents, where
    version = rel.run([i.bin, "--version"], cwd=i.work, env=i.env, check=True)
    as_module = rel.run([i.venv / "bin" / "python", "-m", "trustcheck", "--version"],
                        cwd=i.work, env=i.env, check=True)
    assert version.out.split() == ["trustcheck", "0.1.0"], version.out
    assert as_module.out == version.out


def test_serve_without_the_webhook_extra_is_one_usage_line(installed: Installed) -> None:
    r = installed.serve_without_extra
    assert r.code == 2, r
    assert r.out == "" and len(r.err.strip().splitlines()) == 1, r.err
    assert "[extra-missing]" in r.err and "pip install 'trustcheck[webhook]'" in r.err, r.err
    assert "Traceback" not in r.err


def _commands_of(help_text: str) -> list[str]:
    """Command names in the 'Commands' panels of a typer/rich help screen."""
    names: list[str] = []
    inside = False
    for line in help_text.splitlines():
        if re.match(r"^╭─ .*Commands", line):
            inside = True
        elif line.startswith("╰"):
            inside = False
        elif inside:
            m = re.match(r"^│ ([a-z][\w-]*)(?:\s|│)", line)
            if m:
                names.append(m.group(1))
    return names


def discover_help(rel: Recorder, bin_: Path, cwd: Path, env: dict[str, str]) -> dict[str, Ran]:
    """Walk the command tree from `trustcheck --help` down, running every --help."""
    seen: dict[str, Ran] = {}
    level: list[tuple[str, ...]] = [()]
    with ThreadPoolExecutor(max_workers=4) as pool:
        while level:
            runs = list(pool.map(
                lambda path: (path, rel.run([bin_, *path, "--help"], cwd=cwd, env=env,
                                            label="help: ")),
                level,
            ))
            level = []
            for path, ran in runs:
                seen[" ".join(path)] = ran
                level += [(*path, name) for name in _commands_of(ran.out)]
    return seen


def test_every_command_and_subcommand_help(rel: Recorder, installed: Installed) -> None:
    i = installed
    seen = discover_help(rel, i.bin, i.work, i.env)
    top = _commands_of(seen[""].out)
    assert {"verify", "serve", "tuf"} <= set(top), top
    assert any(" " in name for name in seen), "no sub-command found (tuf, pin, policy...)"
    for name, ran in seen.items():
        assert ran.code == 0, f"trustcheck {name} --help: exit {ran.code}\n{ran.err}"
        assert ran.err == "", f"trustcheck {name} --help wrote to stderr: {ran.err}"
        assert re.search(rf"Usage: trustcheck {re.escape(name)}".rstrip(), ran.out), ran.out[:300]
        assert "{" not in ran.out.split("Usage:", 1)[1].splitlines()[0], ran.out[:300]
    rel.note(f"# --help ran for {len(seen)} commands: " + ", ".join(
        repr("trustcheck " + n if n else "trustcheck") for n in sorted(seen)))


@dataclass(frozen=True)
class Data:
    trust: Path
    at: str
    expected: dict[str, dict[str, str]]  # GUN -> tag -> digest (what `docker trust inspect` said)


@pytest.fixture(scope="module")
def data(rel: Recorder) -> Data:
    """fixtures/generated copied out of the repository, readable by everyone."""
    dst = rel.base / "data"
    shutil.copytree(FIXTURES / "trust", dst / "trust")
    for p in [dst, *dst.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    expected: dict[str, dict[str, str]] = {}
    for repo in manifest["repos"]:
        for doc in (repo.get("docker_inspect") or {}).get("json") or []:
            if ":" not in doc["Name"]:
                tags = {t["SignedTag"]: t["Digest"] for t in doc["SignedTags"]}
                expected[doc["Name"]] = tags
    assert "localhost/basic" in expected
    return Data(dst / "trust", (FIXTURES / "VALIDATION_TIME").read_text().strip(), expected)


def test_real_commands_on_bundled_trust_data(rel: Recorder, installed: Installed,
                                             data: Data) -> None:
    i, d = installed, data
    state = rel.base / "state-cli"
    common = ["--trust-dir", str(d.trust), "--at", d.at]
    basic_v1 = "sha256:" + d.expected["localhost/basic"]["v1"]

    ver = rel.run([i.bin, "verify", "--offline", "--json", *common, "--state-dir", state,
                   "localhost/basic:v1", "localhost/signers:alice-unreleased"],
                  cwd=i.work, env=i.env)
    assert ver.code == 1, ver
    res = {r["image"]: r for r in json.loads(ver.out)["results"]}
    assert res["localhost/basic:v1"]["trusted"] is True
    assert res["localhost/basic:v1"]["digest"] == basic_v1
    assert res["localhost/signers:alice-unreleased"]["error"]["code"] == "tag-not-released"
    assert any(state.rglob("*")), "verify recorded nothing in --state-dir"

    ok = rel.run([i.bin, "verify", "--offline", *common, "--state-dir", state,
                  "localhost/basic:v1"], cwd=i.work, env=i.env)
    assert ok.code == 0 and basic_v1 in ok.out, ok

    ins = rel.run([i.bin, "inspect", "--offline", *common, "localhost/signers", "localhost/basic"],
                  cwd=i.work, env=i.env)
    assert ins.code == 0, ins
    for doc in json.loads(ins.out):
        got = {t["SignedTag"]: t["Digest"] for t in doc["SignedTags"]}
        assert got == d.expected[doc["Name"]], doc["Name"]

    policy = i.work / "policy.yaml"
    policy.write_text(
        "version: 1\n"
        "rules:\n"
        "  - name: two-signers\n"
        "    pattern: localhost/signers\n"
        "    signers: [alice, bob]\n"
        "    threshold: 2\n"
        "  - name: no-releases\n"
        "    pattern: localhost/releases\n"
        "    action: deny\n"
        "    reason: retired\n"
        "  - name: rest\n"
        '    pattern: "localhost/*"\n'
    )
    gate = rel.run([i.bin, "gate", "--offline", "--json", *common, "--policy", policy,
                    "--state-dir", state, "localhost/signers:v2", "localhost/signers:alice-only",
                    "localhost/releases:v1", "localhost/basic:v1"], cwd=i.work, env=i.env)
    assert gate.code == 1, gate
    decisions = {d["image"]: d for d in json.loads(gate.out)["decisions"]}
    codes = {image: [r["code"] for r in d["reasons"]] for image, d in decisions.items()}
    assert decisions["localhost/signers:v2"]["allowed"] is True, decisions["localhost/signers:v2"]
    assert decisions["localhost/basic:v1"]["digest"] == basic_v1
    assert codes["localhost/signers:alice-only"] == ["signer-threshold-not-met"], codes
    assert codes["localhost/releases:v1"] == ["policy-denied"], codes
    allowed = rel.run([i.bin, "gate", "--offline", *common, "--policy", policy, "--state-dir",
                       state, "--print-refs", "localhost/signers:v2", "localhost/basic:v1"],
                      cwd=i.work, env=i.env)
    assert allowed.code == 0, allowed
    assert f"localhost/basic@{basic_v1}" in allowed.out, allowed.out

    audit = rel.run([i.bin, "audit", "--all", *common, "--format", "json", "--fail-on", "error"],
                    cwd=i.work, env=i.env)
    assert audit.code == 0, audit
    summary = json.loads(audit.out)["summary"]
    gun_dirs = [p for p in (d.trust / "tuf" / "localhost").iterdir() if p.is_dir()]
    assert summary["collections"] == summary["verified"] == len(gun_dirs), summary

    doctor = rel.run([i.bin, "doctor", "--offline", "--json", *common, "--state-dir", state,
                      "localhost/basic:v1"], cwd=i.work, env=i.env)
    assert doctor.code == 0, doctor
    assert json.loads(doctor.out), doctor.out


# --------------------------------------------------------------------------- the webhook


@dataclass(frozen=True)
class Notary:
    server: NotaryServer
    ca: Path
    digest: str


@pytest.fixture(scope="module")
def notary(rel: Recorder) -> Iterator[Notary]:
    """A real notary-server with APP:v1 signed by the real notary client."""
    missing = missing_notary_binaries()
    if missing:
        pytest.skip("!!! RELEASE WEBHOOK CHECK SKIPPED: missing " + ", ".join(missing)
                    + " (make system-deps installs them) !!!")
    tls = make_tls(rel.base / "notary-tls")
    tls.ca_cert.chmod(0o644)
    with NotaryServer(rel.base / "notary", tls=tls) as server:
        pub = NotaryClient.for_server(rel.base / "publisher", server)
        pub.init_and_publish(APP)
        blob = b"release check image"
        digest = hashlib.sha256(blob).hexdigest()
        pub.addhash(APP, "v1", len(blob), digest)
        pub.publish(APP)
        rel.note(f"# notary-server {server.url}: {APP}:v1 = sha256:{digest} (notary init, "
                 "addhash, publish)")
        yield Notary(server, tls.ca_cert, "sha256:" + digest)


@dataclass(frozen=True)
class WebhookTLS:
    ca: trustme.CA
    cert: Path
    key: Path


def webhook_tls(directory: Path, owner: int | None = None) -> WebhookTLS:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = directory / "tls.crt", directory / "tls.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    for extra in leaf.cert_chain_pems[1:]:
        extra.write_to_path(str(cert), append=True)
    leaf.private_key_pem.write_to_path(str(key))
    cert.chmod(0o644)
    key.chmod(0o600)
    if owner is not None:  # a Secret volume with fsGroup: the pod's user reads the key
        os.chown(key, owner, owner)
    return WebhookTLS(ca, cert, key)


def write_policy(path: Path, notary: Notary) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "version: 1\n"
        "rules:\n"
        "  - name: team\n"
        f'    pattern: "{REG}/team/*"\n'
        "    trust:\n"
        f"      server: {notary.server.url}\n"
        "  - name: no-docker-hub\n"
        "    pattern: docker.io/**\n"
        "    action: deny\n"
        "    reason: use the mirror\n"
    )
    path.chmod(0o644)


def admission_review(images: Sequence[str]) -> dict[str, Any]:
    """conftest's Pod review, one uid per image count."""
    from conftest import pod_review

    return pod_review(list(images), uid=f"6a1c0a4e-1a7b-4d5e-9f00-00000000000{len(images)}")


def serve_and_review(rel: Recorder, argv: list[str], *, cwd: Path, env: dict[str, str],
                     tls: WebhookTLS, port: int, notary: Notary, jail: Jail | None,
                     label: str, deny_reason: str = "use the mirror") -> None:
    """Start `serve`, wait for /readyz over TLS, send one allowed and one denied review."""
    log = rel.base / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(jail.wrap(argv) if jail is not None else argv, cwd=cwd, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    who = f"[{jail.show(rel)}] " if jail is not None else ""
    rel.note(f"{label}{who}{rel.show(argv)}  (server)")
    ctx = ssl.create_default_context()
    tls.ca.configure_trust(ctx)
    url = f"https://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, verify=ctx, timeout=20) as client:
            end = time.monotonic() + 30
            while True:
                assert proc.poll() is None, f"serve exited {proc.returncode}:\n{log.read_text()}"
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < end, f"serve never became ready:\n{log.read_text()}"
                time.sleep(0.1)
            review = admission_review([f"{APP}:v1"])
            r = client.post("/mutate", content=json.dumps(review),
                            headers={"Content-Type": "application/json"})
            rel.note(f"{label}POST {url}/mutate (Pod, {APP}:v1)  -> HTTP {r.status_code}")
            assert r.status_code == 200, r.text
            resp = r.json()["response"]
            assert resp["uid"] == review["request"]["uid"] and resp["allowed"] is True, resp
            patch = json.loads(base64.b64decode(resp["patch"]))
            pinned = [op["value"] for op in patch if op["path"] == "/spec/containers/0/image"]
            assert pinned == [f"{APP}:v1@{notary.digest}"], patch
            denied = admission_review([f"{APP}:v1", "docker.io/library/alpine:3.20"])
            r = client.post("/validate", content=json.dumps(denied),
                            headers={"Content-Type": "application/json"})
            rel.note(f"{label}POST {url}/validate (Pod, + docker.io/library/alpine:3.20)  -> "
                     f"HTTP {r.status_code}")
            resp = r.json()["response"]
            assert resp["allowed"] is False and resp["status"]["code"] == 403, resp
            assert deny_reason in resp["status"]["message"], resp
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(timeout=10)
        rel.note(f"{label}SIGTERM to serve  -> exit {code}")
    assert "Traceback" not in log.read_text(), log.read_text()


def test_serve_answers_admission_reviews_over_tls(rel: Recorder, installed: Installed,
                                                  notary: Notary) -> None:
    i = installed
    base = rel.base / "serve"
    tls = webhook_tls(base / "tls")
    write_policy(base / "policy.yaml", notary)
    config = base / "config.yaml"
    config.write_text(yaml.safe_dump({"upstream": {"tls_ca": str(notary.ca), "retries": 0}}))
    port = free_port()
    argv = [str(i.bin), "serve", "--policy", str(base / "policy.yaml"), "--config", str(config),
            "--tls-cert", str(tls.cert), "--tls-key", str(tls.key), "--host", "127.0.0.1",
            "--port", str(port), "--trust-dir", str(base / "trust")]
    serve_and_review(rel, argv, cwd=i.work, env=i.env, tls=tls, port=port, notary=notary,
                     jail=None, label="webhook: ")


# --------------------------------------------------------------------------- 3. the Dockerfile


def dockerignore_rules(text: str) -> list[tuple[bool, re.Pattern[str], str]]:
    """(exclude?, regex, literal prefix) per line, as Docker's patternmatcher reads them."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pat = os.path.normpath(line[1:].strip() if negate else line).lstrip("/")
        out, i = "", 0
        while i < len(pat):
            c = pat[i]
            if c == "*" and pat[i + 1:i + 2] == "*":
                i += 1
                if pat[i + 1:i + 2] == "/":
                    i += 1
                    out += "(.*/)?"
                else:
                    out += ".*"
            elif c == "*":
                out += "[^/]*"
            elif c == "?":
                out += "[^/]"
            elif c == "[":
                j = pat.index("]", i)
                out += pat[i:j + 1]
                i = j
            elif c == "\\" and i + 1 < len(pat):
                i += 1
                out += re.escape(pat[i])
            else:
                out += re.escape(c)
            i += 1
        prefix = re.split(r"[*?\[\\]", pat, maxsplit=1)[0]
        rules.append((not negate, re.compile(f"^{out}$"), prefix))
    return rules


def ignored(rel_path: str, rules: list[tuple[bool, re.Pattern[str], str]]) -> bool:
    """The last matching rule wins; a rule matching a parent directory matches its files."""
    parts = rel_path.split("/")
    candidates = ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]
    result = False
    for exclude, rx, _prefix in rules:
        if any(rx.match(c) for c in candidates):
            result = exclude
    return result


def build_context(dst: Path) -> list[str]:
    """The repository as `docker build .` sends it: .dockerignore applied."""
    rules = dockerignore_rules((REPO / ".dockerignore").read_text())
    negations = [prefix for exclude, _rx, prefix in rules if not exclude]
    files: list[str] = []
    for root, dirs, names in os.walk(REPO):
        rel_root = Path(root).relative_to(REPO).as_posix()
        rel_root = "" if rel_root == "." else rel_root + "/"
        keep = []
        for d in dirs:
            path = rel_root + d
            # descend into an ignored directory only when an exception could match inside
            if not ignored(path, rules) or any(
                n.startswith(path + "/") or path.startswith(n) or n == "" for n in negations
            ):
                keep.append(d)
        dirs[:] = keep
        for name in names:
            path = rel_root + name
            if not ignored(path, rules):
                files.append(path)
                (dst / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / path, dst / path)
    return sorted(files)


def test_dockerignore_keeps_the_context_small() -> None:
    rules = dockerignore_rules((REPO / ".dockerignore").read_text())
    for path in (".venv/bin/python", ".git/HEAD", "tests/conftest.py", "fixtures/generated/keys/x",
                 "trustcheck/__pycache__/cli.cpython-311.pyc", "build/lib/x.py",
                 "trustcheck.egg-info/PKG-INFO", "docs/webhook.md", "bench/run.py"):
        assert ignored(path, rules), path
    for path in ("pyproject.toml", "README.md", "LICENSE", "trustcheck/cli/app.py",
                 "trustcheck/cli/serve.py", "trustcheck/py.typed"):
        assert not ignored(path, rules), path


@dataclass(frozen=True)
class Instruction:
    op: str
    args: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    out: list[Instruction] = []
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("#") or (not buf and not line):
            continue
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        op, _, args = buf.partition(" ")
        out.append(Instruction(op.upper(), args.strip(), start))
        buf = ""
    return out


_ABS = re.compile(r"(?<![\w./:-])(/[\w.+-]+(?:/[\w.+-]*)*)")


@dataclass
class Stage:
    name: str
    root: Path
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)

    def host(self, path: str) -> Path:
        p = path if path.startswith("/") else os.path.join(self.workdir, path)
        return self.root / os.path.normpath(p).lstrip("/")

    def map_text(self, text: str) -> str:
        return _ABS.sub(lambda m: str(self.host(m.group(1))), text)

    def run_env(self, base: dict[str, str]) -> dict[str, str]:
        env = dict(base)
        env.update({k: self.map_text(v) if v.startswith("/") else v for k, v in self.env.items()})
        env["PATH"] = f"{self.root / 'usr/local/bin'}:/usr/bin:/bin"
        return env


def image_python() -> str:
    """An interpreter uid 65532 can run (the dev one may live under a 0700 /root): the
    stand-in for the base image's /usr/local/bin/python."""
    tried = []
    for cand in (sys.executable, getattr(sys, "_base_executable", ""), shutil.which("python3"),
                 "/usr/bin/python3", "/usr/local/bin/python3"):
        if not cand or not os.path.exists(cand):
            continue
        real = Path(os.path.realpath(cand))
        tried.append(str(real))
        if all(d.stat().st_mode & 0o001 for d in real.parents) and real.stat().st_mode & 0o001:
            ok = subprocess.run([str(real), "-c", "import sys, venv; assert sys.version_info >= "
                                 "(3, 11)"], capture_output=True, check=False)
            if ok.returncode == 0:
                return str(real)
    pytest.fail(f"no Python >= 3.11 that uid {IMAGE_UID} can run (tried {tried}); "
                "install python3 (Debian) to replay the image")


@dataclass(frozen=True)
class Image:
    stage: Stage
    context: list[str]


@pytest.fixture(scope="module")
def image(rel: Recorder) -> Image:
    """deploy/Dockerfile carried out instruction by instruction (see the module doc)."""
    ctx = rel.base / "context"
    files = build_context(ctx)
    rel.note(f"# build context after .dockerignore: {len(files)} files: "
             + ", ".join(f for f in files if not f.startswith("trustcheck/")) + ", trustcheck/...")
    base_env = clean_env(rel.base / "build-home", [])
    (rel.base / "build-home").mkdir()
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for ins in parse_dockerfile((REPO / "deploy" / "Dockerfile").read_text()):
        where = f"deploy/Dockerfile line {ins.line}: {ins.op} {ins.args}"
        if ins.op == "FROM":
            words = ins.args.split()
            assert re.fullmatch(r"python:3\.\d+-slim", words[0]), (
                f"{where}: the replay models python:*-slim bases only; teach it the new base")
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            root = rel.base / "image" / name
            root.mkdir(parents=True)
            rel.run([image_python(), "-m", "venv", "--without-pip", root / "usr/local"],
                    cwd=rel.base, check=True, label=f"docker-replay {name}: ")
            shim = root / "usr/local/bin/pip"
            shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m pip --python "
                            f"{shlex.quote(str(root / 'usr/local/bin/python'))} \"$@\"\n")
            shim.chmod(0o755)
            stage = stages[name] = Stage(name, root)
            continue
        assert stage is not None, f"{where}: before FROM"
        label = f"docker-replay {stage.name}: "
        if ins.op == "WORKDIR":
            stage.workdir = os.path.join(stage.workdir, ins.args)
            stage.host(stage.workdir).mkdir(parents=True, exist_ok=True)
        elif ins.op == "COPY":
            words = shlex.split(ins.args)
            src_root = ctx
            if words[0].startswith("--from="):
                src_root = stages[words.pop(0).split("=", 1)[1]].root
            assert not words[0].startswith("--"), f"{where}: unsupported COPY flag"
            *srcs, dest = words
            target = stage.host(dest)
            for src in srcs:
                s = src_root / src.lstrip("/")
                assert s.exists(), f"{where}: {src} is not in the build context (.dockerignore?)"
                if s.is_dir():
                    shutil.copytree(s, target, dirs_exist_ok=True)
                else:
                    into = target / s.name if dest.endswith("/") or len(srcs) > 1 else target
                    into.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(s, into)
            rel.note(f"{label}COPY {ins.args}")
        elif ins.op == "RUN":
            assert stage.user is None, f"{where}: RUN after USER is not modelled"
            rel.run(["/bin/sh", "-c", stage.map_text(ins.args)], cwd=stage.host(stage.workdir),
                    env=stage.run_env(base_env), check=True, label=label)
        elif ins.op == "ENV":
            for item in shlex.split(ins.args):
                assert "=" in item, f"{where}: write ENV KEY=VALUE (the legacy form is not read)"
                key, _, value = item.partition("=")
                stage.env[key] = value
        elif ins.op == "USER":
            stage.user = ins.args
        elif ins.op == "ENTRYPOINT":
            stage.entrypoint = json.loads(ins.args)
        elif ins.op == "CMD":
            stage.cmd = json.loads(ins.args)
        elif ins.op in ("EXPOSE", "LABEL"):
            pass
        else:
            pytest.fail(f"{where}: the replay does not know {ins.op}; teach it")
    assert stage is not None
    return Image(stage, files)


def test_image_context_and_layout(image: Image) -> None:
    st = image.stage
    assert not [f for f in image.context if f.split("/")[0] in
                {".venv", ".git", "tests", "fixtures", "docs", "bench", "fuzz", "deploy"}]
    assert st.user == f"{IMAGE_UID}:{IMAGE_UID}"
    assert st.entrypoint == ["trustcheck"]
    data_dir = st.host("/var/lib/trustcheck")
    assert data_dir.stat().st_uid == IMAGE_UID
    assert not st.host("/wheels").exists(), "the wheels stay in the image"
    assert st.env.get("TRUSTCHECK_STATE_DIR", "").startswith("/var/lib/trustcheck/")
    assert st.env.get("TRUSTCHECK_TRUST_DIR", "").startswith("/var/lib/trustcheck/")
    site = list(st.root.glob("usr/local/lib/python3*/site-packages"))
    packages = sorted(i.relative_to(REPO) for i in (REPO / "trustcheck").rglob("__init__.py"))
    assert site and packages
    assert [p for p in packages if not (site[0] / p).is_file()] == []
    for module in ("uvicorn", "starlette", "prometheus_client", "redis", "sigstore"):
        assert (site[0] / module).is_dir(), f"{module} is not installed in the image"


def test_image_entrypoint_as_uid_65532_verifies_keyless_cosign(rel: Recorder,
                                                               image: Image) -> None:
    """The sigstore extra is in the image: ``cosign verify --help``, and a real Sigstore
    bundle (sigstore-python's test asset, fixtures/sigstore/) verified offline against
    its trusted root as the pod's user on a read-only root; a wrong identity is refused."""
    st = image.stage
    jail, env = _as_image_user(st)
    src = REPO / "fixtures" / "sigstore" / "sigstore-python"
    dst = st.host("/etc/trustcheck/sigstore")
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("bundle_v3.txt", "bundle_v3.txt.sigstore", "staging_trusted_root.json"):
        shutil.copy2(src / name, dst / name)
    for p in [st.host("/etc/trustcheck"), *st.host("/etc/trustcheck").rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    helped = rel.run([*st.entrypoint, "cosign", "verify", "--help"], cwd=st.root, env=env,
                     jail=jail, label="image: ")
    assert helped.code == 0 and "Usage: trustcheck cosign verify" in helped.out, helped
    blob = [*st.entrypoint, "cosign", "verify-blob", dst / "bundle_v3.txt", "--bundle",
            dst / "bundle_v3.txt.sigstore", "--certificate-oidc-issuer",
            "https://github.com/login/oauth", "--trusted-root",
            dst / "staging_trusted_root.json", "--at", "2026-08-22T00:00:00Z",
            "--certificate-identity"]
    ok = rel.run([*blob, "william@yossarian.net"], cwd=st.root, env=env, jail=jail,
                 label="image: ")
    assert ok.code == 0, ok
    bad = rel.run([*blob, "someone@else.example"], cwd=st.root, env=env, jail=jail,
                  label="image: ")
    assert bad.code == 1 and "[cosign-identity-mismatch]" in bad.out + bad.err, bad
    assert "Traceback" not in bad.err


_READONLY_ROOT = r"""
set -e
w="$1"; probe="$2"; shift 2
mount --bind "$w" "$w"
for m in $(awk '{print $2}' /proc/self/mounts | grep -vE '^/(proc|sys|dev|run|mnt)(/|$)' | sort -u)
do
  [ "$m" = "$w" ] || mount -o remount,bind,ro "$m"
done
if touch "$probe" 2>/dev/null; then echo "the root file system is still writable" >&2; exit 99; fi
exec "$@"
"""


@dataclass(frozen=True)
class Jail:
    """The pod's securityContext on this machine: runAsUser/runAsGroup, no supplementary
    groups, and readOnlyRootFilesystem (every mount read-only in a private mount namespace,
    except the emptyDir), via unshare(1) and setpriv(1)."""

    uid: int
    writable: Path

    def wrap(self, argv: Sequence[str | os.PathLike[str]]) -> list[str]:
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", _READONLY_ROOT,
                "sh", str(self.writable), str(self.writable.parent / ".rw-probe"),
                "setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups", "--",
                *map(str, argv)]

    def show(self, rel: Recorder) -> str:
        where = str(self.writable).replace(str(rel.base), "$REL")
        return f"uid {self.uid}, read-only root except {where}"


def _as_image_user(stage: Stage) -> tuple[Jail, dict[str, str]]:
    """The Deployment's runAsUser/runAsGroup; HOME=/ as for a uid without a passwd entry."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("setpriv") is None:
        pytest.skip("!!! IMAGE RUN SKIPPED: needs root, unshare and setpriv (util-linux) to run "
                    f"as uid {IMAGE_UID} on a read-only root !!!")
    uid = int(stage.user.split(":")[0]) if stage.user else 0
    mounts = _deployment_container()["volumeMounts"]
    writable = [m["mountPath"] for m in mounts if not m.get("readOnly")]
    assert writable == ["/var/lib/trustcheck"], writable
    env = stage.run_env({"HOME": str(stage.root), "LANG": "C.UTF-8", "COLUMNS": "200",
                         "TERM": "dumb", "NO_COLOR": "1"})
    return Jail(uid, stage.host(writable[0])), env


def config_map(mount_path: str) -> str:
    """The file a ConfigMap of deploy/base/trustcheck.yaml mounts at mount_path."""
    docs = list(yaml.safe_load_all((REPO / "deploy" / "base" / "trustcheck.yaml").read_text()))
    container = _deployment_container()
    pod = next(d for d in docs if d and d.get("kind") == "Deployment")["spec"]["template"]["spec"]
    directory, name = os.path.split(mount_path)
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == directory)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    cm = next(d for d in docs if d and d.get("kind") == "ConfigMap"
              and d["metadata"]["name"] == volume["configMap"]["name"])
    text: str = cm["data"][name]
    return text


def _deployment_container() -> dict[str, Any]:
    docs = list(yaml.safe_load_all((REPO / "deploy" / "base" / "trustcheck.yaml").read_text()))
    deployment = next(d for d in docs if d and d.get("kind") == "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsUser"] == IMAGE_UID
    container: dict[str, Any] = spec["containers"][0]
    return container


def test_image_entrypoint_as_uid_65532_runs_verify(rel: Recorder, image: Image,
                                                   data: Data) -> None:
    st = image.stage
    jail, env = _as_image_user(st)
    uid = jail.uid
    assert uid == IMAGE_UID
    home = st.root
    assert home.stat().st_uid == 0 and not home.stat().st_mode & stat.S_IWOTH
    trust = st.host("/etc/trustcheck/data/trust")
    shutil.copytree(data.trust, trust)
    for p in [st.host("/etc/trustcheck"), *st.host("/etc/trustcheck").rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    # the jail is real: outside the emptyDir nothing can be written, not even /tmp
    for target in (st.root / "probe", Path(tempfile.gettempdir()) / "trustcheck-probe"):
        probe = rel.run(["touch", target], cwd=st.root, env=env, jail=jail, label="image: ")
        assert probe.code != 0 and "Read-only file system" in probe.err, probe
    version = rel.run([*st.entrypoint, "--version"], cwd=st.root, env=env, jail=jail,
                      label="image: ")
    assert version.code == 0 and "0.1.0" in version.out, version
    ran = rel.run([*st.entrypoint, "verify", "--offline", "--trust-dir", trust, "--at", data.at,
                   "localhost/basic:v1"], cwd=st.root, env=env, jail=jail, label="image: ")
    assert ran.code == 0, ran
    assert "sha256:" + data.expected["localhost/basic"]["v1"] in ran.out
    state = Path(env["TRUSTCHECK_STATE_DIR"])
    assert any(state.rglob("*")), f"nothing recorded in TRUSTCHECK_STATE_DIR {state}"
    assert not [p for p in home.iterdir() if p.stat().st_uid == uid], "wrote under HOME"
    # without the image's TRUSTCHECK_STATE_DIR the state would go under HOME=/ (read-only):
    # one line naming the way out, exit 2, nothing trusted
    no_state = {k: v for k, v in env.items() if k != "TRUSTCHECK_STATE_DIR"}
    refused = rel.run([*st.entrypoint, "verify", "--offline", "--trust-dir", trust, "--at",
                       data.at, "localhost/basic:v1"], cwd=st.root, env=no_state, jail=jail,
                      label="image, no TRUSTCHECK_STATE_DIR: ")
    assert refused.code == 2 and refused.out == "", refused
    assert len(refused.err.strip().splitlines()) == 1, refused.err
    assert "[state-dir-unwritable]" in refused.err and "TRUSTCHECK_STATE_DIR" in refused.err
    # the image's default command works too
    default = rel.run([*st.entrypoint, *st.cmd], cwd=st.root, env=env, jail=jail, label="image: ")
    assert default.code == 0 and "Usage: trustcheck serve" in default.out, default


def test_image_entrypoint_as_uid_65532_serves_the_deployment(rel: Recorder, image: Image,
                                                            notary: Notary) -> None:
    """The Deployment's own args and mounts (deploy/base/trustcheck.yaml), TLS from a trustme CA."""
    st = image.stage
    jail, env = _as_image_user(st)
    uid = jail.uid
    container = _deployment_container()
    args: list[str] = [str(a) for a in container["args"]]

    def value(flag: str) -> str:
        return args[args.index(flag) + 1]

    tls_dir = st.host(os.path.dirname(value("--tls-cert")))
    tls = webhook_tls(tls_dir, owner=uid)
    shutil.move(tls.cert, st.host(value("--tls-cert")))
    shutil.move(tls.key, st.host(value("--tls-key")))
    tls = WebhookTLS(tls.ca, st.host(value("--tls-cert")), st.host(value("--tls-key")))
    # the ConfigMaps of deploy/base/trustcheck.yaml, with our notary-server as the default server
    policy = yaml.safe_load(config_map(value("--policy")))
    policy["defaults"]["trust"]["server"] = notary.server.url
    deny = next(r for r in policy["rules"] if r.get("action") == "deny"
                and r["pattern"].startswith("docker.io/"))
    st.host(value("--policy")).parent.mkdir(parents=True, exist_ok=True)
    st.host(value("--policy")).write_text(yaml.safe_dump(policy))
    config = yaml.safe_load(config_map(value("--config")))
    st.host(value("--config")).parent.mkdir(parents=True, exist_ok=True)
    ca_path = os.path.join(os.path.dirname(value("--config")), "notary-ca.crt")
    shutil.copy(notary.ca, st.host(ca_path))
    config.setdefault("upstream", {})["tls_ca"] = ca_path
    config["upstream"]["retries"] = 0
    text = st.map_text(yaml.safe_dump(config))
    st.host(value("--config")).write_text(text)
    for p in [st.host("/etc/trustcheck"), *st.host("/etc/trustcheck").rglob("*")]:
        if p.is_dir():
            p.chmod(0o755)
    port = free_port()
    argv = [st.map_text(a) if a.startswith("/") else a for a in args]
    argv[argv.index("--port") + 1] = str(port)
    argv = [*st.entrypoint, *argv, "--host", "127.0.0.1"]
    serve_and_review(rel, argv, cwd=st.root, env=env, tls=tls, port=port, notary=notary,
                     jail=jail, label="image: ", deny_reason=deny["reason"])
    cached = st.host(config["trust"]["trust_dir"]) if "trust" in config else None
    if cached is not None:
        assert any(cached.rglob("root.json")), f"serve cached nothing in {cached}"


# --------------------------------------------------------------------------- 4. a real runtime


def _runtime() -> tuple[str | None, str]:
    """(docker or podman, "") when one can run a container here, else (None, why not, in
    the runtimes' own words)."""
    errors = []
    for tool, argv in (("docker", ["docker", "info"]),
                       ("podman", ["podman", "run", "--rm", "--rootfs", "/", "/bin/true"])):
        if shutil.which(tool) is None:
            errors.append(f"{tool}: not installed")
            continue
        p = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False,
                           stdin=subprocess.DEVNULL)
        if p.returncode == 0:
            return tool, ""
        errors.append(f"{shlex.join(argv)}: " + (p.stderr.strip().splitlines() or ["?"])[-1])
    return None, "; ".join(errors)


def test_real_image_build_when_a_runtime_works(rel: Recorder) -> None:
    tool, reason = _runtime()
    if tool is None:
        rel.note(f"# real image: not built: {reason}")
        pytest.skip(f"no container runtime can run containers here: {reason}")
    bases = sorted({i.args.split()[0] for i in parse_dockerfile(
        (REPO / "deploy" / "Dockerfile").read_text()) if i.op == "FROM"})
    for base in bases:
        pulled = rel.run([tool, "pull", base], cwd=REPO, timeout=300, label="real image: ")
        if pulled.code != 0:
            why = (pulled.err.strip().splitlines() or ["?"])[-1]
            rel.note(f"# real image: not built: {tool} pull {base}: {why}")
            pytest.skip(f"the base image {base} cannot be pulled here: {why}")
    tag = "trustcheck-release-check:latest"
    rel.run([tool, "build", "-f", REPO / "deploy" / "Dockerfile", "-t", tag, REPO], cwd=REPO,
            check=True, timeout=900, label="real image: ")
    ran = rel.run([tool, "run", "--rm", "--read-only", "--user", f"{IMAGE_UID}:{IMAGE_UID}", tag,
                   "--version"], cwd=REPO, check=True, label="real image: ")
    assert "0.1.0" in ran.out
