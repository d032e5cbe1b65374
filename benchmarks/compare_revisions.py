"""Decode speed of this checkout against another revision, side by side in one run.

Usage: python benchmarks/compare_revisions.py --base REV [--rounds 12] [--repeat 20] [--export DIR] [--threads N]

The other revision is checked out in a temporary git worktree. One export (nanoGPT's CPU
size, 0.8M parameters, 65 symbols, random weights: what `gentool bench` uses) is made with this
checkout, or ``--export`` names one (the real SmolLM2-135M's, for the 135M row); both
revisions' runtimes then decode it, in fresh interpreters that take turns (base, this, base,
this, ...), so a slow moment of the machine falls on both alike. Each interpreter times 63
greedy tokens and 63 sampled ones (temperature 0.8, top-k 40) from a one-token prompt, the two
taking turns ``--repeat`` times, and reports the median microseconds per token. The table gives
the median of the per-round ratios with a 95% bootstrap interval: over 1 means this checkout is
faster.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SNIPPET = r"""
import json, statistics, sys, time
# PYTHONPATH names the revision; an editable install's finder would serve this checkout's modules to it
sys.meta_path = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "") + repr(f)]
import numpy as np
from gentoolkit.runtime import load
try:
    from gentoolkit_autoregressive.decode import generate_tokens
except ImportError:  # revisions before the decode loop moved into its family
    from gentoolkit.runtime.generation import generate_tokens
try:
    from gentoolkit_autoregressive.samplers import make_greedy, make_sampler
except ImportError:  # revisions before the samplers moved into their families
    from gentoolkit_samplers.decoding import make_greedy, make_sampler
lm = load(sys.argv[1], threads=int(sys.argv[3]) or None)
tok = lm.tokenizer
prompt = [tok.encode("T")[0]]
cases = {"greedy": make_greedy(), "sampled": make_sampler(temperature=0.8, top_k=40)}
times = {k: [] for k in cases}
for rep in range(int(sys.argv[2]) + 2):
    for name, s in cases.items():
        t = time.perf_counter()
        for _ in generate_tokens(lm.decoder, [prompt], sampler=s, max_new_tokens=63, pad_id=tok.pad_id, seed=0):
            pass
        if rep >= 2:
            times[name].append((time.perf_counter() - t) / 63 * 1e6)
print(json.dumps({k: statistics.median(v) for k, v in times.items()}))
"""


def make_export(folder: Path) -> Path:
    from gentoolkit_autoregressive.bench import export_for_bench

    _, _, export = export_for_bench(folder)
    return export


def run(root: Path, export: Path, repeat: int, threads: int = 0) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{root / 'plugins'}"}
    out = subprocess.run([sys.executable, "-c", SNIPPET, str(export), str(repeat), str(threads)], env=env,
                         cwd=tempfile.gettempdir(),
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"the runtime of {root} failed:\n{out.stderr}")
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="the revision to compare with (a commit, tag or branch)")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--export", type=Path, help="an export folder to decode (default: a new 0.8M one)")
    ap.add_argument("--threads", type=int, default=0,
                    help="onnxruntime's threads (default 0: the runtime's own choice, all cores past 50 MB)")
    args = ap.parse_args()
    import numpy as np

    from gentoolkit.cli.bench import paired_ratio

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base), args.base], check=True)
        try:
            export = args.export.resolve() if args.export else make_export(Path(tmp))
            rows = {"base": [], "head": []}
            for r in range(args.rounds):
                for who, root in ([("base", base), ("head", ROOT)] if r % 2 == 0 else [("head", ROOT), ("base", base)]):
                    rows[who].append(run(root, export, args.repeat, args.threads))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=True)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    print(f"{args.rounds} rounds, {args.repeat} turns each, threads {args.threads or 'default'}; this checkout ({head.strip()}, with uncommitted changes if any) "
          f"against {args.base}")
    print("| decoding | base µs/token | this µs/token | this / base speed (median of rounds, 95% interval) |")
    print("|---|---|---|---|")
    for case in ("greedy", "sampled"):
        b = [row[case] for row in rows["base"]]
        h = [row[case] for row in rows["head"]]
        v = paired_ratio(b, h)
        print(f"| {case} | {np.median(b):.1f} | {np.median(h):.1f} | {v['median']:.3f} ({v['low']:.3f}-{v['high']:.3f}) |")


if __name__ == "__main__":
    main()
