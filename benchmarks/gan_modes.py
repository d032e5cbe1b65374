"""The PacGAN table for the default `gan` on `ring` and `grid`, over several seeds, and `minimax` beside it.

Usage: python benchmarks/gan_modes.py [--seeds 5] [--first-seed 0] [--minimax-seeds 2] [--classic-seeds 2] [--jobs 2]
                                     [--out DIR] [--set KEY=VALUE ...] [--images docs/img]

Each run uses the defaults (only --data and --seed set), one torch thread, and `--jobs`
runs at a time. Beside them: `loss.name=minimax` with every other default (the
stabilizers on), and `--preset classic`, minimax in the 2014 recipe (no stabilizers),
which collapses. Prints mean and standard error of modes captured, percent high quality
and reverse KL (PacGAN protocol, 2,500 samples), the spread of the high-quality samples
around their modes against the data's (1 = the real spread, 0 = piled on the centres),
recall and coverage (k = 5 nearest neighbours, 2,500 samples a side) and the wall time per
run, then every run on its own row (precision and density too). `--set` overrides config keys in every run, to try a candidate
default the same way, e.g. `--seeds 1 --minimax-seeds 0 --classic-seeds 0 --data grid
--set model.latent_classes=0`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def one(args) -> dict:
    data, seed, loss, out, sets = args
    run = Path(out) / f"{data}-{loss}-{seed}"
    cmd = [sys.executable, "-m", "gentoolkit", "train", "gan", "--data", data, "--seed", str(seed), "--out", str(run),
           "--device", "cpu"]
    if loss == "classic":
        cmd += ["--preset", "classic"]
    elif loss != "default":
        cmd += ["--set", f"loss.name={loss}"]
    for expr in sets:
        cmd += ["--set", expr]
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PATH": "", "MPLBACKEND": "Agg"}
    import os

    env = {**os.environ, **env}
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - t
    res = subprocess.run([sys.executable, "-m", "gentoolkit", "eval", str(run), "--json"], check=True,
                         capture_output=True, text=True, env=env)
    return {"data": data, "loss": loss, "seed": seed, "wall": wall, "run": str(run), **json.loads(res.stdout)}


LABELS = {"default": "non-saturating (default)", "minimax": "minimax (stabilizers on)",
          "classic": "minimax, `--preset classic` (2014 recipe)"}


def mean_se(xs):
    m = statistics.fmean(xs)
    se = statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else 0.0
    return f"{m:.2f} ± {se:.2f}" if abs(m) >= 0.1 or m == 0 else f"{m:.4f} ± {se:.4f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds run from here (for more seeds on top of a table)")
    ap.add_argument("--minimax-seeds", type=int, default=2)
    ap.add_argument("--classic-seeds", type=int, default=2, help="runs of --preset classic (minimax, no stabilizers)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--data", nargs="+", default=["ring", "grid"])
    ap.add_argument("--out", default=None)
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--images", help="copy the first seed's scatter plots (default, classic) here as DATA-default.png ...")
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="gan-modes-")
    first = args.first_seed
    jobs = [(d, s, "default", out, args.sets) for d in args.data for s in range(first, first + args.seeds)]
    jobs += [(d, s, "minimax", out, args.sets) for d in args.data for s in range(args.minimax_seeds)]
    jobs += [(d, s, "classic", out, args.sets) for d in args.data for s in range(args.classic_seeds)]
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(one, jobs))
    if args.sets:
        print("overrides in every run: " + " ".join(args.sets))
    cols = "| data | loss | seeds | modes | high quality % | reverse KL | mode spread | recall | coverage | wall s per run |"
    print(cols)
    print("|---|---|---|---|---|---|---|---|---|---|")

    def cell(rs, key):
        xs = [r[key] for r in rs if r.get(key) is not None]
        return mean_se(xs) if xs else "-"

    for d in args.data:
        for loss in ("default", "minimax", "classic"):
            rs = [r for r in rows if r["data"] == d and r["loss"] == loss]
            if not rs:
                continue
            print(f"| {d} | {LABELS[loss]} | {len(rs)} | {cell(rs, 'modes')} / {rs[0]['modes_total']} "
                  f"| {cell(rs, 'high_quality')} | {cell(rs, 'reverse_kl')} | {cell(rs, 'mode_spread')} "
                  f"| {cell(rs, 'recall')} | {cell(rs, 'coverage')} | {statistics.fmean(r['wall'] for r in rs):.0f} |")
    print()
    print("| data | loss | seed | modes | high quality % | reverse KL | mode spread | precision | recall | density | "
          "coverage | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    def f(r, key, fmt="{:.3f}"):
        return fmt.format(r[key]) if r.get(key) is not None else "-"

    for r in sorted(rows, key=lambda r: (r["data"], r["loss"], r["seed"])):
        print(f"| {r['data']} | {r['loss']} | {r['seed']} | {r['modes']}/{r['modes_total']} | {f(r, 'high_quality', '{:.1f}')} "
              f"| {f(r, 'reverse_kl', '{:.4f}')} | {f(r, 'mode_spread', '{:.2f}')} | {f(r, 'precision')} | {f(r, 'recall')} "
              f"| {f(r, 'density')} | {f(r, 'coverage')} | {r['wall']:.0f} |")
    if args.images:
        for r in rows:
            if r["seed"] == first and r["loss"] in ("default", "classic"):
                shutil.copy(Path(r["run"]) / "samples.png", Path(args.images) / f"{r['data']}-{r['loss']}.png")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
