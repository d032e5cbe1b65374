"""Choosing and configuring a sampler from options (torch-free; the CLI and the runtime share it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .config import coerce
from .errors import ConfigError
from .plugins import get_registries
from .registry import resolve


def make_sampler(
    kind: str,
    *,
    name: str | None = None,
    defaults: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    sampler_opts: Sequence[str] = (),
    greedy: bool = False,
):
    """Build a registered sampler of ``kind`` (``"logits"``, ``"latent"`` or a plugin's kind).

    ``defaults`` are the model's stored sampler defaults (its ``[sampler]``
    section, whose ``name`` key picks the sampler), ``options`` the values the
    user gave (``None`` = not given), ``sampler_opts`` ``key=value`` strings for
    a sampler's own options. Without ``name`` or a default one: ``greedy`` or
    ``sample`` for logits, ``truncated`` (when a truncation is given) or
    ``normal`` for latents; other kinds must name theirs.
    """
    regs = get_registries().samplers
    given = {k: v for k, v in (options or {}).items() if v is not None}
    defaults = dict(defaults or {})
    default_name = defaults.pop("name", None)
    if name is None and kind == "logits":
        name = "greedy" if greedy else "sample"
    elif name is None and kind == "latent":
        name = "truncated" if given.get("truncation") else (default_name or "normal")
    elif name is None:
        name = default_name
        if name is None:
            kinds = ", ".join(s.name for s in regs if s.kind == kind) or "none registered"
            raise ConfigError(f"choose a {kind} sampler with --sampler ({kinds})")
    spec = regs.get(name)
    if spec.kind != kind:
        raise ConfigError(f"sampler {name!r} is a {spec.kind} sampler; this model needs a {kind} sampler")
    values: dict[str, Any] = {}
    for key, value in {**defaults, **given}.items():
        if key in spec.options:
            values[key] = value
        elif key in given and key not in ("truncation",) and value is not None and name not in ("greedy",):
            raise ConfigError(f"sampler {name!r} has no option {key!r}; its options: {', '.join(spec.options) or 'none'}")
    for expr in sampler_opts:
        key, sep, text = expr.partition("=")
        if not sep:
            raise ConfigError(f"--sampler-opt expects key=value, got {expr!r}")
        if key not in spec.options:
            raise ConfigError(f"sampler {name!r} has no option {key!r}; its options: {', '.join(spec.options) or 'none'}")
        values[key] = coerce(text, spec.options[key], key, from_text=True)
    try:
        sampler = resolve(spec.factory)(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"sampler {name!r}: {exc}") from None
    if kind == "logits":
        from .runtime.strategies import check_sampler

        check_sampler(sampler, name)
    return sampler
