"""The console script's exit without the interpreter's teardown (``trustcheck.__main__.run``).

Each case runs a real interpreter: the exit status must be main()'s code, everything
written must arrive, atexit callbacks must run, and a non-daemon thread still running
must be joined (the ordinary exit) rather than cut off.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: the console script, with a stand-in for the CLI that the case chooses
CHILD = """
import atexit, sys, threading, time
import trustcheck.__main__ as m
case = sys.argv[1]
def fake_main():
    print("out " + "x" * 70000)  # more than a pipe holds: must be flushed, not dropped
    print("err line", file=sys.stderr)
    if case == "atexit":
        atexit.register(lambda: print("atexit ran", flush=True))
    if case == "thread":
        def late():
            time.sleep(0.3)
            print("thread finished", flush=True)
        threading.Thread(target=late).start()
    return {"ok": 0, "fail": 1, "usage": 2, "atexit": 0, "thread": 1, "big": 300}[case]
m.main = fake_main
m.run()
print("not reached")
"""


def _run(case: str) -> subprocess.CompletedProcess[str]:
    # stdout block-buffered, as on a pipe by default: what is still in the buffer at
    # the end must be flushed by run() itself
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-c", CHILD, case],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(("case", "status"), [("ok", 0), ("fail", 1), ("usage", 2), ("big", 44)])
def test_exit_status_is_mains_code_and_output_is_complete(case: str, status: int) -> None:
    done = _run(case)
    assert done.returncode == status  # 300 -> 44, as sys.exit(300) would exit
    assert done.stdout == "out " + "x" * 70000 + "\n"
    assert done.stderr == "err line\n"


def test_atexit_callbacks_run() -> None:
    done = _run("atexit")
    assert done.returncode == 0
    assert done.stdout.endswith("\natexit ran\n")
    assert "not reached" not in done.stdout


def test_running_thread_is_joined_not_cut_off() -> None:
    done = _run("thread")
    assert done.returncode == 1
    assert done.stdout.endswith("\nthread finished\n")
    assert "not reached" not in done.stdout


def test_console_script_uses_run() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert 'trustcheck = "trustcheck.__main__:run"' in text
