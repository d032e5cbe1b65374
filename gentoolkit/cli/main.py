"""The ``gentool`` command line.

Only click, pluggy and the registries are imported here: every command that
needs torch, onnx or matplotlib imports them inside its callback, so ``gentool
--help`` stays fast. User mistakes (:class:`~gentoolkit.errors.GentoolError`)
become one ``Error: ...`` line and exit code 1; anything else keeps its traceback.
"""

from __future__ import annotations

import json
import os
import sys

import click

from gentoolkit import __version__
from gentoolkit.cli.params import COUNT, POSITIVE, SEED, Number, option_flag
from gentoolkit.errors import GentoolError, closest
from gentoolkit.plugin.manager import get_registries, plugin_records, reserved_command_names

#: what the ``train`` extra brings (import name -> what it is), for the line an app install prints
TRAIN_MODULES = {"torch": "PyTorch", "onnx": "onnx", "onnxscript": "onnxscript", "safetensors": "safetensors",
                 "tqdm": "tqdm", "matplotlib": "matplotlib", "sklearn": "scikit-learn"}


class GentoolGroup(click.Group):
    """A group that adds plugin commands and turns user errors into one line."""

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(get_registries().commands) | {"sample"})

    def get_command(self, ctx, name):
        if name == "sample":  # its flags come from the registered families
            return sample_command()
        return super().get_command(ctx, name) or get_registries().commands.get(name)

    def resolve_command(self, ctx, args):
        """An unknown command's error suggests the command fewest edits away (a swap counts as one:
        ``smaple`` -> ``sample``), among every command, plugin ones and ``sample`` included."""
        name = click.utils.make_str(args[0])
        if (not ctx.resilient_parsing and not name.startswith("-") and ctx.token_normalize_func is None
                and self.get_command(ctx, name) is None):
            hint = closest(name, self.list_commands(ctx))
            raise click.UsageError(f"No such command {name!r}." + (f" Did you mean {hint!r}?" if hint else ""), ctx)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            top = (exc.name or "").split(".")[0]
            if top not in TRAIN_MODULES:
                raise
            raise click.ClickException(f"'gentool {ctx.invoked_subcommand}' needs {TRAIN_MODULES[top]}, which this "
                                       "install lacks (an app install runs exports only): pip install "
                                       "'gentoolkit[train]'") from None
        except GentoolError as exc:
            if os.environ.get("RANK", "0") != "0":  # under torchrun, worker 0 alone says it
                raise click.exceptions.Exit(1) from None
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            raise click.exceptions.Exit(130) from None


@click.group(cls=GentoolGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gentool")
def cli():
    """gentoolkit: train small generative models and ship them as ONNX.

    Built in: gpt and llama (autoregressive transformers), gan and dcgan (GANs);
    'gentool models' lists every model installed, with its presets. Plugins add
    model families (gentoolkit-diffusion: ddpm), samplers, losses, datasets and
    commands; see 'gentool plugins'. Try: gentool quickstart, or gentool train
    gpt, then gentool sample RUN.
    """


def _echo_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


def _spec_row(kind: str, spec) -> dict:
    row = {"name": spec.name, "description": spec.description, "plugin": spec.plugin}
    if hasattr(spec, "family"):
        row["family"] = spec.family
    if hasattr(spec, "kind") and kind != "models":
        row["kind"] = spec.kind
    if getattr(spec, "aliases", ()):
        row["aliases"] = list(spec.aliases)
    if kind == "models":
        row["presets"] = list(spec.presets)
    return row


def _make_list_command(kind: str, what: str):
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
    def command(as_json: bool):
        rows = [_spec_row(kind, spec) for spec in get_registries().of(kind)]
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        if not rows:
            click.echo(f"No {kind} registered. Run 'gentool plugins' to see what loaded.")
            return
        cols = ["name"] + [c for c in ("family", "kind") if c in rows[0]] + ["plugin"]
        cols += ["presets"] if kind == "models" else []
        table = [[", ".join(r[c]) if isinstance(r[c], list) else r[c] for c in cols] for r in rows]
        _echo_table([t + [r["description"]] for t, r in zip(table, rows)], cols + ["description"])

    command.__doc__ = f"List the registered {what}."
    return cli.command(name=kind)(command)


for _kind, _what in (
    ("models", "models (trainable families and their presets)"),
    ("samplers", "samplers (decoding strategies and latent samplers)"),
    ("losses", "losses (training objectives)"),
    ("datasets", "datasets (named data sources, never downloaded)"),
    ("runtimes", "runtimes (torch-free drivers for exported families)"),
):
    _make_list_command(_kind, _what)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def plugins(as_json: bool):
    """List plugins: what each registered, and those that failed (with the reason)."""
    records = plugin_records()
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in records], indent=2))
        return
    for r in records:
        dist = f"{r.distribution} {r.version}" if r.distribution else "(registered in-process)"
        status = "FAILED" if r.error else "ok"
        click.echo(f"{r.name}  [{dist}]  {status}")
        if r.error:
            click.echo(f"  error: {r.error}")
            continue
        click.echo(f"  hooks: {', '.join(r.hooks) or '-'}")
        for kind, names in r.registered.items():
            if names:
                click.echo(f"  {kind}: {', '.join(names)}")


@cli.command()
@click.argument("model")
@click.option("--preset", help="A preset of the model (see 'gentool models'); default: the model's own.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML or JSON file of config sections.")
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE", help="Override one config key (repeatable).")
@click.option("--data", help="Text file, folder or dataset name (= --set data.path=...).")
@click.option("--out", "-o", help="Run folder to write (default runs/MODEL-TIMESTAMP).")
@click.option("--steps", type=Number(int, 1, 10**12), help="Training steps (= --set train.steps=N).")
@click.option("--seed", type=SEED, help="Random seed (= --set train.seed=N).")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--resume", is_flag=True, help="Continue the run in --out (also extends a finished run to more --steps).")
@click.option("--init", "init", type=click.Path(), metavar="RUN_OR_HF_DIR",
              help="Start from a trained model: a run folder, or a Hugging Face folder (fine-tuning: the family decides the preset and what the new run keeps).")
@click.option("--print-config", is_flag=True, help="Print the resolved config as TOML and exit.")
@click.option("--quiet", "-q", is_flag=True, help="No progress and no summary: errors and alarms only.")
@click.option("--log-file", type=click.Path(dir_okay=False), help="Append every progress line and alarm to this file.")
@click.option("--json", "as_json", is_flag=True, help="Print the final metrics as one JSON object on stdout.")
@click.option("--nproc-per-node", "nproc", type=click.IntRange(1, 1024), default=1, show_default=True,
              help="Workers on this machine (PyTorch DDP through torchrun; gloo on CPU, NCCL on CUDA).")
def train(model, preset, config_file, sets, data, out, steps, seed, device, resume, init, print_config, quiet,
          log_file, as_json, nproc):
    """Train MODEL (see 'gentool models') into a run folder.

    Progress is a bar on a terminal and a plain line every few seconds otherwise (TQDM_DISABLE=1:
    lines on a terminal too). Ctrl-C saves the state first; continue with --resume --out RUN.
    """
    from gentoolkit.progress import Output
    from gentoolkit.train.loop import train_from_cli

    train_from_cli(
        model,
        preset=preset,
        config_file=config_file,
        sets=sets,
        out=out,
        device=device,
        resume=resume,
        print_config=print_config,
        shortcuts={"data.path": data, "train.steps": steps, "train.seed": seed},
        nproc=nproc,
        init=init,
        output=Output(quiet=quiet, log_file=log_file),
        as_json=as_json,
    )


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


def unescape(text: str) -> str:
    """A string as the user typed it, with ``\\n``, ``\\t``, ``\\r`` and ``\\\\`` read as escapes
    (any other backslash, and every non-ASCII character, stays as it is)."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPES:
            out.append(_ESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def sample_command() -> click.Command:
    """``gentool sample``: the host's options, and a flag for every option a registered family declares."""
    from gentoolkit.plugin.specs import merge_declared

    regs = get_registries()
    specs = sorted([*regs.runtimes, *regs.models], key=lambda s: getattr(s, "family", s.name))
    declared = merge_declared(specs)
    families = {name: sorted({getattr(s, "family", s.name) for s in specs if any(o.name == name for o in s.sample_options)})
                for name in declared}

    @click.command(name="sample", context_settings={"help_option_names": ["-h", "--help"]})
    @click.argument("path", type=click.Path())
    @click.option("-n", "--num-samples", type=COUNT, default=1, show_default=True,
                  help="Samples (for text: per prompt).")
    @click.option("--seed", type=SEED, help="Seed: the same seed gives the same output in PyTorch and onnxruntime.")
    @click.option("--sampler", help="A registered sampler by name (see 'gentool samplers').")
    @click.option("--sampler-opt", multiple=True, metavar="KEY=VALUE", help="An option of --sampler (repeatable).")
    @click.option("--out", "-o", type=click.Path(), help="Write the samples here (.png, .csv or .npy), where the family writes files.")
    @click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]))
    @click.option("--json", "as_json", is_flag=True,
                  help="One JSON object on stdout: text with its token ids, or the path of the samples' file.")
    def sample(path, num_samples, seed, sampler, sampler_opt, out, device, as_json, **options):
        """Generate from a run folder (PyTorch) or an export folder (onnxruntime); same seed, same output.

        The options below the host's come from the families (see 'gentool models'); one a family
        does not take is an error naming those it does.
        """
        from gentoolkit.cli.commands import sample_command as run

        for name, value in options.items():
            if declared[name].escapes and value:
                options[name] = [unescape(v) for v in value] if declared[name].multiple else unescape(value)
        run(path, n=num_samples, seed=seed, sampler=sampler, sampler_opts=sampler_opt, out=out, device=device,
            options={k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()}, as_json=as_json)

    sample.params.extend(option_flag(opt, f"{opt.help} [{', '.join(families[name])}]") for name, opt in declared.items())
    return sample


@cli.command(name="eval")
@click.argument("run", type=click.Path())
@click.option("--data", help="Evaluate on this data instead of the run's validation split.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]))
@click.option("--window", type=Number(int, 1, 10**9),
              help="Text: score in windows of this many tokens [default: the model's context; a shorter text: one window].")
@click.option("--stride", type=Number(int, 1, 10**9),
              help="Text: start a window every this many tokens (each token is scored once, after at least "
              "window - stride tokens of context, but in the first window) [default: the window: side by side].")
def eval_(run, data, as_json, device, window, stride):
    """Evaluate a run (PyTorch) or an export (onnxruntime): a text model's validation loss, perplexity and
    bits per byte, or a sample model's metrics (modes, high_quality in %, ...).

    A text model's number is the whole validation split's (or the whole of --data), in windows of the
    context; training's val_loss is an estimate on train.eval_batches batches of it.
    """
    from gentoolkit.cli.commands import eval_command

    eval_command(run, data=data, as_json=as_json, device=device, window=window, stride=stride)


@cli.command()
@click.argument("run", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(),
              help="Folder to write: new, empty, or a previous export (replaced in one step).")
@click.option("--opset", type=Number(int, 1, 10_000), default=17, show_default=True, help="ONNX opset.")
@click.option("--rtol", type=POSITIVE, help="Validation: largest difference from PyTorch relative to each output's largest "
              "magnitude [default: 1e-3 fp32, 3e-2 fp16, 0.1 int8, 0.5 int4; docs/export.md].")
@click.option("--max-kl", type=POSITIVE, help="Validation: largest KL divergence of the next-token distribution from "
              "PyTorch's [default: 1e-4 fp32, 2e-2 fp16, 0.1 int8, 1.0 int4].")
@click.option("--atol", type=POSITIVE, help="Validation: an absolute bound on the difference, in place of --rtol.")
@click.option("--dtype", type=click.Choice(["fp32", "fp16", "int8", "int4"]), default="fp32", show_default=True,
              help="int8 and int4: weight-only quantization (onnxruntime's MatMulNBits).")
@click.option("--quantize", type=click.Choice(["int8"]), help="Dynamic int8 quantization of the weights (the older way).")
@click.option("--block-size", type=Number(int, 16, 4096), help="int8/int4: weights per scale [default: 32].")
@click.option("--asymmetric/--symmetric", default=None,
              help="int8/int4: a whole-number zero point per block, or none [default: asymmetric].")
@click.option("--accuracy-level", type=Number(int, 0, 4),
              help="int8/int4: onnxruntime's arithmetic, 0 as the inputs to 4 int8 [default: 4].")
@click.option("--quantize-head/--keep-head", default=None, help="int8/int4: quantize the output projection [default: yes].")
@click.option("--head-bits", type=click.Choice(["4", "8"]), help="int8/int4: the output projection's bits [default: 8].")
@click.option("--quantize-embedding", is_flag=True, default=None, help="int8/int4: quantize the token embedding too.")
@click.option("--eval-data", type=click.Path(), help="A text file to report the export's loss and perplexity on, beside "
              "PyTorch's (default: the run's validation split).")
@click.option("--graph", help="Which graph the family writes: 'traced' (PyTorch's exporter, plain ops) or one of its own "
              "(named in its error when unknown; see docs/export.md) [default: the family's].")
@click.option("--optimize/--no-optimize", default=True, show_default=True, help="onnxruntime's portable graph optimizations.")
@click.option("--no-validate", is_flag=True, help="Skip onnx.checker and the parity check against PyTorch.")
@click.option("--overwrite", is_flag=True,
              help="Write into a folder that holds other files; they are kept, only the export's own change.")
@click.option("--format", "fmt", type=click.Choice(["onnx", "hf"]), default="onnx", show_default=True,
              help="onnx: a validated ONNX folder; hf: a Hugging Face folder for transformers.")
@click.option("--layout", type=click.Choice(["onnx", "transformers.js"]), default="onnx", show_default=True,
              help="transformers.js: the folder its pipeline() loads (config.json, onnx/model*.onnx), which "
              "gentoolkit.runtime loads too.")
@click.option("--variants", metavar="LIST", help="--layout transformers.js: the model files, comma-separated, of fp32, "
              "fp16, q8, q4 [default: fp32,q8,q4].")
def export(run, out, opset, rtol, max_kl, atol, dtype, quantize, block_size, asymmetric, accuracy_level, quantize_head,
           head_bits, quantize_embedding, eval_data, graph, optimize, no_validate, overwrite, fmt, layout, variants):
    """Export a run to a validated ONNX folder (model.onnx, gentoolkit.json, ...) or a Hugging Face folder."""
    from gentoolkit.export import WeightQuant, main_cli

    given = {k: v for k, v in {"block_size": block_size, "symmetric": None if asymmetric is None else not asymmetric,
                               "accuracy_level": accuracy_level, "head": quantize_head,
                               "head_bits": None if head_bits is None else int(head_bits),
                               "embedding": quantize_embedding}.items() if v is not None}
    weights = WeightQuant(**given) if given or dtype in ("int8", "int4") else None
    main_cli(run, out, opset=opset, atol=atol, rtol=rtol, max_kl=max_kl, dtype=dtype, quantize=quantize, optimize=optimize, check=not no_validate,
             overwrite=overwrite, fmt=fmt, weights=weights, eval_data=eval_data, graph=graph, layout=layout,
             variants=variants)


@cli.command(name="import")
@click.argument("source", metavar="SOURCE", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(), help="The run folder to write (new or empty).")
def import_(source, out):
    """Make a pretrained model a run: sample, chat, eval, export, train --init.

    SOURCE is a Hugging Face model folder (Llama, GPT-2; safetensors) or a llama.cpp GGUF file
    (Llama, GPT-2; F32, F16, BF16, Q4_0 to Q8_0 and the K-quants). A GGUF's Q4_0, Q4_1 and Q8_0
    blocks are kept beside the fp32 weights, in quantized.safetensors.
    """
    from gentoolkit.cli.commands import import_command

    import_command(source, out)


@cli.command()
@click.argument("source", metavar="SOURCE")
@click.option("--out", "-o", required=True, type=click.Path(), help="The folder to write (new: never one that exists).")
@click.option("--size", type=Number(int, 8, 128), default=32, show_default=True,
              help="Pictures this many pixels square.")
def data(source, out, size):
    """Write a picture set as a folder of PNGs and labels.csv, ready for 'gentool train --data FOLDER'.

    SOURCE is a registered image dataset ('gentool datasets': emoji, digits) or a folder of PNG/JPEG
    pictures (RGBA laid on white, grayscale kept, non-square centre-cropped). emoji: the 3,395 colour
    emoji of Noto Color Emoji (Debian's fonts-noto-color-emoji), labelled with their Unicode group
    (Debian's unicode-data); nothing is downloaded.
    """
    from gentoolkit.cli.commands import data_command

    data_command(source, out, size)


@cli.command()
@click.option("--out", "-o", default="quickstart", show_default=True, type=click.Path(), help="Folder for everything it makes.")
@click.option("--small", is_flag=True, help="Tiny models and few steps (seconds, for CI); the output is not meaningful.")
@click.option("--seed", type=SEED, default=1, show_default=True)
def quickstart(out, small, seed):
    """Train each family's starter model, export it to ONNX, run it without torch, and show the results.

    Run it again on the same --out to continue: finished steps are kept, a training that Ctrl-C
    stopped resumes, and only what is missing is redone.
    """
    from gentoolkit.cli.quickstart import report, run

    report(run(out, "small" if small else "default", seed))


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--repeat", type=Number(int, 1, 10_000), default=5, show_default=True,
              help="Rounds (the median is shown; each round calls every case twice and counts the second).")
@click.option("--prompt-tokens", type=Number(int, 1, 10**6), help="Prompt length before decoding (with PATHs) [32].")
@click.option("--new-tokens", type=Number(int, 2, 10**6), help="Tokens decoded greedily (with PATHs) [128].")
@click.option("--first-token-prompt", type=Number(int, 1, 10**6),
              help="Prompt length of the time-to-first-token case (with PATHs) [512].")
@click.option("--batch", type=Number(int, 1, 10**6), help="Samples in the batched case of a generator (with PATHs) [256].")
@click.option("--threads", type=Number(int, 1, 1024), help="Threads of each session or of PyTorch (with PATHs) [1].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def bench(paths, repeat, prompt_tokens, new_tokens, first_token_prompt, batch, threads, as_json):
    """Time your exports and runs side by side (PATH...), or, with no PATH, one sample per family and back end.

    With PATHs, each one runs in its own process: tokens/s, time to the first token, peak memory,
    and the speed against the first PATH round by round.
    """
    options = {"prompt_tokens": prompt_tokens, "new_tokens": new_tokens, "first_token_prompt": first_token_prompt,
               "batch": batch, "threads": threads}
    if paths:
        from gentoolkit.cli.bench import bench_paths, print_path_table

        res = bench_paths(list(paths), options, repeat)
        show = print_path_table
    else:
        given = [k for k, v in options.items() if v is not None]
        if given:
            raise click.UsageError(f"--{given[0].replace('_', '-')} applies to the PATHs to time; give some")
        from gentoolkit.cli.bench import print_tables, run_all

        res, show = run_all(repeat), print_tables
    if as_json:
        click.echo(json.dumps(res, indent=2))
    else:
        show(res)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0: every interface).")
@click.option("--port", type=Number(int, 0, 65535), default=8000, show_default=True)
@click.option("--max-batch", type=Number(int, 1, 1024), default=8, show_default=True,
              help="Rows of the running decode batch (continuous batching).")
@click.option("--max-queue", type=Number(int, 0, 10**6), default=64, show_default=True,
              help="Choices that may wait for a row; past it a request gets 429.")
@click.option("--max-tokens", type=Number(int, 1, 10**7), default=4096, show_default=True,
              help="The largest max_tokens a request may ask for.")
@click.option("--max-n", type=Number(int, 1, 1024), default=8, show_default=True, help="The largest n of a text request.")
@click.option("--timeout", type=Number(float, 0.001, 10**7), default=600.0, show_default=True,
              help="Seconds a request may take before it is cancelled.")
@click.option("--max-body-bytes", type=Number(int, 1, 10**10), default=1_000_000, show_default=True,
              help="The largest request body.")
@click.option("--api-key", envvar="GENTOOL_API_KEY", help="Require 'Authorization: Bearer KEY' (env GENTOOL_API_KEY).")
@click.option("--threads", type=Number(int, 1, 1024), help="onnxruntime threads of each model.")
@click.option("--grace", type=Number(float, 0, 10**6), default=30.0, show_default=True,
              help="Seconds SIGTERM waits for the requests in flight.")
def serve(paths, host, port, max_batch, max_queue, max_tokens, max_n, timeout, max_body_bytes, api_key, threads,
          grace):
    """Serve export folders over the OpenAI API (completions, chat, samples), with continuous batching."""
    from gentoolkit.serve import Limits
    from gentoolkit.serve import serve as run

    run(list(paths), host=host, port=port, threads=threads, grace=grace,
        limits=Limits(max_batch=max_batch, max_queue=max_queue, max_tokens=max_tokens, max_n=max_n, timeout=timeout,
                      max_body_bytes=max_body_bytes, api_key=api_key))


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(), metavar="[EXPORT]...")
@click.option("--out", "-o", required=True, type=click.Path(),
              help="The site folder to write: new, empty, or a previous demo site (replaced in one step).")
@click.option("--node-modules", type=click.Path(file_okay=False),
              help="Where onnxruntime-web and @huggingface/tokenizers are installed [default: node_modules here or above].")
@click.option("--serve", "serve_it", is_flag=True, help="Serve the site on --host:--port afterwards (with no EXPORT: "
              "serve the site already at --out).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address --serve binds.")
@click.option("--port", type=Number(int, 0, 65535), default=8000, show_default=True, help="Port --serve listens on (0: any free one).")
def demo(paths, out, node_modules, serve_it, host, port):
    """Write a static site that runs exports in the browser (onnxruntime-web): text, GAN and side by side."""
    from gentoolkit.web.demo import build
    from gentoolkit.web.demo import serve as run

    if paths or not serve_it:
        build(list(paths), out, node_modules=node_modules, log=lambda m: click.echo(m, err=True))
    if serve_it:
        run(out, host=host, port=port, log=click.echo)


@cli.group()
def plugin():
    """Work on gentoolkit plugins."""


@plugin.command(name="new")
@click.argument("name")
@click.option("--dir", "parent", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Where to create gentoolkit-NAME/.")
def plugin_new(name, parent):
    """Write a working plugin skeleton: package, entry point, a model, a sampler, a loss, tests."""
    from gentoolkit.cli.scaffold import new_plugin

    path = new_plugin(name, parent)
    click.echo(f"created {path}")
    click.echo(f"next: pip install -e {path} && gentool plugins && python -m pytest {path / 'tests'}")


reserved_command_names(set(cli.commands) | {"sample"})


def main() -> None:
    cli(prog_name="gentool")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
