"""The GAN family's decode options, declared once (torch-free: the CLI reads it for its flags).

``gentool sample``'s flags, ``gentool serve``'s ``/v1/samples`` fields and the latent samplers'
arguments all come from :class:`LatentOptions`.
"""

from __future__ import annotations

from dataclasses import dataclass

from gentoolkit.plugin.options import option, sample_options


@dataclass(frozen=True)
class LatentOptions:
    """How a generator draws its latents."""

    truncation: float | None = option("Truncation threshold for the latent (the truncation trick): fidelity over "
                                      "diversity.", low=0, low_open=True)


LATENT_OPTIONS = sample_options(LatentOptions)
#: the sampler by default, and the option that picks another one
CHOOSE = {"": "normal", "truncation": "truncated"}
FAMILY = "gan"
