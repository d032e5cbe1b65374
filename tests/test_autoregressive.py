"""The autoregressive family on tiny real models: training, KV cache, resume, tokenizers, errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gentoolkit.train import checkpoint
from gentoolkit.train.run import Run
from gentoolkit_autoregressive.decode import generate_tokens, left_pad
from gentoolkit_autoregressive.run_model import TorchDecoder, load_run
from gentoolkit_autoregressive.samplers import make_greedy
from gentoolkit_autoregressive.tokenizer_build import build_tokenizer, encode_corpus

from .conftest import FAST_TRAIN, ROOT, TINY, one_error_line, run_cli, train_tiny


@pytest.mark.parametrize("fixture", ["gpt_run", "llama_run"])
def test_loss_decreases_and_run_folder_is_complete(fixture, request):
    path = request.getfixturevalue(fixture)
    rows = Run.open(path).read_metrics()
    losses = [r["train_loss"] for r in rows if "train_loss" in r]
    assert losses[-1] < losses[0] - 1.0, losses
    assert all({"step", "train_loss", "lr", "tokens_per_s"} <= set(r) for r in rows)
    assert any("val_loss" in r for r in rows)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "metrics.jsonl", "loss.png"):
        assert (path / name).is_file(), name
    last = checkpoint.latest(path)
    assert last.step == rows[-1]["step"] and not last.legacy
    assert {p.name for p in last.path.iterdir()} == {"model.safetensors", "state.safetensors", "state.json",
                                                      "checkpoint.json"}
    assert (path / "model.safetensors").read_bytes() == last.weights.read_bytes()
    assert (path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _full_recompute_greedy(model, prompt, n):
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            logits, _ = model(torch.tensor([ids[-model.config.block_size:]]))
            logits[0, -1, model.config.vocab_size - 1] = -float("inf")  # the pad token, as the loop does
            ids.append(int(logits[0, -1].argmax()))
    return ids[len(prompt):]


@pytest.mark.parametrize("fixture", ["gpt_run", "llama_run"])
def test_kv_cache_matches_full_recomputation(fixture, request):
    model, tok, _ = load_run(Run.open(request.getfixturevalue(fixture)))
    assert tok.pad_id == model.config.vocab_size - 1
    prompt = tok.encode("The class ")
    # logits: one pass over the sequence vs prefill + one token at a time with the cache
    seq = torch.tensor([prompt + tok.encode("statement is")])
    with torch.no_grad():
        full, _ = model(seq)
        logits, past = model(seq[:, :4])
        steps = [logits]
        for t in range(4, seq.shape[1]):
            logits, past = model(seq[:, t : t + 1], torch.ones(1, t + 1, dtype=torch.long),
                                 torch.tensor([[t]]), past)
            steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    # tokens: the cached generation loop gives exactly the tokens of full recomputation
    n = 40  # crosses nothing; the context test below crosses the window
    cached = np.stack(list(generate_tokens(TorchDecoder(model), [prompt], sampler=make_greedy(), max_new_tokens=n,
                                           pad_id=tok.pad_id, eos_id=None)))[:, 0]
    assert cached.tolist() == _full_recompute_greedy(model, prompt, n)


@pytest.mark.parametrize("fixture", ["gpt_run", "llama_run"])
def test_left_padded_batch_equals_rows_alone(fixture, request):
    model, tok, _ = load_run(Run.open(request.getfixturevalue(fixture)))
    prompts = [tok.encode("def"), tok.encode("The keyword argument"), tok.encode("x")]
    dec = TorchDecoder(model)
    kw = dict(sampler=make_greedy(), max_new_tokens=12, pad_id=tok.pad_id, eos_id=tok.eos_id)
    batch = np.stack(list(generate_tokens(dec, prompts, **kw)))
    for i, p in enumerate(prompts):
        alone = np.stack(list(generate_tokens(dec, [p], **kw)))[:, 0]
        n = len(alone)
        assert batch[:n, i].tolist() == alone.tolist()
    ids, mask, pos = left_pad(prompts, tok.pad_id)
    assert mask.sum(1).tolist() == [len(p) for p in prompts] and pos[1].tolist() == list(range(ids.shape[1]))


def test_generation_past_the_context_window(gpt_run):
    model, tok, _ = load_run(Run.open(gpt_run))
    block = model.config.block_size
    out = list(generate_tokens(TorchDecoder(model), [tok.encode("a" * (block + 5))], sampler=make_greedy(),
                               max_new_tokens=2 * block, pad_id=tok.pad_id))
    assert len(out) == 2 * block and all(0 <= t[0] < tok.pad_id for t in out)


def test_sampling_cli_is_seeded_and_streams(gpt_run):
    a = run_cli("sample", str(gpt_run), "-p", "The ", "--seed", "3", "--max-new-tokens", "30")
    b = run_cli("sample", str(gpt_run), "-p", "The ", "--seed", "3", "--max-new-tokens", "30")
    c = run_cli("sample", str(gpt_run), "-p", "The ", "--seed", "4", "--max-new-tokens", "30")
    assert a.exit_code == 0 and a.output == b.output and a.output != c.output
    assert a.output.startswith("The ")
    s = run_cli("sample", str(gpt_run), "-p", "The ", "--greedy", "--max-new-tokens", "30", "--stop", "e")
    assert "e" not in s.output[len("The "):].rstrip("\n")


def test_eval_reports_loss_and_bits(gpt_run, corpus):
    r = run_cli("eval", str(gpt_run), "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert 0 < res["val_loss"] < 6 and abs(res["perplexity"] - np.exp(res["val_loss"])) < 1e-6
    assert res["bits_per_byte"] > 0 and res["tokenizer"] == "byte"
    r2 = json.loads(run_cli("eval", str(gpt_run), "--data", str(corpus), "--json").output)
    assert r2["tokens"] > res["tokens"]


def _weights(path):
    return load_file(str(path / "model.safetensors"))


def test_ctrl_c_then_resume_equals_uninterrupted_run(tmp_path, corpus):
    steps = 400
    full = train_tiny("gpt", tmp_path / "full", corpus, steps=steps, extra=["train.eval_interval=100"])
    cut = tmp_path / "cut"
    args = [sys.executable, "-m", "gentoolkit", "train", "gpt", "--data", str(corpus), "--out", str(cut),
            "--steps", str(steps), "--device", "cpu"]
    for s in TINY["gpt"] + FAST_TRAIN + ["train.eval_interval=100"]:
        args += ["--set", s]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    metrics = cut / "metrics.jsonl"
    while time.time() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Interrupted at step" in err and "--resume" in err
    stopped = checkpoint.latest(cut).step
    assert 0 < stopped < steps
    r = run_cli("train", "gpt", "--resume", "--out", str(cut), "--device", "cpu")
    assert r.exit_code == 0, r.output
    a, b = _weights(full), _weights(cut)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # a finished run can be extended
    r = run_cli("train", "gpt", "--resume", "--out", str(cut), "--steps", str(steps + 10), "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert Run.open(cut).read_metrics()[-1]["step"] == steps + 10


TEXT = "Héllo, wörld! 日本語 tabs\tand\nnew lines.\n"


@pytest.mark.parametrize("kind", ["byte", "char", "bpe"])
def test_tokenizer_buildround_trip_and_save(kind, tmp_path):
    from gentoolkit_autoregressive.tokenizer import TextTokenizer

    docs = [TEXT * 20, "Another document, with other words."]
    tok = build_tokenizer(kind, docs, 300)
    assert tok.decode(tok.encode(TEXT)) == TEXT
    tok.save(tmp_path / "tokenizer.json")
    again = TextTokenizer.from_file(tmp_path / "tokenizer.json", kind)
    assert again.encode(TEXT) == tok.encode(TEXT) and again.vocab_size == tok.vocab_size
    # the fast corpus path agrees with tokenizer.json
    ids = encode_corpus(tok, docs)
    expected = tok.encode(docs[0]) + [tok.eos_id] + tok.encode(docs[1])
    assert ids.tolist() == expected
    if kind == "byte":
        assert tok.vocab_size == 258 and tok.encode("A") == [65]


def test_char_tokenizer_refuses_unknown_characters():
    from gentoolkit.errors import GentoolError

    tok = build_tokenizer("char", ["abc def"])
    with pytest.raises(GentoolError, match="'z'"):
        tok.encode("abz")


def test_user_errors_are_one_line(tmp_path, gpt_run):
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    cases = [
        (["train", "gpt", "--set", "train.stpes=3", "--out", str(tmp_path / "a")], "train.steps"),
        (["train", "gpt", "--data", str(empty), "--out", str(tmp_path / "b")], "is empty"),
        (["train", "gpt", "--data", str(binary), "--out", str(tmp_path / "c")], "looks binary"),
        (["train", "gpt", "--data", "no-such-thing", "--out", str(tmp_path / "d")], "neither a file"),
        (["train", "gtp"], "Did you mean 'gpt'"),
        (["train", "gpt", "--preset", "huge"], "unknown preset 'huge'"),
        (["sample", str(tmp_path / "missing")], "does not exist"),
        (["eval", str(tmp_path)], "not a gentoolkit run folder"),
        (["train", "gpt", "--out", str(gpt_run)], "already holds a run"),
        (["sample", str(gpt_run), "--temperature", "-1"], "'--temperature': '-1' is not >= 0"),
        (["train", "gpt", "--set", "loss.name=hinge", "--out", str(tmp_path / "e")], "'hinge' is for gan models"),
    ]
    for args, part in cases:
        line = one_error_line(run_cli(*args))
        assert part in line, (args, line)
    assert not (tmp_path / "b" / "model.safetensors").exists()


def test_print_config_shows_the_resolved_tree():
    r = run_cli("train", "llama", "--preset", "nano", "--steps", "5", "--print-config")
    assert r.exit_code == 0
    assert "[model]" in r.output and "n_kv_head = 1" in r.output and "steps = 5" in r.output
