"""``trustcheck archive ...`` and the ``--archive`` options of verify and gate (docs/archive.md).

Only ``typer`` and the shared options are imported at module level; the work
(:mod:`trustcheck.archive`) is imported inside the commands.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from trustcheck.cli.options import (
    DEFAULT_REMOTE,
    AtOpt,
    DceOpt,
    Exit,
    JsonOpt,
    NoTofuOpt,
    PinsOpt,
    RemoteArgs,
    StateOpt,
    TrustDirOpt,
    fail_usage,
    make_options,
    parse_at,
    remote_options,
    trust_dir_path,
    warn,
)
from trustcheck.errors import ErrorCode

if TYPE_CHECKING:
    from datetime import datetime

    from trustcheck.api import ImageResult, Options
    from trustcheck.archive import Archive
    from trustcheck.core.reference import ImageRef
    from trustcheck.local.trustdir import TrustDir
    from trustcheck.policy.model import Decision, Policy

__all__ = [
    "ArchiveOpt",
    "ArchivePinOpt",
    "CompareLiveOpt",
    "MaxAgeOpt",
    "archive_trust_dir",
    "decide_from_archive",
    "open_for_reading",
    "register",
    "verify_from_archive",
]

ArchiveOpt = Annotated[
    Path | None,
    typer.Option(
        "--archive",
        help="Verify against this trust archive (archive create), as of its capture time; "
        "--at is then the time the archive's age is measured to.",
        show_default=False,
    ),
]
ArchivePinOpt = Annotated[
    str | None,
    typer.Option(
        "--archive-pin",
        help="The archive must be signed by this key: a PEM public key (or certificate) file "
        "or sha256:<hex of its DER SubjectPublicKeyInfo>.",
        show_default=False,
    ),
]
MaxAgeOpt = Annotated[
    str | None,
    typer.Option(
        "--max-age",
        help="Refuse an archive captured longer ago than this (e.g. 90d, 36h, 30m).",
        show_default=False,
    ),
]
CompareLiveOpt = Annotated[
    bool,
    typer.Option(
        "--compare-live",
        help="With --archive: also fetch the live data and report keys revoked since the "
        "capture (the verdict stays the archive's).",
    ),
]
PASSPHRASE_ENV = "TRUSTCHECK_ARCHIVE_KEY_PASSPHRASE"


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Trust archives: keep verifying after the Notary servers are gone (docs/archive.md).",
        no_args_is_help=True,
    )
    group.command("create")(remote_options(archive_create))
    group.command("inspect")(archive_inspect)
    group.command("extract")(archive_extract)
    app.add_typer(group, name="archive")


def open_for_reading(
    archive: Path, archive_pin: str | None, max_age: str | None, at: str | None
) -> Archive:
    """The checked archive for ``--archive`` (``--at``: the reader's time)."""
    from trustcheck.archive import load_pin, open_archive, parse_max_age

    pin = load_pin(archive_pin) if archive_pin is not None else None
    limit = parse_max_age(max_age) if max_age is not None else None
    return open_archive(archive, parse_at(at), pin=pin, max_age=limit)


def archive_text(a: Archive) -> str:
    signed = f"signed by sha256:{a.signer}" if a.signer is not None else "unsigned"
    return f"as of capture time {a.as_of} (trust archive {a.path}, {signed})"


def _human(r: ImageResult, as_of: str) -> str:
    if r.trusted:
        signers = ", ".join(r.signers) if r.signers else "-"
        return (
            f"TRUSTED      {r.image}  {r.digest}  (role {r.role}; signers: {signers}) "
            f"as of capture time {as_of}"
        )
    assert r.error is not None
    return (
        f"NOT TRUSTED  {r.image}  [{r.error.code}] {r.error.message} (as of capture time {as_of})"
    )


def verify_from_archive(
    images: list[str],
    archive: Path,
    archive_pin: str | None,
    max_age: str | None,
    at: str | None,
    opts: Options,
    as_json: bool,
    live: tuple[RemoteArgs, Path | None] | None = None,
) -> None:
    """``verify --archive``: the answers as of the archive's capture time; with
    ``live`` (``--compare-live``: the server options and trust dir), keys revoked
    since the capture are reported beside them."""
    a = open_for_reading(archive, archive_pin, max_age, at)
    results = a.verify_images(images, opts)
    revoked: dict[str, list[dict[str, str]]] = {}
    live_errors: dict[str, dict[str, str | None]] = {}
    if live is not None:
        revoked, live_errors = _compare_live(a, [r.gun for r in results], opts, *live)
    seen: set[str] = set()
    for r in results:
        for w in r.warnings:
            if w not in seen:
                seen.add(w)
                warn(f"{r.gun}: {w}")
    if as_json:
        doc = {
            "as_of": a.as_of,
            "archive": a.describe(),
            "results": [
                {
                    **r.to_json(),
                    "as_of": a.as_of,
                    **(
                        {
                            "revoked_since_capture": revoked.get(r.gun, []),
                            "live_error": live_errors.get(r.gun),
                        }
                        if live is not None
                        else {}
                    ),
                }
                for r in results
            ],
        }
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        typer.echo(f"# {archive_text(a)}")
        for r in results:
            typer.echo(_human(r, a.as_of))
    if any(r.error is not None and r.error.exit_code == 2 for r in results):
        raise Exit(2)
    if not all(r.trusted for r in results):
        raise Exit(1)


def _compare_live(
    a: Archive, guns: list[str], opts: Options, remote: RemoteArgs, trust_dir: Path | None
) -> tuple[dict[str, list[dict[str, str]]], dict[str, dict[str, str | None]]]:
    """Fetch ``guns`` live (now; pins apply, the state is neither read nor written)
    and list, per GUN, the archive's keys the live data no longer trusts."""
    from dataclasses import replace
    from datetime import UTC, datetime

    from trustcheck.api import collections_for
    from trustcheck.archive.live import revoked_since_capture
    from trustcheck.errors import TrustcheckError
    from trustcheck.local.trustdir import TrustDir

    if remote.offline:
        fail_usage("--compare-live fetches the live data: it cannot run --offline")
    cfg = remote.config()
    td = TrustDir(trust_dir_path(trust_dir))
    unique = list(dict.fromkeys(guns))
    archived = a.collections_for(unique, opts)
    live = collections_for(unique, td, datetime.now(UTC), replace(opts, state=None), cfg)
    revoked: dict[str, list[dict[str, str]]] = {}
    errors: dict[str, dict[str, str | None]] = {}
    for gun in unique:
        then, now = archived[gun], live[gun]
        if isinstance(now, TrustcheckError):
            errors[gun] = now.to_json()
            warn(f"{gun}: live data unavailable for comparison: [{now.code}] {now.message}")
            continue
        if isinstance(then, TrustcheckError):
            continue
        found = revoked_since_capture(then, now)
        revoked[gun] = [k.to_json() for k in found]
        for k in found:
            warn(
                f"{gun}: key {k.keyid[:12]}… trusted for {k.role} in the archive (captured "
                f"{a.as_of}) is revoked in the live data: {k.why}"
            )
    return revoked, errors


def archive_create(
    images: Annotated[
        list[str] | None,
        typer.Argument(
            help="Images whose trust data to capture (their whole collections).",
            metavar="IMAGE",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="The archive file to write.", show_default=False),
    ] = None,
    capture_all: Annotated[
        bool,
        typer.Option("--all", help="Capture every collection in the trust dir."),
    ] = False,
    sign_key: Annotated[
        Path | None,
        typer.Option(
            "--sign-key",
            help="Sign the manifest with this PEM private key (ECDSA P-256, Ed25519, RSA >= "
            f"2048); an encrypted key reads its passphrase from ${PASSPHRASE_ENV}.",
            show_default=False,
        ),
    ] = None,
    trust_dir: TrustDirOpt = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
    pins: PinsOpt = None,
    state_dir: StateOpt = None,
    no_tofu: NoTofuOpt = False,
    delegation_cert_expiry: DceOpt = "warn",
    remote: RemoteArgs = DEFAULT_REMOTE,
) -> None:
    """Fetch (unless --offline), verify and write a self-contained trust archive.

    The capture time is now, or --at. Every collection must verify at that
    time and every image given must be trusted, else nothing is written
    (exit 1). The same data and capture time give a byte-identical archive.
    """
    from trustcheck.archive import create_archive, load_signing_key, write_archive
    from trustcheck.local.trustdir import TrustDir

    if output is None:
        fail_usage("archive create needs --output FILE (-o FILE)")
    names = list(images or [])
    if not names and not capture_all:
        fail_usage("archive create needs images, or --all for every collection in the trust dir")
    signer = None
    if sign_key is not None:
        phrase = os.environ.get(PASSPHRASE_ENV)
        signer = load_signing_key(sign_key, phrase.encode() if phrase is not None else None)
    when = parse_at(at)
    from datetime import UTC, datetime, timedelta

    if when > datetime.now(UTC) + timedelta(minutes=5):
        fail_usage(f"--at {at}: a capture time cannot lie in the future")
    opts = make_options(pins, state_dir, no_tofu, delegation_cert_expiry)
    cfg = remote.config()
    td = TrustDir(trust_dir_path(trust_dir, must_exist=remote.offline or capture_all))
    guns: list[str] = []
    if capture_all:
        problems: list[tuple[str, str, str]] = []
        guns = td.list_guns(problems)
        for where, code, why in problems:
            warn(f"tuf/{where}: [{code}] {why}; not captured")
        if not guns and not names:
            fail_usage(f"--all: the trust dir {td.root} holds no collection")
    created = create_archive(guns, td, when, opts, cfg, images=names, signer=signer)
    write_archive(created.data, output)
    for w in created.warnings:
        warn(w)
    if as_json:
        doc = {
            "archive": str(output),
            "captured_at": created.captured_at,
            "manifest_sha256": created.manifest_sha256,
            "signed_by": f"sha256:{created.signer}" if created.signer is not None else None,
            "collections": {g: {"server": s} for g, s in created.collections.items()},
            "size": len(created.data),
        }
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    signed = f"signed by sha256:{created.signer}" if created.signer else "unsigned"
    typer.echo(
        f"wrote {output}: {len(created.collections)} collection(s) captured at "
        f"{created.captured_at}, {len(created.data)} bytes, manifest sha256:"
        f"{created.manifest_sha256}, {signed}"
    )
    for gun, server in created.collections.items():
        typer.echo(f"  {gun}  (from {server or 'the trust dir'})")


def archive_inspect(
    archive: Annotated[Path, typer.Argument(help="The trust archive.", show_default=False)],
    archive_pin: ArchivePinOpt = None,
    max_age: MaxAgeOpt = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check an archive (manifest, signature, age) and show what it holds.

    Exit 0 when it is intact, 1 when it is refused.
    """
    a = open_for_reading(archive, archive_pin, max_age, at)
    captured = {
        gun: {
            "server": rec.server,
            "trust_basis_at_capture": rec.trust_basis,
            "roles": rec.roles,
        }
        for gun, rec in sorted(a.collections.items())
    }
    if as_json:
        doc = {**a.describe(), "collections": captured, "images_at_capture": a.images}
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    typer.echo(f"trust archive {a.path}: intact, {archive_text(a)}")
    typer.echo(
        f"  manifest sha256:{a.manifest_sha256}; written by trustcheck {a.trustcheck_version}"
    )
    for gun, rec in sorted(a.collections.items()):
        roles = ", ".join(
            f"{name} v{info.get('version')} (expires {info.get('expires')})"
            for name, info in sorted(rec.roles.items())
            if isinstance(info, dict)
        )
        typer.echo(f"  {gun}  from {rec.server or 'a trust dir'}: {roles}")


def archive_extract(
    archive: Annotated[Path, typer.Argument(help="The trust archive.", show_default=False)],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Trust dir to write tuf/<GUN>/metadata into.", show_default=False
        ),
    ],
    archive_pin: ArchivePinOpt = None,
    max_age: MaxAgeOpt = None,
    at: AtOpt = None,
) -> None:
    """Write the archive's trust data into a trust dir (after checking the archive).

    Files keep their original bytes; verifying them live fails once they
    expired: use verify --archive for that.
    """
    from trustcheck.archive.format import TRUST_PREFIX, split_role_path
    from trustcheck.local.trustdir import TrustDir

    a = open_for_reading(archive, archive_pin, max_age, at)
    td = TrustDir(output)
    count = 0
    for gun in sorted(a.collections):
        files = sorted(
            (role, data)
            for name, data in a.files.items()
            for owner, role in split_role_path(name[len(TRUST_PREFIX) : -len(".json")])
            if owner == gun
        )
        try:
            td.write_roles(gun, files)
        except OSError as e:
            from trustcheck.errors import UsageError

            raise UsageError(
                ErrorCode.TRUST_DIR_UNWRITABLE, f"cannot write into {output}: {e.strerror or e}"
            ) from e
        count += len(files)
    typer.echo(
        f"wrote {count} file(s) of {len(a.collections)} collection(s) into {output} "
        f"({archive_text(a)})"
    )


def decide_from_archive(
    policy: Policy,
    images: list[str],
    refs: list[ImageRef],
    archive: Path,
    archive_pin: str | None,
    max_age: str | None,
    at: str | None,
    opts: Options,
) -> tuple[list[Decision], Archive]:
    """``gate --archive``: the policy's decisions from the archive's trust data."""
    from trustcheck.archive.decide import evaluate_archive

    a = open_for_reading(archive, archive_pin, max_age, at)
    decisions = evaluate_archive(refs, policy, a, opts, images=images, at=parse_at(at))
    seen: set[str] = set()
    for d in decisions:
        for w in d.warnings:
            if w not in seen:
                seen.add(w)
                warn(f"{d.name}: {w}")
    return decisions, a


def archive_trust_dir(
    archive: Path, archive_pin: str | None, max_age: str | None, at: str | None
) -> tuple[TrustDir, datetime]:
    """``audit --archive``: the checked archive's trust data written into a private
    temporary trust dir (removed when the process ends) and its capture time, the
    validation time of the audit."""
    import atexit
    import shutil
    import tempfile

    from trustcheck.archive.format import TRUST_PREFIX, split_role_path
    from trustcheck.local.trustdir import TrustDir

    a = open_for_reading(archive, archive_pin, max_age, at)
    root = Path(tempfile.mkdtemp(prefix="trustcheck-archive-"))
    atexit.register(shutil.rmtree, root, True)
    td = TrustDir(root)
    for gun in sorted(a.collections):
        td.write_roles(
            gun,
            sorted(
                (role, data)
                for name, data in a.files.items()
                for owner, role in split_role_path(name[len(TRUST_PREFIX) : -len(".json")])
                if owner == gun
            ),
        )
    warn(f"audited {archive_text(a)}: every date is judged at the capture time")
    return td, a.captured_at
