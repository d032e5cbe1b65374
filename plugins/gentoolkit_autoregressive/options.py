"""The autoregressive family's decode options, declared once (torch-free: the CLI reads it for its flags).

``gentool sample``'s and ``gentool chat``'s flags, ``gentool serve``'s request fields, the ``sample``
and ``greedy`` samplers' arguments and the ``[sampler]`` config section's checks are all made from
:class:`TextOptions` (through :data:`TEXT_OPTIONS`), so a change here is a change everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gentoolkit.errors import GentoolError
from gentoolkit.plugin.options import option, resolve_sampling, sample_options

MAX_NEW_TOKENS = 1_000_000


@dataclass(frozen=True)
class TextOptions:
    """How a text model decodes. ``api``: the field of an OpenAI request that carries the option."""

    prompt: tuple[str, ...] = option("Prompt text (repeatable: a batch). Default: empty.", short="-p", sampler=False)
    max_new_tokens: int = option("Tokens to generate (default: stored with the model).", default=200, low=1,
                                 high=MAX_NEW_TOKENS, sampler=False, api="max_tokens")
    greedy: bool = option("Always pick the most likely token.", default=False)
    temperature: float = option("Divide logits by this (0 = greedy).", default=1.0, low=0, api="temperature",
                                api_schema={"maximum": 2})
    top_k: int = option("Keep the k most likely tokens (0 = off).", default=0, low=0, api="top_k")
    top_p: float = option("Keep the smallest set of tokens with this much probability.", default=1.0, low=0, high=1,
                          low_open=True, api="top_p")
    min_p: float = option("Drop tokens less likely than min-p times the top token.", default=0.0, low=0, high=1,
                          api="min_p")
    repetition_penalty: float = option("Penalize tokens already seen (1 = off).", default=1.0, low=0, low_open=True,
                                       api="repetition_penalty")
    stop: tuple[str, ...] = option("Stop at this string (repeatable; \\n escapes allowed).", sampler=False,
                                   escapes=True, api="stop", api_schema={"maxItems": 4})
    chat: str | None = option("A user message, through the model's chat template; prints the reply, which ends at "
                              "the end of the turn.", sampler=False)


TEXT_OPTIONS = sample_options(TextOptions)
#: the sampler by default, and the option that picks another one
CHOOSE = {"": "sample", "greedy": "greedy"}
FAMILY = "autoregressive"


def resolve(defaults: Mapping[str, Any], given: Mapping[str, Any], sampler: str | None = None,
            sampler_opts=()) -> tuple[Any, int, tuple[str, ...]]:
    """``(sampler, max_new_tokens, stop)`` from the options a user gave (CLI, Python or a request), the
    model's stored defaults, then the declared ones, filling the rest."""
    from .decode import check_sampler

    s, rest = resolve_sampling("logits", declared=TEXT_OPTIONS, choose=CHOOSE, given=given, family=FAMILY,
                               defaults=defaults, sampler=sampler, sampler_opts=sampler_opts)
    check_sampler(s, sampler or "the text sampler")
    length = next(o for o in TEXT_OPTIONS if o.name == "max_new_tokens").default
    return s, int(rest.get("max_new_tokens", defaults.get("max_new_tokens", length))), tuple(rest.get("stop", ()))


def no_prompt_option(options: Mapping[str, Any]) -> None:
    if "prompt" in options:
        raise GentoolError("give the prompts as the first argument, not as prompt=")
