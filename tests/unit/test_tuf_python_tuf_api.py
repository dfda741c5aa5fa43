"""What trustcheck relies on in python-tuf beyond its public API, checked against the
installed release so that a python-tuf upgrade that changes it fails here, loudly,
and not in front of a user.

* trustcheck/tuf/hooks.py overrides ``Updater._persist_root``, ``_persist_metadata``
  and ``_load_targets`` and sets ``Updater._trusted_set.reference_time``;
* trustcheck/tuf/errors.py reads the numbers of its messages (role, signature
  counts, versions) from python-tuf's exception texts.

Each python-tuf error is raised by python-tuf's own Updater over a real repository
built with python-tuf's repository API (tests/unit/test_tuf10.py), not by trustcheck.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from tuf.api import exceptions as tx
from tuf.api.metadata import Metadata, MetaFile, Targets
from tuf.ngclient import Updater

from tests.unit.test_tuf10 import AT, PAST, Repo, basic, sign_as, with_delegations
from trustcheck.tuf import errors as tuf_errors
from trustcheck.tuf import hooks
from trustcheck.tuf.fetchers import _local_fetcher, _Recorder


def _updater(folder: Path, metadata_dir: Path, bootstrap: bytes | None = None) -> Updater:
    base_url = folder.resolve().as_uri() + "/"
    metadata_dir.mkdir(exist_ok=True)
    updater = Updater(
        str(metadata_dir),
        base_url,
        fetcher=_local_fetcher(folder.resolve(), base_url, _Recorder(base_url)),
        bootstrap=bootstrap if bootstrap is not None else (folder / "root.json").read_bytes(),
    )
    hooks._set_reference_time(updater, AT)
    return updater


def _python_tuf_error(folder: Path, metadata_dir: Path, target: str = "file.txt") -> Exception:
    """What python-tuf's Updater alone raises for ``target`` in ``folder``."""
    updater = _updater(folder, metadata_dir)
    with pytest.raises(tx.RepositoryError) as caught:
        updater.refresh()
        updater.get_targetinfo(target)
    return caught.value


# ----------------------------------------------------------------------------- hooks.py


def test_the_updater_methods_hooks_override_exist_with_their_parameters() -> None:
    expected = {
        "_persist_root": ["self", "version", "data"],
        "_persist_metadata": ["self", "rolename", "data"],
        "_load_targets": ["self", "role", "parent_role"],
    }
    assert set(hooks._UPDATER_HOOKS[:3]) == set(expected)
    for name, params in expected.items():
        method = getattr(Updater, name, None)
        assert callable(method), f"python-tuf's Updater no longer has {name}: update hooks.py"
        assert list(inspect.signature(method).parameters) == params, name


def test_the_trusted_set_and_its_reference_time_exist(tmp_path: Path) -> None:
    folder = basic().publish(tmp_path / "repo")
    updater = _updater(folder, tmp_path / "md")
    trusted = getattr(updater, hooks._UPDATER_HOOKS[3])
    assert isinstance(trusted.reference_time, datetime)
    hooks._set_reference_time(updater, PAST)
    assert trusted.reference_time == PAST
    with pytest.raises(tx.ExpiredMetadataError):  # and python-tuf judges expiry by it
        hooks._set_reference_time(updater, datetime(2100, 1, 1, tzinfo=AT.tzinfo))
        updater.refresh()


# ----------------------------------------------------------------------------- errors.py


def _expired_timestamp(repo: Repo, folder: Path) -> None:
    repo.expiry["timestamp"] = PAST
    repo.do_timestamp(force=True)
    repo.publish(folder)


def _not_consistent() -> Repo:
    return basic(consistent=False)  # targets.json, not N.targets.json: the version is checked


def _snapshot_naming_old_targets(repo: Repo, folder: Path) -> None:
    with repo.edit_snapshot() as snap:
        snap.meta["targets.json"] = MetaFile(1)
    repo.do_timestamp()
    repo.publish(folder)


def _delegation_signed_by_stranger(repo: Repo, folder: Path) -> None:
    md = Metadata[Targets].from_bytes(repo.latest("alice"))
    (folder / f"{md.signed.version}.alice.json").write_bytes(sign_as(md, [repo.keys.new()]))


Case = tuple[str, Callable[[], Repo], Callable[[Repo, Path], None], str, type, re.Pattern[str]]

CASES: list[Case] = [
    ("expired", basic, _expired_timestamp, "file.txt", tx.ExpiredMetadataError,
     tuf_errors._RE_EXPIRED),
    ("version-in-snapshot", _not_consistent, _snapshot_naming_old_targets, "file.txt",
     tx.BadVersionNumberError, tuf_errors._RE_EXPECTED_ROLE_V),
    ("signed-by", with_delegations, _delegation_signed_by_stranger, "alice/a.txt",
     tx.UnsignedMetadataError, tuf_errors._RE_SIGNED_BY),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_python_tuf_messages_still_match_the_patterns_errors_py_reads(
    case: Case, tmp_path: Path
) -> None:
    _name, build, attack, target, kind, pattern = case
    repo = build()
    folder = repo.publish(tmp_path / "repo")
    attack(repo, folder)
    error = _python_tuf_error(folder, tmp_path / "md", target)
    assert isinstance(error, kind), (type(error), error)
    assert pattern.match(str(error)), (
        f"python-tuf now words {kind.__name__} as {str(error)!r}: update trustcheck/tuf/errors.py"
    )


def test_timestamp_rollback_message_still_matches(tmp_path: Path) -> None:
    repo = basic()
    folder = repo.publish(tmp_path / "repo")
    old = (folder / "timestamp.json").read_bytes()
    repo.do_timestamp(force=True)
    repo.publish(folder)
    _updater(folder, tmp_path / "md").refresh()  # trusts the new timestamp
    (folder / "timestamp.json").write_bytes(old)
    error = _python_tuf_error(folder, tmp_path / "md")
    assert isinstance(error, tx.BadVersionNumberError)
    assert re.match(r"New timestamp version (\d+) must be >= (\d+)", str(error)), str(error)


def test_errors_trustcheck_raises_use_python_tufs_wording() -> None:
    assert tuf_errors._RE_EXPECTED_SNAP.match(str(tuf_errors._bad_version("snapshot", 2, 1)))
    assert tuf_errors._RE_EXPECTED_ROLE_V.match(str(tuf_errors._bad_version("alice", 2, 1)))
    assert tuf_errors._RE_EXPIRED.match(str(tuf_errors._expired("alice")))


#: attacks of tests/unit/test_tuf10.py whose code errors.py decides from python-tuf's
#: message text -> (the python-tuf exception, the patterns one of which must match)
BY_TEXT: dict[str, tuple[type, tuple[re.Pattern[str], ...]]] = {
    "timestamp-naming-an-older-snapshot": (
        tx.BadVersionNumberError, (tuf_errors._RE_SNAPSHOT_ROLLBACK,)),
    "snapshot-naming-an-older-targets": (
        tx.BadVersionNumberError, (tuf_errors._RE_META_ROLLBACK,)),
    "snapshot-dropping-a-role-trusted-before": (
        tx.RepositoryError, (tuf_errors._RE_SNAPSHOT_DROPS,)),
    "mix-and-match-old-targets-under-new-snapshot": (
        tx.BadVersionNumberError, (tuf_errors._RE_EXPECTED_ROLE_V,)),
    "root-file-claiming-a-skipped-version": (
        tx.BadVersionNumberError, (tuf_errors._RE_ROOT_VERSION,)),
    "delegated-role-missing-from-snapshot": (
        tx.RepositoryError, tuf_errors._RE_NOT_IN_SNAPSHOT),
    "targets-file-put-in-place-of-snapshot": (
        tx.RepositoryError, (tuf_errors._RE_WRONG_TYPE,)),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BY_TEXT))
def test_python_tuf_messages_that_decide_a_code_still_match(name: str, tmp_path: Path) -> None:
    from tests.unit.test_tuf10 import ATTACKS

    (case,) = [a for a in ATTACKS if a.name == name]
    kind, patterns = BY_TEXT[name]
    repo = case.build()
    folder = repo.publish(tmp_path / "repo")
    if case.seed:
        updater = _updater(folder, tmp_path / "md")
        updater.refresh()
        assert updater.get_targetinfo(case.target) is not None
    assert not case.attack(repo, folder, tmp_path)
    error = _python_tuf_error(folder, tmp_path / "md", case.target)
    assert isinstance(error, kind), (type(error), error)
    assert any(p.match(str(error)) for p in patterns), (
        f"python-tuf now words {type(error).__name__} as {str(error)!r}: "
        "update trustcheck/tuf/errors.py"
    )


def test_observed_length_message_still_matches(tmp_path: Path) -> None:
    repo = basic(meta_hashes=True)
    folder = repo.publish(tmp_path / "repo")
    snapshot = folder / "2.snapshot.json"
    snapshot.write_bytes(snapshot.read_bytes()[:-10])  # shorter than timestamp.json records
    error = _python_tuf_error(folder, tmp_path / "md")
    assert isinstance(error, tx.LengthOrHashMismatchError), (type(error), error)
    m = tuf_errors._RE_OBSERVED_LENGTH.match(str(error))
    assert m is not None, f"python-tuf now words it {str(error)!r}: update trustcheck/tuf/errors.py"
    assert int(m.group(1)) + 10 == int(m.group(2))
