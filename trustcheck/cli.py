"""The typer CLI: thin commands, one error funnel (architecture.md §8).

Results go to stdout, diagnostics and warnings to stderr. Exit codes follow
the contract: 0 trusted / ok, 1 not trusted, 2 usage or input error. Heavy
modules are imported inside the commands so ``--help`` starts fast.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from .api import ImageResult

app = typer.Typer(
    name="trustcheck",
    help="Verify Docker Content Trust (Notary v1) trust data offline, exactly as notary does.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,  # locals can hold keys and tokens
)

TrustDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--trust-dir",
        help="Docker trust dir (default: $DOCKER_CONFIG/trust, else ~/.docker/trust).",
        show_default=False,
    ),
]
AtOpt = Annotated[
    str | None,
    typer.Option("--at", help="Validation time, RFC 3339 (default: now).", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]
ImagesArg = Annotated[
    list[str], typer.Argument(help="Image references, e.g. alpine:3.20.", show_default=False)
]


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _fail_usage(message: str) -> NoReturn:
    from .errors import UsageError

    raise UsageError("invalid-argument", message)


def _parse_at(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    text = value.strip()
    try:
        at = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        _fail_usage(f"--at {value!r} is not an RFC 3339 time; use e.g. --at 2026-01-31T12:00:00Z")
    if at.tzinfo is None:
        _fail_usage(f"--at {value!r} has no time zone; add Z for UTC, e.g. {text}Z")
    return at


def _trust_dir(value: Path | None) -> Path:
    if value is not None:
        return value
    from .trustdir import default_trust_dir

    return default_trust_dir()


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def _human_result(r: ImageResult) -> str:
    if r.trusted:
        signers = ", ".join(r.signers) if r.signers else "-"
        return f"TRUSTED      {r.image}  {r.digest}  (role {r.role}; signers: {signers})"
    assert r.error is not None
    return f"NOT TRUSTED  {r.image}  [{r.error.code}] {r.error.message}"


@app.command()
def verify(
    images: ImagesArg,
    trust_dir: TrustDirOpt = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify each image's trust data and resolve its tag (or check its digest).

    Exit 0 when every image is trusted, 1 when any is not, 2 on bad input.
    """
    from .api import verify_images

    when = _parse_at(at)
    results = verify_images(images, _trust_dir(trust_dir), when)
    seen: set[str] = set()
    for r in results:
        for w in r.warnings:
            if w not in seen:
                seen.add(w)
                _warn(f"{r.gun}: {w}")
    if as_json:
        typer.echo(
            json.dumps({"results": [r.to_json() for r in results]}, indent=2, ensure_ascii=False)
        )
    else:
        for r in results:
            typer.echo(_human_result(r))
    if not all(r.trusted for r in results):
        raise _Exit(1)


@app.command()
def inspect(
    images: ImagesArg,
    trust_dir: TrustDirOpt = None,
    at: AtOpt = None,
    pretty: Annotated[bool, typer.Option("--pretty", help="Human-readable view.")] = False,
) -> None:
    """Show signed tags, signers and keys, as `docker trust inspect` does.

    JSON (the same document Docker prints) by default; --pretty for people.
    """
    from .api import load_collection
    from .errors import NotTrusted
    from .lookup import inspect as inspect_one
    from .reference import parse_reference
    from .trustdir import TrustDir

    when = _parse_at(at)
    refs = [(i, parse_reference(i)) for i in images]
    td = TrustDir(_trust_dir(trust_dir))
    out: list[dict[str, object]] = []
    failed = False
    for text, ref in refs:
        try:
            col = load_collection(td, ref.gun, when)
        except NotTrusted as e:
            typer.echo(f"error: {text}: [{e.code}] {e.message}", err=True)
            failed = True
            continue
        for w in col.warnings:
            _warn(f"{ref.gun}: {w}")
        out.append(inspect_one(col, text, _explicit_tag(text)))
    if pretty:
        for i, doc in enumerate(out):
            if i:
                typer.echo("\n")
            typer.echo(_pretty(doc), nl=False)
    else:
        typer.echo(json.dumps(out, indent=4, ensure_ascii=False))
    if failed:
        raise _Exit(1)


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


def main(argv: list[str] | None = None) -> int:
    """Console entry point: the one place errors become exit codes."""
    from .errors import TrustcheckError

    try:
        app(args=argv, standalone_mode=False)
    except _Exit as e:
        return e.code
    except TrustcheckError as e:
        typer.echo(f"error: [{e.code}] {e.message}", err=True)
        return e.exit_code
    except typer.Exit as e:
        return int(e.exit_code or 0)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except typer.TyperException as e:  # usage errors from the (vendored) click parser
        show = getattr(e, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"error: {e}", err=True)
        return int(getattr(e, "exit_code", 2) or 2)
    except Exception as e:  # anything unexpected: fail closed, one line
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
