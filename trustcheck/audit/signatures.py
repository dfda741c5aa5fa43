"""Trust material of the other signature kinds: Notation trust stores and trust
policies, cosign public keys and keyless identities, a Sigstore trusted root.

``trustcheck audit --policy F`` (the cosign keys and identities the policy's
``require:`` blocks name, and the Notation / Sigstore material its rules use),
``--notation-trust-policy``/``--notation-trust-store`` (or ``--notation`` for
Notation's default files) and ``--trusted-root`` add a ``signatures`` section to
the report: what each certificate, key and identity is, which rules, trust
policy statements, registry scopes and identities use it, and findings with
the audit's codes and severities (docs/audit.md, "Notation and cosign trust
material").

Pure except for :func:`gather`, which reads the files (through the loaders
verification uses: the same validation, the same caps) and never the network.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustcheck.audit.model import RSA_ERROR_BITS, RSA_WARNING_BITS, Finding
from trustcheck.core.timefmt import iso
from trustcheck.errors import ErrorCode, TrustcheckError, UsageError

if TYPE_CHECKING:
    from cryptography import x509

    from trustcheck.notation.config import NotationConfig
    from trustcheck.policy.model import Policy
    from trustcheck.policy.require import NotationReq

__all__ = [
    "CosignIdentityEntry",
    "CosignKeyEntry",
    "NotationCertEntry",
    "NotationPolicyEntry",
    "SignatureAudit",
    "SigstoreAuthority",
    "broad_identity",
    "gather",
]

#: a trusted_root.json larger than this is refused (sigstore's is ~10 kB)
MAX_TRUSTED_ROOT_BYTES = 1 << 20

#: SANs of unrelated signers: a ``san_regex`` that accepts one of them accepts
#: signers of other owners (docs/audit.md, ``cosign-broad-identity``)
_PROBE_SANS = (
    "x",
    "attacker@evil.example",
    "https://github.com/evil-attacker/evil-repo/.github/workflows/release.yml@refs/heads/main",
    "https://github.com/evil-attacker/evil-repo/.github/workflows/release.yml@refs/tags/v1",
    "https://gitlab.com/evil-attacker/evil-repo//.gitlab-ci.yml@refs/heads/main",
    "spiffe://evil.example/ns/default/sa/default",
    "https://evil.example/",
)

#: the curves Notation and cosign sign with; any other ECDSA key is ``weak-key``
_STRONG_CURVES = frozenset({"P-256", "P-384", "P-521"})

_SHA1 = frozenset({"sha1WithRSAEncryption", "ecdsa-with-SHA1", "dsa_with_SHA1", "sha1"})


# --------------------------------------------------------------------------- model


@dataclass(slots=True)
class NotationCertEntry:
    """A certificate of a Notation trust store and who uses it."""

    store: str
    subject: str
    issuer: str
    sha256: str
    key: str
    signature_algorithm: str
    not_before: str
    not_after: str
    days_left: int
    status: str
    #: trust policy statement names, their registry scopes and trusted identities
    policies: list[str] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)
    identities: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "subject": self.subject,
            "issuer": self.issuer,
            "sha256": self.sha256,
            "key": self.key,
            "signature_algorithm": self.signature_algorithm,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "days_left": self.days_left,
            "status": self.status,
            "trust_policies": list(self.policies),
            "registry_scopes": list(self.scopes),
            "trusted_identities": list(self.identities),
        }


@dataclass(slots=True)
class NotationPolicyEntry:
    """A statement of Notation's trust policy."""

    name: str
    level: str
    scopes: list[str]
    stores: list[str]
    identities: list[str]
    #: stores named but missing, empty or unusable (with why)
    missing: list[str] = field(default_factory=list)
    #: ``rule "NAME" (PATTERN)`` of the policy rules that name this statement
    rules: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "level": self.level,
            "registry_scopes": list(self.scopes),
            "trust_stores": list(self.stores),
            "trusted_identities": list(self.identities),
            "missing_stores": list(self.missing),
            "rules": list(self.rules),
        }


@dataclass(slots=True)
class CosignKeyEntry:
    """A cosign public key a policy names, and what it can satisfy."""

    fingerprint: str
    key: str
    source: str
    #: ``rule "NAME" (PATTERN)`` of every rule whose requirement names the key
    rules: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "key": self.key,
            "source": self.source,
            "rules": list(self.rules),
        }


@dataclass(slots=True)
class CosignIdentityEntry:
    """A keyless signer a policy names."""

    issuer: str
    san: str | None
    san_regex: str | None
    broad: bool
    rules: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        if self.san is not None:
            return f"{self.san} ({self.issuer})"
        return f"/{self.san_regex}/ ({self.issuer})"

    def to_json(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "san": self.san,
            "san_regex": self.san_regex,
            "broad": self.broad,
            "rules": list(self.rules),
        }


@dataclass(slots=True)
class SigstoreAuthority:
    """A Fulcio CA, Rekor log, CT log or timestamp authority of a trusted root."""

    kind: str
    name: str
    key: str
    valid_from: str | None
    valid_until: str | None
    #: ``active``, ``retired`` (its window ended: kept for older signatures) or ``future``
    status: str
    #: the CA's (or TSA's) leaf-most certificate, for certificate authorities
    subject: str | None = None
    sha256: str | None = None
    not_after: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "key": self.key,
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
            "status": self.status,
            "subject": self.subject,
            "sha256": self.sha256,
            "not_after": self.not_after,
        }


@dataclass(slots=True)
class SignatureAudit:
    """The ``signatures`` section of the report."""

    sources: list[str] = field(default_factory=list)
    notation_policies: list[NotationPolicyEntry] = field(default_factory=list)
    notation_certificates: list[NotationCertEntry] = field(default_factory=list)
    cosign_keys: list[CosignKeyEntry] = field(default_factory=list)
    cosign_identities: list[CosignIdentityEntry] = field(default_factory=list)
    sigstore_authorities: list[SigstoreAuthority] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "sources": list(self.sources),
            "notation_policies": [p.to_json() for p in self.notation_policies],
            "notation_certificates": [c.to_json() for c in self.notation_certificates],
            "cosign_keys": [k.to_json() for k in self.cosign_keys],
            "cosign_identities": [i.to_json() for i in self.cosign_identities],
            "sigstore_authorities": [a.to_json() for a in self.sigstore_authorities],
        }


# --------------------------------------------------------------------------- helpers


def broad_identity(regex: str) -> bool:
    """Whether an anchored SAN regular expression accepts unrelated signers: it
    matches one of :data:`_PROBE_SANS`, or it is a URL whose first path segment
    (the GitHub/GitLab owner) is not literal."""
    try:
        pattern = re.compile(regex)
    except re.error:
        return True
    if any(pattern.fullmatch(s) is not None for s in _PROBE_SANS):
        return True
    m = _URL_HOST.match(regex)
    if m is None:
        return False
    owner = regex[m.end() :].split("/", 1)[0]
    literal = re.sub(r"\\[.\-_]", "", owner)
    return not owner or any(ch in literal for ch in ".[](){}*+?|^$\\")


#: ``^https://host/`` with a literal host (dots escaped)
_URL_HOST = re.compile(r"\^https?://(?:[A-Za-z0-9_-]|\\\.)+(?::\d+)?/")


def _describe_key(key: Any) -> tuple[str, int | None]:
    """``RSA 2048``, ``ECDSA P-256``, ``Ed25519``..., and the RSA size (else None)."""
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return f"ECDSA {names.get(key.curve.name, key.curve.name)}", None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", None
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", None
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}", None
    return type(key).__name__, None


def _key_findings(bits: int | None, key: str, where: str, role: str, ident: str) -> list[Finding]:
    if bits is None:
        weak = None
        if key.startswith("DSA"):
            weak = f"a DSA key ({key}: neither Notation nor cosign accepts DSA)"
        elif key.startswith("ECDSA ") and key[6:] not in _STRONG_CURVES:
            weak = f"an {key} key (under 256 bits, or a curve Notation and cosign do not use)"
        if weak is None:
            return []
        return [Finding("weak-key", f"{where}: {weak}; replace it", role=role, key=ident)]
    if bits < RSA_ERROR_BITS:
        return [
            Finding(
                "weak-key",
                f"{where}: RSA key of {bits} bits (under {RSA_ERROR_BITS}); replace it",
                role=role,
                key=ident,
            )
        ]
    if bits < RSA_WARNING_BITS:
        return [
            Finding(
                "short-rsa-key",
                f"{where}: RSA key of {bits} bits (under {RSA_WARNING_BITS}); plan a longer key",
                role=role,
                key=ident,
            )
        ]
    return []


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _until(at: datetime, horizon: timedelta) -> datetime:
    try:
        return at + horizon
    except OverflowError:
        return datetime.max.replace(tzinfo=at.tzinfo)


def _expiry_findings(
    not_before: datetime,
    not_after: datetime,
    at: datetime,
    horizon: timedelta,
    where: str,
    role: str,
    ident: str | None,
) -> tuple[str, list[Finding]]:
    """The status (``expired``, ``expiring``, ``not-yet-valid``, ``ok``) and its finding."""
    if not_after < at:
        return "expired", [
            Finding(
                "cert-expired",
                f"{where}: expired {iso(not_after)}; replace it",
                role=role,
                key=ident,
                date=iso(not_after),
            )
        ]
    if not_before > at:
        return "not-yet-valid", [
            Finding(
                "cert-not-yet-valid",
                f"{where}: not valid before {iso(not_before)}",
                role=role,
                key=ident,
                date=iso(not_before),
            )
        ]
    if not_after < _until(at, horizon):
        days = (not_after - at).days
        return "expiring", [
            Finding(
                "cert-expiring",
                f"{where}: expires {iso(not_after)} (in {days} days); renew it",
                role=role,
                key=ident,
                date=iso(not_after),
            )
        ]
    return "ok", []


def _signature_algorithm(cert: x509.Certificate) -> str:
    oid = cert.signature_algorithm_oid
    return getattr(oid, "_name", None) or oid.dotted_string


# --------------------------------------------------------------------------- Notation


def audit_notation(
    config: NotationConfig, at: datetime, horizon: timedelta, out: SignatureAudit
) -> None:
    """Every statement of the trust policy and every certificate of the stores it names."""
    from cryptography import x509

    out.sources.append(f"notation trust policy {config.policy_path}")
    out.sources.append(f"notation trust store {config.store_root}")
    by_store: dict[tuple[str, str], list[Any]] = {}
    entries: dict[str, NotationPolicyEntry] = {}
    for p in config.policies:
        entry = NotationPolicyEntry(
            p.name,
            p.level,
            list(p.registry_scopes),
            [f"{k}:{n}" for k, n in p.trust_stores],
            list(p.trusted_identities),
        )
        out.notation_policies.append(entry)
        entries[p.name] = entry
        role = f"notation {p.name}"
        if p.wildcard_identity and p.level != "skip":
            out.findings.append(
                Finding(
                    "notation-any-identity",
                    f'trust policy statement {p.name!r}: trustedIdentities ["*"] accepts any '
                    f"certificate the stores {', '.join(entry.stores)} issue; name the "
                    "x509.subject of your signers",
                    role=role,
                )
            )
        for kind, name in p.trust_stores:
            by_store.setdefault((kind, name), []).append(p)
    for unused in _unused_stores(config, by_store):
        by_store[unused] = []
    for (kind, name), policies in by_store.items():
        label = f"{kind}:{name}"
        try:
            ders = config.store(kind, name)
        except TrustcheckError as e:
            if not policies:
                continue  # a store no statement uses cannot break a verification
            for p in policies:
                entries[p.name].missing.append(label)
                out.findings.append(
                    Finding(
                        "notation-store-missing",
                        f"trust policy statement {p.name!r} names trust store {label}: "
                        f"{e.message}; notation fails every verification under it",
                        role=f"notation {p.name}",
                    )
                )
            continue
        for der in ders:
            cert = x509.load_der_x509_certificate(der)
            sha = hashlib.sha256(der).hexdigest()
            key, bits = _describe_key(cert.public_key())
            nb = _utc(cert.not_valid_before_utc)
            na = _utc(cert.not_valid_after_utc)
            subject = cert.subject.rfc4514_string()
            where = f"notation trust store {label} certificate {subject!r}"
            role = f"notation {label}"
            status, found = _expiry_findings(nb, na, at, horizon, where, role, sha)
            found += _key_findings(bits, key, where, role, sha)
            if not policies:  # listed (it is in the store), but trusted by no statement
                found = []
            algorithm = _signature_algorithm(cert)
            if algorithm in _SHA1 or "sha1" in algorithm.lower():
                found.append(
                    Finding(
                        "sha1-certificate",
                        f"{where}: signed with {algorithm}; reissue it",
                        role=role,
                        key=sha,
                    )
                )
            out.findings += found
            scopes: list[str] = []
            idents: list[str] = []
            for p in policies:
                scopes += [s for s in p.registry_scopes if s not in scopes]
                idents += [i for i in p.trusted_identities if i not in idents]
            out.notation_certificates.append(
                NotationCertEntry(
                    label,
                    subject,
                    cert.issuer.rfc4514_string(),
                    sha,
                    key,
                    algorithm,
                    iso(nb),
                    iso(na),
                    (na - at).days,
                    status,
                    [p.name for p in policies],
                    scopes,
                    idents,
                )
            )


def _unused_stores(
    config: NotationConfig, used: dict[tuple[str, str], Any]
) -> list[tuple[str, str]]:
    """Stores under ``truststore/x509/TYPE/`` that no statement names (at most 1,000)."""
    import os

    from trustcheck.notation.config import STORE_TYPES

    out: list[tuple[str, str]] = []
    for kind in STORE_TYPES:
        try:
            entries = sorted(os.scandir(config.store_root / "x509" / kind), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries[:1000]:
            if entry.is_dir(follow_symlinks=False) and (kind, entry.name) not in used:
                out.append((kind, entry.name))
    return out


# --------------------------------------------------------------------------- cosign


def audit_policy(policy: Policy, out: SignatureAudit) -> list[Path]:
    """The cosign keys and identities of every rule's ``require:``; returns the
    trusted roots the rules configure (files)."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from trustcheck.policy.require import CosignReq, leaves

    out.sources.append(f"policy {policy.path or policy.source}")
    keys: dict[str, CosignKeyEntry] = {}
    idents: dict[tuple[str, str | None, str | None], CosignIdentityEntry] = {}
    roots: list[Path] = []
    for rule in policy.rules:
        label = f'rule "{rule.name}" ({rule.pattern.text})'
        cosign = rule.trust.cosign
        root = cosign.trusted_root if cosign is not None else None
        if root is not None and root not in roots:
            roots.append(root)
        if rule.require is None:
            continue
        for leaf in leaves(rule.require):
            if not isinstance(leaf, CosignReq):
                continue
            where = label + (f" {leaf.window.text()}" if leaf.window is not None else "")
            for fp, source, pem in zip(leaf.keys, leaf.key_sources, leaf.key_pems, strict=False):
                entry = keys.get(fp)
                if entry is None:
                    key, bits = _describe_key(load_pem_public_key(pem))
                    entry = CosignKeyEntry(fp, key, source)
                    keys[fp] = entry
                    out.findings += _key_findings(
                        bits, key, f"cosign key {source} ({fp})", "cosign key", fp
                    )
                if where not in entry.rules:
                    entry.rules.append(where)
            for ident in leaf.identities:
                k = (ident.issuer, ident.san, ident.san_regex)
                ie = idents.get(k)
                if ie is None:
                    broad = ident.san_regex is not None and broad_identity(ident.san_regex)
                    ie = CosignIdentityEntry(ident.issuer, ident.san, ident.san_regex, broad)
                    idents[k] = ie
                    if broad:
                        out.findings.append(
                            Finding(
                                "cosign-broad-identity",
                                f"cosign identity {ie.text}: the SAN expression accepts signers "
                                "of other owners (e.g. another GitHub organisation); pin the "
                                "owner and repository",
                                role="cosign identity",
                            )
                        )
                if where not in ie.rules:
                    ie.rules.append(where)
    out.cosign_keys += keys.values()
    out.cosign_identities += idents.values()
    return roots


def _parse_stamp(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _bad_root(path: Path, why: str) -> UsageError:
    return UsageError(
        ErrorCode.COSIGN_CONFIG_INVALID,
        f"trusted root {path}: {why}; give sigstore's trusted_root.json",
    )


def audit_trusted_root(path: Path, at: datetime, horizon: timedelta, out: SignatureAudit) -> None:
    """Every authority of a ``trusted_root.json``: its validity window, key and
    (for CAs) certificate; ``sigstore-no-active-authority`` when no Fulcio CA or no
    Rekor log is valid at ``at``."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    if str(path).startswith("tuf:"):
        raise UsageError(
            ErrorCode.COSIGN_CONFIG_INVALID,
            f"--trusted-root {path}: the audit reads a trusted_root.json file, offline; "
            "download it verified first (trustcheck tuf download --repo REPOSITORY "
            "trusted_root.json) and give that file",
        )
    try:
        with path.open("rb") as f:
            data = f.read(MAX_TRUSTED_ROOT_BYTES + 1)
    except OSError as e:
        raise _bad_root(path, f"cannot be read ({e.strerror or e})") from e
    if len(data) > MAX_TRUSTED_ROOT_BYTES:
        raise _bad_root(path, f"over the {MAX_TRUSTED_ROOT_BYTES}-byte cap")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise _bad_root(path, f"not JSON ({e})") from e
    if not isinstance(doc, dict):
        raise _bad_root(path, "not a JSON object")
    out.sources.append(f"sigstore trusted root {path}")
    groups = (
        ("certificateAuthorities", "fulcio"),
        ("tlogs", "rekor"),
        ("ctlogs", "ctlog"),
        ("timestampAuthorities", "tsa"),
    )
    active: dict[str, int] = {"fulcio": 0, "rekor": 0}
    for member, kind in groups:
        items = doc.get(member, [])
        if not isinstance(items, list):
            raise _bad_root(path, f"{member} is not a list")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise _bad_root(path, f"{member}[{i}] is not an object")
            name = str(item.get("uri") or item.get("baseUrl") or f"{member}[{i}]")
            subject = sha = not_after = None
            try:
                if "certChain" in item:
                    certs = item["certChain"]["certificates"]
                    der = base64.b64decode(certs[0]["rawBytes"], validate=True)
                    cert = x509.load_der_x509_certificate(der)
                    sha = hashlib.sha256(der).hexdigest()
                    subject = cert.subject.rfc4514_string()
                    not_after = iso(cert.not_valid_after_utc)
                    key, _bits = _describe_key(cert.public_key())
                    window = item.get("validFor", {})
                else:
                    pk = item["publicKey"]
                    der = base64.b64decode(pk["rawBytes"], validate=True)
                    key, _bits = _describe_key(load_der_public_key(der))
                    window = pk.get("validFor", {})
            except (KeyError, IndexError, TypeError, ValueError) as e:
                raise _bad_root(path, f"{member}[{i}] ({name}) is malformed ({e})") from e
            if not isinstance(window, dict):
                raise _bad_root(path, f"{member}[{i}] ({name}): validFor is not an object")
            start = _parse_stamp(window.get("start"))
            end = _parse_stamp(window.get("end"))
            for side, got in (("start", start), ("end", end)):
                if window.get(side) is not None and got is None:
                    raise _bad_root(
                        path,
                        f"{member}[{i}] ({name}): validFor.{side} {str(window[side])[:40]!r} "
                        "is not an RFC 3339 time",
                    )
            if start is not None and at < start:
                status = "future"
            elif end is not None and at >= end:
                status = "retired"
            else:
                status = "active"
                if kind in active:
                    active[kind] += 1
            entry = SigstoreAuthority(
                kind,
                name,
                key,
                iso(start) if start is not None else None,
                iso(end) if end is not None else None,
                status,
                subject,
                sha,
                not_after,
            )
            out.sigstore_authorities.append(entry)
            if status != "active":
                continue
            where = f"sigstore {kind} {name}"
            ends = [d for d in (end, _parse_stamp(not_after) if not_after else None) if d]
            if ends:
                soonest = min(ends)
                if soonest < at:  # the window is open but the CA certificate has expired
                    out.findings.append(
                        Finding(
                            "cert-expired",
                            f"{where}: certificate expired {iso(soonest)}; "
                            "refresh the trusted root",
                            role=f"sigstore {kind}",
                            key=sha,
                            date=iso(soonest),
                        )
                    )
                elif soonest < _until(at, horizon):
                    out.findings.append(
                        Finding(
                            "cert-expiring",
                            f"{where}: valid until {iso(soonest)} (in "
                            f"{(soonest - at).days} days); refresh the trusted root",
                            role=f"sigstore {kind}",
                            key=sha,
                            date=iso(soonest),
                        )
                    )
    for kind, count in active.items():
        if count == 0:
            what = "Fulcio certificate authority" if kind == "fulcio" else "Rekor log"
            out.findings.append(
                Finding(
                    "sigstore-no-active-authority",
                    f"trusted root {path}: no {what} is valid at {iso(at)}; keyless "
                    "signatures made now cannot verify: refresh the trusted root",
                    role=f"sigstore {kind}",
                )
            )


# --------------------------------------------------------------------------- gather


def gather(
    at: datetime,
    horizon: timedelta,
    *,
    policy: Policy | None = None,
    notation: NotationConfig | None = None,
    trusted_roots: list[Path] | None = None,
) -> SignatureAudit:
    """The ``signatures`` section from a policy, Notation's files and trusted roots.

    A policy contributes its cosign keys and identities, the Notation files of
    its rules (``notation`` replaces them when given) and the trusted roots its
    rules name (besides ``trusted_roots``); each Notation statement lists the
    rules that name it (``require: notation: trust_policy``), and a rule naming a
    statement the trust policy lacks is ``notation-statement-missing``."""
    out = SignatureAudit()
    roots = list(trusted_roots or [])
    configs: list[tuple[NotationConfig, list[tuple[str, NotationReq]]]] = []
    uses = _notation_uses(policy) if policy is not None else []
    if notation is not None:
        configs.append((notation, [(label, leaf) for _, label, leaf in uses]))
    if policy is not None:
        for extra in audit_policy(policy, out):
            if extra not in roots:
                roots.append(extra)
        if notation is None:
            configs += _policy_notation(uses)
    for config, leaves_ in configs:
        first = len(out.notation_policies)
        audit_notation(config, at, horizon, out)
        statements = {e.name: e for e in out.notation_policies[first:]}
        for label, leaf in leaves_:
            if leaf.trust_policy is None:
                continue
            entry = statements.get(leaf.trust_policy)
            if entry is not None:
                if label not in entry.rules:
                    entry.rules.append(label)
                continue
            out.findings.append(
                Finding(
                    "notation-statement-missing",
                    f"{label} requires Notation under trust policy statement "
                    f"{leaf.trust_policy!r}, which {config.policy_path} does not have "
                    f"(it has: {', '.join(statements) or 'none'}); the rule can never be met "
                    "by Notation",
                    role=f"notation {leaf.trust_policy}",
                )
            )
    for root in roots:
        audit_trusted_root(root, at, horizon, out)
    return out


def _notation_uses(policy: Policy) -> list[tuple[Any, str, NotationReq]]:
    """(the rule's Notation trust, ``rule "NAME" (PATTERN)``, leaf) of every Notation leaf."""
    from trustcheck.policy.require import NotationReq, leaves

    out: list[tuple[Any, str, NotationReq]] = []
    for rule in policy.rules:
        if rule.require is None:
            continue
        for leaf in leaves(rule.require):
            if isinstance(leaf, NotationReq):
                label = f'rule "{rule.name}" ({rule.pattern.text})'
                out.append((rule.trust.notation, label, leaf))
    return out


def _policy_notation(
    uses: list[tuple[Any, str, NotationReq]],
) -> list[tuple[NotationConfig, list[tuple[str, NotationReq]]]]:
    """The Notation files the rules that require Notation read (once each), with
    the leaves that read them."""
    import os

    from trustcheck.notation.config import load_notation_config

    by_trust: dict[Any, list[tuple[str, NotationReq]]] = {}
    for trust, label, leaf in uses:
        key = (
            (trust.config_dir, trust.trust_policy, trust.trust_store) if trust is not None else None
        )
        by_trust.setdefault(key, []).append((label, leaf))
    out = []
    for key, found in by_trust.items():
        config_dir, trust_policy, trust_store = key if key is not None else (None, None, None)
        env = None
        if config_dir is not None:
            env = {**os.environ, "NOTATION_CONFIG": str(config_dir)}
        out.append((load_notation_config(trust_policy, trust_store, env=env), found))
    return out
