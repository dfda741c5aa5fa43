"""Signatures of other kinds than Docker Content Trust (Notary Project / Notation,
Sigstore / cosign) and the evidence record every kind reports to the policy's
decide() (docs/notation.md, docs/sigstore.md)."""
