"""`dcgan` on scikit-learn's digits with the defaults: class coverage and class-histogram KL, and the time.

Usage: python benchmarks/dcgan_digits.py [--seed 0] [--out DIR]
Prints classes covered, class-histogram KL, confidence, classifier Fréchet distance, and precision, recall,
density and coverage on the classifier's features (k = 5, 2,500 samples a side).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="dcgan-digits-"))
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gentoolkit", "train", "dcgan", "--data", "digits", "--seed", str(args.seed),
                    "--out", str(out), "--device", "cpu"], check=True, capture_output=True)
    wall = time.perf_counter() - t
    res = json.loads(subprocess.run([sys.executable, "-m", "gentoolkit", "eval", str(out), "--json"], check=True,
                                    capture_output=True, text=True).stdout)
    print("| seed | classes | class KL | confidence | classifier Fréchet | precision | recall | density | coverage "
          "| diversity | classifier acc. | train wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.seed} | {res['classes']}/10 | {res['class_kl']:.4f} | {res['confidence']:.3f} "
          f"| {res['classifier_frechet']:.2f} | {res['precision']:.3f} | {res['recall']:.3f} | {res['density']:.3f} "
          f"| {res['coverage']:.3f} | {res['diversity']:.3f} | {res['classifier_accuracy']:.3f} | {wall:.0f} |")
    print(json.dumps({"run": str(out), "wall": wall, **res}))


if __name__ == "__main__":
    main()
