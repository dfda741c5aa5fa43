"""Pin files, the state store under concurrency, thumbprints beside openssl, and
the delegation-certificate expiry policy: fast tests on committed trust data.

* ``fixtures/generated``: genuine notary 0.7.0 output, judged at its
  ``VALIDATION_TIME``.  Its collections share one root key (``notary init``
  reuses the publisher's root key), each with its own certificate (CN = GUN).
* ``notary-compat/notary0.3``: a notary 0.3 repository whose targets/releases
  rsa-x509 certificate expired in 2017.
"""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from trustcheck.core.identity import Identifier
from trustcheck.errors import UsageError
from trustcheck.local.pinfile import load_pins

if TYPE_CHECKING:
    from conftest import CliRun

    Cli = Callable[..., CliRun]

REPO = Path(__file__).resolve().parents[2]
GENERATED = REPO / "fixtures" / "generated"
TRUST = GENERATED / "trust"
AT = (GENERATED / "VALIDATION_TIME").read_text().strip()
N03 = REPO / "fixtures" / "realworld" / "notary0.3"
N03_GUN = "docker.com/notary0.3/tst"

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")


# --------------------------------------------------------------------------- helpers


def meta(gun: str, role: str = "root") -> Path:
    return TRUST / "tuf" / gun / "metadata" / f"{role}.json"


def root_keyid(gun: str) -> str:
    (kid,) = json.loads(meta(gun).read_bytes())["signed"]["roles"]["root"]["keyids"]
    assert isinstance(kid, str)
    return kid


def root_cert(gun: str) -> x509.Certificate:
    signed = json.loads(meta(gun).read_bytes())["signed"]
    public = signed["keys"][root_keyid(gun)]["keyval"]["public"]
    return x509.load_pem_x509_certificate(base64.b64decode(public))


def cert_sha256(gun: str) -> str:
    return hashlib.sha256(root_cert(gun).public_bytes(serialization.Encoding.DER)).hexdigest()


def spki_sha256(gun: str) -> str:
    spki = (
        root_cert(gun)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return hashlib.sha256(spki).hexdigest()


def role_versions(gun: str) -> dict[str, int]:
    base = TRUST / "tuf" / gun / "metadata"
    return {
        p.relative_to(base).as_posix().removesuffix(".json"): json.loads(p.read_bytes())["signed"][
            "version"
        ]
        for p in base.rglob("*.json")
    }


def flip(hex_value: str) -> str:
    return ("1" if hex_value[0] == "0" else "0") + hex_value[1:]


def verify(cli: Cli, image: str, *options: str | Path) -> dict[str, Any]:
    """``trustcheck verify --json`` on the committed fixtures; the one result."""
    run = cli("verify", "--json", "--trust-dir", str(TRUST), "--at", AT, *map(str, options), image)
    assert run.code in (0, 1), f"exit {run.code}: {run.stderr}"
    (result,) = json.loads(run.stdout)["results"]
    assert run.code == (0 if result["trusted"] else 1)
    assert isinstance(result, dict)
    return result


def assert_trusted(result: dict[str, Any]) -> None:
    assert result["trusted"] is True, result["error"]


def assert_refused(result: dict[str, Any], code: str) -> None:
    assert result["trusted"] is False, f"trusted although {code} was expected"
    assert result["error"]["code"] == code, result["error"]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- 8. concurrency

COUNTER_GUN = "localhost/concurrency-counter"
HAMMER_GUNS = ("localhost/basic", "localhost/signers")
WORKERS = 8
ITERATIONS = 25


def _hammer(job: tuple[str, int]) -> dict[str, int]:
    """One process: verify the committed GUNs in turn against the shared state
    dir, and after each verification bump a counter in the same store (a
    read-modify-write under the GUN's lock: a lost update shows as a low count)."""
    from trustcheck.api import Options, load_collection
    from trustcheck.local.state import StateStore

    state_dir, worker = job
    store = StateStore(Path(state_dir))
    opts = Options(state=store)
    at = datetime.fromisoformat(AT.replace("Z", "+00:00"))
    verified: dict[str, int] = {}
    for i in range(ITERATIONS):
        gun = HAMMER_GUNS[(i + worker) % len(HAMMER_GUNS)]
        load_collection(TRUST, gun, at, opts)
        verified[gun] = verified.get(gun, 0) + 1
        with store.session(COUNTER_GUN) as (previous, recorder):
            count = previous.versions.get("count", 0) if previous is not None else 0
            recorder.state = store.record(
                previous, COUNTER_GUN, b"counter", {"count": count + 1, f"worker{worker}": i + 1}
            )
    return verified


def test_parallel_runs_keep_the_state_valid_and_complete(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    started = time.monotonic()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(WORKERS) as pool:
        results = pool.map(_hammer, [(str(state_dir), w) for w in range(WORKERS)])
    elapsed = time.monotonic() - started
    assert sum(sum(r.values()) for r in results) == WORKERS * ITERATIONS
    assert elapsed < 60

    files = sorted((state_dir / "v1").iterdir())
    assert not [p for p in state_dir.rglob("*") if p.name.endswith(".tmp")], files
    docs = {}
    for p in files:
        if p.suffix == ".lock":
            continue
        assert p.suffix == ".json", p
        doc = json.loads(p.read_bytes())  # every state file is whole, valid JSON
        docs[doc["gun"]] = doc
    assert set(docs) == {*HAMMER_GUNS, COUNTER_GUN}
    for gun in HAMMER_GUNS:
        assert docs[gun]["versions"] == role_versions(gun), gun
        assert base64.b64decode(docs[gun]["root"]) == meta(gun).read_bytes()
    counter = docs[COUNTER_GUN]["versions"]
    assert counter["count"] == WORKERS * ITERATIONS  # no lost update
    assert {k: v for k, v in counter.items() if k != "count"} == {
        f"worker{w}": ITERATIONS for w in range(WORKERS)
    }


# --------------------------------------------------------------------------- 9. pin files


def test_pin_file_valid_schema(tmp_path: Path) -> None:
    hexes = [hashlib.sha256(bytes([i])).hexdigest() for i in range(5)]
    colon = ":".join(hexes[4][i : i + 2] for i in range(0, 64, 2)).upper()
    path = write(
        tmp_path / "conf" / "pins.toml",
        f"""
version = 1
no_tofu = true

[pins."registry.example.com/team/app"]
root = ["cert-sha256:{hexes[0]}", "spki-sha256:{hexes[1]}", "KEYID:{hexes[2].upper()}",
        "canonical:{hexes[3]}", "cert-sha256:{colon}"]
ca = "bundles/ca.pem"
signers = {{ alice = ["canonical:{hexes[3]}"], bob = "keyid:{hexes[2]}" }}

[pins."registry.example.com/team/*"]
root = "spki-sha256:{hexes[1]}"
""",
    )
    pins = load_pins(path)
    assert pins.no_tofu is True
    exact = pins.lookup("registry.example.com/team/app")
    assert exact is not None and exact.pattern == "registry.example.com/team/app"
    assert exact.root == [
        Identifier("cert-sha256", hexes[0]),
        Identifier("spki-sha256", hexes[1]),
        Identifier("keyid", hexes[2]),
        Identifier("canonical", hexes[3]),
        Identifier("cert-sha256", hexes[4]),  # openssl's AB:CD:... form, normalised
    ]
    assert exact.ca == (tmp_path / "conf" / "bundles" / "ca.pem").resolve()  # relative to the file
    assert exact.signers == {
        "alice": [Identifier("canonical", hexes[3])],
        "bob": [Identifier("keyid", hexes[2])],
    }
    wild = pins.lookup("registry.example.com/team/other")
    assert wild is not None and wild.root == [Identifier("spki-sha256", hexes[1])]
    assert pins.lookup("registry.example.com/teamx") is None


GOOD = hashlib.sha256(b"x").hexdigest()

INVALID_PIN_FILES = {
    "bad-kind": (f'[pins."a/b"]\nroot = ["sha1:{GOOD}"]', "is not an identifier"),
    "no-kind": (f'[pins."a/b"]\nroot = ["{GOOD}"]', "is not an identifier"),
    "short-hex": ('[pins."a/b"]\nroot = ["keyid:abcdef"]', "64 hex digits"),
    "not-hex": (f'[pins."a/b"]\nroot = ["keyid:{"g" * 64}"]', "64 hex digits"),
    "long-hex": (f'[pins."a/b"]\nroot = ["keyid:{GOOD}00"]', "64 hex digits"),
    "empty-entry": ('[pins."a/b"]', "empty"),
    "empty-root-list": ('[pins."a/b"]\nroot = []', "non-empty list"),
    "empty-signer-list": ('[pins."a/b"]\nsigners = { alice = [] }', "non-empty list"),
    "signers-not-table": (f'[pins."a/b"]\nsigners = "keyid:{GOOD}"', "signers must be a table"),
    "unknown-top-level": (f'pin = 1\n[pins."a/b"]\nroot = ["keyid:{GOOD}"]', "unknown top-level"),
    "unknown-entry-key": (f'[pins."a/b"]\nroots = ["keyid:{GOOD}"]', "unknown key"),
    "inner-star": (f'[pins."a*b"]\nroot = ["keyid:{GOOD}"]', "must be a GUN or a prefix"),
    "two-stars": (f'[pins."a/**"]\nroot = ["keyid:{GOOD}"]', "must be a GUN or a prefix"),
    "space": (f'[pins."a/b c"]\nroot = ["keyid:{GOOD}"]', "must be a GUN or a prefix"),
    "empty-pattern": (f'[pins.""]\nroot = ["keyid:{GOOD}"]', "must be a GUN or a prefix"),
    "version-2": (f'version = 2\n[pins."a/b"]\nroot = ["keyid:{GOOD}"]', "unsupported version"),
    "no-tofu-string": ('no_tofu = "yes"', "no_tofu"),
    "ca-empty": ('[pins."a/b"]\nca = ""', "ca must be a path"),
    "ca-number": ('[pins."a/b"]\nca = 5', "ca must be a path"),
    "pins-not-table": ('pins = ["a/b"]', "'pins' must be a table"),
    "entry-not-table": ('[pins]\n"a/b" = "keyid:x"', "must be a table"),
    "not-toml": ("[pins\n", "not valid TOML"),
    "notary-certs-not-object": ('{"trust_pinning": {"certs": ["a"]}}', "certs"),
    "notary-certs-empty": ('{"trust_pinning": {"certs": {"a/b": []}}}', "non-empty list"),
    "notary-certs-bad-id": ('{"trust_pinning": {"certs": {"a/b": ["abc"]}}}', "64 hex digits"),
    "notary-ca-not-path": ('{"trust_pinning": {"ca": {"a/": 1}}}', "must be a path"),
    "notary-disable-tofu-string": (
        '{"trust_pinning": {"disable_tofu": "true"}}',
        "disable_tofu must be true or false",
    ),
    "notary-not-json": ('{"trust_pinning": ', "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(INVALID_PIN_FILES))
def test_pin_file_invalid(case: str, tmp_path: Path, trustcheck_cli: Cli) -> None:
    text, fragment = INVALID_PIN_FILES[case]
    path = write(tmp_path / "pins.toml", text + "\n")
    with pytest.raises(UsageError) as info:
        load_pins(path)
    assert info.value.code == "pin-file-invalid"
    assert fragment in info.value.message, info.value.message
    assert str(path) in info.value.message
    # through the CLI: a usage error, exit 2, before anything is verified
    run = trustcheck_cli(
        "verify", "--trust-dir", str(TRUST), "--at", AT, "--pins", str(path), "localhost/basic:v1"
    )
    assert run.code == 2 and "[pin-file-invalid]" in run.stderr and run.stdout == ""


def test_missing_pin_file_is_invalid(tmp_path: Path, trustcheck_cli: Cli) -> None:
    run = trustcheck_cli(
        "verify",
        "--trust-dir",
        str(TRUST),
        "--at",
        AT,
        "--pins",
        str(tmp_path / "nope.toml"),
        "localhost/basic:v1",
    )
    assert run.code == 2 and "[pin-file-invalid]" in run.stderr


def test_longest_match_wins(tmp_path: Path) -> None:
    ids = {name: hashlib.sha256(name.encode()).hexdigest() for name in "ABCDE"}
    path = write(
        tmp_path / "pins.toml",
        "\n".join(
            f'[pins."{pattern}"]\nroot = ["keyid:{ids[name]}"]'
            for pattern, name in (
                ("localhost/*", "A"),
                ("localhost/sig*", "B"),
                ("localhost/signers", "C"),
                ("localhost/signers*", "D"),
                ("localhost/signers/x*", "E"),
            )
        ),
    )
    pins = load_pins(path)

    def winner(gun: str) -> str | None:
        entry = pins.lookup(gun)
        if entry is None:
            return None
        (ident,) = entry.root
        return next(n for n, h in ids.items() if h == ident.value)

    assert winner("localhost/signers") == "C"  # exact beats a longer wildcard
    assert winner("localhost/signers2") == "D"
    assert winner("localhost/signers/x/y") == "E"
    assert winner("localhost/sigma") == "B"
    assert winner("localhost/basic") == "A"
    assert winner("localhostx/basic") is None
    assert winner("example.com/localhost/signers") is None  # prefixes are anchored


def test_notary_config_certs_before_ca_and_case_insensitive_keys(tmp_path: Path) -> None:
    kid = hashlib.sha256(b"k").hexdigest()
    path = write(
        tmp_path / "config.json",
        json.dumps(
            {
                "Trust_Pinning": {
                    "Certs": {"localhost/*": [kid], "localhost/exact": [kid]},
                    "CA": {"localhost/": "ca.pem", "localhost/deeper/": "/abs/deep.pem"},
                    "Disable_TOFU": True,
                }
            }
        ),
    )
    pins = load_pins(path)
    assert pins.no_tofu is True
    same_prefix = pins.lookup("localhost/app")
    assert same_prefix is not None
    assert same_prefix.root == [Identifier("keyid", kid)] and same_prefix.ca is None
    # notary (trustpinning/trustpin.go): any certs wildcard beats every ca prefix,
    # even a longer one (issue 14 item 7)
    deeper = pins.lookup("localhost/deeper/app")
    assert deeper is not None and deeper.pattern == "localhost/*" and deeper.ca is None
    exact = pins.lookup("localhost/exact")
    assert exact is not None and exact.pattern == "localhost/exact"


def test_longest_match_decides_verification(tmp_path: Path, trustcheck_cli: Cli) -> None:
    """The committed GUNs share one root key (so one SPKI pin fits all of them)
    and each has its own certificate."""
    shared_spki = spki_sha256("localhost/basic")
    assert shared_spki == spki_sha256("localhost/signers") == spki_sha256("localhost/releases")

    def pins(general: str, signers: str, basic: str) -> Path:
        return write(
            tmp_path / f"{general[:4]}-{signers[:4]}-{basic[:4]}.toml",
            f'version = 1\n[pins."localhost/*"]\nroot = ["{general}"]\n'
            f'[pins."localhost/signers"]\nroot = ["{signers}"]\n'
            f'[pins."localhost/bas*"]\nroot = ["{basic}"]\n',
        )

    general_ok = f"spki-sha256:{shared_spki}"
    general_bad = f"spki-sha256:{flip(shared_spki)}"
    signers_ok = f"cert-sha256:{cert_sha256('localhost/signers')}"
    signers_bad = f"cert-sha256:{flip(cert_sha256('localhost/signers'))}"
    basic_ok = f"keyid:{root_keyid('localhost/basic')}"
    basic_bad = f"keyid:{flip(root_keyid('localhost/basic'))}"

    specific_wrong = pins(general_ok, signers_bad, basic_bad)
    assert_trusted(verify(trustcheck_cli, "localhost/releases:v1", "--pins", specific_wrong))
    assert_refused(
        verify(trustcheck_cli, "localhost/signers:v1", "--pins", specific_wrong), "pin-mismatch"
    )
    assert_refused(
        verify(trustcheck_cli, "localhost/basic:v1", "--pins", specific_wrong), "pin-mismatch"
    )

    general_wrong = pins(general_bad, signers_ok, basic_ok)
    assert_refused(
        verify(trustcheck_cli, "localhost/releases:v1", "--pins", general_wrong), "pin-mismatch"
    )
    assert_trusted(verify(trustcheck_cli, "localhost/signers:v1", "--pins", general_wrong))
    assert_trusted(verify(trustcheck_cli, "localhost/basic:v1", "--pins", general_wrong))


@needs_openssl
def test_openssl_fingerprint_form_is_accepted(tmp_path: Path, trustcheck_cli: Cli) -> None:
    pem = tmp_path / "root.pem"
    pem.write_bytes(root_cert("localhost/basic").public_bytes(serialization.Encoding.PEM))
    line = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(pem)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    colon = line.split("=", 1)[1]
    assert ":" in colon and colon.replace(":", "").lower() == cert_sha256("localhost/basic")
    path = write(
        tmp_path / "pins.toml", f'[pins."localhost/basic"]\nroot = ["cert-sha256:{colon}"]'
    )
    assert_trusted(verify(trustcheck_cli, "localhost/basic:v1", "--pins", path, "--no-tofu"))
    wrong = write(
        tmp_path / "wrong.toml",
        f'[pins."localhost/basic"]\nroot = ["cert-sha256:{colon[:-1]}{flip(colon[-1])}"]',
    )
    assert_refused(verify(trustcheck_cli, "localhost/basic:v1", "--pins", wrong), "pin-mismatch")


def test_no_tofu(tmp_path: Path, trustcheck_cli: Cli) -> None:
    assert_refused(verify(trustcheck_cli, "localhost/basic:v1", "--no-tofu"), "no-pin")
    signer_only = write(
        tmp_path / "signers-only.toml",
        f'[pins."localhost/basic"]\nsigners = {{ alice = ["keyid:{GOOD}"] }}',
    )  # a signer pin is no root pin
    assert_refused(
        verify(trustcheck_cli, "localhost/basic:v1", "--pins", signer_only, "--no-tofu"), "no-pin"
    )
    in_file = write(
        tmp_path / "no-tofu.toml",
        f'no_tofu = true\n[pins."localhost/signers"]\n'
        f'root = ["keyid:{root_keyid("localhost/signers")}"]',
    )
    assert_refused(verify(trustcheck_cli, "localhost/basic:v1", "--pins", in_file), "no-pin")
    assert_trusted(verify(trustcheck_cli, "localhost/signers:v1", "--pins", in_file))


def test_pin_list_reports_unmatched_and_pin_remove(tmp_path: Path, trustcheck_cli: Cli) -> None:
    path = write(
        tmp_path / "pins.toml",
        f'[pins."localhost/basic"]\nroot = ["keyid:{root_keyid("localhost/basic")}"]\n'
        f'[pins."nowhere.example/*"]\nroot = ["keyid:{GOOD}"]\n',
    )
    run = trustcheck_cli("pin", "list", "--json", "--pins", str(path), "--trust-dir", str(TRUST))
    assert run.code == 0
    rows = {r["pattern"]: r for r in json.loads(run.stdout)["pins"]}
    assert rows["localhost/basic"]["unmatched"] is False
    assert rows["localhost/basic"]["matches"] == ["localhost/basic"]
    assert rows["nowhere.example/*"]["unmatched"] is True
    text = trustcheck_cli("pin", "list", "--pins", str(path), "--trust-dir", str(TRUST))
    assert "nowhere.example/* matches no collection" in text.stderr

    removed = trustcheck_cli("pin", "remove", "nowhere.example/*", "--pins", str(path))
    assert removed.code == 0
    assert [e.pattern for e in load_pins(path).entries] == ["localhost/basic"]
    again = trustcheck_cli("pin", "remove", "nowhere.example/*", "--pins", str(path))
    assert again.code == 2 and "[invalid-argument]" in again.stderr


# --------------------------------------------------------------------------- state files


def _state_file(state_dir: Path, gun: str) -> Path:
    for p in (state_dir / "v1").glob("*.json"):
        if json.loads(p.read_bytes())["gun"] == gun:
            return p
    raise AssertionError(f"no state file for {gun} in {state_dir}")


@pytest.mark.parametrize(
    "corrupt",
    ["truncated", "not-json", "other-gun", "root-not-base64", "versions-not-numbers", "empty"],
)
def test_corrupt_state_is_state_invalid(corrupt: str, tmp_path: Path, trustcheck_cli: Cli) -> None:
    state = tmp_path / "state"
    assert_trusted(verify(trustcheck_cli, "localhost/basic:v1", "--state-dir", state))
    assert_trusted(verify(trustcheck_cli, "localhost/signers:v1", "--state-dir", state))
    basic, signers = _state_file(state, "localhost/basic"), _state_file(state, "localhost/signers")
    good = basic.read_bytes()
    doc = json.loads(good)
    if corrupt == "truncated":
        basic.write_bytes(good[: len(good) // 2])
    elif corrupt == "not-json":
        basic.write_bytes(b"\x00\xffgarbage")
    elif corrupt == "other-gun":
        basic.write_bytes(signers.read_bytes())
    elif corrupt == "root-not-base64":
        basic.write_text(json.dumps({**doc, "root": "***"}))
    elif corrupt == "versions-not-numbers":
        basic.write_text(json.dumps({**doc, "versions": {"timestamp": "two"}}))
    else:
        basic.write_bytes(b"")
    before = basic.read_bytes()
    run = trustcheck_cli(
        "verify",
        "--json",
        "--trust-dir",
        str(TRUST),
        "--at",
        AT,
        "--state-dir",
        str(state),
        "localhost/basic:v1",
    )
    assert run.code == 2, run
    assert "[state-invalid]" in run.stderr and str(basic) in run.stderr
    assert basic.read_bytes() == before  # not overwritten
    # other GUNs in the same state dir are unaffected
    assert_trusted(verify(trustcheck_cli, "localhost/signers:v1", "--state-dir", state))


# --------------------------------------------------------------------------- 10. thumbprint


def _openssl_lines(pem: Path) -> list[str]:
    out = []
    for digest in ("sha256", "sha1"):
        done = subprocess.run(
            ["openssl", "x509", "-noout", "-fingerprint", f"-{digest}", "-in", str(pem)],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        out.append(done.stdout.strip())
    return out


@needs_openssl
@pytest.mark.parametrize("name", ["bob.crt", "releaser.crt", "rsa-releaser.crt", "root:basic"])
def test_thumbprint_cli_shows_openssls_fingerprints(
    name: str, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    if name.startswith("root:"):
        pem = tmp_path / "root.pem"
        pem.write_bytes(root_cert(f"localhost/{name[5:]}").public_bytes(serialization.Encoding.PEM))
    else:
        pem = GENERATED / "keys" / "delegations" / name
    run = trustcheck_cli("thumbprint", str(pem))
    assert run.code == 0, run.stderr
    lines = [ln.strip() for ln in run.stdout.splitlines()]
    for expected in _openssl_lines(pem):
        assert expected.startswith(("sha256 Fingerprint=", "sha1 Fingerprint="))
        assert any(ln.endswith(expected) for ln in lines), (expected, run.stdout)


@needs_openssl
def test_thumbprint_of_an_image_shows_openssls_fingerprint_of_its_root(
    tmp_path: Path, trustcheck_cli: Cli
) -> None:
    pem = tmp_path / "root.pem"
    pem.write_bytes(root_cert("localhost/signers").public_bytes(serialization.Encoding.PEM))
    run = trustcheck_cli("thumbprint", "--trust-dir", str(TRUST), "--at", AT, "localhost/signers")
    assert run.code == 0, run.stderr
    for expected in _openssl_lines(pem):
        assert expected in run.stdout


# --------------------------------------------------------------------------- 11. delegation certs


def _n03(cli: Cli, *options: str) -> tuple[dict[str, Any], str]:
    run = cli(
        "verify",
        "--json",
        "--trust-dir",
        str(N03),
        "--at",
        "2020-01-01T00:00:00Z",
        *options,
        f"{N03_GUN}:hello",
    )
    assert run.code in (0, 1), run.stderr
    (result,) = json.loads(run.stdout)["results"]
    assert run.code == (0 if result["trusted"] else 1)
    assert isinstance(result, dict)
    return result, run.stderr


def test_delegation_cert_expiry_policy(tmp_path: Path, trustcheck_cli: Cli) -> None:
    if not N03.is_dir():
        pytest.fail(f"{N03} is missing (fixtures/realworld, committed)")
    cert_line = "expired at 2017-07-27T20:24:52Z"

    ignored, err = _n03(trustcheck_cli, "--delegation-cert-expiry", "ignore")
    assert ignored["trusted"] is True and ignored["role"] == "targets/releases"
    assert "expired" not in err and "warning" not in err

    warned, err = _n03(trustcheck_cli, "--delegation-cert-expiry", "warn")
    assert warned["trusted"] is True and warned["role"] == "targets/releases"
    assert warned["digest"] == ignored["digest"]
    assert "warning:" in err and cert_line in err and "targets/releases" in err

    default, err = _n03(trustcheck_cli)
    assert default["trusted"] is True and cert_line in err  # warn is the default

    rejected, err = _n03(trustcheck_cli, "--delegation-cert-expiry", "reject")
    assert rejected["trusted"] is False
    # hello is signed only in targets/releases, which is now skipped
    assert rejected["error"]["code"] == "tag-not-signed"
    assert "skipping targets/releases" in err and cert_line in err

    bad = trustcheck_cli(
        "verify", "--trust-dir", str(N03), "--delegation-cert-expiry", "maybe", f"{N03_GUN}:hello"
    )
    assert bad.code == 2 and "[invalid-argument]" in bad.stderr
