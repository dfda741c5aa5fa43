"""The attack corpus (``fixtures/attacks/cases``): every case is judged as expected.

One test per case directory (the id is the case name): its trust dir is copied
to a temporary folder, any ``runtime`` change is applied (over-size files, deep
nesting), and ``trustcheck.api.verify_images`` (or ``load_collection``) must
give exactly the expected verdict: trusted with the expected digest, or the
expected error code.  Cases marked ``known_gap`` are where trustcheck still
disagrees with the spec; they xfail strictly, so fixing the verifier forces
the mark to be removed.

Cases flagged ``cli`` run once more through the CLI entry point, checking the
exit code (1 not trusted, 2 bad input) and one-line output.

Zero false rejects on genuine data is tested in test_fixtures_manifest.py
(``test_trustcheck_verify_agrees_with_recorded_notary_answers``).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from trustcheck.api import load_collection, verify_images
from trustcheck.errors import CODES, TrustcheckError, UsageError

if TYPE_CHECKING:
    from conftest import CliRun

REPO = Path(__file__).resolve().parents[2]
CASES_DIR = REPO / "fixtures" / "attacks" / "cases"
GENERATED_TRUST = REPO / "fixtures" / "generated" / "trust"
NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)+")


def _case_dirs() -> list[Path]:
    return sorted(p for p in CASES_DIR.iterdir() if (p / "case.json").is_file())


def _load(case_dir: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((case_dir / "case.json").read_text())
    return doc


def _params(only_cli: bool = False) -> list[Any]:
    params = []
    for case_dir in _case_dirs():
        case = _load(case_dir)
        if only_cli and not case.get("cli"):
            continue
        marks = []
        if case.get("known_gap"):
            marks.append(pytest.mark.xfail(reason=case["known_gap"], strict=True))
        params.append(pytest.param(case_dir, id=case_dir.name, marks=marks))
    return params


def _at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _prepare(case: dict[str, Any], case_dir: Path, tmp_path: Path) -> Path:
    """The trust dir to verify: a private copy with the runtime change applied."""
    if case["trust_dir"] == "@generated":
        return GENERATED_TRUST
    work = tmp_path / "case"
    shutil.copytree(case_dir, work, symlinks=True)
    runtime = case.get("runtime")
    if runtime is not None:
        target = work / "trust" / runtime["file"]
        if runtime["kind"] == "pad":
            data = target.read_bytes()
            target.write_bytes(data + b" " * (runtime["size"] - len(data)))
        elif runtime["kind"] == "sparse":
            with target.open("wb") as fh:
                fh.truncate(runtime["size"])
        elif runtime["kind"] == "nest":
            depth = runtime["depth"]
            target.write_bytes(
                b'{"signed":{"_type":"Timestamp","x":'
                + b"[" * depth
                + b"]" * depth
                + b'},"signatures":[]}'
            )
        else:  # pragma: no cover - a corpus error
            raise AssertionError(f"unknown runtime kind {runtime['kind']!r}")
        assert target.stat().st_size >= runtime.get("size", 0)
    return work / "trust"


def _checks(case: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(case["image"], case["expected"])] + [
        (c["image"], c["expected"]) for c in case.get("extra_checks", [])
    ]


def _assert_error(err: TrustcheckError | None, want: str, where: str) -> None:
    assert err is not None, f"{where}: trusted, expected [{want}]"
    assert err.code == want, f"{where}: got [{err.code}] {err.message}, expected [{want}]"
    assert "\n" not in err.message and err.message, f"{where}: message is not one line"


@pytest.mark.parametrize("case_dir", _params())
def test_attack_case(case_dir: Path, tmp_path: Path) -> None:
    case = _load(case_dir)
    trust = _prepare(case, case_dir, tmp_path)
    at = _at(case["at"])
    if case["api"] == "load_collection":
        with pytest.raises(TrustcheckError) as exc:
            load_collection(trust, case["gun"], at)
        _assert_error(exc.value, case["expected"]["error"], case["name"])
        return
    checks = _checks(case)
    try:
        results = verify_images([image for image, _ in checks], trust, at)
    except UsageError as e:
        # a bad reference is refused before any trust data is read
        assert not checks[0][1]["trusted"], f"{case['name']}: refused with [{e.code}] {e}"
        _assert_error(e, checks[0][1]["error"], case["name"])
        return
    for result, (image, want) in zip(results, checks, strict=True):
        where = f"{case['name']}: {image}"
        if want["trusted"]:
            assert result.trusted, (
                f"{where}: not trusted: {result.error and result.error.to_json()}"
            )
            assert result.digest == want["digest"], f"{where}: trusted another digest"
        else:
            assert not result.trusted, f"{where}: trusted {result.digest}, expected rejection"
            _assert_error(result.error, want["error"], where)


@pytest.mark.parametrize("case_dir", _params(only_cli=True))
def test_attack_case_through_the_cli(
    case_dir: Path, tmp_path: Path, trustcheck_cli: Callable[..., CliRun]
) -> None:
    case = _load(case_dir)
    trust = _prepare(case, case_dir, tmp_path)
    want = case["expected"]
    base = ["verify", "--trust-dir", str(trust), "--at", case["at"]]
    as_json = trustcheck_cli(*base, "--json", case["image"])
    human = trustcheck_cli(*base, case["image"])
    if want["trusted"]:
        assert (as_json.code, human.code) == (0, 0), as_json.stderr
        (result,) = json.loads(as_json.stdout)["results"]
        assert result["trusted"] is True and result["digest"] == want["digest"]
        assert human.stdout.startswith("TRUSTED ") and human.stdout.count("\n") == 1
        assert want["digest"] in human.stdout
        return
    code = want["error"]
    exit_code = CODES[code][0]
    assert (as_json.code, human.code) == (exit_code, exit_code), as_json.stderr
    if exit_code == 2:
        # refused before verification: nothing on stdout, one line on stderr
        for run in (as_json, human):
            assert run.stdout == ""
            assert run.stderr.count("\n") == 1 and run.stderr.startswith(f"error: [{code}] ")
        return
    (result,) = json.loads(as_json.stdout)["results"]
    assert result["trusted"] is False and result["error"]["code"] == code
    assert human.stdout.count("\n") == 1
    assert human.stdout.startswith("NOT TRUSTED ") and f"[{code}]" in human.stdout
    assert "Traceback" not in human.stderr + as_json.stderr


# --------------------------------------------------------------------------- the corpus itself


def test_corpus_is_large_and_well_formed() -> None:
    cases = [_load(d) for d in _case_dirs()]
    assert len(cases) >= 80
    for case, case_dir in zip(cases, _case_dirs(), strict=True):
        assert case["name"] == case_dir.name and NAME.fullmatch(case["name"]), case_dir.name
        assert case["description"] and "\n" not in case["description"]
        assert case["spec"], f"{case['name']} cites no spec section"
        for _, want in (
            _checks(case) if case["api"] == "verify_images" else [("", case["expected"])]
        ):
            if want["trusted"]:
                assert re.fullmatch(r"sha256:[0-9a-f]{64}", want["digest"]), case["name"]
            else:
                assert want["error"] in CODES, f"{case['name']}: undocumented {want['error']}"
        if case["trust_dir"] == "trust":
            assert (case_dir / "trust" / "tuf").is_dir(), case["name"]
    rejected = {c["expected"]["error"] for c in cases if not c["expected"]["trusted"]}
    # the corpus exercises most of the not-trusted and usage codes
    assert len(rejected) >= 25, sorted(rejected)


def test_committed_corpus_is_what_the_generator_makes() -> None:
    from fixtures.attacks.generate import CASES_DIR as OUT
    from fixtures.attacks.generate import DOC, check

    problems = check(OUT, DOC)
    assert not problems, (
        "fixtures/attacks/cases is stale; run `python -m fixtures.attacks.generate`:\n"
        + "\n".join(problems[:20])
    )
