"""trustcheck's client-under-test for the tuf-conformance suite.

The suite (https://github.com/theupdateframework/tuf-conformance) drives a
TUF client through a small command line (its CLIENT-CLI.md)::

    python -m trustcheck.tuf.conformance --metadata-dir DIR init TRUSTED_ROOT
    python -m trustcheck.tuf.conformance --metadata-dir DIR --metadata-url URL refresh
    python -m trustcheck.tuf.conformance --metadata-dir DIR --metadata-url URL \\
        --target-name PATH [--target-name PATH ...] --target-base-url URL \\
        --target-dir DIR download

``refresh`` and ``download`` are :func:`trustcheck.tuf.client.refresh` and
:func:`trustcheck.tuf.client.download_targets` with ``metadata_dir`` = ``DIR``
(python-tuf's layout, which the suite reads), every trustcheck check on.
The suite serves plain http on loopback, so http is allowed here (the
``trustcheck tuf`` commands need ``--unsafe-http`` for it). Exit 0 on
success, 1 on any failure (one line on stderr), as the protocol requires.
See docs/tuf.md for how to run the suite.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trustcheck.tuf.conformance",
        description="trustcheck's TUF client for the tuf-conformance suite (CLIENT-CLI.md).",
    )
    p.add_argument("--metadata-dir", required=True)
    p.add_argument("--metadata-url")
    p.add_argument("--target-name", action="append", default=[])
    p.add_argument("--target-base-url")
    p.add_argument("--target-dir")
    p.add_argument("-v", "--verbose", action="count", default=0)
    sub = p.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="trust TRUSTED_ROOT (copied, no request made)")
    init.add_argument("trusted_root")
    sub.add_parser("refresh", help="update the top-level metadata (TUF client workflow)")
    sub.add_parser("download", help="download and verify --target-name files")
    return p


def _need(args: argparse.Namespace, *names: str) -> None:
    missing = [n for n in names if not getattr(args, n)]
    if missing:
        flags = ", ".join("--" + n.replace("_", "-") for n in missing)
        raise SystemExit(f"trustcheck-tuf-conformance: {args.command} needs {flags}")


def run(argv: list[str]) -> int:
    """The protocol's commands; returns the exit code."""
    from trustcheck.errors import TrustcheckError
    from trustcheck.tuf.client import refresh
    from trustcheck.tuf.download import download_targets

    args = _parser().parse_args(argv)
    metadata_dir = Path(args.metadata_dir)
    try:
        if args.command == "init":
            metadata_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(args.trusted_root, metadata_dir / "root.json")
            return 0
        if args.command == "refresh":
            _need(args, "metadata_url")
            result = refresh(args.metadata_url, metadata_dir=metadata_dir, unsafe_http=True)
            if args.verbose:
                versions = ", ".join(f"{r.name} v{r.version}" for r in result.roles)
                print(f"trustcheck: refreshed {result.repository}: {versions}")
            return 0
        _need(args, "metadata_url", "target_name", "target_base_url", "target_dir")
        results = download_targets(
            args.metadata_url,
            args.target_name,
            args.target_dir,
            target_base_url=args.target_base_url,
            metadata_dir=metadata_dir,
            unsafe_http=True,
            stop_on_error=True,
        )
        for r in results:
            if r.error is not None:
                print(f"trustcheck: {r.path}: [{r.error.code}] {r.error.message}", file=sys.stderr)
                return 1
            if args.verbose:
                print(f"trustcheck: {r.path} -> {r.file}{' (cached)' if r.reused else ''}")
        return 0
    except TrustcheckError as e:
        print(f"trustcheck: [{e.code}] {e.message}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"trustcheck: {e.strerror or e}", file=sys.stderr)
        return 1


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
