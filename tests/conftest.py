"""Shared fixtures: the committed trust fixtures and freshly generated ones.

* ``committed_fixtures``: ``fixtures/generated`` as committed (no server needed;
  always validate at its ``VALIDATION_TIME``).
* ``fresh_fixtures``: ``fixtures.generate.generate()`` run now into a temporary
  folder against a real notary-server (integration tests only).  Skipped
  only when the notary programs are missing; ``make test`` installs them.
* ``differential_stats``: counters the differential tests fill; printed in the
  terminal summary and written to ``<pytest basetemp>/differential-counts.json``.
"""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import ssl

    import trustme

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # make the top-level `fixtures` package importable
    sys.path.insert(0, str(REPO_ROOT))

from fixtures.generate import FixtureSet, generate, load_fixture_set  # noqa: E402
from fixtures.notary_harness import docker_unavailable_reason, missing_notary_binaries  # noqa: E402

COMMITTED_FIXTURES = REPO_ROOT / "fixtures" / "generated"


@dataclass(frozen=True)
class CliRun:
    """One trustcheck CLI run: exit code and the two streams."""

    code: int
    stdout: str
    stderr: str


def run_trustcheck(*args: str) -> CliRun:
    """Run the trustcheck CLI in-process through its real entry point (``cli.main``,
    the one place errors become exit codes), capturing stdout and stderr."""
    from trustcheck.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return CliRun(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def trustcheck_cli() -> Callable[..., CliRun]:
    """:func:`run_trustcheck`: the trustcheck CLI in-process."""
    return run_trustcheck


# --------------------------------------------------------------------------- AdmissionReview

#: kind -> (API group, version, resource, path of the pod spec in the object)
K8S_KINDS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "Pod": ("", "v1", "pods", ("spec",)),
    "PodTemplate": ("", "v1", "podtemplates", ("template", "spec")),
    "ReplicationController": ("", "v1", "replicationcontrollers", ("spec", "template", "spec")),
    "Deployment": ("apps", "v1", "deployments", ("spec", "template", "spec")),
    "ReplicaSet": ("apps", "v1", "replicasets", ("spec", "template", "spec")),
    "StatefulSet": ("apps", "v1", "statefulsets", ("spec", "template", "spec")),
    "DaemonSet": ("apps", "v1", "daemonsets", ("spec", "template", "spec")),
    "Job": ("batch", "v1", "jobs", ("spec", "template", "spec")),
    "CronJob": ("batch", "v1", "cronjobs", ("spec", "jobTemplate", "spec", "template", "spec")),
}

#: the uid of a review when the test does not give one (kube-apiserver's example)
REVIEW_UID = "705ab4f5-6393-11e8-b7cc-42010a800002"


def pod_spec(
    containers: list[str], init: list[str] | None = None, ephemeral: list[str] | None = None
) -> dict[str, Any]:
    """A pod spec running ``containers`` (and init / ephemeral containers)."""
    spec: dict[str, Any] = {
        "containers": [
            {"name": f"c{i}", "image": img, "imagePullPolicy": "IfNotPresent"}
            for i, img in enumerate(containers)
        ],
        "restartPolicy": "Always",
    }
    if init:
        spec["initContainers"] = [{"name": f"init{i}", "image": img} for i, img in enumerate(init)]
    if ephemeral:
        spec["ephemeralContainers"] = [
            {"name": f"debug{i}", "image": img, "targetContainerName": "c0"}
            for i, img in enumerate(ephemeral)
        ]
    return spec


def workload(kind: str, spec: dict[str, Any], name: str = "app") -> dict[str, Any]:
    """An object of ``kind`` as the API server sends it, with ``spec`` as its pod spec."""
    group, version, _resource, path = K8S_KINDS[kind]
    obj: dict[str, Any] = {
        "apiVersion": f"{group}/{version}" if group else version,
        "kind": kind,
        "metadata": {"name": name, "namespace": "team", "labels": {"app": name}},
    }
    node = obj
    for key in path[:-1]:
        node = node.setdefault(key, {})
        if key == "template":
            node["metadata"] = {"labels": {"app": name}}
    node[path[-1]] = spec
    if kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"):
        obj["spec"]["replicas" if kind != "DaemonSet" else "minReadySeconds"] = 2
        obj["spec"]["selector"] = {"matchLabels": {"app": name}}
    if kind == "CronJob":
        obj["spec"]["schedule"] = "*/5 * * * *"
    return obj


def spec_of(kind: str, obj: Any) -> Any:
    """The pod spec inside an object of ``kind``."""
    node = obj
    for key in K8S_KINDS[kind][3]:
        node = node[key]
    return node


def admission_review(
    kind: str,
    obj: Any,
    *,
    operation: str = "CREATE",
    api: str = "admission.k8s.io/v1",
    namespace: str = "team",
    sub: str | None = None,
    dry_run: bool = False,
    old: Any = None,
    uid: str = REVIEW_UID,
) -> dict[str, Any]:
    """An AdmissionReview as kube-apiserver sends it (admission/v1 AdmissionRequest)."""
    group, version, resource, _path = K8S_KINDS.get(kind, ("", "v1", kind.lower() + "s", ()))
    gvk = {"group": group, "version": version, "kind": kind}
    gvr = {"group": group, "version": version, "resource": resource}
    name = obj.get("metadata", {}).get("name", "") if isinstance(obj, dict) else ""
    req: dict[str, Any] = {
        "uid": uid,
        "kind": gvk,
        "resource": gvr,
        "requestKind": gvk,
        "requestResource": gvr,
        "name": name,
        "namespace": namespace,
        "operation": operation,
        "userInfo": {
            "username": "system:serviceaccount:ci:deployer",
            "uid": "014fbff9a07c",
            "groups": ["system:serviceaccounts", "system:authenticated"],
        },
        "object": obj if operation != "DELETE" else None,
        "oldObject": old,
        "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": f"{operation.title()}Options"},
    }
    if sub is not None:
        req["subResource"] = sub
        req["requestSubResource"] = sub
    return {"apiVersion": api, "kind": "AdmissionReview", "request": req}


def pod_review(images: list[str], uid: str = REVIEW_UID) -> dict[str, Any]:
    """The AdmissionReview of a Pod named ``app`` running ``images``."""
    return admission_review("Pod", workload("Pod", pod_spec(images)), uid=uid)


# --------------------------------------------------------------------------- TLS test server


class BackgroundServer:
    """The one loopback test server: an ``http.server`` handler served by a
    ``ThreadingHTTPServer`` (or ``server_class``) in a daemon thread, over TLS with
    ``cert``/``key`` (or a ready ``context``), on ``host`` and ``port`` (0: a free one).
    ``close`` stops it."""

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        *,
        cert: Path | None = None,
        key: Path | None = None,
        context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer,
    ) -> None:
        import ssl

        if context is None and cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(cert), str(key) if key is not None else None)
        self.server = server_class((host, port), handler)
        self.server.daemon_threads = True
        if context is not None:
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.host = host
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    def close(self, timeout: float = 10) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=timeout)


@dataclass
class TlsServer:
    """:class:`BackgroundServer` over TLS with a certificate from a fresh trustme CA;
    ``ca_file`` holds that CA for the client side."""

    background: BackgroundServer
    ca: trustme.CA
    ca_file: Path

    @property
    def port(self) -> int:
        return self.background.port

    @property
    def netloc(self) -> str:
        return self.background.netloc

    @property
    def url(self) -> str:
        return f"https://{self.netloc}/"

    def client_cert(self, folder: Path, name: str = "client.example") -> tuple[Path, Path]:
        """A client certificate and key issued by the server's CA, written into ``folder``."""
        issued = self.ca.issue_cert(name)
        cert, key = folder / f"{name}.cert", folder / f"{name}.key"
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
        return cert, key


@contextmanager
def tls_server(
    handler: type[BaseHTTPRequestHandler], folder: Path, *, client_auth: bool = False
) -> Iterator[TlsServer]:
    """Serve ``handler`` over TLS on 127.0.0.1 (a random port) until the block ends.
    With ``client_auth`` the server demands a client certificate from its CA."""
    import ssl

    import trustme

    ca = trustme.CA()
    ca_file = folder / "tls-server-ca.crt"
    ca.cert_pem.write_to_path(str(ca_file))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    if client_auth:
        ca.configure_trust(ctx)
        ctx.verify_mode = ssl.CERT_REQUIRED
    background = BackgroundServer(handler, context=ctx)
    try:
        yield TlsServer(background, ca, ca_file)
    finally:
        background.close()


@dataclass
class DifferentialStats:
    """What the differential tests compared, for the terminal summary."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    out_dir: Path | None = None

    def add(self, kind: str, repo: str, n: int) -> None:
        self.counts.setdefault(kind, {})
        self.counts[kind][repo] = self.counts[kind].get(repo, 0) + n

    def summary(self) -> dict[str, Any]:
        return {
            kind: {
                "repos": len(per_repo),
                "comparisons": sum(per_repo.values()),
                "per_repo": dict(sorted(per_repo.items())),
            }
            for kind, per_repo in sorted(self.counts.items())
        } | {"notes": self.notes}


_STATS = pytest.StashKey[DifferentialStats]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_STATS] = DifferentialStats()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    stats = config.stash.get(_STATS, None)
    if stats is None or (not stats.counts and not stats.notes):
        return
    summary = stats.summary()
    tr = terminalreporter
    tr.section("trustcheck differential comparisons")
    for kind, data in summary.items():
        if kind == "notes":
            continue
        tr.write_line(f"{kind}: {data['comparisons']} comparisons over {data['repos']} repos")
    for note in stats.notes:
        tr.write_line(f"note: {note}")
    if stats.out_dir is not None:
        path = stats.out_dir / "differential-counts.json"
        try:
            path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
            tr.write_line(f"counts written to {path}")
        except OSError as e:
            tr.write_line(f"could not write {path}: {e}")


@pytest.fixture(scope="session")
def differential_stats(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> DifferentialStats:
    stats = request.config.stash[_STATS]
    stats.out_dir = tmp_path_factory.getbasetemp()
    return stats


@pytest.fixture(scope="session")
def committed_fixtures() -> FixtureSet:
    """``fixtures/generated`` as committed: path, parsed manifest, validation time."""
    if not (COMMITTED_FIXTURES / "manifest.json").is_file():
        pytest.fail(
            f"{COMMITTED_FIXTURES}/manifest.json is missing: run "
            "`python -m fixtures.generate --out fixtures/generated` and commit the result"
        )
    return load_fixture_set(COMMITTED_FIXTURES)


@dataclass(frozen=True)
class FreshFixtures:
    """Fixtures generated at test time, plus docker's own trust cache (if docker ran)."""

    fixture_set: FixtureSet
    docker_trust_dir: Path | None
    docker_skipped_reason: str | None


@pytest.fixture(scope="session")
def fresh_fixtures(
    tmp_path_factory: pytest.TempPathFactory, differential_stats: DifferentialStats
) -> Iterator[FreshFixtures]:
    """Run the real generator now (real notary-server and client)."""
    missing = missing_notary_binaries()
    if missing:
        pytest.skip(
            "!!! REAL-SERVER TESTS SKIPPED: missing "
            + ", ".join(missing)
            + " (install with `make system-deps`, i.e. apt-get install notary); "
            "the differential comparison against the real notary client did NOT run !!!"
        )
    base = tmp_path_factory.mktemp("fresh-fixtures")
    out, docker_config = base / "generated", base / "docker-config"
    generate(out, docker_config_dir=docker_config)
    reason = docker_unavailable_reason()
    if reason is not None:
        differential_stats.notes.append(f"docker trust inspect comparison skipped: {reason}")
    yield FreshFixtures(
        fixture_set=load_fixture_set(out),
        docker_trust_dir=(docker_config / "trust") if reason is None else None,
        docker_skipped_reason=reason,
    )


@pytest.fixture(autouse=True)
def _isolated_trustcheck_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own state dir and config home (pins), so a run never
    reads or writes the user's, and tests never see each other's trusted roots."""
    home = tmp_path_factory.mktemp("tc-home")
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.delenv("TRUSTCHECK_STATE_DIR", raising=False)
    return home


@pytest.fixture(autouse=True)
def _offline_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests verify committed or freshly generated trust dirs without a server
    unless they say otherwise (tests of fetching unset this and pass --server)."""
    monkeypatch.setenv("TRUSTCHECK_OFFLINE", "1")
