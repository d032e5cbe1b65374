"""Denoisers: ``forward(x_t, t) -> predicted noise``. An MLP for vectors, a small U-Net for images.

Both hold ``shift`` and ``scale`` buffers: the network works on ``(x - shift) / scale``
(vectors standardized, images mapped to [-1, 1]); samples are mapped back with them.
``low`` and ``high`` bound the data in those units (per feature for vectors): samplers
clip their estimate of ``x_0`` to them, which keeps few-step DDIM stable where
``alphas_cumprod`` is close to 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .config import DDPMConfig


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps, [batch] -> [batch, dim] (as in the Transformer and DDPM)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class TimeMLP(nn.Module):
    def __init__(self, time_dim: int, out: int):
        super().__init__()
        self.time_dim = time_dim
        self.net = nn.Sequential(nn.Linear(time_dim, out), nn.SiLU(), nn.Linear(out, out))

    def forward(self, t):
        return self.net(timestep_embedding(t, self.time_dim))


class MLPDenoiser(nn.Module):
    """Residual MLP: h = in(x) + time(t); h += block(h) for each block; out(h)."""

    def __init__(self, cfg: DDPMConfig):
        super().__init__()
        d, h = cfg.data_dim, cfg.hidden
        self.inp = nn.Linear(d, h)
        self.time = TimeMLP(cfg.time_dim, h)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(h), nn.Linear(h, 2 * h), nn.SiLU(), nn.Linear(2 * h, h)) for _ in range(cfg.layers)
        )
        self.out = nn.Sequential(nn.LayerNorm(h), nn.SiLU(), nn.Linear(h, d))
        self.register_buffer("shift", torch.zeros(d))
        self.register_buffer("scale", torch.ones(d))
        self.register_buffer("low", torch.full((d,), -10.0))
        self.register_buffer("high", torch.full((d,), 10.0))

    def forward(self, x, t):
        h = self.inp(x) + self.time(t)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


def _groups(c: int) -> int:
    return math.gcd(c, 8)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, tdim: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(cin), cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(tdim, cout)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(cout), cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(temb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class UNet(nn.Module):
    """A small U-Net: one residual block per level, channel multipliers 1, 2, 2(, 2), skip connections.

    8-pixel images get 2 levels (8, 4), 16 and 32 pixels 3, 64 pixels 4.
    """

    def __init__(self, cfg: DDPMConfig):
        super().__init__()
        c, w = cfg.channels, cfg.width
        levels = {8: 2, 16: 3, 32: 3, 64: 4}[cfg.image_size]
        chans = [w * m for m in (1, 2, 2, 2)[:levels]]
        tdim = 4 * w
        self.time = TimeMLP(cfg.time_dim, tdim)
        self.inp = nn.Conv2d(c, w, 3, padding=1)
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        prev = w
        for i, ch in enumerate(chans):
            self.down.append(ResBlock(prev, ch, tdim))
            self.pool.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1) if i + 1 < levels else nn.Identity())
            prev = ch
        self.mid = ResBlock(prev, prev, tdim)
        self.up = nn.ModuleList()
        for ch in reversed(chans):
            self.up.append(ResBlock(prev + ch, ch, tdim))
            prev = ch
        self.out = nn.Sequential(nn.GroupNorm(_groups(prev), prev), nn.SiLU(), nn.Conv2d(prev, c, 3, padding=1))
        self.register_buffer("shift", torch.zeros(()))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("low", torch.full((), -1.0))
        self.register_buffer("high", torch.full((), 1.0))

    def forward(self, x, t):
        temb = self.time(t)
        h = self.inp(x)
        skips = []
        for block, pool in zip(self.down, self.pool):
            h = block(h, temb)
            skips.append(h)
            h = pool(h)
        h = self.mid(h, temb)
        for block in self.up:
            skip = skips.pop()
            if h.shape[-1] != skip.shape[-1]:
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = block(torch.cat([h, skip], dim=1), temb)
        return self.out(h)


def build(cfg: DDPMConfig) -> nn.Module:
    """The denoiser the config describes (``data_dim`` for vectors, ``image_size``/``channels`` for images)."""
    if cfg.image_size is not None:
        return UNet(cfg)
    if cfg.data_dim is None:
        raise ValueError("model.data_dim or model.image_size must be set (the training data fills them in)")
    return MLPDenoiser(cfg)
