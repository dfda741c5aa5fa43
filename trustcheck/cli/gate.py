"""Policy-driven gates: ``gate``, ``policy check|explain``, ``pull``, ``quarantine``.

Every command decides with :func:`trustcheck.policy.decide.decide` (through
:func:`trustcheck.policy.evaluate.evaluate`), so a pull in CI, a quarantine release and
the admission webhook apply one policy the same way. See docs/policy.md.
"""

from __future__ import annotations

import contextlib
import errno
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from trustcheck.cli.archive import (
    ArchiveOpt,
    ArchivePinOpt,
    MaxAgeOpt,
    archive_text,
    decide_from_archive,
)
from trustcheck.cli.options import (
    DEFAULT_REMOTE,
    PULL_TOOLS,
    AtOpt,
    DceOpt,
    Exit,
    ImagesArg,
    JsonOpt,
    NoTofuOpt,
    PasswordStdinOpt,
    PinsOpt,
    RemoteArgs,
    RetriesOpt,
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
from trustcheck.errors import ErrorCode

if TYPE_CHECKING:
    from datetime import datetime

    from trustcheck.core.reference import ImageRef
    from trustcheck.policy.model import Decision, Policy, Rule

PolicyOpt = Annotated[
    Path,
    typer.Option("--policy", help="Policy file (YAML, see docs/policy.md).", show_default=False),
]
OptionalPolicyOpt = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        help="Policy file (YAML, see docs/policy.md). Default: every image must be signed, "
        "as DOCKER_CONTENT_TRUST=1 required.",
        show_default=False,
    ),
]
NamespaceOpt = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        help="Decide as for a Kubernetes review in this namespace: rules with "
        "`namespaces:` apply only when one of their patterns matches it (without "
        "--namespace they never apply).",
        show_default=False,
    ),
]
RegistryOpt = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="Registry URL (default: https://<registry host> of the image).",
        show_default=False,
    ),
]


class _Run:
    """The options every deciding command shares, turned into library inputs."""

    def __init__(
        self,
        trust_dir: Path | None,
        at: str | None,
        pins: Path | None,
        state_dir: Path | None,
        no_tofu: bool,
        dce: str,
        remote: RemoteArgs,
    ) -> None:
        self.when: datetime = parse_at(at)
        self.options = make_options(pins, state_dir, no_tofu, dce)
        self.remote = remote.config()
        self.trust_dir = trust_dir_path(trust_dir, must_exist=remote.offline)

    def decide(
        self,
        policy: Policy,
        images: list[str],
        refs: list[ImageRef],
        namespace: str | None = None,
    ) -> list[Decision]:
        from trustcheck.local.trustdir import TrustDir
        from trustcheck.policy.evaluate import evaluate

        decisions = evaluate(
            refs,
            policy,
            TrustDir(self.trust_dir),
            self.when,
            self.options,
            self.remote,
            images=images,
            progress=progress_reporter(len(refs)),
            namespace=namespace,
        )
        seen: set[str] = set()
        for d in decisions:
            for w in d.warnings:
                if w not in seen:
                    seen.add(w)
                    warn(f"{d.name}: {w}")
        return decisions


def _load(policy: Path | None) -> Policy:
    from trustcheck.policy.load import load_policy
    from trustcheck.policy.model import Policy

    return load_policy(policy) if policy is not None else Policy.docker_content_trust()


def _namespace(namespace: str | None) -> str | None:
    """``--namespace``: a Kubernetes namespace name (an RFC 1123 label)."""
    import re

    if namespace is None:
        return None
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", namespace):
        fail_usage(
            f"--namespace {namespace[:80]!r} is not a namespace name (lower-case letters, "
            "digits and '-', at most 63, starting and ending with a letter or digit)"
        )
    return namespace


def _refs(images: list[str]) -> list[ImageRef]:
    from trustcheck.core.reference import parse_reference

    return [parse_reference(i) for i in images]


def _rule_text(d: Decision) -> str:
    return f'rule "{d.rule.name}"' if d.rule is not None else "no rule"


def _require_text(r: Rule) -> str | None:
    from trustcheck.policy.judge import describe

    return describe(r.require) if r.require is not None else None


def _line(d: Decision) -> str:
    """One line per image for people."""
    if d.verdict == "allow":
        who = ""
        if d.satisfied_by:  # require: (docs/policy.md)
            from trustcheck.policy.judge import satisfied_text

            who = "; satisfied by " + satisfied_text(d)
        elif d.required:
            who = "; signed by " + ", ".join(s.signer for s in d.required if s.satisfied)
        elif d.role is not None:
            who = f"; released by {d.role}"
        action = d.rule.action if d.rule is not None else "?"
        digest = d.digest or "(no digest: not verified)"
        return f"ALLOW  {d.image}  {digest}  {_rule_text(d)} ({action}{who})"
    first = d.reasons[0] if d.reasons else None
    why = f"[{first.code}] {first.message}" if first is not None else "denied"
    if d.allowed:
        return f"WARN   {d.image}  {_rule_text(d)} (warn mode: not blocked): {why}"
    return f"DENY   {d.image}  {_rule_text(d)}: {why}"


@contextlib.contextmanager
def _json_errors(as_json: bool, context: dict[str, object]) -> Iterator[None]:
    """With ``--json``: a failure inside the block still prints exactly one JSON
    document on stdout (``context`` plus the error), then propagates, so the
    one-line diagnostic on stderr and the exit code (2 usage, 1 not trusted or
    a bug) stay those of every other command. The command prints its own
    document last, after everything that can fail."""
    from trustcheck.cli.jsonout import document
    from trustcheck.errors import TrustcheckError

    try:
        yield
    except TrustcheckError as e:
        if as_json:
            typer.echo(document(context, e.code, e.message, e.exit_code, e.role))
        raise
    except (Exit, typer.Exit, KeyboardInterrupt):
        raise
    except Exception as e:
        gone = isinstance(e, OSError) and e.errno == errno.EPIPE
        if as_json and not gone:
            message = f"unexpected {type(e).__name__}: {e}; nothing was trusted"
            typer.echo(document(context, "internal-error", message[:500], 1))
        raise


def _exit_for(decisions: list[Decision]) -> None:
    worst = max((d.exit_code for d in decisions), default=0)
    if worst:
        raise Exit(worst)


def register(app: typer.Typer) -> None:
    app.command("gate")(remote_options(gate))
    app.command("pull")(remote_options(pull))
    policy_app = typer.Typer(
        help="Check and explain policy files (see docs/policy.md).", no_args_is_help=True
    )
    policy_app.command("check")(policy_check)
    policy_app.command("explain")(remote_options(policy_explain))
    app.add_typer(policy_app, name="policy")
    quarantine_app = typer.Typer(
        help="Azure Container Registry quarantine: release images whose digest the policy allows.",
        no_args_is_help=True,
    )
    quarantine_app.command("release")(remote_options(quarantine_release))
    quarantine_app.command("status")(quarantine_status)
    app.add_typer(quarantine_app, name="quarantine")


# ----------------------------------------------------------------------------- gate


def gate(
    images: ImagesArg,
    policy: PolicyOpt,
    as_json: JsonOpt = False,
    print_refs: Annotated[
        bool,
        typer.Option(
            "--print-refs",
            help="Print one NAME@sha256:DIGEST line per allowed image (to pin deploy "
            "manifests); decisions go to stderr.",
        ),
    ] = False,
    trust_dir: TrustDirOpt = None,
    at: AtOpt = None,
    pins: PinsOpt = None,
    state_dir: StateOpt = None,
    no_tofu: NoTofuOpt = False,
    delegation_cert_expiry: DceOpt = "warn",
    remote: RemoteArgs = DEFAULT_REMOTE,
    archive: ArchiveOpt = None,
    archive_pin: ArchivePinOpt = None,
    max_age: MaxAgeOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Decide each image with a policy (docs/policy.md).

    Exit 0 when every image is allowed, 1 when any is denied (a warn-mode rule
    never denies), 2 on bad input or a bad policy. With --json, one JSON
    document on stdout in every case (an error too).
    """
    context: dict[str, object] = {"policy": str(policy), "decisions": []}
    with _json_errors(as_json, context):
        decisions, pol, as_of = _gate(
            images, policy, as_json, print_refs, trust_dir, at, pins, state_dir, no_tofu,
            delegation_cert_expiry, remote, archive, archive_pin, max_age, namespace, context,
        )  # fmt: skip
        if as_json:  # built inside: a failure here is still one JSON document
            doc = {"policy": pol.source, **as_of, "decisions": [d.to_json() for d in decisions]}
            text = json.dumps(doc, indent=2, ensure_ascii=False)
    if as_json:
        typer.echo(text)
    elif print_refs:
        for d in decisions:
            if not d.allowed:
                typer.echo(_line(d), err=True)
            elif d.pinned is not None:
                typer.echo(d.pinned)
            else:
                ref = f"{d.name}:{d.tag}" if d.tag is not None else d.name
                warn(f"{d.image} is allowed without a verified digest; printed unpinned as {ref}")
                typer.echo(ref)
    else:
        for d in decisions:
            typer.echo(_line(d))
    _exit_for(decisions)


def _gate(
    images: list[str],
    policy: Path,
    as_json: bool,
    print_refs: bool,
    trust_dir: Path | None,
    at: str | None,
    pins: Path | None,
    state_dir: Path | None,
    no_tofu: bool,
    delegation_cert_expiry: str,
    remote: RemoteArgs,
    archive: Path | None,
    archive_pin: str | None,
    max_age: str | None,
    namespace: str | None,
    context: dict[str, object],
) -> tuple[list[Decision], Policy, dict[str, object]]:
    """Everything of ``gate`` that can fail: the decisions, the policy, the archive's
    ``as_of`` (``context`` learns the policy as soon as it is read)."""
    if as_json and print_refs:
        fail_usage("--json and --print-refs are alternatives; choose one")
    ns = _namespace(namespace)
    pol = _load(policy)
    context["policy"] = pol.source
    refs = _refs(images)
    as_of: dict[str, object] = {}
    if archive is not None:  # docs/archive.md: decided as of the archive's capture time
        if ns is not None:
            fail_usage("--namespace does not apply with --archive")
        opts = make_options(pins, state_dir, no_tofu, delegation_cert_expiry)
        decisions, arc = decide_from_archive(
            pol, images, refs, archive, archive_pin, max_age, at, opts
        )
        as_of = {"as_of": arc.as_of, "archive": arc.describe()}
        if not as_json:
            typer.echo(f"# {archive_text(arc)}", err=print_refs)
    else:
        if archive_pin is not None or max_age is not None:
            fail_usage("--archive-pin and --max-age apply to --archive")
        run = _Run(
            trust_dir,
            at,
            pins,
            state_dir,
            no_tofu,
            delegation_cert_expiry,
            remote,
        )
        decisions = run.decide(pol, images, refs, ns)
    return decisions, pol, as_of


# ----------------------------------------------------------------------------- policy


def policy_check(
    file: Annotated[Path, typer.Argument(help="The policy file to lint.", metavar="FILE")],
    as_json: JsonOpt = False,
) -> None:
    """Validate a policy file and list its rules.

    Exit 0 when it is valid (warnings on stderr), 2 when not (with --json, the
    document says ``"valid": false`` and carries the error).
    """
    with _json_errors(as_json, {"policy": str(file), "valid": False, "rules": []}):
        pol = _load(file)
    if as_json:
        doc = {
            "policy": pol.source,
            "valid": True,
            "rules": [
                {
                    **r.ref().to_json(),
                    "signers": [s.text for s in r.signers],
                    "threshold": r.threshold,
                    "require": _require_text(r),
                    "server": r.trust.server,
                    "offline": r.trust.offline,
                    "pins": r.trust.pins_source,
                }
                for r in pol.rules
            ],
            "warnings": pol.warnings,
        }
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    for w in pol.warnings:
        warn(w)
    typer.echo(f"{pol.source}: valid, {len(pol.rules)} rule(s)")
    for r in pol.rules:
        extra = ""
        if r.signers:
            extra = f"; {r.threshold} of [{', '.join(s.text for s in r.signers)}]"
        if r.require is not None:
            extra = f"; requires {_require_text(r)}"
        scope = f" in namespaces {', '.join(r.namespaces)}" if r.namespaces else ""
        typer.echo(f"  {r.name}: {r.pattern.text}{scope} -> {r.action} ({r.mode}{extra})")


def _trust_text(run: _Run, rule: Rule, ref: ImageRef) -> str:
    """The trust settings the rule's verification used, after the precedence rules."""
    from trustcheck.errors import TrustcheckError
    from trustcheck.policy.evaluate import rule_options, rule_remote

    opts = rule_options(rule, run.options)
    if rule.trust.pins_source is not None:
        pins = f"pins from {rule.trust.pins_source}"
    elif opts.pins is not None and opts.pins.path is not None:
        pins = f"pins from {opts.pins.path}"
    else:
        pins = "no pin (trust on first use, then the state store)"
    remote = rule_remote(rule, run.remote)
    if remote is None or remote.offline:
        where = "offline: the trust dir as it is"
    else:
        from trustcheck.remote.http import select_server

        try:
            where = f"fetched from {select_server(ref.gun, remote)}"
        except TrustcheckError as e:
            where = f"server unusable: {e.message}"
    tofu = "; no trust on first use" if opts.no_tofu else ""
    return f"{where}; {pins}{tofu}"


def _explain_text(
    d: Decision, pol: Policy, ref: ImageRef, run: _Run, namespace: str | None = None
) -> list[str]:
    from trustcheck.policy.pattern import match_name

    lines = [f"image      {d.image}", f"matched as {match_name(ref)}  (anchored; '*' stops at '/')"]
    scoped = [r for r in pol.rules if r.namespaces and r.pattern.matches(match_name(ref))]
    if namespace is not None:
        lines.append(f"namespace  {namespace}")
    if scoped:
        out = [r for r in scoped if not r.applies_in(namespace)]
        if out:
            why = (
                "no --namespace given: rules with namespaces never apply"
                if namespace is None
                else f"not for namespace {namespace}"
            )
            names = ", ".join(f"{r.name} ({', '.join(r.namespaces)})" for r in out)
            lines.append(f"scoped out {names}  ({why})")
    if not d.candidates:
        lines.append(f"rules      none of the {len(pol.rules)} rule(s) of {pol.source} match")
    else:
        lines.append(
            f"rules      {len(d.candidates)} of {len(pol.rules)} match, most specific first:"
        )
        for i, c in enumerate(d.candidates):
            mark = "*" if i == 0 else " "
            scope = f", namespaces {', '.join(c.namespaces)}" if c.namespaces else ""
            lines.append(
                f"         {mark} {c.name}  {c.pattern}  (line {c.line}, {c.action}, "
                f"{c.mode}{scope})"
            )
    if d.rule is not None:
        rule = pol.rules[d.rule.index]
        lines.append(
            f'decided by rule "{rule.name}" (line {rule.line}): action {rule.action}, '
            f"mode {rule.mode}"
        )
        if rule.action == "verify":
            lines.append(f"trust      {_trust_text(run, rule, ref)}")
            if d.trust_basis is not None:
                roles = ", ".join(f"{n} v{v}" for n, v in d.verified.items())
                lines.append(f"verified   root trusted ({d.trust_basis}); {roles}")
            if d.digest is not None and d.role is not None:  # resolved by DCT
                lines.append(
                    f"resolved   {d.tag if d.tag is not None else d.image} -> {d.digest} "
                    f"({d.role}, {d.length} bytes)"
                )
                lines.append(
                    f"signed by  {', '.join(d.signers) if d.signers else '-'}  "
                    "(roles holding it with this digest)"
                )
            if rule.require is not None:  # require: (docs/policy.md)
                from trustcheck.policy.judge import explain_lines

                lines.extend(explain_lines(d, rule))
            if rule.signers:
                lines.append(
                    f"signers    {rule.threshold} of {len(rule.signers)} required, each "
                    "with its own key:"
                )
                results = d.required or []
                for s in rule.signers:
                    got = next((r for r in results if r.signer == s.text), None)
                    if got is not None and got.satisfied and got.key is not None:
                        lines.append(
                            f"             {s.text:<12} signed    ({got.role}, key {got.key[:22]}…)"
                        )
                    elif got is not None:
                        lines.append(f"             {s.text:<12} missing")
                    else:
                        lines.append(f"             {s.text:<12} not checked")
    verdict = "ALLOW" if d.verdict == "allow" else "DENY"
    if d.verdict == "deny" and d.allowed:
        verdict = "WARN (deny, not blocked: warn mode)"
    lines.append(
        f"decision   {verdict}" + (f"  {d.pinned}" if d.verdict == "allow" and d.pinned else "")
    )
    for r in d.reasons:
        lines.append(f"reason     [{r.code}] {r.message}")
    for w in d.warnings:
        lines.append(f"warning    {w}")
    return lines


def policy_explain(
    image: Annotated[
        str, typer.Argument(help="The image to explain, e.g. alpine:3.20.", metavar="IMAGE")
    ],
    policy: PolicyOpt,
    as_json: JsonOpt = False,
    trust_dir: TrustDirOpt = None,
    at: AtOpt = None,
    pins: PinsOpt = None,
    state_dir: StateOpt = None,
    no_tofu: NoTofuOpt = False,
    delegation_cert_expiry: DceOpt = "warn",
    remote: RemoteArgs = DEFAULT_REMOTE,
    namespace: NamespaceOpt = None,
) -> None:
    """Show which rule decides IMAGE, and why.

    The matching rules in precedence order, the trust settings used, what was
    verified, the signers found and counted, the decision. Exit codes as `gate`.
    """
    context: dict[str, object] = {"policy": str(policy), "image": image, "namespace": namespace}
    with _json_errors(as_json, context):
        ns = _namespace(namespace)
        pol = _load(policy)
        context["policy"] = pol.source
        refs = _refs([image])
        run = _Run(
            trust_dir,
            at,
            pins,
            state_dir,
            no_tofu,
            delegation_cert_expiry,
            remote,
        )
        (d,) = run.decide(pol, [image], refs, ns)
        if as_json:
            doc = {"policy": pol.source, "namespace": ns, **d.to_json()}
            text = json.dumps(doc, indent=2, ensure_ascii=False)
    if as_json:
        typer.echo(text)
    else:
        typer.echo("\n".join(_explain_text(d, pol, refs[0], run, ns)))
    _exit_for([d])


# ----------------------------------------------------------------------------- pull


def _pull_commands(
    tool: str, d: Decision, dest: str | None, cert_dir: Path | None
) -> list[list[str]]:
    """What DCT pulls did: pull the signed digest, then point the tag at it."""
    by_digest = d.pinned or (f"{d.name}:{d.tag}" if d.tag is not None else d.name)
    tagged = f"{d.name}:{d.tag}" if d.tag is not None else None
    if tool == "skopeo":
        target = dest or f"containers-storage:{tagged or d.name}"
        extra = ["--src-cert-dir", str(cert_dir)] if cert_dir is not None else []
        return [["skopeo", "copy", *extra, f"docker://{by_digest}", target]]
    extra = ["--cert-dir", str(cert_dir)] if cert_dir is not None and tool == "podman" else []
    cmds = [[tool, "pull", *extra, by_digest]]
    if tagged is not None and d.pinned is not None:
        cmds.append([tool, "tag", by_digest, tagged])
    return cmds


def _run_tool(argv: list[str]) -> None:
    import subprocess

    from trustcheck.errors import NotTrusted, UsageError

    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace"
        )
    except FileNotFoundError:
        raise UsageError(
            ErrorCode.PULL_TOOL_MISSING,
            f"{argv[0]} is not installed (or not on PATH); install it, choose another "
            "with --with, or print the commands with --dry-run",
        ) from None
    except OSError as e:
        raise UsageError("pull-tool-missing", f"cannot run {argv[0]}: {e.strerror or e}") from e
    if done.stdout.strip():
        typer.echo(done.stdout.rstrip("\n"), err=True)
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
        last = lines[-1][:300] if lines else "no error output"
        raise NotTrusted(
            ErrorCode.PULL_FAILED, f"`{' '.join(argv[:3])} ...` exited {done.returncode}: {last}"
        )


def _pull_into_dir(argv: list[str]) -> None:
    """``skopeo copy ... dir:PATH`` without ever leaving a half-written PATH: the
    copy goes into a new folder next to PATH, which replaces PATH only once the
    copy succeeded; on any failure it is removed and PATH is left as it was."""
    import os
    import shutil
    import tempfile

    from trustcheck.errors import NotTrusted

    final = Path(argv[-1].removeprefix("dir:"))
    parent = final.parent
    if final.exists() and not final.is_dir():
        fail_usage(f"--dest dir:{final}: exists and is not a folder")
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=parent))
    except OSError as e:
        raise NotTrusted(
            ErrorCode.PULL_FAILED,
            f"--dest dir:{final}: cannot create a folder in {parent}: {e.strerror or e}",
        ) from e
    old: Path | None = None
    try:
        _run_tool([*argv[:-1], f"dir:{work}"])
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=parent))
            os.replace(final, old / "previous")
        os.replace(work, final)
    except BaseException:
        if old is not None and (old / "previous").exists() and not final.exists():
            os.replace(old / "previous", final)  # put the previous copy back
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def pull(
    image: Annotated[
        str, typer.Argument(help="The image to pull, e.g. alpine:3.20.", metavar="IMAGE")
    ],
    policy: OptionalPolicyOpt = None,
    tool: Annotated[
        str,
        typer.Option("--with", help="Pull with docker, podman or skopeo (skopeo copy)."),
    ] = "docker",
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Decide, then print the commands instead of running them."),
    ] = False,
    dest: Annotated[
        str | None,
        typer.Option(
            "--dest",
            help="skopeo destination (dir:PATH, oci:PATH[:TAG], docker-archive:..., default "
            "containers-storage:NAME:TAG).",
            show_default=False,
        ),
    ] = None,
    cert_dir: Annotated[
        Path | None,
        typer.Option(
            "--cert-dir",
            help="CA certificates (*.crt) for the registry, for podman --cert-dir and skopeo "
            "--src-cert-dir.",
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
    namespace: NamespaceOpt = None,
) -> None:
    """Gate IMAGE, then pull it by its signed digest and tag it, as DCT pulls did.

    The tag in the registry is never used: a tag moved to another manifest is
    not pulled. Without --policy, every image must be signed.
    """
    tool = choice("--with", tool, PULL_TOOLS)
    if dest is not None and tool != "skopeo":
        fail_usage("--dest is for --with skopeo (docker and podman pull into their own store)")
    if cert_dir is not None and tool == "docker":
        fail_usage("--cert-dir is for podman and skopeo; docker reads /etc/docker/certs.d")
    ns = _namespace(namespace)
    pol = _load(policy)
    refs = _refs([image])
    run = _Run(
        trust_dir,
        at,
        pins,
        state_dir,
        no_tofu,
        delegation_cert_expiry,
        remote,
    )
    (d,) = run.decide(pol, [image], refs, ns)
    typer.echo(_line(d), err=True)
    if not d.allowed:
        _exit_for([d])
    if d.pinned is None:
        warn(f"{d.image} has no verified digest (rule action allow): pulling the tag as it is")
    cmds = _pull_commands(tool, d, dest, cert_dir)
    if dry_run:
        import shlex

        for argv in cmds:
            typer.echo(shlex.join(argv))
        return
    if tool == "skopeo" and cmds[0][-1].startswith("dir:"):
        _pull_into_dir(cmds[0])
    else:
        for argv in cmds:
            _run_tool(argv)
    if tool == "skopeo":
        typer.echo(f"PULLED {cmds[0][-2].removeprefix('docker://')} -> {cmds[0][-1]}")
    else:
        tagged = f" (tagged {cmds[1][-1]})" if len(cmds) > 1 else ""
        typer.echo(f"PULLED {cmds[0][-1]}{tagged}")


# ----------------------------------------------------------------------------- quarantine


def _digest_ref(image: str) -> ImageRef:
    (ref,) = _refs([image])
    if ref.digest is None:
        fail_usage(
            f"{image}: quarantine works on one manifest; give IMAGE@sha256:DIGEST "
            "(the digest from ACR's quarantine webhook, target.digest)"
        )
    return ref


def quarantine_release(
    image: Annotated[
        str, typer.Argument(help="IMAGE@sha256:DIGEST, as quarantined.", metavar="IMAGE@DIGEST")
    ],
    policy: PolicyOpt,
    mark_failed: Annotated[
        bool,
        typer.Option("--mark-failed", help="When the policy denies, set quarantineState Failed."),
    ] = False,
    as_json: JsonOpt = False,
    registry: RegistryOpt = None,
    trust_dir: TrustDirOpt = None,
    at: AtOpt = None,
    pins: PinsOpt = None,
    state_dir: StateOpt = None,
    no_tofu: NoTofuOpt = False,
    delegation_cert_expiry: DceOpt = "warn",
    remote: RemoteArgs = DEFAULT_REMOTE,
) -> None:
    """Release a quarantined ACR image only when the policy allows its digest.

    Allowed: quarantineState Passed, with details (signers, rule, time). Denied:
    left quarantined (or marked Failed with --mark-failed), exit 1.
    """
    from datetime import UTC, datetime

    from trustcheck.remote.acr import AcrClient, QuarantineState, quarantine_details
    from trustcheck.remote.http import registry_base_url

    context: dict[str, object] = {
        "policy": str(policy),
        "decision": None,
        "action": "not changed",
    }
    with _json_errors(as_json, context):
        ref = _digest_ref(image)
        pol = _load(policy)
        context["policy"] = pol.source
        run = _Run(
            trust_dir,
            at,
            pins,
            state_dir,
            no_tofu,
            delegation_cert_expiry,
            replace(remote, registry=registry),
        )
        (d,) = run.decide(pol, [image], [ref])
        context["decision"] = d.to_json()
        now = datetime.now(UTC).replace(microsecond=0)
        base = registry_base_url(ref.domain, run.remote)
        assert ref.digest is not None
        result = None
        action = "left in quarantine"
        if d.exit_code != 2 and (d.allowed or mark_failed):
            state: QuarantineState = "Passed" if d.allowed else "Failed"
            with AcrClient(base, ref.domain, run.remote) as client:
                result = client.set_quarantine(
                    ref.path,
                    ref.digest,
                    state,
                    quarantine_details(d, pol.source, now, state, ref.digest),
                )
            action = "released (quarantineState Passed)" if d.allowed else "marked Failed"
    if as_json:
        doc = {
            "policy": pol.source,
            "decision": d.to_json(),
            "action": action,
            "registry": base,
            "state": result.to_json() if result is not None else None,
        }
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        typer.echo(_line(d), err=not d.allowed)
        head = "RELEASED" if d.allowed else "FAILED" if result is not None else "QUARANTINED"
        typer.echo(f"{head}  {ref.name}@{ref.digest}: {action}")
    _exit_for([d])


def quarantine_status(
    image: Annotated[str, typer.Argument(help="IMAGE@sha256:DIGEST.", metavar="IMAGE@DIGEST")],
    as_json: JsonOpt = False,
    registry: RegistryOpt = None,
    unsafe_http: UnsafeHttpOpt = False,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    username: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
    timeout: TimeoutOpt = 10.0,
    retries: RetriesOpt = 2,
) -> None:
    """Show a manifest's quarantine state and details, as the registry reports them."""
    from trustcheck.remote.acr import AcrClient
    from trustcheck.remote.http import registry_base_url

    with _json_errors(as_json, {"registry": registry}):
        ref = _digest_ref(image)
        remote = RemoteArgs(
            False,
            None,
            unsafe_http,
            tls_ca,
            tls_cert,
            tls_key,
            username,
            password_stdin,
            timeout,
            retries,
            1,
            registry,
        ).config()
        base = registry_base_url(ref.domain, remote)
        assert ref.digest is not None
        with AcrClient(base, ref.domain, remote) as client:
            state = client.get_manifest(ref.path, ref.digest)
    if as_json:
        typer.echo(json.dumps({"registry": base, **state.to_json()}, indent=2, ensure_ascii=False))
        return
    typer.echo(f"{ref.name}@{state.digest}")
    typer.echo(f"  quarantineState    {state.state or '(none)'}")
    typer.echo(f"  quarantineDetails  {state.details or '(none)'}")
    typer.echo(f"  tags               {', '.join(state.tags) or '-'}")
