"""``gentool quickstart``: the whole path once, for a newcomer, with no download.

Each family that registers ``ModelSpec.tools.quickstart`` brings one step: a function
``quickstart(out, *, small, seed, say) -> {"lines", "folders", "try"}`` that trains its model
into ``out``, exports it to ONNX (validated against PyTorch), runs the export through the
torch-free runtime, and says what came out (``lines``), what it wrote (``folders``) and what to
try next (``try``). The built-in families bring a gpt on Python's documentation text and a gan
on 8 Gaussians; the host runs the steps in family order and reports.

A step trains and exports through :func:`train_step` and :func:`export_step`, so running the
quickstart again on the same folder keeps what is finished, resumes a training that Ctrl-C
stopped, and redoes only what is missing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click


def steps() -> list:
    from gentoolkit.plugin.manager import get_registries

    return [s for s in sorted(get_registries().models, key=lambda s: (s.family, s.name)) if s.tools.quickstart]


def run(out: str | Path = "quickstart", size: str = "default", seed: int = 1337) -> dict:
    from gentoolkit.errors import RunError
    from gentoolkit.plugin.specs import resolve

    out = Path(out)
    specs = steps()
    if not specs:
        raise RunError("no installed family brings a quickstart step (see 'gentool plugins')")
    t0 = time.perf_counter()
    say = lambda m: click.echo(m, err=True)  # noqa: E731
    results = []
    for i, spec in enumerate(specs, 1):
        say(f"[{i}/{len(specs)}] {spec.name} ({spec.family}, plugin {spec.plugin})")
        results.append(resolve(spec.tools.quickstart)(out, small=size == "small", seed=seed, say=say))
    return {"out": out, "steps": results, "minutes": (time.perf_counter() - t0) / 60}


def train_step(spec, tree, run: Path, *, say, out: Path, extra_meta: dict | None = None) -> dict:
    """A quickstart step's training: a new run, or the one already in ``run``: finished, it is kept; stopped
    early (Ctrl-C), it resumes. Returns the last evaluation (read back from ``metrics.jsonl`` when kept).
    A run of other settings (another --small or --seed) is an error that names the way out."""
    from gentoolkit.config import to_dict
    from gentoolkit.errors import RunError
    from gentoolkit.progress import Output
    from gentoolkit.train.checkpoint import latest
    from gentoolkit.train.loop import train
    from gentoolkit.train.run import Run

    hint = Output(resume_hint=f"gentool quickstart --out {out}  (it resumes where it stopped)")
    meta = {**(extra_meta or {}), "quickstart": True}
    if not (run / "config.json").exists():
        return train(spec, tree, run, device="auto", extra_meta=meta, output=hint)[1]
    stored, want = Run.open(run), to_dict(tree)
    have = stored.stored_config()
    if any(v is not None and have.get(sec, {}).get(k) != v for sec, body in want.items() for k, v in body.items()):
        raise RunError(f"{str(run)!r} holds a quickstart run of other settings (another --small or --seed); give "
                       "the same ones, or a new --out")
    done = latest(run)
    steps = tree["train"].steps
    if done is not None and done.step >= steps:
        say(f"  {run} finished training before ({steps} steps): kept")
        rows = [r for r in stored.read_metrics() if any(k.startswith("val") for k in r)]
        return {k: v for k, v in (rows[-1] if rows else {}).items() if k != "step"}
    say(f"  resuming {run} from step {done.step if done else 0}")
    return train(spec, tree, run, device="auto", resume=True, extra_meta=meta, output=hint)[1]


def export_step(run: Path, onnx: Path, *, say) -> None:
    """A quickstart step's export: kept when ``onnx`` is an export of ``run`` made after its last weights."""
    from gentoolkit.export import export
    from gentoolkit.runtime.folder import is_export

    weights = run / "model.safetensors"
    manifest = onnx / "gentoolkit.json"
    if is_export(onnx) and weights.exists() and manifest.stat().st_mtime >= weights.stat().st_mtime:
        say(f"  {onnx} was exported from it before: kept")
        return
    export(run, onnx, log=lambda m: None)  # a previous export is replaced in one step


def report(res: dict) -> None:
    for step in res["steps"]:
        click.echo("")
        for line in step["lines"]:
            click.echo(line)
    click.echo("")
    click.echo(f"done in {res['minutes']:.1f} minutes.")
    click.echo("")
    click.echo("Try next:")
    for step in res["steps"]:
        for line in step["try"]:
            click.echo(f"  {line}")
    click.echo("  gentool bench")
    sys.stdout.flush()
