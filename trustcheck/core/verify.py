"""Verify one Notary v1 trust collection from a :class:`Source`.

A thin driver: it reads each role's bytes from the source, in notary's
order, and hands them to a :class:`~trustcheck.core.trusted_set.TrustedSet`,
which holds every trust rule.  Bytes come from a :class:`Source` (a trust dir,
a Notary server through the cache, memory); pins, the previous root, floors
and the validation time ``at`` are inputs (built by
:mod:`trustcheck.local.session`); the result is a :class:`Collection` or a
:class:`~trustcheck.errors.NotTrusted` exception.  The clock, the environment
and the file system are never touched here.

The order follows notary's client (notary-v1-spec.md §3): root (§4.2),
timestamp, snapshot, targets, then delegations in notary's pre-order walk
(§3.2 ``downloadTargets``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from trustcheck.core.roles import MAX_DOWNLOAD_SIZE, MAX_TIMESTAMP_SIZE
from trustcheck.core.trusted_set import (
    Collection,
    IntermediateRootsNeeded,
    TrustedSet,
    TrustPolicy,
)
from trustcheck.errors import ErrorCode, NotTrusted

__all__ = [
    "Collection",
    "Source",
    "TrustPolicy",
    "verify_collection",
]


class Source(Protocol):
    """Where role bytes come from. ``read`` returns None when the role is absent.

    A source may also have ``describe() -> str`` (where the trust data of the
    GUN is, for messages) and ``replaced(role) -> bytes | None`` (a cached copy
    of ``role`` that the bytes just read replace; a floor when it verifies).
    """

    def read(self, role: str, cap: int) -> bytes | None: ...


def _read(source: Source, role: str, cap: int, parent: str | None, length: int | None) -> bytes:
    if length is not None and length < 0:
        raise NotTrusted(
            ErrorCode.LENGTH_EXCEEDED,
            f"{parent} gives {role} a negative length ({length}); the metadata is malicious",
            role=role,
        )
    try:
        raw = source.read(role, cap)
    except NotTrusted as e:
        if e.code == "file-too-large" and length is not None and length <= cap:
            raise NotTrusted(
                ErrorCode.LENGTH_EXCEEDED,
                f"{role}.json is longer than the {length} bytes {parent} allows; the cached "
                "file was replaced or padded: fetch the trust data again",
                role=role,
            ) from e
        raise
    if raw is None:
        raise NotTrusted(
            ErrorCode.ROLE_MISSING,
            f"{role}.json is missing from the trust data; fetch it again (e.g. `docker trust "
            "inspect` or `trustcheck fetch`)",
            role=role,
        )
    return raw


def _read_role(
    ts: TrustedSet, source: Source, role: str, cap: int, parent: str | None, length: int | None
) -> bytes:
    """``role``'s bytes; a cached copy they replace goes to the set first (a floor)."""
    raw = _read(source, role, cap, parent, length)
    replaced = getattr(source, "replaced", None)
    if replaced is not None:
        old = replaced(role)
        if old is not None:
            ts.note_replaced(role, old)
    return raw


def _update_root(ts: TrustedSet, source: Source, raw_root: bytes) -> None:
    try:
        ts.update_root(raw_root)
        return
    except IntermediateRootsNeeded as need:
        new_version = need.versions.stop
        prev_version = need.versions.start - 1
        for v in need.versions:
            raw_v = source.read(f"{v}.root", MAX_DOWNLOAD_SIZE)
            if raw_v is None:
                raise ts.missing_intermediate_root(
                    v, new_version, prev_version, need.first
                ) from None
            ts.update_intermediate_root(raw_v, v)
    ts.update_root(raw_root)


def verify_collection(
    gun: str, source: Source, at: datetime, policy: TrustPolicy | None = None
) -> Collection:
    """Verify everything for ``gun`` at validation time ``at`` (timezone-aware).

    ``policy`` carries pins and what was trusted before (state); without it
    the root is trusted on first use, as Docker did.
    """
    ts = TrustedSet(gun, at, policy)
    raw_root = source.read("root", MAX_DOWNLOAD_SIZE)
    if raw_root is None:
        describe = getattr(source, "describe", None)
        where = describe() if describe is not None else "the trust dir"
        raise NotTrusted(
            ErrorCode.NO_TRUST_DATA,
            f"no trust data for {gun} in {where}; pull or inspect it once with "
            "content trust (docker trust inspect) or run trustcheck fetch",
        )
    _update_root(ts, source, raw_root)
    ts.update_timestamp(_read_role(ts, source, "timestamp", MAX_TIMESTAMP_SIZE, None, None))
    snap_meta = ts.snapshot_meta()
    ts.update_snapshot(
        _read_role(
            ts,
            source,
            "snapshot",
            min(snap_meta.length, MAX_DOWNLOAD_SIZE),
            "timestamp",
            snap_meta.length,
        )
    )
    while (nxt := ts.next_targets()) is not None:
        name, fm = nxt
        raw = _read_role(ts, source, name, min(fm.length, MAX_DOWNLOAD_SIZE), "snapshot", fm.length)
        if name == "targets":
            ts.update_targets(raw)
        else:
            ts.update_delegated_targets(raw, name)
    return ts.collection()
