"""Sampling overhead per token next to a decode step, and the sampler figure for docs/sampling.md.

Usage: python benchmarks/sampling_overhead.py [--run RUN] [--figure docs/img/sampling.png]

For vocabularies of 65 and 50,000 symbols, on Zipf-like logits, it times each built-in sampler on one row
of logits (what the decode loop does per row per step) and, for scale, one cached
decode step of nanoGPT's CPU model size (4 layers, 4 heads, 128 wide) in PyTorch.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from gentoolkit_autoregressive.config import GPTConfig
from gentoolkit_autoregressive.model import build
from gentoolkit_autoregressive.samplers import LogitsSampler


def per_call(fn, n=300) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def decode_step_us(vocab: int) -> float:
    model = build(GPTConfig(vocab_size=vocab)).eval()
    ids = torch.randint(0, vocab, (1, 32))
    with torch.no_grad():
        _, past = model(ids)
        mask = torch.ones(1, 33, dtype=torch.long)
        pos = torch.tensor([[32]])
        step = lambda: model(ids[:, :1], mask, pos, past)  # noqa: E731
        return per_call(step, 200)


SETTINGS = {
    "greedy": LogitsSampler(greedy=True),
    "temperature 0.8": LogitsSampler(temperature=0.8),
    "top-k 40": LogitsSampler(top_k=40),
    "top-p 0.9": LogitsSampler(top_p=0.9),
    "min-p 0.05": LogitsSampler(min_p=0.05),
    "rep. penalty 1.3": LogitsSampler(repetition_penalty=1.3),
    "all of them": LogitsSampler(temperature=0.8, top_k=40, top_p=0.9, min_p=0.05, repetition_penalty=1.3),
}


def figure(run: str, path: str) -> None:
    from gentoolkit.plots import distributions
    from gentoolkit.train.run import Run
    from gentoolkit_autoregressive.run_model import load_run

    model, tok, _ = load_run(Run.open(run))
    prompt = "The return statement "
    with torch.no_grad():
        logits, _ = model(torch.tensor([tok.encode(prompt)]))
    x = logits[0, -1].double().numpy()
    x[tok.pad_id] = -np.inf
    top = np.argsort(-x)[:20]
    labels = [repr(tok.decode([int(i)]))[1:-1] or "?" for i in top]
    panels = []
    for name, s in [("temperature 1.0", LogitsSampler()), ("temperature 0.5", LogitsSampler(temperature=0.5)),
                    ("temperature 1.5", LogitsSampler(temperature=1.5)), ("top-p 0.5", LogitsSampler(top_p=0.5)),
                    ("top-k 5", LogitsSampler(top_k=5))]:
        panels.append((name, s.probs(x)[top]))
    distributions(panels, labels, path, title=f"next token after {prompt!r} (20 most likely)")
    print(f"wrote {path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run")
    ap.add_argument("--figure", default="docs/img/sampling.png")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print("| vocab | sampler | µs per token (1 row) | share of a decode step |")
    print("|---|---|---|---|")
    for vocab in (65, 50_000):
        step = decode_step_us(vocab)
        # Zipf-like logits (natural language is roughly Zipfian), in shuffled token order
        x = (-1.1 * np.log(np.arange(1, vocab + 1)))[rng.permutation(vocab)].astype(np.float32) * 1.5
        hist = rng.integers(0, vocab, 64)
        g = np.random.default_rng(1)
        print(f"| {vocab} | (decode step, PyTorch, micro model) | {step:.0f} | 1.00 |")
        for name, s in SETTINGS.items():
            us = per_call(lambda s=s: s(x, hist, g))  # noqa: B023
            print(f"| {vocab} | {name} | {us:.0f} | {us / step:.2f} |")
    if args.run:
        figure(args.run, args.figure)


if __name__ == "__main__":
    main()
