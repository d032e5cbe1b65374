"""Draw ``docs/img/emoji-32.png``: 96 pictures of the ``emoji`` set at 32 px, as ``gentool data emoji`` writes them.

The toolkit draws its own pictures: this is the set itself (:mod:`gentoolkit.samples.emoji`), 96 of its
pictures drawn at random with a fixed seed, through the grid ``gentool sample`` writes
(:func:`gentoolkit.plots.image_grid`). Run it from the repository root::

    python docs/img/emoji.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gentoolkit.plots import image_grid
from gentoolkit.samples.emoji import load

if __name__ == "__main__":
    s = load(size=32)
    pick = np.random.default_rng(0).choice(len(s.x), size=96, replace=False)
    out = Path(__file__).with_name("emoji-32.png")
    image_grid(s.x[pick], out, nrow=16, title="")
    print(f"wrote {out}")
