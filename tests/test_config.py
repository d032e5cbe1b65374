"""Strict config trees: layering, --set parsing, and one-line errors naming the key."""

import pytest

from gentoolkit.config import build, dumps_toml, load_file, to_dict
from gentoolkit.errors import ConfigError
from gentoolkit_autoregressive.config import SECTIONS, GPTConfig

TREE = {"model": GPTConfig, **SECTIONS}


def test_layers_and_sets():
    tree = build(TREE, {"model": {"n_layer": 2}}, {"train": {"lr": 1}}, sets=["train.steps=7", "model.bias=false",
                                                                            "data.path=none"])
    assert tree["model"].n_layer == 2 and tree["model"].bias is False
    assert tree["train"].lr == 1.0 and isinstance(tree["train"].lr, float)
    assert tree["train"].steps == 7 and tree["data"].path is None


@pytest.mark.parametrize(
    "sets, message",
    [
        (["train.stpes=3"], "unknown config key 'train.stpes' (did you mean 'train.steps'?)"),
        (["trian.steps=3"], "unknown config key 'trian'"),
        (["train.steps=three"], "train.steps must be int"),
        (["data.tokenizer=words"], "data.tokenizer must be one of 'byte', 'char', 'bpe'"),
        (["model.n_embd=30"], "n_embd (30) must be divisible by n_head (4)"),
        (["steps"], "--set expects section.key=value"),
    ],
)
def test_bad_values_name_the_key(sets, message):
    with pytest.raises(ConfigError) as exc:
        build(TREE, sets=sets)
    assert message in str(exc.value)


def test_file_types_are_checked(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[train]\nsteps = "many"\n')
    with pytest.raises(ConfigError, match="train.steps must be int"):
        build(TREE, load_file(f))
    f.write_text("[train\n")
    with pytest.raises(ConfigError, match="cannot parse config file"):
        load_file(f)
    with pytest.raises(ConfigError, match="does not exist"):
        load_file(tmp_path / "missing.json")


def test_print_config_round_trips(tmp_path):
    tree = build(TREE, sets=["train.steps=11", "model.dropout=0.1"])
    f = tmp_path / "c.toml"
    f.write_text(dumps_toml(to_dict(tree)))
    again = build(TREE, load_file(f))
    assert to_dict(again) == to_dict(tree)
