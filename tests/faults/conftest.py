"""The fault campaign's tally: every test adds what it tried, and the session prints the counts.

``GENTOOL_FAULTS_REPORT=FILE`` also writes them to FILE as JSON (docs/reliability.md quotes a run).
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from contextlib import contextmanager

TALLY: Counter = Counter()


class Hang(Exception):
    """A case ran past its time limit."""


@contextmanager
def time_limit(seconds: float):
    """Raise :class:`Hang` in the main thread when the block runs longer than ``seconds``."""

    def on_alarm(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def pytest_terminal_summary(terminalreporter):
    if not TALLY:
        return
    t = TALLY
    terminalreporter.section("fault campaign")
    terminalreporter.write_line(
        f"bad inputs: {t['inputs']} ({t['clear_errors']} clear errors, {t['correct']} correct results), "
        f"{t['tracebacks']} tracebacks, {t['hangs']} hangs, {t['outside_writes']} writes outside the target")
    terminalreporter.write_line(
        f"kills: {t['kills']} of training ({t['boundary_kills']} at checkpoint boundaries, {t['random_kills']} at "
        f"random moments), {t['resumed_exact']} resumed bit-identical, {t['torn']} torn runs; "
        f"{t['export_kills']} of export, {t['exports_intact']} left the previous export or folder intact")
    terminalreporter.write_line(f"user files checked: {t['user_files']}, bytes of them removed: {t['user_bytes_removed']}")
    if t["family_cases"]:
        terminalreporter.write_line(
            f"commands x families: {t['family_cases']} combinations ({t['family_errors']} clear errors, "
            f"{t['family_ok']} successes), {t['family_tracebacks']} tracebacks")
    report = os.environ.get("GENTOOL_FAULTS_REPORT")
    if report:
        with open(report, "w", encoding="utf-8") as fh:
            json.dump(dict(TALLY), fh, indent=2, sort_keys=True)
