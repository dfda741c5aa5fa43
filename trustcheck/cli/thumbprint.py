"""``thumbprint``: every identifier of root and signer keys (key IDs, cert and SPKI hashes)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trustcheck.cli.options import (
    DEFAULT_REMOTE,
    AtOpt,
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
)


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


def register(app: typer.Typer) -> None:
    app.command("thumbprint")(thumbprint)
