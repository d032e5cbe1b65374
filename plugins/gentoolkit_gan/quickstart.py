"""``gentool quickstart``'s step for the GAN family: a gan on ring, 8 Gaussians."""

from __future__ import annotations

from pathlib import Path

SIZES = {False: ("fast", 3000), True: ("tiny", 60)}  # small: tiny and fast, for CI


def quickstart(out: Path, *, small: bool, seed: int, say) -> dict:
    """Registered as ``gan``'s ``quickstart`` entry: train, export, sample without torch, measure, draw."""
    from gentoolkit.cli.quickstart import export_step, train_step
    from gentoolkit.config import build as build_config
    from gentoolkit.plots import scatter
    from gentoolkit.plugin.manager import get_model
    from gentoolkit.runtime import load
    from gentoolkit.samples.data import ring
    from gentoolkit.samples.metrics import diversity, format_metric, mixture_metrics

    preset, steps = SIZES[small]
    run, onnx, picture = out / "gan-run", out / "gan-onnx", out / "ring-samples.png"
    say(f"  training gan ({preset}, {steps} steps) on ring (8 Gaussians)")
    spec = get_model("gan")
    tree = build_config(spec.config_sections, spec.presets[preset],
                        sets=["data.path=ring", f"train.steps={steps}", f"train.seed={seed}", f"train.eval_interval={steps}"])
    train_step(spec, tree, run, say=say, out=out, extra_meta={"preset": preset})
    say("  exporting its generator to ONNX, validated against PyTorch")
    export_step(run, onnx, say=say)
    say("  sampling through gentoolkit.runtime (onnxruntime, no torch)")
    points = load(onnx).sample(2500, seed=seed)
    data = ring()
    m = mixture_metrics(points, data.modes, data.mode_std)
    scatter(data.x[:2500], points, picture, modes=data.modes, mode_std=data.mode_std,
            title="gan on ring: real (grey) vs generated (red)")
    m["diversity"] = diversity(points, data.x)
    shown = ", ".join(f"{k} {format_metric(k, m[k])}" for k in ("high_quality", "reverse_kl", "diversity"))
    lines = [f"gan on ring, 2,500 samples from the exported generator: modes {m['modes']}/{m['modes_total']}, {shown}",
             f"scatter plot: {picture}"]
    return {"lines": lines, "folders": [run, onnx],
            "try": ["gentool train gan --preset classic --out runs/collapse   # the 2014 recipe: watch the alarm"]}
