"""Fetch trust data from a Notary server, verify it, cache it: notary's update flow.

For one GUN (:func:`fetch_collection`), as notary's client does
(notary-v1-spec.md §3, §4.5, §7):

1. ``GET /v2/`` (token auth on a 401 challenge).  An unreachable server
   (network error, timeout, 5xx) means *offline*: the cache is used, with a
   warning, as far as it is valid.
2. root: the cached ``root.json``; with none, ``root.json`` from the server
   (trust on first use, or the pin).
3. ``timestamp.json`` always (1 MiB cap).  On 404, 5xx or a network error the
   cached timestamp is used with a warning (it must still be unexpired).  On
   401/403 the fetch fails with ``auth-failed`` (never a silent fallback,
   notary#1103); ``--offline`` is the explicit way to use the cache.  A
   validation error never falls back.
4. snapshot, targets and delegations: the cached file when its bytes match the
   hashes the parent gives; else ``<role>.<sha256>.json`` (plain
   ``<role>.json`` when the parent gives no sha256), capped at the parent's
   length.
5. The verifier (:func:`trustcheck.core.verify.verify_collection`, driving a
   :class:`~trustcheck.core.trusted_set.TrustedSet`) checks all of it with the
   policy :mod:`trustcheck.local.session` assembles, as for
   :func:`trustcheck.api.load_collection`.  If it fails, and the session's
   rules allow it, the root is updated once as notary's ``Update()`` does:
   ``root.<sha256>.json`` named by the snapshot (or ``root.json``), verified as
   a rotation from the root trusted so far (walking ``<N>.root.json``), then
   everything is verified again.
6. Only after success are the verified bytes written into the trust dir
   (``tuf/<GUN>/metadata/<role>.json``, delegations nested), each atomically.
   Nothing in the trust dir changes when anything fails.

This module decides no trust: it tells the verifier which cached copy the
served bytes replace (:meth:`RemoteSource.replaced`); the trusted set makes
its version a floor when it still verifies with the cached root (or the parent
role), as notary's "old builder" does: the server cannot roll the cache back.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from trustcheck.api import Options, load_collection
from trustcheck.core.model import FileMeta, parse_snapshot, parse_timestamp
from trustcheck.core.roles import MAX_DOWNLOAD_SIZE, is_versioned_root
from trustcheck.core.trusted_set import TrustPolicy, hashes_match
from trustcheck.core.verify import Collection, verify_collection
from trustcheck.errors import ErrorCode, NotTrusted, TrustcheckError, UsageError
from trustcheck.local.session import (
    TrustSession,
    retry_policy,
    should_update_root,
    trust_session,
)
from trustcheck.local.trustdir import TrustDir
from trustcheck.remote.auth import credentials_key
from trustcheck.remote.http import (
    Deadline,
    Endpoint,
    HttpSession,
    RemoteConfig,
    RemoteError,
    error_detail,
    select_server,
)

__all__ = [
    "RemoteConfig",
    "RemoteSource",
    "fetch_collection",
    "fetch_many",
    "select_server",
]

#: Remote failures after which the cached timestamp is used (never 401/403).
_FALLBACK_CODES = frozenset({"network-error", "server-timeout", "server-error"})


#: characters of a GUN left as they are in a URL path (the rest is %-encoded)
_PATH_SAFE = "/:@"


def _gun_scope(gun: str) -> str:
    return f"repository:{gun}:pull"


class RemoteSource:
    """A :class:`trustcheck.core.verify.Source` that reads a Notary server through the cache.

    The verifier asks for roles in notary's order; the source answers each one
    from the cache when its bytes match the hash the (already served) parent
    gives, and downloads it otherwise.  It never decides trust: every byte it
    serves is verified by the verifier.
    """

    def __init__(
        self,
        gun: str,
        trust_dir: TrustDir,
        endpoint: Endpoint,
        deadline: Deadline,
        warnings: list[str],
    ) -> None:
        self.gun = gun
        self.trust_dir = trust_dir
        self.endpoint = endpoint
        self.deadline = deadline
        self.warnings = warnings
        #: why the cache stood in for the server (see Collection.cache_fallback)
        self.fallbacks: list[str] = []
        #: the roles actually requested from the server, in order (for tests and -v)
        self.downloaded: list[str] = []
        self.root_raw = b""
        self._served: dict[str, bytes] = {}
        #: cached copies the bytes served for a role replaced (see :meth:`replaced`)
        self._replaced: dict[str, bytes] = {}
        self._snapshot_meta: dict[str, FileMeta] | None = None
        #: downloads whose bytes matched the hash in their URL (safe to reuse)
        self._memo: dict[str, bytes] = {}
        self.offline: RemoteError | None = None
        #: the verifier got past the root (it asked for the timestamp)
        self.root_verified = False
        #: what the trust dir held for each role looked at (None: nothing usable)
        self.seen_in_cache: dict[str, bytes | None] = {}
        #: the GUN has no folder in the trust dir (a first fetch): nothing to read, so
        #: no role is looked up there (each lookup resolves the path beneath the trust
        #: dir: an eighth of a cold 100-collection fetch). Writing it back still goes
        #: through TrustDir.write_roles and its checks.
        self._nothing_cached = not os.path.lexists(trust_dir.metadata_dir(gun))

    # --- set-up per attempt ----------------------------------------------------------

    def start(self, root_raw: bytes) -> None:
        self.root_raw = root_raw
        self._served = {}
        self._replaced = {}
        self._snapshot_meta = None
        self.root_verified = False

    # --- helpers ---------------------------------------------------------------------

    def _what(self, name: str) -> str:
        return f"{name}.json of {self.gun}"

    def cached(self, role: str, cap: int) -> bytes | None:
        """The cached bytes of ``role``, or None (missing, or larger than ``cap``)."""
        if self._nothing_cached:
            self.seen_in_cache[role] = None
            return None
        try:
            raw = self.trust_dir.read_role(self.gun, role, cap)
        except NotTrusted:
            raw = None
        self.seen_in_cache[role] = raw
        return raw

    def download(self, name: str, cap: int, role: str) -> bytes | None:
        """``GET <name>.json`` (None on 404)."""
        memo = self._memo.get(name)
        if memo is not None:
            return memo
        if self.offline is not None:
            raise self.offline.copy(
                f"cannot download {self._what(name)}: {self.offline.message}", role=role
            )
        self.downloaded.append(name)
        ans = self.endpoint.request(
            "GET",
            f"/v2/{quote(self.gun, safe=_PATH_SAFE)}/_trust/tuf/{quote(name, safe='/')}.json",
            scope=_gun_scope(self.gun),
            cap=cap,
            deadline=self.deadline,
            what=f"{self._what(name)} from {self.endpoint.base}",
            role=role,
        )
        if ans.status == 404:
            return None
        if ans.status != 200:
            raise RemoteError(
                ErrorCode.SERVER_ERROR,
                f"{self.endpoint.base} answered HTTP {ans.status} for {self._what(name)}"
                + error_detail(ans.body),
                status=ans.status,
                role=role,
            )
        return ans.body

    def _expected(self, role: str) -> FileMeta | None:
        try:
            if role == "snapshot":
                ts = self._served.get("timestamp")
                return parse_timestamp(ts).meta.get("snapshot") if ts is not None else None
            if self._snapshot_meta is None:
                snap = self._served.get("snapshot")
                if snap is None:
                    return None
                self._snapshot_meta = parse_snapshot(snap).meta
            return self._snapshot_meta.get(role)
        except NotTrusted:
            return None

    # --- the Source protocol ---------------------------------------------------------

    def read(self, role: str, cap: int) -> bytes | None:
        if role == "root":
            return self.root_raw
        if is_versioned_root(role):
            raw = self.download(role, cap, "root")
            return raw
        if role == "timestamp":
            self.root_verified = True
            raw = self._read_timestamp(cap)
        else:
            raw = self._read_checked(role, cap)
        self._served[role] = raw
        return raw

    def replaced(self, role: str) -> bytes | None:
        """The cached copy of ``role`` the bytes just served replace (the verifier
        decides whether it is a rollback floor); None when the cache was used."""
        return self._replaced.pop(role, None)

    def _read_timestamp(self, cap: int) -> bytes:
        cached = self.cached("timestamp", cap)
        try:
            raw = self.download("timestamp", cap, "timestamp")
            failure: RemoteError | None = None
            if raw is None:
                failure = RemoteError(
                    ErrorCode.SERVER_ERROR,
                    f"{self.endpoint.base} has no timestamp.json for {self.gun} (HTTP 404)",
                    status=404,
                    role="timestamp",
                )
        except RemoteError as e:
            if e.code not in _FALLBACK_CODES:
                raise
            raw, failure = None, e
        if raw is not None:
            if cached is not None and cached != raw:
                self._replaced["timestamp"] = cached
            return raw
        assert failure is not None
        if cached is None:
            if failure.status == 404:
                raise NotTrusted(
                    ErrorCode.ROLE_MISSING,
                    f"the notary server {self.endpoint.base} has no timestamp.json for "
                    f"{self.gun} and none is cached",
                    role="timestamp",
                )
            raise failure.copy(
                f"{failure.message}; no cached timestamp to fall back on", role="timestamp"
            )
        message = (
            f"could not download timestamp.json of {self.gun} ({failure.message}); using the "
            "cached timestamp"
        )
        self.warnings.append(message)
        self.fallbacks.append(message)
        return cached

    def _read_checked(self, role: str, cap: int) -> bytes:
        expected = self._expected(role)
        cached = self.cached(role, cap)
        if cached is not None and expected is not None and hashes_match(cached, expected):
            return cached
        sha = expected.sha256_hex() if expected is not None else None
        name = f"{role}.{sha}" if sha else role
        if self.offline is not None:
            raise self.offline.copy(
                f"cannot download {self._what(name)} ({self.offline.message}) and the cached "
                "copy is missing or out of date",
                role=role,
            )
        raw = self.download(name, cap, role)
        if raw is None:
            raise NotTrusted(
                ErrorCode.ROLE_MISSING,
                f"the notary server {self.endpoint.base} has no {name}.json for {self.gun} "
                "(HTTP 404)",
                role=role,
            )
        if cached is not None:
            self._replaced[role] = cached
        if sha and expected is not None and hashes_match(raw, expected):
            self._memo[name] = raw
        return raw

    def new_root(self) -> bytes | None:
        """The root a failed update should retry with: ``root.<sha256>.json`` named
        by the last snapshot, else ``root.json``; None when it is the root just used."""
        expected = self._expected("root") if "snapshot" in self._served else None
        if expected is not None and hashes_match(self.root_raw, expected):
            return None
        cap = MAX_DOWNLOAD_SIZE
        sha = expected.sha256_hex() if expected is not None else None
        if expected is not None:
            cached = self.cached("root", min(expected.length, cap))
            if cached is not None and hashes_match(cached, expected) and cached != self.root_raw:
                return cached
            cap = min(max(expected.length, 0), cap)
        name = f"root.{sha}" if sha else "root"
        raw = self.download(name, cap, "root")
        if raw is None:
            raise NotTrusted(
                ErrorCode.ROLE_MISSING,
                f"the notary server {self.endpoint.base} has no {name}.json for {self.gun}",
                role="root",
            )
        return None if raw == self.root_raw else raw


def _update(
    gun: str,
    td: TrustDir,
    at: datetime,
    session: TrustSession,
    endpoint: Endpoint,
    deadline: Deadline,
) -> tuple[Collection, dict[str, bytes | None]]:
    """notary's update for one GUN: the verified collection and what the trust
    dir held for each role looked at.

    The network side only: which bytes to get and from where.  Whom to trust
    (previous root, floors, whether and against what the root update retries)
    is :mod:`trustcheck.local.session`'s; every rule is the trusted set's.
    A retry starts a new trusted set from the same floors; the cached copies the
    server replaces are handed to it again, so their floors hold in both.
    """
    warnings: list[str] = []
    source = RemoteSource(gun, td, endpoint, deadline, warnings)
    ping = endpoint.ping(deadline)
    if ping.offline is not None:
        source.offline = ping.offline
        message = (
            f"the notary server {endpoint.base} cannot be reached ({ping.offline.message}); "
            "using the cached trust data"
        )
        warnings.append(message)
        source.fallbacks.append(message)
    cached_root = source.cached("root", MAX_DOWNLOAD_SIZE)
    if cached_root is not None:
        root1, from_cache = cached_root, True
    else:
        if source.offline is not None:
            raise source.offline.copy(
                f"no trust data for {gun} in the trust dir and the notary server cannot be "
                f"reached: {source.offline.message}",
                role="root",
            )
        got = source.download("root", MAX_DOWNLOAD_SIZE, "root")
        if got is None:
            raise NotTrusted(
                ErrorCode.NO_TRUST_DATA,
                f"the notary server {endpoint.base} has no trust data for {gun} "
                "(root.json: HTTP 404); is the repository signed?",
            )
        root1, from_cache = got, False
    policy: TrustPolicy = session.with_cached_root(cached_root)
    source.start(root1)
    try:
        col = verify_collection(gun, source, at, policy)
    except NotTrusted as first:
        if not should_update_root(
            first,
            remote=isinstance(first, RemoteError),
            offline=source.offline is not None,
            root_verified=source.root_verified,
            root_from_cache=from_cache,
        ):
            raise
        new_root = source.new_root()
        if new_root is None:
            raise
        retry = retry_policy(
            policy,
            first,
            root_verified=source.root_verified,
            root_from_cache=from_cache,
            tried_root=root1,
            state_root=session.state_root,
        )
        source.start(new_root)
        col = verify_collection(gun, source, at, retry)
    col.warnings[0:0] = warnings
    col.cache_fallback = source.fallbacks[0] if source.fallbacks else None
    return col, source.seen_in_cache


def _write_back(
    td: TrustDir, gun: str, col: Collection, seen: Mapping[str, bytes | None]
) -> list[str]:
    """Write the verified roles into the trust dir (notary's layout); return the
    roles written.

    Each file is replaced atomically (temporary file in the same folder,
    renamed within that folder's handle; root.json fsynced first), in
    notary's order (root first), by :meth:`TrustDir.write_roles`: no folder
    swapped for a symlink can redirect a write out of the trust dir.  Files
    already holding the same bytes (``seen`` records what the trust dir held
    when it was read) are left alone.
    """
    files: list[tuple[str, bytes]] = [
        ("root", col.root_raw),
        ("timestamp", col.timestamp.raw),
        ("snapshot", col.snapshot.raw),
    ]
    files += [(name, meta.raw) for name, meta in col.targets.items()]
    metadata = td.metadata_dir(gun)
    todo: list[tuple[str, bytes]] = []
    for role, data in files:
        if role in seen:
            if seen[role] == data:
                continue
        else:
            try:
                if td.read_role(gun, role, len(data)) == data:
                    continue
            except NotTrusted:
                pass
        todo.append((role, data))
    try:
        # beneath directory handles: no symlink swapped in can redirect a write
        td.write_roles(gun, todo)
    except OSError as e:
        where = e.filename if isinstance(e.filename, str) else str(metadata)
        raise UsageError(
            ErrorCode.TRUST_DIR_UNWRITABLE,
            f"cannot write {where}: {e.strerror or type(e).__name__}; the trust data was "
            "verified but not (completely) cached; the next fetch repairs it",
        ) from e
    return [role for role, _data in todo]


def fetch_collection(
    gun: str,
    trust_dir: TrustDir | Path,
    at: datetime,
    options: Options | None = None,
    remote: RemoteConfig | None = None,
    env: Mapping[str, str] | None = None,
    *,
    session: HttpSession | None = None,
) -> Collection:
    """Fetch ``gun`` from its Notary server, verify it at ``at``, cache it.

    ``options`` are the ones :func:`trustcheck.api.load_collection` takes (pins,
    state store, no-tofu, delegation certificate policy); the state is read and
    recorded under the GUN's lock, exactly as there.  With ``remote.offline``
    nothing is requested: the trust dir is verified as it is.  ``session``
    shares connections and tokens between calls (see :func:`fetch_many`).
    """
    opts = options if options is not None else Options()
    cfg = remote if remote is not None else RemoteConfig()
    td = trust_dir if isinstance(trust_dir, TrustDir) else TrustDir(Path(trust_dir))
    td.metadata_dir(gun)  # validates the GUN before anything else
    if cfg.offline:
        return load_collection(td, gun, at, opts)
    own = session is None
    sess = session if session is not None else HttpSession(cfg, env)
    try:
        base_url = select_server(gun, sess.remote, sess.env)
        endpoint = sess.endpoint(base_url, credentials_key(gun.split("/", 1)[0]), "notary server")
        deadline = Deadline(sess.remote.total_timeout)
        with trust_session(gun, opts) as trust:
            col, seen = _update(gun, td, at, trust, endpoint, deadline)
            _write_back(td, gun, col, seen)
            trust.record(col)
        return col
    finally:
        if own:
            sess.close()


def _internal_error(gun: str, exc: Exception) -> NotTrusted:
    """The per-GUN result of an unexpected exception (fail closed)."""
    text = str(exc).strip().splitlines()
    detail = text[0][:200] if text else ""
    return NotTrusted(
        ErrorCode.INTERNAL_ERROR,
        f"unexpected {type(exc).__name__} while fetching {gun}"
        + (f": {detail}" if detail else "")
        + "; nothing was trusted for it (a bug: please report it)",
    )


def fetch_many(
    guns: Sequence[str],
    trust_dir: TrustDir | Path,
    at: datetime,
    options: Options | None = None,
    remote: RemoteConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Collection | TrustcheckError]:
    """:func:`fetch_collection` for many GUNs at once (``remote.concurrency``),
    sharing one HTTP session (connections, pings, tokens).

    Returns one entry per distinct GUN, in the order given: the collection or
    the error.  ``progress(done, total)`` is called from the calling thread.
    """
    cfg = remote if remote is not None else RemoteConfig()
    td = trust_dir if isinstance(trust_dir, TrustDir) else TrustDir(Path(trust_dir))
    unique = list(dict.fromkeys(guns))
    results: dict[str, Collection | TrustcheckError] = {}
    total = len(unique)
    if total == 0:
        return results
    if cfg.offline:
        for done, gun in enumerate(unique, start=1):
            try:
                results[gun] = fetch_collection(gun, td, at, options, cfg, env)
            except TrustcheckError as e:
                results[gun] = e
            except Exception as e:  # a bug costs this GUN its result, never the others'
                results[gun] = _internal_error(gun, e)
            if progress is not None:
                progress(done, total)
        return results
    with HttpSession(cfg, env, client_per_thread=True) as session:  # a pool per worker
        workers = max(1, min(cfg.concurrency, total))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="trustcheck-fetch") as pool:
            futures = {
                pool.submit(fetch_collection, gun, td, at, options, cfg, env, session=session): gun
                for gun in unique
            }
            for done, future in enumerate(as_completed(futures), start=1):
                gun = futures[future]
                try:
                    results[gun] = future.result()
                except TrustcheckError as e:
                    results[gun] = e
                except Exception as e:  # a bug costs this GUN its result, never the others'
                    results[gun] = _internal_error(gun, e)
                if progress is not None:
                    progress(done, total)
    return {gun: results[gun] for gun in unique}
