"""Meta-tests in the spirit of datasette's: every hook and command is documented, and every hook is tested."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import click
import pytest

from gentoolkit.cli.docgen import cli_markdown
from gentoolkit.cli.main import cli
from gentoolkit.plugin import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "gentoolkit_spec")]


def test_hooks_are_found():
    assert set(HOOKS) == {"register_models", "register_samplers", "register_losses", "register_datasets",
                          "register_runtimes", "register_commands"}


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_signature(hook):
    fn = getattr(hookspecs, hook)
    signature = f"def {hook}{inspect.signature(fn)}: ..."
    docs = (ROOT / "docs" / "plugins.md").read_text()
    assert f"## {hook}\n" in docs
    assert signature in docs, signature
    assert fn.__doc__ and ":param" in fn.__doc__


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_exercised_by_a_test(hook):
    sources = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    assert re.search(rf"def {hook}\((self, )?(register|cli)\)", sources), f"no test implements {hook}"


def test_the_architecture_picture_is_the_one_the_code_gives():
    """docs/architecture.md shows docs/img/architecture.svg: the rooms and imports as the code has them now."""
    from gentoolkit.cli.architecture import draw

    picture = ROOT / "docs" / "img" / "architecture.svg"
    assert picture.read_text() == draw(ROOT), "run: python -m gentoolkit.cli.docgen"
    assert "architecture.svg" in (ROOT / "docs" / "architecture.md").read_text()


def test_cli_reference_is_current():
    assert (ROOT / "docs" / "cli.md").read_text() == cli_markdown() + "\n", "run: python -m gentoolkit.cli.docgen"


def test_every_command_is_in_the_cli_reference():
    ctx = click.Context(cli, info_name="gentool")
    docs = (ROOT / "docs" / "cli.md").read_text()
    for name in cli.list_commands(ctx):
        assert f"## gentool {name}\n" in docs


def test_docs_pages_exist_and_are_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in ("index.md", "installation.md", "cli.md", "plugins.md", "architecture.md", "sampling.md",
                 "configuration.md", "performance.md", "tutorials/train-a-language-model.md",
                 "tutorials/mode-collapse.md", "export.md", "onnx-contract.md", "runtime.md", "serving.md", "distributed.md",
                 "plugins/tutorial.md", "diffusion.md", "reliability.md",
                 "tutorials/fine-tune-and-ship.md", "javascript.md", "pretrained.md"):
        assert (ROOT / "docs" / page).is_file(), page
        assert page in nav, page
    for img in re.findall(r"\]\((?:\.\./)?(img/[^)]+)\)", "".join(p.read_text() for p in (ROOT / "docs").rglob("*.md"))):
        assert (ROOT / "docs" / img).is_file(), img


def test_every_onnx_name_is_in_the_contract():
    from gentoolkit_autoregressive.export import io_names

    contract = (ROOT / "docs" / "onnx-contract.md").read_text()
    past, present = io_names(2)
    # gentoolkit-diffusion is not installed here: read the names its export plan declares
    plan_src = (ROOT / "plugins/gentoolkit-diffusion/src/gentoolkit_diffusion/export.py").read_text()
    diffusion = re.findall(r'\{"name": "([a-z_]+)"', plan_src)
    assert diffusion == ["sample", "timestep", "out_sample"], diffusion
    for name in ["input_ids", "attention_mask", "position_ids", "logits", "z", "samples", *past, *present, *diffusion]:
        generic = name.replace(".0.", ".{i}.").replace(".1.", ".{i}.")
        assert f"`{generic}`" in contract, generic
    from gentoolkit.export import export  # noqa: F401  (the manifest keys below are the ones it writes)

    for key in ("format_version", "family", "model", "plugin", "plugin_version", "gentoolkit_version", "opset",
                "dtype", "quantize", "model_file", "tokenizer", "config", "io", "runtime", "sampler_defaults",
                "validation", "torch_version"):
        assert f"`{key}`" in contract, key


def test_every_spec_field_is_documented():
    """Each field of every spec dataclass a plugin fills in is named in docs/plugins.md."""
    import dataclasses

    from gentoolkit.plugin.specs import SPEC_TYPES

    text = (ROOT / "docs" / "plugins.md").read_text()
    missing = [f"{t.__name__}.{f.name}" for t in SPEC_TYPES.values() for f in dataclasses.fields(t)
               if not re.search(rf"`{f.name}[`(]", text)]
    assert not missing, missing


# --- the README's commands run as written: every path one reads, an earlier one made ----------------------------
_PATH_COMMANDS = {"import", "chat", "sample", "eval", "export", "serve", "demo"}  # their leading arguments are paths
_READS = {"--data", "--init", "--config", "--eval-data"}
_WRITES = {"-o", "--out", "-d"}
_SUFFIXES = (".txt", ".gguf", ".jsonl", ".json", ".toml", ".csv", ".npy", ".png", ".whl", ".safetensors", ".onnx")


def _path_like(word: str) -> bool:
    return ("/" in word and "://" not in word) or word.endswith(_SUFFIXES)


def _readme_commands() -> list[tuple[str, list[str]]]:
    """``(line, words)`` of every command in README.md's bash blocks, a line split at ``&&``, ``;`` and ``|``."""
    import shlex

    out = []
    for block in re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S):
        for line in block.splitlines():
            words: list[str] = []
            for w in shlex.split(line, comments=True) + ["&&"]:
                if w in ("&&", "||", ";", "|"):
                    out += [(line, words)] if words else []
                    words = []
                else:
                    words.append(w)
    return out


def _reads_and_writes(words: list[str], datasets: set[str]) -> tuple[list[str], list[str]]:
    """The paths a README command reads and those it makes, by what each of its commands takes."""
    reads, writes = [], []
    if words[:2] == ["python", "-c"]:
        code = words[2]
        writes += re.findall(r"open\(\s*'([^']+)'\s*,\s*'w", code)
        reads += [p for p in re.findall(r"'([^']*)'", code) if _path_like(p) and p not in writes]
        return reads, writes
    if words[0] == "unzip":  # unzip [-opts] ARCHIVE [MEMBER...] -d DIR
        args = [w for w in words[1:] if not w.startswith("-")]
        reads.append(args[0])
        writes += [words[i + 1] for i, w in enumerate(words) if w == "-d"]
        return reads, writes
    command = words[1] if words[0] == "gentool" and len(words) > 1 else ""
    if command in _PATH_COMMANDS:
        for w in words[2:]:
            if w.startswith("-"):
                break
            reads.append(w)
    resume = "--resume" in words
    for flag, value in zip(words, words[1:]):
        if flag in _WRITES:
            (reads if resume else writes).append(value)
        elif flag in _READS and not (flag == "--data" and value in datasets and not _path_like(value)):
            reads.append(value)
    if words[0] == "pip" and "install" in words:
        reads += [w for w in words if _path_like(w)]
    return reads, writes


def test_every_path_a_readme_command_reads_is_made_by_an_earlier_one():
    import fnmatch
    import subprocess

    from gentoolkit.plugin.manager import get_registries

    datasets = set(get_registries().datasets.names())

    def shipped(path: str) -> bool:  # a file or folder of this repository, as git tracks it
        r = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--", path], capture_output=True, text=True)
        return r.returncode == 0 and bool(r.stdout.strip())

    def under(path: str, made: str) -> bool:
        parts, base = Path(path).parts, Path(made).parts
        return len(parts) >= len(base) and all(fnmatch.fnmatch(p, b) or fnmatch.fnmatch(b, p)
                                               for p, b in zip(parts, base))

    commands = _readme_commands()
    assert sum(words[0] == "gentool" for _, words in commands) >= 25, "the README's commands were not found"
    made: list[str] = []
    missing = []
    for line, words in commands:
        reads, writes = _reads_and_writes(words, datasets)
        missing += [f"{path!r} in: {line.strip()}" for path in reads
                    if not any(under(path, m) for m in made) and not shipped(path.removeprefix("./"))]
        made += writes
    assert not missing, "README commands read what no earlier command makes:\n" + "\n".join(missing)
