"""``gentool bench PATH``: the cases that time a user's own language model, exported or a run folder.

Greedy decoding (every token, no end token) of ``new_tokens`` after a ``prompt_tokens`` prompt, and
the first token after a ``first_token_prompt`` prompt. The prompts are Python's documentation
topics (``pydoc_data``) through the model's own tokenizer, so every back end of one model reads
the same ids.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .decode import generate_tokens


def prompt_ids(tokenizer, n: int) -> list[int]:
    """The first ``n`` ids of the documentation topics' text (repeated if the text is shorter)."""
    from pydoc_data.topics import topics

    text = "\n".join(topics[k].strip() for k in sorted(topics)[:40])
    ids = [i for i in tokenizer.encode(text) if i != tokenizer.pad_id]
    while len(ids) < n:
        ids += ids
    return ids[:n]


def plan(context: int, options: dict[str, Any]) -> tuple[tuple[int, int, int], tuple[str, str]]:
    """(prompt, new tokens, long prompt) cut to fit ``context``, and the two cases' names (another
    back end timing the same model names its cases the same way)."""
    p = max(1, min(options["prompt_tokens"], context - 2))
    n = max(2, min(options["new_tokens"], context - p))
    long = max(1, min(options["first_token_prompt"], context - 1))
    return (p, n, long), (f"decode {n} after {p}", f"first token after {long}")


def decode_cases(decoder, tokenizer, options: dict[str, Any]) -> list[tuple[str, Callable[[], dict]]]:
    """``decode`` (tokens/s after the first token, the first token's time, the tokens) and
    ``first token`` after the long prompt, both cut to the model's context."""
    from .samplers import make_greedy

    (p, n, long), names = plan(int(decoder.context_length), options)
    ids = prompt_ids(tokenizer, max(p, long))
    greedy = make_greedy()

    def run(prompt: list[int], new: int):
        return generate_tokens(decoder, [prompt], sampler=greedy, max_new_tokens=new, pad_id=tokenizer.pad_id,
                               eos_id=None)

    def decode() -> dict:
        t0 = time.perf_counter()
        steps = run(ids[:p], n)
        tokens = [int(next(steps)[0])]
        t1 = time.perf_counter()
        tokens += [int(new[0]) for new in steps]
        t2 = time.perf_counter()
        return {"tokens_per_s": (len(tokens) - 1) / (t2 - t1), "first_token_ms": 1000 * (t1 - t0), "tokens": tokens,
                "prompt": ids[:p]}

    def first_token() -> dict:
        t0 = time.perf_counter()
        next(run(ids[:long], 1))
        return {"first_token_ms": 1000 * (time.perf_counter() - t0)}

    return list(zip(names, (decode, first_token)))


def export_cases(driver, options: dict[str, Any]) -> list[tuple[str, Callable[[], dict]]]:
    """Registered as the ``autoregressive`` runtime's ``timing``: an export through gentoolkit.runtime."""
    return decode_cases(driver.decoder, driver.tokenizer, options)


def run_cases(run, options: dict[str, Any]) -> list[tuple[str, Callable[[], dict]]]:
    """Registered as the models' ``timing``: a run folder through PyTorch with the KV cache."""
    from .run_model import TorchDecoder, load_run

    model, tok, _ = load_run(run)
    return decode_cases(TorchDecoder(model), tok, options)
