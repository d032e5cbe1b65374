"""Entry point of the built-in GAN family (``gentoolkit`` group, name ``gan``). Torch-free."""

from pathlib import Path

from gentoolkit import LossSpec, ModelSpec, RuntimeSpec, SamplerSpec, Tools, hookimpl

from .config import DCGAN_PRESETS, GAN_PRESETS, SECTIONS, DCGANConfig, GANConfig
from .options import LATENT_OPTIONS

_P = "gentoolkit_gan"


@hookimpl
def register_models(register):
    # legacy: runs of `gan` written before the discrete latent had none
    for name, cfg, presets, desc, legacy in (
        ("gan", GANConfig, GAN_PRESETS, "MLP generator and discriminator for vectors (2-D points, tabular rows).",
         {"model.latent_classes": 0}),
        ("dcgan", DCGANConfig, DCGAN_PRESETS, "Convolutional GAN for 8-64 pixel images (1 or 3 channels).", {}),
    ):
        register(
            ModelSpec(
                name=name,
                family="gan",
                description=desc,
                config=cfg,
                sections=SECTIONS,
                presets=presets,
                default_preset="default",
                build=f"{_P}.models:build",
                trainer=f"{_P}.task:GANTask",
                sample=f"{_P}.sample:sample",
                evaluate=f"{_P}.sample:evaluate",
                export=f"{_P}.export:plan",
                sample_options=LATENT_OPTIONS,
                tools=Tools(timing=f"{_P}.timing:run_cases", bench=f"{_P}.bench:bench" if name == "gan" else None,
                            quickstart=f"{_P}.quickstart:quickstart" if name == "gan" else None),
                legacy=legacy,
            )
        )


_LOSSES = [
    ("minimax", "MINIMAX", "The original minimax game, with the saturating generator loss log(1 - D(G(z)))."),
    ("non-saturating", "NON_SATURATING", "Minimax for D; G maximizes log D(G(z)) (the default)."),
    ("wgan-gp", "WGAN_GP", "Wasserstein critic with gradient penalty (loss.gp_weight)."),
    ("hinge", "HINGE", "Hinge loss for D, -D(G(z)) for G."),
    ("lsgan", "LSGAN", "Least squares (targets 1 for real, 0 for fake)."),
]


@hookimpl
def register_losses(register):
    for name, attr, desc in _LOSSES:
        register(LossSpec(name=name, family="gan", description=desc, impl=f"{_P}.losses:{attr}"))


@hookimpl
def register_samplers(register):
    register(SamplerSpec(name="normal", kind="latent", factory=f"{_P}.latent:make_normal",
                         description="Standard normal latents."))
    register(SamplerSpec(name="uniform", kind="latent", factory=f"{_P}.latent:make_uniform",
                         description="Uniform latents on [-1, 1]."))
    register(SamplerSpec(name="truncated", kind="latent", factory=f"{_P}.latent:make_truncated",
                         options={"truncation": float},
                         description="The standard normal cut to [-truncation, truncation] (the truncation trick)."))


@hookimpl
def register_runtimes(register):
    register(RuntimeSpec(name="gan", description="Exported generators: sample(n, seed, truncation).",
                         load="gentoolkit_gan.runtime:GeneratorModel", sample_options=LATENT_OPTIONS,
                         timing=f"{_P}.timing:export_cases", web=str(Path(__file__).with_name("web") / "gan.mjs")))
