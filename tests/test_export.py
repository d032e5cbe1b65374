"""gentool export: folders, parity with PyTorch in onnxruntime, dynamic shapes, padding, onnxruntime-genai, failures."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from gentoolkit.export import WeightQuant, export
from gentoolkit.runtime.folder import MANIFEST
from gentoolkit.train.run import Run
from gentoolkit_autoregressive.decode import generate_tokens, left_pad
from gentoolkit_autoregressive.run_model import TorchDecoder, load_run
from gentoolkit_autoregressive.samplers import make_greedy

from .conftest import one_error_line, run_cli, train_tiny


def session(path):
    return ort.InferenceSession(str(path / "model.onnx"), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", ["gpt", "llama", "gan", "dcgan"])
def test_folder_and_manifest(exports, name):
    path = exports[name]
    m = json.loads((path / MANIFEST).read_text())
    assert m["format_version"] == 1 and m["model"] == name and m["plugin_version"] == "0.1.0"
    assert m["family"] == ("autoregressive" if name in ("gpt", "llama") else "gan")
    for key in ("config", "io", "runtime", "sampler_defaults", "gentoolkit_version", "validation"):
        assert key in m, key
    props = {p.key: p.value for p in onnx.load(str(path / "model.onnx")).metadata_props}
    assert set(props) == set(m) and json.loads(props["io"]) == m["io"]
    sess = session(path)
    assert [i.name for i in sess.get_inputs()] == [i["name"] for i in m["io"]["inputs"]]
    assert [o.name for o in sess.get_outputs()] == [o["name"] for o in m["io"]["outputs"]]
    if m["family"] == "autoregressive":
        assert {"tokenizer.json", "genai_config.json"} <= {f.name for f in path.iterdir()}
        assert m["validation"]["max_abs_diff"]["logits"] < 1e-4
        L = m["runtime"]["n_layer"]
        names = [i.name for i in sess.get_inputs()]
        assert names[:3] == ["input_ids", "attention_mask", "position_ids"]
        assert names[3:] == [f"past_key_values.{i}.{k}" for i in range(L) for k in ("key", "value")]
        assert [o.name for o in sess.get_outputs()][1:3] == ["present.0.key", "present.0.value"]
    else:
        assert m["io"]["inputs"][0]["name"] == "z" and m["io"]["outputs"][0]["name"] == "samples"


def _feeds(m, ids, mask, pos, past_len=0):
    rt = m["runtime"]
    feeds = {"input_ids": ids, "attention_mask": mask, "position_ids": pos}
    for i in range(rt["n_layer"]):
        for k in ("key", "value"):
            feeds[f"past_key_values.{i}.{k}"] = np.zeros((len(ids), rt["n_kv_head"], past_len, rt["head_dim"]), np.float32)
    return feeds


@pytest.mark.parametrize("name", ["gpt", "llama"])
def test_dynamic_shapes_padding_and_full_context(exports, name, request):
    path = exports[name]
    m = json.loads((path / MANIFEST).read_text())
    sess = session(path)
    model, tok, _ = load_run(Run.open(request.getfixturevalue(f"{name}_run")))
    rng = np.random.default_rng(0)
    T = m["runtime"]["context_length"]
    for b, s in ((1, 1), (5, 7), (2, T)):  # batch and sequence vary; past length 0; a full context
        ids = rng.integers(0, 200, size=(b, s))
        mask, pos = np.ones_like(ids), np.tile(np.arange(s), (b, 1))
        logits = sess.run(["logits"], _feeds(m, ids, mask, pos))[0]
        with torch.no_grad():
            ref = model(torch.from_numpy(ids))[0].numpy()
        np.testing.assert_allclose(logits, ref, atol=1e-4)
    # a left-padded row gives the logits of the row alone
    prompts = [[5, 6, 7, 8, 9], [10, 11]]
    ids, mask, pos = left_pad(prompts, tok.pad_id)
    batch = sess.run(["logits"], _feeds(m, ids, mask, pos))[0]
    alone = sess.run(["logits"], _feeds(m, np.array([prompts[1]]), np.ones((1, 2), np.int64), np.array([[0, 1]])))[0]
    np.testing.assert_allclose(batch[1, -2:], alone[0], atol=1e-5)


def test_onnxruntime_genai_runs_the_folder_unmodified(exports, gpt_run):
    og = pytest.importorskip("onnxruntime_genai")
    path = exports["gpt"]
    model = og.Model(str(path))
    tokenizer = og.Tokenizer(model)
    prompt = "The "
    ids = tokenizer.encode(prompt)
    model_pt, tok, _ = load_run(Run.open(gpt_run))
    assert list(ids) == tok.encode(prompt)  # the genai tokenizer reads our tokenizer.json
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + 20, do_sample=False)
    gen = og.Generator(model, params)
    gen.append_tokens(ids)
    got = []
    while not gen.is_done():
        gen.generate_next_token()
        got.append(int(gen.get_next_tokens()[0]))
    ours = [int(t[0]) for t in generate_tokens(TorchDecoder(model_pt), [tok.encode(prompt)], sampler=make_greedy(),
                                               max_new_tokens=20, pad_id=tok.pad_id, eos_id=tok.eos_id)]
    assert got[: len(ours)] == ours


def test_gan_export_samples_match_pytorch(exports, gan_run, dcgan_run):
    from gentoolkit_gan.sample import load_generator

    for name, run in (("gan", gan_run), ("dcgan", dcgan_run)):
        sess = session(exports[name])
        G, _ = load_generator(Run.open(run))
        for b in (1, 3, 17):
            z = np.random.default_rng(b).standard_normal((b, sess.get_inputs()[0].shape[1])).astype(np.float32)
            out = sess.run(None, {"z": z})[0]
            with torch.no_grad():
                np.testing.assert_allclose(out, G(torch.from_numpy(z)).numpy(), atol=1e-4)


@pytest.mark.parametrize("kind", ["fp16", "int8"])
def test_reduced_precision_reports_what_it_cost(gpt_run, gan_run, tmp_path, kind):
    kw = {"dtype": "fp16"} if kind == "fp16" else {"quantize": "int8"}
    for run in (gpt_run, gan_run):
        m = export(run, tmp_path / f"{kind}-{run.name}", log=lambda s: None, **kw)
        q = m["validation"]["quality"]
        assert set(q["onnxruntime"]) == set(q["pytorch"]) and q["onnxruntime"]
        tol = m["validation"]["tolerance"]
        assert tol == {"fp16": {"rtol": 3e-2, "max_kl": 2e-2, "greedy": 0.95},
                       "int8": {"rtol": 0.25, "max_kl": 0.5, "greedy": 0.7}}[kind]
    size = lambda p: (p / "model.onnx").stat().st_size  # noqa: E731
    if kind == "int8":
        full = export(gpt_run, tmp_path / "fp32", log=lambda s: None)
        assert full and size(tmp_path / f"int8-{gpt_run.name}") < size(tmp_path / "fp32")


@pytest.mark.parametrize("dtype", ["int4", "int8"])
@pytest.mark.parametrize("name", ["gpt", "llama"])
def test_weight_only_quantization_validates_every_case(name, dtype, request, tmp_path, corpus):
    """int4/int8 weight-only exports pass the same cases as fp32 (prefill, cached steps, a left-padded batch,
    the full context) at their tolerance, hold MatMulNBits weights, report their quality, and generate."""
    from gentoolkit.runtime import load

    run = request.getfixturevalue(f"{name}_run")
    lines = []
    m = export(run, tmp_path / "q", dtype=dtype, eval_data=corpus, log=lines.append)
    w = m["weights"]
    assert w["bits"] == int(dtype[3:]) and w["block_size"] == 32 and not w["symmetric"] and w["accuracy_level"] == 4
    graph = onnx.load(str(tmp_path / "q" / "model.onnx"))
    ops = [n.op_type for n in graph.graph.node]
    L = m["runtime"]["n_layer"]
    per_layer = {"gpt": 4, "llama": 5}[name]  # packed qkv, out, and the mlp: 2 (gpt) or 3 (llama) matrices
    assert ops.count("MatMulNBits") == w["nodes"]["MatMulNBits"] == L * per_layer + 1  # and the head
    assert w["head_bits"] == 8 and w["search"]  # the head in 8 bits: {"int4": L * per_layer, "int8": 1}
    assert w["quantized"] == ({"int8": L * per_layer + 1} if dtype == "int8" else {"int4": L * per_layer, "int8": 1})
    assert "MatMul" not in ops or all(
        not any(i in {t.name for t in graph.graph.initializer} for i in n.input) for n in graph.graph.node
        if n.op_type == "MatMul")  # no float weight is left in a MatMul
    assert any("left padded" in c for c in m["validation"]["cases"]) and any("full context" in c for c in m["validation"]["cases"])
    assert m["validation"]["outputs"]["logits"]["max_rel_diff"] <= m["validation"]["tolerance"]["rtol"]
    q = m["validation"]["quality"]
    assert q["onnxruntime"]["val_loss"] == pytest.approx(q["pytorch"]["val_loss"], abs=0.1)
    assert q["onnxruntime"]["perplexity"] == pytest.approx(np.exp(q["onnxruntime"]["val_loss"]))
    inits = {t.name: t for t in graph.graph.initializer}
    for node in (n for n in graph.graph.node if n.op_type == "MatMulNBits"):  # the weights shrank
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        stored = sum(len(inits[i].raw_data) for i in node.input if i in inits)
        assert stored < 0.6 * attrs["K"] * attrs["N"] * 4, (node.name, stored)
    model = load(tmp_path / "q")
    a = model.generate("The ", max_new_tokens=12, temperature=0)
    assert isinstance(a, str) and a == model.generate("The ", max_new_tokens=12, temperature=0)


FUSED_OPS = {"gpt": {"GroupQueryAttention", "SkipLayerNormalization", "BiasGelu"},
             "llama": {"GroupQueryAttention", "SkipSimplifiedLayerNormalization", "QuickGelu"},
             "llama-head8": {"GroupQueryAttention", "SkipSimplifiedLayerNormalization", "RotaryEmbedding", "QuickGelu"}}


@pytest.mark.parametrize(("name", "dtype"), [("gpt", "fp32"), ("llama", "fp32"), ("llama", "int4"),
                                             ("llama-head8", "fp32")])
def test_fused_graph_validates_every_case_and_decodes_alike(name, dtype, request, tmp_path, exports, corpus):
    """--graph fused (the default): onnxruntime's contrib ops, the same cases validated at the same
    tolerance, the manifest naming the graph, and the runtime and onnxruntime-genai decoding it as the
    traced graph (gpt's int4 fused graph is validated by test_weight_only_quantization_validates_every_case).
    Llama's rotary runs inside GroupQueryAttention; with a head size of 8, which that kernel refuses,
    in RotaryEmbedding nodes."""
    from gentoolkit.runtime import load

    if name == "llama-head8":
        run = train_tiny("llama", tmp_path / "run", corpus, steps=30, extra=["model.n_head=4", "model.n_kv_head=2"])
    else:
        run = request.getfixturevalue(f"{name}_run")
    m = export(run, tmp_path / "fused", dtype=dtype, log=lambda s: None)  # the default graph
    assert m["graph"] == "fused" and json.loads((tmp_path / "fused" / MANIFEST).read_text())["graph"] == "fused"
    assert any("left padded" in c for c in m["validation"]["cases"]) and any("full context" in c for c in m["validation"]["cases"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "fused" / "model.onnx")).graph.node]
    L = m["runtime"]["n_layer"]
    assert FUSED_OPS[name] <= set(ops) and ops.count("GroupQueryAttention") == L
    graph_nodes = onnx.load(str(tmp_path / "fused" / "model.onnx")).graph.node
    readers = {n.op_type for n in graph_nodes for i in n.input if i.startswith("past_key_values.")}
    weights = {t.name for t in onnx.load(str(tmp_path / "fused" / "model.onnx")).graph.initializer}
    moved = [n for n in graph_nodes if n.op_type == "Transpose" and n.input[0] not in weights]  # a tied table is read
    assert readers == {"GroupQueryAttention"} and "Softmax" not in ops and not moved, sorted(set(ops))  # transposed
    if dtype == "int4":
        assert ops.count("MatMulNBits") == L * {"gpt": 4, "llama": 5}[name] + 1
    # logits_to_keep, an input with a default (every position): the last k positions' logits alone
    session = ort.InferenceSession(str(tmp_path / "fused" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_overridable_initializers()] == ["logits_to_keep"]
    H, D = m["runtime"]["n_kv_head"], m["runtime"]["head_dim"]
    feeds = {f"past_key_values.{i}.{k}": np.zeros((2, H, 0, D), np.float32) for i in range(L) for k in ("key", "value")}
    feeds.update(input_ids=np.array([[5, 6, 7, 8], [0, 0, 9, 10]]), attention_mask=np.array([[1, 1, 1, 1], [0, 0, 1, 1]]),
                 position_ids=np.array([[0, 1, 2, 3], [0, 0, 0, 1]]))
    every = session.run(["logits"], feeds)[0]
    for k, want in ((1, every[:, -1:]), (3, every[:, 1:]), (9, every)):
        np.testing.assert_allclose(session.run(["logits"], {**feeds, "logits_to_keep": np.array(k)})[0], want, atol=1e-5)
    traced = tmp_path / "traced"
    export(run, traced, dtype=dtype, check=False, graph="traced", log=lambda s: None)
    assert json.loads((traced / MANIFEST).read_text())["graph"] == "traced"
    fused_lm, traced_lm = load(tmp_path / "fused"), load(traced)
    prompts = ["The ", "a", ""]
    assert fused_lm.generate(prompts, greedy=True, max_new_tokens=40) == traced_lm.generate(prompts, greedy=True,
                                                                                             max_new_tokens=40)
    assert fused_lm.generate(prompts, seed=5, max_new_tokens=30) == traced_lm.generate(prompts, seed=5, max_new_tokens=30)
    og = pytest.importorskip("onnxruntime_genai")
    model = og.Model(str(tmp_path / "fused"))
    ids = fused_lm.tokenizer.encode("The ")
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + 20, min_length=len(ids) + 20, do_sample=False)
    gen = og.Generator(model, params)
    gen.append_tokens(np.array(ids, dtype=np.int32))
    got = []
    while not gen.is_done():
        gen.generate_next_token()
        got.append(int(gen.get_next_tokens()[0]))
    steps = generate_tokens(fused_lm.decoder, [ids], sampler=make_greedy(), max_new_tokens=20,
                            pad_id=fused_lm.tokenizer.pad_id)
    assert got == [int(t[0]) for t in steps]


def test_graph_choice_is_checked(gpt_run, gan_run, tmp_path):
    assert "has no graph 'fast'; choose --graph traced or fused" in one_error_line(
        run_cli("export", str(gpt_run), "-o", str(tmp_path / "a"), "--graph", "fast"))
    assert one_error_line(run_cli("export", str(gan_run), "-o", str(tmp_path / "b"), "--graph", "fused")).endswith(
        "model 'gan' has no graph 'fused'; choose --graph traced")
    assert "--graph is for ONNX exports" in one_error_line(
        run_cli("export", str(gpt_run), "-o", str(tmp_path / "c"), "--graph", "fused", "--format", "hf"))
    assert not any(p.exists() for p in (tmp_path / "a", tmp_path / "b", tmp_path / "c"))


def test_weight_only_options_reach_the_graph(llama_run, tmp_path):
    m = export(llama_run, tmp_path / "a", dtype="int4",
               weights=WeightQuant(block_size=64, symmetric=False, head=False, embedding=True), log=lambda s: None)
    w = m["weights"]
    assert (w["block_size"], w["symmetric"], w["head"], w["embedding"]) == (64, False, False, True)
    graph = onnx.load(str(tmp_path / "a" / "model.onnx"))
    nbits = [n for n in graph.graph.node if n.op_type == "MatMulNBits"]
    assert len(nbits) == m["runtime"]["n_layer"] * 5 and w["nodes"]["GatherBlockQuantized"] == 1
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nbits[0].attribute}
    assert attrs["block_size"] == 64 and attrs["bits"] == 4 and len(nbits[0].input) >= 4  # a zero point input
    assert m["opset"] == max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    # bad options: one line each, nothing written
    for args, part in (
        (["--block-size", "24", "--dtype", "int4"], "power of two"),
        (["--block-size", "64"], "for --dtype int4 or int8"),
        (["--dtype", "int4", "--quantize", "int8"], "not both"),
        (["--dtype", "int4", "--eval-data", str(tmp_path / "nope.txt")], "is not a file"),
        (["--format", "hf", "--dtype", "int4"], "for ONNX exports"),
    ):
        line = one_error_line(run_cli("export", str(llama_run), "-o", str(tmp_path / "bad"), *args))
        assert part in line, (args, line)
        assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("bits", [4, 8])
def test_a_tied_table_is_stored_once_quantized(gpt_run, tmp_path, bits, symmetric):
    """--quantize-embedding on a tied model (gpt): the embedding reads the head's MatMulNBits blocks, scales and
    zero points through GatherBlockQuantized, as the model builder's export does; no float table is left, the
    opset stays, every case validates, and the embedding rows are the head's dequantized weights."""
    from gentoolkit.runtime import load

    m = export(gpt_run, tmp_path / "q", dtype=f"int{bits}",
               weights=WeightQuant(embedding=True, head_bits=bits, symmetric=symmetric), log=lambda s: None)
    graph = onnx.load(str(tmp_path / "q" / "model.onnx"))
    nodes = {n.op_type: n for n in graph.graph.node}
    gather, head = nodes["GatherBlockQuantized"], next(n for n in graph.graph.node if n.output[0] == "logits")
    assert head.op_type == "MatMulNBits" and gather.input[0] == head.input[1] and m["opset"] == 17
    vocab, width = m["runtime"]["vocab_size"], m["config"]["model"]["n_embd"]
    tables = [t for t in graph.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and vocab in t.dims]
    assert not any(width in t.dims for t in tables), [t.name for t in tables]  # the float table is gone
    assert m["validation"]["outputs"]["logits"]["max_rel_diff"] <= m["validation"]["tolerance"]["rtol"]
    # the embedding of every token against the head's weights, dequantized by hand
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in graph.graph.initializer}
    blocks, scales = inits[head.input[1]].astype(np.float32), inits[head.input[2]]
    if bits == 4:
        q = np.stack([inits[head.input[1]] & 15, inits[head.input[1]] >> 4], -1).reshape(vocab, scales.shape[1], -1)
    else:
        q = blocks
    zero = np.float32(2 ** (bits - 1))
    if len(head.input) > 3:  # zero points, two to a byte at 4 bits
        zp = inits[head.input[3]]
        zp = np.stack([zp & 15, zp >> 4], -1).reshape(vocab, -1) if bits == 4 else zp
        zero = zp[:, : scales.shape[1], None].astype(np.float32)
    assert (len(head.input) > 3) == (not symmetric)
    rows = ((q.astype(np.float32) - zero) * scales[:, :, None]).reshape(vocab, -1)[:, :width]
    sub = onnx.helper.make_model(onnx.helper.make_graph(
        [n for n in graph.graph.node if n.name.startswith("/wte")], "emb",
        [onnx.helper.make_tensor_value_info("input_ids", onnx.TensorProto.INT64, [1, None])],
        [onnx.helper.make_tensor_value_info("/wte/out0", onnx.TensorProto.FLOAT, None)],
        initializer=[t for t in graph.graph.initializer if t.name in {i for n in graph.graph.node
                                                                      if n.name.startswith("/wte") for i in n.input}]),
        opset_imports=graph.opset_import)
    ids = np.arange(vocab)[None]
    got = ort.InferenceSession(sub.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input_ids": ids})
    np.testing.assert_allclose(got[0][0], rows, atol=1e-6)
    assert isinstance(load(tmp_path / "q").generate("The ", max_new_tokens=5, greedy=True), str)


def test_export_failures_are_one_line_and_leave_nothing(tmp_path, gpt_run):
    out = tmp_path / "out"
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    cfg = json.loads((gpt_run / "config.json").read_text())
    (unfinished / "config.json").write_text(json.dumps(cfg))
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "config.json").write_text(json.dumps({**cfg, "model": "transformer-xl"}))
    cases = [
        ([str(tmp_path / "missing")], "does not exist"),
        ([str(tmp_path)], "not a gentoolkit run folder"),
        ([str(unfinished)], f"unfinished; let it reach an evaluation step or continue it with 'gentool train gpt --resume --out {unfinished}'"),
        ([str(unknown)], "unknown model 'transformer-xl'"),
        ([str(gpt_run), "--opset", "99"], "exports opsets"),
        ([str(gpt_run), "--dtype", "fp16", "--quantize", "int8"], "not both"),
    ]
    for args, part in cases:
        line = one_error_line(run_cli("export", *args, "-o", str(out)))
        assert part in line, (args, line)
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    # a too-tight tolerance fails validation, naming the output and the difference, and writes nothing
    line = one_error_line(run_cli("export", str(gpt_run), "-o", str(out), "--atol", "1e-12"))
    assert "output 'logits' differs from PyTorch by" in line and not out.exists()
