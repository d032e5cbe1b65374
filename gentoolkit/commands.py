"""Bodies of the ``gentool`` commands that do real work (imported inside the click callbacks)."""

from __future__ import annotations

import json
import sys

import click

from .contract import is_export
from .errors import GentoolError
from .plugins import get_model
from .registry import resolve
from .run import Run


def _entry(spec, what: str):
    ref = getattr(spec, what)
    if ref is None:
        raise GentoolError(f"model {spec.name!r} (plugin {spec.plugin!r}) does not support '{what}'")
    return resolve(ref)


def _print_rows(rows: list[str], pieces) -> None:
    """Stream one row as it comes; print a batch when it is done."""
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


def sample_command(path, **kw) -> None:
    """``gentool sample``: an export through the runtime, a run through its family's PyTorch code."""
    try:
        _sample(path, **kw)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's errors derive from Exception alone
        from .runtime import is_onnxruntime_error

        if not is_onnxruntime_error(exc):
            raise
        detail = " ".join(str(exc).split())[:300]
        raise GentoolError(f"onnxruntime failed running {path} ({detail}); export the run again") from None


def _sample(path, *, prompts, max_new_tokens, num_samples, seed, greedy, options, stop,
            sampler_name, sampler_opts, out, device) -> None:
    if is_export(path):
        from .runtime import load

        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else None
        model = load(path, providers=providers)
        if model.family == "autoregressive" or hasattr(model, "stream_rows"):
            rows = [p for p in prompts for _ in range(num_samples)]
            logit_opts = {k: v for k, v in options.items() if k != "truncation"}
            pieces = model.stream_rows(rows, max_new_tokens=max_new_tokens, seed=seed, stop=stop, greedy=greedy,
                                       sampler=sampler_name, sampler_opts=sampler_opts, **logit_opts)
            _print_rows(rows, pieces)
        else:
            x = model.sample(num_samples, seed=seed, truncation=options.get("truncation"), sampler=sampler_name,
                             sampler_opts=sampler_opts)
            model.save(x, out)
        return
    from .sampling import make_sampler

    run = Run.open(path)
    spec = get_model(run.model_name)
    fn = _entry(spec, "sample")
    if options.get("truncation") is not None and spec.sampler_kind != "latent":
        raise GentoolError(f"--truncation is for latent samplers (GANs); {spec.name} uses {spec.sampler_kind} samplers")
    if spec.sampler_kind == "logits":
        defaults = run.config.get("sampler", {})  # make_sampler takes the keys its sampler has
        logit_opts = {k: v for k, v in options.items() if k != "truncation"}
        sampler = make_sampler("logits", name=sampler_name, defaults=defaults, options=logit_opts,
                               sampler_opts=sampler_opts, greedy=greedy)
        rows = [p for p in prompts for _ in range(num_samples)]
        _print_rows(rows, fn(run, prompts=rows, sampler=sampler, max_new_tokens=max_new_tokens, seed=seed,
                             stop=stop, device=device))
        return
    defaults = {k: v for k, v in run.config.get("sampler", {}).items() if v is not None}
    given = {"truncation": options.get("truncation")} if spec.sampler_kind == "latent" else {}
    sampler = make_sampler(spec.sampler_kind, name=sampler_name, defaults=defaults, options=given,
                           sampler_opts=sampler_opts)
    fn(run, n=num_samples, sampler=sampler, seed=seed, out=out, device=device)


def eval_command(path, *, data, as_json, device) -> None:
    run = Run.open(path)
    spec = get_model(run.model_name)
    result = _entry(spec, "evaluate")(run, data=data, device=device)
    if as_json:
        click.echo(json.dumps(result))
        return
    width = max((len(k) for k in result), default=0)
    for key, value in result.items():
        shown = f"{value:.4f}" if isinstance(value, float) else "n/a" if value is None else value
        click.echo(f"{key:>{width}}: {shown}")

