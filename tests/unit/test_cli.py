"""The CLI contract: exit codes, stdout/stderr separation, JSON shape, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_trustcheck

REPO = Path(__file__).resolve().parents[2]
N01 = REPO / "fixtures" / "realworld" / "notary0.1"
GUN01 = "docker.com/notary0.1/samplerepo"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    r = run_trustcheck(*args)
    return r.code, r.stdout, r.stderr


def test_verify_trusted_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "verify", "--trust-dir", str(N01), f"{GUN01}:LICENSE")
    assert code == 0
    assert out.startswith("TRUSTED") and "sha256:9395bac6" in out
    assert "Traceback" not in err


def test_verify_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "verify", "--json", "--trust-dir", str(N01), f"{GUN01}:LICENSE", f"{GUN01}:v9"
    )
    assert code == 1
    doc = json.loads(out)
    ok, bad = doc["results"]
    assert set(ok) == {
        "image",
        "gun",
        "tag",
        "trusted",
        "digest",
        "length",
        "role",
        "signers",
        "error",
    }
    assert ok["trusted"] is True and ok["error"] is None and ok["length"] == 11309
    assert bad["trusted"] is False and bad["digest"] is None
    assert bad["error"]["code"] == "tag-not-signed" and bad["error"]["message"]


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "--trust-dir", "/nonexistent", "UPPER/Case"],
        ["verify", "--trust-dir", "/nonexistent", "a/../b:v1"],
        ["verify", "--at", "yesterday", "alpine"],
        ["verify", "--at", "2026-01-01T00:00:00", "alpine"],
        ["verify", "--no-such-option", "alpine"],
        ["inspect", "--trust-dir", "/x", "bad ref"],
    ],
)
def test_usage_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2
    # inspect is JSON by default: one document on a failure too, the empty array
    # that `docker trust inspect` prints when no reference could be inspected
    assert out == ("[]\n" if args[0] == "inspect" else "")
    assert "Traceback" not in err and err.strip()


def test_no_trust_data_exit_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "verify", "--trust-dir", str(tmp_path), "example.com/org/app:v1")
    assert code == 1
    assert "[no-trust-data]" in out


def test_default_trust_dir_from_docker_config(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(N01))
    # $DOCKER_CONFIG/trust does not exist under notary0.1: nothing trusted, but read from there
    code, out, _ = run(capsys, "verify", f"{GUN01}:LICENSE")
    assert code == 1 and "no-trust-data" in out
    monkeypatch.setenv("DOCKER_CONFIG", str(N01.parent / "notary0.1-missing"))
    code, _, _ = run(capsys, "verify", f"{GUN01}:LICENSE")
    assert code == 1


def test_inspect_json_and_pretty(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", "--trust-dir", str(N01), GUN01)
    assert code == 0
    (doc,) = json.loads(out)
    assert doc["Name"] == GUN01
    assert doc["SignedTags"][0]["SignedTag"] == "LICENSE"
    code, out, _ = run(capsys, "inspect", "--pretty", "--trust-dir", str(N01), GUN01)
    assert code == 0
    assert "SIGNED TAG" in out and "(Repo Admin)" in out and "Root Key:" in out


def test_console_script_runs_without_traceback() -> None:
    exe = Path(sys.executable).with_name("trustcheck")
    proc = subprocess.run(
        [str(exe), "verify", "--trust-dir", str(N01), f"{GUN01}:LICENSE"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        [str(exe), "verify", "Bad:Ref:x"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1
