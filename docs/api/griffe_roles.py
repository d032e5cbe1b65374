"""A griffe extension for the API reference: Sphinx roles in docstrings become Markdown code.

The code's docstrings are reStructuredText in places (``:class:`TextStreamer```,
``:func:`~gentoolkit.plugin.options.make_sampler```, ``step::`` before a literal block), which
mkdocstrings would print as they stand. mkdocs.yml loads this file (mkdocstrings' python
handler, ``extensions``); it changes nothing in the code, only the text griffe hands on.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:meth|func|class|mod|data|attr|exc|obj|const):`(~?)\.?([^`]+)`")
LITERAL = re.compile(r"(\S)::$", re.M)  # "text::" then an indented block: "text:" and a code block


def _code(match: re.Match) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def markdown(text: str) -> str:
    """``text`` with every Sphinx cross-reference role a code span and ``::`` a plain colon."""
    return LITERAL.sub(r"\1:", ROLE.sub(_code, text))


class SphinxRoles(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
