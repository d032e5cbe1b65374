"""Every GAN loss on `ring` with the otherwise-default `gan` (one seed): the metrics table of the mode-collapse tutorial.

Usage: python benchmarks/gan_losses.py [--seed 0] [--jobs 2] [--out DIR] [--images docs/img]
With --images, copies the scatter plot of the minimax run (stabilizers on) for the docs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

LOSSES = ["non-saturating", "minimax", "wgan-gp", "hinge", "lsgan"]


def one(loss, seed, out, data):
    run = Path(out) / f"{data}-{loss}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gentoolkit", "train", "gan", "--data", data, "--seed", str(seed), "--out",
                    str(run), "--set", f"loss.name={loss}", "--device", "cpu"], check=True, capture_output=True, env=env)
    wall = time.perf_counter() - t
    res = json.loads(subprocess.run([sys.executable, "-m", "gentoolkit", "eval", str(run), "--json"], check=True,
                                    capture_output=True, text=True, env=env).stdout)
    alarms = [r for r in (run / "metrics.jsonl").read_text().splitlines() if '"diversity"' in r]
    return {"loss": loss, "wall": wall, "run": str(run), "logged": len(alarms), **res}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--data", default="ring")
    ap.add_argument("--out", default=None)
    ap.add_argument("--images", default=None)
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="gan-losses-")
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda loss: one(loss, args.seed, out, args.data), LOSSES))
    print(f"| loss ({args.data}, seed {args.seed}) | modes | high quality % | reverse KL | mode spread | diversity "
          "| wall s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        spread = "-" if r.get("mode_spread") is None else f"{r['mode_spread']:.2f}"
        print(f"| {r['loss']} | {r['modes']}/{r['modes_total']} | {r['high_quality']:.1f} | {r['reverse_kl']:.4f} "
              f"| {spread} | {r['diversity']:.3f} | {r['wall']:.0f} |")
    if args.images:
        for r in rows:
            if r["loss"] == "minimax":
                shutil.copy(Path(r["run"]) / "samples.png", Path(args.images) / f"{args.data}-minimax.png")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
