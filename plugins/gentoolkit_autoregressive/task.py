"""Training task of the autoregressive family, driven by the host's loop (gentoolkit.train.loop)."""

from __future__ import annotations

import dataclasses
import inspect
import math

import numpy as np
import torch

from gentoolkit import get_loss
from gentoolkit.errors import ConfigError, DataError
from gentoolkit.plugin.specs import resolve
from gentoolkit.train.loop import Context, cosine_lr

from .data import encode_data, load_conversations, load_documents, split
from .model import build
from .tokenizer import TextTokenizer
from .tokenizer_build import TOKENIZER_FILES, build_tokenizer


def loss_function(config):
    """The registered loss, with the options of [loss] that it accepts."""
    fn = resolve(get_loss(config["loss"].name, family="autoregressive").impl)
    opts = {k: v for k, v in dataclasses.asdict(config["loss"]).items() if k != "name"}
    accepted = inspect.signature(fn).parameters
    opts = {k: v for k, v in opts.items() if k in accepted}
    return lambda logits, targets: fn(logits, targets, **opts)


class LanguageModelTask:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        cfg = ctx.config
        data, train = cfg["data"], cfg["train"]
        chat = load_conversations(data.path) is not None
        docs = None if chat else load_documents(data.path)
        if train.batch_size % ctx.world_size:
            raise ConfigError(f"train.batch_size ({train.batch_size}) must be a multiple of the number of workers "
                              f"({ctx.world_size}): it is the global batch, split between them")
        tok_file = ctx.run.file("tokenizer.json")
        if ctx.is_main and not (ctx.resume and tok_file.is_file()):
            if ctx.init is not None:  # a pretrained model's tokenizer comes with it, whole
                from gentoolkit.files import write_bytes

                for name in TOKENIZER_FILES:
                    if (ctx.init / name).is_file():
                        write_bytes(ctx.run.file(name), (ctx.init / name).read_bytes())
            elif data.tokenizer == "hf":
                raise ConfigError("data.tokenizer=hf is a pretrained model's own tokenizer: start from the model "
                                  "with --init (a run, or a Hugging Face folder)")
            elif chat:
                raise ConfigError(f"{data.path} holds conversations, which need a chat template: start from a model "
                                  "that has one (--init)")
            else:
                build_tokenizer(data.tokenizer, docs, data.bpe_vocab_size).save(tok_file)
        ctx.barrier()  # every worker reads the one tokenizer the main worker wrote
        self.tokenizer = TextTokenizer.from_file(tok_file, data.tokenizer)
        mcfg = cfg["model"]
        if ctx.init is None:
            mcfg = dataclasses.replace(mcfg, vocab_size=self.tokenizer.vocab_size)
        elif self.tokenizer.vocab_size > mcfg.vocab_size:
            raise ConfigError(f"the tokenizer of --init has {self.tokenizer.vocab_size} tokens, its model "
                              f"{mcfg.vocab_size}")
        cfg["model"] = mcfg
        ids, mask = encode_data(self.tokenizer, data.path, docs)
        self.block = mcfg.block_size
        tr, va = split(ids, data.val_fraction, self.block)
        # (N - T, T + 1) windows as a view: a batch is one gather
        self.train_windows = torch.from_numpy(tr).unfold(0, self.block + 1, 1)
        self.val_windows = torch.from_numpy(va).unfold(0, self.block + 1, 1)
        # conversations: the targets outside the assistant's turns are -100, which the loss leaves out
        self.train_labels = self.val_labels = None
        if mask is not None:
            labels = np.where(mask > 0, ids, -100)
            tl, vl = labels[: len(tr)], labels[len(tr) :]
            self.train_labels = torch.from_numpy(tl).unfold(0, self.block + 1, 1)
            self.val_labels = torch.from_numpy(vl).unfold(0, self.block + 1, 1)
        self.model = build(mcfg)
        if ctx.init is not None:
            self._load_init(ctx.init)
        self.model.to(ctx.device)
        self.loss = loss_function(cfg)
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.dim() < 2]
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=train.lr,
            betas=(train.beta1, train.beta2),
        )
        self.rng = np.random.default_rng(train.seed)
        self.forward = ctx.wrap(torch.compile(self.model) if train.compile else self.model)

    def _load_init(self, init) -> None:
        """The pretrained weights; learned positions beyond a shorter ``block_size`` are dropped."""
        from gentoolkit.train.checkpoint import load_tensors, read_weights

        tensors = read_weights(init / "model.safetensors")
        wpe = tensors.get("transformer.wpe.weight")
        if wpe is not None and len(wpe) > self.block:
            tensors["transformer.wpe.weight"] = wpe[: self.block].clone()
        load_tensors(tensors, {"": self.model}, f"--init {init}")

    # batches -----------------------------------------------------------------
    def batch(self, windows: torch.Tensor, rng: np.random.Generator, batch_size: int, shard: bool = True,
              labels: torch.Tensor | None = None):
        ix = rng.integers(0, len(windows), size=batch_size)
        if shard:  # each worker its own disjoint share of the global batch
            ix = ix[self.ctx.rank :: self.ctx.world_size]
        idx = torch.from_numpy(ix)
        w = windows[idx].to(self.ctx.device, non_blocking=True)
        y = w[:, 1:] if labels is None else labels[idx, 1:].to(self.ctx.device, non_blocking=True)
        return w[:, :-1], y

    # Task protocol -------------------------------------------------------------
    def weights(self):
        return {"": self.model}

    def state_dict(self):
        return {"optimizer": self.opt.state_dict(), "data_rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        self.opt.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["data_rng"]

    def train_step(self, step: int) -> dict[str, float]:
        cfg = self.ctx.config["train"]
        lr = cosine_lr(step, lr=cfg.lr, min_lr=cfg.min_lr, warmup=cfg.warmup_steps, total=cfg.steps)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.model.train()
        total = 0.0
        for _ in range(cfg.grad_accum):
            x, y = self.batch(self.train_windows, self.rng, cfg.batch_size, labels=self.train_labels)
            with self.ctx.autocast():
                logits, _ = self.forward(x)
                if self.train_labels is not None and not bool((y != -100).any()):
                    loss = logits.sum() * 0.0  # no assistant token in this batch: nothing to learn, not NaN
                else:
                    loss = self.loss(logits.reshape(-1, logits.size(-1)), y.reshape(-1)) / cfg.grad_accum
            loss.backward()
            total += loss.item()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return {"train_loss": total, "lr": lr, "tokens": cfg.batch_size * cfg.grad_accum * self.block}

    @property
    def evaluated_on(self) -> str:
        """What :meth:`evaluate`'s ``val_loss`` is, for the output (``gentool eval`` measures the whole split)."""
        cfg = self.ctx.config["train"]
        return f"estimate on {cfg.eval_batches} batches of {cfg.batch_size} windows of the validation split"

    @torch.no_grad()
    def evaluate(self, step: int) -> dict[str, float]:
        cfg = self.ctx.config["train"]
        self.model.eval()
        rng = np.random.default_rng(cfg.seed + 1)  # the same windows at every evaluation
        losses = []
        for _ in range(cfg.eval_batches):
            x, y = self.batch(self.val_windows, rng, cfg.batch_size, shard=False, labels=self.val_labels)
            with self.ctx.autocast():
                logits, _ = self.model(x)
            if bool((y != -100).any()):  # conversations: a batch may hold no assistant token
                losses.append(torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)),
                                                                y.reshape(-1)).item())
        return {"val_loss": float(np.mean(losses)) if losses else float("nan")}

    def on_eval(self, step: int) -> None:
        pass


def full_val_loss(model, windows_ids: np.ndarray, block: int, batch: int = 32,
                  labels: np.ndarray | None = None, stride: int | None = None) -> tuple[float, int]:
    """Mean cross-entropy over the whole split in the windows of :func:`.data.windows` (side by side, or
    every ``stride`` tokens); returns (loss, tokens). With ``labels`` (-100 where nothing is learned:
    conversations), over the tokens learned only."""
    from .data import windows

    model.eval()
    n, xs, ys = windows(windows_ids, labels, block, stride)
    total, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, n, batch):
            x, y = torch.from_numpy(xs[s : s + batch]), torch.from_numpy(ys[s : s + batch])
            logits, _ = model(x)
            total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum").item()
            count += int((y != -100).sum())
    if count == 0:
        raise DataError("the evaluation data has no token to learn (no assistant turn in the validation split)")
    return total / count, count


def bits_per_byte(loss: float, tokens: int, text_bytes: int) -> float:
    return loss * tokens / max(1, text_bytes) / math.log(2)
