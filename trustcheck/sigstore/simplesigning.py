"""cosign's simple-signing payload (``application/vnd.dev.cosign.simplesigning.v1+json``).

::

    {"critical": {"identity": {"docker-reference": "registry/repo"},
                  "image": {"docker-manifest-digest": "sha256:<hex>"},
                  "type": "cosign container image signature"},
     "optional": {...}}

What is checked: the JSON shape, ``critical.type``, and that
``critical.image.docker-manifest-digest`` is exactly the image digest (the binding).
``critical.identity.docker-reference`` is reported, not checked (as cosign: a signed
image may be copied to another repository), nor is ``optional``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from trustcheck.errors import ErrorCode
from trustcheck.sigstore.errors import Fail

__all__ = ["COSIGN_SIGNATURE_TYPE", "MAX_PAYLOAD_BYTES", "SimpleSigning", "check_payload"]

COSIGN_SIGNATURE_TYPE = "cosign container image signature"
MAX_PAYLOAD_BYTES = 256 * 1024
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class SimpleSigning:
    digest: str
    docker_reference: str | None
    optional: dict[str, Any]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"field {k!r} written twice")
        out[k] = v
    return out


def check_payload(payload: bytes, digest: str, where: str) -> SimpleSigning:
    """Parse ``payload`` and require it to name ``digest``; :class:`Fail` otherwise."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise Fail(
            ErrorCode.COSIGN_BUNDLE_INVALID,
            f"{where}: the simple-signing payload is {len(payload)} bytes, over the "
            f"{MAX_PAYLOAD_BYTES}-byte cap",
        )
    try:
        doc = json.loads(payload, object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError) as e:
        raise Fail(
            ErrorCode.COSIGN_BUNDLE_INVALID,
            f"{where}: the payload is not simple-signing JSON ({str(e)[:100]})",
        ) from None
    critical = doc.get("critical") if isinstance(doc, dict) else None
    if not isinstance(critical, dict):
        raise Fail(
            ErrorCode.COSIGN_BUNDLE_INVALID,
            f"{where}: the payload has no 'critical' object (not a cosign simple-signing payload)",
        )
    kind = critical.get("type")
    if kind != COSIGN_SIGNATURE_TYPE:
        raise Fail(
            ErrorCode.COSIGN_BUNDLE_INVALID,
            f"{where}: critical.type is {str(kind)[:80]!r}, not {COSIGN_SIGNATURE_TYPE!r}",
        )
    image = critical.get("image")
    signed = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if not isinstance(signed, str) or _DIGEST.fullmatch(signed) is None:
        raise Fail(
            ErrorCode.COSIGN_BUNDLE_INVALID,
            f"{where}: critical.image.docker-manifest-digest is missing or not sha256:<64 hex>",
        )
    if signed != digest:
        raise Fail(
            ErrorCode.COSIGN_DIGEST_MISMATCH,
            f"{where}: the payload signs {signed}, not the image digest {digest}: a signature "
            "for another image; it does not count",
        )
    identity = critical.get("identity")
    ref = identity.get("docker-reference") if isinstance(identity, dict) else None
    optional = doc.get("optional")
    return SimpleSigning(
        signed,
        ref if isinstance(ref, str) else None,
        optional if isinstance(optional, dict) else {},
    )
