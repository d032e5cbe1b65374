"""gentoolkit-diffusion end to end through gentoolkit: train, resume, sample, eval, export, runtime, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from gentoolkit.plugin.manager import get_registries
from gentoolkit.testing import run_without_torch

from .conftest import gentool, ok, one_error_line, train


def test_registered_through_the_entry_point():
    regs = get_registries()
    assert regs.models.get("ddpm").plugin == "diffusion"
    assert {s.name for s in regs.samplers if s.kind == "diffusion"} == {"ddpm", "ddim"}
    assert regs.losses.get("eps-mse").family == "diffusion"
    assert "diffusion" in regs.runtimes


def test_print_config_shows_the_values_the_data_decides():
    """train.steps and the rest are left to the data; --print-config prints what training will use."""
    ring = ok(gentool("train", "ddpm", "--data", "ring", "--print-config"))
    assert "steps = 10000" in ring and "batch_size = 256" in ring and 'name = "ddpm"' in ring and "data_dim = 2" in ring
    digits = ok(gentool("train", "ddpm", "--data", "digits", "--print-config"))
    assert "steps = 3000" in digits and "batch_size = 64" in digits and 'name = "ddim"' in digits
    assert "# steps = (none)" not in ring.split("[sampler]")[0]


def test_a_ring_run_has_the_hosts_run_folder(ring_run):
    for name in ("config.json", "model.safetensors", "metrics.jsonl", "loss.png", "samples.png"):
        assert (ring_run / name).is_file(), name
    rows = [json.loads(line) for line in (ring_run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert all(np.isfinite(losses)) and np.mean(losses[-3:]) < np.mean(losses[:3])
    assert {"modes", "high_quality", "reverse_kl", "diversity"} <= set(rows[-1])


def test_resume_gives_the_same_weights_as_one_run(tmp_path):
    from safetensors.numpy import load_file

    whole = train(tmp_path / "whole", "ring", 40)
    part = train(tmp_path / "part", "ring", 20)
    ok(gentool("train", "ddpm", "--resume", "--out", str(part), "--steps", "40", "--device", "cpu"))
    a, b = load_file(whole / "model.safetensors"), load_file(part / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_sample_a_run_with_each_sampler(ring_run, tmp_path):
    ddpm = ok(gentool("sample", str(ring_run), "-n", "5", "--seed", "1"))
    assert len(ddpm.strip().splitlines()) == 5
    ddim = ok(gentool("sample", str(ring_run), "-n", "5", "--seed", "1", "--sampler", "ddim",
                      "--sampler-opt", "steps=10"))
    assert ddim != ddpm
    again = ok(gentool("sample", str(ring_run), "-n", "5", "--seed", "1", "--sampler", "ddim",
                       "--sampler-opt", "steps=10"))
    assert again == ddim
    ok(gentool("sample", str(ring_run), "-n", "200", "-o", str(tmp_path / "ring.png")))
    assert (tmp_path / "ring.png").stat().st_size > 1000


def test_eval_reports_the_gan_metrics(ring_run):
    res = json.loads(ok(gentool("eval", str(ring_run), "--json")))
    assert res["data"] == "ring" and res["samples"] == 2500 and res["modes_total"] == 8
    # the sampler training evaluated with (the tiny preset: train.eval_steps 10), named in the report
    assert res["sampler"] == "ddim, 10 steps (eta 0)" and res["steps"] == 10
    assert 0 <= res["modes"] <= 8 and 0 <= res["high_quality"] <= 100 and res["diversity"] > 0
    assert all(0 <= res[k] <= 1 for k in ("precision", "recall", "coverage")) and res["density"] >= 0


def test_export_then_runtime_matches_pytorch(ring_run, ring_export):
    from gentoolkit.plugin.options import make_sampler
    from gentoolkit.runtime import load
    from gentoolkit_diffusion.sample import load_denoiser
    from gentoolkit_diffusion.torch_sampling import draw_samples

    manifest = json.loads((ring_export / "gentoolkit.json").read_text())
    assert manifest["family"] == "diffusion" and manifest["plugin"] == "diffusion"
    assert [i["name"] for i in manifest["io"]["inputs"]] == ["sample", "timestep"]
    model = load(ring_export)
    torch_model, tree = load_denoiser(__import__("gentoolkit.train.run", fromlist=["Run"]).Run.open(ring_run))
    for name, opts in (("ddpm", {}), ("ddim", {"steps": 20})):
        ours = model.sample(50, seed=3, sampler=name, **opts)
        ref = draw_samples(torch_model, tree["model"], make_sampler("diffusion", name=name, options=opts, choose={"": "ddpm"}), 50, 3)
        assert ours.shape == (50, 2)
        np.testing.assert_allclose(ours, ref, atol=1e-3)


def test_sample_export_equals_sample_run(ring_run, ring_export):
    args = ["-n", "4", "--seed", "7", "--sampler", "ddim", "--sampler-opt", "steps=15"]
    a = np.loadtxt(ok(gentool("sample", str(ring_run), *args)).splitlines(), delimiter=",")
    b = np.loadtxt(ok(gentool("sample", str(ring_export), *args)).splitlines(), delimiter=",")
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_runtime_never_imports_torch(ring_export, tmp_path):
    code = f"""
from gentoolkit.runtime import load
m = load({str(ring_export)!r})
x = m.sample(6, seed=0, steps=10, sampler="ddim")
m.save(x, {str(tmp_path / 'x.csv')!r})
assert "torch" not in sys.modules
print(x.shape)
"""
    r = run_without_torch(code)
    assert r.returncode == 0, r.stderr
    assert "(6, 2)" in r.stdout and (tmp_path / "x.csv").read_text().count("\n") == 6


def test_digits_unet_trains_samples_and_exports(digits_run, tmp_path):
    out = tmp_path / "digits.npy"
    ok(gentool("sample", str(digits_run), "-n", "3", "--sampler", "ddim", "--sampler-opt", "steps=5", "-o", str(out)))
    x = np.load(out)
    assert x.shape == (3, 1, 8, 8) and x.min() >= 0 and x.max() <= 16  # clipped to the data's range
    ok(gentool("export", str(digits_run), "-o", str(tmp_path / "export")))
    from gentoolkit.runtime import load

    y = load(tmp_path / "export").sample(3, steps=5, sampler="ddim")
    assert y.shape == (3, 1, 8, 8)
    assert json.loads((digits_run / "config.json").read_text())["config"]["sampler"]["name"] == "ddim"  # auto: images


def test_digits_get_the_gans_classifier_metrics(digits_run):
    from gentoolkit.train.run import Run
    from gentoolkit_diffusion.sample import evaluate
    from gentoolkit_diffusion.samplers import make_ddim

    res = evaluate(Run.open(digits_run), n=200, sampler=make_ddim(steps=3))
    assert res["data"] == "digits" and res["classes_total"] == 10 and 0 <= res["classes"] <= 10
    assert {"class_kl", "confidence", "classifier_frechet", "diversity"} <= set(res), res


@pytest.mark.parametrize("args, expect", [
    (["--sampler", "greedy"], "logits sampler"),
    (["--sampler-opt", "steps=0"], "steps must be >= 1"),
    (["--sampler", "ddpm", "--sampler-opt", "eta=0.5"], "no option 'eta'"),
    (["--truncation", "0.5"], "truncation"),
])
def test_bad_sampling_options_give_one_line(ring_run, ring_export, args, expect):
    assert expect in one_error_line(gentool("sample", str(ring_run), *args))
    assert expect in one_error_line(gentool("sample", str(ring_export), *args))


def test_bad_training_input_gives_one_line(tmp_path):
    assert "schedule" in one_error_line(gentool("train", "ddpm", "--set", "model.schedule=quadratic",
                                                "--out", str(tmp_path / "a")))
    assert "diffusion losses" in one_error_line(gentool("train", "ddpm", "--set", "loss.name=hinge", "--preset", "tiny",
                                                        "--out", str(tmp_path / "b")))
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("size", [8, 16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_unet_shapes(size, channels):
    import torch

    from gentoolkit_diffusion.config import DDPMConfig
    from gentoolkit_diffusion.models import build

    net = build(DDPMConfig(image_size=size, channels=channels, width=8, time_dim=16))
    x = torch.randn(2, channels, size, size)
    assert net(x, torch.tensor([0, 999])).shape == x.shape


def test_image_folder_and_csv_data(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(16):
        Image.fromarray((rng.random((20, 20, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    run = train(tmp_path / "imgrun", str(folder), 4, "--set", "model.image_size=16", "--set", "train.batch_size=4",
                "--set", "train.eval_samples=4")
    cfg = json.loads((run / "config.json").read_text())["config"]
    assert cfg["model"]["image_size"] == 16 and cfg["model"]["channels"] == 3 and cfg["sampler"]["name"] == "ddim"
    np.savetxt(tmp_path / "v.csv", rng.standard_normal((64, 3)) * 5 + 10, delimiter=",")
    run = train(tmp_path / "csvrun", str(tmp_path / "v.csv"), 4, "--set", "train.batch_size=16")
    x = np.loadtxt(ok(gentool("sample", str(run), "-n", "3", "--sampler", "ddim", "--sampler-opt", "steps=3")).split(), delimiter=",")
    assert x.shape == (3, 3)


def test_trains_on_two_workers_through_torchrun(tmp_path):
    """The host's DDP path (gloo on the CPU) works for a third-party task unchanged."""
    out = tmp_path / "ddp"
    r = subprocess.run([sys.executable, "-m", "gentoolkit", "train", "ddpm", "--data", "ring", "--preset", "tiny",
                        "--steps", "20", "--nproc-per-node", "2", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 20 and all(np.isfinite(r["loss"]) for r in rows if "loss" in r)
