"""Exit codes that never lie and failures a user can act on (issue 13, items 1, 3, 6).

* ``-h`` on every command and sub-command; usage lines name their arguments
  (``IMAGE...``), never typer's ``{images}...``; ``--version``; ``python -m
  trustcheck``.
* A closed stdout pipe: exit 141, nothing on stderr, no traceback.
* Unwritable state dir or pin file: exit 2 naming the path and the fix,
  ``TRUSTCHECK_STATE_DIR`` honoured, also as an unprivileged user (uid 65532)
  with ``HOME=/``.
* ``--trust-dir`` that does not exist: exit 2 naming it; ``no-trust-data``
  names the trust dir and whether it exists.
* ``--at`` with a date or a bad spelling suggests a value that is then accepted.
* ``audit --all`` reports collections it cannot read safely as findings.

Real subprocesses where the process boundary is the point (pipes, uids).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import COMMITTED_FIXTURES, REPO_ROOT, run_trustcheck

TRUST = COMMITTED_FIXTURES / "trust"
AT = (COMMITTED_FIXTURES / "VALIDATION_TIME").read_text().strip()
GUN = "localhost/basic"
IMAGE = f"{GUN}:v1"
OFFLINE = ["--offline", "--trust-dir", str(TRUST), "--at", AT]
UNPRIVILEGED = 65532


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No run reads or writes the real user's pins, state or trust dir."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "TRUSTCHECK_STATE_DIR", "DOCKER_CONFIG"):
        monkeypatch.delenv(var, raising=False)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTCHECK_")}
    env.update(extra)
    return env


def _cli(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    """The real entry point in a child process: ``python -m trustcheck``."""
    return subprocess.run(
        [sys.executable, "-m", "trustcheck", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO_ROOT,
        **kw,  # type: ignore[call-overload]
    )


# --------------------------------------------------------------------------- help, version


def _command_paths() -> list[list[str]]:
    """Every command and sub-command of the full app, as argv prefixes."""
    from trustcheck.cli.app import root_command

    root = root_command()
    paths: list[list[str]] = []

    def walk(cmd: object, prefix: list[str]) -> None:
        paths.append(prefix)
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            walk(sub, [*prefix, name])

    walk(root, [])
    return paths


COMMAND_PATHS = _command_paths()


def test_the_command_tree_is_complete() -> None:
    names = {" ".join(p) for p in COMMAND_PATHS}
    for expected in (
        "verify",
        "inspect",
        "fetch",
        "gate",
        "pull",
        "audit",
        "doctor",
        "serve",
        "pin add",
        "pin list",
        "policy explain",
        "quarantine release",
        "tuf verify",
    ):
        assert expected in names, f"{expected} missing from {sorted(names)}"


def test_the_lazy_command_table_names_what_each_module_registers() -> None:
    """cli/app.py's COMMANDS table is what --help lists and what a name loads: each module
    registers exactly the names the table gives it, and every module of trustcheck/cli with
    a ``register`` is in the table (a new command group cannot be forgotten)."""
    import importlib
    import pkgutil

    import trustcheck.cli
    from trustcheck.cli.app import COMMANDS, load_commands

    by_module: dict[str, set[str]] = {}
    for name, module in COMMANDS.items():
        by_module.setdefault(module, set()).add(name)
    for module, names in by_module.items():
        assert set(load_commands(module)) == names, module
        for name in names:  # a run converts its own command only
            assert set(load_commands(module, name)) == {name}, (module, name)
    registering = {
        f"trustcheck.cli.{m.name}"
        for m in pkgutil.iter_modules(trustcheck.cli.__path__)
        if callable(getattr(importlib.import_module(f"trustcheck.cli.{m.name}"), "register", None))
    }
    assert registering <= set(by_module), registering - set(by_module)


@pytest.mark.parametrize(
    ("argv", "loaded"),
    [
        (["verify", "-h"], {"verify", "archive"}),  # verify/gate --archive: its options
        (["fetch", "-h"], {"verify", "archive"}),
        (["pin", "list", "-h"], {"pin"}),
        (["tuf", "verify", "-h"], {"tuf"}),
        (["gate", "-h"], {"gate", "archive"}),
        (["-h"], None),  # the help page lists every command: every module
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_a_command_loads_only_its_own_module(argv: list[str], loaded: set[str] | None) -> None:
    """Start-up: ``trustcheck verify`` imports and converts the verify module, not the groups."""
    code = (
        "import sys\n"
        "from trustcheck.cli import main\n"
        f"rc = main({argv!r})\n"
        "mods = [m for m in sys.modules if m.startswith('trustcheck.cli.')]\n"
        "print(' '.join(m.rsplit('.', 1)[1] for m in mods), file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert "Usage: trustcheck" in proc.stdout
    from trustcheck.cli.app import COMMANDS

    if loaded is None:
        loaded = {m.rsplit(".", 1)[1] for m in COMMANDS.values()}
    assert set(proc.stderr.split()) == {"app", "options"} | loaded, proc.stderr


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda p: " ".join(p) or "trustcheck")
def test_dash_h_on_every_command_names_the_arguments(path: list[str]) -> None:
    short = run_trustcheck(*path, "-h")
    assert short.code == 0, short.stderr
    usage = next(line for line in short.stdout.splitlines() if "Usage:" in line)
    assert usage.split("Usage:", 1)[1].split()[: 1 + len(path)] == ["trustcheck", *path]
    assert "{" not in usage and "}" not in usage, usage  # typer's {images}... spelling
    assert not re.search(r"\b[a-z_]+\.\.\.", usage), usage  # lower-case parameter names
    assert run_trustcheck(*path, "--help").stdout == short.stdout


def test_usage_lines_show_argument_names() -> None:
    assert "Usage: trustcheck verify [OPTIONS] IMAGE..." in run_trustcheck("verify", "-h").stdout
    assert "Usage: trustcheck audit [OPTIONS] [IMAGE...]" in run_trustcheck("audit", "-h").stdout
    assert "Usage: trustcheck pin add [OPTIONS] IMAGE" in run_trustcheck("pin", "add", "-h").stdout
    thumb = run_trustcheck("thumbprint", "-h").stdout
    assert "Usage: trustcheck thumbprint [OPTIONS] IMAGE|CERT..." in thumb


def test_version_in_process_and_as_module() -> None:
    import trustcheck

    run = run_trustcheck("--version")
    assert (run.code, run.stdout) == (0, f"trustcheck {trustcheck.__version__}\n")
    proc = _cli("--version")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, run.stdout, "")
    assert "--version" in run_trustcheck("-h").stdout


def test_python_dash_m_runs_a_real_verification() -> None:
    proc = _cli("verify", *OFFLINE, "--state-dir", tempfile.mkdtemp(), IMAGE, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"TRUSTED      {IMAGE}  sha256:")


def test_no_arguments_is_a_usage_error_with_help() -> None:
    run = run_trustcheck()
    assert run.code == 2 and "Usage: trustcheck" in run.stdout + run.stderr


def test_unknown_option_and_missing_argument_exit_2() -> None:
    assert run_trustcheck("verify", "--nope", IMAGE).code == 2
    run = run_trustcheck("verify")
    assert run.code == 2 and "IMAGE" in run.stderr


# --------------------------------------------------------------------------- broken pipe


def _closed_pipe_run(*args: str) -> subprocess.CompletedProcess[bytes]:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before trustcheck writes: `| head -0`
    try:
        return subprocess.run(
            [sys.executable, "-m", "trustcheck", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
            cwd=REPO_ROOT,
            env=_env(HOME=tempfile.mkdtemp()),
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [
        ["inspect", *OFFLINE, GUN],
        ["inspect", "--pretty", *OFFLINE, GUN],
        ["verify", *OFFLINE, IMAGE],
        ["audit", "--trust-dir", str(TRUST), "--at", AT, "--all"],
        ["--help"],
        ["verify", "-h"],
        ["--version"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_closed_stdout_pipe_exits_141_without_traceback(args: list[str]) -> None:
    proc = _closed_pipe_run(*args)
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == b""


@pytest.mark.parametrize("unbuffered", ["1", ""], ids=["PYTHONUNBUFFERED=1", "buffered"])
def test_head_dash_1_on_a_large_output_exits_141(unbuffered: str) -> None:
    """`trustcheck inspect BIG | head -1`: head leaves after its first read, while
    trustcheck still has most of its half-megabyte document to write. With
    PYTHONUNBUFFERED=1 (common in container images) CPython would drop the rest
    of a partial write silently and exit 0; trustcheck must say 141."""
    script = (
        f'"{sys.executable}" -m trustcheck inspect --offline --trust-dir "{TRUST}" --at {AT} '
        'localhost/bulk | head -1; echo "status=${PIPESTATUS[0]}" >&2'
    )
    env = _env(HOME=tempfile.mkdtemp(), PYTHONUNBUFFERED=unbuffered)
    proc = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, check=False, env=env, cwd=REPO_ROOT
    )
    assert proc.stdout == "[\n"
    assert proc.stderr == "status=141\n"
    whole = subprocess.run(
        ["bash", "-c", script.replace("head -1", "wc -c")],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=REPO_ROOT,
    )
    assert whole.stderr == "status=0\n" and int(whole.stdout) > 200_000  # nothing lost


# --------------------------------------------------------------------------- state dir, pin file


def test_state_dir_that_is_a_file_is_a_usage_error_naming_it() -> None:
    run = run_trustcheck("verify", *OFFLINE, "--state-dir", "/etc/passwd", IMAGE)
    assert run.code == 2
    assert "[state-dir-unwritable] state dir /etc/passwd cannot be written" in run.stderr
    assert "--state-dir or $TRUSTCHECK_STATE_DIR" in run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


def test_trustcheck_state_dir_env_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("TRUSTCHECK_STATE_DIR", str(state))
    assert run_trustcheck("verify", *OFFLINE, IMAGE).code == 0
    assert list((state / "v1").glob("*.json")), "the verified root was not recorded there"
    monkeypatch.setenv("TRUSTCHECK_STATE_DIR", "/etc/passwd")
    run = run_trustcheck("verify", *OFFLINE, IMAGE)
    assert run.code == 2 and "state dir /etc/passwd" in run.stderr
    # --state-dir wins over the variable
    assert run_trustcheck("verify", *OFFLINE, "--state-dir", str(state), IMAGE).code == 0


def test_state_dir_for_every_verifying_command(tmp_path: Path) -> None:
    bad = ["--state-dir", "/etc/passwd"]
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"rules:\n  - pattern: {GUN}\n")
    for args in (
        ["verify", *OFFLINE, *bad, IMAGE],
        ["inspect", *OFFLINE, *bad, GUN],
        ["gate", *OFFLINE, *bad, "--policy", str(policy), IMAGE],
        ["pull", "--dry-run", *OFFLINE, *bad, IMAGE],
        ["pin", "add", *OFFLINE, *bad, "--pins", str(tmp_path / "pins.toml"), GUN],
    ):
        run = run_trustcheck(*args)
        assert run.code == 2, (args, run.stdout, run.stderr)
        assert "[state-dir-unwritable]" in run.stderr, (args, run.stderr)


def test_unwritable_pin_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    target = "/etc/passwd/pins.toml"  # its folder is a file: no user can write there
    run = run_trustcheck(
        "pin", "add", *OFFLINE, "--state-dir", str(tmp_path / "s"), "--pins", target, GUN
    )
    assert run.code == 2, run.stderr
    assert f"[pin-file-unwritable] pin file {target} cannot be written" in run.stderr
    assert "--pins" in run.stderr and "Traceback" not in run.stderr


def _unprivileged_python() -> list[str]:
    """A Python interpreter uid 65532 can run, with this checkout and its
    dependencies importable; skipped unless running as root with setpriv."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run a child as uid 65532")
    drop = ["setpriv", f"--reuid={UNPRIVILEGED}", f"--regid={UNPRIVILEGED}", "--clear-groups"]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for exe in (sys.executable, shutil.which(version), f"/usr/bin/{version}"):
        if exe and subprocess.run([*drop, exe, "-c", "pass"], capture_output=True).returncode == 0:
            return [*drop, exe]
    pytest.skip(f"no {version} that uid {UNPRIVILEGED} can execute")


@pytest.fixture
def world_readable_tmp() -> Iterator[Path]:
    """A temporary folder uid 65532 can reach (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="trustcheck-h2-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _as_unprivileged(home: str | None, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    paths = [str(REPO_ROOT), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    if home is not None:
        env["HOME"] = home
    return subprocess.run(
        [*_unprivileged_python(), "-m", "trustcheck", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(paths), **env},
    )


def test_unprivileged_user_with_home_slash(world_readable_tmp: Path) -> None:
    run = _as_unprivileged("/", "verify", *OFFLINE, IMAGE)
    assert run.returncode == 2, run.stderr
    assert "[state-dir-unwritable] state dir /.local/state/trustcheck cannot be written" in (
        run.stderr
    )
    assert "Permission denied" in run.stderr and "TRUSTCHECK_STATE_DIR" in run.stderr
    # the documented fix, as in a read-only container: a writable TRUSTCHECK_STATE_DIR
    state = world_readable_tmp / "state"
    state.mkdir()
    os.chown(state, UNPRIVILEGED, UNPRIVILEGED)
    run = _as_unprivileged("/", "verify", *OFFLINE, IMAGE, TRUSTCHECK_STATE_DIR=str(state))
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"TRUSTED      {IMAGE}")


def test_unprivileged_pin_add_to_a_read_only_folder(world_readable_tmp: Path) -> None:
    state = world_readable_tmp / "state"
    state.mkdir()
    os.chown(state, UNPRIVILEGED, UNPRIVILEGED)
    pins = world_readable_tmp / "pins.toml"  # the folder belongs to root, mode 755
    run = _as_unprivileged(
        "/", "pin", "add", *OFFLINE, "--state-dir", str(state), "--pins", str(pins), GUN
    )
    assert run.returncode == 2, run.stderr
    assert f"[pin-file-unwritable] pin file {pins} cannot be written" in run.stderr
    assert "Permission denied" in run.stderr and not pins.exists()


# --------------------------------------------------------------------------- trust dir


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "--offline", "--at", AT, IMAGE],
        ["inspect", "--offline", GUN],
        ["thumbprint", "--offline", GUN],
        ["pin", "list", "--pins", "{pins}"],
        ["pin", "add", "--offline", "--pins", "{pins}", GUN],
        ["audit", GUN],
        ["audit", "--all"],
        ["gate", "--offline", "--policy", "{policy}", IMAGE],
        ["pull", "--dry-run", "--offline", IMAGE],
        ["policy", "explain", "--offline", "--policy", "{policy}", IMAGE],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_missing_trust_dir_is_a_usage_error_naming_it(tmp_path: Path, args: list[str]) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"rules:\n  - pattern: {GUN}\n")
    pins = tmp_path / "pins.toml"
    state = ["--state-dir", str(tmp_path / "s")]
    made = run_trustcheck("pin", "add", *OFFLINE, *state, "--pins", str(pins), GUN)
    assert made.code == 0, made.stderr
    missing = tmp_path / "no-such-trust-dir"
    argv = [a.format(policy=policy, pins=pins) for a in args]
    run = run_trustcheck(*argv, "--trust-dir", str(missing))
    assert run.code == 2, (run.stdout, run.stderr)
    assert f"[trust-dir-missing] --trust-dir {missing} does not exist" in run.stderr
    assert not missing.exists()


def test_trust_dir_that_is_a_file() -> None:
    run = run_trustcheck("verify", "--offline", "--trust-dir", "/etc/passwd", IMAGE)
    assert run.code == 2
    assert "--trust-dir /etc/passwd is not a directory" in run.stderr


def test_no_trust_data_names_the_trust_dir_and_whether_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_trustcheck("verify", *OFFLINE, "localhost/absent:v1")
    assert run.code == 1
    assert f"the trust dir {TRUST} (it exists, but has no tuf/localhost/absent/metadata)" in (
        run.stdout
    )
    (tmp_path / "t" / "tuf" / GUN / "metadata").mkdir(parents=True)
    run = run_trustcheck("verify", "--offline", "--trust-dir", str(tmp_path / "t"), IMAGE)
    assert f"tuf/{GUN}/metadata has no root.json" in run.stdout and run.code == 1
    # the default trust dir (not named on the command line) may be missing: exit 1, named
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    run = run_trustcheck("verify", "--offline", IMAGE)
    assert run.code == 1
    assert f"the trust dir {tmp_path / 'docker' / 'trust'} (which does not exist)" in run.stdout


# --------------------------------------------------------------------------- --at


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-28",
        "20261128",
        "2026/11/28",
        "2026-11-28T10:00:00",
        "2026-11-28 10:00",
        "yesterday",
        "28.11.2026",
        "2026-13-45",
    ],
)
def test_at_suggestion_is_accepted(value: str, tmp_path: Path) -> None:
    state = ["--state-dir", str(tmp_path / "s")]
    bad = run_trustcheck("verify", "--offline", "--trust-dir", str(TRUST), "--at", value, IMAGE)
    assert bad.code == 2 and "[invalid-argument]" in bad.stderr
    suggested = re.search(r"--at (\S+)$", bad.stderr.strip())
    assert suggested, bad.stderr
    good = run_trustcheck(
        "verify", "--offline", "--trust-dir", str(TRUST), *state, "--at", suggested[1], IMAGE
    )
    assert "[invalid-argument]" not in good.stderr
    if value.startswith("2026") and "13" not in value:  # a day the fixtures are valid on
        assert good.code == 0, good.stdout
        assert suggested[1].startswith("2026-11-28T")


# --------------------------------------------------------------------------- audit --all


@pytest.fixture
def damaged_trust(world_readable_tmp: Path) -> Path:
    """A copy of the fixtures' trust dir with one collection per kind of damage."""
    trust = world_readable_tmp / "trust"
    shutil.copytree(TRUST, trust, symlinks=True)
    outside = world_readable_tmp / "outside-root.json"
    meta = trust / "tuf" / "localhost"
    shutil.copy(meta / "rsa" / "metadata" / "root.json", outside)
    (meta / "rsa" / "metadata" / "root.json").unlink()
    (meta / "rsa" / "metadata" / "root.json").symlink_to(outside)  # leaves the trust dir
    (meta / "nested" / "metadata" / "root.json").unlink()
    (meta / "nested" / "metadata" / "root.json").mkdir()  # not a regular file
    (meta / "names" / "metadata" / "root.json").unlink()
    (meta / "names" / "metadata" / "root.json").symlink_to("gone.json")  # dangling
    shutil.rmtree(meta / "rotated" / "metadata")
    (meta / "rotated" / "metadata").write_text("")  # metadata is a file
    (meta / "linked").symlink_to(world_readable_tmp)  # a folder out of the trust dir
    return trust


def _audit_json(trust: Path, *extra: str) -> tuple[int, dict[str, object]]:
    run = run_trustcheck(
        "audit", "--all", "--trust-dir", str(trust), "--at", AT, "--format", "json", *extra
    )
    return run.code, json.loads(run.stdout)


def test_audit_all_reports_unreadable_and_unsafe_collections(damaged_trust: Path) -> None:
    code, doc = _audit_json(damaged_trust)
    assert code == 0
    findings = [f for f in doc["findings"] if f["code"] == "collection-unreadable"]  # type: ignore[union-attr, index]
    by_gun = {f["gun"]: f for f in findings}
    assert set(by_gun) == {
        "localhost/rsa",
        "localhost/nested",
        "localhost/names",
        "localhost/rotated",
        "localhost/linked",
    }, by_gun
    assert by_gun["localhost/rsa"]["error_code"] == "unsafe-path"
    assert "symlink out of the trust dir" in by_gun["localhost/rsa"]["message"]
    assert "not a regular file" in by_gun["localhost/nested"]["message"]
    assert "dangling symlink" in by_gun["localhost/names"]["message"]
    assert "metadata is not a folder" in by_gun["localhost/rotated"]["message"]
    assert by_gun["localhost/linked"]["error_code"] == "unsafe-path"
    assert all(f["severity"] == "error" for f in findings)
    collections = {c["gun"]: c for c in doc["collections"]}  # type: ignore[union-attr]
    assert collections["localhost/rsa"]["status"] == "unverifiable"
    assert doc["summary"]["findings"]["error"] >= 5  # type: ignore[index]
    code, _ = _audit_json(damaged_trust, "--fail-on", "error")
    assert code == 1


def test_audit_all_table_counts_them(damaged_trust: Path) -> None:
    run = run_trustcheck("audit", "--all", "--trust-dir", str(damaged_trust), "--at", AT)
    assert run.code == 0
    assert "collection-unreadable  localhost/rsa" in run.stdout
    assert re.search(r"\d+ collections \(\d+ verified, 5 unverifiable\)", run.stdout), run.stdout


def test_audit_all_reports_a_folder_it_cannot_list(damaged_trust: Path) -> None:
    for p in damaged_trust.rglob("*"):
        if not p.is_symlink():
            p.chmod(0o755 if p.is_dir() else 0o644)
    damaged_trust.chmod(0o755)
    (damaged_trust / "tuf" / "localhost" / "bulk").chmod(0o700)  # root's, unreadable for 65532
    (damaged_trust / "tuf" / "localhost" / "releases" / "metadata" / "root.json").chmod(0o600)
    state = damaged_trust.parent / "state"
    state.mkdir()
    os.chown(state, UNPRIVILEGED, UNPRIVILEGED)
    run = _as_unprivileged(
        str(state),
        "audit",
        "--all",
        "--trust-dir",
        str(damaged_trust),
        "--at",
        AT,
        "--format",
        "json",
        "--fail-on",
        "error",
    )
    assert run.returncode == 1, run.stderr
    doc = json.loads(run.stdout)
    found = {
        f["gun"]: f["message"] for f in doc["findings"] if f["code"] == "collection-unreadable"
    }
    assert "cannot list the folder (Permission denied)" in found["localhost/bulk"], found
    # a listed collection whose root.json cannot be read: unverifiable, counted as an error
    (releases,) = [
        f for f in doc["findings"] if f["gun"] == "localhost/releases" and f["severity"] == "error"
    ]
    assert (releases["code"], releases["error_code"]) == ("unverifiable", "trust-dir-unreadable")
    assert "Permission denied" in releases["message"]


def test_audit_all_reports_a_tuf_folder_that_leaves_the_trust_dir(
    damaged_trust: Path, tmp_path: Path
) -> None:
    trust = tmp_path / "linked-trust"
    trust.mkdir()
    (trust / "tuf").symlink_to(damaged_trust / "tuf")
    code, doc = _audit_json(trust, "--fail-on", "error")
    assert code == 1
    (finding,) = doc["findings"]  # type: ignore[misc]
    assert finding["code"] == "collection-unreadable"  # type: ignore[index]
    assert finding["message"] == (  # type: ignore[index]
        "tuf in the trust dir: tuf is a symlink that leaves the trust dir; not audited"
    )


def test_version_in_the_json_reports(tmp_path: Path) -> None:
    import trustcheck

    audit = run_trustcheck("audit", "--trust-dir", str(TRUST), "--at", AT, "--format", "json", GUN)
    assert audit.code == 0, audit.stderr
    assert json.loads(audit.stdout)["trustcheck_version"] == trustcheck.__version__
    doctor = run_trustcheck(
        "doctor", "--offline", "--json", "--trust-dir", str(TRUST), "--at", AT, IMAGE
    )
    assert json.loads(doctor.stdout)["trustcheck_version"] == trustcheck.__version__


def _read_only_mount(folder: Path) -> list[str]:
    """argv prefix that runs a command with ``folder`` bind-mounted read-only in a
    private mount namespace (a read-only root file system, as in a hardened
    container); skipped where mount namespaces are not allowed."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare for a read-only bind mount")
    script = (
        f'mount --bind "{folder}" "{folder}" && mount -o remount,bind,ro "{folder}" && exec "$@"'
    )
    probe = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script, "sh", "touch", str(folder / "probe")],
        capture_output=True,
        text=True,
        check=False,
    )
    if "Read-only file system" not in probe.stderr:
        pytest.skip(f"read-only bind mounts are not available here: {probe.stderr.strip()}")
    return ["unshare", "--mount", "sh", "-c", script, "sh"]


def test_read_only_file_system_state_dir_and_pin_file(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    (ro / "state").mkdir(parents=True)
    # a state dir that already holds this GUN's state: even a run that changes
    # nothing needs its lock file, so a read-only mount is reported, not ignored
    assert run_trustcheck("verify", *OFFLINE, "--state-dir", str(ro / "state"), IMAGE).code == 0
    for lock in (ro / "state").rglob("*.lock"):
        lock.unlink()
    prefix = _read_only_mount(ro)
    env = _env(HOME=str(tmp_path))
    cli = [sys.executable, "-m", "trustcheck"]
    state_ok = ["--state-dir", str(tmp_path / "s")]
    for state in (ro / "state", ro / "new-state"):
        proc = subprocess.run(
            [*prefix, *cli, "verify", *OFFLINE, "--state-dir", str(state), IMAGE],
            capture_output=True,
            text=True,
            check=False,
            env=env,
            cwd=REPO_ROOT,
        )
        assert proc.returncode == 2, proc.stderr
        assert f"[state-dir-unwritable] state dir {state} cannot be written" in proc.stderr
        assert "Read-only file system" in proc.stderr and proc.stdout == ""
    proc = subprocess.run(
        [*prefix, *cli, "pin", "add", *OFFLINE, "--pins", str(ro / "pins.toml"), *state_ok, GUN],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"[pin-file-unwritable] pin file {ro / 'pins.toml'} cannot be written" in proc.stderr
    assert "Read-only file system" in proc.stderr


def test_no_home_at_all_is_a_usage_error_with_the_way_out(world_readable_tmp: Path) -> None:
    """uid 65532 has no passwd entry here; without $HOME there is no default path."""
    import pwd

    try:
        pwd.getpwuid(UNPRIVILEGED)
    except KeyError:
        pass
    else:
        pytest.skip(f"uid {UNPRIVILEGED} has a passwd entry here: it has a home")
    cases = {
        "state dir": ["verify", *OFFLINE, IMAGE],
        "trust dir": ["audit", "--all", "--at", AT],
        "pin file": ["pin", "list"],
    }
    for what, args in cases.items():
        run = _as_unprivileged(None, *args)
        assert run.returncode == 2, run.stderr
        assert "[home-unknown] the home directory is unknown ($HOME is not set and uid " in (
            run.stderr
        )
        assert f"so there is no default {what}; set HOME, or give --" in run.stderr
        assert "Traceback" not in run.stderr
    state = world_readable_tmp / "state"
    state.mkdir()
    os.chown(state, UNPRIVILEGED, UNPRIVILEGED)
    run = _as_unprivileged(None, "verify", *OFFLINE, IMAGE, TRUSTCHECK_STATE_DIR=str(state))
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize(
    ("args", "option", "allowed"),
    [
        (["verify", "--delegation-cert-expiry", "maybe"], "--delegation-cert-expiry",
         ["ignore", "warn", "reject"]),
        (["verify", "--dialect", "oci"], "--dialect", ["notary", "tuf"]),
        (["inspect", "--delegation-cert-expiry", "Warn"], "--delegation-cert-expiry", ["warn"]),
        (["audit", "--format", "xml"], "--format", ["table", "json", "csv", "markdown", "html"]),
        (["audit", "--fail-on", "info"], "--fail-on", ["warning", "error"]),
        (["audit", "--delegation-cert-expiry", ""], "--delegation-cert-expiry", ["reject"]),
        (["doctor", "--delegation-cert-expiry", "x"], "--delegation-cert-expiry", ["ignore"]),
        (["pull", "--with", "crane", "--dry-run"], "--with", ["docker", "podman", "skopeo"]),
        (["pin", "add", "--kind", "sha1"], "--kind", ["cert-sha256", "spki-sha256", "keyid"]),
    ],
    ids=lambda v: " ".join(v[:2]) if isinstance(v, list) and v and v[0][0] != "-" else None,
)
def test_a_value_outside_an_options_choices_is_one_usage_line(
    tmp_path: Path, args: list[str], option: str, allowed: list[str]
) -> None:
    """Every option with fixed choices (cli.options.choice): exit 2, one line naming the
    option, every allowed value and what was given; nothing is read or fetched first."""
    run = run_trustcheck(*args, "--trust-dir", str(COMMITTED_FIXTURES / "trust"),
                         "localhost/basic:v1")
    assert run.code == 2, (run.stdout, run.stderr)
    # inspect is JSON by default: its one document on a failure is Docker's empty array
    assert run.stdout == ("[]\n" if args[0] == "inspect" else "")
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: [invalid-argument] "), run.stderr
    assert f"{option} must be " in lines[0] and all(a in lines[0] for a in allowed), lines[0]
    assert repr(args[args.index(option) + 1]) in lines[0]
