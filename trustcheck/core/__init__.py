"""Trusted core: no I/O, no clock, no environment (bytes, pins and validation time in)."""
