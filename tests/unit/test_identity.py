"""One identity per repository name (issue 14 items 1, 7 and 11).

Every decision keyed on a repository name (root pins, signer pins, notary
``trust_pinning`` configs, policy rules, the policy's allow/deny exemptions,
TOFU/rollback state, trust-dir paths, the webhook's shared cache key, audit's
key index) must pick the same entry for every spelling of one name; the
ambiguous spellings are refused. The end-to-end cases run the real CLI on
collections built from the committed notary fixtures (fixtures/attacks), so
the root certificate's CN matches the GUN exactly as notary requires.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from fixtures.attacks.cases import Ctx, root_cert, swap_root_key
from fixtures.attacks.keys import cert_pem, make_cert
from fixtures.attacks.repo import Repo
from fixtures.generate import FixtureSet
from tests.conftest import CliRun, pod_review
from trustcheck.api import Options, load_collection
from trustcheck.audit.collect import audit
from trustcheck.core.reference import canonical_domain, identity, parse_reference
from trustcheck.errors import UsageError
from trustcheck.local.pinfile import PinSet, load_pins, normalise_pattern, signer_pin_problem
from trustcheck.local.state import StateStore
from trustcheck.local.trustdir import TrustDir
from trustcheck.policy.load import parse_policy
from trustcheck.webhook.shared import MemoryStore, SharedCache

Cli = Callable[..., CliRun]
HEX = "a" * 64

# (a spelling, the identity every keyed decision must use for it)
ALIASES: list[tuple[str, str]] = [
    ("EXAMPLE.com/team/app", "example.com/team/app"),
    ("Example.Com/team/app", "example.com/team/app"),
    ("example.com:443/team/app", "example.com/team/app"),
    ("EXAMPLE.COM:0443/team/app", "example.com/team/app"),
    ("registry.example.com:05000/app", "registry.example.com:5000/app"),
    ("alpine", "docker.io/library/alpine"),
    ("library/alpine", "docker.io/library/alpine"),
    ("docker.io/alpine", "docker.io/library/alpine"),
    ("Docker.IO/alpine", "docker.io/library/alpine"),
    ("docker.io:443/library/alpine", "docker.io/library/alpine"),
    ("index.docker.io/alpine", "docker.io/library/alpine"),
    ("INDEX.DOCKER.IO/library/alpine", "docker.io/library/alpine"),
    ("registry-1.docker.io/alpine", "docker.io/library/alpine"),
    ("registry-1.docker.io:443/library/alpine", "docker.io/library/alpine"),
    ("registry.hub.docker.com/library/alpine", "docker.io/library/alpine"),
    ("index.docker.io/team/app", "docker.io/team/app"),
    ("LOCALHOST/basic", "localhost/basic"),
    ("localhost:443/basic", "localhost/basic"),
    ("LocalHost:5000/basic", "localhost:5000/basic"),
    ("[0:0:0:0:0:0:0:1]:5000/app", "[::1]:5000/app"),
    ("[2001:DB8:0::1]/app", "[2001:db8::1]/app"),
    ("[2001:db8::1]:443/app", "[2001:db8::1]/app"),
]
IDS = [a for a, _ in ALIASES]

# spellings refused outright: (input, part of the reason)
REFUSED: list[tuple[str, str]] = [
    ("example.com./team/app:v1", "trailing dot"),
    ("EXAMPLE.COM.:443/team/app", "trailing dot"),
    ("Docker/app", "upper-case letters"),
    ("LOCALDOMAIN/debian", "upper-case letters"),
    ("127.1/app", "dotted-quad"),
    ("127.000.000.001:5000/app", "dotted-quad"),
    ("10.0.0.010/app", "dotted-quad"),
    ("0x7f.0.0.1/app", "dotted-quad"),
    ("0x7f000001:5000/app", "dotted-quad"),
    ("[::ffff:7f00:1]/app", "IPv4 address written as IPv6"),
    ("[::ffff:127.0.0.1]/app", "not a valid host"),
    ("example.com:0/app", "between 1 and 65535"),
    ("example.com:65536/app", "between 1 and 65535"),
    ("example.com/Team/app", "lowercase"),
]


@pytest.mark.parametrize(("spelling", "ident"), ALIASES, ids=IDS)
def test_every_spelling_parses_to_its_identity(spelling: str, ident: str) -> None:
    ref = parse_reference(spelling + ":v1")
    assert ref.name == ref.gun == ident
    assert identity(ident) == ident  # idempotent
    assert parse_reference(ident).name == ident
    assert identity(docker_gun(spelling)) == ident


@pytest.mark.parametrize(("spelling", "why"), REFUSED, ids=[r for r, _ in REFUSED])
def test_ambiguous_spellings_are_refused(spelling: str, why: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_reference(spelling)
    assert e.value.code == "invalid-reference"
    assert why in e.value.message


def test_canonical_domain_folds_only_equivalent_spellings() -> None:
    assert canonical_domain("EXAMPLE.com:443") == "example.com"
    assert canonical_domain("example.com:8443") == "example.com:8443"  # another port
    assert canonical_domain("example.com:80") == "example.com:80"  # not the https default
    assert canonical_domain("[::1]") == "[::1]"
    assert canonical_domain("127.0.0.1:443") == "127.0.0.1"
    assert canonical_domain("xn--bcher-kva.example") == "xn--bcher-kva.example"
    # localhost and its addresses are different names: not folded
    assert canonical_domain("localhost") != canonical_domain("127.0.0.1")


def test_non_ascii_hosts_are_refused_not_folded() -> None:
    """IDN: only the A-label (punycode) spelling exists; the U-label is refused."""
    with pytest.raises(UsageError, match="non-ASCII"):
        parse_reference("bücher.example/app")
    assert parse_reference("XN--BCHER-KVA.example/app").name == "xn--bcher-kva.example/app"


# --------------------------------------------------------------------------- keyed decisions
#
# Each decision is exercised twice per alias pair: the entry written under the
# alias spelling and the image named by the identity, and the other way round.


def _pins_file(tmp: Path, key: str, body: str) -> Path:
    path = tmp / "pins.toml"
    path.write_text(f"version = 1\n[pins.{json.dumps(key)}]\n{body}\n")
    return path


def decide_root_pin(tmp: Path, entry: str, image: str) -> bool:
    pins = load_pins(_pins_file(tmp, entry, f'root = ["cert-sha256:{HEX}"]'))
    found = pins.lookup(parse_reference(image).gun)
    return found is not None and [str(i) for i in found.root] == [f"cert-sha256:{HEX}"]


def decide_signer_pin(tmp: Path, entry: str, image: str) -> bool:
    pins = load_pins(_pins_file(tmp, entry, f'signers = {{ releases = ["keyid:{HEX}"] }}'))
    found = pins.lookup(parse_reference(image).gun)
    return found is not None and "releases" in found.signers


def decide_notary_certs(tmp: Path, entry: str, image: str) -> bool:
    path = tmp / "config.json"
    path.write_text(json.dumps({"trust_pinning": {"certs": {entry: [HEX]}}}))
    found = load_pins(path).lookup(parse_reference(image).gun)
    return found is not None and found.root != []


def decide_notary_ca(tmp: Path, entry: str, image: str) -> bool:
    path = tmp / "config.json"
    prefix = docker_gun(entry).rsplit("/", 1)[0] + "/"
    path.write_text(json.dumps({"trust_pinning": {"ca": {prefix: "ca.pem"}}}))
    found = load_pins(path).lookup(parse_reference(image).gun)
    return found is not None and found.ca == tmp / "ca.pem"


def decide_pin_wildcard(tmp: Path, entry: str, image: str) -> bool:
    prefix = docker_gun(entry).rsplit("/", 1)[0] + "/*"
    pins = load_pins(_pins_file(tmp, prefix, f'root = ["keyid:{HEX}"]'))
    return pins.lookup(parse_reference(image).gun) is not None


def _policy_rule(entry: str, action: str) -> str:
    # policy patterns are fully qualified: a familiar name is written as Docker qualifies it
    return (
        "rules:\n"
        f"  - name: the-rule\n    pattern: {json.dumps(docker_gun(entry))}\n    action: {action}\n"
        "  - name: other\n    pattern: '**'\n    action: deny\n"
    )


def decide_policy_rule(tmp: Path, entry: str, image: str) -> bool:
    rule = parse_policy(_policy_rule(entry, "verify"), "p.yaml").match(parse_reference(image))
    return rule is not None and rule.name == "the-rule"


def decide_policy_exemption(tmp: Path, entry: str, image: str) -> bool:
    """An ``allow`` rule is the policy's exemption: it must cover every spelling."""
    rule = parse_policy(_policy_rule(entry, "allow"), "p.yaml").match(parse_reference(image))
    return rule is not None and rule.action == "allow"


def decide_policy_wildcard(tmp: Path, entry: str, image: str) -> bool:
    text = _policy_rule(entry, "deny")
    qualified = text.split("pattern: ")[1].split("\n")[0]
    wild = json.dumps(json.loads(qualified).rsplit("/", 1)[0] + "/*")
    rule = parse_policy(text.replace(qualified, wild, 1), "p.yaml").match(parse_reference(image))
    return rule is not None and rule.name == "the-rule"


def docker_gun(spelling: str) -> str:
    """The GUN as Docker itself spells it (it qualifies familiar names but keeps
    host case, ports and the other Docker Hub host names): what a raw GUN handed
    to the state, the trust dir or the cache may look like."""
    first, slash, _ = spelling.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        return spelling
    return "docker.io/" + ("" if slash else "library/") + spelling


def decide_tofu_state(tmp: Path, entry: str, image: str) -> bool:
    store = StateStore(tmp / "state")
    with store.session(docker_gun(entry)) as (_, recorder):
        recorder.state = store.record(None, docker_gun(entry), b"root", {"root": 7})
    state = store.load(parse_reference(image).gun)
    return state is not None and state.versions == {"root": 7}


def decide_trust_dir_path(tmp: Path, entry: str, image: str) -> bool:
    td = TrustDir(tmp)
    return td.metadata_dir(docker_gun(entry)) == td.metadata_dir(parse_reference(image).gun)


def decide_webhook_cache_key(tmp: Path, entry: str, image: str) -> bool:
    cache = SharedCache(MemoryStore(), b"s" * 32, 60.0)
    server = "https://notary.example"
    return cache.key(server, docker_gun(entry)) == cache.key(server, parse_reference(image).gun)


DECISIONS: dict[str, Callable[[Path, str, str], bool]] = {
    "root-pin": decide_root_pin,
    "signer-pin": decide_signer_pin,
    "notary-certs": decide_notary_certs,
    "notary-ca": decide_notary_ca,
    "pin-wildcard": decide_pin_wildcard,
    "policy-rule": decide_policy_rule,
    "policy-exemption": decide_policy_exemption,
    "policy-wildcard": decide_policy_wildcard,
    "tofu-state": decide_tofu_state,
    "trust-dir-path": decide_trust_dir_path,
    "webhook-cache-key": decide_webhook_cache_key,
}


@pytest.mark.parametrize("decision", list(DECISIONS))
@pytest.mark.parametrize(("spelling", "ident"), ALIASES, ids=IDS)
def test_each_alias_selects_the_same_entry(
    tmp_path: Path, decision: str, spelling: str, ident: str
) -> None:
    decide = DECISIONS[decision]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert decide(tmp_path / "a", spelling, ident), f"entry {spelling!r}, image {ident!r}"
    assert decide(tmp_path / "b", ident, spelling), f"entry {ident!r}, image {spelling!r}"


@pytest.mark.parametrize("decision", list(DECISIONS))
def test_a_different_repository_selects_nothing(tmp_path: Path, decision: str) -> None:
    """The control: the same check for names that are *not* aliases gives False
    (so the table above cannot pass by matching everything)."""
    for entry, image in [
        ("example.com/team/app", "example.com:8443/team/app"),
        ("example.com/team/app", "evil.example/team/app"),
        ("docker.io/library/alpine", "docker.io/alpine2"),
        ("localhost/basic", "127.0.0.1/basic"),
    ]:
        sub = tmp_path / hashlib.sha256(f"{entry} {image}".encode()).hexdigest()[:8]
        sub.mkdir()
        if decision in ("notary-ca", "pin-wildcard", "policy-wildcard") and (
            entry.rsplit("/", 1)[0] == parse_reference(image).gun.rsplit("/", 1)[0]
        ):
            continue  # same namespace: a prefix rightly covers both
        assert not DECISIONS[decision](sub, entry, image), f"{entry} vs {image}"


def test_audit_key_index_and_pinned_flag_use_the_identity(
    committed_fixtures: FixtureSet, tmp_path: Path
) -> None:
    at = dt.datetime.strptime(committed_fixtures.validation_time, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=dt.UTC
    )
    col = load_collection(TrustDir(committed_fixtures.trust_dir), "localhost/basic", at, Options())
    pins = load_pins(_pins_file(tmp_path, "localhost/basic", f'root = ["keyid:{HEX}"]'))
    for spelling in ("LOCALHOST/basic", "localhost:443/basic", "localhost/basic"):
        report = audit({spelling: col}, at, pins=pins)
        (collection,) = report.collections
        assert collection.pinned, spelling
        assert not any(f.code == "unpinned" for f in report.findings), spelling
        assert {u.gun for e in report.keys for u in e.uses} == {"localhost/basic"}, spelling
    # the control: an unpinned repository is reported as such
    other = audit({"localhost/basic": col}, at, pins=PinSet())
    assert any(f.code == "unpinned" for f in other.findings)


def test_pin_keys_that_are_one_name_twice_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "pins.toml"
    path.write_text(
        "version = 1\n"
        f'[pins."EXAMPLE.com/team/app"]\nroot = ["keyid:{HEX}"]\n'
        f'[pins."example.com:443/team/app"]\nroot = ["keyid:{"b" * 64}"]\n'
    )
    with pytest.raises(UsageError) as e:
        load_pins(path)
    assert e.value.code == "pin-file-invalid"
    assert "same repository 'example.com/team/app'" in e.value.message


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("example.com./team/app", "trailing dot"),
        ("Docker/app", "upper-case letters"),
        ("example.com/Team/app", "lowercase"),
        ("example.com/team/app:v1", "no tag or digest"),
        ("127.1/app", "dotted-quad"),
    ],
)
def test_pin_keys_that_can_never_apply_are_an_error(tmp_path: Path, key: str, why: str) -> None:
    with pytest.raises(UsageError) as e:
        load_pins(_pins_file(tmp_path, key, f'root = ["keyid:{HEX}"]'))
    assert e.value.code == "pin-file-invalid" and why in e.value.message


def test_pin_patterns_normalise_like_names() -> None:
    assert normalise_pattern("EXAMPLE.com:443/team/*") == "example.com/team/*"
    assert normalise_pattern("Index.Docker.IO/library/*") == "docker.io/library/*"
    assert normalise_pattern("team/*") == "docker.io/team/*"
    assert normalise_pattern("Registry.Exa*") == "registry.exa*"
    assert normalise_pattern("*") == "*"


# --------------------------------------------------------------------------- end to end


GUN = "example.com/team/app"


def _collection(
    ctx: Ctx,
    gun: str,
    key: object | None = None,
    issuer: object | None = None,
) -> tuple[Repo, bytes]:
    """localhost/basic re-issued for ``gun``: a root certificate with CN = gun
    (from ``key``, else the genuine root key; issued by ``issuer`` if given)."""
    repo = ctx.rebuilt("localhost/basic")
    repo.gun = gun
    if key is None:
        pem = root_cert(ctx, repo, cn=gun)
        swap_root_key(ctx, repo, pem)
    else:
        cert = make_cert(
            key,  # type: ignore[arg-type]
            gun,
            ctx.when - dt.timedelta(hours=1),
            ctx.when + dt.timedelta(days=365),
            issuer_key=issuer,  # type: ignore[arg-type]
            issuer_name="identity test CA" if issuer is not None else None,
            serial=0x1D,
        )
        pem = cert_pem(cert)
        swap_root_key(ctx, repo, pem, signer=key)
    repo.refresh()
    return repo, pem


def _write(repo: Repo, trust_dir: Path) -> Path:
    for rel, data in repo.trust_files().items():
        path = trust_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return trust_dir


def _cert_sha256(pem: bytes) -> str:
    from cryptography import x509

    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


@pytest.fixture(scope="module")
def ctx(committed_fixtures: FixtureSet) -> Ctx:
    return Ctx(committed_fixtures.path)


SPELLINGS = [
    "example.com/team/app:v1",
    "EXAMPLE.com/team/app:v1",
    "example.com:443/team/app:v1",
    "Example.COM:0443/team/app:v1",
]


def test_gate_denies_every_spelling_by_the_root_pin(
    ctx: Ctx, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    """The reviewer's case: `gate EXAMPLE.com/team/app:v1` with an attacker's
    root must be denied exactly like `example.com/team/app:v1`."""
    genuine, genuine_pem = _collection(ctx, GUN)
    attacker, _ = _collection(ctx, GUN, key=ctx.keys.root2)
    good = _write(genuine, tmp_path / "good")
    evil = _write(attacker, tmp_path / "evil")
    pins = _pins_file(tmp_path, GUN, f'root = ["cert-sha256:{_cert_sha256(genuine_pem)}"]')
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - name: team\n    pattern: example.com/team/*\n")
    common = ["--policy", str(policy), "--pins", str(pins), "--at", ctx.at, "--offline"]
    for spelling in SPELLINGS:
        state = tmp_path / f"state-{hashlib.sha256(spelling.encode()).hexdigest()[:8]}"
        ok = trustcheck_cli(
            "gate", *common, "--state-dir", str(state), "--trust-dir", str(good), spelling
        )
        assert ok.code == 0, (spelling, ok.stdout, ok.stderr)
        bad = trustcheck_cli(
            "gate", *common, "--state-dir", str(state), "--trust-dir", str(evil), spelling
        )
        assert bad.code == 1, (spelling, bad.stdout, bad.stderr)
        assert "pin-mismatch" in bad.stdout + bad.stderr, spelling
        assert "Traceback" not in bad.stderr


def test_tofu_state_of_one_spelling_protects_every_other(
    ctx: Ctx, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    """Without a pin: trusted once as example.com/team/app, a replaced root is
    refused under every other spelling (no alias starts a fresh TOFU)."""
    genuine, _ = _collection(ctx, GUN)
    attacker, _ = _collection(ctx, GUN, key=ctx.keys.root2)
    good = _write(genuine, tmp_path / "good")
    evil = _write(attacker, tmp_path / "evil")
    state = tmp_path / "state"
    common = ["--at", ctx.at, "--offline", "--state-dir", str(state)]
    first = trustcheck_cli("verify", *common, "--trust-dir", str(good), SPELLINGS[0])
    assert first.code == 0, first.stdout + first.stderr
    for spelling in SPELLINGS:
        run = trustcheck_cli("verify", *common, "--trust-dir", str(evil), spelling)
        assert run.code == 1, (spelling, run.stdout, run.stderr)
        assert "root-rotation-invalid" in run.stdout + run.stderr, spelling


# --------------------------------------------------------------------------- item 7: pin order


def test_notary_pin_order_certs_wildcard_beats_a_longer_ca_prefix(
    ctx: Ctx, tmp_path: Path, trustcheck_cli: Cli
) -> None:
    """notary (trustpinning/trustpin.go NewTrustPinChecker): exact certs, then the
    longest certs wildcard, and only then the longest ca prefix. A root chaining
    to the ca bundle but refused by the certs wildcard is not trusted."""
    ca_key = ctx.keys.root2
    ca = make_cert(
        ca_key,
        "identity test CA",
        ctx.when - dt.timedelta(days=1),
        ctx.when + dt.timedelta(days=3650),
        ca=True,
        serial=0xCA1,
    )
    (tmp_path / "ca.pem").write_bytes(cert_pem(ca))
    genuine, _ = _collection(ctx, GUN)
    from fixtures.attacks.keys import p256_from_seed

    attacker, _ = _collection(ctx, GUN, key=p256_from_seed(b"identity attacker"), issuer=ca_key)
    genuine_id = genuine.signed("root")["roles"]["root"]["keyids"][0]
    good = _write(genuine, tmp_path / "good")
    evil = _write(attacker, tmp_path / "evil")

    def config(certs: dict[str, list[str]], cas: dict[str, str]) -> Path:
        path = tmp_path / f"config-{len(list(tmp_path.glob('config-*')))}.json"
        path.write_text(json.dumps({"trust_pinning": {"certs": certs, "ca": cas}}))
        return path

    def verify(trust: Path, pins: Path) -> CliRun:
        return trustcheck_cli(
            "verify",
            "--at",
            ctx.at,
            "--offline",
            "--trust-dir",
            str(trust),
            "--pins",
            str(pins),
            "--state-dir",
            str(tmp_path / f"s-{hashlib.sha256(str(pins).encode()).hexdigest()[:6]}-{trust.name}"),
            GUN + ":v1",
        )

    # the ca prefix alone trusts the attacker's CA-issued root (the control)
    ca_only = config({}, {"example.com/team/": str(tmp_path / "ca.pem")})
    assert verify(evil, ca_only).code == 0
    # a shorter certs wildcard wins over the longer ca prefix: refused
    both = config({"example.com/*": [genuine_id]}, {"example.com/team/": str(tmp_path / "ca.pem")})
    run = verify(evil, both)
    assert run.code == 1 and "pin-mismatch" in run.stdout + run.stderr, run.stdout + run.stderr
    assert verify(good, both).code == 0
    # also through an alias spelling of the certs key
    alias = config(
        {"EXAMPLE.com:443/*": [genuine_id]}, {"example.com/team/": str(tmp_path / "ca.pem")}
    )
    assert verify(evil, alias).code == 1
    # an exact certs key beats a longer wildcard too
    pins = load_pins(config({GUN: [genuine_id], GUN + "*": ["b" * 64]}, {GUN: "x.pem"}))
    found = pins.lookup(GUN)
    assert found is not None and found.pattern == GUN and found.ca is None


def test_toml_pin_precedence_exact_then_longest_prefix(tmp_path: Path) -> None:
    path = tmp_path / "pins.toml"
    path.write_text(
        "version = 1\n"
        f'[pins."example.com/*"]\nroot = ["keyid:{"1" * 64}"]\n'
        f'[pins."example.com/team/*"]\nca = "ca.pem"\n'
        f'[pins."example.com/team/app"]\nroot = ["keyid:{"2" * 64}"]\n'
    )
    pins = load_pins(path)

    def winner(gun: str) -> str | None:
        found = pins.lookup(gun)
        return None if found is None else found.pattern

    assert winner("example.com/team/app") == "example.com/team/app"
    assert winner("EXAMPLE.com:443/team/app") == "example.com/team/app"
    assert winner("example.com/team/other") == "example.com/team/*"  # longer prefix, even a ca
    assert winner("example.com/x") == "example.com/*"
    assert winner("example.org/x") is None


# --------------------------------------------------------------------------- item 11


NEVER_APPLY = [
    ("targets", "base role"),
    ("", "empty"),
    ("Releases", "not a name any delegation can have"),
    ("targets/", "not a name any delegation can have"),
    ("a/", "not a name any delegation can have"),
    ("/a", "not a name any delegation can have"),
    ("a//b", "not a name any delegation can have"),
    ("a/../b", "not a name any delegation can have"),
    ("..", "not a name any delegation can have"),
    ("a.b", "not a name any delegation can have"),
    ("a b", "not a name any delegation can have"),
    ("x" * 248, "not a name any delegation can have"),
]


@pytest.mark.parametrize(
    ("name", "why"), NEVER_APPLY, ids=[n[:20] or "empty" for n, _ in NEVER_APPLY]
)
def test_signer_pins_that_can_never_apply(name: str, why: str) -> None:
    problem = signer_pin_problem(name)
    assert problem is not None and why in problem


@pytest.mark.parametrize(
    "name", ["releases", "alice", "team/alice", "a-b_c", "x" * 247, "targets/releases"]
)
def test_signer_pins_for_possible_delegations_are_kept(name: str) -> None:
    assert signer_pin_problem(name) is None


@pytest.mark.parametrize("name", ["targets", "Releases", "a/../b"])
def test_bad_signer_pin_is_exit_2_at_load_and_at_pin_add(
    tmp_path: Path, trustcheck_cli: Cli, committed_fixtures: FixtureSet, name: str
) -> None:
    pins = _pins_file(
        tmp_path, "localhost/basic", f'signers = {{ {json.dumps(name)} = ["keyid:{HEX}"] }}'
    )
    fx = [
        "--trust-dir",
        str(committed_fixtures.trust_dir),
        "--at",
        committed_fixtures.validation_time,
        "--offline",
    ]
    for args in (
        ("verify", *fx, "--pins", str(pins), "localhost/basic:v1"),
        (
            "pin",
            "add",
            *fx,
            "--pins",
            str(pins),
            "--state-dir",
            str(tmp_path / "s"),
            "localhost/basic",
        ),
    ):
        run = trustcheck_cli(*args)
        assert run.code == 2, (args, run.stdout, run.stderr)
        assert "pin-file-invalid" in run.stderr and "signers" in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
        assert len([ln for ln in run.stderr.splitlines() if "pin-file-invalid" in ln]) == 1
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "rules:\n  - pattern: localhost/*\n    trust:\n      pins:\n        signers:\n"
        f"          {json.dumps(name)}: [keyid:{HEX}]\n"
    )
    run = trustcheck_cli("gate", "--policy", str(policy), *fx, "localhost/basic:v1")
    assert run.code == 2 and "policy-invalid" in run.stderr, run.stdout + run.stderr


# --------------------------------------------------------------------------- the webhook


def test_webhook_decides_and_caches_every_spelling_as_one_repository(
    committed_fixtures: FixtureSet,
) -> None:
    """Admission: the policy rule, the deny exemption and the trust-cache key
    (rule index, GUN) are the same for every spelling of an image."""
    from trustcheck.webhook.review import WebhookConfig, handle

    at = dt.datetime.fromisoformat(committed_fixtures.validation_time)
    policy = parse_policy(
        "rules:\n"
        "  - name: signed\n    pattern: localhost/*\n"
        "  - name: mirror\n    pattern: mirror.example.com/**\n    action: allow\n"
        "  - name: hub\n    pattern: docker.io/**\n    action: deny\n",
        "p.yaml",
    )
    asked: list[tuple[int, str]] = []

    def lookup(index: int, gun: str) -> object:
        asked.append((index, gun))
        return load_collection(TrustDir(committed_fixtures.trust_dir), gun, at, Options())

    allowed = [
        "localhost/basic:v1",
        "LOCALHOST/basic:v1",
        "localhost:443/basic:v1",
        "MIRROR.example.com:443/x/y:1",
    ]
    resp = handle(pod_review(allowed), policy, WebhookConfig(), lookup, mutate=False)
    assert resp["response"]["allowed"] is True, resp
    assert [g for _, g in asked] == ["localhost/basic"]  # one collection, one key
    denied = [
        "registry-1.docker.io/library/alpine:3",
        "Index.Docker.IO/alpine:3",
        "docker.io:443/alpine:3",
    ]
    resp = handle(pod_review(denied), policy, WebhookConfig(), lookup, mutate=False)
    message = resp["response"]["status"]["message"]
    assert resp["response"]["allowed"] is False
    assert message.count("[policy-denied]") == 3, message
    assert message.count('rule "hub" (docker.io/**) denies docker.io/library/alpine') == 3


def test_pin_add_and_remove_store_and_find_entries_by_identity(
    tmp_path: Path, trustcheck_cli: Cli, committed_fixtures: FixtureSet
) -> None:
    pins = tmp_path / "pins.toml"
    fx = [
        "--trust-dir",
        str(committed_fixtures.trust_dir),
        "--at",
        committed_fixtures.validation_time,
        "--offline",
        "--pins",
        str(pins),
        "--state-dir",
        str(tmp_path / "s"),
    ]
    added = trustcheck_cli("pin", "add", *fx, "--pattern", "LOCALHOST:443/*", "LOCALHOST/basic")
    assert added.code == 0, added.stdout + added.stderr
    assert added.stdout.startswith("pinned localhost/*: cert-sha256:"), added.stdout
    assert [e.pattern for e in load_pins(pins).entries] == ["localhost/*"]
    again = trustcheck_cli("pin", "add", *fx, "--pattern", "localhost/*", "localhost:443/basic")
    assert again.stdout.startswith("already pinned localhost/*:"), again.stdout
    bad = trustcheck_cli("pin", "add", *fx, "--pattern", "Docker/*", "localhost/basic")
    assert bad.code == 2 and "upper-case letters" in bad.stderr, bad.stderr
    removed = trustcheck_cli("pin", "remove", "--pins", str(pins), "Localhost:0443/*")
    assert removed.code == 0, removed.stderr
    assert load_pins(pins).entries == []
