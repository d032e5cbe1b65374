"""gentoolkit-diffusion, installed the way a user installs a third-party plugin.

A temporary virtual environment sits beside this one (it sees gentoolkit and its
dependencies through a .pth file), ``pip install plugins/gentoolkit-diffusion`` goes
into it, and everything runs in that environment's interpreter: the listing, a
training run, export validated against PyTorch, the runtime with torch blocked, the
plugin's own test suite; then ``pip uninstall`` and gentoolkit still works.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import venv

import pytest

from gentoolkit.plugin.manager import get_registries
from gentoolkit.testing import BLOCK_TORCH

from .conftest import ROOT
from .test_web import ensure_node_modules, in_chromium

PLUGIN = ROOT / "plugins" / "gentoolkit-diffusion"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if "ddpm" in get_registries().models:
        pytest.skip("gentoolkit-diffusion is installed in this environment already; the test needs it absent")
    root = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(root)
    python = root / "bin" / "python"
    target_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    # this environment's packages (gentoolkit, torch, ...), .pth files included
    lines = [f"import site; site.addsitedir({p!r})" for p in site.getsitepackages()]
    with open(os.path.join(target_site, "parent.pth"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return {"python": str(python), "dir": root}


def in_env(env, *args, code: str | None = None, timeout=300, cwd=None) -> subprocess.CompletedProcess:
    cmd = [env["python"], "-c", code] if code is not None else [env["python"], *args]
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    environ["MPLBACKEND"] = "Agg"
    environ["GENTOOLKIT_NODE_MODULES"] = str(ROOT / "tests" / "js" / "node_modules")  # the plugin's web/ test
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd or env["dir"], env=environ)
    return r


def gentool(env, *args, **kw):
    return in_env(env, "-m", "gentoolkit", *args, **kw)


def pip(env, *args):
    r = subprocess.run([sys.executable, "-m", "pip", "--python", env["python"], "--disable-pip-version-check",
                        "--quiet", *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def listed(env) -> dict:
    r = gentool(env, "plugins", "--json")
    assert r.returncode == 0, r.stderr
    return {p["name"]: p for p in json.loads(r.stdout)}


def test_install_use_and_uninstall(env):
    assert "diffusion" not in listed(env)
    source = env["dir"] / "src"  # a copy, so that building the wheel writes nothing into the repository
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    pip(env, "install", "--no-deps", "--no-build-isolation", str(source))

    record = listed(env)["diffusion"]
    assert record["distribution"] == "gentoolkit-diffusion" and not record.get("error")
    assert record["registered"]["models"] == ["ddpm"]
    assert sorted(record["registered"]["samplers"]) == ["ddim", "ddpm"]
    assert record["registered"]["losses"] == ["eps-mse"]

    run, export = env["dir"] / "run", env["dir"] / "export"
    r = gentool(env, "train", "ddpm", "--data", "ring", "--preset", "tiny", "--steps", "40", "--out", str(run))
    assert r.returncode == 0, r.stderr[-3000:]
    assert (run / "model.safetensors").is_file() and (run / "samples.png").is_file()

    r = gentool(env, "export", str(run), "-o", str(export))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "out_sample" in r.stdout + r.stderr and "max abs diff" in r.stdout + r.stderr  # validated against PyTorch

    r = in_env(env, code=BLOCK_TORCH + f"""
from gentoolkit.runtime import load
x = load({str(export)!r}).sample(5, seed=0, steps=10, sampler="ddim")
assert "torch" not in sys.modules
print(x.shape)
""")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "(5, 2)" in r.stdout

    # its JavaScript driver (RuntimeSpec.web) in the demo site, in Debian's chromium
    site = env["dir"] / "site"
    r = gentool(env, "demo", str(export), "-o", str(site), "--node-modules", str(ensure_node_modules()))
    assert r.returncode == 0, r.stderr[-3000:]
    assert (site / "drivers" / "diffusion.mjs").is_file()
    server = subprocess.Popen([env["python"], "-m", "gentoolkit", "demo", "--serve", "-o", str(site), "--port", "0"],
                              stdout=subprocess.PIPE, text=True, cwd=env["dir"],
                              env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")})
    try:
        url = server.stdout.readline().split(" at ")[1].split()[0]
        page = in_chromium(url, {"gan": {"export": {"n": 300}}}, env["dir"])
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert page["errors"] == [] and page["gan"]["export"]["dims"] == [300, 2], page
    assert page["gan"]["export"]["inked"] > 0.005 and page["gan"]["export"]["steps"] >= 1

    # the plugin's own test suite, in the environment it is installed in
    r = in_env(env, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(PLUGIN / "tests"), timeout=600, cwd=PLUGIN)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and "failed" not in r.stdout and "skipped" not in r.stdout

    pip(env, "uninstall", "--yes", "gentoolkit-diffusion")
    assert "diffusion" not in listed(env)
    r = gentool(env, "models")
    assert r.returncode == 0 and "ddpm" not in r.stdout and "gpt" in r.stdout
    r = gentool(env, "sample", str(export), "-n", "2")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "no runtime for the 'diffusion' family" in r.stderr
