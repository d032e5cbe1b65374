"""Draw the site's favicon and logo: the 8 Gaussians of the ``ring`` dataset, one colour each.

The toolkit draws its own pictures; this one is the ring the GAN tutorials train on
(:func:`gentoolkit.samples.data.ring_modes`), its modes widened so that they show at 16 pixels.
Run it from the repository root to write ``docs/img/favicon.png``::

    python docs/img/favicon.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

SIZE = 128  # pixels; browsers scale it down for the tab
RADIUS = 0.66  # the ring, as a fraction of the half-width
STD = 0.14  # a blob's standard deviation, same units (the dataset's is 0.01 of its radius 1)


def favicon(size: int = SIZE) -> np.ndarray:
    """An RGBA image, transparent outside the blobs: each mode of ``ring`` a Gaussian in its own colour."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import colormaps

    from gentoolkit.samples.data import ring_modes

    modes = ring_modes() * RADIUS
    axis = (np.arange(size) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(axis, -axis)  # y up, as in the tutorials' scatter plots
    hues = colormaps["hsv"]  # a colour wheel: the modes go round the ring as the hues do
    image = np.zeros((size, size, 4))
    for i, (cx, cy) in enumerate(modes):
        alpha = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * STD**2))
        stronger = alpha > image[..., 3]  # where blobs meet, the nearer mode's colour wins
        image[stronger, :3] = hues(i / len(modes))[:3]
        image[stronger, 3] = alpha[stronger]
    image[..., 3] = np.clip(image[..., 3] * 1.6, 0, 1)  # solid cores, soft edges
    return image


def main(out: str | Path = Path(__file__).with_name("favicon.png")) -> None:
    import matplotlib.pyplot as plt

    plt.imsave(out, favicon())
    print(out)


if __name__ == "__main__":
    main(*sys.argv[1:])
