"""Every name trustcheck/__init__.py exports resolves, lazily, to a real object."""

from __future__ import annotations

import subprocess
import sys

import trustcheck


def test_every_exported_name_resolves() -> None:
    for name in trustcheck.__all__:
        assert getattr(trustcheck, name) is not None, name


def test_import_is_lazy() -> None:
    code = "import sys, trustcheck; print(any(m.startswith('cryptography') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
