"""TUF 1.0 repositories through python-tuf."""
