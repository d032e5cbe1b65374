"""The generation loop, in numpy, shared by every back end (PyTorch runs and ONNX exports).

A back end is a *decoder*: a callable ``decoder(input_ids, attention_mask,
position_ids, past) -> (logits, past)`` returning the logits of the last
position ``[batch, vocab]`` (float32, an array the loop may modify), plus
``context_length`` and ``empty_past(batch)``. The loop does left padding, the KV cache bookkeeping,
sampling and stop conditions, so both back ends give the same tokens for the
same seed. A ``past`` may offer ``advance(new) -> logits``: one decode step with the
token ``new[i]`` for each row, at the next position, its mask column 1. That is every
decode step the loop makes, so it then leaves the mask and the positions to the past
(onnxruntime's CPU decoder keeps them in buffers bound once).

Context: a prompt longer than the context keeps its last ``context_length``
tokens; when a row's window is full, that row keeps its last half and the batch
prefills again (so long generations continue at a cost of one prefill per
``context_length / 2`` tokens). Windows move by each row's own length, so a row
gives the same tokens in a batch as alone.

Choosing the tokens is a *strategy* (:mod:`gentoolkit.runtime.strategies`, which also writes
down the sampler contract): every row's argmax at once for plain greedy decoding, or the
sampler once per row, each row drawing from ``SeedSequence([seed, i])`` so that a row's tokens
do not depend on the other rows (``seed=None`` takes fresh entropy).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from . import strategies


class Decoder(Protocol):
    context_length: int

    def __call__(self, input_ids, attention_mask, position_ids, past) -> tuple[np.ndarray, Any]: ...

    def empty_past(self, batch: int) -> Any: ...


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
    the loop feeds it to the next step. ``sampler`` keeps the contract of :mod:`.strategies`.

    ``pad_id`` fills left padding; ``eos_id`` (one id or several) ends a row; ``bos_id`` (default:
    the first end id, else padding) starts an empty prompt; ``never_id`` (default: ``pad_id``) is a
    token no row may pick, or None where padding is also a real token."""
    n = len(prompts)
    eos_ids = () if eos_id is None else (eos_id,) if isinstance(eos_id, (int, np.integer)) else tuple(eos_id)
    never = pad_id if never_id is ... else never_id
    choose = strategies.for_sampler(sampler, n=n, pad_id=never, seed=seed)
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
    # the attention mask grows by one column per step: views of one buffer, not a new array each step
    mask_buf = np.empty((n, ctx), dtype=np.int64)

    def prefill():
        ids, mask, pos = left_pad([t[s:] for t, s in zip(tokens, starts)], pad_id)
        logits, past = decoder(ids, mask, pos, decoder.empty_past(n))
        mask_buf[:] = 1
        mask_buf[:, : mask.shape[1]] = mask
        return logits, past, mask.shape[1], pos[:, -1:]

    # columns: the mask's width, the prompt window plus the tokens fed since
    logits, past, columns, last_pos = prefill()
    advance = getattr(past, "advance", None)
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
            logits, past, columns, last_pos = prefill()
            advance = getattr(past, "advance", None)
            continue
        feed = new if len(active) == n else np.where(new < 0, pad_id, new)
        columns += 1
        if advance is not None:
            logits = advance(feed)
        else:
            last_pos = last_pos + 1  # (batch, 1)
            logits, past = decoder(feed[:, None], mask_view(mask_buf, columns), last_pos, past)


def mask_view(buf: np.ndarray, width: int) -> np.ndarray:
    """The first ``width`` columns of ``buf``; a copy when that view would not be contiguous (batch > 1)."""
    view = buf[:, :width]
    return view if buf.shape[0] == 1 else np.ascontiguousarray(view)


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
    streams = [TextStreamer(tokenizer, stop) for _ in prompts]
    ended = [False] * len(prompts)
    counts = [0] * len(prompts)
    if ids is not None:
        ids[:] = [[] for _ in prompts]

    def should_stop(i: int, _tokens: list[int]) -> bool:
        return streams[i].stopped

    eos_ids = tuple(tokenizer.eos_ids)
    for new in generate_tokens(
        decoder,
        encoded,
        sampler=sampler,
        max_new_tokens=max_new_tokens,
        pad_id=tokenizer.pad_id,
        eos_id=eos_ids,
        seed=seed,
        should_stop=None if not stop else should_stop,
        bos_id=tokenizer.bos_id,
        never_id=tokenizer.never_id,
    ):
        for i, t in enumerate(new.tolist()):
            if t < 0 or streams[i].stopped:
                continue
            counts[i] += 1
            if ids is not None:
                ids[i].append(t)
            if t in eos_ids:
                piece = streams[i].flush()
                streams[i].stopped = True
            else:
                piece = streams[i].push(t)
            if streams[i].stopped:
                ended[i] = True
                yield i, piece, "stop", counts[i]
            elif piece:
                yield i, piece, None, counts[i]
    for i, s in enumerate(streams):
        if not ended[i]:
            yield i, s.flush(), "length", counts[i]
