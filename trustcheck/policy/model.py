"""The policy model: rules, trust settings, required signers, and the decision a
rule yields (docs/policy.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from trustcheck.core.identity import Identifier
from trustcheck.core.reference import ImageRef
from trustcheck.errors import TrustcheckError
from trustcheck.local.pinfile import PinSet
from trustcheck.policy.pattern import Pattern, match_name

if TYPE_CHECKING:
    from trustcheck.archive.decide import ArchiveSpec
    from trustcheck.policy.require import CosignTrust, LeafResult, NotationTrust, Requirement

__all__ = [
    "ACTIONS",
    "MODES",
    "Action",
    "Decision",
    "Mode",
    "Policy",
    "Reason",
    "Rule",
    "RuleRef",
    "SignerResult",
    "SignerSpec",
    "Trust",
]

Action = Literal["verify", "allow", "deny"]
Mode = Literal["enforce", "warn"]
ACTIONS: tuple[Action, ...] = ("verify", "allow", "deny")
MODES: tuple[Mode, ...] = ("enforce", "warn")


@dataclass(frozen=True, slots=True)
class SignerSpec:
    """One required signer: a delegation name (``alice``, ``releases``, ``targets``
    for the repository key) or a key identifier as in the pin file."""

    text: str
    name: str | None = None
    identifier: Identifier | None = None

    def __str__(self) -> str:
        return self.text


@dataclass(slots=True)
class Trust:
    """How a rule's trust data is obtained. ``None`` = not set (the CLI's option applies)."""

    pins: PinSet | None = None
    #: where the pins came from, for messages ("pins.toml", "policy.yaml:12 (inline)")
    pins_source: str | None = None
    server: str | None = None
    offline: bool | None = None
    no_tofu: bool | None = None
    #: decide from this trust archive, as of its capture time (docs/archive.md)
    archive: ArchiveSpec | None = None
    #: Notation's trust policy and trust store; Sigstore's trusted root (docs/policy.md)
    notation: NotationTrust | None = None
    cosign: CosignTrust | None = None

    def merged_over(self, base: Trust) -> Trust:
        """This rule's settings, field by field over the policy's ``defaults``."""
        return Trust(
            pins=self.pins if self.pins is not None else base.pins,
            pins_source=self.pins_source if self.pins is not None else base.pins_source,
            server=self.server if self.server is not None else base.server,
            offline=self.offline if self.offline is not None else base.offline,
            no_tofu=self.no_tofu if self.no_tofu is not None else base.no_tofu,
            archive=self.archive if self.archive is not None else base.archive,
            notation=self.notation if self.notation is not None else base.notation,
            cosign=self.cosign if self.cosign is not None else base.cosign,
        )


@dataclass(slots=True)
class Rule:
    index: int
    name: str
    pattern: Pattern
    action: Action
    mode: Mode
    signers: tuple[SignerSpec, ...] = ()
    threshold: int = 0
    trust: Trust = field(default_factory=Trust)
    reason: str | None = None
    line: int = 0
    #: ``namespaces:`` name patterns (docs/policy.md); empty: every review and command
    namespaces: tuple[str, ...] = ()
    #: ``require:`` (docs/policy.md): DCT, Notation and cosign alternatives; None = the
    #: classic rule (a DCT release, with ``signers``/``threshold`` when given)
    require: Requirement | None = None

    @property
    def label(self) -> str:
        return f'"{self.name}"'

    def applies_in(self, namespace: str | None) -> bool:
        """Whether this rule may decide for ``namespace`` (None or "": no namespace,
        where a rule with ``namespaces`` never applies)."""
        if not self.namespaces:
            return True
        if not namespace:
            return False
        from trustcheck.policy.pattern import shell_matches

        return any(shell_matches(p, namespace) for p in self.namespaces)

    def ref(self) -> RuleRef:
        return RuleRef(
            self.name,
            self.index,
            self.pattern.text,
            self.action,
            self.mode,
            self.line,
            self.namespaces,
        )


@dataclass(frozen=True, slots=True)
class RuleRef:
    """A rule as decisions report it."""

    name: str
    index: int
    pattern: str
    action: str
    mode: str
    line: int
    namespaces: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "index": self.index,
            "pattern": self.pattern,
            "action": self.action,
            "mode": self.mode,
            "line": self.line,
            "namespaces": list(self.namespaces) or None,
        }


@dataclass(slots=True)
class Policy:
    rules: list[Rule]
    source: str = "<policy>"
    path: Path | None = None
    #: lint findings (`policy check` prints them); never change a decision
    warnings: list[str] = field(default_factory=list)

    def candidates(self, ref: ImageRef, *, namespace: str | None = None) -> list[Rule]:
        """Every rule whose pattern matches ``ref`` and that applies in ``namespace``
        (:meth:`Rule.applies_in`), most specific first; at equal pattern
        specificity a rule with ``namespaces`` comes first."""
        name = match_name(ref)
        found = [
            r for r in self.rules if r.pattern.matches(name) and r.applies_in(namespace)
        ]
        return sorted(
            found,
            key=lambda r: (r.pattern.specificity(), bool(r.namespaces), -r.index),
            reverse=True,
        )

    def match(self, ref: ImageRef, *, namespace: str | None = None) -> Rule | None:
        """The rule that decides ``ref``; None means deny."""
        found = self.candidates(ref, namespace=namespace)
        return found[0] if found else None

    @property
    def namespaced(self) -> bool:
        """Whether any rule is scoped with ``namespaces``."""
        return any(r.namespaces for r in self.rules)

    @classmethod
    def docker_content_trust(cls) -> Policy:
        """What ``DOCKER_CONTENT_TRUST=1 docker pull`` enforced: every image must verify."""
        rule = Rule(0, "docker-content-trust", Pattern.parse("**"), "verify", "enforce")
        return cls([rule], source="built-in policy (every image must be signed)")


# ----------------------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an image was denied: a stable error code (docs/errors.md) and one line."""

    code: str
    message: str
    role: str | None = None

    @property
    def exit_code(self) -> int:
        from trustcheck.errors import CODES, ErrorCode

        return CODES[ErrorCode(self.code)][0] if self.code in CODES else 1

    def to_json(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "role": self.role}

    @classmethod
    def of(cls, error: TrustcheckError) -> Reason:
        return cls(error.code, error.message, error.role)


@dataclass(frozen=True, slots=True)
class SignerResult:
    """One required signer: whether it signed the released digest, with which key, in
    which role."""

    signer: str
    satisfied: bool
    key: str | None = None  # "canonical:<hex>" of the key counted for it
    role: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "signer": self.signer,
            "satisfied": self.satisfied,
            "key": self.key,
            "role": self.role,
        }


@dataclass(slots=True)
class Decision:
    """The answer for one image. ``allowed`` is final (a ``warn`` rule never blocks);
    ``verdict`` is what the rule concluded before its mode applied."""

    image: str
    name: str
    tag: str | None
    allowed: bool
    verdict: Literal["allow", "deny"]
    mode: Mode
    digest: str | None = None
    rule: RuleRef | None = None
    reasons: list[Reason] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: the role the digest was released from, and every signer of that digest
    role: str | None = None
    length: int | None = None
    signers: list[str] = field(default_factory=list)
    threshold: int = 0
    required: list[SignerResult] = field(default_factory=list)
    #: every rule that matched, most specific first (``policy explain``)
    candidates: list[RuleRef] = field(default_factory=list)
    #: why the root was trusted and the version of each verified role
    trust_basis: str | None = None
    verified: dict[str, int] = field(default_factory=dict)
    #: rules with ``require:``: the alternatives that satisfied the rule, each with the
    #: signatures that counted, and how every alternative fared (``policy explain``)
    satisfied_by: list[LeafResult] = field(default_factory=list)
    alternatives: list[LeafResult] = field(default_factory=list)
    #: where the digest came from: ``reference``, ``dct`` or ``registry``
    digest_source: str | None = None

    @property
    def pinned(self) -> str | None:
        """``name@sha256:...`` for deploy manifests (None without a digest)."""
        return f"{self.name}@{self.digest}" if self.digest is not None else None

    @property
    def exit_code(self) -> int:
        """2 if any reason is a usage/configuration error, else 1 when denied, else 0."""
        if any(r.exit_code == 2 for r in self.reasons):
            return 2
        return 0 if self.allowed else 1

    def to_json(self) -> dict[str, object]:
        return {
            "image": self.image,
            "name": self.name,
            "tag": self.tag,
            "allowed": self.allowed,
            "verdict": self.verdict,
            "mode": self.mode,
            "digest": self.digest,
            "pinned": self.pinned if self.allowed else None,
            "rule": self.rule.to_json() if self.rule is not None else None,
            "reasons": [r.to_json() for r in self.reasons],
            "warnings": self.warnings,
            "role": self.role,
            "length": self.length,
            "signers": self.signers,
            "required_signers": (
                {"threshold": self.threshold, "signers": [s.to_json() for s in self.required]}
                if self.required
                else None
            ),
            "candidates": [c.to_json() for c in self.candidates],
            "trust_basis": self.trust_basis,
            "verified": self.verified,
            "satisfied_by": [r.to_json() for r in self.satisfied_by],
            "alternatives": [r.to_json() for r in self.alternatives],
            "digest_source": self.digest_source,
        }
