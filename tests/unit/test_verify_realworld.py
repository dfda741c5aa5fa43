"""Verification of the byte-exact real-world trust dirs written by notary 0.1 / 0.3,
and of single-byte-class corruptions of them (notary's swizzler without re-signing)."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from trustcheck.api import load_collection, verify_images
from trustcheck.core.lookup import inspect, list_targets
from trustcheck.errors import NotTrusted

if TYPE_CHECKING:
    from conftest import CliRun

REPO = Path(__file__).resolve().parents[2]
REALWORLD = REPO / "fixtures" / "realworld"
N01 = REALWORLD / "notary0.1"
N03 = REALWORLD / "notary0.3"
GUN01 = "docker.com/notary0.1/samplerepo"
GUN03 = "docker.com/notary0.3/tst"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PAST = datetime(2020, 1, 1, tzinfo=UTC)
LICENSE_SHA = "sha256:9395bac6fccb26bcb55efb083d1b4b0fe72a1c25f959f056c016120b3bb56a62"


# --------------------------------------------------------------------------- provenance


def test_realworld_files_match_their_manifest() -> None:
    """fixtures/realworld holds exactly the files of SHA256SUMS, byte for byte (copied
    unchanged from notary's fixtures/compatibility/; README.md gives the provenance)."""
    manifest: dict[str, str] = {}
    for line in (REALWORLD / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        manifest[name] = digest
    assert len(manifest) == 9
    present = {
        p.relative_to(REALWORLD).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in REALWORLD.rglob("*")
        if p.is_file() and p.parent != REALWORLD
    }
    assert present == manifest
    top = {p.name for p in REALWORLD.iterdir()}
    assert top == {"README.md", "SHA256SUMS", "notary0.1", "notary0.3"}


def test_realworld_readme_names_the_source() -> None:
    readme = (REALWORLD / "README.md").read_text()
    for fact in (
        "theupdateframework/notary",
        "fixtures/compatibility/",
        "177297005ef8a19ae1923a05dcd0b944b800f413",
        "Notary client **0.1**",
        "Notary client **0.3**",
        "Apache License 2.0",
        "SHA256SUMS",
    ):
        assert fact in readme, fact


# --------------------------------------------------------------------------- verification


def test_notary01_verifies_today() -> None:
    (r,) = verify_images([f"{GUN01}:LICENSE"], N01, NOW)
    assert r.trusted, r.error
    assert (r.digest, r.length, r.role) == (LICENSE_SHA, 11309, "targets")
    col = load_collection(N01, GUN01, NOW)
    assert [c for c in col.checks] == ["root", "timestamp", "snapshot", "targets"]
    assert col.checks["targets"].version == 2 and col.checks["snapshot"].version == 2


def test_notary03_rejected_today_because_root_cert_expired() -> None:
    (r,) = verify_images([f"{GUN03}:hello"], N03, NOW)
    assert not r.trusted and r.error is not None
    assert r.error.code == "root-cert-expired"
    assert "2026-07-25" in r.error.message and "--at" in r.error.message


def test_notary03_verifies_before_the_certificate_expired() -> None:
    results = verify_images([f"{GUN03}:hello", f"{GUN03}:LICENSE", f"{GUN03}:change"], N03, PAST)
    assert [r.trusted for r in results] == [True, True, True]
    hello, lic, _change = results
    assert hello.role == "targets/releases" and hello.signers == ["releases"]
    assert lic.role == "targets" and lic.digest == LICENSE_SHA
    col = load_collection(N03, GUN03, PAST)
    # the rsa-x509 delegation key expired in 2017: notary accepts it (spec §5.2 D5)
    assert "targets/releases" in col.targets
    assert set(list_targets(col, ("targets/releases", "targets"))) == {"hello", "LICENSE", "change"}


def test_notary03_inspect_has_docker_shape() -> None:
    col = load_collection(N03, GUN03, PAST)
    doc = inspect(col, GUN03, None)
    assert [t["SignedTag"] for t in doc["SignedTags"]] == ["LICENSE", "change", "hello"]  # type: ignore[index]
    assert all(t["Signers"] == ["Repo Admin"] for t in doc["SignedTags"])  # type: ignore[index]
    assert doc["Signers"] == []  # releases is not listed as a signer
    root_ids = [k["ID"] for k in doc["AdministrativeKeys"][0]["Keys"]]  # type: ignore[index]
    assert doc["AdministrativeKeys"][0]["Name"] == "Root"  # type: ignore[index]
    assert root_ids[0].startswith("354e203b")


def test_digest_reference_must_be_a_released_digest() -> None:
    ok, bad = verify_images([f"{GUN01}@{LICENSE_SHA}", f"{GUN01}@sha256:{'0' * 64}"], N01, NOW)
    assert ok.trusted and ok.role == "targets"
    assert not bad.trusted and bad.error is not None and bad.error.code == "digest-not-signed"


def test_tag_and_digest_must_agree() -> None:
    (r,) = verify_images([f"{GUN01}:LICENSE@sha256:{'1' * 64}"], N01, NOW)
    assert not r.trusted and r.error is not None and r.error.code == "digest-mismatch"
    assert r.digest is None


def test_far_future_rejects_expired_data() -> None:
    (r,) = verify_images([f"{GUN01}:LICENSE"], N01, datetime(2200, 1, 1, tzinfo=UTC))
    assert not r.trusted and r.error is not None
    assert r.error.code in {"root-cert-expired", "metadata-expired"}


# ---------------------------------------------------------------- corruptions


@pytest.fixture
def n01(tmp_path: Path) -> Path:
    dst = tmp_path / "trust"
    shutil.copytree(N01, dst)
    return dst


def _meta(trust: Path, role: str) -> Path:
    return trust / "tuf" / GUN01 / "metadata" / f"{role}.json"


def _code(trust: Path) -> str:
    with pytest.raises(NotTrusted) as exc:
        load_collection(trust, GUN01, NOW)
    return exc.value.code


def test_missing_root_means_no_trust_data(n01: Path) -> None:
    _meta(n01, "root").unlink()
    assert _code(n01) == "no-trust-data"


@pytest.mark.parametrize("role", ["timestamp", "snapshot", "targets"])
def test_missing_role_is_reported(n01: Path, role: str) -> None:
    _meta(n01, role).unlink()
    assert _code(n01) == "role-missing"


@pytest.mark.parametrize(
    ("role", "code"),
    [
        ("timestamp", "malformed-json"),
        ("snapshot", "length-exceeded"),
        ("targets", "length-exceeded"),
    ],
)
def test_invalid_json_first_five_bytes_dropped(n01: Path, role: str, code: str) -> None:
    # notary swizzler SetInvalidJSON; for snapshot/targets the hash binding fails first
    p = _meta(n01, role)
    p.write_bytes(p.read_bytes()[5:] + b"12345")  # same length
    got = _code(n01)
    assert got in {code, "hash-mismatch"}


@pytest.mark.parametrize("role", ["snapshot", "targets"])
def test_extra_space_breaks_the_length_cap(n01: Path, role: str) -> None:
    p = _meta(n01, role)
    p.write_bytes(b" " + p.read_bytes() + b" ")
    assert _code(n01) == "length-exceeded"


@pytest.mark.parametrize("role", ["snapshot", "targets", "root"])
def test_same_length_change_breaks_the_hash(n01: Path, role: str) -> None:
    p = _meta(n01, role)
    data = bytearray(p.read_bytes())
    i = data.index(b'"expires"')
    data[i + 12] = ord("2") if data[i + 12] != ord("2") else ord("3")  # a digit of the year
    p.write_bytes(bytes(data))
    assert _code(n01) in {"hash-mismatch", "root-integrity"}


def test_timestamp_signature_bytes_invalid(n01: Path) -> None:
    p = _meta(n01, "timestamp")
    doc = json.loads(p.read_bytes())
    doc["signatures"][0]["sig"] = base64.b64encode(b"invalid signature").decode()
    p.write_text(json.dumps(doc))
    assert _code(n01) == "threshold-not-met"


def test_timestamp_without_signatures(n01: Path) -> None:
    p = _meta(n01, "timestamp")
    doc = json.loads(p.read_bytes())
    doc["signatures"] = []
    p.write_text(json.dumps(doc))
    assert _code(n01) == "no-signatures"


def test_timestamp_signatures_not_a_list(n01: Path) -> None:
    p = _meta(n01, "timestamp")
    doc = json.loads(p.read_bytes())
    doc["signatures"] = "not list"
    p.write_text(json.dumps(doc))
    assert _code(n01) == "invalid-structure"


def test_pretty_printed_timestamp_still_verifies(n01: Path) -> None:
    # C8: signatures are over the canonical form, whitespace on the wire is irrelevant
    p = _meta(n01, "timestamp")
    p.write_text(json.dumps(json.loads(p.read_bytes()), indent=3))
    assert load_collection(n01, GUN01, NOW).timestamp.version == 1


def test_root_of_another_collection_is_refused(n01: Path) -> None:
    shutil.copy(N03 / "tuf" / GUN03 / "metadata" / "root.json", _meta(n01, "root"))
    assert _code(n01) == "root-cert-cn-mismatch"


def test_oversized_timestamp_is_refused_without_reading_it(n01: Path) -> None:
    p = _meta(n01, "timestamp")
    with p.open("ab") as f:
        f.truncate((1 << 20) + 1)
    assert _code(n01) == "file-too-large"


# --------------------------------------------------------------------------- issue 14 #4


GENERATED = REPO / "fixtures" / "generated"
CASES = REPO / "fixtures" / "attacks" / "cases"


def _generated_at() -> str:
    return (GENERATED / "VALIDATION_TIME").read_text().strip()


def _mixed_trust_dir(tmp_path: Path, case: str, gun: str) -> Path:
    """The committed genuine trust dir with one GUN's files replaced by an attack case's."""
    trust = tmp_path / "trust"
    shutil.copytree(GENERATED / "trust", trust)
    meta = trust / "tuf" / gun / "metadata"
    shutil.rmtree(meta)
    shutil.copytree(CASES / case / "trust" / "tuf" / gun / "metadata", meta)
    return trust


@pytest.mark.parametrize(
    ("case", "gun", "code"),
    [
        (
            "number-beyond-float64-5000-digit-integer-is-malformed-json",
            "localhost/basic",
            "malformed-json",
        ),
        ("targets-expiring-before-year-1-utc-is-expired", "localhost/basic", "metadata-expired"),
        ("tag-signed-with-20-byte-sha256-is-refused", "localhost/basic", "target-digest-invalid"),
    ],
)
def test_a_hostile_collection_costs_only_its_own_images(
    tmp_path: Path, trustcheck_cli: Callable[..., CliRun], case: str, gun: str, code: str
) -> None:
    """One run over three GUNs, one of them hostile (inputs that crashed the whole run
    before): `verify --json` prints one document, the hostile GUN has its code, the
    others keep their verdicts."""
    trust = _mixed_trust_dir(tmp_path, case, gun)
    images = [f"{gun}:v1", "localhost/releases:v1", "localhost/signers:v2"]
    run = trustcheck_cli(
        "verify", "--json", "--offline", "--trust-dir", str(trust), "--at", _generated_at(), *images
    )
    assert run.code == 1, run.stderr
    assert "Traceback" not in run.stderr and "internal-error" not in run.stderr
    results = json.loads(run.stdout)["results"]
    assert [r["image"] for r in results] == images
    assert results[0]["trusted"] is False and results[0]["error"]["code"] == code
    assert results[1]["trusted"] is True and results[2]["trusted"] is True


def test_an_unexpected_exception_in_one_collection_is_its_internal_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trustcheck_cli: Callable[..., CliRun]
) -> None:
    """Fault injection (the only way to raise an exception no input is known to
    cause): verification of one GUN raises; that image gets `internal-error`, the
    others their real verdicts, in the library and in `verify --json`."""
    import trustcheck.api as api

    real = api.verify_collection

    def failing(gun: str, *args: object, **kw: object) -> object:
        if gun == "localhost/releases":
            raise RuntimeError("injected fault")
        return real(gun, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(api, "verify_collection", failing)
    at = datetime.strptime(_generated_at(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    images = ["localhost/basic:v1", "localhost/releases:v1", "localhost/releases:v2"]
    results = verify_images(images, GENERATED / "trust", at)
    assert results[0].trusted is True
    for r in results[1:]:
        assert r.trusted is False and r.error is not None
        assert r.error.code == "internal-error"
        assert "RuntimeError" in r.error.message and "localhost/releases" in r.error.message
    run = trustcheck_cli(
        "verify",
        "--json",
        "--offline",
        "--trust-dir",
        str(GENERATED / "trust"),
        "--at",
        _generated_at(),
        *images,
    )
    assert run.code == 1 and "Traceback" not in run.stderr
    doc = json.loads(run.stdout)
    assert [r["trusted"] for r in doc["results"]] == [True, False, False]
    assert {r["error"]["code"] for r in doc["results"][1:]} == {"internal-error"}


@pytest.mark.parametrize(
    "case",
    [
        "targets-releases-expiring-in-year-10000-utc-verifies",
        "targets-expiring-in-year-10000-utc-verifies",
        "targets-expiring-before-year-1-utc-is-expired",
    ],
)
def test_audit_survives_expiry_instants_beyond_pythons_range(
    trustcheck_cli: Callable[..., CliRun], case: str
) -> None:
    """audit printed `internal-error` (OverflowError) on these before issue 14."""
    spec = json.loads((CASES / case / "case.json").read_text())
    gun = spec["image"].split(":")[0]
    run = trustcheck_cli(
        "audit",
        gun,
        "--trust-dir",
        str(CASES / case / "trust"),
        "--at",
        spec["at"],
        "--format",
        "json",
    )
    assert "internal-error" not in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert run.code in (0, 1)
    report = json.loads(run.stdout)
    text = json.dumps(report)
    if "year-10000" in case:
        assert "9999-12-31T23:59:59Z" in text


@pytest.mark.parametrize(
    ("at", "code"),
    [
        ("9999-12-31T23:59:59Z", "root-cert-expired"),
        ("9999-12-31T00:00:00Z", "root-cert-expired"),
        ("0001-01-01T00:00:00Z", "root-cert-not-yet-valid"),
    ],
)
def test_validation_times_at_pythons_limits_are_verdicts_not_crashes(
    trustcheck_cli: Callable[..., CliRun], at: str, code: str
) -> None:
    """`--at` near year 9999 overflowed `at + leeway` (certificates) and `at + horizon`
    (audit): internal-error. Now the usual verdicts."""
    trust = str(GENERATED / "trust")
    run = trustcheck_cli(
        "verify", "--json", "--offline", "--trust-dir", trust, "--at", at, "localhost/basic:v1"
    )
    assert run.code == 1 and "internal-error" not in run.stdout + run.stderr, run.stdout
    assert json.loads(run.stdout)["results"][0]["error"]["code"] == code
    run = trustcheck_cli(
        "audit", "localhost/basic", "--trust-dir", trust, "--at", at, "--format", "json"
    )
    assert "internal-error" not in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert json.loads(run.stdout)
