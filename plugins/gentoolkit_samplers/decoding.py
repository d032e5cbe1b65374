"""Logit processors and token sampling, in numpy.

The processors compose in the order Hugging Face's ``generate`` uses:
repetition penalty -> temperature -> top-k -> top-p -> min-p, then either the
argmax (greedy) or one draw from the resulting distribution. Every function
takes a batch of logits ``[batch, vocab]``; excluded tokens get ``-inf``.
Sampling uses a ``numpy.random.Generator`` and an inverse-CDF draw in float64,
so the same seed gives the same tokens whatever produced the logits (PyTorch
or onnxruntime) and on every platform.

Edge cases, defined:

* ``temperature == 0`` means greedy; greedy ties go to the lowest token id.
* ``top_k <= 0`` or ``top_k >= vocab`` keeps everything; tokens tied with the
  k-th largest logit are kept (as in Hugging Face).
* ``top_p >= 1`` keeps everything; a tiny ``top_p`` keeps only the most likely
  token; among tied tokens top-p keeps the lowest ids first. The most likely
  token is never removed by any processor.
* ``-inf`` logits stay excluded; a row with no finite logit, or any NaN, is an
  error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gentoolkit.errors import ModelOutputError


def _check(logits: np.ndarray) -> np.ndarray:
    """A float64 copy of ``logits`` (the processors change it in place), checked: a NaN anywhere,
    or a row without a finite logit, is an error. One reduction, not three: ``max`` carries a NaN
    through, and +inf or an all ``-inf`` row have no finite maximum either."""
    x = np.array(logits, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"logits must be [batch, vocab], got shape {x.shape}")
    top = np.maximum.reduce(x, axis=-1)  # the ufunc methods: a third less overhead than x.max() on a short row
    if not (math.isfinite(top[0]) if len(top) == 1 else np.isfinite(top).all()):
        if np.isnan(x).any():
            raise ModelOutputError("the model's logits contain NaN: its weights are broken (train or export it again)")
        raise ModelOutputError("every row of logits needs at least one finite value (the model gave none, or +inf)")
    return x


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64; ``-inf`` entries get probability 0."""
    return _softmax_inplace(np.array(logits, dtype=np.float64))


def _softmax_inplace(x: np.ndarray) -> np.ndarray:
    """:func:`softmax` of a float64 array the caller owns, computed in its memory (the same numbers)."""
    x -= np.maximum.reduce(x, axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= np.add.reduce(x, axis=-1, keepdims=True)
    return x


def apply_repetition_penalty(logits: np.ndarray, history: np.ndarray | None, penalty: float) -> np.ndarray:
    """CTRL's penalty on tokens already in ``history`` [batch, t]: divide positive logits, multiply negative ones.

    Unlike the others this processor depends on the sign of a logit, so it is not
    invariant to adding a constant (as in every implementation of it).
    """
    if penalty == 1.0 or history is None or history.size == 0:
        return logits
    hist = np.asarray(history, dtype=np.int64)
    if len(hist) == 1:  # one row: plain indexing (a token seen twice gets the same value twice)
        row, hist = logits[0], hist[0]
    else:
        row, hist = logits, (np.arange(logits.shape[0])[:, None], hist)
    seen = row[hist]
    row[hist] = np.where(seen > 0, seen / penalty, seen * penalty)
    return logits


def apply_top_k(logits: np.ndarray, k: int) -> np.ndarray:
    v = logits.shape[-1]
    if k <= 0 or k >= v:
        return logits
    kth = np.partition(logits, v - k, axis=-1)[:, v - k : v - k + 1]
    logits[logits < kth] = -np.inf
    return logits


def apply_top_p(logits: np.ndarray, p: float) -> np.ndarray:
    """Keep the most likely tokens until their mass reaches ``p`` (ties: lowest id first).

    Sorting a 50,000-token row costs more than a decode step, so candidates come
    from a partial partition that grows until the kept set is provably the same as
    a full sort would give (every kept token strictly above the partition's floor).
    A row of up to 256 tokens is sorted whole: its excluded tokens (probability 0) sort
    last, after the finite ones in the same order, so the same tokens are kept.
    """
    if p >= 1.0:
        return logits
    probs = softmax(logits)
    out = np.full_like(logits, -np.inf)
    for r, full in enumerate(probs):
        lrow = logits[r]
        if len(lrow) <= 256:
            order = np.argsort(-lrow, kind="stable")
            keep = order[: _mass_count(full[order], p)]  # an excluded token counted past the mass stays -inf
            out[r, keep] = lrow[keep]
            continue
        live = np.flatnonzero(np.isfinite(lrow))  # excluded tokens never come back
        row, lrow = full[live], lrow[live]
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
        out[r, keep] = logits[r, keep]
    return out


def _mass_count(ps: np.ndarray, p: float) -> int:
    """How many of the probabilities ``ps`` (most likely first) it takes to reach ``p``: at least one."""
    return max(1, int(np.add.reduce((np.add.accumulate(ps) - ps) < p)))


def apply_min_p(logits: np.ndarray, min_p: float) -> np.ndarray:
    if min_p <= 0.0:
        return logits
    # p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p)
    cut = logits.max(axis=-1, keepdims=True) + np.log(min_p)
    logits[logits < cut] = -np.inf
    return logits


def process_logits(
    logits: np.ndarray,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    min_p: float = 0.0,
    repetition_penalty: float = 1.0,
    history: np.ndarray | None = None,
) -> np.ndarray:
    """Apply the processors in order and return new float64 logits (``-inf`` = excluded)."""
    x = _check(logits)
    x = apply_repetition_penalty(x, history, repetition_penalty)
    if temperature > 0:
        x /= temperature
    x = apply_top_k(x, top_k)
    x = apply_top_p(x, top_p)
    x = apply_min_p(x, min_p)
    return x


def greedy(logits: np.ndarray) -> np.ndarray:
    """Argmax per row (lowest id on ties)."""
    return np.asarray(logits).argmax(axis=-1).astype(np.int64)


def draw(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One token per row by inverse CDF (one uniform per row, so streams stay aligned): the first
    token whose cumulative probability reaches ``u`` times the total."""
    cdf = np.add.accumulate(probs, axis=-1)  # np.cumsum, with less overhead
    last = probs.shape[-1] - 1
    if len(cdf) == 1:  # one row (the decode loop's case): a binary search, the same token as counting
        u = rng.random()  # the same number as rng.random(1)[0]
        i = min(int(cdf[0].searchsorted(u * cdf[0, -1])), last)
        # never land on a zero-probability token through rounding at the very end
        return np.array([i if probs[0, i] != 0 else probs[0].argmax()], dtype=np.int64)
    # the number of slots below the threshold (cdf never decreases: the first one that reaches it)
    u = rng.random(probs.shape[0])
    idx = np.minimum((cdf < (u * cdf[:, -1])[:, None]).sum(axis=-1), last)
    zero = probs[np.arange(len(idx)), idx] == 0
    if zero.any():
        idx[zero] = probs[zero].argmax(axis=-1)
    return idx.astype(np.int64)


@dataclass(frozen=True)
class LogitsSampler:
    """Decoding strategy: the processors above, then greedy or a seeded draw.

    Call it with logits ``[batch, vocab]``, the tokens so far ``[batch, t]`` (for
    the repetition penalty) and a ``numpy.random.Generator``; it returns token ids
    ``[batch]``.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    greedy: bool = False

    def __post_init__(self):
        for name in ("temperature", "top_p", "min_p", "repetition_penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, (int, np.integer)) or self.top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0, got {self.top_k!r}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not 0 <= self.min_p <= 1:
            raise ValueError(f"min_p must be in [0, 1], got {self.min_p}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature == 0

    def process(self, logits: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
        return process_logits(
            logits,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            min_p=self.min_p,
            repetition_penalty=self.repetition_penalty,
            history=history,
        )

    def probs(self, logits: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
        """The distribution a draw is taken from (one-hot for greedy)."""
        x = self.process(logits, history) if not self.is_greedy else _check(logits)
        if self.is_greedy:
            x = apply_repetition_penalty(x, history, self.repetition_penalty)
            out = np.zeros_like(x)
            out[np.arange(len(x)), greedy(x)] = 1.0
            return out
        return softmax(x)

    def __call__(
        self, logits: np.ndarray, history: np.ndarray | None = None, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        if self.is_greedy:
            x = apply_repetition_penalty(_check(logits), history, self.repetition_penalty)
            return greedy(x)
        if rng is None:
            raise ValueError("sampling needs a numpy.random.Generator (or pass greedy=True)")
        return draw(_softmax_inplace(self.process(logits, history)), rng)


def make_sampler(**options) -> LogitsSampler:
    """Factory registered as ``sample``."""
    return LogitsSampler(**options)


def make_greedy(repetition_penalty: float = 1.0) -> LogitsSampler:
    """Factory registered as ``greedy``."""
    return LogitsSampler(greedy=True, repetition_penalty=repetition_penalty)
