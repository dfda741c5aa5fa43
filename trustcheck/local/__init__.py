"""Local files: trust dir, pin file, state (the I/O that feeds the core from disk)."""
