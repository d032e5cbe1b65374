"""One whole sample of each family, side by side in one run: what `gentool bench` prints.

Usage: python benchmarks/one_sample.py [--repeat 15] [--json FILE]

An autoregressive sample is 63 tokens (one network pass each, KV cache), a GAN sample one
pass, a diffusion sample (with gentoolkit-diffusion installed) 1,000 DDPM steps or 50
DDIM steps. Every family through gentoolkit.runtime at batch 1, one thread; the back
ends of a family take turns, so their ratios come from the same moments of the machine.
"""

from __future__ import annotations

import argparse
import json

from gentoolkit.cli.bench import print_tables, run_all
from gentoolkit.files import atomic_path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    res = run_all(args.repeat)
    print_tables(res)
    if args.json:
        with atomic_path(args.json) as tmp:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(res, fh, indent=2)


if __name__ == "__main__":
    main()
