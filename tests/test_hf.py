"""Hugging Face folders in and out, against transformers itself (tiny random-init models built locally).

Parity in the manner of minGPT's test_huggingface_import: logits allclose (with and without the
cache, left-padded batches) and greedy tokens equal for 64 steps, for Llama (grouped-query
attention, tied or untied head, sharded fp16 safetensors) and GPT-2 (Conv1D, learned positions).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gentoolkit.train.run import Run
from gentoolkit_autoregressive.decode import generate_tokens, left_pad

from . import hf_models
from .conftest import one_error_line, run_cli

transformers = pytest.importorskip("transformers")

PROMPTS = ["The return statement", "A", "def f(x):\n    return"]


@pytest.fixture(scope="module")
def text(corpus) -> str:
    return corpus.read_text()


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory, text) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("hf")
    return {
        "llama": hf_models.llama(base / "llama", text),
        "llama-tied-fp16-shards": hf_models.llama(base / "llama-tied", text, tie=True, dtype="float16", shard="40KB",
                                                  seed=1),
        "gpt2": hf_models.gpt2(base / "gpt2", text),
    }


@pytest.fixture(scope="module")
def imported(hf_dirs, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("imported")
    out = {}
    for name, folder in hf_dirs.items():
        r = run_cli("import", str(folder), "-o", str(base / name))
        assert r.exit_code == 0, r.output
        out[name] = base / name
    return out


def both(hf_dirs, imported, name):
    from gentoolkit_autoregressive.run_model import load_run

    dtype = torch.float32
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(hf_dirs[name]), torch_dtype=dtype).eval()
    ours, tok, _ = load_run(Run.open(imported[name]))
    return hf, ours, tok


@pytest.mark.parametrize("name", ["llama", "llama-tied-fp16-shards", "gpt2"])
def test_logits_match_transformers_with_and_without_the_cache(hf_dirs, imported, name):
    hf, ours, tok = both(hf_dirs, imported, name)
    ids = torch.tensor([tok.encode(PROMPTS[2])])
    with torch.no_grad():
        ref = hf(ids).logits
        full, _ = ours(ids)
        torch.testing.assert_close(full, ref, atol=1e-4, rtol=0)
        # the same sequence, one token at a time through the cache
        _, past = ours(ids[:, :3])
        steps = []
        for t in range(3, ids.shape[1]):
            pos = torch.tensor([[t]])
            mask = torch.ones(1, t + 1, dtype=torch.long)
            logits, past = ours(ids[:, t : t + 1], mask, pos, past)
            steps.append(logits)
        torch.testing.assert_close(torch.cat(steps, 1), ref[:, 3:], atol=1e-4, rtol=0)
        # a left-padded batch, as transformers takes it (attention mask, positions from the mask)
        rows = [tok.encode(p) for p in PROMPTS]
        ids_b, mask_b, pos_b = (torch.from_numpy(a) for a in left_pad(rows, tok.pad_id))
        ref_b = hf(input_ids=ids_b, attention_mask=mask_b, position_ids=pos_b).logits
        ours_b, _ = ours(ids_b, mask_b, pos_b)
        real = mask_b.bool()
        torch.testing.assert_close(ours_b[real], ref_b[real], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_greedy_tokens_match_transformers_for_64_steps(hf_dirs, imported, name):
    from gentoolkit_autoregressive.run_model import TorchDecoder
    from gentoolkit_autoregressive.samplers import make_greedy

    hf, ours, tok = both(hf_dirs, imported, name)
    prompt = tok.encode(PROMPTS[0])
    with torch.no_grad():
        ref = hf.generate(torch.tensor([prompt]), max_new_tokens=64, min_new_tokens=64, do_sample=False,
                          pad_token_id=tok.pad_id)[0, len(prompt):].tolist()
    got = [int(t[0]) for t in generate_tokens(TorchDecoder(ours), [prompt], sampler=make_greedy(), max_new_tokens=64,
                                              pad_id=tok.pad_id, eos_id=None, never_id=None)]
    assert got == ref


def test_the_tokenizer_comes_across_whole(hf_dirs, imported):
    from gentoolkit_autoregressive.tokenizer import TextTokenizer

    tok = TextTokenizer.from_file(imported["llama"] / "tokenizer.json")
    ht = transformers.AutoTokenizer.from_pretrained(str(hf_dirs["llama"]))
    assert tok.eos_ids == (ht.convert_tokens_to_ids("<|im_end|>"),) and tok.bos_id == ht.bos_token_id
    assert tok.pad_id == ht.pad_token_id and tok.never_id == ht.pad_token_id  # </s>: padding, never generated
    assert tok.chat_template == ht.chat_template
    for p in PROMPTS:
        assert tok.encode(p) == ht(p)["input_ids"]  # <s> first, as the tokenizer's own post-processor adds it
    meta = json.loads((imported["llama"] / "config.json").read_text())
    assert meta["imported_from"]["model_type"] == "llama" and meta["config"]["data"]["tokenizer"] == "hf"
    assert meta["config"]["model"]["n_kv_head"] == 2 and meta["config"]["model"]["tie_embeddings"] is False
    gpt = TextTokenizer.from_file(imported["gpt2"] / "tokenizer.json")
    assert gpt.eos_ids == (gpt.tok.token_to_id("<|endoftext|>"),) and gpt.never_id is None  # pads with its end token


def test_bad_folders_are_one_line_and_write_nothing(hf_dirs, tmp_path, text):
    pickled = tmp_path / "pickled"  # what older checkpoints hold: written here only to be refused
    pickled.mkdir()
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(hf_dirs["gpt2"] / f, pickled / f)
    torch.save(transformers.AutoModelForCausalLM.from_pretrained(str(hf_dirs["gpt2"])).state_dict(),
               pickled / "pytorch_model.bin")
    scaled = hf_models.llama(tmp_path / "scaled", text, rope_scaling={"rope_type": "linear", "factor": 2.0})
    mistral = tmp_path / "mistral"
    shutil.copytree(hf_dirs["llama"], mistral)
    (mistral / "config.json").write_text(json.dumps({**hf_models.config(hf_dirs["llama"]), "model_type": "mistral"}))
    cut = tmp_path / "cut"
    shutil.copytree(hf_dirs["llama"], cut)
    data = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(data[: len(data) // 2])
    wrong = tmp_path / "wrong"
    shutil.copytree(hf_dirs["llama"], wrong)
    (wrong / "config.json").write_text(json.dumps({**hf_models.config(hf_dirs["llama"]), "hidden_size": 32,
                                                   "head_dim": 8}))
    notok = tmp_path / "notok"
    shutil.copytree(hf_dirs["gpt2"], notok)
    (notok / "tokenizer.json").unlink()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("x")
    cases = [
        (pickled, "only pickle checkpoints"),
        (scaled, "rope scaling type='linear'"),
        (mistral, "no installed model imports 'mistral'"),
        (cut, "is damaged or not a safetensors file"),
        (wrong, "has shape"),
        (notok, "no tokenizer.json"),
        (tmp_path / "nowhere", "is not a Hugging Face model folder"),
    ]
    for folder, part in cases:
        out = tmp_path / f"run-{folder.name}"
        assert part in one_error_line(run_cli("import", str(folder), "-o", str(out))), folder
        assert not out.exists(), folder
    assert "is not an empty folder" in one_error_line(run_cli("import", str(hf_dirs["gpt2"]), "-o", str(busy)))
    assert sorted(p.name for p in busy.iterdir()) == ["mine.txt"]


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_an_imported_run_samples_evaluates_and_exports_to_onnx(imported, name, tmp_path, corpus):
    from gentoolkit.runtime import load

    run = imported[name]
    r = run_cli("sample", str(run), "-p", "The ", "--max-new-tokens", "12", "--seed", "3", "--temperature", "0.8")
    assert r.exit_code == 0, r.output
    r = run_cli("eval", str(run), "--data", str(corpus), "--json")
    assert r.exit_code == 0 and json.loads(r.output)["val_loss"] > 0, r.output
    out = tmp_path / "onnx"
    r = run_cli("export", str(run), "-o", str(out))
    assert r.exit_code == 0, r.output
    text = load(out).generate("The ", max_new_tokens=12, seed=3, temperature=0.8)
    assert r.exit_code == 0 and run_cli("sample", str(out), "-p", "The ", "--max-new-tokens", "12", "--seed", "3",
                                        "--temperature", "0.8").output == "The " + text + "\n"


@pytest.mark.parametrize("name", ["llama", "llama-tied-fp16-shards", "gpt2"])
def test_export_back_to_transformers(hf_dirs, imported, name, tmp_path):
    out = tmp_path / "hf"
    r = run_cli("export", str(imported[name]), "--format", "hf", "-o", str(out))
    assert r.exit_code == 0, r.output
    again = transformers.AutoModelForCausalLM.from_pretrained(str(out)).eval()
    original = transformers.AutoModelForCausalLM.from_pretrained(str(hf_dirs[name]), torch_dtype=torch.float32).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(out))
    ids = tok(PROMPTS[2], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, original(ids).logits, atol=1e-4, rtol=0)


@pytest.mark.parametrize("model,kind", [("gpt", "byte"), ("gpt", "bpe"), ("llama", "char"), ("llama", "bpe")])
def test_runs_trained_here_export_to_transformers(model, kind, tmp_path, corpus):
    from gentoolkit_autoregressive.run_model import load_run

    from .conftest import train_tiny

    run = train_tiny(model, tmp_path / "run", corpus, steps=4, extra=[f"data.tokenizer={kind}", "data.bpe_vocab_size=300"])
    out = tmp_path / "hf"
    r = run_cli("export", str(run), "--format", "hf", "-o", str(out))
    assert r.exit_code == 0, r.output
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(out)).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(out))
    ours, our_tok, _ = load_run(Run.open(run))
    text = "The return statement is used"
    ids = our_tok.encode(text)
    assert tok(text)["input_ids"] == ids
    with torch.no_grad():
        torch.testing.assert_close(hf(torch.tensor([ids])).logits, ours(torch.tensor([ids]))[0], atol=1e-4, rtol=0)
    assert np.isfinite(hf(torch.tensor([ids])).logits.detach().numpy()).all()


def test_fine_tuning_starts_from_the_pretrained_weights(hf_dirs, imported, tmp_path, corpus):
    from gentoolkit.train.checkpoint import read_weights

    from .conftest import FAST_TRAIN

    fast = [a for s in FAST_TRAIN if not s.startswith("train.lr") for a in ("--set", s)]
    # from the Hugging Face folder itself, and from its imported run: a vanishing learning rate keeps the weights
    for i, init in enumerate((hf_dirs["llama"], imported["llama"])):
        out = tmp_path / f"ft-{i}"
        r = run_cli("train", "llama", "--init", str(init), "--data", str(corpus), "--out", str(out), "--steps", "2",
                    "--set", "train.lr=1e-12", "--set", "train.min_lr=0", *fast)
        assert r.exit_code == 0, r.output
        a, b = read_weights(out / "model.safetensors"), read_weights(imported["llama"] / "model.safetensors")
        assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
        meta = json.loads((out / "config.json").read_text())
        assert meta["preset"] == "finetune" and meta["config"]["train"]["lr"] == 1e-12
        assert meta["init"] == str(hf_dirs["llama"].resolve())
        assert (out / "tokenizer_config.json").read_text() == (hf_dirs["llama"] / "tokenizer_config.json").read_text()
    # it resumes like any run, on its own data only
    r = run_cli("train", "llama", "--resume", "--out", str(out), "--steps", "4")
    assert r.exit_code == 0, r.output
    assert "--init" in one_error_line(run_cli("train", "llama", "--resume", "--out", str(out), "--data", "pydoc"))
    # a shorter context drops learned positions; the architecture stays the pretrained model's
    short = tmp_path / "short"
    r = run_cli("train", "gpt", "--init", str(imported["gpt2"]), "--data", str(corpus), "--out", str(short),
                "--steps", "2", "--set", "model.block_size=32", *fast)
    assert r.exit_code == 0, r.output
    assert read_weights(short / "model.safetensors")["transformer.wpe.weight"].shape[0] == 32
    for args, part in ((["--set", "model.n_layer=3"], "model.n_layer is the pretrained model's"),
                       (["--set", "model.block_size=4096"], "can only shrink"),
                       (["--resume"], "--init starts a new run")):
        line = one_error_line(run_cli("train", "gpt", "--init", str(imported["gpt2"]), "--out", str(tmp_path / "x"),
                                      *args))
        assert part in line, (args, line)
    assert "an llama" not in one_error_line(run_cli("train", "gpt", "--init", str(imported["llama"]),
                                                    "--out", str(tmp_path / "y")))
    # an imported model is never trained into
    for args in (["--out", str(imported["llama"])], ["--resume", "--out", str(imported["llama"])]):
        assert "is an imported model" in one_error_line(run_cli("train", "llama", *args))


CONVERSATION = [{"role": "system", "content": "You answer briefly."},
                {"role": "user", "content": "What does return do?"},
                {"role": "assistant", "content": "It ends a function and gives back a value."},
                {"role": "user", "content": "And pass?"},
                {"role": "assistant", "content": "Nothing at all."}]


def test_chat_is_the_template_of_transformers_and_the_same_on_a_run_and_its_export(hf_dirs, imported, tmp_path):
    from gentoolkit.runtime import load
    from gentoolkit_autoregressive.tokenizer import TextTokenizer

    ht = transformers.AutoTokenizer.from_pretrained(str(hf_dirs["llama"]))
    tok = TextTokenizer.from_file(imported["llama"] / "tokenizer.json")
    for messages in (CONVERSATION[:2], CONVERSATION[:4]):
        ref = ht.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ref = ref["input_ids"] if isinstance(ref, dict) or hasattr(ref, "keys") else ref
        assert tok.chat_ids(messages) == list(ref)
    out = tmp_path / "onnx"
    assert run_cli("export", str(imported["llama"]), "-o", str(out)).exit_code == 0
    args = ["--chat", "What does return do?", "--max-new-tokens", "16", "--seed", "2", "--temperature", "0.9"]
    replies = [run_cli("sample", str(p), *args) for p in (imported["llama"], out)]
    assert replies[0].exit_code == 0 and replies[0].output == replies[1].output, [r.output for r in replies]
    api = load(out).chat([{"role": "user", "content": "What does return do?"}], max_new_tokens=16, seed=2,
                         temperature=0.9)
    assert replies[0].output == api + "\n"
    # gentool chat (the autoregressive plugin's command): turns from stdin, replies streamed
    r = run_cli("chat", str(out), "--seed", "2", "--temperature", "0.9", "--max-new-tokens", "16",
                input="What does return do?\n/reset\nWhat does return do?\n/exit\n")
    assert r.exit_code == 0, r.output
    assert r.output == api + "\n" + api + "\n"  # after /reset, the same first reply
    for path, part in ((imported["gpt2"], "no chat template"),):
        assert part in one_error_line(run_cli("sample", str(path), "--chat", "hi"))
    assert "no chat template" in one_error_line(run_cli("chat", str(imported["gpt2"]), input="hi\n"))


def test_fine_tuning_on_conversations_learns_the_assistant_turns_only(imported, tmp_path):
    from gentoolkit_autoregressive.data import encode_data
    from gentoolkit_autoregressive.tokenizer import TextTokenizer

    data = tmp_path / "chat.jsonl"
    rows = [CONVERSATION] + [[{"role": "user", "content": f"Count to {i}."},
                              {"role": "assistant", "content": " ".join(str(j) for j in range(i))}] for i in range(2, 40)]
    data.write_text("\n".join(json.dumps({"messages": m}) for m in rows) + "\n")
    tok = TextTokenizer.from_file(imported["llama"] / "tokenizer.json")
    ids, mask = encode_data(tok, str(data))
    first = len(tok.chat_ids(CONVERSATION, add_generation_prompt=False))
    learned = tok.tok.decode(ids[:first][mask[:first] > 0].tolist(), skip_special_tokens=False)
    assert learned == "It ends a function and gives back a value.<|im_end|>\nNothing at all.<|im_end|>\n"
    out = tmp_path / "ft"
    r = run_cli("train", "llama", "--init", str(imported["llama"]), "--data", str(data), "--out", str(out),
                "--steps", "30", "--set", "model.block_size=64", "--set", "train.eval_interval=15",
                "--set", "train.lr=3e-3", "--set", "train.eval_batches=4")
    assert r.exit_code == 0, r.output
    rows = Run(out).read_metrics()
    val = [row["val_loss"] for row in rows if "val_loss" in row]
    assert len(val) == 2 and val[-1] < val[0]
    r = run_cli("eval", str(out), "--json")
    assert r.exit_code == 0 and json.loads(r.output)["tokens"] < int(mask.sum()), r.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    assert "no assistant turn" in one_error_line(run_cli("train", "llama", "--init", str(imported["llama"]),
                                                         "--data", str(bad), "--out", str(tmp_path / "b")))
    assert "need a chat template" in one_error_line(run_cli("train", "gpt", "--data", str(data),
                                                            "--out", str(tmp_path / "c")))


@pytest.mark.slow
def test_real_sizes_a_50k_vocabulary_a_2k_context_bf16_weights_and_external_data(tmp_path, text):
    from gentoolkit.export import export
    from gentoolkit.runtime import load
    from gentoolkit_autoregressive.run_model import TorchDecoder, load_run
    from gentoolkit_autoregressive.samplers import make_greedy

    src = hf_models.llama(tmp_path / "src", text, dtype="bfloat16", vocab_size=50257, max_position_embeddings=2048)
    run = tmp_path / "run"
    assert run_cli("import", str(src), "-o", str(run)).exit_code == 0
    out = tmp_path / "onnx"
    # as a model over 2 GB is written; the parity checks below stand in for validation's cases at this size
    manifest = export(run, out, external_data_bytes=0, check=False, log=lambda m: None)
    assert (out / "model.onnx.data").is_file() and "model.onnx.data" in manifest["files"]
    assert (out / "model.onnx").stat().st_size < (out / "model.onnx.data").stat().st_size / 10
    assert (out / "model.onnx.data").stat().st_mode & 0o777 == (out / "model.onnx").stat().st_mode & 0o777  # not 0600
    lm = load(out)  # the external-data path check reads the graph's locations
    assert lm.decoder.context_length == 2048 and lm.decoder.vocab_size == 50257
    model, tok, _ = load_run(Run.open(run))
    prompt = tok.encode(text[:20000])[:1500]
    assert len(prompt) == 1500
    rows = [[int(t[0]) for t in generate_tokens(d, [prompt], sampler=make_greedy(), max_new_tokens=16,
                                                pad_id=tok.pad_id, eos_id=None, never_id=None)]
            for d in (TorchDecoder(model), lm.decoder)]
    assert rows[0] == rows[1]
    ids, mask, pos = left_pad([prompt], tok.pad_id)
    ort_logits = lm.decoder.new_cache(1).prefill(ids, mask, pos)
    with torch.no_grad():
        pt_logits, _ = model(torch.from_numpy(ids))
    np.testing.assert_allclose(ort_logits[0], pt_logits[0, -1].numpy(), atol=1e-4, rtol=0)


def test_fine_tuning_runs_under_ddp(hf_dirs, imported, tmp_path, corpus):
    from gentoolkit.train.checkpoint import read_weights

    from .conftest import run_subprocess

    out = tmp_path / "ddp"
    r = run_subprocess("train", "llama", "--init", str(imported["llama"]), "--data", str(corpus), "--out", str(out),
                       "--steps", "4", "--nproc-per-node", "2", "--device", "cpu", "--set", "train.eval_interval=2",
                       "--set", "train.eval_batches=2", "--set", "model.block_size=64")
    assert r.returncode == 0, r.stderr[-3000:]
    assert all(torch.isfinite(t).all() for t in read_weights(out / "model.safetensors").values())
    assert json.loads((out / "config.json").read_text())["init"] == str(hf_dirs["llama"].resolve())  # the original


def test_import_needs_no_transformers(hf_dirs, tmp_path):
    import subprocess
    import sys

    from .conftest import ROOT

    block = ("import importlib.abc, sys\n"
             "class _No(importlib.abc.MetaPathFinder):\n"
             "    def find_spec(self, name, path, target=None):\n"
             "        if name.split('.')[0] in ('transformers', 'huggingface_hub'):\n"
             "            raise ImportError('blocked in this test')\n"
             "sys.meta_path.insert(0, _No())\n"
             "from gentoolkit.cli.main import main\n"
             f"sys.argv = ['gentool', 'import', {str(hf_dirs['llama'])!r}, '-o', {str(tmp_path / 'run')!r}]\n"
             "main()\n")
    r = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_a_row_ends_at_any_of_its_end_tokens():
    from gentoolkit_autoregressive.decode import GrowingCache
    from gentoolkit_autoregressive.samplers import make_greedy

    class Decoder:  # a model whose next token is always the last one plus one
        context_length = 64

        def new_cache(self, batch):
            return GrowingCache(self.forward, None, batch, self.context_length)

        def forward(self, ids, mask, pos, past):
            logits = np.full((ids.shape[0], 32), -10.0, dtype=np.float32)
            logits[np.arange(ids.shape[0]), (ids[:, -1] + 1) % 32] = 10.0
            return logits, None

    rows = list(generate_tokens(Decoder(), [[3], [10]], sampler=make_greedy(), max_new_tokens=8, pad_id=0,
                                eos_id=(6, 12), never_id=None))
    assert [int(r[0]) for r in rows[:3]] == [4, 5, 6] and [int(r[1]) for r in rows[:2]] == [11, 12]
    assert all(int(r[1]) == -1 for r in rows[2:]) and len(rows) == 3  # each row stopped at its own end token
