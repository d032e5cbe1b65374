"""gentool quickstart (small size) and gentool bench, end to end in fresh interpreters."""

import json
import re
import shutil

from .conftest import run_subprocess


def test_quickstart_small(tmp_path):
    out = tmp_path / "qs"
    r = run_subprocess("quickstart", "--small", "-o", str(out), env={"MPLBACKEND": "Agg"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Text from the exported gpt" in r.stdout and "modes" in r.stdout and "Try next:" in r.stdout
    # the loss is training's estimate, and says so; high_quality is printed as 'gentool eval' prints it
    assert re.search(r"gpt validation loss \(estimate on \d+ batches during training\): \d+\.\d{3} nats per token "
                     r"\(byte\); on the whole validation split: gentool eval \S+gpt-run$", r.stdout, re.M), r.stdout
    shown = re.search(r"modes \d/8, high_quality (\d+\.\d\d%), reverse_kl \d+\.\d{4}, diversity \d+\.\d{4}$",
                      r.stdout, re.M)
    assert shown, r.stdout
    evaluated = run_subprocess("eval", str(out / "gan-run"))
    assert re.search(r"^high_quality: \d+\.\d\d%$", evaluated.stdout, re.M), evaluated.stdout
    for name in ("gpt-run/model.safetensors", "gan-run/model.safetensors", "gpt-onnx/model.onnx",
                 "gpt-onnx/genai_config.json", "gan-onnx/model.onnx", "ring-samples.png", "gpt-run/loss.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "gan-onnx" / "gentoolkit.json").read_text())["family"] == "gan"
    weights = {n: (out / n / "model.safetensors").stat().st_mtime_ns for n in ("gpt-run", "gan-run")}
    again = run_subprocess("quickstart", "--small", "-o", str(out), env={"MPLBACKEND": "Agg"})
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("finished training before") == 2 and again.stderr.count("exported from it before") == 2
    assert {n: (out / n / "model.safetensors").stat().st_mtime_ns for n in weights} == weights  # nothing retrained
    assert "gpt validation loss" in again.stdout and "Text from the exported gpt" in again.stdout
    other = run_subprocess("quickstart", "--small", "--seed", "5", "-o", str(out))
    assert "other settings" in other.stderr and other.returncode != 0
    # a step stopped part way (its newest checkpoint behind its steps, as Ctrl-C leaves it) resumes
    steps = sorted((out / "gpt-run" / "checkpoints").iterdir())
    assert len(steps) >= 2
    shutil.rmtree(steps[-1])
    resumed = run_subprocess("quickstart", "--small", "-o", str(out), env={"MPLBACKEND": "Agg"})
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming {out / 'gpt-run'} from step" in resumed.stderr
    assert "gan-run finished training before" in resumed.stderr and "Text from the exported gpt" in resumed.stdout


def test_bench_reports_every_back_end():
    r = run_subprocess("bench", "--repeat", "1", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    ar = res["families"]["autoregressive"]["rows"]
    backends = [row["backend"] for row in ar]
    assert any("full recompute" in b for b in backends) and any("runtime" in b for b in backends)
    assert all(row["tokens_per_s"] > 0 for row in ar)
    runtime_rows = [row for row in ar if row["backend"].startswith("gentoolkit.runtime")]
    assert len(runtime_rows) == 2  # greedy and sampled, each against onnxruntime-genai (a dev dependency)
    for row in runtime_rows:
        v = row["vs_genai"]
        assert v["rounds"] == 1 and v["low"] <= v["median"] <= v["high"] and v["median"] > 0
    assert len(res["families"]["gan"]["rows"]) == 2 and res["import_runtime_s"] > 0
    # one headline row per family, brought by the family itself
    assert sorted(r["family"] for r in res["one_sample"]) == sorted(res["families"])
    printed = run_subprocess("bench", "--repeat", "1")
    assert printed.returncode == 0 and "| gentoolkit.runtime (onnxruntime, KV cache) |" in printed.stdout
