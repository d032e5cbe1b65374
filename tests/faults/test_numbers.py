"""Every numeric option of every command, and the numeric config keys, with NaN, infinities,
negatives, zero, tiny and huge values. Each outcome is a correct result or one clear error line,
within a time limit. The options are found by walking the click tree, so a new one is covered
(and must use a checked number type) without editing this file."""

from __future__ import annotations

import click
import pytest

from gentoolkit.cli.main import cli
from gentoolkit.cli.params import Number

from ..conftest import FAST_TRAIN, TINY, run_cli
from .conftest import TALLY, time_limit

BAD = ["nan", "inf", "-inf", "-1", "0", "-1e300", "1e300", "99999999999999999999999", "2.5", "1e-12"]
CASE_SECONDS = 120


def numeric_options() -> list[tuple[str, click.Option]]:
    ctx = click.Context(cli)
    out = []

    def walk(cmd, path):
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), path + [name])
            return
        for p in cmd.params:
            if isinstance(p, click.Option) and isinstance(p.type, (Number, click.types._NumberParamTypeBase)):
                out.append((" ".join(path), p))

    walk(cli, [])
    return out


OPTIONS = numeric_options()


def test_every_numeric_option_checks_its_range():
    """click's INT and FLOAT take nan, inf and any sign: every number goes through Number (or IntRange)."""
    for command, opt in OPTIONS:
        assert isinstance(opt.type, (Number, click.IntRange)), (command, opt.opts)
    assert {c for c, _ in OPTIONS} >= {"sample", "train", "export", "bench", "quickstart"}


def outcome(args: list[str], case) -> None:
    with time_limit(CASE_SECONDS):
        r = run_cli(*args)
    TALLY["inputs"] += 1
    errors = [line for line in r.output.splitlines() if line.startswith("Error:")]
    crashed = r.exception is not None and not isinstance(r.exception, SystemExit)
    if r.exit_code == 0 and not crashed:
        TALLY["correct"] += 1
        return
    if not crashed and len(errors) == 1 and "Traceback" not in r.output:
        TALLY["clear_errors"] += 1
        return
    TALLY["tracebacks"] += 1
    raise AssertionError(f"{case}: {r.output[-2000:]}\n{r.exception!r}")


@pytest.fixture(scope="module")
def targets(exports, gpt_run, gan_run):
    return {"gpt export": exports["gpt"], "gan export": exports["gan"], "gpt run": gpt_run, "gan run": gan_run}


def base_args(command: str, tmp_path, corpus, targets) -> list[list[str]]:
    out = str(tmp_path / f"out-{TALLY['case_id']}")
    TALLY["case_id"] += 1
    if command == "sample":
        return [["sample", str(t), "--max-new-tokens", "3", "-n", "2"] for t in targets.values()]
    if command == "train":
        args = ["train", "gpt", "--data", str(corpus), "--out", out, "--steps", "2"]
        for s in TINY["gpt"] + FAST_TRAIN:
            args += ["--set", s]
        return [args]
    if command == "export":
        return [["export", str(targets["gpt run"]), "-o", out]]
    if command == "quickstart":
        return [["quickstart", "--small", "-o", out]]
    return [[*command.split()]]


@pytest.mark.parametrize("command,option", [(c, o.opts[-1]) for c, o in OPTIONS], ids=[f"{c} {o.opts[-1]}" for c, o in OPTIONS])
def test_numeric_options(command, option, tmp_path, corpus, targets):
    for value in BAD:
        for args in base_args(command, tmp_path, corpus, targets):
            outcome(args + [option, value], (command, option, value, args[1] if len(args) > 1 else ""))


CONFIG_KEYS = {
    "gpt": ["train.lr", "train.min_lr", "train.beta1", "train.beta2", "train.weight_decay", "train.grad_clip",
            "train.warmup_steps", "train.batch_size", "train.eval_interval", "train.keep_checkpoints", "train.seed",
            "model.n_embd", "model.dropout", "data.val_fraction", "loss.label_smoothing"],
    "gan": ["train.lr_g", "train.lr_d", "train.n_critic", "model.z_dim", "model.ema", "loss.r1", "loss.gp_weight",
            "sampler.truncation", "data.n_samples"],
}


@pytest.mark.parametrize("model,key", [(m, k) for m, keys in CONFIG_KEYS.items() for k in keys])
def test_numeric_config_keys(model, key, tmp_path, corpus):
    for i, value in enumerate(BAD):
        out = str(tmp_path / f"run-{i}")
        if model == "gan":
            args = ["train", "gan", "--preset", "tiny", "--steps", "2", "--out", out, "--set", "data.n_samples=256",
                    "--set", "train.eval_samples=64"]
        else:
            args = ["train", "gpt", "--data", str(corpus), "--out", out, "--steps", "2"]
            for s in TINY["gpt"] + FAST_TRAIN:
                args += ["--set", s]
        outcome(args + ["--set", f"{key}={value}"], (key, value))
