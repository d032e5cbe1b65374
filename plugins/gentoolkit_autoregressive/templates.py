"""Chat templates, rendered as transformers renders them (torch-free; jinja2).

A model's chat template (``tokenizer_config.json``'s ``chat_template``, or ``chat_template.jinja``)
turns a list of messages into the text the model was trained on. transformers renders it in a
sandboxed Jinja environment with ``trim_blocks`` and ``lstrip_blocks``, the loop-controls
extension, a ``tojson`` filter that keeps non-ASCII text, and the globals ``raise_exception``
and ``strftime_now``; the special tokens (``bos_token``, ``eos_token``, ...) are variables. The
same here, so a prompt is the same text, token for token, in both.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from gentoolkit.errors import GentoolError

Message = dict[str, Any]


def _raise(message: str):
    raise GentoolError(f"the chat template refused the messages: {message}")


def _strftime_now(fmt: str) -> str:
    import datetime

    return datetime.datetime.now().strftime(fmt)


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


@functools.lru_cache(maxsize=16)
def _compile(template: str):
    try:
        from jinja2.exceptions import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:  # pragma: no cover - jinja2 is a dependency of gentoolkit
        raise GentoolError("chat needs jinja2: pip install jinja2") from None
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(template)
    except TemplateError as exc:
        raise GentoolError(f"the model's chat template is not valid Jinja: {exc}") from None


def check_messages(messages: Sequence[Message]) -> list[Message]:
    """A list of ``{"role": str, "content": str}`` (a clear error otherwise)."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise GentoolError("chat takes a non-empty list of messages, {'role': ..., 'content': ...} each")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise GentoolError(f"message {i} must be {{'role': str, 'content': str}}, got {m!r}")
        out.append(dict(m))
    return out


def render(template: str | None, messages: Sequence[Message], *, add_generation_prompt: bool = True,
           specials: dict[str, str | None] | None = None, **extra) -> str:
    """The text of ``messages`` under ``template``; ``specials`` are the token variables
    (``bos_token``, ``eos_token``, ``pad_token``, ``unk_token``)."""
    if not template:
        raise GentoolError("this model has no chat template (tokenizer_config.json's chat_template); chat needs "
                           "one: a model imported with one, or fine-tuned from one")
    from jinja2.exceptions import TemplateError

    try:
        return _compile(template).render(messages=check_messages(messages), add_generation_prompt=add_generation_prompt,
                                         **(specials or {}), **extra)
    except TemplateError as exc:
        raise GentoolError(f"the model's chat template failed: {exc}") from None


def assistant_spans(template: str, messages: Sequence[Message], specials: dict) -> tuple[str, list[tuple[int, int]]]:
    """The whole conversation's text and the character spans of the assistant's turns in it.

    A turn's span runs from the end of the conversation before it, with the generation prompt,
    to the end of the conversation through it (its end-of-turn token included, so that a model
    learns to stop). That needs each shorter rendering to be a prefix of the longer one, as it is
    for the templates in use (ChatML, Llama's, Zephyr's); a template that is not is refused.
    """
    messages = check_messages(messages)
    full = render(template, messages, add_generation_prompt=False, specials=specials)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = render(template, messages[:i], add_generation_prompt=True, specials=specials) if i else ""
        through = render(template, messages[: i + 1], add_generation_prompt=False, specials=specials)
        if not (full.startswith(through) and through.startswith(before)):
            raise GentoolError("the chat template does not render a conversation's turns as prefixes of it, so the "
                               "assistant's tokens cannot be told apart for training")
        spans.append((len(before), len(through)))
    return full, spans
