"""``gentool bench`` rows for the GAN family: one sample of the default ``gan`` generator, PyTorch against the runtime."""

from __future__ import annotations

import tempfile
from pathlib import Path


def bench(repeat: int = 5) -> dict:
    """Registered as ``gan``'s ``bench`` entry (it times 40 times ``repeat`` samples: one is short)."""
    import torch

    from gentoolkit.cli.bench import timed_together
    from gentoolkit.config import build as build_config
    from gentoolkit.config import to_dict
    from gentoolkit.export import export
    from gentoolkit.plugin.manager import get_model
    from gentoolkit.runtime import load
    from gentoolkit.train.checkpoint import save_run_weights as save_weights
    from gentoolkit.train.run import Run

    from .models import build

    spec = get_model("gan")
    tree = build_config(spec.config_sections, sets=["model.data_dim=2"])
    torch.manual_seed(0)
    G, D = build(tree["model"])
    G_ema = G.eval()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        Run(run_dir).write_config({"model": "gan", "family": "gan", "plugin": spec.plugin, "config": to_dict(tree)})
        save_weights(Run(run_dir), {"G_ema": G_ema, "G": G, "D": D})
        export(run_dir, Path(tmp) / "export", log=lambda m: None)
        gan = load(Path(tmp) / "export")
        z = gan.latents(1, seed=0)
        zt = torch.from_numpy(z)

        @torch.no_grad()
        def eager():
            return G_ema(zt).numpy()

        cases = [("PyTorch eager, batch 1", eager), ("gentoolkit.runtime, batch 1", lambda: gan.generate_from(z))]
        for name, seconds in timed_together(cases, 40 * repeat).items():
            rows.append({"backend": name, "ms_per_sample": 1000 * seconds, "samples_per_s": 1 / seconds})
            if name.startswith("gentoolkit.runtime"):
                rows[-1].update(headline=True, what="gan, one 2-D point", passes=1)
    return {"title": "GAN generator (default gan), one sample", "rows": rows}


