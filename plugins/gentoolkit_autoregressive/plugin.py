"""Entry point of the built-in autoregressive family (``gentoolkit`` group, name ``autoregressive``).

Only torch-free modules are imported here; the model, trainer and sampler are
named as ``"module:attribute"`` strings and imported when used.
"""

from pathlib import Path

from gentoolkit import DatasetSpec, LossSpec, ModelSpec, RuntimeSpec, SamplerSpec, hookimpl

from .config import GPT_PRESETS, INIT, LLAMA_PRESETS, SECTIONS, GPTConfig, LlamaConfig
from .options import TEXT_OPTIONS

_P = "gentoolkit_autoregressive"


@hookimpl
def register_models(register):
    for name, cfg, presets, desc in (
        ("gpt", GPTConfig, GPT_PRESETS, "GPT-2 style transformer (learned positions, LayerNorm, GELU, tied embeddings)."),
        ("llama", LlamaConfig, LLAMA_PRESETS, "LLaMA style transformer (RoPE, RMSNorm, SwiGLU, grouped-query attention)."),
    ):
        register(
            ModelSpec(
                name=name,
                family="autoregressive",
                description=desc,
                config=cfg,
                sections=SECTIONS,
                presets=presets,
                default_preset="micro",
                build=f"{_P}.model:build",
                trainer=f"{_P}.task:LanguageModelTask",
                sample=f"{_P}.sample:sample",
                evaluate=f"{_P}.sample:evaluate",
                export=f"{_P}.export:plan",
                sample_options=TEXT_OPTIONS,
                timing=f"{_P}.timing:run_cases",
                bench=f"{_P}.bench:bench" if name == "gpt" else None,
                quickstart=f"{_P}.quickstart:quickstart" if name == "gpt" else None,
                hf_model_types=("gpt2",) if name == "gpt" else ("llama",),
                hf_import=f"{_P}.hf:import_folder",
                hf_export=f"{_P}.hf:export_folder",
                gguf_architectures=("gpt2",) if name == "gpt" else ("llama",),
                gguf_import=f"{_P}.gguf_file:import_file",
                init=INIT,
            )
        )


@hookimpl
def register_losses(register):
    register(
        LossSpec(
            name="cross-entropy",
            family="autoregressive",
            description="Next-token negative log-likelihood.",
            impl=f"{_P}.losses:cross_entropy",
            aliases=("ce",),
        )
    )
    register(
        LossSpec(
            name="label-smoothed",
            family="autoregressive",
            description="Cross-entropy with label smoothing (loss.label_smoothing, default 0.1).",
            impl=f"{_P}.losses:label_smoothed_cross_entropy",
        )
    )


@hookimpl
def register_datasets(register):
    register(
        DatasetSpec(
            name="pydoc",
            kind="text",
            description="Python's documentation topics (pydoc_data, ~465k characters of English); the default corpus.",
            load=f"{_P}.data:pydoc_topics",
        )
    )


_DECODE_OPTIONS = {"temperature": float, "top_k": int, "top_p": float, "min_p": float, "repetition_penalty": float}


@hookimpl
def register_samplers(register):
    register(SamplerSpec(name="sample", kind="logits", factory=f"{_P}.samplers:make_sampler", options=_DECODE_OPTIONS,
                         aliases=("multinomial",),
                         description="Draw from the distribution after repetition penalty, temperature, top-k, top-p, min-p."))
    register(SamplerSpec(name="greedy", kind="logits", factory=f"{_P}.samplers:make_greedy",
                         options={"repetition_penalty": float},
                         description="Always the most likely token (after the repetition penalty)."))


@hookimpl
def register_runtimes(register):
    register(RuntimeSpec(name="autoregressive", description="Exported KV-cache decoders: generate() and stream() text.",
                         load="gentoolkit_autoregressive.runtime:TextModel", sample_options=TEXT_OPTIONS,
                         timing=f"{_P}.timing:export_cases", serve=f"{_P}.serving:make_engine",
                         web=str(Path(__file__).with_name("web") / "lm.mjs")))


@hookimpl
def register_commands(cli):
    import click

    from gentoolkit.params import SEED, Number

    @cli.command()
    @click.argument("path", type=click.Path())
    @click.option("--system", help="A system message that starts the conversation.")
    @click.option("--seed", type=SEED, help="Seed of the first reply (the next ones count up from it).")
    @click.option("--max-new-tokens", type=Number(int, 1, 1_000_000), help="Longest reply, in tokens.")
    @click.option("--greedy", is_flag=True, default=None, help="Always the most likely token.")
    @click.option("--temperature", type=Number(float, 0), help="Divide logits by this (0 = greedy).")
    @click.option("--top-p", type=Number(float, 0, 1, low_open=True), help="Nucleus mass.")
    def chat(path, system, seed, max_new_tokens, greedy, temperature, top_p):
        """Talk to a language model (a run or an export) through its chat template.

        One message a line; /reset forgets the conversation, /exit (or the end of input) quits.
        """
        from .chat import chat_loop

        options = {"max_new_tokens": max_new_tokens, "greedy": greedy, "temperature": temperature, "top_p": top_p}
        chat_loop(path, system=system, seed=seed, options={k: v for k, v in options.items() if v is not None})
