"""Notation's own trust policy and trust store, read unchanged.

* the trust policy: ``{NOTATION_CONFIG}/trustpolicy.oci.json``, else
  ``{NOTATION_CONFIG}/trustpolicy.json`` (what notation 1.2+ reads), where
  ``{NOTATION_CONFIG}`` is ``$NOTATION_CONFIG``, else ``$XDG_CONFIG_HOME/notation``,
  else ``~/.config/notation`` (Go's ``os.UserConfigDir`` on Linux);
* the trust store: ``{NOTATION_CONFIG}/truststore/x509/{ca,signingAuthority,tsa}/NAME/``,
  every regular file in it a PEM or DER certificate (or several); no folders or
  symlinks inside, as notation requires.

Validated as notation validates the document (version ``1.0``, unique names, one
statement per registry scope, one global ``*`` scope, levels and overrides,
``NAME:VALUE`` trust stores, ``x509.subject:`` identities with C, ST and O and
no overlap).  Any violation is ``notation-config-invalid`` (exit 2) naming the
file and the statement.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from trustcheck.errors import ErrorCode, UsageError
from trustcheck.notation.dn import DnError, dn_subset, parse_dn

__all__ = [
    "LEVELS",
    "NotationConfig",
    "PolicyStatement",
    "config_dir",
    "load_notation_config",
]

#: validation type -> action, per level (the specification's table)
LEVELS: dict[str, dict[str, str]] = {
    "strict": {
        "integrity": "enforce",
        "authenticity": "enforce",
        "authenticTimestamp": "enforce",
        "expiry": "enforce",
        "revocation": "enforce",
    },
    "permissive": {
        "integrity": "enforce",
        "authenticity": "enforce",
        "authenticTimestamp": "log",
        "expiry": "log",
        "revocation": "log",
    },
    "audit": {
        "integrity": "enforce",
        "authenticity": "log",
        "authenticTimestamp": "log",
        "expiry": "log",
        "revocation": "log",
    },
    "skip": {
        "integrity": "skip",
        "authenticity": "skip",
        "authenticTimestamp": "skip",
        "expiry": "skip",
        "revocation": "skip",
    },
}
STORE_TYPES = ("ca", "signingAuthority", "tsa")
MAX_POLICY_BYTES = 1 << 20
MAX_STORE_FILES = 1000
MAX_CERT_FILE_BYTES = 1 << 20
_NAME = re.compile(r"^[a-zA-Z0-9_.-]+$")
_DOMAIN = re.compile(
    r"^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?(?::[0-9]+)?$"
)
_REPOSITORY = re.compile(
    r"^[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?"
    r"(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?$"
)


@dataclass(frozen=True)
class PolicyStatement:
    """One statement of the trust policy document."""

    name: str
    registry_scopes: tuple[str, ...]
    level: str
    #: validation type -> enforce / log / skip, after ``override``
    actions: Mapping[str, str]
    verify_timestamp: str
    #: ``(type, name)`` pairs, e.g. ``("ca", "acme")``
    trust_stores: tuple[tuple[str, str], ...]
    #: ``("*",)`` or the ``x509.subject:`` values parsed: attribute -> value
    trusted_identities: tuple[str, ...]
    parsed_identities: tuple[Mapping[str, str], ...] = ()

    @property
    def wildcard_identity(self) -> bool:
        return self.trusted_identities == ("*",)


@dataclass(frozen=True)
class NotationConfig:
    """The trust policy statements and the trust store they name."""

    policies: tuple[PolicyStatement, ...]
    policy_path: Path
    store_root: Path
    #: ``(type, name)`` -> DER certificates, loaded when a verification needs the store
    stores: dict[tuple[str, str], tuple[bytes, ...]] = field(default_factory=dict)

    def store(self, kind: str, name: str) -> tuple[bytes, ...]:
        """The DER certificates of the trust store ``kind:name`` (``notation-config-invalid``
        when it is missing, empty or holds something else than certificates)."""
        key = (kind, name)
        found = self.stores.get(key)
        if found is None:
            found = _load_store(self.store_root, kind, name)
            self.stores[key] = found
        return found

    def policy_for(self, repository: str) -> PolicyStatement | None:
        """The statement for a fully qualified repository (exact scope, else ``*``)."""
        wildcard: PolicyStatement | None = None
        for policy in self.policies:
            if "*" in policy.registry_scopes:
                wildcard = policy
            elif repository in policy.registry_scopes:
                return policy
        return wildcard


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """``{NOTATION_CONFIG}``: ``$NOTATION_CONFIG``, ``$XDG_CONFIG_HOME/notation``,
    ``~/.config/notation``."""
    environ = os.environ if env is None else env
    explicit = environ.get("NOTATION_CONFIG", "")
    if explicit:
        return Path(explicit)
    xdg = environ.get("XDG_CONFIG_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "notation"
    home = environ.get("HOME", "")
    if not home:
        raise UsageError(
            ErrorCode.HOME_UNKNOWN,
            "no $HOME, $XDG_CONFIG_HOME or $NOTATION_CONFIG to find Notation's trust policy; "
            "give --trust-policy and --trust-store",
        )
    return Path(home) / ".config" / "notation"


def _bad(path: Path, message: str) -> UsageError:
    return UsageError(ErrorCode.NOTATION_CONFIG_INVALID, f"{path}: {message}")


def _read_regular(path: Path, cap: int, what: str) -> bytes:
    try:
        info = os.lstat(path)
    except FileNotFoundError as e:
        raise _bad(path, f"{what} does not exist") from e
    except OSError as e:
        raise _bad(path, f"{what} cannot be read ({e.strerror})") from e
    if not stat.S_ISREG(info.st_mode):
        raise _bad(path, f"{what} is not a regular file (notation refuses symlinks and folders)")
    if info.st_size > cap:
        raise _bad(path, f"{what} is {info.st_size} bytes, over the {cap}-byte cap")
    try:
        with path.open("rb") as f:
            data = f.read(cap + 1)
    except OSError as e:
        raise _bad(path, f"{what} cannot be read ({e.strerror})") from e
    if len(data) > cap:
        raise _bad(path, f"{what} is over the {cap}-byte cap")
    return data


def _str_list(value: object, path: Path, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(path, f"{where} must be a list of strings")
    return list(value)


def _scope_ok(scope: str) -> bool:
    if "*" in scope:
        return False
    domain, sep, repository = scope.partition("/")
    return bool(
        sep and domain and repository and _DOMAIN.match(domain) and _REPOSITORY.match(repository)
    )


def _parse_statement(raw: object, path: Path, index: int) -> PolicyStatement:
    if not isinstance(raw, dict):
        raise _bad(path, f"trustPolicies[{index}] is not a JSON object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise _bad(path, f"trustPolicies[{index}] is missing a name; every statement needs one")
    where = f"trust policy statement {name!r}"
    scopes = _str_list(raw.get("registryScopes"), path, f"{where}: registryScopes")
    if not scopes:
        raise _bad(path, f"{where} has no registryScopes; give at least one")
    if "*" in scopes and len(scopes) > 1:
        raise _bad(path, f"{where} mixes the global scope '*' with other scopes")
    for scope in scopes:
        if scope != "*" and not _scope_ok(scope):
            raise _bad(
                path,
                f"{where}: registry scope {scope!r} is not a fully qualified repository "
                "(domain.com/my/repository, no scheme, tag or wildcard)",
            )
    sv = raw.get("signatureVerification")
    if not isinstance(sv, dict):
        raise _bad(path, f"{where} is missing signatureVerification")
    level = sv.get("level")
    if not isinstance(level, str) or level not in LEVELS:
        raise _bad(
            path, f"{where}: signatureVerification level {level!r} is not one of {list(LEVELS)}"
        )
    actions = dict(LEVELS[level])
    override = sv.get("override")
    if override is not None:
        if not isinstance(override, dict):
            raise _bad(path, f"{where}: override must be an object")
        if override and level == "skip":
            raise _bad(path, f"{where}: level 'skip' cannot be customised with override")
        for key, value in override.items():
            if key not in LEVELS["strict"]:
                raise _bad(path, f"{where}: override type {key!r} is not supported")
            if value not in ("enforce", "log", "skip"):
                raise _bad(path, f"{where}: override action {value!r} for {key!r} is not supported")
            if key == "integrity":
                raise _bad(path, f"{where}: integrity verification cannot be overridden")
            if value == "skip" and key != "revocation":
                raise _bad(path, f"{where}: {key} verification cannot be skipped")
            actions[key] = value
    verify_ts = sv.get("verifyTimestamp", "always")
    if verify_ts in ("", None):
        verify_ts = "always"
    if verify_ts not in ("always", "afterCertExpiry"):
        raise _bad(
            path,
            f"{where}: verifyTimestamp must be 'always' or 'afterCertExpiry', not {verify_ts!r}",
        )
    stores = _str_list(raw.get("trustStores"), path, f"{where}: trustStores")
    identities = _str_list(raw.get("trustedIdentities"), path, f"{where}: trustedIdentities")
    if level == "skip":
        if stores or identities:
            raise _bad(
                path,
                f"{where} is set to skip verification but names trust stores or trusted "
                "identities; remove them",
            )
    elif not stores or not identities:
        raise _bad(path, f"{where} needs both trustStores and trustedIdentities")
    parsed_stores: list[tuple[str, str]] = []
    for value in stores:
        kind, sep, store = value.partition(":")
        if not sep or not kind or not store:
            raise _bad(path, f"{where}: trust store {value!r} is not TYPE:NAME")
        if kind not in STORE_TYPES:
            raise _bad(
                path, f"{where}: trust store type {kind!r} is not one of {list(STORE_TYPES)}"
            )
        if not _NAME.match(store):
            raise _bad(path, f"{where}: trust store name {store!r} must match [a-zA-Z0-9_.-]+")
        parsed_stores.append((kind, store))
    parsed_ids: list[Mapping[str, str]] = []
    if "*" in identities and len(identities) > 1:
        raise _bad(path, f"{where} mixes the wildcard identity '*' with other identities")
    for identity in identities:
        if identity == "*":
            continue
        if not identity:
            raise _bad(path, f"{where} has an empty trusted identity")
        prefix, sep, value = identity.partition(":")
        if not sep:
            raise _bad(path, f"{where}: trusted identity {identity!r} has no TYPE: prefix")
        if prefix != "x509.subject":
            continue  # other identity types are for plugins; notation ignores them too
        if not value.strip():
            raise _bad(path, f"{where}: trusted identity {identity!r} has no value")
        try:
            parsed_ids.append(parse_dn(value, mandatory=True))
        except DnError as e:
            raise _bad(path, f"{where}: trusted identity {identity!r}: {e}") from e
    for i, a in enumerate(parsed_ids):
        for j, b in enumerate(parsed_ids):
            if i != j and dn_subset(a, b):
                raise _bad(path, f"{where} has overlapping x509 trustedIdentities")
    return PolicyStatement(
        name=name,
        registry_scopes=tuple(scopes),
        level=level,
        actions=actions,
        verify_timestamp=verify_ts,
        trust_stores=tuple(parsed_stores),
        trusted_identities=tuple(identities),
        parsed_identities=tuple(parsed_ids),
    )


def parse_trust_policy(data: bytes, path: Path) -> tuple[PolicyStatement, ...]:
    """The statements of a trust policy document, validated as notation does."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise _bad(path, f"the trust policy is not valid JSON ({e})") from e
    if not isinstance(doc, dict):
        raise _bad(path, "the trust policy is not a JSON object")
    version = doc.get("version")
    if version != "1.0":
        raise _bad(path, f"trust policy version {version!r} is not supported (want '1.0')")
    raw = doc.get("trustPolicies")
    if not isinstance(raw, list) or not raw:
        raise _bad(path, "the trust policy has no trustPolicies statements")
    policies = [_parse_statement(r, path, i) for i, r in enumerate(raw)]
    names: set[str] = set()
    scopes: dict[str, str] = {}
    for p in policies:
        if p.name in names:
            raise _bad(path, f"two trust policy statements are named {p.name!r}")
        names.add(p.name)
        for scope in p.registry_scopes:
            if scope in scopes:
                raise _bad(
                    path,
                    f"registry scope {scope!r} is in statements {scopes[scope]!r} and "
                    f"{p.name!r}; a scope belongs to one statement",
                )
            scopes[scope] = p.name
    return tuple(policies)


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.subject.public_bytes() != cert.issuer.public_bytes():
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:  # InvalidSignature, an unsupported key or algorithm: not self-signed
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    return bool(bc.ca)


def _load_store(root: Path, kind: str, name: str) -> tuple[bytes, ...]:
    from cryptography.hazmat.primitives.serialization import Encoding

    folder = root / "x509" / kind / name
    what = f"trust store {kind}:{name}"
    try:
        info = os.lstat(folder)
    except FileNotFoundError as e:
        raise _bad(folder, f"the {what} does not exist") from e
    except OSError as e:
        raise _bad(folder, f"the {what} cannot be read ({e.strerror})") from e
    if not stat.S_ISDIR(info.st_mode):
        raise _bad(folder, f"the {what} is not a regular folder (symlinks are not supported)")
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as e:
        raise _bad(folder, f"the {what} cannot be listed ({e.strerror})") from e
    if len(entries) > MAX_STORE_FILES:
        raise _bad(folder, f"the {what} holds more than {MAX_STORE_FILES} files")
    out: list[bytes] = []
    for entry in entries:
        path = Path(entry.path)
        data = _read_regular(path, MAX_CERT_FILE_BYTES, f"a certificate file of the {what}")
        certs: list[x509.Certificate]
        try:
            if b"-----BEGIN" in data:
                certs = x509.load_pem_x509_certificates(data)
            else:
                certs = [x509.load_der_x509_certificate(data)]
        except ValueError as e:
            raise _bad(path, f"not a PEM or DER certificate of the {what} ({e})") from e
        for cert in certs:
            self_signed = _self_signed(cert)
            if kind == "tsa" and not self_signed:
                raise _bad(path, f"the {what} must hold root certificates only")
            if not self_signed and not _is_ca(cert):
                raise _bad(
                    path,
                    f"{cert.subject.rfc4514_string()[:100]} in the {what} is neither a CA nor "
                    "self-signed; notation refuses such a trust store",
                )
            out.append(cert.public_bytes(Encoding.DER))
    if not out:
        raise _bad(folder, f"the {what} holds no certificates")
    return tuple(out)


def load_notation_config(
    trust_policy: Path | None = None,
    trust_store: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> NotationConfig:
    """Notation's trust policy and every trust store it names.

    ``trust_policy``: the policy file (default ``{NOTATION_CONFIG}/trustpolicy.oci.json``
    or ``trustpolicy.json``); ``trust_store``: the ``truststore`` folder (default
    ``{NOTATION_CONFIG}/truststore``).
    """
    base: Path | None = None
    if trust_policy is None or trust_store is None:
        base = config_dir(env)
    if trust_policy is None:
        assert base is not None
        oci = base / "trustpolicy.oci.json"
        trust_policy = oci if os.path.lexists(oci) else base / "trustpolicy.json"
    if trust_store is None:
        assert base is not None
        trust_store = base / "truststore"
    data = _read_regular(trust_policy, MAX_POLICY_BYTES, "the Notation trust policy")
    return NotationConfig(parse_trust_policy(data, trust_policy), trust_policy, trust_store)
