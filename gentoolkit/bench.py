"""``gentool bench``: what one sample costs in each family and back end, side by side in one run.

Every family that registers ``ModelSpec.bench`` brings its own rows: a function
``bench(repeat) -> {"title": str, "rows": [row, ...]}`` (a bare list of rows also works) where a
row has ``backend`` and ``ms_per_sample`` and any other numbers the family reports
(``tokens_per_s``, a ratio as ``{"median", "low", "high", "rounds"}`` from :func:`paired_ratio`);
``headline: True`` (with ``what`` and ``passes``) puts a row in the side-by-side table of one
whole sample per family. The built-in families time theirs the same way, through
:func:`timed_together`. Last comes the time of ``import gentoolkit.runtime`` in a fresh
interpreter.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


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


def bench_families(repeat: int = 5) -> dict[str, dict]:
    """``{family: {"title", "rows"}}`` from every model spec that declares ``bench`` (each function run once)."""
    from .plugins import get_registries
    from .registry import resolve

    out: dict[str, dict] = {}
    seen = set()
    for spec in sorted(get_registries().models, key=lambda s: (s.family, s.name)):
        if spec.bench is None or spec.bench in seen:
            continue
        seen.add(spec.bench)
        got = resolve(spec.bench)(repeat)
        table = got if isinstance(got, dict) else {"title": spec.family, "rows": got}
        family = out.setdefault(spec.family, {"title": table.get("title", spec.family), "plugin": spec.plugin,
                                              "rows": []})
        family["rows"].extend(table["rows"])
    return out


def one_sample(families: dict[str, dict]) -> list[dict]:
    """The side-by-side table: one whole sample of each family through gentoolkit.runtime (the headline rows)."""
    return [{"family": family, "what": r.get("what", r["backend"]), "passes": r.get("passes"),
             "ms_per_sample": r["ms_per_sample"]}
            for family, table in families.items() for r in table["rows"] if r.get("headline")]


def run_all(repeat: int = 5) -> dict:
    import torch

    torch.set_num_threads(1)  # like the runtime's session: one thread is as fast for models this small
    families = bench_families(repeat)
    return {"families": families, "one_sample": one_sample(families), "import_runtime_s": import_time()}


_LABELS = {"ms_per_sample": "ms per sample", "tokens_per_s": "tokens/s", "samples_per_s": "samples/s",
           "ms_first_call": "ms, first call after another back end", "x_full_recompute": "vs full recompute",
           "vs_genai": "against onnxruntime-genai, round by round (over 1 = faster)"}
_HIDDEN = {"backend", "headline", "what", "passes", "family", "plugin"}


def _cell(key: str, value: Any) -> str:
    if isinstance(value, dict) and {"median", "low", "high"} <= set(value):
        return f"{value['median']:.3f}x ({value['low']:.3f}-{value['high']:.3f}, {value.get('rounds', '?')} rounds)"
    if key.startswith("x_") and isinstance(value, (int, float)):
        return f"{value:.1f}x"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"
    return "" if value is None else str(value)


def _label(key: str) -> str:
    if key in _LABELS:
        return _LABELS[key]
    if key.startswith("vs_"):
        return f"speed against {key[3:]}, round by round (over 1 = faster)"
    return key.replace("_per_s", "/s").replace("_", " ")


def print_tables(res: dict) -> None:
    for table in res["families"].values():
        rows = table["rows"]
        keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in _HIDDEN]
        print(table["title"])
        print("| back end | " + " | ".join(_label(k) for k in keys) + " |")
        print("|---|" + "---|" * len(keys))
        for r in rows:
            print(f"| {r['backend']} | " + " | ".join(_cell(k, r.get(k)) for k in keys) + " |")
        print()
    print("One whole sample, each family through gentoolkit.runtime (batch 1)")
    print("| family | sample | network passes | ms per sample |")
    print("|---|---|---|---|")
    for r in res["one_sample"]:
        print(f"| {r['family']} | {r['what']} | {r['passes']} | {r['ms_per_sample']:.3f} |")
    print()
    print(f"import gentoolkit.runtime: {res['import_runtime_s']:.3f} s (beyond the interpreter's own start)")
