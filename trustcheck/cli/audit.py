"""``trustcheck audit``: the signer-key audit of one or many collections (docs/audit.md).

Offline by default: the trust dir is verified as it is.  ``--server URL`` (or
``--fetch`` for each GUN's default server) fetches, verifies and caches first,
exactly as ``trustcheck fetch`` does.  The report goes to stdout or
``--output``; progress for many collections and diagnostics go to stderr.
Exit 0, or 1 when a finding reaches ``--fail-on``; 2 on bad input.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from trustcheck.cli.archive import ArchiveOpt, ArchivePinOpt, MaxAgeOpt, archive_trust_dir
from trustcheck.cli.options import (
    DCE_MODES,
    FAIL_ON,
    AtOpt,
    ConcurrencyOpt,
    DceOpt,
    Exit,
    NoTofuOpt,
    PasswordStdinOpt,
    PinsOpt,
    RemoteArgs,
    RetriesOpt,
    ServerOpt,
    TimeoutOpt,
    TlsCaOpt,
    TlsCertOpt,
    TlsKeyOpt,
    TrustDirOpt,
    UnsafeHttpOpt,
    UserOpt,
    choice,
    default_pins,
    fail_usage,
    parse_at,
    trust_dir_path,
    warn,
)
from trustcheck.errors import ErrorCode

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from trustcheck.api import Options
    from trustcheck.audit.model import CollectionAudit
    from trustcheck.core.model import RootMeta
    from trustcheck.core.verify import Collection
    from trustcheck.errors import TrustcheckError
    from trustcheck.local.pinfile import PinSet
    from trustcheck.local.trustdir import TrustDir
    from trustcheck.notation.config import NotationConfig
    from trustcheck.policy.model import Policy
    from trustcheck.remote.config import RemoteConfig

FORMATS = ("table", "json", "csv", "markdown", "html")
#: progress is shown from this many collections on
PROGRESS_FROM = 10
#: offline audits of this many collections use worker processes (one per CPU)
PARALLEL_FROM = 64
#: collections handed to a worker at a time (at most)
CHUNK = 25


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)


def audit(
    images: Annotated[
        list[str] | None,
        typer.Argument(
            help="Images or repositories to audit (tags are ignored: every tag is audited).",
            metavar="IMAGE",
            show_default=False,
        ),
    ] = None,
    all_guns: Annotated[
        bool, typer.Option("--all", help="Audit every collection in the trust dir.")
    ] = False,
    trust_dir: TrustDirOpt = None,
    at: AtOpt = None,
    horizon: Annotated[
        str,
        typer.Option(
            "--horizon", help="Warn about what expires within this: 90d, 12w, 1y, or days."
        ),
    ] = "90d",
    fmt: Annotated[
        str, typer.Option("--format", help="table, json, csv (findings), markdown or html.")
    ] = "table",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the report here instead of stdout."),
    ] = None,
    fail_on: Annotated[
        str | None,
        typer.Option(
            "--fail-on",
            help="Exit 1 when a finding is at least this severe: warning or error.",
            show_default=False,
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="Only this key (key ID, canonical ID, certificate or SPKI SHA-256, or a prefix "
            "of 8+ hex digits): what does it let its holder sign?",
            show_default=False,
        ),
    ] = None,
    targets_csv: Annotated[
        Path | None,
        typer.Option(
            "--targets-csv",
            help="Also write every signed (GUN, tag, digest, signers) as CSV, for re-signing "
            "with Notation or cosign.",
            show_default=False,
        ),
    ] = None,
    pins: PinsOpt = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            help="Enforce (and record) trusted roots and versions as verify does. Default: "
            "none; the audit then writes nothing.",
            show_default=False,
        ),
    ] = None,
    no_tofu: NoTofuOpt = False,
    delegation_cert_expiry: DceOpt = "warn",
    server: ServerOpt = None,
    fetch: Annotated[
        bool,
        typer.Option(
            "--fetch", help="Fetch from each collection's default Notary server before auditing."
        ),
    ] = False,
    unsafe_http: UnsafeHttpOpt = False,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    username: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
    timeout: TimeoutOpt = 10.0,
    retries: RetriesOpt = 2,
    concurrency: ConcurrencyOpt = 8,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            help="Worker processes for offline audits (default: one per CPU, at most 4, "
            "from 64 collections on; 1 = none).",
            min=1,
            show_default=False,
        ),
    ] = None,
    archive: ArchiveOpt = None,
    archive_pin: ArchivePinOpt = None,
    max_age: MaxAgeOpt = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help="Also audit the trust material this policy names: cosign keys and keyless "
            "identities of its require: blocks, the Notation files and trusted roots of its "
            "rules (docs/audit.md).",
            show_default=False,
        ),
    ] = None,
    notation: Annotated[
        bool,
        typer.Option(
            "--notation",
            help="Also audit Notation's own trust policy and trust store (its default files: "
            "$NOTATION_CONFIG, else ~/.config/notation).",
        ),
    ] = False,
    notation_trust_policy: Annotated[
        Path | None,
        typer.Option(
            "--notation-trust-policy",
            help="Also audit this Notation trustpolicy.json and the trust stores it names.",
            show_default=False,
        ),
    ] = None,
    notation_trust_store: Annotated[
        Path | None,
        typer.Option(
            "--notation-trust-store",
            help="The Notation truststore folder (holding x509/{ca,signingAuthority,tsa}/NAME/).",
            show_default=False,
        ),
    ] = None,
    trusted_root: Annotated[
        list[Path] | None,
        typer.Option(
            "--trusted-root",
            help="Also audit this Sigstore trusted_root.json: Fulcio CAs, Rekor and CT logs, "
            "timestamp authorities and their validity windows (repeatable).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Audit signer keys: who can sign what, what is weak, what expires, across collections.

    Lists every role, key, delegation, signer and signed tag, and reports
    findings with stable codes (docs/audit.md). Offline unless --server or
    --fetch is given.
    """
    from trustcheck.audit.index import build_report
    from trustcheck.audit.model import normalise_key_query, parse_horizon
    from trustcheck.audit.render import render_chunks
    from trustcheck.audit.render.csv import render_targets_csv
    from trustcheck.core.reference import parse_reference
    from trustcheck.local.trustdir import TrustDir

    fmt = choice("--format", fmt, FORMATS)
    if fail_on is not None:
        fail_on = choice("--fail-on", fail_on, FAIL_ON)
    span = parse_horizon(horizon)
    when = parse_at(at)
    key_filter = normalise_key_query(key) if key is not None else None
    if all_guns and images:
        fail_usage("give images or --all, not both")
    material = (
        policy is not None
        or notation
        or notation_trust_policy is not None
        or notation_trust_store is not None
        or bool(trusted_root)
    )
    signatures = None
    if material:  # read (and refused when invalid) before any collection is verified
        from trustcheck.audit.signatures import gather

        signatures = gather(
            when,
            span,
            policy=_load_policy(policy) if policy is not None else None,
            notation=_notation_config(notation, notation_trust_policy, notation_trust_store),
            trusted_roots=list(trusted_root or []),
        )
    offline = server is None and not fetch
    if archive is not None:  # docs/archive.md: audited as of the archive's capture time
        if not offline:
            fail_usage("--archive audits the archive's data: drop --server/--fetch")
        td, when = archive_trust_dir(archive, archive_pin, max_age, at)
    else:
        if archive_pin is not None or max_age is not None:
            fail_usage("--archive-pin and --max-age apply to --archive")
        td = TrustDir(trust_dir_path(trust_dir, must_exist=offline and (bool(images) or all_guns)))
    problems: list[tuple[str, str, str]] = []
    if all_guns:
        guns = td.list_guns(problems)
        if not guns and not problems:
            warn(f"no collections in {td.root}")
    elif images:
        guns = list(dict.fromkeys(parse_reference(i).gun for i in images))
    elif signatures is not None:
        guns = []  # only the Notation / cosign / Sigstore trust material
    else:
        fail_usage(
            "name the images to audit, --all for every collection in the trust dir, or "
            "--policy/--notation/--trusted-root for Notation and cosign trust material"
        )
    opts, pinset = _options(pins, state_dir, no_tofu, delegation_cert_expiry)
    fetched = server is not None or fetch
    remote = None
    if fetched:
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
    progress = _progress(len(guns), "fetched" if fetched else "audited")
    job = _Job(td.root, when, span, opts, pinset, fetched)
    import gc

    # many small objects and no cycles: the cyclic collector would only rescan them
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        if remote is not None:
            audits = _fetch_and_audit(job, guns, remote, progress)
        else:
            audits = _audit_offline(job, guns, _workers(len(guns), jobs), progress)
    finally:
        if was_enabled:
            gc.enable()
    if problems:
        from trustcheck.audit.collect import unreadable_collection

        audits += [unreadable_collection(*p) for p in problems]
    report = build_report(audits, when, horizon=span, key_filter=key_filter)
    if signatures is not None:
        report.signatures = signatures
        report.findings += signatures.findings
    if key_filter is not None and not report.keys:
        warn(f"--key {key} matches no key of the audited collections")
    chunks = render_chunks(report, fmt)  # a large audit is written piece by piece
    if output is not None:
        _write(output, chunks, "--output")
        counts = report.counts()
        typer.echo(
            f"wrote the audit of {len(report.collections)} collection(s) to {output} "
            f"({counts['error']} error(s), {counts['warning']} warning(s))",
            err=True,
        )
    else:
        for chunk in chunks:
            typer.echo(chunk, nl=False)
    if targets_csv is not None:
        _write(targets_csv, render_targets_csv(report), "--targets-csv")
    if report.reaches(fail_on):
        raise Exit(1)


def _load_policy(path: Path) -> Policy:
    from trustcheck.policy.load import load_policy

    return load_policy(path)


def _notation_config(
    defaults: bool, trust_policy: Path | None, trust_store: Path | None
) -> NotationConfig | None:
    """Notation's files: the two options (each defaulting to Notation's own place) or,
    with ``--notation`` alone, Notation's defaults; None when none is asked for."""
    if not defaults and trust_policy is None and trust_store is None:
        return None
    from trustcheck.notation.config import load_notation_config

    return load_notation_config(trust_policy, trust_store)


@dataclass(frozen=True)
class _Job:
    """What every collection of one audit is verified and audited with (sent to workers)."""

    trust_dir: Path
    at: datetime
    horizon: timedelta
    opts: Options
    pinset: PinSet | None
    fetched: bool


def _workers(total: int, jobs: int | None) -> int:
    """Worker processes: ``--jobs``, else one per CPU (at most 4) for large audits."""
    if jobs is not None:
        return max(1, jobs)
    if total < PARALLEL_FROM:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


def _audit_chunk(job: _Job, guns: list[str]) -> list[CollectionAudit]:
    """Verify and audit ``guns`` from the trust dir (in this process or a worker)."""
    from trustcheck.api import load_collection
    from trustcheck.errors import TrustcheckError as Error
    from trustcheck.local.trustdir import TrustDir

    td = TrustDir(job.trust_dir)
    out = []
    for gun in guns:
        got: Collection | TrustcheckError
        try:
            got = load_collection(td, gun, job.at, job.opts)
        except Error as e:  # recorded as an unverifiable collection, as fetch_many does
            got = e
        out.append(_audit_one(td, gun, got, job))
    return out


def _audit_offline(
    job: _Job, guns: list[str], workers: int, progress: Callable[[int, int], None] | None
) -> list[CollectionAudit]:
    """Each collection verified from the trust dir and audited at once (then dropped);
    with several workers, chunks of collections in forked worker processes."""
    import multiprocessing

    audits: list[CollectionAudit] = []
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        for i, gun in enumerate(guns, start=1):
            audits += _audit_chunk(job, [gun])
            if progress is not None:
                progress(i, len(guns))
        return audits
    from concurrent.futures import ProcessPoolExecutor, as_completed

    size = max(1, min(CHUNK, -(-len(guns) // (workers * 4))))
    chunks = [guns[i : i + size] for i in range(0, len(guns), size)]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_quiet_worker_signals
    ) as pool:
        futures = [pool.submit(_audit_chunk, job, chunk) for chunk in chunks]
        for future in as_completed(futures):
            audits += future.result()
            if progress is not None:
                progress(len(audits), len(guns))
    return audits


def _quiet_worker_signals() -> None:
    """Workers end silently on Ctrl-C (the terminal signals the whole process
    group): only the parent prints `interrupted; nothing was trusted` and exits
    130/143."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def _fetch_and_audit(
    job: _Job,
    guns: list[str],
    remote: RemoteConfig,
    progress: Callable[[int, int], None] | None,
) -> list[CollectionAudit]:
    """Fetch (concurrently, as ``trustcheck fetch``), verify, cache, then audit."""
    from trustcheck.api import collections_for
    from trustcheck.local.trustdir import TrustDir

    td = TrustDir(job.trust_dir)
    cols = collections_for(guns, td, job.at, job.opts, remote, progress)
    return [_audit_one(td, gun, cols.pop(gun), job) for gun in guns]


def _options(
    pins: Path | None, state_dir: Path | None, no_tofu: bool, dce: str
) -> tuple[Options, PinSet | None]:
    """Pins as every command loads them; state only when asked for (an audit writes nothing)."""
    from trustcheck.api import Options
    from trustcheck.local.pinfile import load_pins
    from trustcheck.local.state import StateStore

    dce = choice("--delegation-cert-expiry", dce, DCE_MODES)
    pins = default_pins(pins)
    pinset = load_pins(pins) if pins is not None else None
    state = StateStore(state_dir) if state_dir is not None else None
    return Options(pinset, state, no_tofu, dce), pinset


def _audit_one(
    td: TrustDir, gun: str, got: Collection | TrustcheckError, job: _Job
) -> CollectionAudit:
    from trustcheck.audit.collect import audit_collection
    from trustcheck.errors import TrustcheckError

    at, horizon, fetched = job.at, job.horizon, job.fetched
    pinned = job.pinset is not None and job.pinset.lookup(gun) is not None
    if isinstance(got, TrustcheckError):
        return audit_collection(
            gun,
            got,
            at,
            horizon=horizon,
            pinned=pinned,
            root=_unverified_root(td, gun),
            fetched=fetched,
        )
    return audit_collection(
        gun,
        got,
        at,
        horizon=horizon,
        pinned=pinned,
        cached_roles=_cached_unlisted(td, got),
        fetched=fetched,
    )


def _unverified_root(td: TrustDir, gun: str) -> RootMeta | None:
    """root.json of a collection that did not verify, parsed but not trusted (for its keys)."""
    from trustcheck.core.model import parse_root
    from trustcheck.core.roles import MAX_DOWNLOAD_SIZE
    from trustcheck.errors import TrustcheckError

    try:
        raw = td.read_role(gun, "root", MAX_DOWNLOAD_SIZE)
        return parse_root(raw) if raw is not None else None
    except TrustcheckError:
        return None


def _cached_unlisted(td: TrustDir, col: Collection) -> set[str]:
    """Delegations listed by a loaded role, absent from the snapshot, whose file is cached."""
    from trustcheck.errors import TrustcheckError as Error

    out: set[str] = set()
    try:
        base = td.metadata_dir(col.gun)
    except Error:
        return out
    for parent in col.targets:
        for d in col.children.get(parent, ()):
            name = d.name
            if name in col.targets or name in col.skipped:
                continue
            try:
                if (base / f"{name}.json").is_file():
                    out.add(name)
            except OSError:
                continue
    return out


def _progress(total: int, verb: str) -> Callable[[int, int], None] | None:
    """A progress bar on stderr (a line every 10% when stderr is not a terminal)."""
    if total < PROGRESS_FROM:
        return None
    tty = sys.stderr.isatty()
    step = max(1, total // 10)

    def report(done: int, of: int) -> None:
        if tty:
            filled = 30 * done // max(of, 1)
            end = "\n" if done >= of else ""
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {verb} {done}/{of}{end}")
            sys.stderr.flush()
        elif done % step == 0 or done == of:
            typer.echo(f"{verb} {done}/{of} collections", err=True)

    return report


def _write(path: Path, text: str | Iterable[str], option: str) -> None:
    from trustcheck.errors import UsageError

    try:
        with path.open("w", encoding="utf-8") as out:
            if isinstance(text, str):
                out.write(text)
            else:
                out.writelines(text)
    except OSError as e:
        raise UsageError(
            ErrorCode.OUTPUT_UNWRITABLE, f"{option} {path}: cannot write: {e.strerror or e}"
        ) from e
