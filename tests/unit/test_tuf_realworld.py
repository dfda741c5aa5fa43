"""TUF 1.0 data trustcheck did not write: python-tuf's own test data and sigstore's
root-signing repository (fixtures/tuf/, see fixtures/tuf/README.md for provenance),
plus the key-ID rule (docs/tuf.md, "Key IDs") and the errors that name the real problem.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner, SSlibKey

from tests.unit.test_tuf10 import AT, AT_TEXT, basic, state_options, tc
from trustcheck.tuf.client import inspect_repository, verify_targets
from trustcheck.tuf.download import download_targets
from trustcheck.tuf.keys import keyid_is_bound

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "tuf"
SIGSTORE = FIX / "sigstore-root-signing"
PYTHON_TUF = FIX / "python-tuf"
#: sigstore's timestamp.json in the fixture expires 2026-08-28T19:25:56Z
SIGSTORE_AT = datetime(2026, 8, 22, tzinfo=UTC)
TRUSTED_ROOT_SHA256 = hashlib.sha256(
    (SIGSTORE / "targets" / "trusted_root.json").read_bytes()
).hexdigest()


def _root(v: int) -> bytes:
    return (SIGSTORE / "root_history" / f"{v}.root.json").read_bytes()


# ----------------------------------------------------------------------------- python-tuf data


def _ed25519_repo(tmp_path: Path) -> Path:
    folder = tmp_path / "ed25519"
    folder.mkdir()
    for role in ("root", "timestamp", "snapshot", "targets"):
        src = PYTHON_TUF / "ed25519_metadata" / f"{role}_with_ed25519.json"
        shutil.copyfile(src, folder / f"{role}.json")
    return folder


def test_python_tuf_ed25519_metadata_with_legacy_key_ids(tmp_path: Path) -> None:
    folder = _ed25519_repo(tmp_path)
    root = json.loads((folder / "root.json").read_bytes())["signed"]
    for kid, key in root["keys"].items():
        assert "keyid_hash_algorithms" not in key
        legacy = {**key, "keyid_hash_algorithms": ["sha256", "sha512"]}
        assert hashlib.sha256(encode_canonical(legacy).encode()).hexdigest() == kid
        assert keyid_is_bound(SSlibKey.from_dict(kid, dict(key)))
    report = inspect_repository(str(folder), AT, state_options(tmp_path))
    assert [r.name for r in report.roles] == ["root", "timestamp", "snapshot", "targets"]
    assert all(k["keyid_is_hash"] for k in report.keys)


def test_python_tuf_fishy_rolenames(tmp_path: Path) -> None:
    """Roles named `../a`, `.` and `ö`: `.` and `ö` verify, `../a` is missing data (as for
    python-tuf: a 404), not a usage error, and 1.a.json beside the folder is never read."""
    folder = tmp_path / "fishy"
    shutil.copytree(PYTHON_TUF / "fishy_rolenames", folder)
    report = inspect_repository(str(folder / "metadata"), AT, state_options(tmp_path))
    names = [r.name for r in report.roles]
    assert names[:4] == ["root", "timestamp", "snapshot", "targets"]
    assert sorted(names[4:]) == sorted([".", "ö"])
    assert [(s["role"], s["code"]) for s in report.skipped] == [("../a", "role-missing")]
    (folder / "1.a.json").write_bytes(b"{ not even JSON")  # were it read, it would fail
    again = inspect_repository(str(folder / "metadata"), AT, state_options(tmp_path))
    assert [(s["role"], s["code"]) for s in again.skipped] == [("../a", "role-missing")]


# ----------------------------------------------------------------------------- key IDs


def _signer_with_keyid(keyid_for: Any, extra: dict[str, str] | None = None) -> CryptoSigner:
    base = CryptoSigner.generate_ed25519()
    pub = base.public_key
    fields = dict(extra or {})
    keyid = keyid_for(pub, fields)
    key = SSlibKey(keyid, pub.keytype, pub.scheme, pub.keyval, fields)
    return CryptoSigner(base._private_key, key)


def _full_hash(pub: SSlibKey, fields: dict[str, str]) -> str:
    d = {"keytype": pub.keytype, "scheme": pub.scheme, "keyval": pub.keyval, **fields}
    return hashlib.sha256(encode_canonical(d).encode()).hexdigest()


def test_a_key_id_inherited_from_the_root_before_is_accepted(tmp_path: Path) -> None:
    """sigstore root v11: the online key keeps the ID root v10 computed although its
    x-tuf-on-ci-online-uri annotation changed. Walked from the root before, the binding
    is inherited; bootstrapped from the new root alone it is not provable."""
    repo = basic()
    first_root = repo.files["root"][1]
    signer = _signer_with_keyid(_full_hash, {"x-online-uri": "kms://a"})
    old = repo.signers["timestamp"][0]
    with repo.edit_root() as root:
        root.revoke_key(old.public_key.keyid, "timestamp")
        root.add_key(signer.public_key, "timestamp")
    repo.signers["timestamp"] = [signer]
    repo.commit()
    with repo.edit_root() as root:
        root.keys[signer.public_key.keyid].unrecognized_fields["x-online-uri"] = "kms:b/1"
    repo.do_timestamp(force=True)
    repo.commit()
    folder = repo.publish(tmp_path / "repo")
    key = SSlibKey.from_dict(
        signer.public_key.keyid,
        json.loads(repo.latest("root"))["signed"]["keys"][signer.public_key.keyid],
    )
    assert keyid_is_bound(key) is False  # not a hash of the key as v3 lists it
    r = verify_targets(str(folder), ["file.txt"], AT, state_options(tmp_path), root=first_root)
    assert r[0].trusted, r[0].error
    alone = verify_targets(
        str(folder), ["file.txt"], AT, state_options(tmp_path / "b"), root=repo.latest("root")
    )
    assert alone[0].error is not None and alone[0].error.code == "invalid-key-id"
    flagged = verify_targets(
        str(folder),
        ["file.txt"],
        AT,
        state_options(tmp_path / "c"),
        root=repo.latest("root"),
        allow_arbitrary_keyids=True,
    )
    assert flagged[0].trusted and any("--unsafe-arbitrary-keyids" in w for w in flagged[0].warnings)


def test_a_key_id_naming_another_listed_key_is_refused_even_with_the_flag(
    tmp_path: Path,
) -> None:
    """The timestamp key is listed under the legacy key ID of the targets key (which root
    lists under its current ID): one key posing as another."""
    repo = basic()
    victim = repo.signers["targets"][0].public_key
    legacy = _full_hash(victim, {"keyid_hash_algorithms": ["sha256", "sha512"]})  # type: ignore[dict-item]
    assert legacy != victim.keyid
    impostor = _signer_with_keyid(lambda pub, f: legacy)
    old = repo.signers["timestamp"][0]
    with repo.edit_root() as root:
        root.revoke_key(old.public_key.keyid, "timestamp")
        root.add_key(impostor.public_key, "timestamp")
    repo.signers["timestamp"] = [impostor]
    repo.do_timestamp(force=True)
    repo.commit()
    folder = repo.publish(tmp_path / "repo")
    for flag in (False, True):
        r = verify_targets(
            str(folder),
            ["file.txt"],
            AT,
            state_options(tmp_path / str(flag)),
            root=repo.latest("root"),
            allow_arbitrary_keyids=flag,
        )
        assert r[0].error is not None, flag
        assert r[0].error.code == "invalid-key-id", r[0].error
        assert "is the hash of another key" in r[0].error.message


def test_main_verify_takes_unsafe_arbitrary_keyids(tmp_path: Path) -> None:
    repo = basic()
    signer = _signer_with_keyid(lambda pub, f: "ab" * 32)
    old = repo.signers["timestamp"][0]
    with repo.edit_root() as root:
        root.revoke_key(old.public_key.keyid, "timestamp")
        root.add_key(signer.public_key, "timestamp")
    repo.signers["timestamp"] = [signer]
    repo.do_timestamp(force=True)
    repo.commit()
    folder = repo.publish(tmp_path / "repo")
    (tmp_path / "root.json").write_bytes(repo.latest("root"))
    common = ["--repo", str(folder), "--root", str(tmp_path / "root.json"), "--at", AT_TEXT]
    refused = tc("verify", *common, "--state-dir", str(tmp_path / "s1"), "file.txt")
    assert refused.code == 1 and "[invalid-key-id]" in refused.stdout
    ok = tc(
        "verify", *common, "--state-dir", str(tmp_path / "s2"), "--unsafe-arbitrary-keyids",
        "file.txt",
    )  # fmt: skip
    assert ok.code == 0, ok.stdout + ok.stderr
    assert "--unsafe-arbitrary-keyids" in ok.stderr


# ----------------------------------------------------------------------------- sigstore


@pytest.mark.parametrize("version", range(1, 16))
def test_sigstore_bootstraps_from_every_root(tmp_path: Path, version: int) -> None:
    """Roots v1-v4 hold hex EC points, v1-v3 expires python-tuf cannot parse: the whole
    chain v1..v15 verifies; the signed trusted_root.json is the one in the checkout."""
    r = verify_targets(
        str(SIGSTORE), ["trusted_root.json"], SIGSTORE_AT, state_options(tmp_path),
        root=_root(version),
    )  # fmt: skip
    assert r[0].trusted, r[0].error
    assert r[0].digest == "sha256:" + TRUSTED_ROOT_SHA256
    (state,) = (tmp_path / "state" / "tuf" / "v1").glob("*/current")
    assert json.loads((state / "root.json").read_bytes())["signed"]["version"] == 15
    assert (state / "root_history" / f"{version}.root.json").read_bytes() == _root(version)


def test_sigstore_download_of_trusted_root(tmp_path: Path) -> None:
    (r,) = download_targets(
        str(SIGSTORE), ["trusted_root.json"], tmp_path / "out", SIGSTORE_AT,
        state_options(tmp_path), root=_root(1),
    )  # fmt: skip
    assert r.error is None, r.error
    assert hashlib.sha256(Path(r.file or "").read_bytes()).hexdigest() == TRUSTED_ROOT_SHA256


def test_sigstore_legacy_roots_are_really_verified(tmp_path: Path) -> None:
    """The prefix trustcheck walks itself (v1-v3) checks signatures and versions."""
    copy = tmp_path / "sigstore"
    shutil.copytree(SIGSTORE, copy)
    doc = json.loads(_root(2))
    doc["signed"]["roles"]["root"]["threshold"] = 1  # any change breaks every signature
    (copy / "root_history" / "2.root.json").write_text(json.dumps(doc))
    r = verify_targets(
        str(copy), ["trusted_root.json"], SIGSTORE_AT, state_options(tmp_path), root=_root(1)
    )
    assert r[0].error is not None and r[0].error.code == "root-rotation-invalid"
    assert "2.root.json" in r[0].error.message
    # v3 served as 2.root.json: a version skip
    (copy / "root_history" / "2.root.json").write_bytes(_root(3))
    r = verify_targets(
        str(copy), ["trusted_root.json"], SIGSTORE_AT, state_options(tmp_path / "b"),
        root=_root(1),
    )  # fmt: skip
    assert r[0].error is not None and r[0].error.code == "root-rotation-invalid"


def test_a_final_root_with_an_unparseable_expiry_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "root.json").write_bytes(_root(1))
    (folder / "1.root.json").write_bytes(_root(1))
    r = verify_targets(str(folder), ["x"], SIGSTORE_AT, state_options(tmp_path), root=_root(1))
    assert r[0].error is not None and r[0].error.code == "invalid-expires"
    assert "2021-12-18T13:28:12.99008-06:00" in r[0].error.message


# ----------------------------------------------------------------------------- dialect errors


def test_a_notary_root_given_to_tuf_verify_is_named(tmp_path: Path) -> None:
    notary_root = next((Path(__file__).resolve().parents[2] / "fixtures" / "generated").rglob(
        "root.json"
    ))
    folder = basic().publish(tmp_path / "repo")
    run = tc("tuf", "verify", "--repo", str(folder), "--root", str(notary_root), "file.txt")
    assert run.code == 2
    assert f"--root {notary_root} is a Notary v1" in run.stderr
    assert "Traceback" not in run.stderr


def test_tuf_data_in_a_notary_trust_dir_gets_a_dialect_hint(tmp_path: Path) -> None:
    repo = basic()
    meta = tmp_path / "trust" / "tuf" / "example.com" / "app" / "metadata"
    meta.mkdir(parents=True)
    for role in ("root", "timestamp", "snapshot", "targets"):
        (meta / f"{role}.json").write_bytes(repo.latest(role))
    run = tc(
        "verify", "--trust-dir", str(tmp_path / "trust"), "--offline", "--at", AT_TEXT,
        "example.com/app:v1",
    )  # fmt: skip
    assert run.code == 1
    assert "[wrong-type]" in run.stdout and "TUF 1.0 metadata, not Notary v1" in run.stdout
    assert "trustcheck tuf verify --repo" in run.stdout


def test_pin_keys_for_tuf_repositories_are_urls_and_folders(tmp_path: Path) -> None:
    """docs/tuf.md's pin file: a URL key, a TUF role name with dots as a signer; an
    absolute folder path; image-name rules do not apply to them."""
    from trustcheck.local.pinfile import load_pins

    pins = tmp_path / "pins.toml"
    pins.write_text(
        'version = 1\n[pins."https://tuf-repo-cdn.sigstore.dev"]\n'
        'root = ["spki-sha256:' + "06" * 32 + '"]\n'
        'signers = { "registry.npmjs.org" = ["keyid:' + "5e" * 32 + '"] }\n'
        f'[pins."{tmp_path}/repo"]\nroot = ["keyid:' + "ab" * 32 + '"]\n'
    )
    loaded = load_pins(pins)
    url = loaded.lookup("https://tuf-repo-cdn.sigstore.dev")
    assert url is not None and list(url.signers) == ["registry.npmjs.org"]
    assert loaded.lookup(f"{tmp_path}/repo") is not None
    assert loaded.lookup("https://tuf-repo-cdn.sigstore.dev.evil") is None


def test_a_root_key_that_cannot_be_read_is_named_not_blamed_on_the_root(tmp_path: Path) -> None:
    doc = json.loads(_root(5))
    first = doc["signed"]["roles"]["root"]["keyids"][0]
    doc["signed"]["keys"][first]["keyval"]["public"] = "-----BEGIN PUBLIC KEY-----\nnope\n"
    (tmp_path / "root.json").write_text(json.dumps(doc))
    r = verify_targets(
        str(SIGSTORE), ["trusted_root.json"], SIGSTORE_AT, state_options(tmp_path),
        root=(tmp_path / "root.json").read_bytes(),
    )  # fmt: skip
    assert r[0].error is not None and r[0].error.code == "threshold-not-met"
    assert "cannot read (neither PEM nor a hex point)" in r[0].error.message
    assert first[:16] in r[0].error.message
