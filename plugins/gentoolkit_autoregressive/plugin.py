"""Entry point of the built-in autoregressive family (``gentoolkit`` group, name ``autoregressive``).

Only torch-free modules are imported here; the model, trainer and sampler are
named as ``"module:attribute"`` strings and imported when used.
"""

from pathlib import Path

from gentoolkit import DatasetSpec, Interop, LossSpec, ModelSpec, RuntimeSpec, SamplerSpec, Tools, hookimpl
from gentoolkit.plugin.options import sampler_arguments

from . import options
from .config import GPT_PRESETS, INIT, LLAMA_PRESETS, SECTIONS, GPTConfig, LlamaConfig

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
                sample=f"{_P}.run_model:sample",
                evaluate=f"{_P}.run_model:evaluate",
                export=f"{_P}.export:plan",
                sample_options=options.TEXT_OPTIONS,
                tools=Tools(timing=f"{_P}.timing:run_cases",
                            bench=f"{_P}.bench:bench" if name == "gpt" else None,
                            quickstart=f"{_P}.quickstart:quickstart" if name == "gpt" else None),
                interop=Interop(hf_model_types=("gpt2",) if name == "gpt" else ("llama",),
                                hf_import=f"{_P}.hf:import_folder", hf_export=f"{_P}.hf:export_folder",
                                gguf_architectures=("gpt2",) if name == "gpt" else ("llama",),
                                gguf_import=f"{_P}.gguf_file:import_file"),
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


@hookimpl
def register_samplers(register):
    register(SamplerSpec(name="sample", kind="logits", factory=f"{_P}.samplers:make_sampler", options=sampler_arguments(options.TEXT_OPTIONS),
                         aliases=("multinomial",),
                         description="Draw from the distribution after repetition penalty, temperature, top-k, top-p, min-p."))
    register(SamplerSpec(name="greedy", kind="logits", factory=f"{_P}.samplers:make_greedy",
                         options=sampler_arguments(options.TEXT_OPTIONS, takes=("repetition_penalty",)),
                         description="Always the most likely token (after the repetition penalty)."))


@hookimpl
def register_runtimes(register):
    register(RuntimeSpec(name="autoregressive", description="Exported KV-cache decoders: generate() and stream() text.",
                         load="gentoolkit_autoregressive.runtime:TextModel", sample_options=options.TEXT_OPTIONS,
                         timing=f"{_P}.timing:export_cases", serve=f"{_P}.serving:make_engine",
                         web=str(Path(__file__).with_name("web") / "lm.mjs")))


#: the decode options gentool chat takes (their flags come from the declaration, as gentool sample's do)
CHAT_OPTIONS = ("max_new_tokens", "greedy", "temperature", "top_p")


@hookimpl
def register_commands(cli):
    import click

    from gentoolkit.cli.params import SEED, option_flag

    @click.command()
    @click.argument("path", type=click.Path())
    @click.option("--system", help="A system message that starts the conversation.")
    @click.option("--seed", type=SEED, help="Seed of the first reply (the next ones count up from it).")
    def chat(path, system, seed, **given):
        """Talk to a language model (a run or an export) through its chat template.

        One message a line; /reset forgets the conversation, /exit (or the end of input) quits.
        """
        from .chat import chat_loop

        chat_loop(path, system=system, seed=seed, options={k: v for k, v in given.items() if v is not None})

    chat.params.extend(option_flag(o) for o in options.TEXT_OPTIONS if o.name in CHAT_OPTIONS)
    cli.add_command(chat)
