"""Standard TUF 1.0 repositories, verified with python-tuf (the reference implementation).

trustcheck reads two dialects of trust data:

* **Notary v1** (Docker Content Trust): ``_type`` ``"Root"``, ``"Targets"``...,
  no ``spec_version``, keys with ``keyval.private`` and ``-x509`` key types;
  verified by :mod:`trustcheck.core.verify`.
* **TUF 1.0** (sigstore's root of trust, TUF-on-CI, python-tuf and go-tuf
  repositories): ``_type`` ``"root"``, ``"targets"``..., ``spec_version``
  ``1.x``, keys with a ``scheme``; verified here.

:func:`detect_dialect` tells them apart from the metadata itself.

How a TUF 1.0 repository is verified (docs/tuf.md)
--------------------------------------------------

1. **python-tuf's** :class:`~tuf.ngclient.Updater` runs the TUF client workflow
   (spec §5: root rotation through ``N.root.json``, timestamp, snapshot,
   targets, the pre-order delegation walk, rollback protection against the
   metadata trusted before, consistent snapshots, length caps) over a
   :class:`~tuf.ngclient.FetcherInterface` reading a local repository folder
   (:class:`_LocalFetcher`: path checks and size caps as in trustdir.py) or
   over HTTPS (python-tuf's own ``Urllib3Fetcher``). Its ``metadata_dir`` is a
   per-repository folder of the trustcheck state dir (or the caller's
   ``metadata_dir``), so rollback protection holds across runs; each role is
   persisted there as soon as it verifies, as the specification's workflow
   says, after trustcheck's own checks of it (:func:`_checked_updater`). The
   validation time (``--at``) is python-tuf's reference time.
2. **trustcheck then re-verifies** what python-tuf trusted, from the files
   python-tuf persisted, with python-tuf's own Metadata API, and adds what
   python-tuf does not check (the same rules as for Notary):

   * thresholds count **distinct public keys**, not key IDs;
   * a key ID must be a **hash of its key** in a form some implementation
     computed (:func:`keyid_is_bound`), or inherited from the root before,
     and never a hash of another listed key (:meth:`_Session._check_keyids`);
   * JSON objects with a **field written twice** are refused;
   * **pins** (``keyid:`` / ``spki-sha256:``) on the root and on signers.

3. Errors of python-tuf are mapped to trustcheck's stable codes with one
   actionable line (:func:`_map_error`); a traceback never reaches a user.

4. Target files (:func:`download_targets`) are streamed, capped at the
   signed length, checked against every signed hash and renamed into place.

Real data python-tuf cannot read is handled here: ECDSA keys written as hex
points (:func:`_register_hex_ec_keys`) and roots whose ``expires`` python-tuf
cannot parse, walked by trustcheck (:meth:`_Session._walk_legacy_roots`).

python-tuf's ``Updater`` is driven through non-public parts: the reference
time of its trusted set (``--at``, :func:`_set_reference_time`) and its
persistence methods (:func:`_checked_updater`); both fail closed if renamed.

python-tuf is imported lazily, so importing this module (for
:func:`detect_dialect`) costs nothing.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, unquote, urlsplit

from trustcheck.core.timefmt import iso as _iso
from trustcheck.errors import NotTrusted, TrustcheckError, UsageError

if TYPE_CHECKING:
    from securesystemslib.signer import Key  # type: ignore[attr-defined]
    from tuf.api.metadata import (  # type: ignore[attr-defined]
        Metadata,
        Root,
        Snapshot,
        TargetFile,
        Targets,
    )
    from tuf.ngclient.config import UpdaterConfig
    from tuf.ngclient.fetcher import FetcherInterface
    from tuf.ngclient.updater import Updater

    from trustcheck.api import ImageResult, Options
    from trustcheck.core.identity import Identifier
    from trustcheck.core.thumbprint import KeyReport
    from trustcheck.local.pinfile import PinEntry

__all__ = [
    "ClientLimits",
    "Dialect",
    "DownloadResult",
    "RefreshResult",
    "RepoReport",
    "detect_dialect",
    "download_targets",
    "inspect_repository",
    "keyid_is_bound",
    "keys_of_repository",
    "local_target_name",
    "public_key_identity",
    "refresh",
    "verify_targets",
]

Dialect = Literal["notary", "tuf"]

_NOTARY_TYPES = frozenset({"Root", "Targets", "Snapshot", "Timestamp"})
_TUF_TYPES = frozenset({"root", "targets", "snapshot", "timestamp"})
_TOP_LEVEL = ("root", "timestamp", "snapshot", "targets")
#: largest file :func:`detect_dialect` reads (notary's MaxDownloadSize)
_DETECT_CAP = 100 << 20
_CHUNK = 1 << 16


# ----------------------------------------------------------------------------- dialect


def _dialect_of_document(doc: Any, where: str) -> Dialect:
    if isinstance(doc, dict) and "payloadType" in doc and "payload" in doc:
        return "tuf"  # a DSSE envelope: TUF metadata (python-tuf's SIMPLE envelope)
    signed = doc.get("signed") if isinstance(doc, dict) else None
    if not isinstance(signed, dict):
        raise UsageError(
            "invalid-argument",
            f"cannot tell the dialect of {where}: it is not signed metadata "
            '(no "signed" object); give a root.json, timestamp.json or the folder holding them',
        )
    kind = signed.get("_type")
    if kind in _NOTARY_TYPES:
        return "notary"
    if kind in _TUF_TYPES and "spec_version" in signed:
        return "tuf"
    keys = signed.get("keys")
    if isinstance(keys, dict):
        for key in keys.values():
            if not isinstance(key, dict):
                continue
            if "scheme" in key:
                return "tuf"
            keyval = key.get("keyval")
            if str(key.get("keytype", "")).endswith("-x509") or (
                isinstance(keyval, dict) and "private" in keyval
            ):
                return "notary"
    raise UsageError(
        "invalid-argument",
        f"cannot tell the dialect of {where}: _type {str(kind)[:40]!r} is neither Notary v1 "
        "('Root', 'Targets', ...) nor TUF 1.0 ('root', ... with spec_version); "
        "use --dialect to choose",
    )


def _read_small(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(_DETECT_CAP + 1)
    except OSError as e:
        raise UsageError("invalid-argument", f"cannot read {path}: {e.strerror or e}") from e
    if len(data) > _DETECT_CAP:
        raise UsageError("invalid-argument", f"{path} is larger than 100 MiB; not metadata")
    return data


_DETECT_NAMES = ("root.json", "1.root.json", "timestamp.json")


def detect_dialect(source: bytes | str | os.PathLike[str]) -> Dialect:
    """``"notary"`` or ``"tuf"``, from the metadata itself.

    ``source`` is the bytes of one metadata file, the path of one, or a folder:
    a TUF repository (``root.json``, ``1.root.json`` or ``timestamp.json`` in
    it or in its ``metadata/`` folder) or a Notary GUN folder
    (``.../tuf/<GUN>/metadata``, or the GUN folder above it).

    Rules, first match wins: ``signed._type`` ``Root``/``Targets``/
    ``Snapshot``/``Timestamp`` is Notary v1; a lower-case ``_type`` with
    ``spec_version`` is TUF 1.0; otherwise a key with a ``scheme`` is TUF and a
    key of an ``*-x509`` type or with ``keyval.private`` is Notary. A DSSE
    envelope is TUF. Anything else is a :class:`~trustcheck.errors.UsageError`
    (``invalid-argument``) asking for ``--dialect``.
    """
    if isinstance(source, bytes | bytearray):
        where = "the metadata"
        data = bytes(source)
    else:
        path = Path(source)
        where = str(path)
        if path.is_dir():
            found = None
            for folder in (path, path / "metadata"):
                for name in _DETECT_NAMES:
                    if (folder / name).is_file():
                        found = folder / name
                        break
                if found is not None:
                    break
            if found is None:
                raise UsageError(
                    "invalid-argument",
                    f"cannot tell the dialect of {path}: no root.json, 1.root.json or "
                    "timestamp.json in it or in its metadata/ folder",
                )
            path, where = found, str(found)
        data = _read_small(path)
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise UsageError(
            "invalid-argument", f"cannot tell the dialect of {where}: not valid JSON ({e})"
        ) from e
    return _dialect_of_document(doc, where)


# ----------------------------------------------------------------------------- keys


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(obj: Any) -> bytes | None:
    from securesystemslib.exceptions import FormatError
    from securesystemslib.formats import encode_canonical

    try:
        text = encode_canonical(obj)
    except (FormatError, TypeError, ValueError):
        return None
    return text.encode("utf-8") if isinstance(text, str) else None


#: what securesystemslib < 0.22 added to every key before hashing it, listed or not
_LEGACY_KEYID_HASH_ALGORITHMS = ["sha256", "sha512"]


def _keyid_forms(key: Key) -> set[str]:
    """Every key ID a TUF implementation computed for ``key`` (hex SHA-256 and SHA-512)."""
    d = key.to_dict()
    base = {"keytype": key.keytype, "scheme": key.scheme, "keyval": key.keyval}
    forms: list[dict[str, Any]] = [
        base,  # securesystemslib >= 0.22, python-tuf >= 1.0, go-tuf
        d,  # TUF 0.x: the key as listed, keyid_hash_algorithms and extra fields included
        {k: v for k, v in d.items() if not k.startswith("x-")},  # before x- annotations
        {**base, "keyid_hash_algorithms": _LEGACY_KEYID_HASH_ALGORITHMS},  # sslib < 0.22
    ]
    out: set[str] = set()
    for form in forms:
        data = _canonical(form)
        if data is not None:
            out.add(_sha256_hex(data))
            out.add(hashlib.sha512(data).hexdigest())
    return out


def keyid_is_bound(key: Key) -> bool | None:
    """Whether ``key.keyid`` is a hash of the key (``None``: the key type defines no such hash).

    For the keys of securesystemslib's ``SSlibKey`` family (``ed25519``,
    ``ecdsa``, ``ecdsa-sha2-nistp256/384/521``, ``rsa``, ``ml-dsa``) the key ID
    must be the lower-case hex SHA-256 (or SHA-512, which TUF 0.x also
    wrote) of the OLPC canonical JSON of one of

    * ``{"keytype", "scheme", "keyval"}`` -- what securesystemslib >= 0.22,
      python-tuf >= 1.0 and go-tuf compute (``compute_default_keyid``);
    * the whole key object as the metadata holds it, including
      ``keyid_hash_algorithms`` and any other extra field -- TUF 0.x;
    * that object without its ``x-`` annotation fields;
    * ``{"keytype", "scheme", "keyval", "keyid_hash_algorithms":
      ["sha256", "sha512"]}`` -- securesystemslib < 0.22, which added that
      field to every key before hashing it even where the metadata does not
      list it (python-tuf's own ``ed25519_metadata`` and ``fishy_rolenames``
      test data, sigstore's early roots).

    Other key types (OpenPGP, sigstore-oidc) name their keys their own way and
    are not checked (``None``).
    """
    from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

    if not isinstance(key, SSlibKey):
        return None
    return key.keyid in _keyid_forms(key)


def _expected_keyid(key: Key) -> str:
    base = _canonical({"keytype": key.keytype, "scheme": key.scheme, "keyval": key.keyval})
    return _sha256_hex(base) if base is not None else "?"


_EC_CURVES = {"nistp256": "SECP256R1", "nistp384": "SECP384R1", "nistp521": "SECP521R1"}
_HEX_POINT = re.compile(r"0[234][0-9a-fA-F]{64,264}")


def _hex_ec_point(keytype: str, scheme: str, public: str) -> Any | None:
    """An ECDSA public key written as a hex SEC1 point (go-tuf 0.x, sigstore roots v1-v4).

    Only for ``ecdsa``/``ecdsa-sha2-nistpNNN`` keys whose value is not PEM;
    the curve is the one the key type or scheme names.
    """
    from cryptography.hazmat.primitives.asymmetric import ec

    if not (keytype == "ecdsa" or keytype.startswith("ecdsa-sha2-")):
        return None
    if not _HEX_POINT.fullmatch(public):
        return None
    name = (keytype if keytype.startswith("ecdsa-sha2-") else scheme).rsplit("-", 1)[-1]
    curve_name = _EC_CURVES.get(name)
    if curve_name is None:
        return None
    curve = getattr(ec, curve_name)()
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, bytes.fromhex(public))
    except ValueError:
        return None


_HEX_KEYS_REGISTERED = False


def _register_hex_ec_keys() -> None:
    """Let securesystemslib (hence python-tuf) verify ECDSA keys written as hex points.

    securesystemslib loads ECDSA keys from PEM only, so python-tuf cannot
    verify sigstore's roots v1-v4 (written by go-tuf 0.x with hex-encoded
    points). The key class registered for the ``ecdsa-sha2-nistp256/384``
    key types decodes such a point and defers everything else -- PEM keys,
    verification itself -- to securesystemslib's ``SSlibKey`` unchanged.
    """
    global _HEX_KEYS_REGISTERED
    if _HEX_KEYS_REGISTERED:
        return
    from securesystemslib.signer import (  # type: ignore[attr-defined]
        KEY_FOR_TYPE_AND_SCHEME,
        SSlibKey,
    )

    class HexPointKey(SSlibKey):
        def _crypto_key(self) -> Any:
            public = self.keyval.get("public") if isinstance(self.keyval, dict) else None
            if isinstance(public, str):
                point = _hex_ec_point(self.keytype, self.scheme, public)
                if point is not None:
                    return point
            return super()._crypto_key()

    for keytype in ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384"):
        if KEY_FOR_TYPE_AND_SCHEME.get((keytype, keytype)) is SSlibKey:
            KEY_FOR_TYPE_AND_SCHEME[(keytype, keytype)] = HexPointKey
    _HEX_KEYS_REGISTERED = True


def _spki_der(key: Key) -> bytes | None:
    """The DER SubjectPublicKeyInfo of an ed25519 / ecdsa / rsa key, else None."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_public_key,
    )

    public = key.keyval.get("public") if isinstance(key.keyval, dict) else None
    if not isinstance(public, str):
        return None
    try:
        point = _hex_ec_point(key.keytype, key.scheme, public)
        if point is not None:
            pub: Any = point
        elif key.keytype == "ed25519":
            pub = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public))
        elif key.keytype in ("ecdsa", "rsa") or key.keytype.startswith("ecdsa-sha2-"):
            pub = load_pem_public_key(public.encode("utf-8"))
        else:
            return None
        der: bytes = pub.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except Exception:  # malformed key material: no identity from it
        return None
    return der


def public_key_identity(key: Key) -> str:
    """What makes two keys the same key: their public key, not their key ID.

    ``spki:<sha256 of the DER SubjectPublicKeyInfo>`` for ed25519, ecdsa and
    rsa keys (so a PEM re-wrapped differently, or ``ecdsa`` vs the legacy
    ``ecdsa-sha2-nistp256`` key type, is still one key); otherwise the key type
    and the canonical JSON of ``keyval``.
    """
    der = _spki_der(key)
    if der is not None:
        return "spki:" + _sha256_hex(der)
    raw = _canonical(key.keyval) or repr(key.keyval).encode()
    return f"raw:{key.keytype}:" + _sha256_hex(raw)


def _describe_key(key: Key) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    der = _spki_der(key)
    if der is None:
        return f"{key.keytype} ({key.scheme})"
    pub = load_der_public_key(der)
    if isinstance(pub, ec.EllipticCurvePublicKey):
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return f"ECDSA {names.get(pub.curve.name, pub.curve.name)}"
    if isinstance(pub, rsa.RSAPublicKey):
        return f"RSA {pub.key_size}"
    return "Ed25519"


def _identifiers(key: Key) -> set[Identifier]:
    """Identifiers a pin can name a TUF key by: ``spki-sha256`` and (if bound) ``keyid``."""
    from trustcheck.core.identity import Identifier

    ids: set[Identifier] = set()
    if keyid_is_bound(key) and re.fullmatch(r"[0-9a-f]{64}", key.keyid):
        ids.add(Identifier("keyid", key.keyid))
    der = _spki_der(key)
    if der is not None:
        ids.add(Identifier("spki-sha256", _sha256_hex(der)))
    return ids


# ----------------------------------------------------------------------------- limits


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
                    "invalid-argument",
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


# ----------------------------------------------------------------------------- fetchers


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
                    "unsafe-path",
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
                    raise UsageError("unsafe-path", f"{name} changed into a symlink") from e
                raise UsageError(
                    "trust-dir-unreadable", f"cannot read {base / name}: {e.strerror or e}"
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
                    "trust-dir-unreadable", f"cannot read {base / name}: {e.strerror or e}"
                ) from e
            finally:
                os.close(fd)

    return LocalFetcher()


def _http_fetcher(recorder: _Recorder, timeout: float) -> FetcherInterface:
    """python-tuf's own urllib3 fetcher, recording what it is asked for."""
    from tuf.ngclient.urllib3_fetcher import Urllib3Fetcher

    class HttpFetcher(Urllib3Fetcher):
        def download_bytes(self, url: str, max_length: int) -> bytes:
            recorder.record(url, max_length)
            return super().download_bytes(url, max_length)

    return HttpFetcher(socket_timeout=max(1, round(timeout)), app_user_agent="trustcheck")


@dataclass(slots=True)
class _Location:
    name: str  # what pins and the state dir know the repository by
    base_url: str
    local: Path | None
    fetcher: FetcherInterface
    recorder: _Recorder


def _locate(repo: str, unsafe_http: bool, timeout: float) -> _Location:
    """``--repo``: a local folder (or ``file://`` URL) or an https URL of the metadata."""
    if "://" in repo:
        parts = urlsplit(repo)
        scheme = parts.scheme.lower()
        if scheme == "file":
            return _locate(unquote(parts.path), unsafe_http, timeout)
        if scheme == "http" and not unsafe_http:
            raise UsageError(
                "insecure-server",
                f"--repo {repo} is plain http: metadata and its sizes would travel unprotected; "
                "use https (--unsafe-http is for test servers only)",
            )
        if scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(
                "invalid-argument",
                f"--repo {repo!r} is neither a folder nor an https URL of a TUF metadata folder",
            )
        name = repo.rstrip("/")
        recorder = _Recorder(name + "/")
        return _Location(name, name + "/", None, _http_fetcher(recorder, timeout), recorder)
    path = Path(repo)
    if not path.is_dir():
        raise UsageError(
            "invalid-argument",
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


# ----------------------------------------------------------------------------- error mapping


@dataclass(slots=True)
class _Ctx:
    repo: str
    limits: ClientLimits
    recorder: _Recorder
    phase: str = "bootstrap"  # bootstrap | refresh | target
    root_origin: str = "the trusted root"


def _role_of_file(name: str | None) -> str | None:
    if name is None:
        return None
    base = name.rsplit("/", 1)[-1] if name.startswith("root_history/") else name
    base = base.removesuffix(".json")
    m = re.fullmatch(r"[1-9][0-9]{0,9}\.(.+)", base)
    if m is not None:
        base = m.group(1)
    return base


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
                "file-too-large",
                f"{src} is larger than the client limit of {cap} bytes "
                f"(endless-data attack or a huge file); raise --{role or 'targets'}-max-length "
                "only if the repository really publishes such files",
                role=role,
            )
        return NotTrusted(
            "length-exceeded",
            f"{src} is longer than the {cap} bytes its parent metadata allows "
            "(endless-data attack or a modified file); fetch or mirror the repository again",
            role=role,
        )
    if isinstance(exc, tx.DownloadHTTPError):
        if exc.status_code == 404:
            return NotTrusted(
                "role-missing",
                f"{file} is missing from {repo}; mirror the complete repository "
                "(timestamp.json, N.root.json and the snapshot, targets and delegated role "
                "files its metadata names)",
                role=role,
            )
        if exc.status_code in (401, 403):
            return NotTrusted(
                "auth-failed",
                f"{repo} refused {file} (HTTP {exc.status_code}); check access to the repository",
                role=role,
            )
        return NotTrusted(
            "server-error",
            f"{repo} answered HTTP {exc.status_code} for {file}; try again later",
            role=role,
        )
    if isinstance(exc, tx.SlowRetrievalError) and not _caused_by(exc, _NET_ERRORS):
        return NotTrusted(
            "server-timeout",
            f"{repo} did not send {file} in time; raise --timeout for slow links",
            role=role,
        )
    if isinstance(exc, tx.DownloadError):
        if _has_ssl_cause(exc):
            return NotTrusted(
                "tls-error",
                f"the TLS certificate of {repo} could not be verified while fetching {file} "
                f"({_net_detail(exc)}); check the URL and the system CA store",
                role=role,
            )
        return NotTrusted(
            "network-error",
            f"could not fetch {file} from {repo} ({_net_detail(exc)}); check the URL and the "
            "network",
            role=role,
        )
    if isinstance(exc, DeserializationError):
        cause = exc.__cause__
        if isinstance(cause, UnicodeDecodeError | json.JSONDecodeError | RecursionError):
            return NotTrusted(
                "malformed-json",
                f"{src} is not valid JSON ({cause}); fetch or mirror the repository again",
                role=role or "root",
            )
        return NotTrusted(
            "invalid-structure",
            f"{src} is not TUF 1.0 metadata python-tuf accepts "
            f"({type(cause).__name__ if cause else 'error'}: {cause or msg}); "
            "it was not written by a TUF 1.0 signer",
            role=role or "root",
        )
    if isinstance(exc, FormatError | SerializationError):
        detail = str(exc.__cause__ or exc).rsplit(": ", 1)[-1]
        return NotTrusted(
            "non-canonical-number",
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
                "root-rotation-invalid",
                f"{src} is signed by {counts} required root keys (of the root "
                "trusted before, or of its own); it may be forged. Verify it out of band, "
                "then pass it with --root or pin its keys",
                role="root",
            )
        if who == "root":
            return NotTrusted(
                "threshold-not-met",
                f"{ctx.root_origin} is signed by {counts} of its own root keys: it was altered "
                "after signing. Get a genuine root.json out of band",
                role="root",
            )
        return NotTrusted(
            "threshold-not-met",
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
            "metadata-expired",
            f"{who}.json from {repo} has expired at the validation time: {action}",
            role=who,
        )
    if isinstance(exc, tx.LengthOrHashMismatchError):
        m = re.match(r"Observed length (\d+) does not match expected length (\d+)", msg)
        if m is not None and int(m.group(1)) > int(m.group(2)):
            return NotTrusted(
                "length-exceeded",
                f"{src} is {m.group(1)} bytes, longer than the {m.group(2)} its "
                "parent metadata records (endless data or a modified file); fetch again",
                role=role,
            )
        return NotTrusted(
            "hash-mismatch",
            f"{src} does not match the length/hashes its parent metadata records "
            f"({msg}): mix-and-match or a modified file; fetch or mirror again",
            role=role,
        )
    if isinstance(exc, tx.RepositoryError):
        m = re.match(r"Expected '(\w+)', got '(.*)'$", msg)
        if m is not None:
            return NotTrusted(
                "wrong-type",
                f"{src} is {m.group(2)!r} metadata where {m.group(1)!r} belongs: "
                "a file of another role was put in its place",
                role=role,
            )
        m = re.match(r"Role (.+) was delegated but is not part of snapshot$", msg) or re.match(
            r"Snapshot does not contain information for '(.+)'$", msg
        )
        if m is not None:
            return NotTrusted(
                "role-missing",
                f"role {m.group(1)} is delegated but snapshot.json of {repo} does not list it; "
                "the repository is inconsistent, ask its owner to publish a new snapshot",
                role=m.group(1),
            )
        m = re.match(r"New snapshot is missing info for '(.+)'$", msg)
        if m is not None:
            return NotTrusted(
                "version-rollback",
                f"the new snapshot.json of {repo} drops {m.group(1)}, which the snapshot "
                "trusted before lists: old or forged metadata is being replayed",
                role="snapshot",
            )
        return NotTrusted(
            "invalid-structure",
            f"{src}: {msg}",
            role=role,
        )
    if isinstance(exc, ValueError):
        return NotTrusted(
            "invalid-delegation",
            f"a delegation of {repo} is inconsistent ({msg}); the repository is malformed",
            role=role,
        )
    if isinstance(exc, OSError):
        return UsageError(
            "state-invalid",
            f"cannot write the trusted metadata of {repo} to the state dir "
            f"({exc.strerror or exc}); check --state-dir",
        )
    raise exc


def _map_version(msg: str, ctx: _Ctx, file: str | None, role: str | None) -> TrustcheckError:
    repo = ctx.repo
    if msg.startswith("Expected root version"):
        return NotTrusted(
            "root-rotation-invalid",
            f"{file} from {repo} does not hold the root version its name promises ({msg}); "
            "it may be an old root replayed. Verify the current root out of band",
            role="root",
        )
    m = re.match(r"New timestamp version (\d+) must be >= (\d+)", msg)
    if m is not None:
        return NotTrusted(
            "version-rollback",
            f"timestamp.json from {repo} is v{m.group(1)}, older than v{m.group(2)} trusted "
            "before: old metadata is being replayed (rollback or freeze attack)",
            role="timestamp",
        )
    m = re.match(r"New snapshot version must be >= (\d+), got version (\d+)", msg)
    if m is not None:
        return NotTrusted(
            "version-rollback",
            f"timestamp.json from {repo} names snapshot v{m.group(2)}, older than "
            f"v{m.group(1)} trusted before: old metadata is being replayed",
            role="snapshot",
        )
    m = _RE_META_ROLLBACK.match(msg)
    if m is not None:
        return NotTrusted(
            "version-rollback",
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
                "version-rollback",
                f"{who}.json from {repo} is v{got} but {parent} names v{want}: an old file "
                "is being replayed (mix-and-match); fetch or mirror the repository again",
                role=who,
            )
        return NotTrusted(
            "version-mismatch",
            f"{who}.json from {repo} is v{got} but {parent} names v{want}: the files do not "
            "belong together (mix-and-match or a half-published update); fetch again",
            role=who,
        )
    return NotTrusted("version-rollback", f"{file or 'metadata'} from {repo}: {msg}", role=role)


# ----------------------------------------------------------------------------- strict parse


class _DuplicateField(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateField(k)
        out[k] = v
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse(data: bytes, file: str, repo: str) -> Metadata[Any]:
    """python-tuf's Metadata from ``data``, refusing a field written twice (parser differential)."""
    from tuf.api.metadata import Metadata

    role = _role_of_file(file)
    try:
        doc = json.loads(
            data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constants
        )
    except _DuplicateField as e:
        raise NotTrusted(
            "invalid-structure",
            f"{file} from {repo} writes the field {str(e)[:60]!r} twice; parsers disagree on "
            "which one counts, so trustcheck refuses it (no TUF signer writes this)",
            role=role,
        ) from e
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise NotTrusted(
            "malformed-json",
            f"{file} from {repo} is not valid JSON ({e}); fetch or mirror the repository again",
            role=role,
        ) from e
    if not isinstance(doc, dict):
        raise NotTrusted("invalid-structure", f"{file} from {repo} is not a JSON object", role=role)
    try:
        md: Metadata[Any] = Metadata.from_dict(doc)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise NotTrusted(
            "invalid-structure",
            f"{file} from {repo} is not TUF 1.0 metadata ({type(e).__name__}: {e})",
            role=role,
        ) from e
    return md


# ----------------------------------------------------------------------------- results


@dataclass(slots=True)
class RoleInfo:
    """One verified role: what was checked (results as data)."""

    name: str
    version: int
    expires: str
    threshold: int
    keyids: list[str]
    signed_by: list[str]  # key IDs whose signatures counted (one per distinct public key)
    delegated_by: str | None
    paths: list[str] | None = None
    path_hash_prefixes: list[str] | None = None
    succinct: str | None = None  # "<name_prefix>-*" for a hash-bin role
    terminating: bool | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "expires": self.expires,
            "threshold": self.threshold,
            "keyids": self.keyids,
            "signed_by": self.signed_by,
            "delegated_by": self.delegated_by,
        }
        if self.delegated_by not in (None, "root"):
            out["terminating"] = self.terminating
            if self.paths is not None:
                out["paths"] = self.paths
            if self.path_hash_prefixes is not None:
                out["path_hash_prefixes"] = self.path_hash_prefixes
            if self.succinct is not None:
                out["succinct_roles"] = self.succinct
        return out


@dataclass(slots=True)
class TargetEntry:
    path: str
    role: str
    length: int
    hashes: dict[str, str]
    effective: bool  # whether `tuf verify PATH` resolves to this very entry

    @property
    def digest(self) -> str | None:
        return _digest(self.hashes)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "role": self.role,
            "digest": self.digest,
            "length": self.length,
            "hashes": dict(sorted(self.hashes.items())),
            "effective": self.effective,
        }


@dataclass(slots=True)
class RepoReport:
    """``trustcheck tuf inspect``: roles, keys and targets of one verified repository."""

    repository: str
    spec_version: str
    consistent_snapshot: bool
    roles: list[RoleInfo] = field(default_factory=list)
    keys: list[dict[str, Any]] = field(default_factory=list)
    targets: list[TargetEntry] = field(default_factory=list)
    skipped: list[dict[str, str | None]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "dialect": "tuf",
            "spec_version": self.spec_version,
            "consistent_snapshot": self.consistent_snapshot,
            "roles": [r.to_json() for r in self.roles],
            "keys": self.keys,
            "targets": [t.to_json() for t in self.targets],
            "skipped": self.skipped,
        }

    def render_text(self) -> str:
        lines = [
            f"Repository: {self.repository}",
            f"TUF spec {self.spec_version}, consistent snapshots: "
            f"{'yes' if self.consistent_snapshot else 'no'}",
            "",
            "Roles",
        ]
        for r in self.roles:
            scope = ""
            if r.paths is not None:
                scope = " paths " + ", ".join(r.paths)
            elif r.path_hash_prefixes is not None:
                scope = " hash prefixes " + ", ".join(r.path_hash_prefixes)
            elif r.succinct is not None:
                scope = f" hash bins {r.succinct}"
            if r.terminating:
                scope += " (terminating)"
            by = f" <- {r.delegated_by}" if r.delegated_by not in (None, "root") else ""
            lines.append(
                f"  {r.name:<20} v{r.version:<5} expires {r.expires}  "
                f"{len(r.signed_by)} of {len(r.keyids)} keys signed "
                f"(threshold {r.threshold}){by}{scope}"
            )
        lines += ["", "Keys"]
        for k in self.keys:
            lines.append(f"  {k['keyid']}  {k['algorithm']:<11} {', '.join(k['roles'])}")
        lines += ["", "Targets"]
        if not self.targets:
            lines.append("  (none)")
        for t in self.targets:
            mark = "" if t.effective else "  (shadowed: not what verify resolves)"
            lines.append(f"  {t.path}  {t.digest or '-'}  {t.length} bytes  [{t.role}]{mark}")
        for s in self.skipped:
            lines.append(f"skipped role {s['role']}: [{s['code']}] {s['message']}")
        return "\n".join(lines)


def _digest(hashes: dict[str, str]) -> str | None:
    for algo in ("sha256", "sha512"):
        value = hashes.get(algo)
        if isinstance(value, str) and value:
            return f"{algo}:{value.lower()}"
    return None


# ----------------------------------------------------------------------------- state dir


def _state_root(options: Options | None) -> Path | None:
    if options is None or options.state is None:
        return None
    return Path(options.state.path) / "tuf" / "v1"


class _Workspace:
    """python-tuf's ``metadata_dir`` for one repository, used under its lock.

    Layout: ``<state>/tuf/v1/<sha256(repository)[:32]>/`` holds ``repository``
    (the name, checked) and ``current/``, python-tuf's own layout
    (``root_history/N.root.json``, ``root.json``, ``timestamp.json`` ...).
    As the TUF client workflow (spec §5) says, each role is written there as
    soon as it is verified -- python-tuf's atomic write (temp file, rename),
    after trustcheck's own checks (:meth:`_Session._check_persist`) -- so after
    any failure the trusted state is exactly what the specification requires
    (e.g. a good new root stays trusted when the timestamp after it is bad).
    The repository's lock (``<ident>.lock``, ``flock``) is held for the whole
    run, so parallel runs never interleave.

    With ``metadata_dir`` (the library's :func:`refresh` and the
    tuf-conformance client) that folder is used as is, locked by
    ``.trustcheck.lock`` in it. Without a state dir a temporary folder is used
    and removed.
    """

    def __init__(
        self, state_root: Path | None, repo: str, metadata_dir: Path | None = None
    ) -> None:
        self.repo = repo
        self.state_root = state_root
        self.metadata_dir = metadata_dir
        self.dir: Path
        self._lock_cm: Any = None
        self._temporary = False
        self.had_state = False

    def _lock(self, path: Path) -> None:
        from trustcheck.local.fsutil import locked

        self._lock_cm = locked(path)
        self._lock_cm.__enter__()

    def __enter__(self) -> _Workspace:
        try:
            if self.metadata_dir is not None:
                self.dir = self.metadata_dir
                self.dir.mkdir(parents=True, exist_ok=True)
                self._lock(self.dir / ".trustcheck.lock")
            elif self.state_root is None:
                self.dir = Path(tempfile.mkdtemp(prefix="trustcheck-tuf-"))
                self._temporary = True
            else:
                self._enter_state()
            self.had_state = (self.dir / "root.json").exists()
        except OSError as e:
            self.__exit__(None, None, None)
            where = self.metadata_dir or self.state_root
            raise UsageError(
                "state-invalid",
                f"cannot use {where} for the trusted metadata of {self.repo} "
                f"({e.strerror or e}); check --state-dir / --metadata-dir",
            ) from e
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _enter_state(self) -> None:
        assert self.state_root is not None
        ident = _sha256_hex(self.repo.encode("utf-8", "surrogatepass"))[:32]
        folder = self.state_root / ident
        self._lock(self.state_root / f"{ident}.lock")
        folder.mkdir(parents=True, exist_ok=True)
        name_file = folder / "repository"
        if name_file.exists():
            recorded = name_file.read_text("utf-8").strip()
            if recorded != self.repo:
                raise UsageError(
                    "state-invalid",
                    f"state folder {folder} belongs to {recorded[:200]!r}, not {self.repo!r}; "
                    "remove it to trust this repository on first use again",
                )
        else:
            from trustcheck.local.fsutil import atomic_write

            atomic_write(name_file, (self.repo + "\n").encode("utf-8"), mode=0o600)
        current = folder / "current"
        if current.is_symlink():
            # the layout of trustcheck <= 0.1 (generation folders behind a symlink)
            target = folder / os.readlink(current)
            os.unlink(current)
            if target.is_dir() and target.parent == folder:
                os.rename(target, current)
        for stale in folder.glob("g-*"):
            shutil.rmtree(stale, ignore_errors=True)
        current.mkdir(mode=0o700, exist_ok=True)
        self.dir = current

    def __exit__(self, *exc: object) -> None:
        try:
            if self._temporary:
                shutil.rmtree(self.dir, ignore_errors=True)
        finally:
            if self._lock_cm is not None:
                self._lock_cm.__exit__(None, None, None)
                self._lock_cm = None


# ----------------------------------------------------------------------------- the session


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


class _Refused(NotTrusted):
    """A check trustcheck adds to python-tuf's failed (distinct keys, bound key IDs, signer
    pins): fetching the file again cannot help, unlike python-tuf's own failures."""


@dataclass(slots=True)
class _Loaded:
    """A targets role verified by trustcheck, and the role that delegated it."""

    md: Metadata[Any]
    parent: str
    info: RoleInfo


class _Session:
    """One verification of one repository: python-tuf's Updater plus trustcheck's checks."""

    def __init__(
        self,
        repo: str,
        at: datetime,
        options: Options | None,
        root: bytes | None,
        limits: ClientLimits,
        unsafe_http: bool,
        timeout: float,
        allow_arbitrary_keyids: bool,
        metadata_dir: Path | None = None,
    ) -> None:
        limits.validate()
        if at.tzinfo is None:
            raise UsageError("invalid-argument", "the validation time needs a time zone")
        self.at = at.astimezone(UTC)
        self.options = options
        self.root_arg = root
        self.limits = limits
        self.allow_arbitrary_keyids = allow_arbitrary_keyids
        self.unsafe_http = unsafe_http
        self.loc = _locate(repo, unsafe_http, timeout)
        self.name = self.loc.name
        self.ctx = _Ctx(self.name, limits, self.loc.recorder)
        self.warnings: list[str] = []
        self.pin = self._pin_entry()
        self.ws = _Workspace(_state_root(options), self.name, metadata_dir)
        self.updater: Updater | None = None
        self.roots: list[Metadata[Any]] = []
        self.root_md: Metadata[Any] | None = None
        self.timestamp_md: Metadata[Any] | None = None
        self.snapshot_md: Metadata[Any] | None = None
        self.loaded: dict[str, _Loaded] = {}
        self.failed_roles: dict[str, NotTrusted] = {}
        self.top_infos: list[RoleInfo] = []
        self.skipped: list[dict[str, str | None]] = []
        self._warned_keyids: set[str] = set()
        self._bindings: dict[int, dict[str, str]] = {}

    # --- pins ------------------------------------------------------------------

    def _pin_entry(self) -> PinEntry | None:
        opts = self.options
        if opts is None or opts.pins is None:
            return None
        entry = opts.pins.lookup(self.name)
        if entry is None:
            return None
        where = entry.source or f'pins."{entry.pattern}"'
        if entry.ca is not None:
            raise UsageError(
                "pin-file-invalid",
                f"{where}: a ca pin applies to Notary root certificates; TUF 1.0 keys have no "
                "certificates, pin them with spki-sha256: or keyid:",
            )
        for ids in [entry.root, *entry.signers.values()]:
            for ident in ids:
                if ident.kind not in ("keyid", "spki-sha256"):
                    raise UsageError(
                        "pin-file-invalid",
                        f"{where}: {ident.kind}: identifiers name Notary certificates or "
                        "canonical IDs; TUF 1.0 keys are pinned with spki-sha256: or keyid: "
                        "(trustcheck tuf thumbprint --repo ... prints them)",
                    )
        return entry

    def _no_tofu(self) -> bool:
        opts = self.options
        if opts is None:
            return False
        return opts.no_tofu or (opts.pins is not None and opts.pins.no_tofu)

    # --- lifecycle -------------------------------------------------------------

    def __enter__(self) -> _Session:
        self.ws.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ws.__exit__(*exc)

    def commit(self) -> None:
        """Forget delegated roles found in the metadata folder that trustcheck now refuses."""
        for role in self.failed_roles:
            with_name = self.ws.dir / f"{quote(role, '')}.json"
            with contextlib.suppress(OSError):
                with_name.unlink()

    # --- bootstrap and refresh -------------------------------------------------

    def _bootstrap(self) -> bytes:
        if self.root_arg is not None:
            self.ctx.root_origin = "the root given with --root"
            return self.root_arg
        pinned = self.pin is not None and bool(self.pin.root)
        if self._no_tofu() and not pinned:
            raise NotTrusted(
                "no-pin",
                f"{self.name} has no root pin and trust on first use is off: pass its "
                "root.json with --root, or pin its root keys (trustcheck tuf thumbprint "
                "--repo ... prints them) after checking them out of band",
                role="root",
            )
        cached = self.ws.dir / "root.json"
        if self.ws.had_state and cached.exists():
            self.ctx.root_origin = f"the root trusted before (state dir, {cached})"
            try:
                return cached.read_bytes()
            except OSError as e:
                raise UsageError(
                    "state-invalid",
                    f"cannot read the trusted root of {self.name} from {cached} "
                    f"({e.strerror or e}); remove that folder to trust on first use again",
                ) from e
        # trust on first use (or bootstrap for a pin): the repository's root
        from tuf.api.exceptions import DownloadError, DownloadHTTPError

        fetcher = self.loc.fetcher
        for name in ("root.json", "1.root.json"):
            try:
                data = fetcher.download_bytes(
                    self.loc.base_url + quote(name, ""), self.limits.root_max_length
                )
            except DownloadHTTPError as e:
                if e.status_code in (403, 404):
                    continue
                raise _map_error(e, self.ctx) from e
            except DownloadError as e:
                raise _map_error(e, self.ctx) from e
            self.ctx.root_origin = f"{name} of {self.name} (trusted on first use)"
            if not pinned:
                self.warnings.append(
                    f"trusting {self.name} on first use ({name}); pin its root keys or pass "
                    "--root to stop trusting whatever root is served first"
                )
            return data
        raise NotTrusted(
            "no-trust-data",
            f"{self.name} holds no root.json or 1.root.json: is --repo the metadata folder "
            "of a TUF repository (e.g. .../metadata or https://host/metadata)?",
            role="root",
        )

    def refresh(self) -> None:
        """Bootstrap, python-tuf's refresh, then trustcheck's checks of the top-level roles."""
        _register_hex_ec_keys()
        bootstrap = self._bootstrap()
        dialect = None
        with contextlib.suppress(UsageError, UnicodeDecodeError, ValueError, RecursionError):
            dialect = _dialect_of_document(json.loads(bootstrap.decode("utf-8")), "root")
        if dialect == "notary":
            origin = self.ctx.root_origin
            what = (
                f"{origin} is"
                if self.root_arg is not None
                else f"the root of {self.name} ({origin}) is"
            )
            raise UsageError(
                "invalid-argument",
                f"{what} Notary v1 (Docker Content Trust) metadata, not a TUF 1.0 root; "
                "verify Notary data with `trustcheck verify` (or --dialect notary), or give "
                "the TUF repository's own root.json",
            )
        self.ctx.phase = "bootstrap"
        self.loc.recorder.last_name = "root.json"
        bootstrap = self._walk_legacy_roots(bootstrap)
        self.loc.recorder.last_name = "root.json"
        try:
            self.updater = _checked_updater(self, bootstrap)
            _set_reference_time(self.updater, self.at)
            self.ctx.phase = "refresh"
            self.updater.refresh()
        except TrustcheckError:
            raise
        except Exception as e:
            err = _map_error(e, self.ctx)
            if self.ctx.phase == "bootstrap" and err.code == "threshold-not-met":
                raise self._unreadable_root_keys(bootstrap, err) from e
            raise err from e
        self.ctx.phase = "target"
        self._check_top_level(bootstrap)

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
            "threshold-not-met",
            f"{self.ctx.root_origin}: {len(bad)} of its {len(kids)} root keys (e.g. "
            f"{kid[:16]}…, {key.keytype}) hold a public key trustcheck cannot read (neither PEM "
            "nor a hex point), so their signatures cannot be checked; the root may be genuine "
            "but written for another client. Get a root.json whose keys are PEM",
            role="root",
        )

    # --- roots python-tuf cannot parse ------------------------------------------

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
                        "invalid-expires",
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
                    "root-rotation-invalid",
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
                "invalid-structure",
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

    # --- trustcheck's checks ---------------------------------------------------

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

    def _read_ws(self, rel: str) -> bytes:
        path = self.ws.dir / rel
        try:
            return path.read_bytes()
        except OSError as e:
            raise NotTrusted(
                "role-missing",
                f"python-tuf trusted {rel} of {self.name} but it is not in its metadata folder "
                f"{self.ws.dir} ({e.strerror or e}); run again",
                role=_role_of_file(rel),
            ) from e

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
                    "root-rotation-invalid" if code == "root-rotation-invalid" else code,
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
            raise NotTrusted("wrong-type", f"timestamp.json of {repo} is not a timestamp")
        signed_ts = self._distinct(root, "timestamp", ts)
        self.timestamp_md = ts
        self.top_infos.append(
            _role_info("timestamp", ts, root.roles["timestamp"], signed_ts, "root")
        )
        snap = _parse(self._read_ws("snapshot.json"), "snapshot.json", repo)
        if not isinstance(snap.signed, Snapshot):
            raise NotTrusted("wrong-type", f"snapshot.json of {repo} is not a snapshot")
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
                "pin-mismatch",
                f"root v{root.version} of {self.name} carries {len(matching)} signature(s) by keys "
                f"pinned in {where}, and {threshold} are needed: pin at least {threshold} of its "
                "root keys (trustcheck tuf thumbprint lists them), after checking them out of band",
                role="root",
            )
        raise NotTrusted(
            "pin-mismatch",
            f"no root key of {self.name} satisfies {where} (pinned {describe(pinned)}; "
            f"root v{root.version} has {describe(have) or 'none'}): the root was replaced. If the "
            "owner rotated it on purpose, check the new keys out of band (trustcheck tuf "
            "thumbprint) and update the pin",
            role="root",
        )

    # --- targets roles ---------------------------------------------------------

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
                "invalid-delegation",
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
                "target-not-found",
                f"{path} is not signed by any trusted role of {self.name} that is delegated "
                "that path; check the path (case, no leading '/'), or ask the repository "
                "owner to sign it",
            )
        if info is None or mine is None or mine[0] != info:
            raise NotTrusted(
                "invalid-structure",
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


def _role_info(
    name: str, md: Metadata[Any], role: Any, signed_by: list[str], parent: str | None
) -> RoleInfo:
    from tuf.api.metadata import (  # type: ignore[attr-defined]
        DelegatedRole,
        SuccinctRoles,
    )

    info = RoleInfo(
        name=name,
        version=md.signed.version,
        expires=_iso(md.signed.expires),
        threshold=role.threshold,
        keyids=list(role.keyids),
        signed_by=signed_by,
        delegated_by=parent,
    )
    if isinstance(role, DelegatedRole):
        info.paths = role.paths
        info.path_hash_prefixes = role.path_hash_prefixes
        info.terminating = role.terminating
    elif isinstance(role, SuccinctRoles):
        info.succinct = f"{role.name_prefix}-*"
        info.terminating = True
    return info


def _label(delegator: Root | Targets) -> str:
    kind = "root" if delegator.type == "root" else "a targets role"
    return f"{kind} v{delegator.version}"


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


_UPDATER_HOOKS = ("_persist_root", "_persist_metadata", "_load_targets", "_trusted_set")


def _checked_updater(sess: _Session, bootstrap: bytes) -> Updater:
    """python-tuf's Updater, with trustcheck's checks run before each role is persisted.

    python-tuf verifies each role of the client workflow and persists it at
    once (``_persist_root`` / ``_persist_metadata``); trustcheck hooks both
    so that its stricter checks (distinct keys, bound key IDs, fields written
    twice, signer pins) run first: a role trustcheck refuses is never
    persisted, and every role both accept is persisted exactly when the
    specification says. Fails closed if a python-tuf release renames them.
    """
    from tuf.api.metadata import Root, Targets  # type: ignore[attr-defined]
    from tuf.ngclient.updater import Updater

    missing = [n for n in _UPDATER_HOOKS[:3] if not callable(getattr(Updater, n, None))]
    if missing:
        raise UsageError(
            "invalid-argument",
            f"this python-tuf release lacks {', '.join(missing)}, which trustcheck hooks to check "
            "each role before it is persisted; install tuf>=7.0.1,<8",
        )

    class CheckedUpdater(Updater):
        def __init__(self) -> None:
            self._tc_parents: dict[str, str] = {}
            self._tc_bootstrapped = False
            super().__init__(
                metadata_dir=str(sess.ws.dir),
                metadata_base_url=sess.loc.base_url,
                fetcher=sess.loc.fetcher,
                config=sess.limits.config(),
                bootstrap=bootstrap,
            )

        def _persist_root(self, version: int, data: bytes) -> None:
            sess.check_persist_root(version, data, bootstrap=not self._tc_bootstrapped)
            self._tc_bootstrapped = True
            super()._persist_root(version, data)

        def _persist_metadata(self, rolename: str, data: bytes) -> None:
            trusted = self._trusted_set
            parent = self._tc_parents.get(rolename, "root")
            delegator = trusted.root if parent == "root" else trusted[parent]
            assert isinstance(delegator, Root | Targets)
            sess.check_persist(rolename, data, delegator)
            super()._persist_metadata(rolename, data)

        def _load_targets(self, role: str, parent_role: str) -> Targets:
            self._tc_parents[role] = parent_role
            got: Targets = super()._load_targets(role, parent_role)
            return got

    return CheckedUpdater()


def _set_reference_time(updater: Updater, at: datetime) -> None:
    """Make ``at`` python-tuf's reference time for every expiry check.

    python-tuf (7.x) fixes the update start time in
    ``TrustedMetadataSet.reference_time`` (spec §5.1) and offers no public way
    to set it; trustcheck sets that attribute right after the Updater is built,
    before any expiry is checked. Fails closed if a python-tuf release renames it.
    """
    trusted = getattr(updater, "_trusted_set", None)
    if trusted is None or not isinstance(getattr(trusted, "reference_time", None), datetime):
        raise UsageError(
            "invalid-argument",
            "this python-tuf release does not let trustcheck set the validation time; "
            "install tuf>=7.0.1,<8",
        )
    trusted.reference_time = at


# ----------------------------------------------------------------------------- public API


def _session(
    repo: str,
    at: datetime,
    options: Options | None,
    root: bytes | None,
    limits: ClientLimits | None,
    unsafe_http: bool,
    timeout: float,
    allow_arbitrary_keyids: bool,
) -> _Session:
    return _Session(
        repo,
        at,
        options,
        root,
        limits if limits is not None else ClientLimits(),
        unsafe_http,
        timeout,
        allow_arbitrary_keyids,
    )


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
                    "target-missing-sha256",
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


# ----------------------------------------------------------------------------- refresh and download


@dataclass(slots=True)
class RefreshResult:
    """What :func:`refresh` trusted: the top-level roles, after the TUF client workflow."""

    repository: str
    roles: list[RoleInfo] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "dialect": "tuf",
            "roles": [r.to_json() for r in self.roles],
        }


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
                "hash-mismatch",
                f"target {path} is listed with the hash algorithm {algo[:40]!r}, which "
                "trustcheck cannot compute, so the file cannot be checked (python-tuf refuses "
                "it too); ask the repository owner to list a sha256 or sha512 hash",
                role=role,
            ) from e
    if not out:
        raise NotTrusted(
            "target-missing-sha256",
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

    def __init__(self, sess: _Session, target_base: str | None) -> None:
        self.sess = sess
        self.folder: Path | None = None
        self.url: str | None = None
        loc = sess.loc
        if target_base is not None:
            if "://" in target_base and not target_base.lower().startswith("file://"):
                scheme = urlsplit(target_base).scheme.lower()
                if scheme not in ("http", "https"):
                    raise UsageError(
                        "invalid-argument",
                        f"--target-base-url {target_base!r} is neither a folder nor an http(s) URL",
                    )
                if scheme == "http" and not sess.unsafe_http:
                    raise UsageError(
                        "insecure-server",
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
                    "invalid-argument",
                    f"cannot tell where the target files of {sess.name} are (its metadata URL "
                    "does not end in /metadata); give --target-base-url",
                )
            self.url = head + "/targets/"
        if self.folder is not None and not self.folder.is_dir():
            raise UsageError(
                "invalid-argument",
                f"target folder {self.folder} of {sess.name} does not exist; give "
                "--target-base-url (a folder or URL holding the target files)",
            )

    def describe(self) -> str:
        return str(self.folder) if self.folder is not None else str(self.url)

    def chunks(self, name: str, plain: str, cap: int) -> Iterator[bytes]:
        """The bytes of target file ``name`` (URL-relative), at most ``cap + 1`` of them.

        In a local folder a file missing under its consistent-snapshot name
        (``dir/HASH.name``) is also looked for under its ``plain`` path, as a
        TUF-on-CI / sigstore git checkout stores it (the content is verified
        all the same).
        """
        if self.url is not None:
            yield from self._http(name)
            return
        assert self.folder is not None
        if plain != name and self._local_path(name) is None:
            name = plain
        yield from self._local(name, cap)

    def _local_path(self, name: str) -> str | None:
        assert self.folder is not None
        parts = name.split("/")
        if name.startswith("/") or "\x00" in name or any(p in ("", ".", "..") for p in parts):
            return None
        real = os.path.realpath(os.path.join(self.folder, *parts))
        return real if _is_within(real, str(self.folder)) and os.path.lexists(real) else None

    def _http(self, name: str) -> Iterator[bytes]:
        assert self.url is not None
        from tuf.api.exceptions import DownloadError
        from urllib3.exceptions import HTTPError

        url = self.url + quote(name, "/")
        self.sess.loc.recorder.record(url, 0)
        try:
            yield from self.sess.loc.fetcher.fetch(url)
        except HTTPError as e:  # raised while streaming the body (e.g. a short read)
            raise DownloadError(f"Failed to download {url}") from e

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
    from tuf.api.exceptions import DownloadError, DownloadHTTPError

    path = tf.path
    hashers = _hashers(tf, path, role)
    name = _target_url_name(sess, tf)
    where = source.describe()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name[:200]}.", suffix=".part", dir=dest.parent)
    except OSError as e:
        raise UsageError(
            "output-unwritable", f"cannot write {dest} ({e.strerror or e}); check -o"
        ) from e
    done = False
    try:
        total = 0
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in source.chunks(name, path, tf.length):
                    total += len(chunk)
                    if total > tf.length:
                        raise NotTrusted(
                            "length-exceeded",
                            f"target {path} from {where} is longer than the {tf.length} bytes "
                            f"role {role} signed (endless data or a replaced file); nothing "
                            "was written",
                            role=role,
                        )
                    for h in hashers.values():
                        h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except _TargetMissing as e:
            raise NotTrusted(
                "target-download-failed",
                f"target {path} of {sess.name} could not be read: {e}; mirror the target "
                "files too (or give --target-base-url)",
                role=role,
            ) from e
        except DownloadHTTPError as e:
            raise NotTrusted(
                "target-download-failed",
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
                "output-unwritable", f"cannot write {dest} ({e.strerror or e}); check -o"
            ) from e
        if total < tf.length:
            raise NotTrusted(
                "target-download-failed",
                f"target {path} from {where} ended after {total} of the {tf.length} bytes role "
                f"{role} signed (connection cut or a truncated file); nothing was written, "
                "try again",
                role=role,
            )
        for algo, h in hashers.items():
            want = str(tf.hashes[algo]).lower()
            if not _hex_equal(h.hexdigest(), want):
                raise NotTrusted(
                    "hash-mismatch",
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
                "output-unwritable", f"cannot write {dest} ({e.strerror or e}); check -o"
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
        source = _TargetSource(sess, target_base_url)
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
