"""examples/configs/: one config file per built-in model, generated from the defaults, current and loadable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gentoolkit.cli.docgen import EXAMPLE_MARK, example_configs, write_example_configs
from gentoolkit.config import load_file

from .conftest import ROOT, run_cli

FOLDER = ROOT / "examples" / "configs"
BUILTIN = ["dcgan", "gan", "gpt", "llama"]


def test_one_example_per_builtin_model():
    assert sorted(example_configs()) == [f"{m}.toml" for m in BUILTIN]


def test_examples_are_current():
    generated = example_configs()
    on_disk = sorted(p.name for p in FOLDER.glob("*.toml"))
    assert on_disk == sorted(generated), "run: python -m gentoolkit.cli.docgen"
    for name, text in generated.items():
        assert (FOLDER / name).read_text(encoding="utf-8") == text, f"{name} is stale: run python -m gentoolkit.cli.docgen"


@pytest.mark.parametrize("model", BUILTIN)
def test_example_loads_and_changes_nothing(model):
    path = FOLDER / f"{model}.toml"
    text = path.read_text(encoding="utf-8")
    assert text.startswith(EXAMPLE_MARK)
    assert f"gentool train {model} --config examples/configs/{model}.toml" in text
    plain = run_cli("train", model, "--print-config")
    assert plain.exit_code == 0, plain.output
    assert plain.output.startswith("[model]")
    with_file = run_cli("train", model, "--config", str(path), "--print-config")
    assert with_file.exit_code == 0, with_file.output
    assert with_file.output == plain.output  # the same values, printed the same way
    assert text.endswith("\n\n" + plain.output)  # the file's body is what --print-config prints
    assert set(load_file(path)) == {"model", "data", "train", "loss", "sampler"}


def test_later_layers_win_over_the_file():
    """preset < --config FILE < --set and the shortcuts, as docs/configuration.md says."""
    path = str(FOLDER / "gpt.toml")
    r = run_cli("train", "gpt", "--preset", "nano", "--config", path, "--steps", "7", "--set", "train.lr=0.01",
                "--print-config")
    assert r.exit_code == 0, r.output
    assert "\nn_layer = 4\n" in r.output  # the file's (micro's) value over nano's 2
    assert "\nsteps = 7\n" in r.output and "\nlr = 0.01\n" in r.output


def test_write_removes_stale_generated_files_only(tmp_path):
    (tmp_path / "gone.toml").write_text(EXAMPLE_MARK + " from the code\n[model]\n")
    (tmp_path / "mine.toml").write_text("[train]\nsteps = 10\n")
    written = write_example_configs(tmp_path)
    assert sorted(p.name for p in written) == [f"{m}.toml" for m in BUILTIN]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{m}.toml" for m in BUILTIN] + ["mine.toml"])
    assert (tmp_path / "gpt.toml").read_text() == example_configs()["gpt.toml"]


def test_docgen_with_a_target_writes_only_that_file(tmp_path):
    """CI runs ``python -m gentoolkit.cli.docgen FILE`` before the tests: it must not refresh examples/configs/."""
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in FOLDER.glob("*.toml")}
    target = tmp_path / "cli.md"
    r = subprocess.run([sys.executable, "-m", "gentoolkit.cli.docgen", str(target)], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"wrote {target}\n" and target.is_file()
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in FOLDER.glob("*.toml")} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.md"]


def test_docgen_help_prints_usage_and_writes_nothing(tmp_path):
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in FOLDER.glob("*.toml")}
    cli_md = (ROOT / "docs" / "cli.md").stat().st_mtime_ns
    for args in (["--help"], ["-h"]):
        r = subprocess.run([sys.executable, "-m", "gentoolkit.cli.docgen", *args], capture_output=True, text=True,
                           cwd=tmp_path, timeout=120)
        assert r.returncode == 0 and r.stdout.startswith("usage: python -m gentoolkit.cli.docgen"), r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "gentoolkit.cli.docgen", "--out", "x.md"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("Error: unrecognized arguments: --out") and r.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no file named --help, -h or --out
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in FOLDER.glob("*.toml")} == before
    assert (ROOT / "docs" / "cli.md").stat().st_mtime_ns == cli_md


def test_every_builtin_preset_is_documented():
    from gentoolkit.plugin.manager import get_registries

    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    presets = text[text.index("\n## Presets\n"):]
    missing = [f"{spec.name}:{name}" for spec in get_registries().models if spec.name in BUILTIN
               for name in spec.presets if f"`{name}`" not in presets]
    assert not missing, missing
    assert "`--config FILE`" in text and "examples/configs/" in text
