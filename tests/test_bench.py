"""gentool bench PATH...: the user's own exports and runs timed side by side, each in its own process."""

import json
import shutil

from .conftest import one_error_line, run_cli, run_subprocess


def test_bench_times_exports_and_runs_side_by_side(exports, gpt_run, gan_run):
    paths = [exports["gpt"], gpt_run, exports["llama"], exports["gan"], gan_run]
    r = run_subprocess("bench", *map(str, paths), "--repeat", "2", "--prompt-tokens", "8", "--new-tokens", "8",
                       "--first-token-prompt", "100",
                       "--batch", "8", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert res["options"]["new_tokens"] == 8 and res["options"]["batch"] == 8
    rows = {(row["path"], row["case"]): row for row in res["paths"]}
    assert len(rows) == 10, list(rows)
    by_path = {str(p): [row for row in res["paths"] if row["path"] == str(p)] for p in paths}
    for path, got in by_path.items():
        assert len(got) == 2 and all(row["peak_rss_mb"] > 30 and row["ms_per_call"] > 0 for row in got), got
        assert all(row["imports_torch"] == (path in (str(gpt_run), str(gan_run))) for row in got), got
    # the tiny models' context (32) cuts the long prompt to 31
    export_decode, run_decode = by_path[str(exports["gpt"])][0], by_path[str(gpt_run)][0]
    assert export_decode["case"] == run_decode["case"] == "decode 8 after 8"
    assert [row["case"] for row in by_path[str(exports["llama"])]] == ["decode 8 after 8", "first token after 31"]
    assert export_decode["tokens_per_s"] > 0 and export_decode["first_token_ms"] > 0
    assert "vs_first" not in export_decode
    # the run is compared with the export round by round, and greedy decoding gives the same tokens
    assert run_decode["vs_first"]["rounds"] == 2 and run_decode["vs_first"]["median"] > 0
    assert run_decode["same_tokens"] == 1.0
    assert 0 <= by_path[str(exports["llama"])][0]["same_tokens"] <= 1  # another model, the same tokenizer
    gan_export, gan_run_rows = by_path[str(exports["gan"])], by_path[str(gan_run)]
    assert [row["case"] for row in gan_export] == ["sample, batch 1", "samples, batch 8"]
    assert all(row["samples_per_s"] > 0 for row in gan_export + gan_run_rows)
    assert all(row["vs_first"]["rounds"] == 2 for row in gan_run_rows)
    printed = run_subprocess("bench", str(exports["gan"]), "--repeat", "1", "--batch", "4")
    assert printed.returncode == 0 and "| samples, batch 4 |" in printed.stdout.replace(f"{exports['gan']} | ", "")


def test_bench_paths_refuse_bad_input_in_one_line(tmp_path, exports):
    assert "does not exist" in one_error_line(run_cli("bench", str(tmp_path / "nothing")))
    assert "not a gentoolkit run folder" in one_error_line(run_cli("bench", str(tmp_path)))
    broken = tmp_path / "broken"
    shutil.copytree(exports["gpt"], broken)
    (broken / "model.onnx").write_bytes((broken / "model.onnx").read_bytes()[:5000])
    line = one_error_line(run_cli("bench", str(exports["gpt"]), str(broken)))
    assert str(broken) in line, line
    usage = run_cli("bench", "--new-tokens", "4")
    assert usage.exit_code == 2 and "applies to the PATHs" in usage.output
