"""One small error hierarchy with stable, documented codes.

Every error a user can hit is a :class:`TrustcheckError` with a stable
kebab-case ``code`` (listed in docs/errors.md, checked by a test), a one-line
human ``message`` and, where it applies, the ``role`` it is about.

* :class:`NotTrusted` -- the trust data does not establish trust (exit 1,
  webhook deny).
* :class:`UsageError` -- bad arguments, unreadable or malformed configuration
  (exit 2).

Third-party exceptions are wrapped where they enter (``raise ... from e``).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from enum import StrEnum as _CodeEnum
else:

    class _CodeEnumType(type):
        """What :class:`ErrorCode` needs of ``enum.StrEnum``, without enum's per-member
        machinery (about 1 ms of every start-up for ~150 codes, issue 18): each string
        constant of the class body becomes a member, an instance of the class (a
        ``str``); ``Cls(value)``, iteration, ``len``, ``__members__``, ``repr``,
        pickling and copying behave as ``StrEnum``'s. The type checker sees a StrEnum."""

        def __new__(
            mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any]
        ) -> _CodeEnumType:
            values = {k: v for k, v in ns.items() if type(v) is str and not k.startswith("_")}
            for k in values:
                del ns[k]
            cls = super().__new__(mcls, name, bases, ns)
            members: dict[str, Any] = {}
            by_value: dict[str, Any] = {}
            for k, v in values.items():
                member = by_value.get(v)
                if member is None:  # a repeated value is an alias, as in an Enum
                    member = by_value[v] = str.__new__(cls, v)
                    member._name_ = k
                    member._value_ = v
                members[k] = member
                type.__setattr__(cls, k, member)
            type.__setattr__(cls, "_member_map_", members)
            type.__setattr__(cls, "_value2member_map_", by_value)
            return cls

        def __call__(cls, value: object) -> Any:
            try:
                return cls._value2member_map_[value]
            except (KeyError, TypeError):
                raise ValueError(f"{value!r} is not a valid {cls.__qualname__}") from None

        def __iter__(cls) -> Any:
            return iter(cls._value2member_map_.values())

        def __reversed__(cls) -> Any:
            return reversed(cls._value2member_map_.values())

        def __len__(cls) -> int:
            return len(cls._value2member_map_)

        def __contains__(cls, member: object) -> bool:
            if not isinstance(member, cls):  # as enum does in Python 3.11
                raise TypeError(
                    f"unsupported operand type(s) for 'in': {type(member).__qualname__!r}"
                    f" and {type(cls).__qualname__!r}"
                )
            return True

        def __getitem__(cls, name: str) -> Any:
            return cls._member_map_[name]

        @property
        def __members__(cls) -> MappingProxyType[str, Any]:
            return MappingProxyType(cls._member_map_)

        def __setattr__(cls, name: str, value: object) -> None:
            if name in cls.__dict__.get("_member_map_", ()):
                raise AttributeError(f"cannot reassign member {name!r}")
            super().__setattr__(name, value)

        def __delattr__(cls, name: str) -> None:
            if name in cls.__dict__.get("_member_map_", ()):
                raise AttributeError(f"cannot delete member {name!r}")
            super().__delattr__(name)

        def __repr__(cls) -> str:
            return f"<enum {cls.__name__!r}>"

    class _CodeEnum(str, metaclass=_CodeEnumType):
        __str__ = str.__str__
        __format__ = str.__format__

        @property
        def name(self) -> str:
            return self._name_

        @property
        def value(self) -> str:
            return self._value_

        def __repr__(self) -> str:
            return f"<{type(self).__name__}.{self._name_}: {str.__repr__(self)}>"

        def __reduce_ex__(self, protocol: object) -> tuple[Any, ...]:
            return (type(self), (self._value_,))

        def __copy__(self) -> Any:
            return self

        def __deepcopy__(self, memo: object) -> Any:
            return self


class ErrorCode(_CodeEnum):
    """Every error code trustcheck raises (kebab-case values, documented in docs/errors.md).

    A member is a ``str``: it compares, hashes, formats and serialises as its value.
    """

    INVALID_REFERENCE = "invalid-reference"
    INVALID_ARGUMENT = "invalid-argument"
    UNSAFE_PATH = "unsafe-path"
    TRUST_DIR_UNREADABLE = "trust-dir-unreadable"
    PIN_FILE_INVALID = "pin-file-invalid"
    STATE_INVALID = "state-invalid"
    STATE_DIR_UNWRITABLE = "state-dir-unwritable"
    PIN_FILE_UNWRITABLE = "pin-file-unwritable"
    TRUST_DIR_MISSING = "trust-dir-missing"
    HOME_UNKNOWN = "home-unknown"
    INSECURE_SERVER = "insecure-server"
    TLS_CONFIG_INVALID = "tls-config-invalid"
    DOCKER_CONFIG_INVALID = "docker-config-invalid"
    CREDENTIAL_HELPER_FAILED = "credential-helper-failed"
    TRUST_DIR_UNWRITABLE = "trust-dir-unwritable"
    OUTPUT_UNWRITABLE = "output-unwritable"
    POLICY_INVALID = "policy-invalid"
    PULL_TOOL_MISSING = "pull-tool-missing"
    EXTRA_MISSING = "extra-missing"
    WEBHOOK_CONFIG_INVALID = "webhook-config-invalid"
    ARCHIVE_UNREADABLE = "archive-unreadable"
    ARCHIVE_KEY_INVALID = "archive-key-invalid"
    NO_TRUST_DATA = "no-trust-data"
    ROLE_MISSING = "role-missing"
    FILE_TOO_LARGE = "file-too-large"
    MALFORMED_JSON = "malformed-json"
    INVALID_STRUCTURE = "invalid-structure"
    WRONG_TYPE = "wrong-type"
    INVALID_EXPIRES = "invalid-expires"
    NON_CANONICAL_NUMBER = "non-canonical-number"
    INVALID_KEY_ID = "invalid-key-id"
    NO_SIGNATURES = "no-signatures"
    THRESHOLD_NOT_MET = "threshold-not-met"
    ROOT_CERT_INVALID = "root-cert-invalid"
    ROOT_CERT_EXPIRED = "root-cert-expired"
    ROOT_CERT_NOT_YET_VALID = "root-cert-not-yet-valid"
    ROOT_CERT_CN_MISMATCH = "root-cert-cn-mismatch"
    ROOT_CERT_WEAK = "root-cert-weak"
    ROOT_INTEGRITY = "root-integrity"
    DELEGATION_CERT_INVALID = "delegation-cert-invalid"
    HASH_MISMATCH = "hash-mismatch"
    LENGTH_EXCEEDED = "length-exceeded"
    METADATA_EXPIRED = "metadata-expired"
    INVALID_DELEGATION = "invalid-delegation"
    TAG_NOT_SIGNED = "tag-not-signed"
    TAG_NOT_RELEASED = "tag-not-released"
    DIGEST_MISMATCH = "digest-mismatch"
    DIGEST_NOT_SIGNED = "digest-not-signed"
    PIN_MISMATCH = "pin-mismatch"
    SIGNER_PIN_MISMATCH = "signer-pin-mismatch"
    NO_PIN = "no-pin"
    ROOT_ROTATION_INVALID = "root-rotation-invalid"
    VERSION_ROLLBACK = "version-rollback"
    DELEGATION_CERT_EXPIRED = "delegation-cert-expired"
    TARGET_MISSING_SHA256 = "target-missing-sha256"
    TARGET_NOT_FOUND = "target-not-found"
    VERSION_MISMATCH = "version-mismatch"
    TARGET_DOWNLOAD_FAILED = "target-download-failed"
    TARGET_DIGEST_INVALID = "target-digest-invalid"
    ROLE_REMOVED = "role-removed"
    NETWORK_ERROR = "network-error"
    SERVER_TIMEOUT = "server-timeout"
    SERVER_ERROR = "server-error"
    AUTH_FAILED = "auth-failed"
    TLS_ERROR = "tls-error"
    MALICIOUS_SERVER = "malicious-server"
    REGISTRY_TAG_MISSING = "registry-tag-missing"
    REGISTRY_DIGEST_MISMATCH = "registry-digest-mismatch"
    INTERNAL_ERROR = "internal-error"
    POLICY_NO_MATCH = "policy-no-match"
    POLICY_DENIED = "policy-denied"
    SIGNER_THRESHOLD_NOT_MET = "signer-threshold-not-met"
    SIGNER_UNKNOWN = "signer-unknown"
    REQUIREMENT_NOT_MET = "requirement-not-met"
    SIGNATURE_NOT_FOUND = "signature-not-found"
    SIGNATURE_IDENTITY_MISMATCH = "signature-identity-mismatch"
    SIGNATURES_OFFLINE = "signatures-offline"
    PULL_FAILED = "pull-failed"
    MANIFEST_NOT_FOUND = "manifest-not-found"
    ADMISSION_INVALID = "admission-invalid"
    ADMISSION_DEADLINE = "admission-deadline"
    ADMISSION_REVOKED = "admission-revoked"
    ARCHIVE_INVALID = "archive-invalid"
    ARCHIVE_MANIFEST_MISMATCH = "archive-manifest-mismatch"
    ARCHIVE_SIGNATURE_INVALID = "archive-signature-invalid"
    ARCHIVE_PIN_MISMATCH = "archive-pin-mismatch"
    ARCHIVE_TOO_OLD = "archive-too-old"
    # OCI discovery and Notation (issue 19)
    NOTATION_CONFIG_INVALID = "notation-config-invalid"
    OCI_INVALID = "oci-invalid"
    CONTENT_DIGEST_MISMATCH = "content-digest-mismatch"
    BLOB_NOT_FOUND = "blob-not-found"
    REFERRERS_LIMIT_EXCEEDED = "referrers-limit-exceeded"
    NOTATION_NO_POLICY = "notation-no-policy"
    NOTATION_NO_SIGNATURE = "notation-no-signature"
    NOTATION_VERIFICATION_SKIPPED = "notation-verification-skipped"
    NOTATION_ENVELOPE_INVALID = "notation-envelope-invalid"
    UNSUPPORTED_ENVELOPE = "unsupported-envelope"
    NOTATION_CRITICAL_HEADER = "notation-critical-header"
    NOTATION_SIGNATURE_INVALID = "notation-signature-invalid"
    NOTATION_SUBJECT_MISMATCH = "notation-subject-mismatch"
    NOTATION_UNTRUSTED_CHAIN = "notation-untrusted-chain"
    NOTATION_CERT_INVALID = "notation-cert-invalid"
    NOTATION_CERT_EXPIRED = "notation-cert-expired"
    NOTATION_IDENTITY_MISMATCH = "notation-identity-mismatch"
    NOTATION_SIGNATURE_EXPIRED = "notation-signature-expired"
    NOTATION_REVOCATION_UNCHECKED = "notation-revocation-unchecked"
    TIMESTAMP_UNSUPPORTED = "timestamp-unsupported"
    COSIGN_CONFIG_INVALID = "cosign-config-invalid"
    COSIGN_NO_SIGNATURES = "cosign-no-signatures"
    COSIGN_SIGNATURE_INVALID = "cosign-signature-invalid"
    COSIGN_DIGEST_MISMATCH = "cosign-digest-mismatch"
    COSIGN_IDENTITY_MISMATCH = "cosign-identity-mismatch"
    COSIGN_CERT_INVALID = "cosign-cert-invalid"
    COSIGN_TLOG_INVALID = "cosign-tlog-invalid"
    COSIGN_BUNDLE_INVALID = "cosign-bundle-invalid"


#: code -> (exit code, one-line summary).  docs/errors.md documents each code;
#: tests/unit/test_errors_doc.py keeps the two in step.
CODES: dict[ErrorCode, tuple[int, str]] = {
    # --- usage / input (exit 2) ---
    ErrorCode.INVALID_REFERENCE: (2, "the image reference does not follow Docker's grammar"),
    ErrorCode.INVALID_ARGUMENT: (2, "a command-line option has an invalid value"),
    ErrorCode.UNSAFE_PATH: (2, "a GUN or role name would leave the trust dir"),
    ErrorCode.TRUST_DIR_UNREADABLE: (2, "the trust dir exists but cannot be read"),
    ErrorCode.PIN_FILE_INVALID: (2, "the pin file cannot be read or does not follow the schema"),
    ErrorCode.STATE_INVALID: (2, "a state file is unreadable or corrupt"),
    ErrorCode.STATE_DIR_UNWRITABLE: (2, "the state dir cannot be created, locked or written"),
    ErrorCode.PIN_FILE_UNWRITABLE: (2, "the pin file cannot be written"),
    ErrorCode.TRUST_DIR_MISSING: (2, "the trust dir given with --trust-dir does not exist"),
    ErrorCode.HOME_UNKNOWN: (
        2,
        "no home directory ($HOME unset, no passwd entry) for a default path",
    ),
    ErrorCode.INSECURE_SERVER: (
        2,
        "a server, registry or token URL is plain http without --unsafe-http",
    ),
    ErrorCode.TLS_CONFIG_INVALID: (2, "a TLS CA file, client certificate or key cannot be loaded"),
    ErrorCode.DOCKER_CONFIG_INVALID: (2, "the docker config.json is unreadable or malformed"),
    ErrorCode.CREDENTIAL_HELPER_FAILED: (2, "a docker credential helper is missing or failed"),
    ErrorCode.TRUST_DIR_UNWRITABLE: (2, "verified trust data cannot be written into the trust dir"),
    ErrorCode.OUTPUT_UNWRITABLE: (2, "a report or CSV file cannot be written"),
    ErrorCode.POLICY_INVALID: (2, "the policy file cannot be read or does not follow the schema"),
    ErrorCode.PULL_TOOL_MISSING: (
        2,
        "the program to pull with (docker, podman, skopeo) is not installed",
    ),
    ErrorCode.EXTRA_MISSING: (2, "the command needs an optional dependency that is not installed"),
    ErrorCode.WEBHOOK_CONFIG_INVALID: (2, "the webhook server config (serve --config) is invalid"),
    ErrorCode.ARCHIVE_UNREADABLE: (2, "a trust archive file cannot be read or written"),
    ErrorCode.ARCHIVE_KEY_INVALID: (2, "an archive signing key or --archive-pin cannot be loaded"),
    # --- not trusted (exit 1) ---
    ErrorCode.NO_TRUST_DATA: (1, "the trust dir holds no trust data for this GUN"),
    ErrorCode.ROLE_MISSING: (1, "a role file the verification needs is missing"),
    ErrorCode.FILE_TOO_LARGE: (1, "a role file is larger than its size cap"),
    ErrorCode.MALFORMED_JSON: (1, "a role file is not valid JSON"),
    ErrorCode.INVALID_STRUCTURE: (1, "a role file does not have the structure notary requires"),
    ErrorCode.WRONG_TYPE: (1, "a role file's _type is not the role it is read as"),
    ErrorCode.INVALID_EXPIRES: (1, "an expires value is not a valid RFC 3339 time as Go parses it"),
    ErrorCode.NON_CANONICAL_NUMBER: (1, "signed data holds a number notary cannot canonicalise"),
    ErrorCode.INVALID_KEY_ID: (
        1,
        "a signature references a key ID that does not match its key content",
    ),
    ErrorCode.NO_SIGNATURES: (1, "a role file carries no signatures"),
    ErrorCode.THRESHOLD_NOT_MET: (1, "fewer distinct valid signatures than the role's threshold"),
    ErrorCode.ROOT_CERT_INVALID: (1, "no root key is a valid leaf certificate for this GUN"),
    ErrorCode.ROOT_CERT_EXPIRED: (1, "the root certificate has expired at the validation time"),
    ErrorCode.ROOT_CERT_NOT_YET_VALID: (
        1,
        "the root certificate is not yet valid at the validation time",
    ),
    ErrorCode.ROOT_CERT_CN_MISMATCH: (
        1,
        "the root certificate's common name does not match the GUN",
    ),
    ErrorCode.ROOT_CERT_WEAK: (1, "the root certificate uses SHA-1 or an RSA key under 2048 bits"),
    ErrorCode.ROOT_INTEGRITY: (1, "root.json is not signed by its own pinned root certificates"),
    ErrorCode.DELEGATION_CERT_INVALID: (1, "a delegation certificate uses SHA-1 or a weak RSA key"),
    ErrorCode.HASH_MISMATCH: (1, "a role file's hash does not match its parent metadata"),
    ErrorCode.LENGTH_EXCEEDED: (
        1,
        "a role file is longer than the length its parent metadata allows",
    ),
    ErrorCode.METADATA_EXPIRED: (1, "a role's metadata has expired at the validation time"),
    ErrorCode.INVALID_DELEGATION: (
        1,
        "a delegation is malformed (name, parent, keys or duplicate)",
    ),
    ErrorCode.TAG_NOT_SIGNED: (1, "the tag is not signed in targets/releases or targets"),
    ErrorCode.TAG_NOT_RELEASED: (
        1,
        "the tag is signed only by a role Docker does not release from",
    ),
    ErrorCode.DIGEST_MISMATCH: (1, "the digest in the reference is not the signed digest"),
    ErrorCode.DIGEST_NOT_SIGNED: (1, "the digest is not the digest of any released tag"),
    ErrorCode.PIN_MISMATCH: (1, "no root certificate of the collection satisfies its pin"),
    ErrorCode.SIGNER_PIN_MISMATCH: (1, "no key of a pinned signer's role matches the pin"),
    ErrorCode.NO_PIN: (1, "the GUN is not pinned and trust on first use is disabled"),
    ErrorCode.ROOT_ROTATION_INVALID: (
        1,
        "a changed root is not signed by the previously trusted root",
    ),
    ErrorCode.VERSION_ROLLBACK: (1, "a role's version is lower than one trusted before"),
    ErrorCode.DELEGATION_CERT_EXPIRED: (1, "a delegation certificate is expired or not yet valid"),
    ErrorCode.TARGET_MISSING_SHA256: (1, "the signed target carries no sha256 hash"),
    ErrorCode.TARGET_NOT_FOUND: (1, "the target path is not signed by any trusted role (TUF 1.0)"),
    ErrorCode.VERSION_MISMATCH: (
        1,
        "a role file's version is not the one its parent metadata names",
    ),
    ErrorCode.TARGET_DOWNLOAD_FAILED: (
        1,
        "a signed target file could not be fetched completely (TUF 1.0)",
    ),
    ErrorCode.TARGET_DIGEST_INVALID: (
        1,
        "a signed target's sha256 is not 32 bytes or its sha512 not 64",
    ),
    ErrorCode.ROLE_REMOVED: (
        1,
        "a targets role trusted before is no longer listed in the snapshot",
    ),
    # --- remote (exit 1) ---
    ErrorCode.NETWORK_ERROR: (
        1,
        "the connection to the server failed (refused, reset or cut short)",
    ),
    ErrorCode.SERVER_TIMEOUT: (1, "the server did not answer within the timeout"),
    ErrorCode.SERVER_ERROR: (1, "the server answered with an unexpected HTTP status"),
    ErrorCode.AUTH_FAILED: (1, "the server or its token service refused access (401/403)"),
    ErrorCode.TLS_ERROR: (1, "the server's TLS certificate could not be verified"),
    ErrorCode.MALICIOUS_SERVER: (1, "the server announced more data than the size cap allows"),
    ErrorCode.REGISTRY_TAG_MISSING: (1, "the registry has no manifest for the tag"),
    ErrorCode.REGISTRY_DIGEST_MISMATCH: (
        1,
        "the registry's digest for the tag is not the signed digest",
    ),
    ErrorCode.INTERNAL_ERROR: (
        1,
        "an unexpected failure (a bug) while handling this image; fail closed",
    ),
    # --- policy, pull, quarantine (exit 1) ---
    ErrorCode.POLICY_NO_MATCH: (1, "no rule of the policy matches the image (denied by default)"),
    ErrorCode.POLICY_DENIED: (1, "the rule matching the image denies it"),
    ErrorCode.SIGNER_THRESHOLD_NOT_MET: (
        1,
        "too few of the required signers signed the released digest",
    ),
    ErrorCode.REQUIREMENT_NOT_MET: (
        1,
        "no alternative of the rule's require: is satisfied for the image's digest",
    ),
    ErrorCode.SIGNATURE_NOT_FOUND: (
        1,
        "no signature of the kind a rule requires covers the digest",
    ),
    ErrorCode.SIGNATURE_IDENTITY_MISMATCH: (
        1,
        "valid signatures cover the digest, but none by an identity or key the rule names",
    ),
    ErrorCode.SIGNATURES_OFFLINE: (
        1,
        "the rule needs Notation or cosign signatures from the registry, and it was not asked",
    ),
    ErrorCode.SIGNER_UNKNOWN: (
        1,
        "a signer the rule requires has no delegation in the repository",
    ),
    ErrorCode.PULL_FAILED: (1, "the pull-by-digest command failed"),
    ErrorCode.MANIFEST_NOT_FOUND: (
        1,
        "the registry has no manifest with that digest in the repository",
    ),
    # --- admission webhook (deny) ---
    ErrorCode.ADMISSION_INVALID: (
        1,
        "the admitted object is malformed where trustcheck reads images",
    ),
    ErrorCode.ADMISSION_DEADLINE: (
        1,
        "the trust data was not verified within the review's deadline",
    ),
    ErrorCode.ADMISSION_REVOKED: (
        1,
        "the image's digest is on the webhook's revocation list",
    ),
    ErrorCode.ARCHIVE_INVALID: (1, "a trust archive is not in the format trustcheck writes"),
    ErrorCode.ARCHIVE_MANIFEST_MISMATCH: (
        1,
        "a trust archive's files do not match its manifest (changed, removed, extra)",
    ),
    ErrorCode.ARCHIVE_SIGNATURE_INVALID: (
        1,
        "a trust archive's manifest signature is missing or does not verify",
    ),
    ErrorCode.ARCHIVE_PIN_MISMATCH: (
        1,
        "a trust archive is signed by a key other than the pinned one",
    ),
    ErrorCode.ARCHIVE_TOO_OLD: (1, "a trust archive was captured longer ago than the allowed age"),
    # --- OCI discovery and Notation (issue 19) ---
    ErrorCode.NOTATION_CONFIG_INVALID: (
        2,
        "the Notation trust policy or trust store cannot be read or is invalid",
    ),
    ErrorCode.OCI_INVALID: (1, "a manifest, index or descriptor from the registry is malformed"),
    ErrorCode.CONTENT_DIGEST_MISMATCH: (
        1,
        "the registry served content that does not match its digest",
    ),
    ErrorCode.BLOB_NOT_FOUND: (1, "the registry has no blob with that digest in the repository"),
    ErrorCode.REFERRERS_LIMIT_EXCEEDED: (1, "more referrers or signatures than the limit allows"),
    ErrorCode.NOTATION_NO_POLICY: (1, "no Notation trust policy applies to the repository"),
    ErrorCode.NOTATION_NO_SIGNATURE: (1, "the image has no Notation signature in the registry"),
    ErrorCode.NOTATION_VERIFICATION_SKIPPED: (
        1,
        "the Notation trust policy says skip: nothing was verified",
    ),
    ErrorCode.NOTATION_ENVELOPE_INVALID: (
        1,
        "a Notation signature envelope or payload is malformed",
    ),
    ErrorCode.UNSUPPORTED_ENVELOPE: (
        1,
        "the signature envelope type or signing scheme is not supported",
    ),
    ErrorCode.NOTATION_CRITICAL_HEADER: (
        1,
        "a critical header is missing, unknown or not marked critical",
    ),
    ErrorCode.NOTATION_SIGNATURE_INVALID: (1, "the envelope's signature does not verify"),
    ErrorCode.NOTATION_SUBJECT_MISMATCH: (
        1,
        "the signed payload names another artifact than the image",
    ),
    ErrorCode.NOTATION_UNTRUSTED_CHAIN: (
        1,
        "the certificate chain does not lead to the trust store",
    ),
    ErrorCode.NOTATION_CERT_INVALID: (
        1,
        "a certificate of the chain breaks the Notary Project rules",
    ),
    ErrorCode.NOTATION_CERT_EXPIRED: (1, "a certificate of the chain is expired or not yet valid"),
    ErrorCode.NOTATION_IDENTITY_MISMATCH: (1, "the signing certificate is not a trusted identity"),
    ErrorCode.NOTATION_SIGNATURE_EXPIRED: (1, "the signature's expiry time has passed"),
    ErrorCode.NOTATION_REVOCATION_UNCHECKED: (
        1,
        "a certificate names OCSP/CRL revocation information trustcheck cannot check",
    ),
    ErrorCode.TIMESTAMP_UNSUPPORTED: (1, "the trust policy requires an RFC 3161 timestamp check"),
    # --- Sigstore / cosign (docs/sigstore.md) ---
    ErrorCode.COSIGN_CONFIG_INVALID: (
        2,
        "a cosign public key, trusted root or identity option cannot be used",
    ),
    ErrorCode.COSIGN_NO_SIGNATURES: (1, "no cosign signature is attached to the image digest"),
    ErrorCode.COSIGN_SIGNATURE_INVALID: (
        1,
        "a cosign signature does not verify with any trusted key or its certificate",
    ),
    ErrorCode.COSIGN_DIGEST_MISMATCH: (
        1,
        "a cosign signature or bundle is for another digest than the image's",
    ),
    ErrorCode.COSIGN_IDENTITY_MISMATCH: (
        1,
        "a keyless signature's identity (SAN) or OIDC issuer is not the required one",
    ),
    ErrorCode.COSIGN_CERT_INVALID: (
        1,
        "a signing certificate does not chain to Fulcio or was not valid when it signed",
    ),
    ErrorCode.COSIGN_TLOG_INVALID: (
        1,
        "a Rekor inclusion proof, checkpoint or signed entry timestamp is missing or invalid",
    ),
    ErrorCode.COSIGN_BUNDLE_INVALID: (
        1,
        "a cosign signature manifest, payload or Sigstore bundle is malformed or too large",
    ),
}


class TrustcheckError(Exception):
    """Base error: a stable ``code``, a one-line ``message``, optional ``role``."""

    exit_code: ClassVar[int] = 1

    def __init__(self, code: ErrorCode | str, message: str, *, role: str | None = None) -> None:
        try:  # a typo is a programming error, caught by the test-suite
            known = ErrorCode(code)
        except ValueError:
            raise ValueError(f"undocumented error code {str(code)!r}") from None
        super().__init__(message)
        self.code: ErrorCode = known
        self.message = message
        self.role = role

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> dict[str, str | None]:
        return {"code": self.code.value, "message": self.message, "role": self.role}


class NotTrusted(TrustcheckError):
    """The trust data does not establish trust: exit code 1."""

    exit_code = 1

    def __init__(self, code: ErrorCode | str, message: str, *, role: str | None = None) -> None:
        super().__init__(code, message, role=role)
        if CODES[self.code][0] != 1:
            raise ValueError(f"{str(code)!r} is not a not-trusted code")


class UsageError(TrustcheckError):
    """Bad arguments or configuration: exit code 2."""

    exit_code = 2

    def __init__(self, code: ErrorCode | str, message: str, *, role: str | None = None) -> None:
        super().__init__(code, message, role=role)
        if CODES[self.code][0] != 2:
            raise ValueError(f"{str(code)!r} is not a usage code")


def error_for(code: ErrorCode | str, message: str, *, role: str | None = None) -> TrustcheckError:
    """Build the right subclass for ``code`` (an unknown code raises ValueError)."""
    if CODES[ErrorCode(code)][0] == 2:
        return UsageError(code, message, role=role)
    return NotTrusted(code, message, role=role)
