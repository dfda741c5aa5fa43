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


def load_trust_root(
    spec: Path | str,
    *,
    at: datetime | None = None,
    options: Options | None = None,
    tuf_root: Path | None = None,
    unsafe_http: bool = False,
    metadata_dir: Path | None = None,
) -> TrustRoot:
    """The trusted root named by ``spec``: ``tuf:<repo>`` (through TUF) or a file."""
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
    root.details.update(
        {
            "trust": "TUF 1.0 target",
            "tuf_repository": repo,
            "tuf_role": res.role or "",
            "tuf_digest": res.digest or "",
        }
    )
    return root
