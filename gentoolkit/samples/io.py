"""Writing samples (torch-free: the runtime uses it too)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..errors import GentoolError


def default_png(folder: Path | None = None) -> Path:
    """``samples.png`` in ``folder`` (the current one), or the first of ``samples-1.png``, ``samples-2.png``, ...
    that does not exist yet: a default name never replaces a file."""
    folder = Path.cwd() if folder is None else Path(folder)
    path, k = folder / "samples.png", 0
    while path.exists():
        k += 1
        path = folder / f"samples-{k}.png"
    return path


def save_samples(x: np.ndarray, out: str | None, *, low=None, high=None, quiet: bool = False) -> None:
    """Write samples by the extension of ``out`` (.png grid or scatter, .csv, .npy). Without ``out``, vectors
    go to stdout as CSV and images to a PNG grid under a new name (:func:`default_png`).
    ``quiet``: no "wrote" line on stderr."""
    from ..files import atomic_path

    if out is None:
        if x.ndim == 2:
            np.savetxt(sys.stdout, x, delimiter=",", fmt="%.6g")
            return
        out = str(default_png())
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, x, allow_pickle=False)
    elif suffix == ".csv":
        if x.ndim != 2:
            raise GentoolError("CSV holds vectors; write images as .png or .npy")
        with atomic_path(path) as tmp:
            np.savetxt(tmp, x, delimiter=",", fmt="%.6g")
    elif suffix == ".png":
        from ..plots import image_grid, scatter

        if x.ndim == 4:
            image_grid(x, path, low=low if low is not None else 0.0, high=high if high is not None else 1.0)
        elif x.shape[1] >= 2:
            scatter(x, x[:0], path, title=f"{len(x)} samples")
        else:
            raise GentoolError("1-D samples cannot be drawn; write .csv or .npy")
    else:
        raise GentoolError(f"--out {out!r}: use a .png, .csv or .npy file name")
    if not quiet:
        print(f"wrote {path}", file=sys.stderr)
