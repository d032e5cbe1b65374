"""The decode loop of every text back end (PyTorch runs, ONNX exports, the server's engine), in numpy.

Read top to bottom: a *decoder* (:class:`.decoder.OrtDecoder`, or a run's PyTorch model) makes a
*cache* for a batch, chosen once, and every cache has the same two calls::

    cache = decoder.new_cache(batch)
    logits = cache.prefill(input_ids, attention_mask, position_ids)   # [batch, vocab], the last position
    logits = cache.advance(new_tokens)                                # one token per row, the next position

:func:`generate_tokens` does left padding, the context window, choosing tokens (a *strategy*,
below) and stopping; :func:`stream_events` turns the tokens into text pieces with a
:class:`RowText` per row, which holds back incomplete UTF-8 and stop strings and says why a row
finished. The server's continuous batching (:mod:`.serving`) reuses the strategies' per-row
choice (:func:`choose_row`) and :class:`RowText`, so a request gives the tokens ``generate`` gives.

Context: a prompt longer than the context keeps its last ``context_length`` tokens; when a row's
window is full, that row keeps its last half and the batch prefills again (so long generations
continue at a cost of one prefill per ``context_length / 2`` tokens). Windows move by each row's
own length, so a row gives the same tokens in a batch as alone.

**The sampler contract.** A logits sampler (what the factory of a ``logits``
:class:`~gentoolkit.SamplerSpec` returns) is called once per row and step::

    token = sampler(logits, history, rng)

* ``logits``: float32 ``[vocab]``, the row's logits at its last position, padding already
  excluded (``-inf``); the sampler may change the array;
* ``history``: int64 ``[t]``, the row's tokens so far (prompt and generated), or an empty array
  when the sampler's ``needs_history`` is false;
* ``rng``: the row's own ``numpy.random.Generator`` (seeded from ``SeedSequence([seed, row])``, so
  a row draws the same tokens in any batch; ``seed=None`` takes fresh entropy);

and returns the token id (an int). It has two attributes the loop reads: ``argmax_only`` (it
always returns the row's argmax, lowest id on ties, reading neither ``history`` nor ``rng``, so
the loop may pick every row's token with one vectorized argmax) and ``needs_history``.

**The strategies**: :func:`argmax` picks every row's argmax at once (an ``argmax_only`` sampler:
plain greedy decoding); :func:`sampled` calls the sampler once per active row. A strategy is a
function ``choose(logits, active, history, lengths, step)`` of the batch's logits ``[batch,
vocab]`` that returns the new tokens ``[batch]`` (-1 for rows that have stopped).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from gentoolkit.errors import ModelOutputError, PluginError


class Cache(Protocol):
    """A batch's KV cache: what :func:`generate_tokens` calls (see the module's docstring)."""

    def prefill(self, input_ids: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray) -> np.ndarray: ...

    def advance(self, new: np.ndarray) -> np.ndarray: ...


class Decoder(Protocol):
    """A back end: its context and a cache for a batch of rows."""

    context_length: int

    def new_cache(self, batch: int) -> Cache: ...


class GrowingCache:
    """A cache that grows by one slot per step, over a back end's forward ``step(input_ids, attention_mask,
    position_ids, past) -> (logits [batch, vocab], past)``: a run's PyTorch model, or onnxruntime through
    IO binding where fixed buffers do not apply (a GPU). It keeps the mask and the positions."""

    def __init__(self, step: Callable, empty_past: Any, batch: int, context_length: int):
        self.step, self.empty_past = step, empty_past
        self.mask = np.empty((batch, context_length), dtype=np.int64)  # grows by one column per step: views
        self.columns = 0
        self.past: Any = None
        self.last_pos: np.ndarray | None = None

    def prefill(self, input_ids, attention_mask, position_ids) -> np.ndarray:
        logits, self.past = self.step(input_ids, attention_mask, position_ids, self.empty_past)
        n = attention_mask.shape[1]
        self.mask[:] = 1
        self.mask[:, :n] = attention_mask
        self.columns, self.last_pos = n, position_ids[:, -1:]
        return logits

    def advance(self, new: np.ndarray) -> np.ndarray:
        self.columns += 1
        self.last_pos = self.last_pos + 1  # (batch, 1)
        logits, self.past = self.step(new[:, None], mask_view(self.mask, self.columns), self.last_pos, self.past)
        return logits


def mask_view(buf: np.ndarray, width: int) -> np.ndarray:
    """The first ``width`` columns of ``buf``; a copy when that view would not be contiguous (batch > 1)."""
    view = buf[:, :width]
    return view if buf.shape[0] == 1 else np.ascontiguousarray(view)


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``input_ids``, ``attention_mask`` and ``position_ids`` for a left-padded batch."""
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    pos = np.zeros((len(seqs), width), dtype=np.int64)  # a pad's position is 0
    count = np.arange(width, dtype=np.int64)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, width - len(s) :] = s
            mask[i, width - len(s) :] = 1
            pos[i, width - len(s) :] = count[: len(s)]
    return ids, mask, pos


def generate_tokens(
    decoder: Decoder,
    prompts: Sequence[Sequence[int]],
    *,
    sampler: Callable,
    max_new_tokens: int,
    pad_id: int,
    eos_id: int | Sequence[int] | None = None,
    seed: int | None = None,
    should_stop: Callable[[int, list[int]], bool] | None = None,
    bos_id: int | None = None,
    never_id: int | None | type[Ellipsis] = ...,
) -> Iterator[np.ndarray]:
    """Yield one array ``[batch]`` of new token ids per step (``-1`` for rows that have stopped); read-only:
    the loop feeds it to the next step. ``sampler`` keeps the sampler contract (the module's docstring).

    ``pad_id`` fills left padding; ``eos_id`` (one id or several) ends a row; ``bos_id`` (default:
    the first end id, else padding) starts an empty prompt; ``never_id`` (default: ``pad_id``) is a
    token no row may pick, or None where padding is also a real token."""
    n = len(prompts)
    eos_ids = () if eos_id is None else (eos_id,) if isinstance(eos_id, (int, np.integer)) else tuple(eos_id)
    never = pad_id if never_id is ... else never_id
    choose = for_sampler(sampler, n=n, pad_id=never, seed=seed)
    ctx = int(decoder.context_length)
    keep = max(1, ctx // 2)
    bos = bos_id if bos_id is not None else eos_ids[0] if eos_ids else pad_id
    tokens = [list(p) if len(p) else [bos] for p in prompts]
    lengths = [len(t) for t in tokens]
    # Each row's attention window starts at starts[i] and moves by that row's own length alone,
    # so a row generates the same tokens in any batch as it does by itself.
    starts = [max(0, length - ctx) for length in lengths]
    done = np.zeros(n, dtype=bool)
    history = np.zeros((n, max(lengths) + max_new_tokens if choose.needs_history else 0), dtype=np.int64)
    for i, t in enumerate(tokens if choose.needs_history else ()):
        history[i, : len(t)] = t
    cache = decoder.new_cache(n)

    def prefill():
        ids, mask, pos = left_pad([t[s:] for t, s in zip(tokens, starts)], pad_id)
        return cache.prefill(ids, mask, pos), mask.shape[1]

    # columns: the mask's width, the prompt window plus the tokens fed since
    logits, columns = prefill()
    advance = cache.advance
    active = list(range(n))  # rows still generating (rebuilt only when a row stops)
    keep_history = choose.needs_history
    # an int comparison every token where there is one end token (-2 is never a token: ids are >= 0)
    eos, eos_set = (eos_ids[0] if len(eos_ids) == 1 else -2), (frozenset(eos_ids) if len(eos_ids) > 1 else ())
    for step in range(max_new_tokens):
        new = choose(logits, active, history, lengths, step)
        stopped = False
        for i in active:
            t = int(new[i])
            tokens[i].append(t)
            if keep_history:
                history[i, lengths[i]] = t
            lengths[i] += 1
            if t == eos or t in eos_set or (should_stop is not None and should_stop(i, tokens[i])):
                done[i] = stopped = True
        yield new  # a new array each step; the loop reads it once more below, to feed it
        if stopped:
            active = [i for i in active if not done[i]]
        if not active or step == max_new_tokens - 1:
            return
        if columns >= ctx:  # every row is left-padded to the mask's width: a row's window is full only if the mask is
            for i in active:
                if lengths[i] - 1 - starts[i] >= ctx:
                    starts[i] = lengths[i] - keep
            for i in np.flatnonzero(done):
                starts[i] = max(starts[i], lengths[i] - keep)
            logits, columns = prefill()
            continue
        feed = new if len(active) == n else np.where(new < 0, pad_id, new)
        columns += 1
        logits = advance(feed)


# --- the strategies: how the loop picks each row's next token ----------------------------------------------

def check_sampler(sampler, name: str) -> None:
    """A logits sampler must be callable and say ``argmax_only`` and ``needs_history`` (booleans)."""
    missing = [a for a in ("argmax_only", "needs_history") if not isinstance(getattr(sampler, a, None), bool)]
    if not callable(sampler) or missing:
        raise PluginError(f"logits sampler {name!r} does not keep the sampler contract (it needs to be callable, with "
                          f"boolean {' and '.join(missing) or 'attributes'}); see the docs on sampling")


def for_sampler(sampler, *, n: int, pad_id: int | None, seed: int | None):
    """The strategy that runs ``sampler`` for a batch of ``n`` rows; ``pad_id`` is never picked (None:
    every token may be)."""
    return argmax(n, pad_id) if sampler.argmax_only else sampled(sampler, n, pad_id, seed)


def broken_logits(step: int) -> Exception:
    return ModelOutputError(f"the model's logits hold NaN or infinity at new token {step + 1}: its weights are "
                            "broken (train or export it again)")


def choose_row(sampler, logits: np.ndarray, history: Sequence[int], rng, never: int | None, step: int) -> int:
    """One row's next token under ``sampler`` (padding, ``never``, excluded): what a strategy does for
    each row, for a caller that schedules rows one at a time (the server's continuous batching)."""
    if never is not None:
        logits[never] = -np.inf
    if sampler.argmax_only:
        t = int(logits.argmax())
        if not math.isfinite(logits[t]):
            raise broken_logits(step)
        return t
    past = np.asarray(history, np.int64) if sampler.needs_history else np.zeros(0, np.int64)
    return int(sampler(logits, past, rng))


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


class TextStreamer:
    """Turns token ids into text pieces for one row: holds back incomplete UTF-8 and possible stop strings.

    Decoding is incremental (the prefix/read offsets of Hugging Face's text-generation-inference):
    each token decodes a short window that starts at the last complete character, not the whole
    row again, so a long generation does not pay a growing decode per token (docs/performance.md,
    "Why the code looks this way"). A byte-level tokenizer (GPT-2's, and gentoolkit's own) gives
    each token's bytes instead (``token_bytes``), and one incremental UTF-8 decoder holds back
    what is not yet a whole character, as onnxruntime-genai's tokenizer stream does.
    """

    def __init__(self, tokenizer, stop: Sequence[str] = ()):
        import codecs

        self.tokenizer = tokenizer
        # a byte-level tokenizer's tokens are fixed bytes: one incremental UTF-8 decoder does it all
        self._bytes = getattr(tokenizer, "token_bytes", None)
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace") if self._bytes is not None else None
        self.stop = [s for s in stop if s]
        self.hold = max((len(s) - 1 for s in self.stop), default=0)
        self.ids: list[int] = []
        self.prefix = 0  # ids[prefix:read] decode to the end of self.text, ...
        self.read = 0  # ... and ids[read:] to characters not complete yet
        self.emitted = 0
        self.text = ""
        self.stopped = False

    def _catch_up(self, final: bool = False) -> str:
        """Append the text of the ids not yet in ``self.text`` when it is complete (or ``final``)."""
        if self._utf8 is not None:
            grown = self._utf8.decode(self._bytes(self.ids[-1]) if self.read < len(self.ids) else b"", final)
            self.read = len(self.ids)
            self.text += grown
            return grown
        decode = self.tokenizer.decode
        window = self.ids[self.prefix : self.read]
        # the usual case, one token a step: a token's own text, which the tokenizer keeps once decoded
        before = self.tokenizer.decode_one(window[0]) if len(window) == 1 else decode(window)
        now = decode(self.ids[self.prefix :])
        if not final and (len(now) <= len(before) or now.endswith("\ufffd")):
            return ""
        grown = now[len(before) :]
        self.text += grown
        self.prefix, self.read = self.read, len(self.ids)
        return grown

    def push(self, token: int) -> str:
        """Add a token; return the text that is now safe to show."""
        self.ids.append(int(token))
        grown = self._catch_up()
        if grown and self.stop:
            start = max(0, len(self.text) - len(grown) - self.hold)  # a stop string may straddle the new text
            for s in self.stop:
                at = self.text.find(s, start)
                if at >= 0:
                    self.text = self.text[:at]
                    self.stopped = True
        if self.stopped:
            return self.flush()
        safe = len(self.text)
        for k in range(min(self.hold, safe - self.emitted), 0, -1):
            if any(s.startswith(self.text[safe - k : safe]) for s in self.stop):
                safe -= k
                break
        piece = self.text[self.emitted : safe]
        self.emitted = max(self.emitted, safe)
        return piece

    def flush(self) -> str:
        """The rest of the text, bytes that never completed a character included (unless a stop string cut it)."""
        if not self.stopped:
            self._catch_up(final=True)
        piece = self.text[self.emitted :]
        self.emitted = len(self.text)
        return piece


def stream_text(
    decoder: Decoder,
    tokenizer,
    prompts: Sequence[str],
    *,
    sampler: Callable,
    max_new_tokens: int,
    seed: int | None = None,
    stop: Sequence[str] = (),
) -> Iterator[tuple[int, str]]:
    """Yield ``(row, text piece)`` as tokens arrive; stops each row at its end token or a stop string.
    A prompt is text, or token ids already (a chat turn rendered by its template)."""
    for i, piece, _, _ in stream_events(decoder, tokenizer, prompts, sampler=sampler, max_new_tokens=max_new_tokens,
                                        seed=seed, stop=stop):
        if piece:
            yield i, piece


def stream_events(
    decoder: Decoder,
    tokenizer,
    prompts: Sequence[str],
    *,
    sampler: Callable,
    max_new_tokens: int,
    seed: int | None = None,
    stop: Sequence[str] = (),
    ids: list[list[int]] | None = None,
) -> Iterator[tuple[int, str, str | None, int]]:
    """As :func:`stream_text`, with each row's end and count: ``(row, piece, finish, tokens)``, ``finish``
    None until the row's last event, then ``"stop"`` (an end token or a stop string) or ``"length"``
    (``max_new_tokens``); ``tokens`` is how many the row has generated so far. ``ids``: a list that gets
    one list per row of the token ids generated (an end token included)."""
    encoded = [list(p) if not isinstance(p, str) else tokenizer.encode(p) for p in prompts]
    rows = [RowText(tokenizer, stop, max_new_tokens) for _ in prompts]
    ended = [False] * len(prompts)
    if ids is not None:
        ids[:] = [[] for _ in prompts]

    def should_stop(i: int, _tokens: list[int]) -> bool:
        return rows[i].stopped

    for new in generate_tokens(
        decoder,
        encoded,
        sampler=sampler,
        max_new_tokens=max_new_tokens,
        pad_id=tokenizer.pad_id,
        eos_id=tuple(tokenizer.eos_ids),
        seed=seed,
        should_stop=None if not stop else should_stop,
        bos_id=tokenizer.bos_id,
        never_id=tokenizer.never_id,
    ):
        for i, t in enumerate(new.tolist()):
            if t < 0 or ended[i]:
                continue
            if ids is not None:
                ids[i].append(t)
            piece, finish = rows[i].take(t)
            if finish is not None:
                ended[i] = True
                yield i, piece, finish, rows[i].produced
            elif piece:
                yield i, piece, None, rows[i].produced
    for i, row in enumerate(rows):
        if not ended[i]:
            yield i, row.end(), "length", row.produced


class RowText:
    """One row's text and its end: holds back incomplete UTF-8 and possible stop strings
    (:class:`TextStreamer`) and says why the row finished. ``take(token)`` returns ``(piece, finish)``:
    ``finish`` is ``"stop"`` at an end token or a stop string, ``"length"`` at the ``max_new``-th token
    (None: no limit here), else None."""

    __slots__ = ("streamer", "eos", "max_new", "produced")

    def __init__(self, tokenizer, stop: Sequence[str] = (), max_new: int | None = None):
        self.streamer = TextStreamer(tokenizer, stop)
        self.eos = frozenset(tokenizer.eos_ids)
        self.max_new = max_new
        self.produced = 0

    @property
    def stopped(self) -> bool:
        return self.streamer.stopped

    def take(self, token: int) -> tuple[str, str | None]:
        self.produced += 1
        if token in self.eos:
            self.streamer.stopped = True
            return self.streamer.flush(), "stop"
        piece = self.streamer.push(token)
        if self.streamer.stopped:
            return piece, "stop"
        if self.max_new is not None and self.produced >= self.max_new:
            return piece + self.streamer.flush(), "length"
        return piece, None

    def end(self) -> str:
        """The rest of the text, where the loop ended the row (``max_new_tokens``)."""
        return self.streamer.flush()
