"""Latent samplers for GANs (and interpolation for latent walks), in numpy."""

from __future__ import annotations

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
        if self.distribution == "truncated" and not self.truncation > 0:
            raise ValueError("the truncated sampler needs truncation > 0")

    def __call__(self, n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
        if self.distribution == "uniform":
            return rng.uniform(-1.0, 1.0, size=(n, dim)).astype(np.float32)
        z = rng.standard_normal((n, dim))
        if self.distribution == "truncated":
            out = np.abs(z) > self.truncation
            while out.any():
                z[out] = rng.standard_normal(int(out.sum()))
                out = np.abs(z) > self.truncation
        return z.astype(np.float32)


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
