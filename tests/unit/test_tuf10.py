"""TUF 1.0 repositories (trustcheck/tuf/, `trustcheck tuf ...`).

Every repository here is built at test time with python-tuf's repository API
(:class:`tuf.repository.Repository`, the Metadata API and securesystemslib's
``CryptoSigner``): delegations, root rotations, expiries, hash-bin
(succinct) delegations, terminating delegations, consistent snapshots. The
attack cases (:data:`ATTACKS`) each carry the error code they must produce;
the cases where trustcheck is deliberately stricter than python-tuf also
check that python-tuf alone accepts the same data.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import http.server
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner, Signer, SSlibKey
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer
from tuf.repository import Repository

from tests.conftest import (
    COMMITTED_FIXTURES,
    BackgroundServer,
    CliRun,
    run_trustcheck,
    tls_server,
)
from trustcheck.api import ImageResult, Options
from trustcheck.errors import TrustcheckError, UsageError
from trustcheck.local.pinfile import load_pins
from trustcheck.local.state import StateStore
from trustcheck.tuf.client import inspect_repository, keys_of_repository, verify_targets
from trustcheck.tuf.dialect import detect_dialect
from trustcheck.tuf.fetchers import ClientLimits
from trustcheck.tuf.keys import keyid_is_bound, public_key_identity

AT = datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)
AT_TEXT = "2030-06-01T12:00:00Z"
EXPIRES = AT + timedelta(days=365)
PAST = AT - timedelta(days=1)
TOP = ("root", "timestamp", "snapshot", "targets")
CONTENT = b"hello, TUF\n"
CONTENT_DIGEST = "sha256:" + hashlib.sha256(CONTENT).hexdigest()


# ----------------------------------------------------------------------------- the builder


@functools.cache
def _key_pool() -> list[CryptoSigner]:
    return [CryptoSigner.generate_ed25519() for _ in range(12)]


class Keys:
    """Fresh ed25519 signers for one repository (drawn from a small pool: key generation is
    the slow part, and repositories never share keys within a test)."""

    def __init__(self) -> None:
        self._pool = list(_key_pool())

    def new(self) -> CryptoSigner:
        if self._pool:
            return self._pool.pop()
        return CryptoSigner.generate_ed25519()


class Repo(Repository):
    """An in-memory TUF 1.0 repository written with python-tuf's repository API.

    Every version of every role is kept (``files[role][version]``);
    :meth:`publish` writes them as ``V.ROLE.json`` plus the newest as
    ``ROLE.json``, so both consistent-snapshot and plain clients find theirs.
    """

    def __init__(self, *, consistent: bool = True, meta_hashes: bool = False) -> None:
        self.keys = Keys()
        self.meta_hashes = meta_hashes
        self.signers: dict[str, list[Signer]] = {}
        self.extra_signers: dict[str, list[Signer]] = {}  # for the next version only
        self.history: dict[str, list[Metadata[Any]]] = {}
        self.files: dict[str, dict[int, bytes]] = {}
        self.expiry: dict[str, datetime] = {}
        self._targets_infos: dict[str, MetaFile] = {}
        self._snapshot_info = MetaFile(1)
        with self.edit_root() as root:
            root.consistent_snapshot = consistent
            for role in TOP:
                signer = self.keys.new()
                root.add_key(signer.public_key, role)
                self.signers[role] = [signer]
        with self.edit_targets():
            pass
        self.commit()

    # --- Repository interface ---------------------------------------------------

    def open(self, role: str) -> Metadata[Any]:
        if role in self.history:
            return copy.deepcopy(self.history[role][-1])
        kinds: dict[str, Any] = {"root": Root, "timestamp": Timestamp, "snapshot": Snapshot}
        md: Metadata[Any] = Metadata(kinds.get(role, Targets)())
        md.signed.version = 0  # close() makes it 1
        return md

    def close(self, role: str, md: Metadata[Any]) -> None:
        md.signed.version += 1
        md.signed.expires = self.expiry.get(role, EXPIRES)
        md.signatures.clear()
        for signer in [*self.signers.get(role, []), *self.extra_signers.pop(role, [])]:
            md.sign(signer, append=True)
        data = md.to_bytes(JSONSerializer())
        self.history.setdefault(role, []).append(md)
        self.files.setdefault(role, {})[md.signed.version] = data
        if role == "snapshot":
            self._snapshot_info = self._meta(md.signed.version, data)
        elif role not in ("root", "timestamp"):
            self._targets_infos[f"{role}.json"] = self._meta(md.signed.version, data)

    def _meta(self, version: int, data: bytes) -> MetaFile:
        if self.meta_hashes:
            return MetaFile.from_data(version, data, ["sha256"])
        return MetaFile(version)

    @property
    def targets_infos(self) -> dict[str, MetaFile]:
        return self._targets_infos

    @property
    def snapshot_info(self) -> MetaFile:
        return self._snapshot_info

    # --- helpers -----------------------------------------------------------------

    def commit(self) -> None:
        self.do_snapshot()
        self.do_timestamp()

    def add_target(self, role: str, path: str, data: bytes = CONTENT) -> None:
        with self.edit_targets(role) as t:
            t.targets[path] = TargetFile.from_data(path, data, ["sha256"])

    def delegate(
        self,
        parent: str,
        name: str,
        *,
        paths: list[str] | None = None,
        prefixes: list[str] | None = None,
        terminating: bool = False,
        signers: list[Signer] | None = None,
        threshold: int = 1,
    ) -> None:
        signers = signers if signers is not None else [self.keys.new()]
        self.signers[name] = signers
        with self.edit_targets(parent) as t:
            if t.delegations is None:
                t.delegations = Delegations(keys={}, roles={})
            assert t.delegations.roles is not None
            t.delegations.roles[name] = DelegatedRole(
                name, [], threshold, terminating, paths, prefixes if paths is None else None
            )
            for s in signers:
                t.add_key(s.public_key, name)
        with self.edit_targets(name):
            pass

    def hash_bins(self, parent: str, prefix: str, bit_length: int) -> SuccinctRoles:
        signer = self.keys.new()
        succinct = SuccinctRoles([], 1, bit_length, prefix)
        with self.edit_targets(parent) as t:
            t.delegations = Delegations(keys={}, succinct_roles=succinct)
            t.add_key(signer.public_key)
        for name in succinct.get_roles():
            self.signers[name] = [signer]
            with self.edit_targets(name):
                pass
        return succinct

    def rotate_root(
        self, *, sign_old: bool = True, sign_new: bool = True, new: Signer | None = None
    ) -> None:
        """A new root key: the new root is signed by the old key and/or the new one."""
        old = self.signers["root"]
        new = new if new is not None else self.keys.new()
        with self.edit_root() as root:
            for s in old:
                root.revoke_key(s.public_key.keyid, "root")
            root.add_key(new.public_key, "root")
            self.signers["root"] = [new] if sign_new else []
            self.extra_signers["root"] = list(old) if sign_old else []
        self.signers["root"] = [new]

    def publish(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for role, versions in self.files.items():
            name = quote(role, "")
            for version, data in versions.items():
                (folder / f"{version}.{name}.json").write_bytes(data)
            (folder / f"{name}.json").write_bytes(versions[max(versions)])
        return folder

    def latest(self, role: str) -> bytes:
        versions = self.files[role]
        return versions[max(versions)]


def basic(**kw: Any) -> Repo:
    repo = Repo(**kw)
    repo.add_target("targets", "file.txt")
    repo.commit()
    return repo


def with_delegations(**kw: Any) -> Repo:
    """targets -> alice (alice/*) -> bob (alice/bob/*); targets -> carol (*)."""
    repo = Repo(**kw)
    repo.add_target("targets", "file.txt")
    repo.delegate("targets", "alice", paths=["alice/*", "alice/*/*"])
    repo.delegate("alice", "bob", paths=["alice/bob/*"])
    repo.delegate("targets", "carol", paths=["*"])
    repo.add_target("alice", "alice/a.txt", b"a")
    repo.add_target("bob", "alice/bob/b.txt", b"b")
    repo.add_target("carol", "carol.txt", b"c")
    repo.commit()
    return repo


def state_options(tmp_path: Path, pins: Path | None = None, no_tofu: bool = False) -> Options:
    return Options(
        pins=load_pins(pins) if pins is not None else None,
        state=StateStore(tmp_path / "state"),
        no_tofu=no_tofu,
    )


def verify_one(
    folder: Path,
    tmp_path: Path,
    target: str = "file.txt",
    **kw: Any,
) -> ImageResult:
    opts = kw.pop("options", None) or state_options(tmp_path)
    results = verify_targets(str(folder), [target], kw.pop("at", AT), opts, **kw)
    assert len(results) == 1
    return results[0]


def code_of(folder: Path, tmp_path: Path, target: str = "file.txt", **kw: Any) -> str | None:
    """The error code of verifying ``target`` (usage errors are raised: their code too)."""
    try:
        result = verify_one(folder, tmp_path, target, **kw)
    except TrustcheckError as e:
        return e.code
    return result.error.code if result.error is not None else None


def plain_python_tuf_accepts(folder: Path, tmp_path: Path, target: str = "file.txt") -> bool:
    """python-tuf's Updater alone, bootstrapped from the repository's root.json."""
    from tuf.ngclient import Updater

    from trustcheck.tuf.fetchers import _local_fetcher, _Recorder
    from trustcheck.tuf.hooks import _set_reference_time

    base_url = folder.resolve().as_uri() + "/"
    metadata_dir = tmp_path / "plain-python-tuf"
    metadata_dir.mkdir()
    updater = Updater(
        str(metadata_dir),
        base_url,
        fetcher=_local_fetcher(folder.resolve(), base_url, _Recorder(base_url)),
        bootstrap=(folder / "root.json").read_bytes(),
    )
    _set_reference_time(updater, AT)  # python-tuf's non-public part, as trustcheck sets it
    return updater.get_targetinfo(target) is not None


def sign_as(md: Metadata[Any], signers: list[Signer]) -> bytes:
    md.signatures.clear()
    for s in signers:
        md.sign(s, append=True)
    return md.to_bytes(JSONSerializer())


def twin_keyid_signer(signer: CryptoSigner) -> CryptoSigner:
    """The same private key under a second key ID that is still the hash of its key
    (securesystemslib's form plus an extra field, hashed in full as TUF 0.x did)."""
    pub = signer.public_key
    extra = {"x-twin": "1"}
    full = {"keytype": pub.keytype, "scheme": pub.scheme, "keyval": pub.keyval, **extra}
    keyid = hashlib.sha256(encode_canonical(full).encode()).hexdigest()
    twin_pub = SSlibKey(keyid, pub.keytype, pub.scheme, pub.keyval, dict(extra))
    return CryptoSigner(signer._private_key, twin_pub)


def write_pins(tmp_path: Path, folder: Path, body: str) -> Path:
    path = tmp_path / "pins.toml"
    name = json.dumps(str(folder.resolve()))
    path.write_text(f"version = 1\n[pins.{name}]\n{body}\n")
    return path


def spki_of(signer: CryptoSigner) -> str:
    from trustcheck.tuf.keys import _spki_der

    der = _spki_der(signer.public_key)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


# ----------------------------------------------------------------------------- good repositories


@pytest.mark.parametrize("consistent", [True, False], ids=["consistent", "plain"])
def test_basic_repository_verifies(tmp_path: Path, consistent: bool) -> None:
    folder = basic(consistent=consistent).publish(tmp_path / "repo")
    r = verify_one(folder, tmp_path)
    assert r.trusted, r.error
    assert (r.digest, r.length, r.role, r.signers) == (
        CONTENT_DIGEST,
        len(CONTENT),
        "targets",
        ["targets"],
    )
    assert r.gun == str(folder.resolve())
    assert r.tag is None
    # second run: from the state dir (root trusted before), same answer
    assert verify_one(folder, tmp_path).digest == CONTENT_DIGEST


def test_delegations_name_the_role_and_the_chain(tmp_path: Path) -> None:
    folder = with_delegations().publish(tmp_path / "repo")
    opts = state_options(tmp_path)
    paths = ["alice/a.txt", "alice/bob/b.txt", "carol.txt", "file.txt"]
    results = verify_targets(str(folder), paths, AT, opts)
    got = {r.image: (r.trusted, r.role, r.signers) for r in results}
    assert got == {
        "alice/a.txt": (True, "alice", ["targets", "alice"]),
        "alice/bob/b.txt": (True, "bob", ["targets", "alice", "bob"]),
        "carol.txt": (True, "carol", ["targets", "carol"]),
        "file.txt": (True, "targets", ["targets"]),
    }
    assert results[1].digest == "sha256:" + hashlib.sha256(b"b").hexdigest()


def test_preorder_walk_prefers_the_first_delegation(tmp_path: Path) -> None:
    repo = Repo()
    repo.delegate("targets", "first", paths=["*"])
    repo.delegate("targets", "second", paths=["*"])
    repo.add_target("first", "x.txt", b"first")
    repo.add_target("second", "x.txt", b"second")
    repo.commit()
    folder = repo.publish(tmp_path / "repo")
    r = verify_one(folder, tmp_path, "x.txt")
    assert (r.role, r.digest) == ("first", "sha256:" + hashlib.sha256(b"first").hexdigest())


def test_terminating_delegation_stops_the_walk_but_serves_its_own(tmp_path: Path) -> None:
    repo = Repo()
    repo.delegate("targets", "stop", paths=["*"], terminating=True)
    repo.delegate("targets", "later", paths=["*"])
    repo.add_target("stop", "mine.txt", b"m")
    repo.add_target("later", "theirs.txt", b"t")
    repo.commit()
    folder = repo.publish(tmp_path / "repo")
    assert verify_one(folder, tmp_path, "mine.txt").role == "stop"
    assert code_of(folder, tmp_path, "theirs.txt") == "target-not-found"


def test_path_hash_prefix_delegation(tmp_path: Path) -> None:
    path = "hashed/file.bin"
    prefix = hashlib.sha256(path.encode()).hexdigest()[:2]
    repo = Repo()
    repo.delegate("targets", "by-hash", prefixes=[prefix])
    repo.add_target("by-hash", path, b"h")
    repo.commit()
    folder = repo.publish(tmp_path / "repo")
    assert verify_one(folder, tmp_path, path).role == "by-hash"


def test_hash_bin_delegation_finds_each_target_in_its_bin(tmp_path: Path) -> None:
    repo = Repo()
    succinct = repo.hash_bins("targets", "bins", 4)
    paths = [f"pkg/{i}.tgz" for i in range(8)]
    for p in paths:
        repo.add_target(succinct.get_role_for_target(p), p, p.encode())
    repo.commit()
    folder = repo.publish(tmp_path / "repo")
    results = verify_targets(str(folder), paths, AT, state_options(tmp_path))
    assert all(r.trusted for r in results), [r.error for r in results]
    assert [r.role for r in results] == [succinct.get_role_for_target(p) for p in paths]
    assert results[0].signers == ["targets", succinct.get_role_for_target(paths[0])]


def test_root_rotations_are_walked_from_the_pinned_first_root(tmp_path: Path) -> None:
    repo = basic()
    first_root = repo.files["root"][1]
    repo.rotate_root()
    repo.rotate_root()
    with repo.edit_timestamp():  # the new root's keys sign from now on
        pass
    folder = repo.publish(tmp_path / "repo")
    assert sorted(repo.files["root"]) == [1, 2, 3]
    r = verify_one(folder, tmp_path, root=first_root)
    assert r.trusted, r.error
    current = tmp_path / "state" / "tuf" / "v1"
    (gen,) = [p for p in current.iterdir() if p.is_dir()]
    trusted = json.loads((gen / "current" / "root.json").read_bytes())
    assert trusted["signed"]["version"] == 3


def test_rotation_seen_by_a_later_run_through_the_state_dir(tmp_path: Path) -> None:
    repo = basic()
    folder = repo.publish(tmp_path / "repo")
    assert verify_one(folder, tmp_path).trusted
    repo.rotate_root()
    repo.add_target("targets", "new.txt", b"n")
    repo.commit()
    repo.publish(folder)
    r = verify_one(folder, tmp_path, "new.txt")
    assert (r.trusted, r.role) == (True, "targets")


def test_repository_in_a_metadata_subfolder_with_root_history(tmp_path: Path) -> None:
    """A TUF-on-CI / sigstore git checkout: metadata/root.json, metadata/root_history/N.root.json,
    unversioned snapshot and targets although consistent_snapshot is true."""
    repo = basic()
    repo.rotate_root()
    repo.commit()
    meta = tmp_path / "checkout" / "metadata"
    (meta / "root_history").mkdir(parents=True)
    for role in ("timestamp", "snapshot", "targets"):
        (meta / f"{role}.json").write_bytes(repo.latest(role))
    (meta / "root.json").write_bytes(repo.latest("root"))
    for v, data in repo.files["root"].items():
        (meta / "root_history" / f"{v}.root.json").write_bytes(data)
    r = verify_one(tmp_path / "checkout", tmp_path, root=repo.files["root"][1])
    assert r.trusted, r.error
    assert r.gun == str((tmp_path / "checkout").resolve())


def test_ecdsa_and_rsa_keys_verify_and_have_an_spki_identity(tmp_path: Path) -> None:
    repo = basic()
    ecdsa = CryptoSigner.generate_ecdsa()
    rsa = CryptoSigner.generate_rsa(size=2048)
    repo.delegate("targets", "mixed", paths=["m/*"], signers=[ecdsa, rsa], threshold=2)
    repo.add_target("mixed", "m/x", b"x")
    repo.commit()
    folder = repo.publish(tmp_path / "repo")
    r = verify_one(folder, tmp_path, "m/x")
    assert (r.trusted, r.role) == (True, "mixed")
    assert keyid_is_bound(ecdsa.public_key) and keyid_is_bound(rsa.public_key)
    assert public_key_identity(ecdsa.public_key).startswith("spki:")
    assert public_key_identity(ecdsa.public_key) != public_key_identity(rsa.public_key)


def test_legacy_keyid_with_keyid_hash_algorithms_is_bound() -> None:
    signer = _key_pool()[0]
    pub = signer.public_key
    legacy = {"keyid_hash_algorithms": ["sha256", "sha512"]}
    full = {"keytype": pub.keytype, "scheme": pub.scheme, "keyval": pub.keyval, **legacy}
    keyid = hashlib.sha256(encode_canonical(full).encode()).hexdigest()
    assert keyid_is_bound(SSlibKey(keyid, pub.keytype, pub.scheme, pub.keyval, legacy))
    assert not keyid_is_bound(SSlibKey("ab" * 32, pub.keytype, pub.scheme, pub.keyval, legacy))
    # the same public key under both key IDs is one key
    twin = SSlibKey(keyid, pub.keytype, pub.scheme, pub.keyval, legacy)
    assert public_key_identity(twin) == public_key_identity(pub)


def test_validation_time_decides_expiry(tmp_path: Path) -> None:
    folder = basic().publish(tmp_path / "repo")
    assert verify_one(folder, tmp_path, at=EXPIRES - timedelta(seconds=1)).trusted
    assert code_of(folder, tmp_path, at=EXPIRES) == "metadata-expired"


def _trusted_version(tmp_path: Path, role: str) -> int | None:
    (folder,) = [p for p in (tmp_path / "state" / "tuf" / "v1").iterdir() if p.is_dir()]
    path = folder / "current" / f"{role}.json"
    if not path.exists():
        return None
    version: int = json.loads(path.read_bytes())["signed"]["version"]
    return version


def test_each_role_is_persisted_as_soon_as_it_verifies(tmp_path: Path) -> None:
    """Spec §5: a good root update followed by a bad timestamp leaves root v2 trusted
    (and the old timestamp); python-tuf's client state is the same."""
    repo = basic()
    folder = repo.publish(tmp_path / "repo")
    assert verify_one(folder, tmp_path).trusted
    ts = _trusted_version(tmp_path, "timestamp")
    assert _trusted_version(tmp_path, "root") == 1 and ts is not None
    repo.rotate_root()
    repo.commit()
    repo.publish(folder)
    (folder / "timestamp.json").write_bytes(b"{")
    assert code_of(folder, tmp_path) == "malformed-json"
    assert _trusted_version(tmp_path, "root") == 2
    assert _trusted_version(tmp_path, "timestamp") == ts
    (folder / "timestamp.json").write_bytes(repo.latest("timestamp"))
    assert verify_one(folder, tmp_path).trusted
    served = json.loads(repo.latest("timestamp"))["signed"]["version"]
    assert _trusted_version(tmp_path, "timestamp") == served


def test_a_role_trustcheck_refuses_is_never_persisted(tmp_path: Path) -> None:
    """python-tuf accepts a timestamp signed twice by one key under two key IDs; trustcheck
    refuses it before python-tuf writes it, so the trusted timestamp stays v1."""
    repo = basic()
    folder = repo.publish(tmp_path / "repo")
    assert verify_one(folder, tmp_path).trusted
    ts = _trusted_version(tmp_path, "timestamp")
    signer = repo.signers["timestamp"][0]
    twin = twin_keyid_signer(signer)
    with repo.edit_root() as root:
        root.add_key(twin.public_key, "timestamp")
        root.roles["timestamp"].threshold = 2
    repo.signers["timestamp"] = [signer, twin]
    repo.commit()
    repo.publish(folder)
    assert plain_python_tuf_accepts(folder, tmp_path)
    assert code_of(folder, tmp_path) == "threshold-not-met"
    assert _trusted_version(tmp_path, "root") == 2  # the root itself is fine
    assert _trusted_version(tmp_path, "timestamp") == ts
    assert json.loads(repo.latest("timestamp"))["signed"]["version"] == ts + 1


# ----------------------------------------------------------------------------- attacks


@dataclass(frozen=True)
class Attack:
    """One attack on a TUF 1.0 repository and the code trustcheck must answer with.

    ``build`` makes the genuine repository; with ``seed`` it is verified once
    (the state dir then holds what was trusted); ``attack`` changes the
    repository (the Repo and its published folder) and may return extra
    keyword arguments for :func:`verify_targets`.
    """

    name: str
    code: str
    attack: Callable[[Repo, Path, Path], dict[str, Any] | None]
    build: Callable[[], Repo] = basic
    seed: bool = False
    target: str = "file.txt"
    python_tuf_accepts: bool = False  # a deliberate difference: python-tuf alone says yes


def _expire(role: str) -> Callable[[Repo, Path, Path], None]:
    def attack(repo: Repo, folder: Path, tmp: Path) -> None:
        repo.expiry[role] = PAST
        if role == "root":
            with repo.edit_root():
                pass
        elif role == "timestamp":
            repo.do_timestamp(force=True)
        elif role == "snapshot":
            repo.do_snapshot(force=True)
            repo.do_timestamp()
        else:
            with repo.edit_targets(role):
                pass
            repo.commit()
        repo.publish(folder)

    return attack


def _replace(name: str, data: Callable[[Repo], bytes]) -> Callable[[Repo, Path, Path], None]:
    def attack(repo: Repo, folder: Path, tmp: Path) -> None:
        (folder / name).write_bytes(data(repo))

    return attack


def _old_timestamp(repo: Repo, folder: Path, tmp: Path) -> None:
    (folder / "timestamp.json").write_bytes(repo.files["timestamp"][1])


def _timestamp_naming_old_snapshot(repo: Repo, folder: Path, tmp: Path) -> None:
    with repo.edit_timestamp() as ts:
        ts.snapshot_meta = MetaFile(1)
    repo.publish(folder)


def _snapshot_naming_old_targets(repo: Repo, folder: Path, tmp: Path) -> None:
    with repo.edit_snapshot() as snap:
        snap.meta["targets.json"] = MetaFile(1)
    repo.do_timestamp()
    repo.publish(folder)


def _snapshot_dropping_a_role(repo: Repo, folder: Path, tmp: Path) -> None:
    with repo.edit_snapshot() as snap:
        del snap.meta["alice.json"]
    repo.do_timestamp()
    repo.publish(folder)


def _snapshot_without_delegated_role(repo: Repo, folder: Path, tmp: Path) -> None:
    _snapshot_dropping_a_role(repo, folder, tmp)


def _old_targets_under_new_snapshot(repo: Repo, folder: Path, tmp: Path) -> None:
    (folder / "targets.json").write_bytes(repo.files["targets"][1])


def _newer_targets_than_snapshot(repo: Repo, folder: Path, tmp: Path) -> None:
    repo.add_target("targets", "later.txt", b"later")  # targets v3, snapshot still names v2
    (folder / "targets.json").write_bytes(repo.latest("targets"))


def _pad(role_file: str, extra: int) -> Callable[[Repo, Path, Path], None]:
    def attack(repo: Repo, folder: Path, tmp: Path) -> None:
        path = folder / role_file
        path.write_bytes(path.read_bytes() + b" " * extra)

    return attack


def _forged_root(*, sign_old: bool, sign_new: bool) -> Callable[[Repo, Path, Path], None]:
    def attack(repo: Repo, folder: Path, tmp: Path) -> None:
        repo.rotate_root(sign_old=sign_old, sign_new=sign_new)
        repo.publish(folder)

    return attack


def _root_claiming_a_skipped_version(repo: Repo, folder: Path, tmp: Path) -> None:
    md = Metadata[Root].from_bytes(repo.latest("root"))
    md.signed.version = 3
    (folder / "2.root.json").write_bytes(sign_as(md, repo.signers["root"]))


def _tampered_bootstrap_root(repo: Repo, folder: Path, tmp: Path) -> dict[str, Any]:
    doc = json.loads(repo.latest("root"))
    doc["signed"]["expires"] = "2099-01-01T00:00:00Z"
    return {"root": json.dumps(doc).encode()}


def _targets_modified_after_signing(repo: Repo, folder: Path, tmp: Path) -> None:
    doc = json.loads((folder / "2.targets.json").read_bytes())
    doc["signed"]["targets"]["file.txt"]["hashes"]["sha256"] = "00" * 32
    (folder / "2.targets.json").write_bytes(json.dumps(doc).encode())


def _delegation_signed_by_stranger(repo: Repo, folder: Path, tmp: Path) -> None:
    md = Metadata[Targets].from_bytes(repo.latest("alice"))
    v = md.signed.version
    (folder / f"{v}.alice.json").write_bytes(sign_as(md, [repo.keys.new()]))


def _inflated_top_level_targets(repo: Repo, folder: Path, tmp: Path) -> None:
    """Targets threshold 2 met by one key listed under two (bound) key IDs."""
    signer = repo.signers["targets"][0]
    twin = twin_keyid_signer(signer)
    with repo.edit_root() as root:
        root.add_key(twin.public_key, "targets")
        root.roles["targets"].threshold = 2
    repo.signers["targets"] = [signer, twin]
    with repo.edit_targets():
        pass
    repo.commit()
    repo.publish(folder)


def _inflated_delegation(repo: Repo, folder: Path, tmp: Path) -> None:
    signer = repo.keys.new()
    repo.delegate(
        "targets", "twins", paths=["t/*"], signers=[signer, twin_keyid_signer(signer)], threshold=2
    )
    repo.add_target("twins", "t/x", b"x")
    repo.commit()
    repo.publish(folder)


def _arbitrary_timestamp_keyid(repo: Repo, folder: Path, tmp: Path) -> None:
    signer = repo.signers["timestamp"][0]
    pub = signer.public_key
    odd = CryptoSigner(
        signer._private_key, SSlibKey("ff" * 32, pub.keytype, pub.scheme, pub.keyval)
    )
    with repo.edit_root() as root:
        root.revoke_key(pub.keyid, "timestamp")
        root.add_key(odd.public_key, "timestamp")
    repo.signers["timestamp"] = [odd]
    repo.do_timestamp(force=True)
    repo.publish(folder)


def _target_outside_delegated_paths(repo: Repo, folder: Path, tmp: Path) -> None:
    repo.add_target("alice", "bob/evil.txt", b"evil")
    repo.commit()
    repo.publish(folder)


def _target_behind_terminating_delegation(repo: Repo, folder: Path, tmp: Path) -> None:
    repo.delegate("targets", "aaa-stop", paths=["*"], terminating=True)
    # rebuild the order: the terminating role must come before carol
    with repo.edit_targets() as t:
        assert t.delegations is not None and t.delegations.roles is not None
        roles = t.delegations.roles
        t.delegations.roles = {"aaa-stop": roles.pop("aaa-stop"), **roles}
    repo.commit()
    repo.publish(folder)


def _target_in_the_wrong_bin(repo: Repo, folder: Path, tmp: Path) -> None:
    path = "pkg/misplaced.tgz"
    right = SuccinctRoles([], 1, 4, "bins").get_role_for_target(path)
    wrong = "bins-0" if right != "bins-0" else "bins-1"
    repo.add_target(wrong, path, b"m")
    repo.commit()
    repo.publish(folder)


def _hash_bins() -> Repo:
    repo = basic()
    repo.hash_bins("targets", "bins", 4)
    repo.commit()
    return repo


def _symlink_out(repo: Repo, folder: Path, tmp: Path) -> None:
    outside = tmp / "outside.json"
    outside.write_bytes(repo.latest("timestamp"))
    (folder / "timestamp.json").unlink()
    os.symlink(outside, folder / "timestamp.json")


def _duplicate_field(repo: Repo, folder: Path, tmp: Path) -> None:
    text = repo.latest("timestamp").decode()
    text = text.replace('"_type": "timestamp"', '"_type": "timestamp", "_type": "timestamp"', 1)
    (folder / "timestamp.json").write_text(text)


def _float_in_signed(repo: Repo, folder: Path, tmp: Path) -> None:
    md = Metadata[Timestamp].from_bytes(repo.latest("timestamp"))
    doc = md.to_dict()
    doc["signed"]["x-rate"] = 1.5
    (folder / "timestamp.json").write_bytes(json.dumps(doc).encode())


def _pin(body: Callable[[Repo], str], **extra: Any) -> Callable[[Repo, Path, Path], dict[str, Any]]:
    def attack(repo: Repo, folder: Path, tmp: Path) -> dict[str, Any]:
        pins = write_pins(tmp, folder, body(repo))
        return {"options": state_options(tmp, pins, **extra)}

    return attack


def _no_tofu(repo: Repo, folder: Path, tmp: Path) -> dict[str, Any]:
    return {"options": state_options(tmp, no_tofu=True)}


def _notary_root(repo: Repo, folder: Path, tmp: Path) -> dict[str, Any]:
    notary = COMMITTED_FIXTURES / "trust" / "tuf" / "localhost" / "basic" / "metadata"
    return {"root": (notary / "root.json").read_bytes()}


ZERO = "0" * 64

ATTACKS = [
    Attack("freeze-expired-timestamp-is-refused", "metadata-expired", _expire("timestamp")),
    Attack("expired-snapshot-is-refused", "metadata-expired", _expire("snapshot")),
    Attack("expired-targets-is-refused", "metadata-expired", _expire("targets")),
    Attack("expired-final-root-is-refused", "metadata-expired", _expire("root")),
    Attack(
        "expired-delegation-on-the-path-is-refused",
        "metadata-expired",
        _expire("alice"),
        build=with_delegations,
        target="alice/a.txt",
    ),
    Attack("timestamp-rollback-after-a-newer-one", "version-rollback", _old_timestamp, seed=True),
    Attack(
        "timestamp-naming-an-older-snapshot",
        "version-rollback",
        _timestamp_naming_old_snapshot,
        seed=True,
    ),
    Attack(
        "snapshot-naming-an-older-targets",
        "version-rollback",
        _snapshot_naming_old_targets,
        seed=True,
    ),
    Attack(
        "snapshot-dropping-a-role-trusted-before",
        "version-rollback",
        _snapshot_dropping_a_role,
        build=with_delegations,
        seed=True,
    ),
    Attack(
        "mix-and-match-old-targets-under-new-snapshot",
        "version-rollback",
        _old_targets_under_new_snapshot,
        build=lambda: basic(consistent=False),
    ),
    Attack(
        "mix-and-match-old-targets-caught-by-snapshot-hashes",
        "hash-mismatch",
        _old_targets_under_new_snapshot,
        build=lambda: basic(consistent=False, meta_hashes=True),
    ),
    Attack(
        "targets-newer-than-the-snapshot-names",
        "version-mismatch",
        _newer_targets_than_snapshot,
        build=lambda: basic(consistent=False),
    ),
    Attack(
        "endless-timestamp-past-the-client-limit", "file-too-large", _pad("timestamp.json", 20000)
    ),
    Attack(
        "endless-snapshot-past-its-length-in-timestamp",
        "length-exceeded",
        _pad("2.snapshot.json", 10),
        build=lambda: basic(meta_hashes=True),
    ),
    Attack(
        "endless-targets-past-its-length-in-snapshot",
        "length-exceeded",
        _pad("2.targets.json", 10),
        build=lambda: basic(meta_hashes=True),
    ),
    Attack(
        "new-root-not-signed-by-the-trusted-root",
        "root-rotation-invalid",
        _forged_root(sign_old=False, sign_new=True),
        seed=True,
    ),
    Attack(
        "new-root-not-signed-by-its-own-keys",
        "root-rotation-invalid",
        _forged_root(sign_old=True, sign_new=False),
        seed=True,
    ),
    Attack(
        "root-file-claiming-a-skipped-version",
        "root-rotation-invalid",
        _root_claiming_a_skipped_version,
        seed=True,
    ),
    Attack("bootstrap-root-altered-after-signing", "threshold-not-met", _tampered_bootstrap_root),
    Attack("targets-modified-after-signing", "threshold-not-met", _targets_modified_after_signing),
    Attack(
        "delegation-signed-by-a-key-it-does-not-list",
        "threshold-not-met",
        _delegation_signed_by_stranger,
        build=with_delegations,
        target="alice/a.txt",
    ),
    Attack(
        "one-key-under-two-key-ids-meets-targets-threshold-2",
        "threshold-not-met",
        _inflated_top_level_targets,
        python_tuf_accepts=True,
    ),
    Attack(
        "one-key-under-two-key-ids-meets-delegation-threshold-2",
        "threshold-not-met",
        _inflated_delegation,
        target="t/x",
        python_tuf_accepts=True,
    ),
    Attack(
        "key-id-not-the-hash-of-its-key",
        "invalid-key-id",
        _arbitrary_timestamp_keyid,
        python_tuf_accepts=True,
    ),
    Attack(
        "target-outside-the-delegated-paths",
        "target-not-found",
        _target_outside_delegated_paths,
        build=with_delegations,
        target="bob/evil.txt",
    ),
    Attack(
        "target-behind-a-terminating-delegation",
        "target-not-found",
        _target_behind_terminating_delegation,
        build=with_delegations,
        target="carol.txt",
    ),
    Attack(
        "target-in-the-wrong-hash-bin",
        "target-not-found",
        _target_in_the_wrong_bin,
        build=_hash_bins,
        target="pkg/misplaced.tgz",
    ),
    Attack(
        "delegated-role-missing-from-snapshot",
        "role-missing",
        _snapshot_without_delegated_role,
        build=with_delegations,
        target="alice/a.txt",
    ),
    Attack(
        "targets-file-put-in-place-of-snapshot",
        "wrong-type",
        _replace("2.snapshot.json", lambda r: r.latest("targets")),
    ),
    Attack("truncated-timestamp", "malformed-json", _replace("timestamp.json", lambda r: b'{"s')),
    Attack(
        "timestamp-missing",
        "role-missing",
        lambda r, f, t: (f / "timestamp.json").unlink(),
    ),
    Attack("timestamp-symlink-leaving-the-repository", "unsafe-path", _symlink_out),
    Attack("field-written-twice", "invalid-structure", _duplicate_field, python_tuf_accepts=True),
    Attack("non-integral-number-in-signed-data", "non-canonical-number", _float_in_signed),
    Attack(
        "root-replaced-under-a-root-pin",
        "pin-mismatch",
        _pin(lambda r: f'root = ["spki-sha256:{ZERO}"]'),
    ),
    Attack(
        "signer-pin-on-a-delegation-with-other-keys",
        "signer-pin-mismatch",
        _pin(lambda r: f'signers = {{ alice = ["spki-sha256:{ZERO}"] }}'),
        build=with_delegations,
        target="alice/a.txt",
    ),
    Attack("no-pin-and-no-trust-on-first-use", "no-pin", _no_tofu),
    Attack("notary-root-given-as-tuf-root", "invalid-argument", _notary_root),
]


@pytest.mark.parametrize("case", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack(case: Attack, tmp_path: Path) -> None:
    repo = case.build()
    folder = repo.publish(tmp_path / "repo")
    if case.seed:
        seeded = verify_one(folder, tmp_path)
        assert seeded.trusted, seeded.error
    extra = case.attack(repo, folder, tmp_path) or {}
    if case.python_tuf_accepts:
        assert plain_python_tuf_accepts(folder, tmp_path, case.target)
    assert code_of(folder, tmp_path, case.target, **extra) == case.code


def test_attack_names_are_unique_and_cover_twenty_cases() -> None:
    assert len({a.name for a in ATTACKS}) == len(ATTACKS) >= 20


def test_every_attack_message_is_one_actionable_line(tmp_path: Path) -> None:
    repo = basic()
    folder = repo.publish(tmp_path / "repo")
    _expire("timestamp")(repo, folder, tmp_path)
    r = verify_one(folder, tmp_path)
    assert r.error is not None
    assert "\n" not in r.error.message and "Traceback" not in r.error.message
    assert r.error.role == "timestamp"
    assert "--at" in r.error.message


# ----------------------------------------------------------------------------- pins and keys


def test_root_pins_by_spki_and_by_keyid_are_enforced(tmp_path: Path) -> None:
    repo = basic()
    folder = repo.publish(tmp_path / "repo")
    root_signer = repo.signers["root"][0]
    assert isinstance(root_signer, CryptoSigner)
    for ident in (f"spki-sha256:{spki_of(root_signer)}", f"keyid:{root_signer.public_key.keyid}"):
        pins = write_pins(tmp_path, folder, f'root = ["{ident}"]')
        r = verify_one(folder, tmp_path, options=state_options(tmp_path, pins, no_tofu=True))
        assert r.trusted, (ident, r.error)
    # a rotation to a key the pin does not name is refused, also with the old root in state
    repo.rotate_root()
    repo.publish(folder)
    assert code_of(folder, tmp_path, options=state_options(tmp_path, pins)) == "pin-mismatch"


def test_a_root_pin_must_cover_the_root_threshold(tmp_path: Path) -> None:
    """As notary's rule: the root threshold of signatures must come from pinned keys."""
    repo = basic()
    first, second = repo.signers["root"][0], repo.keys.new()
    assert isinstance(first, CryptoSigner)
    with repo.edit_root() as root:  # v2: two root keys, threshold 2, signed by both
        root.add_key(second.public_key, "root")
        root.roles["root"].threshold = 2
        repo.signers["root"] = [first, second]
    folder = repo.publish(tmp_path / "repo")
    one = f'"spki-sha256:{spki_of(first)}"'
    both = f'{one}, "keyid:{second.public_key.keyid}"'
    pins = write_pins(tmp_path, folder, f"root = [{one}]")
    r = verify_one(folder, tmp_path, options=state_options(tmp_path, pins))
    assert r.error is not None and r.error.code == "pin-mismatch"
    assert "pin at least 2 of its root keys" in r.error.message
    pins = write_pins(tmp_path, folder, f"root = [{both}]")
    assert verify_one(folder, tmp_path, options=state_options(tmp_path, pins)).trusted


def test_signer_pin_lets_only_pinned_keys_count(tmp_path: Path) -> None:
    repo = with_delegations()
    folder = repo.publish(tmp_path / "repo")
    alice = repo.signers["alice"][0]
    assert isinstance(alice, CryptoSigner)
    pins = write_pins(tmp_path, folder, f'signers = {{ alice = ["spki-sha256:{spki_of(alice)}"] }}')
    r = verify_one(folder, tmp_path, "alice/a.txt", options=state_options(tmp_path, pins))
    assert (r.trusted, r.role) == (True, "alice")


def test_certificate_identifiers_and_ca_pins_do_not_apply_to_tuf(tmp_path: Path) -> None:
    folder = basic().publish(tmp_path / "repo")
    for body in (f'root = ["cert-sha256:{ZERO}"]', 'ca = "ca.pem"'):
        pins = write_pins(tmp_path, folder, body)
        with pytest.raises(UsageError) as e:
            verify_one(folder, tmp_path, options=state_options(tmp_path, pins))
        assert e.value.code == "pin-file-invalid"


def test_arbitrary_keyids_are_accepted_only_on_request_and_warned(tmp_path: Path) -> None:
    repo = basic()
    folder = repo.publish(tmp_path / "repo")
    _arbitrary_timestamp_keyid(repo, folder, tmp_path)
    r = verify_one(folder, tmp_path, allow_arbitrary_keyids=True)
    assert r.trusted, r.error
    assert any("is not a hash of its key" in w for w in r.warnings)


def test_a_keyid_pin_never_matches_a_key_id_not_bound_to_its_key(tmp_path: Path) -> None:
    """Trust on first use plus a keyid: pin: a forged root could list any key under the pinned
    key ID; only a key ID that is the hash of its key can satisfy a keyid: pin."""
    repo = basic()
    genuine = _key_pool()[-1]
    pub = genuine.public_key
    claimed = "ee" * 32
    unbound = CryptoSigner(
        genuine._private_key, SSlibKey(claimed, pub.keytype, pub.scheme, pub.keyval)
    )
    repo.rotate_root(new=unbound)
    repo.commit()
    folder = repo.publish(tmp_path / "repo")
    pins = write_pins(tmp_path, folder, f'root = ["keyid:{claimed}"]')
    opts = state_options(tmp_path, pins)
    assert code_of(folder, tmp_path, options=opts, allow_arbitrary_keyids=True) == "pin-mismatch"
    pins = write_pins(tmp_path, folder, f'root = ["spki-sha256:{spki_of(genuine)}"]')
    opts = state_options(tmp_path, pins)
    assert verify_one(folder, tmp_path, options=opts, allow_arbitrary_keyids=True).trusted


def test_unbound_key_ids_matter_only_for_keys_a_role_is_counted_with(tmp_path: Path) -> None:
    """sigstore's root v11 lists its online key under a key ID that is not its hash; walking
    past that root only uses its root keys, so strict key-ID checking still accepts the chain."""
    repo = basic()
    first_root = repo.files["root"][1]
    signer = repo.signers["timestamp"][0]
    pub = signer.public_key
    with repo.edit_root() as root:  # v2: the timestamp key under a made-up key ID ...
        root.revoke_key(pub.keyid, "timestamp")
        root.add_key(SSlibKey("dd" * 32, pub.keytype, pub.scheme, pub.keyval), "timestamp")
    with repo.edit_root() as root:  # v3: ... and back under its own
        root.revoke_key("dd" * 32, "timestamp")
        root.add_key(pub, "timestamp")
    repo.do_timestamp(force=True)
    folder = repo.publish(tmp_path / "repo")
    r = verify_one(folder, tmp_path, root=first_root)
    assert r.trusted, r.error
    assert r.warnings == []


def test_thumbprint_and_inspect_report_every_key(tmp_path: Path) -> None:
    repo = with_delegations()
    folder = repo.publish(tmp_path / "repo")
    reports = keys_of_repository(str(folder), AT, state_options(tmp_path))
    roles = [r.role for r in reports]
    assert roles[:4] == ["root", "targets", "snapshot", "timestamp"]
    assert {"alice", "bob", "carol"} <= set(roles)
    alice = repo.signers["alice"][0]
    assert isinstance(alice, CryptoSigner)
    (mine,) = [r for r in reports if r.role == "alice"]
    assert (mine.key_id, mine.spki_sha256, mine.key_type) == (
        alice.public_key.keyid,
        spki_of(alice),
        "ed25519",
    )
    report = inspect_repository(str(folder), AT, state_options(tmp_path))
    doc = report.to_json()
    assert [r["name"] for r in doc["roles"]] == [
        "root",
        "timestamp",
        "snapshot",
        "targets",
        "alice",
        "bob",
        "carol",
    ]
    assert {(t["path"], t["role"], t["effective"]) for t in doc["targets"]} == {
        ("file.txt", "targets", True),
        ("alice/a.txt", "alice", True),
        ("alice/bob/b.txt", "bob", True),
        ("carol.txt", "carol", True),
    }
    assert doc["skipped"] == []


def test_inspect_skips_a_bad_delegation_and_marks_shadowed_targets(tmp_path: Path) -> None:
    repo = with_delegations()
    repo.add_target("carol", "file.txt", b"shadowed by targets")
    repo.commit()
    folder = repo.publish(tmp_path / "repo")
    _delegation_signed_by_stranger(repo, folder, tmp_path)
    doc = inspect_repository(str(folder), AT, state_options(tmp_path)).to_json()
    assert [(s["role"], s["code"]) for s in doc["skipped"]] == [("alice", "threshold-not-met")]
    shadowed = [t for t in doc["targets"] if t["role"] == "carol" and t["path"] == "file.txt"]
    assert shadowed and shadowed[0]["effective"] is False


# ----------------------------------------------------------------------------- dialect


def test_detect_dialect_tells_notary_from_tuf(tmp_path: Path) -> None:
    notary = COMMITTED_FIXTURES / "trust" / "tuf" / "localhost" / "basic" / "metadata"
    assert detect_dialect(notary) == "notary"
    assert detect_dialect(notary.parent) == "notary"
    assert detect_dialect(notary / "timestamp.json") == "notary"
    assert detect_dialect((notary / "root.json").read_bytes()) == "notary"
    folder = basic().publish(tmp_path / "repo")
    assert detect_dialect(folder) == "tuf"
    assert detect_dialect(str(folder / "2.snapshot.json")) == "tuf"
    # no spec_version: the keys decide
    doc = json.loads((folder / "root.json").read_bytes())
    del doc["signed"]["spec_version"]
    assert detect_dialect(json.dumps(doc).encode()) == "tuf"
    with pytest.raises(UsageError) as e:
        detect_dialect(b'{"signed": {"_type": "thing"}}')
    assert e.value.code == "invalid-argument"
    with pytest.raises(UsageError):
        detect_dialect(tmp_path / "nowhere")


# ----------------------------------------------------------------------------- CLI


def tc(*args: str) -> CliRun:
    return run_trustcheck(*args)


def test_cli_verify_json_has_the_shape_of_verify(tmp_path: Path) -> None:
    folder = with_delegations().publish(tmp_path / "repo")
    state = str(tmp_path / "state")
    run = tc(
        "tuf",
        "verify",
        "--repo",
        str(folder),
        "--at",
        AT_TEXT,
        "--state-dir",
        state,
        "--json",
        "alice/bob/b.txt",
        "missing.txt",
    )
    assert run.code == 1, run.stderr
    doc = json.loads(run.stdout)
    ok, missing = doc["results"]
    assert set(ok) == set(ImageResult("", "", None, False).to_json())
    assert ok | {"digest": None} == {
        "image": "alice/bob/b.txt",
        "gun": str(folder.resolve()),
        "tag": None,
        "trusted": True,
        "digest": None,
        "length": 1,
        "role": "bob",
        "signers": ["targets", "alice", "bob"],
        "error": None,
    }
    assert ok["digest"] == "sha256:" + hashlib.sha256(b"b").hexdigest()
    assert missing["trusted"] is False and missing["error"]["code"] == "target-not-found"
    assert "trusting" in run.stderr and "on first use" in run.stderr


def test_cli_verify_text_and_exit_codes(tmp_path: Path) -> None:
    repo = basic()
    folder = repo.publish(tmp_path / "repo")
    (tmp_path / "root.json").write_bytes(repo.files["root"][1])
    base = [
        "tuf",
        "verify",
        "--repo",
        str(folder),
        "--at",
        AT_TEXT,
        "--state-dir",
        str(tmp_path / "state"),
        "--root",
        str(tmp_path / "root.json"),
    ]
    ok = tc(*base, "file.txt")
    assert ok.code == 0, ok.stderr
    assert ok.stdout.startswith("TRUSTED      file.txt  " + CONTENT_DIGEST)
    assert ok.stderr == ""
    _expire("timestamp")(repo, folder, tmp_path)
    bad = tc(*base, "file.txt")
    assert bad.code == 1
    assert bad.stdout.startswith("NOT TRUSTED  file.txt  [metadata-expired]")
    assert len(bad.stdout.splitlines()) == 1
    usage = tc("tuf", "verify", "--repo", str(tmp_path / "absent"), "file.txt")
    assert usage.code == 2 and usage.stderr.startswith("error: [invalid-argument]")
    limit = tc(*base, "--max-delegations", "0", "file.txt")
    assert limit.code == 2


def test_cli_inspect_thumbprint_and_dialect(tmp_path: Path) -> None:
    folder = with_delegations().publish(tmp_path / "repo")
    common = ["--repo", str(folder), "--at", AT_TEXT, "--state-dir", str(tmp_path / "s")]
    inspect = tc("tuf", "inspect", *common)
    assert inspect.code == 0, inspect.stderr
    assert json.loads(inspect.stdout)["dialect"] == "tuf"
    pretty = tc("tuf", "inspect", "--pretty", *common)
    assert "alice/bob/b.txt" in pretty.stdout and "Roles" in pretty.stdout
    thumb = tc("tuf", "thumbprint", *common)
    assert thumb.code == 0 and "SPKI SHA-256" in thumb.stdout
    keys = json.loads(tc("tuf", "thumbprint", "--json", *common).stdout)["keys"]
    assert {k["role"] for k in keys} >= {"root", "alice", "bob"}
    assert tc("tuf", "dialect", str(folder)).stdout.strip() == "tuf"
    notary = COMMITTED_FIXTURES / "trust" / "tuf" / "localhost" / "basic" / "metadata"
    assert tc("tuf", "dialect", str(notary)).stdout.strip() == "notary"


def test_cli_reports_a_broken_repository_in_one_line(tmp_path: Path) -> None:
    repo = basic()
    folder = repo.publish(tmp_path / "repo")
    _symlink_out(repo, folder, tmp_path)
    run = tc(
        "tuf",
        "verify",
        "--repo",
        str(folder),
        "--at",
        AT_TEXT,
        "--state-dir",
        str(tmp_path / "s"),
        "file.txt",
    )
    assert run.code == 2
    assert run.stderr.startswith("error: [unsafe-path]") and run.stderr.count("\n") == 1


# ----------------------------------------------------------------------------- HTTP


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Repo, Path]]:
    repo = with_delegations()
    folder = repo.publish(tmp_path / "www" / "metadata")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=str(tmp_path / "www"), **kw)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = BackgroundServer(Quiet)
    try:
        yield f"http://{server.netloc}/metadata", repo, folder
    finally:
        server.close()


def test_remote_repository_over_http(served: tuple[str, Repo, Path], tmp_path: Path) -> None:
    url, repo, folder = served
    results = verify_targets(
        url + "/", ["alice/bob/b.txt", "nope"], AT, state_options(tmp_path), unsafe_http=True
    )
    assert [(r.trusted, r.role, r.gun) for r in results] == [
        (True, "bob", url),
        (False, None, url),
    ]
    assert results[1].error is not None and results[1].error.code == "target-not-found"
    # the same attacks apply remotely: a rolled-back timestamp after a newer one
    repo.add_target("targets", "new.txt", b"n")
    repo.commit()
    repo.publish(folder)
    assert verify_targets(url, ["new.txt"], AT, state_options(tmp_path), unsafe_http=True)[
        0
    ].trusted
    (folder / "timestamp.json").write_bytes(repo.files["timestamp"][1])
    r = verify_targets(url, ["new.txt"], AT, state_options(tmp_path), unsafe_http=True)[0]
    assert r.error is not None and r.error.code == "version-rollback"


def test_plain_http_needs_the_unsafe_flag(served: tuple[str, Repo, Path], tmp_path: Path) -> None:
    url, _, _ = served
    with pytest.raises(UsageError) as e:
        verify_targets(url, ["file.txt"], AT, state_options(tmp_path))
    assert e.value.code == "insecure-server"
    missing = url.rsplit("/", 1)[0] + "/nothing-here"
    r = verify_targets(missing, ["file.txt"], AT, state_options(tmp_path), unsafe_http=True)[0]
    assert r.error is not None and r.error.code == "no-trust-data"


def test_client_limits_are_python_tufs_and_configurable(tmp_path: Path) -> None:
    folder = with_delegations().publish(tmp_path / "repo")
    limits = ClientLimits(max_delegations=1)
    assert limits.config().max_delegations == 1
    # bob is the third role on the walk: the lookup gives up before it
    r = verify_one(folder, tmp_path, "alice/bob/b.txt", limits=limits)
    assert r.error is not None and r.error.code == "target-not-found"
    small = ClientLimits(timestamp_max_length=100)
    assert code_of(folder, tmp_path, limits=small) == "file-too-large"
    with pytest.raises(UsageError):
        verify_one(folder, tmp_path, limits=ClientLimits(max_root_rotations=0))


def test_network_failures_map_to_remote_codes(tmp_path: Path) -> None:
    import socket


    # nothing listens: a refused connection is a network error, not a timeout
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = verify_targets(f"https://127.0.0.1:{port}/m", ["x"], AT, state_options(tmp_path), timeout=2)
    assert r[0].error is not None and r[0].error.code == "network-error"
    assert "Connection refused" in r[0].error.message
    # a certificate from a CA the system does not trust
    folder = basic().publish(tmp_path / "www")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=str(folder), **kw)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with tls_server(Handler, tmp_path) as server:  # its CA is not given to the client
        r = verify_targets(server.url, ["file.txt"], AT, state_options(tmp_path), timeout=5)
    assert r[0].error is not None and r[0].error.code == "tls-error", r[0].error


def test_a_stale_cached_delegation_signed_by_a_rotated_key_is_fetched_again(
    tmp_path: Path,
) -> None:
    repo = with_delegations()
    folder = repo.publish(tmp_path / "repo")
    assert inspect_repository(str(folder), AT, state_options(tmp_path)).skipped == []
    old, new = repo.signers["alice"][0], repo.keys.new()
    with repo.edit_targets() as t:  # targets now lists another key for alice
        t.revoke_key(old.public_key.keyid, "alice")
        t.add_key(new.public_key, "alice")
    repo.signers["alice"] = [new]
    with repo.edit_targets("alice"):
        pass
    repo.commit()
    repo.publish(folder)
    report = inspect_repository(str(folder), AT, state_options(tmp_path))
    assert report.skipped == []
    (alice,) = [r for r in report.roles if r.name == "alice"]
    assert (alice.version, alice.signed_by) == (
        repo.history["alice"][-1].signed.version,
        [new.public_key.keyid],
    )


def test_main_verify_takes_dialect_and_repo(tmp_path: Path) -> None:
    """`trustcheck verify --repo` (and --dialect tuf) runs the TUF 1.0 path; Notary data
    given as --repo, or --dialect notary with --repo, is a usage error."""
    repo = basic()
    folder = repo.publish(tmp_path / "repo")
    (tmp_path / "root.json").write_bytes(repo.files["root"][1])
    common = ["--at", AT_TEXT, "--state-dir", str(tmp_path / "state")]
    ok = tc(
        "verify", "--repo", str(folder), "--root", str(tmp_path / "root.json"), *common, "file.txt"
    )
    assert ok.code == 0, ok.stderr
    assert ok.stdout.startswith("TRUSTED      file.txt  " + CONTENT_DIGEST)
    forced = tc("verify", "--dialect", "tuf", "--repo", str(folder), *common, "--json", "nope.txt")
    assert forced.code == 1
    assert json.loads(forced.stdout)["results"][0]["error"]["code"] == "target-not-found"
    assert tc("verify", "--dialect", "tuf", *common, "file.txt").code == 2
    assert tc("verify", "--dialect", "notary", "--repo", str(folder), "file.txt").code == 2
    notary_dir = (
        Path(__file__).resolve().parents[2]
        / "fixtures"
        / "generated"
        / "trust"
        / "tuf"
        / "localhost"
        / "basic"
        / "metadata"
    )
    wrong = tc("verify", "--repo", str(notary_dir), "file.txt")
    assert wrong.code == 2 and "Notary v1" in wrong.stderr
