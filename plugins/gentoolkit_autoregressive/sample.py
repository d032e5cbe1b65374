"""Sampling and evaluation from a run folder (PyTorch back end of the shared generation loop)."""

from __future__ import annotations

import math

import numpy as np
import torch

from gentoolkit.checkpoint import load_weights
from gentoolkit.errors import RunError
from gentoolkit.run import WEIGHTS, Run
from gentoolkit.runtime.tokenizer import TextTokenizer

from .model import Transformer, build
from .runtime import cli_sample


class TorchDecoder:
    """The model as a decoder for :func:`gentoolkit.runtime.generation.generate_tokens`."""

    def __init__(self, model: Transformer):
        self.model = model.eval()
        self.context_length = model.config.block_size
        self.device = next(model.parameters()).device

    def empty_past(self, batch: int):
        return None

    @torch.no_grad()
    def __call__(self, input_ids, attention_mask, position_ids, past):
        t = lambda a: torch.from_numpy(a).to(self.device)  # noqa: E731
        logits, present = self.model(t(input_ids), t(attention_mask), t(position_ids), past)
        return logits[:, -1].float().cpu().numpy(), present


def load_run(run: Run, device: str = "cpu"):
    """Rebuild the model from ``config.json`` alone and load its weights; returns (model, tokenizer, tree)."""
    run.require(WEIGHTS, "tokenizer.json")
    tree = run.tree()
    tok = TextTokenizer.from_file(run.file("tokenizer.json"), tree["data"].tokenizer)
    if not isinstance(tree["model"].vocab_size, int) or tok.vocab_size > tree["model"].vocab_size:
        raise RunError(f"{run.path}: config.json says model.vocab_size={tree['model'].vocab_size} but tokenizer.json "
                       f"has {tok.vocab_size} tokens; they are not from the same run")
    model = build(tree["model"])
    load_weights(run.file(WEIGHTS), {"": model})
    return model.to(device).eval(), tok, tree


def sample(run: Run, *, n: int, seed, out, device: str = "cpu", sampler=None, sampler_opts=(), prompt=(),
           **options) -> None:
    """Registered as the model's ``sample`` entry: what ``gentool sample RUN`` prints."""
    model, tok, _ = load_run(run, device)
    cli_sample(TorchDecoder(model), tok, dict(run.config.get("sampler", {})), n=n, seed=seed, out=out, sampler=sampler,
               sampler_opts=sampler_opts, prompt=prompt, options=options)


def evaluate(run: Run, *, data: str | None = None, device: str = "cpu") -> dict:
    """Registered as the model's ``evaluate`` entry: loss, perplexity, bits per token and per byte."""
    from .data import load_conversations, load_documents
    from .task import full_val_loss, split
    from .tokenizers_ import encode_data

    model, tok, tree = load_run(run, device)
    block = tree["model"].block_size
    source_path = tree["data"].path if data is None else data
    docs = None
    if data is not None and load_conversations(data) is None:
        docs = load_documents(data)
        for d in docs:
            tok.encode("".join(sorted(set(d))))  # a clear error for unknown characters
    ids, mask = encode_data(tok, source_path, docs)
    labels = None if mask is None else np.where(mask > 0, ids, -100)
    if data is None:
        _, val = split(ids, tree["data"].val_fraction, block)
        labels = None if labels is None else labels[len(ids) - len(val):]
        source = f"validation split of {tree['data'].path or 'pydoc'}"
    else:
        val, source = ids, data
    loss, count = full_val_loss(model, val, block, labels=labels)
    text_bytes = len(tok.decode(val[1 : count + 1]).encode("utf-8"))
    chars = len(tok.decode(val[1 : count + 1]))
    return {
        "val_loss": loss,
        "perplexity": math.exp(loss),
        "bits_per_token": loss / math.log(2),
        "bits_per_byte": loss * count / max(1, text_bytes) / math.log(2),
        "bits_per_char": loss * count / max(1, chars) / math.log(2),
        "tokens": count,
        "data": source,
        "tokenizer": tok.kind,
    }
