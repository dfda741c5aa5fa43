"""trustcheck's checks on top of python-tuf's, run before python-tuf persists a
role: thresholds over distinct public keys, key IDs bound to their keys,
fields written twice, signer pins."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trustcheck.errors import ErrorCode, NotTrusted
from trustcheck.tuf.base import SessionBase, _Refused
from trustcheck.tuf.dialect import _parse
from trustcheck.tuf.errors import _map_error
from trustcheck.tuf.keys import (
    _expected_keyid,
    _identifiers,
    _keyid_forms,
    _spki_der,
    keyid_is_bound,
    public_key_identity,
)
from trustcheck.tuf.report import _label

if TYPE_CHECKING:
    from securesystemslib.signer import Key  # type: ignore[attr-defined]
    from tuf.api.metadata import (  # type: ignore[attr-defined]
        Metadata,
        Root,
        Targets,
    )

    from trustcheck.core.identity import Identifier


class KeyChecks(SessionBase):
    """The checks run on each role before it is persisted."""

    def check_persist_root(self, version: int, data: bytes, bootstrap: bool) -> None:
        """trustcheck's checks of a root python-tuf verified, before it is persisted.

        The root before it (``root_history/N-1.root.json``, persisted the same
        way) must be satisfied by distinct keys, and so must the new root
        itself; key IDs must be bound to their keys.
        """
        from tuf.api.metadata import Root  # type: ignore[attr-defined]

        name = f"{version}.root.json"
        md = _parse(data, name, self.name)
        if not isinstance(md.signed, Root):
            raise NotTrusted("wrong-type", f"{name} of {self.name} is not a root", role="root")
        if bootstrap:
            self._distinct(md.signed, "root", md)
            return
        prev = _parse(self._read_ws(f"root_history/{version - 1}.root.json"), name, self.name)
        if not isinstance(prev.signed, Root):
            raise NotTrusted("wrong-type", f"a root of {self.name} is not a root", role="root")
        against = f"{name} against root v{prev.signed.version}"
        self._distinct(prev.signed, "root", md, code="root-rotation-invalid", context=against)
        itself = f"{name} itself"
        self._distinct(md.signed, "root", md, code="root-rotation-invalid", context=itself)

    def check_persist(self, role: str, data: bytes, delegator: Root | Targets) -> None:
        """trustcheck's checks of a role python-tuf verified, before it is persisted."""
        md = _parse(data, f"{role}.json", self.name)
        pins = self.pin.signers.get(role) if self.pin is not None else None
        self._distinct(delegator, role, md, signer_pins=pins)

    def _bindings_for(self, root: Root) -> dict[str, str]:
        """Key ID -> public key identity accepted in ``root``: bound by a hash, or the same
        key under the same ID in the root trusted before it (see :meth:`_bind`)."""
        cached = self._bindings.get(root.version)
        if cached is not None:
            return cached
        # the roots before it that this state holds, oldest first
        lowest = root.version
        while lowest - 1 >= 1 and lowest - 1 not in self._bindings and lowest > root.version - 1024:
            if not (self.ws.dir / "root_history" / f"{lowest - 1}.root.json").is_file():
                break
            lowest -= 1
        inherited = self._bindings.get(lowest - 1, {})
        for v in range(lowest, root.version):
            try:
                older = _parse(self._read_ws(f"root_history/{v}.root.json"), f"{v}.root.json", "")
            except NotTrusted:
                inherited = {}
                continue
            inherited = self._bind(older.signed, inherited)
            self._bindings[v] = inherited
        got = self._bind(root, inherited)
        self._bindings[root.version] = got
        return got

    @staticmethod
    def _bind(root: Any, inherited: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        keys = getattr(root, "keys", None)
        if not isinstance(keys, dict):
            return out
        for kid, key in keys.items():
            ident = public_key_identity(key)
            if keyid_is_bound(key) is not False or inherited.get(kid) == ident:
                out[kid] = ident
        return out

    def _check_keyids(
        self, keys: dict[str, Key], where: str, role: str, delegator: Root | Targets
    ) -> None:
        """The key IDs a role's threshold is counted with (docs/tuf.md, "Key IDs").

        * A key ID that is a hash of *another* key the delegating role lists
          is refused, always: one key posing under another's name misleads
          every tool and pin that trusts key IDs.
        * A key ID that is a hash of its key in any form an implementation
          computed (:func:`keyid_is_bound`) is accepted.
        * So is a key ID a root trusted before bound to the same public key
          (sigstore root v11 lists its online key under the ID of root v10's
          copy, whose ``x-tuf-on-ci-online-uri`` annotation it then edited).
        * Anything else needs ``--unsafe-arbitrary-keyids`` (TAP 12 free-form
          IDs); thresholds count distinct public keys either way.
        """
        from tuf.api.metadata import Root as RootCls  # type: ignore[attr-defined]

        if isinstance(delegator, RootCls):
            listed: dict[str, Key] = dict(delegator.keys)
            accepted = self._bindings_for(delegator)
        else:
            d = delegator.delegations
            listed = dict(d.keys) if d is not None else {}
            accepted = {}
        for kid, key in keys.items():
            ident = public_key_identity(key)
            for other_id, other in listed.items():
                if other_id == kid or public_key_identity(other) == ident:
                    continue
                if kid in _keyid_forms(other):
                    raise _Refused(
                        "invalid-key-id",
                        f"{where} of {self.name}: key ID {kid[:16]}… is the hash of another key "
                        f"it lists (listed as {other_id[:16]}…) but names a different key: one "
                        "key poses as another. The metadata is forged or broken; do not use it",
                        role=role,
                    )
            bound = keyid_is_bound(key)
            if bound is None or bound or accepted.get(kid) == ident:
                continue
            if self.allow_arbitrary_keyids:
                if kid not in self._warned_keyids:
                    self._warned_keyids.add(kid)
                    self.warnings.append(
                        f"{where}: key ID {kid[:16]}… is not a hash of its key "
                        "(accepted: --unsafe-arbitrary-keyids); keyid: pins cannot match it"
                    )
                continue
            raise _Refused(
                "invalid-key-id",
                f"{where} of {self.name}: key ID {kid[:16]}… is not a hash of its key in any "
                f"form TUF implementations compute ({key.keytype}/{key.scheme}; expected e.g. "
                f"{_expected_keyid(key)[:16]}…), nor bound to it by a root trusted before. If "
                "the repository uses free-form key IDs (TAP 12), pass --unsafe-arbitrary-keyids",
                role=role,
            )

    def _distinct(
        self,
        delegator: Root | Targets,
        role: str,
        md: Metadata[Any],
        *,
        code: str = "threshold-not-met",
        context: str = "",
        signer_pins: list[Identifier] | None = None,
    ) -> list[str]:
        """Key IDs of valid signatures, one per distinct public key; >= threshold or raise.

        python-tuf's ``get_verification_result`` finds the valid signatures of
        the keys the delegating role lists; they are grouped by public key
        (:func:`public_key_identity`) and the groups are counted. With
        ``signer_pins`` (a ``signers`` pin for this role) only keys matching a
        pin count, and a role none of whose keys matches is
        ``signer-pin-mismatch``.
        """
        from tuf.api.exceptions import UnsignedMetadataError

        result = delegator.get_verification_result(role, md.signed_bytes, md.signatures)
        threshold = result.threshold
        where = f"the {role} keys of {_label(delegator)}"
        self._check_keyids(result.signed | result.unsigned, where, role, delegator)
        pinned = set(signer_pins) if signer_pins is not None else None
        if pinned is not None:
            listed = [*result.signed.values(), *result.unsigned.values()]
            if not any(_identifiers(key) & pinned for key in listed):
                from trustcheck.core.identity import describe

                raise _Refused(
                    "signer-pin-mismatch",
                    f"no key of {role} in {self.name} matches its signer pin "
                    f"({describe(pinned)}): the delegating role now lists other keys for it. "
                    "Check with the signer, then update signers in the pin file",
                    role=role,
                )
        by_key: dict[str, list[str]] = {}
        for kid, key in result.signed.items():
            if pinned is not None and not (_identifiers(key) & pinned):
                continue
            by_key.setdefault(public_key_identity(key), []).append(kid)
        if len(by_key) >= threshold:
            return [kids[0] for kids in by_key.values()]
        prefix = f"{context}: " if context else ""
        if not result.verified:
            unloadable = [
                kid
                for kid, key in result.unsigned.items()
                if keyid_is_bound(key) is not None and _spki_der(key) is None
            ]
            if unloadable:
                # a genuine root can fail only because its key material cannot be read
                raise NotTrusted(
                    ErrorCode.ROOT_ROTATION_INVALID if code == "root-rotation-invalid" else code,
                    f"{prefix}{role} of {self.name} ({_label(delegator)}) is signed by "
                    f"{len(result.signed)} of the {threshold} keys required, and "
                    f"{len(unloadable)} of its {role} keys (e.g. {unloadable[0][:16]}…, "
                    f"{result.unsigned[unloadable[0]].keytype}) hold a public key trustcheck "
                    "cannot read (neither PEM nor a hex point), so their signatures cannot be "
                    "checked; the metadata may be genuine but written for another client",
                    role=role,
                )
            # python-tuf refuses this too; same wording as its error
            err = _map_error(
                UnsignedMetadataError(
                    f"{role} was signed by {len(result.signed)}/{threshold} keys"
                ),
                self.ctx,
            )
            if code == "root-rotation-invalid":
                raise NotTrusted(code, f"{prefix}{err.message}", role="root")
            raise err
        shared = [kids for kids in by_key.values() if len(kids) > 1]
        if shared:
            detail = "key IDs " + " and ".join(k[:12] + "…" for k in shared[0])
            detail += " are one public key; python-tuf counts key IDs, trustcheck counts keys"
        else:
            detail = "signatures by keys that match no signer pin do not count"
        raise _Refused(
            code,
            f"{prefix}{role}.json of {self.name} is signed by {len(by_key)} distinct public "
            f"key(s) of the {threshold} required ({detail}). The repository must sign with "
            f"{threshold} different keys",
            role=role,
        )
