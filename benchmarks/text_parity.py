"""Text in, text out: ``runtime.generate(text)`` against onnxruntime-genai with its tokenizer stream.

Usage: python benchmarks/text_parity.py [EXPORT ...] [--rounds 30] [--prompt "The re"] [--tokens 58]

Both run the same export folder: gentoolkit.runtime's ``generate(prompt, greedy=True,
max_new_tokens=58)`` (tokenize, decode, detokenize incrementally, return the text), and
onnxruntime-genai as its own examples drive it (``og.Tokenizer.encode``, a generator with
``min_length = max_length``, ``create_stream().decode`` of every token, the pieces joined). The two
take turns round by round (``gentoolkit.cli.bench.timed_together``); the ratio is paired by round.
Without a folder, it trains the default ``gpt`` (0.8M parameters) for 600 steps on ``pydoc`` and
exports it with each graph (``--graph traced`` and ``--graph fused``) to a temporary folder.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("exports", nargs="*")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--prompt", default="The re")
    ap.add_argument("--tokens", type=int, default=58)
    args = ap.parse_args()
    folders = [Path(p) for p in args.exports]
    if not folders:
        tmp = Path(tempfile.mkdtemp(prefix="text-parity-"))
        gentool = [sys.executable, "-m", "gentoolkit"]
        subprocess.run([*gentool, "train", "gpt", "--data", "pydoc", "--steps", "600", "-o", str(tmp / "run")],
                       check=True, capture_output=True)
        for graph in ("traced", "fused"):
            subprocess.run([*gentool, "export", str(tmp / "run"), "-o", str(tmp / graph), "--graph", graph],
                           check=True, capture_output=True)
            folders.append(tmp / graph)
    n = args.tokens
    print(f"prompt {args.prompt!r}, {n} greedy tokens, {args.rounds} rounds")
    print("| folder | graph | runtime tokens/s | onnxruntime-genai tokens/s | runtime against onnxruntime-genai, round by "
          "round | same text |")
    print("|---|---|---|---|---|---|")
    for folder in folders:
        print(compare(folder, args.prompt, n, args.rounds))


def compare(folder: Path, prompt: str, n: int, rounds_n: int) -> str:
    """One table row: the runtime and onnxruntime-genai taking turns on ``folder``."""
    import json

    import numpy as np
    import onnxruntime_genai as og

    from gentoolkit.cli.bench import paired_ratio, timed_together
    from gentoolkit.runtime import load

    lm = load(folder)
    model = og.Model(str(folder))
    tokenizer = og.Tokenizer(model)

    def ours():
        return lm.generate(prompt, greedy=True, max_new_tokens=n)

    def genai():
        ids = tokenizer.encode(prompt)
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(ids) + n, min_length=len(ids) + n, do_sample=False)
        gen = og.Generator(model, params)
        gen.append_tokens(np.asarray(ids, dtype=np.int32))
        stream = tokenizer.create_stream()
        out = []
        while not gen.is_done():
            gen.generate_next_token()
            out.append(stream.decode(int(gen.get_next_tokens()[0])))
        return "".join(out)

    made = len(lm.tokenizer.encode(prompt + ours())) - len(lm.tokenizer.encode(prompt))
    note = f" (the runtime stopped at an end token after about {made} tokens)" if made < n else ""
    rounds: dict[str, list[float]] = {}
    times = timed_together([("runtime", ours), ("genai", genai)], rounds_n, rounds=rounds)
    r = paired_ratio(rounds["genai"], rounds["runtime"])
    graph = json.loads((folder / "gentoolkit.json").read_text()).get("graph", "traced")
    return (f"| {folder} | {graph} | {min(made, n) / times['runtime']:.0f} | {n / times['genai']:.0f} | "
            f"{r['median']:.3f}x ({r['low']:.3f}-{r['high']:.3f}) | {ours() == genai()}{note} |")


if __name__ == "__main__":
    main()
