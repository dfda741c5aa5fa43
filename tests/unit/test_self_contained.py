"""The repository is self-contained: a clean clone in an empty directory, with nothing
beside it, collects the whole suite and runs the real-world-data tests with no skip.

"A clean clone" is what ``git ls-files`` lists (plus untracked files that are not
ignored, so that new files count before they are committed), copied into an empty
temporary directory. Nothing in the repository may name the project's old sibling
folder of design notes and trust data: every test, README line and doc reads
``fixtures/realworld`` and ``docs/design`` instead.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# skipif(not X.is_dir()), skip(...exists()...), `if not X.exists(): pytest.skip(...)`
SKIP_ON_PATH = re.compile(
    r"skip(?:if)?\((?:not\s+)?[\w.()\[\]/\" ]*\.(?:is_dir|exists|is_file)\(\)"
    r"|if not [\w.]+\.(?:is_dir|exists|is_file)\(\):\s*\n\s*pytest\.skip"
)

# Spelled in pieces so that this file does not name what it forbids.
_SIBLING = "sha" + "red"
FORBIDDEN = re.compile(
    r"\.\./" + _SIBLING + r"\b"  # ../<sibling>
    r"|\b" + _SIBLING + r"/(?:realworld|design)\b"  # <sibling>/realworld, <sibling>/design
    r"|[\"']" + _SIBLING + r"[\"']\s*/\s*[\"'](?:realworld|design)"  # "<sibling>" / "realworld"
)
# A path built from the repository root that climbs out of it; ``Path(__file__).parents[N]``
# climbs out when N is at least the file's depth (checked per file).
ESCAPES = re.compile(r"\bREPO(?:_ROOT)?\.parent\b|\.parents\[(?P<n>\d+)\]")


def _escapes(rel: Path, text: str) -> list[str]:
    return [
        f"{rel}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
        for m in ESCAPES.finditer(text)
        if m.group("n") is None or int(m.group("n")) >= len(rel.parts)
    ]


# What .gitignore leaves out, for a tree that is not a git checkout (a copy, an sdist).
_IGNORED_DIRS = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache",
                 ".hypothesis", "build"}


def _walk_files() -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(REPO):
        rel_dir = Path(dirpath).relative_to(REPO)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in _IGNORED_DIRS
            and not d.endswith(".egg-info")
            and (rel_dir / d).as_posix() != "bench/results"
        )
        found += [rel_dir / f for f in sorted(filenames) if not f.endswith((".pyc", ".pyo"))]
    return found


def _repo_files() -> list[Path]:
    """Relative paths a clean clone holds, plus untracked files that are not ignored
    (outside a git checkout: every file but what .gitignore names)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        return _walk_files()
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    names = sorted({n for n in out.decode().split("\0") if n})
    # A tracked file deleted in the work tree is not part of the tree being tested.
    return [Path(n) for n in names if (REPO / n).is_symlink() or (REPO / n).exists()]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's files copied into ``<empty dir>/trustcheck``: nothing beside it."""
    empty = tmp_path_factory.mktemp("clean-clone")
    dst = empty / "trustcheck"
    for rel in _repo_files():
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target, follow_symlinks=False)
    assert sorted(p.name for p in empty.iterdir()) == ["trustcheck"]
    assert not (empty / _SIBLING).exists()
    return dst


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON"))}
    env["PYTHONPATH"] = str(root)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _pytest(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=root,
        env=_env(root),
        capture_output=True,
        text=True,
        timeout=600,
    )


def _collected(proc: subprocess.CompletedProcess[str], root: Path) -> list[str]:
    """Node IDs, with the root's absolute path (in some parametrised IDs) as ``<root>``."""
    return sorted(
        line.replace(str(root), "<root>") for line in proc.stdout.splitlines() if "::" in line
    )


def test_the_copy_imports_its_own_code(clone: Path) -> None:
    code = "import trustcheck, fixtures; print(trustcheck.__file__); print(fixtures.__file__)"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=clone, env=_env(clone), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    for line in proc.stdout.splitlines():
        assert Path(line).resolve().is_relative_to(clone.resolve()), line


def test_clean_clone_collects_the_whole_suite(clone: Path) -> None:
    """Collection in the copy succeeds and finds exactly the tests of the checkout
    (a parametrisation over missing data would silently collect fewer)."""
    there = _pytest(clone, "--collect-only", "-q")
    assert there.returncode == 0, there.stdout[-3000:] + there.stderr[-3000:]
    assert not re.search(r"\berrors?\b", there.stdout.splitlines()[-1]), there.stdout[-500:]
    assert "skipped" not in there.stdout.splitlines()[-1], there.stdout[-500:]
    here = _pytest(REPO, "--collect-only", "-q")
    assert here.returncode == 0, here.stdout[-3000:]
    copied, original = _collected(there, clone), _collected(here, REPO)
    print(f"clean clone collects {len(copied)} tests")
    assert len(copied) > 1000

    # Compare test files that did not change since the copy was made (others may be
    # editing the checkout while this runs; a clean CI checkout compares every file).
    def unchanged(node: str) -> bool:
        rel = node.split("::", 1)[0]
        a, b = clone / rel, REPO / rel
        return a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes()

    same = {n.split("::", 1)[0] for n in copied + original if unchanged(n)}
    assert len(same) >= 0.8 * len({n.split("::", 1)[0] for n in copied})
    assert [n for n in copied if n.split("::", 1)[0] in same] == [
        n for n in original if n.split("::", 1)[0] in same
    ]


def _realworld_tests(path: Path) -> list[str]:
    """The tests of ``path`` that read fixtures/realworld: those whose code (or a helper's,
    or a module constant's they use) names a constant built from ``"realworld"``."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    tainted: set[str] = set()
    defs: dict[str, ast.AST] = {}
    for _ in range(3):  # constants and helpers built from other tainted names
        for node in tree.body:
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                text = ast.get_source_segment(source, node) or ""
                names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                if '"realworld"' in text or names & tainted:
                    tainted |= {t.id for t in targets if isinstance(t, ast.Name)}
            elif isinstance(node, ast.FunctionDef):
                defs[node.name] = node
                names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                if names & tainted and not node.name.startswith("test_"):
                    tainted.add(node.name)
    rel = path.relative_to(REPO).as_posix()
    return [
        f"{rel}::{name}"
        for name, node in defs.items()
        if name.startswith("test_")
        and {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} & tainted
    ]


def test_realworld_tests_run_in_the_clone_without_skips(clone: Path) -> None:
    """Every test that reads fixtures/realworld runs (and passes) in the copy, unskipped."""
    users = [
        node
        for p in sorted((REPO / "tests").rglob("test_*.py"))
        if p.name != Path(__file__).name and '"realworld"' in p.read_text(encoding="utf-8")
        for node in _realworld_tests(p)
    ]
    files = {n.split("::")[0] for n in users}
    assert "tests/unit/test_verify_realworld.py" in files
    assert len(files) >= 5 and len(users) >= 20, users
    print(f"{len(users)} tests in {len(files)} files read fixtures/realworld")
    proc = _pytest(clone, "-q", "-rs", "-m", "not integration", *users)
    tail = proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    summary = proc.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary), tail
    assert "skipped" not in summary and "SKIPPED" not in proc.stdout, tail


def test_no_file_names_the_sibling_folder() -> None:
    offenders = []
    for rel in _repo_files():
        path = REPO / rel
        if path.is_symlink() or not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", "replace")
        for m in FORBIDDEN.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            offenders.append(f"{rel}:{line}: {m.group(0)}")
    assert offenders == []


def test_no_test_climbs_out_of_the_repository() -> None:
    """Paths in tests, fixtures and benchmarks stay inside the repository root."""
    offenders = []
    for rel in _repo_files():
        if rel.suffix != ".py" or rel.parts[0] not in ("tests", "fixtures", "bench", "fuzz"):
            continue
        if rel.name == Path(__file__).name:  # holds the patterns as examples
            continue
        offenders += _escapes(rel, (REPO / rel).read_text(encoding="utf-8"))
    assert offenders == []


def test_no_skip_for_missing_data() -> None:
    """No test is skipped because a data folder is absent: committed data is always there."""
    offenders = []
    for rel in _repo_files():
        if rel.suffix != ".py" or rel.parts[0] != "tests" or rel.name == Path(__file__).name:
            continue
        text = (REPO / rel).read_text(encoding="utf-8")
        offenders += [f"{rel}: {m.group(0)!r}" for m in SKIP_ON_PATH.finditer(text)]
    assert offenders == []


def test_every_docs_reference_resolves() -> None:
    """Every ``docs/<name>.md`` named in the repository (docs, README, code, tests) exists:
    the spec the code cites is docs/design/notary-v1-spec.md, not a file users lack.
    References to another project's docs (Azure/acr's) are not ours."""
    ref = re.compile(r"(?<![\w/.$~-])(docs/[\w./-]*\.md)")
    offenders = []
    for rel in _repo_files():
        path = REPO / rel
        if path.is_symlink() or not path.is_file() or rel.suffix not in (".md", ".py", ".toml"):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "Azure/acr" in line or "AAD-OAuth" in line:
                continue
            offenders += [f"{rel}:{n}: {m}" for m in ref.findall(line) if not (REPO / m).is_file()]
    assert offenders == []
    assert (REPO / "docs" / "design" / "notary-v1-spec.md").is_file()


def test_the_forbidden_patterns_catch_what_they_should() -> None:
    """The two scans above are only worth something if they match the old spellings."""
    sib = _SIBLING
    for bad in (
        f"--trust-dir ../{sib}/realworld/notary-compat/notary0.3",
        f"`{sib}/design/notary-v1-spec.md`",
        f'REPO.parent / "{sib}" / "realworld"',
        f'Path(__file__).resolve().parents[3] / "{sib}" / "realworld"',
    ):
        assert FORBIDDEN.search(bad), bad
    unit, nested = Path("tests/unit/test_x.py"), Path("tests/unit/core/test_x.py")
    assert _escapes(unit, 'REPO.parent / "x"')
    assert _escapes(unit, "Path(__file__).resolve().parents[3]")
    assert not _escapes(unit, "Path(__file__).resolve().parents[2]")
    assert not _escapes(nested, "Path(__file__).resolve().parents[3]")
    assert _escapes(nested, "Path(__file__).resolve().parents[4]")
    assert SKIP_ON_PATH.search('pytest.mark.skipif(not REALWORLD.is_dir(), reason="x")')
    assert SKIP_ON_PATH.search("    if not N03.is_dir():\n        pytest.skip('gone')")
    assert not SKIP_ON_PATH.search('pytest.mark.skipif(shutil.which("openssl") is None)')
    assert not FORBIDDEN.search("the shared cache; shared/x; docs/design/notary-v1-spec.md")
