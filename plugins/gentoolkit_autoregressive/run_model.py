"""Sampling and evaluation from a run folder (PyTorch back end of the shared generation loop)."""

from __future__ import annotations

import torch

from gentoolkit.errors import RunError
from gentoolkit.train.checkpoint import load_weights
from gentoolkit.train.run import WEIGHTS, Run

from .decode import GrowingCache
from .model import Transformer, build
from .printing import cli_sample
from .tokenizer import TextTokenizer


class TorchDecoder:
    """The model as a decoder for the decode loop (:mod:`.decode`): a cache that grows a slot a step."""

    def __init__(self, model: Transformer):
        self.model = model.eval()
        self.context_length = model.config.block_size
        self.device = next(model.parameters()).device

    def new_cache(self, batch: int) -> GrowingCache:
        return GrowingCache(self.forward, None, batch, self.context_length)

    @torch.no_grad()
    def forward(self, input_ids, attention_mask, position_ids, past):
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
           as_json: bool = False, **options) -> None:
    """Registered as the model's ``sample`` entry: what ``gentool sample RUN`` prints."""
    model, tok, _ = load_run(run, device)
    cli_sample(TorchDecoder(model), tok, dict(run.config.get("sampler", {})), n=n, seed=seed, out=out, sampler=sampler,
               sampler_opts=sampler_opts, prompt=prompt, options=options, as_json=as_json)


def evaluate(run: Run, *, data: str | None = None, device: str = "cpu", window: int | None = None,
             stride: int | None = None) -> dict:
    """Registered as the model's ``evaluate`` entry: loss, perplexity, bits per token and per byte (``window``,
    ``stride``: sliding windows, :func:`.data.windows`)."""
    from .data import eval_window, evaluation_tokens, loss_report, window_starts
    from .task import full_val_loss

    model, tok, tree = load_run(run, device)
    block = tree["model"].block_size
    window, stride = eval_window(block, window, stride)
    data_cfg = {"path": tree["data"].path, "val_fraction": tree["data"].val_fraction}
    ids, labels, source = evaluation_tokens(tok, data_cfg, block, data)
    loss, count = full_val_loss(model, ids, window, labels=labels, stride=stride)
    starts, w = window_starts(len(ids), window, stride)
    return loss_report(loss, count, tok, ids, source, whole=data is None, spans=(len(starts), w, min(stride, w)))
