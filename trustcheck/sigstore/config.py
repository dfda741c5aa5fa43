"""What a cosign verification trusts: public keys, keyless identities, a trusted root.

:func:`load_cosign_config` reads and checks everything up front (a bad ``--key`` file, an
invalid regular expression or an unreadable trusted root is ``cosign-config-invalid``,
exit 2), so that verifying each image is pure computation over registry data.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustcheck.errors import ErrorCode, UsageError

if TYPE_CHECKING:
    from trustcheck.api import Options
    from trustcheck.sigstore.trustroot import TrustRoot

__all__ = [
    "MAX_KEY_FILE_BYTES",
    "CosignConfig",
    "CosignKey",
    "IdentityRule",
    "key_identity",
    "load_cosign_config",
    "load_public_key",
]

#: a PEM public key file larger than this is not a public key
MAX_KEY_FILE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class CosignKey:
    """One trusted public key (``--key``)."""

    #: ``sha256:<hex of the DER SubjectPublicKeyInfo>``, the evidence identity
    identity: str
    #: the cryptography public key object
    key: Any
    #: where it came from (a file name), for messages
    source: str


@dataclass(frozen=True, slots=True)
class IdentityRule:
    """A keyless signer cosign-style: the SAN (exact or an anchored regular expression)
    and the exact OIDC issuer (or an anchored regular expression)."""

    san: str | None = None
    san_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None

    def matches(self, san: str, issuer: str | None) -> bool:
        if self.san is not None and san != self.san:
            return False
        if self.san_regexp is not None and re.fullmatch(self.san_regexp, san) is None:
            return False
        if self.issuer is not None and issuer != self.issuer:
            return False
        return not (
            self.issuer_regexp is not None
            and (issuer is None or re.fullmatch(self.issuer_regexp, issuer) is None)
        )

    def describe(self) -> str:
        who = (
            f"SAN {self.san!r}"
            if self.san is not None
            else f"SAN matching {self.san_regexp!r}"
            if self.san_regexp is not None
            else "any SAN"
        )
        iss = (
            f"issuer {self.issuer!r}"
            if self.issuer is not None
            else f"issuer matching {self.issuer_regexp!r}"
            if self.issuer_regexp is not None
            else "any issuer"
        )
        return f"{who} from {iss}"


@dataclass(frozen=True, slots=True)
class CosignConfig:
    """Trust material for :func:`trustcheck.sigstore.cosign_evidence`."""

    keys: tuple[CosignKey, ...] = ()
    #: keyless signers accepted; empty: any signer whose certificate chains to the
    #: trusted root is reported valid (a policy then judges ``identity``/``issuer``)
    identities: tuple[IdentityRule, ...] = ()
    #: Sigstore trusted root (Fulcio CAs, Rekor and CT log keys, TSAs); None: keyless
    #: signatures cannot be verified (``cosign-cert-invalid``)
    trusted_root: TrustRoot | None = None
    #: examine at most this many signatures per image (layers of the .sig manifest
    #: plus bundle referrers); more is ``cosign-bundle-invalid`` for the excess
    max_signatures: int = 64
    #: key-based signatures need a Rekor entry when a trusted root is configured (as
    #: cosign verify --key); True accepts them on the key alone (--insecure-ignore-tlog)
    ignore_tlog: bool = False
    details: dict[str, str] = field(default_factory=dict)


def _spki_identity(key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def key_identity(key: Any) -> str:
    """``sha256:<hex of the DER SubjectPublicKeyInfo>`` of a public key."""
    return _spki_identity(key)


def check_key_type(key: Any, source: str) -> None:
    """Refuse key types and sizes cosign signatures are not made with."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1 | ec.SECP521R1):
            raise UsageError(
                ErrorCode.COSIGN_CONFIG_INVALID,
                f"{source}: ECDSA key on curve {key.curve.name} is not supported; "
                "cosign keys are ECDSA P-256 (also P-384, P-521), RSA or Ed25519",
            )
        return
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise UsageError(
                ErrorCode.COSIGN_CONFIG_INVALID,
                f"{source}: RSA key of {key.key_size} bits is too weak (at least 2048)",
            )
        return
    if isinstance(key, ed25519.Ed25519PublicKey):
        return
    raise UsageError(
        ErrorCode.COSIGN_CONFIG_INVALID,
        f"{source}: {type(key).__name__} is not a key type cosign signs with "
        "(ECDSA P-256/P-384/P-521, RSA, Ed25519)",
    )


def load_public_key(data: bytes, source: str) -> CosignKey:
    """A PEM public key (``cosign.pub``, a KMS-exported PEM), checked."""
    from cryptography.hazmat.primitives import serialization

    if len(data) > MAX_KEY_FILE_BYTES:
        raise UsageError(
            ErrorCode.COSIGN_CONFIG_INVALID,
            f"{source} is {len(data)} bytes: not a PEM public key (cap {MAX_KEY_FILE_BYTES})",
        )
    if b"PRIVATE KEY" in data:
        raise UsageError(
            ErrorCode.COSIGN_CONFIG_INVALID,
            f"{source} holds a private key: give the public key (cosign public-key --key ...)",
        )
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        first = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise UsageError(
            ErrorCode.COSIGN_CONFIG_INVALID,
            f"{source} is not a PEM public key ({first}); give the file `cosign generate-key-pair` "
            "wrote as cosign.pub, or a KMS key exported as PEM",
        ) from None
    check_key_type(key, source)
    return CosignKey(_spki_identity(key), key, source)


def _read_key(spec: Path | str) -> CosignKey:
    path = Path(spec)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as e:
        raise UsageError(
            ErrorCode.COSIGN_CONFIG_INVALID,
            f"--key {path}: cannot read it ({e.strerror or type(e).__name__})",
        ) from None
    return load_public_key(data, f"--key {path}")


def _check_regexp(option: str, value: str) -> None:
    try:
        re.compile(value)
    except re.error as e:
        raise UsageError(
            ErrorCode.COSIGN_CONFIG_INVALID,
            f"{option} {value!r} is not a valid regular expression ({e})",
        ) from None


def check_identity_options(
    certificate_identity: str | None,
    certificate_identity_regexp: str | None,
    certificate_oidc_issuer: str | None,
    certificate_oidc_issuer_regexp: str | None,
) -> bool:
    """cosign's rules for the keyless identity flags; True when an identity is given."""
    if certificate_identity is not None and certificate_identity_regexp is not None:
        raise UsageError(
            ErrorCode.COSIGN_CONFIG_INVALID,
            "give --certificate-identity or --certificate-identity-regexp, not both",
        )
    if certificate_oidc_issuer is not None and certificate_oidc_issuer_regexp is not None:
        raise UsageError(
            ErrorCode.COSIGN_CONFIG_INVALID,
            "give --certificate-oidc-issuer or --certificate-oidc-issuer-regexp, not both",
        )
    for option, value in (
        ("--certificate-identity-regexp", certificate_identity_regexp),
        ("--certificate-oidc-issuer-regexp", certificate_oidc_issuer_regexp),
    ):
        if value is not None:
            _check_regexp(option, value)
    has_san = certificate_identity is not None or certificate_identity_regexp is not None
    has_iss = certificate_oidc_issuer is not None or certificate_oidc_issuer_regexp is not None
    if has_san != has_iss:
        raise UsageError(
            ErrorCode.COSIGN_CONFIG_INVALID,
            "a keyless identity needs both the signer (--certificate-identity or "
            "--certificate-identity-regexp) and its issuer (--certificate-oidc-issuer), "
            "as cosign requires",
        )
    return has_san


def load_cosign_config(
    *,
    keys: Sequence[Path | str] = (),
    trusted_root: Path | str | None = None,
    certificate_identity: str | None = None,
    certificate_identity_regexp: str | None = None,
    certificate_oidc_issuer: str | None = None,
    certificate_oidc_issuer_regexp: str | None = None,
    identities: Sequence[IdentityRule] = (),
    at: datetime | None = None,
    options: Options | None = None,
    tuf_root: Path | None = None,
    unsafe_http: bool = False,
    max_signatures: int = 64,
    ignore_tlog: bool = False,
    trusted_root_cached: bool = False,
) -> CosignConfig:
    """Load and check cosign trust material.

    ``keys``: PEM public key files (key-based signatures). ``trusted_root``: the Sigstore
    ``trusted_root.json`` for keyless signatures, either a file (trust on file: whoever
    can write it decides) or ``tuf:<repository folder or URL>``, obtained and verified
    through trustcheck's TUF 1.0 client (pins, state, ``at``; ``tuf_root`` bootstraps
    it, as ``trustcheck tuf --root``). The identity options are cosign's flags; several
    rules can be given as ``identities``. With a trusted root, key-based signatures need
    a Rekor entry too, unless ``ignore_tlog`` (cosign's ``--insecure-ignore-tlog``).
    ``trusted_root_cached``: the ``tuf:`` trusted root verified by an earlier run, from
    the state dir, re-verified offline (no request to the TUF repository).
    """
    from trustcheck.sigstore.trustroot import load_trust_root

    loaded = tuple(_read_key(k) for k in keys)
    rules = list(identities)
    has_san = check_identity_options(
        certificate_identity,
        certificate_identity_regexp,
        certificate_oidc_issuer,
        certificate_oidc_issuer_regexp,
    )
    if has_san:
        rules.append(
            IdentityRule(
                san=certificate_identity,
                san_regexp=certificate_identity_regexp,
                issuer=certificate_oidc_issuer,
                issuer_regexp=certificate_oidc_issuer_regexp,
            )
        )
    for rule in rules:
        for option, value in (
            ("san_regexp", rule.san_regexp),
            ("issuer_regexp", rule.issuer_regexp),
        ):
            if value is not None:
                _check_regexp(option, value)
    root = None
    if trusted_root is not None:
        root = load_trust_root(
            trusted_root,
            at=at,
            options=options,
            tuf_root=tuf_root,
            unsafe_http=unsafe_http,
            cached=trusted_root_cached,
        )
    if max_signatures < 1:
        raise UsageError(ErrorCode.COSIGN_CONFIG_INVALID, "max_signatures must be at least 1")
    return CosignConfig(
        keys=loaded,
        identities=tuple(rules),
        trusted_root=root,
        max_signatures=max_signatures,
        ignore_tlog=ignore_tlog,
    )
