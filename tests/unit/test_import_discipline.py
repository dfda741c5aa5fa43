"""What a command imports (issue 18): start-up cost is what users feel on every CI step.

Each test runs the real CLI entry point in a fresh interpreter (a subprocess: this
process has imported everything already) on real trust data, checks the command did
its job, then checks which modules it loaded. Structural, not timed: an offline
``verify`` must not load the HTTP stack, TLS, policy, YAML, rich or the other
commands; a fetch loads httpx without httpx's own CLI (click, rich, pygments).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fixtures.generate import FixtureSet

#: never loaded by an offline ``verify`` of a Notary repository (prefixes: submodules too)
OFFLINE_VERIFY_FORBIDDEN = (
    "httpx",
    "httpcore",
    "h11",
    "ssl",
    "_ssl",
    "http.client",
    "urllib.request",
    "concurrent.futures",
    "asyncio",
    "yaml",
    "tomllib",  # no pin file given and none at the default place
    "rich",
    "pygments",
    "click",  # typer vendors its own click (typer._click); the real one is httpx's CLI
    "shellingham.posix",
    "trustcheck.policy",
    "trustcheck.remote.http",
    "trustcheck.remote.notary",
    "trustcheck.remote.auth",
    "trustcheck.remote.registry",
    "trustcheck.webhook",
    "trustcheck.audit",
    "trustcheck.tuf",
    "trustcheck.archive",
    "trustcheck.doctor",
    "trustcheck.notation",
    "trustcheck.sigstore",
    "trustcheck.coverage",
    "trustcheck.local.pinfile",
    "trustcheck.core.identity",
    "trustcheck.cli.gate",
    "trustcheck.cli.serve",
    "trustcheck.cli.audit",
    "trustcheck.cli.tuf",
)

#: runs the CLI like the console script, then reports the loaded modules on a pipe
CHILD = """
import json, os, sys
from trustcheck.__main__ import main
sys.argv = ["trustcheck", *sys.argv[1:]]
rc = main()
with os.fdopen(int(os.environ["IMPORT_REPORT_FD"]), "w") as out:
    json.dump({"rc": rc, "modules": sorted(sys.modules)}, out)
sys.exit(rc)
"""


def _run(args: list[str], env_extra: dict[str, str] | None = None) -> tuple[int, str, list[str]]:
    """(exit code, stdout, loaded module names) of one CLI run in a fresh interpreter."""
    read_fd, write_fd = os.pipe()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "TRUSTCHECK_"))}
    env.update(env_extra or {})
    env["IMPORT_REPORT_FD"] = str(write_fd)
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        pass_fds=(write_fd,),
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as report:
        data = report.read()
    out, err = proc.communicate(timeout=60)
    assert data, f"the child reported nothing: {err.decode()[-2000:]}"
    parsed = json.loads(data)
    assert proc.returncode == parsed["rc"], err.decode()
    return int(parsed["rc"]), out.decode(), list(parsed["modules"])


def _loaded(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


def test_forbidden_list_is_matched_by_prefix() -> None:
    """The matcher itself: submodules count, names that merely start alike do not."""
    mods = ["httpx._client", "sslx", "ssl", "trustcheck.policy.load", "trustcheck.policyx"]
    assert _loaded(mods, ("httpx", "ssl", "trustcheck.policy")) == [
        "httpx._client",
        "ssl",
        "trustcheck.policy.load",
    ]


def test_offline_verify_imports_only_what_it_needs(
    committed_fixtures: FixtureSet, tmp_path: Path
) -> None:
    rc, out, modules = _run(
        [
            "verify",
            "--offline",
            "--trust-dir",
            str(committed_fixtures.trust_dir),
            "--at",
            committed_fixtures.validation_time,
            "--json",
            "localhost/basic:v1",
        ],
        {"XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")},
    )
    assert rc == 0, out
    assert json.loads(out)["results"][0]["trusted"] is True
    # it really did the work: the verifier, the trust dir reader and the state store ran
    for needed in ("trustcheck.core.trusted_set", "trustcheck.local.state", "cryptography.x509"):
        assert needed in modules
    assert _loaded(modules, OFFLINE_VERIFY_FORBIDDEN) == []


def test_offline_verify_with_a_pin_file_loads_the_pin_parser(
    committed_fixtures: FixtureSet, tmp_path: Path
) -> None:
    """The laziness is per need: a pin file on the default path is read (and
    pinfile, tomllib imported); the command still needs no HTTP or policy."""
    pins = tmp_path / "cfg" / "trustcheck" / "pins.toml"
    pins.parent.mkdir(parents=True)
    pins.write_text("")
    rc, out, modules = _run(
        [
            "verify",
            "--offline",
            "--trust-dir",
            str(committed_fixtures.trust_dir),
            "--at",
            committed_fixtures.validation_time,
            "localhost/basic:v1",
        ],
        {"XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")},
    )
    assert rc == 0, out
    assert out.startswith("TRUSTED")
    assert "trustcheck.local.pinfile" in modules
    assert "tomllib" in modules
    assert _loaded(modules, ("httpx", "ssl", "trustcheck.policy", "rich", "yaml")) == []


def test_fetch_loads_httpx_without_its_command_line_client(tmp_path: Path) -> None:
    """An online command loads the HTTP stack, but not httpx's CLI (click, rich,
    pygments: a third of its import time); the refused connection is still
    reported as the network error it is."""
    rc, out, modules = _run(
        [
            "fetch",
            "--server",
            "https://127.0.0.1:1",
            "--retries",
            "0",
            "--trust-dir",
            str(tmp_path / "trust"),
            "localhost/basic",
        ],
        {"XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")},
    )
    assert rc == 1
    assert "network-error" in out
    assert "httpx" in modules and "ssl" in modules
    assert _loaded(modules, ("httpx._main", "click", "rich", "pygments")) == []


@pytest.mark.parametrize("blocked_before", [False, True])
def test_httpx_cli_block_leaves_sys_modules_as_it_was(blocked_before: bool) -> None:
    """The block is temporary: after the import, ``httpx._main`` can be imported
    normally (nothing stays poisoned), and an earlier entry is left alone."""
    code = (
        "import sys\n"
        + ("sys.modules['httpx._main'] = None\n" if blocked_before else "")
        + "from trustcheck.remote.http import _import_httpx\n"
        "_import_httpx()\n"
        "import httpx\n"
        "print('httpx._main' in sys.modules, sys.modules.get('httpx._main', 0) is None)\n"
        "print(callable(httpx.Client))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    if blocked_before:  # someone else's None stays theirs
        assert done.stdout.split() == ["True", "True", "True"]
    else:
        assert done.stdout.split() == ["False", "False", "True"]


@pytest.mark.parametrize("xdg", [None, "", "cfg"])
def test_default_pins_agrees_with_the_pin_file_module(
    xdg: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cli.options finds the default pin file without importing the pin parser; it must
    name the same file as :func:`trustcheck.local.pinfile.default_pin_file`."""
    from trustcheck.cli.options import default_pins
    from trustcheck.local.pinfile import default_pin_file

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if xdg is None:
        monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / xdg) if xdg else "")
    expected = default_pin_file(os.environ, tmp_path / "home")
    assert default_pins(None) is None  # no file there yet
    expected.parent.mkdir(parents=True)
    expected.write_text("")
    assert default_pins(None) == expected
    assert default_pins(tmp_path / "given.toml") == tmp_path / "given.toml"


# --------------------------------------------------------------------------- TLS set-up


def _trust_of(ctx: Any) -> tuple[object, ...]:
    return (
        sorted(ctx.get_ca_certs(binary_form=True)),
        ctx.cert_store_stats(),
        ctx.verify_mode,
        ctx.check_hostname,
        ctx.options,
        ctx.verify_flags,
        ctx.protocol,
    )


@pytest.mark.parametrize("variables", ["inherited", "unset", "missing-file", "not-pem"])
def test_default_tls_context_trusts_what_the_stdlib_default_trusts(
    variables: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fetch builds the system CA context with the GIL released (so that it overlaps the
    imports); it must trust exactly what ``ssl.create_default_context()`` trusts, for
    the process's SSL_CERT_FILE / SSL_CERT_DIR whatever they are."""
    import ssl

    from trustcheck.remote.http import default_tls_context

    if variables == "unset":
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    elif variables == "missing-file":
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    elif variables == "not-pem":
        bad = tmp_path / "bad.pem"
        bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        monkeypatch.setenv("SSL_CERT_FILE", str(bad))
    assert _trust_of(default_tls_context()) == _trust_of(ssl.create_default_context())


def test_prewarmed_tls_context_is_taken_once_under_the_same_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ssl

    from trustcheck.remote import http

    http.prewarm_tls()
    first = http._take_prewarmed()
    assert isinstance(first, ssl.SSLContext)
    assert _trust_of(first) == _trust_of(ssl.create_default_context())
    assert http._take_prewarmed() is None  # one context, for one session
    http.prewarm_tls()
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "other.pem"))
    assert http._take_prewarmed() is None  # built for other TLS variables: not used
