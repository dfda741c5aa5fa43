"""Judging a rule's ``require:`` tree for one image (pure: no I/O, no clock).

:func:`trustcheck.policy.decide.decide` calls :func:`judge_require` for a verify
rule with ``require:``: DCT leaves are judged from the verified collection as a
classic rule is, Notation and cosign leaves from the
:class:`~trustcheck.signatures.evidence.Evidence` the verifiers reported for the
image's digest. One digest must satisfy the whole rule; every leaf's outcome is
recorded for ``policy explain`` and the decision JSON (``alternatives``,
``satisfied_by``). Fails closed: no evidence is no signature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from trustcheck.errors import NotTrusted, TrustcheckError
from trustcheck.policy.model import Decision, Reason, Rule
from trustcheck.policy.require import (
    AllOf,
    AnyOf,
    CosignReq,
    DctReq,
    Leaf,
    LeafResult,
    NotationReq,
    Requirement,
    leaves,
)

if TYPE_CHECKING:
    from trustcheck.core.lookup import Resolution
    from trustcheck.core.reference import ImageRef
    from trustcheck.core.verify import Collection
    from trustcheck.signatures.evidence import Evidence

__all__ = ["MAX_SUMMARY", "describe", "judge_require"]

#: the summary reason of an unsatisfied requirement is cut to this many characters
MAX_SUMMARY = 1500


class _Ctx:
    """What judging one image's requirement tree reads (all computed up front)."""

    def __init__(
        self,
        ref: ImageRef,
        at: datetime | None,
        digest: str | None,
        evidence: Mapping[str, Sequence[Evidence]],
        col: Collection | None,
        res: Resolution | None,
        dct_error: Reason | None,
    ) -> None:
        self.ref = ref
        self.at = at
        self.digest = digest
        self.evidence = evidence
        self.col = col
        self.res = res
        self.dct_error = dct_error
        self.results: dict[str, LeafResult] = {}


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _in_force(node: Requirement, at: datetime | None) -> str | None:
    """None when ``node`` counts at ``at``, else why not."""
    if node.window is None:
        return None
    if at is None:
        return f"dated ({node.window.text()}) and no validation time was given"
    return None if node.window.contains(at) else node.window.why_not(at)


def dct_in_force(req: Requirement, at: datetime | None) -> bool:
    """Whether a DCT leaf of ``req`` counts at ``at`` (then a tag's digest is DCT's)."""
    if _in_force(req, at) is not None:
        return False
    if isinstance(req, AnyOf | AllOf):
        return any(dct_in_force(c, at) for c in req.children)
    return isinstance(req, DctReq)


def judge_require(
    decision: Decision,
    rule: Rule,
    ref: ImageRef,
    got: Collection | TrustcheckError | None,
    evidence: Mapping[str, Sequence[Evidence]],
    at: datetime | None,
    registry_digest: str | None,
) -> None:
    """Fill ``decision`` for ``rule.require`` (verdict, digest, reasons, alternatives)."""
    from trustcheck.core.lookup import resolve

    req = rule.require
    assert req is not None
    col: Collection | None = None
    res: Resolution | None = None
    dct_error: Reason | None = None
    if got is None:
        dct_error = Reason("no-trust-data", f"no verified DCT trust data for {ref.name}")
    elif isinstance(got, TrustcheckError):
        dct_error = Reason.of(got)
    else:
        col = got
        decision.trust_basis = got.trust_basis
        decision.verified = {name: c.version for name, c in got.checks.items()}
        try:
            res = resolve(got, ref)
        except NotTrusted as e:
            dct_error = Reason.of(e)
    digest: str | None = None
    if ref.digest is not None:
        digest, decision.digest_source = ref.digest, "reference"
    elif res is not None and dct_in_force(req, at):
        digest, decision.digest_source = res.digest, "dct"
    elif registry_digest is not None:
        digest, decision.digest_source = registry_digest, "registry"
    ctx = _Ctx(ref, at, digest, evidence, col, res, dct_error)
    ok = _judge(req, ctx)
    decision.alternatives = [ctx.results[leaf.path] for leaf in leaves(req)]
    if col is not None:
        decision.warnings.extend(col.warnings)
    if ok:
        decision.verdict = "allow"
        decision.digest = digest
        decision.satisfied_by = [ctx.results[leaf.path] for leaf in _chosen(req, ctx)]
        if res is not None and any(r.kind == "dct" for r in decision.satisfied_by):
            decision.role = res.role
            decision.length = res.length
            decision.signers = list(res.signers)
        for r in decision.alternatives:
            if r.active and not r.satisfied and r.code is not None and _usage(r.code):
                decision.warnings.append(
                    f"alternative {r.path} ({r.describe}) could not be checked: {r.why}"
                )
        return
    what = f"{ref.name}@{digest}" if digest is not None else str(ref)
    failing = [r for r in decision.alternatives if r.active and not r.satisfied]
    if failing:
        detail = "; ".join(f"{r.path} ({r.describe}): [{r.code}] {r.why}" for r in failing)
    else:
        stamp = _stamp(at) if at is not None else "the validation time (none given)"
        detail = f"no alternative is in force at {stamp}"
    summary = f"rule {rule.label} requires {describe(req)} for {what}; {detail}"
    if len(summary) > MAX_SUMMARY:
        summary = summary[: MAX_SUMMARY - 1] + "…"
    decision.reasons.append(Reason("requirement-not-met", summary))
    seen: set[tuple[str, str]] = set()
    for r in failing:
        if r.code is not None and (r.code, r.why) not in seen:
            seen.add((r.code, r.why))
            decision.reasons.append(Reason(r.code, f"{r.path}: {r.why}"))


def _usage(code: str) -> bool:
    from trustcheck.errors import CODES, ErrorCode

    try:
        return CODES[ErrorCode(code)][0] == 2
    except (ValueError, KeyError):
        return False


def describe(req: Requirement) -> str:
    """The requirement in one line (for messages)."""
    if isinstance(req, AnyOf | AllOf):
        word = "any of" if isinstance(req, AnyOf) else "all of"
        out = f"{word} [{' | '.join(describe(c) for c in req.children)}]"
    else:
        out = req.describe()
    if req.window is not None:
        out += f" ({req.window.text()})"
    return out


def _judge(req: Requirement, ctx: _Ctx) -> bool:
    """Whether ``req`` is satisfied; every leaf's result lands in ``ctx.results``."""
    off = _in_force(req, ctx.at)
    if isinstance(req, AnyOf | AllOf):
        got = [_judge(c, ctx) for c in req.children]  # every leaf, for explain
        if off is not None:
            for leaf in leaves(req):
                r = ctx.results[leaf.path]
                if r.active:
                    r.active = r.satisfied = False
                    r.code = None
                    r.by = []
                    r.why = f"inside {req.path}, which is {off}"
            return False
        return any(got) if isinstance(req, AnyOf) else all(got)
    result = LeafResult(req.path, req.kind, req.describe(), True, False, "", req.window)
    ctx.results[req.path] = result
    if off is not None:
        result.active = False
        result.why = off
        return False
    if isinstance(req, DctReq):
        _judge_dct(req, ctx, result)
    else:
        _judge_signatures(req, ctx, result)
    return result.satisfied


def _judge_dct(req: DctReq, ctx: _Ctx, result: LeafResult) -> None:
    from trustcheck.policy.decide import check_signers

    if ctx.dct_error is not None:
        result.code = ctx.dct_error.code
        result.why = ctx.dct_error.message
        return
    assert ctx.res is not None and ctx.col is not None
    res = ctx.res
    if ctx.digest is not None and res.digest != ctx.digest:
        result.code = "digest-mismatch"
        result.why = (
            f"DCT releases {ctx.ref.name} as {res.digest}, not {ctx.digest}; one digest must "
            "satisfy the whole rule"
        )
        return
    if not req.signers:
        result.satisfied = True
        result.why = f"released in {res.role} as {res.digest}"
        result.by = [
            {"kind": "dct", "digest": res.digest, "role": res.role, "signers": list(res.signers)}
        ]
        return
    checked = check_signers(ctx.col, ctx.ref, res.digest, req.signers)
    have = [s for s in checked if s.satisfied]
    if len(have) >= req.threshold:
        result.satisfied = True
        result.why = f"{len(have)} of {len(req.signers)} signers signed {res.digest}"
        result.by = [
            {"kind": "dct", "digest": res.digest, "signer": s.signer, "role": s.role, "key": s.key}
            for s in have
        ]
        return
    missing = ", ".join(s.signer for s in checked if not s.satisfied)
    signed = ", ".join(s.signer for s in have) or "none of them"
    result.code = "signer-threshold-not-met"
    result.why = (
        f"needs {req.threshold} of [{', '.join(s.text for s in req.signers)}] to have signed "
        f"{res.digest}, each with its own key; signed: {signed}; missing: {missing}"
    )


def _judge_signatures(req: NotationReq | CosignReq, ctx: _Ctx, result: LeafResult) -> None:
    records = list(ctx.evidence.get(req.kind, ()))
    if ctx.digest is None:
        error = next((e for e in records if e.code is not None), None)
        result.code = error.code if error is not None else "signature-not-found"
        result.why = (
            f"no digest for {ctx.ref}: {error.message}"
            if error is not None
            else f"no digest for {ctx.ref}: the registry was not asked (offline?)"
        )
        return
    mine = [e for e in records if e.digest == ctx.digest]
    valid = [e for e in mine if e.valid]
    ok = [e for e in valid if req.accepts(e)]
    if ok:
        first = ok[0]
        result.satisfied = True
        result.why = f"signed by {first.identity}" + (f" ({first.issuer})" if first.issuer else "")
        result.by = [e.to_json() for e in ok]
        return
    if valid:
        who = "; ".join(sorted({e.identity for e in valid}))
        result.code = "signature-identity-mismatch"
        result.why = (
            f"{len(valid)} valid {req.kind} signature(s) over {ctx.digest} by {who}; the rule "
            f"needs {req.describe()}"
        )
        return
    errors = [e for e in records if e.code is not None]
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more invalid)" if len(errors) > 1 else ""
        result.code = first.code
        result.why = first.message + more
        return
    result.code = "signature-not-found"
    result.why = f"no {req.kind} signature found for {ctx.digest}"


def _chosen(req: Requirement, ctx: _Ctx) -> list[Leaf]:
    """The leaves that make a satisfied ``req`` satisfied (any_of: its first satisfied
    alternative; all_of: all of them)."""
    if isinstance(req, AnyOf):
        for c in req.children:
            if _ok(c, ctx):
                return _chosen(c, ctx)
        return []
    if isinstance(req, AllOf):
        return [leaf for c in req.children for leaf in _chosen(c, ctx)]
    return [req]


def _ok(req: Requirement, ctx: _Ctx) -> bool:
    if _in_force(req, ctx.at) is not None:
        return False
    if isinstance(req, AnyOf):
        return any(_ok(c, ctx) for c in req.children)
    if isinstance(req, AllOf):
        return all(_ok(c, ctx) for c in req.children)
    return ctx.results[req.path].satisfied


# ----------------------------------------------------------------------------- for people


def _signature_text(sig: Mapping[str, object]) -> str:
    """One signature that counted, in a few words."""
    kind = sig.get("kind")
    if kind == "dct":
        if sig.get("signer") is not None:
            key = str(sig.get("key") or "")
            return f"DCT signer {sig['signer']} ({sig.get('role')}, key {key[:22]}…)"
        return f"DCT release in {sig.get('role')}"
    who = str(sig.get("identity") or "?")
    issuer = sig.get("issuer")
    src = sig.get("source")
    out = f"{kind} {who}" + (f" ({issuer})" if issuer else "")
    return out + (f" from {src}" if src else "")


def satisfied_text(decision: Decision) -> str:
    """``dct:releases + notation:CN=...`` style summary for the one-line gate output."""
    parts = []
    for r in decision.satisfied_by:
        first = r.by[0] if r.by else {}
        if r.kind == "dct":
            signers = [str(s.get("signer")) for s in r.by if s.get("signer") is not None]
            parts.append("dct " + (", ".join(signers) if signers else str(first.get("role"))))
        else:
            parts.append(f"{r.kind} {first.get('identity', '?')}")
    return " + ".join(parts)


def explain_lines(decision: Decision, rule: Rule) -> list[str]:
    """The ``require:`` part of ``policy explain``: the requirement, where the digest
    came from, every alternative with its window and outcome, what satisfied it."""
    req = rule.require
    if req is None:
        return []
    lines = [f"requires   {describe(req)}"]
    where = {
        "reference": "the image reference",
        "dct": "DCT trust data (the signed tag)",
        "registry": "the registry (the tag's current digest; signatures bind the digest)",
    }
    if decision.digest_source is not None and decision.digest_source in where:
        lines.append(f"digest     from {where[decision.digest_source]}")
    chosen = {r.path for r in decision.satisfied_by}
    for r in decision.alternatives:
        if r.satisfied and r.path in chosen:
            state = "SATISFIED"
        elif r.satisfied:
            state = "satisfied"
        elif not r.active:
            state = "not in force"
        else:
            state = "not met"
        window = f" [{r.window.text()}]" if r.window is not None else ""
        lines.append(f"  {state:<12} {r.path}: {r.describe}{window}")
        code = f"[{r.code}] " if r.code is not None else ""
        lines.append(f"               {code}{r.why}")
    for r in decision.satisfied_by:
        for sig in r.by:
            lines.append(f"satisfied  by {_signature_text(sig)}  ({r.path})")
    return lines
