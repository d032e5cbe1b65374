"""What ``gentool sample`` prints for a text model, a run (PyTorch) or an export (onnxruntime) alike.

The runtime (:mod:`.runtime`) returns text and never prints; this module is the command line's.
"""

from __future__ import annotations

import sys

from gentoolkit.errors import GentoolError

from .decode import stream_events, stream_text
from .options import no_prompt_option, resolve


def stream_rows(decoder, tokenizer, defaults: dict, prompts: list, *, seed, sampler, sampler_opts, options: dict):
    """``(row, piece)`` of one batch, for any decoder."""
    no_prompt_option(options)
    s, n, stop = resolve(defaults, options, sampler, sampler_opts)
    return stream_text(decoder, tokenizer, prompts, sampler=s, max_new_tokens=n, seed=seed, stop=stop)


def cli_sample(decoder, tokenizer, defaults: dict, *, n: int, seed, out, sampler, sampler_opts, prompt, options: dict,
               as_json: bool = False) -> None:
    """What ``gentool sample`` prints for a run or an export: ``n`` continuations of every prompt; one
    row streams as it comes, a batch prints when it is done. With ``chat``, the reply to it. ``as_json``:
    one JSON object, ``{"samples": [{"prompt", "text", "ids", "finish"}]}``, when all are done."""
    if out is not None:
        raise GentoolError("text models print to the terminal: --out is for families that write files; "
                           "redirect the text with '> FILE'")
    if as_json:
        return _json_sample(decoder, tokenizer, defaults, n=n, seed=seed, sampler=sampler, sampler_opts=sampler_opts,
                            prompt=prompt, options=options)
    chat = options.pop("chat", None)
    if chat is not None:
        if prompt:
            raise GentoolError("give --chat or --prompt, not both")
        ids = tokenizer.chat_ids([{"role": "user", "content": chat}])
        rows = [ids for _ in range(n)]
        texts = [""] * n
        for i, piece in stream_rows(decoder, tokenizer, defaults, rows, seed=seed, sampler=sampler,
                                    sampler_opts=sampler_opts, options=options):
            if n == 1:
                sys.stdout.write(piece)
                sys.stdout.flush()
            texts[i] += piece
        sys.stdout.write("\n" if n == 1 else "".join(f"--- sample {i + 1}\n{t}\n" for i, t in enumerate(texts)))
        return
    rows = [p for p in (prompt or [""]) for _ in range(n)]
    pieces = stream_rows(decoder, tokenizer, defaults, rows, seed=seed, sampler=sampler, sampler_opts=sampler_opts,
                         options=options)
    if len(rows) == 1:
        sys.stdout.write(rows[0])
        for _, piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return
    texts = [""] * len(rows)
    for i, piece in pieces:
        texts[i] += piece
    for i, (p, t) in enumerate(zip(rows, texts)):
        print(f"--- sample {i + 1}")
        print(p + t)


def _json_sample(decoder, tokenizer, defaults: dict, *, n: int, seed, sampler, sampler_opts, prompt, options: dict
                 ) -> None:
    import json

    chat = options.pop("chat", None)
    if chat is not None and prompt:
        raise GentoolError("give --chat or --prompt, not both")
    shown = [chat] * n if chat is not None else [p for p in (prompt or [""]) for _ in range(n)]
    rows = [tokenizer.chat_ids([{"role": "user", "content": chat}])] * n if chat is not None else shown
    s, max_new, stop = resolve(defaults, options, sampler, sampler_opts)
    texts, finish, ids = [""] * len(rows), [None] * len(rows), []
    for i, piece, end, _ in stream_events(decoder, tokenizer, rows, sampler=s, seed=seed, stop=stop,
                                          max_new_tokens=max_new, ids=ids):
        texts[i] += piece
        finish[i] = end or finish[i]
    print(json.dumps({"samples": [{"prompt": p, "text": t, "ids": k, "finish": f}
                                  for p, t, k, f in zip(shown, texts, ids, finish)], "seed": seed}))
