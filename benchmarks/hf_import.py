"""Import a Hugging Face Llama of SmolLM2-135M's shape: time, peak memory, and logits against transformers.

Usage: python benchmarks/hf_import.py [--dtype bfloat16] [--keep DIR]

The model is random-init, built locally with transformers from SmolLM2-135M's configuration (30
layers, 576 wide, 9 heads, 3 key/value heads, MLP 1536, vocabulary 49152, tied embeddings, rope
theta 100000, context 8192) and saved in bf16 as the hub's copy is; nothing is downloaded. The
tokenizer is a small BPE trained on Python's documentation (a vocabulary smaller than the model's
is allowed). `gentool import` runs in a fresh interpreter; its peak resident memory is compared
with the model's fp32 size and with a bare interpreter that imports the same libraries.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0,
                    rms_norm_eps=1e-5, tie_word_embeddings=True)


def peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    """(seconds, peak resident MB) of a command in a child process of its own (GNU time's %M)."""
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as report:
        t = time.perf_counter()
        r = subprocess.run(["/usr/bin/time", "-o", report.name, "-f", "%M", *cmd], capture_output=True, text=True)
        seconds = time.perf_counter() - t
        if r.returncode:
            raise SystemExit(r.stderr[-3000:])
        return seconds, int(report.read().split()[-1]) / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--keep", help="build the model here and keep it (default: a temporary folder)")
    args = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM

    sys.path.insert(0, str(ROOT))
    from tests.hf_models import llama

    base = Path(args.keep or tempfile.mkdtemp(prefix="hf-import-"))
    src = base / "smollm2-shape"
    if not (src / "config.json").is_file():
        from pydoc_data.topics import topics

        text = "\n\n".join(topics[k] for k in sorted(topics))
        t = time.perf_counter()
        llama(src, text, dtype=args.dtype, **SMOLLM2_135M)
        print(f"built the random model with transformers in {time.perf_counter() - t:.1f} s")
    params = json.loads((src / "config.json").read_text())
    n = sum(p.numel() for p in AutoModelForCausalLM.from_config(
        __import__("transformers").AutoConfig.from_pretrained(str(src))).parameters())
    weights_mb = sum(p.stat().st_size for p in src.glob("*.safetensors")) / 1e6
    run = base / "run"
    if run.exists():
        import shutil

        shutil.rmtree(run)
    _, baseline = peak_rss_mb([sys.executable, "-c", "import torch, safetensors, tokenizers, gentoolkit.cli.main, "
                                                     "gentoolkit_autoregressive.model"])
    seconds, peak = peak_rss_mb([sys.executable, "-m", "gentoolkit", "import", str(src), "-o", str(run)])
    fp32_mb = n * 4 / 1e6
    from gentoolkit.train.run import Run
    from gentoolkit_autoregressive.run_model import load_run

    hf = AutoModelForCausalLM.from_pretrained(str(src), torch_dtype=torch.float32).eval()
    ours, tok, _ = load_run(Run.open(run))
    ids = torch.tensor([tok.encode("The return statement leaves the current function call with the expression")])
    with torch.no_grad():
        diff = float((hf(ids).logits - ours(ids)[0]).abs().max())
    print(f"\nLlama in SmolLM2-135M's shape: {n / 1e6:.1f}M parameters, {params['num_hidden_layers']} layers, "
          f"{args.dtype} safetensors of {weights_mb:.0f} MB")
    print("| what | figure |")
    print("|---|---|")
    print(f"| gentool import, wall | {seconds:.1f} s |")
    print(f"| peak resident memory of gentool import | {peak:.0f} MB |")
    print(f"| the same interpreter importing the libraries only | {baseline:.0f} MB |")
    print(f"| the import's own peak (the difference) | {peak - baseline:.0f} MB = {(peak - baseline) / fp32_mb:.2f}x the "
          f"fp32 weights ({fp32_mb:.0f} MB) |")
    print(f"| largest logit difference against transformers (fp32, {ids.shape[1]} tokens) | {diff:.2e} |")


if __name__ == "__main__":
    main()
