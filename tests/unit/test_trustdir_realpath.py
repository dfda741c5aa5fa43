"""The trust dir's fast real path (issue 18) answers exactly as ``os.path.realpath``.

Built on a real folder tree with symlinks: chains, links to folders, ``..``
after a link, relative links, missing and dangling paths, a loop, a FIFO.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trustcheck.local import trustdir
from trustcheck.local.trustdir import _realpath


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f.json").write_text("{}")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "secret.json").write_text("{}")
    os.symlink("a/b", tmp_path / "lb")  # relative link to a folder
    os.symlink(tmp_path / "lb", tmp_path / "chain")  # link to a link
    os.symlink("../../out/secret.json", tmp_path / "a" / "b" / "esc.json")
    os.symlink("missing.json", tmp_path / "a" / "dangling.json")
    os.symlink("loop2", tmp_path / "loop1")
    os.symlink("loop1", tmp_path / "loop2")
    os.mkfifo(tmp_path / "a" / "fifo")
    return tmp_path


CASES = [
    "a/b/f.json",
    "lb/f.json",
    "chain/f.json",
    "chain/../out",  # ".." after a link: physical, as the kernel resolves it
    "a/b/esc.json",
    "a/dangling.json",
    "a/missing/x.json",
    "loop1",
    "a/fifo",
    "a/./b//f.json",
    "",
]


@pytest.mark.parametrize("rel", CASES)
def test_same_answer_as_os_realpath(tree: Path, rel: str) -> None:
    path = str(tree / rel) if rel else str(tree)
    assert _realpath(path) == os.path.realpath(path)


def test_relative_paths_and_the_fallback(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree)
    for rel in ("lb/f.json", "chain/../out", "a/dangling.json"):
        assert _realpath(rel) == os.path.realpath(rel)
    monkeypatch.setattr(trustdir, "_PROC_FD", False)
    assert _realpath("chain/f.json") == str(tree / "a" / "b" / "f.json")


def test_the_kernel_path_is_used_on_linux(tree: Path) -> None:
    if not trustdir._PROC_FD:
        pytest.skip("no O_PATH or /proc/self/fd on this system: the fallback is the only path")
    calls: list[str] = []
    real = os.path.realpath

    def spy(path: str | os.PathLike[str]) -> str:
        calls.append(str(path))
        return real(path)

    try:
        os.path.realpath = spy  # type: ignore[assignment]
        assert _realpath(str(tree / "chain" / "f.json")) == str(tree / "a" / "b" / "f.json")
        assert calls == []
        assert _realpath(str(tree / "a" / "dangling.json")) == str(tree / "a" / "missing.json")
        assert len(calls) == 1
    finally:
        os.path.realpath = real
