"""Configuration trees: frozen dataclasses, loaded strictly from TOML/JSON and ``--set``.

A run's configuration is a tree of sections (``model``, ``data``, ``train``,
and ``loss`` and ``sampler`` where they apply), each a frozen dataclass. Values
are layered: dataclass defaults < preset < ``--config FILE`` < ``--set
section.key=value``. Unknown sections or keys and wrong types are rejected with
one line that names the key. This module is torch-free.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

from gentoolkit.errors import ConfigError, closest

Sections = Mapping[str, type]
INT_LIMIT = 2**63  # integers in a config fit int64 (PyTorch's and numpy's)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp))


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def coerce(value: Any, tp: Any, key: str, *, from_text: bool = False) -> Any:
    """Check (and for command-line text, parse) ``value`` against the annotation ``tp``."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{key} must be {_type_name(tp)}, got {value!r}")
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and (value is None or (from_text and str(value).lower() in ("none", "null"))):
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key, from_text=from_text)
            except ConfigError:
                pass
        raise bad
    if origin is Literal:
        allowed = typing.get_args(tp)
        for a in allowed:
            if value == a or (from_text and str(value) == str(a)):
                return a
        raise ConfigError(f"{key} must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}")
    if origin in (tuple, list):
        (inner, *_rest) = typing.get_args(tp)
        if from_text and isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise bad
        return tuple(coerce(v, inner, key, from_text=from_text) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_text and str(value).lower() in _TRUE | _FALSE:
            return str(value).lower() in _TRUE
        raise bad
    if tp is int:
        number = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif from_text:
            with contextlib.suppress(ValueError):
                number = int(str(value).replace("_", ""))
        if number is None:
            raise bad
        if not -INT_LIMIT < number < INT_LIMIT:
            raise ConfigError(f"{key} must be between {-INT_LIMIT + 1} and {INT_LIMIT - 1}, got {number}")
        return number
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value) if abs(value) < 2**1023 else math.inf
        elif from_text:
            with contextlib.suppress(ValueError):
                number = float(value)
        if number is None:
            raise bad
        if not math.isfinite(number):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    if tp is Any:
        return value
    raise ConfigError(f"{key}: unsupported config type {tp!r}")


def _unknown(key: str, valid: list[str], where: str) -> ConfigError:
    head, _, last = key.rpartition(".")
    hint = closest(last, valid)
    did = f" (did you mean {(head + '.' if head else '') + hint!r}?)" if hint else ""
    return ConfigError(f"unknown config key {key!r}{did}; valid keys in {where}: {', '.join(valid)}")


def parse_set(expr: str) -> tuple[str, str]:
    """Split ``section.key=value``."""
    key, sep, value = expr.partition("=")
    if not sep or "." not in key or not key.strip():
        raise ConfigError(f"--set expects section.key=value, got {expr!r}")
    return key.strip(), value


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (``.toml``) or JSON config file into nested dictionaries."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        if path.suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib

            return tomllib.loads(path.read_text(encoding="utf-8"))
        data = json.loads(path.read_text(encoding="utf-8"))
    except Exception as exc:  # noqa: BLE001 - any parse error becomes one line
        raise ConfigError(f"cannot parse config file {str(path)!r}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold an object of sections")
    return data


def build(
    sections: Sections,
    *layers: Mapping[str, Any],
    sets: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """Resolve a config tree: defaults, then each nested-dict layer, then ``--set`` strings."""
    values: dict[str, dict[str, Any]] = {name: {} for name in sections}
    for layer in layers:
        for section, body in (layer or {}).items():
            if section not in sections:
                raise _unknown(section, list(sections), "the config tree")
            if not isinstance(body, Mapping):
                raise ConfigError(f"config section {section!r} must be a table of keys")
            hints = _hints(sections[section])
            for key, value in body.items():
                if key not in hints:
                    raise _unknown(f"{section}.{key}", list(hints), f"[{section}]")
                values[section][key] = coerce(value, hints[key], f"{section}.{key}")
    for expr in sets:
        dotted, text = parse_set(expr)
        section, _, key = dotted.partition(".")
        if section not in sections:
            raise _unknown(section, list(sections), "the config tree")
        hints = _hints(sections[section])
        if key not in hints:
            raise _unknown(dotted, list(hints), f"[{section}]")
        values[section][key] = coerce(text, hints[key], dotted, from_text=True)
    tree = {}
    for name, cls in sections.items():
        try:
            tree[name] = cls(**values[name])
        except (TypeError, ValueError) as exc:
            text = str(exc)
            raise ConfigError(text if text.startswith(f"{name}.") else f"[{name}]: {text}") from None
    return tree


def to_dict(tree: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The plain-data form of a resolved tree (what ``config.json`` holds)."""
    out = {}
    for name, obj in tree.items():
        d = dataclasses.asdict(obj)
        out[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
    return out


def dumps_toml(data: Mapping[str, Mapping[str, Any]]) -> str:
    """Write a config tree as TOML (for ``--print-config``), readable back with ``--config``."""
    lines = []
    for section, body in data.items():
        lines.append(f"[{section}]")
        for key, value in body.items():
            if value is None:
                lines.append(f"# {key} = (none)")
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    """One value in TOML's own syntax (``nan`` and ``inf`` are TOML words, not JSON's)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


def check_range(key: str, value: float, low: float | None = None, high: float | None = None, *,
                low_open: bool = False, high_open: bool = False) -> None:
    """Raise ValueError unless ``low <= value <= high`` (``<`` where open); for ``__post_init__``."""
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if below or above or value != value:
        if low is not None and high is not None:
            want = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            want = f"{'>' if low_open else '>='} {low:g}"
        else:
            want = f"{'<' if high_open else '<='} {high:g}"
        raise ValueError(f"{key} must be {want}, got {value}")


@dataclass(frozen=True)
class BaseTrainConfig:
    """Keys every family's ``[train]`` section has (families subclass it)."""

    steps: int = 1000
    seed: int = 1337
    batch_size: int = 32  # the global batch: torchrun's workers split it (a multiple of their number)
    eval_interval: int = 250
    log_interval: int = 10
    compile: bool = False
    keep_checkpoints: int = 2  # the newest checkpoints kept in RUN/checkpoints/

    def __post_init__(self):
        check_range("train.steps", self.steps, 1, 10**12)
        check_range("train.seed", self.seed, 0)
        if self.eval_interval < 1 or self.log_interval < 1:
            raise ValueError("train.eval_interval and train.log_interval must be >= 1")
        check_range("train.keep_checkpoints", self.keep_checkpoints, 1)
