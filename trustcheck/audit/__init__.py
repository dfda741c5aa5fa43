"""Signer-key audit: collection, index, findings and renderers."""
