"""Per-key and per-certificate facts and findings of one collection: key
entries, weak or short keys, SHA-1 certificates, expiry status and the
certificate timeline."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from trustcheck.audit.model import (
    BASE_ROLES,
    RSA_ERROR_BITS,
    RSA_WARNING_BITS,
    Finding,
    KeyEntry,
    TimelineItem,
)
from trustcheck.core.model import RootMeta

if TYPE_CHECKING:
    from trustcheck.core.thumbprint import KeyReport

__all__ = []


#: Certificate signature algorithms (OpenSSL names, as thumbprint.py reports
#: them, or the dotted OID it falls back to) that hash with SHA-1.
_SHA1_SIGNATURES = frozenset(
    {
        "sha1WithRSAEncryption",
        "ecdsa-with-SHA1",
        "dsa_with_SHA1",
        "1.3.14.3.2.29",  # sha1WithRSASignature (OIW)
        "1.3.14.3.2.27",  # dsaWithSHA1 (OIW)
    }
)


def _entry(report: KeyReport) -> KeyEntry:
    bits: int | None = None
    curve: str | None = None
    kind, _, rest = report.algorithm.partition(" ")
    if kind in ("RSA", "DSA") and rest.isdigit():
        bits = int(rest)
    elif kind == "ECDSA" and rest:
        curve = rest
    elif kind == "Ed25519":
        curve = "Ed25519"
    return KeyEntry(
        role=report.role or "",
        key_type=report.key_type,
        algorithm=report.algorithm,
        key_id=report.key_id,
        canonical_key_id=report.canonical_key_id,
        bits=bits,
        curve=curve,
        cert_sha256=report.cert_sha256,
        spki_sha256=report.spki_sha256,
        subject_cn=report.subject_cn,
        issuer=report.issuer,
        not_before=report.not_before,
        not_after=report.not_after,
        signature_algorithm=report.signature_algorithm,
    )


def _root_key_reports(root: RootMeta, gun: str) -> list[KeyReport]:
    """thumbprint's reports for the base-role keys of a root that did not verify."""
    from trustcheck.core.thumbprint import _report_of_key

    reports: list[KeyReport] = []
    seen: set[tuple[str, str]] = set()
    for role in BASE_ROLES:
        rk = root.roles.get(role)
        if rk is None:
            continue
        for kid in rk.keyids:
            key = root.keys.get(kid)
            if key is None or (role, kid) in seen:
                continue
            seen.add((role, kid))
            reports.append(_report_of_key(key, gun, role))
    return reports


def _parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _key_findings(
    gun: str, keys: list[KeyEntry], at: datetime, horizon: timedelta
) -> list[Finding]:
    """Weak keys, SHA-1 and out-of-window certificates: once per key / certificate."""
    out: list[Finding] = []
    by_key: dict[str, list[KeyEntry]] = {}
    for k in keys:
        by_key.setdefault(k.ident, []).append(k)
    for ident, entries in by_key.items():
        first = entries[0]
        roles = ", ".join(dict.fromkeys(e.role for e in entries))
        short = ident[:12]
        if first.algorithm.startswith("RSA") and first.bits is not None:
            if first.bits < RSA_ERROR_BITS:
                out.append(
                    Finding(
                        "weak-key",
                        f"{gun}: {roles} key {short}… is RSA {first.bits}: under "
                        f"{RSA_ERROR_BITS} bits it can be factored; notary refuses such "
                        "certificates and signatures. Replace the key",
                        gun=gun,
                        role=first.role,
                        key=ident,
                    )
                )
            elif first.bits < RSA_WARNING_BITS:
                out.append(
                    Finding(
                        "short-rsa-key",
                        f"{gun}: {roles} key {short}… is RSA {first.bits}: use RSA 3072+ or "
                        "ECDSA P-256 for keys meant to last beyond 2030",
                        gun=gun,
                        role=first.role,
                        key=ident,
                    )
                )
    by_cert: dict[str, list[KeyEntry]] = {}
    for k in keys:
        if k.cert_sha256 is not None:
            by_cert.setdefault(k.cert_sha256, []).append(k)
    for entries in by_cert.values():
        first = entries[0]
        roles = ", ".join(dict.fromkeys(e.role for e in entries))
        what = f"{gun}: certificate CN={first.subject_cn!r} ({roles}, key {first.ident[:12]}…)"
        if first.signature_algorithm in _SHA1_SIGNATURES:
            out.append(
                Finding(
                    "sha1-certificate",
                    f"{what} is signed with {first.signature_algorithm}; SHA-1 collisions are "
                    "practical and notary refuses it. Re-issue it with SHA-256",
                    gun=gun,
                    role=first.role,
                    key=first.ident,
                )
            )
        not_after = _parse_time(first.not_after)
        not_before = _parse_time(first.not_before)
        if not_after is not None and not_after < at:
            out.append(
                Finding(
                    "cert-expired",
                    f"{what} expired at {first.not_after}",
                    gun=gun,
                    role=first.role,
                    key=first.ident,
                    date=first.not_after,
                )
            )
        elif not_after is not None and not_after < _until(at, horizon):
            out.append(
                Finding(
                    "cert-expiring",
                    f"{what} expires at {first.not_after}, within {horizon.days} days",
                    gun=gun,
                    role=first.role,
                    key=first.ident,
                    date=first.not_after,
                )
            )
        if not_before is not None and not_before > at:
            out.append(
                Finding(
                    "cert-not-yet-valid",
                    f"{what} is not valid before {first.not_before}",
                    gun=gun,
                    role=first.role,
                    key=first.ident,
                    date=first.not_before,
                )
            )
    return out


def _root_findings(gun: str, root: RootMeta, keys: list[KeyEntry]) -> list[Finding]:
    from trustcheck.core.certs import cn_matches_gun

    out: list[Finding] = []
    rk = root.roles.get("root")
    root_keys = [k for k in keys if k.role == "root"]
    distinct = {k.ident for k in root_keys}
    if rk is not None and rk.threshold == 1 and len(distinct) == 1:
        out.append(
            Finding(
                "root-single-key",
                f"{gun}: the root role has threshold 1 and a single key "
                f"({root_keys[0].ident[:12]}…); losing it makes rotation impossible. Add a "
                "second root key kept offline (notary key rotate GUN root --key A --key B)",
                gun=gun,
                role="root",
                key=root_keys[0].ident,
            )
        )
    seen: set[str] = set()
    for k in root_keys:
        if k.cert_sha256 is None or k.cert_sha256 in seen:
            continue
        seen.add(k.cert_sha256)
        if not cn_matches_gun(k.subject_cn or "", gun):
            out.append(
                Finding(
                    "root-cn-mismatch",
                    f"{gun}: root certificate {k.cert_sha256[:12]}… (key {k.ident[:12]}…) is "
                    f"issued to CN={k.subject_cn!r}, not to this GUN; notary cannot use it",
                    gun=gun,
                    role="root",
                    key=k.ident,
                )
            )
    return out


def _until(at: datetime, horizon: timedelta) -> datetime:
    """``at + horizon``, clamped to the latest time Python holds (``--at 9999-12-31``)."""
    try:
        return at + horizon
    except OverflowError:
        return datetime.max.replace(tzinfo=at.tzinfo)


def _expiry_status(expires: datetime, at: datetime, horizon: timedelta) -> str:
    if expires < at:
        return "expired"
    if expires < _until(at, horizon):
        return "expiring"
    return "ok"


def _cert_timeline(
    gun: str, keys: list[KeyEntry], at: datetime, horizon: timedelta
) -> list[TimelineItem]:
    items: dict[str, TimelineItem] = {}
    for k in keys:
        if k.cert_sha256 is None:
            continue
        expires = _parse_time(k.not_after)
        if expires is None:
            continue
        item = items.get(k.cert_sha256)
        if item is None:
            items[k.cert_sha256] = TimelineItem(
                gun,
                "certificate",
                f"CN={k.subject_cn or ''}",
                [k.role],
                expires,
                _expiry_status(expires, at, horizon),
                k.cert_sha256,
            )
        elif k.role not in item.roles:
            item.roles.append(k.role)
    return list(items.values())
