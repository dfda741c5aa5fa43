"""Key identifiers and CA chains: what a pin can name, and how it is matched (pure).

An :class:`Identifier` is one of the four ways a pin names a key (certificate
hash, SPKI hash, notary key ID, canonical key ID).  :func:`chains_to_ca`
decides whether a root leaf certificate chains to a pinned CA, with
``cryptography.x509.verification`` (path length, key usage, name constraints
and validity windows at the given time).  Nothing here reads files or the clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from trustcheck.core.crypto import TufKey, canonical_key_id, cert_of
from trustcheck.errors import ErrorCode, UsageError

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

__all__ = [
    "KINDS",
    "Identifier",
    "chains_to_ca",
    "describe",
    "identifiers_of_cert",
    "identifiers_of_key",
]

#: identifier kinds, in the order ``pin add`` prefers them
KINDS = ("cert-sha256", "spki-sha256", "keyid", "canonical")
_HEX64 = frozenset("0123456789abcdef")
#: intermediates allowed between a root leaf and a pinned CA (plus leaf and anchor)
MAX_CHAIN_INTERMEDIATES = 5


@dataclass(frozen=True, slots=True, order=True)
class Identifier:
    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"

    @classmethod
    def parse(cls, text: str, where: str) -> Identifier:
        kind, sep, value = str(text).partition(":")
        kind = kind.strip().lower()
        if not sep or kind not in KINDS:
            raise UsageError(
                ErrorCode.PIN_FILE_INVALID,
                f"{where}: {str(text)[:80]!r} is not an identifier; write it as "
                f"<kind>:<hex> with kind one of {', '.join(KINDS)}",
            )
        # accept openssl's "AB:CD:..." form as well as plain hex
        norm = value.strip().replace(":", "").lower()
        if len(norm) != 64 or not set(norm) <= _HEX64:
            raise UsageError(
                ErrorCode.PIN_FILE_INVALID,
                f"{where}: {kind} value must be 64 hex digits (a SHA-256), got {value[:80]!r}",
            )
        return cls(kind, norm)


def identifiers_of_cert(der: bytes, spki_der: bytes) -> set[Identifier]:
    return {
        Identifier("cert-sha256", hashlib.sha256(der).hexdigest()),
        Identifier("spki-sha256", hashlib.sha256(spki_der).hexdigest()),
    }


def identifiers_of_key(key: TufKey, *extra_ids: str) -> set[Identifier]:
    """Every identifier a key answers to: key IDs, canonical ID, cert and SPKI hashes."""
    ids = {Identifier("keyid", key.id), Identifier("canonical", canonical_key_id(key))}
    ids.update(Identifier("keyid", i) for i in extra_ids)
    cert = cert_of(key)
    if cert is not None:
        from cryptography.hazmat.primitives import serialization

        ids |= identifiers_of_cert(
            cert.public_bytes(serialization.Encoding.DER),
            cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
    elif key.keytype in ("ecdsa", "rsa"):
        ids.add(Identifier("spki-sha256", hashlib.sha256(key.public).hexdigest()))
    return ids


def describe(ids: Iterable[Identifier]) -> str:
    return ", ".join(f"{i.kind}:{i.value[:12]}…" for i in sorted(ids))


def chains_to_ca(
    leaf: Certificate, intermediates: list[Certificate], bundle: list[Certificate], at: datetime
) -> bool:
    """Whether ``leaf`` chains to a certificate of ``bundle`` through ``intermediates``.

    The path is built and checked by ``cryptography.x509.verification``: every
    signature, every validity window at ``at``, the CA certificates' basic
    constraints, path length and key usage (web PKI CA profile), and name
    constraints.  The leaf's own extensions are not profiled
    (``ExtensionPolicy.permit_all``): notary's root leaves carry the
    codeSigning extended key usage, no subject alternative name and are no
    TLS clients; notary's CA pinning wrongly refuses them for that
    (docs/notary-compat.md).  A leaf that *is* one of the pinned certificates
    is accepted when valid at ``at``.
    """
    from cryptography.x509.verification import (
        ExtensionPolicy,
        PolicyBuilder,
        Store,
        VerificationError,
    )

    anchors = [c for c in bundle if c.not_valid_before_utc <= at <= c.not_valid_after_utc]
    if not anchors:
        return False
    if leaf in anchors:
        return True
    verifier = (
        PolicyBuilder()
        .store(Store(anchors))
        .time(at)
        .max_chain_depth(MAX_CHAIN_INTERMEDIATES)
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, intermediates)
    except VerificationError:
        return False
    return True
