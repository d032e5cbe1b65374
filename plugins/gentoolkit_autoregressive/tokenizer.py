"""Tokenizers from a Hugging Face ``tokenizer.json`` (the ``tokenizers`` package; torch-free).

The special tokens come from the files Hugging Face keeps beside it, read as transformers
reads them: ``tokenizer_config.json`` (``bos_token``, ``eos_token``, ``pad_token``,
``unk_token``, ``chat_template``), ``generation_config.json`` (``eos_token_id``, which may be
a list, ``bos_token_id``, ``pad_token_id``) and ``config.json``. Runs trained before those
files existed, and tokenizers gentoolkit built itself, use ``<|endoftext|>`` (end) and
``<|pad|>`` (padding, never generated).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gentoolkit.errors import GentoolError

EOS = "<|endoftext|>"
PAD = "<|pad|>"
CONFIG = "tokenizer_config.json"


@dataclass
class Specials:
    """The special tokens of a model, as ids."""

    eos_ids: tuple[int, ...] = ()  # generation stops at any of them
    bos_id: int | None = None  # starts an empty prompt (and is added by the tokenizer where it adds one)
    pad_id: int | None = None  # fills left padding (masked out)
    unk_id: int | None = None
    chat_template: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _read(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GentoolError(f"cannot read {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def _token_text(value) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _ids(value) -> tuple[int, ...]:
    values = value if isinstance(value, list) else [value]
    return tuple(v for v in values if isinstance(v, int) and not isinstance(v, bool) and v >= 0)


def chat_template_of(folder: Path, config: dict) -> str | None:
    """The chat template: ``chat_template.jinja`` beside the tokenizer, or ``tokenizer_config.json``'s
    ``chat_template`` (a string, or a list of named templates of which ``default`` is taken)."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    template = config.get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    return template if isinstance(template, str) else None


def read_specials(folder: Path, tok) -> Specials:
    """The special tokens of the tokenizer in ``folder`` (``tok``: its ``tokenizers.Tokenizer``)."""
    tcfg, gcfg, mcfg = _read(folder / CONFIG), _read(folder / "generation_config.json"), _read(folder / "config.json")

    def by_text(key: str) -> int | None:
        text = _token_text(tcfg.get(key))
        return tok.token_to_id(text) if text is not None else None

    eos = _ids(gcfg.get("eos_token_id")) or _ids(by_text("eos_token")) or _ids(mcfg.get("eos_token_id"))
    bos = next(iter(_ids(gcfg.get("bos_token_id")) or _ids(by_text("bos_token")) or _ids(mcfg.get("bos_token_id"))), None)
    pad = next(iter(_ids(gcfg.get("pad_token_id")) or _ids(by_text("pad_token")) or _ids(mcfg.get("pad_token_id"))), None)
    if not eos and not tcfg and tok.token_to_id(EOS) is not None:  # a tokenizer gentoolkit built
        eos, bos = (tok.token_to_id(EOS),), tok.token_to_id(EOS)
    if pad is None and not tcfg:
        pad = tok.token_to_id(PAD)
    return Specials(eos_ids=eos, bos_id=bos, pad_id=pad, unk_id=by_text("unk_token"),
                    chat_template=chat_template_of(folder, tcfg))


class TextTokenizer:
    """Encode and decode text; refuses text it cannot represent instead of dropping it.

    ``eos_ids`` end a generation; ``pad_id`` fills left padding; ``never_id`` is a token no
    sampler may pick (a padding token that is not also a real one, as gentoolkit's own
    ``<|pad|>``), or None.
    """

    def __init__(self, tok, kind: str = "", where: str = "the tokenizer", specials: Specials | None = None):
        self.tok = tok
        self.kind = kind
        self.vocab_size = tok.get_vocab_size(with_added_tokens=True)
        self._singles: dict[int, str] = {}
        #: the bytes of one token, where a token's text is always the same bytes (a byte-level
        #: decoder, GPT-2's); None otherwise. Streaming then decodes UTF-8 incrementally itself.
        self.token_bytes = self._bytes_of if _is_byte_level(tok) else None
        self._bytes: dict[int, bytes] = {}
        self._skipped = {i for i, t in tok.get_added_tokens_decoder().items() if t.special}
        if specials is None:
            specials = Specials(eos_ids=tuple(i for i in (tok.token_to_id(EOS),) if i is not None),
                                bos_id=tok.token_to_id(EOS), pad_id=tok.token_to_id(PAD))
        self.specials = specials
        if not specials.eos_ids:
            raise GentoolError(f"{where} names no end-of-text token (eos_token in tokenizer_config.json, or "
                               f"eos_token_id in generation_config.json); add one, or use the tokenizer training wrote")
        bad = [i for i in (*specials.eos_ids, specials.bos_id, specials.pad_id) if i is not None and i >= self.vocab_size]
        if bad:
            raise GentoolError(f"{where}: special token id {bad[0]} is outside its vocabulary of {self.vocab_size}")
        self.eos_ids = specials.eos_ids
        self.eos_id = specials.eos_ids[0]
        self.bos_id = specials.bos_id if specials.bos_id is not None else self.eos_id
        # padding is masked out: without a padding token of its own a model pads with its end token
        self.pad_id = specials.pad_id if specials.pad_id is not None else self.eos_id
        self.never_id = self.pad_id if self.pad_id not in self.eos_ids else None
        self.chat_template = specials.chat_template

    def special_texts(self) -> dict[str, str | None]:
        """The special tokens as text, the variables a chat template reads (``bos_token``, ``eos_token``, ...)."""
        text = lambda i: self.tok.id_to_token(i) if i is not None else None  # noqa: E731
        return {"bos_token": text(self.bos_id), "eos_token": text(self.eos_id), "pad_token": text(self.pad_id),
                "unk_token": text(self.specials.unk_id)}

    def chat_ids(self, messages, add_generation_prompt: bool = True) -> list[int]:
        """The token ids of ``messages`` under the chat template, as transformers' ``apply_chat_template``
        gives them (the template writes its own special tokens)."""
        from .templates import render

        text = render(self.chat_template, messages, add_generation_prompt=add_generation_prompt,
                      specials=self.special_texts())
        return self.tok.encode(text, add_special_tokens=False).ids

    @classmethod
    def from_file(cls, path: str | Path, kind: str = "") -> TextTokenizer:
        from tokenizers import Tokenizer

        path = Path(path)
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # noqa: BLE001 - tokenizers raises its own Exception for any bad file
            detail = " ".join(str(exc).split())[:200]
            raise GentoolError(f"cannot read tokenizer {str(path)!r}: {detail}") from None
        return cls(tok, kind, where=repr(str(path)), specials=read_specials(path.parent, tok))

    def save(self, path: str | Path) -> None:
        from gentoolkit.files import write_text

        write_text(path, self.tok.to_str())

    def encode(self, text: str, special: bool = True) -> list[int]:
        """Token ids for ``text``, with the special tokens the tokenizer adds itself (a BOS, for Llama's)
        unless ``special`` is false; a clear error naming any character the vocabulary lacks."""
        ids = self.tok.encode(text, add_special_tokens=special).ids
        if self.decode(ids) != text:
            specials = [t.content for t in self.tok.get_added_tokens_decoder().values() if t.content in text]
            if specials:
                raise GentoolError(f"the prompt holds {', '.join(repr(t) for t in specials[:3])}, which this "
                                   "tokenizer reads as a special token, not text; remove it from the prompt")
            missing = sorted({c for c in text if self.decode(self.tok.encode(c, add_special_tokens=False).ids) != c})
            if not missing and self.tok.decode(ids, skip_special_tokens=False).strip() == text.strip():
                return ids  # only leading or trailing spaces the tokenizer normalizes (sentencepiece's)
            shown = ", ".join(repr(c) for c in missing[:10]) or "some characters"
            advice = ("train with data.tokenizer=byte (never out of vocabulary)" if self.kind not in ("byte", "hf")
                      else "the tokenizer file may have been edited; use the one training wrote")
            raise GentoolError(
                f"the prompt has characters this model's {self.kind or ''} tokenizer does not know: {shown}; "
                f"remove them, or {advice}".replace("  ", " ")
            )
        return ids

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=True)

    def _bytes_of(self, token: int) -> bytes:
        """What the byte-level decoder makes of ``token``: each character mapped back to its byte, or
        the text's own UTF-8 where a character is outside the map; nothing for a special token."""
        data = self._bytes.get(token)
        if data is None:
            text = self.tok.id_to_token(token) if token not in self._skipped else ""
            if text is None:  # past the tokenizer's vocabulary (a model's may be larger): nothing, as decode gives
                text = ""
            table = _char_bytes()
            data = bytes(table[c] for c in text) if all(c in table for c in text) else text.encode("utf-8")
            self._bytes[token] = data
        return data

    def decode_one(self, token: int) -> str:
        """The text of one token alone (kept: streaming asks for the same tokens again and again)."""
        text = self._singles.get(token)
        if text is None:
            text = self._singles[token] = self.tok.decode([int(token)], skip_special_tokens=True)
        return text


def _is_byte_level(tok) -> bool:
    try:
        from tokenizers import decoders
    except ImportError:  # pragma: no cover - tokenizers is a dependency
        return False
    return type(tok.decoder) is decoders.ByteLevel


_CHAR_BYTES: dict[str, int] = {}


def _char_bytes() -> dict[str, int]:
    """GPT-2's printable character for every byte, inverted (what a byte-level decoder reads back)."""
    if not _CHAR_BYTES:
        bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
        extra = [b for b in range(256) if b not in bs]
        _CHAR_BYTES.update({chr(b): b for b in bs})
        _CHAR_BYTES.update({chr(256 + n): b for n, b in enumerate(extra)})
    return _CHAR_BYTES
