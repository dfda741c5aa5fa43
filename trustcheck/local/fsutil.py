"""Small file-system helpers: atomic writes, writes beneath directory handles
that no symlink can redirect, and advisory locks."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["SymlinkInPath", "atomic_write", "locked", "open_dir_beneath", "replace_at"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a part.

    Temp file in the same directory, fsync, rename over the target, fsync the
    directory.
    """
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class SymlinkInPath(OSError):
    """A path component that must be a directory is a symlink (or not a directory)."""


def open_dir_beneath(dir_fd: int, parts: Sequence[str], *, create: bool = True) -> int:
    """A new descriptor of ``dir_fd/parts[0]/parts[1]/...``, each component
    opened relative to the one before with ``O_DIRECTORY | O_NOFOLLOW``
    (created when missing and ``create``), so no symlink anywhere below
    ``dir_fd`` -- present, or swapped in while this runs -- is followed.

    Raises :class:`SymlinkInPath` when a component is a symlink or not a
    directory; other OS errors as they come.  The caller closes the result.
    """
    fd = os.dup(dir_fd)
    try:
        for part in parts:
            if part in ("", ".", "..") or "/" in part or "\0" in part:
                raise ValueError(f"not a single path component: {part!r}")
            try:
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise SymlinkInPath(
                        e.errno, f"{part} is a symlink or not a directory", part
                    ) from e
                raise
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def replace_at(dir_fd: int, name: str, data: bytes, *, durable: bool, mode: int = 0o644) -> None:
    """Atomically replace ``name`` in the directory ``dir_fd``: a new temporary
    file in that directory (``O_EXCL | O_NOFOLLOW``), fsynced when ``durable``,
    renamed over ``name`` within the same directory handle.  A symlink named
    ``name`` is replaced, never followed.  The caller fsyncs ``dir_fd``.
    """
    import secrets

    tmp = f".{name}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, mode, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock (``flock``) held for the ``with`` block."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
