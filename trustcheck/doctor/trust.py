"""The doctor's ``trust`` section: a full verification of the image (fetched,
or the trust dir with ``--offline``) with the verifier's verdict and code, on a
scratch copy of the cached collection and of its state record (no root is
trusted on first use, no cache is updated); root/delegation certificates and
metadata expiring within the horizon."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustcheck.core.timefmt import iso as _iso
from trustcheck.doctor.context import DoctorBase
from trustcheck.doctor.report import CheckResult, _count, _days
from trustcheck.errors import TrustcheckError

if TYPE_CHECKING:
    from cryptography import x509

    from trustcheck.api import Options
    from trustcheck.core.reference import ImageRef
    from trustcheck.core.verify import Collection
    from trustcheck.local.trustdir import TrustDir

__all__ = ["TrustChecks"]

_REMOTE_CODES = frozenset(
    {
        "network-error",
        "server-timeout",
        "server-error",
        "auth-failed",
        "tls-error",
        "malicious-server",
    }
)


def _copy_collection(src: TrustDir, dst: TrustDir, gun: str) -> None:
    """Copy the cached role files of ``gun`` from trust dir ``src`` to ``dst``,
    each read with ``src``'s path and size checks (symlinks out of the trust dir
    are not followed).  Files that are not role files are left out."""
    from trustcheck.core.roles import MAX_DOWNLOAD_SIZE

    folder = src.metadata_dir(gun)
    if not folder.is_dir():
        return
    target = dst.metadata_dir(gun)
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            if not name.endswith(".json"):
                continue
            rel = (Path(dirpath) / name).relative_to(folder).as_posix()[: -len(".json")]
            try:
                data = src.read_role(gun, rel, MAX_DOWNLOAD_SIZE)
            except TrustcheckError:
                if rel == "root":
                    raise
                continue
            if data is not None:
                out = target / (rel + ".json")
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data)


class TrustChecks(DoctorBase):
    """The checks of the ``trust`` section."""

    def trust_checks(self) -> None:
        names = ("verify", "metadata-expiry", "signing-cert-expiry")
        ref = self.target.ref if self.target is not None else None
        if ref is None:
            for name in names:
                self.skip("trust", name, "no image given")
            return
        blockers = [
            (self.pins_ok, "pin-file failed"),
            (self.state_ok, "state failed"),
            (self.trust_dir_ok, "trust-dir failed"),
        ]
        if not self.remote.offline:
            blockers.append(
                (
                    self.server_ok,
                    f"{self.server_failed or self.server_skip} (--offline verifies the cached "
                    "trust data instead)",
                )
            )
        for good, why in blockers:
            if not good:
                self.blocked("trust", "verify", why)
                for name in names[1:]:
                    self.blocked("trust", name, "verify not run")
                return
        col = self.check_verify(ref)
        if col is None:
            for name in names[1:]:
                self.blocked("trust", name, "verify failed")
            return
        self.check_metadata_expiry(col)
        self.check_signing_cert_expiry(col)

    def _options(self, state_dir: Path) -> Options:
        from trustcheck.api import Options
        from trustcheck.local.state import StateStore

        return Options(
            pins=self.pinset,
            state=StateStore(state_dir),
            no_tofu=self.cfg.no_tofu,
            delegation_cert_expiry=self.cfg.delegation_cert_expiry,
        )

    def check_verify(self, ref: ImageRef) -> Collection | None:
        from trustcheck.api import load_collection, resolve_image
        from trustcheck.local.state import StateStore
        from trustcheck.local.trustdir import TrustDir
        from trustcheck.remote.notary import fetch_collection

        gun = ref.gun
        with tempfile.TemporaryDirectory(prefix="trustcheck-doctor-") as tmp:
            scratch = Path(tmp)
            # the state record, copied so that nothing is recorded (no TOFU by the doctor)
            previous = StateStore(self._state_store_dir()).load(gun)
            if previous is not None:
                with StateStore(scratch / "state").session(gun) as (_old, recorder):
                    recorder.state = previous
            options = self._options(scratch / "state")
            try:
                if self.remote.offline:
                    col = load_collection(TrustDir(self.cfg.trust_dir), gun, self.at, options)
                    how = "cached trust data (--offline)"
                else:
                    td = TrustDir(scratch / "trust")
                    _copy_collection(TrustDir(self.cfg.trust_dir), td, gun)
                    assert self.session is not None
                    col = fetch_collection(
                        gun, td, self.at, options, self.remote, self.env, session=self.session
                    )
                    how = f"trust data fetched from {self.server}"
            except TrustcheckError as e:
                self._verify_failed(ref, e)
                return None
        result = resolve_image(ref, col)
        if result.error is not None:
            self._verify_failed(ref, result.error, col)
            return None
        basis = col.trust_basis
        signers = ", ".join(result.signers) or "-"
        text = (
            f"TRUSTED {ref} {result.digest} (role {result.role}; signers: {signers}); "
            f"{how}; root: {basis}"
        )
        details: dict[str, Any] = {
            "trusted": True,
            "digest": result.digest,
            "role": result.role,
            "signers": result.signers,
            "trust_basis": basis,
            "warnings": list(col.warnings),
        }
        if basis == "first use":
            text += " (no pin and nothing recorded: `trustcheck verify` records it; or pin it)"
        if col.warnings:
            text += f"; {_count(len(col.warnings), 'warning')}: " + "; ".join(col.warnings[:3])
        self.ok("trust", "verify", text, **details)
        return col

    def _verify_failed(
        self, ref: ImageRef, e: TrustcheckError, col: Collection | None = None
    ) -> None:
        from trustcheck.errors import CODES as VERIFIER_CODES

        remote = e.code in _REMOTE_CODES
        code = "METADATA_DOWNLOAD_ERROR" if remote else "TRUST_DATA_INVALID"
        summary = VERIFIER_CODES.get(e.code, (1, ""))[1]
        fix = (
            "see docs/errors.md for this code"
            + (f" ({summary})" if summary else "")
            + ("; the server checks above passed, so retry once" if remote else "")
        )
        result = CheckResult(
            "trust",
            "verify",
            "fail",
            code,
            f"NOT TRUSTED {ref}: [{e.code}] {e.message}",
            fix,
            {
                "trusted": False,
                "verifier_code": e.code,
                "role": e.role,
                "warnings": list(col.warnings) if col is not None else [],
            },
            exit_override=e.exit_code,
        )
        self.checks.append(result)

    def check_metadata_expiry(self, col: Collection) -> None:
        horizon = self.cfg.horizon
        soon: list[str] = []
        earliest: tuple[datetime, str] | None = None
        for name, check in col.checks.items():
            if name == "timestamp":  # re-signed by the server every fetch (14 days)
                continue
            if earliest is None or check.expires < earliest[0]:
                earliest = (check.expires, name)
            if check.expires - self.at <= horizon:
                soon.append(f"{name} on {_iso(check.expires)}")
        if soon:
            self.add(
                "trust",
                "metadata-expiry",
                "warn",
                "METADATA_EXPIRING",
                f"expiring within {_days(horizon)}: " + ", ".join(soon),
                "the repository owner must re-sign (notary publish / docker trust sign); "
                "snapshot: `notary witness` or a publish",
                expiring=soon,
            )
            return
        first = f" (first: {earliest[1]} on {_iso(earliest[0])})" if earliest else ""
        self.ok(
            "trust",
            "metadata-expiry",
            f"no role but the timestamp expires within {_days(horizon)}{first}",
        )

    def check_signing_cert_expiry(self, col: Collection) -> None:
        from trustcheck.core.crypto import cert_of

        horizon = self.cfg.horizon
        found: list[tuple[str, x509.Certificate]] = []
        for kid, key in col.root_keys.items():
            cert = cert_of(key)
            if cert is not None:
                found.append((f"root {kid[:12]}", cert))
        for role, meta in col.targets.items():
            for kid, key in meta.delegation_keys.items():
                cert = cert_of(key)
                if cert is not None:
                    found.append((f"delegation key {kid[:12]} (in {role})", cert))
        if not found:
            self.skip("trust", "signing-cert-expiry", "no certificates among the signing keys")
            return
        soon = [
            f"{label} on {_iso(cert.not_valid_after_utc)}"
            for label, cert in found
            if cert.not_valid_after_utc - self.at <= horizon
        ]
        if soon:
            self.add(
                "trust",
                "signing-cert-expiry",
                "warn",
                "SIGNING_CERT_EXPIRING",
                f"expiring within {_days(horizon)}: " + ", ".join(soon),
                "root: rotate the root key (notary key rotate GUN root); delegations: add a "
                "new certificate for the signer (docker trust signer add)",
                expiring=soon,
            )
            return
        earliest = min(found, key=lambda item: item[1].not_valid_after_utc)
        self.ok(
            "trust",
            "signing-cert-expiry",
            f"{_count(len(found), 'certificate')}, none expiring within {_days(horizon)} (first: "
            f"{earliest[0]} on {_iso(earliest[1].not_valid_after_utc)})",
        )
