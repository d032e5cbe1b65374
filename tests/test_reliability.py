"""Regression tests for the defects of the reliability issue, one behaviour each (the broad campaign
is in tests/faults/). See docs/reliability.md for the promises these check."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from gentoolkit import hookimpl
from gentoolkit.errors import GentoolError
from gentoolkit.export import export
from gentoolkit.plugin.manager import get_plugin_manager
from gentoolkit.plugin.specs import LossSpec
from gentoolkit.runtime import load
from gentoolkit.train import checkpoint
from gentoolkit.train.run import Run

from .conftest import FAST_TRAIN, ROOT, TINY, one_error_line, run_cli, train_tiny


def tiny_args(model: str, out: Path, corpus: Path, steps: int = 8) -> list[str]:
    args = ["train", model, "--data", str(corpus), "--out", str(out), "--steps", str(steps), "--device", "cpu"]
    for s in TINY[model] + FAST_TRAIN + ["train.eval_interval=4"]:
        args += ["--set", s]
    return args


def digest(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# 1. data loss ---------------------------------------------------------------------------------------------
def test_export_never_removes_what_is_not_its_own(tmp_path, gpt_run, corpus):
    runs = tmp_path / "runs"
    run = train_tiny("gpt", runs / "mine", corpus, steps=4)
    other = train_tiny("gpt", runs / "other", corpus, steps=4)
    snapshot = {p: digest(p) for p in (run, other)}
    (tmp_path / "file.txt").write_text("keep me")
    cases = [
        (runs, "holds the run being exported"),
        (run, "not the run folder itself"),
        (other, "is a training run"),
        (tmp_path / "file.txt", "is a file"),
        (tmp_path, "holds the run being exported"),
    ]
    for target, part in cases:
        for extra in ([], ["--overwrite"]):
            assert part in one_error_line(run_cli("export", str(run), "-o", str(target), *extra)), (target, extra)
    assert {p: digest(p) for p in (run, other)} == snapshot
    assert (tmp_path / "file.txt").read_text() == "keep me"
    # a folder of the user's files: refused, then with --overwrite written beside them
    mine = tmp_path / "site"
    mine.mkdir()
    (mine / "index.html").write_text("<p>mine</p>")
    assert "--overwrite" in one_error_line(run_cli("export", str(run), "-o", str(mine)))
    assert run_cli("export", str(run), "-o", str(mine), "--overwrite").exit_code == 0
    assert (mine / "index.html").read_text() == "<p>mine</p>"
    assert isinstance(load(mine).generate("a", max_new_tokens=2), str)
    # a file of an export's name that no export wrote is never replaced, even with --overwrite
    clash = tmp_path / "clash"
    clash.mkdir()
    (clash / "model.onnx").write_bytes(b"the user's own model")
    assert "which no export wrote" in one_error_line(run_cli("export", str(run), "-o", str(clash), "--overwrite"))
    assert (clash / "model.onnx").read_bytes() == b"the user's own model"
    # a previous export is replaced without --overwrite, in one step; what only it wrote goes with it
    previous = tmp_path / "previous"
    export(other, previous, log=lambda m: None)
    manifest = json.loads((previous / "gentoolkit.json").read_text())
    (previous / "old-extra.json").write_text("{}")
    manifest["files"].append("old-extra.json")
    (previous / "gentoolkit.json").write_text(json.dumps(manifest))
    assert run_cli("export", str(run), "-o", str(previous)).exit_code == 0
    assert not (previous / "old-extra.json").exists()
    assert json.loads((previous / "gentoolkit.json").read_text())["config"] == Run.open(run).config
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".gentool-tmp")]


def test_a_training_that_fails_before_its_first_step_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = ["--data", str(tmp_path / "missing.txt"), "--device", "cpu", "--steps", "2"]
    assert "neither a file" in one_error_line(run_cli("train", "gpt", *bad, "--out", str(tmp_path / "new" / "run")))
    assert "neither a file" in one_error_line(run_cli("train", "gpt", *bad))  # no --out: runs/gpt-DATE
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither new/, new/run, runs/ nor runs/gpt-*
    # a folder that was there before stays, and so does what it held
    (tmp_path / "empty").mkdir()
    assert "neither a file" in one_error_line(run_cli("train", "gpt", *bad, "--out", str(tmp_path / "empty")))
    assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    one_error_line(run_cli("train", "gpt", *bad, "--out", str(mine)))
    assert digest(mine) == {"notes.txt": b"keep me"} and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


# 2, 3, 4. checkpoints, restarts, locking -----------------------------------------------------------------
def test_a_damaged_newest_checkpoint_is_passed_over(tmp_path, corpus):
    run = tmp_path / "run"
    assert run_cli(*tiny_args("gpt", run, corpus, steps=8)).exit_code == 0
    newest = checkpoint.latest(run)
    assert newest.step == 8
    state = newest.path / "state.safetensors"
    data = bytearray(state.read_bytes())
    data[-1] ^= 0xFF
    state.write_bytes(bytes(data))
    assert checkpoint.latest(run).step == 4  # the checksum no longer matches: the one before is taken
    r = run_cli("train", "gpt", "--resume", "--out", str(run), "--device", "cpu")
    assert r.exit_code == 0 and "passing over checkpoint step-00000008" in r.output
    reference = tmp_path / "reference"
    assert run_cli(*tiny_args("gpt", reference, corpus, steps=8)).exit_code == 0
    a, b = checkpoint.read_weights(run / "model.safetensors"), checkpoint.read_weights(reference / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_runs_of_the_layout_before_checkpoint_folders_still_resume(tmp_path, corpus):
    from gentoolkit.train.state import save_state

    run = tmp_path / "run"
    assert run_cli(*tiny_args("gpt", run, corpus, steps=4)).exit_code == 0
    last = checkpoint.latest(run)
    tensors, state = checkpoint.load(last)
    shutil.rmtree(run / "checkpoints")
    (run / "model.safetensors").unlink()
    checkpoint.save_weights(run / "model.safetensors", tensors)
    save_state(run / "training_state", state)
    meta = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**meta, "format": 1}))
    assert checkpoint.latest(run).legacy
    r = run_cli("train", "gpt", "--resume", "--out", str(run), "--steps", "8", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert checkpoint.latest(run).step == 8 and not (run / "training_state.json").exists()


def test_a_run_killed_before_its_first_checkpoint_resumes_or_restarts(tmp_path, corpus):
    for how in ("--resume", "again"):
        run = tmp_path / how
        args = tiny_args("gpt", run, corpus)
        p = subprocess.run([sys.executable, "-m", "gentoolkit", *args[0:]], cwd=ROOT, capture_output=True, text=True,
                           env={**os.environ, "GENTOOL_TEST_KILL_AT": "checkpoint.weights@1"})
        assert p.returncode == -9 and (run / "config.json").is_file() and not checkpoint.exists(run)
        r = run_cli("train", "gpt", "--resume", "--out", str(run)) if how == "--resume" else run_cli(*args)
        assert r.exit_code == 0, r.output
        assert checkpoint.latest(run).step == 8
        assert [row["step"] for row in Run(run).read_metrics()][-1] == 8


def test_one_training_process_per_run_folder(tmp_path, corpus):
    run = tmp_path / "run"
    assert run_cli(*tiny_args("gpt", run, corpus, steps=4)).exit_code == 0
    config = (run / "config.json").read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", f"""
from gentoolkit.train.run import Run
import sys
with Run({str(run)!r}).lock():
    print("locked", flush=True)
    sys.stdin.readline()
"""], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        line = one_error_line(run_cli("train", "gpt", "--resume", "--out", str(run), "--steps", "8"))
        assert f"in use by another gentool train (pid {holder.pid})" in line
    finally:
        holder.communicate("\n", timeout=30)
    assert (run / "config.json").read_bytes() == config  # the refused run changed nothing
    # a failed resume does not rewrite config.json either: a state that passes its checksum but does not fit
    folder = checkpoint.latest(run).path
    blob = b'{"stamp": "x", "tree": {}}'
    (folder / "state.json").write_bytes(blob)
    manifest = json.loads((folder / "checkpoint.json").read_text())
    manifest["files"]["state.json"] = {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    (folder / "checkpoint.json").write_text(json.dumps(manifest))
    one_error_line(run_cli("train", "gpt", "--resume", "--out", str(run), "--steps", "8"))
    assert (run / "config.json").read_bytes() == config


def test_a_torn_last_metrics_line_does_not_block_resume(tmp_path, corpus):
    run = tmp_path / "run"
    assert run_cli(*tiny_args("gpt", run, corpus, steps=4)).exit_code == 0
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 5, "train_lo')
    r = run_cli("train", "gpt", "--resume", "--out", str(run), "--steps", "8", "--device", "cpu")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == sorted({row["step"] for row in rows})


def test_two_trainings_into_one_folder_one_wins(tmp_path, corpus):
    run = tmp_path / "run"
    results = []
    args = tiny_args("gpt", run, corpus, steps=40)

    def go():
        results.append(subprocess.run([sys.executable, "-m", "gentoolkit", *args], cwd=ROOT, capture_output=True,
                                      text=True))

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 1], [r.stderr[-500:] for r in results]
    loser = next(r for r in results if r.returncode == 1)
    assert "in use by another gentool train" in loser.stderr or "already holds a run" in loser.stderr
    assert checkpoint.latest(run).step == 40


# 5. hangs ---------------------------------------------------------------------------------------------
def test_a_tiny_truncation_ends_and_keeps_the_distribution():
    from gentoolkit_gan.latent import LatentSampler

    for t in (1e-12, 0.05, 0.5, 0.999, 1.0, 2.5):
        z = LatentSampler("truncated", t)(40_000, 5, np.random.default_rng(0))
        assert np.abs(z).max() <= np.float32(t)
        # the variance of the standard normal cut to [-t, t]
        phi, mass = math.exp(-t * t / 2) / math.sqrt(2 * math.pi), math.erf(t / math.sqrt(2))
        var = t * t / 3 if t < 1e-3 else 1 - 2 * t * phi / mass  # (the uniform's, where the formula cancels)
        assert float(z.astype(np.float64).var()) == pytest.approx(var, rel=0.02), t


def test_a_tiny_truncation_stored_in_an_export_ends(exports, tmp_path):
    folder = tmp_path / "gan"
    shutil.copytree(exports["gan"], folder)
    m = json.loads((folder / "gentoolkit.json").read_text())
    m["sampler_defaults"] = {"truncation": 1e-12}
    (folder / "gentoolkit.json").write_text(json.dumps(m))
    x = load(folder).sample(500, seed=0)
    assert x.shape == (500, 2) and np.isfinite(x).all()
    assert run_cli("sample", str(exports["gan"]), "-n", "50", "--truncation", "1e-12").exit_code == 0


# 6, 7. numbers and one-line errors ------------------------------------------------------------------------
class NanLossPlugin:
    """A loss that turns NaN after its fourth call, registered like any plugin's."""

    __name__ = "nan-loss-test"

    def __init__(self):
        self.calls = 0

    @hookimpl
    def register_losses(self, register):
        def nan_after_four(logits, targets):
            self.calls += 1
            loss = torch.nn.functional.cross_entropy(logits, targets)
            return loss * float("nan") if self.calls > 4 else loss

        register(LossSpec(name="nan-after-four", family="autoregressive", description="x", impl=nan_after_four))


def test_training_stops_at_a_non_finite_loss_and_keeps_the_last_checkpoint(tmp_path, corpus):
    pm = get_plugin_manager()
    pm.register(NanLossPlugin(), name="nan-loss-test")
    try:
        run = tmp_path / "run"
        line = one_error_line(run_cli(*tiny_args("gpt", run, corpus, steps=8), "--set", "loss.name=nan-after-four"))
    finally:
        pm.unregister(name="nan-loss-test")
    assert "training diverged at step 5: train_loss is nan" in line and "step 4 is kept" in line
    last = checkpoint.latest(run)
    assert last.step == 4
    assert all(torch.isfinite(t).all() for t in checkpoint.read_weights(run / "model.safetensors").values())


def test_numbers_are_checked_at_the_edge(tmp_path, gpt_run, gan_run, exports):
    cases = [
        (["sample", str(gpt_run), "--temperature", "nan"], "'nan' is not a finite number"),
        (["sample", str(exports["gpt"]), "--temperature", "inf"], "'inf' is not a finite number"),
        (["sample", str(gpt_run), "--repetition-penalty", "nan"], "not a finite number"),
        (["sample", str(gpt_run), "-n", "0"], "is not in [1, 100000]"),
        (["sample", str(gpt_run), "--max-new-tokens", "-5"], "'-5' is not in [1, 1000000]"),
        (["sample", str(gpt_run), "--seed", "-1"], "'-1' is not in [0,"),
        (["train", "gpt", "--set", "train.lr=inf", "--out", str(tmp_path / "a")], "train.lr must be a finite number"),
        (["train", "gpt", "--set", "train.lr=nan", "--out", str(tmp_path / "a")], "train.lr must be a finite number"),
        (["train", "gan", "--set", "train.lr_g=-1", "--out", str(tmp_path / "a")], "train.lr_g must be in (0, 10]"),
        (["train", "gpt", "--set", "train.beta1=2", "--out", str(tmp_path / "a")], "train.beta1 must be in [0, 1)"),
        (["train", "gpt", "--out", str(tmp_path / "file.txt")], "is a file; give a folder for the run"),
        (["train", "gpt", "--out", "/proc/gentool-test/run"], "cannot create the run folder"),
    ]
    (tmp_path / "file.txt").write_text("x")
    for args, part in cases:
        assert part in one_error_line(run_cli(*args)), args
    assert not (tmp_path / "a").exists()


def test_stop_strings_are_taken_as_typed(exports):
    from gentoolkit.cli.main import unescape

    assert [unescape(s) for s in ("é", "\\", "a\\nb", "\\\\n", "\\x", "日本")] == ["é", "\\", "a\nb", "\\n", "\\x", "日本"]
    for stop in ("é", "\\", "\\n\\n"):
        r = run_cli("sample", str(exports["gpt"]), "--stop", stop, "--max-new-tokens", "20", "--seed", "1")
        assert r.exit_code == 0, r.output


def test_broken_weights_and_graphs_are_one_line(tmp_path, gpt_run, exports):
    # NaN weights under greedy decoding: an error, not NUL bytes
    nan_run = tmp_path / "nan-run"
    shutil.copytree(gpt_run, nan_run)
    tensors = checkpoint.read_weights(nan_run / "model.safetensors")
    tensors = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in tensors.items()}
    (nan_run / "model.safetensors").unlink()
    checkpoint.save_weights(nan_run / "model.safetensors", tensors)
    assert "logits hold NaN" in one_error_line(run_cli("sample", str(nan_run), "--greedy", "--max-new-tokens", "5"))
    assert "logits contain NaN" in one_error_line(run_cli("sample", str(nan_run), "--max-new-tokens", "5"))
    # a truncated model.safetensors, and a config.json whose sizes do not match the weights
    cut = tmp_path / "cut"
    shutil.copytree(gpt_run, cut)
    data = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").unlink()
    (cut / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert "is damaged or not a safetensors file" in one_error_line(run_cli("sample", str(cut)))
    wrong = tmp_path / "wrong"
    shutil.copytree(gpt_run, wrong)
    meta = json.loads((wrong / "config.json").read_text())
    meta["config"]["model"]["n_embd"] = 64
    (wrong / "config.json").write_text(json.dumps(meta))
    assert "do not fit the model that config.json describes" in one_error_line(run_cli("sample", str(wrong)))
    # garbage, or another family's model.onnx
    for name, damage in (("garbage", b"not onnx at all"), ("other", (exports["gan"] / "model.onnx").read_bytes())):
        folder = tmp_path / name
        shutil.copytree(exports["gpt"], folder)
        (folder / "model.onnx").write_bytes(damage)
        line = one_error_line(run_cli("sample", str(folder)))
        assert "not a readable ONNX model" in line or "does not match its manifest" in line, line
    # manifest numbers that contradict the graph
    folder = tmp_path / "ctx"
    shutil.copytree(exports["gpt"], folder)
    m = json.loads((folder / "gentoolkit.json").read_text())
    m["runtime"]["context_length"] *= 4
    (folder / "gentoolkit.json").write_text(json.dumps(m))
    assert "contradicts model.onnx's own copy" in one_error_line(run_cli("sample", str(folder)))


# 8. paths that escape an export folder -----------------------------------------------------------------------
def test_paths_stay_inside_the_export_folder(tmp_path, exports):
    outside = tmp_path / "outside.onnx"
    shutil.copyfile(exports["gpt"] / "model.onnx", outside)
    cases = {"model_file": "../outside.onnx", "tokenizer": "/etc/passwd"}
    for key, value in cases.items():
        folder = tmp_path / key
        shutil.copytree(exports["gpt"], folder)
        m = json.loads((folder / "gentoolkit.json").read_text())
        m[key] = value
        (folder / "gentoolkit.json").write_text(json.dumps(m))
        with pytest.raises(GentoolError, match="absolute path|leads outside"):
            load(folder)
    linked = tmp_path / "linked"
    shutil.copytree(exports["gpt"], linked)
    (linked / "model.onnx").unlink()
    (linked / "model.onnx").symlink_to(outside)
    with pytest.raises(GentoolError, match="leads outside"):
        load(linked)
    with pytest.raises(GentoolError, match="leads outside"):
        load(linked / "model.onnx")
    # external data in a Constant node (not an initializer) that points outside
    from .faults.test_fuzz import _constant_outside

    const = tmp_path / "const"
    shutil.copytree(exports["gpt"], const)
    _constant_outside(const / "model.onnx")
    with pytest.raises(GentoolError, match="external data outside its folder"):
        load(const)
    # ... and in a subgraph: the branch of an If node
    import onnx
    from onnx import TensorProto, helper

    nested = tmp_path / "nested"
    shutil.copytree(exports["gpt"], nested)
    model = onnx.load(str(nested / "model.onnx"))
    t = helper.make_tensor("c", TensorProto.FLOAT, [1], [0.0])
    t.data_location = TensorProto.EXTERNAL
    t.ClearField("float_data")
    entry = t.external_data.add()
    entry.key, entry.value = "location", "/etc/hostname"
    branch = helper.make_graph([helper.make_node("Constant", [], ["b"], value=t)], "branch", [],
                               [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])])
    cond = helper.make_node("Constant", [], ["cond"], value=helper.make_tensor("k", TensorProto.BOOL, [], [True]))
    model.graph.node.insert(0, cond)
    model.graph.node.insert(1, helper.make_node("If", ["cond"], ["unused"], then_branch=branch, else_branch=branch))
    onnx.save(model, str(nested / "model.onnx"))
    with pytest.raises(GentoolError, match="external data outside its folder"):
        load(nested)


# 9. small things -----------------------------------------------------------------------------------------
def test_small_things(tmp_path, corpus, gpt_run):
    from gentoolkit.config import dumps_toml
    from gentoolkit_autoregressive.tokenizer import TextTokenizer

    # every file of a run gets the same permissions (safetensors makes its own files 0600)
    modes = {p.name: p.stat().st_mode & 0o777 for p in gpt_run.rglob("*") if p.is_file() and p.name != ".lock"}
    assert set(modes.values()) == {0o666 & ~_umask()}, modes
    # the byte tokenizer never advises training with the byte tokenizer
    tok = TextTokenizer.from_file(gpt_run / "tokenizer.json", "byte")
    with pytest.raises(GentoolError) as info:
        tok.encode("a <|pad|> b")
    assert "special token" in str(info.value) and "data.tokenizer=byte" not in str(info.value)
    # TOML has its own words for NaN and infinity
    import tomllib

    text = dumps_toml({"x": {"a": float("nan"), "b": float("inf"), "c": [1.0, float("-inf")]}})
    back = tomllib.loads(text)["x"]
    assert math.isnan(back["a"]) and back["b"] == math.inf and back["c"] == [1.0, -math.inf]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _onnx_locations(path: Path) -> list[str] | None:
    """The same walk with the onnx package, as the reference (None where onnx cannot parse the file)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001
        return None

    def tensors(graph):
        yield from graph.initializer
        for sp in graph.sparse_initializer:
            yield from (sp.values, sp.indices)
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("g"):
                    yield from tensors(attr.g)
                for g in attr.graphs:
                    yield from tensors(g)

    text = lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else v  # noqa: E731
    return sorted(text(e.value) for t in tensors(model.graph) for e in t.external_data if text(e.key) == "location")


def test_the_runtime_reads_external_data_locations_without_onnx(tmp_path, exports):
    import onnx

    from gentoolkit.runtime.folder import external_locations

    big = tmp_path / "big"
    big.mkdir()
    model = onnx.load(str(exports["gpt"] / "model.onnx"))
    onnx.save(model, str(big / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="model.onnx.data", size_threshold=0)
    cases = [exports["gpt"] / "model.onnx", exports["gan"] / "model.onnx", big / "model.onnx"]
    rng = np.random.default_rng(0)
    data = (big / "model.onnx").read_bytes()
    for i in range(40):  # damaged copies: the walk agrees with onnx, or refuses the file
        buf = bytearray(data[: int(len(data) * rng.uniform(0.3, 1.0))] if i % 2 else data)
        for at in rng.integers(0, len(buf), 3):
            buf[at] ^= int(rng.integers(1, 256))
        cases.append(tmp_path / f"damaged-{i}.onnx")
        cases[-1].write_bytes(bytes(buf))
    agreed = 0
    for path in cases:
        try:
            ours = sorted(external_locations(path))
        except GentoolError:
            continue
        reference = _onnx_locations(path)
        if reference is not None:
            assert ours == reference, path
            agreed += 1
    assert agreed >= 3 and sorted(external_locations(big / "model.onnx")) == ["model.onnx.data"] * len(
        model.graph.initializer)


def test_init_across_every_pair_of_models(tmp_path, corpus, gpt_run, llama_run, gan_run, dcgan_run):
    """``train A --init RUN_OF_B`` for every pair of built-in models: gpt and llama start from their own
    runs (the family declares --init on its ModelSpec); gan and dcgan declare nothing, so --init is one
    line whatever it names; a run of another model is one line too. The host names no family's key."""
    runs = {"gpt": gpt_run, "llama": llama_run, "gan": gan_run, "dcgan": dcgan_run}
    data = {"gpt": ["--data", str(corpus), "--set", "train.eval_batches=1", "--set", "train.batch_size=4"],
            "gan": ["--data", "ring", "--preset", "tiny", "--set", "data.n_samples=256",
                    "--set", "train.eval_samples=64"]}
    data["llama"], data["dcgan"] = data["gpt"], ["--preset", "tiny", "--set", "train.batch_size=8"]
    for model in runs:
        for source, run in runs.items():
            out = tmp_path / f"{model}-from-{source}"
            r = run_cli("train", model, "--init", str(run), "--out", str(out), "--steps", "1", "--device", "cpu",
                        "-q", *data[model])
            if model in ("gan", "dcgan"):
                assert f"{model} cannot start from a trained model (--init)" in one_error_line(r), (model, source)
                assert not out.exists(), "a refused --init must not start a run folder"
            elif source != model:
                assert f"is a {source!r} run; start {model!r} from a {model} run" in one_error_line(r)
            else:
                assert r.exit_code == 0, r.output
                meta = json.loads((out / "config.json").read_text())
                assert meta["preset"] == "finetune" and meta["init"] == str(run.resolve())
                assert meta["config"]["model"] == Run.open(run).stored_config()["model"]
                # the family's own rules: the context may only shrink, the architecture stays
                for key, says in (("model.block_size=64", "can only shrink"), ("model.n_layer=3", "model.n_layer")):
                    line = one_error_line(run_cli("train", model, "--init", str(run), "--out", str(out) + "-x",
                                                  "--set", key, *data[model]))
                    assert says in line, line
    # --print-config says the same before anything is trained
    assert "--init" in one_error_line(run_cli("train", "gan", "--init", str(gan_run), "--print-config"))
