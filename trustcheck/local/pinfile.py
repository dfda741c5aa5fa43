"""Pins: which root certificates and signer keys a collection must use.

A pin file (TOML, docs/pinning.md) maps a GUN or an anchored prefix wildcard
(``registry.example.com/team/*``) to accepted root identifiers, an optional CA
bundle the root leaf certificate must chain to, and identifiers per signer.
Notary client configs (``trust_pinning`` with ``certs``, ``ca``,
``disable_tofu``) are read as they are.

Unlike notary, pins are enforced on every run, also when a root is cached
and across rotations (docs/notary-compat.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustcheck.core.identity import Identifier
from trustcheck.core.reference import (
    identity,
)
from trustcheck.core.roles import validate_role_name
from trustcheck.errors import ErrorCode, UsageError

__all__ = [
    "PinEntry",
    "PinSet",
    "default_pin_file",
    "load_pins",
    "normalise_pattern",
    "signer_pin_problem",
    "write_pins",
]


@dataclass(slots=True)
class PinEntry:
    """One pin: a GUN or ``prefix*`` pattern and what it requires."""

    pattern: str
    root: list[Identifier] = field(default_factory=list)
    ca: Path | None = None
    signers: dict[str, list[Identifier]] = field(default_factory=dict)
    #: lower sorts first among equally specific matches (notary: certs before ca)
    priority: int = 0
    source: str = ""

    def matches(self, gun: str) -> bool:
        """notary's pin wildcard: the ``prefix`` mode of :mod:`trustcheck.policy.pattern`."""
        from trustcheck.policy.pattern import prefix_matches  # not on the no-pins path

        return prefix_matches(self.pattern, gun)

    def specificity(self) -> tuple[int, int, int]:
        """Sort key, larger wins: an exact GUN, then (notary's order) every
        ``certs``/TOML entry before any ``ca`` entry, then the longer prefix."""
        from trustcheck.policy.pattern import prefix_specificity

        exact, length = prefix_specificity(self.pattern)
        return (exact, -self.priority, length)


@dataclass(slots=True)
class PinSet:
    entries: list[PinEntry] = field(default_factory=list)
    no_tofu: bool = False
    path: Path | None = None

    def lookup(self, gun: str) -> PinEntry | None:
        """The entry that applies to ``gun`` (by its identity), see :meth:`PinEntry.specificity`.

        notary's order (``trustpinning/trustpin.go``): an exact ``certs`` GUN,
        else the longest ``certs`` wildcard, else the longest ``ca`` prefix. A
        trustcheck pin file has no ``ca`` tier: exact, else the longest prefix.
        """
        gun = identity(gun)
        found = [e for e in self.entries if e.matches(gun)]
        return max(found, key=PinEntry.specificity) if found else None

    def unmatched(self, guns: Iterable[str]) -> list[PinEntry]:
        """Entries that match none of ``guns`` (reported by ``pin list``)."""
        guns = [identity(g) for g in guns]
        return [e for e in self.entries if not any(e.matches(g) for g in guns)]


def default_pin_file(env: Mapping[str, str], home: Path) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(home / ".config")
    return Path(base) / "trustcheck" / "pins.toml"


# ----------------------------------------------------------------------------- loading


def _bad(path: Path, message: str) -> UsageError:
    return UsageError(ErrorCode.PIN_FILE_INVALID, f"{path}: {message}")


def normalise_pattern(pattern: str) -> str:
    """A pin key in its identity form; raises ``ValueError`` with the reason.

    An exact key is a repository name and becomes its identity
    (:func:`trustcheck.core.reference.identity`: ``EXAMPLE.com:443/team/app`` is
    ``example.com/team/app``, ``alpine`` is ``docker.io/library/alpine``); a
    name the reference grammar refuses can never match an image and is an
    error. A ``prefix*`` key has its registry folded the same way when the
    prefix names one completely (``Index.Docker.IO/library/*`` is
    ``docker.io/library/*``; a first component without '.', ':' or
    ``localhost`` is a Docker Hub namespace: ``team/*`` is ``docker.io/team/*``);
    a prefix without '/' is only lower-cased. The syntax and the folding are
    the ``prefix`` mode of :mod:`trustcheck.policy.pattern`.
    """
    from trustcheck.policy.pattern import check_prefix, normalise_prefix

    if is_tuf_repository_key(pattern):
        check_prefix(pattern)
        return pattern  # a TUF 1.0 repository is named as `--repo` names it (docs/tuf.md)
    return normalise_prefix(pattern)


def is_tuf_repository_key(pattern: str) -> bool:
    """A pin key naming a TUF 1.0 repository (docs/tuf.md): the http(s) URL of its
    metadata or the absolute path of its folder. No image reference looks like either."""
    return pattern.startswith("/") or pattern.lower().startswith(("https://", "http://"))


def _check_pattern(path: Path, pattern: str) -> str:
    try:
        return normalise_pattern(pattern)
    except ValueError as e:
        raise _bad(path, f"pattern {pattern[:80]!r} {e}") from None


def signer_pin_problem(name: object) -> str | None:
    """Why a signer pin for ``name`` could never apply, or None when it can.

    A signer pin names a delegation without its ``targets/`` prefix; the
    base role ``targets`` and any name no delegation can have (notary §5.1,
    :func:`trustcheck.local.trustdir.validate_role_name`) are refused.
    """
    if not isinstance(name, str) or name == "":
        return "a signer name is empty"
    if name == "targets":
        return (
            "'targets' is the base role, signed by the repository key listed in root.json "
            "(pin it with root); a signer pin applies to a delegation only (e.g. releases, "
            "alice)"
        )
    if not validate_role_name("targets/" + name):
        return (
            f"{name[:80]!r} is not a name any delegation can have (notary: 'targets/' + the "
            "name uses only a-z, 0-9, '-', '_', '/', is shorter than 256 bytes and has no "
            "empty, '.' or '..' component), so this pin could never apply; write the "
            "delegation without 'targets/', e.g. releases or team/alice"
        )
    return None


def _check_signer(path: Path, where: str, name: str) -> str:
    problem = signer_pin_problem(name)
    if problem is not None:
        raise _bad(path, f"{where}: {problem}")
    return name


def _add(path: Path, entries: dict[str, PinEntry], entry: PinEntry, raw: str) -> None:
    """Add ``entry``; two keys that are spellings of one name are an error."""
    key = (entry.pattern, entry.priority)
    other = entries.get(f"{key}")
    if other is not None:
        raise _bad(
            path,
            f"{raw[:80]!r} and {other.source.rpartition(': ')[2]} are the same repository "
            f"{entry.pattern!r} (names are compared by their identity, docs/pinning.md); "
            "merge them into one entry",
        )
    entries[f"{key}"] = entry


def _ids(path: Path, where: str, value: Any) -> list[Identifier]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _bad(path, f"{where} must be a non-empty list of identifiers")
    return [Identifier.parse(v, f"{path}: {where}") for v in value]


def load_pins(path: Path) -> PinSet:
    """Read a trustcheck pin file (TOML) or a notary client config (JSON)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(
            ErrorCode.PIN_FILE_INVALID, f"cannot read pin file {path}: {e.strerror or e}"
        ) from e
    if len(data) > 1 << 20:
        raise _bad(path, "larger than 1 MiB; this is not a pin file")
    if data.lstrip()[:1] == b"{":
        return _load_notary_config(path, data)
    import tomllib

    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise _bad(path, f"not valid TOML ({e})") from e
    unknown = set(doc) - {"version", "no_tofu", "pins"}
    if unknown:
        raise _bad(path, f"unknown top-level key(s) {', '.join(sorted(unknown))}")
    if doc.get("version", 1) != 1:
        raise _bad(path, f"unsupported version {doc.get('version')!r}; this trustcheck reads 1")
    pins = doc.get("pins", {})
    if not isinstance(pins, dict):
        raise _bad(path, "'pins' must be a table of GUN patterns")
    no_tofu = doc.get("no_tofu", False)
    if not isinstance(no_tofu, bool):
        raise _bad(path, "'no_tofu' must be true or false")
    entries: dict[str, PinEntry] = {}
    for raw, body in pins.items():
        where = f'pins."{raw}"'
        pattern = _check_pattern(path, raw)
        if not isinstance(body, dict):
            raise _bad(path, f"{where} must be a table")
        extra = set(body) - {"root", "ca", "signers"}
        if extra:
            raise _bad(path, f"{where} has unknown key(s) {', '.join(sorted(extra))}")
        if not body:
            raise _bad(path, f"{where} is empty: an empty pin would trust anything")
        entry = PinEntry(pattern=pattern, source=f"{path}: {where}")
        if "root" in body:
            entry.root = _ids(path, f"{where}.root", body["root"])
        if "ca" in body:
            if not isinstance(body["ca"], str) or not body["ca"]:
                raise _bad(path, f"{where}.ca must be a path to a PEM bundle")
            entry.ca = (path.parent / body["ca"]).resolve()
        signers = body.get("signers", {})
        if not isinstance(signers, dict):
            raise _bad(path, f"{where}.signers must be a table of name = [identifiers]")
        for name, ids in signers.items():
            if not is_tuf_repository_key(pattern):  # TUF role names are not notary's
                _check_signer(path, f"{where}.signers", name)
            entry.signers[name] = _ids(path, f"{where}.signers.{name}", ids)
        _add(path, entries, entry, raw)
    return PinSet(entries=list(entries.values()), no_tofu=no_tofu, path=path)


def _load_notary_config(path: Path, data: bytes) -> PinSet:
    """notary's client config: ``trust_pinning.certs`` / ``.ca`` / ``.disable_tofu``."""
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise _bad(path, f"not valid JSON ({e})") from e
    if not isinstance(doc, dict):
        raise _bad(path, "a notary config must be a JSON object")
    # viper lower-cases keys
    tp = {str(k).lower(): v for k, v in doc.items()}.get("trust_pinning", {})
    if not isinstance(tp, dict):
        raise _bad(path, "trust_pinning must be an object")
    tp = {str(k).lower(): v for k, v in tp.items()}
    entries: dict[str, PinEntry] = {}
    certs = tp.get("certs", {})
    if not isinstance(certs, dict):
        raise _bad(path, "trust_pinning.certs must map GUNs to lists of key IDs")
    for raw, ids in certs.items():
        pattern = _check_pattern(path, raw)
        if not isinstance(ids, list) or not ids:
            raise _bad(path, f"trust_pinning.certs[{raw!r}] must be a non-empty list")
        entry = PinEntry(
            pattern=pattern,
            root=[Identifier.parse(f"keyid:{i}", f"{path}: certs[{raw!r}]") for i in ids],
            source=f"{path}: trust_pinning.certs[{raw!r}]",
        )
        _add(path, entries, entry, f"trust_pinning.certs[{raw!r}]")
    cas = tp.get("ca", {})
    if not isinstance(cas, dict):
        raise _bad(path, "trust_pinning.ca must map GUN prefixes to CA bundle paths")
    for prefix, ca in cas.items():
        if not isinstance(ca, str) or not ca:
            raise _bad(path, f"trust_pinning.ca[{prefix!r}] must be a path")
        entry = PinEntry(
            pattern=_check_pattern(path, prefix + "*"),
            ca=(path.parent / ca).resolve(),
            priority=1,  # notary consults every certs entry before any ca entry
            source=f"{path}: trust_pinning.ca[{prefix!r}]",
        )
        _add(path, entries, entry, f"trust_pinning.ca[{prefix!r}]")
    no_tofu = tp.get("disable_tofu", False)
    if not isinstance(no_tofu, bool):
        raise _bad(path, "trust_pinning.disable_tofu must be true or false")
    return PinSet(entries=list(entries.values()), no_tofu=no_tofu, path=path)


# ----------------------------------------------------------------------------- writing


def _toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=True)  # a JSON string is a TOML basic string


def write_pins(pins: PinSet, path: Path) -> None:
    """Write ``pins`` as a trustcheck TOML pin file (atomically)."""
    from trustcheck.local.fsutil import atomic_write

    lines = [
        "# trustcheck pin file (docs/pinning.md). Written by `trustcheck pin`.",
        "version = 1",
    ]
    if pins.no_tofu:
        lines.append("no_tofu = true")
    for e in sorted(pins.entries, key=lambda e: e.pattern):
        lines += ["", f"[pins.{_toml_str(e.pattern)}]"]
        if e.root:
            lines.append("root = [" + ", ".join(_toml_str(str(i)) for i in e.root) + "]")
        if e.ca is not None:
            lines.append(f"ca = {_toml_str(str(e.ca))}")
        if e.signers:
            inner = ", ".join(
                f"{_toml_str(n)} = [" + ", ".join(_toml_str(str(i)) for i in ids) + "]"
                for n, ids in sorted(e.signers.items())
            )
            lines.append(f"signers = {{ {inner} }}")
    try:
        atomic_write(path, ("\n".join(lines) + "\n").encode())
    except OSError as e:
        where = f"{e.filename}: " if e.filename and str(e.filename) != str(path) else ""
        raise UsageError(
            ErrorCode.PIN_FILE_UNWRITABLE,
            f"pin file {path} cannot be written ({where}{e.strerror or e}); it was not "
            "changed. Choose a writable path with --pins, or fix the folder's permissions",
        ) from e
