"""Command groups beyond the core ones in cli.py.

Every module here defines ``register(app: typer.Typer) -> None`` and is found
automatically (no list to edit). A module imports only ``typer`` and
``trustcheck.cliopts`` at module level; the work is imported inside the
command functions, so ``trustcheck --help`` and ``verify`` stay fast.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer


def register_all(app: typer.Typer) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(app)
