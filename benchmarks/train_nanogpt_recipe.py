"""Train `gpt` with nanoGPT's CPU recipe for character-level text and print ms/step and val loss.

nanoGPT's README recipe (shakespeare_char on a CPU): n_layer=4 n_head=4 n_embd=128
block_size=64 batch_size=12 dropout=0, lr 1e-3 -> 1e-4 over 2000 steps, warmup 100,
weight decay 0.1, beta2 0.99, grad clip 1.0. Our corpus is the built-in pydoc text
(character tokenizer, val_fraction 0.1), so the loss is comparable in kind, not identical
in data. Usage: python benchmarks/train_nanogpt_recipe.py [--steps 2000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from gentoolkit import get_model
from gentoolkit.config import build
from gentoolkit.train.loop import train

RECIPE = [
    "model.n_layer=4", "model.n_head=4", "model.n_embd=128", "model.block_size=64", "model.dropout=0",
    "train.batch_size=12", "train.lr=1e-3", "train.min_lr=1e-4", "train.warmup_steps=100",
    "train.weight_decay=0.1", "train.beta2=0.99", "train.grad_clip=1.0", "train.eval_interval=250",
    "train.eval_batches=200", "data.tokenizer=char", "data.val_fraction=0.1",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    spec = get_model("gpt")
    tree = build(spec.config_sections, sets=RECIPE + [f"train.steps={args.steps}"])
    out = Path(args.out or tempfile.mkdtemp(prefix="nanogpt-recipe-"))
    t0 = time.perf_counter()
    run, last = train(spec, tree, out, device="cpu")
    wall = time.perf_counter() - t0
    rows = run.read_metrics()
    tps = [r["tokens_per_s"] for r in rows if "tokens_per_s" in r]
    tokens_per_step = 12 * 64
    ms_step = 1000 * tokens_per_step / (sum(tps) / len(tps))
    print("| machine | torch threads | steps | ms/step (training only) | wall s (with evals) | final val loss |")
    print("|---|---|---|---|---|---|")
    print(f"| {platform.machine()} {torch.get_num_threads()} threads | {torch.get_num_threads()} | {args.steps} "
          f"| {ms_step:.1f} | {wall:.1f} | {last.get('val_loss', float('nan')):.4f} |")
    print(json.dumps({"ms_per_step": ms_step, "wall_s": wall, "val_loss": last.get("val_loss"), "run": str(out)}))


if __name__ == "__main__":
    main()
