"""Pictures the toolkit draws itself (matplotlib is imported inside each function)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gentoolkit.files import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)  # each figure sets its own margins: "tight" draws it twice
    fig.clf()
    _plt().close(fig)


#: metrics drawn under the losses when a run logs them: how much of the data the samples reach
SPREAD_KEYS = ("diversity", "recall", "coverage")


def loss_curves(rows: Sequence[dict[str, Any]], path: str | Path, *, title: str = "",
                events: Sequence[tuple[int, str]] = ()) -> None:
    """One line per ``*loss*`` metric in ``metrics.jsonl`` rows, against the step. A run that logs
    ``diversity`` (or recall and coverage) gets a second panel with them, and ``events`` (``(step,
    "alarm" | "recovered")``) are drawn across both panels: red where an alarm was raised, green where
    it cleared."""
    plt = _plt()
    keys = sorted({k for r in rows for k in r if "loss" in k})
    spread = [k for k in SPREAD_KEYS if any(k in r for r in rows)]
    fig, axes = plt.subplots(2 if spread else 1, 1, figsize=(6.4, 6.0 if spread else 4), sharex=True,
                             gridspec_kw={"height_ratios": [3, 2]} if spread else None, squeeze=False)
    ax = axes[0][0]

    def lines(ax, names):
        for key in names:
            pts = [(r["step"], r[key]) for r in rows if key in r and r[key] is not None]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, label=key, marker="o" if len(pts) < 12 else None, markersize=3)

    lines(ax, keys)
    ax.set_ylabel("loss")
    ax.set_title(title)
    if keys:
        ax.legend(fontsize=8)
    if spread:
        low = axes[1][0]
        lines(low, spread)
        low.axhline(1.0, color="#888888", lw=0.8, ls=":")  # the data's own value
        low.set_ylabel("spread (1 = the data)")
        low.legend(fontsize=8, loc="lower right")
    for step, kind in events:
        for a in (row[0] for row in axes):
            a.axvline(step, color="#d62728" if kind == "alarm" else "#2ca02c", lw=0.8, ls="--", alpha=0.7)
    if events:
        axes[0][0].plot([], [], color="#d62728", ls="--", label="alarm")
        axes[0][0].plot([], [], color="#2ca02c", ls="--", label="recovered")
        axes[0][0].legend(fontsize=8)
    for row in axes:
        row[0].grid(alpha=0.3)
    axes[-1][0].set_xlabel("step")
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


def scatter(real, generated, path: str | Path, *, title: str = "", modes=None, limit: float | None = None,
            mode_std: float | None = None) -> None:
    """Generated 2-D points (first two coordinates) over the real ones when given (``real`` may be None or
    empty: samples drawn alone are labelled as generated), with the true modes under the points if known.
    The legend sits below the plot, clear of every mode; with ``mode_std``, a second panel zooms on one
    mode (4 standard deviations each way), so the spread of the samples inside a mode shows."""
    import numpy as np

    plt = _plt()
    generated = np.asarray(generated)
    real = np.asarray(real) if real is not None and len(real) else None
    zoom = modes is not None and mode_std is not None
    fig, axes = plt.subplots(1, 2 if zoom else 1, figsize=(7.4 if zoom else 4.2, 4.6),
                             gridspec_kw={"width_ratios": [1.6, 1]} if zoom else None)
    axes = list(np.atleast_1d(axes))

    def draw(ax, marker_size):
        if modes is not None:  # under the points: a marker never hides a sample
            ax.scatter(modes[:, 0], modes[:, 1], marker="+", s=60, linewidths=0.8, color="black", zorder=1,
                       label="modes")
        if real is not None:
            ax.scatter(real[:, 0], real[:, 1], s=marker_size, alpha=0.3, color="#888888", zorder=2, label="real",
                       edgecolors="none")
        ax.scatter(generated[:, 0], generated[:, 1], s=marker_size, alpha=0.5, color="#d62728", zorder=3,
                   label="generated", edgecolors="none")
        ax.set_aspect("equal")

    draw(axes[0], 3)
    if limit is None:
        ref = real if real is not None else generated
        limit = 1.25 * float(np.abs(ref[:, :2]).max()) if len(ref) else 1.0
    axes[0].set_xlim(-limit, limit)
    axes[0].set_ylim(-limit, limit)
    axes[0].set_title(title, fontsize=9)
    if zoom:
        centre, w = np.asarray(modes[0], dtype=float), 4 * mode_std
        draw(axes[1], 6)
        axes[1].set_xlim(centre[0] - w, centre[0] + w)
        axes[1].set_ylim(centre[1] - w, centre[1] + w)
        axes[1].set_title("one mode, 4 std each way", fontsize=9)
        axes[1].tick_params(labelsize=7)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, markerscale=3, frameon=False)
    fig.subplots_adjust(bottom=0.16)
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
