"""trustcheck: verify Docker Content Trust (Notary v1 / TUF) trust data.

The public library API is what ``__all__`` lists; everything else is internal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Collection",
    "Decision",
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
    "Collection": "verify",
    "verify_collection": "verify",
    "ImageRef": "reference",
    "parse_reference": "reference",
    "ImageResult": "api",
    "load_collection": "api",
    "verify_image": "api",
    "verify_images": "api",
    "NotTrusted": "errors",
    "TrustcheckError": "errors",
    "UsageError": "errors",
    "TrustDir": "trustdir",
    "resolve": "lookup",
    "Decision": "policy",
    "Policy": "policy",
    "decide": "policy",
    "evaluate": "policy",
    "load_policy": "policy",
    "Options": "api",
    "fetch_collection": "fetch",
    "load_pins": "pins",
    "refresh": "tuf10",
}

if TYPE_CHECKING:
    from .api import ImageResult, Options, load_collection, verify_image, verify_images
    from .errors import NotTrusted, TrustcheckError, UsageError
    from .fetch import fetch_collection
    from .lookup import resolve
    from .pins import load_pins
    from .policy import Decision, Policy, decide, evaluate, load_policy
    from .reference import ImageRef, parse_reference
    from .trustdir import TrustDir
    from .tuf10 import refresh
    from .verify import Collection, verify_collection


def __getattr__(name: str) -> Any:  # lazy: keeps `import trustcheck` cheap
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'trustcheck' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)
