"""Trust archives: verified trust data kept, self-contained, after the servers are gone.

See docs/archive.md. :func:`create_archive` captures collections (fetched or
from the trust dir) into one deterministic tar with a SHA-256 manifest and an
optional signature; :func:`open_archive` checks an archive and returns an
:class:`Archive` that verifies images *as of its capture time*.
"""

from __future__ import annotations

from trustcheck.archive.create import Created, create_archive, write_archive
from trustcheck.archive.read import Archive, format_time, open_archive, parse_max_age
from trustcheck.archive.sign import ArchivePin, Signer, load_pin, load_signing_key

__all__ = [
    "Archive",
    "ArchivePin",
    "Created",
    "Signer",
    "create_archive",
    "format_time",
    "load_pin",
    "load_signing_key",
    "open_archive",
    "parse_max_age",
    "write_archive",
]
