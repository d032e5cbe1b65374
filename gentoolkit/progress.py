"""How a long command reports progress: a bar on a terminal, plain lines anywhere else, nothing with
``--quiet``; a ``--log-file`` gets every line.

A bar redraws one line with carriage returns, which a file or a CI log keeps as hundreds of frames
on one line, so the bar is drawn only when stderr is a terminal and ``TQDM_DISABLE`` is not set.
Elsewhere each report is one plain line, at most one every ``GENTOOL_PROGRESS_SECONDS`` (10 by
default) and always at an evaluation and at the end. Nothing here colours its output (``NO_COLOR``
holds by construction). Torch-free: the bar is tqdm's, imported only when one is drawn.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gentoolkit.errors import GentoolError


def env_flag(name: str) -> bool:
    """Whether an environment switch such as ``TQDM_DISABLE`` or ``NO_COLOR`` is on (set, not 0/false/no)."""
    value = os.environ.get(name)
    return value is not None and value.strip().lower() not in ("", "0", "false", "no", "off")


def bar_wanted(stream: IO | None = None) -> bool:
    """A redrawn bar only on a terminal, and not when ``TQDM_DISABLE`` is set."""
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)()) and not env_flag("TQDM_DISABLE")


@dataclass(frozen=True)
class Output:
    """What the user asked of a command's reporting: ``quiet`` (errors and alarms only), a log file, and
    ``resume_hint``, the command that continues an interrupted run (default: ``gentool train --resume``)."""

    quiet: bool = False
    log_file: str | None = None
    resume_hint: str | None = None


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds // 60 % 60:02d}m"


def _value(key: str, v: Any) -> str:
    """A logged number for a plain line: rates whole (``tokens_per_s 97``), a small value such as a learning
    rate of 1e-5 in exponent form rather than as ``0.0000``, the rest to four decimals."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if key.endswith("_per_s") or isinstance(v, int) or abs(v) >= 1000:
        return f"{v:,.0f}"
    if v != 0 and abs(v) < 1e-3:
        return f"{v:.2e}"
    return f"{v:.4f}"


class Progress:
    """Steps ``initial..total`` of a task named ``name``: :meth:`report` after each logged step, :meth:`note`
    for a line that must be seen (an alarm), :meth:`close` at the end. ``enabled`` False (a worker other
    than the main one) draws and writes nothing."""

    def __init__(self, name: str, total: int, *, initial: int = 0, output: Output = Output(), enabled: bool = True):
        self.name, self.total, self.initial = name, total, initial
        self.enabled, self.quiet = enabled, output.quiet
        self.every = float(os.environ.get("GENTOOL_PROGRESS_SECONDS", "10") or 10)
        self.start = time.perf_counter()
        self.last_line = -float("inf")
        self.log: IO | None = None
        if enabled and output.log_file:
            path = Path(output.log_file)
            try:
                self.log = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed in close()
            except OSError as exc:
                raise GentoolError(f"cannot write the log file {str(path)!r}: {exc.strerror or exc}; give a path in "
                                   "a folder that exists and is writable") from None
        self.bar = None
        if enabled and not self.quiet and bar_wanted():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=name, file=sys.stderr, dynamic_ncols=True, unit="step")
        self.step = initial

    def line(self, step: int, row: dict[str, Any]) -> str:
        """One plain line: the step, the row's numbers (losses, throughput) and the time left."""
        done = step - self.initial
        elapsed = time.perf_counter() - self.start
        parts = [f"{self.name} step {step}/{self.total} ({100 * step // max(1, self.total)}%)"]
        parts += [f"{k} {_value(k, v)}" for k, v in row.items() if k != "step"]
        if 0 < done and step < self.total:
            parts.append(f"{duration(elapsed / done * (self.total - step))} left")
        else:
            parts.append(f"{duration(elapsed)} elapsed")
        return "  ".join(parts)

    def advance(self, step: int) -> None:
        """The bar moves to ``step`` (every step; plain lines come from :meth:`report`)."""
        if self.bar is not None:
            self.bar.update(step - self.step)
        self.step = step

    def report(self, step: int, row: dict[str, Any], *, force: bool = False) -> None:
        """A logged step's numbers: onto the bar, as a plain line (throttled unless ``force``), into the log."""
        if not self.enabled:
            return
        text = None
        if self.log is not None:
            text = self.line(step, row)
            self.log.write(text + "\n")
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.set_postfix({k: row[k] for k in row if "loss" in k or k == "tokens_per_s"}, refresh=False)
            return
        now = time.perf_counter()
        if force or step >= self.total or now - self.last_line >= self.every:
            self.last_line = now
            print(text or self.line(step, row), file=sys.stderr, flush=True)

    def note(self, text: str, *, last: bool = False) -> None:
        """A line every reader must see (an alarm, an interruption): above the bar, on stderr, in the log.
        ``last``: the bar is closed first, so that the line ends the output (how to resume after Ctrl-C)."""
        if not self.enabled:
            return
        if self.log is not None:
            self.log.write(text + "\n")
        if last and self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def info(self, text: str) -> None:
        """A line for the reader that ``--quiet`` drops (the log still has it)."""
        if not self.enabled:
            return
        if self.log is not None:
            self.log.write(text + "\n")
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.log is not None:
            self.log.close()
            self.log = None
