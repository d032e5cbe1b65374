"""Fixtures of gentoolkit-diffusion's tests: tiny real runs, trained once per session.

The plugin must be installed (``pip install ./plugins/gentoolkit-diffusion``): these
tests go through gentoolkit's entry points exactly as a user's ``gentool`` does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gentoolkit.cli.main import cli

TINY = ["--preset", "tiny"]


def gentool(*args: str):
    """Invoke ``gentool`` in-process; return click's result."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def ok(result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def one_error_line(result) -> str:
    """The result is a user error: non-zero exit, one 'Error:' line, no traceback."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def train(out: Path, data: str, steps: int = 60, *extra: str) -> Path:
    ok(gentool("train", "ddpm", "--data", data, "--out", str(out), "--steps", str(steps), "--device", "cpu",
               *TINY, *extra))
    return out


@pytest.fixture(scope="session")
def ring_run(tmp_path_factory) -> Path:
    return train(tmp_path_factory.mktemp("runs") / "ring", "ring", 120, "--set", "train.lr=3e-3")


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    return train(tmp_path_factory.mktemp("runs") / "digits", "digits", 20)


@pytest.fixture(scope="session")
def ring_export(ring_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "ring"
    ok(gentool("export", str(ring_run), "-o", str(out)))
    return out
