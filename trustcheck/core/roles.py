"""Role names and size caps of Notary v1 trust data (pure; no I/O).

The limits are notary's (``const.go``); the name rules are notary's
``IsDelegation`` / ``ValidRole`` (notary-v1-spec.md §5.1).
"""

from __future__ import annotations

import posixpath

__all__ = [
    "BASE_ROLES",
    "MAX_DOWNLOAD_SIZE",
    "MAX_ROLE_NAME_LENGTH",
    "MAX_TIMESTAMP_SIZE",
    "is_versioned_root",
    "signer_name",
    "validate_role_name",
]

#: notary ``MaxTimestampSize`` (const.go): cap for timestamp.json.
MAX_TIMESTAMP_SIZE = 1 << 20
#: notary ``MaxDownloadSize`` (const.go, used for ``NoSizeLimit``): cap for
#: root.json and any role whose length is not known from a parent role.
MAX_DOWNLOAD_SIZE = 100 << 20

#: The four top-level TUF roles.
BASE_ROLES = frozenset({"root", "targets", "snapshot", "timestamp"})
#: Delegation names must be shorter than this many bytes (notary IsDelegation).
MAX_ROLE_NAME_LENGTH = 256

_DELEGATION_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_/")


def is_versioned_root(role: str) -> bool:
    """``<N>.root``: a previous root version kept for rotations (``N.root.json``)."""
    version, dot, rest = role.partition(".")
    return (
        dot == "."
        and rest == "root"
        and version.isascii()
        and version.isdigit()
        and not version.startswith("0")
        and len(version) <= 10
    )


def validate_role_name(role: str) -> bool:
    """True for a base role or a delegation name notary accepts (spec §5.1).

    A delegation name starts with ``targets/``, uses only ``[-a-z0-9_/]``, is
    shorter than 256 bytes and is already clean (``path.Clean(name) == name``:
    no trailing ``/``, no ``//``, no ``.`` or ``..`` components).
    """
    if role in BASE_ROLES:
        return True
    return (
        role.startswith("targets/")
        and len(role.encode("utf-8", "surrogatepass")) < MAX_ROLE_NAME_LENGTH
        and all(ch in _DELEGATION_CHARS for ch in role)
        and posixpath.normpath(role) == role
    )


def signer_name(role: str) -> str:
    """A role as a signer: ``targets/alice`` -> ``alice``; the base role is ``targets``."""
    return role[len("targets/") :] if role.startswith("targets/") else role
