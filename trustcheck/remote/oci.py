"""OCI signature discovery over the one HTTP stack (:mod:`trustcheck.remote.http`).

What Notation and cosign verifiers need from a registry, with the same server
selection, TLS, auth/token flow, caps, retries and deadlines as
:func:`trustcheck.remote.registry.registry_digest`:

* :meth:`OciRegistry.resolve` -- the manifest digest of a tag;
* :meth:`OciRegistry.referrers` -- the artifacts whose ``subject`` is a digest:
  the OCI Referrers API (``GET /v2/<name>/referrers/<digest>``, ``Link``
  pagination), else (HTTP 404/405: distribution 2.8 has no such API) the
  referrers tag schema, the image index tagged ``sha256-<hex>`` that ORAS and
  Notation maintain on such registries; filtered by ``artifactType`` on the
  client too, and capped (:data:`MAX_REFERRERS`, :data:`MAX_INDEX_BYTES`,
  :data:`MAX_PAGES`);
* :meth:`OciRegistry.manifest`, :meth:`OciRegistry.blob` -- content by digest,
  capped and checked against the digest;
* :meth:`OciRegistry.tag_manifest` -- a manifest by tag (cosign's
  ``sha256-<hex>.sig``), ``None`` when the registry has none.

Digest-addressed answers are immutable: a per-process cache keeps them
(:data:`CACHE_BYTES` in all, per registry and repository).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote, urlencode, urlsplit

from trustcheck.errors import ErrorCode, NotTrusted
from trustcheck.remote.auth import credentials_key
from trustcheck.remote.config import RemoteConfig
from trustcheck.remote.http import (
    Deadline,
    Endpoint,
    HttpSession,
    RemoteError,
    error_detail,
    registry_base_url,
)
from trustcheck.remote.registry import MANIFEST_MEDIA_TYPES, registry_digest

if TYPE_CHECKING:
    from trustcheck.core.reference import ImageRef

__all__ = [
    "CACHE_BYTES",
    "INDEX_MEDIA_TYPE",
    "MAX_INDEX_BYTES",
    "MAX_MANIFEST_BYTES",
    "MAX_PAGES",
    "MAX_REFERRERS",
    "Descriptor",
    "OciRegistry",
    "is_digest",
    "parse_descriptor",
    "referrers_tag",
]

INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
#: referrers examined per subject; more is ``referrers-limit-exceeded``
MAX_REFERRERS = 1000
#: bytes of one referrers index (an API page or the ``sha256-<hex>`` tag)
MAX_INDEX_BYTES = 4 << 20
#: Referrers API pages followed through ``Link``
MAX_PAGES = 100
#: a manifest (image, artifact, signature) by digest or tag
MAX_MANIFEST_BYTES = 4 << 20
#: the per-process cache of digest-addressed answers
CACHE_BYTES = 32 << 20

_HASHES = {
    "sha256": (hashlib.sha256, 64),
    "sha384": (hashlib.sha384, 96),
    "sha512": (hashlib.sha512, 128),
}
_MAX_FIELD = 1024
_MAX_ANNOTATIONS = 64


def is_digest(value: object) -> bool:
    """``value`` is ``sha256:<64 hex>`` (or sha384/sha512), lower-case as OCI writes it."""
    if not isinstance(value, str):
        return False
    algo, sep, hex_part = value.partition(":")
    spec = _HASHES.get(algo)
    return (
        sep == ":"
        and spec is not None
        and len(hex_part) == spec[1]
        and all(c in "0123456789abcdef" for c in hex_part)
    )


def _digest_of(data: bytes, algo: str) -> str:
    return f"{algo}:{_HASHES[algo][0](data).hexdigest()}"


def referrers_tag(digest: str) -> str:
    """The referrers tag schema's tag for ``digest``: ``sha256-<hex>``."""
    algo, _, hex_part = digest.partition(":")
    return f"{algo}-{hex_part}"


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor as a referrers index lists it."""

    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type is not None:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_descriptor(raw: object, where: str) -> Descriptor:
    """A descriptor from JSON, checked (``oci-invalid`` naming ``where`` otherwise)."""

    def bad(why: str) -> NotTrusted:
        return NotTrusted(ErrorCode.OCI_INVALID, f"{where}: {why}")

    if not isinstance(raw, dict):
        raise bad(f"a descriptor must be a JSON object, got {type(raw).__name__}")
    media_type = raw.get("mediaType")
    digest = raw.get("digest")
    size = raw.get("size")
    artifact_type = raw.get("artifactType")
    annotations = raw.get("annotations", {})
    if not isinstance(media_type, str) or not media_type or len(media_type) > _MAX_FIELD:
        raise bad(f"descriptor mediaType {_short(media_type)} is not a media type")
    if not is_digest(digest):
        raise bad(f"descriptor digest {_short(digest)} is not a sha256/sha384/sha512 digest")
    assert isinstance(digest, str)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0 or size > 1 << 53:
        raise bad(f"descriptor {digest} has an invalid size {_short(size)}")
    if artifact_type is not None and (
        not isinstance(artifact_type, str) or len(artifact_type) > _MAX_FIELD
    ):
        raise bad(f"descriptor {digest} has an invalid artifactType {_short(artifact_type)}")
    if annotations is None:
        annotations = {}
    if (
        not isinstance(annotations, dict)
        or len(annotations) > _MAX_ANNOTATIONS
        or not all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= _MAX_FIELD and len(v) <= 4096
            for k, v in annotations.items()
        )
    ):
        raise bad(f"descriptor {digest} has invalid annotations (string to string, at most 64)")
    return Descriptor(media_type, digest, size, artifact_type, dict(annotations))


def _parse_json_object(body: bytes, where: str) -> dict[str, object]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise NotTrusted(ErrorCode.OCI_INVALID, f"{where} is not valid JSON ({e})") from e
    if not isinstance(doc, dict):
        raise NotTrusted(ErrorCode.OCI_INVALID, f"{where} is not a JSON object")
    return doc


class _Cache:
    """Immutable (digest-addressed) answers, least recently used out first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, ...], bytes] = OrderedDict()
        self._size = 0

    def get(self, key: tuple[str, ...]) -> bytes | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[str, ...], value: bytes) -> None:
        if len(value) > self.limit // 8:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._size += len(value)
            while self._size > self.limit and self._items:
                _, old = self._items.popitem(last=False)
                self._size -= len(old)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


#: shared by every :class:`OciRegistry` of the process
_CACHE = _Cache(CACHE_BYTES)


def clear_cache() -> None:
    """Forget every cached answer (tests)."""
    _CACHE.clear()


class OciRegistry:
    """A registry's OCI content API for signature discovery, per image domain.

    One :class:`~trustcheck.remote.http.HttpSession` (given, or owned and closed by
    :meth:`close`); one :class:`~trustcheck.remote.http.Endpoint` per registry;
    each public call runs within one deadline of ``remote.total_timeout``.
    """

    def __init__(
        self,
        remote: RemoteConfig | None = None,
        env: Mapping[str, str] | None = None,
        *,
        session: HttpSession | None = None,
        max_referrers: int = MAX_REFERRERS,
        max_index_bytes: int = MAX_INDEX_BYTES,
    ) -> None:
        if session is None:
            self._own = True
            self.session = HttpSession(remote if remote is not None else RemoteConfig(), env)
        else:
            self._own = False
            self.session = session
        self.max_referrers = max_referrers
        self.max_index_bytes = max_index_bytes
        #: what the last referrers() call used: "api" or "tag-schema"
        self.last_discovery: str = ""

    def close(self) -> None:
        if self._own:
            self.session.close()

    def __enter__(self) -> OciRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ---------------------------------------------------------------------

    def _endpoint(self, ref: ImageRef) -> Endpoint:
        base = registry_base_url(ref.domain, self.session.remote)
        endpoint = self.session.endpoint(base, credentials_key(ref.domain), "registry")
        return endpoint

    def _deadline(self, given: Deadline | None = None) -> Deadline:
        """``given`` (one deadline across several calls, e.g. every request about one
        image), else a fresh one of ``remote.total_timeout`` for this call."""
        return given if given is not None else Deadline(self.session.remote.total_timeout)

    def deadline(self) -> Deadline:
        """A deadline of ``remote.total_timeout`` to share across calls (``deadline=``)."""
        return Deadline(self.session.remote.total_timeout)

    def _get(
        self,
        ref: ImageRef,
        path: str,
        *,
        accept: str | None,
        cap: int,
        deadline: Deadline,
        what: str,
    ) -> tuple[Endpoint, int, bytes, Mapping[str, str]]:
        endpoint = self._endpoint(ref)
        ping = endpoint.ping(deadline)
        if ping.offline is not None:
            raise ping.offline.copy(
                f"the registry {endpoint.base} cannot be reached: {ping.offline.message}"
            )
        headers = {"Accept": accept} if accept else None
        ans = endpoint.request(
            "GET",
            path,
            scope=f"repository:{ref.path}:pull",
            cap=cap,
            deadline=deadline,
            what=what,
            headers=headers,
        )
        return endpoint, ans.status, ans.body, ans.headers

    def _repo(self, ref: ImageRef) -> str:
        return f"/v2/{quote(ref.path, safe='/')}"

    def _unexpected(self, endpoint: Endpoint, status: int, body: bytes, what: str) -> RemoteError:
        return RemoteError(
            ErrorCode.SERVER_ERROR,
            f"the registry {endpoint.base} answered HTTP {status} for {what}" + error_detail(body),
            status=status,
        )

    @staticmethod
    def _check_digest(digest: str, where: str) -> str:
        if not is_digest(digest):
            raise NotTrusted(
                ErrorCode.OCI_INVALID,
                f"{where}: {_short(digest)} is not a sha256/sha384/sha512 digest",
            )
        return digest.partition(":")[0]

    def _verified(self, data: bytes, digest: str, algo: str, what: str) -> bytes:
        got = _digest_of(data, algo)
        if got != digest:
            raise NotTrusted(
                ErrorCode.CONTENT_DIGEST_MISMATCH,
                f"{what}: the registry served content with digest {got}, not {digest}; "
                "the registry or a proxy altered it",
            )
        return data

    # --- public API ---------------------------------------------------------------------

    def resolve(self, ref: ImageRef) -> str:
        """The manifest digest ``ref`` names: its digest, else the registry's for its tag."""
        if ref.digest is not None:
            return ref.digest
        return registry_digest(ref, session=self.session)

    def manifest(
        self,
        ref: ImageRef,
        digest: str,
        *,
        max_bytes: int = MAX_MANIFEST_BYTES,
        deadline: Deadline | None = None,
    ) -> bytes:
        """The manifest ``digest`` in ``ref``'s repository, checked against the digest."""
        accept = ", ".join((MANIFEST_MEDIA_TYPE, INDEX_MEDIA_TYPE, *MANIFEST_MEDIA_TYPES))
        return self._by_digest(
            "manifest", ref, digest, accept, ErrorCode.MANIFEST_NOT_FOUND, max_bytes, deadline
        )

    def blob(
        self, ref: ImageRef, digest: str, *, max_bytes: int, deadline: Deadline | None = None
    ) -> bytes:
        """The blob ``digest`` in ``ref``'s repository, capped and checked."""
        return self._by_digest(
            "blob", ref, digest, None, ErrorCode.BLOB_NOT_FOUND, max_bytes, deadline
        )

    def _by_digest(
        self,
        kind: Literal["manifest", "blob"],
        ref: ImageRef,
        digest: str,
        accept: str | None,
        missing: ErrorCode,
        max_bytes: int,
        deadline: Deadline | None,
    ) -> bytes:
        """``/v2/<path>/{manifests,blobs}/<digest>``: capped, checked against the digest,
        cached per process (the answer to a digest never changes)."""
        algo = self._check_digest(digest, f"a {kind} of {ref.name}")
        endpoint = self._endpoint(ref)
        key = (kind, endpoint.base, ref.path, digest)
        what = f"the {kind} {digest} of {ref.name}"
        cached = _CACHE.get(key)
        if cached is not None:
            if len(cached) > max_bytes:
                raise NotTrusted(
                    ErrorCode.FILE_TOO_LARGE,
                    f"{what} is {len(cached)} bytes, over the {max_bytes}-byte cap",
                )
            return cached
        endpoint, status, body, _ = self._get(
            ref,
            f"{self._repo(ref)}/{kind}s/{digest}",
            accept=accept,
            cap=max_bytes,
            deadline=self._deadline(deadline),
            what=what,
        )
        if status == 404:
            raise NotTrusted(
                missing,
                f"the registry {endpoint.base} has no {kind} {digest} in {ref.name} (HTTP 404)",
            )
        if status != 200:
            raise self._unexpected(endpoint, status, body, what)
        self._verified(body, digest, algo, what)
        _CACHE.put(key, body)
        return body

    def tag_manifest(
        self,
        ref: ImageRef,
        tag: str,
        *,
        max_bytes: int = MAX_MANIFEST_BYTES,
        deadline: Deadline | None = None,
    ) -> tuple[str, bytes] | None:
        """``(digest, manifest)`` tagged ``tag`` in ``ref``'s repository, or None (404).

        Tags move: never cached.  The digest is the sha256 of the bytes served; a
        ``Docker-Content-Digest`` that disagrees is ``content-digest-mismatch``.
        """
        what = f"the manifest tagged {tag} in {ref.name}"
        accept = ", ".join((MANIFEST_MEDIA_TYPE, INDEX_MEDIA_TYPE, *MANIFEST_MEDIA_TYPES))
        endpoint, status, body, headers = self._get(
            ref,
            f"{self._repo(ref)}/manifests/{quote(tag, safe='')}",
            accept=accept,
            cap=max_bytes,
            deadline=self._deadline(deadline),
            what=what,
        )
        if status == 404:
            return None
        if status != 200:
            raise self._unexpected(endpoint, status, body, what)
        digest = _digest_of(body, "sha256")
        served = str(headers.get("docker-content-digest", "")).strip()
        if served.startswith("sha256:") and served != digest:
            raise NotTrusted(
                ErrorCode.CONTENT_DIGEST_MISMATCH,
                f"{what}: Docker-Content-Digest says {served[:80]} but the bytes served "
                f"hash to {digest}",
            )
        return digest, body

    def tags(self, ref: ImageRef, *, limit: int = 10_000) -> tuple[list[str], bool]:
        """``(tags, truncated)`` of ``ref``'s repository: ``GET /v2/<name>/tags/list``
        with ``Link`` pagination (helper G, for the coverage report), at most ``limit``
        tags (``truncated`` then True); a repository the registry does not know has none.
        Tags move: never cached."""
        path = f"{self._repo(ref)}/tags/list?n=1000"
        deadline = self._deadline()
        out: list[str] = []
        seen_paths: set[str] = set()
        for _page in range(MAX_PAGES):
            what = f"the tags of {ref.name}"
            endpoint, status, body, headers = self._get(
                ref, path, accept="application/json", cap=self.max_index_bytes,
                deadline=deadline, what=what,
            )  # fmt: skip
            if status == 404:
                return out, False
            if status != 200:
                raise self._unexpected(endpoint, status, body, what)
            doc = _parse_json_object(body, f"{what} from {endpoint.base}")
            page = doc.get("tags") or []
            if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
                raise NotTrusted(
                    ErrorCode.OCI_INVALID, f"{what} from {endpoint.base}: tags is not a list"
                )
            for tag in page:
                if len(out) >= limit:
                    return out, True
                out.append(tag)
            seen_paths.add(path)
            nxt = _next_link(headers.get("link", ""), endpoint.base)
            if nxt is None or nxt in seen_paths:
                return out, False
            path = nxt
        return out, True

    def referrers(
        self,
        ref: ImageRef,
        digest: str,
        artifact_type: str | None = None,
        *,
        deadline: Deadline | None = None,
    ) -> list[Descriptor]:
        """The artifacts whose ``subject`` is ``digest`` (of type ``artifact_type`` if given).

        The Referrers API first; on HTTP 404 or 405 (no such API) the referrers tag
        schema.  More than ``max_referrers`` (before the type filter: a flood of
        other artifacts costs as much) is ``referrers-limit-exceeded``, failing
        closed.
        """
        self._check_digest(digest, f"the subject of a referrers query on {ref.name}")
        deadline = self._deadline(deadline)
        found = self._referrers_api(ref, digest, artifact_type, deadline)
        if found is None:
            self.last_discovery = "tag-schema"
            found = self._referrers_tag(ref, digest, deadline)
        else:
            self.last_discovery = "api"
        if artifact_type is not None:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

    def _too_many(self, ref: ImageRef, digest: str, seen: int) -> NotTrusted:
        return NotTrusted(
            ErrorCode.REFERRERS_LIMIT_EXCEEDED,
            f"{ref.name}@{digest} has more than {self.max_referrers} referrers ({seen} seen); "
            "refusing to examine them (a flood of artifacts). Remove stale artifacts from "
            "the registry, or raise the limit deliberately (--max-referrers)",
        )

    def _index_entries(self, body: bytes, where: str) -> list[object]:
        doc = _parse_json_object(body, where)
        manifests = doc.get("manifests", [])
        if manifests is None:
            manifests = []
        if not isinstance(manifests, list):
            raise NotTrusted(ErrorCode.OCI_INVALID, f"{where}: manifests is not a list")
        return manifests

    def _referrers_api(
        self, ref: ImageRef, digest: str, artifact_type: str | None, deadline: Deadline
    ) -> list[Descriptor] | None:
        path = f"{self._repo(ref)}/referrers/{digest}"
        if artifact_type is not None:
            path += "?" + urlencode({"artifactType": artifact_type})
        out: list[Descriptor] = []
        seen_paths: set[str] = set()
        for page in range(MAX_PAGES):
            what = f"the referrers of {ref.name}@{digest}"
            endpoint, status, body, headers = self._get(
                ref,
                path,
                accept=INDEX_MEDIA_TYPE,
                cap=self.max_index_bytes,
                deadline=deadline,
                what=what,
            )
            if page == 0 and status in (404, 405):
                return None
            if status != 200:
                raise self._unexpected(endpoint, status, body, what)
            where = f"the referrers index of {ref.name}@{digest} from {endpoint.base}"
            entries = self._index_entries(body, where)
            if len(out) + len(entries) > self.max_referrers:
                raise self._too_many(ref, digest, len(out) + len(entries))
            out.extend(parse_descriptor(e, where) for e in entries)
            seen_paths.add(path)
            nxt = _next_link(headers.get("link", ""), endpoint.base)
            if nxt is None:
                return out
            if nxt in seen_paths:
                raise NotTrusted(
                    ErrorCode.OCI_INVALID, f"{where}: the Link header loops back to {nxt[:100]}"
                )
            path = nxt
        raise NotTrusted(
            ErrorCode.REFERRERS_LIMIT_EXCEEDED,
            f"the referrers of {ref.name}@{digest} run over more than {MAX_PAGES} pages",
        )

    def _referrers_tag(self, ref: ImageRef, digest: str, deadline: Deadline) -> list[Descriptor]:
        tag = referrers_tag(digest)
        what = f"the referrers tag {tag} of {ref.name}"
        endpoint, status, body, _ = self._get(
            ref,
            f"{self._repo(ref)}/manifests/{tag}",
            accept=INDEX_MEDIA_TYPE,
            cap=self.max_index_bytes,
            deadline=deadline,
            what=what,
        )
        if status == 404:
            return []
        if status != 200:
            raise self._unexpected(endpoint, status, body, what)
        where = f"the referrers index {ref.name}:{tag} from {endpoint.base}"
        entries = self._index_entries(body, where)
        if len(entries) > self.max_referrers:
            raise self._too_many(ref, digest, len(entries))
        return [parse_descriptor(e, where) for e in entries]


def _next_link(value: str, base: str) -> str | None:
    """The path (and query) of a ``Link: <...>; rel="next"`` on ``base``'s origin."""
    for part in value.split(","):
        target, _, params = part.partition(";")
        target = target.strip()
        if not (target.startswith("<") and target.endswith(">")):
            continue
        rels = [p.strip().replace(" ", "") for p in params.split(";")]
        if 'rel="next"' not in rels and "rel=next" not in rels:
            continue
        url = target[1:-1]
        parts = urlsplit(url)
        if parts.scheme or parts.netloc:
            base_parts = urlsplit(base)
            if (parts.scheme, parts.netloc) != (base_parts.scheme, base_parts.netloc):
                raise NotTrusted(
                    ErrorCode.OCI_INVALID,
                    f"the registry {base} points the next referrers page at another origin "
                    f"{url[:100]!r}",
                )
        if not parts.path.startswith("/v2/"):
            raise NotTrusted(
                ErrorCode.OCI_INVALID,
                f"the registry {base} points the next referrers page outside /v2/: {url[:100]!r}",
            )
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return None
