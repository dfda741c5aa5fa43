"""Keys, key IDs, PEM handling and signature verification, as notary 0.7.0 does them.

Everything here follows notary-v1-spec.md section 2:

* :class:`TufKey` is a public key as it appears in root.json / targets.json
  (``keytype`` plus the *decoded* ``keyval.public`` bytes); its :attr:`TufKey.id`
  is the key ID of spec 2.3.
* :func:`canonical_key_id` is spec 2.4 (the ID of the bare public key inside an
  x509 key).
* :func:`pem_first_block` / :func:`pem_blocks` decode PEM with the semantics of
  Go 1.19's ``encoding/pem.Decode`` (the Go notary 0.7.0 is built with).
* :func:`verify_signature` is the verifier table of spec 2.1 / 2.2.  It never
  raises: any unsupported combination, undecodable key or bad signature is
  ``False``.

The ``cryptography`` package is imported lazily so that importing this module
stays cheap (start-up time matters for the CLI).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "ECDSA_X509",
    "KEY_TYPES",
    "RSA_X509",
    "X509_KEY_TYPES",
    "PemBlock",
    "TufKey",
    "canonical_key_id",
    "cert_key_algorithm",
    "cert_of",
    "describe_key",
    "go_b64decode",
    "key_id",
    "load_cert_from_pem",
    "parse_certificate",
    "pem_blocks",
    "pem_first_block",
    "verify_signature",
]

ECDSA = "ecdsa"
ECDSA_X509 = "ecdsa-x509"
RSA = "rsa"
RSA_X509 = "rsa-x509"
ED25519 = "ed25519"

#: Key types notary knows (spec 2.1); anything else is an "unknown" key no
#: verifier accepts.  ``keytype`` is case-sensitive.
KEY_TYPES = frozenset({ECDSA, ECDSA_X509, RSA, RSA_X509, ED25519})
X509_KEY_TYPES = frozenset({ECDSA_X509, RSA_X509})

# Signature methods (already lower-cased by the parser, spec 1.5).
_M_ECDSA = "ecdsa"
_M_RSAPSS = "rsapss"
_M_PKCS1V15 = "rsapkcs1v15"
_M_PYCRYPTO = "pycrypto-pkcs#1 pss"
_M_EDDSA = "eddsa"

_MIN_RSA_BITS = 2048
_MIN_RSA_SIG_BYTES = _MIN_RSA_BITS // 8

# Curves Go's x509 package can decode (anything else fails to parse in Go).
_GO_CURVES = {
    "secp224r1": "P-224",
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
}


# --------------------------------------------------------------------------
# Key IDs (spec 2.3)
# --------------------------------------------------------------------------


def _go_canonical_string(s: str) -> bytes:
    """A JSON string as the canonical encoder writes it (only ``\\`` and ``"`` escaped)."""
    raw = s.encode("utf-8", "surrogatepass")
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def key_id(keytype: str, public: bytes) -> str:
    """The TUF key ID notary computes for a key (spec 2.3).

    sha256 of ``{"keytype":<type>,"keyval":{"private":null,"public":<b64>}}`` in
    canonical form, where ``<b64>`` is the standard, padded base64 of the
    decoded public bytes (not the literal string from the file).
    """
    digest = hashlib.sha256(b'{"keytype":')
    digest.update(_go_canonical_string(keytype))
    digest.update(b',"keyval":{"private":null,"public":"')
    digest.update(base64.b64encode(public))  # hashed in parts: no copy of a huge key
    digest.update(b'"}}')
    return digest.hexdigest()


class TufKey:
    """A public key as stored in notary metadata: ``keytype`` and decoded ``public`` bytes.

    Instances are immutable and hashable; :attr:`id` is computed once.
    """

    __slots__ = ("_id", "keytype", "public")

    keytype: str
    public: bytes
    _id: str | None

    def __init__(self, keytype: str, public: bytes) -> None:
        object.__setattr__(self, "keytype", keytype)
        object.__setattr__(self, "public", bytes(public))
        object.__setattr__(self, "_id", None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"TufKey is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"TufKey is immutable (cannot delete {name!r})")

    @property
    def id(self) -> str:
        """The key ID (spec 2.3), computed from the content."""
        cached = self._id
        if cached is None:
            cached = key_id(self.keytype, self.public)
            object.__setattr__(self, "_id", cached)
        return cached

    @property
    def is_x509(self) -> bool:
        return self.keytype in X509_KEY_TYPES

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TufKey):
            return NotImplemented
        return self.keytype == other.keytype and self.public == other.public

    def __hash__(self) -> int:
        return hash((self.keytype, self.public))

    def __repr__(self) -> str:
        return f"TufKey({self.keytype!r}, id={self.id[:12]}…)"


# --------------------------------------------------------------------------
# Go-compatible base64 and PEM (encoding/base64 StdEncoding, encoding/pem)
# --------------------------------------------------------------------------

_B64_STD = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


def go_b64decode(data: bytes) -> bytes | None:
    """Decode like Go's ``base64.StdEncoding.Decode``; ``None`` where Go errors.

    ``\\r`` and ``\\n`` are ignored anywhere; padding is required; nothing may
    follow the padding; non-zero trailing bits are tolerated (as in Go).
    """
    data = data.replace(b"\r", b"").replace(b"\n", b"")
    if len(data) % 4 or not _B64_STD.fullmatch(data):
        return None
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


class PemBlock:
    """One decoded PEM block: ``type``, ``headers`` and the DER ``data``."""

    __slots__ = ("data", "headers", "type")

    def __init__(self, type_: str, headers: dict[str, str], data: bytes) -> None:
        self.type = type_
        self.headers = headers
        self.data = data

    def __repr__(self) -> str:
        return f"PemBlock({self.type!r}, {len(self.data)} bytes)"


_PEM_START = b"\n-----BEGIN "
_PEM_END = b"\n-----END "
_PEM_EOL = b"-----"


_B64_OK = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n \t"
#: a valid BEGIN type line followed by a line with a colon: a header run
_SWALLOWER = re.compile(rb"-----BEGIN [^\n]*-----[ \t]*\r?\n[^\n:]*:")
#: a BEGIN line (after its newline) whose trimmed text ends with the marker
_VALID_BEGIN_NEXT = re.compile(rb"\n-----BEGIN [^\n]*-----[ \t]*\r?(?=\n)")
#: Go pem's header loop ends at the first line without a colon (found after a
#: newline: a literal first byte lets the regex engine skip ahead quickly)
_COLON_FREE_NEXT = re.compile(rb"\n[^:\n]*(?:\n|\Z)")


def _colon_free_line(buf: bytes, pos: int) -> int:
    """Start of the first line at or after the line start ``pos`` without a colon
    (``len(buf)`` for the empty rest after a final newline), or -1."""
    nl = buf.find(b"\n", pos)
    if buf.find(b":", pos, len(buf) if nl < 0 else nl) < 0:
        return pos
    found = _COLON_FREE_NEXT.search(buf, pos)
    return -1 if found is None else found.start() + 1


class _PemScanner:
    """Go 1.19's ``pem.Decode``, repeated over one buffer, in linear time.

    Go searches the END marker again for every BEGIN line and copies the body
    each time: a file of BEGIN lines without END costs quadratic time (1.4 MB
    took 11 s). Here positions index one buffer and what every BEGIN before
    the same END line would recompute is computed once per END line. The
    blocks found are exactly Go's, because:

    * with no END marker after a position, no block can start there;
    * a block ending at an END line of type ``T`` starts with a BEGIN line of
      type ``T``; when the END line has no colon, neither it nor such a BEGIN
      line can be eaten by another block's header run, and every earlier one
      has a later one (with its dashes, not base64) in its body: only the
      last BEGIN ``T`` line before the END line can succeed, so the scan jumps
      to it; the same holds when no BEGIN line before the END line is
      followed by a colon line (no header run at all);
    * otherwise every BEGIN is tried, and a body holding a byte base64 never
      contains (found once per END line) is skipped without decoding.
    """

    __slots__ = (
        "_bad",
        "_bad_from",
        "_cand",
        "_cand_for",
        "_data",
        "_end",
        "_end_from",
        "_end_type",
        "_headers_from",
        "_headers_seen",
        "_headers_to",
        "_line_end",
        "_live",
        "_live_for",
    )

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._end_from = -1  # the END search below covers [_end_from, _end)
        self._end = -1  # index of "\n-----END " (or -2: none at or after _end_from)
        self._line_end = 0  # end of the END line's text (CR, trailing blanks trimmed)
        self._end_type: bytes | None = None  # the type a BEGIN line needs for this END
        self._bad_from = -1
        self._bad = -1  # last non-base64 byte in [_bad_from, _end), or -1
        self._headers_seen = False  # a header run may hide lines before this END line
        self._headers_from = 0
        self._headers_to = 0
        self._live_for = -1  # the END line _live was found for
        self._live = -1  # the last BEGIN line before it no header run swallows
        self._cand_for = -1  # the END line _cand was found for
        self._cand = -1  # the last BEGIN line before it that can match it, or -1

    def _line(self, pos: int) -> tuple[bytes, int]:
        """getLine at ``pos``: the line without ``\n``/``\r\n``, right-trimmed; next position."""
        data = self._data
        i = data.find(b"\n", pos)
        if i < 0:
            i = j = len(data)
        else:
            j = i + 1
            if i > pos and data[i - 1] == 0x0D:
                i -= 1
        return data[pos:i].rstrip(b" \t"), j

    def _find_end(self, pos: int) -> int:
        if not (self._end_from <= pos and (self._end == -2 or self._end >= pos)):
            data = self._data
            self._end_from = pos
            self._end = data.find(_PEM_END, pos)
            self._bad_from = -1
            self._end_type = None
            if self._end < 0:
                self._end = -2
            else:
                nl = data.find(b"\n", self._end + 1)
                if nl < 0:
                    nl = len(data)
                elif data[nl - 1] == 0x0D:
                    nl -= 1
                text = data[self._end + 1 : nl].rstrip(b" \t")
                self._line_end = self._end + 1 + len(text)
                head = len(_PEM_END) - 1
                if text.endswith(_PEM_EOL) and len(text) >= head + len(_PEM_EOL):
                    self._end_type = text[head : -len(_PEM_EOL)]
                # a header run could swallow the END line or a BEGIN line
                self._headers_seen = b":" in text  # refined in _jump, when it matters
                self._headers_from = pos
                self._headers_to = nl + 1
        return -1 if self._end == -2 else self._end

    def _body_has_bad_byte(self, pos: int, end: int) -> bool:
        """Does ``data[pos:end]`` hold a byte base64 never contains? (``end`` = cached END)"""
        if self._bad_from < 0 or pos < self._bad_from:
            self._bad_from = pos
            head = self._data[pos:end].rstrip(_B64_OK)  # up to the last bad byte
            self._bad = pos + len(head) - 1 if head else -1
        return self._bad >= pos

    def _jump(self, p: int) -> int:
        """Where the next BEGIN that can succeed may start (see the class doc)."""
        end = self._find_end(p)
        if end < 0:
            return -1
        if end - p < 512:
            return p  # a few lines: trying each BEGIN costs less than looking ahead
        if self._headers_seen and self._headers_to:
            self._headers_seen = (
                _SWALLOWER.search(self._data, self._headers_from, self._headers_to) is not None
            )
            self._headers_to = 0  # decided for this END line
        if self._headers_seen:  # header runs may hide BEGIN lines (and this END line)
            if self._live_for != end:
                self._live_for = end
                self._live = self._last_live_begin(p, end)
            return self._live if self._live >= p else end
        kind = self._end_type
        if kind is None:
            return end  # no BEGIN line can match this END line
        if self._cand_for != end:  # once per END line: its last BEGIN line of its type
            self._cand_for = end
            self._cand = -1
            line = _PEM_START[1:] + kind + _PEM_EOL
            hi = end
            while True:
                last = self._data.rfind(b"\n" + line, p, hi)
                cand = last + 1 if last >= 0 else p
                if (last >= 0 or self._data.startswith(line, p)) and self._line(cand)[0] == line:
                    self._cand = cand
                    break
                if last < 0:
                    break
                hi = last  # a longer BEGIN line (another type): look further back
        return self._cand if self._cand >= p else end

    def _last_live_begin(self, p: int, end: int) -> int:
        """The last BEGIN line in ``[p, end)`` that no header run swallows, or -1.

        Every earlier BEGIN line that is not swallowed has the next such line in
        its body (its header run stops before it), so only this one can succeed.
        """
        data = self._data
        last = -1
        for m in _VALID_BEGIN_NEXT.finditer(data, p, end + 1):
            last = m.start() + 1
        if last < 0:
            return p if self._valid_begin(p) else -1
        line_end = data.find(b"\n", last)
        if data.find(b":", last, line_end) < 0:
            return last  # not a header line: nothing swallows it
        # the run of colon lines that ends with it, and the line before that run
        rev = data[p : last - 1][::-1]
        free = _colon_free_line(rev, 0)
        if free < 0:
            run_start, before = p, -1
        else:
            ends = rev.find(b"\n", free)
            run_start = last - free
            before = last - 1 - (len(rev) if ends < 0 else ends)
        if before >= 0 and self._valid_begin(before):
            return before  # a BEGIN line whose header run swallows the rest
        if self._valid_begin(run_start):
            return run_start
        first = _VALID_BEGIN_NEXT.search(data, run_start, last)
        return first.start() + 1 if first is not None else last

    def _valid_begin(self, pos: int) -> bool:
        """Is the line at ``pos`` a BEGIN line with a valid type line?"""
        data = self._data
        return data.startswith(_PEM_START[1:], pos) and self._line(pos)[0].endswith(_PEM_EOL)

    def decode(self, start: int) -> tuple[PemBlock | None, int]:
        """One ``pem.Decode`` of ``data[start:]``: ``(block, next start)`` or ``(None, start)``."""
        data = self._data
        n = len(data)
        p = start
        while True:
            p = self._jump(p)
            if p < 0:
                return None, start
            if data.startswith(_PEM_START[1:], p):
                p += len(_PEM_START) - 1
            else:
                i = data.find(_PEM_START, p)
                if i < 0:
                    return None, start
                p = i + len(_PEM_START)

            type_line, p = self._line(p)
            if not type_line.endswith(_PEM_EOL):
                continue
            type_line = type_line[: -len(_PEM_EOL)]

            if p >= n:
                return None, start
            header_end = _colon_free_line(data, p)  # p starts a line
            if header_end < 0:
                header_end = n
            if header_end >= n:
                return None, start  # the header lines run to the end: Go gives up
            header_start, p = p, header_end

            cached = False
            if header_start == p and data.startswith(_PEM_END[1:], p):
                end_index = p
                trailer_index = p + len(_PEM_END) - 1
            else:
                end_index = self._find_end(p)
                if end_index < 0:
                    continue
                trailer_index = end_index + len(_PEM_END)
                cached = True

            trailer_len = len(type_line) + len(_PEM_EOL)
            if n - trailer_index < trailer_len:
                continue
            if not data.startswith(type_line, trailer_index) or not data.startswith(
                _PEM_EOL, trailer_index + len(type_line)
            ):
                continue
            after = trailer_index + trailer_len
            if cached:
                if after < self._line_end:
                    continue  # text after the END marker
                if self._body_has_bad_byte(p, end_index):
                    continue  # the base64 cannot decode
            elif self._line(after)[0]:
                continue

            b64 = data[p:end_index].replace(b" ", b"").replace(b"\t", b"")
            der = go_b64decode(b64)
            if der is None:
                continue
            _, rest = self._line(end_index + len(_PEM_END) - 1)
            return PemBlock(
                type_line.decode("utf-8", "replace"), self._headers(header_start, p), der
            ), rest

    def _headers(self, start: int, end: int) -> dict[str, str]:
        headers: dict[str, str] = {}
        pos = start
        while pos < end:
            line, pos = self._line(pos)
            colon = line.find(b":")
            key = line[:colon].strip().decode("utf-8", "replace")
            headers[key] = line[colon + 1 :].strip().decode("utf-8", "replace")
        return headers


def _pem_decode(data: bytes) -> tuple[PemBlock | None, bytes]:
    """One step of Go 1.19's ``pem.Decode``: ``(block, rest)`` or ``(None, data)``.

    Junk before a block is skipped; a block that looks like PEM but is invalid
    (unterminated, mismatched END type, bad base64, text after the END
    marker) is skipped and the search continues after its BEGIN line.
    """
    block, nxt = _PemScanner(data).decode(0)
    return (block, data[nxt:]) if block is not None else (None, data)


def pem_blocks(data: bytes) -> Iterator[PemBlock]:
    """Every PEM block Go would find in ``data``, in order (repeated ``pem.Decode``)."""
    scanner = _PemScanner(data)
    pos = 0
    while True:
        block, pos = scanner.decode(pos)
        if block is None:
            return
        yield block


def pem_first_block(data: bytes) -> tuple[str, bytes] | None:
    """The first PEM block as ``(type, der)``, or ``None`` (Go's ``pem.Decode``)."""
    if type(data) is bytes and len(data) <= _PEM_CACHE_MAX_BYTES:
        return _pem_first_block_cached(data)
    return _pem_first_block(data)


#: a key's PEM is decoded by the verifier, the certificate checks and the audit's key
#: report: remember the last few (a key's bytes, not a hostile 75 MiB root.json)
_PEM_CACHE_MAX_BYTES = 64 << 10


def _pem_first_block(data: bytes) -> tuple[str, bytes] | None:
    block, _ = _pem_decode(data)
    if block is None:
        return None
    return block.type, block.data


_pem_first_block_cached = lru_cache(maxsize=256)(_pem_first_block)


# --------------------------------------------------------------------------
# Minimal DER reading (only to find a certificate's SubjectPublicKeyInfo)
# --------------------------------------------------------------------------


def _der_tlv(buf: bytes, pos: int) -> tuple[int, int, int]:
    """``(tag, content_start, end)`` of the DER element at ``pos``; ValueError if malformed."""
    if pos + 2 > len(buf):
        raise ValueError("truncated DER")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise ValueError("high tag numbers are not used here")
    length = buf[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > len(buf):
            raise ValueError("bad DER length")
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    end = pos + length
    if end > len(buf):
        raise ValueError("truncated DER")
    return tag, pos, end


def _spki_of_tbs(tbs: bytes) -> bytes:
    """The SubjectPublicKeyInfo element (full TLV) of a DER TBSCertificate."""
    tag, pos, end = _der_tlv(tbs, 0)
    if tag != 0x30:
        raise ValueError("TBSCertificate is not a SEQUENCE")
    tag, _, nxt = _der_tlv(tbs, pos)
    if tag == 0xA0:  # [0] version
        pos = nxt
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
    for _ in range(5):
        _, _, pos = _der_tlv(tbs, pos)
    tag, _, spki_end = _der_tlv(tbs, pos)
    if tag != 0x30 or spki_end > end:
        raise ValueError("no SubjectPublicKeyInfo")
    return tbs[pos:spki_end]


_OID_RSA = bytes.fromhex("2a864886f70d010101")
_OID_EC = bytes.fromhex("2a8648ce3d0201")
_OID_ED25519 = bytes.fromhex("2b6570")


def _spki_algorithm(spki: bytes) -> bytes:
    """The algorithm OID (content bytes) of a DER SubjectPublicKeyInfo."""
    _, pos, _ = _der_tlv(spki, 0)
    _, pos, _ = _der_tlv(spki, pos)  # AlgorithmIdentifier
    tag, start, end = _der_tlv(spki, pos)
    if tag != 0x06:
        raise ValueError("AlgorithmIdentifier without OID")
    return spki[start:end]


# --------------------------------------------------------------------------
# Decoding public keys the way Go's x509 package does
# --------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _der_key_loader() -> tuple[Any, Any, Any]:
    """``serialization.load_der_public_key``, ``Encoding``, ``PublicFormat``.

    Importing ``cryptography.hazmat.primitives.serialization`` also imports its
    SSH module and the ciphers (6-12 ms of every verify's start-up, issue 18): the
    same objects are taken from where that package gets them, when they are there.
    """
    try:
        from cryptography.hazmat.bindings._rust import openssl as rust_openssl
        from cryptography.hazmat.primitives._serialization import Encoding, PublicFormat

        return rust_openssl.keys.load_der_public_key, Encoding, PublicFormat
    except (ImportError, AttributeError):  # pragma: no cover - another cryptography layout
        from cryptography.hazmat.primitives import serialization

        return (
            serialization.load_der_public_key,
            serialization.Encoding,
            serialization.PublicFormat,
        )


def _parse_spki(der: bytes) -> Any:
    """Go's ``x509.ParsePKIXPublicKey`` for RSA / EC / Ed25519; ``None`` if Go would fail.

    Round-tripping through ``cryptography`` rejects what Go's strict parser
    rejects: compressed EC points, RSA without NULL parameters, trailing data.
    """
    from cryptography.hazmat.primitives.asymmetric import ec

    load_der_public_key, Encoding, PublicFormat = _der_key_loader()
    try:
        key = load_der_public_key(der)
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in _GO_CURVES:
            return None
        if key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) != der:
            return None
    except Exception:
        return None
    return key


@lru_cache(maxsize=512)
def parse_certificate(der: bytes) -> x509.Certificate | None:
    """Parse a DER certificate roughly as strictly as Go's ``x509.ParseCertificate``.

    ``None`` where Go would fail: malformed DER or extensions, or an RSA / EC
    public key Go cannot decode (other key algorithms parse, with a key notary
    cannot use: see :func:`cert_key_algorithm`).
    """
    from cryptography import x509 as _x509

    try:
        cert = _x509.load_der_x509_certificate(der)
        _ = cert.extensions  # parsed lazily by cryptography, eagerly by Go
        _ = cert.not_valid_before_utc, cert.not_valid_after_utc, cert.subject
        spki = _spki_of_tbs(cert.tbs_certificate_bytes)
        if _spki_algorithm(spki) in (_OID_RSA, _OID_EC, _OID_ED25519) and _parse_spki(spki) is None:
            return None
    except Exception:
        return None
    return cert


def cert_key_algorithm(cert: x509.Certificate) -> str:
    """Go's ``cert.PublicKeyAlgorithm``: ``"rsa"``, ``"ecdsa"``, ``"ed25519"`` or ``"other"``."""
    try:
        oid = _spki_algorithm(_spki_of_tbs(cert.tbs_certificate_bytes))
    except ValueError:
        return "other"
    return {_OID_RSA: "rsa", _OID_EC: "ecdsa", _OID_ED25519: "ed25519"}.get(oid, "other")


def _cert_spki(cert: x509.Certificate) -> bytes | None:
    try:
        return _spki_of_tbs(cert.tbs_certificate_bytes)
    except ValueError:
        return None


def load_cert_from_pem(data: bytes) -> x509.Certificate | None:
    """notary's ``LoadCertFromPEM``: the first header-less CERTIFICATE block that parses."""
    for block in pem_blocks(data):
        if block.type != "CERTIFICATE" or block.headers:
            continue
        cert = parse_certificate(block.data)
        if cert is not None:
            return cert
    return None


def cert_of(key: TufKey) -> x509.Certificate | None:
    """The certificate an x509 key's verifier uses (first PEM block, any type); else ``None``."""
    if key.keytype not in X509_KEY_TYPES:
        return None
    return _first_block_cert(key.public)


def _first_block_cert(public: bytes) -> x509.Certificate | None:
    first = pem_first_block(public)
    if first is None:
        return None
    return parse_certificate(first[1])


@lru_cache(maxsize=1024)
def _public_key_object(keytype: str, public: bytes, pem_spki: bool) -> Any:
    """The decoded public key a notary verifier would use, or ``None``.

    ``pem_spki`` selects the ``pycrypto-pkcs#1 pss`` reading of an ``rsa`` key
    (first PEM block holding an SPKI).
    """
    try:
        if pem_spki:
            first = pem_first_block(public)
            return None if first is None else _parse_spki(first[1])
        if keytype in (ECDSA, RSA):
            return _parse_spki(public)
        if keytype in X509_KEY_TYPES:
            cert = _first_block_cert(public)
            if cert is None:
                return None
            spki = _cert_spki(cert)
            return None if spki is None else _parse_spki(spki)
        if keytype == ED25519:
            if len(public) != 32:
                return None
            from cryptography.hazmat.primitives.asymmetric import ed25519

            return ed25519.Ed25519PublicKey.from_public_bytes(public)
    except Exception:
        return None
    return None


# --------------------------------------------------------------------------
# Signature verification (spec 2.1 / 2.2)
# --------------------------------------------------------------------------


def _verify_ecdsa(pub: Any, sig: bytes, msg: bytes | memoryview) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    if not isinstance(pub, ec.EllipticCurvePublicKey):
        return False
    octets = (pub.curve.key_size + 7) // 8
    if len(sig) != 2 * octets:  # raw r||s only; DER signatures are rejected
        return False
    r = int.from_bytes(sig[:octets], "big")
    s = int.from_bytes(sig[octets:], "big")
    # SHA-256 on every curve (notary never picks the hash by curve).
    pub.verify(encode_dss_signature(r, s), msg, _ecdsa_sha256())
    return True


@lru_cache(maxsize=1)
def _ecdsa_sha256() -> Any:
    """``ec.ECDSA(hashes.SHA256())``, built once and without its constructor.

    The constructor imports cryptography's whole OpenSSL backend module (the
    ciphers and more, 15-40 ms of every verify's start-up, issue 18) only to
    ask whether deterministic signing is supported, which verifying never
    uses. The object is the same: its hash algorithm, not deterministic.
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    algorithm = ec.ECDSA.__new__(ec.ECDSA)
    try:
        algorithm._algorithm = hashes.SHA256()
        algorithm._deterministic_signing = False
        if isinstance(algorithm.algorithm, hashes.SHA256):
            return algorithm
    except AttributeError:  # pragma: no cover - another cryptography layout
        pass
    return ec.ECDSA(hashes.SHA256())  # pragma: no cover


def _verify_rsa(pub: Any, sig: bytes, msg: bytes | memoryview, pss: bool) -> bool:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    if not isinstance(pub, rsa.RSAPublicKey):
        return False
    if pub.key_size < _MIN_RSA_BITS or len(sig) < _MIN_RSA_SIG_BYTES:
        return False
    if len(sig) != (pub.key_size + 7) // 8:  # Go's rsa package insists on k bytes
        return False
    pad: padding.AsymmetricPadding
    if pss:
        pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    else:
        pad = padding.PKCS1v15()
    pub.verify(sig, bytes(msg) if isinstance(msg, memoryview) else msg, pad, hashes.SHA256())
    return True


def _verify_ed25519(pub: Any, sig: bytes, msg: bytes | memoryview) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    if not isinstance(pub, ed25519.Ed25519PublicKey) or len(sig) != 64:
        return False
    pub.verify(sig, msg)
    return True


def verify_signature(key: TufKey, method: str, sig: bytes, msg: bytes | memoryview) -> bool:
    """Whether ``sig`` is a valid ``method`` signature by ``key`` over ``msg``, as notary decides.

    ``method`` must already be lower-cased (the parser does that, spec 1.5).
    Never raises.
    """
    kt = key.keytype
    try:
        if method == _M_ECDSA:
            if kt not in (ECDSA, ECDSA_X509):
                return False
            return _verify_ecdsa(_public_key_object(kt, key.public, False), sig, msg)
        if method in (_M_RSAPSS, _M_PKCS1V15):
            if kt not in (RSA, RSA_X509):
                return False
            pub = _public_key_object(kt, key.public, False)
            return _verify_rsa(pub, sig, msg, pss=method == _M_RSAPSS)
        if method == _M_PYCRYPTO:
            if kt != RSA:
                return False
            return _verify_rsa(_public_key_object(kt, key.public, True), sig, msg, pss=True)
        if method == _M_EDDSA:
            if kt != ED25519:
                return False
            return _verify_ed25519(_public_key_object(kt, key.public, False), sig, msg)
    except Exception:  # InvalidSignature, or anything odd a hostile key provokes
        return False
    return False


# --------------------------------------------------------------------------
# Canonical key ID (spec 2.4) and descriptions
# --------------------------------------------------------------------------


def canonical_key_id(key: TufKey) -> str:
    """notary's canonical key ID (spec 2.4).

    For ``ecdsa-x509`` / ``rsa-x509`` keys: the ID of an ``ecdsa`` / ``rsa`` key
    holding the DER SPKI of the first CERTIFICATE block; for other keys the
    key ID.  If an x509 key holds no usable certificate (notary would return
    an error) the plain key ID is returned.
    """
    if key.keytype not in X509_KEY_TYPES:
        return key.id
    cert = load_cert_from_pem(key.public)
    spki = None if cert is None else _cert_spki(cert)
    if spki is None or cert is None:
        return key.id
    if cert_key_algorithm(cert) == "other":  # Go cannot marshal e.g. DSA keys
        return key.id
    bare_type = ECDSA if key.keytype == ECDSA_X509 else RSA
    return key_id(bare_type, spki)


def _describe_public(pub: Any) -> str | None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(pub, ec.EllipticCurvePublicKey):
        return _GO_CURVES.get(pub.curve.name, pub.curve.name)
    if isinstance(pub, rsa.RSAPublicKey):
        return f"{pub.key_size}-bit"
    if isinstance(pub, ed25519.Ed25519PublicKey):
        return ""
    return None


def describe_key(key: TufKey) -> str:
    """A short human description: ``"ecdsa P-256"``, ``"rsa-x509 2048-bit"``, ``"ed25519"``."""
    kt = key.keytype
    if kt not in KEY_TYPES:
        return f"{kt or '(empty keytype)'} (unsupported key type)"
    pub = _public_key_object(kt, key.public, False)
    suffix = ""
    if pub is None and kt == RSA:
        pub = _public_key_object(kt, key.public, True)
        suffix = " (PEM)" if pub is not None else ""
    desc = None if pub is None else _describe_public(pub)
    if desc is None:
        return f"{kt} (undecodable)"
    return f"{kt} {desc}{suffix}".rstrip() if desc else f"{kt}{suffix}"
