"""Continuous batching for ``gentool serve``: many requests decoded in one running batch (torch-free).

The engine owns a batch of ``max_batch`` rows in the fused graph's shared buffers (one KV buffer
per layer's key and value, ``[max_batch, Hkv, context, D]``, bound as both past and present, as
:class:`~.decoder.SharedCache` binds one generation's). A request's choices wait in a queue; at
every step boundary the scheduler admits waiting choices into free rows (each prefilled alone,
straight into its row of the buffers), runs one decode step over the rows in use, and retires the
rows that finished. Every row has its own length: its mask row marks its own slots, and
``GroupQueryAttention`` writes each row's new key and value after its own last slot. So a row's
tokens do not depend on the other rows: the same as generating it alone (``generate``, ``gentool
sample``), with the sampler contract's generator ``SeedSequence([seed, choice])``.

Graphs without shared buffers (the traced graph, a GPU) are served one request at a time through
the driver's own loop (:class:`SerialEngine`).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gentoolkit.errors import GentoolError

from .decode import RowText, choose_row, row_generator, stream_events
from .decoder import bind_shared_kv, bound_run, lazy_zeros, prefill_bound
from .options import resolve

#: an event for a job: (choice, text piece, finish reason or None, error or None)
Emit = Callable[[int, str, "str | None", "str | None"], None]


@dataclass
class Job:
    """One request: ``n`` choices of one prompt (token ids), its sampling options and where events go."""

    prompt: list[int]
    n: int
    seed: int | None
    options: dict[str, Any]
    emit: Emit
    sampler: Any = None
    max_new: int = 0
    stop: tuple[str, ...] = ()
    pending: collections.deque = field(default_factory=collections.deque)
    tokens_out: list[int] = field(default_factory=list)  # tokens generated, per choice
    cancelled: bool = False
    done: int = 0

    def cancel(self) -> None:
        """Stop at the next step boundary (a client that went away, a timeout); no more events."""
        self.cancelled = True

    def send(self, choice: int, piece: str, finish: str | None, error: str | None) -> None:
        """``emit``, unless the job was cancelled; a receiver that is gone cancels the job (never the engine)."""
        if self.cancelled:
            return
        try:
            self.emit(choice, piece, finish, error)
        except Exception:  # noqa: BLE001 - the server's event loop closed under it
            self.cancelled = True


class _Row:
    __slots__ = ("job", "choice", "tokens", "filled", "text", "rng", "next")

    def __init__(self, job: Job, choice: int, text: RowText, rng):
        self.job, self.choice, self.text, self.rng = job, choice, text, rng
        self.tokens = list(job.prompt)
        self.filled = 0  # slots of this row's cache in use
        self.next = -1  # the token to feed at the next step


class _Engine:
    """What both engines share: the requests' side (called from the server's threads)."""

    kind = "text"

    def new_job(self, prompt: list[int], *, n: int, seed: int | None, options: dict, emit: Emit) -> Job:
        """A request: ``n`` choices of ``prompt``, its options resolved as ``generate`` resolves them (one
        error names a bad one), events to ``emit``."""
        job = Job(prompt=list(prompt), n=n, seed=seed, options=dict(options), emit=emit)
        job.sampler, job.max_new, job.stop = resolve(self.driver.defaults, job.options)
        job.tokens_out = [0] * job.n
        job.pending.extend(range(job.n))
        if job.seed is None:
            job.seed = int(np.random.SeedSequence().entropy % 2**63)
        return job

    def encode_prompt(self, prompt: str | Sequence[int] | Sequence[dict]) -> list[int]:
        """Token ids of a prompt (text), of ids given as they are, or of chat messages under the template."""
        tok = self.tokenizer
        if isinstance(prompt, str):
            return tok.encode(prompt)
        if prompt and isinstance(prompt[0], dict):
            if not tok.chat_template:
                raise GentoolError("this model has no chat template (tokenizer_config.json's chat_template); use "
                                   "/v1/completions")
            return tok.chat_ids(list(prompt))
        ids = [int(i) for i in prompt]
        vocab = self.driver.decoder.vocab_size
        bad = [i for i in ids if not 0 <= i < vocab]
        if bad:
            raise GentoolError(f"token id {bad[0]} is outside the vocabulary of {vocab}")
        return ids

    def start(self) -> None:
        self.thread.start()

    def submit(self, job: Job) -> Job:
        """Queue ``job`` (made by :meth:`new_job`)."""
        with self.cond:
            if self.stopping:
                raise GentoolError("the server is shutting down")
            self.waiting.append(job)
            self.cond.notify()
        return job

    def queued(self) -> int:
        """Choices waiting for a row."""
        with self.cond:
            return sum(len(j.pending) for j in self.waiting)

    def stop(self, timeout: float | None = None) -> None:
        """Finish the rows in flight and the queue, then end the engine's thread."""
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.thread.join(timeout)


class BatchEngine(_Engine):
    """Continuous batching over a fused export on the CPU (see the module's docstring)."""

    def __init__(self, driver, max_batch: int = 8):
        import onnxruntime as ort

        d = driver.decoder
        self.driver, self.decoder, self.tokenizer = driver, d, driver.tokenizer
        self.max_batch = int(max_batch)
        H, D = d.kv_shape
        L2, B, ctx, V = len(d.past_names), self.max_batch, d.context_length, d.vocab_size
        self.context_length = ctx
        self.kv = lazy_zeros((L2, B, H, ctx, D))
        self.mask = np.zeros((B, ctx), np.int64)
        self.ids = np.zeros((B, 1), np.int64)
        self.pos = np.zeros((B, 1), np.int64)
        self.logits = np.zeros((B, 1, V), np.float32)
        self._ort = ort
        self._values: list = []  # OrtValues over the buffers, kept alive with the bindings
        self._one = self._value(np.array(1, np.int64))
        self._decode: dict[int, Any] = {}  # rows in use -> binding
        self._prefill: dict[int, Any] = {}  # row -> binding
        self.rows: list[_Row | None] = [None] * B
        self.waiting: collections.deque[Job] = collections.deque()
        self.cond = threading.Condition()
        self.stopping = False
        self.tokens_generated = 0
        never = self.tokenizer.never_id
        self.never = never
        self.eos = frozenset(self.tokenizer.eos_ids)
        self.thread = threading.Thread(target=self._loop, name="gentool-serve-engine", daemon=True)

    def active(self) -> int:
        return sum(r is not None for r in self.rows)

    # -- bindings --
    def _value(self, array):
        self._values.append(self._ort.OrtValue.ortvalue_from_numpy(array))
        return self._values[-1]

    def _bind_kv(self, binding, rows: slice) -> None:
        bind_shared_kv((binding,), self.decoder, self.kv[:, rows], self._value)

    def _decode_binding(self, n: int):
        """The rows ``[0, n)``, every input and output bound to the front of the buffers."""
        if n not in self._decode:
            b = self.decoder.session.io_binding()
            b.bind_ortvalue_input("input_ids", self._value(self.ids[:n]))
            b.bind_ortvalue_input("attention_mask", self._value(self.mask[:n]))
            b.bind_ortvalue_input("position_ids", self._value(self.pos[:n]))
            b.bind_ortvalue_output("logits", self._value(self.logits[:n]))
            self._bind_kv(b, slice(0, n))
            self._decode[n] = (b, bound_run(self.decoder.session, b))
        return self._decode[n][1]

    def _prefill_row(self, r: int, ids: list[int]) -> np.ndarray:
        """Run ``ids`` alone into row ``r``'s slots; the last position's logits ``[vocab]`` (a copy)."""
        if r not in self._prefill:
            b = self.decoder.session.io_binding()
            self._bind_kv(b, slice(r, r + 1))
            self._prefill[r] = (b, bound_run(self.decoder.session, b)[1])
        b, arg = self._prefill[r]
        n = len(ids)
        logits = prefill_bound(self.decoder, b, arg, self._one, np.asarray([ids], np.int64), np.ones((1, n), np.int64),
                               np.arange(n, dtype=np.int64)[None])
        self.mask[r] = 0
        self.mask[r, :n] = 1
        return logits[0]

    # -- choosing and emitting: the decode loop's own (decode.choose_row, decode.RowText) --
    def _take(self, row: _Row, logits: np.ndarray) -> bool:
        """Choose the row's next token, record it and emit its text; True if the row is finished."""
        job = row.job
        token = choose_row(job.sampler, logits, row.tokens, row.rng, self.never, row.text.produced)
        row.tokens.append(token)
        piece, finish = row.text.take(token)
        job.tokens_out[row.choice] = row.text.produced
        self.tokens_generated += 1
        job.send(row.choice, piece, finish, None)  # every token, its text perhaps still held back: clients see progress
        if finish is None:
            row.next = token
        return finish is not None

    def _retire(self, r: int, error: str | None = None) -> None:
        row = self.rows[r]
        self.rows[r] = None
        self.mask[r] = 0
        if row is None:
            return
        job = row.job
        job.done += 1
        if error is not None:
            job.send(row.choice, "", "error", error)

    # -- the scheduler --
    def _start(self, r: int, job: Job, choice: int) -> None:
        tokens = list(job.prompt) or [self.tokenizer.bos_id]
        job.prompt = tokens
        row = _Row(job, choice, RowText(self.tokenizer, job.stop, job.max_new), row_generator(job.seed, choice))
        self.rows[r] = row
        self._refill(r, row, tokens[-self.context_length :])

    def _refill(self, r: int, row: _Row, window: list[int]) -> None:
        """Prefill row ``r`` with ``window`` and take its next token (finishing the row if it ends)."""
        logits = self._prefill_row(r, window)
        row.filled = len(window)
        if self._take(row, logits):
            self._retire(r)

    def _admit(self) -> None:
        while True:
            with self.cond:
                while self.waiting and (self.waiting[0].cancelled or not self.waiting[0].pending):
                    self.waiting.popleft()
                free = next((r for r, row in enumerate(self.rows) if row is None), None)
                if free is None or not self.waiting:
                    return
                job = self.waiting[0]
                choice = job.pending.popleft()
            try:
                self._start(free, job, choice)
            except Exception as exc:  # noqa: BLE001 - a failed row is that job's error, not the server's
                self._retire(free, _message(exc))

    def _step(self) -> None:
        for r, row in enumerate(self.rows):
            if row is not None and row.job.cancelled:
                self._retire(r)
        used = [r for r, row in enumerate(self.rows) if row is not None]
        if not used:
            return
        # a row whose cache is full moves its window (the last half) and prefills again, as the loop does
        for r in used:
            row = self.rows[r]
            if row.filled >= self.context_length:
                self._refill(r, row, row.tokens[-max(1, self.context_length // 2) :])
        used = [r for r, row in enumerate(self.rows) if row is not None]
        if not used:
            return
        n = used[-1] + 1
        for r in range(n):
            row = self.rows[r]
            if row is None:  # an idle row in the batch: its mask stays empty and its output is ignored
                self.ids[r, 0] = self.tokenizer.pad_id
                self.pos[r, 0] = 0
                continue
            self.ids[r, 0] = row.next
            self.pos[r, 0] = row.filled
            self.mask[r, row.filled] = 1  # the new token's slot: the last one with a 1 is where the graph writes
        run, arg = self._decode_binding(n)
        run(arg, None)
        for r in used:
            row = self.rows[r]
            row.filled += 1
            try:
                finished = self._take(row, self.logits[r, 0])
            except Exception as exc:  # noqa: BLE001
                self._retire(r, _message(exc))
                continue
            if finished:
                self._retire(r)

    def _loop(self) -> None:
        while True:
            with self.cond:
                while not self.stopping and not self.waiting and not any(self.rows):
                    self.cond.wait()
                if self.stopping and not self.waiting and not any(self.rows):
                    return
            self._admit()
            try:
                self._step()
            except Exception as exc:  # noqa: BLE001 - onnxruntime failed a step: every row in it gets the error
                for r, row in enumerate(self.rows):
                    if row is not None:
                        self._retire(r, _message(exc))


class SerialEngine(_Engine):
    """One request at a time through the driver's own loop (graphs without shared buffers)."""

    def __init__(self, driver, max_batch: int = 1):
        self.driver, self.tokenizer = driver, driver.tokenizer
        self.context_length = driver.decoder.context_length
        self.max_batch = 1
        self.waiting: collections.deque[Job] = collections.deque()
        self.cond = threading.Condition()
        self.stopping = False
        self.tokens_generated = 0
        self.busy = False
        self.thread = threading.Thread(target=self._loop, name="gentool-serve-engine", daemon=True)

    def active(self) -> int:
        return int(self.busy)

    def _loop(self) -> None:
        while True:
            with self.cond:
                while not self.stopping and not self.waiting:
                    self.cond.wait()
                if not self.waiting:
                    return
                job = self.waiting.popleft()
            if job.cancelled:
                continue
            self.busy = True
            try:
                prompts = [job.prompt or [self.tokenizer.bos_id]] * job.n
                for i, piece, finish, count in stream_events(self.driver.decoder, self.tokenizer, prompts,
                                                             sampler=job.sampler, max_new_tokens=job.max_new,
                                                             seed=job.seed, stop=job.stop):
                    if job.cancelled:
                        break
                    self.tokens_generated += count - job.tokens_out[i]
                    job.tokens_out[i] = count
                    job.send(i, piece, finish, None)
            except Exception as exc:  # noqa: BLE001
                for i in range(job.n):
                    job.send(i, "", "error", _message(exc))
            finally:
                self.busy = False


def _message(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def make_engine(driver, max_batch: int = 8):
    """``RuntimeSpec.serve`` of the autoregressive family: continuous batching where the export's graph
    shares its KV buffers on the CPU, one request at a time otherwise."""
    d = driver.decoder
    if d.shared_buffers:
        return BatchEngine(driver, max_batch)
    return SerialEngine(driver)
