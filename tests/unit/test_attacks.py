"""The attack corpus (``fixtures/attacks/cases``): every case is judged as expected.

One test per case directory (the id is the case name): its trust dir is copied
to a temporary folder, any ``runtime`` change is applied (over-size files, deep
nesting), and ``trustcheck.api.verify_images`` (or ``load_collection``) must
give exactly the expected verdict: trusted with the expected digest, or the
expected error code.  Cases marked ``known_gap`` are where trustcheck still
disagrees with the spec; they xfail strictly, so fixing the verifier forces
the mark to be removed.

Every case gets a fresh state dir (``trustcheck.local.state.StateStore``).  Cases
with ``steps`` (rollback, root rotation, pins meeting a root trusted before)
verify each earlier run in order against its own trust dir with that one
state dir, each with exactly its expected verdicts, and the top-level run, the
attack, last.  A run's ``pins`` names a pin file in the case dir
(``trustcheck.local.pinfile.load_pins``).

Cases flagged ``cli`` run once more through the CLI entry point, checking the
exit code (1 not trusted, 2 bad input) and one-line output; their earlier
steps run through the CLI as well, with ``--state-dir`` and ``--pins``.

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

from trustcheck.api import Options, load_collection, verify_images
from trustcheck.errors import CODES, TrustcheckError, UsageError
from trustcheck.local.pinfile import load_pins
from trustcheck.local.state import StateStore

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


def _copy(case_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the case dir (trust dirs, pin files, CA bundles)."""
    work = tmp_path / "case"
    shutil.copytree(case_dir, work, symlinks=True)
    return work


def _trust(work: Path, name: str) -> Path:
    return GENERATED_TRUST if name == "@generated" else work / name


def _prepare(case: dict[str, Any], work: Path) -> Path:
    """The attack's trust dir in the private copy, with the runtime change applied."""
    trust = _trust(work, case["trust_dir"])
    runtime = case.get("runtime")
    if runtime is not None:
        target = trust / runtime["file"]
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
    return trust


def _runs(case: dict[str, Any]) -> list[dict[str, Any]]:
    """Every run of a case in order: its steps, then the attack (the top level)."""
    last = {
        "trust": case["trust_dir"],
        "image": case.get("image"),
        "at": case["at"],
        "pins": case.get("pins"),
        "expected": case["expected"],
        "extra_checks": case.get("extra_checks", []),
    }
    steps = [{"pins": None, "extra_checks": [], **step} for step in case.get("steps", [])]
    return [*steps, last]


def _options(work: Path, run: dict[str, Any], state: StateStore) -> Options:
    pins = load_pins(work / run["pins"]) if run["pins"] else None
    return Options(pins=pins, state=state)


def _assert_error(
    err: TrustcheckError | None, want: str, where: str, role: str | None = None
) -> None:
    assert err is not None, f"{where}: trusted, expected [{want}]"
    assert err.code == want, f"{where}: got [{err.code}] {err.message}, expected [{want}]"
    assert "\n" not in err.message and err.message, f"{where}: message is not one line"
    if role is not None:
        assert err.role == role, f"{where}: [{want}] names role {err.role}, expected {role}"


def _judge(name: str, run: dict[str, Any], trust: Path, options: Options) -> None:
    """Verify one run's images and assert exactly its expected verdicts."""
    checks = [(run["image"], run["expected"])] + [
        (c["image"], c["expected"]) for c in run["extra_checks"]
    ]
    try:
        results = verify_images([image for image, _ in checks], trust, _at(run["at"]), options)
    except UsageError as e:
        # a bad reference is refused before any trust data is read
        assert not checks[0][1]["trusted"], f"{name}: refused with [{e.code}] {e}"
        _assert_error(e, checks[0][1]["error"], name)
        return
    for result, (image, want) in zip(results, checks, strict=True):
        where = f"{name}: {image}"
        if want["trusted"]:
            assert result.trusted, (
                f"{where}: not trusted: {result.error and result.error.to_json()}"
            )
            assert result.digest == want["digest"], f"{where}: trusted another digest"
        else:
            assert not result.trusted, f"{where}: trusted {result.digest}, expected rejection"
            _assert_error(result.error, want["error"], where, want.get("role"))


@pytest.mark.parametrize("case_dir", _params())
def test_attack_case(case_dir: Path, tmp_path: Path) -> None:
    case = _load(case_dir)
    work = _copy(case_dir, tmp_path)
    state = StateStore(tmp_path / "state")
    *before, last = _runs(case)
    for i, run in enumerate(before, 1):
        _judge(
            f"{case['name']} (step {i})",
            run,
            _trust(work, run["trust"]),
            _options(work, run, state),
        )
    trust = _prepare(case, work)
    options = _options(work, last, state)
    if case["api"] == "load_collection":
        with pytest.raises(TrustcheckError) as exc:
            load_collection(trust, case["gun"], _at(case["at"]), options)
        _assert_error(exc.value, case["expected"]["error"], case["name"])
        return
    _judge(case["name"], last, trust, options)


@pytest.mark.parametrize("case_dir", _params(only_cli=True))
def test_attack_case_through_the_cli(
    case_dir: Path, tmp_path: Path, trustcheck_cli: Callable[..., CliRun]
) -> None:
    case = _load(case_dir)
    work = _copy(case_dir, tmp_path)
    state = ["--state-dir", str(tmp_path / "state")]

    def args(run: dict[str, Any], trust: Path) -> list[str]:
        pins = ["--pins", str(work / run["pins"])] if run["pins"] else []
        return ["verify", "--trust-dir", str(trust), "--at", run["at"], *state, *pins]

    *before, last = _runs(case)
    for i, run in enumerate(before, 1):
        images = [run["image"]] + [c["image"] for c in run["extra_checks"]]
        wants = [run["expected"]] + [c["expected"] for c in run["extra_checks"]]
        got = trustcheck_cli(*args(run, _trust(work, run["trust"])), "--json", *images)
        assert got.code == (0 if all(w["trusted"] for w in wants) else 1), got.stderr
        for result, want in zip(json.loads(got.stdout)["results"], wants, strict=True):
            where = f"step {i}: {result['image']}"
            assert result["trusted"] is want["trusted"], where
            if want["trusted"]:
                assert result["digest"] == want["digest"], where
            else:
                assert result["error"]["code"] == want["error"], where
                assert want.get("role") in (None, result["error"]["role"]), where
    trust = _prepare(case, work)
    want = case["expected"]
    base = args(last, trust)
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
        # refused before verification: one line on stderr; stdout has no verdict (with
        # --json, the one error document: docs/design/cli-contract.md)
        assert human.stdout == ""
        doc = json.loads(as_json.stdout)
        assert doc["results"] == [] and doc["error"]["code"] == code
        assert doc["error"]["exit_code"] == exit_code
        for run in (as_json, human):
            assert run.stderr.count("\n") == 1 and run.stderr.startswith(f"error: [{code}] ")
        return
    (result,) = json.loads(as_json.stdout)["results"]
    assert result["trusted"] is False and result["error"]["code"] == code
    assert want.get("role") in (None, result["error"]["role"])
    assert human.stdout.count("\n") == 1
    assert human.stdout.startswith("NOT TRUSTED ") and f"[{code}]" in human.stdout
    assert "Traceback" not in human.stderr + as_json.stderr


#: codes that only state (earlier runs) or pins can produce
STATE_OR_PIN_CODES = (
    "version-rollback",
    "root-rotation-invalid",
    "pin-mismatch",
    "no-pin",
    "signer-pin-mismatch",
)


def _state_or_pin_params() -> list[Any]:
    """Cases refused because of what an earlier run trusted or because of a pin."""
    params = []
    for case_dir in _case_dirs():
        case = _load(case_dir)
        if (case.get("steps") or case.get("pins")) and case["expected"].get(
            "error"
        ) in STATE_OR_PIN_CODES:
            params.append(pytest.param(case_dir, id=case_dir.name))
    return params


@pytest.mark.parametrize("case_dir", _state_or_pin_params())
def test_attack_without_state_and_pins_is_trusted(case_dir: Path, tmp_path: Path) -> None:
    """The attack run of a rollback, rotation or pin case, verified alone on a fresh
    state and without pins, is trusted: the earlier runs or the pin make it an attack,
    so no case passes by a corruption that any run would refuse."""
    case = _load(case_dir)
    work = _copy(case_dir, tmp_path)
    options = Options(state=StateStore(tmp_path / "fresh-state"))
    (result,) = verify_images([case["image"]], _prepare(case, work), _at(case["at"]), options)
    assert result.trusted, f"{case['name']}: {result.error and result.error.to_json()}"
    assert result.digest is not None and re.fullmatch(r"sha256:[0-9a-f]{64}", result.digest)


# --------------------------------------------------------------------------- the corpus itself


def test_corpus_is_large_and_well_formed() -> None:
    cases = [_load(d) for d in _case_dirs()]
    assert len(cases) >= 80
    for case, case_dir in zip(cases, _case_dirs(), strict=True):
        assert case["name"] == case_dir.name and NAME.fullmatch(case["name"]), case_dir.name
        assert case["description"] and "\n" not in case["description"]
        assert case["spec"], f"{case['name']} cites no spec section"
        runs = _runs(case)
        if case["api"] != "verify_images":
            assert len(runs) == 1, f"{case['name']}: load_collection cases have no steps"
            runs[-1]["extra_checks"] = []
        for run in runs:
            wants = [run["expected"]] + [c["expected"] for c in run["extra_checks"]]
            for want in wants:
                if want["trusted"]:
                    assert re.fullmatch(r"sha256:[0-9a-f]{64}", want["digest"]), case["name"]
                else:
                    assert want["error"] in CODES, f"{case['name']}: undocumented {want['error']}"
            if run["trust"] != "@generated":
                assert (case_dir / run["trust"] / "tuf").is_dir(), (case["name"], run["trust"])
            if run["pins"]:
                assert (case_dir / run["pins"]).is_file(), (case["name"], run["pins"])
    rejected = {c["expected"]["error"] for c in cases if not c["expected"]["trusted"]}
    # the corpus exercises most of the not-trusted and usage codes
    assert len(rejected) >= 25, sorted(rejected)
    staged = [c for c in cases if c.get("steps")]
    # state across runs: rollback, rotation, pins meeting a root trusted before
    assert len(staged) >= 20 and {"version-rollback", "root-rotation-invalid"} <= {
        c["expected"].get("error") for c in staged
    }


def test_committed_corpus_is_what_the_generator_makes() -> None:
    from fixtures.attacks.generate import CASES_DIR as OUT
    from fixtures.attacks.generate import DOC, check

    problems = check(OUT, DOC)
    assert not problems, (
        "fixtures/attacks/cases is stale; run `python -m fixtures.attacks.generate`:\n"
        + "\n".join(problems[:20])
    )
