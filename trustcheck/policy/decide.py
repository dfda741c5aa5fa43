"""The one decision function every front end uses (``gate``, ``pull``, ``policy
explain``, ``quarantine release``, the admission webhook).

:func:`decide` is pure: an image reference, the policy and the verified
collection (or the error obtaining it) in, a :class:`~trustcheck.policy.model.Decision`
out. No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from trustcheck.core.identity import Identifier
from trustcheck.core.reference import ImageRef
from trustcheck.errors import NotTrusted, TrustcheckError
from trustcheck.policy.model import Decision, Policy, Reason, Rule, SignerResult, SignerSpec

if TYPE_CHECKING:
    from datetime import datetime

    from trustcheck.core.verify import Collection
    from trustcheck.signatures.evidence import Evidence

__all__ = ["check_signers", "decide"]


def _role_keys(col: Collection, role: str) -> dict[str, Any]:
    if role == "targets":
        return dict(col.root.keys)
    parent = role.rsplit("/", 1)[0]
    tm = col.targets.get(parent)
    return dict(tm.delegation_keys) if tm is not None else {}


def _released_names(col: Collection, ref: ImageRef, sha: str) -> list[str]:
    """Target names released with digest ``sha``: the tag, or for ``name@digest`` every
    released tag carrying that digest."""
    if ref.tag is not None:
        return [ref.tag]
    from trustcheck.core.lookup import RELEASED_ROLES, list_targets

    return sorted(
        h.name
        for h in list_targets(col, RELEASED_ROLES).values()
        if h.role in RELEASED_ROLES and h.sha256 == sha
    )


def _match_keys(options: list[list[str]]) -> dict[int, str]:
    """Assign distinct keys to as many signers as possible (augmenting paths)."""
    owner: dict[str, int] = {}

    def assign(i: int, seen: set[str]) -> bool:
        for key in options[i]:
            if key in seen:
                continue
            seen.add(key)
            if key not in owner or assign(owner[key], seen):
                owner[key] = i
                return True
        return False

    for i in range(len(options)):
        assign(i, set())
    return {i: k for k, i in owner.items()}


def check_signers(
    col: Collection, ref: ImageRef, digest: str, specs: Sequence[SignerSpec]
) -> list[SignerResult]:
    """Which required signers signed ``digest`` for ``ref``, each backed by a distinct key.

    A name is satisfied when role ``targets/<name>`` (``targets`` for the
    repository key) holds the tag with that digest; the keys that validly signed
    that role's file back it. A key identifier is satisfied when a key it
    identifies validly signed any role holding the tag with that digest. One key
    never counts for two signers.
    """
    from trustcheck.core.crypto import canonical_key_id
    from trustcheck.core.identity import identifiers_of_key
    from trustcheck.core.lookup import all_target_metadata
    from trustcheck.core.roles import signer_name

    sha = digest.removeprefix("sha256:")
    # role -> canonical IDs (and all identifiers) of the keys that signed it
    roles: dict[str, list[tuple[str, set[Identifier]]]] = {}
    for tname in _released_names(col, ref, sha):
        for hit in all_target_metadata(col, tname):
            if hit.sha256 != sha or hit.role in roles:
                continue
            check = col.checks.get(hit.role)
            keys = _role_keys(col, hit.role)
            signed: list[tuple[str, set[Identifier]]] = []
            for kid in check.signed_by if check is not None else []:
                key = keys.get(kid)
                if key is not None:
                    signed.append((canonical_key_id(key), identifiers_of_key(key, kid)))
            roles[hit.role] = signed
    options: list[list[str]] = []
    where: list[dict[str, str]] = []  # per spec: canonical id -> role it came from
    for spec in specs:
        found: dict[str, str] = {}
        for role, signed in roles.items():
            if spec.name is not None and signer_name(role) != spec.name:
                continue
            for cid, ids in signed:
                if spec.identifier is not None and spec.identifier not in ids:
                    continue
                found.setdefault(cid, role)
        options.append(sorted(found))
        where.append(found)
    chosen = _match_keys(options)
    out: list[SignerResult] = []
    for i, spec in enumerate(specs):
        key = chosen.get(i)
        if key is None:
            out.append(SignerResult(spec.text, False))
        else:
            out.append(SignerResult(spec.text, True, f"canonical:{key}", where[i][key]))
    return out


def decide(
    ref: ImageRef,
    policy: Policy,
    got: Collection | TrustcheckError | None,
    *,
    image: str | None = None,
    namespace: str | None = None,
    evidence: Mapping[str, Sequence[Evidence]] | None = None,
    at: datetime | None = None,
    digest: str | None = None,
) -> Decision:
    """The policy decision for ``ref`` (pure: no I/O, no clock).

    ``got`` is the verified collection of ``ref.gun`` obtained with the matched
    rule's trust settings (see :func:`evaluate`), or the error obtaining it;
    None when the caller fetched nothing (enough for allow/deny rules; a verify
    rule then denies). Fails closed: no matching rule, any verification error,
    or too few required signers is a deny.

    Rules with ``require:`` (docs/policy.md, :mod:`trustcheck.policy.judge`) also
    read ``evidence`` (signature kind -> what the Notation and cosign verifiers found
    for the image's digest; none is no signature), ``at`` (the validation time, for
    the alternatives' ``from``/``until``; None: a dated alternative never counts) and
    ``digest`` (the registry's digest for a tag, used when no DCT alternative in
    force resolves it).
    """
    decision = Decision(
        image=image if image is not None else str(ref),
        name=ref.name,
        tag=ref.tag,
        allowed=False,
        verdict="deny",
        mode="enforce",
    )
    found = policy.candidates(ref, namespace=namespace)
    decision.candidates = [r.ref() for r in found]
    if not found:
        from trustcheck.policy.pattern import match_name

        scoped = [
            r for r in policy.rules if r.namespaces and r.pattern.matches(match_name(ref))
        ]
        where = f" in namespace {namespace}" if namespace else ""
        hint = "add a rule whose pattern matches it, see docs/policy.md"
        if scoped:
            r = scoped[0]
            hint = (
                f"rule {r.label} (line {r.line}) matches it only in namespaces "
                f"{', '.join(r.namespaces)}"
                + ("" if namespace else "; give the namespace with --namespace")
            )
        decision.reasons.append(
            Reason(
                "policy-no-match",
                f"no rule of {policy.source} matches {ref.name}{where}; an image no rule "
                f"names is denied ({hint})",
            )
        )
        return decision
    rule = found[0]
    decision.rule = rule.ref()
    decision.mode = rule.mode
    if rule.action == "deny":
        why = f": {rule.reason}" if rule.reason else ""
        decision.reasons.append(
            Reason(
                "policy-denied",
                f"rule {rule.label} ({rule.pattern.text}) denies {ref.name}{why}",
            )
        )
    elif rule.action == "allow":
        decision.verdict = "allow"
        decision.digest = ref.digest
        decision.warnings.append(
            f"rule {rule.label} allows {ref.name} without verifying any signature"
        )
    elif rule.require is not None:
        from trustcheck.policy.judge import judge_require

        judge_require(decision, rule, ref, got, evidence or {}, at, digest)
    else:
        _verify(decision, rule, ref, got)
    # warn mode: report (verdict deny, the reasons) but do not block
    decision.allowed = decision.verdict == "allow" or rule.mode == "warn"
    if decision.exit_code == 2:
        decision.allowed = False  # bad configuration is never waved through
    return decision


def _verify(
    decision: Decision, rule: Rule, ref: ImageRef, got: Collection | TrustcheckError | None
) -> None:
    from trustcheck.core.lookup import resolve

    if got is None:
        decision.reasons.append(
            Reason(
                "no-trust-data",
                f"rule {rule.label} requires verified trust data for {ref.name}, and none "
                "was supplied",
            )
        )
        return
    if isinstance(got, TrustcheckError):
        decision.reasons.append(Reason.of(got))
        return
    decision.trust_basis = got.trust_basis
    decision.verified = {name: c.version for name, c in got.checks.items()}
    decision.warnings.extend(got.warnings)
    try:
        res = resolve(got, ref)
    except NotTrusted as e:
        decision.reasons.append(Reason.of(e))
        decision.role = e.role
        return
    decision.digest = res.digest
    decision.length = res.length
    decision.role = res.role
    decision.signers = list(res.signers)
    decision.threshold = rule.threshold
    if rule.signers:
        decision.required = check_signers(got, ref, res.digest, rule.signers)
        have = [s for s in decision.required if s.satisfied]
        if len(have) < rule.threshold:
            missing = [s.signer for s in decision.required if not s.satisfied]
            signed = ", ".join(s.signer for s in have) or "none of them"
            tags = _released_names(got, ref, res.digest.removeprefix("sha256:"))
            what = f"{ref.name}:{tags[0]}" if tags else ref.name
            unknown = _unknown_signers(got, [s for s in rule.signers if s.text in missing])
            if unknown:
                decision.reasons.append(
                    _signer_unknown(rule, ref, unknown, signed, missing, res.digest, what)
                )
                return
            decision.reasons.append(
                Reason(
                    "signer-threshold-not-met",
                    f"rule {rule.label} needs {rule.threshold} of "
                    f"[{', '.join(s.text for s in rule.signers)}] to have signed {res.digest} "
                    f"for {what}, each with its own key; signed: {signed}; missing: "
                    f"{', '.join(missing)} (they sign with `docker trust sign {what}`)",
                )
            )
            return
    decision.verdict = "allow"


def _unknown_signers(col: Collection, specs: Sequence[SignerSpec]) -> list[str]:
    """The signer names among ``specs`` that no delegation of ``col`` carries: no
    role ``targets/<name>`` is declared by any loaded targets role, loaded, or
    skipped (key identifiers are never "unknown": any role may hold them)."""
    from trustcheck.core.roles import signer_name

    roles = set(col.targets) | set(col.skipped)
    for tm in col.targets.values():
        roles.update(d.name for d in tm.delegations)
    names = {signer_name(r) for r in roles}
    return [s.name for s in specs if s.name is not None and s.name not in names]


def _signer_unknown(
    rule: Rule,
    ref: ImageRef,
    unknown: list[str],
    signed: str,
    missing: list[str],
    digest: str,
    what: str,
) -> Reason:
    from trustcheck.errors import ErrorCode

    first = unknown[0]
    roles = ", ".join(f'"targets/{n}"' for n in unknown)
    others = [m for m in missing if m not in unknown]
    also = f"; also missing: {', '.join(others)}" if others else ""
    return Reason(
        ErrorCode.SIGNER_UNKNOWN.value,
        f"rule {rule.label} needs {rule.threshold} of "
        f"[{', '.join(s.text for s in rule.signers)}] to have signed {digest} for {what}; "
        f"signed: {signed}; no delegation "
        f"{roles} exists in {ref.gun}{also}: nobody can sign as "
        f"{'them' if len(unknown) > 1 else first} yet. Add it with `docker trust signer add "
        f"--key {first}.pub {first} {ref.name}` (notary: `notary delegation add {ref.gun} "
        f"targets/{first} {first}.crt --all-paths` and `notary publish`), or correct the "
        "signer name in the policy",
    )
