"""Pins, root rotation and rollback state, on trust data made by the real notary.

Every repository here is built at test time on a real notary-server (loopback,
memory storage) with the real ``notary`` client, then downloaded by a *fresh*
client: the bytes Docker caches on first use.  trustcheck (its CLI, in-process)
then judges those caches with a pin file and/or a state dir:

* root rotation by ``notary key rotate GUN root`` (and a chain of two, walked
  through ``2.root.json`` as the server serves it), targets key rotation;
* a forged root: the same GUN published on a second notary-server, so a
  self-consistent root not signed by the genuine one;
* pins by every identifier kind (``pin add --kind``), notary client configs
  (``trust_pinning``; the real client is run on the same config), a CA pin
  on a root certificate issued by a test CA (``notary init --rootkey
  --rootcert``), signer pins;
* rollback of each role across runs.

Assertions are on error codes (``verify --json``), never on exit codes alone.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import shutil
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fixtures.notary_harness import (
    NotaryClient,
    NotaryServer,
    copy_trust_dir,
    fetch_root_version,
    fresh_download,
    make_delegation_key,
    metadata_files,
    missing_notary_binaries,
    notary_encrypted_key,
    run_command,
    sha256_hex,
)

if TYPE_CHECKING:
    from conftest import CliRun

    Cli = Callable[..., CliRun]

pytestmark = pytest.mark.integration

KINDS = ("cert-sha256", "spki-sha256", "keyid", "canonical")


# --------------------------------------------------------------------------- lab


@dataclass
class Lab:
    """One real notary-server and a folder for publishers and downloaded caches."""

    server: NotaryServer
    base: Path

    def publisher(self, name: str) -> NotaryClient:
        """A publisher with its own trust dir: ``notary init`` reuses any root key
        in the keystore, so sharing one would give several GUNs the same root key."""
        return NotaryClient.for_server(self.base / "publishers" / name / "trust", self.server)

    def cache(self, gun: str, label: str) -> Path:
        """A fresh client's download of ``gun`` now (what Docker caches)."""
        return fresh_download(self.server, self.base / "caches" / label / "trust", gun)


def _start_lab(factory: pytest.TempPathFactory, name: str) -> Iterator[Lab]:
    missing = missing_notary_binaries()
    if missing:
        pytest.skip(
            "!!! REAL-SERVER TESTS SKIPPED: missing "
            + ", ".join(missing)
            + " (install with `make system-deps`); pinning, rotation and rollback against "
            "real notary data did NOT run !!!"
        )
    base = factory.mktemp(name)
    with NotaryServer(base / "server") as server:
        yield Lab(server, base)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from _start_lab(tmp_path_factory, "pin-lab")


@pytest.fixture(scope="module")
def forger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A second, unrelated notary-server: whoever controls it can publish any GUN."""
    yield from _start_lab(tmp_path_factory, "pin-forger")


# --------------------------------------------------------------------------- helpers


def sign(client: NotaryClient, gun: str, tag: str, roles: tuple[str, ...] = (), v: str = "") -> str:
    """Stage ``tag`` (a deterministic fake manifest) in ``roles``; return its digest."""
    data = f"{gun}:{tag}:{v}".encode()
    digest = sha256_hex(data)
    client.addhash(gun, tag, len(data), digest, roles)
    return f"sha256:{digest}"


def meta_dir(trust_dir: Path, gun: str) -> Path:
    return trust_dir / "tuf" / gun / "metadata"


def role_doc(trust_dir: Path, gun: str, role: str = "root") -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((meta_dir(trust_dir, gun) / f"{role}.json").read_bytes())
    return doc


def versions(trust_dir: Path, gun: str) -> dict[str, int]:
    """Every cached role's version: ``{"root": 1, "targets/releases": 2, ...}``."""
    return {
        path.removesuffix(".json"): json.loads(raw)["signed"]["version"]
        for path, raw in metadata_files(trust_dir, gun).items()
    }


def root_key_ids(trust_dir: Path, gun: str) -> list[str]:
    ids: list[str] = role_doc(trust_dir, gun)["signed"]["roles"]["root"]["keyids"]
    return ids


def root_cert(trust_dir: Path, gun: str) -> x509.Certificate:
    signed = role_doc(trust_dir, gun)["signed"]
    (kid,) = signed["roles"]["root"]["keyids"]
    return x509.load_pem_x509_certificate(base64.b64decode(signed["keys"][kid]["keyval"]["public"]))


def private_key_id(publisher: NotaryClient, role: str) -> str:
    """The canonical key ID of the publisher's key for ``role``: notary names each
    private key file ``private/<canonical ID>.key`` (spec §2.4)."""
    found = [
        p.stem
        for p in (publisher.trust_dir / "private").rglob("*.key")
        if f"\nrole: {role}\n" in p.read_text()
    ]
    assert len(found) == 1, f"expected one {role} key in the publisher's keystore, got {found}"
    return found[0]


def flip(hex_value: str) -> str:
    """The same identifier with its first hex digit changed."""
    return ("1" if hex_value[0] == "0" else "0") + hex_value[1:]


def verify(cli: Cli, trust_dir: Path, image: str, *options: str | Path) -> dict[str, Any]:
    """``trustcheck verify --json`` on one image; its result object."""
    run = cli("verify", "--json", "--trust-dir", str(trust_dir), *map(str, options), image)
    assert run.code in (0, 1), f"exit {run.code}: {run.stderr}"
    (result,) = json.loads(run.stdout)["results"]
    assert run.code == (0 if result["trusted"] else 1)
    assert isinstance(result, dict)
    return result


def assert_trusted(result: dict[str, Any], digest: str | None = None) -> None:
    assert result["trusted"] is True, result["error"]
    if digest is not None:
        assert result["digest"] == digest


def assert_refused(result: dict[str, Any], code: str, role: str | None = None) -> None:
    assert result["trusted"] is False, f"trusted although {code} was expected: {result}"
    assert result["error"]["code"] == code, result["error"]
    if role is not None:
        assert result["error"]["role"] == role, result["error"]


def state_of(state_dir: Path, gun: str) -> tuple[Path, dict[str, Any]]:
    """The state file a run left for ``gun`` and its content."""
    found = []
    for p in sorted((state_dir / "v1").glob("*.json")):
        doc = json.loads(p.read_bytes())
        if doc["gun"] == gun:
            found.append((p, doc))
    assert len(found) == 1, f"expected one state file for {gun} in {state_dir}, got {found}"
    return found[0]


def state_root(state_dir: Path, gun: str) -> bytes:
    return base64.b64decode(state_of(state_dir, gun)[1]["root"])


def with_trust_pinning(client: NotaryClient, trust_pinning: dict[str, Any]) -> NotaryClient:
    """Add a ``trust_pinning`` section to the real client's config file."""
    config = json.loads(client.config_file.read_text())
    config["trust_pinning"] = trust_pinning
    client.config_file.write_text(json.dumps(config, indent=2))
    return client


def real_notary_accepts(lab: Lab, gun: str, trust_pinning: dict[str, Any], label: str) -> bool:
    """Whether the real notary client, with this ``trust_pinning`` and no cache
    (pins only matter on first contact for notary), downloads ``gun``."""
    client = NotaryClient.for_server(lab.base / "notary-pinning" / label / "trust", lab.server)
    return with_trust_pinning(client, trust_pinning).list_targets(gun).error is None


# --------------------------------------------------------------------------- 1. root rotation


def test_root_rotation_is_accepted_and_the_old_root_is_a_rollback(
    lab: Lab, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    gun = "localhost/rotate-root"
    pub = lab.publisher("rotate-root")
    pub.init_and_publish(gun)
    d1 = sign(pub, gun, "v1")
    pub.publish(gun)
    a = lab.cache(gun, "rotate-root-A")
    pub.key_rotate(gun, "root")  # confirmed with "yes" on stdin
    d2 = sign(pub, gun, "v2")
    pub.publish(gun)
    b = lab.cache(gun, "rotate-root-B")

    # the case is what it claims: B's root is version 2 with another root key,
    # signed by the old root key as well as its own
    assert (versions(a, gun)["root"], versions(b, gun)["root"]) == (1, 2)
    (old_key,), (new_key,) = root_key_ids(a, gun), root_key_ids(b, gun)
    assert old_key != new_key
    assert {s["keyid"] for s in role_doc(b, gun)["signatures"]} >= {old_key, new_key}
    b_root = (meta_dir(b, gun) / "root.json").read_bytes()

    forward = tmp_path / "state-forward"
    assert_trusted(verify(trustcheck_cli, a, f"{gun}:v1", "--state-dir", forward), d1)
    assert state_of(forward, gun)[1]["versions"]["root"] == 1
    assert_trusted(verify(trustcheck_cli, b, f"{gun}:v2", "--state-dir", forward), d2)
    assert state_root(forward, gun) == b_root
    assert state_of(forward, gun)[1]["versions"]["root"] == 2
    # A again, after B: its root is now an old one being replayed
    assert_refused(
        verify(trustcheck_cli, a, f"{gun}:v1", "--state-dir", forward), "version-rollback", "root"
    )
    assert state_root(forward, gun) == b_root  # a refused run changes nothing

    backward = tmp_path / "state-backward"
    assert_trusted(verify(trustcheck_cli, b, f"{gun}:v2", "--state-dir", backward), d2)
    assert_refused(
        verify(trustcheck_cli, a, f"{gun}:v1", "--state-dir", backward), "version-rollback", "root"
    )


def test_root_rotation_chain_is_walked_through_intermediate_roots(
    lab: Lab, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    """v1 -> v3 after two rotations: v3 carries no signature of v1's key, so it is
    accepted only through ``2.root.json`` (served by notary-server, spec §4.5)."""
    gun = "localhost/rotate-chain"
    pub = lab.publisher("rotate-chain")
    pub.init_and_publish(gun)
    d1 = sign(pub, gun, "v1")
    pub.publish(gun)
    a = lab.cache(gun, "rotate-chain-A")
    pub.key_rotate(gun, "root")
    pub.key_rotate(gun, "root")
    c = lab.cache(gun, "rotate-chain-C")
    assert versions(c, gun)["root"] == 3
    (v1_key,) = root_key_ids(a, gun)
    assert v1_key not in {s["keyid"] for s in role_doc(c, gun)["signatures"]}
    intermediate = fetch_root_version(lab.server, gun, 2)
    assert json.loads(intermediate)["signed"]["version"] == 2

    state = tmp_path / "state"
    assert_trusted(verify(trustcheck_cli, a, f"{gun}:v1", "--state-dir", state), d1)
    # without the intermediate root the jump from v1 to v3 cannot be checked
    assert_refused(
        verify(trustcheck_cli, c, f"{gun}:v1", "--state-dir", state),
        "root-rotation-invalid",
        "root",
    )
    # a file named 2.root.json that holds another version is no intermediate
    wrong = copy_trust_dir(c, tmp_path / "wrong-intermediate" / "trust")
    shutil.copyfile(meta_dir(c, gun) / "root.json", meta_dir(wrong, gun) / "2.root.json")
    assert_refused(
        verify(trustcheck_cli, wrong, f"{gun}:v1", "--state-dir", state),
        "root-rotation-invalid",
        "root",
    )
    assert versions(a, gun)["root"] == 1 and state_of(state, gun)[1]["versions"]["root"] == 1

    walked = copy_trust_dir(c, tmp_path / "with-intermediate" / "trust")
    (meta_dir(walked, gun) / "2.root.json").write_bytes(intermediate)
    assert_trusted(verify(trustcheck_cli, walked, f"{gun}:v1", "--state-dir", state), d1)
    assert state_root(state, gun) == (meta_dir(c, gun) / "root.json").read_bytes()


# --------------------------------------------------------------------------- 2. targets rotation


def test_targets_key_rotation_is_accepted(lab: Lab, tmp_path: Path, trustcheck_cli: Cli) -> None:
    gun = "localhost/rotate-targets"
    pub = lab.publisher("rotate-targets")
    pub.init_and_publish(gun)
    d1 = sign(pub, gun, "v1")
    pub.publish(gun)
    a = lab.cache(gun, "rotate-targets-A")
    pub.key_rotate(gun, "targets")
    d2 = sign(pub, gun, "v2")
    pub.publish(gun)
    b = lab.cache(gun, "rotate-targets-B")

    ra, rb = role_doc(a, gun)["signed"], role_doc(b, gun)["signed"]
    assert ra["roles"]["targets"]["keyids"] != rb["roles"]["targets"]["keyids"]
    assert ra["roles"]["root"]["keyids"] == rb["roles"]["root"]["keyids"]
    assert (ra["version"], rb["version"]) == (1, 2)

    state = tmp_path / "state"
    assert_trusted(verify(trustcheck_cli, a, f"{gun}:v1", "--state-dir", state), d1)
    assert_trusted(verify(trustcheck_cli, b, f"{gun}:v2", "--state-dir", state), d2)
    assert_trusted(verify(trustcheck_cli, b, f"{gun}:v1", "--state-dir", state), d1)
    assert state_of(state, gun)[1]["versions"]["root"] == 2
    assert_refused(
        verify(trustcheck_cli, a, f"{gun}:v1", "--state-dir", state), "version-rollback", "root"
    )


# --------------------------------------------------------------------------- 3. forged root


def test_forged_root_is_refused_by_state_and_by_pin(
    lab: Lab, forger: Lab, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    gun = "localhost/forged"
    builds: dict[str, str] = {}
    for who, where in (("genuine", lab), ("forged", forger)):
        pub = where.publisher(f"forged-{who}")
        pub.init_and_publish(gun)
        builds[who] = sign(pub, gun, "v1", v=who)
        pub.publish(gun)
    genuine = lab.cache(gun, "forged-genuine")
    forged = forger.cache(gun, "forged-forged")
    # the forgery is self-consistent, has other root keys, and the same versions
    assert root_key_ids(genuine, gun) != root_key_ids(forged, gun)
    assert versions(genuine, gun) == versions(forged, gun)
    assert builds["genuine"] != builds["forged"]
    image = f"{gun}:v1"

    # the real client agrees that the forged server's root does not follow the genuine one
    seen_by_notary = copy_trust_dir(genuine, tmp_path / "notary-genuine" / "trust")
    listing = NotaryClient.for_server(seen_by_notary, forger.server).list_targets(gun)
    assert listing.error is not None, "real notary accepted the forged root"

    # state: genuine first, then the forgery is not a rotation
    state = tmp_path / "state-genuine"
    assert_trusted(verify(trustcheck_cli, genuine, image, "--state-dir", state), builds["genuine"])
    assert_refused(
        verify(trustcheck_cli, forged, image, "--state-dir", state), "root-rotation-invalid", "root"
    )
    assert state_root(state, gun) == (meta_dir(genuine, gun) / "root.json").read_bytes()
    assert_trusted(verify(trustcheck_cli, genuine, image, "--state-dir", state), builds["genuine"])

    # pin the genuine root with `trustcheck pin add`
    pins = tmp_path / "pins.toml"
    added = trustcheck_cli(
        "pin",
        "add",
        image,
        "--trust-dir",
        str(genuine),
        "--pins",
        str(pins),
        "--state-dir",
        str(tmp_path / "state-pin-add"),
    )
    assert added.code == 0, added.stderr
    cert_sha = hashlib.sha256(root_cert(genuine, gun).public_bytes(serialization.Encoding.DER))
    assert added.stdout.splitlines() == [f"pinned {gun}: cert-sha256:{cert_sha.hexdigest()}"]

    # pinned, no state at all: the forgery is refused, the genuine root accepted
    for label in ("fresh-1", "fresh-2"):
        assert_refused(
            verify(trustcheck_cli, forged, image, "--pins", pins, "--state-dir", tmp_path / label),
            "pin-mismatch",
            "root",
        )
    assert_trusted(
        verify(trustcheck_cli, genuine, image, "--pins", pins, "--state-dir", tmp_path / "fresh-1"),
        builds["genuine"],
    )
    # pinned, genuine root cached in the state: the pin is checked first
    assert_refused(
        verify(trustcheck_cli, forged, image, "--pins", pins, "--state-dir", state),
        "pin-mismatch",
        "root",
    )
    # the forged root was trusted on first use earlier: the pin still refuses it
    # (notary would keep trusting its cached root) and accepts the genuine one
    tofu = tmp_path / "state-forged"
    assert_trusted(verify(trustcheck_cli, forged, image, "--state-dir", tofu), builds["forged"])
    assert_refused(
        verify(trustcheck_cli, forged, image, "--pins", pins, "--state-dir", tofu),
        "pin-mismatch",
        "root",
    )
    assert_trusted(
        verify(trustcheck_cli, genuine, image, "--pins", pins, "--state-dir", tofu),
        builds["genuine"],
    )


# --------------------------------------------------------------------------- 4. pin kinds


@dataclass(frozen=True)
class PinRepo:
    gun: str
    cache: Path
    digest: str
    expected: dict[str, str]  # kind -> identifier value, computed without trustcheck


@pytest.fixture(scope="module")
def pin_repo(lab: Lab) -> PinRepo:
    gun = "localhost/pinkinds"
    pub = lab.publisher("pinkinds")
    pub.init_and_publish(gun)
    digest = sign(pub, gun, "v1")
    pub.publish(gun)
    cache = lab.cache(gun, "pinkinds")
    cert = root_cert(cache, gun)
    pem = lab.base / "pinkinds-root.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    line = run_command(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", pem]).stdout
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (keyid,) = root_key_ids(cache, gun)
    expected = {
        "cert-sha256": line.strip().split("=", 1)[1].replace(":", "").lower(),
        "spki-sha256": hashlib.sha256(spki).hexdigest(),
        "keyid": keyid,
        "canonical": private_key_id(pub, "root"),
    }
    assert len(set(expected.values())) == 4, expected
    return PinRepo(gun, cache, digest, expected)


@pytest.mark.parametrize("kind", KINDS)
def test_pin_add_by_each_kind_then_verify(
    pin_repo: PinRepo, kind: str, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    gun, image = pin_repo.gun, f"{pin_repo.gun}:v1"
    pins = tmp_path / "pins.toml"
    added = trustcheck_cli(
        "pin",
        "add",
        image,
        "--kind",
        kind,
        "--trust-dir",
        str(pin_repo.cache),
        "--pins",
        str(pins),
        "--state-dir",
        str(tmp_path / "state-add"),
    )
    assert added.code == 0, added.stderr
    ident = f"{kind}:{pin_repo.expected[kind]}"
    assert added.stdout.splitlines() == [f"pinned {gun}: {ident}"]
    assert tomllib.loads(pins.read_text())["pins"][gun]["root"] == [ident]
    listed = trustcheck_cli("pin", "list", "--pins", str(pins), "--trust-dir", str(pin_repo.cache))
    assert listed.code == 0 and f"root    {ident}" in listed.stdout

    assert_trusted(
        verify(trustcheck_cli, pin_repo.cache, image, "--pins", pins, "--no-tofu"),
        pin_repo.digest,
    )
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(
        f'version = 1\n[pins."{gun}"]\nroot = ["{kind}:{flip(pin_repo.expected[kind])}"]\n'
    )
    assert_refused(
        verify(trustcheck_cli, pin_repo.cache, image, "--pins", wrong), "pin-mismatch", "root"
    )


NOTARY_CONFIG_CASES = {
    # name: (trust_pinning with placeholders KEYID / CANONICAL, expected error code or None)
    "certs-exact": ({"certs": {"localhost/pinkinds": ["KEYID"]}}, None),
    "certs-wildcard": ({"certs": {"localhost/pin*": ["KEYID"]}}, None),
    "certs-wrong-id": ({"certs": {"localhost/pinkinds": ["WRONG"]}}, "pin-mismatch"),
    # notary pins root.json key IDs, not canonical IDs (spec §2.4, R7d)
    "certs-canonical-id": ({"certs": {"localhost/pinkinds": ["CANONICAL"]}}, "pin-mismatch"),
    # notary's order (trustpinning/trustpin.go): exact certs, then the longest certs
    # wildcard, and only then a ca prefix, even a longer one; the CA bundle of a ca
    # entry that does not apply is never read (by either client)
    "certs-wildcard-before-longer-ca": (
        {"certs": {"localhost/pin*": ["KEYID"]}, "ca": {"localhost/pinkinds": "/nonexistent.pem"}},
        None,
    ),
    "certs-wrong-wildcard-before-longer-ca": (
        {"certs": {"localhost/pin*": ["WRONG"]}, "ca": {"localhost/pinkinds": "/nonexistent.pem"}},
        "pin-mismatch",
    ),
    "certs-exact-before-ca": (
        {"certs": {"localhost/pinkinds": ["KEYID"]}, "ca": {"localhost/": "/nonexistent.pem"}},
        None,
    ),
    "disable-tofu-no-pin": (
        {"certs": {"localhost/other": ["KEYID"]}, "disable_tofu": True},
        "no-pin",
    ),
    "disable-tofu-pinned": (
        {"certs": {"localhost/pinkinds": ["KEYID"]}, "disable_tofu": True},
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(NOTARY_CONFIG_CASES))
def test_notary_config_trust_pinning(
    lab: Lab, pin_repo: PinRepo, case: str, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    template, code = NOTARY_CONFIG_CASES[case]
    values = {
        "KEYID": pin_repo.expected["keyid"],
        "CANONICAL": pin_repo.expected["canonical"],
        "WRONG": flip(pin_repo.expected["keyid"]),
    }
    text = json.dumps(template)
    for placeholder, value in values.items():
        text = text.replace(f'"{placeholder}"', json.dumps(value))
    trust_pinning = json.loads(text)
    config = tmp_path / "notary-config.json"
    config.write_text(json.dumps({"trust_dir": "/nonexistent", "trust_pinning": trust_pinning}))

    result = verify(trustcheck_cli, pin_repo.cache, f"{pin_repo.gun}:v1", "--pins", config)
    if code is None:
        assert_trusted(result, pin_repo.digest)
    else:
        assert_refused(result, code, "root")
    # the real client, on first contact with the same trust_pinning, agrees
    assert real_notary_accepts(lab, pin_repo.gun, trust_pinning, f"config-{case}") is (code is None)


# --------------------------------------------------------------------------- 5. CA pinning


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _usage(*, sign_certs: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not sign_certs,
        content_commitment=False,
        key_encipherment=not sign_certs,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=sign_certs,
        crl_sign=sign_certs,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(cn: str, now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(sign_certs=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue_code_signing_leaf(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, gun: str, now: dt.datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A root leaf as notary makes them (CN = GUN, EKU codeSigning only), but CA-issued."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(gun))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(sign_certs=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def test_ca_pin_accepts_a_code_signing_root_leaf_issued_by_the_pinned_ca(
    lab: Lab, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    gun = "localhost/ca-pinned"
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ca_key, ca = make_ca("trustcheck test root CA", now)
    _other_key, other_ca = make_ca("trustcheck unrelated CA", now)
    leaf_key, leaf = issue_code_signing_leaf(ca_key, ca, gun, now)
    keys = tmp_path / "root-key"
    keys.mkdir()
    (keys / "leaf.pem").write_bytes(_pem(leaf))
    plain = leaf_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    encrypted = notary_encrypted_key(plain, keys / "leaf.key")

    pub = lab.publisher("ca-pinned")
    pub.run("init", gun, "--rootkey", encrypted, "--rootcert", keys / "leaf.pem")
    pub.publish(gun)
    digest = sign(pub, gun, "v1")
    pub.publish(gun)
    cache = lab.cache(gun, "ca-pinned")
    # notary used our certificate as the root key, unchanged
    got = root_cert(cache, gun)
    assert got.public_bytes(serialization.Encoding.DER) == leaf.public_bytes(
        serialization.Encoding.DER
    )
    eku = got.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CODE_SIGNING]

    pin_dir = tmp_path / "pins"
    pin_dir.mkdir()
    (pin_dir / "ca.pem").write_bytes(_pem(ca))
    (pin_dir / "other-ca.pem").write_bytes(_pem(other_ca))
    (keyid,) = root_key_ids(cache, gun)
    image = f"{gun}:v1"

    def pin_file(name: str, body: str) -> Path:
        path = pin_dir / name
        path.write_text(f'version = 1\n[pins."{gun}"]\n{body}\n')
        return path

    right = pin_file("right.toml", 'ca = "ca.pem"')
    assert_trusted(verify(trustcheck_cli, cache, image, "--pins", right, "--no-tofu"), digest)
    wrong = pin_file("wrong.toml", 'ca = "other-ca.pem"')
    assert_refused(verify(trustcheck_cli, cache, image, "--pins", wrong), "pin-mismatch", "root")
    both = pin_file("both.toml", f'ca = "ca.pem"\nroot = ["keyid:{keyid}"]')
    assert_trusted(verify(trustcheck_cli, cache, image, "--pins", both), digest)
    ca_but_wrong_id = pin_file("ca-wrong-id.toml", f'ca = "ca.pem"\nroot = ["keyid:{flip(keyid)}"]')
    assert_refused(
        verify(trustcheck_cli, cache, image, "--pins", ca_but_wrong_id), "pin-mismatch", "root"
    )
    # a genuine notary-made root (self-signed leaf) does not chain to the CA
    other_gun = "localhost/ca-pinned-selfsigned"
    other_pub = lab.publisher("ca-pinned-selfsigned")
    other_pub.init_and_publish(other_gun)
    sign(other_pub, other_gun, "v1")
    other_pub.publish(other_gun)
    selfsigned = lab.cache(other_gun, "ca-pinned-selfsigned")
    prefix = pin_dir / "prefix.toml"
    prefix.write_text('version = 1\n[pins."localhost/ca-pinned*"]\nca = "ca.pem"\n')
    assert_refused(
        verify(trustcheck_cli, selfsigned, f"{other_gun}:v1", "--pins", prefix),
        "pin-mismatch",
        "root",
    )

    # the same pin as a notary client config: trustcheck accepts the code-signing
    # leaf; the real client refuses it (Go's ServerAuth default, spec §4.2 step 5),
    # a deliberate difference (docs/notary-compat.md)
    trust_pinning = {"ca": {gun: str(pin_dir / "ca.pem")}}
    config = pin_dir / "notary-config.json"
    config.write_text(json.dumps({"trust_pinning": trust_pinning}))
    assert_trusted(verify(trustcheck_cli, cache, image, "--pins", config), digest)
    assert real_notary_accepts(lab, gun, trust_pinning, "ca-pin") is False
    assert real_notary_accepts(lab, gun, {}, "ca-no-pin") is True


# --------------------------------------------------------------------------- 6. rollback


ROLLBACK_ROLES = ("timestamp", "snapshot", "targets", "targets/releases")


@dataclass(frozen=True)
class RollbackRepo:
    gun: str
    a: Path  # first publication
    b: Path  # later: every role's version is higher
    digests: dict[str, str]


@pytest.fixture(scope="module")
def rollback_repo(lab: Lab) -> RollbackRepo:
    gun = "localhost/rollback"
    pub = lab.publisher("rollback")
    releaser = make_delegation_key(lab.base / "rollback-keys", "releaser")
    pub.key_import(releaser.private, "targets/releaser")
    pub.init(gun)
    pub.delegation_add(gun, "targets/releases", [releaser.public])
    pub.publish(gun)
    digests = {"v1": sign(pub, gun, "v1", ("targets/releases",))}
    pub.publish(gun)
    a = lab.cache(gun, "rollback-A")
    digests["v2"] = sign(pub, gun, "v2", ("targets/releases",))
    digests["admin"] = sign(pub, gun, "admin")
    pub.publish(gun)
    b = lab.cache(gun, "rollback-B")
    va, vb = versions(a, gun), versions(b, gun)
    for role in ROLLBACK_ROLES:
        assert vb[role] > va[role], (role, va, vb)
    assert va["root"] == vb["root"] == 1
    return RollbackRepo(gun, a, b, digests)


def test_rollback_of_the_whole_collection_is_refused(
    rollback_repo: RollbackRepo, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    """Genuine replay: B verified, then the older genuine A (timestamp checked first)."""
    r, state = rollback_repo, tmp_path / "state"
    assert_trusted(
        verify(trustcheck_cli, r.b, f"{r.gun}:v2", "--state-dir", state), r.digests["v2"]
    )
    recorded = state_of(state, r.gun)[1]["versions"]
    assert recorded == versions(r.b, r.gun)
    assert_refused(
        verify(trustcheck_cli, r.a, f"{r.gun}:v1", "--state-dir", state),
        "version-rollback",
        "timestamp",
    )
    assert state_of(state, r.gun)[1]["versions"] == recorded  # nothing lowered
    # the state survives: B is still fine, and A stays refused on a later run
    assert_trusted(
        verify(trustcheck_cli, r.b, f"{r.gun}:v1", "--state-dir", state), r.digests["v1"]
    )
    assert_refused(
        verify(trustcheck_cli, r.a, f"{r.gun}:v1", "--state-dir", state),
        "version-rollback",
        "timestamp",
    )


@pytest.mark.parametrize("role", ROLLBACK_ROLES)
def test_rollback_of_each_role_is_refused(
    rollback_repo: RollbackRepo, role: str, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    """Each role on its own.  Real notary output cannot give a newer timestamp
    over an older snapshot (or snapshot over older targets): each file pins its
    children by hash, so a mixed cache is a hash mismatch, not a rollback.  So A
    is verified for real, then the state that run wrote is raised for ``role``
    alone to the version B really has: what the state holds after a run that
    saw B's ``role``.  A's ``role`` is then the first check to fail."""
    r, state = rollback_repo, tmp_path / "state"
    assert_trusted(
        verify(trustcheck_cli, r.a, f"{r.gun}:v1", "--state-dir", state), r.digests["v1"]
    )
    path, doc = state_of(state, r.gun)
    assert doc["versions"] == versions(r.a, r.gun)
    doc["versions"][role] = versions(r.b, r.gun)[role]
    path.write_text(json.dumps(doc))

    assert_refused(
        verify(trustcheck_cli, r.a, f"{r.gun}:v1", "--state-dir", state), "version-rollback", role
    )
    assert_trusted(
        verify(trustcheck_cli, r.b, f"{r.gun}:v2", "--state-dir", state), r.digests["v2"]
    )
    assert state_of(state, r.gun)[1]["versions"] == versions(r.b, r.gun)


# --------------------------------------------------------------------------- 7. signer pins


def test_signer_pins(lab: Lab, tmp_path: Path, trustcheck_cli: Cli) -> None:
    """docker trust signer add style: targets/releases holds alice's and bob's keys,
    targets/alice and targets/bob one each.  alice's key is a certificate, so its
    canonical ID differs from the key ID in the metadata."""
    gun = "localhost/signerpins"
    pub = lab.publisher("signerpins")
    keys = {
        "alice": make_delegation_key(lab.base / "signer-keys", "alice", "ecdsa-x509"),
        "bob": make_delegation_key(lab.base / "signer-keys", "bob", "ecdsa"),
    }
    for name, key in keys.items():
        pub.key_import(key.private, f"targets/{name}")
    pub.init(gun)
    pub.delegation_add(gun, "targets/releases", [keys["alice"].public, keys["bob"].public])
    pub.delegation_add(gun, "targets/alice", [keys["alice"].public])
    pub.delegation_add(gun, "targets/bob", [keys["bob"].public])
    pub.publish(gun)
    v1 = sign(pub, gun, "v1", ("targets/releases", "targets/alice"))
    bob_only = sign(pub, gun, "bob-only", ("targets/releases", "targets/bob"))
    pub.publish(gun)
    cache = lab.cache(gun, "signerpins")

    canonical = {name: private_key_id(pub, f"targets/{name}") for name in keys}
    (alice_keyid,) = [
        r["keyids"][0]
        for r in role_doc(cache, gun, "targets")["signed"]["delegations"]["roles"]
        if r["name"] == "targets/alice"
    ]
    assert alice_keyid != canonical["alice"]  # x509: the pins below are distinct
    alice_cert = x509.load_pem_x509_certificate(keys["alice"].public.read_bytes())
    alice_cert_sha = hashlib.sha256(alice_cert.public_bytes(serialization.Encoding.DER))

    def pins(name: str, ids: list[str]) -> Path:
        path = tmp_path / f"{name}.toml"
        listed = ", ".join(json.dumps(i) for i in ids)
        path.write_text(f'version = 1\n[pins."{gun}"]\nsigners = {{ alice = [{listed}] }}\n')
        return path

    for name, ids in {
        "canonical": [f"canonical:{canonical['alice']}"],
        "keyid": [f"keyid:{alice_keyid}"],
        "cert": [f"cert-sha256:{alice_cert_sha.hexdigest()}"],
        "one-of-two": [f"canonical:{canonical['bob']}", f"canonical:{canonical['alice']}"],
    }.items():
        pinned = pins(name, ids)
        assert_trusted(verify(trustcheck_cli, cache, f"{gun}:v1", "--pins", pinned), v1)
        assert_trusted(verify(trustcheck_cli, cache, f"{gun}:bob-only", "--pins", pinned), bob_only)

    for name, ids in {
        "bob-for-alice": [f"canonical:{canonical['bob']}"],
        "flipped": [f"canonical:{flip(canonical['alice'])}"],
    }.items():
        assert_refused(
            verify(trustcheck_cli, cache, f"{gun}:v1", "--pins", pins(name, ids)),
            "signer-pin-mismatch",
            "targets/alice",
        )
