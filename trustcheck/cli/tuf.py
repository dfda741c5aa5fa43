"""``trustcheck tuf ...``: standard TUF 1.0 repositories, verified with python-tuf.

``verify`` looks target paths up (the JSON shape of ``trustcheck verify
--json``), ``refresh`` updates the trusted top-level metadata, ``download``
fetches and verifies target files, ``inspect`` lists roles, keys and targets, ``thumbprint`` prints
every key's identifiers for pinning, ``dialect`` tells Notary v1 trust data
from TUF 1.0 metadata. See docs/tuf.md. The work lives in
:mod:`trustcheck.tuf` (client, dialect, download, fetchers), imported inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from trustcheck.cli.options import (
    AtOpt,
    Exit,
    JsonOpt,
    NoTofuOpt,
    PinsOpt,
    StateOpt,
    UnsafeHttpOpt,
    fail_usage,
    make_options,
    parse_at,
    warn,
)
from trustcheck.errors import UsageError

if TYPE_CHECKING:
    from datetime import datetime

    from trustcheck.api import ImageResult, Options
    from trustcheck.tuf.fetchers import ClientLimits

RepoOpt = Annotated[
    str,
    typer.Option(
        "--repo",
        help="TUF repository: a local folder (the repository or its metadata/ folder) or an "
        "https URL of its metadata folder.",
        show_default=False,
    ),
]
RootOpt = Annotated[
    Path | None,
    typer.Option(
        "--root",
        help="Trusted root.json obtained out of band (default: the root trusted before, else "
        "trust on first use unless a pin applies).",
        show_default=False,
    ),
]
ArbitraryKeyidsOpt = Annotated[
    bool,
    typer.Option(
        "--unsafe-arbitrary-keyids",
        help="Accept key IDs that are not the hash of their key (TAP 12 repositories such as "
        "sigstore's); thresholds still count distinct keys.",
    ),
]
TufTimeoutOpt = Annotated[
    float, typer.Option("--timeout", help="Seconds per HTTP request (remote --repo).", min=1)
]
MaxRootRotationsOpt = Annotated[
    int, typer.Option("--max-root-rotations", help="Client limit: root versions walked.", min=1)
]
MaxDelegationsOpt = Annotated[
    int,
    typer.Option("--max-delegations", help="Client limit: roles visited per lookup.", min=1),
]
RootMaxOpt = Annotated[
    int, typer.Option("--root-max-length", help="Client limit: bytes of a root.json.", min=1)
]
TimestampMaxOpt = Annotated[
    int,
    typer.Option("--timestamp-max-length", help="Client limit: bytes of timestamp.json.", min=1),
]
SnapshotMaxOpt = Annotated[
    int,
    typer.Option(
        "--snapshot-max-length",
        help="Client limit: bytes of snapshot.json when timestamp.json gives no length.",
        min=1,
    ),
]
TargetsMaxOpt = Annotated[
    int,
    typer.Option(
        "--targets-max-length",
        help="Client limit: bytes of a targets role when snapshot.json gives no length.",
        min=1,
    ),
]
TargetPathsArg = Annotated[
    list[str],
    typer.Argument(
        help="Target paths, e.g. trusted_root.json or bin/app-1.2.tgz.",
        metavar="TARGET",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    tuf_app = typer.Typer(
        help="Standard TUF 1.0 repositories (sigstore, TUF-on-CI, python-tuf), verified with "
        "python-tuf plus trustcheck's checks; see docs/tuf.md.",
        no_args_is_help=True,
    )
    tuf_app.command("verify")(tuf_verify)
    tuf_app.command("refresh")(tuf_refresh)
    tuf_app.command("download")(tuf_download)
    tuf_app.command("inspect")(tuf_inspect)
    tuf_app.command("thumbprint")(tuf_thumbprint)
    tuf_app.command("dialect")(tuf_dialect)
    app.add_typer(tuf_app, name="tuf")


def _limits(
    max_root_rotations: int,
    max_delegations: int,
    root_max_length: int,
    timestamp_max_length: int,
    snapshot_max_length: int,
    targets_max_length: int,
) -> ClientLimits:
    from trustcheck.tuf.fetchers import ClientLimits

    return ClientLimits(
        max_root_rotations=max_root_rotations,
        max_delegations=max_delegations,
        root_max_length=root_max_length,
        timestamp_max_length=timestamp_max_length,
        snapshot_max_length=snapshot_max_length,
        targets_max_length=targets_max_length,
    )


def _read_root(path: Path | None, cap: int) -> bytes | None:
    if path is None:
        return None
    try:
        with path.open("rb") as f:
            data = f.read(cap + 1)
    except OSError as e:
        fail_usage(f"--root {path}: cannot read it ({e.strerror or e})")
    if len(data) > cap:
        fail_usage(f"--root {path} is larger than --root-max-length ({cap} bytes)")
    from trustcheck.tuf.dialect import detect_dialect

    try:
        dialect = detect_dialect(data)
    except UsageError:
        dialect = None  # not metadata at all: python-tuf's own error names it
    if dialect == "notary":
        fail_usage(
            f"--root {path} is a Notary v1 (Docker Content Trust) root, not a TUF 1.0 root: "
            "give the TUF repository's own root.json (Notary data is verified with "
            "`trustcheck verify --trust-dir`)"
        )
    return data


def _common(
    at: str | None, pins: Path | None, state_dir: Path | None, no_tofu: bool
) -> tuple[datetime, Options]:
    return parse_at(at), make_options(pins, state_dir, no_tofu, "warn")


def _human(r: ImageResult) -> str:
    if r.trusted:
        return (
            f"TRUSTED      {r.image}  {r.digest}  (role {r.role}; "
            f"signers: {', '.join(r.signers) or '-'})"
        )
    assert r.error is not None
    return f"NOT TRUSTED  {r.image}  [{r.error.code}] {r.error.message}"


def tuf_verify(
    targets: TargetPathsArg,
    repo: RepoOpt,
    root: RootOpt = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
    pins: PinsOpt = None,
    state_dir: StateOpt = None,
    no_tofu: NoTofuOpt = False,
    unsafe_http: UnsafeHttpOpt = False,
    timeout: TufTimeoutOpt = 30.0,
    unsafe_arbitrary_keyids: ArbitraryKeyidsOpt = False,
    max_root_rotations: MaxRootRotationsOpt = 256,
    max_delegations: MaxDelegationsOpt = 32,
    root_max_length: RootMaxOpt = 512000,
    timestamp_max_length: TimestampMaxOpt = 16384,
    snapshot_max_length: SnapshotMaxOpt = 2000000,
    targets_max_length: TargetsMaxOpt = 5000000,
) -> None:
    """Verify a TUF 1.0 repository and resolve each target path in it.

    Exit 0 when every target is trusted, 1 when any is not, 2 on bad input.
    --json prints the document of `trustcheck verify --json` (image = the
    target path, gun = the repository, role = the role that signs it,
    signers = the delegation chain from targets to that role).
    """
    from trustcheck.tuf.client import verify_targets

    when, opts = _common(at, pins, state_dir, no_tofu)
    limits = _limits(
        max_root_rotations,
        max_delegations,
        root_max_length,
        timestamp_max_length,
        snapshot_max_length,
        targets_max_length,
    )
    results = verify_targets(
        repo,
        targets,
        when,
        opts,
        root=_read_root(root, root_max_length),
        limits=limits,
        unsafe_http=unsafe_http,
        timeout=timeout,
        allow_arbitrary_keyids=unsafe_arbitrary_keyids,
    )
    seen: set[str] = set()
    for r in results:
        for w in r.warnings:
            if w not in seen:
                seen.add(w)
                warn(w)
    if as_json:
        typer.echo(
            json.dumps({"results": [r.to_json() for r in results]}, indent=2, ensure_ascii=False)
        )
    else:
        for r in results:
            typer.echo(_human(r))
    if any(r.error is not None and r.error.exit_code == 2 for r in results):
        raise Exit(2)
    if not all(r.trusted for r in results):
        raise Exit(1)


def tuf_refresh(
    repo: RepoOpt,
    root: RootOpt = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
    pins: PinsOpt = None,
    state_dir: StateOpt = None,
    no_tofu: NoTofuOpt = False,
    unsafe_http: UnsafeHttpOpt = False,
    timeout: TufTimeoutOpt = 30.0,
    unsafe_arbitrary_keyids: ArbitraryKeyidsOpt = False,
    max_root_rotations: MaxRootRotationsOpt = 256,
    root_max_length: RootMaxOpt = 512000,
    timestamp_max_length: TimestampMaxOpt = 16384,
    snapshot_max_length: SnapshotMaxOpt = 2000000,
    targets_max_length: TargetsMaxOpt = 5000000,
) -> None:
    """Update the trusted top-level metadata of a TUF 1.0 repository (TUF client workflow).

    Root rotation, timestamp, snapshot, targets; each role is recorded in the
    state dir as soon as it verifies. Exit 0 when all verify, 1 when one does
    not (the roles before it stay trusted), 2 on bad input.
    """
    from trustcheck.tuf.client import refresh

    when, opts = _common(at, pins, state_dir, no_tofu)
    result = refresh(
        repo,
        when,
        opts,
        root=_read_root(root, root_max_length),
        limits=_limits(
            max_root_rotations,
            32,
            root_max_length,
            timestamp_max_length,
            snapshot_max_length,
            targets_max_length,
        ),
        unsafe_http=unsafe_http,
        timeout=timeout,
        allow_arbitrary_keyids=unsafe_arbitrary_keyids,
    )
    for w in result.warnings:
        warn(w)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
        return
    for r in result.roles:
        typer.echo(
            f"TRUSTED      {r.name:<10} v{r.version:<5} expires {r.expires}  "
            f"{len(r.signed_by)} of {len(r.keyids)} keys signed (threshold {r.threshold})"
        )


def tuf_download(
    targets: TargetPathsArg,
    repo: RepoOpt,
    output: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output-dir",
            help="Folder to store the verified files in (a target bin/a.tgz goes to "
            "DIR/bin/a.tgz).",
        ),
    ] = Path("."),
    target_base_url: Annotated[
        str | None,
        typer.Option(
            "--target-base-url",
            help="Where the target files are: a folder or an https URL (default: targets/ "
            "beside the metadata/ folder or URL).",
            show_default=False,
        ),
    ] = None,
    root: RootOpt = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
    pins: PinsOpt = None,
    state_dir: StateOpt = None,
    no_tofu: NoTofuOpt = False,
    unsafe_http: UnsafeHttpOpt = False,
    timeout: TufTimeoutOpt = 30.0,
    unsafe_arbitrary_keyids: ArbitraryKeyidsOpt = False,
    max_root_rotations: MaxRootRotationsOpt = 256,
    max_delegations: MaxDelegationsOpt = 32,
    root_max_length: RootMaxOpt = 512000,
    timestamp_max_length: TimestampMaxOpt = 16384,
    snapshot_max_length: SnapshotMaxOpt = 2000000,
    targets_max_length: TargetsMaxOpt = 5000000,
) -> None:
    """Download target files of a TUF 1.0 repository and verify them.

    Each file is streamed into a temporary file beside its destination, cut
    off at the signed length, checked against every signed hash, then renamed
    into place; a file already there that matches is kept without fetching.
    Exit 0 when every target was stored, 1 when any was not, 2 on bad input.
    """
    from trustcheck.tuf.download import download_targets

    when, opts = _common(at, pins, state_dir, no_tofu)
    results = download_targets(
        repo,
        targets,
        output,
        when,
        opts,
        target_base_url=target_base_url,
        root=_read_root(root, root_max_length),
        limits=_limits(
            max_root_rotations,
            max_delegations,
            root_max_length,
            timestamp_max_length,
            snapshot_max_length,
            targets_max_length,
        ),
        unsafe_http=unsafe_http,
        timeout=timeout,
        allow_arbitrary_keyids=unsafe_arbitrary_keyids,
    )
    if as_json:
        typer.echo(
            json.dumps({"results": [r.to_json() for r in results]}, indent=2, ensure_ascii=False)
        )
    else:
        for r in results:
            if r.error is None:
                how = "kept, already verified" if r.reused else "downloaded"
                typer.echo(
                    f"TRUSTED      {r.path}  {r.digest}  -> {r.file}  ({how}; role {r.role})"
                )
            else:
                typer.echo(f"NOT TRUSTED  {r.path}  [{r.error.code}] {r.error.message}")
    if any(r.error is not None and r.error.exit_code == 2 for r in results):
        raise Exit(2)
    if any(r.error is not None for r in results):
        raise Exit(1)


def tuf_inspect(
    repo: RepoOpt,
    root: RootOpt = None,
    at: AtOpt = None,
    pretty: Annotated[bool, typer.Option("--pretty", help="Human-readable view.")] = False,
    pins: PinsOpt = None,
    state_dir: StateOpt = None,
    no_tofu: NoTofuOpt = False,
    unsafe_http: UnsafeHttpOpt = False,
    timeout: TufTimeoutOpt = 30.0,
    unsafe_arbitrary_keyids: ArbitraryKeyidsOpt = False,
    max_root_rotations: MaxRootRotationsOpt = 256,
    max_delegations: MaxDelegationsOpt = 32,
    root_max_length: RootMaxOpt = 512000,
    timestamp_max_length: TimestampMaxOpt = 16384,
    snapshot_max_length: SnapshotMaxOpt = 2000000,
    targets_max_length: TargetsMaxOpt = 5000000,
) -> None:
    """List the roles, keys and targets of a verified TUF 1.0 repository.

    JSON by default; --pretty for people. Roles that fail verification are
    listed under "skipped" with their error code.
    """
    from trustcheck.tuf.client import inspect_repository

    when, opts = _common(at, pins, state_dir, no_tofu)
    report = inspect_repository(
        repo,
        when,
        opts,
        root=_read_root(root, root_max_length),
        limits=_limits(
            max_root_rotations,
            max_delegations,
            root_max_length,
            timestamp_max_length,
            snapshot_max_length,
            targets_max_length,
        ),
        unsafe_http=unsafe_http,
        timeout=timeout,
        allow_arbitrary_keyids=unsafe_arbitrary_keyids,
    )
    for w in report.warnings:
        warn(w)
    if pretty:
        typer.echo(report.render_text())
    else:
        typer.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))


def tuf_thumbprint(
    repo: RepoOpt,
    root: RootOpt = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
    pins: PinsOpt = None,
    state_dir: StateOpt = None,
    no_tofu: NoTofuOpt = False,
    unsafe_http: UnsafeHttpOpt = False,
    timeout: TufTimeoutOpt = 30.0,
    unsafe_arbitrary_keyids: ArbitraryKeyidsOpt = False,
) -> None:
    """Every key of a verified TUF 1.0 repository with the identifiers pins use.

    `keyid:` is the TUF key ID (pinnable when it is the hash of the key),
    `spki-sha256:` the SHA-256 of the DER public key
    (`openssl pkey -pubin -outform DER | sha256sum`).
    """
    from trustcheck.core.thumbprint import render_json, render_text
    from trustcheck.tuf.client import keys_of_repository

    when, opts = _common(at, pins, state_dir, no_tofu)
    reports = keys_of_repository(
        repo,
        when,
        opts,
        root=_read_root(root, 512000),
        unsafe_http=unsafe_http,
        timeout=timeout,
        allow_arbitrary_keyids=unsafe_arbitrary_keyids,
    )
    typer.echo(render_json(reports) if as_json else render_text(reports))


def tuf_dialect(
    path: Annotated[
        Path,
        typer.Argument(
            help="A metadata file (root.json, timestamp.json), a TUF repository folder or a "
            "Notary GUN folder (<trust-dir>/tuf/<GUN>/metadata).",
            metavar="PATH",
            show_default=False,
        ),
    ],
) -> None:
    """Print `tuf` (TUF 1.0) or `notary` (Notary v1 / Docker Content Trust) for PATH."""
    from trustcheck.tuf.dialect import detect_dialect

    typer.echo(detect_dialect(path))
