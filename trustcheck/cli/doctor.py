"""``trustcheck doctor``: diagnose why trust verification cannot work here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trustcheck.cli.options import (
    DCE_MODES,
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
    choice,
    parse_at,
    remote_options,
    trust_dir_path,
)

TargetArg = Annotated[
    str | None,
    typer.Argument(
        help="An image (e.g. registry.example.com/team/app:v1) or a registry "
        "(host[:port] or https://host); none checks only the local setup.",
        metavar="IMAGE|REGISTRY",
        show_default=False,
    ),
]
PolicyOpt = Annotated[
    Path | None,
    typer.Option(
        "--policy", help="Policy file to check (when policies are supported).", show_default=False
    ),
]
HorizonOpt = Annotated[
    float,
    typer.Option(
        "--horizon",
        help="Warn about certificates and metadata expiring within this many days.",
        min=0,
    ),
]


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


@remote_options
def doctor(
    target: TargetArg = None,
    as_json: JsonOpt = False,
    trust_dir: TrustDirOpt = None,
    at: AtOpt = None,
    pins: PinsOpt = None,
    state_dir: StateOpt = None,
    no_tofu: NoTofuOpt = False,
    delegation_cert_expiry: DceOpt = "warn",
    policy: PolicyOpt = None,
    horizon: HorizonOpt = 30.0,
    remote: RemoteArgs = DEFAULT_REMOTE,
) -> None:
    """Diagnose why trust verification cannot work here, with stable codes.

    Ordered checks (local setup, server connectivity, clock, trust data), each
    with a status, a code, an explanation and the fix to try; a chain stops at
    its first failure. Nothing is changed: no cache, state or pin is written.
    Exit 0 when nothing failed (warnings allowed), 1 for a connectivity or
    trust failure, 2 for bad configuration or input. Codes: docs/doctor.md.
    """
    import json
    from datetime import timedelta

    from trustcheck.doctor.context import DoctorConfig
    from trustcheck.doctor.runner import run_doctor

    dce = choice("--delegation-cert-expiry", delegation_cert_expiry, DCE_MODES)
    when = parse_at(at) if at is not None else None
    cfg = remote.config()
    report = run_doctor(
        DoctorConfig(
            target=target,
            trust_dir=trust_dir_path(trust_dir),
            remote=cfg,
            at=when,
            pins=pins,
            state_dir=state_dir,
            no_tofu=no_tofu,
            delegation_cert_expiry=dce,
            policy=policy,
            horizon=timedelta(days=horizon),
        )
    )
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        typer.echo(report.render(), nl=False)
    if report.exit_code:
        raise Exit(report.exit_code)
