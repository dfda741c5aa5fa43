"""python-tuf's exceptions to trustcheck's stable codes, one actionable line each
(:func:`_map_error`).

python-tuf (7.x) exceptions carry no structured fields (which role, how many
signatures, which versions): the exception class is public API and decides the
code, and the role comes from what the fetcher recorded; only the numbers for
the message (and, for a few errors, the code) are read from python-tuf's message
text, only through the ``_RE_*`` patterns below.  tests/unit/test_tuf_python_tuf_api.py raises
each of those python-tuf errors through python-tuf's public API and fails
loudly when a python-tuf release rewords one.  The exceptions trustcheck raises
itself into that mapping (:func:`_bad_version`, :func:`_expired`,
:func:`_repo_error`) use the same wording."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from trustcheck.errors import ErrorCode, NotTrusted, TrustcheckError, UsageError
from trustcheck.tuf.dialect import _role_of_file
from trustcheck.tuf.fetchers import ClientLimits, _Recorder


@dataclass(slots=True)
class _Ctx:
    repo: str
    limits: ClientLimits
    recorder: _Recorder
    phase: str = "bootstrap"  # bootstrap | refresh | target
    root_origin: str = "the trusted root"


def _cause(exc: BaseException) -> BaseException | None:
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 16:
        if isinstance(cur, TrustcheckError):
            return cur
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what is behind it (``__cause__``, ``__context__``, urllib3's ``reason``)."""
    todo: list[BaseException] = [exc]
    for _ in range(32):
        if not todo:
            return
        cur = todo.pop()
        yield cur
        for nxt in (cur.__cause__, cur.__context__, getattr(cur, "reason", None)):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


_NET_ERRORS = frozenset(
    {"NewConnectionError", "NameResolutionError", "ProtocolError", "ConnectionRefusedError",
     "ConnectionResetError", "SSLError", "CertificateError", "SSLCertVerificationError"}
)  # fmt: skip


def _net_detail(exc: BaseException) -> str:
    """The most telling line behind a download error (without urllib3's object reprs)."""
    for c in _causes(exc):
        if type(c).__name__ in _NET_ERRORS and str(c):
            return re.sub(r"<[^>]*>:\s*", "", str(c))[:200]
    return str(exc) or type(exc).__name__


def _caused_by(exc: BaseException, names: frozenset[str]) -> bool:
    """urllib3 makes a refused connection a timeout (NewConnectionError is a
    ConnectTimeoutError), and python-tuf a SlowRetrievalError: tell them apart."""
    return any(type(c).__name__ in names for c in _causes(exc))


def _has_ssl_cause(exc: BaseException) -> bool:
    """Whether a TLS failure is behind ``exc``."""
    import ssl

    return any(
        isinstance(c, ssl.SSLError | ssl.CertificateError) or type(c).__name__ == "SSLError"
        for c in _causes(exc)
    )


_RE_SIGNED_BY = re.compile(r"^(?P<role>.+) was signed by (?P<n>\d+)/(?P<t>\d+) keys$")


_RE_EXPECTED_ROLE_V = re.compile(r"^Expected (?P<role>.+) v(?P<want>\d+), got v(?P<got>\d+)\.$")


_RE_EXPECTED_SNAP = re.compile(r"^Expected snapshot version (?P<want>\d+), got (?P<got>\d+)$")


_RE_META_ROLLBACK = re.compile(r"^Expected (?P<file>.+) version (?P<new>\d+), got (?P<old>\d+)\.$")


_RE_EXPIRED = re.compile(r"^(?:Final |New )?(?P<role>.+?)(?:\.json)? is expired$")
_RE_OBSERVED_LENGTH = re.compile(r"Observed length (\d+) does not match expected length (\d+)")
_RE_WRONG_TYPE = re.compile(r"Expected '(\w+)', got '(.*)'$")
_RE_NOT_IN_SNAPSHOT = (
    re.compile(r"Role (.+) was delegated but is not part of snapshot$"),
    re.compile(r"Snapshot does not contain information for '(.+)'$"),
)
_RE_SNAPSHOT_DROPS = re.compile(r"New snapshot is missing info for '(.+)'$")
_RE_ROOT_VERSION = re.compile(r"Expected root version")
_RE_TIMESTAMP_ROLLBACK = re.compile(r"New timestamp version (\d+) must be >= (\d+)")
_RE_SNAPSHOT_ROLLBACK = re.compile(r"New snapshot version must be >= (\d+), got version (\d+)")


def _map_error(exc: BaseException, ctx: _Ctx) -> TrustcheckError:
    """One python-tuf (or OS) exception -> one trustcheck error with one actionable line."""
    from securesystemslib.exceptions import FormatError
    from tuf.api import exceptions as tx
    from tuf.api.serialization import DeserializationError, SerializationError

    inner = _cause(exc)
    if isinstance(inner, TrustcheckError):
        return inner
    msg = str(exc).strip() or type(exc).__name__
    file = ctx.recorder.last_name
    role = _role_of_file(file)
    repo = ctx.repo
    src = f"{file} from {repo}"
    if ctx.phase == "bootstrap":
        src, role = ctx.root_origin, "root"

    if isinstance(exc, tx.DownloadLengthMismatchError):
        cap = ctx.recorder.last_cap
        if role in ("root", "timestamp") or cap == ctx.limits.default_cap(role or ""):
            return NotTrusted(
                ErrorCode.FILE_TOO_LARGE,
                f"{src} is larger than the client limit of {cap} bytes "
                f"(endless-data attack or a huge file); raise --{role or 'targets'}-max-length "
                "only if the repository really publishes such files",
                role=role,
            )
        return NotTrusted(
            ErrorCode.LENGTH_EXCEEDED,
            f"{src} is longer than the {cap} bytes its parent metadata allows "
            "(endless-data attack or a modified file); fetch or mirror the repository again",
            role=role,
        )
    if isinstance(exc, tx.DownloadHTTPError):
        if exc.status_code == 404:
            return NotTrusted(
                ErrorCode.ROLE_MISSING,
                f"{file} is missing from {repo}; mirror the complete repository "
                "(timestamp.json, N.root.json and the snapshot, targets and delegated role "
                "files its metadata names)",
                role=role,
            )
        if exc.status_code in (401, 403):
            return NotTrusted(
                ErrorCode.AUTH_FAILED,
                f"{repo} refused {file} (HTTP {exc.status_code}); check access to the repository",
                role=role,
            )
        return NotTrusted(
            ErrorCode.SERVER_ERROR,
            f"{repo} answered HTTP {exc.status_code} for {file}; try again later",
            role=role,
        )
    if isinstance(exc, tx.SlowRetrievalError) and not _caused_by(exc, _NET_ERRORS):
        return NotTrusted(
            ErrorCode.SERVER_TIMEOUT,
            f"{repo} did not send {file} in time; raise --timeout for slow links",
            role=role,
        )
    if isinstance(exc, tx.DownloadError):
        if _has_ssl_cause(exc):
            return NotTrusted(
                ErrorCode.TLS_ERROR,
                f"the TLS certificate of {repo} could not be verified while fetching {file} "
                f"({_net_detail(exc)}); check the URL and the system CA store",
                role=role,
            )
        return NotTrusted(
            ErrorCode.NETWORK_ERROR,
            f"could not fetch {file} from {repo} ({_net_detail(exc)}); check the URL and the "
            "network",
            role=role,
        )
    if isinstance(exc, DeserializationError):
        cause = exc.__cause__
        if isinstance(cause, UnicodeDecodeError | json.JSONDecodeError | RecursionError):
            return NotTrusted(
                ErrorCode.MALFORMED_JSON,
                f"{src} is not valid JSON ({cause}); fetch or mirror the repository again",
                role=role or "root",
            )
        return NotTrusted(
            ErrorCode.INVALID_STRUCTURE,
            f"{src} is not TUF 1.0 metadata python-tuf accepts "
            f"({type(cause).__name__ if cause else 'error'}: {cause or msg}); "
            "it was not written by a TUF 1.0 signer",
            role=role or "root",
        )
    if isinstance(exc, FormatError | SerializationError):
        detail = str(exc.__cause__ or exc).rsplit(": ", 1)[-1]
        return NotTrusted(
            ErrorCode.NON_CANONICAL_NUMBER,
            f"{src} holds data canonical JSON cannot encode ({detail}), so its "
            "signatures cannot be checked; no TUF signer writes this",
            role=role,
        )
    if isinstance(exc, tx.UnsignedMetadataError):
        m = _RE_SIGNED_BY.match(msg)
        who = m.group("role") if m else (role or "?")
        counts = f"{m.group('n')} of {m.group('t')}" if m else "too few"
        if who == "root" and ctx.phase == "refresh":
            return NotTrusted(
                ErrorCode.ROOT_ROTATION_INVALID,
                f"{src} is signed by {counts} required root keys (of the root "
                "trusted before, or of its own); it may be forged. Verify it out of band, "
                "then pass it with --root or pin its keys",
                role="root",
            )
        if who == "root":
            return NotTrusted(
                ErrorCode.THRESHOLD_NOT_MET,
                f"{ctx.root_origin} is signed by {counts} of its own root keys: it was altered "
                "after signing. Get a genuine root.json out of band",
                role="root",
            )
        return NotTrusted(
            ErrorCode.THRESHOLD_NOT_MET,
            f"{who}.json from {repo} carries valid signatures from {counts} keys its delegating "
            "role requires; it was altered after signing or signed with keys that role does "
            "not list",
            role=who,
        )
    if isinstance(exc, tx.BadVersionNumberError):
        return _map_version(msg, ctx, file, role)
    if isinstance(exc, tx.ExpiredMetadataError):
        m = _RE_EXPIRED.match(msg)
        who = m.group("role") if m else (role or "?")
        action = (
            "the repository's online signer is behind or the data is frozen; fetch fresh "
            "metadata, or use --at to audit an old copy"
            if who in ("timestamp", "snapshot")
            else "the repository owner must re-sign it; use --at to audit an old copy"
        )
        return NotTrusted(
            ErrorCode.METADATA_EXPIRED,
            f"{who}.json from {repo} has expired at the validation time: {action}",
            role=who,
        )
    if isinstance(exc, tx.LengthOrHashMismatchError):
        m = _RE_OBSERVED_LENGTH.match(msg)
        if m is not None and int(m.group(1)) > int(m.group(2)):
            return NotTrusted(
                ErrorCode.LENGTH_EXCEEDED,
                f"{src} is {m.group(1)} bytes, longer than the {m.group(2)} its "
                "parent metadata records (endless data or a modified file); fetch again",
                role=role,
            )
        return NotTrusted(
            ErrorCode.HASH_MISMATCH,
            f"{src} does not match the length/hashes its parent metadata records "
            f"({msg}): mix-and-match or a modified file; fetch or mirror again",
            role=role,
        )
    if isinstance(exc, tx.RepositoryError):
        m = _RE_WRONG_TYPE.match(msg)
        if m is not None:
            return NotTrusted(
                ErrorCode.WRONG_TYPE,
                f"{src} is {m.group(2)!r} metadata where {m.group(1)!r} belongs: "
                "a file of another role was put in its place",
                role=role,
            )
        m = _RE_NOT_IN_SNAPSHOT[0].match(msg) or _RE_NOT_IN_SNAPSHOT[1].match(msg)
        if m is not None:
            return NotTrusted(
                ErrorCode.ROLE_MISSING,
                f"role {m.group(1)} is delegated but snapshot.json of {repo} does not list it; "
                "the repository is inconsistent, ask its owner to publish a new snapshot",
                role=m.group(1),
            )
        m = _RE_SNAPSHOT_DROPS.match(msg)
        if m is not None:
            return NotTrusted(
                ErrorCode.VERSION_ROLLBACK,
                f"the new snapshot.json of {repo} drops {m.group(1)}, which the snapshot "
                "trusted before lists: old or forged metadata is being replayed",
                role="snapshot",
            )
        return NotTrusted(
            ErrorCode.INVALID_STRUCTURE,
            f"{src}: {msg}",
            role=role,
        )
    if isinstance(exc, ValueError):
        return NotTrusted(
            ErrorCode.INVALID_DELEGATION,
            f"a delegation of {repo} is inconsistent ({msg}); the repository is malformed",
            role=role,
        )
    if isinstance(exc, OSError):
        return UsageError(
            ErrorCode.STATE_INVALID,
            f"cannot write the trusted metadata of {repo} to the state dir "
            f"({exc.strerror or exc}); check --state-dir",
        )
    raise exc


def _map_version(msg: str, ctx: _Ctx, file: str | None, role: str | None) -> TrustcheckError:
    repo = ctx.repo
    if _RE_ROOT_VERSION.match(msg):
        return NotTrusted(
            ErrorCode.ROOT_ROTATION_INVALID,
            f"{file} from {repo} does not hold the root version its name promises ({msg}); "
            "it may be an old root replayed. Verify the current root out of band",
            role="root",
        )
    m = _RE_TIMESTAMP_ROLLBACK.match(msg)
    if m is not None:
        return NotTrusted(
            ErrorCode.VERSION_ROLLBACK,
            f"timestamp.json from {repo} is v{m.group(1)}, older than v{m.group(2)} trusted "
            "before: old metadata is being replayed (rollback or freeze attack)",
            role="timestamp",
        )
    m = _RE_SNAPSHOT_ROLLBACK.match(msg)
    if m is not None:
        return NotTrusted(
            ErrorCode.VERSION_ROLLBACK,
            f"timestamp.json from {repo} names snapshot v{m.group(2)}, older than "
            f"v{m.group(1)} trusted before: old metadata is being replayed",
            role="snapshot",
        )
    m = _RE_META_ROLLBACK.match(msg)
    if m is not None:
        return NotTrusted(
            ErrorCode.VERSION_ROLLBACK,
            f"snapshot.json from {repo} names {m.group('file')} v{m.group('new')}, older than "
            f"v{m.group('old')} trusted before: old metadata is being replayed",
            role="snapshot",
        )
    m = _RE_EXPECTED_SNAP.match(msg)
    who, want, got = ("snapshot", m.group("want"), m.group("got")) if m else (None, "0", "0")
    if m is None:
        m2 = _RE_EXPECTED_ROLE_V.match(msg)
        if m2 is not None:
            who, want, got = m2.group("role"), m2.group("want"), m2.group("got")
    if who is not None:
        parent = "timestamp.json" if who == "snapshot" else "snapshot.json"
        if int(got) < int(want):
            return NotTrusted(
                ErrorCode.VERSION_ROLLBACK,
                f"{who}.json from {repo} is v{got} but {parent} names v{want}: an old file "
                "is being replayed (mix-and-match); fetch or mirror the repository again",
                role=who,
            )
        return NotTrusted(
            ErrorCode.VERSION_MISMATCH,
            f"{who}.json from {repo} is v{got} but {parent} names v{want}: the files do not "
            "belong together (mix-and-match or a half-published update); fetch again",
            role=who,
        )
    return NotTrusted("version-rollback", f"{file or 'metadata'} from {repo}: {msg}", role=role)


def _bad_version(role: str, want: int, got: int) -> Exception:
    from tuf.api.exceptions import BadVersionNumberError

    if role == "snapshot":
        return BadVersionNumberError(f"Expected snapshot version {want}, got {got}")
    return BadVersionNumberError(f"Expected {role} v{want}, got v{got}.")


def _expired(role: str) -> Exception:
    from tuf.api.exceptions import ExpiredMetadataError

    return ExpiredMetadataError(f"{role}.json is expired")


def _repo_error(msg: str) -> Exception:
    from tuf.api.exceptions import RepositoryError

    return RepositoryError(msg)
