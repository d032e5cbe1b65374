"""The autoregressive family's samplers: logit processors and a seeded draw for one row, in numpy.

They keep the contract of :mod:`gentoolkit_autoregressive.decode`: ``sampler(logits, history,
rng) -> token`` for one row, with ``argmax_only`` and ``needs_history``. The processors compose
in the order Hugging Face's ``generate`` uses: repetition penalty -> temperature -> top-k ->
top-p -> min-p, then either the argmax (greedy) or one draw from the resulting distribution.
Excluded tokens get ``-inf``. The draw is an inverse-CDF draw in float64 from the row's own
``numpy.random.Generator``, so the same seed gives the same tokens whatever produced the logits
(PyTorch or onnxruntime) and on every platform.

Edge cases, defined:

* ``temperature == 0`` means greedy; greedy ties go to the lowest token id.
* ``top_k <= 0`` or ``top_k >= vocab`` keeps everything; tokens tied with the k-th largest
  logit are kept (as in Hugging Face).
* ``top_p >= 1`` keeps everything; a tiny ``top_p`` keeps only the most likely token; among
  tied tokens top-p keeps the lowest ids first. The most likely token is never removed by
  any processor.
* ``-inf`` logits stay excluded; a row with no finite logit, or any NaN, is an error.

Each numpy call costs more than its arithmetic on a short row, so the code keeps them few: one reduction checks for NaN and a finite maximum, the softmax works in an
array the sampler owns, and the draw is a binary search in the cumulative distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gentoolkit.errors import ModelOutputError


def check(logits: np.ndarray) -> np.ndarray:
    """A float64 copy of one row of ``logits`` (the processors change it in place), checked: a NaN,
    or no finite logit, is an error. One reduction: ``max`` carries a NaN through, and +inf or a
    row of ``-inf`` have no finite maximum either."""
    x = np.array(logits, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"logits must be one row [vocab], got shape {x.shape}")
    if not math.isfinite(np.maximum.reduce(x)):
        if np.isnan(x).any():
            raise ModelOutputError("the model's logits contain NaN: its weights are broken (train or export it again)")
        raise ModelOutputError("a row of logits needs at least one finite value (the model gave none, or +inf)")
    return x


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax of a row in float64; ``-inf`` entries get probability 0."""
    return _softmax_inplace(np.array(logits, dtype=np.float64))


def _softmax_inplace(x: np.ndarray) -> np.ndarray:
    """:func:`softmax` of a float64 row the caller owns, computed in its memory (the same numbers)."""
    x -= np.maximum.reduce(x)
    np.exp(x, out=x)
    x /= np.add.reduce(x)
    return x


def apply_repetition_penalty(x: np.ndarray, history: np.ndarray, penalty: float) -> np.ndarray:
    """CTRL's penalty on tokens already in ``history``: divide positive logits, multiply negative ones.

    Unlike the others this processor depends on the sign of a logit, so it is not invariant to
    adding a constant (as in every implementation of it). A token seen twice is penalized once.
    """
    if penalty == 1.0 or history is None or len(history) == 0:
        return x
    seen = x[history]
    x[history] = np.where(seen > 0, seen / penalty, seen * penalty)
    return x


def apply_top_k(x: np.ndarray, k: int) -> np.ndarray:
    v = len(x)
    if k <= 0 or k >= v:
        return x
    kth = np.partition(x, v - k)[v - k]
    x[x < kth] = -np.inf
    return x


def apply_top_p(x: np.ndarray, p: float) -> np.ndarray:
    """Keep the most likely tokens until their mass reaches ``p`` (ties: lowest id first).

    Sorting a 50,000-token row costs more than a decode step, so candidates come from a
    partial partition that grows until the kept set is provably the same as a full sort
    would give (every kept token strictly above the partition's floor). A row of up to 256
    tokens is sorted whole: its excluded tokens (probability 0) sort last, after the finite
    ones in the same order, so the same tokens are kept.
    """
    if p >= 1.0:
        return x
    probs = softmax(x)
    out = np.full_like(x, -np.inf)
    if len(x) <= 256:
        order = np.argsort(-x, kind="stable")
        keep = order[: _mass_count(probs[order], p)]  # an excluded token counted past the mass stays -inf
        out[keep] = x[keep]
        return out
    live = np.flatnonzero(np.isfinite(x))  # excluded tokens never come back
    row, lrow = probs[live], x[live]
    v = len(row)
    k = min(v, 256)
    while True:
        if k >= v:  # every token is a candidate
            order, floor = np.argsort(-lrow, kind="stable"), -np.inf
        else:
            part = np.argpartition(lrow, v - k)[v - k :]
            cand, floor = np.sort(part), lrow[part].min()
            order = cand[np.argsort(-lrow[cand], kind="stable")]
        n_keep = _mass_count(row[order], p)
        if k >= v or lrow[order[n_keep - 1]] > floor:
            break
        k *= 4
    keep = live[order[:n_keep]]
    out[keep] = x[keep]
    return out


def _mass_count(ps: np.ndarray, p: float) -> int:
    """How many of the probabilities ``ps`` (most likely first) it takes to reach ``p``: at least one."""
    return max(1, int(np.add.reduce((np.add.accumulate(ps) - ps) < p)))


def apply_min_p(x: np.ndarray, min_p: float) -> np.ndarray:
    if min_p <= 0.0:
        return x
    # p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p)
    x[x < np.maximum.reduce(x) + np.log(min_p)] = -np.inf
    return x


def process_logits(logits: np.ndarray, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                   min_p: float = 0.0, repetition_penalty: float = 1.0, history: np.ndarray | None = None
                   ) -> np.ndarray:
    """Apply the processors in order to one row and return new float64 logits (``-inf`` = excluded)."""
    x = check(logits)
    x = apply_repetition_penalty(x, history, repetition_penalty)
    if temperature > 0:
        x /= temperature
    x = apply_top_k(x, top_k)
    x = apply_top_p(x, top_p)
    return apply_min_p(x, min_p)


def draw(probs: np.ndarray, rng: np.random.Generator) -> int:
    """One token by inverse CDF: the first whose cumulative probability reaches ``u`` times the total."""
    cdf = np.add.accumulate(probs)
    i = min(int(cdf.searchsorted(rng.random() * cdf[-1])), len(probs) - 1)
    return i if probs[i] != 0 else int(probs.argmax())  # never a zero-probability token through rounding


@dataclass(frozen=True)
class LogitsSampler:
    """Decoding strategy: the processors above, then greedy or a seeded draw, one row at a time."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    greedy: bool = False

    def __post_init__(self):
        from gentoolkit.plugin.options import check_values

        from . import options  # the declaration, read when a sampler is made

        try:
            check_values(options.TEXT_OPTIONS, {f: getattr(self, f) for f in self.__dataclass_fields__})
        except ValueError as exc:
            raise ValueError(str(exc)) from None

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature == 0

    @property
    def argmax_only(self) -> bool:
        """Always the row's argmax, reading neither history nor the generator (the loop may vectorize it)."""
        return self.is_greedy and self.repetition_penalty == 1.0

    @property
    def needs_history(self) -> bool:
        return self.repetition_penalty != 1.0

    def process(self, logits: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
        return process_logits(logits, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
                              min_p=self.min_p, repetition_penalty=self.repetition_penalty, history=history)

    def probs(self, logits: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
        """The distribution a draw is taken from (one-hot for greedy)."""
        if self.is_greedy:
            out = np.zeros(len(logits))
            out[self._argmax(logits, history)] = 1.0
            return out
        return softmax(self.process(logits, history))

    def _argmax(self, logits, history) -> int:
        return int(apply_repetition_penalty(check(logits), history, self.repetition_penalty).argmax())

    def __call__(self, logits: np.ndarray, history: np.ndarray | None = None,
                 rng: np.random.Generator | None = None) -> int:
        if self.is_greedy:
            return self._argmax(logits, history)
        if rng is None:
            raise ValueError("sampling needs a numpy.random.Generator (or pass greedy=True)")
        return draw(_softmax_inplace(self.process(logits, history)), rng)


def make_sampler(**options) -> LogitsSampler:
    """Factory registered as ``sample``."""
    return LogitsSampler(**options)


def make_greedy(repetition_penalty: float = 1.0) -> LogitsSampler:
    """Factory registered as ``greedy``."""
    return LogitsSampler(greedy=True, repetition_penalty=repetition_penalty)
