"""Standard TUF 1.0 repositories, verified with python-tuf (the reference implementation).

trustcheck reads two dialects of trust data:

* **Notary v1** (Docker Content Trust): ``_type`` ``"Root"``, ``"Targets"``...,
  no ``spec_version``, keys with ``keyval.private`` and ``-x509`` key types;
  verified by :mod:`trustcheck.core.verify`.
* **TUF 1.0** (sigstore's root of trust, TUF-on-CI, python-tuf and go-tuf
  repositories): ``_type`` ``"root"``, ``"targets"``..., ``spec_version``
  ``1.x``, keys with a ``scheme``; verified here.

:func:`~trustcheck.tuf.dialect.detect_dialect` tells them apart from the metadata itself.

How a TUF 1.0 repository is verified (docs/tuf.md)
--------------------------------------------------

1. **python-tuf's** :class:`~tuf.ngclient.Updater` runs the TUF client workflow
   (spec §5: root rotation through ``N.root.json``, timestamp, snapshot,
   targets, the pre-order delegation walk, rollback protection against the
   metadata trusted before, consistent snapshots, length caps) over a
   :class:`~tuf.ngclient.FetcherInterface` reading a local repository folder
   (:mod:`trustcheck.tuf.fetchers`: path checks and size caps as in trustdir.py) or
   over HTTPS (trustcheck's one HTTP stack, :mod:`trustcheck.remote.http`). Its
   ``metadata_dir`` is a
   per-repository folder of the trustcheck state dir (or the caller's
   ``metadata_dir``), so rollback protection holds across runs; each role is
   persisted there as soon as it verifies, as the specification's workflow
   says, after trustcheck's own checks of it (:mod:`trustcheck.tuf.hooks`). The
   validation time (``--at``) is python-tuf's reference time.
2. **trustcheck then re-verifies** what python-tuf trusted, from the files
   python-tuf persisted, with python-tuf's own Metadata API, and adds what
   python-tuf does not check (the same rules as for Notary):

   * thresholds count **distinct public keys**, not key IDs;
   * a key ID must be a **hash of its key** in a form some implementation
     computed (:func:`keyid_is_bound`), or inherited from the root before,
     and never a hash of another listed key (:mod:`trustcheck.tuf.checks`);
   * JSON objects with a **field written twice** are refused;
   * **pins** (``keyid:`` / ``spki-sha256:``) on the root and on signers.

3. Errors of python-tuf are mapped to trustcheck's stable codes with one
   actionable line (:mod:`trustcheck.tuf.errors`); a traceback never reaches a user.

4. Target files (:mod:`trustcheck.tuf.download`) are streamed, capped at the
   signed length, checked against every signed hash and renamed into place.

Real data python-tuf cannot read is handled here: ECDSA keys written as hex
points (:mod:`trustcheck.tuf.keys`) and roots whose ``expires`` python-tuf
cannot parse, walked by trustcheck (:mod:`trustcheck.tuf.legacy`).

python-tuf's ``Updater`` is driven through non-public parts: the reference
time of its trusted set (``--at``) and its persistence methods, all in
:mod:`trustcheck.tuf.hooks`; both fail closed if renamed.

python-tuf is imported lazily, so importing these modules (e.g. for
:func:`~trustcheck.tuf.dialect.detect_dialect`) costs nothing.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustcheck.errors import ErrorCode, NotTrusted
from trustcheck.tuf.fetchers import ClientLimits
from trustcheck.tuf.keys import _describe_key, _sha256_hex, _spki_der, keyid_is_bound
from trustcheck.tuf.report import RefreshResult, RepoReport, TargetEntry, _digest
from trustcheck.tuf.session import _Session, _session

if TYPE_CHECKING:
    from securesystemslib.signer import Key  # type: ignore[attr-defined]
    from tuf.api.metadata import (  # type: ignore[attr-defined]
        Root,
        Targets,
    )

    from trustcheck.api import ImageResult, Options
    from trustcheck.core.thumbprint import KeyReport

__all__ = ["inspect_repository", "keys_of_repository", "refresh", "verify_targets"]


def verify_targets(
    repo: str,
    targets: list[str],
    at: datetime,
    options: Options | None = None,
    *,
    root: bytes | None = None,
    limits: ClientLimits | None = None,
    unsafe_http: bool = False,
    timeout: float = 30.0,
    allow_arbitrary_keyids: bool = False,
) -> list[ImageResult]:
    """Verify the TUF 1.0 repository ``repo`` and look each target path up in it.

    ``repo`` is a local folder (the repository or its ``metadata/`` folder) or
    an https URL of the metadata folder. Trust is bootstrapped from ``root``
    (the bytes of a root.json obtained out of band), else the root trusted
    before (``options.state``), else the repository's own ``root.json`` (trust
    on first use, refused with ``options.no_tofu`` unless a pin applies). A pin
    entry for the repository (``options.pins``, keyed by the URL without a
    trailing ``/`` or by the folder's absolute path) must match the final root
    (``keyid:`` or ``spki-sha256:``).

    Returns one :class:`~trustcheck.api.ImageResult` per target (``image`` =
    the target path, ``gun`` = the repository, ``digest`` = ``sha256:<hex>``,
    ``role`` = the role that signs it, ``signers`` = the delegation chain from
    ``targets`` to that role). Errors of the repository as a whole (e.g. an
    expired timestamp) are every result's error. Usage errors (bad arguments,
    unsafe paths, an unreadable state dir) are raised.
    """
    from trustcheck.api import ImageResult

    results: list[ImageResult] = []
    sess = _session(repo, at, options, root, limits, unsafe_http, timeout, allow_arbitrary_keyids)
    with sess:
        try:
            sess.refresh()
        except NotTrusted as e:
            return [
                ImageResult(
                    image=t,
                    gun=sess.name,
                    tag=None,
                    trusted=False,
                    error=e,
                    warnings=list(sess.warnings),
                )
                for t in targets
            ]
        for path in targets:
            res = ImageResult(image=path, gun=sess.name, tag=None, trusted=False)
            try:
                found, chain = sess.target(path)
            except NotTrusted as e:
                res.error = e
                res.role = e.role
                results.append(res)
                continue
            digest = _digest(found.hashes)
            if digest is None:
                res.error = NotTrusted(
                    ErrorCode.TARGET_MISSING_SHA256,
                    f"{path} in {sess.name} carries no sha256 or sha512 hash, so it cannot be "
                    "named by a digest",
                    role=chain[-1],
                )
                res.role = chain[-1]
                results.append(res)
                continue
            res.trusted = True
            res.digest = digest
            res.length = found.length
            res.role = chain[-1]
            res.signers = chain
            results.append(res)
        sess.commit()
        for r in results:
            r.warnings = list(sess.warnings)
    return results


def inspect_repository(
    repo: str,
    at: datetime,
    options: Options | None = None,
    *,
    root: bytes | None = None,
    limits: ClientLimits | None = None,
    unsafe_http: bool = False,
    timeout: float = 30.0,
    allow_arbitrary_keyids: bool = False,
) -> RepoReport:
    """Verify ``repo`` (as :func:`verify_targets`) and report every role, key and target.

    Every targets role reachable from ``targets`` is loaded (hash-bin roles
    only when the snapshot lists them) and verified with the same checks;
    a role that fails is listed in ``skipped`` with its error code, with the
    roles below it. Raises :class:`~trustcheck.errors.NotTrusted` when the
    top-level roles do not verify.
    """
    sess = _session(repo, at, options, root, limits, unsafe_http, timeout, allow_arbitrary_keyids)
    with sess:
        sess.refresh()
        order = sess.walk_all()
        assert sess.root_md is not None
        root_signed: Root = sess.root_md.signed
        report = RepoReport(
            repository=sess.name,
            spec_version=root_signed.spec_version,
            consistent_snapshot=bool(root_signed.consistent_snapshot),
        )
        report.roles = list(sess.top_infos)
        report.roles.insert(3, sess.loaded["targets"].info)
        report.roles += [sess.loaded[r].info for r in order if r != "targets"]
        report.skipped = sess.skipped
        report.keys = [_key_json(kid, key, roles) for kid, key, roles in _keys(sess, order)]
        effective: dict[str, tuple[str, Any] | None] = {}
        for role in order:
            targets: Targets = sess.loaded[role].md.signed
            for path, tf in targets.targets.items():
                if path not in effective:
                    try:
                        got = sess.find(path)
                    except NotTrusted:
                        got = None
                    effective[path] = (got[1][-1], got[0]) if got is not None else None
                eff = effective[path]
                report.targets.append(
                    TargetEntry(
                        path=path,
                        role=role,
                        length=tf.length,
                        hashes=dict(tf.hashes),
                        effective=eff is not None and eff[0] == role and eff[1] == tf,
                    )
                )
        report.warnings = list(sess.warnings)
        sess.commit()
    return report


def _keys(sess: _Session, order: list[str]) -> list[tuple[str, Key, list[str]]]:
    """(key ID, key, roles) for the root's keys, then each delegation's, in walk order."""
    assert sess.root_md is not None
    root: Root = sess.root_md.signed
    out: dict[tuple[str, str], tuple[str, Key, list[str]]] = {}
    for role in ("root", "targets", "snapshot", "timestamp"):
        for kid in root.roles[role].keyids:
            if kid in root.keys:
                entry = out.setdefault(("root", kid), (kid, root.keys[kid], []))
                entry[2].append(role)
    for role in order:
        targets: Targets = sess.loaded[role].md.signed
        d = targets.delegations
        if d is None:
            continue
        delegated: list[tuple[str, list[str]]] = []
        if d.roles is not None:
            delegated = [(name, r.keyids) for name, r in d.roles.items()]
        elif d.succinct_roles is not None:
            delegated = [(f"{d.succinct_roles.name_prefix}-*", d.succinct_roles.keyids)]
        for name, keyids in delegated:
            for kid in keyids:
                if kid in d.keys:
                    entry = out.setdefault((role, kid), (kid, d.keys[kid], []))
                    entry[2].append(name)
    return list(out.values())


def _key_json(kid: str, key: Key, roles: list[str]) -> dict[str, Any]:
    der = _spki_der(key)
    return {
        "keyid": kid,
        "keytype": key.keytype,
        "scheme": key.scheme,
        "algorithm": _describe_key(key),
        "spki_sha256": _sha256_hex(der) if der is not None else None,
        "keyid_is_hash": keyid_is_bound(key),
        "roles": roles,
    }


def keys_of_repository(
    repo: str,
    at: datetime,
    options: Options | None = None,
    *,
    root: bytes | None = None,
    limits: ClientLimits | None = None,
    unsafe_http: bool = False,
    timeout: float = 30.0,
    allow_arbitrary_keyids: bool = False,
) -> list[KeyReport]:
    """One :class:`~trustcheck.thumbprint.KeyReport` per (role, key) of the verified repository.

    ``key_type`` is the TUF key type, ``key_id`` the TUF key ID, ``spki_sha256``
    the SHA-256 of the DER SubjectPublicKeyInfo (what a ``spki-sha256:`` pin
    names); TUF keys have no canonical notary ID nor certificate.
    """
    from trustcheck.core.thumbprint import KeyReport

    sess = _session(repo, at, options, root, limits, unsafe_http, timeout, allow_arbitrary_keyids)
    with sess:
        sess.refresh()
        order = sess.walk_all()
        reports: list[KeyReport] = []
        for kid, key, roles in _keys(sess, order):
            der = _spki_der(key)
            for role in roles:
                reports.append(
                    KeyReport(
                        gun=sess.name,
                        role=role,
                        key_type=key.keytype,
                        algorithm=_describe_key(key),
                        key_id=kid,
                        canonical_key_id=None,
                        spki_sha256=_sha256_hex(der) if der is not None else None,
                    )
                )
        sess.commit()
    return reports


def refresh(
    repo: str,
    at: datetime | None = None,
    options: Options | None = None,
    *,
    root: bytes | None = None,
    limits: ClientLimits | None = None,
    unsafe_http: bool = False,
    timeout: float = 30.0,
    allow_arbitrary_keyids: bool = False,
    metadata_dir: str | os.PathLike[str] | None = None,
) -> RefreshResult:
    """Refresh the top-level metadata of the TUF 1.0 repository ``repo`` (spec §5.3-5.6).

    Root rotation, timestamp, snapshot and top-level targets, with every
    check of :func:`verify_targets`; each role is persisted as soon as it
    verifies, in ``metadata_dir`` (python-tuf's layout: ``root.json``,
    ``root_history/N.root.json``, ``timestamp.json`` ...) or else the state
    dir of ``options``. ``at`` defaults to now. Raises
    :class:`~trustcheck.errors.NotTrusted` when the refresh fails (the roles
    verified before the failure stay trusted) and
    :class:`~trustcheck.errors.UsageError` on bad input.
    """
    when = at if at is not None else datetime.now(UTC)
    sess = _Session(
        repo,
        when,
        options,
        root,
        limits if limits is not None else ClientLimits(),
        unsafe_http,
        timeout,
        allow_arbitrary_keyids,
        Path(metadata_dir) if metadata_dir is not None else None,
    )
    with sess:
        sess.refresh()
        result = RefreshResult(sess.name, roles=list(sess.top_infos))
        result.roles.insert(3, sess.loaded["targets"].info)
        result.warnings = list(sess.warnings)
        sess.commit()
    return result
