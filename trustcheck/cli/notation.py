"""``trustcheck notation verify``: Notary Project (Notation) signatures of images in
their registry, judged by Notation's own trust policy and trust store
(docs/notation.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from trustcheck.cli.options import (
    DEFAULT_REMOTE,
    AtOpt,
    Exit,
    ImagesArg,
    JsonOpt,
    RemoteArgs,
    fail_usage,
    parse_at,
    remote_options,
    warn,
)

if TYPE_CHECKING:
    from datetime import datetime

    from trustcheck.notation.config import NotationConfig
    from trustcheck.remote.oci import OciRegistry
    from trustcheck.signatures.evidence import Evidence

TrustPolicyOpt = Annotated[
    Path | None,
    typer.Option(
        "--trust-policy",
        help="Notation trust policy (default: {NOTATION_CONFIG}/trustpolicy.oci.json or "
        "trustpolicy.json; {NOTATION_CONFIG} is $NOTATION_CONFIG, $XDG_CONFIG_HOME/notation "
        "or ~/.config/notation).",
        show_default=False,
    ),
]
TrustStoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--trust-store",
        help="Notation trust store folder holding x509/{ca,signingAuthority,tsa}/NAME/ "
        "(default: {NOTATION_CONFIG}/truststore).",
        show_default=False,
    ),
]
RegistryOpt = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="Registry URL to ask (default: https://<registry host> of each image).",
        show_default=False,
    ),
]
MaxReferrersOpt = Annotated[
    int,
    typer.Option("--max-referrers", help="Referrers examined per image; more is refused.", min=1),
]
MaxSignaturesOpt = Annotated[
    int,
    typer.Option(
        "--max-signatures", help="Notation signatures examined per image; more is refused.", min=1
    ),
]

notation_app = typer.Typer(
    name="notation",
    help="Notary Project (Notation) signatures in the registry (docs/notation.md).",
    no_args_is_help=True,
)


def _result(
    image: str,
    at: datetime,
    config: NotationConfig,
    registry: OciRegistry,
    max_signatures: int,
) -> dict[str, Any]:
    from trustcheck.core.reference import parse_reference
    from trustcheck.errors import ErrorCode, TrustcheckError
    from trustcheck.notation.verify import notation_evidence

    out: dict[str, Any] = {"image": image, "digest": None, "trusted": False, "evidence": []}
    try:
        ref = parse_reference(image)
        digest = registry.resolve(ref)
        out["digest"] = digest
        found: list[Evidence] = notation_evidence(
            ref, digest, config, at, registry, max_signatures=max_signatures
        )
    except TrustcheckError as e:
        out["error"] = e.to_json()
        out["exit"] = e.exit_code
        return out
    out["evidence"] = [ev.to_json() for ev in found]
    valid = [ev for ev in found if ev.valid]
    if valid:
        out["trusted"] = True
        out["signature"] = valid[0].to_json()
        out["exit"] = 0
    elif found and found[0].code == ErrorCode.NOTATION_VERIFICATION_SKIPPED:
        out["skipped"] = True
        out["exit"] = 0
    elif not found:
        out["error"] = {
            "code": str(ErrorCode.NOTATION_NO_SIGNATURE),
            "message": f"{image} ({digest}) has no Notation signature in the registry "
            "(no referrer of type application/vnd.cncf.notary.signature); sign it with "
            "notation sign",
            "role": None,
        }
        out["exit"] = 1
    else:
        first = found[0]
        extra = f" ({len(found)} signatures examined, none valid)" if len(found) > 1 else ""
        out["error"] = {"code": first.code, "message": first.message + extra, "role": None}
        out["exit"] = 1
    return out


def _human(r: dict[str, Any]) -> str:
    if r["trusted"]:
        sig = r["signature"]
        return (
            f"TRUSTED      {r['image']}  {r['digest']}  (notation: {sig['identity']}; "
            f"{sig['issuer']}; level {sig['level']}; signature {sig['source']})"
        )
    if r.get("skipped"):
        return f"SKIPPED      {r['image']}  {r['digest']}  (trust policy level skip: not verified)"
    err = r["error"]
    return f"NOT TRUSTED  {r['image']}  [{err['code']}] {err['message']}"


@remote_options
def verify(
    images: ImagesArg,
    trust_policy: TrustPolicyOpt = None,
    trust_store: TrustStoreOpt = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
    registry: RegistryOpt = None,
    max_referrers: MaxReferrersOpt = 1000,
    max_signatures: MaxSignaturesOpt = 100,
    remote: RemoteArgs = DEFAULT_REMOTE,
) -> None:
    """Verify each image's Notation signatures in its registry against Notation's
    trust policy and trust store, read unchanged.

    Exit 0 when every image has a valid signature (or its trust policy says skip),
    1 when any has none, 2 on bad input or configuration.
    """
    from trustcheck.notation.config import load_notation_config
    from trustcheck.remote.oci import OciRegistry

    if remote.offline:
        fail_usage(
            "notation verify reads signatures from the registry; drop --offline "
            "(or unset TRUSTCHECK_OFFLINE)"
        )
    when = parse_at(at)
    config = load_notation_config(trust_policy, trust_store)
    remote.registry = registry
    cfg = remote.config()
    results: list[dict[str, Any]] = []
    with OciRegistry(cfg, max_referrers=max_referrers) as reg:
        for image in images:
            results.append(_result(image, when, config, reg, max_signatures))
    for r in results:
        for ev in r["evidence"]:
            logged = ev.get("details", {}).get("logged")
            if ev.get("valid") and logged:
                warn(f"{r['image']}: signature {ev['source']}: logged by level: {logged}")
        if r.get("skipped"):
            warn(f"{r['image']}: the Notation trust policy says skip; nothing was verified")
    if as_json:
        shown = [{k: v for k, v in r.items() if k != "exit"} for r in results]
        typer.echo(json.dumps({"results": shown}, indent=2, ensure_ascii=False))
    else:
        for r in results:
            typer.echo(_human(r))
    worst = max((int(r["exit"]) for r in results), default=0)
    if worst:
        raise Exit(worst)


def register(app: typer.Typer) -> None:
    notation_app.command("verify")(verify)
    app.add_typer(notation_app, name="notation")
