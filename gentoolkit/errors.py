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
