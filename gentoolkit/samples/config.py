"""The ``[data]`` section of families that learn from points or images (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class DataConfig:
    """Where the samples come from: a registered dataset (``ring``, ``grid``, ``digits``), an image folder,
    or a .npy/.csv file of vectors."""

    path: Optional[str] = "ring"
    n_samples: int = 50_000  # points drawn for the generated mixtures (ring, grid)

    def __post_init__(self):
        if self.n_samples < 16:
            raise ValueError("data.n_samples must be >= 16")
