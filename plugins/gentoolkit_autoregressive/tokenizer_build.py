"""Building the three tokenizers, each saved as a Hugging Face ``tokenizer.json``.

* ``byte``: 256 byte symbols (id = byte value) in GPT-2's byte-level form, so
  no text is ever out of vocabulary;
* ``char``: one symbol per character of the training text;
* ``bpe``: byte-level BPE trained on the training text with ``tokenizers``.

All three add ``<|endoftext|>`` (between documents, and the end token) and
``<|pad|>`` (never produced; used for left padding).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .tokenizer import EOS, PAD, TextTokenizer

#: the files of a tokenizer that come across whole
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "generation_config.json")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def _byte_level(vocab: dict[str, int], merges: list) -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def byte_tokenizer() -> TextTokenizer:
    b2u = bytes_to_unicode()
    tok = _byte_level({b2u[b]: b for b in range(256)}, [])
    tok.add_special_tokens([EOS, PAD])
    return TextTokenizer(tok, "byte")


def char_tokenizer(docs: Sequence[str]) -> TextTokenizer:
    from tokenizers import Tokenizer, decoders, models

    chars = sorted(set().union(*map(set, docs)))
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(chars)}, merges=[]))
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens([EOS, PAD])
    return TextTokenizer(tok, "char")


def bpe_tokenizer(docs: Sequence[str], vocab_size: int) -> TextTokenizer:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[EOS, PAD],
        show_progress=False,
    )
    tok.train_from_iterator(docs, trainer)
    return TextTokenizer(tok, "bpe")


def build_tokenizer(kind: str, docs: Sequence[str], bpe_vocab_size: int = 512) -> TextTokenizer:
    if kind == "byte":
        return byte_tokenizer()
    if kind == "char":
        return char_tokenizer(docs)
    return bpe_tokenizer(docs, bpe_vocab_size)


def encode_corpus(tokenizer: TextTokenizer, docs: Sequence[str]) -> np.ndarray:
    """All documents as one int array, ``<|endoftext|>`` between documents.

    ``byte`` and ``char`` take a vectorized path that gives the same ids as
    ``tokenizer.json`` (a test checks it); ``bpe`` goes through ``tokenizers``.
    """
    parts: list[np.ndarray] = []
    if tokenizer.kind == "char":
        vocab = tokenizer.tok.get_vocab()
        table = {ord(c): i for c, i in vocab.items() if len(c) == 1}
        lut = np.full(max(table) + 1, -1, dtype=np.int64)
        for cp, i in table.items():
            lut[cp] = i
    for i, doc in enumerate(docs):
        if i:
            parts.append(np.array([tokenizer.eos_id], dtype=np.int64))
        if tokenizer.kind == "byte":
            parts.append(np.frombuffer(doc.encode("utf-8"), dtype=np.uint8).astype(np.int64))
        elif tokenizer.kind == "char":
            parts.append(lut[np.frombuffer(doc.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)])
        else:
            ids = [t for e in tokenizer.tok.encode_batch(doc.splitlines(keepends=True), add_special_tokens=False) for t in e.ids]
            parts.append(np.asarray(ids, dtype=np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
