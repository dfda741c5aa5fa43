"""The I/O for ``require:`` rules: the image's digest and what the Notation and
cosign verifiers find for it in the registry (docs/policy.md).

:class:`EvidenceGatherer` is used by :func:`trustcheck.policy.evaluate.evaluate`
(so by ``gate``, ``pull``, ``quarantine release`` and ``policy explain``) and by
the coverage report. It opens one :class:`~trustcheck.remote.oci.OciRegistry` per
registry setting and loads each rule's trust material once; the verifiers are
imported lazily, only when a rule in force needs them. Every failure becomes an
:class:`~trustcheck.signatures.evidence.Evidence` record with its error code for
that image alone (fail closed: :func:`~trustcheck.policy.decide.decide` counts
only valid records).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from trustcheck.errors import ErrorCode, TrustcheckError, UsageError
from trustcheck.policy.judge import dct_in_force
from trustcheck.policy.require import CosignReq, active_kinds, leaves

if TYPE_CHECKING:
    from trustcheck.api import Options
    from trustcheck.core.reference import ImageRef
    from trustcheck.core.verify import Collection
    from trustcheck.policy.model import Policy, Rule
    from trustcheck.policy.require import NotationTrust
    from trustcheck.remote.config import RemoteConfig
    from trustcheck.remote.oci import OciRegistry
    from trustcheck.signatures.evidence import Evidence, Kind
    from trustcheck.webhook.review import Plan

__all__ = [
    "EvidenceGatherer",
    "ImageEvidence",
    "error_record",
    "gather_images",
    "load_notation_trust",
    "review_evidence",
    "signature_kinds",
]


def signature_kinds(rule: Rule, at: datetime) -> set[str]:
    """The registry signature kinds (``notation``, ``cosign``) ``rule`` needs at ``at``."""
    if rule.action != "verify" or rule.require is None:
        return set()
    return active_kinds(rule.require, at) - {"dct"}


def error_record(kind: str, digest: str, error: TrustcheckError, source: str = "") -> Evidence:
    """A failure, as evidence that counts for nothing."""
    from trustcheck.signatures.evidence import Evidence

    return Evidence(
        kind=cast("Kind", kind),
        digest=digest,
        valid=False,
        identity="",
        source=source,
        code=str(error.code),
        message=error.message,
    )


class EvidenceGatherer:
    """Digests and signature evidence for the images of ``require:`` rules."""

    def __init__(
        self,
        remote: RemoteConfig | None,
        at: datetime,
        options: Options | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.remote = remote
        self.at = at
        self.options = options
        self.env = env
        self._registries: dict[int, OciRegistry] = {}
        self._notation: dict[NotationTrust | None, object] = {}
        self._cosign: dict[int, object] = {}

    def close(self) -> None:
        for reg in self._registries.values():
            reg.close()
        self._registries.clear()

    def __enter__(self) -> EvidenceGatherer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- trust material, once per rule -------------------------------------------------

    def registry(self, rule: Rule) -> OciRegistry | None:
        """The registry client for ``rule`` (None when offline: nothing is asked)."""
        from trustcheck.policy.evaluate import rule_remote

        remote = rule_remote(rule, self.remote)
        if remote is None or remote.offline:
            return None
        if rule.index in self._registries:
            return self._registries[rule.index]
        from trustcheck.remote.oci import OciRegistry

        reg = OciRegistry(remote, self.env)
        self._registries[rule.index] = reg
        return reg

    def _notation_config(self, rule: Rule) -> object:
        trust = rule.trust.notation
        if trust not in self._notation:
            try:
                self._notation[trust] = load_notation_trust(trust)
            except TrustcheckError as e:
                self._notation[trust] = e
        return self._notation[trust]

    def _cosign_config(self, rule: Rule) -> object:
        if rule.index not in self._cosign:
            try:
                self._cosign[rule.index] = _load_cosign(rule, self.at, self.options)
            except TrustcheckError as e:
                self._cosign[rule.index] = e
        return self._cosign[rule.index]

    # --- per image ------------------------------------------------------------------------

    def digest_for(
        self, rule: Rule, ref: ImageRef, got: Collection | TrustcheckError | None
    ) -> tuple[str | None, str | None, TrustcheckError | None]:
        """(digest the evidence is about, the registry's digest when it came from the
        registry, the error when there is none)."""
        if ref.digest is not None:
            return ref.digest, None, None
        assert rule.require is not None
        if (
            got is not None
            and not isinstance(got, TrustcheckError)
            and dct_in_force(rule.require, self.at)
        ):
            from trustcheck.core.lookup import resolve

            try:
                return resolve(got, ref).digest, None, None
            except TrustcheckError:
                pass  # DCT does not release it: the registry's digest, below
        reg = self.registry(rule)
        if reg is None:
            return None, None, _offline(ref)
        try:
            digest = reg.resolve(ref)
        except TrustcheckError as e:
            return None, None, e
        return digest, digest, None

    def gather(
        self, rule: Rule, ref: ImageRef, got: Collection | TrustcheckError | None
    ) -> tuple[dict[str, list[Evidence]], str | None]:
        """(kind -> evidence for ``ref``'s digest, the registry's digest for its tag)."""
        kinds = signature_kinds(rule, self.at)
        if not kinds:
            return {}, None
        digest, from_registry, error = self.digest_for(rule, ref, got)
        if digest is None:
            assert error is not None
            return {k: [error_record(k, "", error, "registry")] for k in sorted(kinds)}, None
        return self.evidence(rule, ref, digest, kinds), from_registry

    def evidence(
        self, rule: Rule, ref: ImageRef, digest: str, kinds: Sequence[str] | set[str]
    ) -> dict[str, list[Evidence]]:
        """What the verifiers of ``kinds`` report for ``digest`` (never raises
        :class:`TrustcheckError`: a failure is an error record)."""
        out: dict[str, list[Evidence]] = {}
        reg = self.registry(rule)
        for kind in sorted(kinds):
            if reg is None:
                out[kind] = [error_record(kind, digest, _offline(ref), "registry")]
                continue
            config = (
                self._notation_config(rule) if kind == "notation" else self._cosign_config(rule)
            )
            if isinstance(config, TrustcheckError):
                out[kind] = [error_record(kind, digest, config, "trust material")]
                continue
            try:
                verify = _provider(kind)
                found = verify(ref, digest, config, self.at, reg)
            except TrustcheckError as e:
                found = [error_record(kind, digest, e, "registry")]
            out[kind] = list(found)
        return out


def _offline(ref: ImageRef) -> TrustcheckError:
    from trustcheck.errors import NotTrusted

    return NotTrusted(
        ErrorCode.SIGNATURES_OFFLINE,
        f"{ref.name}: Notation and cosign signatures are in the registry, which is not asked "
        "offline; run without --offline (or without the rule's trust.offline)",
    )


def _provider(kind: str) -> Any:
    """``notation_evidence`` / ``cosign_evidence`` (imported only when a rule needs it)."""
    import importlib

    if kind == "notation":
        return importlib.import_module("trustcheck.notation").notation_evidence
    return importlib.import_module("trustcheck.sigstore").cosign_evidence


def load_notation_trust(trust: NotationTrust | None) -> object:
    """Notation's trust policy and trust store as the rule's ``trust.notation`` names
    them (default: Notation's own folder, ``$NOTATION_CONFIG`` or
    ``$XDG_CONFIG_HOME/notation`` or ``~/.config/notation``)."""
    import importlib
    import os

    load_notation_config = importlib.import_module("trustcheck.notation").load_notation_config
    if trust is None:
        return load_notation_config()
    env = None
    if trust.config_dir is not None:  # the folder stands for $NOTATION_CONFIG
        env = {**os.environ, "NOTATION_CONFIG": str(trust.config_dir)}
    return load_notation_config(trust.trust_policy, trust.trust_store, env=env)


def _load_cosign(rule: Rule, at: datetime, options: Options | None) -> object:
    """The cosign trust material of ``rule``: the public keys its cosign leaves name and
    the trusted root of ``trust.cosign`` (keyless signers are judged by the policy,
    so no identity is passed to the verifier)."""
    from trustcheck.sigstore.config import CosignConfig, load_cosign_config, load_public_key

    assert rule.require is not None
    keys = []
    seen: set[str] = set()
    for leaf in leaves(rule.require):
        if isinstance(leaf, CosignReq):
            for pem, source in zip(leaf.key_pems, leaf.key_sources, strict=True):
                key = load_public_key(pem, source)
                if key.identity not in seen:
                    seen.add(key.identity)
                    keys.append(key)
    root = rule.trust.cosign.trusted_root if rule.trust.cosign is not None else None
    base = load_cosign_config(trusted_root=root, at=at, options=options)
    if not isinstance(base, CosignConfig):  # pragma: no cover - the verifier's contract
        raise UsageError(ErrorCode.COSIGN_CONFIG_INVALID, "unexpected cosign configuration")
    from dataclasses import replace

    return replace(base, keys=tuple(keys))


#: evidence per image text: (kind -> records, the registry's digest for a tag)
ImageEvidence = dict[str, tuple[dict[str, list["Evidence"]], str | None]]


def gather_images(
    items: Sequence[tuple[str, ImageRef, Rule, Collection | TrustcheckError | None]],
    remote: RemoteConfig | None,
    at: datetime,
    options: Options | None = None,
) -> ImageEvidence:
    """:meth:`EvidenceGatherer.gather` for each ``(image, ref, rule, collection)``
    (blocking: run it in a worker thread from async code)."""
    with EvidenceGatherer(remote, at, options) as gatherer:
        return {image: gatherer.gather(rule, ref, got) for image, ref, rule, got in items}


#: per policy object: whether any rule has ``require:`` (policies are not changed
#: once loaded; a reload makes a new object)
_REQUIRING: dict[int, tuple[Policy, bool]] = {}


def _requiring(policy: Policy) -> bool:
    """Whether a rule of ``policy`` may need registry signatures (``require:``)."""
    found = _REQUIRING.get(id(policy))
    if found is not None and found[0] is policy:
        return found[1]
    flag = any(r.action == "verify" and r.require is not None for r in policy.rules)
    if len(_REQUIRING) > 64:
        _REQUIRING.clear()
    _REQUIRING[id(policy)] = (policy, flag)
    return flag


async def review_evidence(
    plan: Plan,
    policy: Policy,
    got: Mapping[tuple[int, str], Collection | TrustcheckError],
    remote: RemoteConfig | None,
    options: Options | None,
    seconds: float,
) -> tuple[ImageEvidence, datetime]:
    """The admission webhook's evidence for the images of a review whose rule has
    Notation/cosign alternatives in force now, and the validation time (now).
    Gathered in a worker thread within ``seconds``; images not done by then get a
    deadline error record (fail closed)."""
    import asyncio
    from datetime import UTC

    now = datetime.now(UTC)
    if not _requiring(policy):  # the warm path of a policy without require: rules
        return {}, now
    items: list[tuple[str, ImageRef, Rule, Collection | TrustcheckError | None]] = []
    seen: set[str] = set()
    for site in plan.sites:
        if site.ref is None or site.image in seen:
            continue
        # the rule plan_review matched for this site in the review's namespace
        rule = site.rule
        if rule is None or not signature_kinds(rule, now):
            continue
        seen.add(site.image)
        items.append((site.image, site.ref, rule, got.get((rule.index, site.ref.gun))))
    if not items:
        return {}, now
    loop = asyncio.get_running_loop()
    work = loop.run_in_executor(None, gather_images, items, remote, now, options)
    try:
        return await asyncio.wait_for(work, timeout=max(seconds, 0.001)), now
    except TimeoutError:
        from trustcheck.errors import NotTrusted

        late = NotTrusted(
            ErrorCode.ADMISSION_DEADLINE,
            f"the Notation/cosign signatures were not checked within the review's deadline "
            f"of {seconds:.3g} s; denied (fail closed)",
        )
        out: ImageEvidence = {}
        for image, _ref, rule, _got in items:
            kinds = signature_kinds(rule, now)
            out[image] = ({k: [error_record(k, "", late, "registry")] for k in kinds}, None)
        return out, now
