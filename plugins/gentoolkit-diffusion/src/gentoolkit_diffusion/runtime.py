"""Torch-free driver for exported ``ddpm`` denoisers: the sampling loop in numpy around onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class DiffusionModel:
    """An exported denoiser: ``sample(n, seed, steps, sampler, eta)`` returns samples in the data's layout and range."""

    family = "diffusion"

    def __init__(self, folder: Path, manifest: dict[str, Any], session):
        self.folder = Path(folder)
        self.manifest = manifest
        rt = manifest["runtime"]
        self.session = session
        self.shape = tuple(int(d) for d in rt["sample_shape"])
        self.alphas_cumprod = np.asarray(rt["alphas_cumprod"], dtype=np.float64)
        self.clip = (np.asarray(rt["clip_low"], np.float32), np.asarray(rt["clip_high"], np.float32))
        self.shift = np.asarray(rt["shift"], np.float32)
        self.scale = np.asarray(rt["scale"], np.float32)
        self.low, self.high = rt.get("low"), rt.get("high")
        self.defaults = dict(manifest.get("sampler_defaults") or {})

    def denoise(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Predicted noise in ``x`` at timesteps ``t`` (one ONNX pass)."""
        return self.session.run(["out_sample"], {"sample": x, "timestep": t})[0]

    def sampler(self, sampler: str | None = None, sampler_opts=(), **options):
        """The sampler the options pick (``steps``, ``eta``); the export's defaults fill the rest."""
        from gentoolkit.plugin.options import resolve_sampling

        from .options import CHOOSE, DIFFUSION_OPTIONS, FAMILY

        s, _ = resolve_sampling("diffusion", declared=DIFFUSION_OPTIONS, choose=CHOOSE, given=options, family=FAMILY,
                                defaults=self.defaults, sampler=sampler, sampler_opts=sampler_opts)
        return s

    def sample(self, n: int = 1, seed: int | None = None, sampler: str | None = None, sampler_opts=(),
               **options) -> np.ndarray:
        """``n`` samples: (n, d) vectors or (n, C, H, W) images.

        ``sampler`` is ``ddpm`` (ancestral) or ``ddim`` (deterministic); the default is the
        run's. ``steps`` is how many denoising passes (default: every timestep for ddpm,
        50 for ddim); ``eta`` is DDIM's noise (0 = deterministic).
        """
        from .samplers import draw

        s = self.sampler(sampler, sampler_opts, **options)
        return draw(self.denoise, s, n, self.shape, self.alphas_cumprod, seed, clip=self.clip, shift=self.shift,
                    scale=self.scale)

    def cli_sample(self, *, n: int, seed, out, sampler, sampler_opts, as_json: bool = False, **options) -> None:
        """``gentool sample EXPORT``: the samples written to ``out`` (vectors: CSV on stdout without it; images:
        a new ``samples.png``); ``as_json``: one JSON object naming the file."""
        from gentoolkit.samples.io import write_samples

        x = self.sample(n, seed, sampler=sampler, sampler_opts=sampler_opts, **options)
        write_samples(x, out, as_json=as_json, low=self.low, high=self.high)

    def save(self, samples: np.ndarray, path: str) -> Path | None:
        """Write samples as a .png grid or scatter, .csv or .npy (matplotlib only for .png); returns the file
        written (None: CSV on stdout, for ``path`` None). Prints nothing: saying what was written is the caller's."""
        from gentoolkit.samples.io import save_samples

        return save_samples(samples, path, low=self.low, high=self.high, quiet=True)
