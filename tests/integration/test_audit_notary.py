"""``trustcheck audit`` on trust data made by the real notary client, with planted issues.

(Named ``test_audit_notary.py``: pytest's default import mode cannot collect
two test modules called ``test_audit.py`` in package-less folders.)

One real notary-server; each repository has its own publisher (its own root
key) and, except one, a root rotated to two keys (``notary key rotate GUN root
--key A --key B``), so each plants exactly one issue:

================  ============================================================
repository        planted
================  ============================================================
clean             nothing (pinned, two root keys, releases signer, 10-y certs)
weak              a 1024-bit RSA ``PUBLIC KEY`` as a second targets/releases
                  key (notary refuses an RSA-1024 *certificate*, not this)
expiring          a targets/releases certificate valid for 30 days
shared-a/-b       one targets/releases key in both collections
idle              targets/idle delegated, never signed
unreleased        ``nightly`` signed only in targets/dev
single-root       notary's default root: threshold 1, one key
unpinned          no entry in the pin file
broken            targets.json altered after download (hash mismatch)
stale-snapshot    targets/late.json cached, the cached snapshot predates it
================  ============================================================

A fresh client downloads them all into one trust dir; trustcheck audits it
(in-process CLI) and each planted issue must be found exactly once, the clean
repository with no finding at all.  Tags, roles and keys are compared with
what the real client and its keystore say.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import io
import json
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from fixtures.notary_harness import (
    OFFLINE_SERVER,
    RELEASED_ROLES,
    DelegationKey,
    NotaryClient,
    NotaryServer,
    copy_trust_dir,
    download_many,
    find_binary,
    make_delegation_key,
    make_rsa_public_key,
    missing_notary_binaries,
    offline_list,
    rotate_root_to_new_keys,
    sha256_hex,
)

if TYPE_CHECKING:
    from conftest import CliRun

    Cli = Callable[..., CliRun]

pytestmark = pytest.mark.integration

P = "localhost/audit-"
EXPECTED: dict[str, list[str]] = {
    "clean": [],
    "weak": ["weak-key"],
    "expiring": ["cert-expiring"],
    "shared-a": [],
    "shared-b": [],
    "idle": ["signer-signed-nothing"],
    "unreleased": ["unreleased-tag"],
    "single-root": ["root-single-key"],
    "unpinned": ["unpinned"],
    "broken": ["unverifiable"],
    "stale-snapshot": ["delegation-not-in-snapshot"],
}
BROWSERS = (
    "chromium",
    "chromium-browser",
    "chromium-headless-shell",
    "headless_shell",
    "google-chrome",
    "google-chrome-stable",
)


@dataclass
class Lab:
    server: NotaryServer
    base: Path
    trust: Path  # the fresh client's cache of every repository
    pins: Path
    publishers: dict[str, NotaryClient]
    keys: dict[str, DelegationKey]
    weak_pub: Path
    digests: dict[tuple[str, str], str]


def _sign(client: NotaryClient, gun: str, tag: str, roles: tuple[str, ...] = ()) -> str:
    data = f"{gun}:{tag}".encode()
    digest = sha256_hex(data)
    client.addhash(gun, tag, len(data), digest, roles)
    return "sha256:" + digest


def _root_cert_pins(trust: Path, gun: str) -> list[str]:
    doc = json.loads((trust / "tuf" / gun / "metadata" / "root.json").read_bytes())["signed"]
    out = []
    for kid in doc["roles"]["root"]["keyids"]:
        pem = base64.b64decode(doc["keys"][kid]["keyval"]["public"])
        der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
        out.append("cert-sha256:" + hashlib.sha256(der).hexdigest())
    return out


def _build(base: Path, server: NotaryServer) -> Lab:
    pubs: dict[str, NotaryClient] = {}
    keys: dict[str, DelegationKey] = {}
    digests: dict[tuple[str, str], str] = {}
    kdir = base / "keys"

    def publisher(name: str, *, two_root_keys: bool = True) -> tuple[NotaryClient, str]:
        gun = P + name
        pub = NotaryClient.for_server(base / "publishers" / name / "trust", server)
        pub.init_and_publish(gun)
        if two_root_keys:
            rotate_root_to_new_keys(pub, gun, kdir / name)
        pubs[name] = pub
        return pub, gun

    def releaser(pub: NotaryClient, gun: str, key: DelegationKey, extra: list[Path] = []) -> None:  # noqa: B006
        pub.delegation_add(gun, "targets/releases", [key.public, *extra])
        pub.key_import(key.private, "targets/releases")

    def sign(pub: NotaryClient, name: str, tag: str, roles: tuple[str, ...] = ()) -> None:
        digests[(name, tag)] = _sign(pub, P + name, tag, roles)

    for name in ("clean", "weak", "expiring", "idle", "unreleased", "stale-snapshot"):
        keys[name] = make_delegation_key(
            kdir, f"{name}-releaser", valid_days=30 if name == "expiring" else 3650
        )
    keys["shared"] = make_delegation_key(kdir, "shared-releaser")
    keys["idle-signer"] = make_delegation_key(kdir, "idle-signer")
    keys["dev"] = make_delegation_key(kdir, "dev", "ecdsa")
    keys["late"] = make_delegation_key(kdir, "late")
    weak_pub = make_rsa_public_key(kdir, "weak-1024", 1024)

    pub, gun = publisher("clean")
    releaser(pub, gun, keys["clean"])
    sign(pub, "clean", "v1", ("targets/releases",))
    sign(pub, "clean", "latest")
    pub.publish(gun)

    pub, gun = publisher("weak")
    releaser(pub, gun, keys["weak"], [weak_pub])
    sign(pub, "weak", "v1", ("targets/releases",))
    pub.publish(gun)

    pub, gun = publisher("expiring")
    releaser(pub, gun, keys["expiring"])
    sign(pub, "expiring", "v1", ("targets/releases",))
    pub.publish(gun)

    for name in ("shared-a", "shared-b"):
        pub, gun = publisher(name)
        releaser(pub, gun, keys["shared"])
        sign(pub, name, "v1", ("targets/releases",))
        pub.publish(gun)

    pub, gun = publisher("idle")
    releaser(pub, gun, keys["idle"])
    pub.delegation_add(gun, "targets/idle", [keys["idle-signer"].public])
    sign(pub, "idle", "v1", ("targets/releases",))
    pub.publish(gun)

    pub, gun = publisher("unreleased")
    releaser(pub, gun, keys["unreleased"])
    pub.delegation_add(gun, "targets/dev", [keys["dev"].public])
    pub.key_import(keys["dev"].private, "targets/dev")
    sign(pub, "unreleased", "v1", ("targets/releases",))
    sign(pub, "unreleased", "nightly", ("targets/dev",))
    pub.publish(gun)

    pub, gun = publisher("single-root", two_root_keys=False)
    sign(pub, "single-root", "v1")
    pub.publish(gun)

    for name in ("unpinned", "broken"):
        pub, gun = publisher(name)
        sign(pub, name, "v1")
        pub.publish(gun)

    pub, gun = publisher("stale-snapshot")
    releaser(pub, gun, keys["stale-snapshot"])
    pub.delegation_add(gun, "targets/late", [keys["late"].public])
    pub.key_import(keys["late"].private, "targets/late")
    sign(pub, "stale-snapshot", "v1", ("targets/releases",))
    pub.publish(gun)

    trust = download_many(server, base / "cache" / "trust", [P + n for n in EXPECTED])

    # stale-snapshot: the signer publishes after the download; the new
    # targets/late.json lands in the cache, the cached snapshot stays older
    late_gun = P + "stale-snapshot"
    sign(pubs["stale-snapshot"], "stale-snapshot", "late-1", ("targets/late",))
    pubs["stale-snapshot"].publish(late_gun)
    newer = download_many(server, base / "newer" / "trust", [late_gun])
    shutil.copyfile(
        newer / "tuf" / late_gun / "metadata" / "targets" / "late.json",
        trust / "tuf" / late_gun / "metadata" / "targets" / "late.json",
    )
    # broken: targets.json no longer matches the hash the snapshot records
    broken = trust / "tuf" / (P + "broken") / "metadata" / "targets.json"
    raw = broken.read_bytes()
    assert b'"expires":"2' in raw
    broken.write_bytes(raw.replace(b'"expires":"2', b'"expires":"3', 1))  # same length

    pins = base / "pins.toml"
    lines = ["version = 1", ""]
    for name in EXPECTED:
        if name == "unpinned":
            continue
        ids = ", ".join(f'"{i}"' for i in _root_cert_pins(trust, P + name))
        lines += [f'[pins."{P}{name}"]', f"root = [{ids}]", ""]
    pins.write_text("\n".join(lines))
    return Lab(server, base, trust, pins, pubs, keys, weak_pub, digests)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    missing = missing_notary_binaries()
    if missing:
        pytest.skip(
            "!!! REAL-SERVER TESTS SKIPPED: missing "
            + ", ".join(missing)
            + " (install with `make system-deps`); the audit of real notary data did NOT run !!!"
        )
    base = tmp_path_factory.mktemp("audit-lab")
    with NotaryServer(base / "server") as server:
        yield _build(base, server)


def audit(cli: Cli, lab: Lab, *args: str, code: int = 0) -> CliRun:
    run = cli("audit", "--trust-dir", str(lab.trust), "--pins", str(lab.pins), *args)
    assert run.code == code, f"exit {run.code}: {run.stderr}"
    return run


@pytest.fixture(scope="module")
def report(lab: Lab) -> dict[str, Any]:
    from conftest import run_trustcheck

    run = run_trustcheck(
        "audit", "--all", "--format", "json", "--trust-dir", str(lab.trust), "--pins", str(lab.pins)
    )
    assert run.code == 0, run.stderr
    doc: dict[str, Any] = json.loads(run.stdout)
    return doc


def _collection(report: dict[str, Any], name: str) -> dict[str, Any]:
    (col,) = [c for c in report["collections"] if c["gun"] == P + name]
    assert isinstance(col, dict)
    return col


def _load_unit_helpers() -> Any:
    path = Path(__file__).resolve().parents[1] / "unit" / "test_audit.py"
    spec = importlib.util.spec_from_file_location("audit_unit_helpers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- findings


def test_each_planted_issue_is_found_exactly_once(report: dict[str, Any]) -> None:
    per_gun: dict[str, list[str]] = {P + n: [] for n in EXPECTED}
    shared = []
    for f in report["findings"]:
        if f["code"] == "shared-key":
            shared.append(f)
            continue
        assert f["gun"] in per_gun, f
        per_gun[f["gun"]].append(f["code"])
    assert {g.removeprefix(P): sorted(c) for g, c in per_gun.items()} == EXPECTED
    # the one shared key: the releaser key of shared-a and shared-b, nothing else
    (only,) = shared
    assert only["gun"] is None
    assert sorted(only["locations"]) == [
        f"{P}shared-a targets/releases",
        f"{P}shared-b targets/releases",
    ]
    assert report["summary"]["collections"] == len(EXPECTED)
    assert report["summary"]["unverifiable"] == 1


def test_clean_repository_has_no_findings(cli_lab: tuple[Cli, Lab]) -> None:
    cli, lab = cli_lab
    run = audit(cli, lab, "--format", "json", "--fail-on", "warning", P + "clean")
    doc = json.loads(run.stdout)
    assert doc["findings"] == []
    assert doc["summary"]["findings"] == {"error": 0, "warning": 0}
    (col,) = doc["collections"]
    assert col["status"] == "verified" and col["pinned"] is True and col["findings"] == []


@pytest.fixture
def cli_lab(lab: Lab, trustcheck_cli: Cli) -> tuple[Cli, Lab]:
    return trustcheck_cli, lab


def test_weak_key_is_the_1024_bit_rsa_public_key(report: dict[str, Any], lab: Lab) -> None:
    (finding,) = [f for f in report["findings"] if f["code"] == "weak-key"]
    col = _collection(report, "weak")
    (row,) = [k for k in col["keys"] if k["bits"] is not None]
    assert (row["role"], row["key_type"], row["algorithm"], row["bits"]) == (
        "targets/releases",
        "rsa",
        "RSA 1024",
        1024,
    )
    assert finding["key"] == row["canonical_key_id"]
    # the ID is the notary key ID of that PEM public key (what notary delegation add stored)
    targets = json.loads(
        (lab.trust / "tuf" / (P + "weak") / "metadata" / "targets.json").read_bytes()
    )
    (releases,) = targets["signed"]["delegations"]["roles"]
    assert row["key_id"] in releases["keyids"]
    assert targets["signed"]["delegations"]["keys"][row["key_id"]]["keytype"] == "rsa"
    # it lets its holder sign alone: threshold 1 of the two keys
    (entry,) = [k for k in report["keys"] if k["canonical_key_id"] == row["canonical_key_id"]]
    (use,) = entry["uses"]
    assert (use["threshold"], use["role_keys"]) == (1, 2)
    assert "Docker pulls them" in use["can_sign"]


def test_expiring_certificate_is_the_30_day_signer_certificate(
    report: dict[str, Any], lab: Lab
) -> None:
    (finding,) = [f for f in report["findings"] if f["code"] == "cert-expiring"]
    cert = x509.load_pem_x509_certificate(lab.keys["expiring"].public.read_bytes())
    assert finding["date"] == cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert finding["role"] == "targets/releases"
    (item,) = [t for t in report["timeline"] if t["status"] != "ok"]
    assert (item["gun"], item["kind"], item["label"]) == (
        P + "expiring",
        "certificate",
        "CN=expiring-releaser",
    )


def test_unverifiable_collection_keeps_its_error_and_root_keys(
    report: dict[str, Any], lab: Lab
) -> None:
    col = _collection(report, "broken")
    assert col["status"] == "unverifiable"
    assert col["error"]["code"] == "hash-mismatch"
    (finding,) = col["findings"]
    assert (finding["code"], finding["error_code"]) == ("unverifiable", "hash-mismatch")
    root = json.loads((lab.trust / "tuf" / (P + "broken") / "metadata" / "root.json").read_bytes())
    want = root["signed"]["roles"]
    got_roles = {r["name"]: r for r in col["roles"]}
    assert set(got_roles) == {"root", "targets", "snapshot", "timestamp"}
    for name, r in got_roles.items():
        assert (r["keyids"], r["threshold"]) == (want[name]["keyids"], want[name]["threshold"])
        assert r["status"] == "unverified"
    assert sorted(k["key_id"] for k in col["keys"] if k["role"] == "root") == sorted(
        want["root"]["keyids"]
    )


def test_tags_and_signers_match_the_real_notary_client(report: dict[str, Any], lab: Lab) -> None:
    compared = 0
    for name in EXPECTED:
        col = _collection(report, name)
        if col["status"] != "verified":
            continue
        copy = copy_trust_dir(lab.trust, lab.base / "notary-view" / name)
        listing = offline_list(copy, P + name)  # notary -r targets/releases -r targets
        assert listing.error is None, listing.error
        rows = {r.name: r for r in listing.rows}
        released = {t["tag"]: t for t in col["released_tags"]}
        unreleased = {t["tag"]: t for t in col["unreleased_tags"]}
        assert set(released) == {n for n, r in rows.items() if r.role in RELEASED_ROLES}
        assert set(unreleased) == {n for n, r in rows.items() if r.role not in RELEASED_ROLES}
        for tag, r in rows.items():
            got = released.get(tag) or unreleased[tag]
            assert (got["digest"], got["role"]) == ("sha256:" + r.digest, r.role)
            assert lab.digests[(name, tag)] == got["digest"]
            compared += 1
    assert compared == 12
    idle = _collection(report, "idle")
    roles = {r["name"]: r for r in idle["roles"]}
    assert roles["targets/idle"]["status"] == "not-in-snapshot"
    assert roles["targets/releases"]["tags"] == 1
    releases = next(s for s in idle["signers"] if s["role"] == "targets/releases")
    assert [t["tag"] for t in releases["tags"]] == ["v1"]
    clean = _collection(report, "clean")
    (v1,) = [t for t in clean["released_tags"] if t["tag"] == "v1"]
    assert (v1["role"], v1["signers"]) == ("targets/releases", ["releases"])


def test_roles_and_keys_match_root_json_and_the_keystore(report: dict[str, Any], lab: Lab) -> None:
    col = _collection(report, "clean")
    meta = lab.trust / "tuf" / (P + "clean") / "metadata"
    root = json.loads((meta / "root.json").read_bytes())["signed"]
    roles = {r["name"]: r for r in col["roles"]}
    for name in ("root", "targets", "snapshot", "timestamp"):
        assert roles[name]["keyids"] == root["roles"][name]["keyids"]
        assert roles[name]["threshold"] == root["roles"][name]["threshold"]
        assert roles[name]["expires"] is not None
    assert len(roles["root"]["keyids"]) == 2  # the rotation to two keys
    assert roles["targets/releases"]["paths"] == [""]
    # notary names each private key file after its canonical key ID (spec §2.4)
    private = lab.publishers["clean"].trust_dir / "private"
    on_disk = {p.stem for p in private.rglob("*.key")}
    for k in col["keys"]:
        if k["role"] in ("targets", "snapshot", "root", "targets/releases"):
            assert k["canonical_key_id"] in on_disk, k
        if k["role"] == "root":
            assert k["subject_cn"] == P + "clean" and k["cert_sha256"] is not None


def test_not_in_snapshot_needs_the_cached_file(report: dict[str, Any]) -> None:
    col = _collection(report, "stale-snapshot")
    roles = {r["name"]: r for r in col["roles"]}
    assert roles["targets/late"]["status"] == "not-in-snapshot"
    assert "late-1" not in {t["tag"] for t in col["released_tags"] + col["unreleased_tags"]}


# --------------------------------------------------------------------------- key filter, CSV


def test_key_filter_answers_what_the_shared_key_can_sign(cli_lab: tuple[Cli, Lab]) -> None:
    cli, lab = cli_lab
    cert = x509.load_pem_x509_certificate(lab.keys["shared"].public.read_bytes())
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    openssl_form = ":".join(fingerprint[i : i + 2] for i in range(0, 20, 2)).upper()
    run = audit(cli, lab, "--all", "--format", "json", "--key", openssl_form)
    doc = json.loads(run.stdout)
    (entry,) = doc["keys"]
    assert fingerprint in entry["cert_sha256"]
    assert sorted(u["gun"] for u in entry["uses"]) == [P + "shared-a", P + "shared-b"]
    assert all(u["role"] == "targets/releases" and u["tags"] == 1 for u in entry["uses"])
    assert sorted(c["gun"] for c in doc["collections"]) == [P + "shared-a", P + "shared-b"]
    assert [f["code"] for f in doc["findings"]] == ["shared-key"]
    table = audit(cli, lab, "--all", "--key", fingerprint[:16]).stdout
    assert "via targets/releases" in table and "KEY INDEX (1 keys)" in table


def test_targets_csv_lists_every_signed_tag(cli_lab: tuple[Cli, Lab], tmp_path: Path) -> None:
    cli, lab = cli_lab
    out = tmp_path / "tags.csv"
    audit(cli, lab, "--all", "--format", "csv", "--targets-csv", str(out))
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    got = {(r["gun"].removeprefix(P), r["tag"]): r for r in rows}
    assert set(got) == {k for k in lab.digests if k[0] not in ("broken",) and k[1] != "late-1"}
    for key, r in got.items():
        assert r["digest"] == lab.digests[key]
        assert r["image"] == f"{P}{key[0]}@{lab.digests[key]}"
    assert got[("unreleased", "nightly")]["released"] == "false"
    assert got[("unreleased", "nightly")]["signers"] == "dev"
    assert got[("clean", "v1")]["released"] == "true"


def test_fail_on_sets_the_exit_code(cli_lab: tuple[Cli, Lab]) -> None:
    cli, lab = cli_lab
    audit(cli, lab, "--all", "--fail-on", "error", code=1)  # weak-key, unverifiable
    audit(cli, lab, P + "idle", "--fail-on", "error", code=0)  # a warning only
    audit(cli, lab, P + "idle", "--fail-on", "warning", code=1)


# --------------------------------------------------------------------------- formats


def test_every_format_parses(report: dict[str, Any], cli_lab: tuple[Cli, Lab]) -> None:
    cli, lab = cli_lab
    helpers = _load_unit_helpers()
    helpers.assert_valid_report(report)

    rows = list(csv.DictReader(io.StringIO(audit(cli, lab, "--all", "--format", "csv").stdout)))
    assert Counter(r["code"] for r in rows) == Counter(f["code"] for f in report["findings"])

    md = audit(cli, lab, "--all", "--format", "markdown").stdout
    helpers.assert_markdown_tables(md)
    for f in report["findings"]:
        assert f"`{f['code']}`" in md

    page = audit(cli, lab, "--all", "--format", "html").stdout
    checker = helpers.assert_self_contained_html(page)
    assert checker.svg_rows >= len([t for t in report["timeline"]][:150])

    table = audit(cli, lab, "--all").stdout
    assert table.startswith("trustcheck audit at ")
    for name in EXPECTED:
        assert P + name in table


def test_html_renders_in_a_headless_browser(cli_lab: tuple[Cli, Lab], tmp_path: Path) -> None:
    browser = next((b for b in map(find_binary, BROWSERS) if b is not None), None)
    if browser is None:
        pytest.skip(
            "!!! HEADLESS BROWSER CHECK SKIPPED: no chromium / chrome on PATH "
            f"(tried {', '.join(BROWSERS)}; apt-get install chromium-headless-shell). The HTML "
            "was still parsed with html.parser in test_every_format_parses !!!"
        )
    cli, lab = cli_lab
    page = tmp_path / "audit.html"
    audit(cli, lab, "--all", "--format", "html", "--output", str(page))
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<svg" in dom.stdout and "Signer-key audit" in dom.stdout
    assert "weak-key" in dom.stdout and P + "broken" in dom.stdout
    shot = tmp_path / "audit.png"
    done = subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # a rendered page, not a blank one


# --------------------------------------------------------------------------- fetched runs


def test_fetched_audit_is_clean_and_cache_only_when_the_server_is_gone(
    cli_lab: tuple[Cli, Lab], tmp_path: Path
) -> None:
    cli, lab = cli_lab
    gun = P + "clean"
    trust = copy_trust_dir(lab.trust, tmp_path / "trust")
    common = ["--trust-dir", str(trust), "--pins", str(lab.pins), "--format", "json", gun]
    live = cli("audit", "--server", lab.server.url, "--tls-ca", str(lab.server.ca_cert), *common)
    assert live.code == 0, live.stderr
    doc = json.loads(live.stdout)
    assert doc["findings"] == [] and doc["collections"][0]["fetched"] is True

    gone = cli("audit", "--server", OFFLINE_SERVER, "--retries", "0", "--timeout", "2", *common)
    assert gone.code == 0, gone.stderr
    doc = json.loads(gone.stdout)
    (finding,) = doc["findings"]
    assert (finding["code"], finding["gun"]) == ("cache-only", gun)
    assert doc["collections"][0]["status"] == "verified"
    # the same cache audited offline is not "cache-only": nothing was asked of a server
    offline = cli("audit", *common)
    assert json.loads(offline.stdout)["findings"] == []
