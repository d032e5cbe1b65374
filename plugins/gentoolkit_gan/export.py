"""ONNX description of the GAN family: the moving-average generator, ``z`` -> ``samples``."""

from __future__ import annotations

import numpy as np
import torch

from gentoolkit.export import ExportPlan
from gentoolkit.train.run import Run

from .sample import load_generator


def plan(run: Run) -> ExportPlan:
    """Registered as the model's ``export`` entry."""
    from gentoolkit.samples.evaluation import measure, reported

    from .task import prepare

    G, tree = load_generator(run)
    z_dim = G.z_dim
    with torch.no_grad():
        probe = G(torch.zeros(2, z_dim))
    sample_shape = list(probe.shape[1:])
    is_image = len(sample_shape) == 3
    rng = np.random.default_rng(0)

    def case(n):
        z = rng.standard_normal((n, z_dim)).astype(np.float32)
        return lambda run_fn: [run_fn({"z": z})]

    def quality(run_fn) -> dict:
        try:
            _, data = prepare(dict(tree))
        except Exception:  # noqa: BLE001 - the data may be gone; quality is then not reported
            return {}
        z = np.random.default_rng(1).standard_normal((2500, z_dim)).astype(np.float32)
        x = np.concatenate([run_fn({"z": z[i : i + 500]})["samples"] for i in range(0, len(z), 500)])
        return reported(measure(data, x))

    low = float(G.low) if hasattr(G, "low") else None
    high = float(G.high) if hasattr(G, "high") else None
    return ExportPlan(
        module=G.eval(),
        inputs=[{"name": "z", "dtype": "float32", "shape": ["batch", z_dim]}],
        outputs=[{"name": "samples", "dtype": "float32", "shape": ["batch", *sample_shape]}],
        example={"z": rng.standard_normal((2, z_dim)).astype(np.float32)},
        cases=[("batch 1", case(1)), ("batch 3", case(3)), ("batch 64", case(64))],
        runtime={
            "kind": "generator",
            "z_dim": z_dim,
            "sample_shape": sample_shape,
            "layout": "NCHW" if is_image else "NC",
            "low": low,
            "high": high,
            "data": tree["data"].path,
        },
        sampler_defaults={k: v for k, v in run.config.get("sampler", {}).items() if v is not None},
        quality=quality,
        fp32_scopes=("/latent_class/",),  # frac(1024 * z[0]) needs float32: fp16 would pick other classes
    )
