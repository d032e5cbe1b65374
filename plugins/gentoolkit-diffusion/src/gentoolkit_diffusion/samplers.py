"""DDPM and DDIM samplers in numpy, registered with gentoolkit as samplers of kind ``diffusion``.

A sampler is called as ``sampler(denoise, shape, alphas_cumprod, rng, clip=None)``:
``denoise(x_t, t)`` predicts the noise in ``x_t`` (float32 array, int64 timesteps of
shape [batch]); the sampler starts from ``x_T ~ N(0, I)`` drawn from ``rng`` and returns
``x_0``. PyTorch (``gentool sample RUN``) and onnxruntime (``gentoolkit.runtime``)
pass their own ``denoise`` and get the same samples for the same seed.

Both use the generalized update of DDIM (Song et al. 2021), between consecutive visited
timesteps t > s::

    x0    = (x_t - sqrt(1 - a_t) * eps) / sqrt(a_t)
    sigma = eta * sqrt((1 - a_s) / (1 - a_t)) * sqrt(1 - a_t / a_s)
    x_s   = sqrt(a_s) * x0 + sqrt(1 - a_s - sigma^2) * eps + sigma * z

``eta = 1`` is DDPM's ancestral sampling (Ho et al. 2020, posterior variance
beta-tilde); ``eta = 0`` is deterministic DDIM. No noise is added at the last step.
With ``clip``, ``x0`` is clipped to the data's range and ``eps`` recomputed from it:
where ``a_t`` is close to 0 (the first steps of the cosine schedule), an unclipped
``x0`` multiplies the network's error by ``1 / sqrt(a_t)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .schedule import spaced

Denoise = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class DiffusionSampler:
    eta: float = 1.0
    steps: int | None = None  # None: every timestep

    def __post_init__(self):
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError("eta must be in [0, 1]")
        if self.steps is not None and self.steps < 1:
            raise ValueError("steps must be >= 1")

    def timesteps(self, total: int) -> np.ndarray:
        return spaced(total, self.steps)

    def __call__(self, denoise: Denoise, shape: tuple[int, ...], alphas_cumprod: np.ndarray,
                 rng: np.random.Generator, clip=None) -> np.ndarray:
        """``clip``: ``(low, high)`` (numbers or arrays that broadcast to a sample) bounding ``x_0``."""
        ac = np.asarray(alphas_cumprod, dtype=np.float64)
        ts = self.timesteps(len(ac))
        x = rng.standard_normal(shape, dtype=np.float32)
        t_batch = np.empty(shape[0], dtype=np.int64)
        for i, t in enumerate(ts):
            a_t = ac[t]
            a_s = ac[ts[i + 1]] if i + 1 < len(ts) else 1.0
            t_batch.fill(t)
            eps = denoise(x, t_batch)
            x0 = (x - np.float32(np.sqrt(1 - a_t)) * eps) / np.float32(np.sqrt(a_t))
            if clip is not None:
                np.clip(x0, clip[0], clip[1], out=x0)
                eps = (x - np.float32(np.sqrt(a_t)) * x0) / np.float32(np.sqrt(1 - a_t))
            if i + 1 == len(ts):
                return x0.astype(np.float32)
            sigma = self.eta * np.sqrt((1 - a_s) / (1 - a_t) * (1 - a_t / a_s))
            x = np.float32(np.sqrt(a_s)) * x0 + np.float32(np.sqrt(max(1 - a_s - sigma**2, 0.0))) * eps
            if sigma > 0:
                x += np.float32(sigma) * rng.standard_normal(shape, dtype=np.float32)
        return x


def make_ddpm(steps: int | None = None) -> DiffusionSampler:
    """Ancestral sampling (eta = 1) over every timestep, or ``steps`` evenly spaced ones."""
    return DiffusionSampler(eta=1.0, steps=steps)


def make_ddim(steps: int | None = 50, eta: float | None = 0.0) -> DiffusionSampler:
    """DDIM: deterministic (eta = 0) by default, 50 steps by default."""
    return DiffusionSampler(eta=0.0 if eta is None else eta, steps=50 if steps is None else steps)


def draw(denoise: Denoise, sampler, n: int, shape: tuple[int, ...], alphas_cumprod: np.ndarray, seed,
         *, clip=None, shift=0.0, scale=1.0, batch: int = 2500) -> np.ndarray:
    """``n`` samples in the data's units, ``batch`` at a time from one seeded stream.

    PyTorch and the runtime both call this, so the same seed gives the same samples.
    """
    rng = np.random.default_rng(seed)
    parts = [sampler(denoise, (min(batch, n - i), *shape), alphas_cumprod, rng, clip=clip) for i in range(0, n, batch)]
    x = np.concatenate(parts) if parts else np.zeros((0, *shape), np.float32)
    return (x * np.asarray(scale, np.float32) + np.asarray(shift, np.float32)).astype(np.float32)


def evaluation_sampler(train_config) -> DiffusionSampler:
    """The sampler every evaluation of a run draws with: during training, ``gentool eval`` and the export's
    quality report alike (``train.eval_sampler`` and ``train.eval_steps``: DDIM in 50 steps by default),
    so a run's numbers do not depend on which command measured them."""
    eta = 1.0 if train_config.eval_sampler == "ddpm" else 0.0
    return DiffusionSampler(eta=eta, steps=train_config.eval_steps)


def describe(sampler: DiffusionSampler, total: int) -> str:
    """How a report names a sampler: "ddim, 50 steps (eta 0)" or "ddpm, 1000 steps"."""
    steps = len(sampler.timesteps(total))
    return f"ddpm, {steps} steps" if sampler.eta == 1 else f"ddim, {steps} steps (eta {sampler.eta:g})"
