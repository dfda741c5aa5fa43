"""Policy decisions (gate, webhook) taken from a trust archive.

The same :func:`trustcheck.policy.decide.decide` as live decisions; only where
the verified collections come from differs: each rule's options (its pins,
``no_tofu``) applied to the archive's data, verified as of its capture time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from trustcheck.errors import TrustcheckError

if TYPE_CHECKING:
    from trustcheck.api import Options
    from trustcheck.archive.read import Archive
    from trustcheck.archive.sign import ArchivePin
    from trustcheck.core.reference import ImageRef
    from trustcheck.core.verify import Collection
    from trustcheck.policy.model import Decision, Policy

__all__ = ["ArchiveSpec", "archive_lookup", "collections_from_spec", "evaluate_archive"]


@dataclass(frozen=True, slots=True)
class ArchiveSpec:
    """A policy's ``trust: {archive: {path, pin, max_age}}`` (docs/archive.md)."""

    path: Path
    pin: ArchivePin | None = None
    max_age: timedelta | None = None


def collections_from_spec(
    spec: ArchiveSpec,
    guns: Sequence[str],
    now: datetime,
    options: Options | None = None,
    opened: dict[ArchiveSpec, Archive | TrustcheckError] | None = None,
) -> dict[str, Collection | TrustcheckError]:
    """The collections of ``guns`` from the archive ``spec`` names, as of its capture
    time; ``now`` is the reader's time (age). Each collection carries a warning
    naming the archive and its capture time, so no decision from it reads as live.
    An archive that is refused (tampered, too old) is every GUN's error; one that
    cannot be read at all raises (a usage error: exit 2)."""
    from trustcheck.archive.read import open_archive
    from trustcheck.errors import NotTrusted

    memo = opened if opened is not None else {}
    got = memo.get(spec)
    if got is None:
        try:
            got = open_archive(spec.path, now, pin=spec.pin)
        except NotTrusted as e:
            got = e
        memo[spec] = got
    if isinstance(got, TrustcheckError):
        return dict.fromkeys(guns, got)
    try:  # the age is measured to each call's time (a long-running webhook)
        got.check_age(now, spec.max_age)
    except NotTrusted as e:
        return dict.fromkeys(guns, e)
    cols = got.collections_for(guns, options)
    for col in cols.values():
        if not isinstance(col, TrustcheckError):
            col.warnings.insert(
                0, f"decided from trust archive {got.path} as of capture time {got.as_of}"
            )
    return cols


def archive_lookup(
    archive: Archive, policy: Policy, options: Options | None = None
) -> Callable[[int, str], Collection | TrustcheckError | None]:
    """A ``lookup(rule_index, gun)`` for :func:`trustcheck.webhook.review.handle`
    answering from ``archive`` (results kept per rule and GUN)."""
    from trustcheck.api import Options as _Options
    from trustcheck.policy.evaluate import rule_options

    opts = options if options is not None else _Options()
    memo: dict[tuple[int, str], Collection | TrustcheckError] = {}

    def lookup(index: int, gun: str) -> Collection | TrustcheckError | None:
        key = (index, gun)
        if key not in memo:
            rule = policy.rules[index]
            memo[key] = archive.collections_for([gun], rule_options(rule, opts))[gun]
        return memo[key]

    return lookup


def evaluate_archive(
    refs: Sequence[ImageRef],
    policy: Policy,
    archive: Archive,
    options: Options | None = None,
    *,
    images: Sequence[str] | None = None,
    at: datetime | None = None,
) -> list[Decision]:
    """:func:`trustcheck.policy.evaluate.evaluate` with the trust data of ``archive``.
    ``at``: the validation time of ``require:`` windows (docs/policy.md; the trust data
    itself is judged as of the capture time)."""
    from trustcheck.policy.decide import decide

    lookup = archive_lookup(archive, policy, options)
    texts = list(images) if images is not None else [str(r) for r in refs]
    out: list[Decision] = []
    for ref, text in zip(refs, texts, strict=True):
        rule = policy.match(ref)
        found = (
            lookup(rule.index, ref.gun) if rule is not None and rule.action == "verify" else None
        )
        out.append(decide(ref, policy, found, image=text, at=at))
    return out
