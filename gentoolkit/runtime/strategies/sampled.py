"""Decoding with a sampler that draws (or looks back): the sampler once per active row, each row its own generator."""

from __future__ import annotations

import numpy as np


def row_generators(seed: int | None, n: int) -> list[np.random.Generator]:
    """Row ``i`` draws from ``SeedSequence([seed, i])``, so its tokens do not depend on the other rows."""
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % 2**63)
    return [row_generator(seed, i) for i in range(n)]


def row_generator(seed: int, i: int) -> np.random.Generator:
    """The generator of row ``i`` under ``seed`` (a server's choice ``i`` of a request draws from it too)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), i]))


def sampled(sampler, n: int, pad_id: int | None, seed: int | None):
    """The strategy: ``sampler(row logits, row history, row generator)`` for every active row."""
    rngs = row_generators(seed, n)

    def choose(logits: np.ndarray, active: list[int], history: np.ndarray, lengths: list[int], step: int) -> np.ndarray:
        if pad_id is not None:
            logits[:, pad_id] = -np.inf  # the decoder's own array: the loop may write to it
        if n == 1:
            return np.array([sampler(logits[0], history[0, : lengths[0]], rngs[0])], dtype=np.int64)
        new = np.full(n, -1, dtype=np.int64)
        for i in active:
            new[i] = sampler(logits[i], history[i, : lengths[i]], rngs[i])
        return new

    choose.needs_history = bool(sampler.needs_history)
    return choose
