"""Notary Project (Notation) signatures: trust policy and store, envelopes, verification.

``load_notation_config`` reads Notation's own ``trustpolicy.json`` and trust store;
``notation_evidence`` verifies the signatures a registry holds for an image digest;
``verify_envelope`` verifies one envelope without a registry.  See docs/notation.md.
Names are imported lazily (the CLI starts without cryptography).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trustcheck.notation.config import NotationConfig, PolicyStatement, load_notation_config
    from trustcheck.notation.verify import Target, notation_evidence, verify_envelope

__all__ = [
    "NotationConfig",
    "PolicyStatement",
    "Target",
    "load_notation_config",
    "notation_evidence",
    "verify_envelope",
]

_WHERE = {
    "NotationConfig": "trustcheck.notation.config",
    "PolicyStatement": "trustcheck.notation.config",
    "load_notation_config": "trustcheck.notation.config",
    "Target": "trustcheck.notation.verify",
    "notation_evidence": "trustcheck.notation.verify",
    "verify_envelope": "trustcheck.notation.verify",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
