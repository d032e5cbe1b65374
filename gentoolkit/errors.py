"""User-facing errors.

Every mistake a user can make (an unknown model, a bad option, a missing file)
raises a subclass of :class:`GentoolError`. The CLI turns these into one line
``Error: ...`` and a non-zero exit; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class GentoolError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""


class ConfigError(GentoolError):
    """A configuration key, value or file is wrong."""


class UnknownNameError(GentoolError):
    """A name (model, sampler, loss, dataset) is not registered."""


class DataError(GentoolError):
    """Training or evaluation data is missing, empty or unreadable."""


class RunError(GentoolError):
    """A run folder is missing, incomplete or inconsistent."""


class PluginError(GentoolError):
    """A plugin registered something invalid (for example a duplicate name)."""


class ExportError(GentoolError):
    """An export could not be produced or did not validate."""


class ModelOutputError(GentoolError, ValueError):
    """A model produced numbers no sampler can use (NaN or infinite logits): its weights are broken."""


def edit_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (optimal string alignment): the insertions, deletions, substitutions
    and swaps of two neighbouring characters that turn ``a`` into ``b`` (``smaple`` -> ``sample``: 1)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return prev[len(b)]


def closest(name: str, candidates) -> str | None:
    """The candidate fewest edits away from ``name`` (:func:`edit_distance`, ignoring case; ties go to the
    first in sorted order), or None when even that one is too far to be a typo of it (more than 1 edit for
    a name of up to 4 characters, 2 up to 8, 3 beyond)."""
    limit = 1 if len(name) <= 4 else 2 if len(name) <= 8 else 3
    scored = sorted((edit_distance(name.lower(), c.lower()), c) for c in set(candidates) if c != name)
    return scored[0][1] if scored and scored[0][0] <= limit else None
