"""The diffusion family's decode options, declared once (torch-free: the CLI reads it for its flags)."""

from __future__ import annotations

from dataclasses import dataclass

from gentoolkit.plugin.options import option, sample_options


@dataclass(frozen=True)
class DiffusionOptions:
    """How a denoiser is sampled."""

    steps: int | None = option("Denoising passes (default: every timestep for ddpm, 50 for ddim).", low=1,
                               high=100_000)
    eta: float | None = option("DDIM's noise: 0 = deterministic, 1 = as noisy as DDPM.", low=0, high=1)


DIFFUSION_OPTIONS = sample_options(DiffusionOptions)
#: the sampler when the run stored none
CHOOSE = {"": "ddpm"}
FAMILY = "diffusion"
