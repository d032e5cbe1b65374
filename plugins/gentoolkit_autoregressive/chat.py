"""``gentool chat PATH``: talk to a run or an export through its chat template (registered by this plugin)."""

from __future__ import annotations

import sys

from gentoolkit.errors import GentoolError


def open_model(path: str, device: str = "cpu"):
    """(decoder, tokenizer, sampler defaults) of a run folder (PyTorch) or an export folder (onnxruntime)."""
    from gentoolkit.runtime.folder import is_export

    if is_export(path):
        from gentoolkit.runtime import load

        model = load(path)
        if model.family != "autoregressive":
            raise GentoolError(f"{path!r} is a {model.family} export; chat is for language models")
        return model.decoder, model.tokenizer, model.defaults
    from gentoolkit.plugin.manager import get_model
    from gentoolkit.train.run import Run

    run = Run.open(path)
    if get_model(run.model_name).family != "autoregressive":
        raise GentoolError(f"{path!r} is a {run.model_name} run; chat is for language models")
    from .run_model import TorchDecoder, load_run

    model, tok, _ = load_run(run, device)
    return TorchDecoder(model), tok, dict(run.config.get("sampler", {}))


def chat_loop(path: str, *, system: str | None, seed: int | None, options: dict, lines=None, out=None) -> None:
    """Read user turns (one a line; ``/reset`` forgets the conversation, ``/exit`` or end of input quits),
    print each reply as it comes (to ``out``, default the standard output of the moment: a default of
    ``sys.stdout`` would be the stream of whoever first imported this module). ``seed`` seeds the first
    reply of a conversation, the next ones ``seed + 1``, ..."""
    from .printing import stream_rows

    out = out if out is not None else sys.stdout
    decoder, tok, defaults = open_model(path)
    if not tok.chat_template:
        raise GentoolError(f"{path!r} has no chat template; chat needs a model that has one (import one, or "
                           "fine-tune from one)")
    start = [{"role": "system", "content": system}] if system else []
    messages = list(start)
    interactive = lines is None and sys.stdin.isatty()
    source = lines if lines is not None else sys.stdin
    turn = 0
    while True:
        if interactive:
            print("you> ", end="", file=sys.stderr, flush=True)
        line = next(iter(source), None) if lines is None else (lines.pop(0) if lines else None)
        if line is None or line.strip() == "/exit":
            return
        line = line.rstrip("\n")
        if line.strip() == "/reset":  # a new conversation, seeded as the first one was
            messages, turn = list(start), 0
            continue
        if not line.strip():
            continue
        messages.append({"role": "user", "content": line})
        reply = ""
        for _, piece in stream_rows(decoder, tok, defaults, [tok.chat_ids(messages)],
                                    seed=None if seed is None else seed + turn, sampler=None, sampler_opts=(),
                                    options=dict(options)):
            out.write(piece)
            out.flush()
            reply += piece
        out.write("\n")
        messages.append({"role": "assistant", "content": reply})
        turn += 1
