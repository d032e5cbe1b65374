"""Tiny random-init Hugging Face models, built locally with transformers (no download), for the import tests."""

from __future__ import annotations

import json
from pathlib import Path

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def tokenizer(folder: Path, text: str, *, kind: str, vocab: int = 400):
    """A trained byte-level BPE (GPT-2's kind) or a BPE that adds ``<s>`` first (Llama's kind), saved the
    way transformers saves one; the Llama kind gets a ChatML chat template, ``<|im_end|>`` ending a turn."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    if kind == "gpt2":
        specials = ["<|endoftext|>"]
    else:
        specials = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], trainer)
    if kind == "gpt2":
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    else:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                           special_tokens=[("<s>", tok.token_to_id("<s>"))])
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="<|im_end|>", unk_token="<unk>",
                                       pad_token="</s>")
        fast.chat_template = CHATML
    fast.save_pretrained(str(folder))
    return fast


def llama(folder: Path, text: str, *, tie: bool = False, dtype: str = "float32", shard: str | None = None,
          seed: int = 0, **overrides) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    tok = tokenizer(folder, text, kind="llama")
    cfg = LlamaConfig(**{**dict(vocab_size=len(tok), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=tie,
                                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                pad_token_id=tok.pad_token_id), **overrides})
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).to(getattr(torch, dtype)).eval()
    model.save_pretrained(str(folder), safe_serialization=True, **({"max_shard_size": shard} if shard else {}))
    model.generation_config.save_pretrained(str(folder))
    return folder


def gpt2(folder: Path, text: str, *, seed: int = 0, dtype: str = "float32", **overrides) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    folder.mkdir(parents=True, exist_ok=True)
    tok = tokenizer(folder, text, kind="gpt2")
    cfg = GPT2Config(**{**dict(vocab_size=len(tok), n_positions=128, n_embd=64, n_layer=2, n_head=4,
                               bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id), **overrides})
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(cfg).to(getattr(torch, dtype)).eval()
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder


def config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())
