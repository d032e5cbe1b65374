"""Sampling and evaluation from a ``ddpm`` run folder (PyTorch)."""

from __future__ import annotations

import dataclasses

import numpy as np

from gentoolkit.samples.io import write_samples
from gentoolkit.train.checkpoint import load_weights
from gentoolkit.train.run import WEIGHTS, Run

from .models import build
from .torch_sampling import draw_samples


def load_denoiser(run: Run, device: str = "cpu"):
    """The moving-average denoiser of a run, rebuilt from config.json alone; returns (model, config tree)."""
    run.require(WEIGHTS)
    tree = run.tree()
    model = build(tree["model"])
    load_weights(run.file(WEIGHTS), {"ema": model})
    return model.to(device).eval(), tree


def sample(run: Run, *, n: int, seed, out=None, device="cpu", sampler=None, sampler_opts=(), as_json: bool = False,
           **options) -> np.ndarray:
    """Registered as the model's ``sample`` entry: ``gentool sample RUN``."""
    from gentoolkit.plugin.options import resolve_sampling

    from .options import CHOOSE, DIFFUSION_OPTIONS, FAMILY

    defaults = {k: v for k, v in run.config.get("sampler", {}).items() if v is not None}
    s, _ = resolve_sampling("diffusion", declared=DIFFUSION_OPTIONS, choose=CHOOSE, given=options, family=FAMILY,
                            defaults=defaults, sampler=sampler, sampler_opts=sampler_opts)
    model, tree = load_denoiser(run, device)
    x = draw_samples(model, tree["model"], s, n, seed, device)
    low, high = value_range(model, tree["model"])
    return write_samples(x, out, as_json=as_json, low=low, high=high)


def value_range(model, cfg) -> tuple[float | None, float | None]:
    """Images: the data's value range (shift +- scale); vectors: None."""
    if cfg.image_size is None:
        return None, None
    shift, scale = float(model.shift), float(model.scale)
    return shift - scale, shift + scale


def evaluate(run: Run, *, data: str | None = None, device: str = "cpu", seed: int = 0, n: int | None = None,
             sampler=None) -> dict:
    """Registered as the model's ``evaluate`` entry: the GAN's mode metrics, on 2,500 or 10,000 samples.

    Samples are drawn with the sampler training evaluated with (``train.eval_sampler``, DDIM in 50
    steps by default: :func:`.samplers.evaluation_sampler`), so the numbers are those of training's
    log, unless ``sampler`` is given; the report names it. ``n`` overrides the number of samples.
    """
    from gentoolkit.samples.evaluation import measure

    from .samplers import describe, evaluation_sampler
    from .task import prepare

    model, tree = load_denoiser(run, device)
    if data is not None:
        tree["data"] = dataclasses.replace(tree["data"], path=data)
    samples = prepare(dict(tree))
    n = n or (10_000 if samples.name == "digits" else 2_500)
    sampler = sampler or evaluation_sampler(tree["train"])
    x = draw_samples(model, tree["model"], sampler, n, seed, device)
    return {"data": samples.name, "samples": n, "sampler": describe(sampler, tree["model"].timesteps),
            "steps": len(sampler.timesteps(tree["model"].timesteps)), **measure(samples, x)}
