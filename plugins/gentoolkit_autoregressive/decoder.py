"""The exported graph as a decoder: the onnxruntime session, its KV caches and their buffers (numpy +
onnxruntime only).

A decoder makes a cache for a batch (:meth:`OrtDecoder.new_cache`, the kind chosen once, when the
decoder is made); a cache takes a prompt (``prefill``) and then one token per row and step
(``advance``). :mod:`.decode` runs the loop over them; :mod:`.serving` binds the same buffers
for continuous batching.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from gentoolkit.errors import GentoolError


def capacities(context_length: int, first: int = 16) -> list[int]:
    """The cache capacities a generation climbs: ``first``, then about 1.5 times the last (a multiple
    of 8), up to the context. A step never attends over more than a third of empty slots."""
    out = [min(first, context_length)]
    while out[-1] < context_length:
        out.append(min(context_length, (out[-1] * 3 // 2 + 7) // 8 * 8))
    return out


class _Memory:
    """The CPU decode path's memory for ``batch`` rows, kept by the decoder from one generation to the next.

    Two past buffers and one present buffer, each as large as the context, and one IO binding per
    capacity on the ladder (binding 19 tensors costs more than half a decode step). The arrays
    of a capacity are views of the front of those buffers; neighbouring capacities use different
    past buffers, so growing is one copy from one to the other. ``holder`` is a weak reference to
    the :class:`StaticCache` using it: a generation that is still alive keeps its memory.
    """

    def __init__(self, decoder: OrtDecoder, batch: int):
        H, D = decoder.kv_shape
        self.decoder, self.batch = decoder, batch
        self.holder: Callable[[], StaticCache | None] = lambda: None
        self.ladder = capacities(decoder.context_length)
        L2, ctx = len(decoder.past_names), decoder.context_length
        # past must hold finite numbers in unfilled slots (masked: exactly zero weight, but 0 * NaN is NaN)
        self.pasts = [np.zeros(L2 * batch * H * ctx * D, np.float32) for _ in range(2)]
        self.present = np.zeros(L2 * batch * H * (ctx + 1) * D, np.float32)
        self.input_ids = np.zeros((batch, 1), np.int64)
        self.position_ids = np.zeros((batch, 1), np.int64)
        self.logits = np.zeros((batch, 1, decoder.vocab_size), np.float32)
        self.last_logits = self.logits[:, 0]
        self.slots: dict[int, _Slots] = {}

    def get(self, capacity: int) -> _Slots:
        """The bound arrays for ``capacity`` slots (a ladder entry), their mask cleared."""
        slots = self.slots.get(capacity)
        if slots is None:
            slots = self.slots[capacity] = _Slots(self, capacity)
        else:
            slots.mask[:, :capacity] = 0
        return slots


class _Slots:
    """One capacity's arrays (views of :class:`_Memory`'s buffers) and the IO binding of every graph
    input and output to them."""

    def __init__(self, memory: _Memory, capacity: int):
        import onnxruntime as ort

        d, B = memory.decoder, memory.batch
        H, D = d.kv_shape
        L2 = len(d.past_names)
        self.capacity = capacity
        past = memory.pasts[memory.ladder.index(capacity) % 2]
        self.past = past[: L2 * B * H * capacity * D].reshape(L2, B, H, capacity, D)
        present = memory.present[: L2 * B * H * (capacity + 1) * D].reshape(L2, B, H, capacity + 1, D)
        self.new_kv = present[:, :, :, capacity]  # the new token's key and value in every layer
        self.slot_views = [self.past[:, :, :, i] for i in range(capacity)]  # a copy into a view made once
        self.mask = np.zeros((B, capacity + 1), np.int64)  # the slots, then the new token's own column
        self.mask[:, capacity] = 1
        self.input_ids, self.position_ids, self.last_logits = memory.input_ids, memory.position_ids, memory.last_logits
        # one row: element writes, cheaper than an in-place add or a column write
        self.single_position = memory.position_ids.reshape(-1) if B == 1 else None
        self.single_mask = self.mask.reshape(-1) if B == 1 else None
        binding = d.session.io_binding()
        values = []  # the OrtValues share the numpy arrays' memory and must live as long as the binding

        def bind(name, array, output=False):
            values.append(ort.OrtValue.ortvalue_from_numpy(array))
            (binding.bind_ortvalue_output if output else binding.bind_ortvalue_input)(name, values[-1])

        bind("input_ids", memory.input_ids)
        bind("attention_mask", self.mask)
        bind("position_ids", memory.position_ids)
        for i, name in enumerate(d.past_names):
            bind(name, self.past[i])
        bind("logits", memory.logits, output=True)
        for i, name in enumerate(d.present_names):
            bind(name, present[i], output=True)
        self._values = values
        self.run, self.binding = bound_run(d.session, binding)


def bound_run(session, binding):
    """``(run, arg)`` such that ``run(arg, None)`` runs ``binding``: onnxruntime's C++ entry where this
    version has one, else the public ``InferenceSession.run_with_iobinding``, which checks for WebGPU
    graph capture on every call (its cost per decode step is in docs/performance.md)."""
    inner, raw = getattr(session, "_sess", None), getattr(binding, "_iobinding", None)
    if raw is not None and callable(getattr(inner, "run_with_iobinding", None)):
        return inner.run_with_iobinding, raw
    return session.run_with_iobinding, binding


def bind_shared_kv(bindings, decoder: OrtDecoder, kv: np.ndarray, value: Callable) -> None:
    """Bind ``kv[i]`` (layer i's key or value buffer) as both ``past`` and ``present`` of every binding:
    ``GroupQueryAttention`` then writes each new key and value into the slot after the last filled one."""
    for i, (past, present) in enumerate(zip(decoder.past_names, decoder.present_names)):
        shared = value(kv[i])
        for b in bindings:
            b.bind_ortvalue_input(past, shared)
            b.bind_ortvalue_output(present, shared)


def prefill_bound(decoder: OrtDecoder, binding, arg, one, input_ids: np.ndarray, attention_mask: np.ndarray,
                  position_ids: np.ndarray) -> np.ndarray:
    """Run a prompt through ``binding`` (its KV buffers bound already, ``arg`` its :func:`bound_run` handle,
    ``one`` an OrtValue of 1); the last position's logits ``[batch, vocab]`` (a copy). A graph with the
    optional input ``logits_to_keep`` (the fused one) computes that position's alone; otherwise every
    position's logits come into one array of this call's own, let go on return."""
    batch, n = input_ids.shape
    binding.bind_cpu_input("input_ids", np.ascontiguousarray(input_ids))
    binding.bind_cpu_input("attention_mask", np.ascontiguousarray(attention_mask))
    binding.bind_cpu_input("position_ids", np.ascontiguousarray(position_ids))
    kept = 1 if decoder.keeps_logits else n
    if kept == 1:  # an OrtValue: bind_cpu_input looks names up among the inputs that are not initializers
        binding.bind_ortvalue_input("logits_to_keep", one)
    logits = np.empty((batch, kept, decoder.vocab_size), np.float32)
    binding.bind_output("logits", "cpu", 0, np.float32, list(logits.shape), logits.ctypes.data)
    bound_run(decoder.session, binding)[0](arg, None)
    return logits[:, -1].copy()


class StaticCache:
    """The KV cache of one generation in fixed-shape buffers, bound to onnxruntime once (the CPU decode path).

    The exported graph computes ``present = Concat(past, new)`` and masks attention with
    ``attention_mask``. Fed a past of ``capacity`` slots (the unfilled ones masked out), its
    shapes stay the same from step to step, so every input and output is bound to a numpy
    buffer once and a step is one ``run_with_iobinding`` call. After each step the new token's
    key and value (the last slot of ``present``) move into their slot of ``past``: one numpy
    copy for every layer. Attention does not depend on the order of the slots (positions
    come from ``position_ids``), and a masked slot gets exactly zero weight, so the tokens
    are those of the growing cache. Capacity climbs a ladder (:func:`capacities`) as slots
    fill, so a short generation does not attend over the whole context. The memory belongs
    to the decoder: a generation holds it while it lives, then the next one reuses it.
    """

    def __init__(self, decoder: OrtDecoder, batch: int):
        """An empty cache for ``batch`` rows."""
        self.decoder = decoder
        self.batch = batch
        self.memory = decoder.memory(batch, holder=self)
        self.length = 0
        self.slots: _Slots | None = None  # chosen by the prefill, by the prompt's length

    def _empty(self, filled: int) -> None:
        """No slot filled, and room for at least ``filled + 1``."""
        ladder = self.memory.ladder
        self.slots = self.memory.get(next(c for c in ladder if c > filled or c == self.decoder.context_length))
        self.length = 0

    def prefill(self, input_ids: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        """Run the prompt on an empty past (one plain ``session.run``), its keys and values then moved into
        the fixed buffers; the last position's logits ``[batch, vocab]``. A one-token prompt is a decode step."""
        d, n = self.decoder, input_ids.shape[1]
        self._empty(n)
        if n == 1:
            return self.advance(input_ids[:, 0], position_ids, attention_mask[:, -1])
        feeds = dict(zip(d.past_names, d.empty_past(self.batch)), input_ids=input_ids, attention_mask=attention_mask,
                     position_ids=position_ids)
        out = d.session.run(d.output_names, feeds)
        self.load(out[1:], attention_mask, position_ids[:, -1:])
        return out[0][:, -1]

    def load(self, present: list[np.ndarray], attention_mask: np.ndarray, position_ids: np.ndarray) -> None:
        """Fill the first slots from a prefill: its ``present``, its mask and the positions of its last tokens."""
        b, n = self.slots, attention_mask.shape[1]
        for i, value in enumerate(present):
            b.past[i, :, :, :n] = value
        b.mask[:, :n] = attention_mask
        b.position_ids[:] = position_ids
        self.length = n

    @property
    def capacity(self) -> int:
        return self.slots.capacity

    def _grow(self) -> _Slots:
        old, n, ladder = self.slots, self.length, self.memory.ladder
        if old.capacity == ladder[-1]:
            raise ValueError(f"the context ({n} tokens) is full: prefill again with fewer")
        b = self.slots = self.memory.get(ladder[ladder.index(old.capacity) + 1])
        b.past[:, :, :, :n] = old.past[:, :, :, :n]
        b.mask[:, :n] = old.mask[:, :n]
        return b

    def advance(self, new: np.ndarray, position_ids: np.ndarray | None = None, mask_column=None) -> np.ndarray:
        """Feed one token per row (``new``, shape ``[batch]``) at the next position (or ``position_ids``),
        its slot's mask 1 (or ``mask_column``); returns the logits ``[batch, vocab]``, a view of the bound
        buffer that the next step overwrites."""
        b, slot = self.slots, self.length
        if slot == b.capacity:
            b = self._grow()
        b.input_ids[:, 0] = new
        if position_ids is not None:
            b.position_ids[:] = position_ids
        elif b.single_position is not None:
            b.single_position[0] += 1
        else:
            np.add(b.position_ids, 1, out=b.position_ids)
        b.run(b.binding, None)
        b.slot_views[slot][...] = b.new_kv
        if mask_column is not None:
            b.mask[:, slot] = mask_column
        elif b.single_mask is not None:
            b.single_mask[slot] = 1
        else:
            b.mask[:, slot] = 1
        self.length = slot + 1
        return b.last_logits


def lazy_zeros(shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """A zeroed array whose memory becomes resident page by page as it is written, in small pages:
    numpy asks for huge pages on large arrays, and a buffer filled at the front of every head's
    block would then hold 2 MB per head and layer from the first token on."""
    import mmap

    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buf = mmap.mmap(-1, max(size, 1))
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        buf.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape))).reshape(shape)


class _SharedMemory:
    """The fused graph's decode memory for ``batch`` rows: one context-long buffer per ``past``/``present``
    pair, bound as both (``GroupQueryAttention`` writes the new token's key and value into its slot
    and attends up to it), the mask over every slot, and one IO binding for every step."""

    def __init__(self, decoder: OrtDecoder, batch: int):
        import onnxruntime as ort

        H, D = decoder.kv_shape
        L2, ctx = len(decoder.past_names), decoder.context_length
        self.decoder, self.batch = decoder, batch
        self.holder: Callable[[], SharedCache | None] = lambda: None
        self.kv = lazy_zeros((L2, batch, H, ctx, D))  # resident only as slots fill
        self.mask = np.zeros((batch, ctx), np.int64)
        self.input_ids = np.zeros((batch, 1), np.int64)
        self.position_ids = np.zeros((batch, 1), np.int64)
        self.logits = np.zeros((batch, 1, decoder.vocab_size), np.float32)
        self.last_logits = self.logits[:, 0]
        # one row: flat views, whose elements a step sets as Python numbers (cheaper than array stores)
        self.single = (self.input_ids.reshape(-1), self.position_ids.reshape(-1), self.mask.reshape(-1)) \
            if batch == 1 else None
        binding = decoder.session.io_binding()
        values = []

        def value(array):
            values.append(ort.OrtValue.ortvalue_from_numpy(array))
            return values[-1]

        binding.bind_ortvalue_input("input_ids", value(self.input_ids))
        binding.bind_ortvalue_input("attention_mask", value(self.mask))
        binding.bind_ortvalue_input("position_ids", value(self.position_ids))
        binding.bind_ortvalue_output("logits", value(self.logits))
        # a prefill writes its keys and values into the same buffers: its binding holds them from the
        # start, and a prefill binds only the prompt and its logits
        prefill = decoder.session.io_binding()
        bind_shared_kv((binding, prefill), decoder, self.kv, value)
        self._values = values
        self.run, self.binding = bound_run(decoder.session, binding)
        self.prefill_binding = prefill
        self.one = value(np.array(1, np.int64))
        self.prefill_arg = bound_run(decoder.session, prefill)[1]


class SharedCache:
    """The KV cache of one generation in the fused graph's shared buffers (the CPU decode path of
    ``graph: fused``): a step writes the token, its position and its slot's mask column, and runs;
    nothing is copied, and attention reads only the slots filled so far."""

    def __init__(self, decoder: OrtDecoder, batch: int):
        self.memory = decoder.memory(batch, holder=self)
        self.memory.mask[:] = 0  # kept memory holds the last generation's slots
        self.length = 0
        self.context_length = decoder.context_length

    def prefill(self, input_ids: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        """Run the prompt (``attention_mask`` as wide as it: an empty cache), its keys and values written
        straight into the shared buffers' first slots; returns the last position's logits ``[batch, vocab]``
        (:func:`prefill_bound`). A one-token prompt is a decode step."""
        m, n = self.memory, input_ids.shape[1]
        if n == 1:
            m.mask[:] = 0
            self.length = 0
            return self.advance(input_ids[:, 0], position_ids, attention_mask[:, -1])
        logits = prefill_bound(m.decoder, m.prefill_binding, m.prefill_arg, m.one, input_ids, attention_mask,
                               position_ids)
        m.mask[:, :n] = attention_mask
        m.mask[:, n:] = 0
        m.position_ids[:] = position_ids[:, -1:]
        self.length = n
        return logits

    def advance(self, new: np.ndarray, position_ids: np.ndarray | None = None, mask_column=None) -> np.ndarray:
        """As :meth:`StaticCache.advance`."""
        m, slot = self.memory, self.length
        if slot == self.context_length:
            raise ValueError(f"the context ({slot} tokens) is full: prefill again with fewer")
        if m.single is not None and position_ids is None:
            ids, pos, mask = m.single
            ids[0] = new[0]
            pos[0] += 1
            mask[slot] = 1
        else:
            m.input_ids[:, 0] = new
            if position_ids is not None:
                m.position_ids[:] = position_ids
            else:
                np.add(m.position_ids, 1, out=m.position_ids)
            m.mask[:, slot] = 1  # the new token's slot: the last one with a 1 is where the graph writes it
        m.run(m.binding, None)
        if mask_column is not None and not np.all(mask_column):
            m.mask[:, slot] = mask_column
        self.length = slot + 1
        return m.last_logits


class OrtDecoder:
    """The exported graph as a decoder for the decode loop (:mod:`.decode`)."""

    def __init__(self, session, runtime: dict[str, Any], fixed_buffers: bool = True, shared_buffers: bool = False):
        """The cache is chosen here, once: on the CPU, fixed buffers bound once (:class:`StaticCache`, or
        with ``shared_buffers``, the fused graph's :class:`SharedCache`); on a GPU, or with
        ``fixed_buffers=False``, a cache that grows by one slot per step through IO binding, as
        onnxruntime-genai does (kept in device memory between steps)."""
        self.session = session
        self.context_length = int(runtime["context_length"])
        n = int(runtime["n_layer"])
        self.past_names = [f"past_key_values.{i}.{k}" for i in range(n) for k in ("key", "value")]
        self.present_names = [f"present.{i}.{k}" for i in range(n) for k in ("key", "value")]
        self.output_names = ["logits"] + self.present_names
        self.kv_shape = (int(runtime["n_kv_head"]), int(runtime["head_dim"]))
        self.vocab_size = int(runtime["vocab_size"])
        # the fused graph's optional input (an initializer onnxruntime lets a run override)
        self.keeps_logits = "logits_to_keep" in {i.name for i in session.get_overridable_initializers()}
        self.device = "cuda" if "CUDAExecutionProvider" in session.get_providers() else "cpu"
        self._empty: dict[int, list[np.ndarray]] = {}
        fixed = fixed_buffers and self.device == "cpu"
        #: the graph shares past and present buffers and this process binds them (continuous batching may)
        self.shared_buffers = fixed and shared_buffers
        self.cache_kind = "shared" if self.shared_buffers else "static" if fixed else "growing"
        self._memories: list[_Memory | _SharedMemory] = []
        self._lock = threading.Lock()  # one loaded model may generate in several threads at once

    def new_cache(self, batch: int):
        """An empty cache for ``batch`` rows, of the kind chosen when the decoder was made."""
        if self.cache_kind == "shared":
            return SharedCache(self, batch)
        if self.cache_kind == "static":
            return StaticCache(self, batch)
        from .decode import GrowingCache

        return GrowingCache(self.forward, self.empty_past(batch), batch, self.context_length)

    def memory(self, batch: int, holder):
        """Fixed-buffer memory for ``batch`` rows that no live generation holds (a kept one, or a new
        one), now held by ``holder``. Generations that run interleaved or in other threads each get
        their own; memory of other batch sizes is let go once free."""
        with self._lock:
            free = [m for m in self._memories if m.holder() is None]
            memory = next((m for m in free if m.batch == batch), None)
            if memory is None:
                memory = (_SharedMemory if self.shared_buffers else _Memory)(self, batch)
                self._memories = [m for m in self._memories if m not in free] + [memory]
            memory.holder = weakref.ref(holder)
            return memory

    def empty_past(self, batch: int) -> list[np.ndarray]:
        if batch not in self._empty:
            self._empty[batch] = [np.zeros((batch, self.kv_shape[0], 0, self.kv_shape[1]), np.float32)] \
                * len(self.past_names)
        return self._empty[batch]

    def forward(self, input_ids, attention_mask, position_ids, past) -> tuple[np.ndarray, list]:
        """One run of the graph with IO binding, which keeps the cache where onnxruntime computes (OrtValues
        in device memory on a GPU) from step to step; only the last position's logits come back to numpy."""
        binding = self.session.io_binding()
        binding.bind_cpu_input("input_ids", np.ascontiguousarray(input_ids))
        binding.bind_cpu_input("attention_mask", np.ascontiguousarray(attention_mask))
        binding.bind_cpu_input("position_ids", np.ascontiguousarray(position_ids))
        for name, value in zip(self.past_names, past):
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(name, value)
            else:
                binding.bind_ortvalue_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, self.device)
        self.session.run_with_iobinding(binding)
        logits, *present = binding.get_outputs()
        return logits.numpy()[:, -1], present


RUNTIME_FIELDS = {"context_length": int, "n_layer": int, "n_kv_head": int, "head_dim": int, "vocab_size": int,
                  "tokenizer_kind": (str, None)}


def check_decoder_io(io: dict[str, Any], rt: dict[str, Any], where) -> None:
    """The manifest's ``runtime`` numbers must be those of its graph's inputs and outputs."""
    n, heads, dim = rt["n_layer"], rt["n_kv_head"], rt["head_dim"]
    want = {f"past_key_values.{i}.{k}" for i in range(n) for k in ("key", "value")}
    shapes = {e["name"]: e["shape"] for e in io["inputs"] + io["outputs"]}
    have = {name for name in shapes if name.startswith("past_key_values.")}
    problems = []
    if want != have or "logits" not in shapes:
        problems.append(f"n_layer {n} against {len(have) // 2} layers of past inputs")
    for name in sorted(have & want):
        shape = shapes[name]
        if len(shape) != 4 or shape[1] != heads or shape[3] != dim:
            problems.append(f"n_kv_head {heads} and head_dim {dim} against {name} {shape}")
            break
    logits = shapes.get("logits", [])
    if logits and isinstance(logits[-1], int) and logits[-1] != rt["vocab_size"]:
        problems.append(f"vocab_size {rt['vocab_size']} against logits {logits}")
    if problems:
        raise GentoolError(f"{where}: the manifest's runtime contradicts the graph ({problems[0]}); export the run again")
