"""``pin add|list|remove``: the root pins of a TOML pin file (docs/pinning.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from trustcheck.cli.options import (
    DEFAULT_REMOTE,
    AtOpt,
    JsonOpt,
    PinsOpt,
    RemoteArgs,
    StateOpt,
    TrustDirOpt,
    choice,
    fail_usage,
    home_dir,
    make_options,
    parse_at,
    remote_options,
    trust_dir_path,
    warn,
)

pin_app = typer.Typer(
    help="Manage root pins (a TOML pin file; see docs/pinning.md).", no_args_is_help=True
)


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
    from trustcheck.core.identity import KINDS, Identifier, identifiers_of_key
    from trustcheck.core.reference import parse_reference
    from trustcheck.errors import TrustcheckError
    from trustcheck.local.pinfile import PinEntry, PinSet, load_pins
    from trustcheck.local.trustdir import TrustDir

    kind = choice("--kind", kind, KINDS)
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


def register(app: typer.Typer) -> None:
    app.add_typer(pin_app, name="pin")
