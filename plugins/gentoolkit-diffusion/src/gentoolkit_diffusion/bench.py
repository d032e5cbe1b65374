"""``gentool bench`` rows for ``ddpm``: one 2-D sample, DDPM over every step and DDIM in 50, PyTorch and runtime.

The denoiser is the default ``ddpm`` for 2-D points with random weights (speed does not
depend on training).
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def one_sample(repeat: int = 5) -> dict:
    """Registered as the model's ``bench`` entry."""
    import torch

    from gentoolkit import get_model
    from gentoolkit.cli.bench import timed_together
    from gentoolkit.config import build as build_config
    from gentoolkit.config import to_dict
    from gentoolkit.export import export
    from gentoolkit.runtime import load
    from gentoolkit.train.checkpoint import save_run_weights as save_weights
    from gentoolkit.train.run import Run

    from .models import build
    from .samplers import draw, make_ddim, make_ddpm
    from .schedule import alphas_cumprod

    spec = get_model("ddpm")
    tree = build_config(spec.config_sections, sets=["model.data_dim=2"])
    cfg = tree["model"]
    torch.manual_seed(0)
    model = build(cfg).eval()
    ac = alphas_cumprod(cfg.schedule, cfg.timesteps, cfg.beta_start, cfg.beta_end)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        run = Run(run_dir)
        run.write_config({"model": "ddpm", "family": "diffusion", "plugin": spec.plugin, "config": to_dict(tree)})
        save_weights(run, {"ema": model, "model": model})
        export(run_dir, Path(tmp) / "export", log=lambda m: None)
        rt = load(Path(tmp) / "export")

        @torch.no_grad()
        def eager(x, t):
            return model(torch.from_numpy(x), torch.from_numpy(t)).numpy()

        for sampler, label, passes in ((make_ddpm(), "ddpm", cfg.timesteps), (make_ddim(50), "ddim", 50)):
            cases = [(f"{backend}, {label} {passes} steps, batch 1",
                      lambda denoise=denoise, sampler=sampler: draw(denoise, sampler, 1, (2,), ac, 0))
                     for backend, denoise in (("PyTorch eager", eager), ("gentoolkit.runtime", rt.denoise))]
            for name, seconds in timed_together(cases, max(1, repeat // (5 if label == "ddpm" else 1))).items():
                rows.append({"backend": name, "ms_per_sample": 1000 * seconds, "passes": passes,
                             "what": f"ddpm, one 2-D point, {label} {passes} steps",
                             "headline": name.startswith("gentoolkit.runtime")})
    return {"title": "Diffusion (default ddpm for 2-D points), one sample", "rows": rows}
