"""Policy decisions (gate, webhook) taken from a trust archive.

The same :func:`trustcheck.policy.decide.decide` as live decisions; only where
the verified collections come from differs: each rule's options (its pins,
``no_tofu``) applied to the archive's data, verified as of its capture time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from trustcheck.errors import TrustcheckError

if TYPE_CHECKING:
    from trustcheck.api import Options
    from trustcheck.archive.read import Archive
    from trustcheck.core.reference import ImageRef
    from trustcheck.core.verify import Collection
    from trustcheck.policy.model import Decision, Policy

__all__ = ["archive_lookup", "evaluate_archive"]


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
) -> list[Decision]:
    """:func:`trustcheck.policy.evaluate.evaluate` with the trust data of ``archive``."""
    from trustcheck.policy.decide import decide

    lookup = archive_lookup(archive, policy, options)
    texts = list(images) if images is not None else [str(r) for r in refs]
    out: list[Decision] = []
    for ref, text in zip(refs, texts, strict=True):
        rule = policy.match(ref)
        found = (
            lookup(rule.index, ref.gun) if rule is not None and rule.action == "verify" else None
        )
        out.append(decide(ref, policy, found, image=text))
    return out
