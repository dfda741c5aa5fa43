"""The pure admission handler (trustcheck.webhook.review): AdmissionReview dict in, dict out.

Trust data: the committed fixtures written by the real notary client
(fixtures/generated), validated at their VALIDATION_TIME, with the policy of
the worked example in docs/policy.md plus an `allow` rule. Every workload kind
is reviewed as the API server sends it (v1 and v1beta1); the JSON Patch the
mutating answer carries is applied to the object and the result checked.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import K8S_KINDS, pod_spec, spec_of, workload
from conftest import admission_review as review

from fixtures.generate import FixtureSet
from trustcheck.api import load_collection
from trustcheck.core.reference import parse_reference
from trustcheck.core.verify import Collection
from trustcheck.errors import NotTrusted, TrustcheckError
from trustcheck.policy.load import parse_policy
from trustcheck.policy.model import Policy
from trustcheck.webhook.review import (
    Memo,
    ObjectExemption,
    ReviewError,
    WebhookConfig,
    deadline_error,
    deny_response,
    handle,
    parse_review,
    plan_review,
    respond,
    rewrite_image,
)

POLICY = """\
version: 1
rules:
  - name: two-maintainers
    pattern: localhost/signers
    signers: [alice, bob]
    threshold: 2
  - name: localhost-signed
    pattern: localhost/*
  - name: releases-rollout
    pattern: localhost/releases
    signers: [alice]
    mode: warn
  - name: no-docker-hub
    pattern: docker.io/**
    action: deny
    reason: pull Docker Hub images through mirror.example.com
  - name: mirror-unchecked
    pattern: mirror.example.com/**
    action: allow
"""

SIGNERS_V2 = "sha256:b2b3f0e6a3094f8f1d7f72bb5bb9f0ba7a6b49bbc3707dae5f57096a54d4b0e0"
BASIC_V1 = "sha256:0355336a97f27c45c2133eb71315a3f183d896025b2b0aaa84ac77c390685ebb"
BASIC_LATEST = "sha256:436c7148c286083b8ba740c50a9408a54fdb4002dbd5427ff0a27a6dc5679108"
OTHER = "sha256:" + "ab" * 32

Lookup = Callable[[int, str], Collection | TrustcheckError | None]


@pytest.fixture(scope="module")
def policy() -> Policy:
    return parse_policy(POLICY, "policy.yaml", Path("."))


class Fixtures:
    """Collections of the committed fixtures (verified once per module), counting lookups."""

    def __init__(self, fs: FixtureSet, memo: dict[str, Collection | TrustcheckError]) -> None:
        self.fs = fs
        self.at = datetime.fromisoformat(fs.validation_time)
        self.calls: list[tuple[int, str]] = []
        self._memo = memo

    def __call__(self, index: int, gun: str) -> Collection | TrustcheckError:
        self.calls.append((index, gun))
        if gun not in self._memo:
            try:
                self._memo[gun] = load_collection(self.fs.trust_dir, gun, self.at)
            except NotTrusted as e:
                self._memo[gun] = e
        return self._memo[gun]


@pytest.fixture(scope="module")
def _verified() -> dict[str, Collection | TrustcheckError]:
    return {}


@pytest.fixture
def lookup(
    committed_fixtures: FixtureSet, _verified: dict[str, Collection | TrustcheckError]
) -> Fixtures:
    return Fixtures(committed_fixtures, _verified)


def _no_lookup(index: int, gun: str) -> None:
    raise AssertionError(f"no trust data should be needed, asked for {gun}")


# --------------------------------------------------------------------------- building reviews

def apply_patch(obj: Any, response: dict[str, Any]) -> Any:
    """Apply the JSON Patch of an admission response (RFC 6902 add/replace, RFC 6901 paths)."""
    out = copy.deepcopy(obj)
    if "patch" not in response:
        return out
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    for op in ops:
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in op["path"].split("/")[1:]]
        parent = out
        for t in tokens[:-1]:
            parent = parent[int(t)] if isinstance(parent, list) else parent[t]
        last = tokens[-1]
        if op["op"] == "replace":
            if isinstance(parent, list):
                assert 0 <= int(last) < len(parent)
                parent[int(last)] = op["value"]
            else:
                assert last in parent, f"replace of a missing member {op['path']}"
                parent[last] = op["value"]
        elif op["op"] == "add":
            assert isinstance(parent, dict)
            parent[last] = op["value"]
        else:
            raise AssertionError(f"unexpected op {op}")
    return out


def originals(obj: Any) -> dict[str, str]:
    value = obj["metadata"]["annotations"]["trustcheck.io/original-images"]
    doc = json.loads(value)
    assert isinstance(doc, dict)
    return doc


# --------------------------------------------------------------------------- every workload kind


@pytest.mark.parametrize("api", ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"])
@pytest.mark.parametrize("kind", sorted(K8S_KINDS))
def test_every_kind_signed_images_are_allowed_and_pinned(
    kind: str, api: str, policy: Policy, lookup: Fixtures
) -> None:
    obj = workload(
        kind,
        pod_spec(["localhost/signers:v2", "localhost/basic:v1"], init=["localhost/basic"]),
    )
    doc = review(kind, obj, api=api)
    out = handle(doc, policy, WebhookConfig(), lookup, mutate=True)
    assert out["apiVersion"] == api and out["kind"] == "AdmissionReview"
    resp = out["response"]
    assert resp["uid"] == doc["request"]["uid"]
    assert resp["allowed"] is True and "status" not in resp
    patched = apply_patch(obj, resp)
    spec = spec_of(kind, patched)
    assert [c["image"] for c in spec["containers"]] == [
        f"localhost/signers:v2@{SIGNERS_V2}",
        f"localhost/basic:v1@{BASIC_V1}",
    ]
    assert spec["initContainers"][0]["image"] == f"localhost/basic:latest@{BASIC_LATEST}"
    assert originals(patched) == {
        "containers/c0": "localhost/signers:v2",
        "containers/c1": "localhost/basic:v1",
        "initContainers/init0": "localhost/basic",
    }
    # everything else is untouched
    assert patched["metadata"]["labels"] == obj["metadata"]["labels"]
    assert spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"


@pytest.mark.parametrize("kind", sorted(K8S_KINDS))
def test_every_kind_an_unsigned_init_container_denies_the_object(
    kind: str, policy: Policy, lookup: Fixtures
) -> None:
    obj = workload(kind, pod_spec(["localhost/signers:v2"], init=["localhost/basic:unsigned"]))
    out = handle(review(kind, obj), policy, WebhookConfig(), lookup, mutate=True)
    resp = out["response"]
    assert resp["allowed"] is False
    assert "patch" not in resp
    assert resp["status"]["code"] == 403
    msg = resp["status"]["message"]
    assert msg.startswith(f"trustcheck denied {kind} team/app: 1 of 2 image(s) not allowed")
    assert 'image "localhost/basic:unsigned" (initContainers/init0)' in msg
    assert 'rule "localhost-signed"' in msg and "[tag-not-signed]" in msg


def test_validate_endpoint_never_patches(policy: Policy, lookup: Fixtures) -> None:
    obj = workload("Deployment", pod_spec(["localhost/signers:v2"]))
    resp = handle(review("Deployment", obj), policy, WebhookConfig(), lookup)["response"]
    assert resp == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}


def test_ephemeral_containers_subresource_is_checked(policy: Policy, lookup: Fixtures) -> None:
    old = workload("Pod", pod_spec(["localhost/signers:v2"]))
    new = workload("Pod", pod_spec(["localhost/signers:v2"], ephemeral=["localhost/basic:nope"]))
    doc = review("Pod", new, operation="UPDATE", old=old, sub="ephemeralcontainers")
    resp = handle(doc, policy, WebhookConfig(), lookup, mutate=True)["response"]
    assert resp["allowed"] is False
    assert 'image "localhost/basic:nope" (ephemeralContainers/debug0)' in resp["status"]["message"]
    assert "[tag-not-signed]" in resp["status"]["message"]
    # signed: the ephemeral container is pinned too
    ok = workload("Pod", pod_spec(["localhost/signers:v2"], ephemeral=["localhost/basic:v1"]))
    doc = review("Pod", ok, operation="UPDATE", old=old, sub="ephemeralcontainers")
    resp = handle(doc, policy, WebhookConfig(), lookup, mutate=True)["response"]
    patched = apply_patch(ok, resp)
    assert patched["spec"]["ephemeralContainers"][0]["image"] == f"localhost/basic:v1@{BASIC_V1}"


# --------------------------------------------------------------------------- operations


@pytest.mark.parametrize("operation", ["DELETE", "CONNECT"])
def test_delete_and_connect_are_allowed_without_looking(operation: str, policy: Policy) -> None:
    obj = workload("Pod", pod_spec(["localhost/basic:unsigned"]))
    sub = "exec" if operation == "CONNECT" else None
    doc = review("Pod", obj, operation=operation, sub=sub, old=obj)
    out = handle(doc, policy, WebhookConfig(), _no_lookup, mutate=True)
    assert out["response"] == {"uid": doc["request"]["uid"], "allowed": True}


def test_an_unknown_operation_is_denied(policy: Policy) -> None:
    doc = review("Pod", workload("Pod", pod_spec(["localhost/basic:v1"])), operation="PATCH")
    resp = handle(doc, policy, WebhookConfig(), _no_lookup)["response"]
    assert resp["allowed"] is False
    assert "[admission-invalid] operation 'PATCH'" in resp["status"]["message"]


def test_other_subresources_carry_no_images(policy: Policy) -> None:
    obj = workload("Pod", pod_spec(["localhost/basic:unsigned"]))
    doc = review("Pod", obj, operation="UPDATE", sub="status", old=obj)
    assert handle(doc, policy, WebhookConfig(), _no_lookup)["response"]["allowed"] is True


def test_dry_run_is_answered_exactly_as_a_real_request(policy: Policy, lookup: Fixtures) -> None:
    obj = workload("Deployment", pod_spec(["localhost/signers:v2", "localhost/signers:v1"]))
    real = handle(review("Deployment", obj), policy, WebhookConfig(), lookup, mutate=True)
    dry_doc = review("Deployment", obj, dry_run=True)
    assert parse_review(dry_doc).dry_run is True
    dry = handle(dry_doc, policy, WebhookConfig(), lookup, mutate=True)
    assert dry == real
    assert real["response"]["allowed"] is False


def test_update_checks_every_image_unless_configured_otherwise(
    policy: Policy, lookup: Fixtures
) -> None:
    old = workload("Deployment", pod_spec(["localhost/basic:unsigned"]))
    new = workload("Deployment", pod_spec(["localhost/basic:unsigned", "localhost/basic:v1"]))
    doc = review("Deployment", new, operation="UPDATE", old=old)
    strict = handle(doc, policy, WebhookConfig(), lookup, mutate=True)["response"]
    assert strict["allowed"] is False and "[tag-not-signed]" in strict["status"]["message"]
    changed = WebhookConfig(updates="changed")
    resp = handle(doc, policy, changed, lookup, mutate=True)["response"]
    assert resp["allowed"] is True
    patched = apply_patch(new, resp)
    images = [c["image"] for c in patched["spec"]["template"]["spec"]["containers"]]
    assert images == ["localhost/basic:unsigned", f"localhost/basic:v1@{BASIC_V1}"]
    # a new unsigned image is still denied in "changed" mode
    worse = workload("Deployment", pod_spec(["localhost/basic:unsigned", "localhost/basic:x"]))
    doc = review("Deployment", worse, operation="UPDATE", old=old)
    resp = handle(doc, policy, changed, lookup)["response"]
    assert resp["allowed"] is False and "localhost/basic:x" in resp["status"]["message"]
    assert "localhost/basic:unsigned" not in resp["status"]["message"]


# --------------------------------------------------------------------------- decisions


def test_deny_messages_name_image_rule_and_code(policy: Policy, lookup: Fixtures) -> None:
    images = [
        "localhost/signers:v1",  # alice only: two-maintainers needs bob too
        "alpine:3.20",  # no-docker-hub
        "quay.io/team/app:1",  # no rule
        f"localhost/basic:v1@{OTHER}",  # the signed digest of v1 is another
        "localhost/nothing:v1",  # no trust data at all
        "Not A Reference",
    ]
    obj = workload("Pod", pod_spec(images))
    resp = handle(review("Pod", obj), policy, WebhookConfig(), lookup, mutate=True)["response"]
    assert resp["allowed"] is False
    msg = resp["status"]["message"]
    # the reason codes come first, before any string of the object (which may be long)
    assert msg.startswith(
        "trustcheck denied Pod team/app: 6 of 6 image(s) not allowed (signer-threshold-not-met, "
        "policy-denied, policy-no-match, digest-mismatch, no-trust-data, invalid-reference): "
    )
    parts = msg.split(": ", 1)[1].split('; image "')
    assert len(parts) == 6
    expected = [
        (
            'localhost/signers:v1" (containers/c0): rule "two-maintainers"',
            "signer-threshold-not-met",
        ),
        ('alpine:3.20" (containers/c1): rule "no-docker-hub"', "policy-denied"),
        ('quay.io/team/app:1" (containers/c2): no rule', "policy-no-match"),
        (
            f'localhost/basic:v1@{OTHER}" (containers/c3): rule "localhost-signed"',
            "digest-mismatch",
        ),
        ('localhost/nothing:v1" (containers/c4): rule "localhost-signed"', "no-trust-data"),
        ('Not A Reference" (containers/c5): no rule', "invalid-reference"),
    ]
    for part, (head, code) in zip(parts, expected, strict=True):
        assert head in part and f"[{code}]" in part, part
    assert "missing: bob" in parts[0]
    assert "mirror.example.com" in parts[1]


def test_warn_mode_admits_with_warnings(policy: Policy, lookup: Fixtures) -> None:
    obj = workload("Pod", pod_spec(["localhost/releases:v1", "localhost/signers:v2"]))
    resp = handle(review("Pod", obj), policy, WebhookConfig(), lookup, mutate=True)["response"]
    assert resp["allowed"] is True
    warn = [w for w in resp["warnings"] if "warn mode" in w]
    assert len(warn) == 1
    assert warn[0].startswith(
        'trustcheck (warn mode) image "localhost/releases:v1": rule "releases-rollout" would '
        "deny: [signer-unknown]"
    )
    assert all(len(w) <= 256 for w in resp["warnings"])
    patched = apply_patch(obj, resp)
    # the warn-mode image is admitted as it is; the verified one is pinned
    assert [c["image"] for c in patched["spec"]["containers"]] == [
        "localhost/releases:v1",
        f"localhost/signers:v2@{SIGNERS_V2}",
    ]
    assert originals(patched) == {"containers/c1": "localhost/signers:v2"}


def test_allow_rule_admits_unverified_with_a_warning_and_no_patch(policy: Policy) -> None:
    obj = workload("Pod", pod_spec(["mirror.example.com/x/y:1", f"mirror.example.com/z@{OTHER}"]))
    out = handle(review("Pod", obj), policy, WebhookConfig(), _no_lookup, mutate=True)
    resp = out["response"]
    assert resp["allowed"] is True and "patch" not in resp
    assert any("without verifying any signature" in w for w in resp["warnings"])


def test_duplicate_images_are_decided_once(policy: Policy, lookup: Fixtures) -> None:
    obj = workload("Pod", pod_spec(["localhost/basic:v1"] * 3, init=["localhost/basic:v1"]))
    resp = handle(review("Pod", obj), policy, WebhookConfig(), lookup, mutate=True)["response"]
    assert lookup.calls == [(1, "localhost/basic")]
    patched = apply_patch(obj, resp)
    assert {c["image"] for c in patched["spec"]["containers"]} == {f"localhost/basic:v1@{BASIC_V1}"}


def test_deadline_denies_saying_so(policy: Policy) -> None:
    obj = workload("Pod", pod_spec(["localhost/basic:v1"]))
    plan = plan_review(parse_review(review("Pod", obj)), policy, WebhookConfig())
    assert plan.needs == [(1, "localhost/basic")]
    got = {key: deadline_error(8) for key in plan.needs}
    out = respond(plan, policy, WebhookConfig(), got, mutate=True)
    msg = out.response["response"]["status"]["message"]
    assert out.allowed is False
    assert "[admission-deadline]" in msg and "deadline of 8 s" in msg and "fail closed" in msg


def test_missing_trust_data_is_a_deny(policy: Policy) -> None:
    obj = workload("Pod", pod_spec(["localhost/basic:v1"]))
    plan = plan_review(parse_review(review("Pod", obj)), policy, WebhookConfig())
    out = respond(plan, policy, WebhookConfig(), {}, mutate=True)
    assert out.allowed is False
    assert "[no-trust-data]" in out.response["response"]["status"]["message"]


def test_warnings_are_bounded(policy: Policy) -> None:
    images = [f"mirror.example.com/app{i}:1" for i in range(30)]
    obj = workload("Pod", pod_spec(images))
    resp = handle(review("Pod", obj), policy, WebhookConfig(max_warnings=5), _no_lookup)
    assert len(resp["response"]["warnings"]) == 5


# --------------------------------------------------------------------------- mutation


@pytest.mark.parametrize(
    ("image", "mode", "expected"),
    [
        ("localhost/basic:v1", "tag-digest", f"localhost/basic:v1@{BASIC_V1}"),
        ("localhost/basic:v1", "digest", f"localhost/basic@{BASIC_V1}"),
        ("localhost/basic:v1", "off", "localhost/basic:v1"),
        ("localhost/basic", "tag-digest", f"localhost/basic:latest@{BASIC_V1}"),
        ("localhost/basic", "digest", f"localhost/basic@{BASIC_V1}"),
        ("localhost:5000/team/app:v1", "tag-digest", f"localhost:5000/team/app:v1@{BASIC_V1}"),
        ("localhost:5000/team/app:v1", "digest", f"localhost:5000/team/app@{BASIC_V1}"),
        ("localhost:5000/team/app", "tag-digest", f"localhost:5000/team/app:latest@{BASIC_V1}"),
        ("localhost:5000/team/app", "digest", f"localhost:5000/team/app@{BASIC_V1}"),
        (f"localhost/basic:v1@{BASIC_V1}", "tag-digest", f"localhost/basic:v1@{BASIC_V1}"),
        (f"localhost/basic:v1@{BASIC_V1}", "digest", f"localhost/basic@{BASIC_V1}"),
        (f"localhost/basic@{BASIC_V1}", "tag-digest", f"localhost/basic@{BASIC_V1}"),
        ("nginx:1.25", "tag-digest", f"nginx:1.25@{BASIC_V1}"),
        ("nginx", "digest", f"nginx@{BASIC_V1}"),
    ],
)
def test_rewrite_image(image: str, mode: Any, expected: str) -> None:
    assert rewrite_image(image, parse_reference(image), BASIC_V1, mode) == expected


def test_mutation_modes_in_a_review(policy: Policy, lookup: Fixtures) -> None:
    obj = workload("StatefulSet", pod_spec(["localhost/basic:v1"]))
    doc = review("StatefulSet", obj)
    digest_only = handle(doc, policy, WebhookConfig(mutation="digest"), lookup, mutate=True)
    patched = apply_patch(obj, digest_only["response"])
    image = spec_of("StatefulSet", patched)["containers"][0]["image"]
    assert image == f"localhost/basic@{BASIC_V1}"
    off = handle(doc, policy, WebhookConfig(mutation="off"), lookup, mutate=True)
    assert off["response"] == {"uid": doc["request"]["uid"], "allowed": True}


def test_already_pinned_images_are_not_patched(policy: Policy, lookup: Fixtures) -> None:
    obj = workload("Pod", pod_spec([f"localhost/basic:v1@{BASIC_V1}"]))
    resp = handle(review("Pod", obj), policy, WebhookConfig(), lookup, mutate=True)["response"]
    assert resp["allowed"] is True and "patch" not in resp


def test_annotation_is_added_beside_other_annotations_and_merged(
    policy: Policy, lookup: Fixtures
) -> None:
    obj = workload("Deployment", pod_spec(["localhost/basic:v1", "localhost/signers:v2"]))
    key = "trustcheck.io/original-images"
    obj["metadata"]["annotations"] = {
        "team": "payments",
        key: json.dumps({"initContainers/old": "localhost/basic:v0"}),
    }
    resp = handle(review("Deployment", obj), policy, WebhookConfig(), lookup, mutate=True)
    ops = json.loads(base64.b64decode(resp["response"]["patch"]))
    assert ops[-1]["path"] == "/metadata/annotations/trustcheck.io~1original-images"
    patched = apply_patch(obj, resp["response"])
    assert patched["metadata"]["annotations"]["team"] == "payments"
    assert originals(patched) == {
        "initContainers/old": "localhost/basic:v0",
        "containers/c0": "localhost/basic:v1",
        "containers/c1": "localhost/signers:v2",
    }
    # an annotation key of one's own choosing
    cfg = WebhookConfig(annotation="example.com/unpinned")
    resp = handle(review("Deployment", obj), policy, cfg, lookup, mutate=True)
    patched = apply_patch(obj, resp["response"])
    assert json.loads(patched["metadata"]["annotations"]["example.com/unpinned"]) == {
        "containers/c0": "localhost/basic:v1",
        "containers/c1": "localhost/signers:v2",
    }


def test_annotation_without_metadata(policy: Policy, lookup: Fixtures) -> None:
    obj = {"apiVersion": "v1", "kind": "Pod", "spec": pod_spec(["localhost/basic:v1"])}
    resp = handle(review("Pod", obj), policy, WebhookConfig(), lookup, mutate=True)["response"]
    patched = apply_patch(obj, resp)
    assert originals(patched) == {"containers/c0": "localhost/basic:v1"}
    assert patched["spec"]["containers"][0]["image"] == f"localhost/basic:v1@{BASIC_V1}"


# --------------------------------------------------------------------------- exemptions


def test_namespace_exemptions(policy: Policy, lookup: Fixtures) -> None:
    obj = workload("Pod", pod_spec(["localhost/basic:unsigned"]))
    cfg = WebhookConfig(exempt_namespaces=("kube-system", "tenant-*"))
    for ns in ("kube-system", "tenant-a"):
        out = handle(review("Pod", obj, namespace=ns), policy, cfg, _no_lookup, mutate=True)
        assert out["response"]["allowed"] is True and "patch" not in out["response"]
    out = handle(review("Pod", obj, namespace="kube-public"), policy, cfg, lookup)
    assert out["response"]["allowed"] is False


def test_object_exemptions(policy: Policy, lookup: Fixtures) -> None:
    cfg = WebhookConfig(
        exempt_objects=(
            ObjectExemption(namespace="ops", kind="DaemonSet", name="node-exporter*"),
            ObjectExemption(namespace="ops", name="break-glass-"),
        )
    )
    ds = workload("DaemonSet", pod_spec(["localhost/basic:unsigned"]), name="node-exporter-x")
    assert handle(review("DaemonSet", ds, namespace="ops"), policy, cfg, _no_lookup)[
        "response"
    ]["allowed"]
    # another namespace, kind or name: checked
    resp = handle(review("DaemonSet", ds, namespace="team"), policy, cfg, lookup)["response"]
    assert resp["allowed"] is False
    dep = workload("Deployment", pod_spec(["localhost/basic:unsigned"]), name="node-exporter-x")
    resp = handle(review("Deployment", dep, namespace="ops"), policy, cfg, lookup)["response"]
    assert resp["allowed"] is False
    # a Pod created with generateName: the prefix is its name
    pod = workload("Pod", pod_spec(["localhost/basic:unsigned"]))
    pod["metadata"] = {"generateName": "break-glass-", "namespace": "ops"}
    doc = review("Pod", pod, namespace="ops")
    assert doc["request"]["name"] == ""
    assert handle(doc, policy, cfg, _no_lookup)["response"]["allowed"] is True


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    ("mangle", "needle"),
    [
        (lambda s: s.update(containers={"name": "x"}), "spec.containers is not a list"),
        (lambda s: s.update(containers=["nginx"]), "spec.containers[0] is not an object"),
        (lambda s: s.update(initContainers=[{"name": "i", "image": 5}]), "initContainers/i"),
        (
            lambda s: s.update(ephemeralContainers=[{"name": "e", "image": ["a"]}]),
            "is not a string",
        ),
    ],
)
def test_malformed_objects_are_denied(
    mangle: Callable[[dict[str, Any]], None], needle: str, policy: Policy
) -> None:
    spec = pod_spec(["localhost/basic:v1"])
    mangle(spec)
    resp = handle(review("Pod", workload("Pod", spec)), policy, WebhookConfig(), _no_lookup)
    assert resp["response"]["allowed"] is False
    msg = resp["response"]["status"]["message"]
    assert "[admission-invalid]" in msg and needle in msg


def test_a_pod_spec_that_is_not_an_object_is_denied(policy: Policy) -> None:
    obj = {"metadata": {"name": "d"}, "spec": {"template": "x"}}
    resp = handle(review("Deployment", obj), policy, WebhookConfig(), _no_lookup)["response"]
    assert resp["allowed"] is False
    assert "spec.template is not an object" in resp["status"]["message"]


def test_missing_templates_and_empty_images_have_nothing_to_check(policy: Policy) -> None:
    rc = {"metadata": {"name": "rc"}, "spec": {"replicas": 0, "template": None}}
    assert handle(review("ReplicationController", rc), policy, WebhookConfig(), _no_lookup)[
        "response"
    ]["allowed"]
    spec = {"containers": [{"name": "a"}, {"name": "b", "image": ""}]}
    dep = workload("Deployment", spec)
    assert handle(review("Deployment", dep), policy, WebhookConfig(), _no_lookup)["response"][
        "allowed"
    ]


def test_unknown_kinds_are_denied(policy: Policy) -> None:
    doc = review("ConfigMap", {"metadata": {"name": "c"}, "data": {}})
    resp = handle(doc, policy, WebhookConfig(), _no_lookup)["response"]
    assert resp["allowed"] is False
    assert "does not know where a ConfigMap keeps its images" in resp["status"]["message"]


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ([], "not a JSON object"),
        ({"apiVersion": "v1", "kind": "AdmissionReview", "request": {}}, "apiVersion"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "Review", "request": {}}, "kind"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "request is missing"),
        (
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}},
            "request.uid must be a string",
        ),
        (
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
             "request": {"uid": ""}},
            "request.uid is empty",
        ),
        (
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
             "request": {"uid": "u", "operation": "CREATE"}},
            "request.kind",
        ),
        (
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
             "request": {"uid": "u", "kind": {"kind": "Pod"}, "operation": "CREATE",
                         "dryRun": "yes"}},
            "dryRun",
        ),
        (
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
             "request": {"uid": "u", "kind": {"kind": "Pod"}, "operation": 1}},
            "operation must be a string",
        ),
    ],
)
def test_not_an_admission_review(doc: Any, needle: str, policy: Policy) -> None:
    with pytest.raises(ReviewError, match=needle):
        handle(doc, policy, WebhookConfig(), _no_lookup)


def test_deny_response_reads_what_it_can() -> None:
    doc = {"apiVersion": "admission.k8s.io/v1beta1", "request": {"uid": "abc"}}
    out = deny_response(doc, "trustcheck: [internal-error] boom")
    assert out == {
        "apiVersion": "admission.k8s.io/v1beta1",
        "kind": "AdmissionReview",
        "response": {
            "uid": "abc",
            "allowed": False,
            "status": {
                "code": 403,
                "reason": "Forbidden",
                "message": "trustcheck: [internal-error] boom",
            },
        },
    }
    garbage = deny_response("not a review", "x")
    assert garbage["apiVersion"] == "admission.k8s.io/v1"
    assert garbage["response"]["uid"] == "" and garbage["response"]["allowed"] is False


def test_long_deny_messages_are_cut(policy: Policy, lookup: Fixtures) -> None:
    images = [f"quay.io/team/app{i}:1" for i in range(100)]
    resp = handle(review("Pod", workload("Pod", pod_spec(images))), policy, WebhookConfig(), lookup)
    msg = resp["response"]["status"]["message"]
    assert len(msg) == 4000 and msg.endswith("…")


# --------------------------------------------------------------------------- memo


def test_memo_reuses_decisions_only_for_the_same_collection(
    policy: Policy, lookup: Fixtures, committed_fixtures: FixtureSet
) -> None:
    memo = Memo()
    obj = workload("Pod", pod_spec(["localhost/signers:v2", "localhost/signers:v1"]))
    doc = review("Pod", obj)
    first = handle(doc, policy, WebhookConfig(), lookup, mutate=True, memo=memo)
    assert handle(doc, policy, WebhookConfig(), lookup, mutate=True) == first
    assert handle(doc, policy, WebhookConfig(), lookup, mutate=True, memo=memo) == first
    kept = memo.decisions["localhost/signers:v2"][1]
    handle(doc, policy, WebhookConfig(), lookup, memo=memo)
    assert memo.decisions["localhost/signers:v2"][1] is kept  # reused
    # another collection object (a refresh): decided again
    fresh = load_collection(committed_fixtures.trust_dir, "localhost/signers", lookup.at)
    handle(doc, policy, WebhookConfig(), lambda i, g: fresh, memo=memo)
    assert memo.decisions["localhost/signers:v2"][1] is not kept
    assert memo.decisions["localhost/signers:v2"][0] is fresh
    # an error in its place: denied, not the old allow
    gone = NotTrusted("network-error", "down")
    resp = handle(doc, policy, WebhookConfig(), lambda i, g: gone, memo=memo)["response"]
    assert resp["allowed"] is False and "[network-error]" in resp["status"]["message"]
    # another policy clears it
    other = parse_policy("version: 1\nrules:\n  - pattern: localhost/*\n    action: deny\n",
                         "other.yaml", Path("."))
    resp = handle(doc, other, WebhookConfig(), _no_lookup, memo=memo)["response"]
    assert resp["allowed"] is False and "[policy-denied]" in resp["status"]["message"]
    assert memo.policy is other


def test_memo_is_bounded() -> None:
    memo = Memo(size=3)
    policy = parse_policy("version: 1\nrules:\n  - pattern: localhost/*\n    action: allow\n",
                          "p.yaml", Path("."))
    for i in range(10):
        obj = workload("Pod", pod_spec([f"localhost/app{i}:v1"]))
        handle(review("Pod", obj), policy, WebhookConfig(), _no_lookup, memo=memo)
    assert len(memo.refs) == 3 and len(memo.decisions) == 3
    assert "localhost/app9:v1" in memo.refs and "localhost/app0:v1" not in memo.refs


# --------------------------------------------------------------------------- issue 17: lifecycle

CONNAISSEUR_28 = (
    Path(__file__).resolve().parents[2]
    / "fixtures"
    / "k8s"
    / "connaisseur"
    / "28_deleted_deployment_updated.json"
)


def _connaisseur_28() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(CONNAISSEUR_28.read_text())
    return doc


def test_connaisseur_deleted_deployment_finalizer_removal_is_admitted(policy: Policy) -> None:
    """Connaisseur's payload 28: the finalizer of a Deployment being deleted is
    removed. Its image (docker.io busybox) is denied by a rule; blocking the update
    would leave it Terminating forever."""
    doc = _connaisseur_28()
    out = respond(
        plan_review(parse_review(doc), policy, WebhookConfig()), policy, WebhookConfig(), {},
        mutate=True,
    )
    assert out.allowed is True and out.note.startswith("the update finishes a deletion")
    assert out.response == {
        "apiVersion": "admission.k8s.io/v1beta1",
        "kind": "AdmissionReview",
        "response": {"uid": "3a3a7b38-5512-4a85-94bb-3562269e0a6a", "allowed": True},
    }
    # the same update without the deletion: the deny rule still denies (updates: all)
    alive = copy.deepcopy(doc)
    for key in ("object", "oldObject"):
        del alive["request"][key]["metadata"]["deletionTimestamp"]
    resp = handle(alive, policy, WebhookConfig(), _no_lookup)["response"]
    assert resp["allowed"] is False and "[policy-denied]" in resp["status"]["message"]
    # an image changed while the object is being deleted is checked
    changed = copy.deepcopy(doc)
    spec = changed["request"]["object"]["spec"]["template"]["spec"]
    spec["containers"][0]["image"] = "alpine:3.20"
    resp = handle(changed, policy, WebhookConfig(), _no_lookup)["response"]
    assert resp["allowed"] is False and 'image "alpine:3.20"' in resp["status"]["message"]
    assert "busybox" not in resp["status"]["message"]


class _Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def _store(window: float = 3600.0) -> tuple[Any, _Clock]:
    from trustcheck.webhook.admitted import ReleasedStore

    clock = _Clock()
    return ReleasedStore(window, wall=clock), clock


def _fp(policy: Policy, name: str) -> str:
    from trustcheck.webhook.admitted import rule_fingerprint

    rule = policy.match(parse_reference(name))
    assert rule is not None
    return rule_fingerprint(rule)


def test_continuity_admits_a_moved_digest_verified_before(
    policy: Policy, lookup: Fixtures
) -> None:
    """`localhost/basic:v1@OTHER`: v1 now signs BASIC_V1. Denied unless trustcheck
    verified OTHER as a release of the repository under the same rule within the window."""
    store, clock = _store(window=3600)
    image = f"localhost/basic:v1@{OTHER}"
    doc = review("ReplicaSet", workload("ReplicaSet", pod_spec([image])))
    cfg = WebhookConfig(continuity_window=3600)
    resp = handle(doc, policy, cfg, lookup, mutate=True, known=store)["response"]
    assert resp["allowed"] is False and "[digest-mismatch]" in resp["status"]["message"]
    store.record(_fp(policy, "localhost/basic"), "localhost/basic", OTHER, "v1")
    resp = handle(doc, policy, cfg, lookup, mutate=True, known=store)["response"]
    assert resp["allowed"] is True and "patch" not in resp  # pinned as it is: no rewrite
    assert any("continuity" in w and "v1" in w for w in resp["warnings"])
    # the record is for this rule: under another rule's demands it does not count
    other_rule = WebhookConfig(continuity_window=3600)
    store2, _ = _store()
    store2.record("0" * 32, "localhost/basic", OTHER, "v1")
    resp = handle(doc, policy, other_rule, lookup, known=store2)["response"]
    assert resp["allowed"] is False
    # past the window: denied again
    clock.now += 3601
    resp = handle(doc, policy, cfg, lookup, known=store)["response"]
    assert resp["allowed"] is False and "[digest-mismatch]" in resp["status"]["message"]
    # continuity off
    clock.now -= 3601
    off = WebhookConfig(continuity_window=0)
    assert handle(doc, policy, off, lookup, known=store)["response"]["allowed"] is False


def test_continuity_never_admits_a_revoked_digest_a_deny_rule_or_an_unsigned_one(
    policy: Policy, lookup: Fixtures
) -> None:
    from trustcheck.webhook.admitted import Revocations

    store, _clock = _store()
    store.record(_fp(policy, "localhost/basic"), "localhost/basic", OTHER, "v1")
    image = f"localhost/basic:v1@{OTHER}"
    doc = review("Pod", workload("Pod", pod_spec([image])))
    for revoked in (OTHER, f"localhost/basic@{OTHER}"):
        cfg = WebhookConfig(continuity_window=3600, revoked=Revocations.parse([revoked]))
        resp = handle(doc, policy, cfg, lookup, known=store)["response"]
        assert resp["allowed"] is False, revoked
        assert "[admission-revoked]" in resp["status"]["message"]
    # revocation beats a current signature too
    cfg = WebhookConfig(revoked=Revocations.parse([f"localhost/basic@{BASIC_V1}"]))
    current = review("Pod", workload("Pod", pod_spec(["localhost/basic:v1"])))
    resp = handle(current, policy, cfg, lookup, known=store)["response"]
    assert resp["allowed"] is False and "[admission-revoked]" in resp["status"]["message"]
    # another repository's record of the digest: not this repository's release
    cfg = WebhookConfig(continuity_window=3600)
    other_repo = review("Pod", workload("Pod", pod_spec([f"localhost/signers:v2@{OTHER}"])))
    assert handle(other_repo, policy, cfg, lookup, known=store)["response"]["allowed"] is False
    # a deny rule denies whatever was recorded
    store.record("1" * 32, "docker.io/library/alpine", OTHER, "3.20")
    hub = review("Pod", workload("Pod", pod_spec([f"alpine:3.20@{OTHER}"])))
    resp = handle(hub, policy, cfg, lookup, known=store)["response"]
    assert resp["allowed"] is False and "[policy-denied]" in resp["status"]["message"]
    # a tag (no digest) whose tag is not signed has nothing to continue
    unsigned = review("Pod", workload("Pod", pod_spec(["localhost/basic:unsigned"])))
    assert handle(unsigned, policy, cfg, lookup, known=store)["response"]["allowed"] is False


def test_tag_at_digest_released_now_by_another_tag_is_admitted(
    policy: Policy, lookup: Fixtures
) -> None:
    """`basic:v1@<digest of latest>`: v1 does not carry it, but `latest` releases it now."""
    image = f"localhost/basic:v1@{BASIC_LATEST}"
    doc = review("Pod", workload("Pod", pod_spec([image])))
    resp = handle(doc, policy, WebhookConfig(), lookup, mutate=True)["response"]
    assert resp["allowed"] is True, resp
    assert any("released now as latest" in w for w in resp["warnings"])
    off = WebhookConfig(continuity_window=0)
    resp = handle(doc, policy, off, lookup)["response"]
    assert resp["allowed"] is False and "[digest-mismatch]" in resp["status"]["message"]


def test_allowed_reviews_report_the_releases_to_remember(
    policy: Policy, lookup: Fixtures
) -> None:
    doc = review("Deployment", workload("Deployment", pod_spec(["localhost/basic:v1"])))
    cfg = WebhookConfig()
    out = respond(plan_review(parse_review(doc), policy, cfg), policy, cfg,
                  {k: lookup(*k) for k in plan_review(parse_review(doc), policy, cfg).needs},
                  mutate=True)
    assert out.allowed and out.releases == [
        (_fp(policy, "localhost/basic"), "localhost/basic", BASIC_V1, "v1")
    ]
    # an allow rule verifies nothing: nothing to remember
    doc = review("Pod", workload("Pod", pod_spec(["mirror.example.com/x:1"])))
    out = respond(plan_review(parse_review(doc), policy, cfg), policy, cfg, {}, mutate=True)
    assert out.allowed and out.releases == []


def test_ephemeral_container_update_checks_only_the_new_image(
    policy: Policy, lookup: Fixtures
) -> None:
    """kubectl debug: the running containers are as admitted; only the debug image counts."""
    old = workload("Pod", pod_spec(["localhost/basic:unsigned"]))
    new = workload("Pod", pod_spec(["localhost/basic:unsigned"], ephemeral=["localhost/basic:v1"]))
    doc = review("Pod", new, operation="UPDATE", old=old, sub="ephemeralcontainers")
    resp = handle(doc, policy, WebhookConfig(), lookup, mutate=True)["response"]
    assert resp["allowed"] is True
    patched = apply_patch(new, resp)
    assert patched["spec"]["ephemeralContainers"][0]["image"] == f"localhost/basic:v1@{BASIC_V1}"
    assert patched["spec"]["containers"][0]["image"] == "localhost/basic:unsigned"
    # a plain UPDATE of the same Pod (updates: all) re-checks every image
    plain = review("Pod", new, operation="UPDATE", old=old)
    assert handle(plain, policy, WebhookConfig(), lookup)["response"]["allowed"] is False


@pytest.mark.parametrize("kind", sorted(K8S_KINDS))
def test_image_volumes_are_checked_and_pinned(
    kind: str, policy: Policy, lookup: Fixtures
) -> None:
    spec = pod_spec(["localhost/signers:v2"])
    spec["volumes"] = [
        {"name": "cfg", "configMap": {"name": "x"}},
        {"name": "models", "image": {"reference": "localhost/basic:v1", "pullPolicy": "Always"}},
    ]
    obj = workload(kind, spec)
    resp = handle(review(kind, obj), policy, WebhookConfig(), lookup, mutate=True)["response"]
    assert resp["allowed"] is True
    patched = apply_patch(obj, resp)
    volume = spec_of(kind, patched)["volumes"][1]["image"]
    assert volume == {"reference": f"localhost/basic:v1@{BASIC_V1}", "pullPolicy": "Always"}
    assert originals(patched) == {
        "containers/c0": "localhost/signers:v2",
        "volumes/models": "localhost/basic:v1",
    }
    bad = copy.deepcopy(obj)
    spec_of(kind, bad)["volumes"][1]["image"]["reference"] = "localhost/basic:unsigned"
    resp = handle(review(kind, bad), policy, WebhookConfig(), lookup)["response"]
    assert resp["allowed"] is False
    assert 'image "localhost/basic:unsigned" (volumes/models)' in resp["status"]["message"]
    assert "[tag-not-signed]" in resp["status"]["message"]


@pytest.mark.parametrize(
    ("volumes", "needle"),
    [
        ({"a": 1}, "volumes is not a list"),
        (["x"], "volumes[0] is not an object"),
        ([{"name": "v", "image": "localhost/basic:v1"}], "image source of volumes/v"),
        ([{"name": "v", "image": {"reference": 7}}], "image reference of volumes/v"),
    ],
)
def test_malformed_image_volumes_are_denied(volumes: Any, needle: str, policy: Policy) -> None:
    spec = pod_spec(["localhost/signers:v2"])
    spec["volumes"] = volumes
    resp = handle(review("Pod", workload("Pod", spec)), policy, WebhookConfig(), _no_lookup)
    msg = resp["response"]["status"]["message"]
    assert "[admission-invalid]" in msg and needle in msg


@pytest.mark.parametrize("kind", sorted(K8S_KINDS))
@pytest.mark.parametrize(
    ("meta", "request_name", "shown"),
    [
        ({"name": "web-1"}, "", "web-1"),
        ({"generateName": "web-7d9f-"}, "", "web-7d9f-*"),
        ({"name": "web-1", "generateName": "web-"}, "", "web-1"),
        ({}, "", "(unnamed)"),
        ({"name": "ignored"}, "from-request", "from-request"),
    ],
)
def test_deny_messages_name_the_object(
    kind: str, meta: dict[str, str], request_name: str, shown: str, policy: Policy
) -> None:
    obj = workload(kind, pod_spec(["alpine:3.20"]))
    obj["metadata"] = {"namespace": "team", **meta}
    doc = review(kind, obj)
    doc["request"]["name"] = request_name
    resp = handle(doc, policy, WebhookConfig(), _no_lookup)["response"]
    assert resp["status"]["message"].startswith(f"trustcheck denied {kind} team/{shown}: ")
    assert parse_review(doc).display_name == ("" if shown == "(unnamed)" else shown)


def test_the_reason_code_comes_first_whatever_the_image_length(
    policy: Policy, lookup: Fixtures
) -> None:
    long_image = "quay.io/team/" + "a" * 4990 + ":1"  # 5,000+ characters (no valid name)
    unsigned = "localhost/basic:unsigned"
    obj = workload("Pod", pod_spec([long_image, unsigned]))
    resp = handle(review("Pod", obj), policy, WebhookConfig(), lookup)["response"]
    msg = resp["status"]["message"]
    assert len(msg) <= 4000
    head = msg[:200]
    assert "(invalid-reference, tag-not-signed)" in head, head
    assert msg.count("[invalid-reference]") == 1 and "[invalid-reference]" in msg[:700]
    # each line still gives its code, and the second image is named in full
    assert f'image "{unsigned}" (containers/c1): rule "localhost-signed": [tag-not-signed]' in msg
    # a long name does not push the codes out either
    named = workload("Pod", pod_spec([long_image]), name="n" * 5000)
    msg = handle(review("Pod", named), policy, WebhookConfig(), lookup)["response"]["status"][
        "message"
    ]
    assert "(invalid-reference)" in msg[:400] and "[invalid-reference]" in msg[:1000]
    # and neither do a long kind and namespace (the API server never sends them; a
    # hand-made review may)
    doc = review("Pod", named)
    doc["request"]["namespace"] = "s" * 5000
    doc["request"]["kind"]["kind"] = "Pod"
    msg = handle(doc, policy, WebhookConfig(), lookup)["response"]["status"]["message"]
    assert "(invalid-reference)" in msg[:800] and len(msg) <= 4000


def test_released_store_persists_is_bounded_and_expires(tmp_path: Path) -> None:
    from trustcheck.webhook.admitted import ReleasedStore

    clock = _Clock()
    path = tmp_path / "state" / "webhook-released.json"
    store = ReleasedStore(100.0, max_entries=3, path=path, wall=clock)
    for i in range(5):
        store.record("f" * 32, f"example.com/r{i}", OTHER, "v1")
        clock.now += 10
    assert len(store) == 3  # the least recently verified went first
    assert store.known("f" * 32, "example.com/r0", OTHER) is None
    assert store.flush() is True and path.stat().st_mode & 0o777 == 0o600
    again = ReleasedStore(100.0, path=path, wall=clock)
    assert again.load() == 3
    rec = again.known("f" * 32, "example.com/r4", OTHER)
    assert rec is not None and rec.tags == ("v1",)
    # records older than the window are not read back
    clock.now += 85
    later = ReleasedStore(100.0, path=path, wall=clock)
    assert later.load() == 1
    # an unusable file is ignored (fail closed: the memory starts empty)
    for junk in (b"{", b"[]", b'{"version": 1, "released": [{"rule": "x"}]}', b"\xff" * 10):
        path.write_bytes(junk)
        assert ReleasedStore(100.0, path=path, wall=clock).load() == 0


def test_shared_released_entries_are_authenticated() -> None:
    from trustcheck.webhook.admitted import ReleasedStore, SharedReleased
    from trustcheck.webhook.shared import MemoryStore

    mem = MemoryStore()
    clock = _Clock()
    secret = b"s" * 32
    one = ReleasedStore(600.0, shared=SharedReleased(mem, secret), wall=clock)
    one.record("a" * 32, "example.com/app", OTHER, "v1")
    assert one.publish() == 1
    two = ReleasedStore(600.0, shared=SharedReleased(mem, secret), wall=clock)
    assert two.fetch_shared([("a" * 32, "example.com/app", OTHER)]) == 1
    assert two.known("a" * 32, "example.com/app", OTHER) is not None
    # without the secret: a planted entry is refused
    thief = ReleasedStore(600.0, shared=SharedReleased(mem, b"t" * 32), wall=clock)
    thief.record("b" * 32, "example.com/app", OTHER, "v1")
    thief.publish()
    three = ReleasedStore(600.0, shared=SharedReleased(mem, secret), wall=clock)
    assert three.fetch_shared([("b" * 32, "example.com/app", OTHER)]) == 0
    # an authentic entry copied under another key is refused
    shared = SharedReleased(mem, secret)
    value = mem.get(shared.key("a" * 32, "example.com/app", OTHER), 4096)
    assert value is not None
    mem.set(shared.key("a" * 32, "example.com/evil", OTHER), value, 60)
    assert three.fetch_shared([("a" * 32, "example.com/evil", OTHER)]) == 0
    # past its window
    clock.now += 601
    four = ReleasedStore(600.0, shared=SharedReleased(mem, secret), wall=clock)
    mem.set(shared.key("a" * 32, "example.com/app", OTHER), value, 60)
    assert four.fetch_shared([("a" * 32, "example.com/app", OTHER)]) == 0


@pytest.mark.parametrize(
    "entry",
    ["sha256:abc", "localhost/basic:v1@" + OTHER, "Not A Name@" + OTHER, "md5:" + "a" * 64, ""],
)
def test_bad_revocations_are_refused(entry: str) -> None:
    from trustcheck.errors import UsageError
    from trustcheck.webhook.config import parse_config

    with pytest.raises(UsageError) as e:
        parse_config({"continuity": {"revoked": [entry]}}, "config.yaml")
    assert e.value.code == "webhook-config-invalid" and "continuity.revoked" in e.value.message


def test_continuity_config() -> None:
    from trustcheck.webhook.config import parse_config

    cfg = parse_config(
        {"continuity": {"window_seconds": 600, "max_entries": 10, "revoked": [OTHER]}}
    )
    assert cfg.webhook.continuity_window == 600 and cfg.continuity_max_entries == 10
    assert cfg.webhook.revoked.revoked("docker.io/library/x", OTHER)
    assert parse_config({}).webhook.continuity_window == 7 * 86400
