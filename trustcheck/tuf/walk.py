"""After python-tuf's workflow: the top-level roles re-verified from the persisted
files, the root pin, and the pre-order delegation walk for targets."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from trustcheck.errors import ErrorCode, NotTrusted, TrustcheckError
from trustcheck.tuf.base import _Loaded, _Refused
from trustcheck.tuf.checks import KeyChecks
from trustcheck.tuf.dialect import _parse
from trustcheck.tuf.errors import _bad_version, _expired, _map_error, _repo_error
from trustcheck.tuf.keys import _identifiers, public_key_identity
from trustcheck.tuf.report import _role_info

if TYPE_CHECKING:
    from tuf.api.metadata import (  # type: ignore[attr-defined]
        Metadata,
        Root,
        Snapshot,
        TargetFile,
        Targets,
    )

    from trustcheck.core.identity import Identifier


class TargetsWalk(KeyChecks):
    """Top-level re-verification and the targets walk."""

    def _check_top_level(self, bootstrap: bytes) -> None:
        from tuf.api.metadata import (  # type: ignore[attr-defined]
            Root,
            Snapshot,
            Timestamp,
        )

        repo = self.name
        first = _parse(bootstrap, "root.json", repo)
        if not isinstance(first.signed, Root):
            raise NotTrusted("wrong-type", f"the trusted root of {repo} is not a root", role="root")
        final = _parse(self._read_ws("root.json"), "root.json", repo)
        if not isinstance(final.signed, Root):
            raise NotTrusted("wrong-type", f"root.json of {repo} is not a root", role="root")
        # the chain python-tuf walked: bootstrap .. final
        chain = [first]
        for v in range(first.signed.version + 1, final.signed.version + 1):
            md = _parse(self._read_ws(f"root_history/{v}.root.json"), f"{v}.root.json", repo)
            chain.append(md)
        self._distinct(first.signed, "root", first)
        for prev, new in itertools.pairwise(chain):
            if not isinstance(new.signed, Root) or not isinstance(prev.signed, Root):
                raise NotTrusted("wrong-type", f"a root of {repo} is not a root", role="root")
            ctx = f"{new.signed.version}.root.json"
            against = f"{ctx} against root v{prev.signed.version}"
            self._distinct(prev.signed, "root", new, code="root-rotation-invalid", context=against)
            self._distinct(
                new.signed, "root", new, code="root-rotation-invalid", context=f"{ctx} itself"
            )
        self.roots = chain
        self.root_md = final
        root: Root = final.signed
        signed_root = self._distinct(root, "root", final)
        self._check_root_pin(root, final)
        self.top_infos.append(_role_info("root", final, root.roles["root"], signed_root, None))

        ts = _parse(self._read_ws("timestamp.json"), "timestamp.json", repo)
        if not isinstance(ts.signed, Timestamp):
            raise NotTrusted(ErrorCode.WRONG_TYPE, f"timestamp.json of {repo} is not a timestamp")
        signed_ts = self._distinct(root, "timestamp", ts)
        self.timestamp_md = ts
        self.top_infos.append(
            _role_info("timestamp", ts, root.roles["timestamp"], signed_ts, "root")
        )
        snap = _parse(self._read_ws("snapshot.json"), "snapshot.json", repo)
        if not isinstance(snap.signed, Snapshot):
            raise NotTrusted(ErrorCode.WRONG_TYPE, f"snapshot.json of {repo} is not a snapshot")
        if snap.signed.version != ts.signed.snapshot_meta.version:
            want = ts.signed.snapshot_meta.version
            raise _map_error(_bad_version("snapshot", want, snap.signed.version), self.ctx)
        signed_snap = self._distinct(root, "snapshot", snap)
        self.snapshot_md = snap
        self.top_infos.append(
            _role_info("snapshot", snap, root.roles["snapshot"], signed_snap, "root")
        )
        for when, md in (("root", final), ("timestamp", ts), ("snapshot", snap)):
            if md.signed.is_expired(self.at):
                raise _map_error(_expired(when), self.ctx)
        self._load_targets("targets", "root")

    def _check_root_pin(self, root: Root, md: Metadata[Any]) -> None:
        from trustcheck.core.identity import describe

        if self.pin is None or not self.pin.root:
            return
        pinned = set(self.pin.root)
        result = root.get_verification_result("root", md.signed_bytes, md.signatures)
        matching = {
            public_key_identity(key) for key in result.signed.values() if _identifiers(key) & pinned
        }
        if len(matching) >= root.roles["root"].threshold:
            return
        have: set[Identifier] = set()
        for kid in root.roles["root"].keyids:
            if kid in root.keys:
                have |= _identifiers(root.keys[kid])
        threshold = root.roles["root"].threshold
        where = self.pin.source or self.pin.pattern
        if matching:
            raise NotTrusted(
                ErrorCode.PIN_MISMATCH,
                f"root v{root.version} of {self.name} carries {len(matching)} signature(s) by keys "
                f"pinned in {where}, and {threshold} are needed: pin at least {threshold} of its "
                "root keys (trustcheck tuf thumbprint lists them), after checking them out of band",
                role="root",
            )
        raise NotTrusted(
            ErrorCode.PIN_MISMATCH,
            f"no root key of {self.name} satisfies {where} (pinned {describe(pinned)}; "
            f"root v{root.version} has {describe(have) or 'none'}): the root was replaced. If the "
            "owner rotated it on purpose, check the new keys out of band (trustcheck tuf "
            "thumbprint) and update the pin",
            role="root",
        )

    def _delegator(self, parent: str) -> Root | Targets:
        if parent == "root":
            assert self.root_md is not None
            root: Root = self.root_md.signed
            return root
        targets: Targets = self.loaded[parent].md.signed
        return targets

    def _load_targets(self, role: str, parent: str) -> Metadata[Any]:
        """A targets role verified as python-tuf's trusted set does, plus trustcheck's checks.

        Read from python-tuf's metadata folder when it is there and verifies
        (python-tuf loaded it while walking), else fetched like python-tuf
        fetches it (consistent-snapshot name) and stored there.
        """
        got = self.loaded.get(role)
        if got is not None and got.parent == parent:
            return got.md
        failed = self.failed_roles.get(role)
        if failed is not None:
            raise failed
        try:
            local: bytes | None = (self.ws.dir / f"{quote(role, '')}.json").read_bytes()
        except OSError:
            local = None
        if local is not None:
            try:
                return self._verify_targets_bytes(role, parent, local)
            except NotTrusted as e:
                if isinstance(e, _Refused):
                    # python-tuf accepted this file; trustcheck's own checks refuse it
                    self.failed_roles[role] = e
                    raise
        assert self.snapshot_md is not None
        snapshot: Snapshot = self.snapshot_md.signed
        meta = snapshot.meta.get(f"{role}.json")
        if meta is None:
            missing = _repo_error(f"Role {role} was delegated but is not part of snapshot")
            raise _map_error(missing, self.ctx)
        assert self.root_md is not None
        version = meta.version if self.root_md.signed.consistent_snapshot else None
        name = f"{version}.{quote(role, '')}.json" if version else f"{quote(role, '')}.json"
        try:
            data = self.loc.fetcher.download_bytes(
                self.loc.base_url + name, meta.length or self.limits.targets_max_length
            )
        except TrustcheckError:
            raise
        except Exception as e:
            raise _map_error(e, self.ctx) from e
        try:
            md = self._verify_targets_bytes(role, parent, data)
        except NotTrusted as e:
            self.failed_roles[role] = e
            raise
        try:
            from trustcheck.local.fsutil import atomic_write

            atomic_write(self.ws.dir / f"{quote(role, '')}.json", data, mode=0o600)
        except OSError as e:
            raise _map_error(e, self.ctx) from e
        return md

    def _verify_targets_bytes(self, role: str, parent: str, data: bytes) -> Metadata[Any]:
        from tuf.api.exceptions import LengthOrHashMismatchError
        from tuf.api.metadata import Targets  # type: ignore[attr-defined]

        repo = self.name
        file = f"{role}.json"
        self.loc.recorder.last_name = file
        assert self.snapshot_md is not None
        meta = self.snapshot_md.signed.meta.get(file)
        if meta is None:
            raise _map_error(
                _repo_error(f"Snapshot does not contain information for '{role}'"), self.ctx
            )
        try:
            meta.verify_length_and_hashes(data)
        except LengthOrHashMismatchError as e:
            raise _map_error(e, self.ctx) from e
        md = _parse(data, file, repo)
        if not isinstance(md.signed, Targets):
            raise _map_error(_repo_error(f"Expected 'targets', got '{md.signed.type}'"), self.ctx)
        delegator = self._delegator(parent)
        try:
            delegated = delegator.get_delegated_role(role)
        except ValueError as e:
            raise NotTrusted(
                ErrorCode.INVALID_DELEGATION,
                f"{parent} of {repo} does not delegate to {role} ({e})",
                role=role,
            ) from e
        pins = self.pin.signers.get(role) if self.pin is not None else None
        signed_by = self._distinct(delegator, role, md, signer_pins=pins)
        if md.signed.version != meta.version:
            raise _map_error(_bad_version(role, meta.version, md.signed.version), self.ctx)
        if md.signed.is_expired(self.at):
            raise _map_error(_expired(role), self.ctx)
        info = _role_info(role, md, delegated, signed_by, parent)
        self.loaded[role] = _Loaded(md, parent, info)
        return md

    def find(self, path: str) -> tuple[TargetFile, list[str]] | None:
        """python-tuf's pre-order depth-first walk (``Updater._preorder_depth_first_walk``)
        over the roles trustcheck verified: the target and the chain of roles to it."""
        to_visit: list[tuple[str, str]] = [("targets", "root")]
        visited: set[str] = set()
        via: dict[str, str] = {}
        while len(visited) <= self.limits.max_delegations and to_visit:
            role, parent = to_visit.pop()
            if role in visited:
                continue
            md = self._load_targets(role, parent)
            via[role] = parent
            targets: Targets = md.signed
            found = targets.targets.get(path)
            if found is not None:
                chain = [role]
                while chain[-1] != "targets" and len(chain) <= len(via):
                    chain.append(via[chain[-1]])
                return found, list(reversed(chain))
            visited.add(role)
            if targets.delegations is not None:
                children: list[tuple[str, str]] = []
                for child, terminating in targets.delegations.get_roles_for_target(path):
                    children.append((child, role))
                    if terminating:
                        to_visit = []
                        break
                children.reverse()
                to_visit.extend(children)
        return None

    def target(self, path: str) -> tuple[TargetFile, list[str]]:
        """python-tuf's answer for ``path``, confirmed by trustcheck's walk."""
        assert self.updater is not None
        self.ctx.phase = "target"
        try:
            info = self.updater.get_targetinfo(path)
        except TrustcheckError:
            raise
        except Exception as e:
            raise _map_error(e, self.ctx) from e
        mine = self.find(path)
        if info is None and mine is None:
            raise NotTrusted(
                ErrorCode.TARGET_NOT_FOUND,
                f"{path} is not signed by any trusted role of {self.name} that is delegated "
                "that path; check the path (case, no leading '/'), or ask the repository "
                "owner to sign it",
            )
        if info is None or mine is None or mine[0] != info:
            raise NotTrusted(
                ErrorCode.INVALID_STRUCTURE,
                f"python-tuf and trustcheck resolve {path} of {self.name} differently; "
                "nothing was trusted. Please report this as a trustcheck bug",
            )
        return mine

    def walk_all(self) -> list[str]:
        """Every targets role reachable from targets (pre-order), verified; failures skipped."""
        assert self.snapshot_md is not None
        listed = self.snapshot_md.signed.meta
        order: list[str] = []
        self.skipped = []
        stack: list[tuple[str, str]] = [("targets", "root")]
        seen: set[str] = set()
        while stack:
            role, parent = stack.pop()
            if role in seen:
                continue
            seen.add(role)
            try:
                md = self._load_targets(role, parent)
            except NotTrusted as e:
                self.skipped.append({"role": role, "code": e.code, "message": e.message})
                continue
            order.append(role)
            delegations = md.signed.delegations
            if delegations is None:
                continue
            if delegations.roles is not None:
                children = list(delegations.roles)
            elif delegations.succinct_roles is not None:
                succinct = delegations.succinct_roles
                children = sorted(
                    n.removesuffix(".json")
                    for n in listed
                    if succinct.is_delegated_role(n.removesuffix(".json"))
                )
            else:
                children = []
            stack.extend((c, role) for c in reversed(children))
        return order
