"""``gentool quickstart``: the whole path once, for a newcomer, with no download.

Each family that registers ``ModelSpec.quickstart`` brings one step: a function
``quickstart(out, *, small, seed, say) -> {"lines", "folders", "try"}`` that trains its model
into ``out``, exports it to ONNX (validated against PyTorch), runs the export through the
torch-free runtime, and says what came out (``lines``), what it wrote (``folders``) and what to
try next (``try``). The built-in families bring a gpt on Python's documentation text and a gan
on 8 Gaussians; the host runs the steps in family order and reports.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click


def steps() -> list:
    from .plugins import get_registries

    return [s for s in sorted(get_registries().models, key=lambda s: (s.family, s.name)) if s.quickstart]


def run(out: str | Path = "quickstart", size: str = "default", seed: int = 1337) -> dict:
    from .errors import RunError
    from .registry import resolve

    out = Path(out)
    specs = steps()
    if not specs:
        raise RunError("no installed family brings a quickstart step (see 'gentool plugins')")
    if any((out / f"{s.name}-run" / "config.json").exists() for s in specs):
        raise RunError(f"{str(out)!r} already holds a quickstart; remove it or pass --out NEW_FOLDER")
    t0 = time.perf_counter()
    say = lambda m: click.echo(m, err=True)  # noqa: E731
    results = []
    for i, spec in enumerate(specs, 1):
        say(f"[{i}/{len(specs)}] {spec.name} ({spec.family}, plugin {spec.plugin})")
        results.append(resolve(spec.quickstart)(out, small=size == "small", seed=seed, say=say))
    return {"out": out, "steps": results, "minutes": (time.perf_counter() - t0) / 60}


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
