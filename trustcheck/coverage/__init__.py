"""Migration coverage report (docs/coverage.md): for each repository, which
DCT-signed digests also carry a valid Notation or cosign signature, which do not,
and which Notation/cosign signatures have no DCT predecessor.

* :mod:`trustcheck.coverage.model` -- the report (pure data, JSON);
* :mod:`trustcheck.coverage.collect` -- the I/O: DCT trust data, the registry's tags,
  the signatures of every digest (through :class:`trustcheck.policy.gather.EvidenceGatherer`);
* :mod:`trustcheck.coverage.render` -- table, JSON, CSV and HTML in the style of ``audit``.
"""
