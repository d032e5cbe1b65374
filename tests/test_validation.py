"""Export validation: bounds that scale with the outputs, the greedy tokens and the KL divergence, and the
two bugs it is there to catch (a wrong weight, two heads swapped), each written into a real export."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from gentoolkit.errors import ExportError
from gentoolkit.export import TOLERANCES, export, validate
from gentoolkit.plugin.manager import get_model
from gentoolkit.plugin.specs import resolve
from gentoolkit.train.run import Run

from .conftest import ROOT, one_error_line, run_cli


@pytest.fixture(scope="module")
def llama_export(llama_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("validation") / "llama"
    manifest = export(llama_run, out, log=lambda m: None)
    return out, manifest


def _plan(run):
    r = Run.open(run)
    return resolve(get_model(r.model_name).export)(r)


def test_the_report_names_every_measure(llama_export):
    _, m = llama_export
    v = m["validation"]
    assert v["tolerance"] == {"rtol": 1e-3, "max_kl": 1e-4, "greedy": 1.0}
    assert set(v["outputs"]) == {"logits", "present.*"}
    for w in v["outputs"].values():
        assert 0 <= w["max_rel_diff"] < 1e-3 and 0 <= w["max_abs_diff"] < 1e-3
    lg = v["logits"]
    assert lg["greedy_agreement"] == 1.0 and lg["positions"] > 50
    assert 0 <= lg["mean_kl"] <= lg["max_kl"] < 1e-6
    assert v["max_abs_diff"]["logits"] == v["outputs"]["logits"]["max_abs_diff"]


def _corrupt(src, dst, change) -> None:
    """A copy of the export ``src`` at ``dst`` with one weight changed by ``change(name, array)``."""
    shutil.copytree(src, dst)
    model = onnx.load(str(dst / "model.onnx"))
    inits = {t.name: t for t in model.graph.initializer}
    name, value = change({n: numpy_helper.to_array(t) for n, t in inits.items()})
    inits[name].CopyFrom(numpy_helper.from_array(value, name))
    onnx.save(model, str(dst / "model.onnx"))


@pytest.mark.parametrize("bug", ["wrong weight", "two heads swapped"])
def test_a_real_bug_fails_validation(llama_run, llama_export, tmp_path, bug):
    """The default fp32 bounds catch a wrong weight (layer 1's MLP output projection where layer 0's
    belongs) and two query heads swapped in the packed QKV projection; the same export unchanged passes."""
    folder, m = llama_export
    head = m["runtime"]["head_dim"]

    def change(w):
        if bug == "wrong weight":
            return "transformer.h.0.mlp.c_proj.weight", w["transformer.h.1.mlp.c_proj.weight"]
        qkv = w["transformer.h.0.attn.c_attn.weight"].copy()  # (in, out): heads are column blocks
        qkv[:, :head], qkv[:, head : 2 * head] = qkv[:, head : 2 * head].copy(), qkv[:, :head].copy()
        return "transformer.h.0.attn.c_attn.weight", qkv

    _corrupt(folder, tmp_path / "bad", change)
    plan = _plan(llama_run)
    validate(plan, folder / "model.onnx", TOLERANCES["fp32"], log=lambda s: None)  # the good one passes
    with pytest.raises(ExportError, match="validation failed"):
        validate(plan, tmp_path / "bad" / "model.onnx", TOLERANCES["fp32"], log=lambda s: None)
    if bug == "wrong weight":  # int4's looser bounds still catch a weight from the wrong layer
        with pytest.raises(ExportError, match="validation failed"):
            validate(plan, tmp_path / "bad" / "model.onnx", TOLERANCES["int4"], log=lambda s: None)


def test_bounds_on_the_command_line(gpt_run, tmp_path):
    line = one_error_line(run_cli("export", str(gpt_run), "-o", str(tmp_path / "a"), "--rtol", "1e-12"))
    assert "validation failed" in line and "(> rtol 1e-12)" in line
    assert not (tmp_path / "a").exists()
    line = one_error_line(run_cli("export", str(gpt_run), "-o", str(tmp_path / "b"), "--max-kl", "1e-300"))
    assert "KL" in line and "max_kl 1e-300" in line
    r = run_cli("export", str(gpt_run), "-o", str(tmp_path / "c"), "--atol", "0.5", "--max-kl", "0.01")
    assert r.exit_code == 0, r.output
    tol = json.loads((tmp_path / "c" / "gentoolkit.json").read_text())["validation"]["tolerance"]
    assert tol == {"rtol": 1e-3, "atol": 0.5, "max_kl": 0.01, "greedy": 1.0}
    assert "greedy token" in r.output and "KL divergence" in r.output


def test_the_manifest_names_the_oldest_onnxruntime_and_the_graph_is_saved_portably(llama_export, gan_run, tmp_path):
    folder, m = llama_export
    assert m["graph"] == "fused" and m["onnxruntime"] == "1.22"
    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    assert model.ir_version == 8  # opset 17's, not the onnx package's newest
    assert {o.domain for o in model.opset_import} == {"", "com.microsoft"}
    gqa = [n for n in model.graph.node if n.op_type == "GroupQueryAttention"]
    assert gqa and all(len(n.input) == 11 for n in gqa)  # the form onnxruntime 1.22 runs
    assert all({a.name for a in n.attribute} == {"num_heads", "kv_num_heads", "scale"} for n in gqa)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["onnxruntime"] == "1.22"
    g = export(gan_run, tmp_path / "gan", log=lambda s: None)
    assert g["onnxruntime"] == "1.19"  # plain ONNX
    assert np.isfinite(g["validation"]["outputs"][next(iter(g["validation"]["outputs"]))]["max_rel_diff"])


ORT_CACHE = Path(os.environ.get("GENTOOLKIT_ORT_CACHE", Path.home() / ".cache" / "gentoolkit-test-onnxruntime"))


def _onnxruntime_release(version: str) -> Path:
    """A folder holding onnxruntime ``version`` alone (its wheel from PyPI, no dependencies), cached."""
    target = ORT_CACHE / version
    if not (target / "onnxruntime" / "__init__.py").is_file():
        tmp = ORT_CACHE / f".{version}.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(tmp),
                        f"onnxruntime=={version}"], check=True, capture_output=True, timeout=600)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    return target


def _sample_with(release: Path | None, folder: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(release), str(ROOT)]) if release else str(ROOT)}
    return subprocess.run([sys.executable, "-m", "gentoolkit", "sample", str(folder), "-p", "The ", "--greedy",
                           "--max-new-tokens", "24", "--json"], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_the_default_export_runs_in_the_oldest_onnxruntime_it_names_and_not_below(llama_export):
    """The release the manifest names (1.22.1) gives the installed release's greedy tokens; the one before
    it stops with one line naming the release needed and the traced graph, before onnxruntime refuses."""
    folder, m = llama_export
    here = _sample_with(None, folder)
    assert here.returncode == 0, here.stderr
    floor = _sample_with(_onnxruntime_release("1.22.1"), folder)
    assert floor.returncode == 0, floor.stderr
    assert json.loads(floor.stdout)["samples"][0]["ids"] == json.loads(here.stdout)["samples"][0]["ids"]
    below = _sample_with(_onnxruntime_release("1.21.1"), folder)
    line = one_error_line(below)
    assert f"needs onnxruntime {m['onnxruntime']} or newer and this one is 1.21.1" in line and "--graph traced" in line
