"""Text data: a file, a folder of text files, or a registered text dataset (no downloads)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gentoolkit.errors import DataError

from .tokenizer_build import encode_corpus

TEXT_SUFFIXES = {".txt", ".md", ".rst", ".py", ".text", ".csv", ".json", ".html", ""}


def pydoc_topics() -> list[str]:
    """The text of Python's documentation topics, shipped with every Python (``pydoc_data``)."""
    from pydoc_data.topics import topics

    return [topics[k].strip() for k in sorted(topics)]


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {str(path)!r}: {exc.strerror}") from None
    if b"\x00" in raw:
        raise DataError(f"{str(path)!r} looks binary (it has NUL bytes); give a UTF-8 text file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start}); convert it to UTF-8") from None


def load_documents(source: str | None) -> list[str]:
    """Documents for ``data.path``: ``None`` is the built-in corpus (dataset ``pydoc``)."""
    if source is None:
        source = "pydoc"
    path = Path(source)
    if path.is_file():
        docs = [_read_text(path)]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise DataError(f"folder {source!r} has no text files (.txt, .md, ...)")
        docs = [_read_text(p) for p in files]
    else:
        from gentoolkit import get_registries
        from gentoolkit.plugin.specs import resolve

        datasets = get_registries().datasets
        if source not in datasets:
            text_sets = ", ".join(s.name for s in datasets if s.kind == "text") or "none"
            raise DataError(f"--data {source!r} is neither a file, a folder nor a dataset; text datasets: {text_sets}")
        spec = datasets.get(source)
        if spec.kind != "text":
            raise DataError(f"dataset {source!r} holds {spec.kind}, not text; pick a text dataset for this model")
        docs = list(resolve(spec.load)())
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise DataError(f"the data {source!r} is empty; give it some text")
    return docs


def load_conversations(source: str | None) -> list[list[dict]] | None:
    """The conversations of a ``.jsonl`` file whose lines are ``{"messages": [{"role", "content"}, ...]}``,
    or None when ``source`` is not such a file (plain text)."""
    import json

    if source is None or Path(source).suffix.lower() != ".jsonl" or not Path(source).is_file():
        return None
    conversations = []
    for n, line in enumerate(_read_text(Path(source)).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}:{n} is not JSON ({exc.msg})") from None
        messages = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in messages):
            raise DataError(f'{source}:{n} must be {{"messages": [{{"role": ..., "content": ...}}, ...]}}')
        if not any(m["role"] == "assistant" for m in messages):
            raise DataError(f"{source}:{n} has no assistant turn to learn from")
        conversations.append(messages)
    if not conversations:
        raise DataError(f"{source} holds no conversations")
    return conversations


def split(ids: np.ndarray, val_fraction: float, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Train on the head, validate on the contiguous tail (as nanoGPT does)."""
    n = int(len(ids) * (1 - val_fraction))
    train, val = ids[:n], ids[n:]
    if len(train) <= block_size + 1 or len(val) <= block_size + 1:
        raise DataError(
            f"the data has {len(ids)} tokens: too little for model.block_size={block_size} "
            f"with data.val_fraction={val_fraction}; give more text or lower model.block_size"
        )
    return train, val


def evaluation_tokens(tok, data_cfg: dict, block: int, data: str | None) -> tuple[np.ndarray, np.ndarray | None, str]:
    """``(ids, labels, source)`` that ``gentool eval`` scores: the validation split of the run's data
    (``data_cfg``: its ``[data]`` section) or, with ``data``, the whole of that file, folder or dataset.
    ``labels`` is -100 where nothing is learned (conversations' non-assistant tokens), else None.
    The same for a run (PyTorch) and an export (onnxruntime), so both give the same number."""
    path = data_cfg.get("path") if data is None else data
    docs = None
    if data is not None and load_conversations(data) is None:
        docs = load_documents(data)
        for d in docs:
            tok.encode("".join(sorted(set(d))))  # a clear error for unknown characters
    ids, mask = encode_data(tok, path, docs)
    labels = None if mask is None else np.where(mask > 0, ids, -100)
    if data is not None:
        return ids, labels, data
    _, val = split(ids, data_cfg.get("val_fraction", 0.1), block)
    labels = None if labels is None else labels[len(ids) - len(val):]
    return val, labels, f"validation split of {path or 'pydoc'}"


def loss_report(loss: float, count: int, tok, ids: np.ndarray, source: str, whole: bool,
                spans: tuple[int, int, int] | None = None) -> dict:
    """``gentool eval``'s numbers from a summed-and-averaged cross-entropy over ``count`` tokens of ``ids``;
    ``spans``: ``(windows, window, stride)`` of :func:`windows`."""
    import math

    text = tok.decode(ids[1 : count + 1])
    windowed = {} if spans is None else dict(zip(("windows", "window", "stride"), spans))
    return {
        "val_loss": loss,
        "perplexity": math.exp(loss),
        "bits_per_token": loss / math.log(2),
        "bits_per_byte": loss * count / max(1, len(text.encode("utf-8"))) / math.log(2),
        "bits_per_char": loss * count / max(1, len(text)) / math.log(2),
        "tokens": count,
        "data": source,
        "measured_on": f"the whole {source} ({count:,} tokens)" if whole else f"the whole of {source} ({count:,} tokens)",
        "tokenizer": tok.kind,
        **windowed,
    }


def eval_window(context: int, window: int | None = None, stride: int | None = None) -> tuple[int, int]:
    """``gentool eval``'s ``--window`` (default: the model's context) and ``--stride`` (default: the window,
    windows side by side), checked against the context."""
    w = context if window is None else int(window)
    if not 1 <= w <= context:
        raise DataError(f"--window {w} does not fit the model's context of {context} tokens; give 1 to {context}")
    s = w if stride is None else int(stride)
    if not 1 <= s <= w:
        raise DataError(f"--stride {s} must be 1 to the window ({w} tokens): a longer one would skip tokens")
    return w, s


def window_starts(length: int, block: int, stride: int | None = None) -> tuple[list[int], int]:
    """Where the windows of :func:`windows` start in ``length`` token ids, and their length."""
    if length < 2:
        raise DataError("the evaluation data has fewer than 2 tokens; give a longer text")
    w = min(block, length - 1)
    starts = list(range(0, length - 1 - w + 1, w if stride is None else min(stride, w)))
    if starts[-1] + w < length - 1:
        starts.append(length - 1 - w)  # the tail: a last window that ends with the text
    return starts, w


def windows(ids: np.ndarray, labels: np.ndarray | None, block: int,
            stride: int | None = None) -> tuple[int, np.ndarray, np.ndarray]:
    """The windows that ``gentool eval`` scores: ``(n, inputs [n, w], targets [n, w])``, ``w`` = ``block``, or
    the whole text in one shorter window where it has fewer tokens. Sliding perplexity, as transformers'
    guide computes it: a window starts every ``stride`` tokens (default ``block``: side by side), the last
    one ends with the text, and each token is a target once: the targets a window shares with the windows
    before it are -100 (they are its context, at least ``block - stride`` tokens of it)."""
    starts, w = window_starts(len(ids), block, stride)
    targets = ids if labels is None else labels
    x = np.stack([ids[b : b + w] for b in starts])
    y = np.stack([targets[b + 1 : b + w + 1] for b in starts])
    done = 0  # the targets up to this index are scored
    for i, b in enumerate(starts):
        y[i, : max(0, done - b)] = -100
        done = b + w
    return len(starts), x, y


def encode_data(tokenizer, source: str | None, docs: Sequence[str] | None = None
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """``data.path`` as token ids, and for conversations a mask of the tokens to learn (the assistant's).

    Plain text: every document, ``encode_corpus``'s way, and no mask. A ``.jsonl`` of
    ``{"messages": [...]}``: each conversation through the tokenizer's chat template, one after
    the other, with 1 on the tokens of the assistant's turns (their end-of-turn token included)
    and 0 elsewhere, so that the loss is the assistant's alone.
    """
    from .templates import assistant_spans

    conversations = load_conversations(source)
    if conversations is None:
        return encode_corpus(tokenizer, docs if docs is not None else load_documents(source)), None
    if not tokenizer.chat_template:
        raise DataError(f"{source} holds conversations, but the tokenizer has no chat template to render them; "
                        "start from a model that has one (--init)")
    ids: list[int] = []
    mask: list[int] = []
    specials = tokenizer.special_texts()
    for messages in conversations:
        text, spans = assistant_spans(tokenizer.chat_template, messages, specials)
        enc = tokenizer.tok.encode(text, add_special_tokens=False)
        ids += enc.ids
        mask += [int(any(a <= s and e <= b and e > s for a, b in spans)) for s, e in enc.offsets]
    return np.asarray(ids, dtype=np.int64), np.asarray(mask, dtype=np.int64)
