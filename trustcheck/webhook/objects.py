"""The objects of an AdmissionReview: parsing the request and finding every image
of the object it carries (pure; :mod:`trustcheck.webhook.review` decides them).

:func:`parse_review` reads an ``admission.k8s.io/v1`` or ``v1beta1`` AdmissionReview
(a dict decoded from JSON); a document that is not one, or has no ``request.uid`` to
answer to, raises :class:`ReviewError` (HTTP 400). :func:`image_sites` lists every
image of a pod spec: ``containers``, ``initContainers``, ``ephemeralContainers`` and
image volumes (``volumes[].image.reference``); a wrongly typed field raises
:class:`Invalid` (a deny, not a 400).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trustcheck.core.reference import ImageRef
from trustcheck.errors import TrustcheckError

if TYPE_CHECKING:
    from trustcheck.policy.model import Rule

__all__ = [
    "API_VERSIONS",
    "CHECKED_SUBRESOURCES",
    "CONTAINER_FIELDS",
    "MAX_SHOWN",
    "POD_SPEC_PATHS",
    "ImageSite",
    "Invalid",
    "Review",
    "ReviewError",
    "all_images",
    "cut",
    "deleting",
    "escape_token",
    "image_fields",
    "image_sites",
    "metadata",
    "object_name",
    "parse_review",
]

API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")

#: the container lists of a pod spec, in the order images are reported (image
#: volumes, ``volumes[].image.reference``, come after them)
CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")
#: (API group, kind) -> the path of the pod spec inside the object
POD_SPEC_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "Pod"): ("spec",),
    ("", "PodTemplate"): ("template", "spec"),
    ("", "ReplicationController"): ("spec", "template", "spec"),
    ("apps", "Deployment"): ("spec", "template", "spec"),
    ("apps", "ReplicaSet"): ("spec", "template", "spec"),
    ("apps", "StatefulSet"): ("spec", "template", "spec"),
    ("apps", "DaemonSet"): ("spec", "template", "spec"),
    ("extensions", "Deployment"): ("spec", "template", "spec"),
    ("extensions", "ReplicaSet"): ("spec", "template", "spec"),
    ("extensions", "DaemonSet"): ("spec", "template", "spec"),
    ("batch", "Job"): ("spec", "template", "spec"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
}
#: subresources whose object is the whole Pod with (new) containers
CHECKED_SUBRESOURCES = frozenset({"", "ephemeralcontainers"})

#: an image, a container label, a rule name or the object's name is shown at most
#: this long in a deny message (the reason codes come before any of them)
MAX_SHOWN = 200


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ReviewError(Exception):
    """The body is not an AdmissionReview this webhook can answer (HTTP 400)."""


@dataclass(slots=True)
class Review:
    """The parts of an AdmissionReview request the webhook uses."""

    api_version: str
    uid: str
    operation: str
    group: str
    kind: str
    sub_resource: str
    namespace: str
    name: str
    dry_run: bool
    object: Any
    old_object: Any
    user: str
    #: the object's name for messages and logs: ``request.name``, else
    #: ``metadata.name``, else ``metadata.generateName`` + ``*``, else ""
    display_name: str = ""

    @property
    def what(self) -> str:
        where = f"{cut(self.namespace, MAX_SHOWN)}/" if self.namespace else ""
        name = cut(self.display_name, MAX_SHOWN) or "(unnamed)"
        return f"{cut(self.kind, MAX_SHOWN)} {where}{name}"


@dataclass(slots=True)
class ImageSite:
    """One container image of the object."""

    #: RFC 6901 pointer to the image string (``/spec/containers/0/image``)
    pointer: str
    #: ``containers/app`` (for messages and the annotation)
    label: str
    image: str
    ref: ImageRef | None = None
    #: why the image cannot be decided (``invalid-reference``), if so
    error: TrustcheckError | None = None
    #: the rule deciding ``ref`` in the review's namespace (set with ``ref`` by
    #: ``plan_review``; None: no rule matches)
    rule: Rule | None = None


# ----------------------------------------------------------------------------- parsing


def _str(value: object, what: str, *, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ReviewError(f"{what} must be a string")
    return value


def parse_review(doc: object) -> Review:
    """The request of an AdmissionReview; :class:`ReviewError` if it is not one."""
    if not isinstance(doc, dict):
        raise ReviewError("the body is not a JSON object")
    api_version = doc.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise ReviewError(
            f"apiVersion must be one of {', '.join(API_VERSIONS)}, got {str(api_version)[:60]!r}"
        )
    if doc.get("kind") != "AdmissionReview":
        raise ReviewError(f"kind must be AdmissionReview, got {str(doc.get('kind'))[:60]!r}")
    req = doc.get("request")
    if not isinstance(req, dict):
        raise ReviewError("request is missing or not an object")
    uid = _str(req.get("uid"), "request.uid", required=True)
    if not uid:
        raise ReviewError("request.uid is empty")
    kind = req.get("kind")
    if not isinstance(kind, dict):
        raise ReviewError("request.kind is missing or not an object")
    operation = _str(req.get("operation"), "request.operation", required=True)
    user = req.get("userInfo")
    dry_run = req.get("dryRun", False)
    if dry_run is not None and not isinstance(dry_run, bool):
        raise ReviewError("request.dryRun must be true or false")
    obj, old = req.get("object"), req.get("oldObject")
    name = _str(req.get("name"), "request.name")
    return Review(
        api_version=str(api_version),
        uid=uid,
        operation=operation,
        group=_str(kind.get("group"), "request.kind.group"),
        kind=_str(kind.get("kind"), "request.kind.kind", required=True),
        sub_resource=_str(req.get("subResource"), "request.subResource"),
        namespace=_str(req.get("namespace"), "request.namespace"),
        name=name,
        dry_run=bool(dry_run),
        object=obj,
        old_object=old,
        user=str(user.get("username", "")) if isinstance(user, dict) else "",
        display_name=name or object_name(obj) or object_name(old),
    )


def object_name(obj: object) -> str:
    """``metadata.name``, else ``metadata.generateName`` + ``*`` (the API server has
    not picked the suffix yet), else ""."""
    meta = metadata(obj)
    name, generate = meta.get("name"), meta.get("generateName")
    if isinstance(name, str) and name:
        return name
    if isinstance(generate, str) and generate:
        return generate + "*"
    return ""


class Invalid(Exception):
    """The object is malformed where the webhook looks (deny, not 400)."""


def escape_token(token: str) -> str:
    """An RFC 6901 reference token."""
    return token.replace("~", "~0").replace("/", "~1")


def image_sites(obj: object, spec_path: Sequence[str]) -> list[ImageSite]:
    """Every container image of ``obj`` whose pod spec is at ``spec_path``.

    A missing or null pod spec (a ReplicationController without a template) has
    no images; a container without an image is skipped (the API server refuses
    such a Pod; a workload template may leave it to a later mutation). Wrong
    types raise :class:`Invalid`.
    """
    node: object = obj
    walked: list[str] = []
    for key in spec_path:
        if node is None:
            return []
        if not isinstance(node, dict):
            raise Invalid(f"{'.'.join(walked) or 'the object'} is not an object")
        node = node.get(key)
        walked.append(key)
    if node is None:
        return []
    if not isinstance(node, dict):
        raise Invalid(f"{'.'.join(spec_path)} is not an object")
    base = "".join(f"/{escape_token(k)}" for k in spec_path)
    sites: list[ImageSite] = []
    for list_name in CONTAINER_FIELDS:
        containers = node.get(list_name)
        if containers is None:
            continue
        if not isinstance(containers, list):
            raise Invalid(f"{'.'.join(spec_path)}.{list_name} is not a list")
        for i, c in enumerate(containers):
            if not isinstance(c, dict):
                raise Invalid(f"{'.'.join(spec_path)}.{list_name}[{i}] is not an object")
            image = c.get("image")
            cname = c.get("name")
            label = f"{list_name}/{cname if isinstance(cname, str) and cname else i}"
            if image is None or image == "":
                continue
            if not isinstance(image, str):
                raise Invalid(f"the image of {label} is not a string")
            sites.append(ImageSite(f"{base}/{list_name}/{i}/image", label, image))
    volumes = node.get("volumes")
    if volumes is None:
        return sites
    if not isinstance(volumes, list):
        raise Invalid(f"{'.'.join(spec_path)}.volumes is not a list")
    for i, v in enumerate(volumes):
        if not isinstance(v, dict):
            raise Invalid(f"{'.'.join(spec_path)}.volumes[{i}] is not an object")
        source = v.get("image")
        if source is None:
            continue
        vname = v.get("name")
        label = f"volumes/{vname if isinstance(vname, str) and vname else i}"
        if not isinstance(source, dict):
            raise Invalid(f"the image source of {label} is not an object")
        image = source.get("reference")
        if image is None or image == "":
            continue  # like a container without an image: left to a later mutation
        if not isinstance(image, str):
            raise Invalid(f"the image reference of {label} is not a string")
        sites.append(ImageSite(f"{base}/volumes/{i}/image/reference", label, image))
    return sites


def all_images(obj: object, spec_path: Sequence[str]) -> set[str]:
    try:
        return {s.image for s in image_sites(obj, spec_path)}
    except Invalid:
        return set()


def image_fields(obj: object, spec_path: Sequence[str]) -> list[tuple[str, str]] | None:
    """Every image field of ``obj`` as (pointer, image); None when unreadable."""
    try:
        return sorted((s.pointer, s.image) for s in image_sites(obj, spec_path))
    except Invalid:
        return None


def deleting(obj: object) -> bool:
    return bool(metadata(obj).get("deletionTimestamp"))


def metadata(obj: object) -> dict[str, Any]:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    return meta if isinstance(meta, dict) else {}
