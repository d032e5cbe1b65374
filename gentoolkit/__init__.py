"""gentoolkit: train small generative models and ship them as ONNX.

Plugins import what they need from here and never import pluggy themselves::

    from gentoolkit import hookimpl, ModelSpec
"""

from __future__ import annotations

__version__ = "0.1.0"

from gentoolkit.errors import GentoolError  # noqa: E402
from gentoolkit.plugin.hookspecs import hookimpl  # noqa: E402
from gentoolkit.plugin.manager import get_dataset, get_loss, get_model, get_registries, get_sampler  # noqa: E402
from gentoolkit.plugin.specs import (  # noqa: E402
    DatasetSpec,
    InitSpec,
    Interop,
    LossSpec,
    ModelSpec,
    RuntimeSpec,
    SamplerSpec,
    Tools,
)

__all__ = [
    "__version__",
    "hookimpl",
    "GentoolError",
    "ModelSpec",
    "InitSpec",
    "Interop",
    "Tools",
    "SamplerSpec",
    "LossSpec",
    "DatasetSpec",
    "RuntimeSpec",
    "get_model",
    "get_sampler",
    "get_loss",
    "get_dataset",
    "get_registries",
]
