"""``gentool quickstart``: the whole path once, for a newcomer, with no download.

Train a small ``gpt`` on the built-in corpus and a ``gan`` on ``ring``, export
both to ONNX (validated against PyTorch), run both through the torch-free
runtime, and show what came out and what to try next.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

SIZES = {
    # name: (gpt preset, gpt steps, gan preset, gan steps)
    "default": ("micro", 1500, "fast", 3000),
    "small": ("nano", 40, "tiny", 60),
}


def run(out: str | Path = "quickstart", size: str = "default", seed: int = 1337) -> dict:
    from .config import build as build_config
    from .export import export
    from .plugins import get_model
    from .runtime import load
    from .training import train

    gpt_preset, gpt_steps, gan_preset, gan_steps = SIZES[size]
    out = Path(out)
    if (out / "gpt-run" / "config.json").exists() or (out / "gan-run" / "config.json").exists():
        from .errors import RunError

        raise RunError(f"{str(out)!r} already holds a quickstart; remove it or pass --out NEW_FOLDER")
    t0 = time.perf_counter()
    say = lambda m: click.echo(m, err=True)  # noqa: E731

    say(f"[1/4] training gpt ({gpt_preset}, {gpt_steps} steps) on Python's documentation text")
    spec = get_model("gpt")
    tree = build_config(spec.config_sections, spec.presets[gpt_preset],
                        sets=[f"train.steps={gpt_steps}", f"train.seed={seed}",
                              f"train.eval_interval={max(gpt_steps // 3, 1)}"])
    _, gpt_eval = train(spec, tree, out / "gpt-run", device="auto", extra_meta={"preset": gpt_preset})

    say(f"[2/4] training gan ({gan_preset}, {gan_steps} steps) on ring (8 Gaussians)")
    spec = get_model("gan")
    tree = build_config(spec.config_sections, spec.presets[gan_preset],
                        sets=["data.path=ring", f"train.steps={gan_steps}", f"train.seed={seed}",
                              f"train.eval_interval={gan_steps}"])
    train(spec, tree, out / "gan-run", device="auto", extra_meta={"preset": gan_preset})

    say("[3/4] exporting both to ONNX and validating them against PyTorch")
    quiet = lambda m: None  # noqa: E731
    export(out / "gpt-run", out / "gpt-onnx", log=quiet)
    export(out / "gan-run", out / "gan-onnx", log=quiet)

    say("[4/4] running both through gentoolkit.runtime (onnxruntime, no torch)")
    lm = load(out / "gpt-onnx")
    text = lm.generate("The ", max_new_tokens=160, seed=seed)
    gan = load(out / "gan-onnx")
    points = gan.sample(2500, seed=seed)
    from gentoolkit_gan.data import ring
    from gentoolkit_gan.metrics import diversity, mixture_metrics

    data = ring()
    metrics = mixture_metrics(points, data.modes, data.mode_std)
    metrics["diversity"] = diversity(points, data.x)
    from .plots import scatter

    scatter(data.x[:2500], points, out / "ring-samples.png", modes=data.modes,
            title="gan on ring: real (grey) vs generated (red)")
    minutes = (time.perf_counter() - t0) / 60
    return {"out": out, "text": text, "metrics": metrics, "gpt_eval": gpt_eval, "minutes": minutes}


def report(res: dict) -> None:
    out, m = res["out"], res["metrics"]
    click.echo("")
    click.echo("Text from the exported gpt (seed 1, prompt 'The '):")
    click.echo("  " + ("The " + res["text"]).replace("\n", "\n  "))
    click.echo("")
    if res["gpt_eval"]:
        click.echo(f"gpt validation loss: {res['gpt_eval'].get('val_loss', float('nan')):.3f} nats per token (byte)")
    click.echo(f"gan on ring, 2,500 samples from the exported generator: {m['modes']}/{m['modes_total']} modes, "
               f"{m['high_quality']:.1f}% high quality, reverse KL {m['reverse_kl']:.3f}, diversity {m['diversity']:.2f}")
    click.echo(f"scatter plot: {out / 'ring-samples.png'}   loss curves: {out / 'gpt-run' / 'loss.png'}")
    click.echo(f"done in {res['minutes']:.1f} minutes.")
    click.echo("")
    click.echo("Try next:")
    click.echo(f"  gentool sample {out / 'gpt-onnx'} -p 'def ' --temperature 0.7 --seed 2")
    click.echo("  gentool train gpt --data YOUR_TEXT.txt --out runs/mine")
    click.echo("  gentool train gan --preset classic --out runs/collapse   # the 2014 recipe: watch the alarm")
    click.echo(f"  python -c \"from gentoolkit.runtime import load; print(load('{out / 'gpt-onnx'}').generate('The '))\"")
    click.echo("  gentool bench")
    sys.stdout.flush()
