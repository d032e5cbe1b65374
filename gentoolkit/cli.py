"""The ``gentool`` command line.

Only click, pluggy and the registries are imported here: every command that
needs torch, onnx or matplotlib imports them inside its callback, so ``gentool
--help`` stays fast. User mistakes (:class:`~gentoolkit.errors.GentoolError`)
become one ``Error: ...`` line and exit code 1; anything else keeps its traceback.
"""

from __future__ import annotations

import json
import sys

import click

from . import __version__
from .errors import GentoolError
from .plugins import get_registries, plugin_records, reserved_command_names


class GentoolGroup(click.Group):
    """A group that adds plugin commands and turns user errors into one line."""

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(get_registries().commands))

    def get_command(self, ctx, name):
        return super().get_command(ctx, name) or get_registries().commands.get(name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GentoolError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=GentoolGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gentool")
def cli():
    """gentoolkit: train small generative models and ship them as ONNX.

    Two families are built in: autoregressive transformers (gpt, llama) and
    GANs (gan, dcgan). Plugins add more. Start with 'gentool quickstart'.
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
        cols = ["name"] + [c for c in ("family", "kind") if c in rows[0]] + ["plugin", "description"]
        _echo_table([[r[c] for c in cols] for r in rows], cols)

    command.__doc__ = f"List the registered {what}."
    return cli.command(name=kind)(command)


for _kind, _what in (
    ("models", "models (trainable families and their presets)"),
    ("samplers", "samplers (decoding strategies and latent samplers)"),
    ("losses", "losses (training objectives)"),
    ("datasets", "datasets (named data sources, never downloaded)"),
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


reserved_command_names(set(cli.commands))


def main() -> None:
    cli(prog_name="gentool")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
