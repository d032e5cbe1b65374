"""Mode-collapse metrics, measured rather than guessed.

* :func:`mixture_metrics`: the PacGAN protocol for ``ring`` and ``grid``.
* :func:`digits_metrics`: class coverage, class-histogram KL, confidence and a
  Fréchet distance in the feature space of a small classifier the toolkit trains
  on the real digits (it is *not* FID: the features are not Inception's).
* :func:`diversity`: a label-free signal for any data: the mean pairwise distance
  of generated samples over that of real ones (1 = as spread out as the data,
  0 = everything at one point).
* :func:`fidelity_diversity`: fidelity and diversity measured apart, on k-nearest-neighbour
  balls: improved precision and recall (Kynkäänniemi et al. 2019) and density and coverage
  (Naeem et al. 2020), on the points themselves or on a classifier's features.
"""

from __future__ import annotations

import functools
import math

import numpy as np

#: metrics whose value is a percentage, 0 to 100 (so in metrics.jsonl and every --json too): shown with a % sign
PERCENT = frozenset({"high_quality"})


def format_metric(key: str, value) -> str:
    """A metric as ``gentool eval`` and the quickstart print it: a percentage with two decimals and its
    % sign (``high_quality`` 99.80%), any other number with four decimals, None as n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if key in PERCENT:
        return f"{value:.2f}%"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def mixture_metrics(samples: np.ndarray, modes: np.ndarray, std: float) -> dict:
    """PacGAN's protocol: nearest mode; high quality within 3 std; a mode is captured with one such sample.

    ``reverse_kl`` is KL(q || uniform) for the histogram q of high-quality samples
    over the modes; with no high-quality sample it is reported as log(K), the value
    of all mass on one mode. ``mode_spread`` (not in PacGAN's protocol) is what high
    quality cannot see: the RMS distance of the high-quality samples to their mode over
    that of the real data (std * sqrt(dim)); samples of the data itself give about 0.97
    in 2-D (the 3-std cut), samples piled on the centres 0; None without high-quality samples.
    """
    samples = np.asarray(samples, dtype=np.float64)
    d = np.sqrt(((samples[:, None, :] - modes[None, :, :]) ** 2).sum(-1))
    nearest, dist = d.argmin(1), d.min(1)
    hq = dist <= 3 * std
    k = len(modes)
    counts = np.bincount(nearest[hq], minlength=k)
    if counts.sum() == 0:
        rkl = math.log(k)
    else:
        q = counts / counts.sum()
        nz = q > 0
        rkl = float((q[nz] * np.log(q[nz] * k)).sum())
    spread = float(np.sqrt((dist[hq] ** 2).mean()) / (std * math.sqrt(samples.shape[1]))) if hq.any() else None
    return {
        "modes": int((counts > 0).sum()),
        "modes_total": k,
        "high_quality": float(100.0 * hq.mean()),
        "reverse_kl": rkl,
        "mode_spread": spread,
    }


def diversity(generated: np.ndarray, real: np.ndarray, n: int = 500, seed: int = 0) -> float:
    """Mean pairwise distance of generated samples divided by that of real samples."""
    rng = np.random.default_rng(seed)

    def spread(x):
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        x = x[rng.choice(len(x), size=min(n, len(x)), replace=False)]
        sq = (x * x).sum(1)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0)
        m = len(x)
        return np.sqrt(d2).sum() / max(1, m * (m - 1))

    real_spread = spread(real)
    return float(spread(generated) / real_spread) if real_spread > 0 else 0.0


#: neighbours that make a sample's ball, and the most samples of each side compared (both as in
#: Naeem et al. and torch-fidelity: k = 5; the counts bounded so a comparison stays under a second)
PRDC_K = 5
PRDC_SAMPLES = 2500


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq_a, sq_b = (a * a).sum(1), (b * b).sum(1)
    return np.sqrt(np.maximum(sq_a[:, None] + sq_b[None, :] - 2 * a @ b.T, 0))


def _kth_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Each row's distance to its k-th nearest other row."""
    d = _pairwise(x, x)
    return np.partition(d, k, axis=1)[:, k]  # index 0 is the row itself (distance 0)


def fidelity_diversity(real: np.ndarray, generated: np.ndarray, k: int = PRDC_K, n: int = PRDC_SAMPLES,
                       seed: int = 0) -> dict:
    """Precision, recall, density and coverage of ``generated`` against ``real`` (rows are samples or features).

    Each real sample's ball reaches its ``k``-th nearest real neighbour; each generated sample's, its
    ``k``-th nearest generated neighbour. Precision: the share of generated samples inside some real
    ball (fidelity); recall: the share of real samples inside some generated ball (diversity). Density
    counts how many real balls hold each generated sample, over ``k`` (about 1 for samples of the data,
    above 1 where samples pile up where the data is dense); coverage is the share of real balls that
    hold a generated sample (the real samples' neighbourhoods the generator reaches; 1 - 2^-k, about
    0.97, for samples of the data). At most ``n`` of each side take part, drawn with ``seed``.
    """
    rng = np.random.default_rng(seed)

    def take(x):
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        return x[rng.choice(len(x), size=n, replace=False)] if len(x) > n else x

    real, fake = take(real), take(generated)
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision and recall need more than k={k} samples on each side")
    r_real, r_fake = _kth_radius(real, k), _kth_radius(fake, k)
    d = _pairwise(real, fake)  # [real, generated]
    inside_real = d <= r_real[:, None]  # generated j inside real i's ball
    return {
        "precision": float(inside_real.any(0).mean()),
        "recall": float((d <= r_fake[None, :]).any(1).mean()),
        "density": float(inside_real.sum() / (k * len(fake))),
        "coverage": float((d.min(1) < r_real).mean()),
    }


@functools.lru_cache(maxsize=1)
def digits_classifier(seed: int = 0):
    """A small CNN trained on 80% of scikit-learn's digits; returns (model, test accuracy)."""
    import torch
    import torch.nn as nn
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images[:, None] / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    cut = int(0.8 * len(x))
    tr, te = perm[:cut], perm[cut:]
    with torch.random.fork_rng():
        # the initial weights too come from `seed`, not from whatever the process drew before: the
        # same run must get the same class KL from `gentool eval` and from training
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(), nn.Linear(128, 10),
        )
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        for _epoch in range(15):
            order = tr[torch.randperm(len(tr), generator=g)]
            for i in range(0, len(order), 64):
                b = order[i : i + 64]
                xb = x[b] + 0.05 * torch.randn_like(x[b])
                loss = nn.functional.cross_entropy(model(xb), y[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x[te]).argmax(1) == y[te]).float().mean().item()
    return model, acc


def _features_and_probs(model, images: np.ndarray):
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    if x.shape[-1] != 8:
        x = F.interpolate(x, size=(8, 8), mode="area")
    if x.shape[1] == 3:
        x = x.mean(1, keepdim=True)
    feats, logits = [], []
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            h = model[:-1](x[i : i + 1000])
            feats.append(h)
            logits.append(model[-1](h))
    return torch.cat(feats).double().numpy(), torch.softmax(torch.cat(logits), 1).double().numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    import warnings

    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    eye = 1e-6 * np.eye(a.shape[1])  # keeps sqrtm well defined for rank-deficient (collapsed) samples
    s1, s2 = np.cov(a, rowvar=False) + eye, np.cov(b, rowvar=False) + eye
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def digits_metrics(generated: np.ndarray) -> dict:
    """Generated digits in the data's range (0..16), (N, 1, H, W)."""
    from sklearn.datasets import load_digits

    model, acc = digits_classifier()
    gen = np.asarray(generated, dtype=np.float32) / 16.0
    real = load_digits().images[:, None].astype(np.float32) / 16.0
    f_gen, p_gen = _features_and_probs(model, gen)
    f_real, _ = _features_and_probs(model, real)
    hist = np.bincount(p_gen.argmax(1), minlength=10) / len(p_gen)
    nz = hist > 0
    prdc = fidelity_diversity(f_real, f_gen)
    return {
        "classes": int(nz.sum()),
        "classes_total": 10,
        "class_kl": float((hist[nz] * np.log(hist[nz] * 10)).sum()),
        "confidence": float(p_gen.max(1).mean()),
        "classifier_frechet": frechet_distance(f_real, f_gen),
        "classifier_accuracy": float(acc),
        **prdc,
    }
