"""``verify``, ``inspect`` and ``fetch``: the Notary v1 trust data of images.

Only ``typer`` and the shared options are imported at module level; the work
(:mod:`trustcheck.api`, the TUF 1.0 client) is imported inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from trustcheck.cli.archive import (
    ArchiveOpt,
    ArchivePinOpt,
    CompareLiveOpt,
    MaxAgeOpt,
    archive_text,
    open_for_reading,
    verify_from_archive,
)
from trustcheck.cli.options import (
    DEFAULT_REMOTE,
    DIALECTS,
    AtOpt,
    ConcurrencyOpt,
    DceOpt,
    Exit,
    ImagesArg,
    JsonOpt,
    NoTofuOpt,
    PasswordStdinOpt,
    PinsOpt,
    RemoteArgs,
    RetriesOpt,
    ServerOpt,
    StateOpt,
    TimeoutOpt,
    TlsCaOpt,
    TlsCertOpt,
    TlsKeyOpt,
    TrustDirOpt,
    UnsafeHttpOpt,
    UserOpt,
    choice,
    fail_usage,
    make_options,
    parse_at,
    progress_reporter,
    remote_options,
    trust_dir_path,
    warn,
)

if TYPE_CHECKING:
    from datetime import datetime

    from trustcheck.api import ImageResult, Options


def _human_result(r: ImageResult) -> str:
    if r.trusted:
        signers = ", ".join(r.signers) if r.signers else "-"
        return f"TRUSTED      {r.image}  {r.digest}  (role {r.role}; signers: {signers})"
    assert r.error is not None
    return f"NOT TRUSTED  {r.image}  [{r.error.code}] {r.error.message}"


@remote_options
def verify(
    images: ImagesArg,
    trust_dir: TrustDirOpt = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
    pins: PinsOpt = None,
    state_dir: StateOpt = None,
    no_tofu: NoTofuOpt = False,
    delegation_cert_expiry: DceOpt = "warn",
    remote: RemoteArgs = DEFAULT_REMOTE,
    check_registry: Annotated[
        bool,
        typer.Option(
            "--check-registry",
            help="Also ask the registry for the tag's current digest; it must be the signed one.",
        ),
    ] = False,
    registry: Annotated[
        str | None,
        typer.Option("--registry", help="Registry URL for --check-registry.", show_default=False),
    ] = None,
    dialect: Annotated[
        str | None,
        typer.Option(
            "--dialect",
            help="notary (Docker Content Trust) or tuf (TUF 1.0, with --repo; arguments are "
            "target paths). Default: notary, or detected from --repo.",
            show_default=False,
        ),
    ] = None,
    repo: Annotated[
        str | None,
        typer.Option(
            "--repo",
            help="TUF 1.0 repository: a metadata folder or an https URL (docs/tuf.md).",
            show_default=False,
        ),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(
            "--root",
            help="TUF 1.0: trusted root.json obtained out of band (else pins, state, first use).",
            show_default=False,
        ),
    ] = None,
    unsafe_arbitrary_keyids: Annotated[
        bool,
        typer.Option(
            "--unsafe-arbitrary-keyids",
            help="TUF 1.0 (--repo): accept key IDs that are not a hash of their key (TAP 12); "
            "thresholds still count distinct keys.",
        ),
    ] = False,
    archive: ArchiveOpt = None,
    archive_pin: ArchivePinOpt = None,
    max_age: MaxAgeOpt = None,
    compare_live: CompareLiveOpt = False,
) -> None:
    """Verify each image's trust data and resolve its tag (or check its digest).

    Trust data is fetched from the image's Notary server and cached in the
    trust dir unless --offline. With --repo (TUF 1.0), the arguments are
    target paths. Exit 0 when every image is trusted, 1 when any is not, 2 on
    bad input.
    """
    if archive is not None:  # docs/archive.md: as of the archive's capture time
        if repo is not None or dialect == "tuf" or check_registry:
            fail_usage("--archive verifies Notary trust data offline; drop --repo/--check-registry")
        opts = make_options(pins, state_dir, no_tofu, delegation_cert_expiry)
        live = (remote, trust_dir) if compare_live else None
        verify_from_archive(images, archive, archive_pin, max_age, at, opts, as_json, live)
        return
    if archive_pin is not None or max_age is not None or compare_live:
        fail_usage("--archive-pin, --max-age and --compare-live apply to --archive")
    when = parse_at(at)
    opts = make_options(pins, state_dir, no_tofu, delegation_cert_expiry)
    if dialect is not None:
        dialect = choice("--dialect", dialect, DIALECTS)
    if repo is not None or dialect == "tuf":
        results = _verify_tuf(
            images, repo, dialect, root, when, opts, remote, unsafe_arbitrary_keyids
        )
    else:
        if not remote.offline:  # the CA bundle is parsed while the verifier is imported
            from trustcheck.remote.http import prewarm_tls

            prewarm_tls()
        from trustcheck.api import verify_images

        remote.registry = registry
        cfg = remote.config()
        results = verify_images(
            images,
            trust_dir_path(trust_dir, must_exist=remote.offline),
            when,
            opts,
            cfg,
            progress_reporter(len(images)),
            check_registry,
        )
    seen: set[str] = set()
    for r in results:
        for w in r.warnings:
            if w not in seen:
                seen.add(w)
                warn(f"{r.gun}: {w}")
    if as_json:
        typer.echo(
            json.dumps({"results": [r.to_json() for r in results]}, indent=2, ensure_ascii=False)
        )
    else:
        for r in results:
            typer.echo(_human_result(r))
    if any(r.error is not None and r.error.exit_code == 2 for r in results):
        raise Exit(2)
    if not all(r.trusted for r in results):
        raise Exit(1)


def _verify_tuf(
    targets: list[str],
    repo: str | None,
    dialect: str | None,
    root: Path | None,
    when: datetime,
    opts: Options,
    remote: RemoteArgs,
    unsafe_arbitrary_keyids: bool = False,
) -> list[ImageResult]:
    from trustcheck.tuf.client import verify_targets
    from trustcheck.tuf.dialect import detect_dialect

    if repo is None:
        fail_usage("--dialect tuf needs --repo DIR|URL (the TUF 1.0 repository)")
    if dialect == "notary":
        fail_usage("--repo is for TUF 1.0 repositories; use --trust-dir for Notary trust data")
    if dialect is None and "://" not in repo and detect_dialect(Path(repo)) == "notary":
        fail_usage(f"{repo} holds Notary v1 metadata; verify it with --trust-dir instead")
    root_bytes = None
    if root is not None:
        try:
            root_bytes = root.read_bytes()
        except OSError as e:
            fail_usage(f"cannot read --root {root}: {e.strerror or e}")
    return verify_targets(
        repo,
        targets,
        when,
        opts,
        root=root_bytes,
        unsafe_http=remote.unsafe_http,
        timeout=remote.timeout,
        allow_arbitrary_keyids=unsafe_arbitrary_keyids,
    )


@remote_options
def inspect(
    images: ImagesArg,
    trust_dir: TrustDirOpt = None,
    at: AtOpt = None,
    pretty: Annotated[bool, typer.Option("--pretty", help="Human-readable view.")] = False,
    pins: PinsOpt = None,
    state_dir: StateOpt = None,
    no_tofu: NoTofuOpt = False,
    delegation_cert_expiry: DceOpt = "warn",
    remote: RemoteArgs = DEFAULT_REMOTE,
    archive: ArchiveOpt = None,
    archive_pin: ArchivePinOpt = None,
    max_age: MaxAgeOpt = None,
) -> None:
    """Show signed tags, signers and keys, as `docker trust inspect` does.

    JSON (the same document Docker prints) by default; --pretty for people.
    With --archive, as of the archive's capture time (each JSON entry gets "AsOf").
    """
    from trustcheck.api import collections_for
    from trustcheck.core.lookup import inspect as inspect_one
    from trustcheck.core.reference import parse_reference
    from trustcheck.errors import TrustcheckError
    from trustcheck.local.trustdir import TrustDir

    opts = make_options(pins, state_dir, no_tofu, delegation_cert_expiry)
    refs = [(i, parse_reference(i)) for i in images]
    as_of: str | None = None
    if archive is not None:  # docs/archive.md: as of the archive's capture time
        arc = open_for_reading(archive, archive_pin, max_age, at)
        as_of = arc.as_of
        cols = arc.collections_for([r.gun for _, r in refs], opts)
        typer.echo(f"# {archive_text(arc)}", err=not pretty)
    else:
        if archive_pin is not None or max_age is not None:
            fail_usage("--archive-pin and --max-age apply to --archive")
        when = parse_at(at)
        cfg = remote.config()
        td = TrustDir(trust_dir_path(trust_dir, must_exist=remote.offline))
        cols = collections_for(
            [r.gun for _, r in refs], td, when, opts, cfg, progress_reporter(len(refs))
        )
    out: list[dict[str, object]] = []
    failed = 0
    for text, ref in refs:
        col = cols[ref.gun]
        if isinstance(col, TrustcheckError):
            typer.echo(f"error: {text}: [{col.code}] {col.message}", err=True)
            failed = max(failed, col.exit_code)
            continue
        for w in col.warnings:
            warn(f"{ref.gun}: {w}")
        doc = inspect_one(col, text, _explicit_tag(text))
        if as_of is not None:
            doc["AsOf"] = as_of
        out.append(doc)
    if pretty:
        for i, doc in enumerate(out):
            if i:
                typer.echo("\n")
            typer.echo(_pretty(doc), nl=False)
    else:
        typer.echo(json.dumps(out, indent=4, ensure_ascii=False))
    if failed:
        raise Exit(failed)


def _explicit_tag(text: str) -> str | None:
    """The tag the user typed, if any (docker inspects all tags when none is given)."""
    name = text.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[colon + 1 :]
    return None


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """Docker's table layout: tabwriter with min width 10, padding 3."""
    from trustcheck.text import table

    return "\n".join(table(headers, rows, padding=3, min_width=10, strip=False)) + "\n"


def _pretty(doc: dict[str, object]) -> str:
    """``docker trust inspect --pretty`` for one inspected argument."""
    name = str(doc["Name"])
    tags = doc["SignedTags"]
    signers = doc["Signers"]
    admin = doc["AdministrativeKeys"]
    assert isinstance(tags, list) and isinstance(signers, list) and isinstance(admin, list)
    parts: list[str] = []
    if tags:
        parts.append(f"\nSignatures for {name}\n\n")
        rows = [
            [
                t["SignedTag"],
                t["Digest"],
                ", ".join(f"({s})" if s == "Repo Admin" else s for s in t["Signers"]),
            ]
            for t in tags
        ]
        parts.append(_table(["SIGNED TAG", "DIGEST", "SIGNERS"], rows))
    else:
        parts.append(f"\nNo signatures for {name}\n\n")
    if signers:
        parts.append(f"\nList of signers and their keys for {name}\n\n")
        rows = [
            [s["Name"], ", ".join(sorted(k["ID"][:12] for k in s["Keys"]))]
            for s in sorted(signers, key=lambda s: s["Name"])
        ]
        parts.append(_table(["SIGNER", "KEYS"], rows))
    parts.append(f"\nAdministrative keys for {name}\n\n")
    labels = {"Repository": "Repository Key", "Root": "Root Key"}
    for a in sorted(admin, key=lambda a: a["Name"] != "Repository"):
        parts.append(f"  {labels[a['Name']]}:\t{', '.join(sorted(k['ID'] for k in a['Keys']))}\n")
    return "".join(parts)


def fetch(
    images: ImagesArg,
    trust_dir: TrustDirOpt = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
    pins: PinsOpt = None,
    state_dir: StateOpt = None,
    no_tofu: NoTofuOpt = False,
    delegation_cert_expiry: DceOpt = "warn",
    server: ServerOpt = None,
    unsafe_http: UnsafeHttpOpt = False,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    username: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
    timeout: TimeoutOpt = 10.0,
    retries: RetriesOpt = 2,
    concurrency: ConcurrencyOpt = 8,
) -> None:
    """Download each image's trust data from its Notary server, verify it, cache it.

    Only verified bytes are written into the trust dir (Docker's layout), so
    the cache then serves `--offline`, notary and `docker trust` alike.
    """
    from trustcheck.remote.http import prewarm_tls

    prewarm_tls()  # the CA bundle is parsed while the verifier and httpx are imported
    from trustcheck.api import collections_for
    from trustcheck.core.reference import parse_reference
    from trustcheck.errors import TrustcheckError
    from trustcheck.local.trustdir import TrustDir

    when = parse_at(at)
    opts = make_options(pins, state_dir, no_tofu, delegation_cert_expiry)
    remote = RemoteArgs(
        False,
        server,
        unsafe_http,
        tls_ca,
        tls_cert,
        tls_key,
        username,
        password_stdin,
        timeout,
        retries,
        concurrency,
    ).config()
    guns = list(dict.fromkeys(parse_reference(i).gun for i in images))
    td = TrustDir(trust_dir_path(trust_dir))
    cols = collections_for(guns, td, when, opts, remote, progress_reporter(len(guns)))
    docs: list[dict[str, object]] = []
    worst = 0
    for gun in guns:
        col = cols[gun]
        if isinstance(col, TrustcheckError):
            worst = max(worst, col.exit_code)
            docs.append({"gun": gun, "ok": False, "error": col.to_json()})
            if not as_json:
                typer.echo(f"FAILED   {gun}  [{col.code}] {col.message}")
            continue
        for w in col.warnings:
            warn(f"{gun}: {w}")
        versions = {name: c.version for name, c in col.checks.items()}
        docs.append({"gun": gun, "ok": True, "root": col.trust_basis, "versions": versions})
        if not as_json:
            typer.echo(
                f"FETCHED  {gun}  (root {col.trust_basis}; "
                + ", ".join(f"{n} v{v}" for n, v in versions.items())
                + ")"
            )
    if as_json:
        typer.echo(json.dumps({"collections": docs}, indent=2, ensure_ascii=False))
    if worst:
        raise Exit(worst)


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
    app.command("inspect")(inspect)
    app.command("fetch")(fetch)
