"""The GAN family on tiny real models: every loss and both models train, metrics on known answers, the alarm."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from gentoolkit import get_model
from gentoolkit.config import build as build_config
from gentoolkit.samples.data import grid_modes, ring, ring_modes
from gentoolkit.samples.metrics import (
    digits_classifier,
    digits_metrics,
    diversity,
    fidelity_diversity,
    mixture_metrics,
)
from gentoolkit.train.loop import Context
from gentoolkit.train.run import Run
from gentoolkit_gan.config import DCGANConfig, GANConfig
from gentoolkit_gan.latent import LatentSampler
from gentoolkit_gan.models import build, latent_class
from gentoolkit_gan.task import GANTask

from .conftest import one_error_line, run_cli

LOSSES = ["minimax", "non-saturating", "wgan-gp", "hinge", "lsgan"]
TINY_GAN = ["--preset", "tiny", "--steps", "12", "--set", "train.eval_interval=6", "--set", "train.log_interval=3",
            "--set", "data.n_samples=512", "--set", "train.eval_samples=200"]
TINY_DCGAN = ["--preset", "tiny", "--steps", "4", "--set", "train.eval_interval=4", "--set", "train.log_interval=2",
              "--set", "train.batch_size=8", "--set", "train.eval_samples=64"]


@pytest.mark.parametrize("loss", LOSSES)
def test_gan_trains_with_every_loss(loss, tmp_path):
    out = tmp_path / loss
    r = run_cli("train", "gan", "--data", "ring", "--out", str(out), *TINY_GAN, "--set", f"loss.name={loss}",
                "--set", "model.pack=2", "--set", "loss.r1=0.5")
    assert r.exit_code == 0, r.output
    rows = Run.open(out).read_metrics()
    assert all(math.isfinite(row["d_loss"]) and math.isfinite(row["g_loss"]) for row in rows if "d_loss" in row)
    assert {"modes", "high_quality", "reverse_kl", "diversity"} <= set(rows[-1])
    assert (out / "samples.png").read_bytes()[:4] == b"\x89PNG" and (out / "loss.png").exists()


@pytest.mark.parametrize("loss", ["non-saturating", "wgan-gp"])
def test_dcgan_trains_on_digits(loss, tmp_path):
    out = tmp_path / loss
    r = run_cli("train", "dcgan", "--out", str(out), *TINY_DCGAN, "--set", f"loss.name={loss}")
    assert r.exit_code == 0, r.output
    last = Run.open(out).read_metrics()[-1]
    assert math.isfinite(last["d_loss"]) and 0 <= last["classes"] <= 10
    cfg = json.loads((out / "config.json").read_text())["config"]["model"]
    assert cfg["image_size"] == 8 and cfg["channels"] == 1
    r = run_cli("sample", str(out), "-n", "6", "-o", str(tmp_path / "d.npy"), "--seed", "1")
    assert r.exit_code == 0, r.output
    x = np.load(tmp_path / "d.npy")
    assert x.shape == (6, 1, 8, 8) and x.min() >= 0 and x.max() <= 16  # the data's own range


@pytest.mark.parametrize("size", [8, 16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(size, channels):
    cfg = DCGANConfig(image_size=size, channels=channels, width=32, z_dim=8, pack=2)
    G, D = build(cfg, 0.0, 1.0)
    x = G(torch.randn(4, 8))
    assert x.shape == (4, channels, size, size) and 0 <= x.min() and x.max() <= 1
    assert D(x).shape == (2, 1)  # packed in pairs


def test_packing_and_ranges_for_vectors():
    G, D = build(GANConfig(data_dim=5, pack=3, hidden=16), 0, 1)
    assert G(torch.randn(6, 16)).shape == (6, 5) and D(torch.randn(6, 5)).shape == (2, 1)


@pytest.mark.parametrize("sampler", [LatentSampler("normal"), LatentSampler("truncated", 0.5),
                                     LatentSampler("uniform")])
def test_latent_classes_are_uniform_for_every_latent_sampler(sampler):
    z0 = torch.from_numpy(sampler(50_000, 1, np.random.default_rng(0))[:, 0])
    counts = np.bincount(latent_class(z0, 50).numpy(), minlength=50)
    assert len(counts) == 50
    # chi-square with 49 degrees of freedom: 99.9% of uniform draws stay under 86
    expected = 50_000 / 50
    assert ((counts - expected) ** 2 / expected).sum() < 86


def test_discrete_latent_generator():
    G, _ = build(GANConfig(data_dim=2, z_dim=4, latent_classes=8, hidden=16), 0, 1)
    G.eval()
    assert G.embed.num_embeddings == 8 and G.net[0].in_features == 3  # z[1:] is the noise
    noise = torch.randn(1, 3).expand(16, 3)
    # two values of z0 per class (1024 * z0 = k / 8 + a little, and 5 + that), the same noise for all
    z0 = torch.tensor([k / 8 / 1024 + 1e-6 + 5 * (i % 2) / 1024 for k in range(8) for i in range(2)])
    x = G(torch.cat([z0[:, None], noise], 1)).detach()
    assert latent_class(z0, 8).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7]
    assert torch.equal(x[0::2], x[1::2])  # same class, same noise: the same sample
    assert torch.cdist(x[0::2], x[0::2]).fill_diagonal_(1).min() > 0  # every class its own sample
    plain, _ = build(GANConfig(data_dim=2, z_dim=4, latent_classes=0, hidden=16), 0, 1)
    assert plain.embed is None and plain.net[0].in_features == 4


def test_mixture_metrics_on_known_answers():
    modes = ring_modes()
    everywhere = np.repeat(modes, 100, axis=0)
    m = mixture_metrics(everywhere, modes, 0.01)
    assert m == {"modes": 8, "modes_total": 8, "high_quality": 100.0, "reverse_kl": 0.0, "mode_spread": 0.0}
    # the data itself: every mode, evenly, with the real spread (0.97 after the 3-std cut, in 2-D)
    m = mixture_metrics(ring(n_samples=20_000, seed=5).x, modes, 0.01)
    assert m["modes"] == 8 and m["high_quality"] > 98.5 and m["reverse_kl"] < 0.002
    assert m["mode_spread"] == pytest.approx(0.974, abs=0.02)
    one = np.repeat(modes[:1], 500, axis=0)
    m = mixture_metrics(one, modes, 0.01)
    assert m["modes"] == 1 and m["high_quality"] == 100.0 and m["reverse_kl"] == pytest.approx(math.log(8))
    far = np.full((300, 2), 10.0)
    m = mixture_metrics(far, modes, 0.01)
    assert m["modes"] == 0 and m["high_quality"] == 0.0 and m["mode_spread"] is None
    # just inside and just outside 3 std
    near = modes[:1] + np.array([[0.029, 0.0], [0.031, 0.0]])
    assert mixture_metrics(near, modes, 0.01)["high_quality"] == 50.0
    g = grid_modes()
    half = np.repeat(g[:12], 10, axis=0)
    m = mixture_metrics(half, g, 0.05)
    assert m["modes"] == 12 and m["reverse_kl"] == pytest.approx(math.log(25 / 12))


def test_precision_recall_density_coverage_on_known_answers():
    """The data against itself scores about 1 on all four; a generator collapsed onto one mode keeps its
    fidelity and loses recall and coverage; one that only jitters the centres has the precision of the
    data and a fraction of its recall and coverage, which the PacGAN counts cannot tell apart."""
    data = ring(n_samples=20_000, seed=5)
    rng = np.random.default_rng(1)
    same = fidelity_diversity(data.x, ring(n_samples=20_000, seed=6).x)
    assert all(same[k] >= 0.93 for k in ("precision", "recall", "coverage")) and 0.9 < same["density"] < 1.1
    itself = fidelity_diversity(data.x[:2000], data.x[:2000])
    assert itself["precision"] == itself["recall"] == itself["coverage"] == 1.0
    collapsed = fidelity_diversity(data.x, np.repeat(data.modes[:1], 2500, 0) + 1e-4 * rng.standard_normal((2500, 2)))
    assert collapsed["precision"] == 1.0 and collapsed["recall"] < 0.05 and collapsed["coverage"] <= 1 / 8
    centres = data.modes[rng.integers(0, 8, 2500)] + 0.1 * data.mode_std * rng.standard_normal((2500, 2))
    jitter = fidelity_diversity(data.x, centres)
    assert mixture_metrics(centres, data.modes, data.mode_std)["modes"] == 8  # a perfect PacGAN score
    assert jitter["precision"] > 0.95 and jitter["recall"] < 0.3 and jitter["coverage"] < 0.3
    with pytest.raises(ValueError, match="more than k=5"):
        fidelity_diversity(data.x, data.x[:5])


def test_diversity_flags_collapse():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((1000, 2))
    assert diversity(rng.standard_normal((1000, 2)), real) == pytest.approx(1.0, abs=0.1)
    assert diversity(np.zeros((1000, 2)), real) == 0.0


def test_digits_metrics_on_real_and_collapsed_digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    real = digits_metrics(d.images[:, None])
    assert real["classifier_accuracy"] >= 0.97
    assert real["classes"] == 10 and real["class_kl"] < 0.01 and real["confidence"] > 0.9
    assert real["classifier_frechet"] < 1.0
    assert real["precision"] == real["recall"] == real["coverage"] == 1.0  # the digits against themselves
    sevens = d.images[d.target == 7][:, None]
    col = digits_metrics(np.repeat(sevens, 5, axis=0))
    assert col["classes"] == 1 and col["class_kl"] == pytest.approx(math.log(10), abs=0.01)
    assert col["precision"] == 1.0 and col["recall"] < 0.2 and col["coverage"] < 0.2
    assert col["classifier_frechet"] > 10 * max(real["classifier_frechet"], 1e-3)


def test_digits_classifier_does_not_depend_on_earlier_draws():
    """`gentool eval` on the same run gave class KL 0.053, 0.038 and 0.028 until the classifier's initial
    weights came from its own seed instead of the process's global generator."""
    first, _ = digits_classifier()
    torch.manual_seed(123)
    torch.randn(1000)  # what sampling a generator does before the metrics are computed
    again, _ = digits_classifier.__wrapped__()
    for (name, a), b in zip(first.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name


def test_alarm_fires_on_a_generator_that_outputs_one_point(tmp_path):
    spec = get_model("gan")
    tree = build_config(spec.config_sections, spec.presets["tiny"],
                        sets=["data.n_samples=512", "train.eval_samples=300"])
    ctx = Context(spec=spec, config=dict(tree), run=Run(tmp_path), device=torch.device("cpu"))
    task = GANTask(ctx)
    with torch.no_grad():
        last = task.G_ema.net[-1]
        last.weight.zero_()  # every z now maps to one point
    assert task._check_diversity(10) == 0.0
    metrics = task.evaluate(10)
    assert metrics["modes"] <= 1
    assert any("step 10" in a and "modes/classes captured" in a for a in ctx.alarms), ctx.alarms  # at once
    assert not any("diversity" in a for a in ctx.alarms)  # one low check of 256 samples is not yet a collapse
    assert task._check_diversity(20) == task._check_diversity(30) == 0.0
    assert [a for a in ctx.alarms if "diversity" in a] == [a for a in ctx.alarms if "step 30" in a]
    assert sum("diversity" in a for a in ctx.alarms) == 1


def test_sampling_and_eval_from_a_run(tmp_path):
    out = tmp_path / "run"
    assert run_cli("train", "gan", "--data", "grid", "--out", str(out), *TINY_GAN).exit_code == 0
    a = run_cli("sample", str(out), "-n", "5", "--seed", "2")
    b = run_cli("sample", str(out), "-n", "5", "--seed", "2")
    assert a.exit_code == 0 and a.output == b.output and len(a.output.strip().splitlines()) == 5
    t = run_cli("sample", str(out), "-n", "2000", "--seed", "2", "--truncation", "0.5", "-o", str(tmp_path / "t.csv"))
    assert t.exit_code == 0
    assert np.loadtxt(tmp_path / "t.csv", delimiter=",").shape == (2000, 2)
    assert run_cli("sample", str(out), "-n", "50", "-o", str(tmp_path / "s.png")).exit_code == 0
    res = json.loads(run_cli("eval", str(out), "--json").output)
    assert res["data"] == "grid" and res["samples"] == 2500 and res["modes_total"] == 25


def test_runs_from_before_the_discrete_latent_still_load(tmp_path):
    """A config.json without model.latent_classes was written by a plain-latent gan (ModelSpec.legacy)."""
    out = tmp_path / "old"
    args = ["--data", "ring", "--out", str(out), *TINY_GAN, "--set", "model.latent_classes=0"]
    assert run_cli("train", "gan", *args).exit_code == 0
    before = run_cli("sample", str(out), "-n", "3", "--seed", "1").output
    cfg = json.loads((out / "config.json").read_text())
    del cfg["config"]["model"]["latent_classes"]
    (out / "config.json").write_text(json.dumps(cfg))
    assert Run.open(out).tree()["model"].latent_classes == 0
    again = run_cli("sample", str(out), "-n", "3", "--seed", "1")
    assert again.exit_code == 0 and again.output == before
    resumed = run_cli("train", "gan", "--resume", "--out", str(out), "--steps", "18")
    assert resumed.exit_code == 0, resumed.output


def test_gan_user_errors(tmp_path):
    txt = tmp_path / "x.txt"
    txt.write_text("hello")
    csv = tmp_path / "bad.csv"
    csv.write_text("1,2\n3\n")
    cases = [
        (["train", "dcgan", "--data", "ring", "--out", str(tmp_path / "a")], "dcgan needs images"),
        (["train", "gan", "--data", "digits", "--out", str(tmp_path / "b")], "gan needs vectors"),
        (["train", "gan", "--data", str(txt), "--out", str(tmp_path / "c")], "must be .npy or .csv"),
        (["train", "gan", "--data", str(csv), "--out", str(tmp_path / "d")], "cannot read"),
        (["train", "gan", "--set", "model.pack=3", "--set", "train.batch_size=64", "--out", str(tmp_path / "e")],
         "multiple of model.pack"),
        (["train", "gan", "--set", "model.pack=9"], "model.pack must be 1..4"),
        (["train", "gan", "--set", "model.latent_classes=1"], "model.latent_classes must be 0"),
        (["train", "gan", "--set", "model.z_dim=1"], "needs model.z_dim >= 2"),
        (["train", "gan", "--set", "loss.name=cross-entropy", "--out", str(tmp_path / "f")], "for autoregressive"),
        (["train", "dcgan", "--set", "model.image_size=12"], "8, 16, 32 or 64"),
    ]
    for args, part in cases:
        line = one_error_line(run_cli(*args))
        assert part in line, (args, line)


def test_vectors_from_csv_and_image_folders(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    np.savetxt(tmp_path / "v.csv", rng.standard_normal((64, 3)) * 5 + 10, delimiter=",")
    out = tmp_path / "csvrun"
    r = run_cli("train", "gan", "--data", str(tmp_path / "v.csv"), "--out", str(out), *TINY_GAN,
                "--set", "train.batch_size=16")
    assert r.exit_code == 0, r.output
    x = np.array([[float(v) for v in line.split(",")] for line in run_cli("sample", str(out), "-n", "3").output.split()])
    assert x.shape == (3, 3)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(16):
        Image.fromarray((rng.random((20, 20, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "imgrun"
    r = run_cli("train", "dcgan", "--data", str(folder), "--out", str(out), *TINY_DCGAN, "--set", "model.image_size=16")
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "config.json").read_text())["config"]["model"]
    assert cfg["image_size"] == 16 and cfg["channels"] == 3


def test_the_alarm_does_not_flap():
    """A value hovering at the threshold raises one alarm; only a real recovery clears it, as a recovery."""
    from gentoolkit.samples.evaluation import Alarm

    alarm = Alarm(0.25, 0.375)
    values = [0.9, 0.24, 0.26, 0.24, 0.27, 0.2, 0.3, 0.36, 0.38, 0.24, 0.5]
    assert [alarm.update(v) for v in values] == [None, "raised", None, None, None, None, None, None, "cleared",
                                                 "raised", "cleared"]
    # debounced, as the gan's diversity alarm is: a collapsed generator whose diversity swings (the classic
    # recipe's log) raises once and is not cleared by a few good checks; a fresh one's first low checks pass
    swinging = Alarm(0.25, 0.375, raise_after=3, clear_after=5)
    values = [0.04, 0.1, 0.2, 0.44, 0.18, 0.38, 0.21, 0.14, 0.5, 0.6, 0.4, 0.12, 0.8, 0.5, 0.5, 0.6, 0.7, 0.9]
    changes = [swinging.update(v) for v in values]
    assert [(i, c) for i, c in enumerate(changes) if c] == [(2, "raised"), (16, "cleared")]
    resumed = Alarm(0.25, 0.375, raise_after=3, clear_after=5)
    fresh = Alarm(0.25, 0.375, raise_after=3, clear_after=5)
    for v in values[:10]:
        fresh.update(v)
    resumed.restore(fresh.state)  # the checkpoint keeps the counts, so a resumed run alarms at the same step
    assert [resumed.update(v) for v in values[10:]] == changes[10:]
    old = Alarm(0.25, 0.375)
    old.restore(True)  # a checkpoint from before the counts were kept
    assert old.raised and old.state == {"raised": True, "below": 0, "above": 0}
    assert Alarm(0.25, 0.375, raise_after=3).update(0.1) is None  # one low check is not a collapse
