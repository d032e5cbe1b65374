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
        from gentoolkit.plugin.options import resolve_sampling

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

    def evaluate(self, data: str | None = None, seed: int = 0) -> dict:
        """``gentool eval EXPORT``: what ``gentool eval RUN`` reports for the run it came from, through
        onnxruntime: :func:`gentoolkit.samples.evaluation.measure` on 2,500 samples (10,000 of ``digits``) of
        standard normal latents drawn with ``seed``, against the run's data, or ``data`` (a dataset name, a
        .npy or .csv file, an image folder). ``digits``' classifier needs PyTorch; the rest is numpy."""
        from gentoolkit.errors import GentoolError
        from gentoolkit.samples.data import fit_images, load
        from gentoolkit.samples.evaluation import measure

        from .latent import LatentSampler

        config = self.manifest.get("config") if isinstance(self.manifest.get("config"), dict) else {}
        dcfg = config.get("data") if isinstance(config.get("data"), dict) else {}
        shape = next(e["shape"] for e in self.manifest["io"]["outputs"] if e["name"] == "samples")[1:]
        images = len(shape) == 3
        samples = load(data if data is not None else dcfg.get("path"), n_samples=int(dcfg.get("n_samples") or 50_000),
                       image_size=shape[-1] if images else None, channels=shape[0] if images else None)
        makes = "images" if images else "vectors"
        if samples.kind != makes:
            raise GentoolError(f"{samples.name!r} holds {samples.kind}, but this generator makes {makes}; "
                               f"evaluate it on {makes}")
        if images:
            fit_images(samples, shape[-1], shape[0])
        elif samples.x.shape[1] != shape[0]:
            raise GentoolError(f"{samples.name!r} holds {samples.x.shape[1]}-D vectors, but this generator makes "
                               f"{shape[0]}-D ones; evaluate it on data of its own kind")
        n = 10_000 if samples.name == "digits" else 2_500
        x = self.generate_from(LatentSampler("normal")(n, self.z_dim, np.random.default_rng(seed)))
        return {"data": samples.name, "samples": n, **measure(samples, x)}

    def save(self, samples: np.ndarray, path: str | None) -> Path | None:
        """Write samples as a .png grid or scatter, .csv or .npy (matplotlib only for .png); returns the file
        written (None: CSV on stdout, for ``path`` None). Prints nothing: saying what was written is the caller's."""
        from gentoolkit.samples.io import save_samples

        return save_samples(samples, path, low=self.low, high=self.high, quiet=True)
