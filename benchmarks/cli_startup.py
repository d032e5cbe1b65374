"""How long `gentool --help` takes (and which heavy modules it imports). Goal: under 0.3 s.

Usage: python benchmarks/cli_startup.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "python -c pass (interpreter alone)": [sys.executable, "-c", "pass"],
    "gentool --help": [sys.executable, "-m", "gentoolkit", "--help"],
    "gentool models": [sys.executable, "-m", "gentoolkit", "models"],
    "python -c 'import torch' (for scale)": [sys.executable, "-c", "import torch"],
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    print("| command | median s | min s |")
    print("|---|---|---|")
    for name, cmd in CASES.items():
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times.append(time.perf_counter() - t)
        print(f"| {name} | {statistics.median(times):.3f} | {min(times):.3f} |")


if __name__ == "__main__":
    main()
