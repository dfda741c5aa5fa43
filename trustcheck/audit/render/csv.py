"""``csv``: one row per finding (:data:`FINDINGS_CSV_COLUMNS`), and the migration
list :func:`render_targets_csv` (:data:`TARGETS_CSV_COLUMNS`); values exact."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from trustcheck.audit.model import AuditReport

__all__ = ["FINDINGS_CSV_COLUMNS", "TARGETS_CSV_COLUMNS", "render_csv", "render_targets_csv"]


FINDINGS_CSV_COLUMNS = (
    "severity",
    "code",
    "gun",
    "role",
    "key",
    "tag",
    "date",
    "error_code",
    "locations",
    "message",
)
TARGETS_CSV_COLUMNS = ("gun", "tag", "digest", "length", "role", "released", "signers", "image")


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def render_csv(report: AuditReport) -> str:
    """One row per finding; ``locations`` joined with ``; ``."""
    return _csv(
        FINDINGS_CSV_COLUMNS,
        (
            [
                f.severity,
                f.code,
                f.gun or "",
                f.role or "",
                f.key or "",
                f.tag or "",
                f.date or "",
                f.error_code or "",
                "; ".join(f.locations),
                f.message,
            ]
            for f in report.findings
        ),
    )


def render_targets_csv(report: AuditReport) -> str:
    """Every signed tag: ``gun,tag,digest,length,role,released,signers,image``.

    ``signers`` joined with ``;``; ``image`` is ``GUN@DIGEST``, the reference to
    re-sign (``cosign sign``, ``notation sign``).  ``released`` is ``false`` for
    tags Docker does not pull (only in other delegations).
    """
    return _csv(
        TARGETS_CSV_COLUMNS,
        (
            [
                t.gun,
                t.tag,
                t.digest or "",
                t.length,
                t.role,
                "true" if t.released else "false",
                ";".join(t.signers),
                f"{t.gun}@{t.digest}" if t.digest else "",
            ]
            for t in report.signed_tags
        ),
    )
