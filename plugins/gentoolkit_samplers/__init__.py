"""Built-in samplers: logit processors for decoding and latent samplers for GANs (numpy only)."""

from .decoding import LogitsSampler, greedy, process_logits, softmax
from .latent import LatentSampler, lerp, slerp

__all__ = ["LogitsSampler", "greedy", "process_logits", "softmax", "LatentSampler", "lerp", "slerp"]
