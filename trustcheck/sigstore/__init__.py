"""Sigstore / cosign signatures (docs/sigstore.md).

* :func:`load_cosign_config` -> :class:`CosignConfig`: public keys, keyless identities,
  the Sigstore trusted root (a file, or ``tuf:<repository>`` through trustcheck's TUF
  client);
* :func:`cosign_evidence`: the cosign signatures of an image digest in its registry
  (legacy ``sha256-<hex>.sig`` tag and Sigstore bundle referrers), one
  :class:`~trustcheck.signatures.evidence.Evidence` each;
* :func:`verify_bundle`: one Sigstore bundle for an artifact digest, offline.

Key-based signatures need only ``cryptography``; keyless ones need sigstore-python
(``pip install 'trustcheck[sigstore]'``), imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trustcheck.sigstore.config import (
        CosignConfig,
        CosignKey,
        IdentityRule,
        load_cosign_config,
    )
    from trustcheck.sigstore.keyless import KeylessResult, verify_bundle
    from trustcheck.sigstore.trustroot import TrustRoot, load_trust_root
    from trustcheck.sigstore.verify import cosign_evidence, signature_tag

__all__ = [
    "CosignConfig",
    "CosignKey",
    "IdentityRule",
    "KeylessResult",
    "TrustRoot",
    "cosign_evidence",
    "load_cosign_config",
    "load_trust_root",
    "signature_tag",
    "verify_bundle",
]

_WHERE = {
    "CosignConfig": "config",
    "CosignKey": "config",
    "IdentityRule": "config",
    "load_cosign_config": "config",
    "KeylessResult": "keyless",
    "verify_bundle": "keyless",
    "TrustRoot": "trustroot",
    "load_trust_root": "trustroot",
    "cosign_evidence": "verify",
    "signature_tag": "verify",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'trustcheck.sigstore' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"trustcheck.sigstore.{module}"), name)
