"""Tokenizers from a Hugging Face ``tokenizer.json`` (the ``tokenizers`` package; torch-free)."""

from __future__ import annotations

from pathlib import Path

from ..errors import GentoolError

EOS = "<|endoftext|>"
PAD = "<|pad|>"


class TextTokenizer:
    """Encode and decode text; refuses text it cannot represent instead of dropping it."""

    def __init__(self, tok, kind: str = ""):
        self.tok = tok
        self.kind = kind
        self.eos_id = tok.token_to_id(EOS)
        self.pad_id = tok.token_to_id(PAD)
        self.vocab_size = tok.get_vocab_size(with_added_tokens=True)

    @classmethod
    def from_file(cls, path: str | Path, kind: str = "") -> TextTokenizer:
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # noqa: BLE001
            raise GentoolError(f"cannot read tokenizer {str(path)!r}: {exc}") from None
        return cls(tok, kind)

    def save(self, path: str | Path) -> None:
        from ..files import write_text

        write_text(path, self.tok.to_str())

    def encode(self, text: str) -> list[int]:
        """Token ids for ``text``; a clear error naming any character the vocabulary lacks."""
        ids = self.tok.encode(text, add_special_tokens=False).ids
        if self.decode(ids) != text:
            missing = sorted({c for c in text if self.decode(self.tok.encode(c, add_special_tokens=False).ids) != c})
            shown = ", ".join(repr(c) for c in missing[:10]) or "some characters"
            raise GentoolError(
                f"the prompt has characters this model's {self.kind or ''} tokenizer does not know: {shown}; "
                "remove them, or train with data.tokenizer=byte (never out of vocabulary)".replace("  ", " ")
            )
        return ids

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=True)
