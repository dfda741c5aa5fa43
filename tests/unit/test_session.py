"""local/session.py: the one place Options become trust policy.

Real state store and trust dir on disk (the session's job is reading them);
the fixtures are genuine notary bytes.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from trustcheck.api import Options
from trustcheck.core.identity import Identifier
from trustcheck.core.verify import verify_collection
from trustcheck.errors import NotTrusted, UsageError
from trustcheck.local.pinfile import PinEntry, PinSet
from trustcheck.local.session import (
    pin_rule,
    recorded_policy,
    root_for_retry,
    should_update_root,
    trust_dir_view,
    trust_session,
)
from trustcheck.local.state import StateStore
from trustcheck.local.trustdir import TrustDir

REPO = Path(__file__).resolve().parents[2]
TRUST = REPO / "fixtures" / "generated" / "trust"
GUN = "localhost/nested"
AT = datetime(2026, 11, 27, 0, 11, 36, tzinfo=UTC)
META = TRUST / "tuf" / GUN / "metadata"


@pytest.fixture
def td(tmp_path: Path) -> TrustDir:
    shutil.copytree(TRUST / "tuf" / GUN, tmp_path / "trust" / "tuf" / GUN)
    return TrustDir(tmp_path / "trust")


class _Files:
    def read(self, role: str, cap: int) -> bytes | None:
        p = META / f"{role}.json"
        return p.read_bytes() if p.is_file() else None


def test_floors_are_the_maximum_of_state_process_and_trust_dir(
    td: TrustDir, tmp_path: Path
) -> None:
    store = StateStore(tmp_path / "state")
    with store.session(GUN) as (previous, recorder):
        recorder.state = store.record(previous, GUN, b"{}", {"timestamp": 3, "targets/a": 9})
    opts = Options(state=store)
    with trust_session(
        GUN,
        opts,
        previous_root=b"process root",
        floors={"timestamp": 4, "snapshot": 1},
        trust_dir=td,
    ) as s:
        floors = dict(s.policy.min_versions)
        # the state store's root comes first, then the trust dir's, then the process's
        assert s.policy.previous_root == b"{}"
    _root, td_floors = trust_dir_view(td, GUN)
    assert td_floors["timestamp"] == 5  # the cached timestamp verifies against the cached root
    assert floors["timestamp"] == 5 and floors["targets/a"] == 9
    assert floors["snapshot"] == max(1, td_floors["snapshot"])
    # without a state store: the trust dir's root beats the process's
    with trust_session(GUN, Options(), previous_root=b"process root", trust_dir=td) as s2:
        assert s2.policy.previous_root == (META / "root.json").read_bytes()
    with trust_session(GUN, Options(), previous_root=b"process root") as s3:
        assert s3.policy.previous_root == b"process root"


def test_state_is_recorded_only_after_success(td: TrustDir, tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    opts = Options(state=store)
    with pytest.raises(NotTrusted), trust_session(GUN, opts) as s:
        verify_collection(GUN, _Files(), datetime(2030, 1, 1, tzinfo=UTC), s.policy)
        s.record(verify_collection(GUN, _Files(), AT, s.policy))
    assert store.load(GUN) is None
    with trust_session(GUN, opts) as s:
        s.record(verify_collection(GUN, _Files(), AT, s.policy))
    state = store.load(GUN)
    assert state is not None and state.root == (META / "root.json").read_bytes()
    assert state.versions["timestamp"] == 5
    # an archive reads the record and never moves it
    policy = recorded_policy(GUN, opts)
    assert policy.previous_root == state.root and policy.min_versions["timestamp"] == 5


def test_a_pin_entry_becomes_a_pure_rule_with_its_ca_bundle_read(tmp_path: Path) -> None:
    assert pin_rule(None) is None
    ident = Identifier("keyid", "a" * 64)
    rule = pin_rule(PinEntry("localhost/*", root=[ident], source="pins.toml"))
    assert rule is not None and rule.root == (ident,) and rule.ca_bundle is None
    missing = PinEntry("localhost/*", ca=tmp_path / "nope.pem", source="pins.toml")
    with pytest.raises(UsageError) as e:
        pin_rule(missing)
    assert e.value.code == "pin-file-invalid" and "nope.pem" in e.value.message
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a certificate\n")
    with pytest.raises(UsageError, match="holds no PEM certificates"):
        pin_rule(PinEntry("localhost/*", ca=junk, source="pins.toml"))
    # pins of the Options reach the policy (no_tofu too)
    with trust_session(GUN, Options(pins=PinSet([], no_tofu=True))) as s:
        assert s.policy.no_tofu and s.policy.pin is None


def test_root_update_rules() -> None:
    bad_sig = NotTrusted("threshold-not-met", "x", role="timestamp")
    assert should_update_root(
        bad_sig, remote=False, offline=False, root_verified=True, root_from_cache=True
    )
    for kw in ({"remote": True}, {"offline": True}):
        args = {"remote": False, "offline": False, "root_verified": True, "root_from_cache": True}
        args.update(kw)
        assert not should_update_root(bad_sig, **args)  # type: ignore[arg-type]
    cached_root_broken = NotTrusted("root-integrity", "x", role="root")
    assert not should_update_root(
        cached_root_broken, remote=False, offline=False, root_verified=False, root_from_cache=True
    )
    assert not should_update_root(
        NotTrusted("no-pin", "x", role="root"),
        remote=False,
        offline=False,
        root_verified=False,
        root_from_cache=False,
    )
    expired_root = NotTrusted("metadata-expired", "x", role="root")
    assert (
        root_for_retry(
            expired_root,
            root_verified=False,
            root_from_cache=False,
            tried_root=b"tried",
            state_root=b"state",
        )
        == b"tried"
    )
    assert (
        root_for_retry(
            cached_root_broken,
            root_verified=False,
            root_from_cache=False,
            tried_root=b"tried",
            state_root=b"state",
        )
        == b"state"
    )
