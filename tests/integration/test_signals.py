"""SIGINT -> 130, SIGTERM -> 143, `interrupted; nothing was trusted` (issue 13, item 3).

Real signals to real child processes (``python -m trustcheck`` and the
console script's own import line). A TCP server on 127.0.0.1 accepts every
connection and never answers, which holds each command in place while it
waits for its Notary server; the signal is sent once the server has seen the
connection. Afterwards nothing may have been written as trusted: the trust
dir and the state dir hold no file.

A second group interrupts the start-up itself: stderr of the child is a pipe
shrunk to one page, so ``-X importtime`` output blocks the child in the middle
of its imports (after the entry point installed its handlers, before the CLI
module finished importing); the signal lands there, deterministically.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

GUN = "localhost/basic"
IMAGE = f"{GUN}:v1"
MESSAGE = "interrupted; nothing was trusted"
EXPECTED = {signal.SIGINT: 130, signal.SIGTERM: 143}


class SilentServer:
    """Accepts connections on 127.0.0.1 and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self.conns: list[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.conns.append(conn)  # held open, never read, never answered
            self.accepted.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=5)
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if not p.is_dir()] if folder.exists() else []


def _commands(tmp: Path, url: str) -> dict[str, list[str]]:
    policy = tmp / "policy.yaml"
    policy.write_text(f"rules:\n  - pattern: {GUN}\n")
    remote = ["--server", url, "--unsafe-http", "--timeout", "600", "--retries", "0"]
    return {
        "verify": ["verify", *remote, IMAGE],
        "gate": ["gate", "--policy", str(policy), *remote, IMAGE],
        "fetch": ["fetch", *remote, IMAGE],
        "pull --dry-run": ["pull", "--dry-run", *remote, IMAGE],
        "inspect": ["inspect", *remote, GUN],
        "thumbprint": ["thumbprint", *remote, GUN],
        "pin add": ["pin", "add", "--pins", str(tmp / "pins.toml"), *remote, GUN],
        "policy explain": ["policy", "explain", "--policy", str(policy), *remote, IMAGE],
        "audit --server": ["audit", *remote, GUN],
    }


def _run_held(
    tmp_path: Path, silent: SilentServer, name: str, sig: signal.Signals
) -> subprocess.CompletedProcess[str]:
    trust, state, home = tmp_path / "trust", tmp_path / "state", tmp_path / "home"
    for d in (trust, state, home):
        d.mkdir()
    argv = _commands(tmp_path, silent.url)[name]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRUSTCHECK_", "DOCKER_"))}
    env.update(HOME=str(home), XDG_STATE_HOME=str(home / "xs"), XDG_CONFIG_HOME=str(home / "xc"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trustcheck",
            *argv,
            "--trust-dir",
            str(trust),
            "--state-dir",
            str(state),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=env,
    )
    try:
        if not silent.accepted.wait(timeout=120):
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"{name} never connected to the server: {proc.returncode} {out} {err}")
        assert proc.poll() is None, f"{name} ended before the signal: {proc.communicate()}"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert _files(trust) == [], f"{name} wrote into the trust dir: {_files(trust)}"
    assert _files(state) == [] or all(p.suffix == ".lock" for p in _files(state)), (
        f"{name} recorded state: {_files(state)}"
    )
    return result


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
@pytest.mark.parametrize("name", ["verify", "gate", "fetch", "pull --dry-run"])
def test_signal_while_waiting_for_the_server(
    tmp_path: Path, silent: SilentServer, name: str, sig: signal.Signals
) -> None:
    run = _run_held(tmp_path, silent, name, sig)
    assert run.returncode == EXPECTED[sig], (run.returncode, run.stdout, run.stderr)
    assert run.stderr.endswith(MESSAGE + "\n"), run.stderr
    assert "Traceback" not in run.stderr and "KeyboardInterrupt" not in run.stderr
    assert run.stdout == ""  # no verdict at all, certainly not TRUSTED / ALLOW


@pytest.mark.parametrize(
    "name", ["inspect", "thumbprint", "pin add", "policy explain", "audit --server"]
)
def test_sigint_on_the_other_fetching_commands(
    tmp_path: Path, silent: SilentServer, name: str
) -> None:
    run = _run_held(tmp_path, silent, name, signal.SIGINT)
    assert run.returncode == 130, (run.returncode, run.stdout, run.stderr)
    assert run.stderr.endswith(MESSAGE + "\n") and "Traceback" not in run.stderr
    assert not (tmp_path / "pins.toml").exists()


# --------------------------------------------------------------------------- during imports

#: what the console script generated from ``[project.scripts]`` runs
CONSOLE_SCRIPT = "import sys; from trustcheck.__main__ import main; sys.exit(main())"


def _interrupt_during_imports(sig: signal.Signals) -> tuple[int, str]:
    """Start the console entry point under ``-X importtime``; once the entry
    module is imported (its handlers installed), stop reading stderr so the
    child blocks inside its remaining imports; send ``sig``; drain stderr."""
    read_fd, write_fd = os.pipe()
    fcntl.fcntl(read_fd, fcntl.F_SETPIPE_SZ, 4096)  # one page: the child blocks quickly
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTCHECK_")}
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-c", CONSOLE_SCRIPT, "verify", "--offline", IMAGE],
        stdout=subprocess.DEVNULL,
        stderr=write_fd,
        cwd=REPO_ROOT,
        env=env,
    )
    os.close(write_fd)
    seen = b""
    with os.fdopen(read_fd, "rb", buffering=0) as stderr:
        while not seen.endswith(b" trustcheck.__main__\n"):
            byte = stderr.read(1)
            if not byte:
                break
            seen += byte
        assert seen.endswith(b" trustcheck.__main__\n"), seen[-2000:]
        proc.send_signal(sig)
        rest = b"".join(iter(lambda: stderr.read(65536), b""))
    code = proc.wait(timeout=60)
    return code, (seen + rest).decode(errors="replace")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_signal_during_start_up_imports(sig: signal.Signals) -> None:
    code, err = _interrupt_during_imports(sig)
    assert code == EXPECTED[sig], err[-3000:]
    assert err.endswith(MESSAGE + "\n"), err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    imported = [line.rsplit("|", 1)[-1].strip() for line in err.splitlines() if "|" in line]
    assert "trustcheck.__main__" in imported
    # the signal landed while the CLI was still being imported: the command never ran
    assert "trustcheck.cli" not in imported, imported[-20:]
    assert "trustcheck.api" not in imported


# --------------------------------------------------------------------------- serve


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_serve_shuts_down_then_exits_143_or_130(tmp_path: Path, sig: signal.Signals) -> None:
    """Kubernetes stops the webhook with SIGTERM: uvicorn drains, then the
    process reports the signal like every other command."""
    import ssl

    import httpx
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    leaf.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"rules:\n  - pattern: {GUN}\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRUSTCHECK_", "DOCKER_"))}
    env["HOME"] = str(tmp_path)
    tls = ["--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem")]
    listen = ["--host", "127.0.0.1", "--port", str(port), "--trust-dir", str(tmp_path / "t")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "trustcheck", "serve", "--policy", str(policy), *tls, *listen],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    try:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        ready = False
        for _ in range(600):
            if proc.poll() is not None:
                break
            try:
                ready = httpx.get(f"https://127.0.0.1:{port}/readyz", verify=ctx).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready:
                break
            threading.Event().wait(0.05)
        assert ready, proc.communicate(timeout=30)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXPECTED[sig], err[-2000:]
    assert err.endswith(MESSAGE + "\n") and "Traceback" not in err, err[-2000:]
    assert "Application shutdown complete" in err  # drained first, then the exit code
