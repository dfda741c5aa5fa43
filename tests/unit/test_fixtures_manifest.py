"""The committed fixtures (``fixtures/generated``): byte-exact, self-consistent, and
judged by trustcheck exactly as the real notary client and docker CLI judged them
when they were generated.  Fast: no server, validation at ``VALIDATION_TIME``.

Also unit tests for the harness's parsing of notary and docker output, on which
every recorded expectation depends.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from fixtures.generate import REPOS, FixtureSet, fake_manifest, listing_of, repo_names
from fixtures.notary_harness import (
    Completed,
    Listing,
    TargetRow,
    fatal_message,
    is_docker_tag,
    metadata_files,
    normalise_inspect,
    normalise_pretty,
    parse_list_output,
    parse_lookup_output,
    released_expectation,
)

if TYPE_CHECKING:
    from conftest import CliRun

    Cli = Callable[..., CliRun]

REPO_NAMES = [spec.name for spec in REPOS]
RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def _repo(fs: FixtureSet, name: str) -> dict[str, Any]:
    matches = [r for r in fs.repos() if r["name"] == name]
    assert len(matches) == 1, f"{name!r} appears {len(matches)} times in the manifest"
    return matches[0]


def _sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


# --------------------------------------------------------------------------- the files


def test_validation_time_file_matches_manifest(committed_fixtures: FixtureSet) -> None:
    assert RFC3339_UTC.fullmatch(committed_fixtures.validation_time)
    assert committed_fixtures.manifest["validation_time"] == committed_fixtures.validation_time


def test_manifest_lists_every_generator_repository(committed_fixtures: FixtureSet) -> None:
    assert [r["name"] for r in committed_fixtures.repos()] == REPO_NAMES
    assert all(r["gun"] == f"localhost/{r['name']}" for r in committed_fixtures.repos())


@pytest.mark.parametrize("repo_name", REPO_NAMES)
def test_committed_trust_files_match_manifest(
    committed_fixtures: FixtureSet, repo_name: str
) -> None:
    repo = _repo(committed_fixtures, repo_name)
    files = metadata_files(committed_fixtures.trust_dir, repo["gun"])
    assert sorted(files) == sorted(repo["files"])
    for path, data in files.items():
        want = repo["files"][path]
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (want["sha256"], want["length"]), (
            f"{repo['gun']}/{path} changed since generation"
        )


@pytest.mark.parametrize("repo_name", REPO_NAMES)
def test_snapshot_and_timestamp_hashes_match_the_committed_bytes(
    committed_fixtures: FixtureSet, repo_name: str
) -> None:
    """The signed timestamp pins snapshot.json's bytes and the signed snapshot pins
    every other role file's bytes: the committed files are what the server served,
    byte for byte (any re-encoding would break these hashes)."""
    repo = _repo(committed_fixtures, repo_name)
    files = metadata_files(committed_fixtures.trust_dir, repo["gun"])
    timestamp = json.loads(files["timestamp.json"])["signed"]["meta"]
    snap_meta = timestamp["snapshot"]
    assert snap_meta["length"] == len(files["snapshot.json"])
    assert snap_meta["hashes"]["sha256"] == _sha256_b64(files["snapshot.json"])

    snapshot = json.loads(files["snapshot.json"])["signed"]["meta"]
    roles = {p.removesuffix(".json"): data for p, data in files.items()}
    del roles["timestamp"], roles["snapshot"]
    assert sorted(snapshot) == sorted(roles), "snapshot names other roles than are cached"
    for role, data in roles.items():
        assert snapshot[role]["length"] == len(data), role
        assert snapshot[role]["hashes"]["sha256"] == _sha256_b64(data), role


def test_committed_keys_exist(committed_fixtures: FixtureSet) -> None:
    keys = committed_fixtures.manifest["keys"]
    private = committed_fixtures.path / keys["notary_private_dir"]
    roles = {
        line.removeprefix("role: ")
        for p in sorted(private.glob("*.key"))
        for line in p.read_text().splitlines()
        if line.startswith("role: ")
    }
    assert {"root", "targets", "snapshot", "targets/alice", "targets/rsa-releaser"} <= roles
    for record in keys["delegations"].values():
        assert (committed_fixtures.path / record["private"]).is_file()
        assert (committed_fixtures.path / record["public"]).is_file()
    kinds = {r["kind"] for r in keys["delegations"].values()}
    assert kinds == {"ecdsa", "ecdsa-x509", "rsa-x509"}


@pytest.mark.parametrize("repo_name", REPO_NAMES)
def test_real_client_listed_what_was_published(
    committed_fixtures: FixtureSet, repo_name: str
) -> None:
    """Every row notary listed carries the digest and size of the fake manifest
    published under that name in that role."""
    repo = _repo(committed_fixtures, repo_name)
    published = {(p["name"], p["role"]): (p["digest"], p["size"]) for p in repo["published"]}
    assert repo["notary_list"], f"{repo['gun']}: notary listed nothing"
    for row in repo["notary_list"]:
        key = (row["name"], row["role"])
        if key in published:
            want = published[key]
        else:
            assert repo["bulk"] is not None, f"{repo['gun']}: {key} listed but never published"
            data = fake_manifest(repo["gun"], row["name"])
            want = (hashlib.sha256(data).hexdigest(), len(data))
        assert (row["digest"], row["size"]) == want, key


# --------------------------------------------------------------------------- trustcheck


@pytest.mark.parametrize("repo_name", REPO_NAMES)
def test_trustcheck_verify_agrees_with_recorded_notary_answers(
    committed_fixtures: FixtureSet, trustcheck_cli: Cli, repo_name: str
) -> None:
    fs = committed_fixtures
    repo = _repo(fs, repo_name)
    gun, listing = repo["gun"], listing_of(repo)
    names = [n for n in repo_names(repo) if is_docker_tag(n)]
    images = [f"{gun}:{n}" for n in names]
    run = trustcheck_cli(
        "verify", "--json", "--trust-dir", str(fs.trust_dir), "--at", fs.validation_time, *images
    )
    results = json.loads(run.stdout)["results"]
    assert len(results) == len(names)
    problems = []
    for name, got in zip(names, results, strict=True):
        exp = released_expectation(listing, name)
        have = {
            "trusted": got["trusted"],
            "digest": got["digest"] if exp["trusted"] else None,
            "length": got["length"] if exp["trusted"] else None,
            "role": got["role"] if exp["trusted"] else (got["error"] or {}).get("role"),
            "error_code": (got["error"] or {}).get("code"),
        }
        if exp["error_code"] == "tag-not-signed":
            have["role"] = None  # no role to name when nothing holds the tag
        if have != exp:
            problems.append(f"{gun}:{name}: notary {exp} trustcheck {have}")
    assert not problems, "\n".join(problems)
    assert run.code == (0 if all(r["trusted"] for r in results) else 1)


@pytest.mark.parametrize("repo_name", REPO_NAMES)
def test_trustcheck_inspect_agrees_with_recorded_docker_json(
    committed_fixtures: FixtureSet, trustcheck_cli: Cli, repo_name: str
) -> None:
    fs = committed_fixtures
    repo = _repo(fs, repo_name)
    docker = repo["docker_inspect"]
    if docker is None:
        pytest.skip(f"fixtures were generated without docker: {fs.manifest['docker']}")
    assert repo["docker_cache_identical"] is True, "docker cached other bytes than committed"
    run = trustcheck_cli(
        "inspect", "--trust-dir", str(fs.trust_dir), "--at", fs.validation_time, *docker["images"]
    )
    assert run.code == 0, run.stderr
    assert normalise_inspect(json.loads(run.stdout)) == normalise_inspect(docker["json"])


def test_committed_fixtures_expire_after_validation_time(
    committed_fixtures: FixtureSet, trustcheck_cli: Cli
) -> None:
    """The server-signed timestamp lasts 14 days: 15 days later the same data must be
    rejected (proves the tests above depend on --at, and that expiry is checked)."""
    fs = committed_fixtures
    at = dt.datetime.strptime(fs.validation_time, "%Y-%m-%dT%H:%M:%SZ")
    later = (at + dt.timedelta(days=15)).strftime("%Y-%m-%dT%H:%M:%SZ")
    run = trustcheck_cli(
        "verify", "--json", "--trust-dir", str(fs.trust_dir), "--at", later, "localhost/basic:v1"
    )
    (result,) = json.loads(run.stdout)["results"]
    assert run.code == 1 and result["trusted"] is False
    assert result["error"]["code"] == "metadata-expired"


# --------------------------------------------------------------------------- harness parsing

LIST_OUTPUT = (
    "NAME       DIGEST                                                              "
    "SIZE (BYTES)    ROLE\n"
    "----       ------                                                              "
    "------------    ----\n"
    f"a<b>&c     {'ab' * 32}    738             targets\n"
    f"x\u2028y        {'cd' * 32}    5               targets/releases/team\n"
    "no-hash                                                                        "
    "12              targets/a\n"
    "\n"
)


def test_parse_list_output_keeps_unusual_names() -> None:
    rows = parse_list_output(LIST_OUTPUT)
    assert rows == [
        TargetRow("a<b>&c", "ab" * 32, 738, "targets"),
        TargetRow("x\u2028y", "cd" * 32, 5, "targets/releases/team"),
        TargetRow("no-hash", "", 12, "targets/a"),
    ]


def test_parse_list_output_empty_and_garbage() -> None:
    assert parse_list_output("\nNo targets present in this repository.\n\n") == []
    with pytest.raises(RuntimeError):
        parse_list_output("something else entirely\n")


def test_parse_lookup_output() -> None:
    row = parse_lookup_output(f"日本 sha256:{'0f' * 32} 949\n")
    assert row is not None and (row.name, row.digest, row.size) == ("日本", "0f" * 32, 949)
    assert parse_lookup_output("") is None


def test_fatal_message_is_read_from_stdout_too() -> None:
    done = Completed(("notary",), 1, "\n* fatal: No valid trust data for v9\n", "level=warning\n")
    assert fatal_message(done) == "No valid trust data for v9"


def test_released_expectation_rule() -> None:
    listing = Listing(
        (
            TargetRow("rel", "aa" * 32, 10, "targets/releases"),
            TargetRow("adm", "bb" * 32, 11, "targets"),
            TargetRow("team", "cc" * 32, 12, "targets/releases/team"),
        )
    )
    assert released_expectation(listing, "rel") == {
        "trusted": True,
        "digest": "sha256:" + "aa" * 32,
        "length": 10,
        "role": "targets/releases",
        "error_code": None,
    }
    assert released_expectation(listing, "adm")["role"] == "targets"
    assert released_expectation(listing, "team")["error_code"] == "tag-not-released"
    assert released_expectation(listing, "nope")["error_code"] == "tag-not-signed"


def test_docker_tag_grammar() -> None:
    assert is_docker_tag("Tag.With-Dots_1") and is_docker_tag("v1") and is_docker_tag("_x")
    for bad in ("a<b>&c", "café-ü", "日本", "dir/name", ".v1", "-v1", "x" * 129, ""):
        assert not is_docker_tag(bad), bad


def test_normalise_inspect_orders_only_rows_of_one_tag() -> None:
    def doc(*rows: tuple[str, str]) -> list[dict[str, Any]]:
        tags = [{"SignedTag": t, "Digest": d, "Signers": ["Repo Admin"]} for t, d in rows]
        return [{"Name": "x", "SignedTags": tags}]

    same = normalise_inspect(doc(("a", "2"), ("a", "1"), ("b", "0")))
    assert same == normalise_inspect(doc(("a", "1"), ("a", "2"), ("b", "0")))
    assert same != normalise_inspect(doc(("b", "0"), ("a", "1"), ("a", "2")))


def test_normalise_pretty_orders_only_rows_of_one_tag() -> None:
    head = "SIGNED TAG   DIGEST   SIGNERS\n"
    r1, r2 = f"split   {'1' * 64}   alice", f"split   {'2' * 64}   (Repo Admin)"
    r3 = f"v1      {'3' * 64}   bob"
    assert normalise_pretty(head + f"{r2}\n{r1}\n{r3}\n") == head + f"{r1}\n{r2}\n{r3}\n"
    assert normalise_pretty(head + f"{r3}\n{r1}\n") == head + f"{r3}\n{r1}\n"
