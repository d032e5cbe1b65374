"""Generators and discriminators.

Every generator maps ``z`` (B, z_dim) to samples in the data's own range and
layout: vectors (B, d) de-standardized with the data's mean and std (buffers),
images (B, C, H, W) mapped from tanh to [low, high]. Every discriminator takes
samples in that same range, normalizes them itself, and packs ``pack`` samples
into one input (PacGAN): (B, ...) -> (B / pack, 1) scores.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

from .config import DCGANConfig, GANConfig


def _maybe_sn(layer: nn.Module, on: bool) -> nn.Module:
    return _sn(layer) if on else layer


def latent_class(z0: torch.Tensor, classes: int) -> torch.Tensor:
    """The discrete part of a ``gan`` latent: ``floor(classes * frac(1024 * z0))``, int64.

    Uniform over ``range(classes)`` for any smooth distribution of ``z0`` (normal,
    truncated normal, uniform); 1024 is a power of two, so the product is exact in
    float32 and PyTorch and onnxruntime agree on every class."""
    u = z0 * 1024.0
    return ((u - torch.floor(u)) * classes).long().clamp(max=classes - 1)


class LatentClass(nn.Module):
    """:func:`latent_class` of ``z[:, 0]`` as a module, so that its ONNX nodes share one scope
    (``/latent_class/``), which an fp16 export keeps in float32."""

    def __init__(self, classes: int):
        super().__init__()
        self.classes = classes

    def forward(self, z):
        return latent_class(z[:, 0], self.classes)


class MLPGenerator(nn.Module):
    """With ``latent_classes`` K > 0 the latent is part discrete: the fractional part of 1024 * z[0]
    (uniform for any smooth distribution of z[0], the truncated one included) picks one of K learned
    embeddings, added to the first layer's output for z[1:]. A continuous map of one Gaussian has to
    cross the empty space between separate modes; with K classes each can land on its own mode."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        d = cfg.data_dim
        self.z_dim = cfg.z_dim
        self.embed = nn.Embedding(cfg.latent_classes, cfg.hidden) if cfg.latent_classes else None
        self.latent_class = LatentClass(cfg.latent_classes) if cfg.latent_classes else None
        layers: list[nn.Module] = []
        width = cfg.z_dim - (1 if cfg.latent_classes else 0)
        for _ in range(cfg.g_layers):
            layers += [nn.Linear(width, cfg.hidden)]
            if cfg.batch_norm:
                layers += [nn.BatchNorm1d(cfg.hidden)]
            layers += [nn.ReLU()]
            width = cfg.hidden
        layers += [nn.Linear(width, d)]
        self.net = nn.Sequential(*layers)
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("std", torch.ones(d))

    def forward(self, z):
        if self.embed is None:
            return self.net(z) * self.std + self.mean
        h = self.net[0](z[:, 1:]) + self.embed(self.latent_class(z))
        return self.net[1:](h) * self.std + self.mean


class MLPDiscriminator(nn.Module):
    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.pack = cfg.pack
        d = cfg.data_dim
        layers: list[nn.Module] = []
        width = d * cfg.pack
        for _ in range(cfg.d_layers):
            layers += [_maybe_sn(nn.Linear(width, cfg.hidden), cfg.spectral_norm), nn.LeakyReLU(0.2)]
            width = cfg.hidden
        layers += [_maybe_sn(nn.Linear(width, 1), cfg.spectral_norm)]
        self.net = nn.Sequential(*layers)
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("std", torch.ones(d))

    def forward(self, x):
        x = (x - self.mean) / self.std
        return self.net(x.reshape(x.shape[0] // self.pack, -1))


def _levels(size: int) -> int:
    return {8: 1, 16: 2, 32: 3, 64: 4}[size]


class ConvGenerator(nn.Module):
    def __init__(self, cfg: DCGANConfig, low: float, high: float):
        super().__init__()
        n = _levels(cfg.image_size)
        w = cfg.width
        self.z_dim, self.w0 = cfg.z_dim, w
        self.fc = nn.Linear(cfg.z_dim, w * 4 * 4)
        blocks: list[nn.Module] = [nn.BatchNorm2d(w) if cfg.batch_norm else nn.Identity(), nn.ReLU()]
        ch = w
        for _ in range(n):
            out = max(ch // 2, 16)
            blocks += [nn.ConvTranspose2d(ch, out, 4, 2, 1, bias=not cfg.batch_norm)]
            blocks += [nn.BatchNorm2d(out) if cfg.batch_norm else nn.Identity(), nn.ReLU()]
            ch = out
        blocks += [nn.Conv2d(ch, cfg.channels, 3, 1, 1), nn.Tanh()]
        self.net = nn.Sequential(*blocks)
        self.register_buffer("low", torch.tensor(float(low)))
        self.register_buffer("high", torch.tensor(float(high)))

    def forward(self, z):
        x = self.net(self.fc(z).view(z.shape[0], self.w0, 4, 4))
        return self.low + (x + 1) * 0.5 * (self.high - self.low)


class ConvDiscriminator(nn.Module):
    def __init__(self, cfg: DCGANConfig, low: float, high: float):
        super().__init__()
        self.pack = cfg.pack
        n = _levels(cfg.image_size)
        ch = cfg.channels * cfg.pack
        layers: list[nn.Module] = []
        for i in range(n):
            out = max(cfg.width // 2 ** (n - 1 - i), 16)
            layers += [_maybe_sn(nn.Conv2d(ch, out, 4, 2, 1), cfg.spectral_norm), nn.LeakyReLU(0.2)]
            ch = out
        layers += [nn.Flatten(), _maybe_sn(nn.Linear(ch * 4 * 4, 1), cfg.spectral_norm)]
        self.net = nn.Sequential(*layers)
        self.register_buffer("low", torch.tensor(float(low)))
        self.register_buffer("high", torch.tensor(float(high)))

    def forward(self, x):
        x = (x - self.low) / (self.high - self.low) * 2 - 1
        b, c, h, w = x.shape
        return self.net(x.reshape(b // self.pack, c * self.pack, h, w))


def build(cfg, low: float = 0.0, high: float = 1.0):
    """Registered builder: (generator, discriminator) from the model config alone."""
    if isinstance(cfg, DCGANConfig):
        return ConvGenerator(cfg, low, high), ConvDiscriminator(cfg, low, high)
    return MLPGenerator(cfg), MLPDiscriminator(cfg)
