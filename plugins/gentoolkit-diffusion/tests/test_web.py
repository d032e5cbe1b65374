"""web/diffusion.mjs, the plugin's JavaScript driver, in Node: the same DDIM loop as the Python sampler.

Needs Node.js and onnxruntime-node: GENTOOLKIT_NODE_MODULES names the node_modules folder that
holds it (gentoolkit's own tests/js/node_modules, which its test of this plugin passes in)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

MODULE = Path(__file__).resolve().parents[1] / "src" / "gentoolkit_diffusion" / "web" / "diffusion.mjs"


@pytest.fixture(scope="module")
def node_cwd() -> Path:
    modules = os.environ.get("GENTOOLKIT_NODE_MODULES")
    if not modules or shutil.which("node") is None or not (Path(modules) / "onnxruntime-node").is_dir():
        pytest.skip("set GENTOOLKIT_NODE_MODULES to a node_modules with onnxruntime-node (npm install onnxruntime-node)")
    return Path(modules).parent


class GivenNoise:
    """A generator that hands the sampler the x_T that the JavaScript loop started from."""

    def __init__(self, noise):
        self.noise = noise

    def standard_normal(self, shape, dtype=np.float32):
        return self.noise.reshape(shape).astype(dtype)


def test_diffusion_mjs_runs_the_python_samplers_loop(ring_export, node_cwd, tmp_path):
    from gentoolkit.runtime import load
    from gentoolkit_diffusion.samplers import DiffusionSampler

    model = load(ring_export)
    n = 6
    noise = np.random.default_rng(0).standard_normal((n, *model.shape)).astype(np.float32)
    (tmp_path / "noise.json").write_text(json.dumps(noise.ravel().tolist()))
    r = subprocess.run(["node", str(MODULE), str(ring_export), "--n", str(n), "--steps", "10", "--eta", "0",
                        "--noise", str(tmp_path / "noise.json"), "--json"], cwd=node_cwd, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["dims"] == [n, *model.shape] and out["steps"] == 10
    x0 = DiffusionSampler(eta=0.0, steps=10)(model.denoise, (n, *model.shape), model.alphas_cumprod,
                                             GivenNoise(noise), clip=model.clip)
    np.testing.assert_allclose(np.array(out["samples"]).reshape(x0.shape), x0 * model.scale + model.shift, atol=1e-4)
    # its own noise: the seed decides, and eta 1 (DDPM) draws fresh noise at every step
    runs = [json.loads(subprocess.run(["node", str(MODULE), str(ring_export), "--n", "3", "--steps", "20", "--eta", "1",
                                       "--seed", "4", "--json"], cwd=node_cwd, capture_output=True, text=True,
                                      timeout=120).stdout)["samples"] for _ in range(2)]
    assert runs[0] == runs[1] and np.isfinite(runs[0]).all()
    bad = subprocess.run(["node", str(MODULE), str(ring_export), "--eta", "2"], cwd=node_cwd, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 1 and bad.stderr.startswith("Error: --eta must be in [0, 1]")
