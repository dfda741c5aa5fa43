"""Where a TUF repository is read from: python-tuf fetchers for a local folder
(path checks and size caps as in trustdir.py) or HTTPS (trustcheck's one HTTP
stack, :mod:`trustcheck.remote.http`), the recorder of what was fetched, and the client limits."""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from trustcheck.errors import ErrorCode, UsageError
from trustcheck.tuf.dialect import _CHUNK, _DETECT_NAMES

if TYPE_CHECKING:
    from tuf.ngclient.config import UpdaterConfig
    from tuf.ngclient.fetcher import FetcherInterface

    from trustcheck.remote.http import HttpSession


__all__ = ["ClientLimits"]


@dataclass(slots=True)
class ClientLimits:
    """python-tuf's client limits (``UpdaterConfig``); defaults are python-tuf's."""

    max_root_rotations: int = 256
    max_delegations: int = 32
    root_max_length: int = 512000
    timestamp_max_length: int = 16384
    snapshot_max_length: int = 2000000
    targets_max_length: int = 5000000

    def validate(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UsageError(
                    ErrorCode.INVALID_ARGUMENT,
                    f"--{name.replace('_', '-')} must be a positive integer, got {value!r}",
                )

    def config(self) -> UpdaterConfig:
        from tuf.ngclient.config import UpdaterConfig

        return UpdaterConfig(
            max_root_rotations=self.max_root_rotations,
            max_delegations=self.max_delegations,
            root_max_length=self.root_max_length,
            timestamp_max_length=self.timestamp_max_length,
            snapshot_max_length=self.snapshot_max_length,
            targets_max_length=self.targets_max_length,
        )

    def default_cap(self, role: str) -> int:
        return {
            "root": self.root_max_length,
            "timestamp": self.timestamp_max_length,
            "snapshot": self.snapshot_max_length,
        }.get(role, self.targets_max_length)


def _show(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class _Recorder:
    """What the fetcher was last asked for: the file name and its size cap."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.last_name: str | None = None
        self.last_cap: int | None = None

    def record(self, url: str, max_length: int) -> None:
        tail = url[len(self.base_url) :] if url.startswith(self.base_url) else url
        self.last_name = unquote(tail)
        self.last_cap = max_length


def _local_fetcher(base: Path, base_url: str, recorder: _Recorder) -> FetcherInterface:
    """A python-tuf fetcher serving ``base_url`` from the folder ``base``.

    Path safety as trustdir.py: the requested name (URL-decoded) may not be
    absolute nor hold ``.``/``..``/empty components, NUL or backslashes; its
    real path must stay inside the repository folder (a symlink leaving it is
    ``unsafe-path``); only regular files are read, opened non-blocking; a file
    larger than python-tuf's cap for it is refused before it is read
    (``DownloadLengthMismatchError``). A missing file is an HTTP 404 for
    python-tuf, which ends its walk over ``N.root.json``.

    Local layout conveniences (the content is verified like any other):
    ``N.root.json`` is also looked for as ``root_history/N.root.json`` (a
    TUF-on-CI / sigstore git checkout), and ``V.NAME.json`` (consistent
    snapshots) as ``NAME.json`` -- python-tuf then checks that its version is
    ``V``.
    """
    from tuf.api.exceptions import DownloadHTTPError, DownloadLengthMismatchError
    from tuf.ngclient.fetcher import FetcherInterface

    root_real = os.path.realpath(base)

    class LocalFetcher(FetcherInterface):
        def __init__(self) -> None:
            self.cap = 0

        def download_bytes(self, url: str, max_length: int) -> bytes:
            recorder.record(url, max_length)
            self.cap = max_length
            return super().download_bytes(url, max_length)

        def _candidates(self, name: str) -> list[str]:
            out = [name]
            m = re.fullmatch(r"([1-9][0-9]{0,9})\.(.+)", name)
            if m is not None:
                if m.group(2) == "root.json":
                    out.append(f"root_history/{name}")
                else:
                    out.append(m.group(2))
            return out

        def _resolve(self, name: str) -> str | None:
            parts = name.split("/")
            if (
                name.startswith("/")
                or "\x00" in name
                or "\\" in name
                or any(p in ("", ".", "..") for p in parts)
            ):
                # a hostile role name (``../a``) names no file of the folder: missing
                # data, as for python-tuf over HTTP (a 404), never a file outside
                return None
            real = os.path.realpath(os.path.join(base, *parts))
            if not _is_within(real, root_real):
                raise UsageError(
                    ErrorCode.UNSAFE_PATH,
                    f"{_show(str(base / name))} resolves to {_show(real)}, outside the "
                    f"repository folder {base}",
                )
            return real if os.path.lexists(real) else None

        def _fetch(self, url: str) -> Iterator[bytes]:
            if not url.startswith(base_url):
                raise UsageError("unsafe-path", f"{_show(url)} is not in the repository {base}")
            name = unquote(url[len(base_url) :])
            for candidate in self._candidates(name):
                real = self._resolve(candidate)
                if real is not None:
                    return iter([self._read(real, candidate)])
            raise DownloadHTTPError(f"{name} is not in {base}", 404)

        def _read(self, real: str, name: str) -> bytes:
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
            try:
                fd = os.open(real, flags)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise UsageError(ErrorCode.UNSAFE_PATH, f"{name} changed into a symlink") from e
                raise UsageError(
                    ErrorCode.TRUST_DIR_UNREADABLE, f"cannot read {base / name}: {e.strerror or e}"
                ) from e
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise UsageError(
                        "trust-dir-unreadable", f"cannot read {base / name}: not a regular file"
                    )
                if st.st_size > self.cap:
                    raise DownloadLengthMismatchError(
                        f"{name} is {st.st_size} bytes, more than the maximum allowed "
                        f"length of {self.cap}"
                    )
                chunks: list[bytes] = []
                total = 0
                while total <= self.cap:
                    chunk = os.read(fd, min(_CHUNK, self.cap + 1 - total))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    total += len(chunk)
                return b"".join(chunks)
            except OSError as e:
                raise UsageError(
                    ErrorCode.TRUST_DIR_UNREADABLE, f"cannot read {base / name}: {e.strerror or e}"
                ) from e
            finally:
                os.close(fd)

    return LocalFetcher()


def _http_fetcher(recorder: _Recorder, timeout: float, unsafe_http: bool) -> FetcherInterface:
    """python-tuf's ``FetcherInterface`` on trustcheck's one HTTP stack
    (:class:`~trustcheck.remote.http.HttpSession`): TLS (system CAs, Docker's
    per-host folder), redirects without a downgrade to http, the cap python-tuf
    gives (decoded bytes, cut at ``cap + 1``), one deadline per file (``timeout``
    per attempt, retries on network errors, timeouts, 5xx and 429 with
    ``Retry-After``).

    Errors as python-tuf expects them: an HTTP status other than 200 is
    ``DownloadHTTPError`` (404 and 403 are "missing file" for its walk over
    ``N.root.json``), a body past the cap ``DownloadLengthMismatchError``, any
    other failure a ``DownloadError`` caused by trustcheck's error (kept by
    :func:`trustcheck.tuf.errors._map_error`: one actionable line, its code).
    """
    import weakref

    from tuf.api.exceptions import (
        DownloadError,
        DownloadHTTPError,
        DownloadLengthMismatchError,
    )
    from tuf.ngclient.fetcher import FetcherInterface

    from trustcheck.errors import TrustcheckError
    from trustcheck.remote.config import RemoteConfig
    from trustcheck.remote.http import Deadline, HttpSession

    remote = RemoteConfig(unsafe_http=unsafe_http, timeout=timeout, total_timeout=3 * timeout)

    class HttpFetcher(FetcherInterface):
        def __init__(self) -> None:
            self.http = HttpSession(remote)
            weakref.finalize(self, self.http.close)

        def download_bytes(self, url: str, max_length: int) -> bytes:
            recorder.record(url, max_length)
            return super().download_bytes(url, max_length)

        def _fetch(self, url: str) -> Iterator[bytes]:
            # the cap is what python-tuf (download_bytes) or download.py (a target's
            # signed length) recorded for this URL; one byte more is read, so the
            # caller sees the excess as python-tuf's own fetchers let it
            name = recorder.last_name or url
            allowed = recorder.last_cap or 0
            cap = allowed + 1
            too_long = False
            try:
                answer = self.http.request(
                    "GET",
                    url,
                    deadline=Deadline(remote.total_timeout),
                    what=f"{name} from {recorder.base_url.rstrip('/')}",
                    cap=cap,
                    announced_cap=False,
                )
            except TrustcheckError as e:
                if e.code != "file-too-large":
                    raise DownloadError(f"Failed to download {url}") from e
                too_long = True
            if too_long:
                # python-tuf's own error with nothing behind it (raised outside the
                # handler), so the usual mapping names the client limit or the parent's length
                raise DownloadLengthMismatchError(
                    f"{name} is more than the maximum allowed length of {allowed} bytes"
                )
            if answer.status != 200:
                raise DownloadHTTPError(f"{url} answered HTTP {answer.status}", answer.status)
            return iter([answer.body])

    return HttpFetcher()


@dataclass(slots=True)
class _Location:
    name: str  # what pins and the state dir know the repository by
    base_url: str
    local: Path | None
    fetcher: FetcherInterface
    recorder: _Recorder

    @property
    def http(self) -> HttpSession | None:
        """The fetcher's HTTP session (target files are streamed through it), or None
        for a local folder."""
        from trustcheck.remote.http import HttpSession

        found = getattr(self.fetcher, "http", None)
        return found if isinstance(found, HttpSession) else None


def _locate(repo: str, unsafe_http: bool, timeout: float) -> _Location:
    """``--repo``: a local folder (or ``file://`` URL) or an https URL of the metadata."""
    if "://" in repo:
        parts = urlsplit(repo)
        scheme = parts.scheme.lower()
        if scheme == "file":
            return _locate(unquote(parts.path), unsafe_http, timeout)
        if scheme == "http" and not unsafe_http:
            raise UsageError(
                ErrorCode.INSECURE_SERVER,
                f"--repo {repo} is plain http: metadata and its sizes would travel unprotected; "
                "use https (--unsafe-http is for test servers only)",
            )
        if scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(
                ErrorCode.INVALID_ARGUMENT,
                f"--repo {repo!r} is neither a folder nor an https URL of a TUF metadata folder",
            )
        name = repo.rstrip("/")
        recorder = _Recorder(name + "/")
        return _Location(
            name, name + "/", None, _http_fetcher(recorder, timeout, unsafe_http), recorder
        )
    path = Path(repo)
    if not path.is_dir():
        raise UsageError(
            ErrorCode.INVALID_ARGUMENT,
            f"--repo {repo}: no such folder (give a TUF repository folder or an https URL)",
        )
    meta = path
    sub = path / "metadata"
    if sub.is_dir() and not any((path / n).exists() for n in _DETECT_NAMES):
        meta = sub
    real = Path(os.path.realpath(meta))
    base_url = real.as_uri().rstrip("/") + "/"
    recorder = _Recorder(base_url)
    return _Location(
        str(Path(os.path.realpath(path))),
        base_url,
        real,
        _local_fetcher(real, base_url, recorder),
        recorder,
    )
