"""GPT- and LLaMA-style decoder-only transformers with a KV cache.

One compact implementation: ``GPTConfig`` gives learned positions, LayerNorm,
GELU and tied embeddings (nanoGPT's module names); ``LlamaConfig`` gives rotary
positions, RMSNorm, SwiGLU and grouped-query attention. Attention goes through
``scaled_dot_product_attention``; with no cache and no padding it uses the
fused causal path, otherwise an explicit mask built from ``attention_mask``
(never ``is_causal=True`` when the query is shorter than the keys).

Shapes: B batch, T new tokens, P cached tokens, S = P + T, H heads, Hkv key/value
heads, D head size.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import GPTConfig, LlamaConfig

Past = tuple[tuple[torch.Tensor, torch.Tensor], ...]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, n_embd, n_head, n_kv_head, bias, dropout, head_dim=None):
        super().__init__()
        self.n_head, self.n_kv_head = n_head, n_kv_head
        self.head_dim = head_dim or n_embd // n_head
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.c_attn = nn.Linear(n_embd, (n_head + 2 * n_kv_head) * self.head_dim, bias=bias)
        self.c_proj = nn.Linear(n_head * self.head_dim, n_embd, bias=bias)
        self.dropout = dropout
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x, rope, mask, past, bt):
        B, T = bt  # from the input ids, so an exported graph computes these shapes once, not per layer
        H, Hkv, D = self.n_head, self.n_kv_head, self.head_dim
        # one reshape and one transpose for q, k and v together: (B, T, H + 2 Hkv, D) -> (B, H + 2 Hkv, T, D)
        qkv = self.c_attn(x).view(B, T, H + 2 * Hkv, D).transpose(1, 2)
        q, k, v = qkv.split([H, Hkv, Hkv], dim=1)  # (B, H, T, D), (B, Hkv, T, D), (B, Hkv, T, D)
        if rope is not None:
            cos, sin = rope  # (B, 1, T, D)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, Hkv, S, D)
            v = torch.cat([past[1], v], dim=2)
        present = (k, v)
        if Hkv != H:
            rep = H // Hkv
            S = k.shape[2]
            k = k[:, :, None].expand(B, Hkv, rep, S, D).reshape(B, H, S, D)
            v = v[:, :, None].expand(B, Hkv, rep, S, D).reshape(B, H, S, D)
        p = self.dropout if self.training else 0.0
        if mask is not None and mask.dtype != torch.bool:
            # an additive mask (the ONNX export): plain ops, 6 nodes against SDPA's 10 for a Boolean mask
            att = torch.matmul(q * self.scale, k.transpose(-2, -1)) + mask
            y = torch.matmul(torch.softmax(att, dim=-1), v)
        elif mask is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True, scale=self.scale)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, scale=self.scale)
        y = y.transpose(1, 2).reshape(-1, H * D)
        return self.resid_dropout(self.c_proj(y)), present


class MLP(nn.Module):
    def __init__(self, n_embd, bias, dropout, activation="gelu"):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.approximate = "tanh" if activation == "gelu_tanh" else "none"

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate)))


class SwiGLU(nn.Module):
    def __init__(self, n_embd, hidden, dropout, bias=False):
        super().__init__()
        self.gate_proj = nn.Linear(n_embd, hidden, bias=bias)
        self.up_proj = nn.Linear(n_embd, hidden, bias=bias)
        self.c_proj = nn.Linear(hidden, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(F.silu(self.gate_proj(x)) * self.up_proj(x)))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        if isinstance(cfg, LlamaConfig):
            hidden = cfg.intermediate_size or 32 * math.ceil(8 * cfg.n_embd / 3 / 32)
            self.ln_1 = RMSNorm(cfg.n_embd, cfg.norm_eps)
            self.ln_2 = RMSNorm(cfg.n_embd, cfg.norm_eps)
            self.attn = Attention(cfg.n_embd, cfg.n_head, cfg.n_kv_head, cfg.attention_bias, cfg.dropout, cfg.head_dim)
            self.mlp = SwiGLU(cfg.n_embd, hidden, cfg.dropout, cfg.mlp_bias)
        else:
            self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps, bias=cfg.bias)
            self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps, bias=cfg.bias)
            self.attn = Attention(cfg.n_embd, cfg.n_head, cfg.n_head, cfg.bias, cfg.dropout)
            self.mlp = MLP(cfg.n_embd, cfg.bias, cfg.dropout, cfg.activation)

    def forward(self, x, rope, mask, past, bt):
        a, present = self.attn(self.ln_1(x), rope, mask, past, bt)
        x = x + a
        return x + self.mlp(self.ln_2(x)), present


class Transformer(nn.Module):
    """A decoder-only language model; ``forward`` returns logits (B, T, vocab) and the new cache."""

    def __init__(self, cfg: GPTConfig | LlamaConfig):
        super().__init__()
        if not cfg.vocab_size:
            raise ValueError("model.vocab_size is not set (it comes from the tokenizer)")
        self.config = cfg
        self.is_llama = isinstance(cfg, LlamaConfig)
        self.n_kv_head = cfg.n_kv_head if self.is_llama else cfg.n_head
        self.head_dim = cfg.head_size if self.is_llama else cfg.n_embd // cfg.n_head
        t = nn.ModuleDict(
            {
                "wte": nn.Embedding(cfg.vocab_size, cfg.n_embd),
                "drop": nn.Dropout(cfg.dropout),
                "h": nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer)),
                "ln_f": RMSNorm(cfg.n_embd, cfg.norm_eps) if self.is_llama
                else nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps, bias=cfg.bias),
            }
        )
        if not self.is_llama:
            t["wpe"] = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.transformer = t
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        tie = cfg.tie_embeddings if self.is_llama else True
        self.tied_keys = {"lm_head.weight"} if tie else set()
        self.additive_mask = False  # True for export: one float mask shared by every layer
        if tie:
            self.lm_head.weight = self.transformer.wte.weight
        if self.is_llama:
            D = self.head_dim
            inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
            freqs = torch.outer(torch.arange(cfg.block_size, dtype=torch.float32), inv)
            emb = torch.cat([freqs, freqs], dim=-1)
            self.register_buffer("rope_cos", emb.cos(), persistent=False)
            self.register_buffer("rope_sin", emb.sin(), persistent=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # GPT-2's scaled init of residual projections
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx, attention_mask=None, position_ids=None, past_key_values: Past | None = None):
        """``idx`` (B, T) int64; ``attention_mask`` (B, S) with 0 for padding; ``position_ids`` (B, T)."""
        B, T = idx.shape
        P = past_key_values[0][0].shape[2] if past_key_values else 0
        S = P + T
        if position_ids is None:
            position_ids = torch.arange(P, S, device=idx.device).unsqueeze(0).expand(B, T)
        if attention_mask is None and P == 0:
            mask = None  # full causal attention: the fused path
        else:
            if attention_mask is None:
                attention_mask = torch.ones(B, S, dtype=torch.long, device=idx.device)
            q_pos = torch.arange(P, S, device=idx.device)[:, None]  # (T, 1)
            k_pos = torch.arange(S, device=idx.device)[None, :]  # (1, S)
            keep = attention_mask[:, None, None, :].bool() & (k_pos <= q_pos)  # (B, 1, T, S)
            # every query may see itself, so a padding position never has an empty row (NaN)
            mask = keep | (k_pos == q_pos)
            if self.additive_mask:
                mask = torch.where(mask, 0.0, torch.finfo(torch.float32).min)
        x = self.transformer.wte(idx)
        rope = None
        if self.is_llama:
            rope = (self.rope_cos[position_ids].unsqueeze(1), self.rope_sin[position_ids].unsqueeze(1))
        else:
            x = x + self.transformer.wpe(position_ids)
        # the residual stream stays 2-D (B*T, C): onnxruntime then fuses each Linear's MatMul and Add
        # into one Gemm (17 fewer kernels in nanoGPT's CPU size)
        x = self.transformer.drop(x).reshape(-1, self.config.n_embd)
        presents = []
        for i, block in enumerate(self.transformer.h):
            x, present = block(x, rope, mask, past_key_values[i] if past_key_values else None, (B, T))
            presents.append(present)
        return self.lm_head(self.transformer.ln_f(x)).view(B, T, -1), tuple(presents)


def build(cfg: GPTConfig | LlamaConfig) -> Transformer:
    """Builder registered in the model specs: the config alone rebuilds the model."""
    return Transformer(cfg)
