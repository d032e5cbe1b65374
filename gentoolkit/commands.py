"""Bodies of the ``gentool`` commands that do real work (imported inside the click callbacks)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .errors import GentoolError
from .plugins import get_model
from .registry import resolve
from .run import Run


def _entry(spec, what: str):
    ref = getattr(spec, what)
    if ref is None:
        raise GentoolError(f"model {spec.name!r} (plugin {spec.plugin!r}) does not support '{what}'")
    return resolve(ref)


def sample_command(path, *, prompts, max_new_tokens, num_samples, seed, greedy, options, stop,
                   sampler_name, sampler_opts, out, device) -> None:
    from .sampling import make_sampler

    run = Run.open(path)
    spec = get_model(run.model_name)
    if spec.family == "autoregressive":
        defaults = {k: v for k, v in run.config.get("sampler", {}).items() if k != "max_new_tokens"}
        sampler = make_sampler("logits", name=sampler_name, defaults=defaults, options=options,
                               sampler_opts=sampler_opts, greedy=greedy)
        rows = [p for p in prompts for _ in range(num_samples)]
        fn = _entry(spec, "sample")
        pieces = fn(run, prompts=rows, sampler=sampler, max_new_tokens=max_new_tokens, seed=seed, stop=stop,
                    device=device)
        if len(rows) == 1:
            sys.stdout.write(rows[0])
            for _, piece in pieces:
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
            return
        texts = [""] * len(rows)
        for i, piece in pieces:
            texts[i] += piece
        for i, (p, t) in enumerate(zip(rows, texts)):
            click.echo(f"--- sample {i + 1}")
            click.echo(p + t)
        return
    sampler = make_sampler("latent", name=sampler_name, defaults=None, options={"truncation": options.get("truncation")},
                           sampler_opts=sampler_opts)
    fn = _entry(spec, "sample")
    fn(run, n=num_samples, sampler=sampler, seed=seed, out=out, device=device)


def eval_command(path, *, data, as_json, device) -> None:
    run = Run.open(path)
    spec = get_model(run.model_name)
    result = _entry(spec, "evaluate")(run, data=data, device=device)
    if as_json:
        click.echo(json.dumps(result))
        return
    for key, value in result.items():
        click.echo(f"{key:>16}: {value:.4f}" if isinstance(value, float) else f"{key:>16}: {value}")


__all__ = ["sample_command", "eval_command", "Path"]
