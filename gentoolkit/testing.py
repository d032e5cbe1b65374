"""Helpers for testing gentoolkit and its plugins (plain functions: no pytest needed to import them).

A family's runtime driver must work without torch (``gentoolkit.runtime`` is embedded in apps
that do not install it). Importing it beside torch proves nothing, so run the code in a fresh
interpreter in which importing torch fails::

    from gentoolkit.testing import run_without_torch

    def test_my_runtime_is_torch_free(my_export):
        r = run_without_torch(f'''
    from gentoolkit.runtime import load
    print(load({str(my_export)!r}).sample(4, seed=0).shape)
    assert "torch" not in sys.modules
    ''')
        assert r.returncode == 0, r.stderr
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

#: Python source to put before other code: from then on any import of torch (or a submodule)
#: raises ImportError, and ``sys`` is imported.
BLOCK_TORCH = """
import importlib.abc, sys
class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, _NoTorch())
"""


def run_without_torch(code: str, *, python: str | Path | None = None, timeout: float = 120,
                      env: Mapping[str, str] | None = None, cwd: str | Path | None = None
                      ) -> subprocess.CompletedProcess:
    """Run ``code`` with ``python`` (this interpreter unless given, e.g. another virtual
    environment's) after :data:`BLOCK_TORCH`; returns the finished process, its output as text."""
    return subprocess.run([str(python or sys.executable), "-c", BLOCK_TORCH + code], capture_output=True,
                          text=True, timeout=timeout, env=None if env is None else dict(env), cwd=cwd)
