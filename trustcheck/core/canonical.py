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

Fast paths use orjson (decoding, and encoding with sorted keys, control
characters turned back into raw bytes) whenever its numbers are provably
Go's (:func:`go_exact`); everything else takes the exact paths: the stdlib
decoder with Go's number rules, and :func:`encode_reference`, a direct
transcription of the spec's rule.
"""

from __future__ import annotations

import codecs
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


#: longer integer literals are beyond float64 (> 1e308): Go's ParseFloat
#: answers a range error; Python's int() would refuse them above 4,300 digits
_INT_DIGITS_MAX = 400


def _parse_int(text: str) -> int:
    if len(text) < 16:  # |n| < 10**15 < 2**53: exact as float64
        return int(text)
    if len(text) > _INT_DIGITS_MAX:
        raise DecodeError(f"number {text[:40]}... ({len(text)} digits) is out of range")
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
    try:
        value = float(text)
    except (ValueError, OverflowError) as e:  # defensive: JSON grammar guarantees a float
        raise DecodeError(f"number {text[:40]} cannot be read") from e
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


_EXACT_INT = 1 << 53
_SCALARS = frozenset((str, bool, type(None)))


def go_exact(value: Any, skip: object = None) -> bool:
    """True when every number in ``value`` is an integer Go would keep exactly.

    A value decoded by orjson is Go's value exactly when it holds no float and
    no integer beyond 2**53 (Go rounds those through float64). ``skip`` names
    one container not to descend into, because the caller checks it itself
    (notary's ``targets`` map, see :func:`trustcheck.core.model.parse_targets`).
    """
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is dict:
            if v is not skip:
                stack.extend(v.values())
        elif t is list:
            if not set(map(type, v)) <= _SCALARS:  # e.g. delegation paths: skip in bulk
                stack.extend(v)
        elif t is int:
            if not -_EXACT_INT <= v <= _EXACT_INT:
                return False
        elif t is float:
            return False
    return True


def loads_fast(data: bytes) -> Any | None:
    """orjson's decoding, or None when orjson refuses the bytes.

    The result equals Go's decoding only if :func:`go_exact` holds for it;
    otherwise use :func:`decode`.
    """
    if _orjson is None:
        return None
    try:
        return _orjson.loads(data)
    except _orjson.JSONDecodeError:
        return None  # invalid UTF-8, lone surrogates, nesting, syntax: decide exactly


def decode(data: bytes) -> Any:
    """Decode JSON bytes the way Go decodes into ``interface{}``.

    Raises :class:`DecodeError` for anything Go's decoder rejects.
    Numbers come back as ``int`` (after float64 rounding) or as an opaque
    non-integral marker that :func:`encode` refuses.

    Fast path: orjson, kept when its result has only integers within 2**53
    (then it is exactly Go's); anything else takes the exact path.
    """
    value = loads_fast(data)
    if value is not None and go_exact(value):
        return value
    return _decode_exact(data)


def _go_replace(err: UnicodeError) -> tuple[str, int]:
    """Go's rule for invalid UTF-8 in a JSON string: one U+FFFD per invalid byte.

    ``utf8.DecodeRune`` answers ``(RuneError, 1)`` for every byte that does not
    start a valid sequence, so a truncated 3-byte sequence becomes two U+FFFD
    (Python's "replace" gives one per maximal subpart). The bytes Python's
    decoder flags are exactly the ones no valid sequence covers.
    """
    if not isinstance(err, UnicodeDecodeError):
        raise err
    return "\ufffd" * (err.end - err.start), err.end


codecs.register_error("trustcheck-go-replace", _go_replace)

_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _fix_surrogates(value: Any) -> Any:
    """Go decodes an escaped lone surrogate (``"\\ud800"``) as U+FFFD; the stdlib
    keeps it. Replace them everywhere, map keys included (two keys that Go
    reads as the same string: the last one wins, as in Go)."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_fix_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_fix_surrogates(k): _fix_surrogates(v) for k, v in value.items()}
    return value


def _decode_exact(data: bytes) -> Any:
    text = data.decode("utf-8", errors="trustcheck-go-replace")
    try:
        value, end = _decoder.raw_decode(text, _skip_ws(text, 0))
    except RecursionError as e:
        raise DecodeError("JSON nested too deeply") from e
    except json.JSONDecodeError as e:
        raise DecodeError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
    except DecodeError:
        raise
    except (ValueError, OverflowError) as e:  # a number the hooks could not read
        raise DecodeError(f"invalid JSON number: {str(e)[:80]}") from e
    if _skip_ws(text, end) != len(text):
        raise DecodeError("invalid JSON: unexpected data after the top-level value")
    if _ESCAPED_SURROGATE.search(text) is not None:
        try:
            value = _fix_surrogates(value)
        except RecursionError as e:
            raise DecodeError("JSON nested too deeply") from e
    return value


def _skip_ws(text: str, pos: int) -> int:
    # JSON whitespace only: space, tab, CR, LF (Go is as strict).
    n = len(text)
    while pos < n and text[pos] in " \t\r\n":
        pos += 1
    return pos


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
    value came from :func:`decode` (or passed :func:`go_exact`), so its
    numbers need no second look.
    """
    if _orjson is not None:
        out: bytes | None
        try:
            out = _orjson.dumps(value, option=_orjson.OPT_SORT_KEYS)
        except (TypeError, _orjson.JSONEncodeError):
            out = None
        if out is not None and (from_decode or go_exact(value)):
            if b"\\" in out:
                out = _ESCAPE_B.sub(_unescape_controls_b, out)
            return out
    return _encode_exact(value)


def _encode_exact(value: Any) -> bytes:
    try:
        return encode_reference(value)
    except RecursionError as e:
        raise CanonicalError("value nested too deeply") from e


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
