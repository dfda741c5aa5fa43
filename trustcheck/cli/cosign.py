"""``trustcheck cosign ...``: Sigstore/cosign signatures (docs/sigstore.md).

``verify IMAGE...`` finds the cosign signatures of each image digest in its registry
(the ``sha256-<hex>.sig`` tag and Sigstore bundle referrers) and verifies them with
``--key`` public keys or, keyless, against a Sigstore trusted root and the signer
identity (cosign's flag names). ``verify-blob FILE --bundle B`` verifies one Sigstore
bundle for a file, offline. The work lives in :mod:`trustcheck.sigstore`, imported
inside the commands.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
)

if TYPE_CHECKING:
    from datetime import datetime

    from trustcheck.signatures.evidence import Evidence
    from trustcheck.sigstore.config import CosignConfig

KeyOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--key",
        help="Trusted public key (PEM: cosign.pub, a KMS key exported as PEM); repeatable.",
        show_default=False,
    ),
]
IdentityOpt = Annotated[
    str | None,
    typer.Option(
        "--certificate-identity",
        help="Keyless: the signer's certificate SAN (e-mail or URI), exactly.",
        show_default=False,
    ),
]
IdentityRegexpOpt = Annotated[
    str | None,
    typer.Option(
        "--certificate-identity-regexp",
        help="Keyless: a regular expression the whole SAN must match (anchored).",
        show_default=False,
    ),
]
IssuerOpt = Annotated[
    str | None,
    typer.Option(
        "--certificate-oidc-issuer",
        help="Keyless: the OIDC issuer, exactly (https://token.actions.githubusercontent.com).",
        show_default=False,
    ),
]
IssuerRegexpOpt = Annotated[
    str | None,
    typer.Option(
        "--certificate-oidc-issuer-regexp",
        help="Keyless: a regular expression the whole OIDC issuer must match.",
        show_default=False,
    ),
]
TrustedRootOpt = Annotated[
    str | None,
    typer.Option(
        "--trusted-root",
        help="Sigstore trusted_root.json for keyless signatures: tuf:<repository URL or folder> "
        "(fetched and verified through TUF) or a FILE (trust on file).",
        show_default=False,
    ),
]
TufRootOpt = Annotated[
    Path | None,
    typer.Option(
        "--tuf-root",
        help="With --trusted-root tuf:...: a TUF root.json obtained out of band (default: the "
        "root trusted before, else trust on first use unless a pin applies).",
        show_default=False,
    ),
]
CachedOpt = Annotated[
    bool,
    typer.Option(
        "--trusted-root-cached",
        help="With --trusted-root tuf:URL: no request to the TUF repository; use the trusted "
        "root an earlier run verified (state dir), re-checked against the TUF metadata "
        "trusted then, at --at.",
    ),
]
IgnoreTlogOpt = Annotated[
    bool,
    typer.Option(
        "--insecure-ignore-tlog",
        help="With --trusted-root: accept key-based signatures without a Rekor entry.",
    ),
]
TlsCaOpt = Annotated[
    Path | None,
    typer.Option("--tls-ca", help="Extra CA bundle for registries (PEM).", show_default=False),
]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds per request.", min=0.1)]
RetriesOpt = Annotated[
    int, typer.Option("--retries", help="Retries of a request after 5xx or network errors.", min=0)
]
UserOpt = Annotated[
    str | None,
    typer.Option(
        "--username",
        help="Registry user; the password comes from $TRUSTCHECK_PASSWORD (default: Docker's "
        "config.json and credential helpers).",
        show_default=False,
    ),
]
ImagesArg = Annotated[
    list[str],
    typer.Argument(
        help="Image references, e.g. registry.example/app:v1 or app@sha256:<digest>.",
        metavar="IMAGE",
        show_default=False,
    ),
]
BundleOpt = Annotated[
    Path,
    typer.Option("--bundle", help="The Sigstore bundle (.sigstore.json) of the file."),
]
BlobArg = Annotated[
    Path, typer.Argument(help="The signed file.", metavar="FILE", show_default=False)
]


def register(app: typer.Typer) -> None:
    cosign_app = typer.Typer(
        help="Sigstore/cosign signatures: key-based and keyless (Fulcio, Rekor), offline "
        "against a trusted root obtained through TUF; see docs/sigstore.md.",
        no_args_is_help=True,
    )
    cosign_app.command("verify")(cosign_verify)
    cosign_app.command("verify-blob")(cosign_verify_blob)
    app.add_typer(cosign_app, name="cosign")


def _config(
    key: list[Path] | None,
    certificate_identity: str | None,
    certificate_identity_regexp: str | None,
    certificate_oidc_issuer: str | None,
    certificate_oidc_issuer_regexp: str | None,
    trusted_root: str | None,
    tuf_root: Path | None,
    at: datetime,
    pins: Path | None,
    state_dir: Path | None,
    no_tofu: bool,
    unsafe_http: bool,
    *,
    ignore_tlog: bool = False,
    cached: bool = False,
) -> CosignConfig:
    from trustcheck.errors import ErrorCode, UsageError
    from trustcheck.sigstore.config import check_identity_options, load_cosign_config
    from trustcheck.sigstore.trustroot import require_sigstore

    keyless = any(
        v is not None
        for v in (
            certificate_identity,
            certificate_identity_regexp,
            certificate_oidc_issuer,
            certificate_oidc_issuer_regexp,
        )
    )
    if not key and not keyless:
        raise UsageError(
            ErrorCode.COSIGN_CONFIG_INVALID,
            "say whom to trust: --key PEM for key-based signatures, or --certificate-identity "
            "(or -regexp) and --certificate-oidc-issuer for keyless ones",
        )
    if keyless:
        check_identity_options(
            certificate_identity,
            certificate_identity_regexp,
            certificate_oidc_issuer,
            certificate_oidc_issuer_regexp,
        )
        require_sigstore("trustcheck cosign verify with a keyless identity")
        if trusted_root is None:
            raise UsageError(
                ErrorCode.COSIGN_CONFIG_INVALID,
                "keyless verification needs --trusted-root: tuf:<repository> (e.g. "
                "tuf:https://tuf-repo-cdn.sigstore.dev for the public-good instance) or a "
                "trusted_root.json file",
            )
    if (tuf_root is not None or cached) and (
        trusted_root is None or not trusted_root.startswith("tuf:")
    ):
        fail_usage("--tuf-root and --trusted-root-cached go with --trusted-root tuf:<repository>")
    options = make_options(pins, state_dir, no_tofu, "warn")
    return load_cosign_config(
        keys=key or (),
        trusted_root=trusted_root,
        certificate_identity=certificate_identity,
        certificate_identity_regexp=certificate_identity_regexp,
        certificate_oidc_issuer=certificate_oidc_issuer,
        certificate_oidc_issuer_regexp=certificate_oidc_issuer_regexp,
        at=at,
        options=options,
        tuf_root=tuf_root,
        unsafe_http=unsafe_http,
        ignore_tlog=ignore_tlog,
        trusted_root_cached=cached,
    )


def _verdict(evidence: list[Evidence]) -> tuple[bool, dict[str, str] | None]:
    from trustcheck.errors import ErrorCode

    if any(e.valid for e in evidence):
        return True, None
    if not evidence:
        return False, {
            "code": ErrorCode.COSIGN_NO_SIGNATURES.value,
            "message": "no cosign signature is attached to this digest (no sha256-<hex>.sig "
            "tag, no Sigstore bundle referrer); sign it with cosign, or check the repository",
        }
    first = evidence[0]
    return False, {"code": first.code or "", "message": first.message}


def _print_text(
    image: str, digest: str | None, ok: bool, evidence: list[Evidence], err: Any
) -> None:
    where = f"{image}@{digest}" if digest and "@" not in image else image
    if ok:
        valid = [e for e in evidence if e.valid]
        who = ", ".join(sorted({e.identity for e in valid}))
        typer.echo(
            f"TRUSTED      {where}  ({len(valid)} of {len(evidence)} cosign signatures; {who})"
        )
    else:
        typer.echo(f"NOT TRUSTED  {where}  [{err['code']}] {err['message']}")
    for e in evidence:
        mark = "valid  " if e.valid else "invalid"
        text = e.message.removeprefix(f"{e.source}: ")
        line = text if e.valid else f"[{e.code}] {text}"
        typer.echo(f"  {mark} {e.source}: {line}")


def cosign_verify(
    images: ImagesArg,
    key: KeyOpt = None,
    certificate_identity: IdentityOpt = None,
    certificate_identity_regexp: IdentityRegexpOpt = None,
    certificate_oidc_issuer: IssuerOpt = None,
    certificate_oidc_issuer_regexp: IssuerRegexpOpt = None,
    trusted_root: TrustedRootOpt = None,
    tuf_root: TufRootOpt = None,
    trusted_root_cached: CachedOpt = False,
    insecure_ignore_tlog: IgnoreTlogOpt = False,
    at: AtOpt = None,
    json_out: JsonOpt = False,
    pins: PinsOpt = None,
    state_dir: StateOpt = None,
    no_tofu: NoTofuOpt = False,
    tls_ca: TlsCaOpt = None,
    unsafe_http: UnsafeHttpOpt = False,
    username: UserOpt = None,
    timeout: TimeoutOpt = 10.0,
    retries: RetriesOpt = 2,
) -> None:
    """Verify the cosign signatures of IMAGE(s) in their registry; exit 0 when every image
    has a valid one from a trusted key or identity."""
    from trustcheck.api import internal_error
    from trustcheck.core.reference import parse_reference
    from trustcheck.errors import NotTrusted, TrustcheckError, UsageError
    from trustcheck.remote.config import RemoteConfig
    from trustcheck.remote.oci import OciRegistry
    from trustcheck.sigstore.verify import cosign_evidence

    when = parse_at(at)
    refs = [parse_reference(i) for i in images]
    config = _config(
        key,
        certificate_identity,
        certificate_identity_regexp,
        certificate_oidc_issuer,
        certificate_oidc_issuer_regexp,
        trusted_root,
        tuf_root,
        when,
        pins,
        state_dir,
        no_tofu,
        unsafe_http,
        ignore_tlog=insecure_ignore_tlog,
        cached=trusted_root_cached,
    )
    password = None
    if username is not None:
        password = os.environ.get("TRUSTCHECK_PASSWORD")
        if password is None:
            fail_usage("--username needs a password in $TRUSTCHECK_PASSWORD")
    remote = RemoteConfig(
        unsafe_http=unsafe_http,
        tls_ca=tls_ca,
        username=username,
        password=password,
        timeout=timeout,
        retries=retries,
    )
    remote.validate()
    results: list[dict[str, Any]] = []
    all_ok = True
    with OciRegistry(remote) as registry:
        for text, ref in zip(images, refs, strict=True):
            digest: str | None = None
            evidence: list[Evidence] = []
            try:
                digest = registry.resolve(ref)
                evidence = cosign_evidence(ref, digest, config, when, registry)
                ok, err = _verdict(evidence)
            except UsageError:
                raise
            except NotTrusted as e:
                ok, err = False, {"code": e.code.value, "message": e.message}
            except TrustcheckError as e:
                ok, err = False, {"code": e.code.value, "message": e.message}
            except Exception as e:  # a bug costs this image its verdict, fail closed
                if os.environ.get("TRUSTCHECK_DEBUG"):
                    raise
                bug = internal_error(ref.name, e)
                ok, err = False, {"code": bug.code.value, "message": bug.message}
            all_ok = all_ok and ok
            if json_out:
                results.append(
                    {
                        "image": text,
                        "digest": digest,
                        "trusted": ok,
                        "signatures": [e.to_json() for e in evidence],
                        "error": err,
                    }
                )
            else:
                _print_text(text, digest, ok, evidence, err)
    if json_out:
        doc: dict[str, Any] = {"results": results}
        if config.trusted_root is not None:
            doc["trusted_root"] = {
                "source": config.trusted_root.source,
                "sha256": config.trusted_root.sha256,
                **config.trusted_root.details,
            }
        typer.echo(json.dumps(doc, indent=2))
    if not all_ok:
        raise Exit(1)


def cosign_verify_blob(
    blob: BlobArg,
    bundle: BundleOpt,
    key: KeyOpt = None,
    certificate_identity: IdentityOpt = None,
    certificate_identity_regexp: IdentityRegexpOpt = None,
    certificate_oidc_issuer: IssuerOpt = None,
    certificate_oidc_issuer_regexp: IssuerRegexpOpt = None,
    trusted_root: TrustedRootOpt = None,
    tuf_root: TufRootOpt = None,
    trusted_root_cached: CachedOpt = False,
    insecure_ignore_tlog: IgnoreTlogOpt = False,
    at: AtOpt = None,
    json_out: JsonOpt = False,
    pins: PinsOpt = None,
    state_dir: StateOpt = None,
    no_tofu: NoTofuOpt = False,
    unsafe_http: UnsafeHttpOpt = False,
) -> None:
    """Verify a Sigstore bundle for FILE offline (cosign verify-blob --bundle): keyless
    with an identity, or key-based with --key."""
    import hashlib

    from trustcheck.errors import ErrorCode, UsageError
    from trustcheck.sigstore.errors import Fail
    from trustcheck.sigstore.keyless import MAX_BUNDLE_BYTES, verify_bundle

    when = parse_at(at)
    if not key and certificate_identity is None and certificate_identity_regexp is None:
        raise UsageError(
            ErrorCode.COSIGN_CONFIG_INVALID,
            "say whom to trust: --key PEM, or --certificate-identity (or -regexp) and "
            "--certificate-oidc-issuer",
        )
    config = _config(
        key,
        certificate_identity,
        certificate_identity_regexp,
        certificate_oidc_issuer,
        certificate_oidc_issuer_regexp,
        trusted_root,
        tuf_root,
        when,
        pins,
        state_dir,
        no_tofu,
        unsafe_http,
        cached=trusted_root_cached,
        ignore_tlog=insecure_ignore_tlog,
    )
    try:
        h = hashlib.sha256()
        with blob.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        with bundle.open("rb") as f:
            data = f.read(MAX_BUNDLE_BYTES + 1)
    except OSError as e:
        raise UsageError(
            ErrorCode.INVALID_ARGUMENT,
            f"cannot read {e.filename}: {e.strerror or type(e).__name__}",
        ) from None
    digest = "sha256:" + h.hexdigest()
    try:
        if config.keys:
            from trustcheck.sigstore.keyless import KeylessResult, verify_key_bundle

            signer, signed_at, details = verify_key_bundle(
                data,
                digest,
                config.keys,
                config.trusted_root,
                when,
                ignore_tlog=config.ignore_tlog,
                where=str(bundle),
            )
            res = KeylessResult(signer.identity, None, signed_at or when, details)
            logged = signed_at
            who = f"the key {details['key']} ({signer.identity})"
        else:
            assert config.trusted_root is not None
            res = verify_bundle(
                data, digest, config.trusted_root, when, config.identities, where=str(bundle)
            )
            logged = res.signed_at
            who = f"{res.identity}, issuer {res.issuer}"
    except Fail as e:
        if json_out:
            typer.echo(
                json.dumps(
                    {
                        "file": str(blob),
                        "digest": digest,
                        "trusted": False,
                        "error": {"code": e.code.value, "message": e.message},
                    },
                    indent=2,
                )
            )
        else:
            typer.echo(f"NOT TRUSTED  {blob}  [{e.code.value}] {e.message}")
        raise Exit(1) from None
    if json_out:
        typer.echo(
            json.dumps(
                {
                    "file": str(blob),
                    "digest": digest,
                    "trusted": True,
                    "identity": res.identity,
                    "issuer": res.issuer,
                    "signed_at": logged.strftime("%Y-%m-%dT%H:%M:%SZ") if logged else None,
                    "details": res.details,
                    "error": None,
                },
                indent=2,
            )
        )
    else:
        when_text = (
            f"logged {logged:%Y-%m-%dT%H:%M:%SZ}" if logged else "no transparency log checked"
        )
        typer.echo(f"TRUSTED      {blob}  {digest}  (signed by {who}, {when_text})")
    sys.stdout.flush()
