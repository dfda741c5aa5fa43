"""The doctor's ``local`` section: the trust dir and the GUNs it holds,
Docker's config.json and the credentials (credential helpers are run), the
pin file, the state record of the GUN, the policy file."""

from __future__ import annotations

import os
import shutil
from typing import Any

from trustcheck.doctor.context import DoctorBase
from trustcheck.doctor.report import _count
from trustcheck.errors import TrustcheckError, UsageError

__all__ = ["DockerConfigChecks", "LocalChecks"]


class DockerConfigChecks(DoctorBase):
    """Docker's config.json and the credentials it names (credential helpers are run)."""

    def check_docker_config(self) -> bool:
        from trustcheck.remote.auth import docker_config_dir, load_docker_config

        folder = docker_config_dir(self.remote.docker_config, self.env)
        try:
            doc = load_docker_config(folder)
        except UsageError as e:
            self.fail(
                "local",
                "docker-config",
                "DOCKER_CONFIG_ERROR",
                e.message,
                f"fix or remove {folder / 'config.json'} (it must be a JSON object), or run "
                "`docker login` again",
                path=str(folder / "config.json"),
            )
            return False
        if doc is None:
            self.ok(
                "local",
                "docker-config",
                f"no {folder / 'config.json'}: no stored credentials (anonymous access)",
                path=str(folder / "config.json"),
            )
            return True
        helpers = doc.get("credHelpers")
        auths = doc.get("auths")
        store = doc.get("credsStore")
        parts = []
        if isinstance(store, str) and store:
            parts.append(f"credsStore {store!r}")
        if isinstance(helpers, dict) and helpers:
            parts.append(f"credHelpers for {_count(len(helpers), 'registry', 'registries')}")
        if isinstance(auths, dict) and auths:
            parts.append(f"auths for {_count(len(auths), 'registry', 'registries')}")
        self.ok(
            "local",
            "docker-config",
            f"{folder / 'config.json'}: " + (", ".join(parts) if parts else "no credentials"),
            path=str(folder / "config.json"),
        )
        return True

    def check_credentials(self) -> None:
        from trustcheck.remote.auth import (
            docker_config_dir,
            load_docker_config,
            resolve_credentials,
        )

        key = self.auth_key
        if key is None:
            # no registry to ask for: are the configured helpers at least there?
            folder = docker_config_dir(self.remote.docker_config, self.env)
            try:
                doc = load_docker_config(folder) or {}
            except UsageError:
                doc = {}
            names: set[str] = set()
            store = doc.get("credsStore")
            if isinstance(store, str) and store:
                names.add(store)
            helpers = doc.get("credHelpers")
            if isinstance(helpers, dict):
                names.update(v for v in helpers.values() if isinstance(v, str) and v)
            if not names:
                self.skip("local", "credentials", "no registry given and no credential helper")
                return
            missing = [
                n
                for n in sorted(names)
                if shutil.which(f"docker-credential-{n}", path=self.env.get("PATH")) is None
            ]
            if missing:
                self.creds_ok = False
                self.fail(
                    "local",
                    "credentials",
                    "CREDENTIAL_HELPER_ERROR",
                    "not on PATH: " + ", ".join(f"docker-credential-{n}" for n in missing),
                    "install the helper, or remove it from credsStore/credHelpers in "
                    f"{folder / 'config.json'}",
                )
                return
            self.ok(
                "local",
                "credentials",
                "credential helpers on PATH: "
                + ", ".join(f"docker-credential-{n}" for n in sorted(names))
                + " (give an IMAGE or REGISTRY to ask them for credentials)",
            )
            return
        try:
            creds = resolve_credentials(
                key,
                username=self.remote.username,
                password=self.remote.password,
                config_dir=self.remote.docker_config,
                env=self.env,
            )
        except UsageError as e:
            self.creds_ok = False
            code = (
                "CREDENTIAL_HELPER_ERROR"
                if e.code == "credential-helper-failed"
                else "DOCKER_CONFIG_ERROR"
            )
            self.fail(
                "local",
                "credentials",
                code,
                e.message,
                "run the helper by hand: `echo "
                + key
                + " | docker-credential-<name> get`; install it or fix credsStore/credHelpers"
                if code == "CREDENTIAL_HELPER_ERROR"
                else "fix the docker config, or pass --username with --password-stdin",
                registry=key,
            )
            return
        self.creds = creds
        if creds is None:
            self.ok(
                "local",
                "credentials",
                f"none for {key}: anonymous access",
                registry=key,
                source=None,
            )
        else:
            self.ok(
                "local",
                "credentials",
                f"{creds.describe()} for {key}",
                registry=key,
                source=creds.source,
                user=creds.username or None,
                identity_token=creds.identity_token is not None,
            )


class LocalChecks(DockerConfigChecks):
    """The checks of the ``local`` section."""

    def local(self) -> None:
        self.check_trust_dir()
        config_ok = self.check_docker_config()
        if config_ok:
            self.check_credentials()
        else:
            self.creds_ok = False
            self.blocked("local", "credentials", "docker-config failed")
        self.check_pins()
        self.check_state()
        self.check_policy()

    def check_trust_dir(self) -> None:
        from trustcheck.local.trustdir import TrustDir

        path = self.cfg.trust_dir
        online = not self.remote.offline
        gun = self.gun
        if not path.exists():
            self.trust_dir_ok = not self.remote.offline
            if online:
                self.add(
                    "local",
                    "trust-dir",
                    "warn",
                    "TRUST_DIR_MISSING",
                    f"{path} does not exist yet; the first fetch creates it",
                    "nothing to do, unless you expected cached trust data there: then pass "
                    "--trust-dir or set DOCKER_CONFIG",
                    path=str(path),
                )
            else:
                self.fail(
                    "local",
                    "trust-dir",
                    "TRUST_DIR_MISSING",
                    f"{path} does not exist, and --offline verifies only cached trust data",
                    "run `trustcheck fetch IMAGE` (or `docker trust inspect IMAGE`) once, or "
                    "point --trust-dir / DOCKER_CONFIG at the right folder",
                    path=str(path),
                )
            return
        if not path.is_dir() or not os.access(path, os.R_OK | os.X_OK):
            self.trust_dir_ok = False
            why = "is not a directory" if not path.is_dir() else "is not readable by this user"
            self.fail(
                "local",
                "trust-dir",
                "TRUST_DIR_UNREADABLE",
                f"{path} {why}",
                f"check the permissions of {path} (ls -ld), or pass another --trust-dir",
                path=str(path),
            )
            return
        guns = TrustDir(path).list_guns()
        shown = ", ".join(guns[:5]) + (f" (+{len(guns) - 5} more)" if len(guns) > 5 else "")
        summary = f"{path}: {_count(len(guns), 'collection')}" + (f": {shown}" if guns else "")
        details: dict[str, Any] = {"path": str(path), "guns": guns}
        if gun is not None:
            has = gun in guns
            details["cached"] = has
            if not has and not online:
                self.trust_dir_ok = False
                self.fail(
                    "local",
                    "trust-dir",
                    "TRUST_DATA_NOT_CACHED",
                    f"{summary}; nothing cached for {gun}, and --offline uses only the cache",
                    f"run `trustcheck fetch {gun}` once (or drop --offline), or check the "
                    "trust dir and the image name",
                    **details,
                )
                return
            summary += (
                f"; {gun} is cached"
                if has
                else f"; nothing cached for {gun} yet (the first fetch trusts the server's "
                "root on first use unless pinned)"
            )
        if online and not os.access(path, os.W_OK):
            self.add(
                "local",
                "trust-dir",
                "warn",
                "TRUST_DIR_UNWRITABLE",
                f"{summary}; but it is not writable, so new trust data cannot be cached and "
                "`trustcheck verify` fails when the server has newer data",
                f"make {path} writable for this user, or pass a writable --trust-dir",
                **details,
            )
            return
        self.ok("local", "trust-dir", summary, **details)

    def check_pins(self) -> None:
        from trustcheck.local.pinfile import default_pin_file, load_pins
        from trustcheck.local.session import load_ca_bundle

        path = self.cfg.pins
        if path is None:
            candidate = default_pin_file(self.env, self.home)
            if not candidate.is_file():
                self.ok(
                    "local",
                    "pin-file",
                    f"no pin file ({candidate}): roots are trusted on first use, then kept in "
                    "the state dir",
                    path=None,
                )
                return
            path = candidate
        try:
            pinset = load_pins(path)
            gun = self.gun
            entry = pinset.lookup(gun) if gun is not None else None
            for e in pinset.entries:
                if e.ca is not None:
                    # an expired bundle is the verifier's pin-mismatch, reported by verify
                    load_ca_bundle(e)
        except UsageError as e:
            self.pins_ok = False
            self.fail(
                "local",
                "pin-file",
                "PIN_FILE_ERROR",
                e.message,
                "fix the entry the message names (docs/pinning.md has the schema), or "
                "check it with `trustcheck pin list`",
                path=str(path),
            )
            return
        self.pinset = pinset
        text = f"{path}: {_count(len(pinset.entries), 'pin')}" + (
            ", no_tofu" if pinset.no_tofu else ""
        )
        if gun is not None:
            if entry is not None:
                text += f"; {gun} is pinned by {entry.pattern!r}"
            elif pinset.no_tofu:
                text += f"; {gun} is not pinned and no_tofu is set (it will be refused)"
            else:
                text += f"; {gun} is not pinned (trust on first use)"
        self.ok(
            "local",
            "pin-file",
            text,
            path=str(path),
            pinned_by=entry.pattern if entry is not None else None,
        )

    def check_state(self) -> None:
        from trustcheck.local.state import StateStore

        gun = self.gun
        folder = self._state_store_dir()
        if gun is None:
            self.skip("local", "state", f"no image given (state dir {folder})")
            return
        try:
            state = StateStore(folder).load(gun)
        except UsageError as e:
            self.state_ok = False
            self.fail(
                "local",
                "state",
                "STATE_INVALID",
                e.message,
                "inspect the file; removing it makes the next run trust the collection's root "
                "on first use again (or pin it first)",
                path=str(folder),
            )
            return
        if state is None or state.root is None:
            self.ok(
                "local",
                "state",
                f"{folder}: nothing recorded for {gun} yet (first use)",
                path=str(folder),
            )
            return
        versions = ", ".join(f"{r} v{v}" for r, v in sorted(state.versions.items()))
        self.ok(
            "local",
            "state",
            f"{folder}: a root trusted before (recorded {state.updated or 'earlier'}); "
            f"versions seen: {versions or 'none'}",
            path=str(folder),
            versions=dict(state.versions),
        )

    def check_policy(self) -> None:
        if self.cfg.policy is None:
            self.skip("local", "policy-file", "no --policy given")
            return
        from trustcheck.policy import load

        try:
            load.load_policy(self.cfg.policy)
        except TrustcheckError as e:
            self.fail(
                "local",
                "policy-file",
                "POLICY_FILE_ERROR",
                f"[{e.code}] {e.message}",
                "fix the file, line and field the message names (docs/policy.md)",
                path=str(self.cfg.policy),
            )
            return
        except Exception as e:  # a loader bug must not become a traceback
            self.fail(
                "local",
                "policy-file",
                "POLICY_FILE_ERROR",
                f"loading {self.cfg.policy} raised {type(e).__name__}: {str(e)[:200]}",
                "fix the policy file; if it looks right, report this as a trustcheck bug",
                path=str(self.cfg.policy),
            )
            return
        self.ok("local", "policy-file", f"{self.cfg.policy} loads", path=str(self.cfg.policy))
