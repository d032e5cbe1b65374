"""Training on 2 CPU workers through torchrun (gloo, loopback only)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from gentoolkit.train import checkpoint

from .conftest import TINY, one_error_line, run_cli, run_subprocess

GPT = ["--preset", "nano", "--steps", "20", "--set", "train.eval_interval=10", "--set", "train.log_interval=5",
       "--set", "train.eval_batches=2"] + [x for s in TINY["gpt"] for x in ("--set", s)]


def train(out, *extra, nproc=1):
    r = run_subprocess("train", "gpt", "--out", str(out), "--device", "cpu", "--nproc-per-node", str(nproc),
                       *GPT, *extra, env={"MPLBACKEND": "Agg"})
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_two_workers_match_one_worker(tmp_path, corpus):
    """Same seed and global batch: each worker takes half the windows and DDP averages the gradients.

    Tolerance 1e-4 on every weight after 20 steps: the only difference is the order of float
    additions when gradients are averaged (measured about 1e-6), which Adam can amplify a little.
    """
    one = train(tmp_path / "one", "--data", str(corpus))
    two = train(tmp_path / "two", "--data", str(corpus), nproc=2)
    a, b = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4
    la = [r["train_loss"] for r in map(json.loads, (one / "metrics.jsonl").read_text().splitlines())]
    lb = [r["train_loss"] for r in map(json.loads, (two / "metrics.jsonl").read_text().splitlines())]
    assert la == pytest.approx(lb, abs=1e-4)  # the logged loss is the mean over both workers


def test_resume_with_two_workers_and_with_another_count(tmp_path, corpus):
    run = train(tmp_path / "run", "--data", str(corpus), nproc=2)
    state = json.loads((checkpoint.latest(run).path / "state.json").read_text())["tree"]
    assert state["step"] == 20 and state["finished"]
    train(run, "--resume", "--steps", "30", nproc=2)  # every worker reads the checkpoint of worker 0
    train(run, "--resume", "--steps", "36", nproc=1)  # another number of workers: allowed
    steps = [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]
    assert steps == sorted(steps) and steps[-1] == 36
    assert all(torch.isfinite(t).all() for t in load_file(str(run / "model.safetensors")).values())


def test_gan_on_two_workers_trains_and_resumes(tmp_path):
    out = tmp_path / "gan"
    args = ["train", "gan", "--data", "ring", "--out", str(out), "--preset", "tiny", "--steps", "20",
            "--set", "train.eval_interval=10", "--set", "data.n_samples=1000", "--set", "train.eval_samples=200",
            "--nproc-per-node", "2"]
    r = run_subprocess(*args, env={"MPLBACKEND": "Agg"})
    assert r.returncode == 0, r.stderr[-3000:]
    r = run_subprocess("train", "gan", "--out", str(out), "--resume", "--steps", "30", "--nproc-per-node", "2",
                       env={"MPLBACKEND": "Agg"})
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 30 and "modes" in rows[-1]
    assert {"G_ema.net.0.weight", "D.net.0.weight"} <= set(load_file(str(out / "model.safetensors")))


def test_wrong_launch_is_one_line(tmp_path):
    line = one_error_line(run_cli("train", "gpt", "--out", str(tmp_path / "x"), "--nproc-per-node", "2",
                                  "--set", "train.batch_size=7"))
    assert "multiple of --nproc-per-node (2)" in line
