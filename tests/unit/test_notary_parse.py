"""The strict notary parser: Go's RFC 3339, field folding, typed fields (spec §1.5, §3.6)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from trustcheck.core.model import ZERO_TIME, _Bad, parse_expires, parse_targets, parse_timestamp
from trustcheck.errors import NotTrusted


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


# --------------------------------------------------------------------------- issue 14


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # before 0001-01-01T00:00:00Z: Go keeps the instant; it is before Go's zero time
        ("0001-01-01T00:00:00+01:00", ZERO_TIME),
        ("0001-01-01T00:59:59+01:00", ZERO_TIME),
        # after 9999-12-31T23:59:59Z: later than any validation time Python can hold
        ("9999-12-31T23:59:59-01:00", datetime.max.replace(tzinfo=UTC)),
        ("9999-12-31T23:30:00-00:31", datetime.max.replace(tzinfo=UTC)),
        # at the edges but inside: the exact instant, in UTC
        ("0001-01-01T01:00:00+01:00", ZERO_TIME),
        ("9999-12-31T22:59:59-01:00", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_expires_beyond_pythons_range_keeps_gos_order(text: str, expected: datetime) -> None:
    got = parse_expires(text)
    assert got == expected
    assert got.tzinfo is UTC
    # comparisons and arithmetic the verifier and audit do must not overflow
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert (got < at) == (expected.year < 2026)
    assert isinstance(got - at, timedelta)
    from trustcheck.core.timefmt import iso

    assert iso(got).endswith("Z")


@pytest.mark.parametrize(
    "number",
    [b"1" * 5000, b"-" + b"9" * 4301, b"9" * 400, b"1e400", b"-1E999999999", b"0.5e+99999999999"],
)
def test_numbers_beyond_float64_are_decode_errors(number: bytes) -> None:
    from trustcheck.core import canonical

    with pytest.raises(canonical.DecodeError):
        canonical.decode(b'{"a":[' + number + b"]}")


@pytest.mark.parametrize(
    ("number", "value"),
    [(b"9" * 308, -(1 << 63)), (b"1e-99999999999", 0), (b"-0.0e5", 0)],
)
def test_numbers_go_accepts_decode_as_go_does(number: bytes, value: int) -> None:
    from trustcheck.core import canonical

    assert canonical.decode(b"[" + number + b"]") == [value]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # one U+FFFD per byte that starts no valid sequence (Go's utf8.DecodeRune)
        (b"\xe2\x82", "\ufffd\ufffd"),  # truncated 3-byte sequence: Python's replace gives one
        (b"\xf0\x9f\x98", "\ufffd" * 3),
        (b"\xf0\x9f\x98A", "\ufffd" * 3 + "A"),
        (b"\xed\xa0\x80", "\ufffd" * 3),  # a surrogate encoded in UTF-8
        (b"\xc0\xaf", "\ufffd\ufffd"),  # overlong
        (b"\xf4\x90\x80\x80", "\ufffd" * 4),  # above U+10FFFF
        (b"\xff", "\ufffd"),
        (b"\xe2\x82\xac", "\u20ac"),  # valid
        (b"\\ud800", "\ufffd"),  # an escaped lone surrogate
        (b"\\udc00x", "\ufffdx"),
        (b"\\ud83d\\ude00", "\U0001f600"),  # an escaped pair stays one character
    ],
)
def test_invalid_utf8_is_replaced_as_gos_decoder_does(raw: bytes, expected: str) -> None:
    from trustcheck.core import canonical

    assert canonical.decode(b'{"k":"' + raw + b'"}') == {"k": expected}
    assert canonical.decode(b'{"' + raw + b'":1}') == {expected: 1}


def test_keys_go_reads_as_one_string_keep_the_last_value() -> None:
    from trustcheck.core import canonical

    assert canonical.decode(b'{"\\ud800":1,"\\udbff":2}') == {"\ufffd": 2}
    assert canonical.encode(canonical.decode(b'{"\\ud800":1,"\\udbff":2}')) == (
        b'{"\xef\xbf\xbd":2}'
    )


def _targets_file(signed_extra: dict[str, object], sigs: list[object]) -> bytes:
    signed = {
        "_type": "Targets",
        "version": 1,
        "expires": "2030-01-01T00:00:00Z",
        "targets": {},
        **signed_extra,
    }
    return json.dumps({"signed": signed, "signatures": sigs}).encode()


def test_null_signature_entry_is_a_zero_signature() -> None:
    tm = parse_targets("targets", _targets_file({}, [None]))
    assert len(tm.signatures) == 1
    assert (tm.signatures[0].keyid, tm.signatures[0].sig) == ("", b"")


def test_null_keys_roles_and_meta_are_zero_values() -> None:
    from trustcheck.core.model import parse_root, parse_snapshot

    tm = parse_targets(
        "targets",
        _targets_file(
            {"targets": {"t": None}, "delegations": {"keys": {"k": None}, "roles": []}}, []
        ),
    )
    assert tm.delegation_keys["k"].keytype == "" and tm.delegation_keys["k"].public == b""
    found = tm.target("t")
    assert found is not None and found.hashes == {} and found.length == 0
    assert tm.target("absent") is None
    snap = parse_snapshot(
        json.dumps(
            {
                "signed": {"_type": "Snapshot", "version": 1, "meta": {"targets/x": None}},
                "signatures": [],
            }
        ).encode()
    )
    assert snap.meta["targets/x"].length == 0 and snap.meta["targets/x"].hashes == {}
    root_signed = {
        "_type": "Root",
        "version": 1,
        "keys": {"k": None},
        "roles": {r: {"keyids": [], "threshold": 1} for r in ("root", "targets", "snapshot")},
    }
    root_signed["roles"]["timestamp"] = None  # type: ignore[index]
    with pytest.raises(NotTrusted, match="defines no 'timestamp' role") as exc:
        parse_root(json.dumps({"signed": root_signed, "signatures": []}).encode())
    assert exc.value.code == "invalid-structure"
    root_signed["roles"]["timestamp"] = {"keyids": [], "threshold": 1}  # type: ignore[index]
    root_signed["roles"]["extra"] = None  # type: ignore[index]
    root = parse_root(json.dumps({"signed": root_signed, "signatures": []}).encode())
    assert "extra" not in root.roles and root.keys["k"].public == b""


@pytest.mark.parametrize("private", ["not base64!", "QQ", 5, ["x"]])
def test_key_with_invalid_private_is_refused(private: object) -> None:
    key = {"keytype": "ecdsa", "keyval": {"public": "QUFB", "private": private}}
    raw = _targets_file({"delegations": {"keys": {"k": key}, "roles": []}}, [])
    with pytest.raises(NotTrusted, match=r"keyval\.private") as exc:
        parse_targets("targets", raw)
    assert exc.value.code == "invalid-structure"


@pytest.mark.parametrize("private", [None, "", "QUFB", "QUFB\n"])
def test_key_with_valid_or_null_private_is_accepted(private: object) -> None:
    key = {"keytype": "ecdsa", "keyval": {"public": "QUFB", "private": private}}
    tm = parse_targets("targets", _targets_file({"delegations": {"keys": {"k": key}}}, []))
    assert tm.delegation_keys["k"].public == b"AAA"


def _naive_matches(paths: list[str], name: str) -> bool:
    return any(name.startswith(p) for p in paths)


def test_path_prefixes_agree_with_notarys_linear_scan() -> None:
    """PathPrefixes (sorted, prefix-free, bisect) answers exactly what notary's
    loop over every path answers, on random paths over a small alphabet (so that
    prefixes, equal paths, "" and non-ASCII orderings all occur)."""
    import random

    from trustcheck.core.trusted_set import PathPrefixes

    rng = random.Random(14)
    alphabet = ["a", "b", "/", "\u00e9", "\U0001f600", "\x00", "z"]
    compared = 0
    for _ in range(400):
        paths = [
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4)))
            for _ in range(rng.randint(0, 8))
        ]
        matcher = PathPrefixes(paths)
        for _ in range(30):
            name = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
            assert matcher.matches(name) == _naive_matches(paths, name), (paths, name)
            compared += 1
    assert compared == 12000


# --------------------------------------------------------------------------- PEM (issue 14 #5)


def _go_pem_decode_reference(data: bytes) -> list[tuple[str, dict[str, str], bytes]]:
    """A line-by-line transcription of Go 1.19's encoding/pem Decode (quadratic, as Go
    is), repeated; the reference the linear scanner must agree with."""
    from trustcheck.core.crypto import go_b64decode

    def get_line(d: bytes) -> tuple[bytes, bytes]:
        i = d.find(b"\n")
        if i < 0:
            i = j = len(d)
        else:
            j = i + 1
            if i > 0 and d[i - 1] == 0x0D:
                i -= 1
        return d[:i].rstrip(b" \t"), d[j:]

    def decode(d: bytes) -> tuple[tuple[str, dict[str, str], bytes] | None, bytes]:
        rest = d
        while True:
            if rest.startswith(b"-----BEGIN "):
                rest = rest[11:]
            else:
                i = rest.find(b"\n-----BEGIN ")
                if i < 0:
                    return None, d
                rest = rest[i + 12 :]
            type_line, rest = get_line(rest)
            if not type_line.endswith(b"-----"):
                continue
            type_line = type_line[:-5]
            headers: dict[str, str] = {}
            while True:
                if not rest:
                    return None, d
                line, nxt = get_line(rest)
                if b":" not in line:
                    break
                key, _, val = line.partition(b":")
                headers[key.strip().decode("utf-8", "replace")] = val.strip().decode(
                    "utf-8", "replace"
                )
                rest = nxt
            if not headers and rest.startswith(b"-----END "):
                end, trailer = 0, 9
            else:
                end = rest.find(b"\n-----END ")
                trailer = end + 10
            if end < 0:
                continue
            tail = rest[trailer:]
            if len(tail) < len(type_line) + 5:
                continue
            after, tail = tail[len(type_line) + 5 :], tail[: len(type_line) + 5]
            if not tail.startswith(type_line) or not tail.endswith(b"-----"):
                continue
            if get_line(after)[0]:
                continue
            der = go_b64decode(rest[:end].replace(b" ", b"").replace(b"\t", b""))
            if der is None:
                continue
            _, rest = get_line(rest[end + 9 :])
            return (type_line.decode("utf-8", "replace"), headers, der), rest

    out = []
    rest = data
    while True:
        block, rest = decode(rest)
        if block is None:
            return out
        out.append(block)


_PEM_PIECES = [
    b"-----BEGIN ",
    b"-----END ",
    b"-----",
    b"A",
    b"B:C",
    b":",
    b"\n",
    b"\r\n",
    b" ",
    b"\t",
    b"QUFB",
    b"QQ==",
    b"=",
    b"\n-----BEGIN A-----\n",
    b"\n-----END A-----\n",
    b"\n-----BEGIN B:C-----\n",
    b"\n-----END B:C-----\n",
    b"k: v\n",
    b"-",
]


def test_pem_scanner_finds_exactly_gos_blocks() -> None:
    """The linear PEM scanner (crypto._PemScanner, which skips work Go repeats)
    returns the blocks of the transcription of Go's pem.Decode on 20,000 random
    inputs built from PEM fragments (BEGIN/END lines, headers, colons, bad base64)."""
    import random

    from trustcheck.core.crypto import pem_blocks

    rng = random.Random(1405)
    found = 0
    for _ in range(20000):
        data = b"".join(rng.choice(_PEM_PIECES) for _ in range(rng.randint(0, 30)))
        want = _go_pem_decode_reference(data)
        got = [(b.type, b.headers, b.data) for b in pem_blocks(data)]
        assert got == want, data
        found += len(want)
    assert found > 1000  # the inputs do hold blocks, not only junk


@pytest.mark.parametrize(
    "data",
    [
        b"\n-----BEGIN X-----\n" * 3000 + b"-----END X-----\n",
        b"\n-----BEGIN X:Y-----\nx\n" * 3000 + b"-----END X:Y-----\n",
        b"\n-----BEGIN X:Y-----\na:b\n" * 3000 + b"-----END X:Y-----\n",
        b"\n-----BEGIN CERTIFICATE-----\nQUFB\n" * 3000,
        b"-----BEGIN X-----\n" + b"a: b\n" * 3000,
    ],
    ids=["begin-x-end", "colon-end", "header-runs", "no-end", "endless-headers"],
)
def test_pem_scanner_agrees_on_hostile_shapes(data: bytes) -> None:
    from trustcheck.core.crypto import pem_blocks

    assert [(b.type, b.headers, b.data) for b in pem_blocks(data)] == (
        _go_pem_decode_reference(data)
    )
