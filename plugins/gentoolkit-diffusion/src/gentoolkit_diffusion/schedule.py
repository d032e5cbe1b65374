"""Noise schedules, in numpy (training, PyTorch sampling and the torch-free runtime share them)."""

from __future__ import annotations

import math

import numpy as np


def alphas_cumprod(schedule: str, timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """``alpha_bar[t]`` for t = 0..T-1: the share of signal left in ``x_t`` (float64).

    ``linear``: betas evenly from ``beta_start`` to ``beta_end`` (Ho et al. 2020).
    ``cosine``: ``alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) * pi/2)``, s = 0.008, with
    betas clipped at 0.999 (Nichol & Dhariwal 2021).
    """
    if schedule == "linear":
        betas = np.linspace(beta_start, beta_end, timesteps, dtype=np.float64)
    elif schedule == "cosine":
        s = 0.008
        f = np.cos((np.arange(timesteps + 1, dtype=np.float64) / timesteps + s) / (1 + s) * math.pi / 2) ** 2
        betas = np.clip(1 - f[1:] / f[:-1], 0.0, 0.999)
    else:
        raise ValueError(f"unknown noise schedule {schedule!r}; use linear or cosine")
    return np.cumprod(1.0 - betas)


def spaced(timesteps: int, steps: int | None) -> np.ndarray:
    """The timesteps a sampler visits, descending: all of them, or ``steps`` evenly spaced ones."""
    if steps is None or steps >= timesteps:
        return np.arange(timesteps - 1, -1, -1)
    if steps < 1:
        raise ValueError("steps must be >= 1")
    return np.unique(np.linspace(0, timesteps - 1, steps).round().astype(np.int64))[::-1]
