"""Writing samples (torch-free: the runtime uses it too)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from gentoolkit.errors import GentoolError


def default_path(suffix: str = ".png", folder: Path | None = None) -> Path:
    """``samples.png`` (or another ``suffix``) in ``folder`` (the current one), or the first of
    ``samples-1.png``, ``samples-2.png``, ... that does not exist yet: a default name never replaces a file."""
    folder = Path.cwd() if folder is None else Path(folder)
    path, k = folder / f"samples{suffix}", 0
    while path.exists():
        k += 1
        path = folder / f"samples-{k}{suffix}"
    return path


def write_samples(x: np.ndarray, out: str | None, *, as_json: bool = False, low=None, high=None) -> np.ndarray:
    """What ``gentool sample`` does with a family's array of samples: :func:`save_samples`; with ``as_json``
    (``--json``), a file in any case (a new ``samples.png`` or ``samples.npy`` without ``out``) and one
    JSON object on stdout: ``{"path", "shape", "dtype"}``."""
    import json

    if as_json and out is None:
        out = str(default_path(".png" if x.ndim == 4 else ".npy"))
    path = save_samples(x, out, low=low, high=high, quiet=as_json)
    if as_json:
        print(json.dumps({"path": str(path), "shape": list(x.shape), "dtype": str(x.dtype)}))
    return x


def save_samples(x: np.ndarray, out: str | None, *, low=None, high=None, quiet: bool = False) -> Path | None:
    """Write samples by the extension of ``out`` (.png grid or scatter, .csv, .npy). Without ``out``, vectors
    go to stdout as CSV and images to a PNG grid under a new name (:func:`default_path`).
    ``quiet``: no "wrote" line on stderr. Returns the file written (None for stdout)."""
    from gentoolkit.files import atomic_path

    if out is None:
        if x.ndim == 2:
            np.savetxt(sys.stdout, x, delimiter=",", fmt="%.6g")
            return None
        out = str(default_path())
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
        from gentoolkit.plots import image_grid, scatter

        if x.ndim == 4:
            image_grid(x, path, low=low if low is not None else 0.0, high=high if high is not None else 1.0)
        elif x.shape[1] >= 2:
            scatter(None, x, path, title=f"{len(x)} generated samples")
        else:
            raise GentoolError("1-D samples cannot be drawn; write .csv or .npy")
    else:
        raise GentoolError(f"--out {out!r}: use a .png, .csv or .npy file name")
    if not quiet:
        print(f"wrote {path}", file=sys.stderr)
    return path


LABELS = "labels.csv"


def write_picture_folder(samples, out: Path, size: int) -> int:
    """A picture set as a new folder, made whole or not at all: ``00000.png``, ... (8-bit, ``size`` square,
    grayscale or RGB as the data is) and, where the pictures have labels, ``labels.csv`` (``file,label`` and,
    where known, ``name`` and ``code_points``), which the image-folder loader reads back. Returns the count."""
    import csv
    import io

    from PIL import Image

    from gentoolkit.files import atomic_dir

    x = np.asarray(samples.x, dtype=np.float32)
    low = samples.low if samples.low is not None else float(x.min())
    high = samples.high if samples.high is not None else float(x.max())
    pixels = np.clip(np.rint((x - low) / max(high - low, 1e-12) * 255.0), 0, 255).astype(np.uint8)
    classes = samples.extra.get("classes")
    names = samples.extra.get("names")
    codes = samples.extra.get("sequences")
    with atomic_dir(out) as tmp:
        rows = []
        for i, a in enumerate(pixels):
            im = Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))
            if im.size != (size, size):
                im = im.resize((size, size), Image.LANCZOS)
            name = f"{i:05d}.png"
            im.save(tmp / name)
            if samples.labels is not None:
                label = samples.labels[i]
                row = {"file": name, "label": classes[int(label)] if classes else str(int(label))}
                if names:
                    row["name"] = names[i]
                if codes:
                    row["code_points"] = codes[i]
                rows.append(row)
        if rows:
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            (tmp / LABELS).write_text(buf.getvalue(), encoding="utf-8")
    return len(pixels)
