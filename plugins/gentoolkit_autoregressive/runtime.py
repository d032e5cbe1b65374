"""The text family's runtime: an export folder as a Python object, numpy + onnxruntime only.

``load(folder).generate(text)`` reads top to bottom here: the options are resolved against the
family's one declaration (:mod:`.options`), the prompts encoded, and the decode loop
(:func:`.decode.stream_text`) runs the export's decoder (:class:`.decoder.OrtDecoder`), whose cache
is one of fixed buffers bound to onnxruntime once. Nothing here prints.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gentoolkit.errors import GentoolError

from .decode import stream_text
from .decoder import RUNTIME_FIELDS, OrtDecoder, check_decoder_io
from .options import no_prompt_option, resolve
from .tokenizer import TextTokenizer


class TextModel:
    """An exported language model: ``generate`` returns text, ``stream`` yields pieces as they come."""

    family = "autoregressive"

    def __init__(self, folder: Path, manifest: dict[str, Any], session):
        from gentoolkit.files import inside
        from gentoolkit.runtime import runtime_fields

        self.folder = Path(folder)
        self.manifest = manifest
        rt = runtime_fields(manifest, RUNTIME_FIELDS, self.folder)
        check_decoder_io(manifest["io"], rt, self.folder)
        tok_file = inside(self.folder, manifest.get("tokenizer") or "tokenizer.json", "the manifest's tokenizer")
        if not tok_file.is_file():
            raise GentoolError(f"{str(self.folder)!r} lacks its tokenizer file {tok_file.name!r}")
        self.tokenizer = TextTokenizer.from_file(tok_file, rt["tokenizer_kind"] or "")
        if self.tokenizer.vocab_size > rt["vocab_size"]:
            raise GentoolError(f"{tok_file} has {self.tokenizer.vocab_size} tokens but the model only "
                               f"{rt['vocab_size']}: the tokenizer belongs to another model; export the run again")
        # the fused graph's attention shares past and present (docs/onnx-contract.md, the fused graph)
        self.decoder = OrtDecoder(session, rt, shared_buffers=manifest.get("graph") == "fused")
        self.defaults = dict(manifest.get("sampler_defaults") or {})

    def stream_rows(self, prompts: Sequence[str], *, seed: int | None = None, sampler: str | None = None,
                    sampler_opts: Sequence[str] = (), **options) -> Iterator[tuple[int, str]]:
        """``(row, piece)`` for a batch of prompts (left-padded and decoded together). ``options``:
        ``max_new_tokens``, ``stop``, ``greedy``, ``temperature``, ``top_k``, ``top_p``, ``min_p``,
        ``repetition_penalty`` (:data:`.options.TEXT_OPTIONS`); the export's defaults fill the rest."""
        no_prompt_option(options)
        s, max_new_tokens, stop = resolve(self.defaults, options, sampler, sampler_opts)
        return stream_text(self.decoder, self.tokenizer, list(prompts), sampler=s, max_new_tokens=max_new_tokens,
                           seed=seed, stop=stop)

    def evaluate(self, data: str | None = None, window: int | None = None, stride: int | None = None) -> dict:
        """``gentool eval EXPORT``: the loss, perplexity and bits per byte of the validation split of the
        run's data (when this machine has it: a named dataset, or the file the run trained on) or, with
        ``data``, of the whole of a text file, folder or dataset, in the windows of the context that
        ``gentool eval RUN`` scores in PyTorch, so both give the same number: side by side, or sliding with
        ``window`` and ``stride`` (:func:`.data.windows`)."""
        from .data import eval_window, evaluation_tokens, loss_report, windows

        cfg = self.manifest.get("config", {}).get("data", {})
        if data is None and cfg.get("path") is not None and not Path(cfg["path"]).exists():
            raise GentoolError(f"the run trained on {cfg['path']!r}, which is not here; name the text to evaluate "
                               f"on: gentool eval {self.folder} --data FILE")
        block = self.decoder.context_length
        window, stride = eval_window(block, window, stride)
        ids, labels, source = evaluation_tokens(self.tokenizer, cfg, block, data)
        n, xs, ys = windows(ids, labels, window, stride)
        batch = max(1, min(8, 2**24 // (block * self.decoder.vocab_size)))  # logits of at most 64 MB a run
        total, count = 0.0, 0
        for s in range(0, n, batch):
            x, y = xs[s : s + batch], ys[s : s + batch]
            b = len(x)
            feeds = {"input_ids": x, "attention_mask": np.ones_like(x), "position_ids": np.broadcast_to(
                np.arange(x.shape[1], dtype=np.int64), x.shape).copy()}
            feeds.update(zip(self.decoder.past_names, self.decoder.empty_past(b)))
            logits = self.decoder.session.run(["logits"], feeds)[0].astype(np.float32, copy=False)
            top = logits.max(-1, keepdims=True)
            lse = (np.log(np.exp(logits - top).sum(-1, dtype=np.float64)) + top[..., 0])
            keep = y != -100
            picked = np.take_along_axis(logits, np.where(keep, y, 0)[..., None], -1)[..., 0]
            total += float((lse - picked)[keep].sum())
            count += int(keep.sum())
        if count == 0:
            raise GentoolError("the evaluation data has no token to learn (no assistant turn in it)")
        return loss_report(total / count, count, self.tokenizer, ids, source, whole=data is None,
                           spans=(n, xs.shape[1], min(stride, xs.shape[1])))

    def cli_sample(self, *, n: int, seed, out, sampler, sampler_opts, prompt: Sequence[str] = (), as_json: bool = False,
                   **options) -> None:
        """``gentool sample EXPORT``: ``n`` continuations of every prompt, printed (``as_json``: one JSON object)."""
        from .printing import cli_sample

        cli_sample(self.decoder, self.tokenizer, self.defaults, n=n, seed=seed, out=out, sampler=sampler,
                   sampler_opts=sampler_opts, prompt=prompt, options=options, as_json=as_json)

    def stream_chat(self, messages: Sequence[dict], **kw) -> Iterator[str]:
        """The assistant's reply to ``messages`` (``[{"role", "content"}, ...]``), piece by piece, through the
        model's chat template; it ends at the end of the turn. ``kw`` as for :meth:`generate`."""
        for _, piece in self.stream_rows([self.tokenizer.chat_ids(messages)], **kw):
            yield piece

    def chat(self, messages: Sequence[dict], **kw) -> str:
        """The assistant's reply to ``messages``, whole."""
        return "".join(self.stream_chat(messages, **kw))

    def stream(self, prompt: str = "", **kw) -> Iterator[str]:
        """Text pieces of one continuation, as they are generated."""
        for _, piece in self.stream_rows([prompt], **kw):
            yield piece

    def generate(self, prompt: str | Sequence[str] = "", **kw) -> str | list[str]:
        """The continuation of a prompt (or a list of continuations for a list of prompts)."""
        if not isinstance(prompt, str) and isinstance(prompt, Sequence) and prompt and isinstance(prompt[0], dict):
            raise GentoolError("that is a list of messages: use chat(messages) for a chat turn")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        out = [""] * len(prompts)
        for i, piece in self.stream_rows(prompts, **kw):
            out[i] += piece
        return out[0] if isinstance(prompt, str) else out
