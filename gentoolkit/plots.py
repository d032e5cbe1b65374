"""Pictures the toolkit draws itself (matplotlib is imported inside each function)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .files import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    fig.clf()
    _plt().close(fig)


def loss_curves(rows: Sequence[dict[str, Any]], path: str | Path, *, title: str = "") -> None:
    """One line per ``*loss*`` metric in ``metrics.jsonl`` rows, against the step."""
    plt = _plt()
    keys = sorted({k for r in rows for k in r if "loss" in k})
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for key in keys:
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, label=key, marker="o" if len(pts) < 12 else None, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if keys:
        ax.legend()
    _save(fig, path)


def distributions(panels: Sequence[tuple[str, Any]], labels: Sequence[str], path: str | Path, *, title: str = "") -> None:
    """Bar charts of next-token probabilities, one panel per sampler setting (same tokens on each)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), sharey=True)
    axes = list(axes) if len(panels) > 1 else [axes]
    for ax, (name, probs) in zip(axes, panels):
        ax.bar(range(len(labels)), probs, color="#4c72b0")
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=90, fontsize=7)
        ax.set_title(name, fontsize=9)
    axes[0].set_ylabel("probability")
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)


def scatter(real, generated, path: str | Path, *, title: str = "", modes=None, limit: float | None = None) -> None:
    """Real against generated 2-D points (first two coordinates), with the true modes if known."""
    import numpy as np

    plt = _plt()
    real, generated = np.asarray(real), np.asarray(generated)
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.scatter(real[:, 0], real[:, 1], s=2, alpha=0.3, color="#888888", label="real")
    ax.scatter(generated[:, 0], generated[:, 1], s=2, alpha=0.5, color="#d62728", label="generated")
    if modes is not None:
        ax.scatter(modes[:, 0], modes[:, 1], marker="x", s=25, color="black", label="modes")
    if limit is None:
        limit = 1.25 * float(np.abs(real[:, :2]).max())
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7, markerscale=3)
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def image_grid(images, path: str | Path, *, low: float = 0.0, high: float = 1.0, nrow: int | None = None,
               title: str = "") -> None:
    """A grid of (N, C, H, W) images with values in [low, high]."""
    import numpy as np

    plt = _plt()
    x = np.clip((np.asarray(images, dtype=np.float32) - low) / max(high - low, 1e-8), 0, 1)
    n, c, h, w = x.shape
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    ncol = int(np.ceil(n / nrow))
    canvas = np.ones((ncol * (h + 1) + 1, nrow * (w + 1) + 1, c), dtype=np.float32)
    for i in range(n):
        r, q = divmod(i, nrow)
        canvas[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + q * (w + 1) : 1 + q * (w + 1) + w] = x[i].transpose(1, 2, 0)
    fig, ax = plt.subplots(figsize=(0.5 * nrow + 1, 0.5 * ncol + 1))
    ax.imshow(canvas[..., 0] if c == 1 else canvas, cmap="gray" if c == 1 else None, vmin=0, vmax=1,
              interpolation="nearest")
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    _save(fig, path)
