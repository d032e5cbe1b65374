"""llama.cpp's GGUF in, against transformers' own GGUF loader (tiny random-init models, written here).

A tiny Llama (and a GPT-2) built with transformers is written to a GGUF with ``gguf.GGUFWriter`` the
way llama.cpp's convert script writes one (attn_q/attn_k rows permuted for its rotary embedding; a
mix of F32, F16, BF16, Q8_0, Q4_0, Q4_1 and Q5_0 tensors quantized with ``gguf.quants``), imported
with ``gentool import``, and compared with ``AutoModelForCausalLM.from_pretrained(dir, gguf_file=...)``
and ``AutoTokenizer.from_pretrained(dir, gguf_file=...)``: the same weights, the same greedy tokens,
the same token ids. ``quantized.safetensors`` must give back the run's weights from the file's blocks.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gentoolkit.train.run import Run

from . import hf_models
from .conftest import one_error_line, run_cli

transformers = pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")
pytest.importorskip("accelerate")  # transformers' GGUF loader needs it

Q = gguf.GGMLQuantizationType
STRINGS = ["The return statement", "A", "def f(x):\n    return x  # ünïcödé 日本", "  two spaces, <s> inside"]


def llama_type(name: str) -> Q:
    """The mix the Llama test file stores: Q4_0 q/k/v in layer 0 (kept, stacked), mixed bits in layer 1
    (not kept), Q4_1 and Q8_0 elsewhere (kept), Q5_0 and F16 (read, not kept), 1-D F32/F16/BF16."""
    table = {"token_embd.weight": Q.Q8_0, "output.weight": Q.F16, "output_norm.weight": Q.BF16,
             "blk.0.attn_q.weight": Q.Q4_0, "blk.0.attn_k.weight": Q.Q4_0, "blk.0.attn_v.weight": Q.Q4_0,
             "blk.1.attn_q.weight": Q.Q4_0, "blk.1.attn_k.weight": Q.Q4_1, "blk.1.attn_v.weight": Q.Q8_0,
             "blk.0.ffn_norm.weight": Q.F16}
    if name in table:
        return table[name]
    part = name.split(".")[2] if name.startswith("blk.") else ""
    return {"attn_output": Q.Q4_1, "ffn_gate": Q.Q4_1, "ffn_up": Q.Q8_0, "ffn_down": Q.Q5_0}.get(part, Q.F32)


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf.LlamaModel.permute."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def add_tensor(w, name: str, value: np.ndarray, qtype: Q) -> None:
    value = np.ascontiguousarray(value, dtype=np.float32)
    if qtype == Q.F32:
        w.add_tensor(name, value)
    elif qtype == Q.F16:
        w.add_tensor(name, value.astype(np.float16))
    else:
        w.add_tensor(name, gguf.quants.quantize(value, qtype), raw_dtype=qtype)


def byte_level_vocab(folder: Path) -> dict:
    """The tokenizer.* metadata of a Hugging Face byte-level BPE (what llama.cpp's convert writes)."""
    data = json.loads((folder / "tokenizer.json").read_text())
    tcfg = json.loads((folder / "tokenizer_config.json").read_text())
    vocab = data["model"]["vocab"]
    added = {t["id"]: t for t in data["added_tokens"]}
    tokens = [None] * (max([*vocab.values(), *added]) + 1)
    for text, i in vocab.items():
        tokens[i] = text
    for i, t in added.items():
        tokens[i] = t["content"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    types = [3 if i in added and added[i]["special"] else 1 for i in range(len(tokens))]
    ids = {k: tokens.index(tcfg[k]) if tcfg.get(k) else None for k in ("bos_token", "eos_token", "unk_token",
                                                                      "pad_token")}
    jinja = folder / "chat_template.jinja"  # where transformers 5 saves it
    template = jinja.read_text() if jinja.is_file() else tcfg.get("chat_template")
    return {"model": "gpt2", "tokens": tokens, "types": types, "merges": merges, "ids": ids, "template": template}


def sentencepiece_vocab(text: str, size: int = 360) -> dict:
    """A SentencePiece-style BPE vocabulary (``tokenizer.ggml.model`` "llama"): <unk>, <s>, </s>, the 256
    byte pieces, then pieces learned on ``text`` scored best first; no merges (they come from the scores)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.train_from_iterator([text], trainers.BpeTrainer(vocab_size=size, limit_alphabet=80, show_progress=False))
    learned = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    tokens = ["<unk>", "<s>", "</s>", *[f"<0x{b:02X}>" for b in range(256)], *[t for t, _ in learned]]
    types = [2, 3, 3, *[6] * 256, *[1] * len(learned)]
    scores = [0.0] * 259 + [-float(i) for i in range(len(learned))]
    return {"model": "llama", "tokens": tokens, "types": types, "scores": scores,
            "ids": {"bos_token": 1, "eos_token": 2, "unk_token": 0, "pad_token": None},
            "template": hf_models.CHATML}


def write_tokenizer(w, vocab: dict, *, add_bos: bool) -> None:
    w.add_tokenizer_model(vocab["model"])
    w.add_tokenizer_pre("default")
    w.add_token_list(vocab["tokens"])
    w.add_token_types(vocab["types"])
    if "merges" in vocab:
        w.add_token_merges(vocab["merges"])
    if "scores" in vocab:
        w.add_token_scores(vocab["scores"])
    for key, add in (("bos_token", w.add_bos_token_id), ("eos_token", w.add_eos_token_id),
                     ("unk_token", w.add_unk_token_id), ("pad_token", w.add_pad_token_id)):
        if vocab["ids"][key] is not None:
            add(vocab["ids"][key])
    w.add_add_bos_token(add_bos)
    if vocab["template"]:
        w.add_chat_template(vocab["template"])


def llama_gguf(folder: Path, path: Path, vocab: dict, types=llama_type) -> Path:
    """The Hugging Face Llama in ``folder`` as llama.cpp's convert script writes it (``types``: by GGUF name)."""
    from safetensors.numpy import load_file

    cfg = hf_models.config(folder)
    tensors = load_file(str(folder / "model.safetensors"))
    n_head, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    layer = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(cfg["rope_theta"] if "rope_theta" in cfg else cfg["rope_parameters"]["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_dimension_count(cfg["hidden_size"] // n_head)
    w.add_vocab_size(cfg["vocab_size"])
    write_tokenizer(w, vocab, add_bos=True)
    for name, value in sorted(tensors.items()):
        if name == "model.embed_tokens.weight":
            gname = "token_embd.weight"
        elif name == "model.norm.weight":
            gname = "output_norm.weight"
        elif name == "lm_head.weight":
            gname = "output.weight"
        else:
            _, _, i, rest = name.split(".", 3)
            module, param = rest.rsplit(".", 1)
            gname = f"blk.{i}.{layer[module]}.{param}"
        if ".attn_q." in gname:
            value = permute(value, n_head)
        elif ".attn_k." in gname:
            value = permute(value, n_kv)
        add_tensor(w, gname, value, types(gname))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def gpt2_gguf(folder: Path, path: Path) -> Path:
    """The Hugging Face GPT-2 in ``folder`` as llama.cpp writes it: Conv1D weights transposed, the tied head
    written again as output.weight; Q8_0 and Q4_1 weights."""
    from safetensors.numpy import load_file

    cfg = hf_models.config(folder)
    tensors = load_file(str(folder / "model.safetensors"))
    w = gguf.GGUFWriter(str(path), "gpt2")
    w.add_context_length(cfg["n_positions"])
    w.add_embedding_length(cfg["n_embd"])
    w.add_feed_forward_length(4 * cfg["n_embd"])
    w.add_block_count(cfg["n_layer"])
    w.add_head_count(cfg["n_head"])
    w.add_layer_norm_eps(cfg["layer_norm_epsilon"])
    w.add_vocab_size(cfg["vocab_size"])
    write_tokenizer(w, byte_level_vocab(folder), add_bos=False)
    layer = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output", "ln_2": "ffn_norm",
             "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
    for name, value in sorted(tensors.items()):
        name = name.removeprefix("transformer.")
        if name.endswith((".attn.bias", ".attn.masked_bias")) or name == "lm_head.weight":
            continue
        if name in ("wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"):
            gname = {"wte.weight": "token_embd.weight", "wpe.weight": "position_embd.weight",
                     "ln_f.weight": "output_norm.weight", "ln_f.bias": "output_norm.bias"}[name]
        else:
            _, i, rest = name.split(".", 2)
            module, param = rest.rsplit(".", 1)
            gname = f"blk.{i}.{layer[module]}.{param}"
            if param == "weight" and not module.startswith("ln"):
                value = value.T
        qtype = Q.Q8_0 if gname == "token_embd.weight" else Q.Q4_1 if value.ndim == 2 and "position" not in gname \
            else Q.F32
        add_tensor(w, gname, value, qtype)
        if gname == "token_embd.weight":
            add_tensor(w, "output.weight", value, qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory, corpus) -> dict[str, Path]:
    """GGUF files, each alone in a folder (transformers takes the folder and the file's name)."""
    text = corpus.read_text()
    base = tmp_path_factory.mktemp("gguf")
    hf_llama = hf_models.llama(base / "hf-llama", text)
    spm = sentencepiece_vocab(text)
    hf_spm = hf_models.llama(base / "hf-spm", text, vocab_size=len(spm["tokens"]), tie=True, seed=2)
    hf_gpt2 = hf_models.gpt2(base / "hf-gpt2", text, n_positions=1024)  # transformers' GGUF loader reads no
    # gpt2.context_length: its GPT-2 has GPT2Config's 1024 positions whatever the file says
    out = {}
    for name, make in (("llama", lambda p: llama_gguf(hf_llama, p, byte_level_vocab(hf_llama))),
                       ("spm", lambda p: llama_gguf(hf_spm, p, spm, types=lambda n: Q.Q4_1 if ".ffn_" in n and
                                                    n.endswith(".weight") else Q.F32)),
                       ("gpt2", lambda p: gpt2_gguf(hf_gpt2, p))):
        (base / name).mkdir()
        out[name] = make(base / name / f"{name}.gguf")
    return out


@pytest.fixture(scope="module")
def imported(files, tmp_path_factory) -> dict[str, tuple[Path, str]]:
    base = tmp_path_factory.mktemp("imported")
    out = {}
    for name, path in files.items():
        r = run_cli("import", str(path), "-o", str(base / name))
        assert r.exit_code == 0, r.output
        out[name] = (base / name, r.output)
    return out


@functools.cache
def reference(path: Path):
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                           dtype=torch.float32).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return hf, tok


def ours(run: Path):
    from gentoolkit_autoregressive.run_model import load_run

    model, tok, _ = load_run(Run.open(run))
    return model, tok


def assert_same_weights(model, hf, mapping) -> None:
    from gentoolkit_autoregressive.hf import _expand

    state, ref = model.state_dict(), hf.state_dict()
    compared = 0
    for name, theirs, how in _expand(mapping, model.config.n_layer):
        if name not in state or name in model.tied_keys:
            continue
        names = [t if t in ref else t.removeprefix("transformer.") for t in theirs]
        parts = [ref[n] for n in names]
        value = torch.cat(parts, 0) if how == "cat" else parts[0].t() if how == "t" else parts[0]
        torch.testing.assert_close(state[name], value.float(), atol=1e-6, rtol=1e-5, msg=name)
        compared += 1
    assert compared == len(state) - len(model.tied_keys)


@pytest.mark.parametrize("name", ["llama", "spm", "gpt2"])
def test_weights_and_greedy_tokens_match_transformers_gguf_loader(files, imported, name):
    from gentoolkit_autoregressive.decode import generate_tokens
    from gentoolkit_autoregressive.hf import GPT2, LLAMA
    from gentoolkit_autoregressive.run_model import TorchDecoder
    from gentoolkit_autoregressive.samplers import make_greedy

    hf, ht = reference(files[name])
    model, tok = ours(imported[name][0])
    assert_same_weights(model, hf, GPT2 if name == "gpt2" else LLAMA)
    if name == "spm":  # its attention is F32 in the file: the un-permuted rows are the original model's, exactly
        from safetensors.torch import load_file

        original = load_file(str(files[name].parent.parent / "hf-spm" / "model.safetensors"))
        for i in range(model.config.n_layer):
            qkv = torch.cat([original[f"model.layers.{i}.self_attn.{p}_proj.weight"] for p in "qkv"])
            assert torch.equal(model.state_dict()[f"transformer.h.{i}.attn.c_attn.weight"], qkv)
    prompt = tok.encode(STRINGS[0])
    hf.generation_config.eos_token_id = None  # 16 tokens whatever they are, on both sides
    with torch.no_grad():
        ref = hf.generate(torch.tensor([prompt]), max_new_tokens=16, do_sample=False,
                          pad_token_id=tok.pad_id)[0, len(prompt):].tolist()
    got = [int(t[0]) for t in generate_tokens(TorchDecoder(model), [prompt], sampler=make_greedy(), max_new_tokens=16,
                                              pad_id=tok.pad_id, eos_id=None, never_id=None)]
    assert got == ref


@pytest.mark.parametrize("name", ["llama", "spm", "gpt2"])
def test_the_tokenizer_gives_transformers_token_ids(files, imported, name):
    from gentoolkit_autoregressive.tokenizer import TextTokenizer

    _, ht = reference(files[name])
    tok = TextTokenizer.from_file(imported[name][0] / "tokenizer.json")
    for s in STRINGS:
        assert tok.tok.encode(s).ids == ht(s)["input_ids"], s
        assert tok.decode(tok.tok.encode(s).ids) == ht.decode(ht(s)["input_ids"], skip_special_tokens=True), s
    assert (tok.bos_id, tok.eos_id) == (ht.bos_token_id, ht.eos_token_id)
    if name != "gpt2":  # the chat template comes across, and renders what transformers' does
        messages = [{"role": "user", "content": "What does return do?"}]
        ref = ht.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        assert tok.chat_ids(messages) == list(ref["input_ids"] if hasattr(ref, "keys") else ref)
    tcfg = json.loads((imported[name][0] / "tokenizer_config.json").read_text())
    assert tcfg["add_bos_token"] is (name != "gpt2") and tcfg["eos_token"] == ht.eos_token


def test_quantized_blocks_give_back_the_weights(imported):
    from safetensors import safe_open

    from gentoolkit.train.checkpoint import read_weights
    from gentoolkit_autoregressive.gguf_file import BLOCK, TOLERANCE, reconstruct

    run, output = imported["llama"]
    assert "tensors Q4_1: 5, Q4_0: 4, Q8_0: 4, F32: 3, F16: 2, Q5_0: 2, BF16: 1" in output
    assert "kept the file's Q4_0, Q4_1, Q8_0 blocks of 8 weights in quantized.safetensors" in output
    meta = json.loads((run / "config.json").read_text())["imported_from"]
    assert meta["format"] == "gguf" and meta["quantized"] == "quantized.safetensors"
    assert meta["tensor_types"]["Q5_0"] == 2 and meta["tensor_types"]["BF16"] == 1
    weights = read_weights(run / "model.safetensors")
    with safe_open(str(run / "quantized.safetensors"), framework="np") as f:
        info = {k: json.loads(v) for k, v in f.metadata().items() if k not in ("format", "version")}
        blocks = {k: f.get_tensor(k) for k in f.keys()}
    h = "transformer.h"
    expected = {"transformer.wte.weight": ("Q8_0", 8), f"{h}.0.attn.c_attn.weight": ("Q4_0", 4),
                **{f"{h}.{i}.attn.c_proj.weight": ("Q4_1", 4) for i in (0, 1)},
                **{f"{h}.{i}.mlp.gate_proj.weight": ("Q4_1", 4) for i in (0, 1)},
                **{f"{h}.{i}.mlp.up_proj.weight": ("Q8_0", 8) for i in (0, 1)}}
    # absent: layer 1's c_attn (q Q4_0, k Q4_1, v Q8_0: not one bit width), Q5_0 down projections, the F16 head
    assert {k: (v["source"], v["bits"]) for k, v in info.items()} == expected
    assert all(v["block_size"] == BLOCK for v in info.values())
    assert set(blocks) == {f"{k}.{p}" for k in expected for p in ("q", "scale", "zero")}
    for name, (source, _) in expected.items():
        q, scale, zero = blocks[f"{name}.q"], blocks[f"{name}.scale"], blocks[f"{name}.zero"]
        w = weights[name].numpy()
        assert q.dtype == np.uint8 and scale.dtype == zero.dtype == np.float32
        assert q.shape == w.shape and scale.shape == zero.shape == (w.shape[0], w.shape[1] // BLOCK)
        assert q.max() <= (15 if source != "Q8_0" else 255)
        got = reconstruct(q, scale, zero)
        if source == "Q4_1":
            bound = TOLERANCE * (np.abs(w) + np.abs(np.repeat(scale * zero, BLOCK, axis=1)))
            assert (np.abs(got - w) <= bound).all(), name
        else:  # Q4_0 and Q8_0: exactly the weights
            assert np.array_equal(got, w), name
            assert (zero == (8 if source == "Q4_0" else 128)).all()


def test_an_imported_gguf_samples_and_exports(imported, tmp_path):
    run = imported["llama"][0]
    r = run_cli("sample", str(run), "-p", "The ", "--greedy", "--max-new-tokens", "8")
    assert r.exit_code == 0, r.output
    out = tmp_path / "onnx"
    r = run_cli("export", str(run), "-o", str(out))
    assert r.exit_code == 0, r.output
    assert run_cli("sample", str(out), "-p", "The ", "--greedy", "--max-new-tokens", "8").output == \
        run_cli("sample", str(run), "-p", "The ", "--greedy", "--max-new-tokens", "8").output


def _bare(path: Path, arch: str, extra=None) -> Path:
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(1)
    if extra:
        extra(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_bad_gguf_files_are_one_line_and_write_nothing(files, tmp_path):
    falcon = _bare(tmp_path / "falcon.gguf", "falcon")
    odd = _bare(tmp_path / "odd.gguf", "llama", lambda w: w.add_tensor(
        "blk.0.attn_q.weight", np.zeros((2, 66), np.uint8), raw_dtype=Q.IQ2_XXS))
    newer = tmp_path / "newer.gguf"  # a tensor type id the gguf package has no name for (a newer llama.cpp's)
    data = bytearray(odd.read_bytes())
    at = data.index(b"blk.0.attn_q.weight") + len(b"blk.0.attn_q.weight") + 4 + 2 * 8  # past n_dims and dims
    data[at:at + 4] = (99).to_bytes(4, "little")
    newer.write_bytes(bytes(data))
    notgguf = tmp_path / "fake.gguf"
    notgguf.write_text("not a model")
    cut = tmp_path / "cut.gguf"
    data = files["llama"].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("x")
    cases = [
        (falcon, "GGUF files of the 'falcon' architecture"),
        (odd, "stores blk.0.attn_q.weight as IQ2_XXS, a tensor type gentoolkit cannot read"),
        (newer, "stores a tensor type the gguf package"),
        (notgguf, "does not start with 'GGUF'"),
        (cut, "is damaged or not a GGUF file"),
        (tmp_path / "nowhere.gguf", "does not exist"),
    ]
    for path, part in cases:
        out = tmp_path / f"run-{path.stem}"
        line = one_error_line(run_cli("import", str(path), "-o", str(out)))
        assert part in line, (path, line)
        assert not out.exists(), path
    # the plugin's own check of the architecture, for a caller that skips the host's dispatch
    from gentoolkit.errors import GentoolError
    from gentoolkit_autoregressive.gguf_file import import_file

    with pytest.raises(GentoolError, match="holds a 'falcon' model"):
        import_file(falcon, tmp_path / "direct", log=lambda m: None)
    assert "is not an empty folder" in one_error_line(run_cli("import", str(files["gpt2"]), "-o", str(busy)))
    assert sorted(p.name for p in busy.iterdir()) == ["mine.txt"]
