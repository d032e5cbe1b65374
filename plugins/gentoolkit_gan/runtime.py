"""Torch-free driver for exported GAN generators (numpy + onnxruntime)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class GeneratorModel:
    """An exported generator: ``sample(n, seed, truncation)`` returns samples in the data's layout and range."""

    family = "gan"

    def __init__(self, folder: Path, manifest: dict[str, Any], session):
        self.folder = Path(folder)
        self.manifest = manifest
        rt = manifest["runtime"]
        self.session = session
        self.z_dim = int(rt["z_dim"])
        self.low, self.high = rt.get("low"), rt.get("high")
        self.defaults = dict(manifest.get("sampler_defaults") or {})

    def latents(self, n: int, seed: int | None = None, truncation: float | None = None, sampler: str | None = None,
                sampler_opts=()) -> np.ndarray:
        from gentoolkit.sampling import make_sampler

        if truncation is None:
            truncation = self.defaults.get("truncation")
        s = make_sampler("latent", name=sampler, options={"truncation": truncation}, sampler_opts=sampler_opts)
        return s(n, self.z_dim, np.random.default_rng(seed))

    def generate_from(self, z: np.ndarray, batch: int = 1024) -> np.ndarray:
        z = np.ascontiguousarray(z, dtype=np.float32)
        return np.concatenate([self.session.run(["samples"], {"z": z[i : i + batch]})[0] for i in range(0, len(z), batch)])

    def sample(self, n: int = 1, seed: int | None = None, truncation: float | None = None, **kw) -> np.ndarray:
        """``n`` samples: (n, d) vectors or (n, C, H, W) images."""
        return self.generate_from(self.latents(n, seed, truncation, **kw))

    def save(self, samples: np.ndarray, path: str) -> None:
        """Write samples as a .png grid or scatter, .csv or .npy (matplotlib only for .png)."""
        from .io import save_samples

        save_samples(samples, path, low=self.low, high=self.high)

    def save_png(self, samples: np.ndarray, path: str) -> None:
        self.save(samples, path if path.endswith(".png") else path + ".png")

    def save_csv(self, samples: np.ndarray, path: str) -> None:
        self.save(samples, path if path.endswith(".csv") else path + ".csv")
