"""Plugins through real entry points (a ``*.dist-info`` on PYTHONPATH), isolation, and in-process hooks."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import click
import pytest

import gentoolkit
from gentoolkit import DatasetSpec, LossSpec, ModelSpec, SamplerSpec, hookimpl
from gentoolkit.errors import UnknownNameError
from gentoolkit.plugin.manager import get_plugin_manager, get_registries, plugin_records

from .conftest import run_cli, run_subprocess

GOOD = '''
import click
from gentoolkit import DatasetSpec, LossSpec, ModelSpec, RuntimeSpec, SamplerSpec, hookimpl
from gentoolkit_autoregressive.config import GPTConfig, SECTIONS, GPT_PRESETS
from gentoolkit_autoregressive.options import TEXT_OPTIONS

@hookimpl
def register_models(register):
    register(ModelSpec(name="demo-gpt", family="autoregressive", description="A GPT from a third party.",
                       config=GPTConfig, sections=SECTIONS, presets=GPT_PRESETS, default_preset="nano",
                       build="gentoolkit_autoregressive.model:build",
                       trainer="gentoolkit_autoregressive.task:LanguageModelTask",
                       sample="gentoolkit_autoregressive.run_model:sample", sample_options=TEXT_OPTIONS,
                       evaluate="gentoolkit_autoregressive.run_model:evaluate"))

@hookimpl
def register_samplers(register):
    register(SamplerSpec(name="demo-greedy", kind="logits", description="Greedy, from a plugin.",
                         factory="gentoolkit_autoregressive.samplers:make_greedy"))

@hookimpl
def register_losses(register):
    register(LossSpec(name="demo-ce", family="autoregressive", description="CE from a plugin.",
                      impl="gentoolkit_autoregressive.losses:cross_entropy"))

@hookimpl
def register_datasets(register):
    register(DatasetSpec(name="demo-text", kind="text", description="Two sentences.",
                         load=lambda: ["hello world. " * 400, "goodbye moon. " * 400]))

@hookimpl
def register_runtimes(register):
    register(RuntimeSpec(name="demo-family", description="Runs nothing yet.", load="gt_demo:DemoRuntime"))

@hookimpl
def register_commands(cli):
    @cli.command()
    def hello():
        """Say hello from a plugin."""
        click.echo("hello from demo")
'''

BROKEN_IMPORT = "raise ImportError('no module named totally_missing_dependency')\n"

BROKEN_HOOK = '''
from gentoolkit import DatasetSpec, hookimpl

@hookimpl
def register_datasets(register):
    register(DatasetSpec(name="half-registered", kind="text", description="x", load=lambda: ["x"]))

@hookimpl
def register_models(register):
    raise RuntimeError("boom inside the hook")
'''

DUPLICATE = '''
from gentoolkit import DatasetSpec, ModelSpec, hookimpl
from gentoolkit_autoregressive.config import GPTConfig

@hookimpl
def register_datasets(register):
    register(DatasetSpec(name="dup-data", kind="text", description="x", load=lambda: ["x"]))

@hookimpl
def register_models(register):
    register(ModelSpec(name="gpt", family="autoregressive", description="clash", config=GPTConfig,
                       build="x:y", trainer="x:y"))
'''

MISSPELT = '''
from gentoolkit import hookimpl

@hookimpl
def register_model(register):  # missing 's': check_pending must reject it
    pass
'''


def make_plugin(root: Path, dist: str, module: str, source: str, ep_name: str | None = None) -> Path:
    """Write an importable module plus a real ``.dist-info`` with a ``gentoolkit`` entry point."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[gentoolkit]\n{ep_name or module} = {module}\n")
    return root


def _paths(*dirs: Path) -> dict:
    return {"PYTHONPATH": ":".join(str(d) for d in dirs)}


@pytest.fixture(scope="module")
def plugin_roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("eps")
    return {
        "good": make_plugin(base / "good", "gt-demo", "gt_demo", GOOD),
        "import": make_plugin(base / "import", "gt-broken-import", "gt_broken_import", BROKEN_IMPORT),
        "hook": make_plugin(base / "hook", "gt-broken-hook", "gt_broken_hook", BROKEN_HOOK),
        "dup": make_plugin(base / "dup", "gt-duplicate", "gt_duplicate", DUPLICATE),
        "misspelt": make_plugin(base / "misspelt", "gt-misspelt", "gt_misspelt", MISSPELT),
    }


def plugins_json(env) -> dict:
    out = run_subprocess("plugins", "--json", env=env)
    assert out.returncode == 0, out.stderr
    return {r["name"]: r for r in json.loads(out.stdout)}, out.stderr


def test_third_party_plugin_is_listed_and_usable(plugin_roots, tmp_path):
    env = _paths(plugin_roots["good"])
    records, err = plugins_json(env)
    demo = records["gt_demo"]
    assert demo["distribution"] == "gt-demo" and demo["version"] == "0.1" and demo["error"] is None
    assert demo["registered"] == {
        "models": ["demo-gpt"], "samplers": ["demo-greedy"], "losses": ["demo-ce"],
        "datasets": ["demo-text"], "runtimes": ["demo-family"], "commands": ["hello"],
    }
    assert set(demo["hooks"]) == {f"register_{k}" for k in ("models", "samplers", "losses", "datasets", "runtimes",
                                                             "commands")}
    assert records["autoregressive"]["distribution"] == "gentoolkit"
    assert run_subprocess("hello", env=env).stdout.strip() == "hello from demo"
    models = json.loads(run_subprocess("models", "--json", env=env).stdout)
    assert "demo-gpt" in {m["name"] for m in models}
    # its model trains on its own dataset with its own loss, through the host's loop
    out = tmp_path / "run"
    r = run_subprocess("train", "demo-gpt", "--data", "demo-text", "--out", str(out), "--steps", "3",
                       "--set", "loss.name=demo-ce", "--set", "model.block_size=16", "--set", "train.eval_batches=1",
                       env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "config.json").read_text())["plugin"] == "gt_demo"
    r = run_subprocess("sample", str(out), "-p", "hello", "--sampler", "demo-greedy", "--max-new-tokens", "5", env=env)
    assert r.returncode == 0 and r.stdout.startswith("hello"), r.stderr


@pytest.mark.parametrize(
    "which, error_part, leftover",
    [
        ("import", "ImportError: no module named totally_missing_dependency", None),
        ("hook", "RuntimeError: boom inside the hook", "half-registered"),
        ("dup", "model name 'gpt' is already registered by plugin 'autoregressive'", "dup-data"),
        ("misspelt", "register_model", None),
    ],
)
def test_broken_plugin_never_breaks_the_cli(plugin_roots, which, error_part, leftover):
    env = _paths(plugin_roots[which], plugin_roots["good"])
    records, err = plugins_json(env)
    broken = next(r for r in records.values() if r["distribution"] and r["distribution"].startswith("gt-") and r["name"] != "gt_demo")
    assert error_part in broken["error"]
    assert broken["registered"] == {}
    # exactly one warning, naming the distribution
    warnings = [line for line in err.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1 and broken["distribution"] in warnings[0], err
    # everything else still works, and the broken plugin registered nothing
    assert records["gt_demo"]["error"] is None
    assert run_subprocess("hello", env=env).returncode == 0
    datasets = {d["name"]: d for d in json.loads(run_subprocess("datasets", "--json", env=env).stdout)}
    assert "demo-text" in datasets and "pydoc" in datasets
    if leftover:
        assert leftover not in datasets
    models = {m["name"]: m for m in json.loads(run_subprocess("models", "--json", env=env).stdout)}
    assert models["gpt"]["plugin"] == "autoregressive"


def test_environment_switches(plugin_roots):
    env = _paths(plugin_roots["good"])
    records, _ = plugins_json({**env, "GENTOOL_LOAD_PLUGINS": "gt-demo"})
    assert set(records) == {"gt_demo"}
    records, _ = plugins_json({**env, "GENTOOL_LOAD_PLUGINS": ""})
    assert records == {}
    records, _ = plugins_json({**env, "GENTOOL_DISABLE_PLUGINS": "gt-demo,samplers"})
    assert "gt_demo" not in records and "samplers" not in records and "autoregressive" in records
    out = run_subprocess("models", env={**env, "GENTOOL_TRACE_PLUGINS": "1"})
    assert "register_models" in out.stderr and out.returncode == 0


class InProcessPlugin:
    __name__ = "in-process-test"

    @hookimpl
    def register_losses(self, register):
        register(LossSpec(name="test-loss", family="autoregressive", description="x",
                          impl="gentoolkit_autoregressive.losses:cross_entropy"))

    @hookimpl
    def register_datasets(self, register):
        register(DatasetSpec(name="test-set", kind="text", description="x", load=lambda: ["abc"]))

    @hookimpl
    def register_commands(self, cli):
        @cli.command(name="test-cmd")
        def cmd():
            click.echo("in-process command")


def test_in_process_plugin_registers_and_unregisters():
    pm = get_plugin_manager()
    pm.register(InProcessPlugin(), name="in-process-test")
    try:
        assert gentoolkit.get_loss("test-loss").plugin == "in-process-test"
        assert get_registries().datasets.get("test-set").kind == "text"
        assert run_cli("test-cmd").output.strip() == "in-process command"
        rec = next(r for r in plugin_records() if r.name == "in-process-test")
        assert rec.registered["commands"] == ["test-cmd"]
    finally:
        pm.unregister(name="in-process-test")
    with pytest.raises(UnknownNameError):
        gentoolkit.get_loss("test-loss")


def test_lookup_errors_list_what_exists():
    with pytest.raises(UnknownNameError) as exc:
        gentoolkit.get_model("gtp")
    msg = str(exc.value)
    assert "Did you mean 'gpt'" in msg and "llama" in msg
    with pytest.raises(UnknownNameError):
        gentoolkit.get_sampler("nope")
    with pytest.raises(UnknownNameError):
        gentoolkit.get_dataset("nope")


def test_wrong_spec_type_is_rejected():
    class Wrong:
        @hookimpl
        def register_samplers(self, register):
            register({"name": "dict-not-spec"})

    pm = get_plugin_manager()
    pm.register(Wrong(), name="wrong-type")
    try:
        rec = next(r for r in plugin_records() if r.name == "wrong-type")
        assert "expected gentoolkit.SamplerSpec" in rec.error
        assert "dict-not-spec" not in get_registries().samplers
    finally:
        pm.unregister(name="wrong-type")


def test_listing_commands(capsys):
    for kind in ("models", "samplers", "losses", "datasets"):
        r = run_cli(kind)
        assert r.exit_code == 0
        rows = json.loads(run_cli(kind, "--json").output)
        assert rows and all(row["description"] for row in rows)
    r = run_cli("plugins")
    assert "autoregressive" in r.output and "samplers" in r.output
    assert SamplerSpec and ModelSpec  # the public names plugins import


@pytest.mark.parametrize("kind", ["models", "samplers", "losses", "datasets", "runtimes"])
def test_a_duplicate_is_named_in_the_singular(kind):
    from gentoolkit.errors import PluginError
    from gentoolkit.plugin.specs import SINGULAR, Registry

    reg = Registry(kind)
    spec = type("Spec", (), {"name": "x", "aliases": (), "plugin": "p"})()
    reg.add(spec)
    with pytest.raises(PluginError, match=f"^{SINGULAR[kind]} name 'x' is already registered by plugin 'p'$"):
        reg.add(spec)
    assert SINGULAR[kind] + "s" == kind or kind == "losses"


def test_every_built_in_driver_and_engine_keeps_its_protocol(exports):
    """The typed plugin contract (gentoolkit.plugin.protocols) holds for the built-in families: each
    export's driver is a Driver, a text family's serving engine an Engine, a GAN's driver a Sampler."""
    from gentoolkit.plugin.protocols import Driver, Engine, Sampler
    from gentoolkit.plugin.specs import resolve
    from gentoolkit.runtime import load

    for name, folder in exports.items():
        driver = load(folder)
        assert isinstance(driver, Driver), name
        spec = get_registries(commands=False).runtimes.get(driver.manifest["family"])
        if spec.serve is not None:
            engine = resolve(spec.serve)(driver, max_batch=2)
            assert isinstance(engine, Engine), name
            assert engine.encode_prompt("ab") == driver.tokenizer.encode("ab")
        else:
            assert isinstance(driver, Sampler), name
    assert not isinstance(object(), Driver) and not isinstance(object(), Engine)
