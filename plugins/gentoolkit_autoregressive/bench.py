"""``gentool bench`` rows for the autoregressive family: one 63-token sample in every back end, side by side.

nanoGPT's CPU model size (4 layers, 4 heads, 128 wide, context 64, 65 symbols) with random
weights (speed does not depend on training), greedy decoding of 63 tokens from a 1-token
prompt, repeated:

* PyTorch, recomputing the whole context each step (what nanoGPT's ``generate`` does),
* PyTorch with the KV cache (gentoolkit's run-folder sampling),
* gentoolkit.runtime (onnxruntime, KV cache, numpy sampling),
* onnxruntime-genai on the same export folder, when it is installed;

then the runtime and onnxruntime-genai again, sampling (temperature 0.8, top-k 40): what most
apps do, and where the runtime's per-token numpy work shows. Each runtime row is also compared
with its onnxruntime-genai row round by round (:func:`gentoolkit.cli.bench.paired_ratio`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

NEW_TOKENS = 63
SAMPLED = {"temperature": 0.8, "top_k": 40}  # the sampled rows: a common setting, the same in both back ends
SAMPLED_NAME = "sampled (temperature 0.8, top-k 40)"


def export_for_bench(folder: Path):
    """A random-weight gpt of nanoGPT's CPU size with a 65-symbol char tokenizer, exported to ``folder/export``;
    returns (model, tokenizer, export folder)."""
    import torch

    from gentoolkit.config import build as build_config
    from gentoolkit.config import to_dict
    from gentoolkit.export import export
    from gentoolkit.plugin.manager import get_model
    from gentoolkit.train.checkpoint import save_run_weights as save_weights
    from gentoolkit.train.run import Run

    spec = get_model("gpt")
    tree = build_config(spec.config_sections, spec.presets["micro"],
                        sets=["data.tokenizer=char"])
    run_dir = folder / "run"
    run_dir.mkdir()
    torch.manual_seed(0)
    import string

    from .model import build
    from .tokenizer_build import char_tokenizer

    tok = char_tokenizer([string.ascii_letters + " .,;:!?'\n-&"])  # 63 characters + 2 special = 65 symbols
    tok.save(run_dir / "tokenizer.json")
    import dataclasses

    tree["model"] = dataclasses.replace(tree["model"], vocab_size=tok.vocab_size)
    # no training text: point the data at a file the char vocabulary cannot read, so the export skips its quality report
    tree["data"] = dataclasses.replace(tree["data"], path=str(run_dir / "tokenizer.json"))
    model = build(tree["model"]).eval()
    run = Run(run_dir)
    run.write_config({"model": "gpt", "family": "autoregressive", "plugin": spec.plugin, "config": to_dict(tree)})
    save_weights(run, {"": model})
    export(run_dir, folder / "export", log=lambda m: None)
    return model, tok, folder / "export"


def bench(repeat: int = 5) -> dict:
    """Registered as ``gpt``'s ``bench`` entry."""
    import numpy as np
    import torch

    from gentoolkit.cli.bench import paired_ratio, timed_together
    from gentoolkit.runtime import load

    from .decode import generate_tokens
    from .run_model import TorchDecoder
    from .samplers import make_greedy, make_sampler

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model, tok, export_dir = export_for_bench(Path(tmp))
        block = model.config.block_size
        prompt = [tok.encode("T")[0]]

        @torch.no_grad()
        def full_recompute():  # nanoGPT's generate(): crop, full forward, last logits, argmax
            idx = torch.tensor([prompt])
            for _ in range(NEW_TOKENS):
                logits, _ = model(idx[:, -block:])
                idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
            return idx

        greedy = make_greedy()

        def torch_cached():
            return list(generate_tokens(TorchDecoder(model), [prompt], sampler=greedy, max_new_tokens=NEW_TOKENS,
                                        pad_id=tok.pad_id))

        lm = load(export_dir)

        def runtime(sampler):
            return lambda: list(generate_tokens(lm.decoder, [prompt], sampler=sampler, max_new_tokens=NEW_TOKENS,
                                                pad_id=tok.pad_id, seed=0))

        runtime_greedy, runtime_sampled = "gentoolkit.runtime (onnxruntime, KV cache)", f"gentoolkit.runtime, {SAMPLED_NAME}"
        cases = [("PyTorch, full recompute (nanoGPT generate)", full_recompute),
                 ("PyTorch, KV cache (gentool sample RUN)", torch_cached),
                 (runtime_greedy, runtime(greedy)), (runtime_sampled, runtime(make_sampler(**SAMPLED)))]
        pairs = {}  # a runtime row -> the onnxruntime-genai row it is compared with round by round
        try:
            import onnxruntime_genai as og

            og_model = og.Model(str(export_dir))

            def genai(**search):
                def run():
                    params = og.GeneratorParams(og_model)
                    # a seed, as the runtime is given one: unseeded, each Generator draws its own from
                    # std::random_device, slow on some VMs (docs/performance.md);
                    # min_length: every token is generated, as the runtime here does not stop at the end token
                    n = len(prompt) + NEW_TOKENS
                    params.set_search_options(max_length=n, min_length=n, random_seed=0, **search)
                    gen = og.Generator(og_model, params)
                    gen.append_tokens(np.array(prompt, dtype=np.int32))
                    while not gen.is_done():
                        gen.generate_next_token()

                return run

            cases += [("onnxruntime-genai, same folder", genai(do_sample=False)),
                      (f"onnxruntime-genai, {SAMPLED_NAME}", genai(do_sample=True, **SAMPLED))]
            pairs = {runtime_greedy: cases[-2][0], runtime_sampled: cases[-1][0]}
        except ImportError:
            pass
        firsts: dict[str, float] = {}
        rounds: dict[str, list[float]] = {}
        times = timed_together(cases, repeat, firsts, rounds)
        full = times[cases[0][0]]
        for name, seconds in times.items():
            rows.append({"backend": name, "tokens_per_s": NEW_TOKENS / seconds, "ms_per_sample": 1000 * seconds,
                         "x_full_recompute": full / seconds, "ms_first_call": 1000 * firsts[name]})
            if name in pairs:
                rows[-1]["vs_genai"] = paired_ratio(rounds[pairs[name]], rounds[name])
            if name == runtime_greedy:
                rows[-1].update(headline=True, what=f"gpt, {NEW_TOKENS} tokens", passes=NEW_TOKENS)
    return {"title": f"Autoregressive, {NEW_TOKENS} new tokens (greedy unless the row says sampled), nanoGPT CPU size "
                     "(4x128, context 64), 1 thread", "rows": rows}


