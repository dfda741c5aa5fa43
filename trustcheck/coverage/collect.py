"""The I/O of the coverage report: DCT trust data (verified as ``verify`` does), the
registry's tags (``/v2/<name>/tags/list``), and the Notation and cosign signatures of
every digest (:class:`~trustcheck.policy.gather.EvidenceGatherer`, the code ``gate``
uses). A failure costs only its repository (or its tag): it is reported, not raised."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from trustcheck.coverage.model import CoverageReport, DigestRow, RepoCoverage
from trustcheck.errors import TrustcheckError

if TYPE_CHECKING:
    from trustcheck.api import Options
    from trustcheck.core.reference import ImageRef
    from trustcheck.core.verify import Collection
    from trustcheck.local.trustdir import TrustDir
    from trustcheck.policy.gather import EvidenceGatherer
    from trustcheck.policy.model import Policy, Rule
    from trustcheck.remote.config import RemoteConfig

__all__ = ["MAX_DIGESTS", "MAX_TAGS", "collect", "trust_rule"]

#: tags listed per repository (more: the report says it is truncated)
MAX_TAGS = 5000
#: digests examined per repository
MAX_DIGESTS = 2000
#: tags that are signatures or referrer indexes, not images (cosign, the referrers
#: tag schema)
_SIGNATURE_TAG = re.compile(r"^sha(256|384|512)-[0-9a-f]+(\.(sig|att|sbom))?$")


def _text(e: TrustcheckError) -> str:
    return f"[{e.code}] {e.message}"


def trust_rule(
    *,
    notation_trust_policy: Path | None = None,
    notation_trust_store: Path | None = None,
    cosign_keys: Sequence[Path] = (),
    cosign_trusted_root: Path | None = None,
) -> Rule:
    """A rule carrying the command line's trust material (for repositories no policy
    rule with ``require:`` covers): any valid Notation signature, any cosign
    signature by ``cosign_keys`` or chaining to ``cosign_trusted_root``."""
    from trustcheck.errors import ErrorCode, UsageError
    from trustcheck.policy.model import Rule, Trust
    from trustcheck.policy.pattern import Pattern
    from trustcheck.policy.require import (
        AnyOf,
        CosignReq,
        CosignTrust,
        NotationReq,
        NotationTrust,
        key_identity,
    )

    pems: list[bytes] = []
    ids: list[str] = []
    for path in cosign_keys:
        try:
            data = path.read_bytes()[: 64 * 1024 + 1]
            ids.append(key_identity(data))
        except OSError as e:
            raise UsageError(
                ErrorCode.COSIGN_CONFIG_INVALID,
                f"--cosign-key {path}: cannot read it ({e.strerror or e})",
            ) from e
        except (ValueError, TypeError) as e:
            raise UsageError(
                ErrorCode.COSIGN_CONFIG_INVALID, f"--cosign-key {path} is not a PEM public key"
            ) from e
        pems.append(data)
    notation = None
    if notation_trust_policy is not None or notation_trust_store is not None:
        notation = NotationTrust(None, notation_trust_policy, notation_trust_store)
    cosign = CosignTrust(cosign_trusted_root) if cosign_trusted_root is not None else None
    require = AnyOf(
        "coverage",
        (
            NotationReq("coverage.notation"),
            CosignReq(
                "coverage.cosign",
                keys=tuple(ids),
                key_sources=tuple(str(p) for p in cosign_keys),
                key_pems=tuple(pems),
            ),
        ),
    )
    return Rule(
        index=-1,
        name="command line",
        pattern=Pattern.parse("**"),
        action="verify",
        mode="enforce",
        trust=Trust(notation=notation, cosign=cosign),
        require=require,
    )


def _rule_for(ref: ImageRef, policy: Policy | None, base: Rule) -> Rule:
    if policy is None:
        return base
    rule = policy.match(ref)
    if rule is None or rule.action != "verify" or rule.require is None:
        return base
    return rule


def collect(
    guns: Sequence[str],
    trust_dir: TrustDir,
    at: datetime,
    options: Options,
    remote: RemoteConfig | None,
    base: Rule,
    *,
    policy: Policy | None = None,
    kinds: Sequence[str] = ("notation", "cosign"),
    progress: Callable[[int, int], None] | None = None,
    checked: Callable[[int, int], None] | None = None,
    max_tags: int = MAX_TAGS,
    max_digests: int = MAX_DIGESTS,
) -> CoverageReport:
    """The coverage of ``guns`` at ``at`` (DCT fetched unless ``remote`` is None or
    offline, as ``verify``). ``progress``: the DCT fetches; ``checked``: the
    repositories whose registry side is done."""
    from trustcheck.api import collections_for
    from trustcheck.core.reference import parse_reference
    from trustcheck.policy.evaluate import rule_options, rule_remote
    from trustcheck.policy.gather import EvidenceGatherer

    refs = {gun: parse_reference(gun) for gun in guns}
    rules = {gun: _rule_for(refs[gun], policy, base) for gun in guns}
    cols: dict[str, Collection | TrustcheckError] = {}
    by_rule: dict[int, list[str]] = {}
    for gun, rule in rules.items():
        by_rule.setdefault(rule.index, []).append(gun)
    for group in by_rule.values():
        rule = rules[group[0]]
        cols.update(
            collections_for(
                group,
                trust_dir,
                at,
                rule_options(rule, options),
                rule_remote(rule, remote),
                progress,
            )
        )
    report = CoverageReport(at, [], tuple(kinds), policy.source if policy is not None else None)
    with EvidenceGatherer(remote, at, options) as gatherer:
        for gun in guns:
            rule = rules[gun]
            repo = _repo(
                gun, refs[gun], cols.get(gun), rule, gatherer, kinds, max_tags, max_digests
            )
            repo.rule = rule.name if rule is not base else None
            if policy is not None:
                _ready(repo, policy, at)
            report.repos.append(repo)
            if checked is not None:
                checked(len(report.repos), len(guns))
    return report


def _repo(
    gun: str,
    ref: ImageRef,
    got: Collection | TrustcheckError | None,
    rule: Rule,
    gatherer: EvidenceGatherer,
    kinds: Sequence[str],
    max_tags: int,
    max_digests: int,
) -> RepoCoverage:
    from trustcheck.core.lookup import RELEASED_ROLES, list_targets
    from trustcheck.core.reference import parse_reference

    repo = RepoCoverage(gun)
    rows: dict[str, DigestRow] = {}

    def row(digest: str) -> DigestRow:
        if digest not in rows:
            rows[digest] = DigestRow(gun, digest)
        return rows[digest]

    if isinstance(got, TrustcheckError):
        repo.dct_error = _text(got)
    elif got is not None:
        repo.dct_verified = True
        for name, hit in sorted(list_targets(got, RELEASED_ROLES).items()):
            if hit.role not in RELEASED_ROLES or hit.sha256 is None:
                continue
            r = row("sha256:" + hit.sha256)
            r.dct_tags.append(name)
            if hit.role not in r.dct_roles:
                r.dct_roles.append(hit.role)
    reg = gatherer.registry(rule)
    if reg is None:
        repo.registry_error = (
            "[signatures-offline] the registry is not asked offline: no tags and no "
            "Notation or cosign signatures (run without --offline)"
        )
    else:
        try:
            tags, repo.tags_truncated = reg.tags(ref, limit=max_tags)
        except TrustcheckError as e:
            repo.registry_error = _text(e)
            tags = []
        for tag in sorted(tags):
            if _SIGNATURE_TAG.match(tag):
                continue
            try:
                digest = reg.resolve(parse_reference(f"{gun}:{tag}"))
            except TrustcheckError as e:
                if repo.registry_error is None:
                    repo.registry_error = f"{tag}: {_text(e)}"
                continue
            if digest in rows or len(rows) < max_digests:
                row(digest).tags.append(tag)
            else:
                repo.tags_truncated = True
    for digest in list(rows)[:max_digests]:
        r = rows[digest]
        if reg is not None and kinds:
            r.evidence = gatherer.evidence(
                rule, parse_reference(f"{gun}@{digest}"), digest, set(kinds)
            )
    repo.rows = sorted(
        rows.values(), key=lambda r: (min(r.tags + r.dct_tags, default="~"), r.digest)
    )
    return repo


def _ready(repo: RepoCoverage, policy: Policy, at: datetime) -> None:
    """Whether ``policy`` allows each digest with no DCT trust data (the cut-over)."""
    from trustcheck.core.reference import parse_reference
    from trustcheck.policy.decide import decide

    for r in repo.rows:
        d = decide(
            parse_reference(f"{repo.gun}@{r.digest}"), policy, None, evidence=r.evidence, at=at
        )
        r.ready = d.verdict == "allow"
        if r.ready:
            continue
        # why not, leaving out DCT (absent on purpose here)
        failing = [a for a in d.alternatives if a.kind != "dct" and a.active and not a.satisfied]
        if failing:
            r.ready_reason = "; ".join(f"{a.path}: [{a.code}] {a.why}" for a in failing)
        elif d.reasons:
            r.ready_reason = f"[{d.reasons[0].code}] {d.reasons[0].message}"
