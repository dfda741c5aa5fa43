"""``trustcheck coverage``: the migration coverage report (docs/coverage.md).

For the repositories named, every one in the trust dir (``--all``), or every one of
the trust dir a policy rule names (``--policy``): which DCT-signed digests also carry
a valid Notation or cosign signature, which do not, and which Notation/cosign
signatures have no DCT predecessor. Exit 0 when the report was made (1 with
``--fail-on`` when its condition holds), 2 on bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trustcheck.cli.options import (
    DEFAULT_REMOTE,
    AtOpt,
    DceOpt,
    Exit,
    NoTofuOpt,
    PinsOpt,
    RemoteArgs,
    StateOpt,
    TrustDirOpt,
    choice,
    fail_usage,
    make_options,
    parse_at,
    remote_options,
    trust_dir_path,
    warn,
)
from trustcheck.errors import ErrorCode

FAIL_ON = ("dct-only", "error")
KINDS = ("notation", "cosign")


def register(app: typer.Typer) -> None:
    app.command("coverage")(remote_options(coverage))


def coverage(
    repositories: Annotated[
        list[str] | None,
        typer.Argument(
            help="Repositories (GUNs) to report on; a tag or digest is ignored.",
            metavar="REPOSITORY",
            show_default=False,
        ),
    ] = None,
    all_guns: Annotated[
        bool, typer.Option("--all", help="Every repository in the trust dir.")
    ] = False,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help="Policy file: each repository's rule supplies the trust material, and "
            "READY says whether the rule allows a digest without DCT. Without REPOSITORY or "
            "--all: the trust dir's repositories some rule matches.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json, csv or html.")] = "table",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the report here instead of stdout."),
    ] = None,
    kinds: Annotated[
        str,
        typer.Option("--kinds", help="Signature kinds to look for: notation, cosign or both."),
    ] = "notation,cosign",
    notation_trust_policy: Annotated[
        Path | None,
        typer.Option(
            "--notation-trust-policy",
            help="Notation trust policy (default: Notation's own, "
            "$NOTATION_CONFIG or ~/.config/notation/trustpolicy.json).",
            show_default=False,
        ),
    ] = None,
    notation_trust_store: Annotated[
        Path | None,
        typer.Option(
            "--notation-trust-store",
            help="Notation trust store folder (default: Notation's own truststore/).",
            show_default=False,
        ),
    ] = None,
    cosign_key: Annotated[
        list[Path] | None,
        typer.Option(
            "--cosign-key", help="cosign public key (PEM); repeatable.", show_default=False
        ),
    ] = None,
    cosign_trusted_root: Annotated[
        Path | None,
        typer.Option(
            "--cosign-trusted-root",
            help="Sigstore trusted_root.json for keyless cosign signatures.",
            show_default=False,
        ),
    ] = None,
    fail_on: Annotated[
        str | None,
        typer.Option(
            "--fail-on",
            help="Exit 1 when a DCT-signed digest has no valid successor signature "
            "(dct-only) or when a repository could not be checked (error).",
            show_default=False,
        ),
    ] = None,
    trust_dir: TrustDirOpt = None,
    at: AtOpt = None,
    pins: PinsOpt = None,
    state_dir: StateOpt = None,
    no_tofu: NoTofuOpt = False,
    delegation_cert_expiry: DceOpt = "warn",
    remote: RemoteArgs = DEFAULT_REMOTE,
) -> None:
    """Migration coverage: DCT-signed digests with and without Notation/cosign signatures.

    DCT trust data is fetched from each repository's Notary server (unless
    --offline); tags, Notation and cosign signatures come from the registry.
    Progress goes to stderr. Exit 0 when the report is made, 1 when --fail-on
    holds, 2 on bad input.
    """
    from trustcheck.core.reference import parse_reference
    from trustcheck.coverage.collect import collect, trust_rule
    from trustcheck.coverage.render import FORMATS, render
    from trustcheck.local.trustdir import TrustDir

    fmt = choice("--format", fmt, FORMATS)
    if fail_on is not None:
        fail_on = choice("--fail-on", fail_on, FAIL_ON)
    wanted = tuple(k.strip() for k in kinds.split(",") if k.strip())
    if not wanted or any(k not in KINDS for k in wanted):
        fail_usage(f"--kinds {kinds!r}: give notation, cosign or notation,cosign")
    when = parse_at(at)
    if all_guns and repositories:
        fail_usage("give repositories or --all, not both")
    pol = None
    if policy is not None:
        from trustcheck.policy.load import load_policy

        pol = load_policy(policy)
    cfg = remote.config()
    td = TrustDir(trust_dir_path(trust_dir, must_exist=cfg.offline))
    problems: list[tuple[str, str, str]] = []
    if repositories:
        guns = list(dict.fromkeys(parse_reference(r).gun for r in repositories))
    elif all_guns or pol is not None:
        guns = td.list_guns(problems)
        if pol is not None and not all_guns:
            guns = [g for g in guns if pol.match(parse_reference(g)) is not None]
        for gun, _code, message in problems:
            warn(f"{gun}: {message}")
        if not guns:
            warn(f"no repositories to report on in {td.root}")
    else:
        fail_usage("name the repositories, or --all for every repository in the trust dir")
    base = trust_rule(
        notation_trust_policy=notation_trust_policy,
        notation_trust_store=notation_trust_store,
        cosign_keys=cosign_key or (),
        cosign_trusted_root=cosign_trusted_root,
    )
    if "notation" in wanted and base.trust.notation is not None:  # bad paths: exit 2 now
        from trustcheck.policy.gather import load_notation_trust

        load_notation_trust(base.trust.notation)
    total = len(guns)

    def progress(done: int, of: int) -> None:
        if total > 3:
            typer.echo(f"fetched {done}/{of} collections", err=True)

    def checked(done: int, of: int) -> None:
        if total > 3:
            typer.echo(f"checked the signatures of {done}/{of} repositories", err=True)

    report = collect(
        guns,
        td,
        when,
        make_options(pins, state_dir, no_tofu, delegation_cert_expiry),
        cfg,
        base,
        policy=pol,
        kinds=wanted,
        progress=progress,
        checked=checked,
    )
    text = render(report, fmt)
    if output is not None:
        from trustcheck.errors import UsageError

        try:
            output.write_text(text, encoding="utf-8")
        except OSError as e:
            raise UsageError(
                ErrorCode.OUTPUT_UNWRITABLE, f"--output {output}: cannot write: {e.strerror or e}"
            ) from e
        c = report.counts()
        typer.echo(
            f"wrote the coverage of {len(report.repos)} repository(ies) to {output} "
            f"({c['both']} both, {c['dct-only']} DCT only, {c['no-dct']} without DCT "
            f"predecessor, {c['unsigned']} unsigned)",
            err=True,
        )
    else:
        typer.echo(text, nl=False)
    for problem in report.errors():
        warn(problem)
    if fail_on == "dct-only" and report.counts()["dct-only"]:
        raise Exit(1)
    if fail_on == "error" and report.errors():
        raise Exit(1)
