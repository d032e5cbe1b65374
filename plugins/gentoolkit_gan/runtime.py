"""Torch-free driver for exported GAN generators (numpy + onnxruntime)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class GeneratorModel:
    """An exported generator: ``sample(n, seed, truncation)`` returns samples in the data's layout and range."""

    family = "gan"

    def __init__(self, folder: Path, manifest: dict[str, Any], session):
        from gentoolkit.errors import GentoolError
        from gentoolkit.runtime import runtime_fields

        self.folder = Path(folder)
        self.manifest = manifest
        rt = runtime_fields(manifest, {"z_dim": int, "low": (float, None), "high": (float, None)}, self.folder)
        z = next((e["shape"] for e in manifest["io"]["inputs"] if e["name"] == "z"), None)
        if z is None or len(z) != 2 or z[1] != rt["z_dim"]:
            raise GentoolError(f"{self.folder}: the manifest's runtime.z_dim {rt['z_dim']} contradicts the graph's "
                               f"input z {z}; export the run again")
        self.session = session
        self.z_dim = rt["z_dim"]
        self.low, self.high = rt["low"], rt["high"]
        self.defaults = dict(manifest.get("sampler_defaults") or {})

    def latents(self, n: int, seed: int | None = None, sampler: str | None = None, sampler_opts=(),
                **options) -> np.ndarray:
        """``n`` latents from the sampler the options pick (``truncation``; the export's defaults fill the rest)."""
        from gentoolkit.sampling import resolve_sampling

        from .options import CHOOSE, FAMILY, LATENT_OPTIONS

        s, _ = resolve_sampling("latent", declared=LATENT_OPTIONS, choose=CHOOSE, given=options, family=FAMILY,
                                defaults=self.defaults, sampler=sampler, sampler_opts=sampler_opts)
        return s(n, self.z_dim, np.random.default_rng(seed))

    def generate_from(self, z: np.ndarray, batch: int = 1024) -> np.ndarray:
        z = np.ascontiguousarray(z, dtype=np.float32)
        return np.concatenate([self.session.run(["samples"], {"z": z[i : i + batch]})[0] for i in range(0, len(z), batch)])

    def sample(self, n: int = 1, seed: int | None = None, **options) -> np.ndarray:
        """``n`` samples: (n, d) vectors or (n, C, H, W) images. ``options``: ``truncation``, ``sampler``,
        ``sampler_opts``."""
        return self.generate_from(self.latents(n, seed, **options))

    def cli_sample(self, *, n: int, seed, out, sampler, sampler_opts, as_json: bool = False, **options) -> None:
        """``gentool sample EXPORT``: the samples written to ``out`` (vectors: CSV on stdout without it; images:
        a new ``samples.png``); ``as_json``: one JSON object naming the file."""
        from gentoolkit.samples.io import write_samples

        x = self.sample(n, seed, sampler=sampler, sampler_opts=sampler_opts, **options)
        write_samples(x, out, as_json=as_json, low=self.low, high=self.high)

    def save(self, samples: np.ndarray, path: str | None) -> None:
        """Write samples as a .png grid or scatter, .csv or .npy (matplotlib only for .png)."""
        from gentoolkit.samples.io import save_samples

        save_samples(samples, path, low=self.low, high=self.high)
