"""Entry point of the built-in samplers (``gentoolkit`` group, name ``samplers``)."""

from gentoolkit import SamplerSpec, hookimpl

_DECODE_OPTIONS = {
    "temperature": float,
    "top_k": int,
    "top_p": float,
    "min_p": float,
    "repetition_penalty": float,
}


@hookimpl
def register_samplers(register):
    register(
        SamplerSpec(
            name="sample",
            kind="logits",
            description="Draw from the distribution after repetition penalty, temperature, top-k, top-p, min-p.",
            factory="gentoolkit_samplers.decoding:make_sampler",
            options=_DECODE_OPTIONS,
            aliases=("multinomial",),
        )
    )
    register(
        SamplerSpec(
            name="greedy",
            kind="logits",
            description="Always the most likely token (after the repetition penalty).",
            factory="gentoolkit_samplers.decoding:make_greedy",
            options={"repetition_penalty": float},
        )
    )
    register(
        SamplerSpec(
            name="normal",
            kind="latent",
            description="Standard normal latents.",
            factory="gentoolkit_samplers.latent:make_normal",
        )
    )
    register(
        SamplerSpec(
            name="uniform",
            kind="latent",
            description="Uniform latents on [-1, 1].",
            factory="gentoolkit_samplers.latent:make_uniform",
        )
    )
    register(
        SamplerSpec(
            name="truncated",
            kind="latent",
            description="Truncated normal latents (the truncation trick), threshold 'truncation'.",
            factory="gentoolkit_samplers.latent:make_truncated",
            options={"truncation": float},
        )
    )
