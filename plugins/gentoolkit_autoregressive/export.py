"""ONNX description of the autoregressive family: one decoder with a KV cache.

The naming is the one Hugging Face optimum and onnxruntime-genai share:
inputs ``input_ids``, ``attention_mask``, ``position_ids``,
``past_key_values.{i}.key|value``; outputs ``logits``, ``present.{i}.key|value``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import torch

from gentoolkit.errors import ExportError
from gentoolkit.export import ExportPlan
from gentoolkit.train.run import Run

from .hf import hf_config, tokenizer_files
from .run_model import load_run


class OnnxDecoder(torch.nn.Module):
    """The model with flat cache arguments, in the order of the ONNX inputs."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.n_layer = model.config.n_layer
        model.additive_mask = True  # a leaner graph: one float mask for every layer, no NaN guards

    def forward(self, input_ids, attention_mask, position_ids, *past):
        cache = tuple((past[2 * i], past[2 * i + 1]) for i in range(self.n_layer))
        logits, presents = self.model(input_ids, attention_mask, position_ids, cache)
        return (logits,) + tuple(t for kv in presents for t in kv)


def io_names(n_layer: int) -> tuple[list[str], list[str]]:
    past = [f"past_key_values.{i}.{k}" for i in range(n_layer) for k in ("key", "value")]
    present = [f"present.{i}.{k}" for i in range(n_layer) for k in ("key", "value")]
    return past, present


def genai_config(cfg, tok, n_kv: int, head: int) -> dict:
    """What onnxruntime-genai needs to load the folder unmodified."""
    return {
        "model": {
            "bos_token_id": tok.bos_id,
            "context_length": cfg.block_size,
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "filename": "model.onnx",
                "head_size": head,
                "hidden_size": cfg.n_embd,
                "inputs": {
                    "input_ids": "input_ids",
                    "attention_mask": "attention_mask",
                    "position_ids": "position_ids",
                    "past_key_names": "past_key_values.%d.key",
                    "past_value_names": "past_key_values.%d.value",
                },
                "outputs": {
                    "logits": "logits",
                    "present_key_names": "present.%d.key",
                    "present_value_names": "present.%d.value",
                },
                "num_attention_heads": cfg.n_head,
                "num_hidden_layers": cfg.n_layer,
                "num_key_value_heads": n_kv,
            },
            "eos_token_id": list(tok.eos_ids) if len(tok.eos_ids) > 1 else tok.eos_id,
            "pad_token_id": tok.pad_id,
            "type": "decoder",
            "vocab_size": cfg.vocab_size,
        },
        "search": {
            "diversity_penalty": 0.0,
            "do_sample": False,
            "early_stopping": True,
            "length_penalty": 1.0,
            "max_length": cfg.block_size,
            "min_length": 0,
            "no_repeat_ngram_size": 0,
            "num_beams": 1,
            "num_return_sequences": 1,
            "past_present_share_buffer": False,
            "repetition_penalty": 1.0,
            "temperature": 1.0,
            "top_k": 1,
            "top_p": 1.0,
        },
    }


#: contexts up to this long are validated whole; a longer one on a prefill this long and on its last positions
LONG_CONTEXT = 512


def _feeds(ids, mask, pos, past):
    return {"input_ids": ids, "attention_mask": mask, "position_ids": pos, **past}


def plan(run: Run) -> ExportPlan:
    """Registered as the model's ``export`` entry."""
    from .decode import left_pad

    model, tok, tree = load_run(run)
    cfg = model.config
    L, Hkv, D, V = cfg.n_layer, model.n_kv_head, model.head_dim, cfg.vocab_size
    past_names, present_names = io_names(L)
    fl = "float32"
    B = "batch_size"  # the name transformers.js sizes an empty cache by: any other name it reads as 0
    inputs = [
        {"name": "input_ids", "dtype": "int64", "shape": [B, "sequence"]},
        {"name": "attention_mask", "dtype": "int64", "shape": [B, "total_sequence"]},
        {"name": "position_ids", "dtype": "int64", "shape": [B, "sequence"]},
    ] + [{"name": n, "dtype": fl, "shape": [B, Hkv, "past_sequence", D]} for n in past_names]
    outputs = [{"name": "logits", "dtype": fl, "shape": [B, "sequence", V]}] + [
        {"name": n, "dtype": fl, "shape": [B, Hkv, "total_sequence", D]} for n in present_names
    ]
    rng = np.random.default_rng(0)

    def empty(b):
        return {n: np.zeros((b, Hkv, 0, D), np.float32) for n in past_names}

    def chain(prompts, steps):
        """Prefill (empty cache) then `steps` decode steps, feeding each runner its own cache back."""
        nexts = [rng.integers(0, V - 2, size=(len(prompts), 1)) for _ in range(steps)]

        def case(run):
            ids, mask, pos = left_pad(prompts, tok.pad_id)
            outs = [run(_feeds(ids, mask, pos, empty(len(prompts))))]
            last = pos[:, -1:]
            for nxt in nexts:
                mask = np.concatenate([mask, np.ones((len(prompts), 1), np.int64)], axis=1)
                last = last + 1
                past = {p: outs[-1][q] for p, q in zip(past_names, present_names)}
                outs.append(run(_feeds(nxt, mask, last, past)))
            return outs

        return case

    def prompts(lengths):
        return [rng.integers(0, V - 2, size=n).tolist() for n in lengths]

    def at_the_end(n):
        """``n`` tokens at the context's last positions, on an empty cache: the position tables' last rows."""
        ids = rng.integers(0, V - 2, size=(1, n))

        def case(run):
            return [run(_feeds(ids, np.ones((1, n), np.int64), np.arange(T - n, T)[None], empty(1)))]

        return case

    T = cfg.block_size
    cases = [
        ("batch 1: prefill 5, 3 cached steps", chain(prompts([5]), 3)),
        ("batch 3, left padded: prefill, 3 cached steps", chain(prompts([2, 7, 4]), 3)),
        ("batch 3: one token at a time from an empty cache", chain(prompts([1, 1, 1]), 4)),
    ]
    if T <= LONG_CONTEXT:
        cases.append(("full context: prefill block_size", chain(prompts([T]), 0)))
    else:  # a prefill of 8,192 tokens costs minutes in PyTorch at 135M; the tests validate whole contexts
        cases += [(f"long context: prefill {LONG_CONTEXT} of {T}", chain(prompts([LONG_CONTEXT]), 0)),
                  (f"full context's end: 8 tokens at positions {T - 8} to {T - 1}", at_the_end(8))]
    ex_ids, ex_mask, ex_pos = left_pad(prompts([3, 3]), tok.pad_id)
    example_past = {n: rng.standard_normal((2, Hkv, 4, D)).astype(np.float32) for n in past_names}
    example = _feeds(ex_ids, np.ones((2, 7), np.int64), ex_pos + 4, example_past)

    def quality_of(windows, source: str):
        def quality(run_fn) -> dict:
            total, count = 0.0, 0
            for w in windows:
                x = w[None, :-1]
                out = run_fn(_feeds(x, np.ones_like(x), np.arange(x.shape[1])[None], empty(1)))
                logits = out["logits"][0].astype(np.float64)
                logits -= logits.max(-1, keepdims=True)
                logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
                total -= logp[np.arange(len(w) - 1), w[1:]].sum()
                count += len(w) - 1
            loss = total / max(count, 1)
            return {"val_loss": loss, "perplexity": float(np.exp(loss))}

        if not windows:
            return None
        quality.measured_on = f"export check on {len(windows)} windows of {len(windows[0]) - 1} tokens of {source}"
        return quality

    def quality_on(text_path):
        from .data import load_documents
        from .tokenizer_build import encode_corpus

        ids = encode_corpus(tok, load_documents(text_path))
        if len(ids) < 2:
            raise ExportError(f"{text_path} holds fewer than 2 tokens; name a longer text to measure perplexity on")
        return quality_of(_windows(ids, min(T, LONG_CONTEXT, len(ids) - 1)), str(text_path))

    sampler = {k: v for k, v in run.config.get("sampler", {}).items()}
    module = OnnxDecoder(model).eval()

    def fused(opset: int):
        from .fused import fused_model

        return fused_model(model, inputs, outputs, opset)

    files = {
        # onnxruntime-genai picks its tokenizer by class: GPT2Tokenizer reads a tokenizer gentoolkit built
        **tokenizer_files(run.path, tok, T, tokenizer_class="GPT2Tokenizer"),
        "genai_config.json": json.dumps(genai_config(cfg, tok, Hkv, D), indent=2),
    }
    return ExportPlan(
        module=module,
        graphs={"fused": fused},
        default_graph="fused",  # faster than the traced graph at every size measured (docs/performance.md)
        onnxruntime={"fused": "1.22"},
        logits="logits",  # GroupQueryAttention's attention_bias (benchmarks/ort_compat.py)
        inputs=inputs,
        outputs=outputs,
        example=example,
        cases=cases,
        quality=quality_of(_val_windows(tree, tok, min(T, LONG_CONTEXT), n=4), "the validation split"),
        quality_on=quality_on,
        runtime={
            "kind": "decoder",
            "n_layer": L,
            "n_head": cfg.n_head,
            "n_kv_head": Hkv,
            "head_dim": D,
            "vocab_size": V,
            "context_length": T,
            "eos_token_id": tok.eos_id,
            "pad_token_id": tok.pad_id,
            "tokenizer_kind": tree["data"].tokenizer,
        },
        sampler_defaults=sampler,
        files=files,
        manifest={"tokenizer": "tokenizer.json"},
        layouts={"transformers.js": transformers_js_files(cfg, tok, files)},
        prequantized=FileBlocks.of(run, "lm_head.weight" in model.tied_keys),
    )


class FileBlocks(Mapping):
    """The blocks an import kept (``quantized.safetensors``, see :mod:`.gguf_file`) as ``ExportPlan.prequantized``:
    keyed by the fused graph's MatMul weights, which are named as our parameters, a tied head by
    ``lm_head.weight`` (the file's ``transformer.wte.weight``: the same (vocab, n_embd) blocks). Read one
    weight at a time, when the export asks for it."""

    def __init__(self, path, names: dict[str, str], meta: dict[str, str]):
        self.path, self.names, self.meta = path, names, meta

    @classmethod
    def of(cls, run: Run, tied: bool) -> FileBlocks | dict:
        from safetensors import safe_open

        from .gguf_file import QUANTIZED

        path = run.path / QUANTIZED
        if not path.is_file():
            return {}
        with safe_open(str(path), framework="np") as f:
            meta = dict(f.metadata() or {})
            have = {k.rsplit(".", 1)[0] for k in f.keys()}
        names = {n: n for n in have if n in meta}
        if tied and "transformer.wte.weight" in names:
            names["lm_head.weight"] = names.pop("transformer.wte.weight")
        return cls(path, names, meta)

    def __getitem__(self, name: str) -> dict:
        from safetensors import safe_open

        param = self.names[name]
        with safe_open(str(self.path), framework="np") as f:
            entry = {k: f.get_tensor(f"{param}.{k}") for k in ("q", "scale", "zero")}
        info = json.loads(self.meta[param])
        return {**entry, "bits": info["bits"], "block_size": info["block_size"], "source": info.get("source", "")}

    def __contains__(self, name) -> bool:  # without reading the blocks, as Mapping's own would
        return name in self.names

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def transformers_js_files(cfg, tok, files: dict[str, str]) -> dict[str, str]:
    """What ``--layout transformers.js`` puts at the top of the folder besides the export's own files: the
    config its pipeline reads the cache's shapes from, generation defaults that never pick the padding
    token (as gentoolkit.runtime never does), onnxruntime-genai's config pointing into ``onnx/``, and the
    tokenizer config saying which special tokens the tokenizer adds."""
    generation = json.loads(files["generation_config.json"])
    if tok.never_id is not None:
        generation["bad_words_ids"] = [[tok.never_id]]
    genai = json.loads(files["genai_config.json"])
    genai["model"]["decoder"]["filename"] = "onnx/model.onnx"
    # transformers.js' pipeline adds the tokenizer's special tokens only when tokenizer_config.json says
    # add_bos_token or add_eos_token, where transformers always adds them: say what the tokenizer adds
    tokenizer_config = json.loads(files["tokenizer_config.json"])
    with_specials, bare = tok.tok.encode("a").ids, tok.tok.encode("a", add_special_tokens=False).ids
    tokenizer_config["add_bos_token"] = len(with_specials) > len(bare) and with_specials[0] != bare[0]
    tokenizer_config["add_eos_token"] = len(with_specials) > len(bare) and with_specials[-1] != bare[-1]
    return {"config.json": json.dumps(hf_config(cfg, tok, weights=False), indent=2) + "\n",
            "generation_config.json": json.dumps(generation, indent=2) + "\n",
            "genai_config.json": json.dumps(genai, indent=2) + "\n",
            "tokenizer_config.json": json.dumps(tokenizer_config, indent=2) + "\n"}


def _val_windows(tree, tok, block: int, n: int = 8) -> list[np.ndarray]:
    """A few windows of the run's validation split, for the quality report of fp16/int8 exports."""
    from .data import load_documents
    from .task import split
    from .tokenizer_build import encode_corpus

    try:
        ids = encode_corpus(tok, load_documents(tree["data"].path))
        _, val = split(ids, tree["data"].val_fraction, block)
    except Exception:  # noqa: BLE001 - the data may be gone; quality is then not reported
        return []
    return _windows(val, block, n)


def _windows(ids, block: int, n: int = 8) -> list[np.ndarray]:
    """``n`` windows of ``block + 1`` tokens spread evenly over ``ids`` (fewer where ``ids`` is short)."""
    ids = np.asarray(ids)
    if len(ids) < block + 1:
        return []
    starts = np.unique(np.linspace(0, len(ids) - block - 1, n).astype(int))
    return [ids[s : s + block + 1] for s in starts]
