"""Sampling options and samplers, resolved in one place (torch-free; runs, exports and the runtime API share it).

A family declares the options it takes (:class:`~gentoolkit.plugin.specs.SampleOption`) and a
``choose`` map that names its samplers: ``{"": "sample", "greedy": "greedy"}`` means the
``sample`` sampler by default and ``greedy`` when the option ``greedy`` is given. Its run
sampler (``ModelSpec.sample``) and its export driver (``cli_sample``, and the API methods)
both call :func:`resolve_sampling`, so an option the family does not take is the same clear
error on a run, on its export and from Python, and nothing is dropped in silence.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from gentoolkit.config import check_range, coerce
from gentoolkit.errors import ConfigError, PluginError
from gentoolkit.plugin.manager import get_registries
from gentoolkit.plugin.specs import SampleOption, resolve

_KEY = "gentoolkit.sample_option"


def option(help: str, *, default: Any = None, low: float | None = None, high: float | None = None,
           low_open: bool = False, short: str | None = None, sampler: bool = True, escapes: bool = False,
           api: str | None = None, api_schema: dict | None = None) -> Any:
    """One field of a family's decode options dataclass: what :class:`~gentoolkit.plugin.specs.SampleOption`
    holds, with the field's name and type. ``api``: the field of ``gentool serve``'s request that
    carries it (``None``: the server does not take it)::

        @dataclass(frozen=True)
        class MyOptions:
            steps: int = option("Denoising passes.", default=50, low=1, api="steps")
    """
    meta = {"help": help, "low": low, "high": high, "low_open": low_open, "short": short, "sampler": sampler,
            "escapes": escapes, "api": api, "default": default, "api_schema": api_schema}
    return dataclasses.field(default=default, metadata={_KEY: meta})


def sample_options(cls: type) -> tuple[SampleOption, ...]:
    """The options a family's decode-options dataclass declares, in field order: the CLI's flags, the
    server's request fields and the samplers' arguments are all made from these."""
    if not dataclasses.is_dataclass(cls):
        raise PluginError(f"{cls!r} is not a dataclass of decode options")
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(_KEY)
        if meta is None:
            raise PluginError(f"{cls.__name__}.{f.name} is not declared with gentoolkit.plugin.options.option()")
        kind, multiple = hints[f.name], False
        if typing.get_origin(kind) is tuple:
            kind, multiple = typing.get_args(kind)[0], True
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if typing.get_origin(kind) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1:
            kind = args[0]
        out.append(SampleOption(f.name, kind, meta["help"], low=meta["low"], high=meta["high"],
                                low_open=meta["low_open"], multiple=multiple, short=meta["short"],
                                sampler=meta["sampler"], escapes=meta["escapes"],
                                default=None if multiple else meta["default"], api=meta["api"],
                                api_schema=meta["api_schema"]))
    return tuple(out)


def declared_default(declared: Sequence[SampleOption], name: str) -> Any:
    """The declared default of the option ``name``."""
    return next(o.default for o in declared if o.name == name)


def check_values(declared: Sequence[SampleOption], values: Mapping[str, Any], prefix: str = "") -> None:
    """``ValueError`` for a value of a declared option that is not of its type or not in its range
    (``prefix`` names where the value comes from: ``"sampler."`` for a config section)."""
    by_name = {o.name: o for o in declared}
    for name, value in values.items():
        o = by_name.get(name)
        key = prefix + name
        if o is None or value is None or o.multiple or o.type in (str,):
            continue
        if o.type is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false, got {value!r}")
            continue
        ok = isinstance(value, numbers.Integral) if o.type is int else isinstance(value, numbers.Real)
        if isinstance(value, bool) or not ok or (o.type is float and not math.isfinite(value)):
            what = "an integer" if o.type is int else "a finite number"
            raise ValueError(f"{key} must be {what}, got {value!r}")
        check_range(key, value, o.low, o.high, low_open=o.low_open)


def sampler_arguments(declared: Sequence[SampleOption], takes: Sequence[str] | None = None) -> dict[str, type]:
    """``SamplerSpec.options`` from the declaration: the sampler-side options (``takes``: only these)."""
    return {o.name: o.type for o in declared if o.sampler and o.type is not bool and (takes is None or o.name in takes)}


def given_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The options actually given: not ``None``, not an empty repeatable, not an unset flag."""
    return {k: v for k, v in values.items() if v is not None and v is not False and v != () and v != []}


def check_options(given: Mapping[str, Any], declared: Sequence[SampleOption], family: str) -> None:
    """Every given option must be one that the ``family``'s models declare."""
    names = {o.name for o in declared}
    unknown = [k for k in given if k not in names]
    if unknown:
        flag = "--" + unknown[0].replace("_", "-")
        takes = ", ".join(o.flag for o in declared) or "none"
        raise ConfigError(f"{flag} does not apply to {family} models; their sample options: {takes}")


def make_sampler(
    kind: str,
    *,
    name: str | None = None,
    defaults: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    sampler_opts: Sequence[str] = (),
    choose: Mapping[str, str] | None = None,
):
    """Build a registered sampler of ``kind`` (``"logits"``, ``"latent"`` or a plugin's kind).

    ``defaults`` are the model's stored sampler defaults (its ``[sampler]`` section, whose
    ``name`` key may pick the sampler), ``options`` the values given (``None`` = not given) and
    ``sampler_opts`` ``key=value`` strings for a sampler's own options. The sampler is ``name``
    if given, else the one ``choose`` maps the first given option to, else the stored default
    name, else the one a stored option picks, else ``choose[""]``. A given option the sampler does not take is an error, unless it is the
    key that chose the sampler; a stored default it does not take is left out.
    """
    regs = get_registries(commands=False).samplers
    given = {k: v for k, v in (options or {}).items() if v is not None}
    defaults = dict(defaults or {})
    default_name = defaults.pop("name", None)
    choose = dict(choose or {})
    chosen_by = None
    if name is None:
        chosen_by = next((k for k in choose if k and given.get(k)), None)
        stored = next((k for k in choose if k and defaults.get(k)), None)
        name = (choose[chosen_by] if chosen_by else default_name or (choose[stored] if stored else None)
                or choose.get(""))
    if name is None:
        kinds = ", ".join(s.name for s in regs if s.kind == kind) or "none registered"
        raise ConfigError(f"choose a {kind} sampler with --sampler ({kinds})")
    spec = regs.get(name)
    if spec.kind != kind:
        raise ConfigError(f"sampler {name!r} is a {spec.kind} sampler; this model needs a {kind} sampler")
    values: dict[str, Any] = {k: v for k, v in defaults.items() if k in spec.options and v is not None}
    for key, value in given.items():
        if key in spec.options:
            values[key] = value
        elif key != chosen_by:
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
    return sampler


def resolve_sampling(
    kind: str,
    *,
    declared: Sequence[SampleOption],
    choose: Mapping[str, str],
    given: Mapping[str, Any],
    family: str,
    defaults: Mapping[str, Any] | None = None,
    sampler: str | None = None,
    sampler_opts: Sequence[str] = (),
) -> tuple[Any, dict[str, Any]]:
    """``(sampler, the family's own options)`` for the options ``given`` by a user (CLI or API).

    Checks them against ``declared`` (see :func:`check_options`), builds the sampler from the
    sampler-side ones (:func:`make_sampler`) and returns the others (a prompt, stop strings).
    """
    given = given_options(given)
    check_options(given, declared, family)
    to_sampler = {o.name for o in declared if o.sampler}
    sampler_obj = make_sampler(kind, name=sampler, defaults=defaults, sampler_opts=sampler_opts, choose=choose,
                               options={k: v for k, v in given.items() if k in to_sampler})
    rest = {k: v for k, v in given.items() if k not in to_sampler}
    try:  # the sampler checked its own; these are the family's (a length, stop strings)
        check_values(declared, rest)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return sampler_obj, rest
