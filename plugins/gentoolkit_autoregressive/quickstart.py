"""``gentool quickstart``'s step for the autoregressive family: a gpt on Python's documentation text."""

from __future__ import annotations

from pathlib import Path

SIZES = {False: ("micro", 1500), True: ("nano", 40)}  # small: tiny and fast, for CI


def quickstart(out: Path, *, small: bool, seed: int, say) -> dict:
    """Registered as ``gpt``'s ``quickstart`` entry: train, export, generate without torch."""
    from gentoolkit.cli.quickstart import export_step, train_step
    from gentoolkit.config import build as build_config
    from gentoolkit.plugin.manager import get_model
    from gentoolkit.runtime import load

    preset, steps = SIZES[small]
    run, onnx = out / "gpt-run", out / "gpt-onnx"
    say(f"  training gpt ({preset}, {steps} steps) on Python's documentation text")
    spec = get_model("gpt")
    tree = build_config(spec.config_sections, spec.presets[preset],
                        sets=[f"train.steps={steps}", f"train.seed={seed}", f"train.eval_interval={max(steps // 3, 1)}"])
    last = train_step(spec, tree, run, say=say, out=out, extra_meta={"preset": preset})
    say("  exporting it to ONNX, validated against PyTorch")
    export_step(run, onnx, say=say)
    say("  generating through gentoolkit.runtime (onnxruntime, no torch)")
    text = load(onnx).generate("The ", max_new_tokens=160, seed=seed)
    lines = [f"Text from the exported gpt (seed {seed}, prompt 'The '):", "  " + ("The " + text).replace("\n", "\n  ")]
    if last:
        lines.append(f"gpt validation loss (estimate on {tree['train'].eval_batches} batches during training): "
                     f"{last.get('val_loss', float('nan')):.3f} nats per token (byte); on the whole validation "
                     f"split: gentool eval {run}")
    lines.append(f"loss curves: {run / 'loss.png'}")
    return {"lines": lines, "folders": [run, onnx],
            "try": [f"gentool sample {onnx} -p 'def ' --temperature 0.7 --seed 2",
                    "gentool train gpt --data YOUR_TEXT.txt --out runs/mine",
                    f"python -c \"from gentoolkit.runtime import load; print(load('{onnx}').generate('The '))\""]}
