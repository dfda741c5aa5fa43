"""The typer CLI: thin commands, one error funnel (architecture.md §8).

Results go to stdout, diagnostics and warnings to stderr. Exit codes follow
the contract: 0 trusted / ok, 1 not trusted, 2 usage or input error. Heavy
modules are imported inside the commands so ``--help`` starts fast.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from trustcheck.cliopts import (
    CONTEXT_SETTINGS,
    DEFAULT_REMOTE,
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
    VersionOpt,
    fail_usage,
    home_dir,
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

app = typer.Typer(
    name="trustcheck",
    help="Verify Docker Content Trust (Notary v1) trust data offline, exactly as notary does.",
    no_args_is_help=True,
    add_completion=False,
    context_settings=CONTEXT_SETTINGS,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,  # locals can hold keys and tokens
)


def _root(version: VersionOpt = False) -> None:
    """Verify Docker Content Trust (Notary v1) trust data offline, exactly as notary does."""


app.callback()(_root)


def _human_result(r: ImageResult) -> str:
    if r.trusted:
        signers = ", ".join(r.signers) if r.signers else "-"
        return f"TRUSTED      {r.image}  {r.digest}  (role {r.role}; signers: {signers})"
    assert r.error is not None
    return f"NOT TRUSTED  {r.image}  [{r.error.code}] {r.error.message}"


@app.command()
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
) -> None:
    """Verify each image's trust data and resolve its tag (or check its digest).

    Trust data is fetched from the image's Notary server and cached in the
    trust dir unless --offline. With --repo (TUF 1.0), the arguments are
    target paths. Exit 0 when every image is trusted, 1 when any is not, 2 on
    bad input.
    """
    when = parse_at(at)
    opts = make_options(pins, state_dir, no_tofu, delegation_cert_expiry)
    if dialect not in (None, "notary", "tuf"):
        fail_usage(f"--dialect must be notary or tuf, not {dialect!r}")
    if repo is not None or dialect == "tuf":
        results = _verify_tuf(
            images, repo, dialect, root, when, opts, remote, unsafe_arbitrary_keyids
        )
    else:
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
    from trustcheck.tuf.client import detect_dialect, verify_targets

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


@app.command()
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
) -> None:
    """Show signed tags, signers and keys, as `docker trust inspect` does.

    JSON (the same document Docker prints) by default; --pretty for people.
    """
    from trustcheck.api import collections_for
    from trustcheck.core.lookup import inspect as inspect_one
    from trustcheck.core.reference import parse_reference
    from trustcheck.errors import TrustcheckError
    from trustcheck.local.trustdir import TrustDir

    when = parse_at(at)
    opts = make_options(pins, state_dir, no_tofu, delegation_cert_expiry)
    cfg = remote.config()
    refs = [(i, parse_reference(i)) for i in images]
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
        out.append(inspect_one(col, text, _explicit_tag(text)))
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


def _width(text: str) -> int:
    """Display width as Docker's tabwriter counts it (wide = 2, zero-width = 0)."""
    import unicodedata

    total = 0
    for ch in text:
        if ch.isascii():
            total += 1 if ch >= " " else 0
        elif unicodedata.combining(ch) or unicodedata.category(ch) in (
            "Mn",
            "Me",
            "Cf",
            "Zl",
            "Zp",
            "Cc",
        ):
            continue
        else:
            total += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return total


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """Docker's table layout: tabwriter with min width 10, padding 3."""
    lines = [headers, *rows]
    widths = [max(10, max(_width(line[i]) for line in lines) + 3) for i in range(len(headers) - 1)]
    out = []
    for line in lines:
        cells = [c + " " * (w - _width(c)) for c, w in zip(line[:-1], widths, strict=True)]
        out.append("".join(cells) + line[-1])
    return "\n".join(out) + "\n"


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


@app.command()
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


@app.command()
@remote_options
def thumbprint(
    targets: Annotated[
        list[str],
        typer.Argument(
            help="Images (their root and signer keys) or PEM/DER certificate files.",
            metavar="IMAGE|CERT",
        ),
    ],
    trust_dir: TrustDirOpt = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
    pins: PinsOpt = None,
    state_dir: StateOpt = None,
    no_tofu: NoTofuOpt = False,
    remote: RemoteArgs = DEFAULT_REMOTE,
) -> None:
    """Every identifier of each root and signer key: key IDs, certificate and SPKI hashes.

    Certificate fingerprints equal `openssl x509 -noout -fingerprint -sha256/-sha1`.
    An argument naming an existing file is read as a certificate file; anything
    else is an image whose (verified) trust data is read.
    """
    from trustcheck.api import collections_for
    from trustcheck.core.reference import parse_reference
    from trustcheck.core.thumbprint import keys_of_collection, keys_of_pem, render_json, render_text
    from trustcheck.errors import TrustcheckError
    from trustcheck.local.trustdir import TrustDir

    when = parse_at(at)
    opts = make_options(pins, state_dir, no_tofu, "warn")
    cfg = remote.config()
    td = TrustDir(trust_dir_path(trust_dir, must_exist=remote.offline))
    reports = []
    for t in targets:
        path = Path(t)
        if path.is_file():
            try:
                data = path.read_bytes()
            except OSError as e:
                fail_usage(f"cannot read {t}: {e.strerror or e}")
            reports.extend(keys_of_pem(data, t))
        else:
            ref = parse_reference(t)
            col = collections_for([ref.gun], td, when, opts, cfg)[ref.gun]
            if isinstance(col, TrustcheckError):
                raise col
            reports.extend(keys_of_collection(col))
    typer.echo(render_json(reports) if as_json else render_text(reports))


pin_app = typer.Typer(
    help="Manage root pins (a TOML pin file; see docs/pinning.md).", no_args_is_help=True
)
app.add_typer(pin_app, name="pin")


def _pin_file(pins: Path | None) -> Path:
    from trustcheck.local.pinfile import default_pin_file

    if pins is not None:
        return pins
    if os.environ.get("XDG_CONFIG_HOME"):
        return default_pin_file(os.environ, Path("/"))  # the variable wins over the home
    return default_pin_file(os.environ, home_dir("pin file", "give --pins FILE"))


@pin_app.command("add")
@remote_options
def pin_add(
    image: Annotated[str, typer.Argument(help="Image whose current root to pin.", metavar="IMAGE")],
    trust_dir: TrustDirOpt = None,
    at: AtOpt = None,
    pins: PinsOpt = None,
    state_dir: StateOpt = None,
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="Identifier to pin: cert-sha256, spki-sha256 (survives certificate "
            "renewal with the same key), keyid or canonical.",
        ),
    ] = "cert-sha256",
    pattern: Annotated[
        str | None,
        typer.Option(
            "--pattern", help="Pin a GUN prefix such as registry.example.com/team/* instead."
        ),
    ] = None,
    remote: RemoteArgs = DEFAULT_REMOTE,
) -> None:
    """Verify IMAGE's trust data, then pin its root certificate(s); prints what was pinned."""
    from trustcheck.api import collections_for
    from trustcheck.core.reference import parse_reference
    from trustcheck.errors import TrustcheckError
    from trustcheck.local.pinfile import (
        KINDS,
        Identifier,
        PinEntry,
        PinSet,
        identifiers_of_key,
        load_pins,
    )
    from trustcheck.local.trustdir import TrustDir

    if kind not in KINDS:
        fail_usage(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
    file = _pin_file(pins)
    current = load_pins(file) if file.is_file() else PinSet(path=file)
    ref = parse_reference(image)
    when = parse_at(at)
    opts = make_options(file if file.is_file() else None, state_dir, False, "warn")
    cfg = remote.config()
    td = TrustDir(trust_dir_path(trust_dir, must_exist=remote.offline))
    got = collections_for([ref.gun], td, when, opts, cfg)[ref.gun]
    if isinstance(got, TrustcheckError):
        raise got
    col = got
    if pattern is not None:
        from trustcheck.local.pinfile import normalise_pattern

        try:
            pattern = normalise_pattern(pattern)
        except ValueError as e:
            fail_usage(f"--pattern {pattern[:80]!r} {e}")
    target = pattern or ref.gun
    if pattern is not None and not PinEntry(pattern).matches(ref.gun):
        fail_usage(f"--pattern {pattern!r} does not match {ref.gun}")
    ids: list[Identifier] = []
    for kid, key in col.root_keys.items():
        for ident in sorted(identifiers_of_key(key, kid)):
            if ident.kind == kind and ident not in ids:
                ids.append(ident)
    entry = next((e for e in current.entries if e.pattern == target), None)
    if entry is None:
        entry = PinEntry(pattern=target)
        current.entries.append(entry)
    added = [i for i in ids if i not in entry.root]
    entry.root.extend(added)
    from trustcheck.local.pinfile import write_pins

    write_pins(current, file)
    for i in ids:
        state = "pinned" if i in added else "already pinned"
        typer.echo(f"{state} {target}: {i}")
    typer.echo(f"pin file: {file}", err=True)


@pin_app.command("list")
def pin_list(
    pins: PinsOpt = None,
    trust_dir: TrustDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List pins, and flag entries that match no collection in the trust dir."""
    from trustcheck.local.pinfile import load_pins
    from trustcheck.local.trustdir import TrustDir

    file = _pin_file(pins)
    if not file.is_file():
        fail_usage(f"no pin file at {file}; create one with `trustcheck pin add IMAGE`")
    pinset = load_pins(file)
    guns = TrustDir(trust_dir_path(trust_dir, must_exist=True)).list_guns()
    unmatched = {id(e) for e in pinset.unmatched(guns)}
    rows = [
        {
            "pattern": e.pattern,
            "root": [str(i) for i in e.root],
            "ca": str(e.ca) if e.ca else None,
            "signers": {n: [str(i) for i in ids] for n, ids in e.signers.items()},
            "matches": sorted(g for g in guns if e.matches(g)),
            "unmatched": id(e) in unmatched,
        }
        for e in pinset.entries
    ]
    if as_json:
        doc = {"pin_file": str(file), "no_tofu": pinset.no_tofu, "pins": rows}
        typer.echo(json.dumps(doc, indent=2))
        return
    for e in pinset.entries:
        typer.echo(e.pattern)
        for i in e.root:
            typer.echo(f"  root    {i}")
        if e.ca:
            typer.echo(f"  ca      {e.ca}")
        for n, sids in e.signers.items():
            typer.echo(f"  signer  {n}: {', '.join(str(i) for i in sids)}")
        if id(e) in unmatched:
            typer.echo("  (matches no collection in the trust dir)")
            warn(f"pin {e.pattern} matches no collection in the trust dir")


@pin_app.command("remove")
def pin_remove(
    pattern: Annotated[
        str, typer.Argument(help="The exact GUN or pattern of the entry.", metavar="PATTERN")
    ],
    pins: PinsOpt = None,
) -> None:
    """Remove a pin entry."""
    import contextlib

    from trustcheck.local.pinfile import load_pins, write_pins

    file = _pin_file(pins)
    if not file.is_file():
        fail_usage(f"no pin file at {file}")
    pinset = load_pins(file)
    from trustcheck.local.pinfile import normalise_pattern

    with contextlib.suppress(ValueError):  # entries are stored under their identity
        pattern = normalise_pattern(pattern)
    kept = [e for e in pinset.entries if e.pattern != pattern]
    if len(kept) == len(pinset.entries):
        fail_usage(f"{file} has no entry {pattern!r} (see `trustcheck pin list`)")
    pinset.entries = kept
    write_pins(pinset, file)
    typer.echo(f"removed {pattern}")


_groups_registered = False


def full_app() -> typer.Typer:
    """The app with every command, including the groups in ``trustcheck/commands``."""
    global _groups_registered
    if not _groups_registered:
        from trustcheck.commands import register_all

        register_all(app)
        _groups_registered = True
    return app


def _app_for(argv: list[str]) -> typer.Typer:
    """The smallest app that runs ``argv``.

    Typer converts every registered command into a click command on each run,
    and the command groups import their modules: for a core command (verify,
    inspect, fetch, thumbprint) an app holding just that command starts about
    a third faster. Anything else (help, the groups) gets the full app.
    """
    name = next((a for a in argv if not a.startswith("-")), None)
    if name is not None and not _groups_registered:
        for info in app.registered_commands:
            cmd_name = info.name or (info.callback.__name__ if info.callback else None)
            if cmd_name == name:
                one = typer.Typer(
                    name="trustcheck",
                    add_completion=False,
                    context_settings=CONTEXT_SETTINGS,
                    pretty_exceptions_enable=False,
                    pretty_exceptions_show_locals=False,
                )
                one.registered_commands.append(info)
                one.callback()(_root)  # keep `trustcheck NAME ...` as the syntax
                return one
    return full_app()


#: exit code when stdout's reader went away (``trustcheck inspect ... | head -1``):
#: 128 + SIGPIPE, what a shell reports for any program a closed pipe ends
EXIT_BROKEN_PIPE = 141


def _stdout_gone() -> int:
    """stdout is a closed pipe: point it at /dev/null so the final flush at exit
    cannot fail again (no 'Exception ignored' traceback), and report 141."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (tests): nothing to do
        pass
    return EXIT_BROKEN_PIPE


def _stdout_is_pipe() -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(1).st_mode)
    except OSError:
        return False


def _pipe_closed(was_pipe: bool) -> bool:
    """Did a library turn a closed stdout pipe into ``sys.exit(1)``? typer then wraps
    stdout in click's PacifyFlushWrapper; rich (help pages) points fd 1, which was a
    pipe when the run started, at /dev/null."""
    if type(sys.stdout).__name__ == "PacifyFlushWrapper":
        return True
    try:
        return was_pipe and os.path.samestat(os.fstat(1), os.stat(os.devnull))
    except OSError:
        return False


def _reliable_stdout() -> TextIO | None:
    """With ``PYTHONUNBUFFERED=1`` or ``-u`` (common in container images), stdout is a
    text layer straight over the file descriptor, and CPython drops the rest of a
    partial write without an error: ``trustcheck inspect IMAGE | head -1`` would
    exit 0 with its output cut short. Put a buffered writer in between (it retries
    partial writes and raises on a closed pipe), flushed at every newline as
    unbuffered output expects. Returns the replacement, or None when stdout is
    already buffered (or not a real file, as under test capture)."""
    out = sys.stdout
    if not isinstance(getattr(out, "buffer", None), io.FileIO):
        return None
    raw = io.FileIO(out.fileno(), "w", closefd=False)  # fd 1 stays open when this goes
    return io.TextIOWrapper(
        io.BufferedWriter(raw), encoding=out.encoding, errors=out.errors, line_buffering=True
    )


def _status(code: object) -> int:
    """A click/typer exit status as an int; anything that is not a clean 0 fails."""
    if code is None:
        return 0
    if isinstance(code, bool) or not isinstance(code, int):
        return 1
    return code


def main(argv: list[str] | None = None) -> int:
    """Console entry point: the one place errors become exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    was_pipe = _stdout_is_pipe()
    prior, reliable = sys.stdout, _reliable_stdout()
    if reliable is not None:
        sys.stdout = reliable
    try:
        return _run(args, was_pipe)
    finally:
        if reliable is not None:
            with contextlib.suppress(OSError, ValueError):
                reliable.flush()
            sys.stdout = prior


def _run(args: list[str], was_pipe: bool) -> int:
    from trustcheck.errors import TrustcheckError

    try:
        rv = _app_for(args)(args=args, prog_name="trustcheck", standalone_mode=False)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        # non-standalone click returns ctx.exit(N)'s code, or the command's return value
        return _status(rv) if isinstance(rv, int) else 0
    except Exit as e:
        return e.code
    except TrustcheckError as e:
        typer.echo(f"error: [{e.code}] {e.message}", err=True)
        return e.exit_code
    except typer.Exit as e:
        return _status(e.exit_code)
    except typer.Abort:
        typer.echo("error: aborted; nothing was trusted", err=True)
        return 1
    except SystemExit as e:  # typer and rich turn a broken pipe into sys.exit(1)
        if e.code == 1 and _pipe_closed(was_pipe):
            return _stdout_gone()
        return _status(e.code) if e.code is not None else 0
    except BrokenPipeError:
        return _stdout_gone()
    except KeyboardInterrupt:  # only in-process (the entry point exits on SIGINT itself)
        typer.echo("interrupted; nothing was trusted", err=True)
        return 130
    except typer.TyperException as e:  # usage errors from the (vendored) click parser
        show = getattr(e, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"error: {e}", err=True)
        return int(getattr(e, "exit_code", 2) or 2)
    except Exception as e:  # anything unexpected: fail closed, one line
        if isinstance(e, OSError) and e.errno == errno.EPIPE:
            return _stdout_gone()
        typer.echo(
            f"error: [internal-error] unexpected {type(e).__name__}: {e}; "
            "nothing was trusted. Please report this as a trustcheck bug.",
            err=True,
        )
        if os.environ.get("TRUSTCHECK_DEBUG"):
            raise
        return 1
    return 0


def run() -> None:  # pragma: no cover - thin wrapper
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
