"""Regenerate docs that come from the code: ``python -m gentoolkit.docgen`` rewrites docs/cli.md.

A test fails when docs/cli.md is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


def cli_markdown() -> str:
    from .cli import cli

    lines = [
        "# CLI reference",
        "",
        "Generated from the code by `python -m gentoolkit.docgen`; do not edit by hand.",
        "Commands added by third-party plugins appear in `gentool --help` once installed.",
        "",
        "## gentool",
        "",
        "```text",
        _help(cli, "gentool"),
        "```",
        "",
    ]
    ctx = click.Context(cli, info_name="gentool")
    for name in cli.list_commands(ctx):
        cmd = cli.get_command(ctx, name)
        lines += [f"## gentool {name}", "", "```text", _help(cmd, f"gentool {name}"), "```", ""]
    return "\n".join(lines)


def _help(cmd: click.Command, name: str) -> str:
    ctx = click.Context(cmd, info_name=name, terminal_width=100, max_content_width=100,
                        help_option_names=["-h", "--help"])
    return cmd.get_help(ctx).rstrip()


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "docs" / "cli.md"
    target.write_text(cli_markdown() + "\n", encoding="utf-8")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
