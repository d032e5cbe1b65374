"""Sampling and evaluation from a GAN run folder (PyTorch)."""

from __future__ import annotations

import numpy as np
import torch

from gentoolkit.errors import RunError
from gentoolkit.samples.io import write_samples
from gentoolkit.train.checkpoint import load_weights
from gentoolkit.train.run import WEIGHTS, Run

from .models import build


def load_generator(run: Run, device: str = "cpu"):
    """The moving-average generator of a run, rebuilt from config.json alone; returns (G, config tree)."""
    run.require(WEIGHTS)
    tree = run.tree()
    m = tree["model"]
    unset = [k for k in ("data_dim", "image_size", "channels") if hasattr(m, k) and getattr(m, k) is None]
    if unset:
        raise RunError(f"{run.path}: config.json lacks model.{unset[0]}, which training writes; it is not a finished run")
    G, _ = build(m)
    load_weights(run.file(WEIGHTS), {"G_ema": G})
    return G.to(device).eval(), tree


def generate(G, sampler, n: int, seed, device="cpu") -> np.ndarray:
    z = sampler(n, G.z_dim, np.random.default_rng(seed))
    with torch.no_grad():
        return G(torch.from_numpy(z).to(device)).cpu().numpy()


def sample(run: Run, *, n: int, seed, out=None, device="cpu", sampler=None, sampler_opts=(), as_json: bool = False,
           **options) -> np.ndarray:
    """Registered as the model's ``sample`` entry: ``gentool sample RUN``."""
    from gentoolkit.plugin.options import resolve_sampling

    from .options import CHOOSE, FAMILY, LATENT_OPTIONS

    s, _ = resolve_sampling("latent", declared=LATENT_OPTIONS, choose=CHOOSE, given=options, family=FAMILY,
                            defaults=run.config.get("sampler", {}), sampler=sampler, sampler_opts=sampler_opts)
    G, _ = load_generator(run, device)
    x = generate(G, s, n, seed, device)
    low = float(G.low) if hasattr(G, "low") else None
    high = float(G.high) if hasattr(G, "high") else None
    return write_samples(x, out, as_json=as_json, low=low, high=high)


def evaluate(run: Run, *, data: str | None = None, device: str = "cpu", seed: int = 0) -> dict:
    """Registered as the model's ``evaluate`` entry: mode metrics on 2,500 (mixtures) or 10,000 (digits) samples."""
    from gentoolkit.samples.evaluation import measure

    from .task import prepare

    G, tree = load_generator(run, device)
    if data is not None:
        import dataclasses

        tree["data"] = dataclasses.replace(tree["data"], path=data)
    _, samples = prepare(dict(tree))
    n = 10_000 if samples.name == "digits" else 2_500
    from .latent import LatentSampler

    x = generate(G, LatentSampler("normal"), n, seed, device)
    return {"data": samples.name, "samples": n, **measure(samples, x)}
