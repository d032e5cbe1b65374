"""What the diffusion family takes when it samples (torch-free: the CLI reads it for its flags)."""

from gentoolkit.registry import SampleOption

DIFFUSION_OPTIONS = (
    SampleOption("steps", int, "Denoising passes (default: every timestep for ddpm, 50 for ddim).", low=1,
                 high=100_000),
    SampleOption("eta", float, "DDIM's noise: 0 = deterministic, 1 = as noisy as DDPM.", low=0, high=1),
)
#: the sampler when the run stored none
CHOOSE = {"": "ddpm"}
FAMILY = "diffusion"
