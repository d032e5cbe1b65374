"""``gentool bench PATH``: the cases that time a user's own generator, exported or a run folder."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def latent_cases(generate: Callable[[np.ndarray], Any], z_dim: int, options: dict[str, Any]):
    """One sample, and a batch of ``batch`` samples, from fixed standard-normal latents."""
    rng = np.random.default_rng(0)
    one = rng.standard_normal((1, z_dim)).astype(np.float32)
    many = rng.standard_normal((options["batch"], z_dim)).astype(np.float32)

    def timed(z: np.ndarray) -> Callable[[], dict]:
        import time

        def case() -> dict:
            t = time.perf_counter()
            generate(z)
            return {"samples_per_s": len(z) / (time.perf_counter() - t)}

        return case

    return [("sample, batch 1", timed(one)), (f"samples, batch {len(many)}", timed(many))]


def export_cases(driver, options: dict[str, Any]):
    """Registered as the ``gan`` runtime's ``timing``: an export through gentoolkit.runtime."""
    return latent_cases(driver.generate_from, driver.z_dim, options)


def run_cases(run, options: dict[str, Any]):
    """Registered as the models' ``timing``: the run's moving-average generator in PyTorch."""
    import torch

    from .sample import load_generator

    G, _ = load_generator(run)

    @torch.no_grad()
    def generate(z: np.ndarray):
        return G(torch.from_numpy(z)).numpy()

    return latent_cases(generate, G.z_dim, options)
