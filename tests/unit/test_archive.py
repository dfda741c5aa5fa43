"""Trust archives (docs/archive.md) made from the committed trust data of the real
notary client: determinism, verification as of the capture time, every kind of
tampering refused, unsafe tar members, signatures and pins, max age, rollback
against the state, and the CLI contract (as-of text, JSON ``as_of``, exit codes)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import pod_review, run_trustcheck
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from trustcheck.api import Options, verify_images
from trustcheck.archive import create_archive, load_pin, load_signing_key, open_archive
from trustcheck.archive.decide import archive_lookup, evaluate_archive
from trustcheck.archive.format import write_tar
from trustcheck.core.reference import parse_reference
from trustcheck.errors import TrustcheckError
from trustcheck.local.state import StateStore
from trustcheck.local.trustdir import TrustDir
from trustcheck.policy.load import parse_policy

REPO = Path(__file__).resolve().parents[2]
TRUST = REPO / "fixtures" / "generated" / "trust"
AT_TEXT = (REPO / "fixtures" / "generated" / "VALIDATION_TIME").read_text().strip()
AT = datetime.fromisoformat(AT_TEXT.replace("Z", "+00:00"))
#: long after every timestamp of the fixtures expired (they last 14 days)
LATER = AT + timedelta(days=200)
LATER_TEXT = LATER.strftime("%Y-%m-%dT%H:%M:%SZ")
GUNS = ["localhost/basic", "localhost/releases", "localhost/signers", "localhost/nested"]
IMAGES = ["localhost/basic:v1", "localhost/releases:v1"]


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    r = run_trustcheck(*(str(a) for a in args))
    assert "Traceback" not in r.stderr
    return r.code, r.stdout, r.stderr


def make(tmp_path: Path, name: str = "a.tar", **kw: Any) -> Path:
    created = create_archive(GUNS, TrustDir(TRUST), AT, Options(), images=IMAGES, **kw)
    out = tmp_path / name
    out.write_bytes(created.data)
    return out


def members(path: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tarfile.open(path) as tar:
        for info in tar:
            f = tar.extractfile(info)
            assert f is not None
            out[info.name] = f.read()
    return out


def rewrite(path: Path, change: Callable[[dict[str, bytes]], object]) -> Path:
    files = members(path)
    change(files)
    path.write_bytes(write_tar(files))
    return path


def refused(path: Path, code: str, **kw: Any) -> TrustcheckError:
    with pytest.raises(TrustcheckError) as info:
        open_archive(path, kw.pop("now", LATER), **kw)
    assert info.value.code == code, info.value
    assert "\n" not in info.value.message
    return info.value


def pem_key(tmp_path: Path, kind: str) -> Path:
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    if kind == "ecdsa":
        key = ec.generate_private_key(ec.SECP256R1())
    elif kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif kind == "p384":
        key = ec.generate_private_key(ec.SECP384R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path = tmp_path / f"{kind}.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pub = tmp_path / f"{kind}.pub"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


# ----------------------------------------------------------------------------- format


def test_archive_is_deterministic_and_in_the_documented_layout(tmp_path: Path) -> None:
    a = make(tmp_path, "a.tar")
    b = make(tmp_path, "b.tar")
    assert a.read_bytes() == b.read_bytes()
    with tarfile.open(a) as tar:
        infos = tar.getmembers()
    names = [i.name for i in infos]
    assert names == sorted(names)
    assert names[:2] == ["capture.json", "manifest.json"]
    for i in infos:
        assert i.isreg() and i.mtime == 0 and i.uid == i.gid == 0 and i.mode == 0o644
        assert i.uname == i.gname == ""
    files = members(a)
    # exactly the files the verification read, byte for byte from the trust dir
    for name, data in files.items():
        if name.startswith("trust/"):
            assert (TRUST / name.removeprefix("trust/")).read_bytes() == data
    assert "trust/tuf/localhost/signers/metadata/targets/alice.json" in files
    assert "trust/tuf/localhost/nested/metadata/targets/a/b.json" in files
    manifest = json.loads(files["manifest.json"])
    assert set(manifest["files"]) == set(files) - {"manifest.json"}
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == hashlib.sha256(files[name]).hexdigest()
    capture = json.loads(files["capture.json"])
    assert capture["captured_at"] == AT_TEXT
    assert set(capture["collections"]) == set(GUNS)
    assert [r["image"] for r in capture["images"]] == IMAGES
    assert all(r["trusted"] for r in capture["images"])
    assert capture["collections"]["localhost/basic"]["server"] is None


def test_a_different_capture_time_is_a_different_archive(tmp_path: Path) -> None:
    one = create_archive(GUNS, TrustDir(TRUST), AT, Options()).data
    two = create_archive(GUNS, TrustDir(TRUST), AT + timedelta(seconds=1), Options()).data
    assert one != two


# ----------------------------------------------------------------------------- verifying


def test_verified_as_of_capture_time_after_the_metadata_expired(tmp_path: Path) -> None:
    path = make(tmp_path)
    live = verify_images(["localhost/basic:v1"], TRUST, LATER)
    assert not live[0].trusted and live[0].error is not None
    assert live[0].error.code == "metadata-expired"
    archive = open_archive(path, LATER)
    assert archive.as_of == AT_TEXT and archive.signer is None
    basic, rel, signers_latest, missing = archive.verify_images(
        ["localhost/basic:v1", "localhost/releases:v1", "localhost/signers:nope", "localhost/x:1"]
    )
    assert basic.trusted and live[0].digest is None
    want = verify_images(["localhost/basic:v1", "localhost/releases:v1"], TRUST, AT)
    assert (basic.digest, rel.digest) == (want[0].digest, want[1].digest)
    assert rel.role == "targets/releases" and rel.signers == ["releases"]
    assert not signers_latest.trusted and signers_latest.error is not None
    assert signers_latest.error.code == "tag-not-signed"
    assert missing.error is not None and missing.error.code == "no-trust-data"
    assert "holds no trust data for localhost/x" in missing.error.message


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        (
            lambda f: f.__setitem__(
                "trust/tuf/localhost/basic/metadata/targets.json",
                f["trust/tuf/localhost/basic/metadata/targets.json"].replace(b'"v1"', b'"v9"'),
            ),
            "archive-manifest-mismatch",
            "targets.json has SHA-256",
        ),
        (
            lambda f: f.pop("trust/tuf/localhost/releases/metadata/targets/releases.json"),
            "archive-manifest-mismatch",
            "releases.json is listed in manifest.json but missing",
        ),
        (
            lambda f: f.__setitem__("trust/tuf/localhost/basic/metadata/targets/evil.json", b"{}"),
            "archive-manifest-mismatch",
            "evil.json is not listed",
        ),
        (
            lambda f: f.__setitem__(
                "capture.json",
                f["capture.json"].replace(AT_TEXT.encode(), b"2026-12-20T00:00:00Z"),
            ),
            "archive-manifest-mismatch",
            "capture.json has SHA-256",
        ),
        (lambda f: f.pop("capture.json"), "archive-manifest-mismatch", "capture.json is listed"),
        (lambda f: f.pop("manifest.json"), "archive-invalid", "no manifest.json"),
        (
            lambda f: f.__setitem__("manifest.json", b'{"format":"x"}'),
            "archive-invalid",
            "not a trustcheck-archive manifest",
        ),
        (
            lambda f: f.__setitem__("manifest.sig", b"{}"),
            "archive-invalid",
            "manifest.sig is not",
        ),
    ],
    ids=[
        "changed-file",
        "removed-file",
        "extra-file",
        "changed-capture-time",
        "removed-capture-record",
        "removed-manifest",
        "foreign-manifest",
        "empty-signature",
    ],
)
def test_tampered_archives_are_refused(
    tmp_path: Path, change: Callable[[dict[str, bytes]], object], code: str, words: str
) -> None:
    path = rewrite(make(tmp_path), change)
    assert words in refused(path, code).message


def test_capture_time_rewritten_consistently_is_caught_only_by_the_signature(
    tmp_path: Path,
) -> None:
    """Without a signature a consistent rewrite (capture record and manifest) cannot
    be told from the original: that is what signing and --archive-pin are for."""
    key = load_signing_key(pem_key(tmp_path, "ecdsa"))
    path = make(tmp_path, signer=key)

    def shift(f: dict[str, bytes]) -> None:
        f["capture.json"] = f["capture.json"].replace(AT_TEXT.encode(), b"2026-12-20T00:00:00Z")
        manifest = json.loads(f["manifest.json"])
        manifest["files"]["capture.json"] = {
            "sha256": hashlib.sha256(f["capture.json"]).hexdigest(),
            "length": len(f["capture.json"]),
        }
        f["manifest.json"] = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()

    rewrite(path, shift)
    assert (
        "does not verify over manifest.json" in refused(path, "archive-signature-invalid").message
    )
    unsigned = rewrite(path, lambda f: f.pop("manifest.sig"))
    assert open_archive(unsigned, LATER).as_of == "2026-12-20T00:00:00Z"
    pin = load_pin(f"sha256:{key.key_sha256}")
    assert "is unsigned" in refused(unsigned, "archive-signature-invalid", pin=pin).message


@pytest.mark.parametrize("kind", ["ecdsa", "ed25519", "rsa"])
def test_signed_archives_and_pins(tmp_path: Path, kind: str) -> None:
    key_file = pem_key(tmp_path, kind)
    signer = load_signing_key(key_file)
    path = make(tmp_path, signer=signer)
    assert "manifest.sig" in members(path)
    by_file = load_pin(str(key_file.with_suffix(".pub")))
    by_hash = load_pin(f"SHA256:{signer.key_sha256.upper()}")
    assert by_file.sha256 == by_hash.sha256 == signer.key_sha256
    for pin in (by_file, by_hash, None):
        assert open_archive(path, LATER, pin=pin).signer == signer.key_sha256
    other = load_signing_key(pem_key(tmp_path / "..", "ed25519" if kind != "ed25519" else "ecdsa"))
    err = refused(path, "archive-pin-mismatch", pin=load_pin(f"sha256:{other.key_sha256}"))
    assert signer.key_sha256 in err.message and other.key_sha256 in err.message
    # an attacker re-signs a changed manifest with their own key: the pin refuses it
    resigned = rewrite(
        make(tmp_path, "b.tar", signer=signer),
        lambda f: f.__setitem__("manifest.sig", other.sign(f["manifest.json"])),
    )
    refused(resigned, "archive-pin-mismatch", pin=by_hash)
    assert open_archive(resigned, LATER).signer == other.key_sha256  # unpinned: integrity only
    # the signature of one manifest does not fit another
    swapped = rewrite(
        make(tmp_path, "c.tar", signer=signer),
        lambda f: f.__setitem__("manifest.json", f["manifest.json"].replace(b"\n", b" \n")),
    )
    refused(swapped, "archive-signature-invalid", pin=by_hash)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("sha256:abc", "archive-key-invalid"),
        ("/nonexistent/key.pem", "archive-key-invalid"),
    ],
)
def test_bad_pins_are_usage_errors(text: str, code: str) -> None:
    with pytest.raises(TrustcheckError) as info:
        load_pin(text)
    assert info.value.code == code and info.value.exit_code == 2


@pytest.mark.parametrize("kind", ["p384", "rsa1024"])
def test_weak_or_unsupported_signing_keys_are_refused(tmp_path: Path, kind: str) -> None:
    with pytest.raises(TrustcheckError) as info:
        load_signing_key(pem_key(tmp_path, kind))
    assert info.value.code == "archive-key-invalid" and "supported:" in info.value.message


def test_max_age_and_capture_time_in_the_future(tmp_path: Path) -> None:
    path = make(tmp_path)
    assert open_archive(path, AT + timedelta(days=89), max_age=timedelta(days=90)).as_of
    err = refused(path, "archive-too-old", now=AT + timedelta(days=91), max_age=timedelta(days=90))
    assert "91 days ago" in err.message and "90 days" in err.message
    err = refused(path, "archive-invalid", now=AT - timedelta(hours=1))
    assert "later than now" in err.message


# ----------------------------------------------------------------------------- tar safety


def _raw_tar(path: Path, entries: list[tarfile.TarInfo], data: dict[str, bytes]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info in entries:
            body = data.get(info.name)
            if body is not None:
                info.size = len(body)
            tar.addfile(info, io.BytesIO(body) if body is not None else None)
    path.write_bytes(buf.getvalue())
    return path


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        (_entry("trust/tuf/x/metadata/root.json", tarfile.SYMTYPE, "/etc/passwd"), "not a regular"),
        (
            _entry("trust/tuf/x/metadata/root.json", tarfile.LNKTYPE, "capture.json"),
            "not a regular",
        ),
        (_entry("trust/tuf/x/metadata", tarfile.DIRTYPE), "not a regular"),
        (_entry("trust/tuf/x/metadata/root.json", tarfile.CHRTYPE), "not a regular"),
        (_entry("trust/tuf/x/metadata/root.json", tarfile.FIFOTYPE), "not a regular"),
        (_entry("../../etc/cron.d/x"), "outside the archive layout"),
        (_entry("/etc/passwd"), "outside the archive layout"),
        (_entry("trust/tuf/../../x/metadata/root.json"), "not a role file"),
        (_entry("trust/tuf/x/metadata/../../../root.json"), "not a role file"),
        (_entry("trust/tuf/x/metadata/Root.json"), "not a role file"),
    ],
    ids=[
        "symlink",
        "hardlink",
        "folder",
        "device",
        "fifo",
        "dotdot",
        "absolute",
        "gun-dotdot",
        "role-dotdot",
        "bad-role",
    ],
)
def test_unsafe_members_are_refused(tmp_path: Path, entry: tarfile.TarInfo, words: str) -> None:
    files = members(make(tmp_path))
    entries = [_entry(n) for n in sorted(files)] + [entry]
    if entry.isreg():
        files[entry.name] = b"{}"
    path = _raw_tar(tmp_path / "evil.tar", entries, files)
    assert words in refused(path, "archive-invalid").message


def test_duplicate_members_oversize_members_and_compression(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = make(tmp_path)
    files = members(good)
    dup = [_entry(n) for n in sorted(files)] + [_entry("capture.json")]
    assert (
        "appears twice"
        in refused(_raw_tar(tmp_path / "d.tar", dup, files), "archive-invalid").message
    )
    import trustcheck.archive.format as fmt

    monkeypatch.setattr(fmt, "MAX_RECORD_SIZE", 100)
    assert "larger than 100 bytes" in refused(good, "archive-invalid").message
    monkeypatch.undo()
    gz = tmp_path / "a.tar.gz"
    gz.write_bytes(gzip.compress(good.read_bytes(), mtime=0))
    assert "compressed" in refused(gz, "archive-unreadable").message
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    refused(junk, "archive-unreadable")
    refused(tmp_path / "missing.tar", "archive-unreadable")
    refused(tmp_path, "archive-unreadable")


# ----------------------------------------------------------------------------- pins, state


def test_archive_never_overrides_newer_state_or_a_root_pin(tmp_path: Path) -> None:
    path = make(tmp_path)
    archive = open_archive(path, LATER)
    store = StateStore(tmp_path / "state")
    # the live state knows a newer timestamp (or root) than the archive holds
    newer = archive.collection("localhost/basic")
    with store.session("localhost/basic") as (previous, recorder):
        versions = {n: c.version for n, c in newer.checks.items()}
        versions["timestamp"] += 5
        recorder.state = store.record(previous, "localhost/basic", newer.root_raw, versions)
    (basic,) = archive.verify_images(["localhost/basic:v1"], Options(state=store))
    assert basic.error is not None and basic.error.code == "version-rollback"
    # reading the archive never moves the state: another GUN stays unrecorded
    (rel,) = archive.verify_images(["localhost/releases:v1"], Options(state=store))
    assert rel.trusted and store.load("localhost/releases") is None
    # a live root pin that the archive's root does not match
    pins = tmp_path / "pins.toml"
    pins.write_text('[pins."localhost/basic"]\nroot = ["cert-sha256:' + "ab" * 32 + '"]\n')
    from trustcheck.local.pinfile import load_pins

    (pinned,) = archive.verify_images(["localhost/basic:v1"], Options(pins=load_pins(pins)))
    assert pinned.error is not None and pinned.error.code == "pin-mismatch"


# ----------------------------------------------------------------------------- policy, webhook


POLICY = """
rules:
  - name: releases
    pattern: localhost/releases
    action: verify
    signers: [releases]
  - name: rest
    pattern: "localhost/*"
    action: verify
"""


def test_gate_and_webhook_decisions_from_an_archive(tmp_path: Path) -> None:
    archive = open_archive(make(tmp_path), LATER)
    policy = parse_policy(POLICY)
    images = ["localhost/releases:v1", "localhost/basic:v1", "localhost/basic:nope"]
    decisions = evaluate_archive([parse_reference(i) for i in images], policy, archive)
    assert [d.verdict for d in decisions] == ["allow", "allow", "deny"]
    assert decisions[2].reasons[0].code == "tag-not-signed"
    from trustcheck.webhook.review import WebhookConfig, handle

    lookup = archive_lookup(archive, policy)
    ok = handle(pod_review(["localhost/releases:v1"]), policy, WebhookConfig(), lookup)
    assert ok["response"]["allowed"] is True
    bad = handle(pod_review(["localhost/basic:nope"]), policy, WebhookConfig(), lookup)
    assert bad["response"]["allowed"] is False
    assert "tag-not-signed" in bad["response"]["status"]["message"]


# ----------------------------------------------------------------------------- CLI


def test_cli_create_verify_inspect_extract(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "team.tar"
    key = pem_key(tmp_path, "ed25519")
    code, out, _ = run(
        capsys,
        "archive",
        "create",
        "--offline",
        "--trust-dir",
        TRUST,
        "--at",
        AT_TEXT,
        "--all",
        "--sign-key",
        key,
        "-o",
        out_file,
    )
    assert code == 0, out
    assert f"captured at {AT_TEXT}" in out and "signed by sha256:" in out
    pub = key.with_suffix(".pub")
    code, out, err = run(
        capsys,
        "verify",
        "--archive",
        out_file,
        "--archive-pin",
        pub,
        "--at",
        LATER_TEXT,
        "localhost/basic:v1",
        "localhost/rotated:v1",
    )
    assert code == 0, out + err
    assert out.splitlines()[0].startswith(f"# as of capture time {AT_TEXT}")
    assert all(f"as of capture time {AT_TEXT}" in line for line in out.splitlines())
    code, out, _ = run(
        capsys,
        "verify",
        "--archive",
        out_file,
        "--json",
        "--at",
        LATER_TEXT,
        "localhost/basic:v1",
        "localhost/basic:nope",
    )
    assert code == 1
    doc = json.loads(out)
    assert doc["as_of"] == AT_TEXT and doc["archive"]["signed_by"].startswith("sha256:")
    assert [r["as_of"] for r in doc["results"]] == [AT_TEXT, AT_TEXT]
    assert [r["trusted"] for r in doc["results"]] == [True, False]
    # the live answer at the same time is not trusted: the archive is the difference
    code, out, _ = run(
        capsys,
        "verify",
        "--offline",
        "--trust-dir",
        TRUST,
        "--at",
        LATER_TEXT,
        "localhost/basic:v1",
    )
    assert code == 1 and "metadata-expired" in out
    code, out, err = run(
        capsys,
        "verify",
        "--archive",
        out_file,
        "--max-age",
        "30d",
        "--at",
        LATER_TEXT,
        "localhost/basic:v1",
    )
    assert code == 1 and "[archive-too-old]" in err and out == ""
    code, out, _ = run(capsys, "archive", "inspect", out_file, "--at", LATER_TEXT, "--json")
    assert code == 0 and json.loads(out)["collections"]["localhost/nested"]["roles"]
    dest = tmp_path / "restored"
    code, out, _ = run(capsys, "archive", "extract", out_file, "-o", dest, "--at", LATER_TEXT)
    assert code == 0
    for f in (TRUST / "tuf/localhost/signers/metadata").rglob("*.json"):
        rel = f.relative_to(TRUST)
        if (dest / rel).exists():
            assert (dest / rel).read_bytes() == f.read_bytes()
    assert (dest / "tuf/localhost/signers/metadata/targets/alice.json").exists()
    code, out, err = run(
        capsys, "inspect", "--archive", out_file, "--at", LATER_TEXT, "localhost/releases:v1"
    )
    assert code == 0 and err.startswith(f"# as of capture time {AT_TEXT}")
    (entry,) = json.loads(out)
    assert entry["AsOf"] == AT_TEXT and entry["SignedTags"][0]["SignedTag"] == "v1"
    live = run(
        capsys,
        "inspect",
        "--offline",
        "--trust-dir",
        TRUST,
        "--at",
        LATER_TEXT,
        "localhost/releases:v1",
    )
    assert live[0] == 1 and "[metadata-expired]" in live[2]
    code, out, err = run(
        capsys, "audit", "--archive", out_file, "--all", "--format", "json", "--at", LATER_TEXT
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["at"] == AT_TEXT and f"as of capture time {AT_TEXT}" in err
    assert len(report["collections"]) == len(TrustDir(TRUST).list_guns())
    live_audit = run(capsys, "audit", "--trust-dir", TRUST, "--all", "--format", "json",
                     "--at", LATER_TEXT)  # fmt: skip
    assert json.loads(live_audit[1])["at"] == LATER_TEXT
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    code, out, _ = run(
        capsys,
        "gate",
        "--policy",
        policy,
        "--archive",
        out_file,
        "--json",
        "--at",
        LATER_TEXT,
        "localhost/releases:v1",
    )
    assert code == 0 and json.loads(out)["as_of"] == AT_TEXT


def test_cli_failures_are_one_line_with_the_right_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "x.tar"
    # an image that is not trusted at capture time: nothing is written, exit 1
    code, _, err = run(
        capsys,
        "archive",
        "create",
        "--offline",
        "--trust-dir",
        TRUST,
        "--at",
        AT_TEXT,
        "localhost/basic:nope",
        "-o",
        out_file,
    )
    assert code == 1 and "archive not written" in err and not out_file.exists()
    assert len(err.strip().splitlines()) == 1
    # expired at the capture time (the library; the CLI refuses a future --at)
    with pytest.raises(TrustcheckError) as info:
        create_archive(["localhost/basic"], TrustDir(TRUST), LATER, Options())
    assert info.value.code == "metadata-expired" and "archive not written" in info.value.message
    code, _, err = run(
        capsys, "archive", "create", "--offline", "--trust-dir", TRUST, "--at",
        "2999-01-01T00:00:00Z", "localhost/basic:v1", "-o", out_file,
    )  # fmt: skip
    assert code == 2 and "cannot lie in the future" in err and not out_file.exists()
    cases: list[tuple[list[str | Path], int, str]] = [
        (
            ["archive", "create", "--offline", "--trust-dir", TRUST, "localhost/basic:v1"],
            2,
            "invalid-argument",
        ),
        (
            ["archive", "create", "--offline", "--trust-dir", TRUST, "-o", out_file],
            2,
            "invalid-argument",
        ),
        (
            [
                "archive",
                "create",
                "--offline",
                "--trust-dir",
                TRUST,
                "--at",
                AT_TEXT,
                "--sign-key",
                tmp_path / "none.pem",
                "localhost/basic:v1",
                "-o",
                out_file,
            ],
            2,
            "archive-key-invalid",
        ),
        (
            ["verify", "--archive", tmp_path / "none.tar", "localhost/basic:v1"],
            2,
            "archive-unreadable",
        ),
        (
            ["verify", "--archive-pin", "sha256:" + "0" * 64, "localhost/basic:v1"],
            2,
            "invalid-argument",
        ),
        (
            ["verify", "--archive", out_file, "--max-age", "soon", "localhost/basic:v1"],
            2,
            "invalid-argument",
        ),
    ]
    for args, want, code_text in cases:
        code, out, err = run(capsys, *args)
        assert code == want and f"[{code_text}]" in err, (args, out, err)
        assert len(err.strip().splitlines()) == 1


def test_policy_trust_block_names_an_archive_with_a_max_age(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signer_file = pem_key(tmp_path, "ecdsa")
    make(tmp_path, "team.tar", signer=load_signing_key(signer_file))
    policy = tmp_path / "policy.yaml"

    def write(max_age: str, pin: str = "ecdsa.pub") -> Path:
        policy.write_text(
            "defaults:\n  trust:\n    archive:\n      path: team.tar\n"
            f"      pin: {pin}\n      max_age: {max_age}\n" + POLICY
        )
        return policy

    images = ["localhost/releases:v1", "localhost/basic:v1"]
    code, out, err = run(capsys, "gate", "--policy", write("400d"), "--at", LATER_TEXT, *images)
    assert code == 0 and out.count("ALLOW") == 2, out + err
    assert f"decided from trust archive {tmp_path / 'team.tar'} as of capture time {AT_TEXT}" in err
    code, out, _ = run(
        capsys, "gate", "--policy", write("90d"), "--json", "--at", LATER_TEXT, *images
    )
    assert code == 1
    reasons = [d["reasons"][0]["code"] for d in json.loads(out)["decisions"]]
    assert reasons == ["archive-too-old", "archive-too-old"]
    other = pem_key(tmp_path / "..", "ed25519").with_suffix(".pub")
    code, out, _ = run(
        capsys,
        "gate",
        "--policy",
        write("400d", str(other)),
        "--json",
        "--at",
        LATER_TEXT,
        images[0],
    )
    assert code == 1 and json.loads(out)["decisions"][0]["reasons"][0]["code"] == (
        "archive-pin-mismatch"
    )
    for bad, words in [
        ("defaults:\n  trust:\n    archive: {}\n", "needs path"),
        ("defaults:\n  trust:\n    archive:\n      path: x.tar\n      max_age: soon\n", "max_age"),
        ("defaults:\n  trust:\n    archive:\n      path: x.tar\n      pin: sha256:12\n", "64 hex"),
    ]:
        policy.write_text(bad + POLICY)
        code, _, err = run(capsys, "policy", "check", policy)
        assert code == 2 and "[policy-invalid]" in err and words in err, err


def test_random_damage_is_always_a_named_refusal(tmp_path: Path) -> None:
    """Bytes flipped anywhere, or the file cut short: refused with an archive code
    (or, where only padding was hit, the intact archive), never another exception."""
    import random

    good = make(tmp_path).read_bytes()
    rng = random.Random(20261204)
    bad = tmp_path / "bad.tar"
    outcomes: dict[str, int] = {}
    for i in range(400):
        data = bytearray(good)
        if i % 4 == 0:
            data = data[: rng.randrange(len(good))]
        else:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        bad.write_bytes(bytes(data))
        try:
            open_archive(bad, LATER)
            outcome = "intact"
        except TrustcheckError as e:
            outcome = str(e.code)
            assert "\n" not in e.message
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert set(outcomes) <= {
        "intact",
        "archive-invalid",
        "archive-unreadable",
        "archive-manifest-mismatch",
    }, outcomes
    assert (
        outcomes.get("archive-manifest-mismatch", 0) > 0 and outcomes.get("archive-invalid", 0) > 0
    )


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda doc: doc.__setitem__("format_version", True), "version 1 record"),
        (
            lambda doc: doc["collections"].__setitem__(
                "../../etc", doc["collections"]["localhost/basic"]
            ),
            "not a repository's normal name",
        ),
        (
            lambda doc: doc["collections"].__setitem__(
                "LOCALHOST/basic", doc["collections"]["localhost/basic"]
            ),
            "not a repository's normal name",
        ),
        (lambda doc: doc.__setitem__("captured_at", "2026-11-27 00:11:36"), "captured_at is not"),
        (lambda doc: doc.__setitem__("collections", {}), "collections is empty"),
        (lambda doc: doc["collections"].pop("localhost/basic"), "belongs to no collection"),
    ],
    ids=["bool-version", "dotdot-gun", "alias-gun", "bad-time", "no-collections", "orphan-file"],
)
def test_malformed_capture_records_are_refused(
    tmp_path: Path, change: Callable[[dict[str, Any]], object], words: str
) -> None:
    """A capture record rewritten (and the manifest re-hashed to match) that is not
    what trustcheck writes is refused before anything in it is used."""

    def edit(files: dict[str, bytes]) -> None:
        doc = json.loads(files["capture.json"])
        change(doc)
        files["capture.json"] = json.dumps(doc).encode()
        manifest = json.loads(files["manifest.json"])
        manifest["files"]["capture.json"] = {
            "sha256": hashlib.sha256(files["capture.json"]).hexdigest(),
            "length": len(files["capture.json"]),
        }
        files["manifest.json"] = json.dumps(manifest).encode()

    path = rewrite(make(tmp_path), edit)
    assert words in refused(path, "archive-invalid").message


def test_a_symlink_to_an_archive_is_read(tmp_path: Path) -> None:
    path = make(tmp_path)
    link = tmp_path / "latest.tar"
    link.symlink_to(path.name)
    assert open_archive(link, LATER).as_of == AT_TEXT


def test_an_encrypted_signing_key_reads_its_passphrase_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "enc.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"correct horse"),
        )
    )
    args = ["archive", "create", "--offline", "--trust-dir", TRUST, "--at", AT_TEXT,
            "--sign-key", path, "-o", tmp_path / "s.tar", "localhost/basic:v1"]  # fmt: skip
    monkeypatch.delenv("TRUSTCHECK_ARCHIVE_KEY_PASSPHRASE", raising=False)
    code, _, err = run(capsys, *args)
    assert code == 2 and "[archive-key-invalid]" in err and "PASSPHRASE" in err
    monkeypatch.setenv("TRUSTCHECK_ARCHIVE_KEY_PASSPHRASE", "wrong")
    code, _, err = run(capsys, *args)
    assert code == 2 and "[archive-key-invalid]" in err
    monkeypatch.setenv("TRUSTCHECK_ARCHIVE_KEY_PASSPHRASE", "correct horse")
    code, out, err = run(capsys, *args)
    assert code == 0, err
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert f"signed by sha256:{hashlib.sha256(spki).hexdigest()}" in out
