"""Real-size decoding on the CPU: gentoolkit's export against onnxruntime-genai's model builder and transformers.

Usage: python benchmarks/real_size.py [--work DIR] [--models llama,gpt2] [--repeat 5] [--threads 2]

Two random-init models, built locally with transformers (nothing is downloaded):

* ``llama``: a LlamaForCausalLM in SmolLM2-135M's shape (30 layers, 576 wide, 9 heads, 3 key/value
  heads, MLP 1536, vocabulary 49152, tied embeddings, context 8192), saved in bf16 as the hub's copy is;
* ``gpt2``: a GPT2LMHeadModel of GPT-2's 124M shape (12 layers, 768 wide, 12 heads, vocabulary 50257).

Each is imported with ``gentool import`` (the same weights on every side) and exported with
``gentool export`` in fp32 and int4 (``--no-validate``: the full-context case of an 8192 context
costs minutes; the tests validate every case at tiny sizes), and in int4 with
``--quantize-embedding``, the builder's own int4 format (``fused-int4-emb``: the tied table stored
once, in int4). The Llama also goes through
``python -m onnxruntime_genai.models.builder`` in fp32 and int4 (the builder has no GPT-2 path).

Every back end runs in a worker process of its own (``gentoolkit.cli.bench.bench_targets``), the
turns of all of them shuffled round by round: greedy decoding of 128 tokens after a 32-token
prompt (tokens/s after the first token), the first token after a 512-token prompt, and the
peak resident memory of the worker. The ratios pair gentoolkit's export with the builder's at
the same weight format, round by round. Then the physical limit: memory bandwidth (numpy sum
over 1 GB), the bytes of weights one decode step reads, and the share of that ceiling each back
end reaches; the quality cost of int4 (logits against transformers in fp32); and an onnxruntime
profile of the decode steps of gentoolkit's export (where the time goes, by op type).

Everything built goes to ``--work`` (default a temporary folder) and is reused when present.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.hf_import import SMOLLM2_135M  # noqa: E402

GPT2_124M = dict(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257)
DTYPES = ("fp32", "int4")
GRAPHS = ("traced", "fused")  # gentoolkit's two graphs (gentool export --graph)
# the builder's int4 format: the tied table stored once, in int4 (gentool export --quantize-embedding)
EMB = "fused-int4-emb"


def sh(*cmd: str) -> None:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    print(f"  {time.perf_counter() - t:6.1f} s  {' '.join(Path(c).name if '/' in c else c for c in cmd)}", flush=True)


def prepare(work: Path, name: str) -> dict[str, Path]:
    """The HF folder, the imported run, gentoolkit's exports and (Llama) the builder's: name -> folder."""
    from pydoc_data.topics import topics

    from tests.hf_models import gpt2, llama

    base = work / name
    hf = base / "hf"
    if not (hf / "config.json").is_file():
        text = "\n\n".join(topics[k] for k in sorted(topics))
        if name == "llama":
            llama(hf, text, dtype="bfloat16", **SMOLLM2_135M)
        else:
            gpt2(hf, text, **GPT2_124M)
        print(f"  built {hf}", flush=True)
    run = base / "run"
    if not (run / "model.safetensors").is_file():
        sh(sys.executable, "-m", "gentoolkit", "import", str(hf), "-o", str(run))
    out = {"hf": hf, "run": run}
    for dtype in DTYPES:
        for graph in GRAPHS:
            ours = base / f"{graph}-{dtype}"
            if not (ours / "gentoolkit.json").is_file():
                sh(sys.executable, "-m", "gentoolkit", "export", str(run), "-o", str(ours), "--no-validate",
                   "--graph", graph, *(["--dtype", dtype] if dtype != "fp32" else []))
            out[f"{graph}-{dtype}"] = ours
        if dtype == "int4":
            ours = base / EMB
            if not (ours / "gentoolkit.json").is_file():
                sh(sys.executable, "-m", "gentoolkit", "export", str(run), "-o", str(ours), "--no-validate",
                   "--dtype", "int4", "--quantize-embedding")
            out[EMB] = ours
        if name == "llama":
            builder = base / f"builder-{dtype}"
            if not (builder / "genai_config.json").is_file():
                sh(sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf), "-o", str(builder),
                   "-p", dtype, "-e", "cpu", "-c", str(base / "builder-cache"))
            out[f"builder-{dtype}"] = builder
    return out


# --- workers: the cases of the other back ends, named as gentoolkit's own (timing.plan) ---------------------
def _ids(folder: Path, options: dict[str, Any]):
    from gentoolkit_autoregressive.timing import plan, prompt_ids
    from gentoolkit_autoregressive.tokenizer import TextTokenizer

    (p, n, long), names = plan(options["context"], options)
    return p, n, long, names, prompt_ids(TextTokenizer.from_file(folder / "tokenizer.json", ""), max(p, long))


def _cases(run, ids: list[int], p: int, n: int, long: int, names):
    """The two cases of gentoolkit's own timing (timing.decode_cases) over a back end's ``run(prompt,
    new) -> (start, first token, end, tokens)``."""

    def decode():
        t0, t1, t2, tokens = run(ids[:p], n)
        return {"tokens_per_s": (len(tokens) - 1) / (t2 - t1), "first_token_ms": 1000 * (t1 - t0), "tokens": tokens,
                "prompt": ids[:p]}

    def first_token():
        t0, t1, _, _ = run(ids[:long], 1)
        return {"first_token_ms": 1000 * (t1 - t0)}

    return list(zip(names, (decode, first_token)))


def genai_cases(folder: str, options: dict[str, Any]):
    """onnxruntime-genai on a folder (the builder's export), greedy, every token generated."""
    import numpy as np
    import onnxruntime_genai as og

    config = og.Config(folder)
    config.overlay(json.dumps({"model": {"decoder": {"session_options": {
        "intra_op_num_threads": options["threads"], "inter_op_num_threads": 1}}}}))
    model = og.Model(config)
    p, n, long, names, ids = _ids(Path(folder), options)

    def run(prompt: list[int], new: int):
        params = og.GeneratorParams(model)
        total = len(prompt) + new
        params.set_search_options(max_length=total, min_length=total, do_sample=False)
        gen = og.Generator(model, params)
        t0 = time.perf_counter()
        gen.append_tokens(np.array(prompt, dtype=np.int32))
        gen.generate_next_token()
        tokens = [int(gen.get_next_tokens()[0])]
        t1 = time.perf_counter()
        while len(tokens) < new:
            gen.generate_next_token()
            tokens.append(int(gen.get_next_tokens()[0]))
        return t0, t1, time.perf_counter(), tokens

    return f"onnxruntime-genai {og.__version__}, builder's export", _cases(run, ids, p, n, long, names)


def transformers_cases(folder: str, options: dict[str, Any]):
    """transformers, PyTorch eager in fp32 with its cache (a greedy loop of forward calls)."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()
    torch.set_num_threads(options["threads"])
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    p, n, long, names, ids = _ids(Path(folder), options)

    @torch.no_grad()
    def run(prompt: list[int], new: int):
        t0 = time.perf_counter()
        out = model(torch.tensor([prompt]), use_cache=True)
        tokens = [int(out.logits[0, -1].argmax())]
        t1 = time.perf_counter()
        past = out.past_key_values
        while len(tokens) < new:
            out = model(torch.tensor([[tokens[-1]]]), past_key_values=past, use_cache=True)
            past = out.past_key_values
            tokens.append(int(out.logits[0, -1].argmax()))
        return t0, t1, time.perf_counter(), tokens

    import transformers

    return f"transformers {transformers.__version__}, eager fp32, cache", _cases(run, ids, p, n, long, names)


# --- the physical limit ---------------------------------------------------------------------------------
def bandwidth_gbs(gb: float = 1.0, repeat: int = 5) -> dict[str, float]:
    """GB/s read from a float32 array of ``gb`` GB (best of ``repeat``): numpy's sum in one thread, the
    sum split over every core's thread, and a matrix-vector product (BLAS, every thread: what a decode
    step's MatMul does)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    side = int((gb * 1e9 / 4) ** 0.5)
    a = np.ones((side, side), dtype=np.float32)
    v = np.ones(side, dtype=np.float32)
    parts = np.array_split(a, os.cpu_count() or 1)
    with ThreadPoolExecutor(len(parts)) as pool:
        def split_sum():
            list(pool.map(np.sum, parts))

        out = {"numpy sum, one thread": min(_timed(a.sum) for _ in range(repeat)),
               f"numpy sum, {len(parts)} threads": min(_timed(split_sum) for _ in range(repeat)),
               "float32 matrix-vector product": min(_timed(lambda: a @ v) for _ in range(repeat))}
    return {k: a.nbytes / t / 1e9 for k, t in out.items()}


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def step_bytes(model_file: Path) -> int:
    """Bytes of weights one decode step reads: every initializer of the graph, except a table that
    only ``Gather`` nodes read (the embedding: one row per token), directly or through a ``Transpose``
    (a tied table that the head reads in another copy)."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    model = onnx.load(str(model_file), load_external_data=False)
    readers: dict[str, set[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, set()).add(node.op_type)
    gathers = {"Gather", "GatherBlockQuantized"}
    for node in model.graph.node:  # a Transpose whose output only Gathers read reads for them
        if node.op_type == "Transpose" and readers.get(node.output[0], set()) <= gathers:
            readers[node.input[0]] = (readers[node.input[0]] - {"Transpose"}) | {"Gather"}
    total = 0
    for t in model.graph.initializer:
        if readers.get(t.name, set()) <= gathers and t.name in readers:
            continue
        if uses_external_data(t):
            total += int(ExternalDataInfo(t).length or 0)
        else:
            total += len(t.raw_data) or onnx.numpy_helper.to_array(t).nbytes
    return total


def model_file(folder: Path) -> Path:
    manifest = folder / "gentoolkit.json"
    if manifest.is_file():
        return folder / json.loads(manifest.read_text())["model_file"]
    return folder / json.loads((folder / "genai_config.json").read_text())["model"]["decoder"]["filename"]


# --- quality: int4 against fp32 --------------------------------------------------------------------------
def logits_against_transformers(folders: dict[str, Path], threads: int) -> list[dict]:
    """Largest and mean logit difference of each export's prefill against transformers in fp32, and the
    share of greedy next tokens that agree, on 64 tokens of documentation text."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    from gentoolkit.runtime import load
    from gentoolkit_autoregressive.timing import prompt_ids
    from gentoolkit_autoregressive.tokenizer import TextTokenizer

    logging.disable_progress_bar()
    hf_dir = folders["hf"]
    ids = prompt_ids(TextTokenizer.from_file(hf_dir / "tokenizer.json", ""), 64)
    hf = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        ref = hf(torch.tensor([ids])).logits[0].numpy()
    del hf
    rows = []
    for name, folder in folders.items():
        if name.split("-")[0] in GRAPHS:  # (every position's logits: logits_to_keep left at its default)
            decoder = load(folder, threads=threads).decoder
            n = len(ids)
            feeds = dict(zip(decoder.past_names, decoder.empty_past(1)), input_ids=np.array([ids], np.int64),
                         attention_mask=np.ones((1, n), np.int64), position_ids=np.arange(n)[None])
            got = decoder.session.run(["logits"], feeds)[0][0]
        elif name.startswith("builder-"):
            got = _genai_logits(folder, ids, threads)
        else:
            continue
        diff = np.abs(got - ref)
        rows.append({"export": name, "max": float(diff.max()), "mean": float(diff.mean()),
                     "argmax": float((got.argmax(-1) == ref.argmax(-1)).mean())})
    return rows


def _genai_logits(folder: Path, ids: list[int], threads: int):
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(model_file(folder)), opts, providers=["CPUExecutionProvider"])
    cfg = json.loads((folder / "genai_config.json").read_text())["model"]
    n, feeds = len(ids), {}
    for i in sess.get_inputs():
        if i.name == "input_ids":
            feeds[i.name] = np.array([ids], np.int64)
        elif i.name == "attention_mask":
            feeds[i.name] = np.ones((1, n), np.int64)
        elif i.name == "position_ids":
            feeds[i.name] = np.arange(n, dtype=np.int64)[None]
        else:  # past key/value: empty
            heads, size = cfg["decoder"]["num_key_value_heads"], cfg["decoder"]["head_size"]
            feeds[i.name] = np.zeros((1, heads, 0, size), np.float32)
    return sess.run(["logits"], feeds)[0][0]


# --- where the time goes ---------------------------------------------------------------------------------
def profile_steps(folder: Path, threads: int, steps: int = 16) -> list[tuple[str, float]]:
    """(op type, share of the decode steps' node time) from onnxruntime's profiler, on gentoolkit's export."""
    import onnxruntime as ort

    from gentoolkit.runtime import load

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "p")
        lm = load(folder, threads=threads)
        lm.decoder.session = ort.InferenceSession(str(model_file(folder)), opts, providers=["CPUExecutionProvider"])
        from gentoolkit_autoregressive.decode import generate_tokens
        from gentoolkit_autoregressive.samplers import make_greedy

        list(generate_tokens(lm.decoder, [list(range(5, 37))], sampler=make_greedy(), max_new_tokens=steps,
                             pad_id=lm.tokenizer.pad_id, eos_id=None))
        events = json.loads(Path(lm.decoder.session.end_profiling()).read_text())
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    first_end = runs[0]["ts"] + runs[0]["dur"] if runs else 0  # skip the prefill
    by_op: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e["ts"] > first_end:
            op = e.get("args", {}).get("op_name", "?")
            by_op[op] = by_op.get(op, 0.0) + e["dur"]
    total = sum(by_op.values()) or 1.0
    step_us = sum(r["dur"] for r in runs[1:]) / max(1, len(runs) - 1)
    out = sorted(((op, us / total) for op, us in by_op.items()), key=lambda x: -x[1])
    return [("(one decode step, ms)", step_us / 1000)] + out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", help="build here and keep it (default: a temporary folder)")
    ap.add_argument("--models", default="llama,gpt2")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--first-token-prompt", type=int, default=512)
    args = ap.parse_args()
    from gentoolkit.cli.bench import bench_targets

    work = Path(args.work or tempfile.mkdtemp(prefix="real-size-"))
    measured = bandwidth_gbs()
    gbs = max(measured.values())
    print("memory bandwidth over 1 GB: " + ", ".join(f"{k} {v:.1f} GB/s" for k, v in measured.items()) +
          f"; the ceiling below uses {gbs:.1f}. {os.cpu_count()} cores, threads {args.threads}")
    for name in args.models.split(","):
        print(f"\n## {name}: preparing in {work / name}", flush=True)
        folders = prepare(work, name)
        context = json.loads((folders["hf"] / "config.json").read_text()).get("max_position_embeddings") or \
            json.loads((folders["hf"] / "config.json").read_text())["n_positions"]
        options = {"prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens,
                   "first_token_prompt": args.first_token_prompt, "batch": 1, "threads": args.threads,
                   "context": context}
        targets = []
        for dtype in DTYPES:
            builder = f"builder-{dtype}" if f"builder-{dtype}" in folders else None
            if builder:
                targets.append((builder, "benchmarks.real_size:genai_cases", str(folders[builder]), "builder-fp32"))
            for graph in GRAPHS:
                targets.append((f"{graph}-{dtype}", "gentoolkit.cli.bench:path_cases", str(folders[f"{graph}-{dtype}"]),
                                builder or f"traced-{dtype}"))
            if dtype == "int4":
                targets.append((EMB, "gentoolkit.cli.bench:path_cases", str(folders[EMB]), builder or "traced-int4"))
        targets.append(("transformers-fp32", "benchmarks.real_size:transformers_cases", str(folders["hf"]),
                        "fused-fp32"))
        os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        rows = bench_targets(targets, options, args.repeat)
        weights = {t[0]: step_bytes(model_file(Path(t[2]))) for t in targets if not t[0].startswith("transformers")}
        weights["transformers-fp32"] = weights["traced-fp32"]
        print(f"\n### {name}, {args.repeat} rounds: greedy, {args.new_tokens} new tokens after {args.prompt_tokens}; "
              f"first token after {args.first_token_prompt}")
        print("| back end | what | case | tokens/s | first token, ms | peak RSS, MB | weights per step, MB | "
              "share of the bandwidth ceiling | against | speed against it, round by round | tokens equal to its |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            mb = weights[r["path"]] / 1e6
            share = f"{r['tokens_per_s'] / (gbs * 1e3 / mb):.0%}" if "tokens_per_s" in r else ""
            v = r.get("vs_first")
            ratio = f"{v['median']:.3f}x ({v['low']:.3f}-{v['high']:.3f})" if v else ""
            same = f"{r['same_tokens']:.0%}" if "same_tokens" in r else ""
            tps = f"{r['tokens_per_s']:.1f}" if "tokens_per_s" in r else ""
            print(f"| {r['path']} | {r['what']} | {r['case']} | {tps} | {r['first_token_ms']:.0f} | "
                  f"{r['peak_rss_mb']:.0f} | {mb:.0f} | {share} | {r.get('against', '')} | {ratio} | {same} |")
        print(f"\n### {name}: logits of a 64-token prefill against transformers in fp32")
        print("| export | largest difference | mean difference | argmax equal |")
        print("|---|---|---|---|")
        for r in logits_against_transformers(folders, args.threads):
            print(f"| {r['export']} | {r['max']:.4f} | {r['mean']:.4f} | {r['argmax']:.0%} |")
        for key in [f"{graph}-{dtype}" for dtype in DTYPES for graph in GRAPHS] + [EMB]:
            prof = profile_steps(folders[key], args.threads)
            print(f"\n### {name}: {key}, onnxruntime profile of 15 decode steps ({prof[0][1]:.1f} ms per step)")
            print("| op type | share of node time |")
            print("|---|---|")
            for op, share in prof[1:9]:
                print(f"| {op} | {share:.0%} |")


if __name__ == "__main__":
    main()
