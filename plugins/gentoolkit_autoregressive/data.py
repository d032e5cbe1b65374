"""Text data: a file, a folder of text files, or a registered text dataset (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gentoolkit.errors import DataError

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
        from gentoolkit.registry import resolve

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
    from .tokenizers_ import encode_data

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


def loss_report(loss: float, count: int, tok, ids: np.ndarray, source: str, whole: bool) -> dict:
    """``gentool eval``'s numbers from a summed-and-averaged cross-entropy over ``count`` tokens of ``ids``."""
    import math

    text = tok.decode(ids[1 : count + 1])
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
    }


def windows(ids: np.ndarray, labels: np.ndarray | None, block: int) -> tuple[int, np.ndarray, np.ndarray]:
    """The non-overlapping windows that ``gentool eval`` scores: ``(n, inputs [n, block], targets [n, block])``."""
    n = (len(ids) - 1) // block
    if n < 1:
        raise DataError("the evaluation data is shorter than one context window")
    targets = ids if labels is None else labels
    x = np.stack([ids[i * block : (i + 1) * block] for i in range(n)])
    y = np.stack([targets[i * block + 1 : (i + 1) * block + 1] for i in range(n)])
    return n, x, y
