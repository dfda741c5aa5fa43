"""Target files of a TUF repository (:func:`download_targets`): streamed, capped
at the signed length, checked against every signed hash, renamed into place."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from trustcheck.errors import ErrorCode, NotTrusted, TrustcheckError, UsageError
from trustcheck.tuf.dialect import _CHUNK
from trustcheck.tuf.errors import _map_error
from trustcheck.tuf.fetchers import ClientLimits, _is_within, _show
from trustcheck.tuf.report import _digest
from trustcheck.tuf.session import _Session

if TYPE_CHECKING:
    from tuf.api.metadata import (  # type: ignore[attr-defined]
        TargetFile,
    )

    from trustcheck.api import Options

__all__ = ["DownloadResult", "download_targets", "local_target_name"]


@dataclass(slots=True)
class DownloadResult:
    """One target of :func:`download_targets`."""

    path: str  # the TUF target path
    file: str | None = None  # where the verified file is
    digest: str | None = None
    length: int | None = None
    role: str | None = None
    reused: bool = False  # a verified local copy was kept, nothing was fetched
    error: TrustcheckError | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.path,
            "file": self.file,
            "trusted": self.error is None and self.file is not None,
            "digest": self.digest,
            "length": self.length,
            "role": self.role,
            "reused": self.reused,
            "error": self.error.to_json() if self.error is not None else None,
        }


_SAFE_COMPONENT = re.compile(r"[^\x00/\\]+")


def local_target_name(path: str) -> str:
    """Where target ``path`` is stored below the download folder.

    The target path itself (``bin/app.tgz`` -> ``bin/app.tgz``) when every
    component is a plain name; otherwise (``../x``, ``/etc/x``, ``a//b``,
    ``.``, a backslash or NUL) the whole path percent-encoded into one file
    name as python-tuf does (``..%2Fx``; ``%2E`` for ``.``, ``%`` for the
    empty path), which never leaves the folder.
    """
    parts = path.split("/")
    if (
        path
        and len(path) <= 4096
        and all(_SAFE_COMPONENT.fullmatch(p) and p not in (".", "..") for p in parts)
        and all(len(p.encode("utf-8", "surrogatepass")) <= 255 for p in parts)
    ):
        return path
    name = quote(path, "")
    if name in ("", ".", ".."):  # quote() leaves these; "%" and "%2E" it never writes
        return name.replace(".", "%2E") or "%"
    return name


def _hashers(tf: TargetFile, path: str, role: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for algo in tf.hashes:
        try:
            if algo in ("blake2b-256", "blake2b256"):
                out[algo] = hashlib.blake2b(digest_size=32)
            else:
                out[algo] = hashlib.new(algo)
        except (ValueError, TypeError) as e:
            raise NotTrusted(
                ErrorCode.HASH_MISMATCH,
                f"target {path} is listed with the hash algorithm {algo[:40]!r}, which "
                "trustcheck cannot compute, so the file cannot be checked (python-tuf refuses "
                "it too); ask the repository owner to list a sha256 or sha512 hash",
                role=role,
            ) from e
    if not out:
        raise NotTrusted(
            ErrorCode.TARGET_MISSING_SHA256,
            f"target {path} is listed with no hash, so a downloaded file cannot be checked",
            role=role,
        )
    return out


def _copy_matches(file: Path, tf: TargetFile) -> bool:
    """Whether ``file`` is a regular file of the target's length and every listed hash."""
    try:
        hashers = _hashers(tf, tf.path, "")
    except NotTrusted:
        return False
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != tf.length:
            return False
        total = 0
        while True:
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > tf.length:
                return False
            for h in hashers.values():
                h.update(chunk)
    except OSError:
        return False
    finally:
        os.close(fd)
    return total == tf.length and all(
        _hex_equal(h.hexdigest(), str(tf.hashes[a]).lower()) for a, h in hashers.items()
    )


def _hex_equal(a: str, b: str) -> bool:
    import hmac  # constant time: no timing oracle on a digest

    return hmac.compare_digest(a.encode(), b.encode())


class _TargetSource:
    """Where target files come from: a folder (read in chunks) or an http(s) base URL."""

    def __init__(self, sess: _Session, target_base: str | None, timeout: float) -> None:
        self.sess = sess
        self.timeout = timeout
        self.folder: Path | None = None
        self.url: str | None = None
        loc = sess.loc
        if target_base is not None:
            if "://" in target_base and not target_base.lower().startswith("file://"):
                scheme = urlsplit(target_base).scheme.lower()
                if scheme not in ("http", "https"):
                    raise UsageError(
                        ErrorCode.INVALID_ARGUMENT,
                        f"--target-base-url {target_base!r} is neither a folder nor an http(s) URL",
                    )
                if scheme == "http" and not sess.unsafe_http:
                    raise UsageError(
                        ErrorCode.INSECURE_SERVER,
                        f"--target-base-url {target_base} is plain http; use https "
                        "(--unsafe-http is for test servers only)",
                    )
                self.url = target_base.rstrip("/") + "/"
            else:
                raw = unquote(urlsplit(target_base).path) if "://" in target_base else target_base
                self.folder = Path(os.path.realpath(raw))
        elif loc.local is not None:
            meta = loc.local
            self.folder = meta.parent / "targets" if meta.name == "metadata" else meta / "targets"
        else:
            base = loc.base_url.rstrip("/")
            head, _, last = base.rpartition("/")
            if last != "metadata":
                raise UsageError(
                    ErrorCode.INVALID_ARGUMENT,
                    f"cannot tell where the target files of {sess.name} are (its metadata URL "
                    "does not end in /metadata); give --target-base-url",
                )
            self.url = head + "/targets/"
        if self.folder is not None and not self.folder.is_dir():
            raise UsageError(
                ErrorCode.INVALID_ARGUMENT,
                f"target folder {self.folder} of {sess.name} does not exist; give "
                "--target-base-url (a folder or URL holding the target files)",
            )

    def describe(self) -> str:
        return str(self.folder) if self.folder is not None else str(self.url)

    def push(self, name: str, plain: str, cap: int, sink: Callable[[bytes], None]) -> None:
        """Hand the bytes of target file ``name`` (URL-relative) to ``sink`` as they
        come: over HTTP at most ``cap`` of them (more is python-tuf's
        ``DownloadLengthMismatchError``), from a folder at most ``cap + 1``.

        In a local folder a file missing under its consistent-snapshot name
        (``dir/HASH.name``) is also looked for under its ``plain`` path, as a
        TUF-on-CI / sigstore git checkout stores it (the content is verified
        all the same).
        """
        if self.url is not None:
            self._http(name, cap, sink)
            return
        assert self.folder is not None
        if plain != name and self._local_path(name) is None:
            name = plain
        for chunk in self._local(name, cap):
            sink(chunk)

    def _local_path(self, name: str) -> str | None:
        assert self.folder is not None
        parts = name.split("/")
        if name.startswith("/") or "\x00" in name or any(p in ("", ".", "..") for p in parts):
            return None
        real = os.path.realpath(os.path.join(self.folder, *parts))
        return real if _is_within(real, str(self.folder)) and os.path.lexists(real) else None

    def _http(self, name: str, cap: int, sink: Callable[[bytes], None]) -> None:
        """Streamed through trustcheck's one HTTP stack (the repository's session, or
        one for this download when the metadata is local); errors as python-tuf's
        fetchers raise them."""
        assert self.url is not None
        from tuf.api.exceptions import (
            DownloadError,
            DownloadHTTPError,
            DownloadLengthMismatchError,
        )

        from trustcheck.remote.config import RemoteConfig
        from trustcheck.remote.http import Deadline, HttpSession

        url = self.url + quote(name, "/")
        self.sess.loc.recorder.record(url, cap)
        http = self.sess.loc.http
        own: HttpSession | None = None
        if http is None:
            remote = RemoteConfig(
                unsafe_http=self.sess.unsafe_http,
                timeout=self.timeout,
                total_timeout=3 * self.timeout,
            )
            http = own = HttpSession(remote)
        too_long = False
        try:
            answer = http.request(
                "GET",
                url,
                deadline=Deadline(3 * http.remote.timeout),
                what=f"target {_show(name)} from {self.url.rstrip('/')}",
                cap=cap,
                announced_cap=False,
                sink=sink,
            )
        except TrustcheckError as e:
            if e.code != "file-too-large":
                raise DownloadError(f"Failed to download {url}") from e
            too_long = True
        finally:
            if own is not None:
                own.close()
        if too_long:
            raise DownloadLengthMismatchError(f"{name} is longer than {cap} bytes")
        if answer.status != 200:
            raise DownloadHTTPError(f"{url} answered HTTP {answer.status}", answer.status)

    def _local(self, name: str, cap: int) -> Iterator[bytes]:
        assert self.folder is not None
        parts = name.split("/")
        if name.startswith("/") or "\x00" in name or any(p in ("", ".", "..") for p in parts):
            raise _TargetMissing(f"{_show(name)} cannot be a file in {self.folder}")
        real = os.path.realpath(os.path.join(self.folder, *parts))
        if not _is_within(real, str(self.folder)):
            raise _TargetMissing(f"{_show(name)} resolves outside {self.folder}")
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError as e:
            raise _TargetMissing(f"{_show(name)} is not in {self.folder}") from e
        except OSError as e:
            raise _TargetMissing(f"cannot read {_show(name)} in {self.folder}: {e.strerror}") from e
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise _TargetMissing(f"{_show(name)} in {self.folder} is not a regular file")
            total = 0
            while total <= cap:
                chunk = os.read(fd, min(_CHUNK, cap + 1 - total))
                if not chunk:
                    return
                total += len(chunk)
                yield chunk
        finally:
            os.close(fd)


class _TargetMissing(Exception):
    pass


def _target_url_name(sess: _Session, tf: TargetFile) -> str:
    """python-tuf's ``download_target`` URL tail: ``dir/HASH.name`` with consistent snapshots."""
    assert sess.root_md is not None
    if sess.root_md.signed.consistent_snapshot and tf.hashes:
        first = next(iter(tf.hashes.values()))
        dirname, sep, basename = tf.path.rpartition("/")
        return f"{dirname}{sep}{first}.{basename}"
    return tf.path


def _fetch_target(
    sess: _Session, source: _TargetSource, tf: TargetFile, role: str, dest: Path
) -> None:
    """Stream target ``tf`` into ``dest``: capped at its length, every hash checked, atomic."""
    from tuf.api.exceptions import DownloadError, DownloadHTTPError, DownloadLengthMismatchError

    path = tf.path
    hashers = _hashers(tf, path, role)
    name = _target_url_name(sess, tf)
    where = source.describe()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name[:200]}.", suffix=".part", dir=dest.parent)
    except OSError as e:
        raise UsageError(
            ErrorCode.OUTPUT_UNWRITABLE, f"cannot write {dest} ({e.strerror or e}); check -o"
        ) from e
    too_long = NotTrusted(
        ErrorCode.LENGTH_EXCEEDED,
        f"target {path} from {where} is longer than the {tf.length} bytes role {role} "
        "signed (endless data or a replaced file); nothing was written",
        role=role,
    )
    done = False
    try:
        total = 0
        try:
            with os.fdopen(fd, "wb") as out:

                def consume(chunk: bytes) -> None:
                    nonlocal total
                    total += len(chunk)
                    if total > tf.length:
                        raise too_long
                    for h in hashers.values():
                        h.update(chunk)
                    out.write(chunk)

                source.push(name, path, tf.length, consume)
                out.flush()
                os.fsync(out.fileno())
        except _TargetMissing as e:
            raise NotTrusted(
                ErrorCode.TARGET_DOWNLOAD_FAILED,
                f"target {path} of {sess.name} could not be read: {e}; mirror the target "
                "files too (or give --target-base-url)",
                role=role,
            ) from e
        except DownloadLengthMismatchError as e:
            raise too_long from e
        except DownloadHTTPError as e:
            raise NotTrusted(
                ErrorCode.TARGET_DOWNLOAD_FAILED,
                f"{where} answered HTTP {e.status_code} for target {path} ({name}); check "
                "--target-base-url, or try again later",
                role=role,
            ) from e
        except DownloadError as e:
            sess.ctx.phase = "target"
            err = _map_error(e, sess.ctx)
            raise NotTrusted(
                err.code,
                f"target {path}: {err.message}; nothing was written",
                role=role,
            ) from e
        except OSError as e:
            raise UsageError(
                ErrorCode.OUTPUT_UNWRITABLE, f"cannot write {dest} ({e.strerror or e}); check -o"
            ) from e
        if total < tf.length:
            raise NotTrusted(
                ErrorCode.TARGET_DOWNLOAD_FAILED,
                f"target {path} from {where} ended after {total} of the {tf.length} bytes role "
                f"{role} signed (connection cut or a truncated file); nothing was written, "
                "try again",
                role=role,
            )
        for algo, h in hashers.items():
            want = str(tf.hashes[algo]).lower()
            if not _hex_equal(h.hexdigest(), want):
                raise NotTrusted(
                    ErrorCode.HASH_MISMATCH,
                    f"target {path} from {where} does not match its {algo} signed by role "
                    f"{role} (got {h.hexdigest()[:16]}…, signed {want[:16]}…): the file was "
                    "replaced or corrupted; nothing was written",
                    role=role,
                )
        try:
            os.replace(tmp, dest)
            dir_fd = os.open(dest.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as e:
            raise UsageError(
                ErrorCode.OUTPUT_UNWRITABLE, f"cannot write {dest} ({e.strerror or e}); check -o"
            ) from e
        done = True
    finally:
        if not done:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def download_targets(
    repo: str,
    targets: list[str],
    dest_dir: str | os.PathLike[str],
    at: datetime | None = None,
    options: Options | None = None,
    *,
    target_base_url: str | None = None,
    root: bytes | None = None,
    limits: ClientLimits | None = None,
    unsafe_http: bool = False,
    timeout: float = 30.0,
    allow_arbitrary_keyids: bool = False,
    metadata_dir: str | os.PathLike[str] | None = None,
    stop_on_error: bool = False,
) -> list[DownloadResult]:
    """Refresh ``repo``, then fetch and verify each target file into ``dest_dir``.

    Each target is looked up as :func:`verify_targets` does, then fetched from
    ``target_base_url`` (a folder or http(s) URL; default: the ``targets``
    folder beside the ``metadata`` one) -- ``dir/HASH.name`` with consistent
    snapshots, as python-tuf -- streamed into a temporary file next to its
    destination, capped at the signed length, every listed hash checked,
    then renamed into place (:func:`local_target_name`). A file already there
    with the signed length and hashes is kept (``reused``), nothing fetched.
    A failed refresh raises; a failed target is its result's ``error`` (with
    ``stop_on_error`` the targets after it are not tried).
    """
    when = at if at is not None else datetime.now(UTC)
    dest = Path(dest_dir)
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
    results: list[DownloadResult] = []
    with sess:
        sess.refresh()
        source = _TargetSource(sess, target_base_url, timeout)
        for path in targets:
            res = DownloadResult(path)
            results.append(res)
            try:
                found, chain = sess.target(path)
                res.role = chain[-1]
                res.length = found.length
                res.digest = _digest(found.hashes)
                file = dest / local_target_name(path)
                if _copy_matches(file, found):
                    res.reused = True
                else:
                    _fetch_target(sess, source, found, chain[-1], file)
                res.file = str(file)
            except NotTrusted as e:
                res.error = e
                if stop_on_error:
                    break
        sess.commit()
    return results
