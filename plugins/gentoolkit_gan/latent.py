"""Latent samplers for GANs (and interpolation for latent walks), in numpy."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LatentSampler:
    """Draws ``z`` of shape ``[n, dim]`` (float32) from a seeded ``numpy.random.Generator``.

    ``distribution`` is ``normal``, ``uniform`` (on [-1, 1]) or ``truncated``
    (standard normal with every value beyond ``truncation`` redrawn: the
    truncation trick, which trades diversity for fidelity).
    """

    distribution: str = "normal"
    truncation: float = 0.0

    def __post_init__(self):
        if self.distribution not in ("normal", "uniform", "truncated"):
            raise ValueError(f"unknown latent distribution {self.distribution!r}")
        t = self.truncation
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            raise ValueError(f"truncation must be a finite number > 0, got {t!r}")
        if self.distribution == "truncated" and not t > 0:
            raise ValueError(f"the truncated sampler needs truncation > 0, got {t}")

    def __call__(self, n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
        if self.distribution == "uniform":
            return rng.uniform(-1.0, 1.0, size=(n, dim)).astype(np.float32)
        if self.distribution == "truncated" and self.truncation < 1.0:
            return _narrow_truncated(n, dim, self.truncation, rng).astype(np.float32)
        z = rng.standard_normal((n, dim))
        if self.distribution == "truncated":
            out = np.abs(z) > self.truncation
            while out.any():  # each value is kept with probability erf(t / sqrt 2) >= 0.68
                z[out] = rng.standard_normal(int(out.sum()))
                out = np.abs(z) > self.truncation
        return z.astype(np.float32)


def _narrow_truncated(n: int, dim: int, t: float, rng: np.random.Generator) -> np.ndarray:
    """The standard normal cut to [-t, t] for t < 1, by rejection from the uniform on [-t, t].

    A value is kept with probability exp(-x^2 / 2) >= exp(-1/2) = 0.61 whatever ``t`` is, so
    the loop ends after a few rounds; redrawing from the normal would keep a value with
    probability about 0.8 t, and never end for a tiny ``t``.
    """
    z = np.empty(n * dim)
    todo = np.arange(n * dim)
    while len(todo):
        x = rng.uniform(-t, t, size=len(todo))
        keep = rng.random(len(todo)) < np.exp(-0.5 * x * x)
        z[todo[keep]] = x[keep]
        todo = todo[~keep]
    return z.reshape(n, dim)


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Linear interpolation; ``t`` of shape [steps] gives [steps, dim]."""
    t = np.asarray(t, dtype=np.float64)[..., None]
    return ((1 - t) * a + t * b).astype(np.float32)


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical interpolation (keeps the norm typical of Gaussian latents); falls back to lerp when a ~ b."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = np.dot(a64, b64) / (np.linalg.norm(a64) * np.linalg.norm(b64))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        return lerp(a, b, t)
    t = np.asarray(t, dtype=np.float64)[..., None]
    out = (np.sin((1 - t) * omega) * a64 + np.sin(t * omega) * b64) / np.sin(omega)
    return out.astype(np.float32)


def make_normal() -> LatentSampler:
    return LatentSampler("normal")


def make_uniform() -> LatentSampler:
    return LatentSampler("uniform")


def make_truncated(truncation: float = 1.0) -> LatentSampler:
    return LatentSampler("truncated", truncation)
