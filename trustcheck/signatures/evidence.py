"""What a verifier of one signature kind found for one image digest.

Pure data, shared by the three kinds so that one policy and one decide() judge them:

* ``dct``: Docker Content Trust (Notary v1), a signer (delegation) releasing the digest;
* ``notation``: a Notary Project signature (OCI referrer, JWS or COSE envelope);
* ``cosign``: a Sigstore/cosign signature (keyless bundle or key-based).

A verifier returns one :class:`Evidence` per signature it examined, valid or not, so
that ``policy explain`` and the coverage report can say why a signature did not count.
Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = ["KINDS", "Evidence", "Kind"]

Kind = Literal["dct", "notation", "cosign"]
KINDS: tuple[Kind, ...] = ("dct", "notation", "cosign")


@dataclass(frozen=True, slots=True)
class Evidence:
    """One signature over ``digest`` and what verifying it showed.

    ``valid`` is True only when the signature verified cryptographically, is bound to
    ``digest`` (the signed payload names exactly that manifest digest), its key or
    certificate chain is trusted by the configured trust material at the validation
    time, and every check the kind's specification makes passed (for Notation: at the
    verification level in force; ``audit``/``skip`` levels still report ``valid`` as
    what the checks found and say so in ``level``).
    """

    kind: Kind
    #: the manifest digest the signature is bound to, ``sha256:<hex>``
    digest: str
    valid: bool
    #: who signed: DCT signer name (``releases``, ``targets``); Notation: the signing
    #: certificate's subject as Notation writes it (``C=US, O=Acme, CN=release``);
    #: cosign keyless: the certificate's SAN (e-mail or URI); cosign key-based:
    #: ``sha256:<hex of the DER SubjectPublicKeyInfo>``
    identity: str
    #: cosign keyless: the OIDC issuer; Notation: the trust store that anchored the
    #: chain (``ca:acme``, ``signingAuthority:acme``); DCT: the role (``targets/releases``)
    issuer: str | None = None
    #: signing time the signature claims or a timestamp proves (UTC), if any
    signed_at: datetime | None = None
    #: where it was found: referrer manifest digest, ``sha256-<hex>.sig`` tag, role file
    source: str = ""
    #: error code (trustcheck/errors.py, docs/errors.md) when not valid
    code: str | None = None
    #: one line a user can act on (why valid, or what failed and what to do)
    message: str = ""
    #: Notation verification level applied (``strict``/``permissive``/``audit``/``skip``)
    level: str | None = None
    #: further facts for reports (envelope media type, certificate expiry, log index...)
    details: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "digest": self.digest,
            "valid": self.valid,
            "identity": self.identity,
            "issuer": self.issuer,
            "signed_at": (
                self.signed_at.strftime("%Y-%m-%dT%H:%M:%SZ") if self.signed_at else None
            ),
            "source": self.source,
            "code": self.code,
            "message": self.message,
            "level": self.level,
            "details": dict(self.details),
        }
