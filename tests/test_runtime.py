"""The torch-free runtime: no torch, same output as PyTorch, padding, safe loading."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from gentoolkit.errors import GentoolError
from gentoolkit.runtime import load
from gentoolkit.testing import run_without_torch as _run_without_torch

from .conftest import ROOT, one_error_line, run_cli


def run_without_torch(code: str, env=None) -> subprocess.CompletedProcess:
    return _run_without_torch(code, cwd=ROOT, env=env)


def test_the_torch_blocker_blocks_torch():
    # the torch-free tests below would pass vacuously if importing torch still worked
    r = run_without_torch("import torch.nn")
    assert r.returncode != 0 and "ImportError: torch is blocked in this test" in r.stderr
    assert run_without_torch("import numpy, onnxruntime").returncode == 0


def test_runtime_never_imports_torch(exports, tmp_path):
    code = f"""
import gentoolkit.runtime as rt
lm = rt.load({str(exports['gpt'])!r})
text = lm.generate("The ", max_new_tokens=12, seed=1)
pieces = list(lm.stream("The ", max_new_tokens=12, seed=1))
assert "".join(pieces) == text, (pieces, text)
gan = rt.load({str(exports['gan'])!r})
x = gan.sample(7, seed=0)
gan.save(x, {str(tmp_path / 'x.csv')!r})
assert "torch" not in sys.modules
assert "click" not in sys.modules, "the runtime built the CLI's registry"
print(repr(text), x.shape)
"""
    r = run_without_torch(code)
    assert r.returncode == 0, r.stderr
    assert "(7, 2)" in r.stdout
    assert (tmp_path / "x.csv").read_text().count("\n") == 7


def test_gentool_sample_export_never_imports_torch(exports):
    for args in ([str(exports["gpt"]), "-p", "The ", "--max-new-tokens", "8", "--seed", "1"],
                 [str(exports["gan"]), "-n", "3", "--seed", "1"]):
        r = run_without_torch(f"from gentoolkit.cli.main import cli\ncli({['sample', *args]!r}, standalone_mode=True)")
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr


SAMPLERS = [
    ["--greedy"],
    ["--temperature", "0.7"],
    ["--temperature", "1.2", "--top-k", "5"],
    ["--top-p", "0.8"],
    ["--min-p", "0.1"],
    ["--repetition-penalty", "1.5", "--temperature", "0.9"],
    ["--temperature", "0"],
]


@pytest.mark.parametrize("name", ["gpt", "llama"])
@pytest.mark.parametrize("opts", SAMPLERS, ids=lambda o: " ".join(o))
def test_same_seed_same_text_in_pytorch_and_onnxruntime(exports, name, opts, request):
    run = request.getfixturevalue(f"{name}_run")
    args = ["-p", "The ", "-p", "def", "--max-new-tokens", "40", "--seed", "11", *opts]
    a = run_cli("sample", str(run), *args)
    b = run_cli("sample", str(exports[name]), *args)
    assert a.exit_code == 0 and b.exit_code == 0, (a.output, b.output)
    assert a.output == b.output


@pytest.mark.parametrize("opts", [[], ["--truncation", "0.7"], ["--sampler", "uniform"]], ids=str)
def test_same_seed_same_gan_samples(exports, gan_run, dcgan_run, tmp_path, opts):
    for name, run in (("gan", gan_run), ("dcgan", dcgan_run)):
        a, b = tmp_path / f"{name}-a.npy", tmp_path / f"{name}-b.npy"
        assert run_cli("sample", str(run), "-n", "20", "--seed", "4", "-o", str(a), *opts).exit_code == 0
        assert run_cli("sample", str(exports[name]), "-n", "20", "--seed", "4", "-o", str(b), *opts).exit_code == 0
        np.testing.assert_allclose(np.load(a), np.load(b), atol=1e-5)


@pytest.mark.parametrize("name", ["gpt", "llama"])
def test_left_padded_batch_equals_one_by_one(exports, name):
    lm = load(exports[name])
    prompts = ["The class", "x", "Return the value of"]
    batch = lm.generate(prompts, max_new_tokens=25, greedy=True)
    assert batch == [lm.generate(p, max_new_tokens=25, greedy=True) for p in prompts]
    # sampling too: row i draws from its own seeded stream
    sampled = lm.generate(prompts, max_new_tokens=25, seed=3, temperature=0.9)
    assert sampled[0] == lm.generate(prompts[0], max_new_tokens=25, seed=3, temperature=0.9)


def test_long_generation_past_the_context(exports):
    lm = load(exports["gpt"])
    text = lm.generate("a", max_new_tokens=3 * lm.decoder.context_length, greedy=True, stop=())
    assert len(text) >= lm.decoder.context_length


def test_load_from_model_onnx_uses_metadata(exports, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(exports["gan"], folder)
    (folder / "gentoolkit.json").unlink()
    g = load(folder / "model.onnx")
    assert g.sample(2, seed=1).shape == (2, 2)
    with pytest.raises(GentoolError, match="not a gentoolkit export"):
        load(folder)


def test_a_graph_whose_error_is_not_text_is_one_error_and_prints_nothing(exports, tmp_path, capfd):
    """An op name damaged into bytes that are not UTF-8: onnxruntime's error quotes them, Python cannot decode
    its message, and onnxruntime retries with its fallback providers, printing that to the standard output
    (what the fault campaign's fuzzer once hit). The runtime says one thing and the app's output stays its own."""
    folder = tmp_path / "copy"
    shutil.copytree(exports["gpt"], folder)
    model = folder / "model.onnx"
    data = model.read_bytes()
    at = data.find(b"MatMul")
    assert at > 0
    model.write_bytes(data[:at] + b"Mat\xceul" + data[at + 6 :])  # the same length: the protobuf stays whole
    with pytest.raises(GentoolError, match="cannot load .*damaged"):
        load(folder)
    out = capfd.readouterr()
    assert out.out == "", out.out


def test_safe_loading(exports, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    # an ONNX file that is not a gentoolkit export
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    plain = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), str(plain))
    with pytest.raises(GentoolError, match="lacks format_version, family, model"):
        load(plain)
    # external data that points outside the folder
    evil = tmp_path / "evil"
    shutil.copytree(exports["gan"], evil)
    model = onnx.load(str(evil / "model.onnx"))
    init = model.graph.initializer[0]
    init.data_location = TensorProto.EXTERNAL
    del init.external_data[:]
    entry = init.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    init.ClearField("raw_data")
    onnx.save(model, str(evil / "model.onnx"))
    with pytest.raises(GentoolError, match="outside its folder"):
        load(evil)
    # a newer format, and a family nobody runs
    odd = tmp_path / "odd"
    shutil.copytree(exports["gan"], odd)
    m = json.loads((odd / "gentoolkit.json").read_text())
    (odd / "gentoolkit.json").write_text(json.dumps({**m, "format_version": 99}))
    with pytest.raises(GentoolError, match="upgrade"):
        load(odd)
    (odd / "gentoolkit.json").write_text(json.dumps({**m, "family": "flow"}))
    with pytest.raises(GentoolError, match="no runtime for the 'flow' family"):
        load(odd)
    one_error_line(run_cli("sample", str(odd)))


def test_unknown_characters_get_a_clear_error(tmp_path, corpus):
    from gentoolkit.export import export

    from .conftest import train_tiny

    run = train_tiny("gpt", tmp_path / "char", corpus, steps=4, extra=["data.tokenizer=char"])
    export(run, tmp_path / "exp", log=lambda m: None)
    lm = load(tmp_path / "exp")
    with pytest.raises(GentoolError, match="'☃'"):
        lm.generate("snow ☃", max_new_tokens=3)
    line = one_error_line(run_cli("sample", str(tmp_path / "exp"), "-p", "snow ☃"))
    assert "does not know" in line


def _streamed(tokenizer, ids, stop=()):
    from gentoolkit_autoregressive.decode import TextStreamer

    streamer = TextStreamer(tokenizer, stop)
    pieces = [streamer.push(t) for t in ids if not streamer.stopped]
    return pieces + [streamer.flush()]


@pytest.mark.parametrize("stop", [(), ("END",), ("wörld", "語 🙂")])
def test_streamed_text_is_the_decoded_text_cut_at_the_first_stop(stop):
    """Incremental decoding: the pieces add up to decoding every id at once, never show half a character,
    and end before the first stop string, also one that spans several tokens."""
    from gentoolkit_autoregressive.tokenizer_build import byte_tokenizer

    tok = byte_tokenizer()  # one token per byte: every non-ASCII character spans 2 to 4 tokens
    text = "héllo wörld, 日本語 🙂 END and more after the end"
    ids = tok.encode(text)
    ids = ids[:5] + [tok.pad_id, tok.eos_id] + ids[5:]  # special tokens decode to nothing
    pieces = _streamed(tok, ids, stop)
    cuts = [text.find(s) for s in stop if s in text]
    assert "".join(pieces) == text[: min(cuts)] if cuts else text
    assert not any("\ufffd" in p for p in pieces)


def test_byte_level_streaming_matches_the_tokenizer_decode(tmp_path):
    """A trained byte-level BPE (tokens of several bytes, some of them half a character) and a Hugging Face
    one with five special tokens stream through token_bytes; the text equals tokenizers' own decode,
    special tokens left out, and the tokenizer's decode path (token_bytes off) gives the same text."""
    from gentoolkit_autoregressive.tokenizer import TextTokenizer
    from gentoolkit_autoregressive.tokenizer_build import bpe_tokenizer

    from . import hf_models

    text = "héllo wörld, 日本語 🙂 naïve café " * 20
    hf_models.tokenizer(tmp_path, text, kind="llama")
    rng = np.random.default_rng(1)
    for tok in (bpe_tokenizer([text], 300), TextTokenizer.from_file(tmp_path / "tokenizer.json", "hf")):
        assert tok.token_bytes is not None
        for _ in range(30):
            ids = rng.integers(0, tok.vocab_size + 20, size=int(rng.integers(1, 40))).tolist()  # some past it
            fast = _streamed(tok, ids)
            assert "".join(fast) == tok.decode(ids), ids
            tok.token_bytes, saved = None, tok.token_bytes
            try:
                assert "".join(_streamed(tok, ids)) == "".join(fast)
            finally:
                tok.token_bytes = saved


def test_streamed_bytes_that_are_not_utf8_match_a_whole_decode():
    from gentoolkit_autoregressive.tokenizer_build import byte_tokenizer

    tok = byte_tokenizer()
    rng = np.random.default_rng(0)
    for _ in range(20):  # random bytes: stray continuation bytes, characters cut off, valid runs
        ids = rng.integers(0, 256, size=int(rng.integers(1, 60))).tolist()
        assert "".join(_streamed(tok, ids)) == tok.decode(ids)


@pytest.mark.parametrize("graph", ["traced", "fused"])
def test_fixed_buffer_cache_matches_a_growing_cache(exports, gpt_run, tmp_path, graph):
    """The CPU decode paths (the traced graph's StaticCache: fixed buffers bound once, capacity
    climbing; the fused graph's SharedCache: one buffer shared by past and present) against the
    plain one (the cache grows by one slot per step): the same logits step by step, for a
    left-padded batch, up to the context; then the same tokens past it."""
    from gentoolkit.export import export
    from gentoolkit.plugin.options import make_sampler
    from gentoolkit_autoregressive.decode import GrowingCache, generate_tokens, left_pad
    from gentoolkit_autoregressive.decoder import OrtDecoder, SharedCache, StaticCache

    folder = exports["gpt"] if graph == "fused" else tmp_path / "traced"
    if graph == "traced":
        export(gpt_run, folder, graph="traced", check=False, log=lambda m: None)
    lm = load(folder)
    assert lm.manifest["graph"] == graph
    fixed, plain = lm.decoder, OrtDecoder(lm.decoder.session, lm.manifest["runtime"], fixed_buffers=False)
    prompts = [lm.tokenizer.encode(p) for p in ("The class", "x", "Return the")]
    ids, mask, pos = left_pad(prompts, lm.tokenizer.pad_id)
    cache, growing = fixed.new_cache(3), plain.new_cache(3)
    assert isinstance(cache, {"traced": StaticCache, "fused": SharedCache}[graph]) and isinstance(growing, GrowingCache)
    a, b = cache.prefill(ids, mask, pos), growing.prefill(ids, mask, pos)
    capacities = {getattr(cache, "capacity", lm.decoder.context_length)}
    rng = np.random.default_rng(0)
    for _ in range(lm.decoder.context_length - ids.shape[1]):
        np.testing.assert_allclose(a, b, atol=1e-5)
        new = rng.integers(0, lm.tokenizer.pad_id, size=3)  # any tokens: both paths must agree on each
        a, b = cache.advance(new), growing.advance(new)
        capacities.add(getattr(cache, "capacity", lm.decoder.context_length))
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert max(capacities) == lm.decoder.context_length  # the traced graph's cache grew up to the context
    assert len(capacities) > 1 or graph == "fused"
    with pytest.raises(ValueError, match="is full"):
        cache.advance(new)

    def tokens(decoder):
        steps = generate_tokens(decoder, prompts, sampler=make_sampler("logits", options={"temperature": 1.0}, choose={"": "sample"}),
                                max_new_tokens=2 * lm.decoder.context_length, pad_id=lm.tokenizer.pad_id, seed=5)
        return np.stack(list(steps))

    np.testing.assert_array_equal(tokens(fixed), tokens(plain))


def test_interleaved_streams_from_one_model(exports):
    """Two streams of one loaded model, advanced in turns, give the text each gives alone: a live
    generation keeps its own fixed buffers."""
    lm = load(exports["gpt"])
    kw = {"max_new_tokens": 2 * lm.decoder.context_length, "temperature": 1.0, "stop": ()}
    alone = [lm.generate(p, seed=i, **kw) for i, p in enumerate(("The ", "def"))]
    a, b = lm.stream("The ", seed=0, **kw), lm.stream("def", seed=1, **kw)
    together = ["", ""]
    for pa, pb in zip(a, b):
        together[0] += pa
        together[1] += pb
    together[0] += "".join(a)
    together[1] += "".join(b)
    assert together == alone


def test_one_model_generates_in_threads(exports):
    """Four threads share one loaded model (onnxruntime runs them at once): each row's text is
    the text it gets alone."""
    from concurrent.futures import ThreadPoolExecutor

    lm = load(exports["gpt"])
    kw = {"max_new_tokens": 2 * lm.decoder.context_length, "temperature": 1.0, "stop": ()}
    jobs = [("The ", 0), ("def", 1), (["x = ", "class A"], 2), ("Return", 3)] * 2
    alone = [lm.generate(p, seed=s, **kw) for p, s in jobs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda job: lm.generate(job[0], seed=job[1], **kw), jobs))
    assert together == alone


def test_a_family_samples_with_no_other_plugin_loaded(exports):
    """Each family brings its own samplers: with only its plugin loaded, its exports still generate."""
    for plugin, code in (("autoregressive", f"print(load({str(exports['gpt'])!r}).generate('a', max_new_tokens=3, seed=1) is not None)"),
                         ("gan", f"print(load({str(exports['gan'])!r}).sample(3, seed=1, truncation=0.5).shape)")):
        r = run_without_torch("from gentoolkit.runtime import load\n" + code,
                              env={**os.environ, "GENTOOL_LOAD_PLUGINS": plugin})
        assert r.returncode == 0 and r.stdout.strip() in ("True", "(3, 2)"), (plugin, r.stderr[-2000:])


def test_threads_default_by_model_size(exports, tmp_path):
    """One intra-op thread for a small model, onnxruntime's own choice (0: a thread per core) for a large one."""
    import shutil

    from gentoolkit.runtime.session import LARGE_MODEL_BYTES, default_threads

    small = exports["gpt"] / "model.onnx"
    assert default_threads(small) == 1
    assert load(exports["gpt"]).decoder.session.get_session_options().intra_op_num_threads == 1
    assert load(exports["gpt"], threads=2).decoder.session.get_session_options().intra_op_num_threads == 2
    big = tmp_path / "big"
    shutil.copytree(exports["gpt"], big)
    with open(big / "model.onnx.data", "wb") as f:  # the size counts the external data file too
        f.truncate(LARGE_MODEL_BYTES + 1)
    assert default_threads(big / "model.onnx") == 0


def test_save_prints_nothing_and_the_cli_says_what_it_wrote(exports, tmp_path, capsys):
    gan = load(exports["gan"])
    x = gan.sample(6, seed=0)
    capsys.readouterr()
    paths = [gan.save(x, str(tmp_path / f"x{suffix}")) for suffix in (".csv", ".npy", ".png")]
    assert capsys.readouterr() == ("", "")  # a library call prints nothing, on either stream
    assert paths == [tmp_path / "x.csv", tmp_path / "x.npy", tmp_path / "x.png"] and all(p.is_file() for p in paths)
    r = run_cli("sample", str(exports["gan"]), "-n", "6", "--seed", "0", "-o", str(tmp_path / "cli.csv"))
    assert r.exit_code == 0 and f"wrote {tmp_path / 'cli.csv'}" in r.output, r.output
    assert (tmp_path / "cli.csv").read_text() == (tmp_path / "x.csv").read_text()
