"""trustcheck doctor: ordered local, server, clock and trust checks."""
