"""core/crypto builds what a verify needs without cryptography's heavy modules (issue 18).

The objects taken from their lean locations must be the public API's own, and
a verify of the 50k-style path (ECDSA over canonical bytes) must accept a good
signature and refuse a bad one exactly as with the public constructors.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from trustcheck.core import crypto


def test_the_ecdsa_algorithm_is_the_public_one() -> None:
    algo = crypto._ecdsa_sha256()
    assert isinstance(algo, ec.ECDSA)
    assert isinstance(algo.algorithm, hashes.SHA256)
    assert algo.deterministic_signing is False


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()])
def test_good_and_bad_signatures_as_with_the_public_constructor(curve: ec.EllipticCurve) -> None:
    key = ec.generate_private_key(curve)
    msg = b'{"signed":"canonical"}'
    der = key.sign(msg, ec.ECDSA(hashes.SHA256()))
    pub = key.public_key()
    pub.verify(der, msg, crypto._ecdsa_sha256())
    with pytest.raises(InvalidSignature):
        pub.verify(der, msg + b" ", crypto._ecdsa_sha256())
    with pytest.raises(InvalidSignature):
        pub.verify(der, msg + b" ", ec.ECDSA(hashes.SHA256()))


def test_the_der_key_loader_is_the_public_api() -> None:
    load, encoding, public_format = crypto._der_key_loader()
    assert load is serialization.load_der_public_key
    assert encoding is serialization.Encoding
    assert public_format is serialization.PublicFormat


def test_a_signature_check_imports_no_backend_ciphers_or_ssh() -> None:
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    key = ec.derive_private_key(7, ec.SECP256R1())
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    r, s = decode_dss_signature(key.sign(b"m", ec.ECDSA(hashes.SHA256())))
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    child = (
        "import sys\n"
        "from trustcheck.core import crypto\n"
        f"pub = crypto._parse_spki({spki!r})\n"
        f"assert crypto._verify_ecdsa(pub, {sig!r}, b'm')\n"
        f"assert not crypto._verify_ecdsa(pub, {sig!r}[:-1], b'm')\n"
        "heavy = [m for m in sys.modules if m.startswith(("
        "'cryptography.hazmat.backends', 'cryptography.hazmat.primitives.ciphers', "
        "'cryptography.hazmat.primitives.serialization'))]\n"
        "print(heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
