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
    from gentoolkit.plugin.manager import get_registries
    from gentoolkit.plugin.specs import resolve

    out: dict[str, dict] = {}
    seen = set()
    for spec in sorted(get_registries().models, key=lambda s: (s.family, s.name)):
        if spec.tools.bench is None or spec.tools.bench in seen:
            continue
        seen.add(spec.tools.bench)
        got = resolve(spec.tools.bench)(repeat)
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


# --- gentool bench PATH...: the user's own exports and runs ---------------------------------------------
# Each path is timed in its own worker process (``python -m gentoolkit.cli.bench --worker``), so that each
# one's peak memory is its own and an export's worker never imports torch. The parent sends one JSON
# line per turn and the worker answers one; the turns of all paths and cases take their places in one
# shuffled order per round, as in :func:`timed_together`.

PATH_DEFAULTS = {"prompt_tokens": 32, "new_tokens": 128, "first_token_prompt": 512, "batch": 256}


def _rss_mb() -> float:
    """This process's peak resident memory in MB: Linux's VmHWM, which starts again at exec (ru_maxrss
    keeps the parent's peak at the fork, so every worker would report at least the parent's)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 1024 ** 2)


def path_cases(path: str, options: dict[str, Any]) -> tuple[str, list[tuple[str, Callable[[], dict]]]]:
    """(what the path is, its family's timing cases): an export through gentoolkit.runtime, a run
    folder through its model's PyTorch code."""
    from pathlib import Path

    from gentoolkit.errors import GentoolError
    from gentoolkit.plugin.manager import get_model, get_registries
    from gentoolkit.plugin.specs import resolve
    from gentoolkit.runtime.folder import is_export
    from gentoolkit.train.run import Run

    if not Path(path).exists():
        raise GentoolError(f"{path!r} does not exist; give export folders or run folders to time")
    threads = options.get("threads")
    if is_export(path):
        from gentoolkit.runtime import load

        driver = load(path, threads=threads)
        spec = get_registries(commands=False).runtimes.get(driver.family)
        what, ref = f"export ({driver.manifest.get('model')}, {_weights(driver.manifest)})", spec.timing
    else:
        import torch

        torch.set_num_threads(threads or 1)  # like the runtime's session
        run = Run.open(path)
        spec = get_model(run.model_name)
        what, ref, driver = f"run ({spec.name}, PyTorch)", spec.tools.timing, run
    if ref is None:
        raise GentoolError(f"family {spec.name!r} (plugin {spec.plugin!r}) gives gentool bench no cases to time")
    return what, resolve(ref)(driver, options)


def _weights(manifest: dict[str, Any]) -> str:
    w = manifest.get("weights") if isinstance(manifest.get("weights"), dict) else {}
    return str(w.get("format") or manifest.get("dtype") or "fp32")


def worker_main() -> None:
    """The worker's side: a request line, a ready line, then one line per turn until ``{"done": true}``."""
    import json
    import os

    from gentoolkit.errors import GentoolError
    from gentoolkit.plugin.specs import resolve

    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the protocol

    def send(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")

    req = json.loads(sys.stdin.readline())
    try:
        what, cases = resolve(req["cases"])(req["arg"], req["options"])
    except GentoolError as exc:
        send({"error": str(exc)})
        return
    fns = dict(cases)
    send({"what": what, "cases": [name for name, _ in cases], "rss_mb": _rss_mb(), "torch": "torch" in sys.modules})
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("done"):
            break
        fn = fns[msg["case"]]
        t = time.perf_counter()
        fn()
        first = time.perf_counter() - t
        t = time.perf_counter()
        metrics = fn() or {}
        send({"first_s": first, "s": time.perf_counter() - t, "metrics": metrics})
    send({"peak_rss_mb": _rss_mb()})


class _Worker:
    def __init__(self, label: str, cases: str, arg: Any, options: dict[str, Any]):
        import os
        import tempfile

        self.label = label
        self.err = tempfile.TemporaryFile()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "gentoolkit.cli.bench", "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.err, text=True, env=env)
        try:
            self.ask({"cases": cases, "arg": arg, "options": options})
            ready = self.read()
        except BaseException:
            self.close()
            raise
        if "error" in ready:
            self.close()
            from gentoolkit.errors import GentoolError

            raise GentoolError(ready["error"])
        self.what, self.cases, self.start_rss, self.torch = ready["what"], ready["cases"], ready["rss_mb"], ready["torch"]

    def ask(self, msg: dict) -> None:
        import json

        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()

    def read(self) -> dict:
        import json

        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self.err.seek(0)
            tail = [t for t in self.err.read().decode("utf-8", "replace").splitlines() if t.strip()]
            from gentoolkit.errors import GentoolError

            raise GentoolError(f"timing {self.label} stopped (exit {self.proc.returncode}): "
                               f"{tail[-1] if tail else 'no message'}")
        return json.loads(line)

    def turn(self, case: str) -> dict:
        self.ask({"case": case})
        return self.read()

    def finish(self) -> float:
        self.ask({"done": True})
        peak = self.read()["peak_rss_mb"]
        self.close()
        return peak

    def close(self) -> None:
        if self.err.closed:
            return
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.err.close()


def bench_targets(targets: list[tuple], options: dict[str, Any], repeat: int) -> list[dict]:
    """Time ``(label, cases ref, arg)`` targets side by side, each in its own worker: the rows of
    every target's cases with the medians of what each case measured, the first call, the peak RSS of
    the target's process, and the round-by-round speed against the first target with the same case
    (or, given a fourth element, the target of that label)
    and, where the case returns ``tokens`` after the same ``prompt``, the share of tokens equal to that
    target's."""
    import statistics

    workers: list[_Worker] = []
    try:
        for label, ref, arg, *_ in targets:
            workers.append(_Worker(label, ref, arg, options))
        jobs = [(i, case) for i, w in enumerate(workers) for case in w.cases]
        times: dict[tuple[int, str], list[float]] = {job: [] for job in jobs}
        firsts: dict[tuple[int, str], list[float]] = {job: [] for job in jobs}
        metrics: dict[tuple[int, str], list[dict]] = {job: [] for job in jobs}
        rng = random.Random(0)
        order, last = list(jobs), None
        for _ in range(repeat):
            rng.shuffle(order)
            if len(order) > 1 and order[0] == last:
                order.append(order.pop(0))
            for job in order:
                got = workers[job[0]].turn(job[1])
                times[job].append(got["s"])
                firsts[job].append(got["first_s"])
                metrics[job].append(got["metrics"])
            last = order[-1]
        peaks = [w.finish() for w in workers]
    finally:
        for w in workers:
            w.close()
    rows = []
    for (i, case) in jobs:
        w, got = workers[i], metrics[(i, case)]
        row: dict[str, Any] = {"path": w.label, "what": w.what, "case": case}
        for key in dict.fromkeys(k for m in got for k in m):
            values = [m[key] for m in got if isinstance(m.get(key), (int, float))]
            if values:
                row[key] = statistics.median(values)
        row["ms_per_call"] = 1000 * statistics.median(times[(i, case)])
        row["ms_first_call"] = 1000 * statistics.median(firsts[(i, case)])
        row["peak_rss_mb"] = peaks[i]
        row["imports_torch"] = w.torch
        against = targets[i][3] if len(targets[i]) > 3 else None
        base = next((j for j, t in enumerate(targets) if t[0] == against), None) if against else None
        if base is None or (base, case) not in times:
            base = min(j for j, c in jobs if c == case)  # the first target that has this case
        if base != i:
            row["against"] = workers[base].label
            row["vs_first"] = paired_ratio(times[(base, case)], times[(i, case)])
            mine, theirs = got[-1], metrics[(base, case)][-1]
            if got[-1].get("prompt") == theirs.get("prompt") and isinstance(mine.get("tokens"), list) \
                    and isinstance(theirs.get("tokens"), list) and theirs["tokens"]:
                mine, theirs = mine["tokens"], theirs["tokens"]
                row["same_tokens"] = sum(a == b for a, b in zip(mine, theirs)) / max(len(mine), len(theirs))
        rows.append(row)
    return rows


def bench_paths(paths: list[str], options: dict[str, Any], repeat: int) -> dict:
    """``gentool bench PATH...``: every path's cases side by side (see :func:`bench_targets`)."""
    opts = {**PATH_DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    rows = bench_targets([(p, "gentoolkit.cli.bench:path_cases", p) for p in paths], opts, repeat)
    return {"paths": rows, "options": opts, "repeat": repeat}


_PATH_LABELS = {"first_token_ms": "first token, ms", "ms_per_call": "ms per call", "peak_rss_mb": "peak RSS, MB",
                "same_tokens": "tokens equal to the first path's",
                "vs_first": "speed against the first path with that case, round by round (over 1 = faster)"}


def print_path_table(res: dict) -> None:
    rows = res["paths"]
    hidden = {"path", "what", "case", "ms_first_call", "imports_torch", "against"}
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in hidden]
    keys = [k for k in keys if k not in ("same_tokens", "vs_first")] + [k for k in ("same_tokens", "vs_first") if k in keys]
    o = res["options"]
    print(f"gentool bench: {res['repeat']} rounds, threads {o.get('threads') or 1}, greedy decoding of "
          f"{o['new_tokens']} tokens after {o['prompt_tokens']}, first token after {o['first_token_prompt']}")
    print("| path | what | case | " + " | ".join(_PATH_LABELS.get(k) or _label(k) for k in keys) + " |")
    print("|---|---|---|" + "---|" * len(keys))
    for r in rows:
        cells = [f"{r[k]:.0%}" if k == "same_tokens" and k in r else _cell(k, r.get(k)) for k in keys]
        print(f"| {r['path']} | {r['what']} | {r['case']} | " + " | ".join(cells) + " |")


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    worker_main()
