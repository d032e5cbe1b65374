"""Greedy decoding for an ``argmax_only`` sampler: every row's argmax in one numpy call."""

from __future__ import annotations

import math

import numpy as np

from . import broken_logits


def argmax(n: int, pad_id: int | None):
    """The strategy: the most likely token of every active row, padding excluded (lowest id on ties).

    ``argmax`` stops at the first NaN, so the chosen value is finite only if the row was
    usable: one look at the chosen logits rules out a broken model. Padding is never a real
    token, so it is ruled out afterwards, for the rare row that picked it, rather than written
    into every row first: on a short row each numpy call costs more than its arithmetic. A
    closure, not a class: the loop calls it every step.
    """
    rows = np.arange(n)
    isfinite = math.isfinite

    def some_rows(logits, active):
        if pad_id is not None:
            logits[:, pad_id] = -np.inf
        new = np.full(n, -1, dtype=np.int64)
        for i in active:
            new[i] = logits[i].argmax()
        return new

    def choose(logits: np.ndarray, active: list[int], history, lengths, step: int) -> np.ndarray:
        if len(active) < n:  # some rows have stopped
            new = some_rows(logits, active)
            bad = not all(isfinite(logits[i, new[i]]) for i in active)
        else:
            new = logits.argmax(-1)
            if n == 1:
                t = int(new[0])
                if t == pad_id:
                    logits[0, pad_id] = -np.inf
                    t = new[0] = int(logits[0].argmax())
                bad = not isfinite(logits.item(t))
            else:
                for i in np.flatnonzero(new == pad_id):
                    logits[i, pad_id] = -np.inf
                    new[i] = logits[i].argmax()
                bad = not np.isfinite(logits[rows, new]).all()
        if bad:
            raise broken_logits(step)
        return new

    choose.needs_history = False
    return choose
