"""trustcheck: verify Docker Content Trust (Notary v1 / TUF) trust data.

The public library API is what ``__all__`` lists; everything else is internal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Collection",
    "Decision",
    "ErrorCode",
    "ImageRef",
    "ImageResult",
    "NotTrusted",
    "Options",
    "Policy",
    "TrustDir",
    "TrustcheckError",
    "UsageError",
    "decide",
    "evaluate",
    "fetch_collection",
    "load_collection",
    "load_pins",
    "load_policy",
    "parse_reference",
    "refresh",
    "resolve",
    "verify_collection",
    "verify_image",
    "verify_images",
]

_WHERE = {
    "Collection": "core.verify",
    "verify_collection": "core.verify",
    "ImageRef": "core.reference",
    "parse_reference": "core.reference",
    "ImageResult": "api",
    "load_collection": "api",
    "verify_image": "api",
    "verify_images": "api",
    "ErrorCode": "errors",
    "NotTrusted": "errors",
    "TrustcheckError": "errors",
    "UsageError": "errors",
    "TrustDir": "local.trustdir",
    "resolve": "core.lookup",
    "Decision": "policy.model",
    "Policy": "policy.model",
    "decide": "policy.decide",
    "evaluate": "policy.evaluate",
    "load_policy": "policy.load",
    "Options": "api",
    "fetch_collection": "remote.notary",
    "load_pins": "local.pinfile",
    "refresh": "tuf.client",
}

if TYPE_CHECKING:
    from trustcheck.api import ImageResult, Options, load_collection, verify_image, verify_images
    from trustcheck.core.lookup import resolve
    from trustcheck.core.reference import ImageRef, parse_reference
    from trustcheck.core.verify import Collection, verify_collection
    from trustcheck.errors import ErrorCode, NotTrusted, TrustcheckError, UsageError
    from trustcheck.local.pinfile import load_pins
    from trustcheck.local.trustdir import TrustDir
    from trustcheck.policy.decide import decide
    from trustcheck.policy.evaluate import evaluate
    from trustcheck.policy.load import load_policy
    from trustcheck.policy.model import Decision, Policy
    from trustcheck.remote.notary import fetch_collection
    from trustcheck.tuf.client import refresh


def __getattr__(name: str) -> Any:  # lazy: keeps `import trustcheck` cheap
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'trustcheck' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)
