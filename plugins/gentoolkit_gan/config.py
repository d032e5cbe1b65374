"""Config sections of the GAN family (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from gentoolkit.config import BaseTrainConfig, check_range
from gentoolkit.samples.config import DataConfig


def _check_common(z_dim, pack, ema):
    if z_dim < 1:
        raise ValueError("model.z_dim must be >= 1")
    if not 1 <= pack <= 4:
        raise ValueError("model.pack must be 1..4 (PacGAN packing)")
    if not 0 <= ema < 1:
        raise ValueError("model.ema must be in [0, 1) (0 = no moving average)")


@dataclass(frozen=True)
class GANConfig:
    """MLP generator and discriminator for vectors (2-D points, tabular rows); the generator's latent is
    part discrete by default (``latent_classes``), which lets it put separate modes apart."""

    z_dim: int = 16
    # discrete latent: frac(1024 * z[0]) picks one of this many learned embeddings, so G need not map one
    # connected latent space onto separate modes (0 = the plain Gaussian latent)
    latent_classes: int = 50
    hidden: int = 256
    g_layers: int = 4
    d_layers: int = 3
    batch_norm: bool = True  # in G
    spectral_norm: bool = False  # in D
    pack: int = 1  # PacGAN: D sees `pack` samples at once
    ema: float = 0.99  # moving average of G's weights, used for sampling and export
    data_dim: Optional[int] = None  # taken from the data

    def __post_init__(self):
        _check_common(self.z_dim, self.pack, self.ema)
        if self.hidden < 1 or self.g_layers < 1 or self.d_layers < 1:
            raise ValueError("model.hidden, model.g_layers and model.d_layers must be >= 1")
        check_range("model.g_layers", self.g_layers, 1, 1024)
        check_range("model.d_layers", self.d_layers, 1, 1024)
        if self.latent_classes < 0 or self.latent_classes == 1:
            raise ValueError("model.latent_classes must be 0 (plain Gaussian latent) or >= 2")
        if self.latent_classes and self.z_dim < 2:
            raise ValueError("model.latent_classes needs model.z_dim >= 2 (z[0] picks the class, the rest is noise)")


@dataclass(frozen=True)
class DCGANConfig:
    """Convolutional generator and discriminator for images (8, 16, 32 or 64 pixels; 1 or 3 channels)."""

    z_dim: int = 64
    image_size: Optional[int] = None  # default: the data's own size (8 for digits, 32 for a folder)
    channels: Optional[int] = None  # default: the data's
    width: int = 64  # channels of the widest conv layer
    batch_norm: bool = True
    spectral_norm: bool = True
    pack: int = 1
    ema: float = 0.999

    def __post_init__(self):
        _check_common(self.z_dim, self.pack, self.ema)
        if self.image_size is not None and self.image_size not in (8, 16, 32, 64):
            raise ValueError("model.image_size must be 8, 16, 32 or 64")
        if self.channels is not None and self.channels not in (1, 3):
            raise ValueError("model.channels must be 1 or 3")


@dataclass(frozen=True)
class TrainConfig(BaseTrainConfig):
    steps: int = 5000
    batch_size: int = 256
    n_critic: int = 1  # D steps per G step
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_decay: bool = True  # cosine decay of both learning rates to 10% over train.steps
    eval_interval: int = 1000
    eval_samples: int = 2500
    alarm_diversity: float = 0.25  # alarm when generated spread / real spread stays below this (3 log steps)
    alarm_coverage: float = 0.5  # alarm when the share of modes (or classes) captured falls below this

    def __post_init__(self):
        super().__post_init__()
        if self.batch_size < 4 or self.n_critic < 1:
            raise ValueError("train.batch_size must be >= 4 and train.n_critic >= 1")
        check_range("train.n_critic", self.n_critic, 1, 1000)
        check_range("train.lr_g", self.lr_g, 0, 10, low_open=True)  # Adam: above 10 is always a typo
        check_range("train.lr_d", self.lr_d, 0, 10, low_open=True)
        check_range("train.beta1", self.beta1, 0, 1, high_open=True)
        check_range("train.beta2", self.beta2, 0, 1, high_open=True)
        check_range("train.eval_samples", self.eval_samples, 16)
        check_range("train.alarm_diversity", self.alarm_diversity, 0, 1)
        check_range("train.alarm_coverage", self.alarm_coverage, 0, 1)


@dataclass(frozen=True)
class LossConfig:
    name: str = "non-saturating"
    gp_weight: float = 10.0  # wgan-gp's gradient penalty
    r1: float = 0.0  # R1 penalty on real data for D (0 = off)

    def __post_init__(self):
        check_range("loss.gp_weight", self.gp_weight, 0)
        check_range("loss.r1", self.r1, 0)


@dataclass(frozen=True)
class SamplerConfig:
    truncation: Optional[float] = None

    def __post_init__(self):
        if self.truncation is not None:
            check_range("sampler.truncation", self.truncation, 0, low_open=True)


SECTIONS = {"data": DataConfig, "train": TrainConfig, "loss": LossConfig, "sampler": SamplerConfig}

GAN_PRESETS = {
    "tiny": {"model": {"hidden": 64, "g_layers": 2, "d_layers": 2}, "train": {"steps": 300, "batch_size": 64,
                                                                             "eval_interval": 100}},
    "fast": {"train": {"steps": 3000}},
    # the 2014 recipe without today's stabilizers: the saturating minimax loss, a plain Gaussian latent, no packing, no
    # batch norm, no R1, no moving average, no decay; it collapses (see the mode-collapse tutorial)
    "classic": {"model": {"latent_classes": 0, "pack": 1, "batch_norm": False, "ema": 0.0},
                "train": {"steps": 4000, "lr_decay": False},
                "loss": {"name": "minimax", "r1": 0.0}},
    "default": {},
}
DCGAN_PRESETS = {
    "tiny": {"model": {"width": 16, "z_dim": 16}, "train": {"steps": 100, "batch_size": 32, "eval_interval": 50},
             "data": {"path": "digits"}},
    "default": {"data": {"path": "digits"}, "train": {"steps": 15000, "batch_size": 64, "lr_g": 2e-4, "lr_d": 2e-4},
                "loss": {"r1": 0.0}},
}
