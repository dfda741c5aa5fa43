"""The command-line interface: :mod:`trustcheck.cli.app` (the app, lazy command loading,
the error funnel), :mod:`trustcheck.cli.options` (options every command shares) and one
module per command group."""

from trustcheck.cli.app import main

__all__ = ["main"]
