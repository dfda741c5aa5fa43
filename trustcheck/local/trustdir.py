"""Read a Docker / notary trust dir safely.

Layout (as the notary client writes it)::

    <trust-dir>/tuf/<GUN>/metadata/root.json
    <trust-dir>/tuf/<GUN>/metadata/{targets,snapshot,timestamp}.json
    <trust-dir>/tuf/<GUN>/metadata/targets/<name>.json     delegations, nested
                                                           roles in sub-folders

Safety rules, applied before the file system is touched:

* a GUN must be a relative path of clean, non-empty components
  (:func:`validate_gun`); its folder is named by the GUN's identity
  (:func:`trustcheck.core.reference.identity`: ``EXAMPLE.com:443/x`` reads
  ``tuf/example.com/x``); a role must be a base role or a valid notary
  delegation name (:func:`validate_role_name`). Anything else is a
  :class:`~trustcheck.errors.UsageError` with code ``unsafe-path``.
* the real path of every file read must lie inside the real path of the trust
  dir: a symlink that leaves it is refused, one that stays inside is followed.
* every read is capped (:data:`MAX_TIMESTAMP_SIZE`, :data:`MAX_DOWNLOAD_SIZE`
  or a length from parent metadata); a larger file is
  :class:`~trustcheck.errors.NotTrusted` ``file-too-large``.
* only regular files are read; FIFOs and devices are never opened blocking.

POSIX only.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from trustcheck.core.roles import is_versioned_root, validate_role_name
from trustcheck.errors import ErrorCode, NotTrusted, UsageError
from trustcheck.local.fsutil import SymlinkInPath, open_dir_beneath, replace_at

__all__ = [
    "MAX_GUN_LENGTH",
    "TrustDir",
    "default_trust_dir",
    "validate_gun",
]

#: Longest GUN accepted, in UTF-8 bytes.  Docker allows a 255-character
#: repository path plus a registry domain, so the bound is on the whole GUN
#: here and on each component (:data:`_MAX_COMPONENT_BYTES`) separately.
MAX_GUN_LENGTH = 1024
#: POSIX NAME_MAX on common file systems: longest single path component.
_MAX_COMPONENT_BYTES = 255

_READ_CHUNK = 1 << 16


def default_trust_dir(env: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """The trust dir Docker uses: ``$DOCKER_CONFIG/trust``, else ``~/.docker/trust``.

    ``--trust-dir`` is handled by the CLI before this is called.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    config = environ.get("DOCKER_CONFIG", "")
    if config:
        return Path(config) / "trust"
    base = Path.home() if home is None else home
    return base / ".docker" / "trust"


_O_PATH = getattr(os, "O_PATH", 0)
_PROC_FD = bool(_O_PATH) and os.path.isdir("/proc/self/fd")


def _realpath(path: str | Path) -> str:
    """``os.path.realpath``, resolved by the kernel where it can: one ``O_PATH`` open
    and a ``readlink`` of ``/proc/self/fd/N`` instead of an ``lstat`` per component
    in Python (``audit --all`` resolves every file of 10,000 collections). A path
    that cannot be opened (missing, dangling, no permission) takes ``realpath``."""
    if _PROC_FD:
        try:
            fd = os.open(path, _O_PATH | os.O_CLOEXEC)
        except (OSError, ValueError):
            return os.path.realpath(path)
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            real = ""
        finally:
            os.close(fd)
        if real.startswith("/") and not real.endswith(" (deleted)"):
            return real
    return os.path.realpath(path)


def _show(text: str, limit: int = 80) -> str:
    shown = text if len(text) <= limit else text[: limit - 3] + "..."
    return repr(shown)


def _unsafe_gun(gun: str, reason: str) -> UsageError:
    return UsageError(ErrorCode.UNSAFE_PATH, f"unsafe GUN {_show(gun)}: {reason}")


def _has_control(text: str) -> bool:
    return any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in text)


def validate_gun(gun: str) -> None:
    """Refuse a GUN that could not be used safely as a relative path.

    Raises :class:`~trustcheck.errors.UsageError` ``unsafe-path`` for an empty
    GUN, an absolute path, ``.``/``..``/empty components, NUL, backslash,
    control characters, or an over-long GUN or component.
    """
    if gun == "":
        raise _unsafe_gun(gun, "it is empty")
    if "\x00" in gun:
        raise _unsafe_gun(gun, "it contains a NUL byte")
    if "\\" in gun:
        raise _unsafe_gun(gun, "it contains a backslash")
    if _has_control(gun):
        raise _unsafe_gun(gun, "it contains a control character")
    try:
        encoded = gun.encode("utf-8")
    except UnicodeEncodeError:
        raise _unsafe_gun(gun, "it is not valid Unicode text") from None
    if len(encoded) > MAX_GUN_LENGTH:
        raise _unsafe_gun(gun, f"it is {len(encoded)} bytes long, more than {MAX_GUN_LENGTH}")
    if gun.startswith("/"):
        raise _unsafe_gun(gun, "it is an absolute path")
    for component in gun.split("/"):
        if component == "":
            raise _unsafe_gun(gun, "it has an empty component ('//' or a trailing '/')")
        if component in (".", ".."):
            raise _unsafe_gun(gun, f"it has a {component!r} component")
        if len(component.encode("utf-8")) > _MAX_COMPONENT_BYTES:
            raise _unsafe_gun(gun, f"a component is longer than {_MAX_COMPONENT_BYTES} bytes")


@lru_cache(maxsize=4096)
def _gun_folder(gun: str) -> str:
    """``tuf/<identity>/metadata`` of a valid GUN (cached: every role file of a
    collection asks; an invalid GUN raises, and errors are not cached)."""
    validate_gun(gun)
    from trustcheck.core.reference import identity

    # one identity per repository: an alias spelling reads the same folder
    return f"tuf/{identity(gun)}/metadata"


def _is_identity(gun: str) -> bool:
    from trustcheck.core.reference import identity

    return identity(gun) == gun


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _unusable_collection(metadata: str, root_real: str) -> tuple[str, str] | None:
    """Why the folder holding ``metadata`` is a collection that cannot be read
    safely, as ``(error code, reason)``; None when it is no collection at all."""
    if not os.path.lexists(metadata):
        return None
    if os.path.islink(metadata) and not _is_within(_realpath(metadata), root_real):
        return "unsafe-path", "metadata is a symlink that leaves the trust dir"
    if not os.path.isdir(metadata):
        return "trust-dir-unreadable", "metadata is not a folder"
    root_json = os.path.join(metadata, "root.json")
    if not os.path.lexists(root_json):
        return "trust-dir-unreadable", "metadata/ has no root.json"
    real = _realpath(root_json)
    if not _is_within(real, root_real):
        return "unsafe-path", f"metadata/root.json is a symlink out of the trust dir (-> {real})"
    if not os.path.exists(real):
        return "trust-dir-unreadable", "metadata/root.json is a dangling symlink"
    return "trust-dir-unreadable", "metadata/root.json is not a regular file"


def _os_reason(exc: OSError) -> str:
    if exc.strerror:
        return exc.strerror
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__)


def _unreadable(path: str | Path, reason: str) -> UsageError:
    return UsageError("trust-dir-unreadable", f"cannot read {_show(str(path), 200)}: {reason}")


class TrustDir:
    """A Docker or notary trust dir, read with path and size checks."""

    __slots__ = ("root",)

    def __init__(self, root: Path) -> None:
        self.root: Path = Path(root)

    def __repr__(self) -> str:
        return f"TrustDir({str(self.root)!r})"

    # --- paths ---------------------------------------------------------------

    def metadata_dir(self, gun: str) -> Path:
        """``<root>/tuf/<gun>/metadata`` after :func:`validate_gun`."""
        return self.root / _gun_folder(gun)

    def describe(self, gun: str) -> str:
        """Where ``gun``'s trust data would be and what is missing there, for
        ``no-trust-data`` messages: does the trust dir exist, the GUN's folder?"""
        if not self.root.is_dir():
            what = "is not a directory" if self.root.exists() else "does not exist"
            return f"the trust dir {self.root} (which {what})"
        metadata = self.metadata_dir(gun)
        rel = metadata.relative_to(self.root)
        if not metadata.is_dir():
            return f"the trust dir {self.root} (it exists, but has no {rel})"
        return f"the trust dir {self.root} (it exists, but {rel} has no root.json)"

    def _role_path(self, gun: str, role: str) -> Path:
        metadata = self.metadata_dir(gun)
        if not (validate_role_name(role) or is_versioned_root(role)):
            raise UsageError(ErrorCode.UNSAFE_PATH, f"invalid role name {_show(role)}", role=None)
        return metadata / (role + ".json")

    def _root_real(self) -> str:
        return _realpath(self.root)

    def _resolve_inside(self, path: Path, role: str | None) -> str:
        """The real path of ``path``; refuse it when it leaves the trust dir."""
        try:
            real = _realpath(path)
        except OSError as exc:  # a component changed (symlink <-> folder) while resolved
            raise UsageError(
                ErrorCode.UNSAFE_PATH,
                f"{_show(str(path), 200)} changed while it was resolved ({_os_reason(exc)})",
                role=role,
            ) from exc
        if not _is_within(real, self._root_real()):
            raise UsageError(
                ErrorCode.UNSAFE_PATH,
                f"{_show(str(path), 200)} resolves to {_show(real, 200)}, outside the trust dir "
                f"{_show(str(self.root), 200)}",
                role=role,
            )
        return real

    # --- queries -------------------------------------------------------------

    def has_trust_data(self, gun: str) -> bool:
        """Whether ``metadata/root.json`` exists for ``gun``."""
        path = self._role_path(gun, "root")
        real = self._resolve_inside(path, "root")
        return os.path.exists(real)

    def read_role(self, gun: str, role: str, cap: int) -> bytes | None:
        """The bytes of ``<metadata>/<role>.json``, or ``None`` if it does not exist.

        Raises ``unsafe-path`` for a hostile GUN, role name or symlink escape,
        ``file-too-large`` when the file is larger than ``cap`` bytes and
        ``trust-dir-unreadable`` when the OS refuses the read.
        """
        if cap < 0:
            raise UsageError("invalid-argument", f"size cap must not be negative, got {cap}")
        path = self._role_path(gun, role)
        real = self._resolve_inside(path, role)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
        try:
            fd = os.open(real, flags)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                # The real path was swapped for a symlink after it was resolved.
                raise UsageError(
                    "unsafe-path", f"{_show(str(path), 200)} changed into a symlink", role=role
                ) from exc
            raise _unreadable(path, _os_reason(exc)) from exc
        try:
            return self._read_capped(fd, path, role, cap)
        finally:
            os.close(fd)

    @staticmethod
    def _read_capped(fd: int, path: Path, role: str, cap: int) -> bytes:
        try:
            st = os.fstat(fd)
        except OSError as exc:
            raise _unreadable(path, _os_reason(exc)) from exc
        if stat.S_ISDIR(st.st_mode):
            raise _unreadable(path, "is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise _unreadable(path, "not a regular file")
        if st.st_size > cap:
            raise NotTrusted(
                ErrorCode.FILE_TOO_LARGE,
                f"{role}.json is {st.st_size} bytes, cap {cap} bytes ({_show(str(path), 200)})",
                role=role,
            )
        chunks: list[bytes] = []
        total = 0
        # the size fstat gave (and one byte more, to see a file that grew) in one read:
        # a single chunk is returned as it is, not copied by join
        want = max(_READ_CHUNK, min(st.st_size, cap) + 1)
        try:
            while total <= cap:
                chunk = os.read(fd, min(want, cap + 1 - total))
                want = _READ_CHUNK
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
        except OSError as exc:
            raise _unreadable(path, _os_reason(exc)) from exc
        if total > cap:
            raise NotTrusted(
                ErrorCode.FILE_TOO_LARGE,
                f"{role}.json grew past its cap while being read: more than {cap} bytes, "
                f"cap {cap} bytes ({_show(str(path), 200)})",
                role=role,
            )
        return b"".join(chunks)

    def list_guns(self, problems: list[tuple[str, str, str]] | None = None) -> list[str]:
        """Every GUN under ``tuf/`` that has ``metadata/root.json``, sorted.

        Symlinked folders are followed only while they stay inside the trust
        dir, and each folder is visited once (no symlink loops).  A GUN's own
        ``metadata`` and ``changelist`` folders are not searched for further
        GUNs.  Unreadable folders are skipped; with ``problems``, each one
        skipped that way, and each collection that cannot be read safely (a
        ``root.json`` or folder symlinked out of the trust dir, a ``root.json``
        that is not a regular file, a ``metadata`` that is not a folder, an
        invalid name), is appended as ``(path under tuf/, error code, why)``
        (an empty path: ``tuf`` itself).
        """

        def problem(parts: tuple[str, ...], code: str, why: str) -> None:
            if problems is not None:
                problems.append(("/".join(parts), code, why))

        tuf = self.root / "tuf"
        root_real = self._root_real()
        tuf_real = _realpath(tuf)
        if not _is_within(tuf_real, root_real) or not os.path.isdir(tuf_real):
            if os.path.lexists(tuf):
                why = "a symlink that leaves" if os.path.islink(tuf) else "not a folder in"
                problem(
                    (),
                    "unsafe-path" if os.path.islink(tuf) else "trust-dir-unreadable",
                    f"tuf is {why} the trust dir",
                )
            return []
        found: list[str] = []
        seen: set[tuple[int, int]] = set()
        # (real folder path, GUN-relative components).  Folders reached through
        # a symlink wait in ``deferred`` so that a folder reachable both
        # directly and through a symlink is listed under its direct name.
        stack: list[tuple[str, tuple[str, ...]]] = [(tuf_real, ())]
        deferred: list[tuple[str, tuple[str, ...]]] = []
        while stack or deferred:
            folder, parts = stack.pop() if stack else deferred.pop()
            try:
                st = os.stat(folder)
            except OSError as e:
                problem(parts, "trust-dir-unreadable", f"cannot stat the folder ({_os_reason(e)})")
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            is_gun = False
            if parts:
                gun = "/".join(parts)
                root_json = _realpath(os.path.join(folder, "metadata", "root.json"))
                if _is_within(root_json, root_real) and os.path.isfile(root_json):
                    try:
                        validate_gun(gun)
                    except UsageError as e:
                        problem(parts, e.code, e.message)
                    else:
                        # a folder under an alias spelling (EXAMPLE.com/x) is never
                        # read: metadata_dir() derives the path from the identity
                        if _is_identity(gun):
                            found.append(gun)
                        is_gun = True
                else:
                    unusable = _unusable_collection(os.path.join(folder, "metadata"), root_real)
                    if unusable is not None:
                        problem(parts, *unusable)
                        is_gun = True  # its metadata folder holds no further GUNs
            try:
                names = os.listdir(folder)
            except OSError as e:
                problem(parts, "trust-dir-unreadable", f"cannot list the folder ({_os_reason(e)})")
                continue
            for name in sorted(names, reverse=True):
                if is_gun and name in ("metadata", "changelist"):
                    continue
                entry = os.path.join(folder, name)
                child = _realpath(entry)
                if not _is_within(child, root_real) or not os.path.isdir(child):
                    if os.path.islink(entry) and not _is_within(child, root_real):
                        problem(
                            (*parts, name),
                            "unsafe-path",
                            f"the folder is a symlink that leaves the trust dir (-> {child})",
                        )
                    continue
                child_parts = (*parts, name)
                if len("/".join(child_parts).encode("utf-8", "surrogateescape")) > MAX_GUN_LENGTH:
                    continue
                (deferred if os.path.islink(entry) else stack).append((child, child_parts))
        return sorted(set(found))

    # --- write-back ----------------------------------------------------------

    def write_roles(self, gun: str, files: Sequence[tuple[str, bytes]]) -> None:
        """Replace ``<metadata>/<role>.json`` for each ``(role, bytes)``, in order.

        No symlink can redirect a write out of the trust dir, even one swapped
        in while this runs: every folder below the trust dir is opened relative
        to its parent's handle with ``O_NOFOLLOW | O_DIRECTORY`` (created when
        missing), each file is written as a temporary file in its folder's
        handle and renamed within it.  A folder that is a symlink is followed
        only when its real path stays inside the trust dir, and then reached
        again component by component without following links.  ``root`` is
        fsynced before its rename; every folder written to is fsynced.

        Raises ``unsafe-path`` (a folder leaves the trust dir, or turned into
        a symlink while being written) and ``OSError`` for the rest.
        """
        metadata = self.metadata_dir(gun)
        for role, _data in files:
            if not (validate_role_name(role) or is_versioned_root(role)):
                raise UsageError("unsafe-path", f"invalid role name {_show(role)}", role=role)
        if not files:
            return
        base = metadata.relative_to(self.root).parts
        self.root.mkdir(parents=True, exist_ok=True)
        root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        dirs: dict[tuple[str, ...], int] = {}
        try:
            for role, data in files:
                *folders, name = role.split("/")
                lexical = (*base, *folders)
                dir_fd = dirs.get(lexical)
                if dir_fd is None:
                    dir_fd = self._open_beneath(root_fd, lexical, metadata, role)
                    dirs[lexical] = dir_fd
                replace_at(dir_fd, name + ".json", data, durable=role == "root")
                if role == "root":
                    os.fsync(dir_fd)
            for dir_fd in dirs.values():
                os.fsync(dir_fd)
        finally:
            for dir_fd in dirs.values():
                os.close(dir_fd)
            os.close(root_fd)

    def _open_beneath(
        self, root_fd: int, lexical: tuple[str, ...], metadata: Path, role: str
    ) -> int:
        try:
            return open_dir_beneath(root_fd, lexical)
        except SymlinkInPath:
            pass
        # a symlinked folder: allowed while it stays inside the trust dir
        where = self.root.joinpath(*lexical)
        real = self._resolve_inside(where, role)
        root_real = self._root_real()
        inside = tuple(p for p in os.path.relpath(real, root_real).split("/") if p != ".")
        try:
            return open_dir_beneath(root_fd, inside)
        except SymlinkInPath as e:
            raise UsageError(
                ErrorCode.UNSAFE_PATH,
                f"{_show(str(metadata), 200)}: a folder turned into a symlink while trust data "
                "was written; not writing",
                role=role,
            ) from e
