"""python-tuf's ``metadata_dir`` for one repository: a per-repository folder of
the trustcheck state dir (rollback protection across runs) or the caller's
folder, locked while a session uses it."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustcheck.errors import ErrorCode, UsageError
from trustcheck.tuf.keys import _sha256_hex

if TYPE_CHECKING:
    from trustcheck.api import Options


def _state_root(options: Options | None) -> Path | None:
    if options is None or options.state is None:
        return None
    return Path(options.state.path) / "tuf" / "v1"


class _Workspace:
    """python-tuf's ``metadata_dir`` for one repository, used under its lock.

    Layout: ``<state>/tuf/v1/<sha256(repository)[:32]>/`` holds ``repository``
    (the name, checked) and ``current/``, python-tuf's own layout
    (``root_history/N.root.json``, ``root.json``, ``timestamp.json`` ...).
    As the TUF client workflow (spec §5) says, each role is written there as
    soon as it is verified -- python-tuf's atomic write (temp file, rename),
    after trustcheck's own checks (:meth:`_Session._check_persist`) -- so after
    any failure the trusted state is exactly what the specification requires
    (e.g. a good new root stays trusted when the timestamp after it is bad).
    The repository's lock (``<ident>.lock``, ``flock``) is held for the whole
    run, so parallel runs never interleave.

    With ``metadata_dir`` (the library's :func:`refresh` and the
    tuf-conformance client) that folder is used as is, locked by
    ``.trustcheck.lock`` in it. Without a state dir a temporary folder is used
    and removed.
    """

    def __init__(
        self, state_root: Path | None, repo: str, metadata_dir: Path | None = None
    ) -> None:
        self.repo = repo
        self.state_root = state_root
        self.metadata_dir = metadata_dir
        self.dir: Path
        self._lock_cm: Any = None
        self._temporary = False
        self.had_state = False

    def _lock(self, path: Path) -> None:
        from trustcheck.local.fsutil import locked

        self._lock_cm = locked(path)
        self._lock_cm.__enter__()

    def __enter__(self) -> _Workspace:
        try:
            if self.metadata_dir is not None:
                self.dir = self.metadata_dir
                self.dir.mkdir(parents=True, exist_ok=True)
                self._lock(self.dir / ".trustcheck.lock")
            elif self.state_root is None:
                self.dir = Path(tempfile.mkdtemp(prefix="trustcheck-tuf-"))
                self._temporary = True
            else:
                self._enter_state()
            self.had_state = (self.dir / "root.json").exists()
        except OSError as e:
            self.__exit__(None, None, None)
            where = self.metadata_dir or self.state_root
            raise UsageError(
                ErrorCode.STATE_INVALID,
                f"cannot use {where} for the trusted metadata of {self.repo} "
                f"({e.strerror or e}); check --state-dir / --metadata-dir",
            ) from e
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _enter_state(self) -> None:
        assert self.state_root is not None
        ident = _sha256_hex(self.repo.encode("utf-8", "surrogatepass"))[:32]
        folder = self.state_root / ident
        self._lock(self.state_root / f"{ident}.lock")
        folder.mkdir(parents=True, exist_ok=True)
        name_file = folder / "repository"
        if name_file.exists():
            recorded = name_file.read_text("utf-8").strip()
            if recorded != self.repo:
                raise UsageError(
                    ErrorCode.STATE_INVALID,
                    f"state folder {folder} belongs to {recorded[:200]!r}, not {self.repo!r}; "
                    "remove it to trust this repository on first use again",
                )
        else:
            from trustcheck.local.fsutil import atomic_write

            atomic_write(name_file, (self.repo + "\n").encode("utf-8"), mode=0o600)
        current = folder / "current"
        if current.is_symlink():
            # the layout of trustcheck <= 0.1 (generation folders behind a symlink)
            target = folder / os.readlink(current)
            os.unlink(current)
            if target.is_dir() and target.parent == folder:
                os.rename(target, current)
        for stale in folder.glob("g-*"):
            shutil.rmtree(stale, ignore_errors=True)
        current.mkdir(mode=0o700, exist_ok=True)
        self.dir = current

    def __exit__(self, *exc: object) -> None:
        try:
            if self._temporary:
                shutil.rmtree(self.dir, ignore_errors=True)
        finally:
            if self._lock_cm is not None:
                self._lock_cm.__exit__(None, None, None)
                self._lock_cm = None
