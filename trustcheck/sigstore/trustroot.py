"""The Sigstore trusted root (``trusted_root.json``): from a file, or through TUF.

``tuf:<repository>`` obtains ``trusted_root.json`` as a TUF 1.0 target through
trustcheck's own client (trustcheck/tuf, docs/tuf.md): root rotation from the root
trusted before (state dir) or ``--tuf-root``, pins, ``--at``, rollback and freeze
protection, every signed hash. A plain path is trust on file: whoever can write that
file decides what is trusted (docs/sigstore.md).
"""

from __future__ import annotations

import hashlib
import importlib.util
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustcheck.errors import ErrorCode, UsageError

if TYPE_CHECKING:
    from trustcheck.api import Options

__all__ = [
    "MAX_TRUSTED_ROOT_BYTES",
    "TRUSTED_ROOT_TARGET",
    "TrustRoot",
    "load_trust_root",
    "parse_trust_root",
    "require_sigstore",
]

#: sigstore's production trusted_root.json is about 7 KB
MAX_TRUSTED_ROOT_BYTES = 1024 * 1024
#: the TUF target path sigstore's root-signing repositories publish it under
TRUSTED_ROOT_TARGET = "trusted_root.json"


def require_sigstore(what: str) -> None:
    """``extra-missing`` (exit 2) unless sigstore-python is installed."""
    if importlib.util.find_spec("sigstore") is None:
        raise UsageError(
            ErrorCode.EXTRA_MISSING,
            f"{what} needs sigstore-python (module 'sigstore' is not installed): "
            "pip install 'trustcheck[sigstore]'",
        )


@dataclass(frozen=True, slots=True)
class TrustRoot:
    """A parsed and checked trusted root."""

    #: sigstore.models.TrustedRoot
    root: Any
    #: where it came from: ``file:<path>`` or ``tuf:<repo>``
    source: str
    sha256: str
    #: for reports: the TUF role and version that signed it, the file...
    details: dict[str, str] = field(default_factory=dict)


def parse_trust_root(data: bytes, source: str) -> TrustRoot:
    """Parse ``trusted_root.json`` bytes with sigstore-python, checked for use."""
    require_sigstore("verifying keyless (Sigstore) signatures")
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import TrustedRoot

    if len(data) > MAX_TRUSTED_ROOT_BYTES:
        raise UsageError(
            ErrorCode.COSIGN_CONFIG_INVALID,
            f"trusted root {source} is {len(data)} bytes, over the "
            f"{MAX_TRUSTED_ROOT_BYTES}-byte cap",
        )
    try:
        from sigstore_models.trustroot.v1 import TrustedRoot as _Inner

        inner = _Inner.from_json(data)
        root = TrustedRoot(inner)
        if not root.get_fulcio_certs():  # raises when empty
            raise ValueError("no Fulcio certificate authority")
        root.rekor_keyring(_verify_purpose())
        root.ct_keyring(_verify_purpose())
    except (SigstoreError, ValueError, TypeError, KeyError) as e:
        first = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise UsageError(
            ErrorCode.COSIGN_CONFIG_INVALID,
            f"trusted root {source} is not a usable Sigstore trusted_root.json ({first}); "
            "give sigstore's trusted_root.json (tuf:<repository> fetches it through TUF)",
        ) from None
    return TrustRoot(root, source, hashlib.sha256(data).hexdigest())


def _verify_purpose() -> Any:
    from sigstore._internal.trust import KeyringPurpose

    return KeyringPurpose.VERIFY


def _read_file(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_TRUSTED_ROOT_BYTES + 1)
    except OSError as e:
        raise UsageError(
            ErrorCode.COSIGN_CONFIG_INVALID,
            f"--trusted-root {path}: cannot read it ({e.strerror or type(e).__name__})",
        ) from None
    return data


def _cache_paths(options: Options | None, repo: str) -> tuple[Path, Path] | None:
    """(the TUF client's verified metadata of ``repo``, trustcheck's copy of the
    verified trusted_root.json) in the state dir, for an http(s) repository."""
    if options is None or options.state is None or "://" not in repo:
        return None
    if repo.lower().startswith("file://"):
        return None
    name = repo.rstrip("/")
    ident = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    state = Path(options.state.path)
    return state / "tuf" / "v1" / ident / "current", state / "sigstore" / "v1" / ident


def _store_copy(folder: Path, data: bytes) -> None:
    from trustcheck.local.fsutil import atomic_write

    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(folder / TRUSTED_ROOT_TARGET, data, mode=0o600)
    except OSError as e:
        raise UsageError(
            ErrorCode.STATE_DIR_UNWRITABLE,
            f"cannot keep the verified trusted root in {folder} "
            f"({e.strerror or type(e).__name__}); check --state-dir",
        ) from None


def _cached(repo: str, at: datetime | None, options: Options | None) -> tuple[bytes, Any]:
    """The trusted root verified by an earlier online run, re-verified offline: the TUF
    metadata trusted then (root, timestamp, snapshot, targets in the state dir) is
    loaded again at ``at`` (so a stale copy expires as the repository's would) and the
    kept file must be the target it signs."""
    from trustcheck.tuf.download import download_targets

    paths = _cache_paths(options, repo)
    if paths is None:
        raise UsageError(
            ErrorCode.COSIGN_CONFIG_INVALID,
            f"--trusted-root-cached works for an https TUF repository with a state dir; "
            f"{repo} is a folder: it is read offline anyway",
        )
    meta, copy = paths
    if not (meta / "root.json").is_file() or not (copy / TRUSTED_ROOT_TARGET).is_file():
        raise UsageError(
            ErrorCode.COSIGN_CONFIG_INVALID,
            f"no trusted root of tuf:{repo} was verified before in the state dir "
            f"{meta.parents[3]}: run once without --trusted-root-cached",
        )
    with tempfile.TemporaryDirectory(prefix="trustcheck-sigstore-") as tmp:
        results = download_targets(
            str(meta),
            [TRUSTED_ROOT_TARGET],
            Path(tmp) / "out",
            at,
            None,
            target_base_url=str(copy),
            root=(meta / "root.json").read_bytes(),
            metadata_dir=Path(tmp) / "meta",
            stop_on_error=True,
        )
        res = results[0]
        if res.error is not None:
            raise res.error
        assert res.file is not None
        return Path(res.file).read_bytes(), res


def load_trust_root(
    spec: Path | str,
    *,
    at: datetime | None = None,
    options: Options | None = None,
    tuf_root: Path | None = None,
    unsafe_http: bool = False,
    metadata_dir: Path | None = None,
    cached: bool = False,
) -> TrustRoot:
    """The trusted root named by ``spec``: ``tuf:<repo>`` (through TUF) or a file.

    ``cached``: no request to the TUF repository; the copy verified by an earlier run
    (kept in the state dir of ``options``) is re-verified against the TUF metadata
    trusted then, at ``at``."""
    text = str(spec)
    if not text.startswith("tuf:"):
        path = Path(text)
        root = parse_trust_root(_read_file(path), f"file:{path}")
        root.details["trust"] = "file (trust on file)"
        return root
    repo = text[4:]
    if not repo:
        raise UsageError(
            ErrorCode.COSIGN_CONFIG_INVALID,
            "--trusted-root tuf: needs a TUF repository folder or URL, "
            "e.g. tuf:https://tuf-repo-cdn.sigstore.dev",
        )
    require_sigstore("verifying keyless (Sigstore) signatures")
    from trustcheck.tuf.download import download_targets

    if cached:
        data, res = _cached(repo, at, options)
        root = parse_trust_root(data, f"tuf:{repo}")
        root.details.update(
            {
                "trust": "TUF 1.0 target (verified copy from the state dir, offline)",
                "tuf_repository": repo,
                "tuf_role": res.role or "",
                "tuf_digest": res.digest or "",
            }
        )
        return root
    boot: bytes | None = None
    if tuf_root is not None:
        try:
            boot = tuf_root.read_bytes()
        except OSError as e:
            raise UsageError(
                ErrorCode.COSIGN_CONFIG_INVALID,
                f"--tuf-root {tuf_root}: cannot read it ({e.strerror or type(e).__name__})",
            ) from None
    # sigstore's repositories (tuf-repo-cdn.sigstore.dev) serve the metadata at the
    # root of the URL and the target files under targets/
    target_base: str | None = None
    if "://" in repo and not repo.lower().startswith("file://"):
        base = repo.rstrip("/")
        if not base.endswith("/metadata"):
            target_base = base + "/targets"
    with tempfile.TemporaryDirectory(prefix="trustcheck-sigstore-") as tmp:
        results = download_targets(
            repo,
            [TRUSTED_ROOT_TARGET],
            tmp,
            at,
            options,
            target_base_url=target_base,
            root=boot,
            unsafe_http=unsafe_http,
            metadata_dir=metadata_dir,
            stop_on_error=True,
        )
        res = results[0]
        if res.error is not None:
            raise res.error
        assert res.file is not None
        data = Path(res.file).read_bytes()
    root = parse_trust_root(data, f"tuf:{repo}")
    paths = _cache_paths(options, repo)
    if paths is not None:
        _store_copy(paths[1], data)
    root.details.update(
        {
            "trust": "TUF 1.0 target",
            "tuf_repository": repo,
            "tuf_role": res.role or "",
            "tuf_digest": res.digest or "",
        }
    )
    return root
