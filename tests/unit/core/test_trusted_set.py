"""The trusted set fed bytes from memory, one role at a time (no trust dir, no temp dir).

Like python-tuf's test_trusted_metadata_set.py: the genuine bytes the real
notary client wrote (fixtures/generated, fixtures/attacks) are read once into
memory and handed to :class:`trustcheck.core.trusted_set.TrustedSet` in
notary's order; each rule is shown by changing one input.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from trustcheck.core.trusted_set import (
    IntermediateRootsNeeded,
    PinRule,
    TrustedSet,
    TrustPolicy,
    merge_floors,
)
from trustcheck.core.verify import verify_collection
from trustcheck.errors import NotTrusted

REPO = Path(__file__).resolve().parents[3]
GENERATED = REPO / "fixtures" / "generated"
AT = datetime.strptime(
    (GENERATED / "VALIDATION_TIME").read_text().strip(), "%Y-%m-%dT%H:%M:%SZ"
).replace(tzinfo=UTC)
ROTATION = (
    REPO
    / "fixtures"
    / "attacks"
    / "cases"
    / "expired-intermediate-root-is-accepted-on-the-rotation-path"
)


def _files(metadata: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(metadata))[: -len(".json")]: p.read_bytes()
        for p in sorted(metadata.rglob("*.json"))
    }


NESTED = _files(GENERATED / "trust" / "tuf" / "localhost" / "nested" / "metadata")
SIGNERS = _files(GENERATED / "trust" / "tuf" / "localhost" / "signers" / "metadata")
ROT_OLD = _files(ROTATION / "step-1" / "tuf" / "localhost" / "basic" / "metadata")
ROT_NEW = _files(ROTATION / "trust" / "tuf" / "localhost" / "basic" / "metadata")


class MemorySource:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.asked: list[str] = []

    def read(self, role: str, cap: int) -> bytes | None:
        self.asked.append(role)
        return self.files.get(role)


def _through_snapshot(ts: TrustedSet, files: dict[str, bytes]) -> None:
    ts.update_root(files["root"])
    ts.update_timestamp(files["timestamp"])
    ts.update_snapshot(files["snapshot"])


def _walk(ts: TrustedSet, files: dict[str, bytes]) -> list[str]:
    order = []
    while (nxt := ts.next_targets()) is not None:
        name, _meta = nxt
        order.append(name)
        if name == "targets":
            ts.update_targets(files[name])
        else:
            ts.update_delegated_targets(files[name], name)
    return order


def _flip(raw: bytes, old: bytes, new: bytes) -> bytes:
    assert old in raw
    return raw.replace(old, new, 1)


def test_pushed_role_by_role_equals_the_driver_from_a_source() -> None:
    ts = TrustedSet("localhost/nested", AT)
    _through_snapshot(ts, NESTED)
    order = _walk(ts, NESTED)
    col = ts.collection()
    # notary's pre-order walk: a child before its parent's next sibling
    assert order == [
        "targets",
        "targets/releases",
        "targets/releases/team",
        "targets/a",
        "targets/a/b",
        "targets/c",
    ]
    assert col.trust_basis == "first use"
    driven = verify_collection("localhost/nested", MemorySource(NESTED), AT)
    assert list(driven.targets) == list(col.targets) == order
    assert {r: c.version for r, c in driven.checks.items()} == {
        r: c.version for r, c in col.checks.items()
    }
    assert driven.warnings == col.warnings


def test_roles_out_of_order_are_refused_and_nothing_is_accepted() -> None:
    ts = TrustedSet("localhost/nested", AT)
    with pytest.raises(ValueError, match="before the root"):
        ts.update_timestamp(NESTED["timestamp"])
    ts.update_root(NESTED["root"])
    with pytest.raises(ValueError, match="before the timestamp"):
        ts.update_snapshot(NESTED["snapshot"])
    with pytest.raises(ValueError, match="given once"):
        ts.update_root(NESTED["root"])
    ts.update_timestamp(NESTED["timestamp"])
    ts.update_snapshot(NESTED["snapshot"])
    with pytest.raises(ValueError, match="not named"):
        ts.update_delegated_targets(NESTED["targets/a"], "targets/a")
    with pytest.raises(ValueError, match="not complete"):
        ts.collection()
    assert ts.next_targets() is not None
    with pytest.raises(ValueError, match="was named and not given"):
        ts.next_targets()


def test_a_snapshot_not_matching_the_timestamp_hash_is_refused() -> None:
    ts = TrustedSet("localhost/nested", AT)
    ts.update_root(NESTED["root"])
    ts.update_timestamp(NESTED["timestamp"])
    with pytest.raises(NotTrusted) as e:
        ts.update_snapshot(NESTED["snapshot"] + b" ")
    assert e.value.code == "hash-mismatch"
    assert ts.snapshot is None and "snapshot" not in ts.checks


def test_a_timestamp_altered_after_signing_does_not_meet_its_threshold() -> None:
    ts = TrustedSet("localhost/nested", AT)
    ts.update_root(NESTED["root"])
    with pytest.raises(NotTrusted) as e:
        ts.update_timestamp(_flip(NESTED["timestamp"], b'"version":5}', b'"version":6}'))
    assert e.value.code == "threshold-not-met" and e.value.role == "timestamp"
    assert ts.timestamp is None and "timestamp" not in ts.checks


def test_expiry_is_judged_at_the_given_time_not_the_clock() -> None:
    ts = TrustedSet("localhost/nested", datetime(2027, 1, 1, tzinfo=UTC))
    ts.update_root(NESTED["root"])
    with pytest.raises(NotTrusted) as e:
        ts.update_timestamp(NESTED["timestamp"])
    assert e.value.code == "metadata-expired" and e.value.role == "timestamp"
    # the same bytes a day before the timestamp expires
    ok = TrustedSet("localhost/nested", datetime(2026, 12, 10, tzinfo=UTC))
    ok.update_root(NESTED["root"])
    assert ok.update_timestamp(NESTED["timestamp"]).version == 5


@pytest.mark.parametrize("role", ["root", "timestamp", "snapshot", "targets", "targets/a"])
def test_a_floor_above_the_version_is_a_rollback(role: str) -> None:
    probe = TrustedSet("localhost/nested", AT)
    _through_snapshot(probe, NESTED)
    _walk(probe, NESTED)
    version = probe.checks[role].version
    ts = TrustedSet("localhost/nested", AT, TrustPolicy(min_versions={role: version + 1}))
    with pytest.raises(NotTrusted) as e:
        _through_snapshot(ts, NESTED)
        _walk(ts, NESTED)
    assert e.value.code == "version-rollback" and e.value.role == role
    # a floor equal to the version is no rollback
    same = TrustedSet("localhost/nested", AT, TrustPolicy(min_versions={role: version}))
    _through_snapshot(same, NESTED)
    _walk(same, NESTED)
    assert same.collection().checks[role].version == version


def test_floors_keep_the_maximum() -> None:
    assert merge_floors({"timestamp": 5, "targets": 2}, None, {"timestamp": 3, "snapshot": 7}) == {
        "timestamp": 5,
        "targets": 2,
        "snapshot": 7,
    }
    assert merge_floors() == {}


def test_a_replaced_cached_copy_that_verifies_raises_the_floor() -> None:
    policy = TrustPolicy(cached_root=NESTED["root"], min_versions={"timestamp": 2})
    ts = TrustedSet("localhost/nested", AT, policy)
    ts.note_replaced("timestamp", NESTED["timestamp"])
    assert ts.floors["timestamp"] == 5  # its own version, above the policy's 2
    # a copy that does not verify against the cached root is no floor
    ts.note_replaced("snapshot", SIGNERS["snapshot"])
    ts.note_replaced("targets", b"{not json")
    assert "snapshot" not in ts.floors and "targets" not in ts.floors
    # a lower verified copy never lowers a floor
    ts.floors["timestamp"] = 9
    ts.note_replaced("timestamp", NESTED["timestamp"])
    assert ts.floors["timestamp"] == 9
    ts.update_root(NESTED["root"])
    with pytest.raises(NotTrusted) as e:
        ts.update_timestamp(NESTED["timestamp"])
    assert e.value.code == "version-rollback"


def test_a_trusted_delegation_missing_from_the_snapshot_is_a_removed_role() -> None:
    ts = TrustedSet("localhost/nested", AT, TrustPolicy(min_versions={"targets/gone": 1}))
    ts.update_root(NESTED["root"])
    ts.update_timestamp(NESTED["timestamp"])
    with pytest.raises(NotTrusted) as e:
        ts.update_snapshot(NESTED["snapshot"])
    assert e.value.code == "role-removed" and e.value.role == "targets/gone"


def test_previously_trusted_root_and_no_tofu() -> None:
    same = TrustedSet("localhost/nested", AT, TrustPolicy(previous_root=NESTED["root"]))
    same.update_root(NESTED["root"])
    assert same.trust_basis == "previously trusted"
    with pytest.raises(NotTrusted) as e:
        TrustedSet("localhost/nested", AT, TrustPolicy(no_tofu=True)).update_root(NESTED["root"])
    assert e.value.code == "no-pin"


def test_a_root_not_signed_by_the_trusted_one_is_refused() -> None:
    # A -> B trusted (step-2); version 3 goes back to key A, signed by A only
    case = (
        REPO
        / "fixtures"
        / "attacks"
        / "cases"
        / "old-root-key-cannot-take-back-a-rotated-repository"
    )
    trusted = case / "step-2" / "tuf" / "localhost" / "basic" / "metadata" / "root.json"
    attack = case / "trust" / "tuf" / "localhost" / "basic" / "metadata" / "root.json"
    ts = TrustedSet("localhost/basic", AT, TrustPolicy(previous_root=trusted.read_bytes()))
    with pytest.raises(NotTrusted) as e:
        ts.update_root(attack.read_bytes())
    assert e.value.code == "root-rotation-invalid"
    assert not isinstance(e.value, IntermediateRootsNeeded)  # no version gap to fill
    assert ts.root is None and "root" not in ts.checks
    # an older root than the trusted one is a replay
    old = TrustedSet("localhost/basic", AT, TrustPolicy(previous_root=ROT_NEW["root"]))
    with pytest.raises(NotTrusted) as e2:
        old.update_root(ROT_OLD["root"])
    assert e2.value.code == "version-rollback"


def test_a_rotation_skipping_a_version_asks_for_the_intermediate_root() -> None:
    policy = TrustPolicy(previous_root=ROT_OLD["root"])
    ts = TrustedSet("localhost/basic", AT, policy)
    with pytest.raises(IntermediateRootsNeeded) as need:
        ts.update_root(ROT_NEW["root"])
    assert list(need.value.versions) == [2]
    assert need.value.code == "root-rotation-invalid"  # fail closed when not handled
    # the intermediate may have expired (2.root.json expired in 2025)
    ts.update_intermediate_root(ROT_NEW["2.root"], 2)
    ts.update_root(ROT_NEW["root"])
    assert ts.trust_basis == "rotated" and ts.checks["root"].version == 3
    ts.update_timestamp(ROT_NEW["timestamp"])
    ts.update_snapshot(ROT_NEW["snapshot"])
    _walk(ts, ROT_NEW)
    assert ts.collection().root.version == 3


def test_an_intermediate_root_of_the_wrong_version_or_order_is_refused() -> None:
    ts = TrustedSet("localhost/basic", AT, TrustPolicy(previous_root=ROT_OLD["root"]))
    with pytest.raises(NotTrusted) as e:
        ts.update_intermediate_root(ROT_NEW["root"], 2)  # holds version 3
    assert e.value.code == "root-rotation-invalid"
    with pytest.raises(ValueError, match="due"):
        ts.update_intermediate_root(ROT_NEW["2.root"], 3)
    # through the driver: without 2.root.json the rotation error names it
    files = dict(ROT_NEW)
    del files["2.root"]
    with pytest.raises(NotTrusted) as e2:
        verify_collection(
            "localhost/basic", MemorySource(files), AT, TrustPolicy(previous_root=ROT_OLD["root"])
        )
    assert e2.value.code == "root-rotation-invalid" and "2.root.json" in e2.value.message


def test_a_root_pin_that_no_root_key_matches_is_refused() -> None:
    from trustcheck.core.identity import Identifier

    pin = PinRule(root=(Identifier("cert-sha256", "0" * 64),), source="pins.toml [localhost/*]")
    with pytest.raises(NotTrusted) as e:
        TrustedSet("localhost/nested", AT, TrustPolicy(pin=pin)).update_root(NESTED["root"])
    assert e.value.code == "pin-mismatch" and "pins.toml" in e.value.message


def test_a_signer_pin_restricts_the_delegation_keys() -> None:
    from trustcheck.core.identity import Identifier

    pin = PinRule(signers={"alice": [Identifier("keyid", "f" * 64)]})
    ts = TrustedSet("localhost/signers", AT, TrustPolicy(pin=pin))
    _through_snapshot(ts, SIGNERS)
    with pytest.raises(NotTrusted) as e:
        _walk(ts, SIGNERS)
    assert e.value.code == "signer-pin-mismatch" and e.value.role == "targets/alice"


def test_a_delegation_given_other_bytes_fails_its_snapshot_hash() -> None:
    ts = TrustedSet("localhost/nested", AT)
    _through_snapshot(ts, NESTED)
    assert ts.snapshot is not None
    assert ts.next_targets() == ("targets", ts.snapshot.meta["targets"])
    ts.update_targets(NESTED["targets"])
    nxt = ts.next_targets()
    assert nxt is not None and nxt[0] == "targets/releases"
    with pytest.raises(NotTrusted) as e:
        ts.update_delegated_targets(NESTED["targets/c"], "targets/releases")
    assert e.value.code == "hash-mismatch" and e.value.role == "targets/releases"
    assert "targets/releases" not in ts.targets
