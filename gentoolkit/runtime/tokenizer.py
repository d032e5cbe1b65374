"""Tokenizers from a Hugging Face ``tokenizer.json`` (the ``tokenizers`` package; torch-free)."""

from __future__ import annotations

from pathlib import Path

from ..errors import GentoolError

EOS = "<|endoftext|>"
PAD = "<|pad|>"


class TextTokenizer:
    """Encode and decode text; refuses text it cannot represent instead of dropping it."""

    def __init__(self, tok, kind: str = "", where: str = "the tokenizer"):
        self.tok = tok
        self.kind = kind
        self.eos_id = tok.token_to_id(EOS)
        self.pad_id = tok.token_to_id(PAD)
        self.vocab_size = tok.get_vocab_size(with_added_tokens=True)
        if self.eos_id is None or self.pad_id is None:
            raise GentoolError(f"{where} lacks the special tokens {EOS} and {PAD}; use the tokenizer.json "
                               "that training wrote")

    @classmethod
    def from_file(cls, path: str | Path, kind: str = "") -> TextTokenizer:
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # noqa: BLE001 - tokenizers raises its own Exception for any bad file
            detail = " ".join(str(exc).split())[:200]
            raise GentoolError(f"cannot read tokenizer {str(path)!r}: {detail}") from None
        return cls(tok, kind, where=repr(str(path)))

    def save(self, path: str | Path) -> None:
        from ..files import write_text

        write_text(path, self.tok.to_str())

    def encode(self, text: str) -> list[int]:
        """Token ids for ``text``; a clear error naming any character the vocabulary lacks."""
        ids = self.tok.encode(text, add_special_tokens=False).ids
        if self.decode(ids) != text:
            specials = [t.content for t in self.tok.get_added_tokens_decoder().values() if t.content in text]
            if specials:
                raise GentoolError(f"the prompt holds {', '.join(repr(t) for t in specials[:3])}, which this "
                                   "tokenizer reads as a special token, not text; remove it from the prompt")
            missing = sorted({c for c in text if self.decode(self.tok.encode(c, add_special_tokens=False).ids) != c})
            shown = ", ".join(repr(c) for c in missing[:10]) or "some characters"
            advice = ("train with data.tokenizer=byte (never out of vocabulary)" if self.kind != "byte"
                      else "the tokenizer file may have been edited; use the one training wrote")
            raise GentoolError(
                f"the prompt has characters this model's {self.kind or ''} tokenizer does not know: {shown}; "
                f"remove them, or {advice}".replace("  ", " ")
            )
        return ids

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=True)
