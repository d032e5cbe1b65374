"""What the GAN family takes when it samples (torch-free: the CLI reads it for its flags)."""

from gentoolkit.registry import SampleOption

LATENT_OPTIONS = (
    SampleOption("truncation", float, "Truncation threshold for the latent (the truncation trick): fidelity over "
                 "diversity.", low=0, low_open=True),
)
#: the sampler by default, and the option that picks another one
CHOOSE = {"": "normal", "truncation": "truncated"}
FAMILY = "gan"
