"""The app install: ``pip install gentoolkit`` with no extras, in a fresh virtual environment.

It must run any export (``gentoolkit.runtime`` and ``gentool sample EXPORT``) without torch,
and say in one line how to add training. The packages come from the registry, as a user's
would; the sources are copied first, so that building the wheel writes nothing into the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from .conftest import ROOT, one_error_line


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    base = tmp_path_factory.mktemp("app")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "gentoolkit-diffusion")
    for name in ("gentoolkit", "plugins"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    r = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(src)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return {"python": str(python), "dir": env_dir, "mb": folder_mb(env_dir)}


def run(app, *args, code: str | None = None):
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    cmd = [app["python"], "-c", code] if code is not None else [app["python"], "-m", "gentoolkit", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=app["dir"], env=environ)


@pytest.mark.slow
def test_an_app_install_runs_exports_without_torch(app, exports, gpt_run, tmp_path):
    from gentoolkit.runtime import load

    print(f"\napp install: {app['mb']:.0f} MB in the virtual environment")
    missing = run(app, code="import torch")
    assert missing.returncode != 0 and "No module named 'torch'" in missing.stderr
    listing = run(app, code="import importlib.metadata as m; print(sorted(d.metadata['Name'].lower() for d in m.distributions()))")
    assert "torch" not in listing.stdout and "onnx" not in listing.stdout.replace("onnxruntime", ""), listing.stdout
    assert run(app, "--help").returncode == 0
    # the same text as in this (training) environment, from the runtime and from the command line
    expected = load(exports["gpt"]).generate("The ", max_new_tokens=20, seed=3)
    r = run(app, code=f"from gentoolkit.runtime import load; print(repr(load({str(exports['gpt'])!r})"
                      ".generate('The ', max_new_tokens=20, seed=3)))")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == repr(expected)
    r = run(app, "sample", str(exports["gpt"]), "-p", "The ", "--max-new-tokens", "20", "--seed", "3")
    assert r.returncode == 0 and r.stdout == "The " + expected + "\n", r.stderr[-2000:]
    r = run(app, "sample", str(exports["gan"]), "-n", "4", "--seed", "0", "-o", str(tmp_path / "points.csv"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "points.csv").read_text().count("\n") == 4
    # what needs training says how to get it, in one line
    for args in (["train", "gpt", "--out", str(tmp_path / "run")], ["sample", str(gpt_run)],
                 ["sample", str(exports["gan"]), "-o", str(tmp_path / "x.png")]):
        line = one_error_line(run(app, *args))
        assert "pip install 'gentoolkit[train]'" in line, (args, line)
    assert not (tmp_path / "run").exists()
    assert app["mb"] < 400, app["mb"]  # torch alone would be over 700 MB (its CPU build) or 6 GB (CUDA)
