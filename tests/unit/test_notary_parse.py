"""The strict notary parser: Go's RFC 3339, field folding, typed fields (spec §1.5, §3.6)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from trustcheck.errors import NotTrusted
from trustcheck.notary import ZERO_TIME, _Bad, parse_expires, parse_targets, parse_timestamp


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2029-11-25T23:03:51.501205548Z", datetime(2029, 11, 25, 23, 3, 51, 501205, tzinfo=UTC)),
        (
            "2116-01-11T16:58:57.119711158-08:00",
            datetime(2116, 1, 11, 16, 58, 57, 119711, tzinfo=timezone(-timedelta(hours=8))),
        ),
        ("2030-01-01T00:00:00Z", datetime(2030, 1, 1, tzinfo=UTC)),
        ("2030-01-01T00:00:00,5Z", datetime(2030, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),  # C10 comma
        ("2030-01-01T00:00:00.1234567891234Z", datetime(2030, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2030-01-01T05:30:00+05:30", datetime(2030, 1, 1, tzinfo=UTC)),
    ],
)
def test_go_rfc3339_accepted(text: str, expected: datetime) -> None:
    assert parse_expires(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2030-01-01t00:00:00Z",  # lower-case t
        "2030-01-01T00:00:00z",  # C10b lower-case z
        "2030-01-01T00:00:00",  # no zone
        "2030-01-01 00:00:00Z",  # space
        "2030-01-01T00:00:00+0100",  # no colon in offset
        "2030-01-01T24:00:00Z",
        "2030-01-01T00:00:60Z",
        "2030-02-30T00:00:00Z",
        "2030-01-01T00:00:00.Z",
        "2030-1-01T00:00:00Z",
    ],
)
def test_go_rfc3339_rejected(text: str) -> None:
    with pytest.raises(_Bad):
        parse_expires(text)


def test_null_expires_is_zero_time_and_therefore_expired() -> None:
    assert parse_expires(None) == ZERO_TIME


def _ts(signed: dict[str, object], top_key: str = "signed") -> bytes:
    return json.dumps({top_key: signed, "signatures": []}).encode()


BASE = {
    "_type": "Timestamp",
    "version": 3,
    "expires": "2030-01-01T00:00:00Z",
    "meta": {"snapshot": {"length": 10, "hashes": {"sha256": "A" * 43 + "="}}},
}


def test_case_folded_field_names_are_accepted_like_go() -> None:
    # C7: "SIGNED" at the top, "VERSION" and "expire" + long s inside
    signed = dict(BASE)
    signed["VERSION"] = signed.pop("version")
    signed["expire\u017f"] = signed.pop("expires")
    ts = parse_timestamp(_ts(signed, "SIGNED"))
    assert ts.version == 3 and ts.expires.year == 2030


def test_two_spellings_of_one_field_are_refused() -> None:
    # C11: notary takes the last; trustcheck refuses the ambiguity (docs/notary-compat.md)
    raw = _ts(BASE)[:-1].replace(b'"version": 3', b'"version": 3, "VERSION": 4') + b"}"
    with pytest.raises(NotTrusted) as exc:
        parse_timestamp(raw)
    assert exc.value.code == "invalid-structure" and "two spellings" in exc.value.message


@pytest.mark.parametrize("version", ["2.0", '"2"', "1e0", "9007199254740993"])
def test_version_must_be_an_integer_literal(version: str) -> None:
    raw = _ts(BASE).replace(b'"version": 3', b'"version": ' + version.encode())
    with pytest.raises(NotTrusted) as exc:
        parse_timestamp(raw)
    assert exc.value.code == "invalid-structure"


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ('"AAAA-___"', "base64"),  # URL alphabet
        ('"AAA"', "base64"),  # missing padding
        ("17", "base64 string"),
    ],
)
def test_hash_values_are_padded_standard_base64(bad: str, fragment: str) -> None:
    raw = _ts(BASE).replace(b'"' + b"A" * 43 + b'="', bad.encode())
    with pytest.raises(NotTrusted) as exc:
        parse_timestamp(raw)
    assert exc.value.code == "invalid-structure" and fragment in exc.value.message


def test_base64_with_newlines_is_accepted_as_go_does() -> None:
    raw = _ts(BASE).replace(
        b'"' + b"A" * 43 + b'="', b'"' + b"A" * 20 + b"\\r\\n" + b"A" * 23 + b'="'
    )
    assert len(parse_timestamp(raw).meta["snapshot"].hashes["sha256"]) == 32


def _targets(targets: object) -> bytes:
    signed = {
        "_type": "Targets",
        "version": 1,
        "expires": "2030-01-01T00:00:00Z",
        "targets": targets,
        "delegations": {"keys": {}, "roles": []},
    }
    return json.dumps({"signed": signed, "signatures": []}).encode()


GOOD = {"length": 5, "hashes": {"sha256": "A" * 43 + "="}}


def test_target_entries_odd_but_valid_shapes_are_read() -> None:
    tm = parse_targets(
        "targets",
        _targets(
            {
                "a": GOOD,
                "b": {"LENGTH": 7, "Hashes": {"sha256": "B" * 43 + "="}, "extra": [1.5]},
                "c": {
                    "length": 1,
                    "hashes": {"md5": "AAAAAAAAAAAAAAAAAAAAAA=="},
                    "custom": {"x": 1},
                },
            }
        ),
    )
    b = tm.target("b")
    assert b is not None and b.length == 7
    assert b.sha256_hex() == base64.b64decode("B" * 43 + "=").hex()
    c = tm.target("c")
    assert c is not None and c.sha256_hex() is None


@pytest.mark.parametrize(
    "entry",
    [
        {"length": "5", "hashes": {}},
        {"length": 5.5, "hashes": {}},
        {"length": 5, "hashes": {"sha256": 12}},
        {"length": 5, "hashes": ["x"]},
        {"length": 5, "hashes": {"sha256": "not base64!"}},
        "not an object",
    ],
)
def test_one_bad_target_fails_the_whole_role(entry: object) -> None:
    # Go's typed decode fails the whole targets file for one bad entry
    targets = {f"t{i}": GOOD for i in range(100)}
    targets["bad"] = entry  # type: ignore[assignment]
    with pytest.raises(NotTrusted) as exc:
        parse_targets("targets", _targets(targets))
    assert exc.value.code == "invalid-structure"


def test_many_targets_fast_path_and_lazy_access() -> None:
    targets = {f"tag-{i}": {"length": i, "hashes": {"sha256": "A" * 43 + "="}} for i in range(5000)}
    tm = parse_targets("targets", _targets(targets))
    hit = tm.target("tag-4999")
    assert hit is not None and hit.length == 4999
    assert tm.target("nope") is None
    assert sum(1 for _ in tm.items()) == 5000
