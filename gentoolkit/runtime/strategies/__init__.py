"""Decode strategies: how the generation loop picks each row's next token from its logits.

**The sampler contract.** A logits sampler (what the factory of a ``logits``
:class:`~gentoolkit.SamplerSpec` returns) is called once per row and step::

    token = sampler(logits, history, rng)

* ``logits``: float32 ``[vocab]``, the row's logits at its last position, padding already
  excluded (``-inf``); the sampler may change the array;
* ``history``: int64 ``[t]``, the row's tokens so far (prompt and generated), or an empty array
  when the sampler's ``needs_history`` is false;
* ``rng``: the row's own ``numpy.random.Generator`` (seeded from ``(seed, row)``, so a row draws
  the same tokens in any batch);

and returns the token id (an int). It has two attributes the loop reads:

* ``argmax_only``: it always returns the row's argmax (lowest id on ties) and reads neither
  ``history`` nor ``rng``, so the loop may pick every row's token with one vectorized argmax;
* ``needs_history``: it reads ``history`` (otherwise the loop does not keep it).

:func:`check_sampler` checks a sampler when it is made (``gentoolkit.sampling.make_sampler``).

**The strategies**, one module each: :mod:`.argmax` picks every row's argmax at once (an
``argmax_only`` sampler: plain greedy decoding); :mod:`.sampled` calls the sampler once per
active row. A strategy is a function ``choose(logits, active, history, lengths, step)`` of the
batch's logits ``[batch, vocab]`` that returns the new tokens ``[batch]`` (-1 for rows that
have stopped); its attribute ``needs_history`` tells the loop whether to keep ``history``.
"""

from __future__ import annotations

from ...errors import PluginError


def check_sampler(sampler, name: str) -> None:
    """A logits sampler must be callable and say ``argmax_only`` and ``needs_history`` (booleans)."""
    missing = [a for a in ("argmax_only", "needs_history") if not isinstance(getattr(sampler, a, None), bool)]
    if not callable(sampler) or missing:
        raise PluginError(f"logits sampler {name!r} does not keep the sampler contract (it needs to be callable, with "
                          f"boolean {' and '.join(missing) or 'attributes'}); see the docs on sampling")


def for_sampler(sampler, *, n: int, pad_id: int | None, seed: int | None):
    """The strategy that runs ``sampler`` for a batch of ``n`` rows; ``pad_id`` is never picked (None:
    every token may be)."""
    if sampler.argmax_only:
        from .argmax import argmax

        return argmax(n, pad_id)
    from .sampled import sampled

    return sampled(sampler, n, pad_id, seed)


def broken_logits(step: int) -> Exception:
    from ...errors import ModelOutputError

    return ModelOutputError(f"the model's logits hold NaN or infinity at new token {step + 1}: its weights are "
                            "broken (train or export it again)")
