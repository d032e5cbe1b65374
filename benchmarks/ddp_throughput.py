"""Tokens per second of `gpt` (nanoGPT's CPU recipe size) with 1 and 2 workers on this machine.

Usage: python benchmarks/ddp_throughput.py [--steps 200]
1 worker uses torch's default threads (2 here); torchrun gives each of 2 workers one thread.
The global batch (12 sequences of 64 tokens) is the same in both, so the figures compare directly.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run(nproc: int, steps: int, out: Path) -> float:
    subprocess.run([sys.executable, "-m", "gentoolkit", "train", "gpt", "--out", str(out), "--steps", str(steps),
                    "--device", "cpu", "--nproc-per-node", str(nproc), "--set", "train.eval_interval=100000",
                    "--set", "data.tokenizer=char"], check=True, capture_output=True)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["tokens_per_s"] for r in rows[1:] if "tokens_per_s" in r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = run(1, args.steps, Path(tmp) / "one")
        two = run(2, args.steps, Path(tmp) / "two")
    print("| workers | tokens/s (median of log windows) | vs 1 worker |")
    print("|---|---|---|")
    print(f"| 1 (2 threads) | {one:.0f} | 1.00 |")
    print(f"| 2 (gloo, 1 thread each) | {two:.0f} | {two / one:.2f} |")


if __name__ == "__main__":
    main()
