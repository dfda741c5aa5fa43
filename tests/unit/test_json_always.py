"""Every command with machine-readable output prints exactly one JSON document on stdout
on every exit path (docs/design/cli-contract.md, "Machine-readable output").

The commands are discovered by walking the CLI's command tree (what `trustcheck --help`
lists, recursively), and the bad inputs are built from each command's own parameters,
so a command added later is covered without touching this file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import CliRun, run_trustcheck

#: parameter names that take an image reference (or a repository, a pin pattern)
IMAGE_PARAMS = {"images", "image", "targets", "repositories", "pattern", "target"}
GOOD_REF = "example.com/team/app:v1"
BAD_REF = "Bad//Ref::x"


def _leaves() -> list[tuple[list[str], Any]]:
    from trustcheck.cli.app import root_command

    root = root_command()
    ctx = root.make_context("trustcheck", ["--help"], resilient_parsing=True)
    found: list[tuple[list[str], Any]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), [*path, name])
        else:
            found.append((path, cmd))

    walk(root, [])
    return found


def _json_args(cmd: Any) -> list[str] | None:
    """How to select JSON output on stdout for ``cmd`` (None: it has none)."""
    opts = {o for p in cmd.params for o in p.opts}
    if "--json" in opts:
        return ["--json"]
    if "--format" in opts:
        return ["--format", "json"]
    if "--pretty" in opts:
        return []  # JSON unless --pretty
    return None


def _is_path(p: Any) -> bool:
    return "Path" in type(p.type).__name__ or p.name == "repo"


def _garbage(tmp: Path) -> Path:
    bad = tmp / "malformed"
    bad.write_bytes(b"\x00{not: [valid\n\xff")
    return bad


def _fill(cmd: Any, tmp: Path, image: str, path: Path | None = None) -> list[str]:
    """Values for the required parameters (and the image arguments): ``path`` (else
    paths that do not exist), ``image`` for references."""
    argv: list[str] = []
    for p in cmd.params:
        is_arg = p.param_type_name == "argument"
        if not (is_arg or p.required):
            continue
        if _is_path(p):
            value = str(path or tmp / f"missing-{p.name}")
        elif p.name in IMAGE_PARAMS:
            value = image
        else:
            value = "x"
        argv += [value] if is_arg else [p.opts[0], value]
    return argv


def _cases(cmd: Any, tmp: Path) -> dict[str, list[str]]:
    opts = {o for p in cmd.params for o in p.opts}
    good = _fill(cmd, tmp, GOOD_REF)
    cases = {"unknown option": [*good, "--no-such-option"]}
    if any(p.name in IMAGE_PARAMS for p in cmd.params):
        cases["invalid reference"] = _fill(cmd, tmp, BAD_REF)
    if any(_is_path(p) and (p.required or p.param_type_name == "argument") for p in cmd.params):
        cases["missing file"] = good
        cases["malformed file"] = _fill(cmd, tmp, GOOD_REF, _garbage(tmp))
    if "--pins" in opts:
        cases["malformed --pins"] = [*good, "--pins", str(_garbage(tmp))]
    if "--at" in opts:
        cases["bad --at"] = [*good, "--at", "yesterday"]
    if "--timeout" in opts:
        cases["bad --timeout"] = [*good, "--timeout", "abc"]
    if "--trust-dir" in opts:
        a_file = tmp / "a-file"
        a_file.write_text("not a folder\n")
        cases["trust dir is a file"] = [*good, "--trust-dir", str(a_file)]
    return cases


def _check(run: CliRun, what: str) -> Any:
    """Exactly one JSON document on stdout; a failure's exit code; the error object
    agrees with the exit code and with the one diagnostic line on stderr."""
    assert run.code in (1, 2), f"{what}: exit {run.code}\n{run.stdout}\n{run.stderr}"
    assert "Traceback" not in run.stderr, what
    try:
        doc = json.loads(run.stdout)  # refuses an empty stdout and any trailing text
    except json.JSONDecodeError as e:
        raise AssertionError(f"{what}: not one JSON document ({e}): {run.stdout!r}") from e
    if isinstance(doc, list):  # inspect keeps docker trust inspect's array
        assert doc == [], what
        assert re.search(r"^(E|e)rror: ", run.stderr, re.M), (what, run.stderr)
        return doc
    assert isinstance(doc, dict), what
    if "error" not in doc or doc["error"] is None:
        # the command's own "not trusted" document (verify, fetch, doctor...): exit 1
        # or 2 with a result per input, never an empty success
        assert run.code in (1, 2) and doc, (what, doc)
        return doc
    err = doc["error"]
    assert set(err) >= {"code", "message", "exit_code"}, (what, err)
    assert err["exit_code"] == run.code, (what, err, run.code)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", err["code"]), (what, err)
    assert err["message"] and "\n" not in err["message"], (what, err)
    if err["code"] == "invalid-argument" and run.stderr.lstrip().startswith("Usage:"):
        assert "Error:" in run.stderr, (what, run.stderr)  # click's own usage message
    else:
        lines = [ln for ln in run.stderr.splitlines() if ln.startswith("error: ")]
        assert len(lines) == 1, (what, run.stderr)
        assert lines[0].startswith(f"error: [{err['code']}] "), (what, lines[0], err)
    return doc


def test_every_json_command_prints_one_document_on_every_failure(tmp_path: Path) -> None:
    checked: dict[str, list[str]] = {}
    for path, cmd in _leaves():
        json_args = _json_args(cmd)
        if json_args is None:
            continue
        for name, argv in _cases(cmd, tmp_path).items():
            run = run_trustcheck(*path, *json_args, *argv)
            _check(run, f"trustcheck {' '.join([*path, *json_args, *argv])} ({name})")
            checked.setdefault(" ".join(path), []).append(name)
    # the walk found the commands (a broken discovery must not pass vacuously)
    assert {"verify", "inspect", "fetch", "thumbprint", "pin list", "audit", "doctor", "gate",
            "tuf verify", "archive inspect", "notation verify", "cosign verify",
            "cosign verify-blob", "coverage"} <= set(checked), sorted(checked)  # fmt: skip
    assert sum(len(v) for v in checked.values()) >= 100, checked
    print(f"{len(checked)} commands, {sum(len(v) for v in checked.values())} failing runs")


def test_the_error_document_keeps_each_commands_shape(tmp_path: Path) -> None:
    run = run_trustcheck("verify", "--json", GOOD_REF, BAD_REF)
    doc = _check(run, "verify")
    assert doc["results"] == [] and doc["error"]["code"] == "invalid-reference"
    assert doc["error"]["exit_code"] == 2 and doc["error"]["role"] is None
    run = run_trustcheck("fetch", "--json", "--at", "yesterday", GOOD_REF)
    assert _check(run, "fetch")["collections"] == []
    run = run_trustcheck("thumbprint", "--json", BAD_REF)
    assert _check(run, "thumbprint")["keys"] == []
    run = run_trustcheck("coverage", "--format=json", "--at", "yesterday")
    assert _check(run, "coverage")["repositories"] == []
    run = run_trustcheck("inspect", BAD_REF)  # JSON by default: Docker's array
    assert run.code == 2 and run.stdout == "[]\n" and "[invalid-reference]" in run.stderr
    run = run_trustcheck("cosign", "verify-blob", "--json", str(tmp_path / "none"),
                         "--bundle", str(tmp_path / "none.json"))  # fmt: skip
    doc = _check(run, "verify-blob")
    assert doc["trusted"] is False and doc["error"]["exit_code"] == 2


def test_no_document_where_stdout_is_not_json(tmp_path: Path) -> None:
    # human output, CSV and --output FILE: a failure leaves stdout empty, as before
    for argv in (
        ("verify", BAD_REF),
        ("inspect", "--pretty", BAD_REF),
        ("coverage", "--format", "csv", "--at", "yesterday"),
        ("audit", "--format", "json", "--output", str(tmp_path / "r.json"), BAD_REF),
        ("tuf", "inspect", "--pretty", "--repo", str(tmp_path / "none")),
    ):
        run = run_trustcheck(*argv)
        assert run.code == 2 and run.stdout == "", (argv, run.stdout)
        assert run.stderr.startswith("error: ["), (argv, run.stderr)
        assert not (tmp_path / "r.json").exists()


def test_json_asked_of_a_command_without_it_is_one_document_too() -> None:
    for argv in (("pin", "add", "--json", GOOD_REF), ("no-such-command", "--json")):
        run = run_trustcheck(*argv)
        doc = _check(run, " ".join(argv))
        assert doc["error"]["code"] == "invalid-argument" and run.code == 2


def test_a_document_already_printed_is_not_followed_by_another(tmp_path: Path) -> None:
    # verify prints its not-trusted results and exits 1: no second (error) document
    run = run_trustcheck("verify", "--json", "--trust-dir", str(tmp_path), GOOD_REF)
    doc = _check(run, "verify")
    assert run.code == 1 and "error" not in doc
    assert doc["results"][0]["error"]["code"] == "no-trust-data"


def test_an_unexpected_failure_is_one_document_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault outside any one image (reading the state dir's location) is not a
    result of verify: the funnel prints the error document, exit 1."""
    import trustcheck.local.state as state

    def broken(*_: object, **__: object) -> object:
        raise RuntimeError("injected fault")

    monkeypatch.setattr(state, "default_state_dir", broken)
    for argv, empty in ((("verify", "--json", GOOD_REF), "results"),
                        (("fetch", "--json", GOOD_REF), "collections")):  # fmt: skip
        run = run_trustcheck(*argv)
        doc = _check(run, f"{argv[0]} with a fault")
        assert doc["error"]["code"] == "internal-error" and doc["error"]["exit_code"] == 1
        assert "RuntimeError: injected fault" in doc["error"]["message"]
        assert doc[empty] == []
    run = run_trustcheck("verify", GOOD_REF)  # without --json: stdout stays empty
    assert run.code == 1 and run.stdout == "" and "[internal-error]" in run.stderr


def test_a_real_process_over_a_pipe(tmp_path: Path) -> None:
    """The installed entry point, stdout a real pipe (unbuffered, as in containers)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TRUSTCHECK_OFFLINE": "1"}
    for argv, code in (
        (["gate", "--json", "--policy", str(tmp_path / "none.yaml"), GOOD_REF], "policy-invalid"),
        (["tuf", "verify", "--json", "--repo", str(tmp_path / "none"), "t"], "invalid-argument"),
        (["audit", "--format", "json", "--at", "later", GOOD_REF], "invalid-argument"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "trustcheck", *argv],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        doc = _check(CliRun(done.returncode, done.stdout, done.stderr), " ".join(argv))
        assert doc["error"]["code"] == code and done.returncode == 2


def test_an_unreachable_server_is_one_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Online failures that stop a command (not one image's result): a closed port."""
    monkeypatch.delenv("TRUSTCHECK_OFFLINE", raising=False)
    down = ["--timeout", "2", "--retries", "0"]
    image = "127.0.0.1:1/team/app"
    for argv, empty in (
        (["thumbprint", "--json", "--server", "https://127.0.0.1:1", *down, f"{image}:v1"],
         "keys"),
        (["archive", "create", "--json", "-o", str(tmp_path / "a.tar"),
          "--server", "https://127.0.0.1:1", *down, f"{image}:v1"], None),
        (["quarantine", "status", "--json", "--registry", "https://127.0.0.1:1", *down,
          f"{image}@sha256:{'a' * 64}"], None),
    ):  # fmt: skip
        run = run_trustcheck(*argv)
        doc = _check(run, " ".join(argv[:2]))
        assert doc["error"]["code"] in ("network-error", "server-error"), doc
        assert doc["error"]["exit_code"] == run.code == 1
        if empty is not None:
            assert doc[empty] == []
    assert not (tmp_path / "a.tar").exists()
