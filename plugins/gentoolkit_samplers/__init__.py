"""Built-in samplers: logit processors for decoding and latent samplers for GANs (numpy only).

The names below load their module on first use, so that loading the plugin (which
``gentool --help`` does) does not import numpy.
"""

_LAZY = {
    "LogitsSampler": "decoding", "greedy": "decoding", "process_logits": "decoding", "softmax": "decoding",
    "LatentSampler": "latent", "lerp": "latent", "slerp": "latent",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
