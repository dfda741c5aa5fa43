"""What trustcheck has trusted before, per GUN: the root and every role's version.

Used when no pin applies (trust on first use), and always for rollback
protection: versions may not go down, and a new root is accepted only as a
rotation signed by the previously trusted root (see verify.py).

Layout: ``<state dir>/v1/<sha256(identity(GUN))[:32]>.json`` (the GUN itself is stored
inside and checked), one lock file beside each. Writes are atomic and the
read-verify-write cycle of one GUN runs under an exclusive lock, so parallel
runs lose nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from trustcheck.core.reference import identity
from trustcheck.errors import ErrorCode, UsageError
from trustcheck.local.fsutil import atomic_write, locked

__all__ = ["GunState", "StateStore", "default_state_dir"]

_MAX_STATE = 200 << 20


def default_state_dir(env: Mapping[str, str], home: Path) -> Path:
    """``$TRUSTCHECK_STATE_DIR``, else ``$XDG_STATE_HOME/trustcheck``,
    else ``~/.local/state/trustcheck``."""
    if env.get("TRUSTCHECK_STATE_DIR"):
        return Path(env["TRUSTCHECK_STATE_DIR"])
    base = env.get("XDG_STATE_HOME") or str(home / ".local" / "state")
    return Path(base) / "trustcheck"


@dataclass(slots=True)
class GunState:
    gun: str
    root: bytes | None = None  # the raw root.json last trusted
    versions: dict[str, int] = field(default_factory=dict)
    updated: str = ""

    def to_json(self) -> bytes:
        doc = {
            "gun": self.gun,
            "root": base64.b64encode(self.root).decode() if self.root is not None else None,
            "versions": dict(sorted(self.versions.items())),
            "updated": self.updated,
        }
        return json.dumps(doc, indent=1).encode() + b"\n"


class StateStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _file(self, gun: str) -> Path:
        # keyed on the identity: no alias spelling of a name has a state of its own
        digest = hashlib.sha256(identity(gun).encode()).hexdigest()
        return self.path / "v1" / (digest[:32] + ".json")

    def _corrupt(self, file: Path, why: str) -> UsageError:
        return UsageError(
            ErrorCode.STATE_INVALID,
            f"state file {file} for this GUN is unusable ({why}); inspect it, then remove it "
            "to trust the collection again on first use",
        )

    def load(self, gun: str) -> GunState | None:
        file = self._file(gun)
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise self._corrupt(file, e.strerror or str(e)) from e
        if len(data) > _MAX_STATE:
            raise self._corrupt(file, "too large")
        try:
            doc = json.loads(data)
            if identity(str(doc["gun"])) != identity(gun):
                raise self._corrupt(file, f"it belongs to {doc['gun']!r}")
            root = base64.b64decode(doc["root"], validate=True) if doc["root"] else None
            versions = {str(k): int(v) for k, v in doc["versions"].items()}
            return GunState(gun, root, versions, str(doc.get("updated", "")))
        except UsageError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as e:
            raise self._corrupt(file, f"malformed: {e}") from e

    def _unwritable(self, e: OSError) -> UsageError:
        where = f"{e.filename}: " if e.filename and str(e.filename) != str(self.path) else ""
        return UsageError(
            ErrorCode.STATE_DIR_UNWRITABLE,
            f"state dir {self.path} cannot be written ({where}{e.strerror or e}); nothing was "
            "trusted. Point --state-dir or $TRUSTCHECK_STATE_DIR at a writable directory "
            "(in a read-only container: a writable volume such as an emptyDir)",
        )

    @contextmanager
    def session(self, gun: str) -> Iterator[tuple[GunState | None, _Recorder]]:
        """Hold the GUN's lock; yield its state and a recorder for the new state.

        A state dir that cannot be created, locked or written is a
        ``state-dir-unwritable`` usage error (exit 2) naming it.
        """
        file = self._file(gun)
        with ExitStack() as stack:
            try:
                stack.enter_context(locked(file.with_suffix(".lock")))
            except OSError as e:
                raise self._unwritable(e) from e
            recorder = _Recorder()
            loaded = self.load(gun)
            yield loaded, recorder
            if recorder.state is not None and recorder.state is not loaded:
                try:
                    atomic_write(file, recorder.state.to_json(), mode=0o600)
                except OSError as e:
                    raise self._unwritable(e) from e

    def record(
        self, previous: GunState | None, gun: str, root: bytes, versions: Mapping[str, int]
    ) -> GunState:
        """The state after a successful verification: the new root, versions never lowered.

        Returns ``previous`` itself when nothing changed, which tells
        :meth:`session` not to rewrite the file.
        """
        merged = dict(previous.versions) if previous is not None else {}
        for role, version in versions.items():
            merged[role] = max(version, merged.get(role, 0))
        if previous is not None and previous.root == root and merged == previous.versions:
            return previous  # nothing new: no write (and no fsync) at all
        return GunState(
            gun=identity(gun),
            root=root,
            versions=merged,
            updated=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )


@dataclass(slots=True)
class _Recorder:
    state: GunState | None = None
