"""Config sections of the autoregressive family (torch-free: read when listing and validating)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from gentoolkit.config import BaseTrainConfig as _Base
from gentoolkit.config import check_range
from gentoolkit.errors import ConfigError
from gentoolkit.plugin.specs import InitSpec

MAX_NEW_TOKENS = 1_000_000
MAX_LR = 10.0  # AdamW above it is always a typo


@dataclass(frozen=True)
class GPTConfig:
    """GPT-2 style: learned positions, LayerNorm, GELU MLP, tied embeddings. nanoGPT's key names."""

    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    dropout: float = 0.0
    bias: bool = True
    vocab_size: Optional[int] = None  # taken from the tokenizer
    activation: Literal["gelu", "gelu_tanh"] = "gelu"  # GPT-2's own checkpoints use gelu_tanh ("gelu_new")
    norm_eps: float = 1e-5

    def __post_init__(self):
        _check_dims(self.n_embd, self.n_head, self.n_head, self.n_layer, self.block_size, self.dropout)
        check_range("model.norm_eps", self.norm_eps, 0, 1, low_open=True)


@dataclass(frozen=True)
class LlamaConfig:
    """LLaMA style: rotary positions, RMSNorm, SwiGLU MLP, grouped-query attention, no bias."""

    n_layer: int = 4
    n_head: int = 4
    n_kv_head: int = 2
    n_embd: int = 128
    block_size: int = 64
    dropout: float = 0.0
    intermediate_size: Optional[int] = None  # default: 8/3 * n_embd rounded up to a multiple of 32
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    vocab_size: Optional[int] = None
    head_dim: Optional[int] = None  # default: n_embd / n_head
    attention_bias: bool = False  # biases on the q, k, v and output projections (Qwen2 has them)
    mlp_bias: bool = False

    def __post_init__(self):
        if self.head_dim is None:
            _check_dims(self.n_embd, self.n_head, self.n_kv_head, self.n_layer, self.block_size, self.dropout)
        else:
            _check_dims(self.n_head, self.n_head, self.n_kv_head, self.n_layer, self.block_size, self.dropout)
            check_range("model.head_dim", self.head_dim, 2, 4096)
        if self.head_size % 2:
            raise ValueError("rotary embeddings need an even head size (model.head_dim, or n_embd / n_head)")
        check_range("model.rope_theta", self.rope_theta, 1)
        check_range("model.norm_eps", self.norm_eps, 0, 1, low_open=True)

    @property
    def head_size(self) -> int:
        return self.head_dim or self.n_embd // self.n_head


def _check_dims(n_embd, n_head, n_kv_head, n_layer, block_size, dropout):
    if min(n_embd, n_head, n_kv_head, n_layer, block_size) < 1:
        raise ValueError("n_embd, n_head, n_kv_head, n_layer and block_size must be >= 1")
    check_range("model.n_layer", n_layer, 1, 1024)
    if n_embd % n_head:
        raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
    if n_head % n_kv_head:
        raise ValueError(f"n_head ({n_head}) must be divisible by n_kv_head ({n_kv_head})")
    if not 0 <= dropout < 1:
        raise ValueError("dropout must be in [0, 1)")


@dataclass(frozen=True)
class DataConfig:
    """Where the text comes from and how it becomes tokens."""

    path: Optional[str] = None  # file, folder or dataset name; None = the built-in corpus
    tokenizer: Literal["byte", "char", "bpe", "hf"] = "byte"  # hf: a pretrained model's own (import, --init)
    bpe_vocab_size: int = 512
    val_fraction: float = 0.1

    def __post_init__(self):
        if not 0 < self.val_fraction < 1:
            raise ValueError("data.val_fraction must be in (0, 1)")
        if self.bpe_vocab_size < 260:
            raise ValueError("data.bpe_vocab_size must be at least 260 (256 bytes and the special tokens)")


@dataclass(frozen=True)
class TrainConfig(_Base):
    """AdamW with warmup and cosine decay, nanoGPT's defaults for a CPU run."""

    steps: int = 2000
    batch_size: int = 12
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    eval_interval: int = 250
    eval_batches: int = 20

    def __post_init__(self):
        super().__post_init__()
        if self.batch_size < 1 or self.grad_accum < 1 or self.eval_batches < 1:
            raise ValueError("train.batch_size, train.grad_accum and train.eval_batches must be >= 1")
        check_range("train.lr", self.lr, 0, MAX_LR, low_open=True)
        check_range("train.min_lr", self.min_lr, 0, MAX_LR)
        check_range("train.warmup_steps", self.warmup_steps, 0)
        check_range("train.weight_decay", self.weight_decay, 0)
        check_range("train.beta1", self.beta1, 0, 1, high_open=True)
        check_range("train.beta2", self.beta2, 0, 1, high_open=True)
        check_range("train.grad_clip", self.grad_clip, 0)


@dataclass(frozen=True)
class LossConfig:
    name: str = "cross-entropy"
    label_smoothing: float = 0.1  # used by 'label-smoothed'

    def __post_init__(self):
        check_range("loss.label_smoothing", self.label_smoothing, 0, 1, high_open=True)


@dataclass(frozen=True)
class SamplerConfig:
    """Defaults for 'gentool sample' stored with the model (and later its export)."""

    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 0.95
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    max_new_tokens: int = 200

    def __post_init__(self):
        from gentoolkit.plugin.options import check_values

        from . import options  # the ranges are the decode options' own

        check_values(options.TEXT_OPTIONS, {f: getattr(self, f) for f in self.__dataclass_fields__}, "sampler.")



SECTIONS = {"data": DataConfig, "train": TrainConfig, "loss": LossConfig, "sampler": SamplerConfig}

_SMALL_TRAIN = {"steps": 300, "batch_size": 8, "eval_interval": 100, "eval_batches": 5, "warmup_steps": 20}

# fine-tuning a pretrained model (train --init picks it): a lower learning rate, a short warmup, a few hundred steps
_FINETUNE = {"train": {"steps": 300, "batch_size": 8, "lr": 1e-4, "min_lr": 1e-5, "warmup_steps": 20,
                       "weight_decay": 0.0, "eval_interval": 100, "eval_batches": 10}}

GPT_PRESETS = {
    "nano": {"model": {"n_layer": 2, "n_head": 2, "n_embd": 64, "block_size": 64}, "train": _SMALL_TRAIN},
    "micro": {"model": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64}},
    "small": {
        "model": {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "dropout": 0.2},
        "train": {"steps": 5000, "batch_size": 64, "lr": 1e-3, "min_lr": 1e-4, "eval_interval": 500},
    },
    "finetune": _FINETUNE,
}
LLAMA_PRESETS = {
    "nano": {"model": {"n_layer": 2, "n_head": 2, "n_kv_head": 1, "n_embd": 64, "block_size": 64}, "train": _SMALL_TRAIN},
    "micro": {"model": {"n_layer": 4, "n_head": 4, "n_kv_head": 2, "n_embd": 128, "block_size": 64}},
    "small": {
        "model": {"n_layer": 6, "n_head": 6, "n_kv_head": 2, "n_embd": 384, "block_size": 256, "dropout": 0.2},
        "train": {"steps": 5000, "batch_size": 64, "lr": 1e-3, "min_lr": 1e-4, "eval_interval": 500},
    },
    "finetune": _FINETUNE,
}


def check_init(pretrained: dict, new: dict) -> None:
    """A run started with --init may shorten the context (learned positions beyond it are dropped), never
    lengthen it: the pretrained model has no positions beyond its own."""
    before, after = (pretrained.get("model") or {}).get("block_size"), new["model"]["block_size"]
    if isinstance(before, int) and after > before:
        raise ConfigError(f"model.block_size can only shrink from the pretrained model's {before}")


# gentool train gpt|llama --init RUN: the finetune preset, the pretrained model's architecture, sampling
# defaults and tokenizer; dropout may change and the context may shrink
INIT = InitSpec(preset="finetune", keep=("model", "sampler", "data.tokenizer"), may_change=("dropout", "block_size"),
                check=check_init)
