"""What a TUF verification reports: roles (:class:`RoleInfo`), targets,
the repository report of ``tuf inspect`` (:class:`RepoReport`), and
:class:`RefreshResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trustcheck.core.timefmt import iso as _iso

if TYPE_CHECKING:
    from tuf.api.metadata import (  # type: ignore[attr-defined]
        Metadata,
        Root,
        Targets,
    )


__all__ = ["RefreshResult", "RepoReport", "RoleInfo", "TargetEntry"]


@dataclass(slots=True)
class RoleInfo:
    """One verified role: what was checked (results as data)."""

    name: str
    version: int
    expires: str
    threshold: int
    keyids: list[str]
    signed_by: list[str]  # key IDs whose signatures counted (one per distinct public key)
    delegated_by: str | None
    paths: list[str] | None = None
    path_hash_prefixes: list[str] | None = None
    succinct: str | None = None  # "<name_prefix>-*" for a hash-bin role
    terminating: bool | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "expires": self.expires,
            "threshold": self.threshold,
            "keyids": self.keyids,
            "signed_by": self.signed_by,
            "delegated_by": self.delegated_by,
        }
        if self.delegated_by not in (None, "root"):
            out["terminating"] = self.terminating
            if self.paths is not None:
                out["paths"] = self.paths
            if self.path_hash_prefixes is not None:
                out["path_hash_prefixes"] = self.path_hash_prefixes
            if self.succinct is not None:
                out["succinct_roles"] = self.succinct
        return out


@dataclass(slots=True)
class TargetEntry:
    path: str
    role: str
    length: int
    hashes: dict[str, str]
    effective: bool  # whether `tuf verify PATH` resolves to this very entry

    @property
    def digest(self) -> str | None:
        return _digest(self.hashes)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "role": self.role,
            "digest": self.digest,
            "length": self.length,
            "hashes": dict(sorted(self.hashes.items())),
            "effective": self.effective,
        }


@dataclass(slots=True)
class RepoReport:
    """``trustcheck tuf inspect``: roles, keys and targets of one verified repository."""

    repository: str
    spec_version: str
    consistent_snapshot: bool
    roles: list[RoleInfo] = field(default_factory=list)
    keys: list[dict[str, Any]] = field(default_factory=list)
    targets: list[TargetEntry] = field(default_factory=list)
    skipped: list[dict[str, str | None]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "dialect": "tuf",
            "spec_version": self.spec_version,
            "consistent_snapshot": self.consistent_snapshot,
            "roles": [r.to_json() for r in self.roles],
            "keys": self.keys,
            "targets": [t.to_json() for t in self.targets],
            "skipped": self.skipped,
        }

    def render_text(self) -> str:
        lines = [
            f"Repository: {self.repository}",
            f"TUF spec {self.spec_version}, consistent snapshots: "
            f"{'yes' if self.consistent_snapshot else 'no'}",
            "",
            "Roles",
        ]
        for r in self.roles:
            scope = ""
            if r.paths is not None:
                scope = " paths " + ", ".join(r.paths)
            elif r.path_hash_prefixes is not None:
                scope = " hash prefixes " + ", ".join(r.path_hash_prefixes)
            elif r.succinct is not None:
                scope = f" hash bins {r.succinct}"
            if r.terminating:
                scope += " (terminating)"
            by = f" <- {r.delegated_by}" if r.delegated_by not in (None, "root") else ""
            lines.append(
                f"  {r.name:<20} v{r.version:<5} expires {r.expires}  "
                f"{len(r.signed_by)} of {len(r.keyids)} keys signed "
                f"(threshold {r.threshold}){by}{scope}"
            )
        lines += ["", "Keys"]
        for k in self.keys:
            lines.append(f"  {k['keyid']}  {k['algorithm']:<11} {', '.join(k['roles'])}")
        lines += ["", "Targets"]
        if not self.targets:
            lines.append("  (none)")
        for t in self.targets:
            mark = "" if t.effective else "  (shadowed: not what verify resolves)"
            lines.append(f"  {t.path}  {t.digest or '-'}  {t.length} bytes  [{t.role}]{mark}")
        for s in self.skipped:
            lines.append(f"skipped role {s['role']}: [{s['code']}] {s['message']}")
        return "\n".join(lines)


def _digest(hashes: dict[str, str]) -> str | None:
    for algo in ("sha256", "sha512"):
        value = hashes.get(algo)
        if isinstance(value, str) and value:
            return f"{algo}:{value.lower()}"
    return None


def _role_info(
    name: str, md: Metadata[Any], role: Any, signed_by: list[str], parent: str | None
) -> RoleInfo:
    from tuf.api.metadata import (  # type: ignore[attr-defined]
        DelegatedRole,
        SuccinctRoles,
    )

    info = RoleInfo(
        name=name,
        version=md.signed.version,
        expires=_iso(md.signed.expires),
        threshold=role.threshold,
        keyids=list(role.keyids),
        signed_by=signed_by,
        delegated_by=parent,
    )
    if isinstance(role, DelegatedRole):
        info.paths = role.paths
        info.path_hash_prefixes = role.path_hash_prefixes
        info.terminating = role.terminating
    elif isinstance(role, SuccinctRoles):
        info.succinct = f"{role.name_prefix}-*"
        info.terminating = True
    return info


def _label(delegator: Root | Targets) -> str:
    kind = "root" if delegator.type == "root" else "a targets role"
    return f"{kind} v{delegator.version}"


@dataclass(slots=True)
class RefreshResult:
    """What :func:`refresh` trusted: the top-level roles, after the TUF client workflow."""

    repository: str
    roles: list[RoleInfo] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "dialect": "tuf",
            "roles": [r.to_json() for r in self.roles],
        }
