"""Notary Project (Notation) signature verification, as the specification's
trust-store-trust-policy.md "Signature Verification" steps define it.

For one signature envelope (:func:`verify_envelope`) or every Notation signature
the registry holds for an image digest (:func:`notation_evidence`):

1. the trust policy statement for the repository (exact scope, else ``*``);
   none is ``notation-no-policy``; level ``skip`` verifies nothing;
2. **integrity** (always enforced): the envelope parses strictly, its critical
   headers are understood, the chain meets the certificate requirements, the
   signature verifies with the leaf key and the algorithm the key dictates, the
   payload's ``targetArtifact`` is the image manifest (digest, media type, size);
3. **authenticity**: a chain certificate is in a trust store of the type the
   signing scheme needs (``ca`` for ``notary.x509``, ``signingAuthority`` for
   ``notary.x509.signingAuthority``), and the leaf subject matches a
   ``trustedIdentities`` entry;
4. **expiry**: ``io.cncf.notary.expiry`` is after the validation time;
5. **authentic timestamp**: ``notary.x509``: when the policy names a ``tsa``
   store (and ``verifyTimestamp`` asks for it) the RFC 3161 countersignature
   would have to be verified, which trustcheck does not do
   (``timestamp-unsupported``); otherwise every chain certificate must be valid
   at the validation time.  ``signingAuthority``: valid at the authentic
   signing time;
6. **revocation**: trustcheck fetches no OCSP/CRL; a certificate naming either is
   ``notation-revocation-unchecked`` (status unknown, which the spec fails).

Each check's failure is enforced or logged as the level (and ``override``) says.
An :class:`~trustcheck.signatures.evidence.Evidence` is ``valid`` when no
enforced check failed *and* authenticity really passed (so an ``audit``-level
signature from an untrusted chain, which ``notation verify`` accepts, never
counts as a signature in a trustcheck policy; ``details["outcome"]`` keeps
notation's own verdict).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cryptography import x509

from trustcheck.errors import ErrorCode, NotTrusted
from trustcheck.notation.chain import (
    anchor,
    check_chain,
    has_revocation_info,
    load_chain,
    outside_validity,
)
from trustcheck.notation.config import NotationConfig, PolicyStatement
from trustcheck.notation.dn import DnError, dn_subset, subject_attributes, subject_text
from trustcheck.notation.envelope import (
    MAX_ENVELOPE_BYTES,
    SCHEME_SA,
    Envelope,
    parse_envelope,
    verify_signature,
)
from trustcheck.remote.http import RemoteError
from trustcheck.signatures.evidence import Evidence

if TYPE_CHECKING:
    from trustcheck.core.reference import ImageRef
    from trustcheck.remote.http import Deadline
    from trustcheck.remote.oci import Descriptor, OciRegistry

__all__ = [
    "MAX_SIGNATURES",
    "SIGNATURE_ARTIFACT_TYPE",
    "Target",
    "notation_evidence",
    "signature_layer",
    "verify_envelope",
]

SIGNATURE_ARTIFACT_TYPE = "application/vnd.cncf.notary.signature"
EMPTY_CONFIG_TYPE = "application/vnd.oci.empty.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
#: signatures examined per image (notation's ``--max-signatures`` default)
MAX_SIGNATURES = 100
#: a signature manifest is small: a config, one layer, a subject, annotations
MAX_SIGNATURE_MANIFEST_BYTES = 256 << 10


@dataclass(frozen=True)
class Target:
    """The artifact a signature must name: the image manifest's descriptor."""

    digest: str
    media_type: str | None = None
    size: int | None = None


@dataclass
class _Run:
    """The checks of one signature as they happen."""

    policy: PolicyStatement
    enforced: list[tuple[str, str]] = field(default_factory=list)
    logged: list[tuple[str, str]] = field(default_factory=list)
    authentic: bool = False

    def fail(self, check: str, code: str, message: str) -> bool:
        """Record a failure of ``check``; True when it is enforced (stop)."""
        action = self.policy.actions.get(check, "enforce")
        if action == "skip":
            return False
        if action == "enforce":
            self.enforced.append((code, message))
            return True
        self.logged.append((code, message))
        return False


def _level_text(policy: PolicyStatement) -> str:
    overrides = [f"{k}={v}" for k, v in policy.actions.items() if v != _default(policy, k)]
    return policy.level + (f" ({', '.join(overrides)})" if overrides else "")


def _default(policy: PolicyStatement, check: str) -> str:
    from trustcheck.notation.config import LEVELS

    return LEVELS[policy.level][check]


def _policy(config: NotationConfig, repository: str) -> PolicyStatement:
    policy = config.policy_for(repository)
    if policy is None:
        raise NotTrusted(
            ErrorCode.NOTATION_NO_POLICY,
            f"no statement of the Notation trust policy {config.policy_path} applies to "
            f"{repository} (no registryScopes entry for it and no '*' scope); add one",
        )
    return policy


def _skipped(policy: PolicyStatement, digest: str, repository: str) -> Evidence:
    return Evidence(
        kind="notation",
        digest=digest,
        valid=False,
        identity="",
        code=ErrorCode.NOTATION_VERIFICATION_SKIPPED,
        message=(
            f"the Notation trust policy statement {policy.name!r} says skip for {repository}: "
            "no signature was verified"
        ),
        level="skip",
        details={"policy": policy.name, "outcome": "skipped"},
    )


def _check_target(env: Envelope, target: Target) -> str | None:
    """Why the payload does not name ``target``, or None."""
    got = env.target()
    digest, media_type, size = got.get("digest"), got.get("mediaType"), got.get("size")
    if not isinstance(digest, str) or not isinstance(media_type, str):
        return "the payload's targetArtifact has no digest or mediaType"
    if isinstance(size, bool) or not isinstance(size, int):
        return "the payload's targetArtifact has no integer size"
    if digest != target.digest:
        return f"the signature is for {digest[:80]}, not {target.digest}"
    if target.media_type is not None and media_type != target.media_type:
        return (
            f"the signature names media type {media_type[:80]!r}, "
            f"the image is {target.media_type!r}"
        )
    if target.size is not None and size != target.size:
        return f"the signature names size {size}, the image manifest is {target.size} bytes"
    return None


def verify_envelope(
    envelope: bytes,
    media_type: str,
    digest: str,
    *,
    config: NotationConfig,
    repository: str,
    at: datetime,
    target: Target | None = None,
    source: str = "",
) -> Evidence:
    """Verify one envelope over the manifest ``digest`` of ``repository`` (the fully
    qualified repository name, ``registry.example.com/team/app``) at ``at``.

    ``target``: the image manifest's descriptor; its media type and size are checked
    too when given (always, from the registry).  Raises only for configuration
    problems (``notation-no-policy``, ``notation-config-invalid``); every finding
    about the signature is in the returned :class:`Evidence`.
    """
    at = at.astimezone(UTC)
    policy = _policy(config, repository)
    if policy.level == "skip":
        return _skipped(policy, digest, repository)
    run = _Run(policy)
    details: dict[str, str] = {
        "policy": policy.name,
        "envelope": media_type,
        "level": _level_text(policy),
    }
    identity = ""
    issuer: str | None = None
    signed_at: datetime | None = None

    def done() -> Evidence:
        valid = not run.enforced and run.authentic
        if run.enforced:
            code, message = run.enforced[0]
        elif not run.authentic and run.logged:
            code, message = run.logged[0]
        else:
            code, message = None, ""
        details["outcome"] = "failed" if run.enforced else "passed"
        if run.logged:
            details["logged"] = "; ".join(f"[{c}] {m}" for c, m in run.logged)
        if valid:
            message = (
                f"signed by {identity or '(no subject)'} (trust store {issuer}) at level "
                f"{details['level']}"
            )
            if run.logged:
                message += f"; logged: {details['logged']}"
        elif code is not None and not run.enforced:
            message = (
                f"{message} (level {policy.level} only logs this, so notation would accept "
                "the signature; trustcheck does not count an unauthenticated signature)"
            )
        return Evidence(
            kind="notation",
            digest=digest,
            valid=valid,
            identity=identity,
            issuer=issuer,
            signed_at=signed_at,
            source=source,
            code=code,
            message=message,
            level=policy.level,
            details=details,
        )

    # --- integrity (always enforced) ------------------------------------------------
    try:
        env = parse_envelope(envelope, media_type)
        chain = load_chain(env.chain)
        leaf = chain[0]
        identity = subject_text(leaf.subject)
        details["subject"] = leaf.subject.rfc4514_string()
        details["certificate_not_after"] = leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        details["scheme"] = env.scheme
        details["alg"] = env.alg
        if env.signing_agent:
            details["signing_agent"] = env.signing_agent[:100]
        if env.expiry is not None:
            details["expiry"] = env.expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
        signed_at = env.authentic_signing_time or env.signing_time
        check_chain(chain)
        verify_signature(env, leaf)
        why = _check_target(env, target or Target(digest))
        if why is not None:
            run.enforced.append((ErrorCode.NOTATION_SUBJECT_MISMATCH, why))
            return done()
    except NotTrusted as e:
        run.enforced.append((e.code, e.message))
        return done()
    except (ValueError, TypeError) as e:  # a certificate cryptography cannot read fully
        run.enforced.append(
            (ErrorCode.NOTATION_ENVELOPE_INVALID, f"a certificate of the chain is malformed ({e})")
        )
        return done()

    # --- authenticity ------------------------------------------------------------------
    wanted = "signingAuthority" if env.scheme == SCHEME_SA else "ca"
    stores = [name for kind, name in policy.trust_stores if kind == wanted]
    authentic = False
    if not stores:
        stop = run.fail(
            "authenticity",
            ErrorCode.NOTATION_UNTRUSTED_CHAIN,
            f"the trust policy statement {policy.name!r} names no {wanted} trust store, which "
            f"a {env.scheme} signature needs",
        )
        if stop:
            return done()
    else:
        for name in stores:
            if anchor(chain, config.store(wanted, name)) is not None:
                issuer = f"{wanted}:{name}"
                authentic = True
                break
        if not authentic:
            stop = run.fail(
                "authenticity",
                ErrorCode.NOTATION_UNTRUSTED_CHAIN,
                f"the certificate chain of {identity or 'the signer'} does not lead to the trust "
                f"store(s) {', '.join(f'{wanted}:{n}' for n in stores)}",
            )
            if stop:
                return done()
    if authentic and not policy.wildcard_identity:
        try:
            have = subject_attributes(leaf.subject)
            matched = any(dn_subset(want, have) for want in policy.parsed_identities)
            why = "" if matched else "matches no trustedIdentities entry"
        except DnError as e:
            matched, why = False, str(e)
        if not matched:
            authentic = False
            stop = run.fail(
                "authenticity",
                ErrorCode.NOTATION_IDENTITY_MISMATCH,
                f"the signing certificate subject {identity!r} {why} of trust policy statement "
                f"{policy.name!r}",
            )
            if stop:
                return done()
    run.authentic = authentic

    # --- expiry ---------------------------------------------------------------------------
    if env.expiry is not None and at >= env.expiry:
        stamp = env.expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
        if run.fail(
            "expiry",
            ErrorCode.NOTATION_SIGNATURE_EXPIRED,
            f"the signature expired at {stamp} (io.cncf.notary.expiry); sign the image again",
        ):
            return done()

    # --- authentic timestamp ----------------------------------------------------------
    if policy.actions.get("authenticTimestamp") != "skip":
        if env.scheme == SCHEME_SA:
            assert env.authentic_signing_time is not None
            bad = outside_validity(chain, env.authentic_signing_time)
            when = env.authentic_signing_time
            if bad is not None and run.fail(
                "authenticTimestamp",
                ErrorCode.NOTATION_CERT_EXPIRED,
                _validity_message(bad, when, "the authentic signing time"),
            ):
                return done()
        else:
            tsa = any(kind == "tsa" for kind, _ in policy.trust_stores)
            expired_now = outside_validity(chain, at) is not None
            triggered = tsa and (policy.verify_timestamp == "always" or expired_now)
            if triggered and run.fail(
                "authenticTimestamp",
                ErrorCode.TIMESTAMP_UNSUPPORTED,
                f"trust policy statement {policy.name!r} names a tsa trust store, so the RFC 3161 "
                "timestamp countersignature must be verified, and trustcheck does not verify "
                "timestamps; refusing rather than skipping the check",
            ):
                return done()
            bad = outside_validity(chain, at)
            if bad is not None and run.fail(
                "authenticTimestamp",
                ErrorCode.NOTATION_CERT_EXPIRED,
                _validity_message(bad, at, "the validation time"),
            ):
                return done()

    # --- revocation ---------------------------------------------------------------------
    if policy.actions.get("revocation") != "skip":
        for cert in chain:
            if has_revocation_info(cert) and run.fail(
                "revocation",
                ErrorCode.NOTATION_REVOCATION_UNCHECKED,
                f"certificate {cert.subject.rfc4514_string()[:100]} names OCSP/CRL revocation "
                "information and trustcheck does not check revocation, so its status is unknown "
                "(override revocation: log or skip to accept this deliberately)",
            ):
                return done()
    return done()


def _validity_message(cert: x509.Certificate, when: datetime, what: str) -> str:
    return (
        f"certificate {cert.subject.rfc4514_string()[:100]} is not valid at {what} "
        f"{when.strftime('%Y-%m-%dT%H:%M:%SZ')} (valid "
        f"{cert.not_valid_before_utc.strftime('%Y-%m-%dT%H:%M:%SZ')} to "
        f"{cert.not_valid_after_utc.strftime('%Y-%m-%dT%H:%M:%SZ')})"
    )


# --------------------------------------------------------------------------- registry


def _failed(digest: str, source: str, policy: PolicyStatement, code: str, message: str) -> Evidence:
    return Evidence(
        kind="notation",
        digest=digest,
        valid=False,
        identity="",
        source=source,
        code=code,
        message=message,
        level=policy.level,
        details={"policy": policy.name, "outcome": "failed"},
    )


def signature_layer(body: bytes, digest: str, where: str) -> Mapping[str, Any]:
    """The envelope descriptor (``mediaType``, ``digest``, ``size``) of a signature
    manifest whose subject must be ``digest``, checked against the specification
    (``oci-invalid`` otherwise): an OCI image manifest, ``artifactType`` (or, legacy,
    ``config.mediaType``) ``application/vnd.cncf.notary.signature``, exactly one layer."""

    def bad(why: str) -> NotTrusted:
        return NotTrusted(ErrorCode.OCI_INVALID, f"{where}: {why}")

    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise bad(f"not JSON ({e})") from e
    if not isinstance(doc, dict):
        raise bad("not a JSON object")
    if doc.get("mediaType") not in (None, OCI_MANIFEST):
        raise bad(f"mediaType {str(doc.get('mediaType'))[:80]!r} is not an OCI image manifest")
    config = doc.get("config")
    config_type = config.get("mediaType") if isinstance(config, dict) else None
    artifact_type = doc.get("artifactType")
    if artifact_type is not None:
        if artifact_type != SIGNATURE_ARTIFACT_TYPE:
            raise bad(f"artifactType {str(artifact_type)[:80]!r} is not a Notary signature")
    elif config_type != SIGNATURE_ARTIFACT_TYPE:
        raise bad("neither artifactType nor config.mediaType says Notary Project signature")
    subject = doc.get("subject")
    if not isinstance(subject, dict) or subject.get("digest") != digest:
        raise bad(f"its subject is not {digest}")
    layers = doc.get("layers")
    if not isinstance(layers, list) or len(layers) != 1 or not isinstance(layers[0], dict):
        raise bad("a signature manifest must have exactly one layer (the envelope)")
    from trustcheck.remote.oci import parse_descriptor

    layer = parse_descriptor(layers[0], where)
    return {"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}


def _subject_target(
    registry: OciRegistry, ref: ImageRef, digest: str, deadline: Deadline
) -> Target:
    body = registry.manifest(ref, digest, deadline=deadline)
    media_type: str | None = None
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        doc = None
    if isinstance(doc, dict):
        declared = doc.get("mediaType")
        if isinstance(declared, str):
            media_type = declared
        elif isinstance(doc.get("manifests"), list):
            media_type = OCI_INDEX
        else:
            media_type = OCI_MANIFEST
    return Target(digest, media_type, len(body))


def notation_evidence(
    ref: ImageRef,
    digest: str,
    config: NotationConfig,
    at: datetime,
    registry: OciRegistry,
    *,
    max_signatures: int = MAX_SIGNATURES,
    max_envelope_bytes: int = MAX_ENVELOPE_BYTES,
) -> list[Evidence]:
    """One :class:`Evidence` per Notation signature artifact of ``ref``'s manifest
    ``digest`` in the registry (an empty list: no signature).

    The trust policy is chosen by ``ref.name``; level ``skip`` gives one not-valid
    ``notation-verification-skipped`` evidence without asking the registry.  More
    than ``max_signatures`` signatures is ``referrers-limit-exceeded`` (raised).
    A signature whose manifest or envelope is missing, malformed or oversized is an
    evidence with that code; registry failures (network, auth, 5xx) are raised.
    """
    policy = _policy(config, ref.name)
    if policy.level == "skip":
        return [_skipped(policy, digest, ref.name)]
    deadline = registry.deadline()  # every request about this image within total_timeout
    found: list[Descriptor] = registry.referrers(
        ref, digest, SIGNATURE_ARTIFACT_TYPE, deadline=deadline
    )
    if len(found) > max_signatures:
        raise NotTrusted(
            ErrorCode.REFERRERS_LIMIT_EXCEEDED,
            f"{ref.name}@{digest} has {len(found)} Notation signatures, more than the "
            f"{max_signatures} examined (--max-signatures); refusing them all",
        )
    if not found:
        return []
    target = _subject_target(registry, ref, digest, deadline)
    out: list[Evidence] = []
    for desc in found:
        where = f"the signature manifest {desc.digest} of {ref.name}"
        try:
            body = registry.manifest(
                ref, desc.digest, max_bytes=MAX_SIGNATURE_MANIFEST_BYTES, deadline=deadline
            )
            layer = signature_layer(body, digest, where)
            if layer["size"] > max_envelope_bytes:
                raise NotTrusted(
                    ErrorCode.NOTATION_ENVELOPE_INVALID,
                    f"{where}: the envelope is {layer['size']} bytes, over the "
                    f"{max_envelope_bytes}-byte cap; not fetched",
                )
            blob = registry.blob(ref, layer["digest"], max_bytes=layer["size"], deadline=deadline)
            if len(blob) != layer["size"]:
                raise NotTrusted(
                    ErrorCode.OCI_INVALID, f"{where}: the envelope is not {layer['size']} bytes"
                )
            out.append(
                verify_envelope(
                    blob,
                    layer["mediaType"],
                    digest,
                    config=config,
                    repository=ref.name,
                    at=at,
                    target=target,
                    source=desc.digest,
                )
            )
        except RemoteError:
            raise
        except NotTrusted as e:
            out.append(_failed(digest, desc.digest, policy, e.code, e.message))
    return out
