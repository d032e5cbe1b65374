"""Per text token and per GAN sample in the browser (onnxruntime-web, headless chromium), in Node
(onnxruntime-node, the JS clients) and in Python (gentoolkit.runtime), side by side in one run.

Usage: python benchmarks/web_runtime.py [--repeat 5] [--node-modules tests/js/node_modules] [--real [NAMES]]
                                       [--graph traced|fused|traced,fused] [--work DIR]

The models are the families' default shapes (gpt and llama 0.8M parameters, the ring GAN, the
digits DCGAN) and a 10M-parameter gpt (6 layers, 384 wide), trained two steps: speed does not
depend on the weights. Text: greedy, 64 new tokens after "The ", fp32, batch 1, in the graph
--graph names: traced (the transformers.js layout's default, and this script's), fused (gentool
export's default: GroupQueryAttention), or both side by side (a fused model's name ends in -fused). GAN: one pass of 1000 points or 16 images. Each path's median of
--repeat runs; the ratio is to Python's on the same model. Needs `npm ci` in tests/js and
Debian's chromium. ``--real`` adds a random-init Llama in SmolLM2-135M's shape (built with transformers, nothing
downloaded), imported and exported in the transformers.js layout as fp32, q8 and q4 (the embedding
in int4 too, 90 MB; with onnxruntime's accuracy levels 4 and 0); ``--real fp32,q4`` builds only those.
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
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
JS = ROOT / "tests" / "js"
PROMPT, NEW = "The ", 64
TEXT = {"gpt": ("gpt", []), "llama": ("llama", []),
        "gpt-10M": ("gpt", ["model.n_layer=6", "model.n_head=6", "model.n_embd=384", "model.block_size=256"])}
GANS = {"gan": ("gan", ["--data", "ring"], 1000), "dcgan": ("dcgan", [], 16)}
REAL = {"fp32": ["--variants", "fp32"], "q8": ["--variants", "q8"],
        "q4": ["--variants", "q4", "--quantize-embedding"],
        "q4-acc0": ["--variants", "q4", "--quantize-embedding", "--accuracy-level", "0"]}
GRAPHS = ("traced", "fused")


def named(name: str, graph: str) -> str:
    return name if graph == "traced" else f"{name}-{graph}"


def gentool(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "gentoolkit", *args], check=True, capture_output=True, cwd=ROOT)


def build_real(base: Path, variants: list[str], graphs: list[str]) -> dict[str, Path]:
    """SmolLM2-135M's shape, random init, as one transformers.js folder per weight format and graph."""
    from pydoc_data.topics import topics

    sys.path.insert(0, str(ROOT))
    from benchmarks.hf_import import SMOLLM2_135M
    from tests.hf_models import llama

    hf, run = base / "hf-135m", base / "run-135m"
    if not (run / "model.safetensors").is_file():
        llama(hf, "\n\n".join(topics[k] for k in sorted(topics)), dtype="bfloat16", **SMOLLM2_135M)
        gentool("import", str(hf), "-o", str(run))
    out = {}
    for variant in variants:
        for graph in graphs:
            name = named(f"135M-{variant}", graph)
            if not (base / name / "gentoolkit.json").is_file():
                gentool("export", str(run), "-o", str(base / name), "--layout", "transformers.js", *REAL[variant],
                        "--graph", graph, "--no-validate")
            out[name] = base / name
    return out


def build(base: Path, real: list[str] | None = None, graphs: tuple[str, ...] = ("traced",)) -> dict[str, Path]:
    from pydoc_data.topics import topics

    corpus = base / "corpus.txt"
    corpus.write_text("\n\n".join(topics[k] for k in sorted(topics))[:200_000], encoding="utf-8")
    out = {}
    for small, (model, sets) in list(TEXT.items()):
        del TEXT[small]  # one entry per graph, each graph of a model beside the other
        run = base / f"run-{small}"
        for graph in graphs:
            name = named(small, graph)
            TEXT[name] = (model, sets)
            out[name] = base / name
            if (base / name / "gentoolkit.json").is_file():  # --work: built by an earlier run
                continue
            if not (run / "model.safetensors").is_file():
                gentool("train", model, "--data", str(corpus), "--out", str(run), "--steps", "2", "--device", "cpu",
                        *[a for s in sets for a in ("--set", s)])
            gentool("export", str(run), "-o", str(base / name), "--layout", "transformers.js", "--variants", "fp32",
                    "--graph", graph)
    for name, (model, data, _) in GANS.items():
        out[name] = base / name
        if (base / name / "gentoolkit.json").is_file():
            continue
        run = base / f"run-{name}"
        gentool("train", model, *data, "--out", str(run), "--steps", "2", "--device", "cpu")
        gentool("export", str(run), "-o", str(base / name))
        out[name] = base / name
    if real:
        for name, folder in build_real(base, real, list(graphs)).items():
            TEXT[name] = ("llama", [])
            out[name] = folder
    return out


def python_figures(folders: dict[str, Path], repeat: int) -> dict[str, float]:
    from gentoolkit.runtime import load
    from gentoolkit_autoregressive.decode import generate_tokens
    from gentoolkit_autoregressive.samplers import make_greedy

    res = {}
    for name in TEXT:
        lm = load(folders[name], threads=1)
        ids = lm.tokenizer.encode(PROMPT)
        per = []
        for _ in range(repeat):
            steps = generate_tokens(lm.decoder, [ids], sampler=make_greedy(), max_new_tokens=NEW,
                                    pad_id=lm.tokenizer.pad_id, eos_id=None)
            next(steps)
            t1 = time.perf_counter()
            n = sum(1 for _ in steps)
            per.append(1000 * (time.perf_counter() - t1) / n)
        res[name] = statistics.median(per)
    for name, (_, _, n) in GANS.items():
        gan = load(folders[name], threads=1)
        z = np.random.default_rng(0).standard_normal((n, gan.z_dim)).astype(np.float32)
        gan.generate_from(z)
        per = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            gan.generate_from(z)
            per.append(1000 * (time.perf_counter() - t0) / n)
        res[name] = statistics.median(per)
    return res


def node_figures(folders: dict[str, Path], repeat: int) -> dict[str, float]:
    lm, gan = ROOT / "plugins/gentoolkit_autoregressive/web/lm.mjs", ROOT / "plugins/gentoolkit_gan/web/gan.mjs"
    res = {}
    for name in TEXT:
        runs = [json.loads(subprocess.run(["node", str(lm), str(folders[name]), PROMPT, "--max-new-tokens", str(NEW),
                                           "--json"], cwd=JS, check=True, capture_output=True, text=True).stdout)
                for _ in range(repeat)]
        res[name] = statistics.median(r["ms_per_token"] for r in runs)
    for name, (_, _, n) in GANS.items():
        runs = [json.loads(subprocess.run(["node", str(gan), str(folders[name]), "--n", str(n), "--json"], cwd=JS,
                                          check=True, capture_output=True, text=True).stdout) for _ in range(repeat)]
        res[name] = statistics.median(r["ms_per_sample"] for r in runs)  # a fresh process: the first pass
    return res


def browser_figures(folders: dict[str, Path], base: Path, repeat: int, node_modules: str, isolate: bool) -> tuple[dict, str]:
    """The demo in headless chromium: cross-origin isolated (threads), or not (one thread)."""
    import threading

    from gentoolkit.web.demo import serve

    site = base / "site"
    gentool("demo", *map(str, folders.values()), "-o", str(site), "--node-modules", node_modules)
    got = {}
    ready = threading.Event()
    threading.Thread(target=serve, args=(site,), kwargs={"port": 0, "log": lambda m: None, "isolate": isolate,
                     "ready": lambda url: (got.setdefault("url", url), ready.set())}, daemon=True).start()
    ready.wait(30)
    cases = {"text": {n: {"prompt": PROMPT, "max_new_tokens": NEW} for n in TEXT},
             "gan": {n: {"n": k} for n, (_, _, k) in GANS.items()},
             "timing": {n: {"repeat": repeat} for n in [*TEXT, *GANS]}, "race": False}
    (base / "cases.json").write_text(json.dumps(cases))
    r = subprocess.run(["node", "browser.mjs", got["url"], str(base / "cases.json"), ""], cwd=JS, capture_output=True,
                       text=True, env={**os.environ, "BROWSER_TIMEOUT_MS": "900000"})
    if r.returncode:
        raise SystemExit(f"the browser run failed:\n{r.stderr[-3000:]}")
    out = json.loads(r.stdout.splitlines()[-1])
    res = {n: statistics.median(r["ms_per_token"] for r in out["timing"][n]) for n in TEXT}
    res.update({n: statistics.median(r["ms_per_sample"] for r in out["timing"][n]) for n in GANS})
    return res, out["status"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--node-modules", default=str(JS / "node_modules"))
    ap.add_argument("--real", nargs="?", const=",".join(REAL), metavar="NAMES",
                    help=f"add a 135M Llama (SmolLM2's shape) in these formats (default all: {','.join(REAL)})")
    ap.add_argument("--graph", default="traced", help="the text exports' graph: traced, fused, or traced,fused")
    ap.add_argument("--work", help="build here and reuse what an earlier run built (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.work or tmp)
        base.mkdir(parents=True, exist_ok=True)
        real = args.real.split(",") if args.real else None
        graphs = tuple(args.graph.split(","))
        if [g for g in graphs if g not in GRAPHS] or (real and [v for v in real if v not in REAL]):
            raise SystemExit(f"--graph takes {', '.join(GRAPHS)} and --real {', '.join(REAL)}, comma-separated")
        folders = build(base, real, graphs)
        py = python_figures(folders, args.repeat)
        nd = node_figures(folders, args.repeat)
        web1, status1 = browser_figures(folders, base, args.repeat, args.node_modules, isolate=False)
        web, status = browser_figures(folders, base, args.repeat, args.node_modules, isolate=True)
    print(f"browser: headless chromium ({status1}; isolated: {status.split(', ')[-1]}); Node: onnxruntime-node, "
          "1 thread; Python: gentoolkit.runtime, 1 thread")
    w = max(9, *map(len, TEXT))
    print(f"{'model':<{w}} {'what':<21} {'Python':>8} {'Node':>8} {'browser 1':>10} {'browser 2':>10} {'1 / Python':>11}")
    for name in [*TEXT, *GANS]:
        what = "ms per token" if name in TEXT else f"µs per sample ({GANS[name][2]})"
        k = 1 if name in TEXT else 1000
        print(f"{name:<{w}} {what:<21} {k * py[name]:>8.3f} {k * nd[name]:>8.3f} {k * web1[name]:>10.3f} "
              f"{k * web[name]:>10.3f} {web1[name] / py[name]:>10.1f}x")


if __name__ == "__main__":
    main()
