"""The floor of a full decode: the least a verifier that decodes the targets map does.

    python bench/floor_large.py TRUST_DIR GUN TAG

Reads the collection's timestamp, snapshot and targets files, checks the
targets file's sha256 and sha512 against the snapshot, decodes it with orjson,
re-encodes ``signed`` canonically (orjson, sorted keys), verifies the ECDSA
signature with the targets key from root.json, and prints the tag's digest.
No certificate, expiry, version, delegation or structure check, no typer, no
trust policy: what is left is the unavoidable work of reading, hashing,
decoding and one signature (issue 18). bench/run.py runs it beside
``trustcheck verify`` on the 50k repository, so the page shows how close
trustcheck is to it (and that its lean targets map goes below it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import sys
from pathlib import Path

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key


def main(trust_dir: str, gun: str, tag: str) -> int:
    meta = Path(trust_dir) / "tuf" / gun / "metadata"
    root = orjson.loads((meta / "root.json").read_bytes())["signed"]
    snapshot = orjson.loads((meta / "snapshot.json").read_bytes())["signed"]
    raw = (meta / "targets.json").read_bytes()
    want = snapshot["meta"]["targets"]["hashes"]
    for algo in ("sha256", "sha512"):
        if algo in want and not hmac.compare_digest(
            hashlib.new(algo, raw).digest(), base64.b64decode(want[algo])
        ):
            print(f"targets.json {algo} mismatch", file=sys.stderr)
            return 1
    doc = orjson.loads(raw)
    del raw
    message = orjson.dumps(doc["signed"], option=orjson.OPT_SORT_KEYS)
    (keyid,) = root["roles"]["targets"]["keyids"]
    key = load_der_public_key(base64.b64decode(root["keys"][keyid]["keyval"]["public"]))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    sig = next(s for s in doc["signatures"] if s["keyid"] == keyid)
    rs = base64.b64decode(sig["sig"])
    der = encode_dss_signature(int.from_bytes(rs[:32], "big"), int.from_bytes(rs[32:], "big"))
    key.verify(der, message, ec.ECDSA(hashes.SHA256()))
    target = doc["signed"]["targets"][tag]
    digest = base64.b64decode(target["hashes"]["sha256"]).hex()
    print(f"{tag} sha256:{digest} {target['length']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
