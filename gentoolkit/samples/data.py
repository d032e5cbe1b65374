"""Sample data: generated Gaussian mixtures, scikit-learn's digits, image folders, .npy/.csv vectors.

Nothing is downloaded. Every loader returns a :class:`Samples`: the array, its
kind, its value range and, for the mixtures, the true modes (for the PacGAN metrics).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gentoolkit.errors import ConfigError, DataError


@dataclass
class Samples:
    x: np.ndarray  # float32: (N, d) vectors or (N, C, H, W) images
    kind: str  # "vectors" or "images"
    name: str
    low: float | None = None  # value range (images)
    high: float | None = None
    modes: np.ndarray | None = None  # (K, d) mixture centres
    mode_std: float | None = None
    labels: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def _mixture(centers: np.ndarray, std: float, n: int, seed: int, name: str) -> Samples:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(centers), size=n)
    x = centers[idx] + std * rng.standard_normal((n, 2))
    return Samples(x.astype(np.float32), "vectors", name, modes=centers.astype(np.float32), mode_std=std, labels=idx)


def ring_modes() -> np.ndarray:
    angles = 2 * np.pi * np.arange(8) / 8
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def grid_modes() -> np.ndarray:
    g = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
    return np.array([(a, b) for a in g for b in g])


def ring(n_samples: int = 50_000, seed: int = 0) -> Samples:
    """8 Gaussians on a circle of radius 1, std 0.01, equal weights (PacGAN's 2D-ring)."""
    return _mixture(ring_modes(), 0.01, n_samples, seed, "ring")


def grid(n_samples: int = 50_000, seed: int = 0) -> Samples:
    """25 Gaussians at {-4,-2,0,2,4}^2, std 0.05, equal weights (PacGAN's 2D-grid)."""
    return _mixture(grid_modes(), 0.05, n_samples, seed, "grid")


def digits(**_) -> Samples:
    """scikit-learn's 1,797 handwritten digits, 8x8, values 0..16 (shipped with the package)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return Samples(d.images[:, None].astype(np.float32), "images", "digits", low=0.0, high=16.0, labels=d.target)


MIN_IMAGES = 16  # fewer pictures than this is no set to learn from
MIN_SIDE = 8  # a picture smaller than this on a side has too few pixels to scale up from
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def _picture(im, size: int, gray: bool):
    """One picture as the set has them: laid on white where transparent, centre-cropped to a square, scaled
    to ``size`` (Lanczos), grayscale or RGB."""
    from PIL import Image

    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        white.alpha_composite(rgba)
        im = white
    im = im.convert("L" if gray else "RGB")
    side = min(im.size)
    left, top = (im.width - side) // 2, (im.height - side) // 2
    return im.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS)


def read_labels(path: Path, files: list[Path]) -> tuple[np.ndarray | None, list[str]]:
    """``labels.csv`` of a picture folder (``file,label``, as ``gentool data`` writes it): a class index per
    picture (classes sorted by name) and the class names; ``(None, [])`` without the file."""
    import csv

    labels_file = path / "labels.csv"
    if not labels_file.is_file():
        return None, []
    try:
        with open(labels_file, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {labels_file}: {exc}") from None
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise DataError(f"{labels_file} needs the columns file and label (as 'gentool data' writes it)")
    by_file = {r["file"]: r["label"] for r in rows}
    names = [str(f.relative_to(path)) for f in files]
    lacking = [n for n in names if n not in by_file]
    if lacking:
        raise DataError(f"{labels_file} has no label for {lacking[0]!r} ({len(lacking)} pictures lack one); "
                        "label every picture, or remove the file")
    classes = sorted({by_file[n] for n in names})
    return np.array([classes.index(by_file[n]) for n in names], dtype=np.int64), classes


def image_folder(path: Path, size: int = 32, channels: int | None = None) -> Samples:
    """Every PNG and JPEG under ``path``, ``size`` pixels square (see :func:`_picture`): grayscale when they
    all are (or ``channels`` is 1), else RGB; labels from ``labels.csv`` where it is there."""
    from PIL import Image

    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not files:
        raise DataError(f"folder {str(path)!r} has no PNG or JPEG images")
    if len(files) < MIN_IMAGES:
        raise DataError(f"folder {str(path)!r} has {len(files)} pictures; a set to learn from needs at least "
                        f"{MIN_IMAGES}")
    opened = []
    for f in files:
        try:
            im = Image.open(f)
            im.load()
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(f"cannot read image {str(f)!r}: {exc}; remove it or replace it") from None
        if min(im.size) < MIN_SIDE:
            raise DataError(f"image {str(f)!r} is {im.width}x{im.height} pixels; pictures need at least "
                            f"{MIN_SIDE} on a side")
        opened.append((f, im))
    gray_files = [f for f, im in opened if im.mode in _GRAY_MODES]
    if channels is None and gray_files and len(gray_files) < len(opened):
        colour = next(f for f, im in opened if im.mode not in _GRAY_MODES)
        raise DataError(f"folder {str(path)!r} mixes grayscale ({len(gray_files)}, e.g. {gray_files[0].name!r}) and "
                        f"colour pictures ({len(opened) - len(gray_files)}, e.g. {colour.name!r}); set "
                        "model.channels=3 to take them all in colour, or 1 for grayscale")
    gray = channels == 1 or (channels is None and len(gray_files) == len(opened))
    arrays = []
    for _, im in opened:
        with im:
            a = np.asarray(_picture(im, size, gray), dtype=np.float32) / 255.0
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    labels, classes = read_labels(path, files)
    return Samples(np.stack(arrays), "images", path.name, low=0.0, high=1.0, labels=labels,
                   extra={"classes": classes} if classes else {})


def vectors_file(path: Path) -> Samples:
    try:
        if path.suffix == ".npy":
            x = np.load(path, allow_pickle=False)
        else:
            x = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DataError(f"cannot read {str(path)!r} as numbers: {exc}") from None
    if x.ndim != 2 or len(x) < 2 or not np.isfinite(x).all():
        raise DataError(f"{str(path)!r} must hold a finite 2-D array (rows x features), got shape {x.shape}")
    return Samples(x.astype(np.float32), "vectors", path.stem)


def fit_images(data: Samples, image_size: int | None, channels: int | None) -> tuple[int, int]:
    """Resize ``data``'s images to ``image_size`` (default: their own size) in place; check size and channels."""
    size = image_size or data.x.shape[-1]
    if size not in (8, 16, 32, 64):
        raise DataError(f"images are {data.x.shape[-1]} pixels; set model.image_size to 8, 16, 32 or 64")
    if data.x.shape[-1] != size:
        import torch
        import torch.nn.functional as F

        data.x = F.interpolate(torch.from_numpy(data.x), size=(size, size), mode="bilinear",
                               align_corners=False).numpy()
    channels = channels or data.x.shape[1]
    if channels != data.x.shape[1]:
        raise ConfigError(f"model.channels={channels} but the images have {data.x.shape[1]} channel(s)")
    return int(size), int(channels)


def load(source: str | None, *, n_samples: int = 50_000, image_size: int | None = None,
         channels: int | None = None) -> Samples:
    """Resolve ``data.path``: a registered dataset, an image folder, or a .npy/.csv file."""
    from gentoolkit.plugin.manager import get_registries
    from gentoolkit.plugin.specs import resolve

    source = source or "ring"
    path = Path(source)
    if path.is_dir():
        return image_folder(path, image_size or 32, channels)
    if path.is_file():
        if path.suffix.lower() not in (".npy", ".csv"):
            raise DataError(f"{source!r}: sample data files must be .npy or .csv (or give an image folder)")
        return vectors_file(path)
    datasets = get_registries().datasets
    if source not in datasets:
        names = ", ".join(s.name for s in datasets if s.kind in ("vectors", "images")) or "none"
        raise DataError(f"--data {source!r} is neither a file, a folder nor a dataset; vector/image datasets: {names}")
    spec = datasets.get(source)
    if spec.kind not in ("vectors", "images"):
        raise DataError(f"dataset {source!r} holds {spec.kind}; these models need vectors or images")
    sized = {"size": image_size} if spec.kind == "images" and image_size else {}
    return resolve(spec.load)(n_samples=n_samples, **sized)
