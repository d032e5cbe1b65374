"""Pictures the toolkit draws itself (matplotlib is imported inside each function)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

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
