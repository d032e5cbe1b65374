"""The PacGAN table for the default `ddpm` (gentoolkit-diffusion) on `ring` and `grid`, beside the GAN's.

Usage: python benchmarks/ddpm_modes.py [--seeds 5] [--jobs 2] [--gan] [--out DIR]

Needs the plugin: pip install ./plugins/gentoolkit-diffusion. Each run uses the
defaults (only --data and --seed set), one torch thread, `--jobs` runs at a time.
Each run is measured twice on 2,500 samples (PacGAN protocol): with the run's default
sampler (`gentool eval`: DDPM, ancestral, all 1,000 steps) and with DDIM in 50 steps.
`--gan` trains the default `gan` on the same seeds in the same invocation, for a
side-by-side table. Prints mean and standard error, and the wall time per run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gan_modes import mean_se  # the same table format (this folder is on sys.path when run as a script)

DDIM = """
import json, sys
from gentoolkit.train.run import Run
from gentoolkit.samples.evaluation import measure
from gentoolkit_diffusion.sample import load_denoiser
from gentoolkit_diffusion.samplers import make_ddim
from gentoolkit_diffusion.task import prepare
from gentoolkit_diffusion.torch_sampling import draw_samples
model, tree = load_denoiser(Run.open(sys.argv[1]))
data = prepare(dict(tree))
x = draw_samples(model, tree["model"], make_ddim(steps=50), 2500, 0)
print(json.dumps(measure(data, x)))
"""


def one(args) -> dict:
    model, data, seed, out = args
    run = Path(out) / f"{model}-{data}-{seed}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gentoolkit", "train", model, "--data", data, "--seed", str(seed),
                    "--out", str(run), "--device", "cpu"], check=True, capture_output=True, env=env)
    wall = time.perf_counter() - t
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "gentoolkit", "eval", str(run), "--json"], check=True,
                         capture_output=True, text=True, env=env)
    row = {**json.loads(res.stdout), "model": model, "data": data, "seed": seed, "wall": wall,
           "eval_s": time.perf_counter() - t}
    row["sampler"] = f"{row['sampler']}, {row['steps']} steps" if model == "ddpm" else "one pass"
    rows = [row]
    if model == "ddpm":
        t = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", DDIM, str(run)], check=True, capture_output=True, text=True,
                             env=env)
        rows.append({**row, **json.loads(res.stdout), "sampler": "ddim, 50 steps", "eval_s": time.perf_counter() - t})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--data", nargs="+", default=["ring", "grid"])
    ap.add_argument("--gan", action="store_true", help="also train the default gan on the same seeds")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="ddpm-modes-")
    models = ["ddpm"] + (["gan"] if args.gan else [])
    jobs = [(m, d, s, out) for m in models for d in args.data for s in range(args.seeds)]
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = [r for rs in pool.map(one, jobs) for r in rs]
    print("| data | model | sampler | seeds | modes | high quality % | reverse KL | train s | sampling s (2,500) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for d in args.data:
        for key in dict.fromkeys((r["model"], r["sampler"]) for r in rows):
            rs = [r for r in rows if r["data"] == d and (r["model"], r["sampler"]) == key]
            print(f"| {d} | {key[0]} | {key[1]} | {len(rs)} | {mean_se([r['modes'] for r in rs])} / {rs[0]['modes_total']} "
                  f"| {mean_se([r['high_quality'] for r in rs])} | {mean_se([r['reverse_kl'] for r in rs])} "
                  f"| {statistics.fmean(r['wall'] for r in rs):.0f} | {statistics.fmean(r['eval_s'] for r in rs):.0f} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
