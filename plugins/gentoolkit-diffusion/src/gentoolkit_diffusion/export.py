"""ONNX description of ``ddpm``: the moving-average denoiser, (``sample``, ``timestep``) -> ``out_sample``.

The names follow Hugging Face optimum's export of diffusers' U-Nets. The sampling
loop is not in the graph: the runtime driver runs it in numpy, with the schedule
written into the manifest.
"""

from __future__ import annotations

import numpy as np

from gentoolkit.export import ExportPlan
from gentoolkit.train.run import Run

from .sample import load_denoiser, value_range
from .schedule import alphas_cumprod
from .torch_sampling import clip_range, sample_shape


def plan(run: Run) -> ExportPlan:
    """Registered as the model's ``export`` entry."""
    model, tree = load_denoiser(run)
    cfg = tree["model"]
    shape = list(sample_shape(cfg))
    rng = np.random.default_rng(0)

    def feeds(n):
        return {"sample": rng.standard_normal((n, *shape)).astype(np.float32),
                "timestep": rng.integers(0, cfg.timesteps, size=n).astype(np.int64)}

    def case(n):
        f = feeds(n)
        return lambda run_fn: [run_fn(f)]

    edge = feeds(4)  # the smallest and largest timesteps, where precision matters most
    edge["timestep"] = np.array([0, 1, cfg.timesteps - 2, cfg.timesteps - 1], dtype=np.int64)

    from .samplers import describe, evaluation_sampler

    sampler = evaluation_sampler(tree["train"])

    def quality(run_fn) -> dict:
        from gentoolkit.samples.evaluation import measure, reported

        from .samplers import draw
        from .task import prepare

        try:
            data = prepare(dict(tree))
        except Exception:  # noqa: BLE001 - the data may be gone; quality is then not reported
            return {}
        ac = alphas_cumprod(cfg.schedule, cfg.timesteps, cfg.beta_start, cfg.beta_end)
        x = draw(lambda x, t: run_fn({"sample": x, "timestep": t})["out_sample"], sampler, 2500,
                 tuple(shape), ac, 1, clip=clip_range(model),
                 shift=model.shift.numpy(), scale=model.scale.numpy())
        return reported(measure(data, x))

    quality.measured_on = f"2,500 samples, {describe(sampler, cfg.timesteps)}, as training and gentool eval draw them"
    low, high = value_range(model, cfg)
    ac = alphas_cumprod(cfg.schedule, cfg.timesteps, cfg.beta_start, cfg.beta_end)
    return ExportPlan(
        module=model.eval(),
        inputs=[{"name": "sample", "dtype": "float32", "shape": ["batch", *shape]},
                {"name": "timestep", "dtype": "int64", "shape": ["batch"]}],
        outputs=[{"name": "out_sample", "dtype": "float32", "shape": ["batch", *shape]}],
        example=feeds(2),
        cases=[("batch 1", case(1)), ("batch 3", case(3)), ("batch 64", case(64)), ("first and last timesteps", lambda run_fn: [run_fn(edge)])],
        runtime={
            "kind": "denoiser",
            "prediction": "epsilon",
            "sample_shape": shape,
            "layout": "NCHW" if cfg.image_size else "NC",
            "timesteps": cfg.timesteps,
            "schedule": cfg.schedule,
            "alphas_cumprod": [float(a) for a in ac],
            "clip_low": np.asarray(model.low).tolist(),
            "clip_high": np.asarray(model.high).tolist(),
            "shift": np.asarray(model.shift).tolist(),
            "scale": np.asarray(model.scale).tolist(),
            "low": low,
            "high": high,
            "data": tree["data"].path,
        },
        sampler_defaults={k: v for k, v in run.config.get("sampler", {}).items() if v is not None},
        quality=quality,
    )
