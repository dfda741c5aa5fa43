"""deploy/: the kustomize layout (base + overlay), the NetworkPolicy, the PodDisruptionBudget.

Every YAML document of deploy/ is parsed and checked against the Deployment it
belongs with: selectors match the pod labels, ports match the container port
and the ``--port`` argument, the server config loads and its connection limits
fit the container's memory limit. The layout is rendered with the real
kustomize (``kubectl kustomize``, kustomize v5 built into kubectl) and the
rendered base and overlay are checked the same way, plus what the overlay
changes. There is no API server here: ``kubectl apply --dry-run=server`` cannot
run, so the objects' schemas are not validated beyond these checks.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from trustcheck.webhook.config import ServerConfig, parse_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BASE = DEPLOY / "base"
OVERLAY = DEPLOY / "overlays" / "production"

Doc = dict[str, Any]


def _load(text: str) -> list[Doc]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def _by_kind(docs: list[Doc]) -> dict[str, list[Doc]]:
    out: dict[str, list[Doc]] = {}
    for d in docs:
        assert isinstance(d, dict) and "kind" in d and "apiVersion" in d, d
        out.setdefault(d["kind"], []).append(d)
    return out


def _matches(selector: Doc, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels, matchExpressions In/NotIn/Exists) against labels."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and labels.get(key) in values)
            or (op == "Exists" and key not in labels)
            or (op == "DoesNotExist" and key in labels)
        ):
            return False
    return bool(selector.get("matchLabels") or selector.get("matchExpressions"))


def _server_config(kinds: dict[str, list[Doc]]) -> ServerConfig:
    (cm,) = [c for c in kinds["ConfigMap"] if "config.yaml" in c.get("data", {})]
    return parse_config(yaml.safe_load(cm["data"]["config.yaml"]), "deploy config.yaml")


def _mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    raise AssertionError(f"unexpected memory quantity {quantity!r}")


def check_manifests(docs: list[Doc]) -> dict[str, list[Doc]]:
    """The checks every rendering of deploy/ must pass; the documents by kind."""
    kinds = _by_kind(docs)
    (dep,) = kinds["Deployment"]
    ns = dep["metadata"]["namespace"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert _matches(dep["spec"]["selector"], pod_labels)
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    port = int(args[args.index("--port") + 1])
    (cport,) = container["ports"]
    assert cport["containerPort"] == port
    replicas = dep["spec"]["replicas"]

    # the Service reaches the pods on that port
    (svc,) = kinds["Service"]
    assert svc["metadata"]["namespace"] == ns
    assert all(pod_labels.get(k) == v for k, v in svc["spec"]["selector"].items())
    (sport,) = svc["spec"]["ports"]
    assert sport["targetPort"] in (cport.get("name"), port)

    # the PodDisruptionBudget: selects the pods and lets a node drain go on
    (pdb,) = kinds["PodDisruptionBudget"]
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["metadata"]["namespace"] == ns
    assert _matches(pdb["spec"]["selector"], pod_labels)
    min_available = pdb["spec"].get("minAvailable")
    assert isinstance(min_available, int) and 1 <= min_available < replicas

    # the NetworkPolicy: only listed sources, only to the webhook port
    (netpol,) = kinds["NetworkPolicy"]
    assert netpol["apiVersion"] == "networking.k8s.io/v1"
    assert netpol["metadata"]["namespace"] == ns
    spec = netpol["spec"]
    assert _matches(spec["podSelector"], pod_labels)
    assert spec["policyTypes"] == ["Ingress"]
    ingress = spec["ingress"]
    assert ingress, "an empty ingress list would block the API server too"
    for rule in ingress:
        # no rule without sources (that admits everyone) nor without ports
        assert rule.get("from"), rule
        assert [p["port"] for p in rule["ports"]] == [port], rule
        assert all(p.get("protocol", "TCP") == "TCP" for p in rule["ports"])
        for source in rule["from"]:
            block = source.get("ipBlock")
            if block is not None:
                assert block["cidr"] not in ("0.0.0.0/0", "::/0"), block
            else:
                assert source.get("namespaceSelector") or source.get("podSelector"), source
    first = ingress[0]["from"][0]["ipBlock"]["cidr"]
    assert "/" in first

    # the server config loads, and its limits fit the container's memory limit
    cfg = _server_config(kinds)
    limit_mib = _mebibytes(container["resources"]["limits"]["memory"])
    assert cfg.limits.max_connections * 128 / 1024 < limit_mib / 4
    # each request being served holds its body and the parsed review (measured about
    # 3 times the body: docs/webhook.md#connection-limits); base process about 60 MiB
    bodies = cfg.limits.max_concurrent_requests * cfg.max_body_bytes * 3 / (1 << 20)
    assert 60 + cfg.limits.max_connections * 128 / 1024 + bodies < limit_mib, (bodies, limit_mib)
    # the webhooks' timeout is above the review deadline
    assert cfg.webhook.deadline < 10
    return kinds


def test_every_file_of_deploy_parses_and_the_base_is_consistent() -> None:
    files = sorted(BASE.glob("*.yaml"))
    assert {p.name for p in files} >= {
        "kustomization.yaml",
        "trustcheck.yaml",
        "webhooks.yaml",
        "cert-manager.yaml",
        "networkpolicy.yaml",
    }
    docs: list[Doc] = []
    for p in files:
        if p.name != "kustomization.yaml":
            docs += _load(p.read_text())
    kinds = check_manifests(docs)
    # the kustomization names every manifest but the webhooks (applied once pods are ready)
    kust = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert sorted(kust["resources"]) == sorted(
        p.name for p in files if p.name not in ("kustomization.yaml", "webhooks.yaml")
    )
    # the webhooks call the Service that selects these pods
    (svc,) = kinds["Service"]
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        (cfg,) = kinds[kind]
        for hook in cfg["webhooks"]:
            ref = hook["clientConfig"]["service"]
            assert (ref["name"], ref["namespace"], ref["port"]) == (
                svc["metadata"]["name"],
                svc["metadata"]["namespace"],
                svc["spec"]["ports"][0]["port"],
            )


def test_the_checks_catch_broken_manifests() -> None:
    """Each check above fails on the mistake it is there for."""
    docs = [d for p in sorted(BASE.glob("*.yaml")) if p.name != "kustomization.yaml"
            for d in _load(p.read_text())]

    def broken(kind: str, change: Any) -> list[Doc]:
        copy = [yaml.safe_load(yaml.safe_dump(d)) for d in docs]
        change(next(d for d in copy if d["kind"] == kind))
        return copy

    def selector(d: Doc) -> None:
        d["spec"]["podSelector"]["matchLabels"] = {"app": "other"}

    def wrong_port(d: Doc) -> None:
        d["spec"]["ingress"][0]["ports"][0]["port"] = 443

    def open_to_all(d: Doc) -> None:
        d["spec"]["ingress"][0]["from"] = [{"ipBlock": {"cidr": "0.0.0.0/0"}}]

    def no_sources(d: Doc) -> None:
        del d["spec"]["ingress"][0]["from"]

    def pdb_blocks_drain(d: Doc) -> None:
        d["spec"]["minAvailable"] = 2

    def pdb_selector(d: Doc) -> None:
        d["spec"]["selector"]["matchLabels"] = {"app.kubernetes.io/name": "x"}

    def huge_limits(d: Doc) -> None:
        cfg = yaml.safe_load(d["data"]["config.yaml"])
        cfg["server"] = {"max_concurrent_requests": 200}
        d["data"]["config.yaml"] = yaml.safe_dump(cfg)

    cases = [
        ("NetworkPolicy", selector),
        ("NetworkPolicy", wrong_port),
        ("NetworkPolicy", open_to_all),
        ("NetworkPolicy", no_sources),
        ("PodDisruptionBudget", pdb_blocks_drain),
        ("PodDisruptionBudget", pdb_selector),
    ]
    for kind, change in cases:
        with pytest.raises((AssertionError, KeyError)):
            check_manifests(broken(kind, change))
    config_docs = [yaml.safe_load(yaml.safe_dump(d)) for d in docs]
    cm = next(d for d in config_docs if "config.yaml" in d.get("data", {}))
    huge_limits(cm)
    with pytest.raises(AssertionError):
        check_manifests(config_docs)


def _kustomize(path: Path) -> list[Doc]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("!!! KUSTOMIZE RENDERING SKIPPED: no kubectl (kustomize v5 is built in) !!!")
    out = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return _load(out.stdout)


def test_kustomize_renders_the_base_as_the_files_say() -> None:
    rendered = _kustomize(BASE)
    kinds = check_manifests(rendered)
    files = [d for p in sorted(BASE.glob("*.yaml"))
             if p.name not in ("kustomization.yaml", "webhooks.yaml") for d in _load(p.read_text())]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in rendered) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in files
    )
    (dep,) = kinds["Deployment"]
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "trustcheck:0.1.0"


def test_kustomize_renders_the_overlay_with_its_changes() -> None:
    base = _by_kind(_kustomize(BASE))
    kinds = check_manifests(_kustomize(OVERLAY))
    (dep,) = kinds["Deployment"]
    assert dep["spec"]["replicas"] == 3
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/platform/trustcheck:0.1.0"
    (netpol,) = kinds["NetworkPolicy"]
    ingress = netpol["spec"]["ingress"]
    assert ingress[0]["from"] == [{"ipBlock": {"cidr": "10.0.0.0/28"}}]
    assert ingress[1]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    (base_netpol,) = base["NetworkPolicy"]
    assert base_netpol["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "192.0.2.0/24"}}]
    # the rest is the base's
    assert sorted(kinds) == sorted(base)
