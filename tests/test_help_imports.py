"""`gentool --help` and every subcommand's --help import no torch, onnx or matplotlib."""

import json
import subprocess
import sys

from gentoolkit.cli.main import cli

HEAVY = ("torch", "onnx", "onnxruntime", "matplotlib", "numpy")  # numpy too: it costs --help 80 ms

PROBE = r"""
import sys, json
from click.testing import CliRunner
from gentoolkit.cli.main import cli
args = json.loads(sys.argv[1])
r = CliRunner().invoke(cli, args)
assert r.exit_code == 0, r.output
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in %r)))
""" % (HEAVY,)


def loaded_modules(args):
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_top_level_help_is_light():
    assert loaded_modules(["--help"]) == set()


def test_every_subcommand_help_is_light():
    from click.testing import CliRunner

    ctx = cli.make_context("gentool", ["--help"], resilient_parsing=True)
    names = cli.list_commands(ctx)
    assert {"train", "sample", "eval", "plugins", "models"} <= set(names)
    # one interpreter per command keeps each check independent
    for name in names:
        assert loaded_modules([name, "--help"]) == set(), name
    assert CliRunner().invoke(cli, ["--version"]).exit_code == 0


def test_listing_commands_are_light():
    for name in ("models", "samplers", "losses", "datasets", "plugins"):
        assert loaded_modules([name]) == set(), name


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "gentoolkit", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "Usage:" in out.stdout
