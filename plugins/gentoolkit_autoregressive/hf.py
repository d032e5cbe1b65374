"""Hugging Face folders in and out: ``LlamaForCausalLM`` and ``GPT2LMHeadModel`` as runs of ``llama`` and ``gpt``.

A Hugging Face folder holds ``config.json``, ``model.safetensors`` (or shards named by
``model.safetensors.index.json``), ``tokenizer.json``, ``tokenizer_config.json`` (special
tokens, ``chat_template``) and ``generation_config.json``. :func:`import_folder` reads the
config and the tensors directly (safetensors, one tensor at a time: never two fp32 copies of
the model), maps the names onto this family's modules (:data:`LLAMA` and :data:`GPT2`, as
plain data), and writes a run folder that ``sample``, ``eval``, ``export`` and ``train
--init`` take. :func:`export_folder` writes the way back, a folder transformers loads with no
custom code. Pickle checkpoints (``pytorch_model.bin``, ``.pt``) are refused: no pickle, ever.
transformers itself is not needed for either.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gentoolkit.errors import GentoolError

from .tokenizer_build import TOKENIZER_FILES

PICKLE = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GentoolError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise GentoolError(f"{path} must hold a JSON object")
    return data


def model_type(folder: str | Path) -> str:
    """``config.json``'s ``model_type`` of a Hugging Face folder, with clear errors for what is not one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GentoolError(f"{str(folder)!r} is not a folder; give a Hugging Face model folder (config.json, "
                           "model.safetensors, tokenizer.json)")
    if not (folder / "config.json").is_file():
        raise GentoolError(f"{str(folder)!r} has no config.json: it is not a Hugging Face model folder")
    hf = _read_json(folder / "config.json")
    kind = hf.get("model_type")
    if not isinstance(kind, str):
        raise GentoolError(f"{folder / 'config.json'} has no model_type")
    return kind


def _shards(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise GentoolError(f"{index} has no weight_map")
        from gentoolkit.files import inside

        return [inside(folder, name, "a shard the index names") for name in sorted(set(weight_map.values()))]
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    pickled = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE)
    if pickled:
        raise GentoolError(f"{str(folder)!r} holds only pickle checkpoints ({', '.join(pickled[:3])}); gentoolkit never "
                           "loads pickle, which can run code. Convert them to safetensors where you trust them "
                           "(save_pretrained(..., safe_serialization=True))")
    raise GentoolError(f"{str(folder)!r} has no model.safetensors (nor model.safetensors.index.json)")


class _Tensors:
    """Every tensor of a folder's safetensors files, opened lazily, read one at a time."""

    def __init__(self, folder: Path):
        from safetensors import safe_open

        self.files = []
        self.where: dict[str, int] = {}
        for i, path in enumerate(_shards(folder)):
            try:
                f = safe_open(str(path), framework="pt")
            except Exception as exc:  # noqa: BLE001 - safetensors' own error types
                raise GentoolError(f"{path} is damaged or not a safetensors file ({exc})") from None
            self.files.append(f)
            for key in f.keys():
                self.where[key] = i

    def __contains__(self, key: str) -> bool:
        return key in self.where

    def get(self, key: str):
        if key not in self.where:
            raise GentoolError(f"the checkpoint lacks the tensor {key!r}")
        return self.files[self.where[key]].get_tensor(key)


# --- the configs ------------------------------------------------------------------------------------------------
def _unsupported(what: str, value, kind: str) -> GentoolError:
    return GentoolError(f"this {kind} checkpoint uses {what}={value!r}, which gentoolkit's model does not support")


def llama_config(hf: dict[str, Any]):
    """The ``[model]`` section of a ``llama`` run for a ``LlamaForCausalLM`` config (an error for options it lacks)."""
    from .config import LlamaConfig

    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise _unsupported("hidden_act", act, "Llama")
    rope = hf.get("rope_scaling") or {}
    params = hf.get("rope_parameters") or {}
    rope_type = (rope.get("rope_type") or rope.get("type") or params.get("rope_type") or "default") if isinstance(
        rope, dict) and isinstance(params, dict) else "?"
    if rope_type != "default":
        raise _unsupported("rope scaling type", rope_type, "Llama")
    theta = params.get("rope_theta", hf.get("rope_theta", 10000.0)) if isinstance(params, dict) else 10000.0
    for key in ("pretraining_tp",):
        if hf.get(key, 1) != 1:
            raise _unsupported(key, hf[key], "Llama")
    n_embd, n_head = hf["hidden_size"], hf["num_attention_heads"]
    head_dim = hf.get("head_dim") or n_embd // n_head
    try:
        return LlamaConfig(
            n_layer=hf["num_hidden_layers"], n_head=n_head, n_kv_head=hf.get("num_key_value_heads") or n_head,
            n_embd=n_embd, block_size=hf.get("max_position_embeddings", 2048),
            intermediate_size=hf["intermediate_size"], rope_theta=float(theta),
            norm_eps=float(hf.get("rms_norm_eps", 1e-6)), tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
            vocab_size=hf["vocab_size"], head_dim=None if head_dim * n_head == n_embd else head_dim,
            attention_bias=bool(hf.get("attention_bias", False)), mlp_bias=bool(hf.get("mlp_bias", False)),
        )
    except KeyError as exc:
        raise GentoolError(f"the Llama config.json lacks {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise GentoolError(f"the Llama config.json does not describe a model gentoolkit can build: {exc}") from None


def gpt2_config(hf: dict[str, Any]):
    """The ``[model]`` section of a ``gpt`` run for a ``GPT2LMHeadModel`` config."""
    from .config import GPTConfig

    act = hf.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh", "gelu"):
        raise _unsupported("activation_function", act, "GPT-2")
    for key, ok in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                    ("reorder_and_upcast_attn", False), ("add_cross_attention", False)):
        if hf.get(key, ok) != ok:
            raise _unsupported(key, hf[key], "GPT-2")
    if hf.get("tie_word_embeddings", True) is not True:
        raise _unsupported("tie_word_embeddings", False, "GPT-2")
    try:
        return GPTConfig(n_layer=hf["n_layer"], n_head=hf["n_head"], n_embd=hf["n_embd"], block_size=hf["n_positions"],
                         bias=True, vocab_size=hf["vocab_size"], norm_eps=float(hf.get("layer_norm_epsilon", 1e-5)),
                         activation="gelu" if act == "gelu" else "gelu_tanh")
    except KeyError as exc:
        raise GentoolError(f"the GPT-2 config.json lacks {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise GentoolError(f"the GPT-2 config.json does not describe a model gentoolkit can build: {exc}") from None


# --- the weights, as plain data ---------------------------------------------------------------------------------
# (our name, Hugging Face names, how): "copy"; "t" (GPT-2's Conv1D keeps weights transposed); "cat" (our one
# c_attn is Llama's q_proj, k_proj and v_proj stacked). "{i}" is the layer; an entry whose names are absent
# (a bias the config has none of, an untied head) is passed over where our model has no such parameter.
LLAMA = [
    ("transformer.wte.weight", ["model.embed_tokens.weight"], "copy"),
    ("transformer.h.{i}.ln_1.weight", ["model.layers.{i}.input_layernorm.weight"], "copy"),
    ("transformer.h.{i}.attn.c_attn.weight", [f"model.layers.{{i}}.self_attn.{p}_proj.weight" for p in "qkv"], "cat"),
    ("transformer.h.{i}.attn.c_attn.bias", [f"model.layers.{{i}}.self_attn.{p}_proj.bias" for p in "qkv"], "cat"),
    ("transformer.h.{i}.attn.c_proj.weight", ["model.layers.{i}.self_attn.o_proj.weight"], "copy"),
    ("transformer.h.{i}.attn.c_proj.bias", ["model.layers.{i}.self_attn.o_proj.bias"], "copy"),
    ("transformer.h.{i}.ln_2.weight", ["model.layers.{i}.post_attention_layernorm.weight"], "copy"),
    ("transformer.h.{i}.mlp.gate_proj.weight", ["model.layers.{i}.mlp.gate_proj.weight"], "copy"),
    ("transformer.h.{i}.mlp.gate_proj.bias", ["model.layers.{i}.mlp.gate_proj.bias"], "copy"),
    ("transformer.h.{i}.mlp.up_proj.weight", ["model.layers.{i}.mlp.up_proj.weight"], "copy"),
    ("transformer.h.{i}.mlp.up_proj.bias", ["model.layers.{i}.mlp.up_proj.bias"], "copy"),
    ("transformer.h.{i}.mlp.c_proj.weight", ["model.layers.{i}.mlp.down_proj.weight"], "copy"),
    ("transformer.h.{i}.mlp.c_proj.bias", ["model.layers.{i}.mlp.down_proj.bias"], "copy"),
    ("transformer.ln_f.weight", ["model.norm.weight"], "copy"),
    ("lm_head.weight", ["lm_head.weight"], "copy"),
]
GPT2 = [
    ("transformer.wte.weight", ["transformer.wte.weight"], "copy"),
    ("transformer.wpe.weight", ["transformer.wpe.weight"], "copy"),
    *[(f"transformer.h.{{i}}.{m}.{p}", [f"transformer.h.{{i}}.{m}.{p}"], "t" if p == "weight" and "ln" not in m else "copy")
      for m in ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj") for p in ("weight", "bias")],
    ("transformer.ln_f.weight", ["transformer.ln_f.weight"], "copy"),
    ("transformer.ln_f.bias", ["transformer.ln_f.bias"], "copy"),
]
FAMILIES = {"llama": ("llama", llama_config, LLAMA), "gpt2": ("gpt", gpt2_config, GPT2)}


def _expand(mapping, n_layer: int):
    for ours, theirs, how in mapping:
        for i in (range(n_layer) if "{i}" in ours else [None]):
            yield ours.format(i=i), [t.format(i=i) for t in theirs], how


def load_weights(model, tensors: _Tensors, mapping, kind: str) -> None:
    """Copy a checkpoint into ``model`` one tensor at a time, in place (fp16 and bf16 become fp32)."""
    import torch

    params = dict(model.state_dict(keep_vars=True))
    tied = getattr(model, "tied_keys", set())
    done = set()
    with torch.no_grad():
        for ours, theirs, how in _expand(mapping, model.config.n_layer):
            if ours not in params or ours in tied:
                continue
            names = [t if t in tensors else t.removeprefix("transformer.") for t in theirs]
            if not all(n in tensors for n in names):
                raise GentoolError(f"the {kind} checkpoint lacks {theirs[0]!r} (for {ours})")
            parts = [tensors.get(n) for n in names]
            value = torch.cat(parts, 0) if how == "cat" else parts[0].t() if how == "t" else parts[0]
            target = params[ours]
            if tuple(value.shape) != tuple(target.shape):
                raise GentoolError(f"the {kind} checkpoint's {names[0]} has shape {tuple(value.shape)}, but "
                                   f"config.json makes it {tuple(target.shape)}")
            target.copy_(value.to(target.dtype))
            done.add(ours)
    missing = sorted(set(params) - done - tied)
    if missing:
        raise GentoolError(f"the {kind} checkpoint has nothing for {missing[:3]}")


# --- import -------------------------------------------------------------------------------------------------------
def check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GentoolError(f"-o {str(out)!r} exists and is not an empty folder; give a new folder for the run")


def import_folder(folder: str | Path, out: str | Path, *, log=print) -> Path:
    """Make the Hugging Face folder ``folder`` a run folder ``out`` (written whole, or not at all)."""
    folder, out = Path(folder), Path(out)
    kind = model_type(folder)
    if kind not in FAMILIES:
        raise GentoolError(f"{str(folder)!r} holds a {kind!r} model; gentoolkit imports llama "
                           "(LlamaForCausalLM) and gpt2 (GPT2LMHeadModel)")
    check_out(out)
    hf = _read_json(folder / "config.json")
    FAMILIES[kind][1](hf)  # the config's errors before any file is read
    if not (folder / "tokenizer.json").is_file():
        raise GentoolError(f"{str(folder)!r} has no tokenizer.json (a fast tokenizer); gentoolkit needs it to "
                           "read and write text")
    files = {f: (folder / f).read_bytes() for f in TOKENIZER_FILES if (folder / f).is_file()}
    generation = folder / "generation_config.json"
    return write_run(out, kind, hf, _Tensors(folder), files, source=str(folder),
                     generation=_read_json(generation) if generation.is_file() else {},
                     imported_from={"path": str(folder.resolve()), "model_type": kind,
                                    "architectures": hf.get("architectures")}, log=log)


def write_run(out: Path, kind: str, hf: dict[str, Any], tensors, files: dict[str, bytes], *, source: str,
              generation: dict[str, Any], imported_from: dict[str, Any], log=print, extra=None) -> Path:
    """The run folder ``out`` of a pretrained model, whatever file it came from (a Hugging Face folder, a
    GGUF): ``hf`` is its transformers ``config.json``, ``tensors`` gives its tensors under Hugging Face names
    (``in`` and ``get``, as :class:`_Tensors`), ``files`` are the tokenizer files, ``generation`` its
    ``generation_config.json``. ``extra(tmp, model)`` writes more files into the folder before it is
    published. Written whole, or not at all."""
    import dataclasses

    import torch

    from gentoolkit.config import build as build_config
    from gentoolkit.config import to_dict
    from gentoolkit.files import atomic_dir
    from gentoolkit.plugin.manager import get_model
    from gentoolkit.train.checkpoint import flat_weights, save_weights
    from gentoolkit.train.run import RUN_FORMAT, WEIGHTS

    from .model import build
    from .tokenizer import TextTokenizer

    check_out(out)
    name, make_config, mapping = FAMILIES[kind]
    mcfg = make_config(hf)
    spec = get_model(name)
    tree = build_config(spec.config_sections, {"data": {"tokenizer": "hf"}, "sampler": _sampler_defaults(generation)})
    tree["model"] = mcfg
    with atomic_dir(out) as tmp:
        for f, content in files.items():
            (tmp / f).write_bytes(content)
        tok = TextTokenizer.from_file(tmp / "tokenizer.json", "hf")
        if tok.vocab_size > mcfg.vocab_size:
            raise GentoolError(f"the tokenizer has {tok.vocab_size} tokens but the model only {mcfg.vocab_size}")
        log(f"importing {kind} ({mcfg.n_layer} layers, {mcfg.n_embd} wide, vocabulary {mcfg.vocab_size}) "
            f"from {source}")
        torch.manual_seed(0)
        model = build(mcfg).eval()
        load_weights(model, tensors, mapping, kind)
        del tensors
        save_weights(tmp / WEIGHTS, flat_weights({"": model}))
        if extra is not None:
            extra(tmp, model)
        meta = {"format": RUN_FORMAT, "model": name, "family": spec.family, "plugin": spec.plugin,
                "imported_from": imported_from,
                "config": to_dict({**{k: v for k, v in tree.items()}, "model": dataclasses.replace(mcfg)})}
        (tmp / "config.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {out} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters)")
    return out


def _sampler_defaults(g: dict[str, Any]) -> dict[str, Any]:
    """``[sampler]`` defaults from ``generation_config.json`` (``g``), meaning what they mean to transformers'
    ``generate``: greedy unless ``do_sample``, and then its defaults (temperature 1, top-k 50, top-p 1)."""
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    out: dict[str, Any] = {"max_new_tokens": g["max_new_tokens"]} if number(g.get("max_new_tokens")) else {}
    if number(g.get("repetition_penalty")):
        out["repetition_penalty"] = g["repetition_penalty"]
    if g.get("do_sample") is not True:
        return {**out, "temperature": 0.0}
    defaults = {"temperature": 1.0, "top_k": 50, "top_p": 1.0, "min_p": 0.0}
    return {**out, **{k: g[k] if number(g.get(k)) else v for k, v in defaults.items()}}


def is_imported(meta: dict) -> bool:
    return isinstance(meta.get("imported_from"), dict)


# --- export to transformers ----------------------------------------------------------------------------------------
def hf_config(cfg, tok, weights: bool = True) -> dict[str, Any]:
    """The transformers ``config.json`` of a run's ``[model]`` section. ``weights=False``: a config that
    describes the shapes only (transformers.js reads it beside an ONNX graph), where a GPT-2 without
    biases is no error."""
    from .config import LlamaConfig

    common = {"vocab_size": cfg.vocab_size, "bos_token_id": tok.bos_id, "eos_token_id": list(tok.eos_ids)
              if len(tok.eos_ids) > 1 else tok.eos_id, "torch_dtype": "float32"}
    if isinstance(cfg, LlamaConfig):
        head = cfg.head_size
        return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": cfg.n_embd,
                "num_hidden_layers": cfg.n_layer, "num_attention_heads": cfg.n_head,
                "num_key_value_heads": cfg.n_kv_head, "head_dim": head,
                "intermediate_size": cfg.intermediate_size or 32 * -(-8 * cfg.n_embd // 3 // 32),
                "max_position_embeddings": cfg.block_size, "rope_theta": cfg.rope_theta, "rms_norm_eps": cfg.norm_eps,
                "tie_word_embeddings": cfg.tie_embeddings, "attention_bias": cfg.attention_bias,
                "mlp_bias": cfg.mlp_bias, "hidden_act": "silu", "rope_scaling": None, **common}
    if not cfg.bias and weights:
        raise GentoolError("transformers' GPT-2 always has biases; this gpt run has model.bias=false, so it has no "
                           "GPT2LMHeadModel; export it to ONNX instead")
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": cfg.n_embd, "n_layer": cfg.n_layer,
            "n_head": cfg.n_head, "n_positions": cfg.block_size, "n_ctx": cfg.block_size,
            "layer_norm_epsilon": cfg.norm_eps, "n_inner": None,
            "activation_function": "gelu_new" if cfg.activation == "gelu_tanh" else "gelu", "tie_word_embeddings": True,
            "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, **common}


def export_folder(run, out: str | Path, *, overwrite: bool = False, log=print) -> Path:
    """Write the run as a Hugging Face folder that ``AutoModelForCausalLM`` and ``AutoTokenizer`` load."""
    import torch

    from gentoolkit.export import check_target
    from gentoolkit.files import atomic_dir, remove_stale_temps
    from gentoolkit.train.checkpoint import save_weights

    from .config import LlamaConfig
    from .run_model import load_run

    out = Path(out)
    if check_target(out, run.path, overwrite) != "new":
        raise GentoolError(f"-o {str(out)!r} is not empty; a Hugging Face export goes to a new or empty folder")
    remove_stale_temps(out.parent, stem=out.name)
    model, tok, tree = load_run(run)
    cfg = tree["model"]
    is_llama = isinstance(cfg, LlamaConfig)
    config = hf_config(cfg, tok)
    state = model.state_dict()
    mapping = LLAMA if is_llama else GPT2
    tensors: dict[str, Any] = {}
    for ours, theirs, how in _expand(mapping, cfg.n_layer):
        if ours not in state or ours in model.tied_keys:
            continue
        value = state[ours].detach().contiguous()
        if how == "cat":
            sizes = [cfg.n_head * model.head_dim, model.n_kv_head * model.head_dim, model.n_kv_head * model.head_dim]
            for name, part in zip(theirs, torch.split(value, sizes, 0)):
                tensors[name] = part.contiguous()
        else:
            tensors[theirs[0]] = value.t().contiguous() if how == "t" else value
    with atomic_dir(out) as tmp:
        save_weights(tmp / "model.safetensors", tensors)
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        for name, content in tokenizer_files(run.path, tok, cfg.block_size).items():
            (tmp / name).write_text(content, encoding="utf-8")
    log(f"exported {out} ({config['architectures'][0]}: load it with transformers' AutoModelForCausalLM)")
    return out


def tokenizer_files(run_path: Path, tok, block_size: int, tokenizer_class: str = "PreTrainedTokenizerFast"
                    ) -> dict[str, str]:
    """The tokenizer files an export carries: the run's own (an imported model's come across whole), and
    ``tokenizer_config.json`` and ``generation_config.json`` made from the tokenizer's special tokens
    where the run has none (a tokenizer gentoolkit built)."""
    files = {f: (run_path / f).read_text(encoding="utf-8") for f in TOKENIZER_FILES if (run_path / f).is_file()}
    text = lambda i: tok.tok.id_to_token(i) if i is not None else None  # noqa: E731
    eos = list(tok.eos_ids) if len(tok.eos_ids) > 1 else tok.eos_id
    files.setdefault("tokenizer_config.json", json.dumps({
        "tokenizer_class": tokenizer_class, "model_max_length": block_size, "bos_token": text(tok.bos_id),
        "eos_token": text(tok.eos_id), "pad_token": text(tok.pad_id), "unk_token": None,
        "clean_up_tokenization_spaces": False}, indent=2) + "\n")
    files.setdefault("generation_config.json", json.dumps({"bos_token_id": tok.bos_id, "eos_token_id": eos,
                                                           "pad_token_id": tok.pad_id}, indent=2) + "\n")
    return files
