"""Kubernetes admission: AdmissionReview in, AdmissionReview out (pure).

The HTTP server (:mod:`trustcheck.webhook.app`) is a thin shell around the
functions here; none of them does I/O or reads the clock:

1. :func:`parse_review` (:mod:`trustcheck.webhook.objects`, re-exported here)
   reads an ``admission.k8s.io/v1`` or ``v1beta1`` AdmissionReview; a document
   that is not one raises :class:`ReviewError` (HTTP 400).
2. :func:`plan_review` finds every image of the object (Pods, Deployments,
   ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs,
   ReplicationControllers and PodTemplates; ``containers``,
   ``initContainers``, ``ephemeralContainers`` and image volumes,
   ``volumes[].image.reference``), applies the operation rules (CREATE and
   UPDATE are checked, DELETE and CONNECT allowed; an UPDATE that finishes a
   deletion without changing an image, and the images a ``kubectl debug``
   leaves as they were, are not), the namespace and object exemptions, and
   says which verified collections the decision needs: ``(rule index, GUN)``
   for each image a ``verify`` rule decides.
3. :func:`respond` calls :func:`trustcheck.policy.decide.decide` for each image with
   the collections obtained (or the error obtaining them, or
   :func:`deadline_error` when the review's deadline passed first), applies
   the revocation list and the continuity rule (a pinned digest whose tag has
   moved on stays admissible while it was verified as a release within the
   window, :mod:`trustcheck.webhook.admitted`), and builds the answer:
   allowed, or denied with a message giving the reason codes first, then
   naming each image, the rule and the reason; ``warnings`` for warn-mode
   rules and continuity admissions; for the mutating
   endpoint an RFC 6902 JSON Patch pinning each allowed image to its signed
   digest, with the original references in an annotation.

:func:`handle` chains the three for callers that can look collections up
synchronously (tests, the offline tester). Anything malformed inside a
well-formed review (a container that is not an object, an image that is not a
string) is a deny (``admission-invalid``), never an exception.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

import orjson

from trustcheck.core.reference import ImageRef, parse_reference
from trustcheck.errors import ErrorCode, NotTrusted, TrustcheckError
from trustcheck.policy.decide import decide
from trustcheck.policy.model import Decision, Policy, Reason, Rule
from trustcheck.policy.pattern import shell_matches
from trustcheck.webhook.admitted import DEFAULT_WINDOW, Released, Revocations
from trustcheck.webhook.admitted import rule_fingerprint as _fingerprint
from trustcheck.webhook.objects import (
    API_VERSIONS,
    CHECKED_SUBRESOURCES,
    MAX_SHOWN,
    POD_SPEC_PATHS,
    ImageSite,
    Invalid,
    Review,
    ReviewError,
    all_images,
    cut,
    deleting,
    escape_token,
    image_fields,
    image_sites,
    metadata,
    parse_review,
)

if TYPE_CHECKING:
    from datetime import datetime

    from trustcheck.core.verify import Collection
    from trustcheck.policy.gather import ImageEvidence

__all__ = [
    "API_VERSIONS",
    "MOVED_CODES",
    "MUTATION_MODES",
    "ImageSite",
    "Memo",
    "ObjectExemption",
    "Outcome",
    "Plan",
    "Review",
    "ReviewError",
    "WebhookConfig",
    "deadline_error",
    "deny_response",
    "handle",
    "parse_review",
    "plan_review",
    "respond",
    "rewrite_image",
]

MutationMode = Literal["tag-digest", "digest", "off"]
MUTATION_MODES: tuple[MutationMode, ...] = ("tag-digest", "digest", "off")
UpdateMode = Literal["all", "changed"]
UPDATE_MODES: tuple[UpdateMode, ...] = ("all", "changed")

#: deny reasons that mean only "the signed tag no longer carries this digest": the
#: collection verified, the rule is satisfiable; continuity may admit the digest
MOVED_CODES = frozenset({"digest-mismatch", "digest-not-signed", "tag-not-signed"})

#: Kubernetes shows warnings longer than this truncated (and asks for <= 120)
MAX_WARNING_LENGTH = 256
#: the deny message is cut here (it is shown to the user by kubectl)
MAX_MESSAGE_LENGTH = 4000


#: rule object id -> (the rule, its fingerprint): computed once per rule of a policy
_FINGERPRINTS: dict[int, tuple[Rule, str]] = {}


def rule_fingerprint(rule: Rule) -> str:
    """:func:`trustcheck.webhook.admitted.rule_fingerprint`, kept per rule object."""
    found = _FINGERPRINTS.get(id(rule))
    if found is not None and found[0] is rule:
        return found[1]
    fp = _fingerprint(rule)
    if len(_FINGERPRINTS) > 4096:
        _FINGERPRINTS.clear()
    _FINGERPRINTS[id(rule)] = (rule, fp)
    return fp


@dataclass(frozen=True, slots=True)
class ObjectExemption:
    """Objects never checked: every field given must match (shell globs, the
    ``shell`` mode of :mod:`trustcheck.policy.pattern`)."""

    namespace: str | None = None
    kind: str | None = None
    name: str | None = None

    def matches(self, namespace: str, kind: str, name: str) -> bool:
        return all(
            pattern is None or shell_matches(pattern, value)
            for pattern, value in (
                (self.namespace, namespace),
                (self.kind, kind),
                (self.name, name),
            )
        )

    def __str__(self) -> str:
        parts = [
            f"{k}={v}"
            for k, v in (("namespace", self.namespace), ("kind", self.kind), ("name", self.name))
            if v is not None
        ]
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """What the server config sets for every review (docs/webhook.md)."""

    #: seconds per review; after it the answer is deny (below the API server's timeoutSeconds)
    deadline: float = 8.0
    mutation: MutationMode = "tag-digest"
    #: UPDATE: check every image ("all") or only images the old object did not have
    updates: UpdateMode = "all"
    annotation: str = "trustcheck.io/original-images"
    exempt_namespaces: tuple[str, ...] = ()
    exempt_objects: tuple[ObjectExemption, ...] = ()
    max_warnings: int = 20
    #: seconds a verified release stays admissible after its tag moved (0: off)
    continuity_window: float = DEFAULT_WINDOW
    #: digests denied whatever signs or admitted them
    revoked: Revocations = field(default_factory=Revocations)


@dataclass(slots=True)
class Plan:
    """What a review needs: the images to decide and the collections to obtain."""

    review: Review
    sites: list[ImageSite] = field(default_factory=list)
    #: (rule index, GUN) for every image a verify rule decides
    needs: list[tuple[int, str]] = field(default_factory=list)
    #: an answer that needs no decision (DELETE, exempt, nothing to check)
    immediate: dict[str, Any] | None = None
    #: why ``immediate`` was given ("exempt namespace kube-system", "DELETE", ...)
    note: str = ""


@dataclass(slots=True)
class Outcome:
    """The answer and what it was made of (for logs and metrics)."""

    response: dict[str, Any]
    allowed: bool
    decisions: list[tuple[ImageSite, Decision]] = field(default_factory=list)
    patch: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""
    #: image -> how continuity admitted it ("released as v2", "verified 2026-... (v1)")
    continued: dict[str, str] = field(default_factory=dict)
    #: (rule fingerprint, name, digest) continuity looked for and did not know: a
    #: caller with a shared store may look them up and answer again
    misses: list[tuple[str, str, str]] = field(default_factory=list)
    #: (rule fingerprint, name, digest, tag) verified now as current releases
    releases: list[tuple[str, str, str, str | None]] = field(default_factory=list)


class Known(Protocol):
    """What :func:`respond` asks about earlier verified releases
    (:class:`trustcheck.webhook.admitted.ReleasedStore`)."""

    def known(self, rule: str, name: str, digest: str) -> Released | None: ...


class Memo:
    """What a long-running caller keeps between reviews: results that depend only on
    their inputs.

    * per image string: the parsed reference (or its error) and the rule deciding it;
    * per image string: the decision, together with the very object it was decided
      from (the verified collection, or the error obtaining it); it is reused only
      while the cache hands out that same object.

    Bound to one policy (another policy clears it); at most ``size`` entries each,
    the oldest dropped first.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.policy: Policy | None = None
        self.refs: dict[str, tuple[ImageRef | TrustcheckError, Rule | None]] = {}
        self.decisions: dict[str, tuple[object, Decision]] = {}

    def bind(self, policy: Policy) -> None:
        if self.policy is not policy:
            self.refs.clear()
            self.decisions.clear()
            _FINGERPRINTS.clear()
            self.policy = policy

    def _put(self, table: dict[str, Any], key: str, value: Any) -> None:
        table[key] = value
        while len(table) > self.size:
            table.pop(next(iter(table)), None)


# ----------------------------------------------------------------------------- responses


def _response(
    review_or_version: Review | str,
    uid: str,
    allowed: bool,
    message: str | None = None,
    warnings: Sequence[str] = (),
    patch: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    api_version = (
        review_or_version.api_version
        if isinstance(review_or_version, Review)
        else review_or_version
    )
    resp: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        resp["status"] = {
            "code": 403,
            "reason": "Forbidden",
            "message": cut(message or "denied", MAX_MESSAGE_LENGTH),
        }
    if warnings:
        resp["warnings"] = list(warnings)
    if patch:
        raw = orjson.dumps(list(patch))
        resp["patchType"] = "JSONPatch"
        resp["patch"] = base64.b64encode(raw).decode("ascii")
    return {"apiVersion": api_version, "kind": "AdmissionReview", "response": resp}


def deny_response(doc: object, message: str) -> dict[str, Any]:
    """A deny for whatever could be read of ``doc`` (internal errors, deadlines).

    Falls back to ``admission.k8s.io/v1`` and an empty uid when the document
    cannot be read; the API server then treats the answer as a failure, which
    ``failurePolicy: Fail`` turns into a rejection as well.
    """
    api_version, uid = "admission.k8s.io/v1", ""
    if isinstance(doc, dict):
        if doc.get("apiVersion") in API_VERSIONS:
            api_version = str(doc["apiVersion"])
        req = doc.get("request")
        if isinstance(req, dict) and isinstance(req.get("uid"), str):
            uid = req["uid"]
    return _response(api_version, uid, False, message)


def deadline_error(seconds: float) -> NotTrusted:
    """The reason for images whose trust data was not verified within the deadline."""
    return NotTrusted(
        ErrorCode.ADMISSION_DEADLINE,
        f"the trust data was not verified within the review's deadline of {seconds:g} s; "
        "denied (fail closed); the fetch goes on in the background, so a retry may pass",
    )


# ----------------------------------------------------------------------------- planning


#: per policy object: :attr:`Policy.namespaced` (a pass over the rules), kept
_NAMESPACED: dict[int, tuple[Policy, bool]] = {}


def _namespaced(policy: Policy) -> bool:
    found = _NAMESPACED.get(id(policy))
    if found is not None and found[0] is policy:
        return found[1]
    flag = policy.namespaced
    if len(_NAMESPACED) > 64:
        _NAMESPACED.clear()
    _NAMESPACED[id(policy)] = (policy, flag)
    return flag


def _memo_key(image: str, namespace: str, policy: Policy) -> str:
    """The memo's key of an image: with rules scoped to ``namespaces:`` the rule (and
    so the decision) depends on the review's namespace too."""
    return f"{namespace}\0{image}" if _namespaced(policy) else image


def _classify(
    image: str, policy: Policy, memo: Memo | None, namespace: str = ""
) -> tuple[ImageRef | TrustcheckError, Rule | None]:
    key = _memo_key(image, namespace, policy)
    if memo is not None:
        found = memo.refs.get(key)
        if found is not None:
            return found
    try:
        ref: ImageRef | TrustcheckError = parse_reference(image)
    except TrustcheckError as e:
        ref = e
    rule = policy.match(ref, namespace=namespace or None) if isinstance(ref, ImageRef) else None
    if memo is not None:
        memo._put(memo.refs, key, (ref, rule))
    return ref, rule


def plan_review(
    review: Review, policy: Policy, config: WebhookConfig, memo: Memo | None = None
) -> Plan:
    """Which images to decide and which verified collections that needs."""
    if memo is not None:
        memo.bind(policy)
    plan = Plan(review)
    if review.operation in ("DELETE", "CONNECT"):
        plan.note = f"{review.operation} is not checked"
        plan.immediate = _response(review, review.uid, True)
        return plan
    if review.operation not in ("CREATE", "UPDATE"):
        plan.note = f"unknown operation {review.operation[:40]!r}"
        plan.immediate = _response(
            review,
            review.uid,
            False,
            f"trustcheck: [admission-invalid] operation {review.operation[:40]!r} is not "
            "CREATE, UPDATE, DELETE or CONNECT",
        )
        return plan
    if review.sub_resource not in CHECKED_SUBRESOURCES:
        plan.note = f"subresource {review.sub_resource} carries no images"
        plan.immediate = _response(review, review.uid, True)
        return plan
    for pattern in config.exempt_namespaces:
        if review.namespace and shell_matches(pattern, review.namespace):
            plan.note = f"namespace {review.namespace} is exempt ({pattern})"
            plan.immediate = _response(review, review.uid, True)
            return plan
    meta = metadata(review.object)
    name = review.name or str(meta.get("name") or meta.get("generateName") or "")
    for ex in config.exempt_objects:
        if ex.matches(review.namespace, review.kind, name):
            plan.note = f"{review.kind} {review.namespace}/{name} is exempt ({ex})"
            plan.immediate = _response(review, review.uid, True)
            return plan
    spec_path = POD_SPEC_PATHS.get((review.group, review.kind))
    if spec_path is None:
        plan.note = f"unknown kind {review.group}/{review.kind}"
        plan.immediate = _response(
            review,
            review.uid,
            False,
            f"trustcheck: [admission-invalid] trustcheck does not know where a "
            f"{review.group + '/' if review.group else ''}{review.kind} keeps its images; "
            "take this resource out of the webhook's rules (denied: fail closed)",
        )
        return plan
    try:
        sites = image_sites(review.object, spec_path)
    except Invalid as e:
        plan.note = "malformed object"
        plan.immediate = _response(
            review,
            review.uid,
            False,
            f"trustcheck: [admission-invalid] {review.what}: {e}; denied",
        )
        return plan
    if review.operation == "UPDATE":
        before = all_images(review.old_object, spec_path)
        if deleting(review.old_object) or deleting(review.object):
            # finishing a deletion (a finalizer removed) starts nothing: only an
            # image changed while the object is being deleted is checked
            if image_fields(review.object, spec_path) == image_fields(
                review.old_object, spec_path
            ):
                plan.note = "the update finishes a deletion and changes no image"
                plan.immediate = _response(review, review.uid, True)
                return plan
            sites = [s for s in sites if s.image not in before]
        elif review.sub_resource == "ephemeralcontainers" or config.updates == "changed":
            # kubectl debug can only add ephemeral containers: the others are as admitted
            sites = [s for s in sites if s.image not in before]
    if not sites:
        plan.note = "no images to check"
        plan.immediate = _response(review, review.uid, True)
        return plan
    needs: dict[tuple[int, str], None] = {}
    for site in sites:
        ref, rule = _classify(site.image, policy, memo, review.namespace)
        if isinstance(ref, TrustcheckError):
            site.error = ref
            continue
        site.ref = ref
        site.rule = rule
        if rule is not None and rule.action == "verify":
            needs[(rule.index, ref.gun)] = None
    plan.sites = sites
    plan.needs = list(needs)
    return plan


# ----------------------------------------------------------------------------- deciding


def _invalid_decision(site: ImageSite, error: TrustcheckError) -> Decision:
    return Decision(
        image=site.image,
        name=site.image,
        tag=None,
        allowed=False,
        verdict="deny",
        mode="enforce",
        reasons=[Reason.of(error)],
    )


def _has_tag(text: str) -> bool:
    last = text.rsplit("/", 1)[-1]
    return ":" in last


def rewrite_image(image: str, ref: ImageRef, digest: str, mode: MutationMode) -> str:
    """``image`` pinned to ``digest``, spelled as the user spelled it.

    ``tag-digest``: ``name:tag@sha256:...`` (an implicit ``latest`` is written
    out); ``digest``: ``name@sha256:...``; ``off``: unchanged.
    """
    if mode == "off":
        return image
    bare = image.split("@", 1)[0]
    if mode == "digest":
        if _has_tag(bare):
            bare = bare.rsplit(":", 1)[0]
        return f"{bare}@{digest}"
    if not _has_tag(bare) and ref.tag is not None:
        bare = f"{bare}:{ref.tag}"
    return f"{bare}@{digest}"


def _rule_text(d: Decision) -> str:
    return f'rule "{cut(d.rule.name, MAX_SHOWN)}"' if d.rule is not None else "no rule"


def _first_code(d: Decision) -> str:
    return d.reasons[0].code if d.reasons else "policy-denied"


def _deny_line(site: ImageSite, d: Decision) -> str:
    first = d.reasons[0] if d.reasons else Reason("policy-denied", "denied")
    return (
        f'image "{cut(site.image, MAX_SHOWN)}" ({cut(site.label, MAX_SHOWN)}): '
        f"{_rule_text(d)}: [{first.code}] {first.message}"
    )


def _deny_message(review: Review, denied: Sequence[tuple[ImageSite, Decision]], total: int) -> str:
    """The codes first (before any string of the object, which may be long), then
    one line per denied image."""
    codes = list(dict.fromkeys(_first_code(d) for _s, d in denied))
    shown = ", ".join(codes[:8]) + (", …" if len(codes) > 8 else "")
    head = (
        f"trustcheck denied {review.what}: {len(denied)} of {total} image(s) not allowed "
        f"({shown})"
    )
    return head + ": " + "; ".join(_deny_line(s, d) for s, d in denied)


def _revoked_decision(d: Decision, name: str, digest: str) -> Decision:
    return replace(
        d,
        allowed=False,
        verdict="deny",
        mode="enforce",
        digest=digest,
        reasons=[
            Reason(
                ErrorCode.ADMISSION_REVOKED,
                f"{name}@{digest} is revoked by the webhook's continuity.revoked list; it is "
                "denied whatever signs it (remove it from the list to admit it again)",
            )
        ],
        warnings=[],
    )


def _continued(
    site: ImageSite,
    d: Decision,
    rule: Rule,
    policy: Policy,
    found: Collection | TrustcheckError | None,
    known: Known | None,
    misses: list[tuple[str, str, str]],
    namespace: str = "",
) -> tuple[Decision, str, bool] | None:
    """The continuity rule (docs/webhook.md, "Re-signed tags and controllers"): a
    reference pinning digest D that a verify rule denies only because the tag no
    longer carries D is admitted when D is released now by another tag (with the
    rule's signers), or was verified as a release under this rule within the
    window. Returns the decision, how it was admitted and whether D is a current
    release; None: it stays denied."""
    ref = site.ref
    if (
        ref is None
        or ref.digest is None
        or d.verdict != "deny"
        or rule.action != "verify"
        or _first_code(d) not in MOVED_CODES
        or found is None
        or isinstance(found, TrustcheckError)
    ):
        return None
    digest = ref.digest
    moved = f"{ref.name}:{ref.tag} no longer carries {digest}" if ref.tag else (
        f"no tag of {ref.name} carries {digest} now"
    )
    if ref.tag is not None:
        bare = ImageRef(ref.name, None, digest)
        now = decide(bare, policy, found, image=site.image, namespace=namespace or None)
        if now.verdict == "allow" and now.rule is not None and now.rule.index == rule.index:
            tags = sorted({h.name for h in _released_hits(found, digest)} - {ref.tag})[:4]
            how = f"released now as {', '.join(tags) or 'another tag'}"
            out = replace(
                now,
                image=site.image,
                tag=ref.tag,
                warnings=[
                    *now.warnings,
                    f"continuity: {how}; {moved}",
                ],
            )
            return out, how, True
    if known is None:
        return None
    fp = rule_fingerprint(rule)
    rec = known.known(fp, ref.name, digest)
    if rec is None:
        misses.append((fp, ref.name, digest))
        return None
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(rec.last, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    as_tags = f" as {', '.join(rec.tags)}" if rec.tags else ""
    how = f"verified as a release{as_tags} at {when}"
    out = replace(
        d,
        allowed=True,
        verdict="allow",
        digest=digest,
        reasons=[],
        warnings=[
            *d.warnings,
            f"continuity: trustcheck {how}, within the window; {moved} "
            f"({_first_code(d)}); a re-signed tag is not a revocation (continuity.revoked "
            "stops a digest)",
        ],
    )
    return out, how, False


def _released_hits(col: Collection, digest: str) -> list[Any]:
    from trustcheck.core.lookup import RELEASED_ROLES, list_targets

    sha = digest.removeprefix("sha256:")
    return [
        h
        for h in list_targets(col, RELEASED_ROLES).values()
        if h.role in RELEASED_ROLES and h.sha256 == sha
    ]


def _json_text(doc: Mapping[str, str]) -> str:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


def _annotation_ops(
    obj: object, key: str, originals: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Ops recording ``originals`` (container label -> reference) in annotation ``key``,
    merged with what an earlier mutation recorded there."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        value = _json_text(dict(originals))
        return [{"op": "add", "path": "/metadata", "value": {"annotations": {key: value}}}]
    annotations = meta.get("annotations")
    merged: dict[str, str] = {}
    if isinstance(annotations, dict):
        try:
            earlier = json.loads(annotations.get(key) or "{}")
        except (ValueError, TypeError, RecursionError):
            earlier = {}
        if isinstance(earlier, dict):
            merged.update({str(k): str(v) for k, v in earlier.items()})
    merged.update(originals)
    value = _json_text(merged)
    if not isinstance(annotations, dict):
        return [{"op": "add", "path": "/metadata/annotations", "value": {key: value}}]
    return [{"op": "add", "path": f"/metadata/annotations/{escape_token(key)}", "value": value}]


def respond(
    plan: Plan,
    policy: Policy,
    config: WebhookConfig,
    got: Mapping[tuple[int, str], Collection | TrustcheckError],
    *,
    mutate: bool,
    memo: Memo | None = None,
    known: Known | None = None,
    evidence: ImageEvidence | None = None,
    at: datetime | None = None,
) -> Outcome:
    """Decide every image of ``plan`` and build the answer.

    ``got`` holds, for each key of ``plan.needs``, the verified collection or the
    error obtaining it (:func:`deadline_error` when it was not there in time); a
    missing key is a deny (``no-trust-data``). ``mutate``: add the JSON Patch
    pinning allowed images (the mutating endpoint). ``memo``: reuse decisions made
    from the same objects (see :class:`Memo`; pass the one given to :func:`plan_review`).
    ``known``: the releases verified before (continuity; None: only what the trust
    data says now counts). Revoked digests (``config.revoked``) are denied first.
    ``evidence`` and ``at``: for rules with ``require:`` (docs/policy.md), what the
    Notation/cosign verifiers found per image and the validation time
    (:func:`trustcheck.policy.gather.review_evidence`); such decisions are not memoised.
    """
    review = plan.review
    if memo is not None:
        memo.bind(policy)
    if plan.immediate is not None:
        allowed = bool(plan.immediate["response"]["allowed"])
        return Outcome(plan.immediate, allowed, note=plan.note)
    by_image: dict[str, Decision] = {}
    results: list[tuple[ImageSite, Decision]] = []
    continued: dict[str, str] = {}
    misses: list[tuple[str, str, str]] = []
    releases: list[tuple[str, str, str, str | None]] = []
    window_on = config.continuity_window > 0
    for site in plan.sites:
        d = by_image.get(site.image)
        if d is None:
            if site.ref is None:
                error = site.error or NotTrusted(ErrorCode.ADMISSION_INVALID, "unreadable image")
                d = _invalid_decision(site, error)
            else:
                rule = site.rule  # plan_review's match (same policy, same namespace)
                found = got.get((rule.index, site.ref.gun)) if rule is not None else None
                key = _memo_key(site.image, review.namespace, policy)
                cached = memo.decisions.get(key) if memo is not None else None
                signed = (evidence or {}).get(site.image)  # require: rules (helper G)
                plain = rule is None or rule.require is None
                if cached is not None and cached[0] is found and plain:
                    d = cached[1]
                else:
                    d = decide(
                        site.ref,
                        policy,
                        found,
                        image=site.image,
                        namespace=review.namespace or None,
                        evidence=signed[0] if signed is not None else None,
                        at=at,
                        digest=signed[1] if signed is not None else None,
                    )
                    if memo is not None:
                        memo._put(memo.decisions, key, (found, d))
                classic = rule is not None and getattr(rule, "require", None) is None
                if rule is not None and classic and d.verdict == "allow" and (
                    rule.action == "verify" and d.digest is not None and window_on
                ):
                    releases.append(
                        (rule_fingerprint(rule), site.ref.name, d.digest, site.ref.tag)
                    )
                elif rule is not None and classic and window_on:
                    kept = _continued(
                        site, d, rule, policy, found, known, misses, review.namespace
                    )
                    if kept is not None:
                        d, continued[site.image], current = kept
                        if current and d.digest is not None:
                            releases.append(
                                (rule_fingerprint(rule), site.ref.name, d.digest, None)
                            )
                digest = d.digest or site.ref.digest
                if config.revoked and digest and config.revoked.revoked(site.ref.name, digest):
                    d = _revoked_decision(d, site.ref.name, digest)
                    continued.pop(site.image, None)
                    releases = [r for r in releases if r[2] != digest]
            by_image[site.image] = d
        results.append((site, d))
    denied = [(s, d) for s, d in results if not d.allowed]
    warnings: list[str] = []

    def warn(text: str) -> None:
        text = cut(text, MAX_WARNING_LENGTH)
        if text not in warnings and len(warnings) < config.max_warnings:
            warnings.append(text)

    for site, d in results:
        if d.allowed and d.verdict == "deny":
            first = d.reasons[0] if d.reasons else None
            why = f"[{first.code}] {first.message}" if first is not None else "denied"
            warn(f'trustcheck (warn mode) image "{site.image}": {_rule_text(d)} would deny: {why}')
        for w in d.warnings:
            warn(f'trustcheck image "{site.image}": {w}')
    if denied:
        message = _deny_message(review, denied, len(results))
        return Outcome(
            _response(review, review.uid, False, message, warnings),
            False,
            results,
            continued=continued,
            misses=misses,
        )
    patch: list[dict[str, Any]] = []
    if mutate and config.mutation != "off":
        originals: dict[str, str] = {}
        for site, d in results:
            if d.verdict != "allow" or d.digest is None or site.ref is None:
                continue
            new = rewrite_image(site.image, site.ref, d.digest, config.mutation)
            if new != site.image:
                patch.append({"op": "replace", "path": site.pointer, "value": new})
                originals[site.label] = site.image
        if originals:
            patch += _annotation_ops(review.object, config.annotation, originals)
    return Outcome(
        _response(review, review.uid, True, None, warnings, patch),
        True,
        results,
        patch,
        continued=continued,
        releases=releases,
    )


def handle(
    doc: object,
    policy: Policy,
    config: WebhookConfig,
    lookup: Callable[[int, str], Collection | TrustcheckError | None],
    *,
    mutate: bool = False,
    memo: Memo | None = None,
    known: Known | None = None,
) -> dict[str, Any]:
    """AdmissionReview dict in, AdmissionReview dict out.

    ``lookup(rule_index, gun)`` gives the verified collection (or the error
    obtaining it) for the rule that decides an image. Raises
    :class:`ReviewError` for a body that is not an AdmissionReview.
    """
    plan = plan_review(parse_review(doc), policy, config, memo)
    got: dict[tuple[int, str], Collection | TrustcheckError] = {}
    for key in plan.needs:
        found = lookup(*key)
        if found is not None:
            got[key] = found
    return respond(plan, policy, config, got, mutate=mutate, memo=memo, known=known).response
