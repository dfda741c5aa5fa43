"""The I/O edge around :func:`~trustcheck.policy.decide.decide`: obtain the
collections each matched rule asks for (trust dir or Notary server, with the
rule's pins and server) and decide each image."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from trustcheck.core.reference import ImageRef
from trustcheck.errors import TrustcheckError
from trustcheck.policy.decide import decide
from trustcheck.policy.model import Decision, Policy, Rule

if TYPE_CHECKING:
    from trustcheck.api import Options
    from trustcheck.archive import Archive
    from trustcheck.archive.decide import ArchiveSpec
    from trustcheck.core.verify import Collection
    from trustcheck.local.trustdir import TrustDir
    from trustcheck.remote.config import RemoteConfig
    from trustcheck.signatures.evidence import Evidence

__all__ = ["evaluate", "needs_dct", "rule_options", "rule_remote"]


def rule_options(rule: Rule, options: Options) -> Options:
    """The verification options for ``rule``: its pins replace the CLI's, ``no_tofu``
    is added."""
    return replace(
        options,
        pins=rule.trust.pins if rule.trust.pins is not None else options.pins,
        no_tofu=options.no_tofu or bool(rule.trust.no_tofu),
    )


def rule_remote(rule: Rule, remote: RemoteConfig | None) -> RemoteConfig | None:
    """The server settings for ``rule``: its server replaces the CLI's; offline when
    either says so. None stays None (no network)."""
    if remote is None:
        return None
    return replace(
        remote,
        server=rule.trust.server if rule.trust.server is not None else remote.server,
        offline=remote.offline or bool(rule.trust.offline),
    )


def evaluate(
    refs: Sequence[ImageRef],
    policy: Policy,
    trust_dir: TrustDir,
    at: datetime,
    options: Options | None = None,
    remote: RemoteConfig | None = None,
    *,
    images: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    namespace: str | None = None,
) -> list[Decision]:
    """Decide every image: obtain the trust data each matched verify rule asks for
    (fetched unless ``remote`` is None or offline, as
    :func:`trustcheck.api.collections_for`), then :func:`decide`."""
    from trustcheck.api import Options, collections_for

    opts = options if options is not None else Options()
    texts = list(images) if images is not None else [str(r) for r in refs]
    by_rule: dict[int, list[ImageRef]] = {}
    for ref in refs:
        rule = policy.match(ref, namespace=namespace)
        if rule is not None and rule.action == "verify" and needs_dct(rule, at):
            by_rule.setdefault(rule.index, []).append(ref)
    got: dict[tuple[int, str], Collection | TrustcheckError] = {}
    opened: dict[ArchiveSpec, Archive | TrustcheckError] = {}  # each archive read once
    for index, group in by_rule.items():
        rule = policy.rules[index]
        if rule.trust.archive is not None:  # docs/archive.md: as of its capture time
            from trustcheck.archive.decide import collections_from_spec

            cols = collections_from_spec(
                rule.trust.archive, [r.gun for r in group], at, rule_options(rule, opts), opened
            )
            for gun, col in cols.items():
                got[(index, gun)] = col
            continue
        cols = collections_for(
            [r.gun for r in group],
            trust_dir,
            at,
            rule_options(rule, opts),
            rule_remote(rule, remote),
            progress,
        )
        for gun, col in cols.items():
            got[(index, gun)] = col
    out: list[Decision] = []
    from trustcheck.policy.gather import EvidenceGatherer, signature_kinds

    with EvidenceGatherer(remote, at, opts) as gatherer:
        for ref, text in zip(refs, texts, strict=True):
            rule = policy.match(ref, namespace=namespace)
            found = got.get((rule.index, ref.gun)) if rule is not None else None
            evidence: dict[str, list[Evidence]] = {}
            registry_digest = None
            if rule is not None and signature_kinds(rule, at):  # require: notation/cosign
                evidence, registry_digest = gatherer.gather(rule, ref, found)
            out.append(
                decide(
                    ref,
                    policy,
                    found,
                    image=text,
                    namespace=namespace,
                    evidence=evidence,
                    at=at,
                    digest=registry_digest,
                )
            )
    return out


def needs_dct(rule: Rule, at: datetime) -> bool:
    """Whether ``rule`` needs DCT trust data at ``at`` (a classic verify rule, or a
    ``require:`` with a DCT alternative in force)."""
    if rule.require is None:
        return True
    from trustcheck.policy.require import active_kinds

    return "dct" in active_kinds(rule.require, at)
