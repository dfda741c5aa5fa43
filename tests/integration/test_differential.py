"""Differential tests: trustcheck against the real notary client and docker CLI.

The trust data is generated now by the real notary client against a real
notary-server (``fresh_fixtures``).  For every repository and every name in it
(published, listed, or an unsigned probe) trustcheck must answer what the real
programs answered on the same bytes:

* ``trustcheck verify --json`` vs ``notary list GUN -r targets/releases -r
  targets`` run offline (rule: ``notary_harness.released_expectation``);
* ``trustcheck inspect`` on a GUN vs the released rows of that listing (covers
  names that cannot be written as Docker tags);
* ``trustcheck inspect`` (JSON and ``--pretty``) vs ``docker trust inspect``
  on docker's own cache of the same server.

Counts of what was compared are printed in the terminal summary.
"""

from __future__ import annotations

import difflib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from fixtures.generate import REPOS, FixtureSet, listing_of, repo_names
from fixtures.notary_harness import (
    RELEASED_ROLES,
    is_docker_tag,
    normalise_inspect,
    normalise_pretty,
    released_expectation,
)

if TYPE_CHECKING:
    from conftest import CliRun, DifferentialStats, FreshFixtures

    Cli = Callable[..., CliRun]

pytestmark = pytest.mark.integration

REPO_NAMES = [spec.name for spec in REPOS]
CHUNK = 400  # images per trustcheck invocation (one collection load per GUN and call)


def _repo(fs: FixtureSet, name: str) -> dict[str, Any]:
    for repo in fs.repos():
        if repo["name"] == name:
            return repo
    raise AssertionError(f"repository {name!r} missing from the generated manifest")


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _verify_differences(gun: str, name: str, exp: dict[str, Any], got: dict[str, Any]) -> list[str]:
    where = f"{gun}:{name}"
    out: list[str] = []

    def check(label: str, want: Any, have: Any) -> None:
        if want != have:
            out.append(f"{where}: {label}: notary says {want!r}, trustcheck says {have!r}")

    check("tag", name, got.get("tag"))
    check("gun", gun, got.get("gun"))
    check("trusted", exp["trusted"], got.get("trusted"))
    error = got.get("error")
    if exp["trusted"]:
        check("digest", exp["digest"], got.get("digest"))
        check("length", exp["length"], got.get("length"))
        check("role", exp["role"], got.get("role"))
        check("error", None, error)
    else:
        check("error.code", exp["error_code"], (error or {}).get("code"))
        if exp["error_code"] == "tag-not-released":
            check("error.role", exp["role"], (error or {}).get("role"))
    return out


@pytest.mark.parametrize("repo_name", REPO_NAMES)
def test_verify_matches_real_notary_client(
    fresh_fixtures: FreshFixtures,
    differential_stats: DifferentialStats,
    trustcheck_cli: Cli,
    repo_name: str,
) -> None:
    fs = fresh_fixtures.fixture_set
    repo = _repo(fs, repo_name)
    gun, listing = repo["gun"], listing_of(repo)
    names = [n for n in repo_names(repo) if is_docker_tag(n)]
    assert names, f"{gun}: nothing to compare"
    problems: list[str] = []
    for chunk in _chunks(names, CHUNK):
        images = [f"{gun}:{n}" for n in chunk]
        run = trustcheck_cli(
            "verify",
            "--json",
            "--trust-dir",
            str(fs.trust_dir),
            "--at",
            fs.validation_time,
            *images,
        )
        assert "Traceback" not in run.stderr, run.stderr
        results = json.loads(run.stdout)["results"]
        assert len(results) == len(chunk), run.stdout[:2000]
        expected = [released_expectation(listing, n) for n in chunk]
        want_code = 0 if all(e["trusted"] for e in expected) else 1
        if run.code != want_code:
            problems.append(f"{gun}: exit code {run.code}, expected {want_code}: {run.stderr}")
        for name, exp, got in zip(chunk, expected, results, strict=True):
            problems += _verify_differences(gun, name, exp, got)
    differential_stats.add("verify vs notary list (repos x tags)", repo_name, len(names))
    assert not problems, "\n".join(problems[:50])


def _released_pairs(repo: dict[str, Any]) -> dict[str, set[str]]:
    """name -> digests held *in* targets or targets/releases, from the real client's
    ``list -r targets`` and ``list -r targets/releases`` (a row whose role is the
    walk's starting role is a target of that role itself)."""
    pairs: dict[str, set[str]] = {}
    for role in RELEASED_ROLES:
        for row in repo["notary_list_by_role"][role]:
            if row["role"] == role:
                pairs.setdefault(row["name"], set()).add(row["digest"])
    return pairs


@pytest.mark.parametrize("repo_name", REPO_NAMES)
def test_inspect_rows_match_real_notary_client(
    fresh_fixtures: FreshFixtures,
    differential_stats: DifferentialStats,
    trustcheck_cli: Cli,
    repo_name: str,
) -> None:
    """``trustcheck inspect GUN`` lists exactly the (name, digest) pairs the real
    client finds in targets/releases and targets themselves -- also for names
    that cannot be written as a Docker tag (``a<b>&c``, ``日本``, ``dir/name``)."""
    fs = fresh_fixtures.fixture_set
    repo = _repo(fs, repo_name)
    gun = repo["gun"]
    run = trustcheck_cli(
        "inspect", "--trust-dir", str(fs.trust_dir), "--at", fs.validation_time, gun
    )
    assert run.code == 0, run.stderr
    (doc,) = json.loads(run.stdout)
    rows: dict[str, set[str]] = {}
    for row in doc["SignedTags"]:
        rows.setdefault(row["SignedTag"], set()).add(row["Digest"])
    want = _released_pairs(repo)
    assert want, f"{gun}: the real client lists no released rows"
    assert sorted(rows) == sorted(want), (
        f"{gun}: names only in trustcheck {sorted(set(rows) - set(want))}, "
        f"only in notary {sorted(set(want) - set(rows))}"
    )
    wrong = {n: (sorted(d), sorted(rows[n])) for n, d in want.items() if d != rows[n]}
    assert not wrong, f"{gun}: digests differ (notary, trustcheck): {wrong}"
    differential_stats.add(
        "inspect rows vs notary list (repos x name/digest pairs)",
        repo_name,
        sum(len(d) for d in want.values()),
    )


def _require_docker(fresh: FreshFixtures, repo: dict[str, Any]) -> dict[str, Any]:
    if fresh.docker_trust_dir is None or repo["docker_inspect"] is None:
        print(f"docker trust inspect comparison SKIPPED: {fresh.docker_skipped_reason}")
        pytest.skip(f"docker CLI unavailable: {fresh.docker_skipped_reason}")
    captured: dict[str, Any] = repo["docker_inspect"]
    return captured


def _json_diff(want: Any, have: Any) -> str:
    a = json.dumps(want, indent=1, sort_keys=True, ensure_ascii=False).splitlines()
    b = json.dumps(have, indent=1, sort_keys=True, ensure_ascii=False).splitlines()
    return "\n".join(list(difflib.unified_diff(a, b, "docker", "trustcheck", lineterm=""))[:80])


@pytest.mark.parametrize("repo_name", REPO_NAMES)
def test_inspect_json_matches_docker(
    fresh_fixtures: FreshFixtures,
    differential_stats: DifferentialStats,
    trustcheck_cli: Cli,
    repo_name: str,
) -> None:
    fs = fresh_fixtures.fixture_set
    repo = _repo(fs, repo_name)
    docker = _require_docker(fresh_fixtures, repo)
    assert fresh_fixtures.docker_trust_dir is not None
    images: list[str] = docker["images"]
    run = trustcheck_cli(
        "inspect",
        "--trust-dir",
        str(fresh_fixtures.docker_trust_dir),
        "--at",
        fs.validation_time,
        *images,
    )
    assert run.code == 0, run.stderr
    want, have = normalise_inspect(docker["json"]), normalise_inspect(json.loads(run.stdout))
    assert len(have) == len(want) == len(images)
    differential_stats.add("inspect JSON vs docker trust inspect (images)", repo_name, len(images))
    differential_stats.add(
        "inspect JSON vs docker trust inspect (SignedTags rows)",
        repo_name,
        sum(len(e["SignedTags"]) for e in want),
    )
    assert have == want, f"{repo['gun']}:\n{_json_diff(want, have)}"


@pytest.mark.parametrize("repo_name", REPO_NAMES)
def test_inspect_pretty_matches_docker(
    fresh_fixtures: FreshFixtures,
    differential_stats: DifferentialStats,
    trustcheck_cli: Cli,
    repo_name: str,
) -> None:
    fs = fresh_fixtures.fixture_set
    repo = _repo(fs, repo_name)
    docker = _require_docker(fresh_fixtures, repo)
    assert fresh_fixtures.docker_trust_dir is not None
    pretty: dict[str, str] = docker["pretty"]
    assert pretty, f"{repo['gun']}: no docker --pretty output captured"
    problems: list[str] = []
    for image, want in sorted(pretty.items()):
        run = trustcheck_cli(
            "inspect",
            "--pretty",
            "--trust-dir",
            str(fresh_fixtures.docker_trust_dir),
            "--at",
            fs.validation_time,
            image,
        )
        assert run.code == 0, run.stderr
        want, have = normalise_pretty(want), normalise_pretty(run.stdout)
        if have != want:
            diff = difflib.unified_diff(
                want.split("\n"), have.split("\n"), "docker", "trustcheck", lineterm=""
            )
            problems.append(f"{image}:\n" + "\n".join(map(repr, diff)))
    differential_stats.add("inspect --pretty vs docker (images)", repo_name, len(pretty))
    assert not problems, "\n".join(problems)


def test_docker_caches_the_same_bytes_as_a_fresh_notary_client(
    fresh_fixtures: FreshFixtures,
) -> None:
    """The committed trust dir is a fresh notary client's cache; docker's is identical."""
    repos = fresh_fixtures.fixture_set.repos()
    if fresh_fixtures.docker_trust_dir is None:
        pytest.skip(f"docker CLI unavailable: {fresh_fixtures.docker_skipped_reason}")
    differing = [r["gun"] for r in repos if r["docker_cache_identical"] is not True]
    assert not differing, f"docker cached different bytes for {differing}"


def test_committed_fixtures_have_not_drifted(
    fresh_fixtures: FreshFixtures, committed_fixtures: FixtureSet
) -> None:
    """Digests are deterministic, so a fresh generation must reproduce the committed
    manifest's repositories, published targets and the real client's listings
    (only keys, signatures and times differ between runs)."""
    fresh = {r["name"]: r for r in fresh_fixtures.fixture_set.repos()}
    committed = {r["name"]: r for r in committed_fixtures.repos()}
    assert sorted(fresh) == sorted(committed)
    for name, repo in committed.items():
        new = fresh[name]
        for key in (
            "gun",
            "published",
            "names",
            "notary_list",
            "notary_list_by_role",
            "notary_lookup",
            "bulk",
        ):
            assert new[key] == repo[key], f"{name}: {key} differs; regenerate fixtures/generated"
        assert sorted(new["files"]) == sorted(repo["files"]), f"{name}: role files differ"


def _console_script() -> Path:
    script = Path(sys.executable).with_name("trustcheck")
    if not script.exists():
        pytest.fail(f"trustcheck console script not installed next to {sys.executable}")
    return script


def test_installed_cli_in_a_subprocess_agrees(
    fresh_fixtures: FreshFixtures, differential_stats: DifferentialStats, trustcheck_cli: Cli
) -> None:
    """A few true subprocess runs of the installed console script: same JSON and
    exit codes as in-process, for trusted, not-released and unsigned tags."""
    fs = fresh_fixtures.fixture_set
    repo = _repo(fs, "signers")
    listing = listing_of(repo)
    base = ["verify", "--json", "--trust-dir", str(fs.trust_dir), "--at", fs.validation_time]
    cases = [
        ["localhost/signers:v2", "localhost/signers:split"],
        [
            "localhost/signers:v2",
            "localhost/signers:alice-unreleased",
            "localhost/signers:unsigned",
        ],
    ]
    for images in cases:
        proc = subprocess.run(
            [str(_console_script()), *base, *images],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        inproc = trustcheck_cli(*base, *images)
        want_code = (
            0
            if all(released_expectation(listing, i.split(":", 1)[1])["trusted"] for i in images)
            else 1
        )
        assert proc.returncode == want_code == inproc.code, proc.stderr
        assert json.loads(proc.stdout) == json.loads(inproc.stdout)
        assert "Traceback" not in proc.stderr
    differential_stats.add("subprocess runs of the console script", "signers", len(cases))


# --------------------------------------------------------------------------- issue 14 #9


def _issue14_cases(fs: FixtureSet) -> list[Any]:
    """The issue 14 parse cases of the attack generator, built now on the fresh data
    (so that notary, which judges at the real time, sees current expiry dates)."""
    from fixtures.attacks.cases import NOTARY_VERDICTS, Ctx, notary_exact

    return [c for c in notary_exact(Ctx(fs.path)) if c.name in NOTARY_VERDICTS]


def test_issue14_parse_cases_match_real_notary_client(
    fresh_fixtures: FreshFixtures,
    differential_stats: DifferentialStats,
    trustcheck_cli: Cli,
    tmp_path: Path,
) -> None:
    """Each issue 14 parse case (numbers beyond float64, expiry instants beyond Python's
    range, null signatures and keys, keyval.private, a snapshot length without hashes,
    invalid UTF-8 and lone surrogates, short digests) on bytes derived from fresh
    notary data: the real client's `list` and trustcheck's `verify` give the verdict
    the generator records (NOTARY_VERDICTS), and agree with each other except where
    Docker (not notary) refuses a short digest."""
    from fixtures.attacks.cases import NOTARY_VERDICTS
    from fixtures.notary_harness import copy_trust_dir, offline_list

    fs = fresh_fixtures.fixture_set
    cases = _issue14_cases(fs)
    assert len(cases) == len(NOTARY_VERDICTS) >= 20
    problems: list[str] = []
    for case in cases:
        trust = tmp_path / case.name / "trust"
        for rel, data in case.files.items():
            path = trust / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        gun, tag = case.image.rsplit(":", 1)
        listing = offline_list(copy_trust_dir(trust, tmp_path / case.name / "notary"), gun)
        row = listing.by_name().get(tag)
        notary_trusted = listing.error is None and row is not None and row.role in RELEASED_ROLES
        verdict = NOTARY_VERDICTS[case.name]
        want_notary = verdict != "rejected"
        if notary_trusted != want_notary:
            problems.append(
                f"{case.name}: notary {'lists' if notary_trusted else 'refuses'} {tag} "
                f"({listing.error}), the generator records {verdict!r}"
            )
        run = trustcheck_cli(
            "verify",
            "--json",
            "--offline",
            "--state-dir",
            str(tmp_path / case.name / "state"),  # one fresh state per case: same GUNs
            "--trust-dir",
            str(trust),
            "--at",
            fs.validation_time,
            case.image,
        )
        assert "Traceback" not in run.stderr, run.stderr
        if verdict == "trusted-by-notary-docker-refuses" and "sha256" in case.name:
            assert row is not None and len(row.digest) != 64, row  # notary lists it as signed
        (got,) = json.loads(run.stdout)["results"]
        exp = case.expected
        if got["trusted"] != exp.trusted:
            problems.append(f"{case.name}: trustcheck trusted={got['trusted']} ({got['error']})")
        elif exp.trusted:
            if notary_trusted and row is not None and got["digest"] != f"sha256:{row.digest}":
                problems.append(f"{case.name}: digest {got['digest']} vs notary {row.digest}")
        elif got["error"]["code"] != exp.error:
            problems.append(f"{case.name}: code {got['error']['code']}, expected {exp.error}")
        if verdict == "trusted" and not got["trusted"]:
            problems.append(f"{case.name}: notary trusts it, trustcheck does not")
        if verdict == "rejected" and got["trusted"]:
            problems.append(f"{case.name}: notary refuses it, trustcheck trusts it")
    differential_stats.add("issue 14 parse cases vs notary list", "corpus", len(cases))
    assert not problems, "\n".join(problems)
