"""What a newcomer sees: progress on a terminal and off it, --quiet, --log-file, --json, the listings,
``gentool eval EXPORT`` and an image GAN's default picture."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios

import pytest

from .conftest import FAST_TRAIN, ROOT, TINY, one_error_line, run_cli, run_subprocess

TRAIN = ["train", "gpt", "--steps", "12", *[a for s in TINY["gpt"] + FAST_TRAIN for a in ("--set", s)],
         "--set", "train.eval_interval=6"]


def test_redirected_training_writes_plain_lines_and_json(tmp_path, corpus):
    log = tmp_path / "train.log"
    r = run_subprocess(*TRAIN, "--data", str(corpus), "--out", str(tmp_path / "run"), "--log-file", str(log), "--json",
                       env={"GENTOOL_PROGRESS_SECONDS": "0"})
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr and "\r" not in r.stdout  # no bar frames in a file
    lines = [x for x in r.stderr.splitlines() if x.startswith("gpt step ")]
    assert [x.split()[2] for x in lines] == ["5/12", "6/12", "10/12", "12/12"]  # every logged step and evaluation
    assert "val_loss" in lines[1] and "left" in lines[0] and "elapsed" in lines[-1]
    assert re.search(r"tokens_per_s [\d,]+  ", lines[0]) and " 0.0000 " not in " ".join(lines)  # rates whole, 1e-5 not 0
    result = json.loads(r.stdout)  # stdout holds the JSON object alone
    assert result["run"] == str(tmp_path / "run") and result["steps"] == 12
    assert result["metrics"]["val_loss"] > 0 and "estimate on 2 batches" in result["evaluated_on"]
    assert "estimate on 2 batches" in r.stderr.splitlines()[-1]  # the summary names what the number is
    assert log.read_text().splitlines() == [x for x in r.stderr.splitlines() if x.startswith("gpt step ")]

    quiet = run_subprocess("train", "gpt", "--steps", "14", "--resume", "--out", str(tmp_path / "run"), "-q",
                           "--log-file", str(log))
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == "", quiet.stderr
    assert log.read_text().splitlines()[-1].startswith("gpt step 14/14")  # the log still gets every line

    bad = run_subprocess(*TRAIN, "--data", str(corpus), "--out", str(tmp_path / "run2"),
                         "--log-file", str(tmp_path / "missing" / "x.log"))
    assert "cannot write the log file" in one_error_line(bad)


def test_resume_says_the_step_it_continues_from(tmp_path, corpus):
    run = tmp_path / "run"
    assert run_cli(*TRAIN, "--steps", "6", "--data", str(corpus), "--out", str(run)).exit_code == 0
    r = run_subprocess("train", "gpt", "--steps", "8", "--resume", "--out", str(run))
    assert r.returncode == 0, r.stderr
    assert f"Resuming {run} from step 6 of 8" in r.stderr.splitlines()[0]


def _on_a_terminal(args: list[str], env: dict, *, interrupt_at: str | None = None) -> str:
    """stderr of ``gentool ARGS`` written to a pseudo-terminal, as a user at one sees it; with ``interrupt_at``,
    Ctrl-C (SIGINT) once that text has appeared, and the command must then exit with 130."""
    expected = 130 if interrupt_at else 0
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal 100 columns wide
    full = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    proc = subprocess.Popen([sys.executable, "-m", "gentoolkit", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave, cwd=ROOT, env=full)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
        if interrupt_at and interrupt_at.encode() in out:
            proc.send_signal(signal.SIGINT)
            interrupt_at = None
    os.close(master)
    assert proc.wait(120) == expected, out.decode(errors="replace")
    return out.decode(errors="replace")


def test_a_terminal_gets_a_bar_unless_tqdm_is_disabled(tmp_path, corpus):
    bar = _on_a_terminal(TRAIN + ["--data", str(corpus), "--out", str(tmp_path / "a")], {"TQDM_DISABLE": None})
    assert "\r" in bar.replace("\r\n", "\n") and "12/12" in bar  # one line redrawn in place
    assert "gpt step " not in bar
    plain = _on_a_terminal(TRAIN + ["--data", str(corpus), "--out", str(tmp_path / "b")], {"TQDM_DISABLE": "1"})
    assert "gpt step 12/12" in plain and "step/s" not in plain
    assert "\x1b[" not in plain  # no colour (NO_COLOR holds without being asked)


def test_ctrl_c_on_a_terminal_ends_with_how_to_resume(tmp_path, corpus):
    out = _on_a_terminal(TRAIN + ["--steps", "100000", "--data", str(corpus), "--out", str(tmp_path / "a")],
                         {"TQDM_DISABLE": None}, interrupt_at="step/s")
    shown = [frame for line in out.replace("\r\n", "\n").split("\n") for frame in line.split("\r")[-1:] if frame.strip()]
    assert re.fullmatch(r"Interrupted at step \d+; state saved\. Continue with: gentool train gpt --resume --out .+", shown[-1])
    assert any("/100000 [" in frame for frame in shown[:-1])  # the bar was drawn, and not redrawn under the line


def test_eval_of_an_export_is_the_runs_number(gpt_run, exports, corpus, tmp_path):
    run = json.loads(run_cli("eval", str(gpt_run), "--json").output)
    exp = json.loads(run_cli("eval", str(exports["gpt"]), "--json").output)
    assert exp["val_loss"] == pytest.approx(run["val_loss"], abs=1e-4) and exp["tokens"] == run["tokens"]
    assert exp["measured_on"] == run["measured_on"] and "whole" in exp["measured_on"]
    on_file = json.loads(run_cli("eval", str(exports["gpt"]), "--data", str(corpus), "--json").output)
    assert on_file["data"] == str(corpus) and on_file["val_loss"] != exp["val_loss"]
    text = run_cli("eval", str(exports["gpt"])).output
    assert "measured_on: the whole validation split" in text


def test_eval_scores_a_text_shorter_than_the_context_and_sliding_windows(gpt_run, exports, gan_run, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("The cat sat.", encoding="utf-8")  # 12 bytes: shorter than the 32-token context
    for path in (gpt_run, exports["gpt"]):
        r = run_cli("eval", str(path), "--data", str(short), "--json")
        assert r.exit_code == 0, r.output
        res = json.loads(r.output)
        assert res["tokens"] == 11 and res["windows"] == 1 and res["window"] == 11 and res["val_loss"] > 0
    text = tmp_path / "text.txt"
    text.write_text("def f(x):\n    return x + 1\n" * 10, encoding="utf-8")  # 270 bytes, 269 targets
    seen = {}
    for args in ([], ["--window", "16"], ["--window", "16", "--stride", "4"]):
        run = json.loads(run_cli("eval", str(gpt_run), "--data", str(text), "--json", *args).output)
        exp = json.loads(run_cli("eval", str(exports["gpt"]), "--data", str(text), "--json", *args).output)
        assert exp["val_loss"] == pytest.approx(run["val_loss"], abs=1e-4) and exp["windows"] == run["windows"]
        assert run["tokens"] == 269  # every token scored once, however the windows lie
        seen[tuple(args)] = (run["windows"], run["window"], run["stride"])
    assert seen == {(): (9, 32, 32), ("--window", "16"): (17, 16, 16), ("--window", "16", "--stride", "4"): (65, 16, 4)}
    bad = [(["--window", "0"], "'--window': '0' is not in [1,"), (["--window", "33"], "--window 33 does not fit the model's "
           "context of 32 tokens"), (["--window", "8", "--stride", "9"], "--stride 9 must be 1 to the window (8 tokens)"),
           (["--stride", "x"], "'x' is not an integer")]
    for args, part in bad:
        for path in (gpt_run, exports["gpt"]):
            assert part in one_error_line(run_cli("eval", str(path), "--data", str(text), *args)), args
    assert "the gan family's eval does not take --window" in one_error_line(run_cli("eval", str(gan_run), "--window", "8"))


def test_eval_of_a_gan_export_is_the_runs_numbers(gan_run, dcgan_run, exports):
    for name, run in (("gan", gan_run), ("dcgan", dcgan_run)):
        of_run = json.loads(run_cli("eval", str(run), "--json").output)
        r = run_cli("eval", str(exports[name]), "--json")
        assert r.exit_code == 0, r.output
        of_export = json.loads(r.output)
        assert list(of_export) == list(of_run) and of_export["samples"] == of_run["samples"]
        for key, value in of_run.items():  # the same latents through onnxruntime: the same numbers, up to rounding
            assert of_export[key] == (pytest.approx(value, rel=0.02, abs=0.5) if isinstance(value, float) else value), key
    on_grid = json.loads(run_cli("eval", str(exports["gan"]), "--data", "grid", "--json").output)
    assert on_grid["data"] == "grid" and on_grid["modes_total"] == 25
    assert "holds images, but this generator makes vectors" in one_error_line(
        run_cli("eval", str(exports["gan"]), "--data", "digits"))


def test_eval_and_quickstart_print_high_quality_alike(gan_run, exports):
    from gentoolkit.samples.metrics import format_metric

    value = json.loads(run_cli("eval", str(exports["gan"]), "--json").output)["high_quality"]
    assert 0 <= value <= 100  # a percentage in --json and metrics.jsonl
    for path in (gan_run, exports["gan"]):
        assert re.search(r"^high_quality: \d+\.\d\d%$", run_cli("eval", str(path)).output, re.M)
    assert format_metric("high_quality", 99.8) == "99.80%" and format_metric("reverse_kl", 0.01) == "0.0100"
    # the quickstart's line is built from the same formatter: tests/test_quickstart.py reads it from its output


def test_listings_name_every_builtin_model_and_its_presets():
    top = run_cli("--help").output
    assert all(name in top for name in ("gpt", "llama", "gan", "dcgan"))
    rows = {line.split()[0]: line for line in run_cli("models").output.splitlines()[1:]}
    listed = json.loads(run_cli("models", "--json").output)
    for spec in listed:  # every preset of every model shows in the table, not only in --json
        assert ", ".join(spec["presets"]) in rows[spec["name"]]


def test_a_mistyped_command_suggests_the_one_fewest_edits_away():
    from gentoolkit.errors import closest, edit_distance

    assert edit_distance("smaple", "sample") == 1 and edit_distance("smaple", "samplers") == 3
    for typed, meant in (("smaple", "sample"), ("sampel", "sample"), ("modles", "models"), ("exprot", "export"),
                         ("plugns", "plugins")):
        r = run_cli(typed)
        assert f"No such command '{typed}'. Did you mean '{meant}'?" in one_error_line(r), r.output
    assert "Did you mean" not in one_error_line(run_cli("xyz"))
    assert closest("stpes", ["steps", "seed", "eval_interval"]) == "steps"
    assert "Did you mean 'gpt'" in one_error_line(run_cli("train", "gtp"))


def test_an_unknown_model_lists_the_known_ones_and_points_at_plugins():
    line = one_error_line(run_cli("train", "flowmatch"))
    assert "unknown model 'flowmatch'" in line and "gpt, llama" in line
    assert "come from plugins: pip install the plugin package" in line and "'gentool plugins'" in line


def test_image_samples_without_out_go_to_a_new_png(exports, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "samples.png").write_bytes(b"mine")
    r = run_cli("sample", str(exports["dcgan"]), "-n", "4", "--seed", "1")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "samples.png").read_bytes() == b"mine"  # never replaced
    assert (tmp_path / "samples-1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "samples-1.png" in r.output


def test_sample_json_gives_text_with_its_ids_or_the_file(gpt_run, exports, tmp_path, monkeypatch):
    from gentoolkit.runtime import load

    args = ["-p", "The ", "-p", "a", "-n", "2", "--seed", "3", "--max-new-tokens", "6", "--json"]
    run = json.loads(run_cli("sample", str(gpt_run), *args).output)
    exp = json.loads(run_cli("sample", str(exports["gpt"]), *args).output)
    assert run == exp and len(exp["samples"]) == 4 and exp["seed"] == 3
    tok = load(exports["gpt"]).tokenizer
    for s in exp["samples"]:
        assert 1 <= len(s["ids"]) <= 6 and s["finish"] in ("stop", "length")
        assert s["text"] == tok.decode([i for i in s["ids"] if i not in tok.eos_ids])
    monkeypatch.chdir(tmp_path)
    for name, suffix in (("gan", ".npy"), ("dcgan", ".png")):
        r = run_cli("sample", str(exports[name]), "-n", "5", "--seed", "1", "--json")
        assert r.exit_code == 0, r.output
        out = json.loads(r.output)
        assert out["path"].endswith("samples" + suffix) and out["shape"][0] == 5
    import numpy as np

    assert np.load(tmp_path / "samples.npy").shape == tuple(json.loads(
        run_cli("sample", str(exports["gan"]), "-n", "5", "--seed", "1", "--json").output)["shape"])
