"""OCI signature discovery (trustcheck.remote.oci) against real servers.

* the real docker-registry (distribution 2.8, no Referrers API): the referrers tag
  schema (``sha256-<hex>`` index) as ORAS/Notation maintain it, artifactType
  filtering, content by digest (checked, capped), tags, the referrers cap;
* a loopback HTTPS server speaking the OCI Referrers API (``Link`` pagination),
  which distribution 2.8 lacks: pagination, hostile links, wrong content.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest

from fixtures.oci_push import (
    MANIFEST_MEDIA_TYPE,
    OciPusher,
    Pushed,
    RunningRegistry,
    registry_server,
)
from tests.conftest import tls_server
from trustcheck.core.reference import parse_reference
from trustcheck.errors import NotTrusted
from trustcheck.remote.config import RemoteConfig
from trustcheck.remote.oci import OciRegistry, clear_cache, referrers_tag

pytestmark = pytest.mark.integration

SIG = "application/vnd.cncf.notary.signature"
SBOM = "application/spdx+json"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    from fixtures.notary_harness import missing_registry_binary

    reason = missing_registry_binary()
    if reason:
        pytest.skip(reason)
    with registry_server(tmp_path_factory.mktemp("oci-registry")) as reg:
        yield reg


@pytest.fixture
def pusher(registry: RunningRegistry) -> Iterator[OciPusher]:
    clear_cache()
    with OciPusher(registry.url, registry.ca_cert) as p:
        yield p


def _oci(registry: RunningRegistry, **kw: Any) -> OciRegistry:
    return OciRegistry(RemoteConfig(tls_ca=registry.ca_cert, retries=0), env={}, **kw)


def test_tag_schema_discovery_filters_by_artifact_type(
    registry: RunningRegistry, pusher: OciPusher
) -> None:
    image = pusher.push_image("team/disc", "v1")
    sig = pusher.push_artifact(
        "team/disc", subject=image, artifact_type=SIG, blobs=[("application/jose+json", b"{}1")]
    )
    sbom = pusher.push_artifact(
        "team/disc", subject=image, artifact_type=SBOM, blobs=[(SBOM, b'{"spdx":1}')]
    )
    # the legacy form: no artifactType, config.mediaType names the type
    legacy = pusher.push_artifact(
        "team/disc",
        subject=image,
        artifact_type=None,
        config_media_type=SIG,
        blobs=[("application/jose+json", b"{}2")],
    )
    other = pusher.push_image("team/disc", "v2")
    ref = parse_reference(f"{registry.host_port}/team/disc:v1")
    with _oci(registry) as oci:
        digest = oci.resolve(ref)
        assert digest == image.digest
        every = oci.referrers(ref, digest)
        assert oci.last_discovery == "tag-schema"
        assert [d.digest for d in every] == [sig.digest, sbom.digest, legacy.digest]
        sigs = oci.referrers(ref, digest, SIG)
        assert [d.digest for d in sigs] == [sig.digest, legacy.digest]
        assert all(d.artifact_type == SIG and d.size > 0 for d in sigs)
        assert oci.referrers(ref, digest, "application/x-none") == []
        # an image nobody refers to: no sha256-<hex> tag at all
        assert oci.referrers(ref, other.digest) == []
        assert oci.manifest(ref, sig.digest) == sig.body
        layer = json.loads(sig.body)["layers"][0]
        assert oci.blob(ref, layer["digest"], max_bytes=100) == b"{}1"


def test_content_is_capped_and_tags_are_optional(
    registry: RunningRegistry, pusher: OciPusher
) -> None:
    image = pusher.push_image("team/caps", "v1")
    big = b"x" * 5000
    blob_digest = pusher.push_blob("team/caps", big)
    ref = parse_reference(f"{registry.host_port}/team/caps:v1")
    with _oci(registry) as oci:
        with pytest.raises(NotTrusted) as e:
            oci.blob(ref, blob_digest, max_bytes=4096)
        assert e.value.code in ("file-too-large", "malicious-server")
        with pytest.raises(NotTrusted) as e:
            oci.manifest(ref, image.digest, max_bytes=100)
        assert e.value.code in ("file-too-large", "malicious-server")
        missing = "sha256:" + "0" * 64
        with pytest.raises(NotTrusted) as e:
            oci.blob(ref, missing, max_bytes=10)
        assert e.value.code == "blob-not-found"
        with pytest.raises(NotTrusted) as e:
            oci.manifest(ref, missing)
        assert e.value.code == "manifest-not-found"
        with pytest.raises(NotTrusted) as e:
            oci.manifest(ref, "sha256:ABC")
        assert e.value.code == "oci-invalid"
        assert oci.tag_manifest(ref, "sha256-" + "1" * 64 + ".sig") is None
        found = oci.tag_manifest(ref, "v1")
        assert found == (image.digest, image.body)


def test_a_referrers_flood_is_refused_in_bounded_time(
    registry: RunningRegistry, pusher: OciPusher
) -> None:
    """1,050 real artifacts refer to one image (the tag schema index lists them all,
    ~220 KB): one capped GET, then refused; nothing is fetched per referrer."""
    image = pusher.push_image("team/flood", "v1")
    layer = ("application/jose+json", b"flood")
    bodies = [
        pusher.artifact_manifest(
            "team/flood", subject=image, artifact_type=SIG, blobs=[layer], annotations={"n": str(i)}
        )
        for i in range(1050)
    ]

    def put(body: bytes) -> Pushed:
        digest = pusher.put_manifest("team/flood", hashlib.sha256(body).hexdigest()[:20], body)
        return Pushed("team/flood", digest, MANIFEST_MEDIA_TYPE, body, SIG)

    with ThreadPoolExecutor(4) as pool:
        flood = list(pool.map(put, bodies))
    pusher.add_referrers("team/flood", image.digest, flood)
    ref = parse_reference(f"{registry.host_port}/team/flood@{image.digest}")
    with _oci(registry) as oci:
        with pytest.raises(NotTrusted) as e:
            oci.referrers(ref, image.digest, SIG)
        assert e.value.code == "referrers-limit-exceeded"
        assert "more than 1000 referrers (1050 seen)" in e.value.message
    with _oci(registry, max_referrers=2000) as oci:
        assert len(oci.referrers(ref, image.digest, SIG)) == 1050
    with _oci(registry, max_referrers=2000, max_index_bytes=64 << 10) as oci:
        with pytest.raises(NotTrusted) as e:
            oci.referrers(ref, image.digest, SIG)
        assert e.value.code in ("file-too-large", "malicious-server")


# --------------------------------------------------------------------------- Referrers API


class _ReferrersApi(BaseHTTPRequestHandler):
    """A registry with the OCI Referrers API: pages of 2, linked by ``Link``."""

    subject: ClassVar[str] = "sha256:" + "a" * 64
    entries: ClassVar[list[dict[str, Any]]] = []
    link_override: ClassVar[str | None] = None
    manifests: ClassVar[dict[str, bytes]] = {}
    seen: ClassVar[list[str]] = []
    page_size: ClassVar[int] = 2
    #: tag -> (body, Docker-Content-Digest header)
    tags: ClassVar[dict[str, tuple[bytes, str]]] = {}

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.seen.append(self.path)
        if self.path == "/v2/":
            return self._send(200, b"{}")
        prefix = f"/v2/team/app/referrers/{self.subject}"
        if self.path.startswith(prefix):
            page = 0
            if "page=" in self.path:
                page = int(self.path.rsplit("page=", 1)[1].split("&")[0])
            n = self.page_size
            chunk = self.entries[page * n : page * n + n]
            headers = {"Content-Type": "application/vnd.oci.image.index.v1+json"}
            if self.link_override is not None:
                headers["Link"] = self.link_override
            elif page * n + n < len(self.entries):
                headers["Link"] = f'<{prefix}?page={page + 1}>; rel="next"'
            doc = {"schemaVersion": 2, "manifests": chunk}
            return self._send(200, json.dumps(doc).encode(), headers)
        for tag, (body, header) in self.tags.items():
            if self.path == f"/v2/team/app/manifests/{tag}":
                return self._send(200, body, {"Docker-Content-Digest": header})
        for digest, body in self.manifests.items():
            if self.path == f"/v2/team/app/manifests/{digest}":
                return self._send(200, body)
        self._send(404, b'{"errors":[{"code":"NOT_FOUND"}]}')


def _entry(i: int, artifact_type: str) -> dict[str, Any]:
    return {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + hashlib.sha256(f"e{i}".encode()).hexdigest(),
        "size": 100 + i,
        "artifactType": artifact_type,
    }


def test_a_malformed_referrers_index_is_refused(tmp_path: Path) -> None:
    """distribution refuses to store such an index; a hostile registry serves it."""
    clear_cache()
    api = _ReferrersApi
    api.link_override = None
    subject = api.subject
    cases: list[tuple[dict[str, Any], str]] = [
        ({"mediaType": "x", "digest": "sha256:12", "size": 1}, "digest"),
        ({"mediaType": "x", "digest": subject, "size": -1}, "size"),
        ({"mediaType": "x", "digest": subject, "size": True}, "size"),
        ({"digest": subject, "size": 1}, "mediaType"),
        ({"mediaType": "x", "digest": subject, "size": 1, "artifactType": 5}, "artifactType"),
        ({"mediaType": "x", "digest": subject, "size": 1, "annotations": {"a": 1}}, "annot"),
    ]
    with tls_server(api, tmp_path) as srv:
        ref = parse_reference(f"{srv.netloc}/team/app@{subject}")
        with OciRegistry(RemoteConfig(tls_ca=srv.ca_file, retries=0), env={}) as oci:
            for entry, word in cases:
                api.entries = [entry]
                with pytest.raises(NotTrusted) as e:
                    oci.referrers(ref, subject)
                assert e.value.code == "oci-invalid" and word in e.value.message, entry


def test_referrers_api_pages_and_hostile_answers(tmp_path: Path) -> None:
    clear_cache()
    api = _ReferrersApi
    api.entries = [_entry(i, SIG if i % 2 == 0 else SBOM) for i in range(5)]
    api.link_override = None
    api.seen = []
    real = b'{"schemaVersion":2}'
    real_digest = "sha256:" + hashlib.sha256(real).hexdigest()
    forged_digest = "sha256:" + "b" * 64
    api.manifests = {real_digest: real, forged_digest: b"not what was asked"}
    with tls_server(api, tmp_path) as srv:
        ref = parse_reference(f"{srv.netloc}/team/app@{api.subject}")
        remote = RemoteConfig(tls_ca=srv.ca_file, retries=0)
        with OciRegistry(remote, env={}) as oci:
            got = oci.referrers(ref, api.subject, SIG)
            assert oci.last_discovery == "api"
            assert [d.digest for d in got] == [api.entries[i]["digest"] for i in (0, 2, 4)]
            pages = [p for p in api.seen if "/referrers/" in p]
            assert len(pages) == 3 and "artifactType=" in pages[0]
            # a cap below the total: refused, whatever the page size
            with OciRegistry(remote, env={}, max_referrers=3) as small:
                with pytest.raises(NotTrusted) as e:
                    small.referrers(ref, api.subject, SIG)
                assert e.value.code == "referrers-limit-exceeded"
            for link, word in [
                ('<https://evil.example/v2/x>; rel="next"', "another origin"),
                ('</elsewhere>; rel="next"', "outside /v2/"),
                (f'</v2/team/app/referrers/{api.subject}?page=0>; rel="next"', "loops"),
            ]:
                api.link_override = link
                with pytest.raises(NotTrusted) as e:
                    oci.referrers(ref, api.subject)
                assert e.value.code == "oci-invalid" and word in e.value.message, link
            api.link_override = None
            assert oci.manifest(ref, real_digest) == real
            with pytest.raises(NotTrusted) as e:
                oci.manifest(ref, forged_digest)
            assert e.value.code == "content-digest-mismatch"
            # a tag whose Docker-Content-Digest is not the digest of what is served
            api.tags = {"sig": (real, forged_digest), "ok": (real, real_digest)}
            with pytest.raises(NotTrusted) as e:
                oci.tag_manifest(ref, "sig")
            assert e.value.code == "content-digest-mismatch"
            assert oci.tag_manifest(ref, "ok") == (real_digest, real)
            # a deadline shared by the calls about one image: once spent, nothing is asked
            from trustcheck.remote.http import Deadline

            spent = Deadline(0.0)
            asked = len(api.seen)
            with pytest.raises(NotTrusted) as e:
                oci.referrers(ref, api.subject, SIG, deadline=spent)
            assert e.value.code == "server-timeout" and len(api.seen) == asked
            # the one good answer is cached: the server is not asked again
            before = len(api.seen)
            assert oci.manifest(ref, real_digest) == real
            assert len(api.seen) == before


def test_pushed_descriptor_round_trip() -> None:
    """The helper's descriptors are what the tag schema index holds."""
    p = Pushed("r", "sha256:" + "c" * 64, "m", b"abc", artifact_type=SIG, annotations={"k": "v"})
    assert p.descriptor() == {
        "mediaType": "m",
        "digest": p.digest,
        "size": 3,
        "artifactType": SIG,
        "annotations": {"k": "v"},
    }
    assert referrers_tag(p.digest) == "sha256-" + "c" * 64


def test_a_referrers_api_flood_stops_at_the_cap(tmp_path: Path) -> None:
    """5,000 referrers in pages of 100: refused once the cap is passed (11 pages
    fetched, not 50); no referrer manifest is fetched."""
    clear_cache()
    api = _ReferrersApi
    api.entries = [_entry(i, SIG) for i in range(5000)]
    api.link_override = None
    api.page_size = 100
    api.seen = []
    try:
        with tls_server(api, tmp_path) as srv:
            ref = parse_reference(f"{srv.netloc}/team/app@{api.subject}")
            remote = RemoteConfig(tls_ca=srv.ca_file, retries=0)
            with OciRegistry(remote, env={}) as oci, pytest.raises(NotTrusted) as e:
                oci.referrers(ref, api.subject, SIG)
        assert e.value.code == "referrers-limit-exceeded"
        pages = [p for p in api.seen if "/referrers/" in p]
        assert len(pages) == 11 and not [p for p in api.seen if "/manifests/" in p]
    finally:
        api.page_size = 2


def test_discovery_uses_the_registry_token_flow(tmp_path: Path) -> None:
    """A docker-registry with token auth: the referrers, the manifests and the envelope
    blob are read with one pull token for the repository (the same auth stack as
    registry_digest); without credentials the registry refuses (auth-failed)."""
    from token_issuer import TokenIssuer, make_signing_material

    from fixtures.notary_harness import DockerRegistry, make_tls, missing_registry_binary

    if missing_registry_binary():
        pytest.skip(missing_registry_binary() or "")
    clear_cache()
    tls = make_tls(tmp_path / "tls")
    signing = make_signing_material(tmp_path / "signing")
    issuer = TokenIssuer(signing, tls.server_cert, tls.server_key, users={"alice": "s3cret"})
    with issuer:
        auth = {
            "token": {
                "realm": issuer.realm,
                "service": "registry-test",
                "issuer": issuer.issuer,
                "rootcertbundle": str(signing.bundle),
            }
        }
        with DockerRegistry(tmp_path / "registry", tls=tls, auth=auth) as reg:
            token = issuer.make_token("registry-test", ["repository:team/app:push,pull"], "alice")
            with OciPusher(reg.url, tls.ca_cert, token=token) as pusher:
                image = pusher.push_image("team/app", "v1")
                sig = pusher.push_artifact(
                    "team/app", subject=image, artifact_type=SIG, blobs=[("a/b", b"env")]
                )
            issuer.requests.clear()
            ref = parse_reference(f"{reg.host_port}/team/app:v1")
            remote = RemoteConfig(tls_ca=tls.ca_cert, username="alice", password="s3cret")
            with OciRegistry(remote, env={"HOME": str(tmp_path)}) as oci:
                digest = oci.resolve(ref)
                assert [d.digest for d in oci.referrers(ref, digest, SIG)] == [sig.digest]
                layer = json.loads(oci.manifest(ref, sig.digest))["layers"][0]["digest"]
                assert oci.blob(ref, layer, max_bytes=100) == b"env"
            granted = [r for r in issuer.requests if r.status == 200]
            assert len(granted) == 1 and granted[0].scopes == ["repository:team/app:pull"]
            anonymous = RemoteConfig(tls_ca=tls.ca_cert, retries=0)
            with OciRegistry(anonymous, env={"HOME": str(tmp_path)}) as oci:
                with pytest.raises(NotTrusted) as e:
                    oci.referrers(ref, image.digest, SIG)
                assert e.value.code == "auth-failed"
