"""gentoolkit-diffusion: denoising diffusion (DDPM training, DDPM and DDIM sampling) as a gentoolkit plugin."""

__version__ = "0.1.0"
