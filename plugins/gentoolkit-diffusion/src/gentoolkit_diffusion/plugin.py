"""Entry point of gentoolkit-diffusion (``gentoolkit`` group, name ``diffusion``). Torch-free.

Every registration names its code lazily (``"module:attribute"``), so ``gentool --help``
and ``gentool plugins`` never import torch on this plugin's behalf.
"""

from pathlib import Path

from gentoolkit import LossSpec, ModelSpec, RuntimeSpec, SamplerSpec, Tools, hookimpl

from .config import PRESETS, SECTIONS, DDPMConfig
from .options import DIFFUSION_OPTIONS

_P = "gentoolkit_diffusion"


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            name="ddpm",
            family="diffusion",
            description="Denoising diffusion (noise prediction): MLP denoiser for vectors, small U-Net for images.",
            config=DDPMConfig,
            sections=SECTIONS,
            presets=PRESETS,
            default_preset="default",
            build=f"{_P}.models:build",
            trainer=f"{_P}.task:DiffusionTask",
            resolve_config=f"{_P}.task:resolve_config",
            sample=f"{_P}.sample:sample",
            evaluate=f"{_P}.sample:evaluate",
            export=f"{_P}.export:plan",
            sample_options=DIFFUSION_OPTIONS,
            tools=Tools(bench=f"{_P}.bench:one_sample"),
        )
    )


@hookimpl
def register_losses(register):
    register(LossSpec(name="eps-mse", family="diffusion", impl=f"{_P}.losses:eps_mse",
                      description="Mean squared error of the predicted noise (Ho et al.'s simple objective)."))


@hookimpl
def register_samplers(register):
    register(SamplerSpec(name="ddpm", kind="diffusion", factory=f"{_P}.samplers:make_ddpm",
                         options={"steps": int}, aliases=("ancestral",),
                         description="Ancestral DDPM sampling: every timestep (or 'steps' of them), fresh noise each step."))
    register(SamplerSpec(name="ddim", kind="diffusion", factory=f"{_P}.samplers:make_ddim",
                         options={"steps": int, "eta": float},
                         description="DDIM: deterministic (eta 0) in few steps (default 50); eta 1 is as noisy as DDPM."))


@hookimpl
def register_runtimes(register):
    register(RuntimeSpec(name="diffusion", load=f"{_P}.runtime:DiffusionModel", sample_options=DIFFUSION_OPTIONS,
                         description="Exported denoisers: sample(n, seed, steps, sampler, eta), the loop in numpy.",
                         web=str(Path(__file__).with_name("web") / "diffusion.mjs")))
