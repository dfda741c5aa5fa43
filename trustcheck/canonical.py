"""Go-compatible JSON decoding and notary's canonical JSON (notary-v1-spec.md §1).

Notary verifies a signature over the *canonical re-encoding* of the decoded
``signed`` object, never over the bytes on the wire:

* decoding follows Go's ``encoding/json`` into ``interface{}``: every number
  becomes a float64 (``1.0`` -> 1, ``9007199254740993`` -> 9007199254740992,
  integers >= 2**63 overflow to -2**63 on conversion back to int64, ``1E400``
  is a decode error); invalid UTF-8 and lone surrogates become U+FFFD;
* encoding (``json.MarshalCanonical``) writes maps with keys sorted by their
  UTF-8 bytes, no whitespace, strings with only ``"`` and ``\\`` escaped
  (control characters raw, no HTML escaping), and numbers as integers; a
  non-integral number is an error.

The fast path uses the C-accelerated :func:`json.dumps` and fixes the only
string difference (control characters) afterwards; the slow, obviously
correct reference encoder :func:`encode_reference` is kept for tests.
"""

from __future__ import annotations

import json
import math
import re
from types import ModuleType
from typing import Any

_orjson: ModuleType | None
try:  # a declared dependency; the exact paths below work without it
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None

__all__ = [
    "CanonicalError",
    "DecodeError",
    "decode",
    "encode",
    "encode_reference",
]

_INT64_MIN = -(1 << 63)
_INT64_LIMIT = 1 << 63
_EXACT = 1 << 53


class DecodeError(ValueError):
    """The bytes are not JSON that Go's decoder accepts."""


class CanonicalError(ValueError):
    """The value cannot be canonicalised (Go: ``json: unsupported value``)."""


class _NonIntegral:
    """A decoded number that MarshalCanonical refuses (e.g. ``1.5``)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"<non-integral number {self.text}>"

    def __float__(self) -> float:
        return float(self.text)


def _go_int(value: float) -> int:
    """Go's ``int64(f)`` for an integral float64 (amd64 overflow behaviour)."""
    if value >= _INT64_LIMIT or value < _INT64_MIN:
        return _INT64_MIN
    return int(value)


def _parse_int(text: str) -> int:
    if len(text) < 16:  # |n| < 10**15 < 2**53: exact as float64
        return int(text)
    number = int(text)
    if -_EXACT <= number <= _EXACT:
        return number
    as_float = float(number)  # round-half-even to float64, as Go's ParseFloat
    if math.isinf(as_float):
        raise DecodeError(f"number {text[:40]} is out of range")
    return _go_int(as_float)


class FloatInt(int):
    """An integral number written with a fraction or exponent (``1.0``, ``1e2``).

    It canonicalises as the integer (it *is* an ``int``), but Go refuses it for
    a typed ``int`` field, so the typed parser can tell it apart.
    """

    __slots__ = ()


def _parse_float(text: str) -> int | _NonIntegral:
    value = float(text)
    if math.isinf(value) or math.isnan(value):
        raise DecodeError(f"number {text[:40]} is out of range")
    if value.is_integer():
        return FloatInt(_go_int(value))
    return _NonIntegral(text)


def _bad_constant(text: str) -> Any:
    raise DecodeError(f"invalid JSON value {text}")


_decoder = json.JSONDecoder(
    parse_int=_parse_int,
    parse_float=_parse_float,
    parse_constant=_bad_constant,
)

_SURROGATE = re.compile("[\ud800-\udfff]")


# A number with a fraction or exponent, or a digit run long enough to exceed
# 2**53, somewhere in the bytes: the fast decoder would not give Go's numbers.
# (A match inside a string is harmless: it only selects the exact path.)
# (Three searches that each start with a literal are several times faster in
# Python's regex engine than one alternation.)
_SUSPECT_NUMBER = tuple(
    re.compile(re.escape(c) + rb"\s*-?(?:[0-9]{16}|[0-9]+[.eE])") for c in (b":", b"[", b",")
)
_SUSPECT_OUTPUT = tuple(
    re.compile(re.escape(c) + rb"-?(?:[0-9]{16}|[0-9]+[.eE])") for c in (b":", b"[", b",")
)


def _suspect(patterns: tuple[re.Pattern[bytes], ...], data: bytes) -> bool:
    return any(p.search(data) for p in patterns)


def decode(data: bytes) -> Any:
    """Decode JSON bytes the way Go decodes into ``interface{}``.

    Raises :class:`DecodeError` for anything Go's decoder rejects.
    Numbers come back as ``int`` (after float64 rounding) or as an opaque
    non-integral marker that :func:`encode` refuses.

    Fast path: orjson, when the bytes are valid UTF-8 JSON without fractions,
    exponents or long digit runs (then its result is exactly Go's). Anything
    else takes the exact path below.
    """
    if _orjson is not None and not _suspect(_SUSPECT_NUMBER, data):
        try:
            return _orjson.loads(data)
        except _orjson.JSONDecodeError:
            pass  # invalid UTF-8, lone surrogates, nesting, syntax: decide exactly
    return _decode_exact(data)


def _decode_exact(data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
    try:
        value, end = _decoder.raw_decode(text, _skip_ws(text, 0))
    except RecursionError as e:
        raise DecodeError("JSON nested too deeply") from e
    except json.JSONDecodeError as e:
        raise DecodeError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
    if _skip_ws(text, end) != len(text):
        raise DecodeError("invalid JSON: unexpected data after the top-level value")
    return value


def _skip_ws(text: str, pos: int) -> int:
    # JSON whitespace only: space, tab, CR, LF (Go is as strict).
    n = len(text)
    while pos < n and text[pos] in " \t\r\n":
        pos += 1
    return pos


def has_lone_surrogates(value: str) -> bool:
    return _SURROGATE.search(value) is not None


# Escapes json.dumps(ensure_ascii=False) may emit: \" \\ \n \r \t \b \f \u00XX.
_ESCAPE = re.compile(r'\\(["\\nrtbf]|u[0-9a-f]{4})')
_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}


def _unescape_controls(match: re.Match[str]) -> str:
    esc = match.group(1)
    if esc in ('"', "\\"):
        return match.group(0)
    if esc in _SIMPLE:
        return _SIMPLE[esc]
    return chr(int(esc[1:], 16))


def _default(obj: object) -> Any:
    if isinstance(obj, _NonIntegral):
        raise CanonicalError(f"json: unsupported value: {obj.text}")
    raise CanonicalError(f"json: unsupported type {type(obj).__name__}")


_ESCAPE_B = re.compile(rb'\\(["\\nrtbf]|u[0-9a-fA-F]{4})')
_SIMPLE_B = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _unescape_controls_b(match: re.Match[bytes]) -> bytes:
    esc = match.group(1)
    if esc in (b'"', b"\\"):
        return match.group(0)
    simple = _SIMPLE_B.get(esc)
    if simple is not None:
        return simple
    return chr(int(esc[1:], 16)).encode("utf-8")


def encode(value: Any, *, from_decode: bool = False) -> bytes:
    """Notary's canonical encoding (``json.MarshalCanonical`` of a decoded map).

    Fast path: orjson with sorted keys (UTF-8 order for valid strings), then
    control-character escapes turned back into raw bytes; any float, big
    integer or lone surrogate takes the exact path. ``from_decode`` says the
    value came from :func:`decode`, whose numbers are already Go's (so the
    output need not be searched for floats).
    """
    if _orjson is not None:
        out: bytes | None
        try:
            out = _orjson.dumps(value, option=_orjson.OPT_SORT_KEYS)
        except (TypeError, _orjson.JSONEncodeError):
            out = None
        if out is not None and (from_decode or not _suspect(_SUSPECT_OUTPUT, out)):
            if b"\\" in out:
                out = _ESCAPE_B.sub(_unescape_controls_b, out)
            return out
    return _encode_exact(value)


def _encode_exact(value: Any) -> bytes:
    try:
        text = json.dumps(
            value,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            default=_default,
            check_circular=False,
        )
    except RecursionError as e:
        raise CanonicalError("value nested too deeply") from e
    except ValueError as e:
        if isinstance(e, CanonicalError):
            raise
        raise CanonicalError(str(e)) from e
    if "\\" in text:
        text = _ESCAPE.sub(_unescape_controls, text)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # lone surrogates from \ud800-style escapes: Go decodes them to U+FFFD
        return _SURROGATE.sub("\ufffd", text).encode("utf-8")


def _ref_string(value: str) -> bytes:
    raw = _SURROGATE.sub("\ufffd", value).encode("utf-8")
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def encode_reference(value: Any) -> bytes:
    """A direct transcription of notary-v1-spec.md §1.3, for tests."""
    if value is None:
        return b"null"
    if value is True:
        return b"true"
    if value is False:
        return b"false"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise CanonicalError(f"json: unsupported value: {value}")
        return str(_go_int(value)).encode()
    if isinstance(value, _NonIntegral):
        raise CanonicalError(f"json: unsupported value: {value.text}")
    if isinstance(value, str):
        return _ref_string(value)
    if isinstance(value, list):
        return b"[" + b",".join(encode_reference(v) for v in value) + b"]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: _SURROGATE.sub("\ufffd", kv[0]).encode())
        return (
            b"{" + b",".join(_ref_string(k) + b":" + encode_reference(v) for k, v in items) + b"}"
        )
    raise CanonicalError(f"json: unsupported type {type(value).__name__}")
