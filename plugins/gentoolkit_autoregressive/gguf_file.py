"""llama.cpp's GGUF files in: a Llama or GPT-2 ``.gguf`` as a run of ``llama`` or ``gpt``.

A GGUF holds the config, the tokenizer and the tensors in one file, under llama.cpp's names.
:func:`import_file` reads it with the ``gguf`` package (``GGUFReader``, ``gguf.quants.dequantize``),
presents its tensors under Hugging Face names (:class:`GGUFTensors`, dequantized to fp32 one at a
time, with the rows of ``attn_q``/``attn_k`` put back in Hugging Face's order: llama.cpp's convert
script permutes them for its rotary embedding), builds ``tokenizer.json`` (as transformers' GGUF
loader does), ``tokenizer_config.json`` and ``generation_config.json`` from the ``tokenizer.*``
metadata, and writes the run folder with :func:`hf.write_run`, the writer a Hugging Face folder's
import uses.

The file's own blocks of the weights stored as Q4_0, Q4_1 or Q8_0 are kept beside the fp32 weights,
in ``quantized.safetensors``: per parameter ``P`` of the run, ``P.q`` (uint8 codes, ``(out, in)``),
``P.scale`` and ``P.zero`` (float32, ``(out, in / block)``), so that ``scale * (q - zero)``, each
block of ``block`` consecutive inputs with its own scale and zero, is the run's weight. An export
can then ship exactly the model the file's author quantized instead of quantizing it again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gentoolkit.errors import GentoolError

from . import hf as hfmod

MAGIC = b"GGUF"
#: GGUF general.architecture -> the Hugging Face model_type whose family imports it
ARCHITECTURES = {"llama": "llama", "gpt2": "gpt2"}
#: the tensor types read (dequantized to fp32)
READABLE = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")
#: the block-quantized types whose blocks are kept (quantized.safetensors): bits per code
KEPT = {"Q4_0": 4, "Q4_1": 4, "Q8_0": 8}
BLOCK = 32
QUANTIZED = "quantized.safetensors"
#: what the check of the kept blocks allows: |scale * (q - zero) - w| <= TOLERANCE * (|w| + |scale * zero|)
TOLERANCE = 1e-6

# GGUF tensor names (``blk.N.X.P`` in a layer, ``X.P`` outside) -> Hugging Face names
LLAMA_LAYER = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
               "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
               "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
LLAMA_TOP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
GPT2_LAYER = {"attn_norm": "ln_1", "attn_qkv": "attn.c_attn", "attn_output": "attn.c_proj", "ffn_norm": "ln_2",
              "ffn_up": "mlp.c_fc", "ffn_down": "mlp.c_proj"}
GPT2_TOP = {"token_embd": "transformer.wte", "position_embd": "transformer.wpe", "output_norm": "transformer.ln_f"}
#: GPT-2's Conv1D keeps (in, out); llama.cpp stores these (out, in), as our Linear does
GPT2_TRANSPOSED = ("attn_qkv", "attn_output", "ffn_up", "ffn_down")

# How transformers' GGUF loader splits text before byte-level BPE, by ``tokenizer.ggml.pre`` (the others:
# GPT-2's own split); the same expressions as its GGUF_PRE_TOKENIZER_SPLITS.
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPLITS = {**dict.fromkeys(("llama3", "llama-v3", "llama-bpe", "falcon3", "dbrx", "smaug-bpe", "pixtral"), _LLAMA3_SPLIT),
          **dict.fromkeys(("qwen2", "deepseek-r1-qwen"), _QWEN2_SPLIT)}
CONTROL, USER_DEFINED = 3, 4  # tokenizer.ggml.token_type values


def is_gguf(path: str | Path) -> bool:
    """Whether ``path`` is a file that starts with GGUF's magic."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == MAGIC
    except OSError:
        return False


# --- reading ------------------------------------------------------------------------------------------------------
def gguf_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gguf")
    except PackageNotFoundError:
        return "?"


def _reader_class(gguf):
    """``gguf.GGUFReader``, reading its header through a plain array rather than its ``np.memmap``: the same
    values, 3-4x sooner (a memmap's every slice costs more than the value; a vocabulary is 100k of them).
    The reader itself where its ``_get`` is not the one this was written for (gguf 0.16 to 0.19)."""
    import inspect

    import numpy as np

    base = gguf.GGUFReader
    try:
        if list(inspect.signature(base._get).parameters) != ["self", "offset", "dtype", "count", "override_order"]:
            return base
    except (AttributeError, TypeError, ValueError):
        return base

    class Reader(base):
        def _get(self, offset, dtype, count=1, override_order=None):
            plain = self.__dict__.get("_plain")
            if plain is None:
                plain = self._plain = self.data.view(np.ndarray)
            count, dtype = int(count), np.dtype(dtype)
            arr = plain[offset:offset + dtype.itemsize * count].view(dtype=dtype)[:count]
            return arr.view(arr.dtype.newbyteorder(self.byte_order if override_order is None else override_order))

    return Reader


class GGUFFile:
    """A GGUF's metadata (plain Python values) and tensors (by GGUF name), read through ``gguf.GGUFReader``."""

    def __init__(self, path: Path):
        try:
            import gguf
        except ImportError:
            raise GentoolError("reading a GGUF file needs the gguf package: pip install gguf") from None
        if not path.is_file():
            raise GentoolError(f"{str(path)!r} is not a file")
        if not is_gguf(path):
            raise GentoolError(f"{str(path)!r} is not a GGUF file (it does not start with 'GGUF')")
        try:
            reader = _reader_class(gguf)(str(path))
        except Exception as exc:  # noqa: BLE001 - the reader raises ValueError, struct and numpy errors alike
            if "GGMLQuantizationType" in str(exc):  # a tensor type newer than the installed gguf package
                raise GentoolError(f"{str(path)!r} stores a tensor type the gguf package {gguf_version()} does not "
                                   f"know ({exc}); gentoolkit reads {', '.join(READABLE)}") from None
            raise GentoolError(f"{str(path)!r} is damaged or not a GGUF file gentoolkit can read ({exc})") from None
        self.path = path
        self.reader = reader
        self.meta: dict[str, Any] = {}
        for key, f in reader.fields.items():
            try:
                self.meta[key] = f.contents()
            except Exception:  # noqa: BLE001 - a value of a type the package cannot decode: unused
                continue
        self.tensors = {t.name: t for t in reader.tensors}

    def need(self, key: str):
        if key not in self.meta:
            raise GentoolError(f"{str(self.path)!r} lacks the metadata {key!r}")
        return self.meta[key]

    @property
    def architecture(self) -> str:
        arch = self.need("general.architecture")
        if not isinstance(arch, str):
            raise GentoolError(f"{str(self.path)!r}: general.architecture is not a string")
        return arch

    def type_of(self, name: str) -> str:
        return self.tensors[name].tensor_type.name

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tensors.values():
            out[t.tensor_type.name] = out.get(t.tensor_type.name, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))

    def array(self, name: str):
        """The tensor ``name`` dequantized to fp32, in numpy's order (rows are ggml's second dimension)."""
        import numpy as np
        from gguf.quants import dequantize

        t = self.tensors[name]
        shape = tuple(int(n) for n in reversed(t.shape.tolist()))
        try:
            value = dequantize(np.asarray(t.data), t.tensor_type)  # a plain array: a memmap's slices are slow
        except (NotImplementedError, ValueError) as exc:
            raise GentoolError(f"cannot read the tensor {name} ({t.tensor_type.name}): {exc}") from None
        return np.array(value, dtype=np.float32).reshape(shape)  # a copy: the file is mapped read-only

    def blocks(self, name: str):
        """The Q4_0/Q4_1/Q8_0 blocks of the 2-D tensor ``name`` as ``(q, scale, zero)``: uint8 codes ``(rows,
        cols)``, float32 ``(rows, cols / 32)`` each, with ``scale * (q - zero)`` the weight; None for another type."""
        import numpy as np

        t = self.tensors[name]
        kind = t.tensor_type.name
        if kind not in KEPT or len(t.shape) != 2:
            return None
        cols, rows = (int(n) for n in t.shape.tolist())
        raw = np.asarray(t.data, dtype=np.uint8).reshape(rows, cols // BLOCK, -1)
        d = raw[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
        if kind == "Q8_0":
            q = (raw[..., 2:].view(np.int8).astype(np.int16) + 128).astype(np.uint8)
            return q.reshape(rows, cols), d, np.full_like(d, 128.0)
        packed = raw[..., 4:] if kind == "Q4_1" else raw[..., 2:]
        q = np.concatenate([packed & 0x0F, packed >> 4], axis=-1)  # ggml: low nibbles first, then high
        if kind == "Q4_0":
            return q.reshape(rows, cols), d, np.full_like(d, 8.0)
        m = raw[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)  # Q4_1: w = d * q + m
        flat = d == 0
        scale = np.where(flat, np.float32(1), d)
        with np.errstate(divide="ignore", invalid="ignore"):
            zero = np.where(flat, -m, -m / np.where(flat, np.float32(1), d)).astype(np.float32)
        q = np.where(flat[..., None], np.uint8(0), q)
        return q.reshape(rows, cols), scale.astype(np.float32), zero


def unpermute_rows(rows: int, n_head: int):
    """The row order that undoes llama.cpp's rotary permutation of ``attn_q``/``attn_k`` (``hf = gguf[order]``).

    llama.cpp's convert script writes ``w.reshape(n_head, 2, rows // n_head // 2, ...).swapaxes(1, 2)``; whole
    rows move, so quantization blocks (which run along the inputs) move with them, intact."""
    import numpy as np

    if rows % (2 * n_head):
        raise GentoolError(f"an attention projection of {rows} rows does not split into {n_head} heads")
    return np.arange(rows).reshape(n_head, rows // n_head // 2, 2).swapaxes(1, 2).reshape(-1)


class GGUFTensors:
    """A GGUF's tensors under Hugging Face names, as :func:`hf.load_weights` takes them (``in``, ``get``),
    dequantized to fp32 one at a time; :meth:`blocks` gives the file's own quantization blocks."""

    def __init__(self, file: GGUFFile, names: dict[str, str], transposed: set[str], permuted: dict[str, int]):
        self.file = file
        self.names = names  # Hugging Face name -> GGUF name
        self.transposed = transposed  # Hugging Face names stored transposed (GPT-2's Conv1D)
        self.permuted = permuted  # Hugging Face name -> the heads llama.cpp permuted its rows over

    def __contains__(self, key: str) -> bool:
        return key in self.names

    def _order(self, key: str, rows: int):
        return unpermute_rows(rows, self.permuted[key]) if key in self.permuted else None

    def get(self, key: str):
        import torch

        if key not in self.names:
            raise GentoolError(f"the GGUF lacks a tensor for {key!r}")
        value = self.file.array(self.names[key])
        order = self._order(key, value.shape[0])
        if order is not None:
            value = value[order]
        tensor = torch.from_numpy(value)
        return tensor.t() if key in self.transposed else tensor

    def blocks(self, key: str):
        """``(q, scale, zero, type)`` of ``key`` in our model's orientation (rows: output features), or None."""
        name = self.names.get(key)
        found = self.file.blocks(name) if name is not None else None
        if found is None:
            return None
        q, scale, zero = found
        order = self._order(key, q.shape[0])
        if order is not None:
            q, scale, zero = q[order], scale[order], zero[order]
        return q, scale, zero, self.file.type_of(name)


def _names(file: GGUFFile, arch: str) -> tuple[dict[str, str], set[str], dict[str, int], list[str]]:
    """Hugging Face name -> GGUF name of every tensor, the transposed ones, the permuted ones (with their
    heads), and the GGUF tensors our model has no place for."""
    layer_map, top = (LLAMA_LAYER, LLAMA_TOP) if arch == "llama" else (GPT2_LAYER, GPT2_TOP)
    prefix = "model.layers" if arch == "llama" else "transformer.h"
    n_head = file.meta.get(f"{arch}.attention.head_count")
    n_kv = file.meta.get(f"{arch}.attention.head_count_kv") or n_head
    names, transposed, permuted, unknown = {}, set(), {}, []
    for gname in file.tensors:
        parts = gname.split(".")
        if parts[0] == "blk" and len(parts) == 4 and parts[1].isdigit() and parts[2] in layer_map:
            key = f"{prefix}.{parts[1]}.{layer_map[parts[2]]}.{parts[3]}"
            if arch == "gpt2" and parts[2] in GPT2_TRANSPOSED and parts[3] == "weight":
                transposed.add(key)
            if arch == "llama" and parts[2] in ("attn_q", "attn_k"):
                permuted[key] = n_head if parts[2] == "attn_q" else n_kv
        elif len(parts) == 2 and parts[0] in top:
            key = f"{top[parts[0]]}.{parts[1]}"
        elif arch == "gpt2" and gname == "output.weight":
            continue  # llama.cpp writes GPT-2's tied head out again; ours is token_embd.weight (see import_file)
        else:
            unknown.append(gname)
            continue
        names[key] = gname
    return names, transposed, permuted, unknown


# --- the config ---------------------------------------------------------------------------------------------------
def _number(file: GGUFFile, key: str, default=None):
    value = file.meta.get(key, default)
    if value is None:
        raise GentoolError(f"{str(file.path)!r} lacks the metadata {key!r}")
    if isinstance(value, list):
        raise GentoolError(f"{str(file.path)!r}: {key} differs from layer to layer, which gentoolkit's model "
                           "does not support")
    return value


def hf_config(file: GGUFFile, arch: str, vocab_size: int) -> dict[str, Any]:
    """The transformers ``config.json`` the GGUF's metadata describes (read by :func:`hf.llama_config` and
    :func:`hf.gpt2_config`, which refuse what our model lacks)."""
    a = arch + "."
    if file.meta.get(a + "expert_count"):
        raise hfmod._unsupported("expert_count", file.meta[a + "expert_count"], "Llama")
    n_embd, n_head = _number(file, a + "embedding_length"), _number(file, a + "attention.head_count")
    common = {"vocab_size": int(file.meta.get(a + "vocab_size") or vocab_size)}
    if arch == "gpt2":
        ff = _number(file, a + "feed_forward_length", 4 * n_embd)
        if ff != 4 * n_embd:
            raise hfmod._unsupported("feed_forward_length", ff, "GPT-2")
        return {"model_type": "gpt2", "n_layer": _number(file, a + "block_count"), "n_head": n_head, "n_embd": n_embd,
                "n_positions": _number(file, a + "context_length"), "activation_function": "gelu_new",
                "layer_norm_epsilon": float(_number(file, a + "attention.layer_norm_epsilon", 1e-5)), **common}
    head_dim = file.meta.get(a + "attention.key_length") or n_embd // n_head
    rotary = file.meta.get(a + "rope.dimension_count", head_dim)
    if rotary != head_dim:
        raise hfmod._unsupported("rope.dimension_count", rotary, "Llama")
    scaling = file.meta.get(a + "rope.scaling.type") or ("llama3" if "rope_freqs.weight" in file.tensors else None)
    return {
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": n_embd,
        "num_hidden_layers": _number(file, a + "block_count"), "num_attention_heads": n_head,
        "num_key_value_heads": _number(file, a + "attention.head_count_kv", n_head), "head_dim": head_dim,
        "intermediate_size": _number(file, a + "feed_forward_length"),
        "max_position_embeddings": _number(file, a + "context_length"),
        "rope_theta": float(_number(file, a + "rope.freq_base", 10000.0)),
        "rms_norm_eps": float(_number(file, a + "attention.layer_norm_rms_epsilon", 1e-6)),
        "rope_scaling": None if scaling in (None, "none") else {"rope_type": scaling},
        "tie_word_embeddings": "output.weight" not in file.tensors,
        "attention_bias": "blk.0.attn_q.bias" in file.tensors, "mlp_bias": "blk.0.ffn_up.bias" in file.tensors,
        **common,
    }


# --- the tokenizer ------------------------------------------------------------------------------------------------
def _byte_chars() -> dict[int, str]:
    """GPT-2's printable character for every byte (what a byte-level vocabulary is spelled in)."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in bs]
    return {**{b: chr(b) for b in bs}, **{b: chr(256 + n) for n, b in enumerate(extra)}}


def _score_merges(tokens: list[str], scores: list[float]) -> list[tuple[str, str]]:
    """The merges a SentencePiece vocabulary implies, best score first (transformers' ``generate_merges``)."""
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = []
    for piece, score in zip(tokens, scores):
        local = [(piece[:i], piece[i:], score) for i in range(1, len(piece)) if piece[:i] in vocab and piece[i:] in vocab]
        merges.extend(sorted(local, key=lambda x: (vocab[x[0]], vocab[x[1]])))
    merges.sort(key=lambda v: (v[2], len(v[0]), len(v[1])), reverse=True)
    return [(a, b) for a, b, _ in merges]


def tokenizer_files(file: GGUFFile, context: int) -> tuple[dict[str, bytes], dict[str, Any]]:
    """``tokenizer.json``, ``tokenizer_config.json`` and ``generation_config.json`` from ``tokenizer.*``, the
    tokenizer transformers' GGUF loader builds (GGUF_TOKENIZER_TYPES: ``gpt2`` byte-level BPE, ``llama``
    SentencePiece-style BPE with byte fallback); returns the files and the generation config."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    meta = file.meta
    kind = meta.get("tokenizer.ggml.model")
    tokens = meta.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, list) or not tokens:
        raise GentoolError(f"{str(file.path)!r} has no tokenizer (tokenizer.ggml.tokens); gentoolkit needs one")
    types = meta.get("tokenizer.ggml.token_type") or [1] * len(tokens)
    merges_text = meta.get("tokenizer.ggml.merges")
    merges = [tuple(m.split(" ", 1)) for m in merges_text] if merges_text else None
    if kind == "gpt2":
        spelling = _byte_chars()
        alphabet = set(spelling.values())
        vocab = {t if set(t) <= alphabet else "".join(spelling[b] for b in t.encode("utf-8")): i
                 for i, t in enumerate(tokens)}
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges or [], dropout=None, continuing_subword_prefix="",
                                   end_of_word_suffix="", fuse_unk=False))
        split = SPLITS.get(meta.get("tokenizer.ggml.pre"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False) if split is None else pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(split), behavior="isolated"),
             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        tok.decoder = decoders.ByteLevel()
        spelled = lambda t: set(t) <= alphabet  # noqa: E731 - a control token outside the alphabet is a mislabel
    elif kind == "llama":
        scores = meta.get("tokenizer.ggml.scores")
        if merges is None and not isinstance(scores, list):
            raise GentoolError(f"{str(file.path)!r}: a SentencePiece tokenizer needs tokenizer.ggml.scores or merges")
        vocab = {t: i for i, t in enumerate(tokens)}
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges or _score_merges(tokens, scores), fuse_unk=True,
                                   byte_fallback=True, dropout=None))
        # transformers always prefixes a space (LlamaTokenizer); llama.cpp follows add_space_prefix, as here
        prefix = meta.get("tokenizer.ggml.add_space_prefix", True) is not False
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first" if prefix else "never",
                                                     split=False)
        steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
        tok.decoder = decoders.Sequence(steps + ([decoders.Strip(content=" ", left=1, right=0)] if prefix else []))
        spelled = lambda t: True  # noqa: E731
    else:
        raise GentoolError(f"{str(file.path)!r} has a {kind!r} tokenizer (tokenizer.ggml.model); gentoolkit reads "
                           "'gpt2' (byte-level BPE) and 'llama' (SentencePiece BPE)")

    def special(key: str):
        i = meta.get(f"tokenizer.ggml.{key}")
        return i if isinstance(i, int) and 0 <= i < len(tokens) else None

    ids = {name: special(key) for name, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"),
                                                ("unk", "unknown_token_id"), ("pad", "padding_token_id"))}
    text = {name: tokens[i] if i is not None else None for name, i in ids.items()}
    control = [AddedToken(t, normalized=False, special=True) for t, ty in zip(tokens, types)
               if ty == CONTROL and spelled(t)]
    # the special tokens transformers' tokenizer names (bos, eos, unk, pad) are special tokens too
    control += [AddedToken(t, normalized=False, special=True) for t in text.values()
                if t is not None and t in vocab and all(t != c.content for c in control)]
    if control:
        tok.add_special_tokens(control)
    user = [AddedToken(t, normalized=False, special=False) for t, ty in zip(tokens, types)
            if ty == USER_DEFINED and t in tok.get_vocab()]
    if user:
        tok.add_tokens(user)
    add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", kind == "llama")) and text["bos"] is not None
    add_eos = bool(meta.get("tokenizer.ggml.add_eos_token", False)) and text["eos"] is not None
    single = f"{text['bos'] + ':0 ' if add_bos else ''}$A:0{' ' + text['eos'] + ':0' if add_eos else ''}"
    pair = f"{single}{' ' + text['bos'] + ':1' if add_bos else ''} $B:1{' ' + text['eos'] + ':1' if add_eos else ''}"
    tok.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[(text[k], ids[k]) for k, on in (("bos", add_bos), ("eos", add_eos))
                                                  if on])
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": context, "bos_token": text["bos"],
              "eos_token": text["eos"], "unk_token": text["unk"], "pad_token": text["pad"],
              "add_bos_token": add_bos, "add_eos_token": add_eos, "clean_up_tokenization_spaces": False}
    template = meta.get("tokenizer.chat_template")
    if isinstance(template, str):
        config["chat_template"] = template
    # a chat model's turn may end at an end-of-turn token of its own (llama.cpp stops at every one of them)
    eos = [i for i in (ids["eos"], special("eot_token_id"), special("eom_token_id")) if i is not None]
    eos = list(dict.fromkeys(eos))
    generation = {"bos_token_id": ids["bos"], "eos_token_id": eos[0] if len(eos) == 1 else eos or None,
                  "pad_token_id": ids["pad"]}
    files = {"tokenizer.json": tok.to_str().encode("utf-8"),
             "tokenizer_config.json": (json.dumps(config, indent=2, ensure_ascii=False) + "\n").encode("utf-8"),
             "generation_config.json": (json.dumps(generation, indent=2) + "\n").encode("utf-8")}
    return files, generation


# --- the kept blocks ----------------------------------------------------------------------------------------------
def kept_blocks(tensors: GGUFTensors, model, mapping) -> dict[str, tuple]:
    """Our parameter name -> ``(q, scale, zero, sources)`` for every 2-D weight whose parts are all stored in
    a kept type of the same bits (our ``c_attn`` stacks the blocks of q, k and v as it stacks their rows)."""
    import numpy as np

    params = dict(model.state_dict(keep_vars=True))
    tied = getattr(model, "tied_keys", set())
    out = {}
    for ours, theirs, how in hfmod._expand(mapping, model.config.n_layer):
        if ours not in params or ours in tied or params[ours].dim() != 2 or not all(t in tensors for t in theirs):
            continue
        parts = [tensors.blocks(t) for t in theirs]
        if any(p is None for p in parts) or len({KEPT[p[3]] for p in parts}) != 1:
            continue
        if how == "cat":
            q, scale, zero = (np.concatenate([p[i] for p in parts], 0) for i in range(3))
        else:  # "copy", and GPT-2's "t": the blocks are in the file's (out, in), which is ours
            q, scale, zero = parts[0][:3]
        out[ours] = (q, scale, zero, [p[3] for p in parts])
    return out


def reconstruct(q, scale, zero):
    """``scale * (q - zero)``, each block of ``BLOCK`` inputs with its own scale and zero (float32)."""
    import numpy as np

    rows, cols = q.shape
    w = scale[..., None] * (q.reshape(rows, cols // BLOCK, BLOCK).astype(np.float32) - zero[..., None])
    return w.reshape(rows, cols)


def check_blocks(name: str, q, scale, zero, weight) -> None:
    """Raise unless the blocks reproduce ``weight`` (see :data:`TOLERANCE`)."""
    import numpy as np

    rows, cols = q.shape
    if weight.shape != (rows, cols) or scale.shape != zero.shape or scale.shape != (rows, cols // BLOCK):
        raise GentoolError(f"internal error: the GGUF blocks kept for {name} do not have its shape {weight.shape}")
    w = weight.reshape(rows, cols // BLOCK, BLOCK)
    err = np.abs(reconstruct(q, scale, zero).reshape(w.shape) - w)
    ok = err <= TOLERANCE * (np.abs(w) + np.abs(scale * zero)[..., None])
    if not ok.all():
        raise GentoolError(f"internal error: the GGUF blocks kept for {name} do not reproduce its weights "
                           f"(largest difference {float(err.max()):.3g})")


def write_blocks(tmp: Path, model, blocks: dict[str, tuple]) -> None:
    """``quantized.safetensors`` (see the module's docstring), each entry checked against the run's weight."""
    import torch
    from safetensors.torch import save_file

    from gentoolkit.files import atomic_path

    weights = model.state_dict()
    tensors, meta = {}, {"format": "gentoolkit-blocks", "version": "1"}
    for name, (q, scale, zero, sources) in blocks.items():
        check_blocks(name, q, scale, zero, weights[name].detach().float().numpy())
        tensors[f"{name}.q"] = torch.from_numpy(q.copy())
        tensors[f"{name}.scale"] = torch.from_numpy(scale.astype("float32"))
        tensors[f"{name}.zero"] = torch.from_numpy(zero.astype("float32"))
        meta[name] = json.dumps({"bits": KEPT[sources[0]], "block_size": BLOCK, "source": "+".join(dict.fromkeys(sources))})
    with atomic_path(tmp / QUANTIZED) as path:
        save_file(tensors, str(path), metadata=meta)


# --- import -------------------------------------------------------------------------------------------------------
def import_file(path: str | Path, out: str | Path, *, log=print) -> Path:
    """Make the GGUF file ``path`` a run folder ``out`` (written whole, or not at all)."""
    import numpy as np

    path, out = Path(path), Path(out)
    hfmod.check_out(out)
    file = GGUFFile(path)
    arch = file.architecture
    if arch not in ARCHITECTURES:
        raise GentoolError(f"{str(path)!r} holds a {arch!r} model (general.architecture); gentoolkit imports the "
                           f"GGUF architectures {', '.join(sorted(ARCHITECTURES))}")
    bad = [(n, t.tensor_type.name) for n, t in file.tensors.items() if t.tensor_type.name not in READABLE]
    if bad:
        raise GentoolError(f"{str(path)!r} stores {bad[0][0]} as {bad[0][1]}, a tensor type gentoolkit cannot read; "
                           f"it reads {', '.join(READABLE)}")
    names, transposed, permuted, unknown = _names(file, arch)
    if unknown:
        raise GentoolError(f"{str(path)!r} holds tensors gentoolkit's {arch} model has no place for: "
                           f"{', '.join(unknown[:3])}")
    kind = ARCHITECTURES[arch]
    tokens = file.meta.get("tokenizer.ggml.tokens") or []
    hf = hf_config(file, arch, len(tokens))
    context = int(hf.get("max_position_embeddings") or hf.get("n_positions"))
    files, generation = tokenizer_files(file, context)
    tensors = GGUFTensors(file, names, transposed, permuted)
    counts = file.counts()
    log(f"{path.name}: GGUF {arch}, tensors {', '.join(f'{k}: {v}' for k, v in counts.items())}")
    if arch == "gpt2" and "output.weight" in file.tensors:
        out_t, emb = file.tensors["output.weight"], file.tensors.get("token_embd.weight")
        if emb is None or out_t.tensor_type != emb.tensor_type or not np.array_equal(out_t.data, emb.data):
            log("note: output.weight differs from token_embd.weight; gpt ties its head to the embedding, so "
                "token_embd.weight is both")
    kept: dict[str, tuple] = {}

    def extra(tmp: Path, model) -> None:
        kept.update(kept_blocks(tensors, model, hfmod.FAMILIES[kind][2]))
        if kept:
            write_blocks(tmp, model, kept)
            imported_from["quantized"] = QUANTIZED  # config.json is written after this

    imported_from = {"path": str(path.resolve()), "format": "gguf", "model_type": kind, "architecture": arch,
                     "name": file.meta.get("general.name"), "tensor_types": counts, "quantized": None}
    hfmod.write_run(out, kind, hf, tensors, files, source=str(path), generation=generation,
                    imported_from=imported_from, log=log, extra=extra)
    if kept:
        log(f"kept the file's {', '.join(sorted({s for v in kept.values() for s in v[3]}))} blocks of {len(kept)} "
            f"weights in {QUANTIZED}")
    return out
