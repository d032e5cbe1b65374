"""Config sections of the ``ddpm`` model (torch-free: listing and validating never import torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from gentoolkit.config import BaseTrainConfig
from gentoolkit.samples.config import (
    DataConfig,  # the same data as the GAN: ring, grid, digits, folders, files
)

SCHEDULES = ("linear", "cosine")


@dataclass(frozen=True)
class DDPMConfig:
    """A noise-prediction denoiser: an MLP for vectors, a small U-Net for images."""

    timesteps: int = 1000  # T, the length of the forward (noising) process
    schedule: str = "cosine"  # cosine (Nichol & Dhariwal 2021) or linear (Ho et al. 2020)
    beta_start: float = 1e-4  # linear schedule only
    beta_end: float = 0.02
    hidden: int = 256  # MLP width (vectors)
    layers: int = 3  # MLP residual blocks (vectors)
    width: int = 32  # U-Net base channels (images)
    time_dim: int = 64  # sinusoidal timestep embedding
    ema: float = 0.999  # moving average of the weights, used for sampling and export
    data_dim: Optional[int] = None  # taken from the data (vectors)
    image_size: Optional[int] = None  # taken from the data (images): 8, 16, 32 or 64
    channels: Optional[int] = None  # taken from the data (images): 1 or 3

    def __post_init__(self):
        if self.timesteps < 2:
            raise ValueError("model.timesteps must be >= 2")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"model.schedule must be one of {', '.join(SCHEDULES)}")
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ValueError("model.beta_start and model.beta_end must satisfy 0 < beta_start < beta_end < 1")
        if min(self.hidden, self.layers, self.width, self.time_dim) < 1 or self.time_dim % 2:
            raise ValueError("model.hidden, layers, width must be >= 1 and model.time_dim even")
        if not 0 <= self.ema < 1:
            raise ValueError("model.ema must be in [0, 1) (0 = no moving average)")
        if self.image_size is not None and self.image_size not in (8, 16, 32, 64):
            raise ValueError("model.image_size must be 8, 16, 32 or 64")
        if self.channels is not None and self.channels not in (1, 3):
            raise ValueError("model.channels must be 1 or 3")


@dataclass(frozen=True)
class TrainConfig(BaseTrainConfig):
    # None: decided by the data when training starts (and written into config.json):
    # vectors 10,000 steps of 256, images 3,000 steps of 64 (a U-Net step costs ~50x an MLP's)
    steps: Optional[int] = None  # type: ignore[assignment]
    batch_size: Optional[int] = None
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup_steps: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    eval_interval: int = 1000
    eval_samples: Optional[int] = None  # None: 2,500 for vectors, 500 for images
    eval_sampler: str = "ddim"  # how evaluation during training draws its samples
    eval_steps: int = 50
    alarm_coverage: float = 0.5  # alarm when the share of modes (or classes) captured falls below this

    def __post_init__(self):
        if self.steps is not None:
            super().__post_init__()
        elif self.eval_interval < 1 or self.log_interval < 1:
            raise ValueError("train.eval_interval and train.log_interval must be >= 1")
        if (self.batch_size is not None and self.batch_size < 2) or self.lr <= 0 or self.eval_steps < 1:
            raise ValueError("train.batch_size must be >= 2, train.lr > 0 and train.eval_steps >= 1")
        if self.eval_samples is not None and self.eval_samples < 1:
            raise ValueError("train.eval_samples must be >= 1")
        if self.eval_sampler not in ("ddpm", "ddim"):
            raise ValueError("train.eval_sampler must be ddpm or ddim")


#: what ``None`` means for each kind of data
DATA_DEFAULTS = {
    "vectors": {"steps": 10_000, "batch_size": 256, "eval_samples": 2500},
    "images": {"steps": 3_000, "batch_size": 64, "eval_samples": 500},
}


@dataclass(frozen=True)
class LossConfig:
    name: str = "eps-mse"


@dataclass(frozen=True)
class SamplerConfig:
    # ddpm (ancestral, every step) or ddim (deterministic, fewer steps); "auto" is decided when training
    # starts: ddpm for vectors (cheap passes), ddim for images (a U-Net pass costs far more)
    name: str = "auto"
    steps: Optional[int] = None  # None: all model.timesteps for ddpm, 50 for ddim
    eta: Optional[float] = None  # ddim only: 0 = deterministic, 1 = as noisy as ddpm


SECTIONS = {"data": DataConfig, "train": TrainConfig, "loss": LossConfig, "sampler": SamplerConfig}

PRESETS = {
    "tiny": {"model": {"timesteps": 100, "hidden": 32, "layers": 1, "width": 8, "time_dim": 16},
             "train": {"steps": 60, "batch_size": 64, "eval_interval": 30, "eval_samples": 256, "eval_steps": 10}},
    "default": {},
}
