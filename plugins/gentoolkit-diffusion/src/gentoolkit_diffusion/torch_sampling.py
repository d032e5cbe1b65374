"""Sampling with a PyTorch denoiser through the shared numpy samplers."""

from __future__ import annotations

import numpy as np
import torch

from .samplers import draw
from .schedule import alphas_cumprod


def sample_shape(cfg) -> tuple[int, ...]:
    return (cfg.channels, cfg.image_size, cfg.image_size) if cfg.image_size else (cfg.data_dim,)


@torch.no_grad()
def draw_samples(model, cfg, sampler, n: int, seed, device="cpu") -> np.ndarray:
    """``n`` samples in the data's units: the sampler's loop with ``model`` as the denoiser."""
    model.eval()

    def denoise(x, t):
        return model(torch.from_numpy(x).to(device), torch.from_numpy(t).to(device)).float().cpu().numpy()

    ac = alphas_cumprod(cfg.schedule, cfg.timesteps, cfg.beta_start, cfg.beta_end)
    return draw(denoise, sampler, n, sample_shape(cfg), ac, seed, clip=clip_range(model),
                shift=model.shift.cpu().numpy(), scale=model.scale.cpu().numpy())


def clip_range(model) -> tuple[np.ndarray, np.ndarray]:
    return model.low.cpu().numpy(), model.high.cpu().numpy()
