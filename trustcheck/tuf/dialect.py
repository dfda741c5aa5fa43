"""Tell TUF 1.0 from Notary v1 trust data (:func:`detect_dialect`), and the strict
JSON parse trustcheck applies to TUF metadata (no field written twice, no NaN)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from trustcheck.errors import ErrorCode, NotTrusted, UsageError

if TYPE_CHECKING:
    from tuf.api.metadata import (
        Metadata,
    )


__all__ = ["Dialect", "detect_dialect"]

Dialect = Literal["notary", "tuf"]


_NOTARY_TYPES = frozenset({"Root", "Targets", "Snapshot", "Timestamp"})


_TUF_TYPES = frozenset({"root", "targets", "snapshot", "timestamp"})




#: largest file :func:`detect_dialect` reads (notary's MaxDownloadSize)
_DETECT_CAP = 100 << 20


_CHUNK = 1 << 16


def _dialect_of_document(doc: Any, where: str) -> Dialect:
    if isinstance(doc, dict) and "payloadType" in doc and "payload" in doc:
        return "tuf"  # a DSSE envelope: TUF metadata (python-tuf's SIMPLE envelope)
    signed = doc.get("signed") if isinstance(doc, dict) else None
    if not isinstance(signed, dict):
        raise UsageError(
            ErrorCode.INVALID_ARGUMENT,
            f"cannot tell the dialect of {where}: it is not signed metadata "
            '(no "signed" object); give a root.json, timestamp.json or the folder holding them',
        )
    kind = signed.get("_type")
    if kind in _NOTARY_TYPES:
        return "notary"
    if kind in _TUF_TYPES and "spec_version" in signed:
        return "tuf"
    keys = signed.get("keys")
    if isinstance(keys, dict):
        for key in keys.values():
            if not isinstance(key, dict):
                continue
            if "scheme" in key:
                return "tuf"
            keyval = key.get("keyval")
            if str(key.get("keytype", "")).endswith("-x509") or (
                isinstance(keyval, dict) and "private" in keyval
            ):
                return "notary"
    raise UsageError(
        ErrorCode.INVALID_ARGUMENT,
        f"cannot tell the dialect of {where}: _type {str(kind)[:40]!r} is neither Notary v1 "
        "('Root', 'Targets', ...) nor TUF 1.0 ('root', ... with spec_version); "
        "use --dialect to choose",
    )


def _read_small(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(_DETECT_CAP + 1)
    except OSError as e:
        raise UsageError("invalid-argument", f"cannot read {path}: {e.strerror or e}") from e
    if len(data) > _DETECT_CAP:
        raise UsageError(ErrorCode.INVALID_ARGUMENT, f"{path} is larger than 100 MiB; not metadata")
    return data


_DETECT_NAMES = ("root.json", "1.root.json", "timestamp.json")


def detect_dialect(source: bytes | str | os.PathLike[str]) -> Dialect:
    """``"notary"`` or ``"tuf"``, from the metadata itself.

    ``source`` is the bytes of one metadata file, the path of one, or a folder:
    a TUF repository (``root.json``, ``1.root.json`` or ``timestamp.json`` in
    it or in its ``metadata/`` folder) or a Notary GUN folder
    (``.../tuf/<GUN>/metadata``, or the GUN folder above it).

    Rules, first match wins: ``signed._type`` ``Root``/``Targets``/
    ``Snapshot``/``Timestamp`` is Notary v1; a lower-case ``_type`` with
    ``spec_version`` is TUF 1.0; otherwise a key with a ``scheme`` is TUF and a
    key of an ``*-x509`` type or with ``keyval.private`` is Notary. A DSSE
    envelope is TUF. Anything else is a :class:`~trustcheck.errors.UsageError`
    (``invalid-argument``) asking for ``--dialect``.
    """
    if isinstance(source, bytes | bytearray):
        where = "the metadata"
        data = bytes(source)
    else:
        path = Path(source)
        where = str(path)
        if path.is_dir():
            found = None
            for folder in (path, path / "metadata"):
                for name in _DETECT_NAMES:
                    if (folder / name).is_file():
                        found = folder / name
                        break
                if found is not None:
                    break
            if found is None:
                raise UsageError(
                    ErrorCode.INVALID_ARGUMENT,
                    f"cannot tell the dialect of {path}: no root.json, 1.root.json or "
                    "timestamp.json in it or in its metadata/ folder",
                )
            path, where = found, str(found)
        data = _read_small(path)
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise UsageError(
            ErrorCode.INVALID_ARGUMENT, f"cannot tell the dialect of {where}: not valid JSON ({e})"
        ) from e
    return _dialect_of_document(doc, where)


class _DuplicateField(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateField(k)
        out[k] = v
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse(data: bytes, file: str, repo: str) -> Metadata[Any]:
    """python-tuf's Metadata from ``data``, refusing a field written twice (parser differential)."""
    from tuf.api.metadata import Metadata

    role = _role_of_file(file)
    try:
        doc = json.loads(
            data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constants
        )
    except _DuplicateField as e:
        raise NotTrusted(
            ErrorCode.INVALID_STRUCTURE,
            f"{file} from {repo} writes the field {str(e)[:60]!r} twice; parsers disagree on "
            "which one counts, so trustcheck refuses it (no TUF signer writes this)",
            role=role,
        ) from e
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise NotTrusted(
            ErrorCode.MALFORMED_JSON,
            f"{file} from {repo} is not valid JSON ({e}); fetch or mirror the repository again",
            role=role,
        ) from e
    if not isinstance(doc, dict):
        raise NotTrusted("invalid-structure", f"{file} from {repo} is not a JSON object", role=role)
    try:
        md: Metadata[Any] = Metadata.from_dict(doc)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise NotTrusted(
            ErrorCode.INVALID_STRUCTURE,
            f"{file} from {repo} is not TUF 1.0 metadata ({type(e).__name__}: {e})",
            role=role,
        ) from e
    return md


def _role_of_file(name: str | None) -> str | None:
    if name is None:
        return None
    base = name.rsplit("/", 1)[-1] if name.startswith("root_history/") else name
    base = base.removesuffix(".json")
    m = re.fullmatch(r"[1-9][0-9]{0,9}\.(.+)", base)
    if m is not None:
        base = m.group(1)
    return base
