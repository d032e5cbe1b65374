"""Fidelity and diversity of generated pictures, measured offline: FD and KID in the features of a network the
toolkit trains itself, with precision, recall, density and coverage in the same features.

Inception's weights (FID's features) are not on this machine and nothing may download them, so the
features are a small CNN's, trained here, seeded, on the ``emoji`` picture set (:mod:`.emoji`) to tell
its pictures' Unicode subgroups apart (about 100 classes: faces, hands, animals, food, vehicles, flags,
signs). The distances it gives are **not FID**: they are reported as ``fd`` and ``kid`` in the
``emoji-cnn`` features, comparable with each other (the same network on every machine that trains it
from the same seed and library versions), not with published FID tables.

* **FD** (Fréchet distance): between Gaussians fitted to the two sets of features.
* **KID** (kernel inception distance's estimator, Bińkowski et al. 2018): the unbiased squared MMD under
  the cubic polynomial kernel ``(x·y/d + 1)^3``, averaged over subsets; about 0 for samples of the
  data whatever their number, where FD is biased upward for few samples.
* **precision, recall, density, coverage** (:func:`.metrics.fidelity_diversity`) on the same features.

The trained network is kept in ``~/.cache/gentoolkit/features/`` (``GENTOOLKIT_CACHE`` moves it) as
safetensors, with its accuracy and how it was made in the JSON beside it.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np

from gentoolkit.samples.metrics import fidelity_diversity, frechet_distance

NAME = "emoji-cnn"
VERSION = 1
SIZE = 32  # the network sees 32x32 RGB; other pictures are scaled (and grayscale repeated) to that
EPOCHS = 8
KID_SUBSETS = 50
KID_SUBSET_SIZE = 500


def cache_dir() -> Path:
    root = os.environ.get("GENTOOLKIT_CACHE") or Path.home() / ".cache" / "gentoolkit"
    return Path(root) / "features"


def _net(classes: int):
    import torch.nn as nn

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(*block(3, 24), *block(24, 48), *block(48, 96), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(96, 128), nn.ReLU(), nn.Linear(128, classes))


@functools.lru_cache(maxsize=2)
def feature_net(seed: int = 0):
    """``(network, info)``: the feature network, trained once per seed and kept on disk."""
    from gentoolkit.errors import GentoolError
    from gentoolkit.files import write_json
    from gentoolkit.train.checkpoint import load_weights, save_weights

    folder = cache_dir()
    stem = folder / f"{NAME}-v{VERSION}-seed{seed}"
    weights, meta = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    if weights.is_file() and meta.is_file():
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
            model = _net(int(info["classes"]))
            load_weights(weights, {"": model})
            model.eval()
            return model, info
        except (OSError, ValueError, RuntimeError, KeyError, TypeError, GentoolError):
            pass  # a damaged cache: train again
    model, info = _train(seed)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(weights, {k: v.contiguous() for k, v in model.state_dict().items()})
    write_json(meta, info)
    return model, info


def _train(seed: int):
    import torch
    import torch.nn as nn

    from gentoolkit.samples.emoji import emoji_pictures

    images, emoji = emoji_pictures(SIZE)
    x = torch.tensor(np.stack([np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0 for im in images]))
    classes = sorted({e.subgroup for e in emoji})
    y = torch.tensor([classes.index(e.subgroup) for e in emoji])
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    cut = int(0.85 * len(x))
    tr, te = perm[:cut], perm[cut:]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = _net(len(classes))
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
        steps = EPOCHS * ((len(tr) + 63) // 64)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
        model.train()
        for _ in range(EPOCHS):
            order = tr[torch.randperm(len(tr), generator=g)]
            for i in range(0, len(order), 64):
                b = order[i : i + 64]
                xb = x[b]
                flip = torch.rand(len(b), generator=g) < 0.5  # mirrored, and a little noise: features of the
                xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)  # picture, not of its pixels
                xb = xb + 0.03 * torch.randn(xb.shape, generator=g)
                loss = nn.functional.cross_entropy(model(xb), y[b], label_smoothing=0.1)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(x[te]).argmax(1) == y[te]).float().mean())
    return model, {"name": NAME, "version": VERSION, "seed": seed, "classes": len(classes), "pictures": len(x),
                   "held_out_accuracy": round(acc, 4), "epochs": EPOCHS, "torch": torch.__version__}


def to_network(images: np.ndarray, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Pictures ``(N, C, H, W)`` in ``[low, high]`` as the network takes them: RGB in [0, 1], 32x32."""
    import torch
    import torch.nn.functional as F

    x = (np.asarray(images, dtype=np.float32) - low) / max(high - low, 1e-12)
    t = torch.from_numpy(np.clip(x, 0.0, 1.0))
    if t.shape[1] == 1:
        t = t.repeat(1, 3, 1, 1)
    elif t.shape[1] != 3:
        raise ValueError(f"pictures need 1 or 3 channels, not {t.shape[1]}")
    if t.shape[-1] != SIZE or t.shape[-2] != SIZE:
        t = F.interpolate(t, size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True)
    return t.numpy()


def features(images: np.ndarray, low: float = 0.0, high: float = 1.0, seed: int = 0) -> np.ndarray:
    """The 128 features of each picture (the network's last hidden layer), float64."""
    import torch

    model, _ = feature_net(seed)
    x = torch.from_numpy(to_network(images, low, high))
    out = []
    with torch.no_grad():
        for i in range(0, len(x), 500):
            out.append(model[:-1](x[i : i + 500]))
    return torch.cat(out).double().numpy()


def blurred(images: np.ndarray, sigma: float) -> np.ndarray:
    """``(N, C, H, W)`` pictures under a Gaussian blur of ``sigma`` pixels (separable, edges repeated): the
    damage of growing strength the metrics' known-answer checks score (tests, benchmarks/picture_metrics.py)."""
    k = int(2 * round(3 * sigma) + 1)
    t = np.arange(k) - k // 2
    g = np.exp(-(t**2) / (2 * sigma**2))
    g /= g.sum()
    w, h = images.shape[3], images.shape[2]
    pad = np.pad(images, ((0, 0), (0, 0), (k // 2, k // 2), (k // 2, k // 2)), mode="edge")
    rows = sum(g[i] * pad[:, :, :, i : i + w] for i in range(k))
    return sum(g[i] * rows[:, :, i : i + h, :] for i in range(k)).astype(np.float32)


def kid(a: np.ndarray, b: np.ndarray, subsets: int = KID_SUBSETS, size: int = KID_SUBSET_SIZE, seed: int = 0) -> float:
    """The unbiased squared MMD of two feature sets under ``(x·y/d + 1)^3``, averaged over ``subsets`` random
    subsets of ``size`` rows (fewer where a set is smaller)."""
    rng = np.random.default_rng(seed)
    d = a.shape[1]
    m = min(size, len(a), len(b))
    total = 0.0
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        total += ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
    return float(total / subsets)


def picture_metrics(real: np.ndarray, generated: np.ndarray, *, low: float = 0.0, high: float = 1.0,
                    seed: int = 0) -> dict:
    """``fd``, ``kid``, ``precision``, ``recall``, ``density`` and ``coverage`` of ``generated`` against
    ``real`` pictures (both ``(N, C, H, W)`` in ``[low, high]``), in the ``emoji-cnn`` features."""
    fr, fg = features(real, low, high, seed), features(generated, low, high, seed)
    return {"fd": frechet_distance(fr, fg), "kid": kid(fr, fg), **fidelity_diversity(fr, fg)}
