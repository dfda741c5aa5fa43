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

from typing import ClassVar

#: code -> (exit code, one-line summary).  docs/errors.md documents each code;
#: tests/unit/test_errors_doc.py keeps the two in step.
CODES: dict[str, tuple[int, str]] = {
    # --- usage / input (exit 2) ---
    "invalid-reference": (2, "the image reference does not follow Docker's grammar"),
    "invalid-argument": (2, "a command-line option has an invalid value"),
    "unsafe-path": (2, "a GUN or role name would leave the trust dir"),
    "trust-dir-unreadable": (2, "the trust dir exists but cannot be read"),
    "pin-file-invalid": (2, "the pin file cannot be read or does not follow the schema"),
    "state-invalid": (2, "a state file is unreadable or corrupt"),
    "state-dir-unwritable": (2, "the state dir cannot be created, locked or written"),
    "pin-file-unwritable": (2, "the pin file cannot be written"),
    "trust-dir-missing": (2, "the trust dir given with --trust-dir does not exist"),
    "home-unknown": (2, "no home directory ($HOME unset, no passwd entry) for a default path"),
    "insecure-server": (2, "a server, registry or token URL is plain http without --unsafe-http"),
    "tls-config-invalid": (2, "a TLS CA file, client certificate or key cannot be loaded"),
    "docker-config-invalid": (2, "the docker config.json is unreadable or malformed"),
    "credential-helper-failed": (2, "a docker credential helper is missing or failed"),
    "trust-dir-unwritable": (2, "verified trust data cannot be written into the trust dir"),
    "output-unwritable": (2, "a report or CSV file cannot be written"),
    "policy-invalid": (2, "the policy file cannot be read or does not follow the schema"),
    "pull-tool-missing": (2, "the program to pull with (docker, podman, skopeo) is not installed"),
    "extra-missing": (2, "the command needs an optional dependency that is not installed"),
    "webhook-config-invalid": (2, "the webhook server config (serve --config) is invalid"),
    # --- not trusted (exit 1) ---
    "no-trust-data": (1, "the trust dir holds no trust data for this GUN"),
    "role-missing": (1, "a role file the verification needs is missing"),
    "file-too-large": (1, "a role file is larger than its size cap"),
    "malformed-json": (1, "a role file is not valid JSON"),
    "invalid-structure": (1, "a role file does not have the structure notary requires"),
    "wrong-type": (1, "a role file's _type is not the role it is read as"),
    "invalid-expires": (1, "an expires value is not a valid RFC 3339 time as Go parses it"),
    "non-canonical-number": (1, "signed data holds a number notary cannot canonicalise"),
    "invalid-key-id": (1, "a signature references a key ID that does not match its key content"),
    "no-signatures": (1, "a role file carries no signatures"),
    "threshold-not-met": (1, "fewer distinct valid signatures than the role's threshold"),
    "root-cert-invalid": (1, "no root key is a valid leaf certificate for this GUN"),
    "root-cert-expired": (1, "the root certificate has expired at the validation time"),
    "root-cert-not-yet-valid": (1, "the root certificate is not yet valid at the validation time"),
    "root-cert-cn-mismatch": (1, "the root certificate's common name does not match the GUN"),
    "root-cert-weak": (1, "the root certificate uses SHA-1 or an RSA key under 2048 bits"),
    "root-integrity": (1, "root.json is not signed by its own pinned root certificates"),
    "delegation-cert-invalid": (1, "a delegation certificate uses SHA-1 or a weak RSA key"),
    "hash-mismatch": (1, "a role file's hash does not match its parent metadata"),
    "length-exceeded": (1, "a role file is longer than the length its parent metadata allows"),
    "metadata-expired": (1, "a role's metadata has expired at the validation time"),
    "invalid-delegation": (1, "a delegation is malformed (name, parent, keys or duplicate)"),
    "tag-not-signed": (1, "the tag is not signed in targets/releases or targets"),
    "tag-not-released": (1, "the tag is signed only by a role Docker does not release from"),
    "digest-mismatch": (1, "the digest in the reference is not the signed digest"),
    "digest-not-signed": (1, "the digest is not the digest of any released tag"),
    "pin-mismatch": (1, "no root certificate of the collection satisfies its pin"),
    "signer-pin-mismatch": (1, "no key of a pinned signer's role matches the pin"),
    "no-pin": (1, "the GUN is not pinned and trust on first use is disabled"),
    "root-rotation-invalid": (1, "a changed root is not signed by the previously trusted root"),
    "version-rollback": (1, "a role's version is lower than one trusted before"),
    "delegation-cert-expired": (1, "a delegation certificate is expired or not yet valid"),
    "target-missing-sha256": (1, "the signed target carries no sha256 hash"),
    "target-not-found": (1, "the target path is not signed by any trusted role (TUF 1.0)"),
    "version-mismatch": (1, "a role file's version is not the one its parent metadata names"),
    "target-download-failed": (1, "a signed target file could not be fetched completely (TUF 1.0)"),
    "target-digest-invalid": (1, "a signed target's sha256 is not 32 bytes or its sha512 not 64"),
    "role-removed": (1, "a targets role trusted before is no longer listed in the snapshot"),
    # --- remote (exit 1) ---
    "network-error": (1, "the connection to the server failed (refused, reset or cut short)"),
    "server-timeout": (1, "the server did not answer within the timeout"),
    "server-error": (1, "the server answered with an unexpected HTTP status"),
    "auth-failed": (1, "the server or its token service refused access (401/403)"),
    "tls-error": (1, "the server's TLS certificate could not be verified"),
    "malicious-server": (1, "the server announced more data than the size cap allows"),
    "registry-tag-missing": (1, "the registry has no manifest for the tag"),
    "registry-digest-mismatch": (1, "the registry's digest for the tag is not the signed digest"),
    "internal-error": (1, "an unexpected failure (a bug) while handling this image; fail closed"),
    # --- policy, pull, quarantine (exit 1) ---
    "policy-no-match": (1, "no rule of the policy matches the image (denied by default)"),
    "policy-denied": (1, "the rule matching the image denies it"),
    "signer-threshold-not-met": (1, "too few of the required signers signed the released digest"),
    "pull-failed": (1, "the pull-by-digest command failed"),
    "manifest-not-found": (1, "the registry has no manifest with that digest in the repository"),
    # --- admission webhook (deny) ---
    "admission-invalid": (1, "the admitted object is malformed where trustcheck reads images"),
    "admission-deadline": (1, "the trust data was not verified within the review's deadline"),
}


class TrustcheckError(Exception):
    """Base error: a stable ``code``, a one-line ``message``, optional ``role``."""

    exit_code: ClassVar[int] = 1

    def __init__(self, code: str, message: str, *, role: str | None = None) -> None:
        if code not in CODES:  # a programming error, caught by the test-suite
            raise ValueError(f"undocumented error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.role = role

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "role": self.role}


class NotTrusted(TrustcheckError):
    """The trust data does not establish trust: exit code 1."""

    exit_code = 1

    def __init__(self, code: str, message: str, *, role: str | None = None) -> None:
        super().__init__(code, message, role=role)
        if CODES[code][0] != 1:
            raise ValueError(f"{code!r} is not a not-trusted code")


class UsageError(TrustcheckError):
    """Bad arguments or configuration: exit code 2."""

    exit_code = 2

    def __init__(self, code: str, message: str, *, role: str | None = None) -> None:
        super().__init__(code, message, role=role)
        if CODES[code][0] != 2:
            raise ValueError(f"{code!r} is not a usage code")


def error_for(code: str, message: str, *, role: str | None = None) -> TrustcheckError:
    """Build the right subclass for ``code``."""
    if CODES[code][0] == 2:
        return UsageError(code, message, role=role)
    return NotTrusted(code, message, role=role)
