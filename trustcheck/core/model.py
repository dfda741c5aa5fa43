"""Notary v1 metadata: a strict parse into a small typed model.

Parsing follows Go's ``encoding/json`` typed decode as notary uses it
(notary-v1-spec.md §1.5): struct field names match case-insensitively (one
spelling per field; see docs/notary-compat.md for the ambiguous case, which
trustcheck refuses), unknown fields are ignored (but stay covered by the
signature), ``[]byte`` fields are padded standard base64, numbers for Go
``int`` fields must be written as integers, and ``expires`` follows Go's
RFC 3339 parser (§3.6).

Each parsed role keeps its original bytes (hashes are computed on them) and
the decoded ``signed`` map (signatures are checked on its canonical
re-encoding, :mod:`trustcheck.core.canonical`).
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections import deque
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from functools import cache, partial
from itertools import chain, islice
from operator import itemgetter
from typing import Any, NamedTuple

from trustcheck.core import canonical
from trustcheck.core.crypto import TufKey
from trustcheck.core.record import Record
from trustcheck.errors import ErrorCode, NotTrusted

__all__ = [
    "BASE_ROLES",
    "TYPE_NAMES",
    "Delegation",
    "FileMeta",
    "RoleKeys",
    "RootMeta",
    "Signature",
    "SignedMeta",
    "SnapshotMeta",
    "TargetsMeta",
    "TimestampMeta",
    "parse_expires",
    "parse_root",
    "parse_snapshot",
    "parse_targets",
    "parse_timestamp",
]

BASE_ROLES = ("root", "targets", "snapshot", "timestamp")
#: signatures accepted on one role file (notary has no limit; real files carry 1-3)
MAX_SIGNATURES = 256
TYPE_NAMES = {
    "root": "Root",
    "targets": "Targets",
    "snapshot": "Snapshot",
    "timestamp": "Timestamp",
}
ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)  # Go's zero time.Time: always expired
_MAX_TIME = datetime.max.replace(tzinfo=UTC)
_MISSING: Any = object()


# --------------------------------------------------------------------------- model


class Signature(Record):
    __slots__ = ("keyid", "method", "sig")
    keyid: str
    method: str  # lower-cased, as notary's Signature.UnmarshalJSON does
    sig: bytes

    def __init__(self, keyid: str, method: str, sig: bytes) -> None:
        self.keyid = keyid
        self.method = method
        self.sig = sig


class FileMeta(Record):
    __slots__ = ("hashes", "length")
    length: int
    hashes: dict[str, bytes]

    def __init__(self, length: int, hashes: dict[str, bytes]) -> None:
        self.length = length
        self.hashes = hashes

    def sha256_hex(self) -> str | None:
        digest = self.hashes.get("sha256")
        return digest.hex() if digest is not None else None


class RoleKeys(Record):
    """Key IDs and threshold of a base role in root.json."""

    __slots__ = ("keyids", "threshold")
    keyids: list[str]
    threshold: int

    def __init__(self, keyids: list[str], threshold: int) -> None:
        self.keyids = keyids
        self.threshold = threshold


class Delegation(Record):
    __slots__ = ("keyids", "name", "paths", "threshold")
    name: str
    keyids: list[str]
    threshold: int
    paths: list[str]

    def __init__(self, name: str, keyids: list[str], threshold: int, paths: list[str]) -> None:
        self.name = name
        self.keyids = keyids
        self.threshold = threshold
        self.paths = paths


class SignedMeta(Record):
    """What every role file has: bytes, decoded ``signed``, signatures, common fields."""

    __slots__ = ("_canonical", "expires", "raw", "role", "signatures", "signed", "type", "version")
    role: str
    raw: bytes
    signed: dict[str, Any]
    signatures: list[Signature]
    type: str
    version: int
    expires: datetime
    _canonical: bytes | memoryview | None

    def __init__(
        self,
        role: str,
        raw: bytes,
        signed: dict[str, Any],
        signatures: list[Signature],
        type: str,
        version: int,
        expires: datetime,
        _canonical: bytes | memoryview | None = None,
    ) -> None:
        self.role = role
        self.raw = raw
        self.signed = signed
        self.signatures = signatures
        self.type = type
        self.version = version
        self.expires = expires
        self._canonical = _canonical

    def canonical_bytes(self) -> bytes | memoryview:
        """The bytes notary verifies signatures over (spec §1.2); a view of :attr:`raw`
        when the file holds them as they are (a lean targets role, no copy)."""
        if self._canonical is None:
            try:
                self._canonical = self._encode_signed()
            except canonical.CanonicalError as e:
                raise NotTrusted(
                    ErrorCode.NON_CANONICAL_NUMBER,
                    f"{self.role}: signed data cannot be canonicalised as notary does ({e}); "
                    "the metadata was not produced by a notary signer",
                    role=self.role,
                ) from e
        return self._canonical

    def release_canonical(self) -> None:
        self._canonical = None

    def _encode_signed(self) -> bytes | memoryview:
        return canonical.encode(self.signed, from_decode=True)


class RootMeta(SignedMeta):
    __slots__ = ("keys", "roles")
    keys: dict[str, TufKey]
    roles: dict[str, RoleKeys]

    def __init__(
        self,
        role: str,
        raw: bytes,
        signed: dict[str, Any],
        signatures: list[Signature],
        type: str,
        version: int,
        expires: datetime,
        _canonical: bytes | memoryview | None = None,
        keys: dict[str, TufKey] | None = None,
        roles: dict[str, RoleKeys] | None = None,
    ) -> None:
        SignedMeta.__init__(self, role, raw, signed, signatures, type, version, expires, _canonical)
        self.keys = {} if keys is None else keys
        self.roles = {} if roles is None else roles


class TimestampMeta(SignedMeta):
    __slots__ = ("meta",)
    meta: dict[str, FileMeta]

    def __init__(
        self,
        role: str,
        raw: bytes,
        signed: dict[str, Any],
        signatures: list[Signature],
        type: str,
        version: int,
        expires: datetime,
        _canonical: bytes | memoryview | None = None,
        meta: dict[str, FileMeta] | None = None,
    ) -> None:
        SignedMeta.__init__(self, role, raw, signed, signatures, type, version, expires, _canonical)
        self.meta = {} if meta is None else meta


class SnapshotMeta(SignedMeta):
    __slots__ = ("meta",)
    meta: dict[str, FileMeta]

    def __init__(
        self,
        role: str,
        raw: bytes,
        signed: dict[str, Any],
        signatures: list[Signature],
        type: str,
        version: int,
        expires: datetime,
        _canonical: bytes | memoryview | None = None,
        meta: dict[str, FileMeta] | None = None,
    ) -> None:
        SignedMeta.__init__(self, role, raw, signed, signatures, type, version, expires, _canonical)
        self.meta = {} if meta is None else meta


class TargetsMeta(SignedMeta):
    #: target name -> its validated JSON object (``length``/``hashes``); use
    #: :meth:`target` / :meth:`items` for typed access (built on demand: a role
    #: can hold 50,000 targets and a lookup needs one). A canonical map of the
    #: usual shape stays in :attr:`raw` (:class:`LeanTargets`, no object per target).
    __slots__ = ("delegation_keys", "delegations", "targets")
    targets: Mapping[str, Any]
    delegation_keys: dict[str, TufKey]
    delegations: list[Delegation]

    def __init__(
        self,
        role: str,
        raw: bytes,
        signed: dict[str, Any],
        signatures: list[Signature],
        type: str,
        version: int,
        expires: datetime,
        _canonical: bytes | memoryview | None = None,
        targets: Mapping[str, Any] | None = None,
        delegation_keys: dict[str, TufKey] | None = None,
        delegations: list[Delegation] | None = None,
    ) -> None:
        SignedMeta.__init__(self, role, raw, signed, signatures, type, version, expires, _canonical)
        self.targets = {} if targets is None else targets
        self.delegation_keys = {} if delegation_keys is None else delegation_keys
        self.delegations = [] if delegations is None else delegations

    def target(self, name: str) -> FileMeta | None:
        targets = self.targets
        if type(targets) is LeanTargets:
            return targets.file_meta(name)
        raw = targets.get(name, _MISSING)
        # a ``null`` entry is present (Go's zero FileMeta): found, with no hashes
        return None if raw is _MISSING else _file_meta(raw, "target")

    def items(self) -> Iterator[tuple[str, FileMeta]]:
        targets = self.targets
        if type(targets) is LeanTargets:
            yield from targets.file_metas()
            return
        for name, raw in targets.items():
            yield name, _file_meta(raw, "target")

    def _encode_signed(self) -> bytes | memoryview:
        out = canonical.encode(self.signed, from_decode=True)
        targets = self.targets
        if type(targets) is LeanTargets:
            # ``signed["targets"]`` holds the placeholder; the map itself is
            # canonical already (checked by the lean patterns and the key order)
            token = b'"' + targets.placeholder.encode("ascii") + b'"'
            i = out.find(token)
            if i < 0 or out.find(token, i + 1) >= 0:  # pragma: no cover - see LeanTargets
                raise ValueError("the targets placeholder is not in the canonical form once")
            head, tail = out[:i], out[i + len(token) :]
            start, end = targets.span()
            first = start - len(head)
            raw = self.raw
            if first >= 0 and raw.startswith(head, first) and raw.startswith(tail, end):
                # the file holds exactly these bytes (notary writes ``signed``
                # canonical): the signature is checked on them where they are
                return memoryview(raw)[first : end + len(tail)]
            return b"".join((head, targets.view(), tail))
        return out


# --------------------------------------------------------------------------- Go decode helpers


class _Bad(Exception):
    """Internal: a structural problem; turned into NotTrusted by the caller."""


def _folds_to(key: str, name: str, special: bool) -> bool:
    """Go's field-name matching (encoding/json foldFunc) for an ASCII lower-case name."""
    if len(key) != len(name):
        return False
    for kc, nc in zip(key, name, strict=True):
        if kc == nc:
            continue
        if "A" <= kc <= "Z" and chr(ord(kc) + 32) == nc:
            continue
        if special and ((kc == "\u017f" and nc == "s") or (kc == "\u212a" and nc == "k")):
            continue
        return False
    return True


def _fields(obj: Any, names: tuple[str, ...], where: str) -> list[Any]:
    """Read Go struct fields from a decoded JSON object.

    Returns the values in ``names`` order (``_MISSING`` when absent). A key that
    is not spelled exactly but folds to a field name is accepted as Go does;
    two keys that fold to the same field are refused as ambiguous (notary
    takes the last one; a reader that takes the first would see other data).
    """
    if not isinstance(obj, dict):
        raise _Bad(f"{where} must be a JSON object, not {_json_type(obj)}")
    exact = True
    for key in obj:
        if key not in names:
            exact = False
            break
    if exact:
        return [obj.get(n, _MISSING) for n in names]
    found: dict[str, str] = {}
    for key in obj:
        for n in names:
            special = "s" in n or "k" in n
            if key == n or _folds_to(key, n, special):
                if n in found:
                    raise _Bad(
                        f"{where} has two spellings of field {n!r} ({found[n]!r} and {key!r})"
                    )
                found[n] = key
                break
    return [obj[found[n]] if n in found else _MISSING for n in names]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a number"  # canonical's non-integral marker


def _go_int(value: Any, where: str) -> int:
    """A Go ``int``/``int64`` field: an integer literal within int64."""
    if value is _MISSING or value is None:
        return 0
    if type(value) is int and -(1 << 53) < value < (1 << 53):
        return value
    what = "an out-of-range number" if type(value) is int else _json_type(value)
    raise _Bad(f"{where} must be an integer, not {what}")


def _go_str(value: Any, where: str) -> str:
    if value is _MISSING or value is None:
        return ""
    if not isinstance(value, str):
        raise _Bad(f"{where} must be a string, not {_json_type(value)}")
    return value


def _go_strs(value: Any, where: str) -> list[str]:
    """A Go ``[]string`` (a ``null`` element is ""); checked in bulk when all are strings."""
    items = _go_list(value, where)
    if set(map(type, items)) <= {str}:
        return list(items)
    return [_go_str(v, where) for v in items]


def _go_bool(value: Any, where: str) -> bool:
    if value is _MISSING or value is None:
        return False
    if not isinstance(value, bool):
        raise _Bad(f"{where} must be a boolean, not {_json_type(value)}")
    return value


def _go_bytes(value: Any, where: str) -> bytes:
    """A Go ``[]byte`` field: padded standard base64 (CR/LF ignored)."""
    if value is _MISSING or value is None:
        return b""
    if not isinstance(value, str):
        raise _Bad(f"{where} must be a base64 string, not {_json_type(value)}")
    if "\n" in value or "\r" in value:
        value = value.replace("\r", "").replace("\n", "")
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError) as e:
        raise _Bad(f"{where} is not valid standard base64") from e


def _go_list(value: Any, where: str) -> list[Any]:
    if value is _MISSING or value is None:
        return []
    if not isinstance(value, list):
        raise _Bad(f"{where} must be an array, not {_json_type(value)}")
    return value


def _go_map(value: Any, where: str) -> dict[str, Any]:
    if value is _MISSING or value is None:
        return {}
    if not isinstance(value, dict):
        raise _Bad(f"{where} must be an object, not {_json_type(value)}")
    return value


_EXPIRES = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(Z|[+-]\d{2}:\d{2})",
    re.ASCII,
)


def parse_expires(value: Any, where: str = "expires") -> datetime:
    """Go 1.19 ``time.Time.UnmarshalJSON`` (RFC 3339) as notary uses it (spec §3.6)."""
    if value is _MISSING or value is None:
        return ZERO_TIME
    if not isinstance(value, str):
        raise _Bad(f"{where} must be a string, not {_json_type(value)}")
    m = _EXPIRES.fullmatch(value)
    if m is None:
        raise _Bad(f"{where} {value[:60]!r} is not an RFC 3339 time (e.g. 2030-01-31T12:00:00Z)")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7) or ""
    micro = int((frac[:6]).ljust(6, "0")) if frac else 0
    zone = m.group(8)
    if zone == "Z":
        tz: timezone = UTC
    else:
        zh, zm = int(zone[1:3]), int(zone[4:6])
        if zh > 23 or zm > 59:
            raise _Bad(f"{where} {value!r} has an invalid time-zone offset")
        offset = timedelta(hours=zh, minutes=zm)
        tz = timezone(-offset if zone[0] == "-" else offset)
    if hour > 23 or minute > 59 or second > 59 or year == 0:
        raise _Bad(f"{where} {value!r} is out of range")
    try:
        local = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError as e:
        raise _Bad(f"{where} {value!r} is out of range") from e
    try:
        return local.astimezone(UTC)
    except OverflowError:
        # Go's time.Time reaches beyond Python's years 1-9999: the instant is
        # before 0001-01-01T00:00:00Z (always expired, like Go's zero time) or
        # after 9999-12-31T23:59:59Z (expires later than any validation time)
        return ZERO_TIME if year == 1 else _MAX_TIME


# --------------------------------------------------------------------------- role parsing


def _envelope(role: str, raw: bytes, top: Any = _MISSING) -> tuple[dict[str, Any], list[Signature]]:
    try:
        if top is _MISSING:
            top = canonical.decode(raw)
    except canonical.DecodeError as e:
        raise NotTrusted(
            ErrorCode.MALFORMED_JSON,
            f"{role}.json is not valid JSON ({e}); the trust data is corrupt: "
            "remove the collection from the trust dir and fetch it again",
            role=role,
        ) from e
    try:
        signed, sigs = _fields(top, ("signed", "signatures"), f"{role}.json")
        if signed is _MISSING or signed is None:
            raise _Bad(f"{role}.json has no 'signed' object")
        if not isinstance(signed, dict):
            raise _Bad(f"{role}.json 'signed' must be an object, not {_json_type(signed)}")
        signatures: list[Signature] = []
        sig_list = _go_list(sigs, "signatures")
        if len(sig_list) > MAX_SIGNATURES:
            raise _Bad(
                f"{role}.json carries {len(sig_list)} signatures; more than {MAX_SIGNATURES} "
                "is refused (each costs a public-key operation)"
            )
        for i, item in enumerate(sig_list):
            where = f"signatures[{i}]"
            if item is None:  # Go: a zero Signature (no key ID: ignored when verifying)
                signatures.append(Signature(keyid="", method="", sig=b""))
                continue
            keyid, method, sig = _fields(item, ("keyid", "method", "sig"), where)
            signatures.append(
                Signature(
                    keyid=_go_str(keyid, where + ".keyid"),
                    method=_go_str(method, where + ".method").lower(),
                    sig=_go_bytes(sig, where + ".sig"),
                )
            )
    except _Bad as e:
        raise _structure(role, str(e)) from e
    return signed, signatures


def _structure(role: str, detail: str) -> NotTrusted:
    return NotTrusted(
        ErrorCode.INVALID_STRUCTURE,
        f"{role}: {detail}; the metadata is not valid notary trust data",
        role=role,
    )


def _common(
    role: str, signed: dict[str, Any], extra: tuple[str, ...]
) -> tuple[str, int, datetime, list[Any]]:
    values = _fields(signed, ("_type", "version", "expires", *extra), "signed")
    type_ = _go_str(values[0], "_type")
    version = _go_int(values[1], "version")
    expires_raw = values[2]
    try:
        expires = parse_expires(expires_raw)
    except _Bad as e:
        raise NotTrusted(
            ErrorCode.INVALID_EXPIRES,
            f"{role}: {e}; notary cannot parse it, so the metadata is rejected",
            role=role,
        ) from e
    return type_, version, expires, values[3:]


def _check_type(role: str, type_: str) -> None:
    base = role if role in TYPE_NAMES else "targets"
    want = TYPE_NAMES[base]
    if type_ != want:
        if type_ == want.lower():  # TUF 1.0 spells _type in lower case
            raise NotTrusted(
                ErrorCode.WRONG_TYPE,
                f"{role}: _type is {type_[:40]!r}: this is TUF 1.0 metadata, not Notary v1 "
                "(Docker Content Trust); verify a TUF 1.0 repository with `trustcheck tuf "
                "verify --repo FOLDER` or `trustcheck verify --dialect tuf --repo FOLDER`",
                role=role,
            )
        raise NotTrusted(
            ErrorCode.WRONG_TYPE,
            f"{role}: _type is {type_[:40]!r}, expected {want!r}; a file of another role was "
            "put in its place",
            role=role,
        )
    # the version check (>= 1) belongs to notary's structure validation


def _check_version(role: str, version: int) -> None:
    if version < 1:
        raise _structure(role, f"version must be at least 1, not {version}")


def _file_meta(value: Any, where: str) -> FileMeta:
    if value is None:  # Go: the zero FileMeta (no length, no hashes)
        return FileMeta(length=0, hashes={})
    length, hashes, _custom = _fields(value, ("length", "hashes", "custom"), where)
    parsed_hashes: dict[str, bytes] = {}
    for algo, digest in _go_map(hashes, where + ".hashes").items():
        parsed_hashes[algo] = _go_bytes(digest, f"{where}.hashes.{algo}")
    return FileMeta(length=_go_int(length, where + ".length"), hashes=parsed_hashes)


_TARGET_FIELDS = frozenset(("length", "hashes", "custom"))
_INT_LIMIT = 1 << 53


_SHAPES = frozenset({("length", "hashes"), ("hashes", "length")})


def _validate_targets(targets: dict[str, Any]) -> bool:
    """Validate a targets map; returns whether its numbers are all Go-exact.

    The usual map (every entry exactly ``{"length": int, "hashes": {algo:
    base64}}``) is checked with C-level bulk operations, about five times
    faster than a Python loop on 50,000 targets; anything else, and the
    precise error message, come from :func:`_validate_targets_each`.
    """
    metas = list(targets.values())
    if not metas:
        return True
    try:
        if set(map(type, metas)) != {dict} or not set(map(tuple, metas)) <= _SHAPES:
            return _validate_targets_each(targets)
        lengths = list(map(itemgetter("length"), metas))
        if (
            set(map(type, lengths)) != {int}
            or min(lengths) <= -_INT_LIMIT
            or max(lengths) >= _INT_LIMIT
        ):
            return _validate_targets_each(targets)
        hashes = list(map(itemgetter("hashes"), metas))
        if set(map(type, hashes)) != {dict}:
            return _validate_targets_each(targets)
        digests = list(chain.from_iterable(map(dict.values, hashes)))
        if digests and set(map(type, digests)) != {str}:
            return _validate_targets_each(targets)
        deque(map(_strict_b64, digests), maxlen=0)
    except (TypeError, ValueError):
        return _validate_targets_each(targets)
    return True


_strict_b64 = partial(binascii.a2b_base64, strict_mode=True)


def _validate_targets_each(targets: dict[str, Any]) -> bool:
    """Check every target as Go's typed decode would, without building objects.

    The common shape (exact field names, an integer length, a map of base64
    strings) is checked inline; anything else goes through :func:`_file_meta`,
    which raises the precise error. Returns whether every number in the map is
    one Go keeps exactly (see :func:`trustcheck.core.canonical.go_exact`).
    """
    a2b = binascii.a2b_base64
    exact = True
    for name, meta in targets.items():
        if type(meta) is dict and meta.keys() <= _TARGET_FIELDS:
            length = meta.get("length", 0)
            hashes = meta.get("hashes")
            if ((type(length) is int and -_INT_LIMIT < length < _INT_LIMIT) or length is None) and (
                hashes is None or type(hashes) is dict
            ):
                try:
                    if hashes:
                        for digest in hashes.values():
                            a2b(digest, strict_mode=True)
                except (TypeError, ValueError):
                    pass  # not a plain base64 string: let the precise path explain
                else:
                    if exact and "custom" in meta:
                        exact = canonical.go_exact(meta["custom"])
                    continue
        _file_meta(meta, f"targets[{name[:60]!r}]")
        if exact:
            exact = canonical.go_exact(meta)
    return exact


# --------------------------------------------------------------------------- lean targets map
#
# A 50,000-target role decoded into Python objects costs ~45 MiB and ~80 ms
# (orjson plus the checks above). When the map is written the way notary
# writes it -- canonical JSON of the usual shape -- a regular expression
# proves it valid in one pass without building an object per target, and the
# map stays in the file's bytes (issue 18). The shape, every entry exactly:
#
#     "NAME":{"hashes":{"sha256":"B64"[,"sha512":"B64"]},"length":INT}
#
# NAME printable ASCII without ``"`` or ``\`` (nothing to escape, so the bytes
# are the name's canonical form), B64 padded standard base64 (what the typed
# check above accepts), INT an integer in canonical form below 10**15; entries
# in strictly increasing name order (canonical order, no duplicate keys).
# Such a map decodes (Go or orjson) to exactly what the checks above accept,
# and its canonical re-encoding is the bytes themselves. Anything else -- a
# ``custom`` field, another hash, escapes, a float -- takes the general path.

_NAME_CHAR = rb"[ !#-\[\]-~]"
_B64_ANY = rb"(?:[A-Za-z0-9+/]{4})*+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
_B64_STR = rb'"(?:[A-Za-z0-9+/]{43}="|' + _B64_ANY + rb'")'  # a sha256 first: the usual case
_LEAN_ENTRY_SHAPE = (
    rb'"'
    + _NAME_CHAR
    + rb'*+":\{"hashes":\{"sha256":'
    + _B64_STR
    + rb'(?:,"sha512":'
    + _B64_STR
    + rb')?\},"length":(?:0|-?[1-9][0-9]{0,14})\}'
)
#: the names of an accepted map: the first, then each after an entry's end (``},"``)
_LEAN_FIRST_NAME = rb'\{"(' + _NAME_CHAR + rb'*+)":'
_LEAN_NEXT_NAMES = rb'\},"(' + _NAME_CHAR + rb'*+)":\{"h'
#: one entry of an accepted map (the shape is proven; this only cuts it up)
_LEAN_ENTRY = (
    rb'"(' + _NAME_CHAR + rb'*+)":\{"hashes":\{"sha256":"([A-Za-z0-9+/=]*+)"'
    rb'(?:,"sha512":"([A-Za-z0-9+/=]*+)")?\},"length":(-?[0-9]++)\}'
)
#: smaller targets files take the general path (as fast; no patterns to compile)
LEAN_MIN_BYTES = 16 << 10


class _LeanPatterns(NamedTuple):
    map: re.Pattern[bytes]
    first_name: re.Pattern[bytes]
    next_names: re.Pattern[bytes]
    name: re.Pattern[bytes]
    entry: re.Pattern[bytes]


@cache
def _lean_re() -> _LeanPatterns:
    """The patterns, compiled on first use (a small repository never needs them)."""
    shape = _LEAN_ENTRY_SHAPE
    return _LeanPatterns(
        re.compile(rb"\{(?:" + shape + rb"(?:," + shape + rb")*+)?\}"),
        re.compile(_LEAN_FIRST_NAME),
        re.compile(_LEAN_NEXT_NAMES),
        re.compile(_NAME_CHAR + rb"*+"),
        re.compile(_LEAN_ENTRY),
    )


_LEAN_TARGETS_KEY = b'"targets":{'


class LeanTargets(Mapping[str, Any]):
    """A validated canonical targets map kept as the bytes ``raw[start:end]``.

    Lookups search the bytes: in a map of the proven shape every ``"`` is a
    string delimiter, so ``"NAME":{"hashes":`` can only be the entry of NAME.
    """

    __slots__ = ("_count", "_end", "_raw", "_start", "placeholder")

    def __init__(self, raw: bytes, start: int, end: int, count: int, placeholder: str) -> None:
        self._raw = raw
        self._start = start
        self._end = end
        self._count = count
        #: the string that stands for the map in the decoded ``signed`` object
        self.placeholder = placeholder

    def view(self) -> memoryview:
        return memoryview(self._raw)[self._start : self._end]

    def span(self) -> tuple[int, int]:
        """Where the map is in the file's bytes: ``raw[start:end]``."""
        return self._start, self._end

    def _find(self, name: str) -> re.Match[bytes] | None:
        if not name.isascii():
            return None  # every name in the map is ASCII
        key = name.encode("ascii")
        if _lean_re().name.fullmatch(key) is None:
            return None  # a name the map cannot hold (a quote, a backslash, a control)
        pos = self._raw.find(b'"' + key + b'":{"hashes":', self._start, self._end)
        return None if pos < 0 else _lean_re().entry.match(self._raw, pos, self._end)

    @staticmethod
    def _meta(m: re.Match[bytes]) -> FileMeta:
        hashes = {"sha256": binascii.a2b_base64(m.group(2), strict_mode=True)}
        if m.group(3) is not None:
            hashes["sha512"] = binascii.a2b_base64(m.group(3), strict_mode=True)
        return FileMeta(length=int(m.group(4)), hashes=hashes)

    def file_meta(self, name: str) -> FileMeta | None:
        m = self._find(name)
        return None if m is None else self._meta(m)

    def file_metas(self) -> Iterator[tuple[str, FileMeta]]:
        for m in _lean_re().entry.finditer(self._raw, self._start, self._end):
            yield m.group(1).decode("ascii"), self._meta(m)

    # Mapping: the JSON objects, as the general path keeps them
    def __getitem__(self, name: str) -> dict[str, Any]:
        m = self._find(name)
        if m is None:
            raise KeyError(name)
        return self._json(m)

    @staticmethod
    def _json(m: re.Match[bytes]) -> dict[str, Any]:
        hashes = {"sha256": m.group(2).decode("ascii")}
        if m.group(3) is not None:
            hashes["sha512"] = m.group(3).decode("ascii")
        return {"hashes": hashes, "length": int(m.group(4))}

    def __iter__(self) -> Iterator[str]:
        for m in _lean_re().entry.finditer(self._raw, self._start, self._end):
            yield m.group(1).decode("ascii")

    def __len__(self) -> int:
        return self._count

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) is not None


def _lean_targets_span(raw: bytes) -> tuple[int, int, int] | None:
    """(start, end, entries) of a targets map of the lean shape, or None.

    The first ``"targets":{`` is taken; whether it is ``signed.targets`` is
    decided by the caller (the placeholder must land there).
    """
    if type(raw) is not bytes or len(raw) < LEAN_MIN_BYTES:
        return None  # (a bytearray or memoryview takes the general path)
    start = raw.find(_LEAN_TARGETS_KEY)
    if start < 0:
        return None
    start += len(_LEAN_TARGETS_KEY) - 1
    patterns = _lean_re()
    m = patterns.map.match(raw, start)
    if m is None:
        return None
    end = m.end()
    first = patterns.first_name.match(raw, start, end)
    if first is None:
        return (start, end, 0) if end - start == 2 else None
    names = [first.group(1), *patterns.next_names.findall(raw, start, end)]
    # canonical order and no duplicate key: strictly increasing bytes
    if not all(map(bytes.__lt__, names, islice(names, 1, None))):
        return None
    return start, end, len(names)


def _parse_targets_lean(role: str, raw: bytes) -> TargetsMeta | None:
    """The lean path of :func:`parse_targets`; None when it does not apply.

    The map's bytes are replaced by a placeholder string, the rest (small) is
    decoded and checked as usual; the placeholder must come back as
    ``signed.targets``. It is derived from the rest's hash, so the file cannot
    carry it itself (a duplicate ``targets`` key holding it would need a hash
    fixed point).
    """
    span = _lean_targets_span(raw)
    if span is None:
        return None
    start, end, count = span
    digest = hashlib.sha256()
    digest.update(memoryview(raw)[:start])
    digest.update(memoryview(raw)[end:])
    placeholder = "trustcheck-lean-targets-" + digest.hexdigest()
    rest = b"".join(
        (memoryview(raw)[:start], b'"', placeholder.encode(), b'"', memoryview(raw)[end:])
    )
    top = canonical.loads_fast(rest)
    del rest
    if top is None or not canonical.go_exact(top):
        return None
    lean = LeanTargets(raw, start, end, count, placeholder)
    meta, _ = _parse_targets(role, raw, top, lean)
    return meta


def base64_std(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def hash_size_problem(meta: FileMeta) -> str | None:
    """What is wrong with a sha256/sha512 hash of the wrong size, or None."""
    for algo, size in (("sha256", 32), ("sha512", 64)):
        digest = meta.hashes.get(algo)
        if digest is not None and len(digest) != size:
            return f"its {algo} hash is {len(digest)} bytes, not {size}"
    return None


def _check_hash_sizes(role: str, name: str, meta: FileMeta) -> None:
    """notary's CheckValidHashStructures: sha256 is 32 bytes, sha512 64."""
    for algo, size in (("sha256", 32), ("sha512", 64)):
        digest = meta.hashes.get(algo)
        if digest is not None and len(digest) != size:
            raise _structure(role, f"{name}: {algo} hash must be {size} bytes, not {len(digest)}")


def _keys(value: Any, where: str) -> dict[str, TufKey]:
    keys: dict[str, TufKey] = {}
    for keyid, item in _go_map(value, where).items():
        kw = f"{where}[{keyid[:16]}]"
        if item is None:  # Go: the zero TUFKey (no type, no key); unusable, not an error
            keys[keyid] = TufKey("", b"")
            continue
        keytype, keyval = _fields(item, ("keytype", "keyval"), kw)
        public, private = (
            _fields(keyval, ("public", "private"), kw + ".keyval")
            if keyval not in (_MISSING, None)
            else (_MISSING, _MISSING)
        )
        # notary's KeyPair decodes ``private`` as []byte too: bad base64 fails the file
        _go_bytes(private, kw + ".keyval.private")
        keys[keyid] = TufKey(
            _go_str(keytype, kw + ".keytype"), _go_bytes(public, kw + ".keyval.public")
        )
    return keys


def parse_root(raw: bytes) -> RootMeta:
    role = "root"
    signed, sigs = _envelope(role, raw)
    try:
        type_, version, expires, (keys_raw, roles_raw, consistent) = _common(
            role, signed, ("keys", "roles", "consistent_snapshot")
        )
        _check_type(role, type_)
        keys = _keys(keys_raw, "keys")
        roles: dict[str, RoleKeys] = {}
        for name, item in _go_map(roles_raw, "roles").items():
            if item is None:  # Go: a nil *RootRole; a base role then counts as missing
                continue
            keyids, threshold = _fields(item, ("keyids", "threshold"), f"roles.{name}")
            roles[name] = RoleKeys(
                keyids=[
                    _go_str(k, f"roles.{name}.keyids")
                    for k in _go_list(keyids, f"roles.{name}.keyids")
                ],
                threshold=_go_int(threshold, f"roles.{name}.threshold"),
            )
        _go_bool(consistent, "consistent_snapshot")
    except _Bad as e:
        raise _structure(role, str(e)) from e
    _check_version(role, version)
    # notary's isValidRootStructure: every base role, threshold >= 1, keys present
    for base in BASE_ROLES:
        rk = roles.get(base)
        if rk is None:
            raise _structure(role, f"root.json defines no {base!r} role")
        if rk.threshold < 1:
            raise _structure(
                role, f"role {base!r} has threshold {rk.threshold}; it must be at least 1"
            )
        for keyid in rk.keyids:
            if keyid not in keys:
                raise _structure(
                    role, f"role {base!r} lists key {keyid[:16]}… which root.json does not define"
                )
    return RootMeta(role, raw, signed, sigs, type_, version, expires, keys=keys, roles=roles)


def _meta_map(role: str, value: Any) -> dict[str, FileMeta]:
    out: dict[str, FileMeta] = {}
    for name, item in _go_map(value, "meta").items():
        fm = _file_meta(item, f"meta.{name}")
        _check_hash_sizes(role, name, fm)
        out[name] = fm
    return out


def parse_timestamp(raw: bytes) -> TimestampMeta:
    role = "timestamp"
    signed, sigs = _envelope(role, raw)
    try:
        type_, version, expires, (meta_raw,) = _common(role, signed, ("meta",))
        meta = _meta_map(role, meta_raw)
    except _Bad as e:
        raise _structure(role, str(e)) from e
    return TimestampMeta(role, raw, signed, sigs, type_, version, expires, meta=meta)


def check_timestamp_structure(ts: TimestampMeta) -> None:
    _check_type(ts.role, ts.type)
    _check_version(ts.role, ts.version)
    snap = ts.meta.get("snapshot")
    if snap is None or "sha256" not in snap.hashes:
        raise _structure("timestamp", "meta.snapshot with a sha256 hash is required")


def parse_snapshot(raw: bytes) -> SnapshotMeta:
    role = "snapshot"
    signed, sigs = _envelope(role, raw)
    try:
        type_, version, expires, (meta_raw,) = _common(role, signed, ("meta",))
        meta = _meta_map(role, meta_raw)
    except _Bad as e:
        raise _structure(role, str(e)) from e
    return SnapshotMeta(role, raw, signed, sigs, type_, version, expires, meta=meta)


def check_snapshot_structure(snap: SnapshotMeta) -> None:
    _check_type(snap.role, snap.type)
    _check_version(snap.role, snap.version)
    for base in ("root", "targets"):
        fm = snap.meta.get(base)
        if fm is None or "sha256" not in fm.hashes:
            raise _structure("snapshot", f"meta.{base} with a sha256 hash is required")


def _targets_map(top: Any) -> Any:
    signed = top.get("signed") if type(top) is dict else None
    return signed.get("targets") if type(signed) is dict else None


def parse_targets(role: str, raw: bytes) -> TargetsMeta:
    """Parse a targets role. Large roles take orjson's fast path: the targets
    map is checked for Go-exact numbers by the same loop that validates it,
    everything else by :func:`trustcheck.core.canonical.go_exact`."""
    try:
        lean = _parse_targets_lean(role, raw)
    except NotTrusted:
        lean = None  # the general path below gives the same verdict, and its message
    if lean is not None:
        return lean
    top = canonical.loads_fast(raw)
    if top is not None and not canonical.go_exact(top, skip=_targets_map(top)):
        top = None
    meta, exact = _parse_targets(role, raw, _MISSING if top is None else top)
    if not exact:  # a number Go would round or refuse: decode exactly, check again
        meta, _ = _parse_targets(role, raw, _MISSING)
    assert meta is not None  # None only for a lean map
    return meta


def _parse_targets(
    role: str, raw: bytes, top: Any, lean: LeanTargets | None = None
) -> tuple[TargetsMeta | None, bool]:
    signed, sigs = _envelope(role, raw, top)
    try:
        type_, version, expires, (targets_raw, deleg_raw) = _common(
            role, signed, ("targets", "delegations")
        )
        targets: Mapping[str, Any]
        if lean is not None:
            if type(targets_raw) is not str or targets_raw != lean.placeholder:
                return None, False  # the map found was not signed.targets
            targets, exact = lean, True
        else:
            targets = _go_map(targets_raw, "targets")
            exact = _validate_targets(targets)
        dkeys: dict[str, TufKey] = {}
        delegations: list[Delegation] = []
        if deleg_raw is not _MISSING and deleg_raw is not None:
            keys_raw, roles_raw = _fields(deleg_raw, ("keys", "roles"), "delegations")
            dkeys = _keys(keys_raw, "delegations.keys")
            for i, item in enumerate(_go_list(roles_raw, "delegations.roles")):
                w = f"delegations.roles[{i}]"
                name, keyids, threshold, paths = _fields(
                    item, ("name", "keyids", "threshold", "paths"), w
                )
                delegations.append(
                    Delegation(
                        name=_go_str(name, w + ".name"),
                        keyids=_go_strs(keyids, w + ".keyids"),
                        threshold=_go_int(threshold, w + ".threshold"),
                        paths=_go_strs(paths, w + ".paths"),
                    )
                )
    except _Bad as e:
        raise _structure(role, str(e)) from e
    meta = TargetsMeta(
        role,
        raw,
        signed,
        sigs,
        type_,
        version,
        expires,
        targets=targets,
        delegation_keys=dkeys,
        delegations=delegations,
    )
    return meta, exact


def check_targets_structure(tm: TargetsMeta, is_delegation_name: Any) -> None:
    """notary's isValidTargetsStructure for ``tm`` (base targets or a delegation)."""
    _check_type(tm.role, tm.type)
    _check_version(tm.role, tm.version)
    seen: set[str] = set()
    for d in tm.delegations:
        if not is_delegation_name(d.name):
            raise NotTrusted(
                ErrorCode.INVALID_DELEGATION,
                f"{tm.role} delegates to {d.name[:80]!r}, which is not a valid delegation name "
                "(targets/<lower-case name>)",
                role=tm.role,
            )
        parent = d.name.rsplit("/", 1)[0]
        if parent != tm.role:
            raise NotTrusted(
                ErrorCode.INVALID_DELEGATION,
                f"{tm.role} delegates to {d.name!r}, which is not its direct child",
                role=tm.role,
            )
        if d.name in seen:
            raise NotTrusted(
                ErrorCode.INVALID_DELEGATION,
                f"{tm.role} lists delegation {d.name!r} twice",
                role=tm.role,
            )
        seen.add(d.name)
        if d.threshold < 1:
            raise NotTrusted(
                ErrorCode.INVALID_DELEGATION,
                f"delegation {d.name!r} has threshold {d.threshold}; it must be at least 1",
                role=tm.role,
            )
        for keyid in d.keyids:
            if keyid not in tm.delegation_keys:
                raise NotTrusted(
                    ErrorCode.INVALID_DELEGATION,
                    f"delegation {d.name!r} lists key {keyid[:16]}…, "
                    f"which {tm.role} does not define",
                    role=tm.role,
                )
