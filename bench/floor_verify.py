"""The work floor of a small-repository ``verify``: only what cannot be skipped.

    python bench/floor_verify.py TRUST_DIR GUN TAG

Imports what the import floor imports (``typer``, ``cryptography.x509``), reads
the four metadata files of ``GUN`` from ``TRUST_DIR/tuf/GUN/metadata``, checks
each file's sha256 and length against its parent (timestamp -> snapshot ->
targets), verifies the one signature each of root, timestamp, snapshot and
targets over its canonical ``signed`` part with the key root names, and prints
``TAG sha256:HEX SIZE`` (what ``notary lookup`` prints).

No trust decisions beyond that: no expiry, versions, thresholds, delegations,
pins, state, rollback, error messages or option parsing. bench/run.py runs it
beside ``trustcheck verify`` and the import floor to show how much of
trustcheck's start-up is the unavoidable work of any Python verifier with these
dependencies (docs/performance.md, "Start-up profile"), with the same import
shortcuts trustcheck's core takes. It assumes notary's
default key types (root ``ecdsa-x509``, timestamp ``ed25519``, others ``ecdsa``)
and exits 1 on anything else.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path

import typer  # noqa: F401  (the import floor: every trustcheck command imports it)
from cryptography import x509
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

# The same shortcuts trustcheck's core takes (core/crypto.py): the DER key loader from
# where `serialization` gets it (that package imports SSH and the ciphers), and
# ECDSA(SHA256) without its constructor (which imports the whole OpenSSL backend).
load_der_public_key = rust_openssl.keys.load_der_public_key
ECDSA_SHA256 = ec.ECDSA.__new__(ec.ECDSA)
ECDSA_SHA256._algorithm = hashes.SHA256()
ECDSA_SHA256._deterministic_signing = False


def _canonical(signed: object) -> bytes:
    return json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _verify(doc: dict[str, object], keys: dict[str, dict[str, object]], role: str) -> None:
    signed = doc["signed"]
    root_role = keys["__roles__"][role]
    assert isinstance(root_role, dict)
    keyid = root_role["keyids"][0]
    sig = next(s for s in doc["signatures"] if s["keyid"] == keyid)  # type: ignore[attr-defined]
    key = keys[keyid]
    public = base64.b64decode(key["keyval"]["public"])  # type: ignore[index]
    raw = base64.b64decode(sig["sig"])
    data = _canonical(signed)
    kind = key["keytype"]
    if kind == "ed25519":
        ed25519.Ed25519PublicKey.from_public_bytes(public).verify(raw, data)
        return
    pub: object
    if kind == "ecdsa-x509":
        pub = x509.load_pem_x509_certificate(public).public_key()
    elif kind == "ecdsa":
        pub = load_der_public_key(public)
    else:
        raise SystemExit(f"unsupported key type {kind}")
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    half = len(raw) // 2
    der = encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))
    pub.verify(der, data, ECDSA_SHA256)


def _check_meta(raw: bytes, meta: dict[str, object]) -> None:
    want = meta["hashes"]["sha256"]  # type: ignore[index]
    if (
        len(raw) != meta["length"]
        or base64.b64encode(hashlib.sha256(raw).digest()) != want.encode()
    ):
        raise SystemExit("hash or length mismatch")


def main(argv: list[str]) -> int:
    trust_dir, gun, tag = argv
    folder = Path(trust_dir) / "tuf" / gun / "metadata"
    raws = {
        r: (folder / f"{r}.json").read_bytes() for r in ("root", "timestamp", "snapshot", "targets")
    }
    docs = {r: json.loads(b) for r, b in raws.items()}
    root = docs["root"]["signed"]
    keys = dict(root["keys"])
    keys["__roles__"] = root["roles"]
    for role in ("root", "timestamp", "snapshot", "targets"):
        _verify(docs[role], keys, role)
    _check_meta(raws["snapshot"], docs["timestamp"]["signed"]["meta"]["snapshot"])
    _check_meta(raws["targets"], docs["snapshot"]["signed"]["meta"]["targets"])
    target = docs["targets"]["signed"]["targets"][tag]
    digest = base64.b64decode(target["hashes"]["sha256"]).hex()
    print(f"{tag} sha256:{digest} {target['length']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
