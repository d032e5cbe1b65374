"""Export time and file size for run folders, in fp32, fp16 and int8, with what reduced precision cost.

Usage: python benchmarks/export_sizes.py RUN [RUN ...]
For each run: `gentool export` three times (fp32, --dtype fp16, --quantize int8), each validated,
and the quality the export reports through onnxruntime next to PyTorch (validation loss for
language models, sample metrics for GANs).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from gentoolkit.export import export
from gentoolkit.train.run import Run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    args = ap.parse_args()
    print("| run | model | kind | export s | model.onnx MB | max abs diff | quality in onnxruntime (PyTorch) |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for run in args.runs:
            name = Run.open(run).model_name
            for kind, kw in (("fp32", {}), ("fp16", {"dtype": "fp16"}), ("int8", {"quantize": "int8"})):
                out = Path(tmp) / f"{Path(run).name}-{kind}"
                t = time.perf_counter()
                m = export(run, out, log=lambda s: None, **kw)
                secs = time.perf_counter() - t
                size = (out / "model.onnx").stat().st_size / 1e6
                diff = max(m["validation"]["max_abs_diff"].values())
                q = m["validation"].get("quality", {})
                key = "val_loss" if "val_loss" in q.get("onnxruntime", {}) else next(
                    (k for k in ("high_quality", "class_kl", "diversity") if k in q.get("onnxruntime", {})), None)
                qual = (f"{key} {q['onnxruntime'][key]:.4f} ({q['pytorch'][key]:.4f})" if key else "-")
                print(f"| {Path(run).name} | {name} | {kind} | {secs:.1f} | {size:.2f} | {diff:.2g} | {qual} |")
    print(json.dumps({"runs": args.runs}))


if __name__ == "__main__":
    main()
