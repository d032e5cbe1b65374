"""Which onnxruntime releases run each kind of export: the table behind the manifest's ``onnxruntime``.

Usage: python benchmarks/ort_compat.py [--versions 1.19.2,1.20.1,...] [--cache DIR] [--work DIR]

Trains a tiny llama and gpt (or reuses them from ``--work``), exports each in every graph and weight
format the toolkit writes (traced and fused; fp32, fp16, int8, int4, int4 with the embedding
quantized; dynamic int8), then, for every onnxruntime release named, installs that release's wheel
into ``--cache`` (``pip install --no-deps --target``; nothing else is downloaded) and runs every
export's validation cases in it, in a fresh interpreter that finds that release first on its path.
Each cell is the largest difference of the logits from PyTorch's across the cases, relative to the
logits' largest magnitude, or why the release refused the graph; and whether the release's
version is at least the manifest's ``onnxruntime`` (the floor the export claims). A claim is
right when every release at or above it runs the export and the one below it does not (or is
untested). Releases before 1.19 have no wheel built against numpy 2 and are not tried.
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
VERSIONS = ("1.19.2", "1.20.1", "1.21.1", "1.22.1", "1.23.2", "1.24.4", "1.28.0", "1.31.1", "1.32.0")
TINY = {"llama": ["model.n_layer=2", "model.n_head=2", "model.n_kv_head=1", "model.n_embd=32", "model.block_size=32"],
        "gpt": ["model.n_layer=2", "model.n_head=2", "model.n_embd=32", "model.block_size=32"]}
EXPORTS = {  # name -> gentool export options
    "traced-fp32": ["--graph", "traced"],
    "traced-fp16": ["--graph", "traced", "--dtype", "fp16"],
    "traced-q8": ["--graph", "traced", "--quantize", "int8"],
    "fused-fp32": [],
    "fused-fp16": ["--dtype", "fp16"],
    "fused-int8": ["--dtype", "int8"],
    "fused-int4": ["--dtype", "int4"],
    "fused-int4-emb": ["--dtype", "int4", "--quantize-embedding"],
}

CHECK = r"""
import json, sys
import numpy as np
import onnxruntime as ort
from gentoolkit.export import torch_runner
from gentoolkit.plugin.specs import resolve
from gentoolkit.plugin.manager import get_model
from gentoolkit.train.run import Run
ort.set_default_logger_severity(3)
run_path, folders = sys.argv[1], sys.argv[2:]
run = Run.open(run_path)
plan = resolve(get_model(run.model_name).export)(run)
pt = torch_runner(plan)
ref = {name: case(pt) for name, case in plan.cases}
out = {"version": ort.__version__}
for folder in folders:
    manifest = json.load(open(folder + "/gentoolkit.json"))
    try:
        sess = ort.InferenceSession(folder + "/model.onnx", providers=["CPUExecutionProvider"])
    except Exception as exc:
        out[folder] = {"error": " ".join(str(exc).split())[:160], "floor": manifest.get("onnxruntime")}
        continue
    names = [o.name for o in sess.get_outputs()]
    wanted = {i.name for i in sess.get_inputs()}
    runner = lambda feeds: dict(zip(names, sess.run(None, {k: v for k, v in feeds.items() if k in wanted})))
    worst = 0.0
    try:
        for name, case in plan.cases:
            for a, b in zip(ref[name], case(runner)):
                scale = max(float(np.abs(a["logits"]).max()), 1e-6)
                worst = max(worst, float(np.abs(a["logits"] - b["logits"]).max()) / scale)
        out[folder] = {"rel": worst, "floor": manifest.get("onnxruntime")}
    except Exception as exc:
        out[folder] = {"error": "run: " + " ".join(str(exc).split())[:150], "floor": manifest.get("onnxruntime")}
print(json.dumps(out))
"""


def sh(*cmd: str, env=None) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return r.stdout


def version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split(".")[:3] if x.isdigit())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--versions", default=",".join(VERSIONS))
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/gentoolkit-onnxruntime"))
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="ort-compat-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.txt"
    if not corpus.exists():
        from pydoc_data.topics import topics

        corpus.write_text("\n\n".join(topics[k] for k in sorted(topics))[:60_000], encoding="utf-8")
    gentool = [sys.executable, "-m", "gentoolkit"]
    folders: dict[str, list[str]] = {}
    for model, sets in TINY.items():
        run = work / model
        if not (run / "config.json").exists():
            sh(*gentool, "train", model, "--data", str(corpus), "--out", str(run), "--steps", "30", "--quiet",
               *[a for s in sets for a in ("--set", s)])
        for name, opts in EXPORTS.items():
            if model == "gpt" and name.startswith("fused-int4-emb"):
                continue
            out = work / f"{model}-{name}"
            if not (out / "gentoolkit.json").exists():
                sh(*gentool, "export", str(run), "-o", str(out), *opts)
            folders.setdefault(model, []).append(str(out))
    results: dict[str, dict] = {}
    versions = sorted(args.versions.split(","), key=lambda v: v != _installed())  # the installed one first
    for version in versions:
        target = Path(args.cache) / version
        if version != _installed() and not (target / "onnxruntime").is_dir():
            sh(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
               f"onnxruntime=={version}")
        env = dict(os.environ)
        if version != _installed():
            env["PYTHONPATH"] = os.pathsep.join([str(target), str(ROOT)])
        for model, outs in folders.items():
            r = subprocess.run([sys.executable, "-c", CHECK, str(work / model), *outs], capture_output=True,
                               text=True, env=env, cwd=ROOT)
            line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
            if r.returncode or not line.startswith("{"):
                results.setdefault(version, {})[model] = {"import": (r.stderr.strip().splitlines() or ["?"])[-1]}
                continue
            results.setdefault(version, {}).update(json.loads(line))
    names = [o for outs in folders.values() for o in outs]
    print(f"\n| export | floor | {' | '.join(args.versions.split(','))} |")
    print("|---|---|" + "---|" * len(args.versions.split(",")))
    for folder in names:
        floor = json.loads((Path(folder) / "gentoolkit.json").read_text()).get("onnxruntime")
        cells = []
        for version in args.versions.split(","):
            cell = results.get(version, {}).get(folder)
            if cell is None:
                cells.append("not run")
            elif "error" in cell:
                cells.append("refused" + (" (below floor)" if floor and version_key(version) < version_key(floor)
                                          else " **ABOVE FLOOR**"))
            else:
                own = results.get(_installed(), {}).get(folder, {}).get("rel")  # the installed release's own
                same = cell["rel"] < 1e-3 or (own is not None and abs(cell["rel"] - own) < 1e-3)
                ok = "ok" if same else f"**differs** ({cell['rel']:.1e} vs {own})"
                below = floor and version_key(version) < version_key(floor)
                cells.append(f"{ok} {cell['rel']:.0e}" + (" (runs below floor)" if below else ""))
        print(f"| {Path(folder).name} | {floor} | {' | '.join(cells)} |")
    print(f"\nwork folder: {work}")


def _installed() -> str:
    import onnxruntime

    return onnxruntime.__version__


if __name__ == "__main__":
    main()
