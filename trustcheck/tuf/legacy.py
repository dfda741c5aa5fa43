"""Roots python-tuf cannot parse (an ``expires`` format it refuses), found in real
repositories (sigstore's first roots): walked and verified by trustcheck itself."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from trustcheck.errors import ErrorCode, NotTrusted, TrustcheckError
from trustcheck.tuf.checks import KeyChecks
from trustcheck.tuf.dialect import _DuplicateField, _no_constants, _no_duplicates, _parse
from trustcheck.tuf.errors import _map_error
from trustcheck.tuf.keys import _spki_der, keyid_is_bound, public_key_identity

if TYPE_CHECKING:
    from tuf.api.metadata import (  # type: ignore[attr-defined]
        Root,
    )


@dataclass(slots=True)
class _LegacyRoot:
    """A root python-tuf cannot parse (``expires`` format), verified by trustcheck itself."""

    signed: Root
    signed_bytes: bytes  # the canonical JSON of "signed" as written (what was signed)
    sigs: dict[str, str]
    raw: bytes
    expires_text: str


def copy_json(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def _parse_lenient(data: bytes, where: str, repo: str) -> dict[str, Any]:
    try:
        doc = json.loads(
            data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constants
        )
    except _DuplicateField as e:
        raise NotTrusted(
            "invalid-structure", f"{where} writes the field {str(e)[:60]!r} twice", role="root"
        ) from e
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise NotTrusted("malformed-json", f"{where} is not valid JSON ({e})", role="root") from e
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("signed"), dict)
        or not isinstance(doc.get("signatures"), list)
    ):
        raise NotTrusted("invalid-structure", f"{where} is not signed TUF metadata", role="root")
    return doc


class LegacyRoots(KeyChecks):
    """Root rotations through roots python-tuf cannot parse."""

    def _unreadable_root_keys(self, data: bytes, err: TrustcheckError) -> TrustcheckError:
        """``err``, or a truer one when root keys of the bootstrap root cannot be read."""
        try:
            md = _parse(data, "root.json", self.name)
            root = md.signed
            kids = list(root.roles["root"].keyids)
            keys = [(k, root.keys[k]) for k in kids if k in root.keys]
        except Exception:  # not even a root: python-tuf's error stands
            return err
        bad = [
            (k, key) for k, key in keys if keyid_is_bound(key) is not None and not _spki_der(key)
        ]
        if not bad:
            return err
        kid, key = bad[0]
        return NotTrusted(
            ErrorCode.THRESHOLD_NOT_MET,
            f"{self.ctx.root_origin}: {len(bad)} of its {len(kids)} root keys (e.g. "
            f"{kid[:16]}…, {key.keytype}) hold a public key trustcheck cannot read (neither PEM "
            "nor a hex point), so their signatures cannot be checked; the root may be genuine "
            "but written for another client. Get a root.json whose keys are PEM",
            role="root",
        )

    def _walk_legacy_roots(self, bootstrap: bytes) -> bytes:
        """Walk the roots whose ``expires`` python-tuf cannot parse; return the first it can.

        go-tuf 0.x wrote ``expires`` with fractional seconds and UTC offsets
        (sigstore root v1: ``2021-12-18T13:28:12.99008-06:00``, v2 and v3:
        nanoseconds), which python-tuf's parser refuses although the roots
        are genuine. trustcheck verifies such a prefix of the chain itself,
        by the rules of spec §5.3.4-5.3.5 (each ``N+1.root.json`` signed by
        a threshold of distinct root keys of root N and of its own, version
        exactly N+1, key IDs as everywhere), persists each verified root in
        ``root_history/``, and bootstraps python-tuf from the first root it
        can parse. The expiry of a root that is not the final one does not
        matter (§5.3.10 checks the final root only).
        """
        if not self._legacy_expires(bootstrap):
            return bootstrap
        current = self._legacy_root(bootstrap, self.ctx.root_origin)
        self._distinct_legacy(current, current, "root", self.ctx.root_origin, "threshold-not-met")
        from tuf.api.exceptions import DownloadError, DownloadHTTPError

        while True:
            version = current.signed.version + 1
            name = f"{version}.root.json"
            self.loc.recorder.last_name = name
            try:
                data = self.loc.fetcher.download_bytes(
                    self.loc.base_url + name, self.limits.root_max_length
                )
            except DownloadHTTPError as e:
                if e.status_code in (403, 404):
                    raise NotTrusted(
                        ErrorCode.INVALID_EXPIRES,
                        f"root v{current.signed.version} of {self.name} is the newest root and "
                        f"its expires ({current.expires_text!r}) has a format python-tuf "
                        "cannot parse (fractional seconds or a UTC offset); a TUF 1.0 client "
                        "cannot use it as its final root. Bootstrap from a newer root",
                        role="root",
                    ) from e
                raise _map_error(e, self.ctx) from e
            except DownloadError as e:
                raise _map_error(e, self.ctx) from e
            where = f"{name} from {self.name}"
            new = self._legacy_root(data, where)
            if new.signed.version != version:
                raise NotTrusted(
                    ErrorCode.ROOT_ROTATION_INVALID,
                    f"{where} holds root v{new.signed.version}, not v{version}: it may be an "
                    "old root replayed. Verify the current root out of band",
                    role="root",
                )
            against = f"{where} against root v{current.signed.version}"
            self._distinct_legacy(current, new, "root", against, "root-rotation-invalid")
            self._distinct_legacy(new, new, "root", f"{where} itself", "root-rotation-invalid")
            self._persist_legacy(version - 1, current.raw)
            if not self._legacy_expires(data):
                return data
            current = new

    @staticmethod
    def _legacy_expires(data: bytes) -> bool:
        """Whether ``data`` is a root python-tuf refuses only for its ``expires`` format."""
        try:
            doc = json.loads(data.decode("utf-8"))
            expires = doc["signed"]["expires"]
        except (UnicodeDecodeError, ValueError, RecursionError, KeyError, TypeError):
            return False
        if not isinstance(expires, str) or doc["signed"].get("_type") != "root":
            return False
        try:
            datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            pass
        else:
            return False
        try:
            datetime.fromisoformat(expires.replace("Z", "+00:00"))
        except ValueError:
            return False
        return True

    def _legacy_root(self, data: bytes, where: str) -> _LegacyRoot:
        from securesystemslib.formats import encode_canonical
        from tuf.api.metadata import Root  # type: ignore[attr-defined]

        md = _parse_lenient(data, where, self.name)
        signed = md["signed"]
        try:
            canonical = encode_canonical(signed)
            expires_text = signed["expires"]
            fixed = dict(signed)
            when = datetime.fromisoformat(str(expires_text).replace("Z", "+00:00"))
            fixed["expires"] = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            root = Root.from_dict(copy_json(fixed))
            sigs = {
                s["keyid"]: s["sig"]
                for s in md["signatures"]
                if isinstance(s, dict) and isinstance(s.get("keyid"), str)
            }
        except Exception as e:  # any malformed root: data, not a crash
            raise NotTrusted(
                ErrorCode.INVALID_STRUCTURE,
                f"{where} is not a TUF 1.0 root ({type(e).__name__}: {str(e)[:120]})",
                role="root",
            ) from e
        if not isinstance(canonical, str):
            raise NotTrusted("invalid-structure", f"{where} cannot be canonicalised", role="root")
        return _LegacyRoot(root, canonical.encode("utf-8"), sigs, data, str(expires_text))

    def _distinct_legacy(
        self, delegator: _LegacyRoot, md: _LegacyRoot, role: str, where: str, code: str
    ) -> None:
        from securesystemslib.signer import Signature  # type: ignore[attr-defined]

        root = delegator.signed
        self._check_keyids(
            {k: root.keys[k] for k in root.roles[role].keyids if k in root.keys}, where, role, root
        )
        seen: set[str] = set()
        for kid in root.roles[role].keyids:
            key = root.keys.get(kid)
            sig = md.sigs.get(kid)
            if key is None or not isinstance(sig, str):
                continue
            try:
                key.verify_signature(Signature(kid, sig), md.signed_bytes)
            except Exception:  # an invalid or unverifiable signature does not count
                continue
            seen.add(public_key_identity(key))
        threshold = root.roles[role].threshold
        if len(seen) < threshold:
            raise NotTrusted(
                code,
                f"{where}: signed by {len(seen)} of the {threshold} distinct root keys required; "
                "it was altered or is not a genuine root. Get a genuine root.json out of band",
                role="root",
            )

    def _persist_legacy(self, version: int, data: bytes) -> None:
        from trustcheck.local.fsutil import atomic_write

        try:
            atomic_write(self.ws.dir / "root_history" / f"{version}.root.json", data, mode=0o600)
        except OSError as e:
            raise _map_error(e, self.ctx) from e
