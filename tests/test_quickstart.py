"""gentool quickstart (small size) and gentool bench, end to end in fresh interpreters."""

import json

from .conftest import run_subprocess


def test_quickstart_small(tmp_path):
    out = tmp_path / "qs"
    r = run_subprocess("quickstart", "--small", "-o", str(out), env={"MPLBACKEND": "Agg"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Text from the exported gpt" in r.stdout and "modes" in r.stdout and "Try next:" in r.stdout
    for name in ("gpt-run/model.safetensors", "gan-run/model.safetensors", "gpt-onnx/model.onnx",
                 "gpt-onnx/genai_config.json", "gan-onnx/model.onnx", "ring-samples.png", "gpt-run/loss.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "gan-onnx" / "gentoolkit.json").read_text())["family"] == "gan"
    again = run_subprocess("quickstart", "--small", "-o", str(out))
    assert again.returncode != 0 and "already holds a quickstart" in again.stderr


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
