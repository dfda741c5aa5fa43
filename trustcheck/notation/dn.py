"""Distinguished names as Notation's ``trustedIdentities`` compare them.

A ``x509.subject:`` value is an RFC 4514 DN (``C=US, ST=WA, O=Acme``); it is
parsed into attribute -> value (``S`` is ``ST``), one value per attribute, no
multi-valued RDNs, no ``#hex`` values, and C, ST and O required.  An identity
matches a certificate when every attribute it names has the same value in the
certificate's subject (:func:`dn_subset`).  The certificate's subject is read
the same way from the names Go's ``pkix.Name.String`` gives (C, O, OU, CN,
SERIALNUMBER, L, ST, STREET, POSTALCODE): another attribute type in the subject
(an e-mail address, say) makes notation's parser fail, and so the match.
"""

from __future__ import annotations

from collections.abc import Mapping

from cryptography import x509
from cryptography.x509.oid import NameOID

__all__ = [
    "DnError",
    "dn_subset",
    "parse_dn",
    "subject_attributes",
    "subject_text",
]

MANDATORY = ("C", "ST", "O")
#: the attribute names Go's pkix writes; anything else is written as ``OID=#hex``
GO_NAMES = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.SERIAL_NUMBER: "SERIALNUMBER",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.STREET_ADDRESS: "STREET",
    NameOID.POSTAL_CODE: "POSTALCODE",
}
_MAX_DN = 4096


class DnError(ValueError):
    """A DN that Notation would not accept (the message says why)."""


def _split(text: str) -> list[str]:
    """RDNs split at unescaped ``,`` or ``;`` (escapes kept for the value parser)."""
    parts: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 >= len(text):
                raise DnError("ends in a lone backslash")
            cur.append(text[i : i + 2])
            i += 2
            continue
        if c in ",;":
            parts.append("".join(cur))
            cur = []
        elif c == "+":
            raise DnError("has a multi-valued RDN ('+'), which notation does not support")
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(value: str) -> str:
    out = bytearray()
    i = 0
    raw = value.encode()
    while i < len(raw):
        b = raw[i]
        if b == 0x5C:  # backslash
            nxt = raw[i + 1 : i + 3]
            if len(nxt) == 2 and all(chr(x) in "0123456789abcdefABCDEF" for x in nxt):
                out.append(int(nxt.decode(), 16))
                i += 3
                continue
            if len(nxt) >= 1:
                out.append(nxt[0])
                i += 2
                continue
            raise DnError("ends in a lone backslash")
        out.append(b)
        i += 1
    try:
        return out.decode()
    except UnicodeDecodeError as e:
        raise DnError("has an escaped value that is not UTF-8") from e


def _strip_unescaped(value: str) -> str:
    """Leading and trailing spaces go, an escaped trailing space stays."""
    value = value.lstrip(" ")
    while value.endswith(" ") and not value.endswith("\\ "):
        value = value[:-1]
    return value


def parse_dn(text: str, *, mandatory: bool = True) -> dict[str, str]:
    """``C=US, ST=WA, O=Acme`` -> ``{"C": "US", "ST": "WA", "O": "Acme"}``."""
    if len(text) > _MAX_DN:
        raise DnError(f"is longer than {_MAX_DN} characters")
    if "=#" in text:
        raise DnError("uses a '#hex' value, which notation does not support")
    out: dict[str, str] = {}
    for part in _split(text):
        if not part.strip():
            raise DnError("has an empty RDN")
        kind, sep, value = part.partition("=")
        kind = kind.strip()
        if not sep or not kind:
            raise DnError(f"has an RDN {part.strip()!r} that is not TYPE=VALUE")
        if kind == "S":
            kind = "ST"
        if kind in out:
            raise DnError(f"names {kind} twice; a DN may name each attribute once")
        out[kind] = _unescape(_strip_unescaped(value))
    if mandatory:
        for key in MANDATORY:
            if not out.get(key):
                raise DnError("must name C, ST (or S) and O at least")
    return out


def dn_subset(wanted: Mapping[str, str], have: Mapping[str, str]) -> bool:
    """Every attribute of ``wanted`` has the same value in ``have``."""
    return all(have.get(k) == v for k, v in wanted.items())


def subject_attributes(name: x509.Name) -> dict[str, str]:
    """A certificate subject as notation compares it (``DnError`` where notation's
    parser fails: another attribute type, a multi-valued or repeated attribute,
    no C, ST or O)."""
    out: dict[str, str] = {}
    for rdn in name.rdns:
        attrs = list(rdn)
        if len(attrs) > 1:
            raise DnError("has a multi-valued RDN, which notation does not support")
        attr = attrs[0]
        kind = GO_NAMES.get(attr.oid)
        if kind is None:
            raise DnError(
                f"has the attribute {attr.oid.dotted_string}, which notation writes as "
                "'#hex' and cannot match"
            )
        if kind in out:
            raise DnError(f"names {kind} twice, which notation cannot match")
        value = attr.value
        out[kind] = value if isinstance(value, str) else value.decode("utf-8", "replace")
    for key in MANDATORY:
        if not out.get(key):
            raise DnError("must name C, ST and O for notation to match it to an identity")
    return out


def _escape(value: str) -> str:
    out = value.replace("\\", "\\\\")
    for c in ',+"<>;=':
        out = out.replace(c, "\\" + c)
    if out.startswith((" ", "#")):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def subject_text(name: x509.Name) -> str:
    """The subject in the order of the certificate, ``C=US, ST=WA, O=Acme, CN=rel``:
    the form ``x509.subject:`` identities are written in."""
    parts: list[str] = []
    for rdn in name.rdns:
        items = []
        for attr in rdn:
            kind = GO_NAMES.get(attr.oid, attr.oid.dotted_string)
            value = attr.value
            text = value if isinstance(value, str) else value.hex()
            items.append(f"{kind}={_escape(text)}")
        parts.append("+".join(items))
    return ", ".join(parts)
