"""``gentool bench``: what one sample costs in each family and back end, side by side in one run.

Autoregressive: nanoGPT's CPU model size (4 layers, 4 heads, 128 wide, context 64,
65 symbols) with random weights (speed does not depend on training), greedy
decoding of 63 tokens from a 1-token prompt, repeated:

* PyTorch, recomputing the whole context each step (what nanoGPT's ``generate`` does),
* PyTorch with the KV cache (gentoolkit's run-folder sampling),
* gentoolkit.runtime (onnxruntime, KV cache, numpy sampling),
* onnxruntime-genai on the same export folder, when it is installed;

then the runtime and onnxruntime-genai again, sampling (temperature 0.8, top-k 40): what
most apps do, and where the runtime's per-token numpy work shows. Each runtime row is also
compared with its onnxruntime-genai row round by round (:func:`paired_ratio`).

GAN: the default ``gan`` generator, one sample (batch 1), PyTorch eager against
the runtime. Families from other plugins join through ``ModelSpec.bench``: a function
``bench(repeat) -> rows`` whose rows (``family``, ``backend``, ``ms_per_sample``,
``passes``; ``headline: True`` on the row for the side-by-side table) are printed
beside the built-ins. Last comes the time of ``import gentoolkit.runtime`` in a
fresh interpreter.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

NEW_TOKENS = 63
SAMPLED = {"temperature": 0.8, "top_k": 40}  # the sampled rows: a common setting, the same in both back ends
SAMPLED_NAME = "sampled (temperature 0.8, top-k 40)"


def timed_together(cases: list[tuple[str, Callable[[], Any]]], repeat: int,
                   first_calls: dict[str, float] | None = None,
                   rounds: dict[str, list[float]] | None = None) -> dict[str, float]:
    """Median seconds of each ``(name, fn)`` case in steady state, the cases taking turns, so that a
    slow moment of a shared machine hits all of them alike. A turn is two calls, the second one
    counted: a case run right after another one is slower (that one evicted its caches), more so
    for some back ends than for others, while an app that generates again and again runs warm.
    The medians of the first calls go to ``first_calls`` when given, and every counted time,
    round by round, to ``rounds`` (for :func:`paired_ratio`). The order of the turns is
    shuffled every round (seeded), never the same case twice in a row, so each case follows
    each other one alike. Plugins' ``bench`` functions use it too."""
    times: dict[str, list[float]] = {name: [] for name, _ in cases}
    firsts: dict[str, list[float]] = {name: [] for name, _ in cases}
    rng = random.Random(0)
    order, last = list(cases), None
    for _ in range(repeat):
        rng.shuffle(order)
        if len(order) > 1 and order[0] is last:
            order.append(order.pop(0))
        for name, fn in order:
            for kept in (firsts, times):
                t = time.perf_counter()
                fn()
                kept[name].append(time.perf_counter() - t)
        last = order[-1]
    if rounds is not None:
        rounds.update(times)
    if first_calls is not None:
        first_calls.update({name: statistics.median(ts) for name, ts in firsts.items()})
    return {name: statistics.median(ts) for name, ts in times.items()}


def paired_ratio(slower: list[float], faster: list[float], resamples: int = 2000) -> dict[str, float]:
    """How many times faster ``faster`` ran than ``slower``, round by round (the two took their turns in
    the same rounds of :func:`timed_together`): the median of the per-round ratios and a 95% bootstrap
    interval of that median (seeded). A ratio over 1 means ``faster`` was faster. Pairing by round
    cancels the machine's slow and fast moments, which move both alike."""
    import numpy as np

    ratios = np.asarray(slower) / np.asarray(faster)
    rng = np.random.default_rng(0)
    medians = np.median(ratios[rng.integers(0, len(ratios), (resamples, len(ratios)))], axis=1)
    low, high = np.quantile(medians, [0.025, 0.975])
    return {"median": float(np.median(ratios)), "low": float(low), "high": float(high), "rounds": len(ratios)}


def _ar_export(folder: Path):
    import torch

    from .config import build as build_config
    from .export import export
    from .plugins import get_model
    from .run import Run
    from .training import save_weights

    spec = get_model("gpt")
    tree = build_config(spec.config_sections, spec.presets["micro"],
                        sets=["data.tokenizer=char"])
    run_dir = folder / "run"
    run_dir.mkdir()
    torch.manual_seed(0)
    import string

    from gentoolkit_autoregressive.model import build
    from gentoolkit_autoregressive.tokenizers_ import char_tokenizer

    tok = char_tokenizer([string.ascii_letters + " .,;:!?'\n-&"])  # 63 characters + 2 special = 65 symbols
    tok.save(run_dir / "tokenizer.json")
    import dataclasses

    tree["model"] = dataclasses.replace(tree["model"], vocab_size=tok.vocab_size)
    # no training text: point the data at a file the char vocabulary cannot read, so the export skips its quality report
    tree["data"] = dataclasses.replace(tree["data"], path=str(run_dir / "tokenizer.json"))
    model = build(tree["model"]).eval()
    run = Run(run_dir)
    from .config import to_dict

    run.write_config({"model": "gpt", "family": "autoregressive", "plugin": spec.plugin, "config": to_dict(tree)})
    save_weights(run, {"": model})
    export(run_dir, folder / "export", log=lambda m: None)
    return model, tok, folder / "export"


def bench_autoregressive(repeat: int = 5) -> list[dict]:
    import numpy as np
    import torch

    from gentoolkit_autoregressive.sample import TorchDecoder
    from gentoolkit_autoregressive.samplers import make_greedy, make_sampler

    from .runtime import load
    from .runtime.generation import generate_tokens

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model, tok, export_dir = _ar_export(Path(tmp))
        block = model.config.block_size
        prompt = [tok.encode("T")[0]]

        @torch.no_grad()
        def full_recompute():  # nanoGPT's generate(): crop, full forward, last logits, argmax
            idx = torch.tensor([prompt])
            for _ in range(NEW_TOKENS):
                logits, _ = model(idx[:, -block:])
                idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
            return idx

        greedy = make_greedy()

        def torch_cached():
            return list(generate_tokens(TorchDecoder(model), [prompt], sampler=greedy, max_new_tokens=NEW_TOKENS,
                                        pad_id=tok.pad_id))

        lm = load(export_dir)

        def runtime(sampler):
            return lambda: list(generate_tokens(lm.decoder, [prompt], sampler=sampler, max_new_tokens=NEW_TOKENS,
                                                pad_id=tok.pad_id, seed=0))

        runtime_greedy, runtime_sampled = "gentoolkit.runtime (onnxruntime, KV cache)", f"gentoolkit.runtime, {SAMPLED_NAME}"
        cases = [("PyTorch, full recompute (nanoGPT generate)", full_recompute),
                 ("PyTorch, KV cache (gentool sample RUN)", torch_cached),
                 (runtime_greedy, runtime(greedy)), (runtime_sampled, runtime(make_sampler(**SAMPLED)))]
        pairs = {}  # a runtime row -> the onnxruntime-genai row it is compared with round by round
        try:
            import onnxruntime_genai as og

            og_model = og.Model(str(export_dir))

            def genai(**search):
                def run():
                    params = og.GeneratorParams(og_model)
                    # a seed, as the runtime is given one: unseeded, each Generator draws its own from
                    # std::random_device, which took 12 ms per Generator on one of our VMs (slow RDRAND);
                    # min_length: every token is generated, as the runtime here does not stop at the end token
                    n = len(prompt) + NEW_TOKENS
                    params.set_search_options(max_length=n, min_length=n, random_seed=0, **search)
                    gen = og.Generator(og_model, params)
                    gen.append_tokens(np.array(prompt, dtype=np.int32))
                    while not gen.is_done():
                        gen.generate_next_token()

                return run

            cases += [("onnxruntime-genai, same folder", genai(do_sample=False)),
                      (f"onnxruntime-genai, {SAMPLED_NAME}", genai(do_sample=True, **SAMPLED))]
            pairs = {runtime_greedy: cases[-2][0], runtime_sampled: cases[-1][0]}
        except ImportError:
            pass
        firsts: dict[str, float] = {}
        rounds: dict[str, list[float]] = {}
        for name, seconds in timed_together(cases, repeat, firsts, rounds).items():
            rows.append({"family": "autoregressive", "backend": name, "tokens_per_s": NEW_TOKENS / seconds,
                         "ms_per_sample": 1000 * seconds, "ms_first_call": 1000 * firsts[name]})
            if name in pairs:
                rows[-1]["vs_genai"] = paired_ratio(rounds[pairs[name]], rounds[name])
    return rows


def bench_gan(repeat: int = 200) -> list[dict]:
    import torch

    from .config import build as build_config
    from .export import export
    from .plugins import get_model
    from .run import Run
    from .runtime import load
    from .training import save_weights

    spec = get_model("gan")
    tree = build_config(spec.config_sections, sets=["model.data_dim=2"])
    from gentoolkit_gan.models import build

    torch.manual_seed(0)
    G, D = build(tree["model"])
    G_ema = G.eval()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        from .config import to_dict

        Run(run_dir).write_config({"model": "gan", "family": "gan", "plugin": spec.plugin, "config": to_dict(tree)})
        save_weights(Run(run_dir), {"G_ema": G_ema, "G": G, "D": D})
        export(run_dir, Path(tmp) / "export", log=lambda m: None)
        gan = load(Path(tmp) / "export")
        z = gan.latents(1, seed=0)
        zt = torch.from_numpy(z)

        @torch.no_grad()
        def eager():
            return G_ema(zt).numpy()

        cases = [("PyTorch eager, batch 1", eager), ("gentoolkit.runtime, batch 1", lambda: gan.generate_from(z))]
        for name, seconds in timed_together(cases, repeat).items():
            rows.append({"family": "gan", "backend": name, "ms_per_sample": 1000 * seconds,
                         "samples_per_s": 1 / seconds})
    return rows


def import_time(repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import gentoolkit.runtime"], check=True)
        times.append(time.perf_counter() - t)
    base = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        base.append(time.perf_counter() - t)
    return min(times) - min(base)


def bench_plugins(repeat: int = 5) -> list[dict]:
    """Rows from every model spec that declares ``bench`` (each function run once)."""
    from .plugins import get_registries
    from .registry import resolve

    rows, seen = [], set()
    for spec in get_registries().models:
        if spec.bench is None or spec.bench in seen:
            continue
        seen.add(spec.bench)
        for row in resolve(spec.bench)(repeat):
            rows.append({"family": spec.family, "plugin": spec.plugin, **row})
    return rows


def one_sample(res: dict) -> list[dict]:
    """The side-by-side table: one whole sample of each family through gentoolkit.runtime."""
    rows = []
    ar = next((r for r in res["autoregressive"] if r["backend"].startswith("gentoolkit.runtime")), None)
    if ar:
        rows.append({"family": "autoregressive", "what": f"gpt, {NEW_TOKENS} tokens", "passes": NEW_TOKENS,
                     "ms_per_sample": ar["ms_per_sample"]})
    gan = next((r for r in res["gan"] if r["backend"].startswith("gentoolkit.runtime")), None)
    if gan:
        rows.append({"family": "gan", "what": "gan, one 2-D point", "passes": 1, "ms_per_sample": gan["ms_per_sample"]})
    for r in res.get("plugins", []):
        if r.get("headline"):
            rows.append({"family": r["family"], "what": r.get("what", r["backend"]), "passes": r.get("passes"),
                         "ms_per_sample": r["ms_per_sample"]})
    return rows


def run_all(repeat: int = 5) -> dict:
    import torch

    torch.set_num_threads(1)  # like the runtime's session: one thread is as fast for models this small
    res = {"autoregressive": bench_autoregressive(repeat), "gan": bench_gan(), "plugins": bench_plugins(repeat)}
    res["one_sample"] = one_sample(res)
    res["import_runtime_s"] = import_time()
    return res


def print_tables(res: dict) -> None:
    ar = res["autoregressive"]
    base = next(r for r in ar if "full recompute" in r["backend"])["tokens_per_s"]
    print(f"Autoregressive, {NEW_TOKENS} new tokens (greedy unless the row says sampled), nanoGPT CPU size"
          " (4x128, context 64), 1 thread")
    print("| back end | tokens/s | ms per sample | vs full recompute | ms, first call after another back end |")
    print("|---|---|---|---|---|")
    for r in ar:
        print(f"| {r['backend']} | {r['tokens_per_s']:.0f} | {r['ms_per_sample']:.1f} | {r['tokens_per_s'] / base:.1f}x"
              f" | {r['ms_first_call']:.1f} |")
    for r in ar:
        if "vs_genai" in r:
            v = r["vs_genai"]
            print(f"\n{r['backend']} against onnxruntime-genai, round by round: {v['median']:.3f}x its speed"
                  f" (95% interval of the median {v['low']:.3f}-{v['high']:.3f}, {v['rounds']} rounds; over 1 = faster)")
    print()
    print("GAN generator (default gan), one sample")
    print("| back end | ms per sample | samples/s |")
    print("|---|---|---|")
    for r in res["gan"]:
        print(f"| {r['backend']} | {r['ms_per_sample']:.3f} | {r['samples_per_s']:.0f} |")
    print()
    if res.get("plugins"):
        print("Plugin families")
        print("| family | back end | ms per sample | passes |")
        print("|---|---|---|---|")
        for r in res["plugins"]:
            print(f"| {r['family']} | {r['backend']} | {r['ms_per_sample']:.3f} | {r.get('passes', '')} |")
        print()
    print("One whole sample, each family through gentoolkit.runtime (batch 1)")
    print("| family | sample | network passes | ms per sample |")
    print("|---|---|---|---|")
    for r in res["one_sample"]:
        print(f"| {r['family']} | {r['what']} | {r['passes']} | {r['ms_per_sample']:.3f} |")
    print()
    print(f"import gentoolkit.runtime: {res['import_runtime_s']:.3f} s (beyond the interpreter's own start)")
