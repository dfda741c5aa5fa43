"""The migration coverage report: one row per (repository, digest), pure data."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from trustcheck.signatures.evidence import Evidence

__all__ = ["STATUSES", "CoverageReport", "DigestRow", "RepoCoverage", "Status"]

#: ``both``: DCT-signed and a valid Notation/cosign signature; ``dct-only``: DCT-signed,
#: no valid successor signature (still to migrate); ``no-dct``: a valid Notation/cosign
#: signature and no DCT predecessor; ``unsigned``: a registry tag with neither
Status = Literal["both", "dct-only", "no-dct", "unsigned"]
STATUSES: tuple[Status, ...] = ("both", "dct-only", "no-dct", "unsigned")


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class DigestRow:
    """One manifest digest of a repository and what signs it."""

    gun: str
    digest: str
    #: registry tags pointing at the digest now
    tags: list[str] = field(default_factory=list)
    #: tags DCT releases with this digest (targets/releases or targets), and their roles
    dct_tags: list[str] = field(default_factory=list)
    dct_roles: list[str] = field(default_factory=list)
    #: every signature examined, valid or not, per kind (``notation``, ``cosign``)
    evidence: dict[str, list[Evidence]] = field(default_factory=dict)
    #: with ``--policy``: would the rule allow this digest without DCT (cut-over ready)
    ready: bool | None = None
    ready_reason: str | None = None

    def valid(self, kind: str) -> list[Evidence]:
        return [e for e in self.evidence.get(kind, []) if e.valid and e.digest == self.digest]

    def invalid(self, kind: str) -> list[Evidence]:
        return [e for e in self.evidence.get(kind, []) if not e.valid]

    @property
    def dct(self) -> bool:
        return bool(self.dct_tags)

    @property
    def successor(self) -> bool:
        return any(self.valid(k) for k in ("notation", "cosign"))

    @property
    def status(self) -> Status:
        if self.dct:
            return "both" if self.successor else "dct-only"
        return "no-dct" if self.successor else "unsigned"

    def cell(self, kind: str) -> str:
        """``yes (2)`` / ``invalid: code`` / ``no`` for tables."""
        good = self.valid(kind)
        if good:
            return "yes" if len(good) == 1 else f"yes ({len(good)})"
        bad = self.invalid(kind)
        if bad:
            codes = sorted({e.code or "invalid" for e in bad})
            return "no: " + ", ".join(codes)
        return "no"

    def signers(self, kind: str) -> list[str]:
        return sorted({e.identity for e in self.valid(kind)})

    def to_json(self) -> dict[str, object]:
        return {
            "gun": self.gun,
            "digest": self.digest,
            "status": self.status,
            "tags": self.tags,
            "dct": {"signed": self.dct, "tags": self.dct_tags, "roles": self.dct_roles},
            "notation": {
                "valid": bool(self.valid("notation")),
                "signers": self.signers("notation"),
            },
            "cosign": {"valid": bool(self.valid("cosign")), "signers": self.signers("cosign")},
            "signatures": [e.to_json() for k in sorted(self.evidence) for e in self.evidence[k]],
            "ready": self.ready,
            "ready_reason": self.ready_reason,
        }


@dataclass(slots=True)
class RepoCoverage:
    """One repository: its DCT trust data, its registry tags, its digests."""

    gun: str
    rows: list[DigestRow] = field(default_factory=list)
    #: ``[code] message`` when the DCT trust data could not be verified (None: verified
    #: or the repository has none)
    dct_error: str | None = None
    dct_verified: bool = False
    #: ``[code] message`` when the registry could not be listed
    registry_error: str | None = None
    tags_truncated: bool = False
    #: the policy rule that supplied the trust material, if any
    rule: str | None = None

    def counts(self) -> dict[str, int]:
        c = Counter(r.status for r in self.rows)
        return {s: c.get(s, 0) for s in STATUSES}

    def to_json(self) -> dict[str, object]:
        return {
            "gun": self.gun,
            "dct_verified": self.dct_verified,
            "dct_error": self.dct_error,
            "registry_error": self.registry_error,
            "tags_truncated": self.tags_truncated,
            "rule": self.rule,
            "counts": self.counts(),
            "digests": [r.to_json() for r in self.rows],
        }


@dataclass(slots=True)
class CoverageReport:
    at: datetime
    repos: list[RepoCoverage]
    kinds: tuple[str, ...] = ("notation", "cosign")
    policy: str | None = None

    @property
    def rows(self) -> list[DigestRow]:
        return [r for repo in self.repos for r in repo.rows]

    def counts(self) -> dict[str, int]:
        c = Counter(r.status for r in self.rows)
        return {s: c.get(s, 0) for s in STATUSES}

    def errors(self) -> list[str]:
        out: list[str] = []
        for repo in self.repos:
            for e in (repo.dct_error, repo.registry_error):
                if e is not None and not e.startswith("[no-trust-data]"):
                    out.append(f"{repo.gun}: {e}")
        return out

    def summary(self) -> dict[str, object]:
        rows = self.rows
        dct = [r for r in rows if r.dct]
        covered = [r for r in dct if r.successor]
        return {
            "repositories": len(self.repos),
            "digests": len(rows),
            "dct_signed": len(dct),
            "dct_with_successor": len(covered),
            "coverage_percent": round(100 * len(covered) / len(dct), 1) if dct else None,
            "counts": self.counts(),
            "errors": len(self.errors()),
        }

    def to_json(self) -> dict[str, object]:
        return {
            "at": _stamp(self.at),
            "kinds": list(self.kinds),
            "policy": self.policy,
            "summary": self.summary(),
            "errors": self.errors(),
            "repositories": [r.to_json() for r in self.repos],
        }
