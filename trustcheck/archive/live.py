"""Comparing an archive with live data: keys revoked after the capture.

An archive cannot know what happened after its capture. When the live data is
still reachable, :func:`revoked_since_capture` lists the root, targets and
delegation keys the archive's collection trusted that the live collection no
longer does (a root rotation, a signer removed, a delegation dropped). The
archive's answer stays the answer as of its capture time; these are reported
next to it so nobody mistakes it for today's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trustcheck.core.verify import Collection

__all__ = ["Revoked", "revoked_since_capture", "role_keys"]

#: the roles whose keys sign what an image resolves to (timestamp and snapshot
#: keys are server-managed and rotate without touching any signature of a tag)
_BASE = ("root", "targets")


@dataclass(frozen=True, slots=True)
class Revoked:
    """A key the archive's collection trusted for ``role`` that live data does not."""

    role: str
    keyid: str
    why: str

    def to_json(self) -> dict[str, str]:
        return {"role": self.role, "keyid": self.keyid, "why": self.why}


def role_keys(col: Collection) -> dict[str, set[str]]:
    """Key IDs per role: root and targets from root.json, each loaded delegation's
    from its parent."""
    out = {role: set(col.root.roles[role].keyids) for role in _BASE if role in col.root.roles}
    for children in col.children.values():
        for d in children:
            out[d.name] = set(d.keyids)
    return out


def revoked_since_capture(archived: Collection, live: Collection) -> list[Revoked]:
    """Keys of ``archived`` that ``live`` no longer has for the same role, sorted."""
    then = role_keys(archived)
    now = role_keys(live)
    out: list[Revoked] = []
    for role in sorted(then):
        current = now.get(role)
        for keyid in sorted(then[role]):
            if current is None:
                why = f"{role} is no longer delegated (live root v{live.root.version})"
            elif keyid not in current:
                why = f"removed from {role} (live root v{live.root.version})"
            else:
                continue
            out.append(Revoked(role, keyid, why))
    return out
