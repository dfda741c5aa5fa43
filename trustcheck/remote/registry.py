"""Docker Registry HTTP API V2 calls (over :mod:`trustcheck.remote.http`, the one
HTTP stack): the digest a registry serves for a tag, for ``verify
--check-registry`` and :func:`trustcheck.api.verify_images` (docs/remote.md)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote

from trustcheck.errors import ErrorCode, NotTrusted, UsageError
from trustcheck.remote.auth import credentials_key
from trustcheck.remote.config import RemoteConfig
from trustcheck.remote.http import (
    Deadline,
    HttpSession,
    RemoteError,
    error_detail,
    registry_base_url,
)

if TYPE_CHECKING:
    from trustcheck.core.reference import ImageRef

__all__ = ["MANIFEST_MEDIA_TYPES", "MAX_MANIFEST_SIZE", "check_registry", "registry_digest"]

#: What ``registry_digest`` accepts, in the order Docker sends them.
MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
#: A manifest larger than this is refused when its digest must be computed.
MAX_MANIFEST_SIZE = 4 << 20


def _is_digest(value: str) -> bool:
    algo, sep, hex_part = value.partition(":")
    return (
        sep == ":"
        and algo in ("sha256", "sha384", "sha512")
        and len(hex_part) in (64, 96, 128)
        and all(c in "0123456789abcdef" for c in hex_part)
    )


def registry_digest(
    ref: ImageRef,
    remote: RemoteConfig | None = None,
    env: Mapping[str, str] | None = None,
    *,
    session: HttpSession | None = None,
) -> str:
    """The digest the registry serves for ``ref``'s tag (``sha256:<hex>``).

    ``HEAD /v2/<path>/manifests/<tag>`` (Docker Registry HTTP API V2) with the
    OCI and Docker manifest and index media types, the same auth flow as the
    Notary server with scope ``repository:<path>:pull`` (the path without the
    registry host).  ``Docker-Content-Digest`` is the answer; a registry that
    omits it on HEAD gets a GET and the digest of the body.
    """
    cfg = remote if remote is not None else RemoteConfig()
    own = session is None
    sess = session if session is not None else HttpSession(cfg, env)
    try:
        base = registry_base_url(ref.domain, sess.remote)
        endpoint = sess.endpoint(base, credentials_key(ref.domain), "registry")
        deadline = Deadline(sess.remote.total_timeout)
        reference = ref.tag if ref.tag is not None else ref.digest
        if reference is None:
            raise UsageError(ErrorCode.INVALID_REFERENCE, f"{ref} has neither a tag nor a digest")
        path = f"/v2/{quote(ref.path, safe='/')}/manifests/{quote(reference, safe=':')}"
        what = f"the manifest of {ref.name}:{reference} from {base}"
        headers = {"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}
        scope = f"repository:{ref.path}:pull"
        ping = endpoint.ping(deadline)
        if ping.offline is not None:
            raise ping.offline.copy(
                f"the registry {base} cannot be reached: {ping.offline.message}"
            )
        for method in ("HEAD", "GET"):
            ans = endpoint.request(
                method,
                path,
                scope=scope,
                cap=MAX_MANIFEST_SIZE,
                deadline=deadline,
                what=what,
                headers=headers,
            )
            if ans.status == 404:
                raise NotTrusted(
                    ErrorCode.REGISTRY_TAG_MISSING,
                    f"the registry {base} has no manifest for {ref.name}:{reference} (HTTP 404)",
                )
            if ans.status != 200:
                raise RemoteError(
                    ErrorCode.SERVER_ERROR,
                    f"the registry {base} answered HTTP {ans.status} for {ref.name}:{reference}"
                    + error_detail(ans.body),
                    status=ans.status,
                )
            digest = str(ans.headers.get("docker-content-digest", "")).strip()
            if digest:
                if not _is_digest(digest):
                    raise RemoteError(
                        ErrorCode.SERVER_ERROR,
                        f"the registry {base} answered an invalid Docker-Content-Digest "
                        f"{digest[:80]!r} for {ref.name}:{reference}",
                    )
                return digest
            if method == "GET":
                return "sha256:" + hashlib.sha256(ans.body).hexdigest()
        raise AssertionError("unreachable")  # pragma: no cover
    finally:
        if own:
            sess.close()


def check_registry(
    ref: ImageRef,
    signed_digest: str,
    remote: RemoteConfig | None = None,
    env: Mapping[str, str] | None = None,
    *,
    session: HttpSession | None = None,
) -> str:
    """``--check-registry``: the registry's digest for ``ref``, which must be
    ``signed_digest``; else ``registry-digest-mismatch`` (the tag was moved or
    pushed unsigned)."""
    served = registry_digest(ref, remote, env, session=session)
    if served != signed_digest:
        raise NotTrusted(
            ErrorCode.REGISTRY_DIGEST_MISMATCH,
            f"the registry serves {served} for {ref.name}:{ref.tag}, but the signed digest is "
            f"{signed_digest}: the tag was moved or pushed without signing",
        )
    return served
