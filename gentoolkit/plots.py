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
