"""Named crash points for the fault campaign (tests/faults/); nothing happens unless a test asks.

Code that writes in several steps calls :func:`point` between them. A test sets
``GENTOOL_TEST_KILL_AT=NAME@N`` (or ``*@N`` for the N-th point of any name) in a child
process's environment, and the child SIGKILLs itself the N-th time it reaches that point:
exactly between two files, where a random kill rarely lands. ``GENTOOL_TEST_TRACE_POINTS=FILE``
appends every point reached to FILE, so a test can enumerate them. Without either variable a
point is one global read.
"""

from __future__ import annotations

import os

_SPEC = os.environ.get("GENTOOL_TEST_KILL_AT")
_TRACE = os.environ.get("GENTOOL_TEST_TRACE_POINTS")
_ACTIVE = bool(_SPEC or _TRACE)
_counts: dict[str, int] = {}


def _kill_target() -> tuple[str, int]:
    name, _, nth = (_SPEC or "").partition("@")
    return name, int(nth or 1)


def active() -> bool:
    """Whether a fault test is watching this process (then writers may take smaller steps)."""
    return _ACTIVE


def point(name: str) -> None:
    """A moment between two writes; a fault test may kill the process here."""
    if not _ACTIVE:
        return
    if _TRACE:
        with open(_TRACE, "a", encoding="utf-8") as fh:
            fh.write(name + "\n")
    if _SPEC:
        target, nth = _kill_target()
        key = "*" if target == "*" else name
        if key != target:
            return
        _counts[key] = _counts.get(key, 0) + 1
        if _counts[key] == nth:
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
