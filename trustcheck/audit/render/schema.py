"""The JSON Schema (2020-12) of the ``json`` audit document (docs/audit.md)."""

from __future__ import annotations

from typing import Any

from trustcheck.audit.model import FINDINGS

__all__ = ["JSON_SCHEMA"]


_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}
_STR_LIST = {"type": "array", "items": {"type": "string"}}
_TIME = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"}
_TIME_OR_NULL = {
    "anyOf": [{"type": "null"}, _TIME],
}
_HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_HEX64_OR_NULL = {"anyOf": [{"type": "null"}, _HEX64]}
_DIGEST_OR_NULL = {"type": ["string", "null"], "pattern": "^sha256:[0-9a-f]{64}$"}


def _object(props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }


_FINDING = _object(
    {
        "code": {"enum": sorted(FINDINGS)},
        "severity": {"enum": ["error", "warning"]},
        "gun": _STR_OR_NULL,
        "role": _STR_OR_NULL,
        "key": _STR_OR_NULL,
        "tag": _STR_OR_NULL,
        "date": _TIME_OR_NULL,
        "error_code": _STR_OR_NULL,
        "locations": _STR_LIST,
        "message": _STR,
    }
)
_ROLE = _object(
    {
        "name": _STR,
        "status": {"enum": ["verified", "skipped", "not-in-snapshot", "not-loaded", "unverified"]},
        "parent": _STR_OR_NULL,
        "version": _INT_OR_NULL,
        "expires": _TIME_OR_NULL,
        "threshold": _INT_OR_NULL,
        "keyids": _STR_LIST,
        "signed_by": _STR_LIST,
        "paths": {"type": ["array", "null"], "items": {"type": "string"}},
        "tags": _INT_OR_NULL,
        "reason": _STR_OR_NULL,
    }
)
_KEY = _object(
    {
        "role": _STR,
        "key_type": _STR,
        "algorithm": _STR,
        "bits": _INT_OR_NULL,
        "curve": _STR_OR_NULL,
        "key_id": _HEX64_OR_NULL,
        "canonical_key_id": _HEX64_OR_NULL,
        "cert_sha256": _HEX64_OR_NULL,
        "spki_sha256": _HEX64_OR_NULL,
        "subject_cn": _STR_OR_NULL,
        "issuer": _STR_OR_NULL,
        "not_before": _TIME_OR_NULL,
        "not_after": _TIME_OR_NULL,
        "signature_algorithm": _STR_OR_NULL,
    }
)
_TAGREF = _object({"tag": _STR, "digest": _DIGEST_OR_NULL})
_SIGNER = _object(
    {"role": _STR, "name": _STR, "keys": _STR_LIST, "tags": {"type": "array", "items": _TAGREF}}
)
_RELEASED = _object(
    {
        "tag": _STR,
        "digest": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
        "length": {"type": "integer"},
        "role": {"enum": ["targets/releases", "targets"]},
        "signers": _STR_LIST,
    }
)
_UNRELEASED = _object(
    {"tag": _STR, "digest": _DIGEST_OR_NULL, "length": {"type": "integer"}, "role": _STR}
)
_ERROR = _object({"code": _STR, "message": _STR, "role": _STR_OR_NULL})
_COLLECTION = _object(
    {
        "gun": _STR,
        "status": {"enum": ["verified", "unverifiable"]},
        "error": {"anyOf": [{"type": "null"}, _ERROR]},
        "trust_basis": _STR_OR_NULL,
        "pinned": {"type": "boolean"},
        "fetched": {"type": "boolean"},
        "warnings": _STR_LIST,
        "roles": {"type": "array", "items": _ROLE},
        "keys": {"type": "array", "items": _KEY},
        "signers": {"type": "array", "items": _SIGNER},
        "released_tags": {"type": "array", "items": _RELEASED},
        "unreleased_tags": {"type": "array", "items": _UNRELEASED},
        "findings": {"type": "array", "items": _FINDING},
    }
)
_USE = _object(
    {
        "gun": _STR,
        "role": _STR,
        "key_id": _STR_OR_NULL,
        "threshold": _INT_OR_NULL,
        "role_keys": {"type": "integer"},
        "paths": {"type": ["array", "null"], "items": {"type": "string"}},
        "can_sign": _STR,
        "tags": _INT_OR_NULL,
    }
)
_INDEX = _object(
    {
        "canonical_key_id": _STR,
        "algorithm": _STR,
        "key_types": _STR_LIST,
        "key_ids": _STR_LIST,
        "cert_sha256": _STR_LIST,
        "spki_sha256": _HEX64_OR_NULL,
        "collections": {"type": "integer"},
        "uses": {"type": "array", "items": _USE},
    }
)
_SIGNED_TAG = _object(
    {
        "gun": _STR,
        "tag": _STR,
        "digest": _DIGEST_OR_NULL,
        "length": {"type": "integer"},
        "role": _STR,
        "released": {"type": "boolean"},
        "signers": _STR_LIST,
    }
)
_TIMELINE = _object(
    {
        "gun": _STR,
        "kind": {"enum": ["certificate", "metadata"]},
        "label": _STR,
        "roles": _STR_LIST,
        "expires": _TIME,
        "status": {"enum": ["expired", "expiring", "ok"]},
        "cert_sha256": _HEX64_OR_NULL,
    }
)

_SIGNATURES = _object(
    {
        "sources": _STR_LIST,
        "notation_policies": {
            "type": "array",
            "items": _object(
                {
                    "name": _STR,
                    "level": {"enum": ["strict", "permissive", "audit", "skip"]},
                    "registry_scopes": _STR_LIST,
                    "trust_stores": _STR_LIST,
                    "trusted_identities": _STR_LIST,
                    "missing_stores": _STR_LIST,
                    "rules": _STR_LIST,
                }
            ),
        },
        "notation_certificates": {
            "type": "array",
            "items": _object(
                {
                    "store": _STR,
                    "subject": _STR,
                    "issuer": _STR,
                    "sha256": _HEX64,
                    "key": _STR,
                    "signature_algorithm": _STR,
                    "not_before": _TIME,
                    "not_after": _TIME,
                    "days_left": {"type": "integer"},
                    "status": {"enum": ["expired", "expiring", "not-yet-valid", "ok"]},
                    "trust_policies": _STR_LIST,
                    "registry_scopes": _STR_LIST,
                    "trusted_identities": _STR_LIST,
                }
            ),
        },
        "cosign_keys": {
            "type": "array",
            "items": _object(
                {
                    "fingerprint": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
                    "key": _STR,
                    "source": _STR,
                    "rules": _STR_LIST,
                }
            ),
        },
        "cosign_identities": {
            "type": "array",
            "items": _object(
                {
                    "issuer": _STR,
                    "san": _STR_OR_NULL,
                    "san_regex": _STR_OR_NULL,
                    "broad": {"type": "boolean"},
                    "rules": _STR_LIST,
                }
            ),
        },
        "sigstore_authorities": {
            "type": "array",
            "items": _object(
                {
                    "kind": {"enum": ["fulcio", "rekor", "ctlog", "tsa"]},
                    "name": _STR,
                    "key": _STR,
                    "valid_from": _TIME_OR_NULL,
                    "valid_until": _TIME_OR_NULL,
                    "status": {"enum": ["active", "retired", "future"]},
                    "subject": _STR_OR_NULL,
                    "sha256": _HEX64_OR_NULL,
                    "not_after": _TIME_OR_NULL,
                }
            ),
        },
    }
)

#: JSON Schema (draft 2020-12) of ``--format json``; printed in docs/audit.md.
JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "trustcheck audit report",
    **_object(
        {
            "schema": {"const": "trustcheck-audit/1"},
            "trustcheck_version": {"type": "string"},
            "at": _TIME,
            "horizon_days": {"type": "integer", "minimum": 0},
            "key_filter": _STR_OR_NULL,
            "summary": _object(
                {
                    "collections": {"type": "integer"},
                    "verified": {"type": "integer"},
                    "unverifiable": {"type": "integer"},
                    "keys": {"type": "integer"},
                    "signed_tags": {"type": "integer"},
                    "released_tags": {"type": "integer"},
                    "findings": _object(
                        {"error": {"type": "integer"}, "warning": {"type": "integer"}}
                    ),
                }
            ),
            "findings": {"type": "array", "items": _FINDING},
            "collections": {"type": "array", "items": _COLLECTION},
            "keys": {"type": "array", "items": _INDEX},
            "signed_tags": {"type": "array", "items": _SIGNED_TAG},
            "timeline": {"type": "array", "items": _TIMELINE},
            "signatures": _SIGNATURES,
        }
    ),
}
# "signatures" is there only with --policy, --notation-* or --trusted-root
JSON_SCHEMA["required"].remove("signatures")
