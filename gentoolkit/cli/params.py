"""Command-line number types for the host's commands and plugins' (click's own ranges let nan and inf through)."""

from __future__ import annotations

import click


class Number(click.ParamType):
    """A finite number in a range: click's own ranges let ``nan`` and ``inf`` through."""

    def __init__(self, kind: type = float, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False):
        self.kind, self.low, self.high, self.low_open = kind, low, high, low_open
        self.name = kind.__name__

    def convert(self, value, param, ctx):
        import math

        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = self.kind(str(value).replace("_", "") if self.kind is int else value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not {'an integer' if self.kind is int else 'a number'}", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        below = self.low is not None and (number <= self.low if self.low_open else number < self.low)
        if below or (self.high is not None and number > self.high):
            self.fail(f"{value!r} is not {self._range()}", param, ctx)
        return number

    def _range(self) -> str:
        fmt = (lambda v: str(int(v))) if self.kind is int else (lambda v: f"{v:g}")  # noqa: E731
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{fmt(self.low)}, {fmt(self.high)}]"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {fmt(self.low)}"
        return f"<= {fmt(self.high)}"

    def get_metavar(self, param, ctx=None):
        return self.name.upper()


SEED = Number(int, 0, 2**63 - 1)
COUNT = Number(int, 1, 100_000)
POSITIVE = Number(float, 0, low_open=True)


def option_flag(opt, help: str | None = None) -> click.Option:
    """The command-line flag of a family's declared decode option (a
    :class:`~gentoolkit.plugin.specs.SampleOption`): ``top_k`` becomes ``--top-k``, typed and range-checked
    as declared. ``gentool sample`` and a family's own commands make their flags with it."""
    decls = [opt.flag, *([opt.short] if opt.short else []), opt.name]
    text = opt.help if help is None else help
    if opt.type is bool:
        return click.Option(decls, is_flag=True, default=None, help=text)
    kind = Number(opt.type, opt.low, opt.high, low_open=opt.low_open) if opt.type in (int, float) else str
    return click.Option(decls, type=kind, multiple=opt.multiple, default=None, help=text)
