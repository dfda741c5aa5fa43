"""Text helpers shared by every front end: display width, aligned tables, visible
text, redaction.

* :func:`display_width` counts terminal columns as Docker's tabwriter does (East
  Asian wide and full-width characters 2, combining marks, format and control
  characters 0), so ``inspect --pretty`` lines up as ``docker trust inspect
  --pretty`` does.
* :func:`table` lays out columns: each cell padded to the column's widest cell
  plus ``padding`` (at least ``min_width``), the last column never padded.
  Docker's layout is ``min_width=10, padding=3``; the audit's is ``padding=2``.
* :func:`visible` escapes what an attacker could use to rewrite a terminal line
  (control, format, separator, surrogate, private-use and unassigned
  characters) as ``\\uXXXX``.
* :func:`redact_url` is the one redaction for URLs in messages and logs: the
  password of the user information, or a lone user name (which may be a token),
  becomes ``***``; the query string and fragment (which may carry tokens or
  account names) are dropped.

Imports stay light (start-up time): ``unicodedata`` and ``urllib.parse`` are
imported when first needed.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["display_width", "redact_url", "table", "visible"]

#: categories :func:`display_width` counts as zero columns
_ZERO_WIDTH = frozenset({"Mn", "Me", "Cf", "Zl", "Zp", "Cc"})
#: categories :func:`visible` escapes
_ESCAPED = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def display_width(text: str) -> int:
    """Terminal columns of ``text`` (Docker's tabwriter: wide = 2, zero-width = 0)."""
    if text.isascii():
        return sum(1 for ch in text if ch >= " ")
    import unicodedata

    total = 0
    for ch in text:
        if ch.isascii():
            total += 1 if ch >= " " else 0
        elif unicodedata.combining(ch) or unicodedata.category(ch) in _ZERO_WIDTH:
            continue
        else:
            total += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return total


def visible(text: str) -> str:
    """Control, format and line/paragraph separator characters (and surrogates,
    private-use and unassigned code points) as ``\\uXXXX`` / ``\\UXXXXXXXX``."""
    if text.isascii() and text.isprintable():
        return text
    import unicodedata

    out = []
    for ch in text:
        if ch != " " and unicodedata.category(ch) in _ESCAPED:
            code = ord(ch)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    padding: int = 2,
    min_width: int = 0,
    indent: str = "",
    strip: bool = True,
) -> list[str]:
    """Aligned lines: every column but the last padded to ``max(min_width, widest
    cell + padding)`` display columns; ``strip`` removes trailing blanks."""
    lines = [list(headers), *(list(r) for r in rows)]
    count = len(headers)
    widths = [
        max(min_width, max(display_width(line[i]) for line in lines) + padding)
        for i in range(count - 1)
    ]
    out = []
    for line in lines:
        cells = [c + " " * (w - display_width(c)) for c, w in zip(line[:-1], widths, strict=True)]
        text = indent + "".join(cells) + line[-1]
        out.append(text.rstrip() if strip else text)
    return out


def redact_url(url: str) -> str:
    """``url`` safe for a message or a log line: ``scheme://[user:***@]host[:port]/path``.

    A password in the user information becomes ``***``; user information with no
    password (``https://TOKEN@host``) becomes ``***``; the query string and the
    fragment are dropped. Text that is not a URL comes back without what follows
    its first ``?`` or ``#``, and with everything before its last ``@`` hidden.
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        netloc, parts = "", None
    if parts is None or not parts.scheme or not netloc:
        base = url.split("?", 1)[0].split("#", 1)[0]
        _secret, at, rest = base.rpartition("@")
        return f"***@{rest}" if at else base
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        netloc = (f"{user}:***@" if colon else "***@") + hostport
    return f"{parts.scheme}://{netloc}{parts.path}"
