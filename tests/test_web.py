"""Exports in JavaScript: transformers.js' pipeline on a --layout transformers.js folder, the JS clients
(web/lm.mjs, web/gan.mjs) in Node, and the gentool demo site in Debian's chromium driven by Playwright.

Node packages come from tests/js/package-lock.json (npm ci, once); .ci/run installs chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gentoolkit.runtime import load
from gentoolkit.runtime.folder import version_tuple

from .conftest import ROOT, one_error_line, run_cli, train_tiny

JS = ROOT / "tests" / "js"
PACKAGES = ("@huggingface/transformers", "@huggingface/tokenizers", "onnxruntime-node", "onnxruntime-web",
            "playwright-core")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
LM = ROOT / "plugins" / "gentoolkit_autoregressive" / "web" / "lm.mjs"
GAN = ROOT / "plugins" / "gentoolkit_gan" / "web" / "gan.mjs"
# one run per family and tokenizer pair, each with a prompt its greedy text does something with
WEB_RUNS = {"gpt-char": ("gpt", "char", "Retu"), "gpt-bpe": ("gpt", "bpe", "The "),
            "llama-byte": ("llama", "byte", "the value of"), "llama-bpe": ("llama", "bpe", "A list is ")}
LONGER = ["train.lr=1e-2", "train.batch_size=16", "train.eval_interval=300"]  # 300 steps: greedy text that is more than one repeated token


def node(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["node", *args], cwd=JS, capture_output=True, text=True, timeout=timeout)


def ensure_node_modules() -> Path:
    """tests/js/node_modules, installed from its package-lock.json (npm ci) if it is not yet."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("the JavaScript tests need Node.js and npm (Debian: apt-get install nodejs npm)")
    if not all((JS / "node_modules" / p / "package.json").is_file() for p in PACKAGES):
        subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=JS, check=True, timeout=900)
    return JS / "node_modules"


def in_chromium(url: str, cases: dict, folder: Path, shots: Path | None = None) -> dict:
    """Drive the demo at ``url`` with tests/js/browser.mjs in Debian's chromium; what the page did."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium), as .ci/run does")
    (folder / "cases.json").write_text(json.dumps(cases))
    r = node("browser.mjs", url, str(folder / "cases.json"), str(shots or ""), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.splitlines()[-1])


@pytest.fixture(scope="session")
def node_modules() -> Path:
    return ensure_node_modules()


@pytest.fixture(scope="session")
def web_runs(tmp_path_factory, corpus) -> dict[str, Path]:
    """The four text runs."""
    base = tmp_path_factory.mktemp("web-runs")
    return {name: train_tiny(model, base / name, corpus, steps=300, extra=[f"data.tokenizer={tokenizer}", *LONGER])
            for name, (model, tokenizer, _) in WEB_RUNS.items()}


def export_each(runs: dict[str, Path], base: Path, *args: str, suffix: str = "") -> dict[str, Path]:
    """``gentool export RUN -o BASE/NAME{suffix} ARGS`` for each run (the folder's name is its demo panel's)."""
    for name, run in runs.items():
        r = run_cli("export", str(run), "-o", str(base / f"{name}{suffix}"), *args)
        assert r.exit_code == 0, r.output
    return {name: base / f"{name}{suffix}" for name in runs}


@pytest.fixture(scope="session")
def web_exports(tmp_path_factory, web_runs) -> dict[str, Path]:
    """The four text runs, each exported with --layout transformers.js (fp32, q8, q4): the traced graph."""
    return export_each(web_runs, tmp_path_factory.mktemp("web"), "--layout", "transformers.js")


@pytest.fixture(scope="session")
def fused_exports(tmp_path_factory, web_runs) -> dict[str, Path]:
    """The same runs as gentool export writes them by default: the fused graph (GroupQueryAttention)."""
    out = export_each(web_runs, tmp_path_factory.mktemp("fused"), suffix="-fused")
    for folder in out.values():
        assert json.loads((folder / "gentoolkit.json").read_text())["graph"] == "fused"
    return out


@pytest.fixture(scope="session")
def fused_layout(tmp_path_factory, web_runs) -> dict[str, Path]:
    """The runs in the transformers.js layout with --graph fused (fp32, q8, q4)."""
    return export_each(web_runs, tmp_path_factory.mktemp("fused-tjs"), "--layout", "transformers.js", "--graph", "fused")


@pytest.fixture(scope="session")
def imported_export(tmp_path_factory, corpus) -> Path:
    """A random-init Hugging Face Llama with its own BPE tokenizer, which adds a BOS: imported, then
    exported in the transformers.js layout."""
    from .hf_models import llama

    base = tmp_path_factory.mktemp("imported")
    folder = llama(base / "hf", corpus.read_text(encoding="utf-8")[:20_000])
    r = run_cli("import", str(folder), "-o", str(base / "run"))
    assert r.exit_code == 0, r.output
    r = run_cli("export", str(base / "run"), "-o", str(base / "tjs"), "--layout", "transformers.js", "--variants", "fp32")
    assert r.exit_code == 0, r.output
    return base / "tjs"


def python_greedy(folder: Path, prompt: str, n: int, variant: str | None = None) -> str:
    return load(folder, variant=variant).generate(prompt, max_new_tokens=n, temperature=0)


def logits_case(folder: Path) -> dict:
    """A prefill of 20 tokens and 8 cached steps after it (tests/js/logits.mjs, browser.mjs): a check of the graph
    that greedy text cannot give where a tiny model says the same token at every step."""
    vocab = json.loads((folder / "gentoolkit.json").read_text())["runtime"]["vocab_size"]
    rng = np.random.default_rng(0)
    return {"ids": rng.integers(0, vocab - 2, 20).tolist(), "next": rng.integers(0, vocab - 2, 8).tolist()}


def python_logits(folder: Path, case: dict) -> np.ndarray:
    """The last position's logits of each of ``case``'s steps from onnxruntime in Python, the cache fed back."""
    import onnxruntime as ort

    manifest = json.loads((folder / "gentoolkit.json").read_text())
    rt, options = manifest["runtime"], ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(folder / manifest["model_file"]), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    past = {f"past_key_values.{i}.{k}": np.zeros((1, rt["n_kv_head"], 0, rt["head_dim"]), np.float32)
            for i in range(rt["n_layer"]) for k in ("key", "value")}
    fed, out = [], []
    for step in [case["ids"], *([t] for t in case["next"])]:
        fed += step
        got = dict(zip(names, session.run(None, {
            "input_ids": np.array([step], np.int64), "attention_mask": np.ones((1, len(fed)), np.int64),
            "position_ids": np.arange(len(fed) - len(step), len(fed))[None], **past})))
        out.append(got["logits"][0, -1])
        past = {p: got[p.replace("past_key_values", "present")] for p in past}
    return np.stack(out)


# --- the transformers.js layout -----------------------------------------------------------------------------------
def test_layout_is_the_one_transformers_js_loads(web_exports):
    folder = web_exports["llama-byte"]
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert names == ["config.json", "genai_config.json", "generation_config.json", "gentoolkit.json", "onnx/model.onnx",
                     "onnx/model_q4.onnx", "onnx/model_quantized.onnx", "tokenizer.json", "tokenizer_config.json"]
    manifest = json.loads((folder / "gentoolkit.json").read_text())
    assert manifest["layout"] == "transformers.js" and manifest["model_file"] == "onnx/model.onnx"
    assert sorted(manifest["files"]) == names
    assert {k: v["file"] for k, v in manifest["variants"].items()} == {
        "fp32": "onnx/model.onnx", "q8": "onnx/model_quantized.onnx", "q4": "onnx/model_q4.onnx"}
    assert manifest["variants"]["q4"]["weights"]["bits"] == 4 and manifest["variants"]["q8"]["quantize"] == "int8"
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_key_value_heads"] == manifest["runtime"]["n_kv_head"]
    generation = json.loads((folder / "generation_config.json").read_text())
    assert generation["bad_words_ids"] == [[manifest["runtime"]["pad_token_id"]]]  # never generated, as in gentoolkit
    assert json.loads((folder / "genai_config.json").read_text())["model"]["decoder"]["filename"] == "onnx/model.onnx"


def test_transformers_js_pipeline_gives_the_runtimes_greedy_text(web_exports, imported_export, node_modules, tmp_path):
    # transformers.js does not move the window: prompt and new tokens stay within the context of 32
    cases = [{"dir": str(web_exports[name]), "prompt": prompt, "max_new_tokens": 16, "dtype": dtype}
             for name, (_, _, prompt) in WEB_RUNS.items() for dtype in ("fp32", "q8", "q4")]
    # the pipeline adds the BOS only where tokenizer_config.json says add_bos_token, as the layout does
    cases.append({"dir": str(imported_export), "prompt": "The value", "max_new_tokens": 16, "dtype": "fp32"})
    assert json.loads((imported_export / "tokenizer_config.json").read_text())["add_bos_token"] is True
    assert json.loads((web_exports["gpt-char"] / "tokenizer_config.json").read_text())["add_bos_token"] is False
    assert len(set(pipeline_matches_the_runtime(cases, tmp_path))) > 3  # the runs say different things


def pipeline_matches_the_runtime(cases: list[dict], tmp_path: Path) -> list[str]:
    """Run transformers.js' pipeline on ``cases`` (tests/js/transformers_js.mjs), assert each greedy text is
    gentoolkit.runtime's on the same file; the texts."""
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    r = node("transformers_js.mjs", str(tmp_path / "cases.json"))
    assert r.returncode == 0, r.stderr[-3000:]
    variant = {"fp32": None, "q8": "q8", "q4": "q4"}
    results = json.loads(r.stdout.splitlines()[-1])
    for case in results:
        expected = case["prompt"] + python_greedy(Path(case["dir"]), case["prompt"], 16, variant[case["dtype"]])
        assert case["text"] == expected, (case["dir"], case["dtype"])
    return [c["text"] for c in results]


def test_transformers_js_pipeline_runs_the_fused_graph(fused_layout, node_modules, tmp_path):
    """--graph fused in the layout: GroupQueryAttention and RotaryEmbedding in transformers.js' own onnxruntime-node,
    with the cache it makes for an empty past ([batch_size, Hkv, 0, D], sized by the input's dim name)."""
    import onnx

    folder = fused_layout["llama-byte"]
    manifest = json.loads((folder / "gentoolkit.json").read_text())
    # the oldest onnxruntime that runs it is no newer than the one transformers.js brings (its own nested copy)
    nested = node_modules / "@huggingface" / "transformers" / "node_modules" / "onnxruntime-node"
    ort_node = json.loads(((nested if nested.is_dir() else node_modules / "onnxruntime-node") / "package.json")
                          .read_text())["version"]
    assert manifest["graph"] == "fused" and version_tuple(manifest["onnxruntime"]) <= version_tuple(ort_node)
    ops = {n.op_type for n in onnx.load(str(folder / "onnx" / "model_q4.onnx")).graph.node}
    assert {"GroupQueryAttention", "RotaryEmbedding", "MatMulNBits"} <= ops
    cases = [{"dir": str(fused_layout[name]), "prompt": prompt, "max_new_tokens": 16, "dtype": dtype}
             for name, (_, _, prompt) in WEB_RUNS.items() for dtype in ("fp32", "q8", "q4")]
    assert len(set(pipeline_matches_the_runtime(cases, tmp_path))) > 3


def test_gentool_sample_reads_the_layout(web_exports):
    name = "gpt-char"
    r = run_cli("sample", str(web_exports[name]), "--greedy", "--prompt", "Retu", "--max-new-tokens", "24")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("Retu" + python_greedy(web_exports[name], "Retu", 24))


def test_layout_with_external_data(gpt_run, node_modules, tmp_path):
    from gentoolkit.export import export_layout

    out = tmp_path / "tjs"
    export_layout(gpt_run, out, variants=("fp32",), external_data_bytes=0, log=lambda m: None)
    assert (out / "onnx" / "model.onnx_data").is_file() and not (out / "onnx" / "model.onnx.data").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["transformers.js_config"]["use_external_data_format"] == {"model.onnx": 1}
    (tmp_path / "cases.json").write_text(json.dumps([{"dir": str(out), "prompt": "The ", "max_new_tokens": 12}]))
    r = node("transformers_js.mjs", str(tmp_path / "cases.json"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])[0]["text"] == "The " + python_greedy(out, "The ", 12)
    # a second export replaces the first in one step
    export_layout(gpt_run, out, variants=("fp32", "q4"), log=lambda m: None)
    assert sorted(p.name for p in (out / "onnx").iterdir()) == ["model.onnx", "model_q4.onnx"]


@pytest.mark.parametrize("args, message", [
    (["--graph", "nonesuch"], "choose --graph traced or fused"),
    (["--dtype", "int4"], "--variants"),
    (["--variants", "fp32,q3"], "fp32, fp16, q8, q4"),
    (["--variants", "fp32", "--block-size", "64"], "add q4"),
])
def test_layout_errors(gpt_run, tmp_path, args, message):
    error = one_error_line(run_cli("export", str(gpt_run), "-o", str(tmp_path / "o"), "--layout", "transformers.js",
                                   *args))
    assert message in error and not (tmp_path / "o").exists()


def test_layout_needs_a_family_that_has_it(gan_run, gpt_run, tmp_path):
    assert "no transformers.js layout" in one_error_line(
        run_cli("export", str(gan_run), "-o", str(tmp_path / "o"), "--layout", "transformers.js"))
    assert "--layout transformers.js" in one_error_line(
        run_cli("export", str(gpt_run), "-o", str(tmp_path / "o"), "--variants", "q4"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert "holds other files" in one_error_line(run_cli(
        "export", str(gpt_run), "-o", str(tmp_path / "mine"), "--layout", "transformers.js", "--overwrite"))
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


# --- the JavaScript clients in Node ---------------------------------------------------------------------------------
def test_lm_mjs_gives_the_runtimes_text(web_exports, node_modules):
    for name, (_, _, prompt) in WEB_RUNS.items():  # 40 tokens: past the context of 32, where the window moves
        r = node(str(LM), str(web_exports[name]), prompt, "--max-new-tokens", "40", "--json")
        assert r.returncode == 0, r.stderr
        result = json.loads(r.stdout)
        assert result["text"] == python_greedy(web_exports[name], prompt, 40), name
        assert result["tokens_per_s"] > 0
    sampled = [node(str(LM), str(web_exports["llama-bpe"]), "A", "--temperature", "1", "--top-k", "20", "--seed", "7",
                    "--json").stdout for _ in range(2)]
    assert json.loads(sampled[0])["text"] == json.loads(sampled[1])["text"]  # the seed decides


def test_lm_mjs_runs_the_default_export(fused_exports, node_modules):
    """gentool export's default, the fused graph (GroupQueryAttention, RotaryEmbedding, the skip norms), in
    onnxruntime-node: the Python runtime's greedy tokens, past the context where the window moves."""
    texts = []
    for name, (_, _, prompt) in WEB_RUNS.items():
        r = node(str(LM), str(fused_exports[name]), prompt, "--max-new-tokens", "40", "--json")
        assert r.returncode == 0, r.stderr
        result = json.loads(r.stdout)
        assert result["text"] == python_greedy(fused_exports[name], prompt, 40), name
        assert len(result["ids"]) == 40 and result["tokens_per_s"] > 0
        texts.append(result["text"])
    assert len(set(texts)) > 2  # (a tiny llama greedy says spaces: test_lm_mjs_gives_onnxruntimes_logits checks it)


def test_lm_mjs_gives_onnxruntimes_logits(fused_exports, node_modules, tmp_path):
    for name, folder in fused_exports.items():
        case = logits_case(folder)
        (tmp_path / "case.json").write_text(json.dumps(case))
        r = node("logits.mjs", str(LM), str(folder), str(tmp_path / "case.json"))
        assert r.returncode == 0, r.stderr
        expected = python_logits(folder, case)
        np.testing.assert_allclose(np.array(json.loads(r.stdout)), expected, atol=1e-4, err_msg=name)


def test_lm_mjs_refuses_a_tokenizer_it_cannot_read(web_exports, node_modules, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(web_exports["gpt-char"], broken)
    (broken / "tokenizer.json").write_text('{"model": {"type": "Nonesuch"}}')
    r = node(str(LM), str(broken), "The ")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("Error: ") and "cannot read its tokenizer" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    (broken / "tokenizer.json").unlink()
    r = node(str(LM), str(broken), "The ")
    assert r.returncode == 1 and "cannot read its tokenizer" in r.stderr


def test_lm_mjs_refuses_what_it_cannot_run(exports, node_modules, tmp_path):
    newer = tmp_path / "newer"  # an export whose graph needs a newer onnxruntime than the one at hand
    shutil.copytree(exports["gpt"], newer)
    manifest = json.loads((newer / "gentoolkit.json").read_text())
    (newer / "gentoolkit.json").write_text(json.dumps({**manifest, "onnxruntime": "99.1"}))
    r = node(str(LM), str(newer), "The ")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("Error: ") and "needs onnxruntime 99.1 or newer and this onnxruntime-node is" in r.stderr
    assert "--graph traced" in r.stderr  # the fused graph: the traced one runs on older releases
    gan = node(str(LM), str(exports["gan"]))
    assert gan.returncode == 1 and "not a language model" in gan.stderr
    missing = node(str(LM), str(tmp_path))
    assert missing.returncode == 1 and "not an export folder" in missing.stderr


@pytest.mark.parametrize("name", ["gan", "dcgan"])
def test_gan_mjs_matches_onnxruntime_in_python(exports, node_modules, name):
    folder = exports[name]
    r = node(str(GAN), str(folder), "--n", "5", "--seed", "3", "--truncation", "0.7", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    manifest = json.loads((folder / "gentoolkit.json").read_text())
    rt = manifest["runtime"]
    assert result["dims"] == [5, *rt["sample_shape"]]
    z = np.array(result["z"], dtype=np.float32).reshape(5, rt["z_dim"])
    assert np.abs(z).max() <= 0.7 and z.std() > 0.2  # truncated, not constant
    import onnxruntime as ort

    session = ort.InferenceSession(str(folder / manifest["model_file"]), providers=["CPUExecutionProvider"])
    (expected,) = session.run(["samples"], {"z": z})
    np.testing.assert_allclose(np.array(result["samples"]).reshape(expected.shape), expected, atol=1e-5)
    again = json.loads(node(str(GAN), str(folder), "--n", "5", "--seed", "3", "--truncation", "0.7", "--json").stdout)
    assert again["z"] == result["z"]


# --- the demo site in a real browser -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def external_export(tmp_path_factory, gpt_run) -> Path:
    """A layout export whose weights sit in onnx/model.onnx_data: the browser gets them as externalData."""
    from gentoolkit.export import export_layout

    out = tmp_path_factory.mktemp("external") / "gpt-external"
    export_layout(gpt_run, out, variants=("fp32",), external_data_bytes=0, log=lambda m: None)
    return out


@pytest.fixture(scope="session")
def demo_site(tmp_path_factory, web_exports, fused_exports, exports, external_export, node_modules) -> Path:
    site = tmp_path_factory.mktemp("demo") / "site"
    r = run_cli("demo", *map(str, web_exports.values()), str(exports["gan"]), str(exports["dcgan"]),
                str(external_export), *map(str, fused_exports.values()), "-o", str(site),
                "--node-modules", str(node_modules))
    assert r.exit_code == 0, r.output
    return site


def test_demo_site_holds_everything_it_runs(demo_site, node_modules):
    meta = json.loads((demo_site / "site.json").read_text())
    assert [m["name"] for m in meta["models"]] == [*WEB_RUNS, "gan", "dcgan", "gpt-external",
                                                   *(f"{name}-fused" for name in WEB_RUNS)]
    ort_web = json.loads((node_modules / "onnxruntime-web" / "package.json").read_text())["version"]
    assert meta["vendor"]["onnxruntime-web"] == ort_web
    assert (demo_site / "models" / "gpt-external" / "onnx" / "model.onnx_data").is_file()
    for m in meta["models"]:
        assert (demo_site / m["driver"]).is_file()
        assert (demo_site / m["path"] / "gentoolkit.json").is_file()
    # a transformers.js folder brings only the variant the page runs
    assert sorted(p.name for p in (demo_site / "models" / "gpt-char" / "onnx").iterdir()) == ["model.onnx"]
    page = (demo_site / "index.html").read_text() + (demo_site / "app.mjs").read_text()
    assert "http" not in page.replace("http-equiv", "")  # no CDN: every import is relative


def test_demo_in_chromium(demo_site, web_exports, fused_exports, external_export, tmp_path):
    server = subprocess.Popen([sys.executable, "-m", "gentoolkit", "demo", "--serve", "-o", str(demo_site), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        line = server.stdout.readline()
        assert "serving" in line, line
        url = line.split(" at ")[1].split()[0]
        cases = {"text": {name: {"prompt": prompt, "max_new_tokens": 40} for name, (_, _, prompt) in WEB_RUNS.items()}
                 | {f"{name}-fused": {"prompt": prompt, "max_new_tokens": 40} for name, (_, _, prompt) in WEB_RUNS.items()}
                 | {"gpt-external": {"prompt": "The ", "max_new_tokens": 40}},
                 "gan": {"gan": {"n": 1000}, "dcgan": {"n": 16}},
                 "logits": {f"{name}-fused": logits_case(folder) for name, folder in fused_exports.items()}}
        shots = Path(os.environ.get("GENTOOLKIT_SCREENSHOTS") or tmp_path / "screenshots").resolve()
        out = in_chromium(url, cases, tmp_path, shots)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert out["ready"] == "true" and out["errors"] == [], out["errors"]
    assert out["isolated"] is True  # --serve's headers: onnxruntime-web may use threads
    assert [c for c in out["console"] if c.startswith(("error", "pageerror"))] == []
    assert all(u.startswith(url) or u.startswith("data:") for u in out["requests"])  # nothing from elsewhere
    for name, (_, _, prompt) in WEB_RUNS.items():
        got = out["text"][name]
        assert got["text"] == python_greedy(web_exports[name], prompt, 40), name
        assert got["shown"] == got["text"] and got["tokens_per_s"] > 0  # streamed into the page whole
        # the default export, the fused graph, in onnxruntime-web: the same tokens as Python's onnxruntime
        assert out["text"][f"{name}-fused"]["text"] == python_greedy(fused_exports[name], prompt, 40), name
    assert out["text"]["gpt-external"]["text"] == python_greedy(external_export, "The ", 40)
    for name, folder in fused_exports.items():  # onnxruntime-web's WebAssembly kernels against Python's
        expected = python_logits(folder, cases["logits"][f"{name}-fused"])
        np.testing.assert_allclose(np.array(out["logits"][f"{name}-fused"]), expected, atol=1e-4, err_msg=name)
    for name, n in (("gan", 1000), ("dcgan", 16)):
        assert out["gan"][name]["dims"][0] == n and out["gan"][name]["inked"] > 0.005, out["gan"][name]
    assert all(f"{name}" in out["race"] for name in [*WEB_RUNS, "gan", "dcgan"]) and out["race"].count("done") == 11
    assert (shots / "demo.png").stat().st_size > 10_000


def test_demo_errors(tmp_path, exports, gan_run, node_modules):
    site = tmp_path / "site"
    assert "not an export folder" in one_error_line(run_cli("demo", str(gan_run), "-o", str(site)))
    newer = tmp_path / "newer"  # a graph that needs a newer onnxruntime than the onnxruntime-web installed
    shutil.copytree(exports["gpt"], newer)
    manifest = json.loads((newer / "gentoolkit.json").read_text())
    (newer / "gentoolkit.json").write_text(json.dumps({**manifest, "onnxruntime": "99.1"}))
    assert "needs onnxruntime 99.1 or newer" in one_error_line(
        run_cli("demo", str(exports["gan"]), str(newer), "-o", str(site), "--node-modules", str(node_modules)))
    (tmp_path / "empty").mkdir()
    assert "lacks onnxruntime-web" in one_error_line(
        run_cli("demo", str(exports["gan"]), "-o", str(site), "--node-modules", str(tmp_path / "empty")))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "index.html").write_text("mine")
    assert "not a gentool demo site" in one_error_line(
        run_cli("demo", str(exports["gan"]), "-o", str(tmp_path / "mine"), "--node-modules", str(node_modules)))
    assert (tmp_path / "mine" / "index.html").read_text() == "mine" and not site.exists()
    assert "not a site made by gentool demo" in one_error_line(run_cli("demo", "--serve", "-o", str(tmp_path / "mine")))


def test_onnxruntime_genai_runs_the_layout_folder(web_exports):
    import onnxruntime_genai as og

    folder = web_exports["llama-byte"]
    model = og.Model(str(folder))  # genai_config.json points at onnx/model.onnx
    tokenizer = og.Tokenizer(model)
    params = og.GeneratorParams(model)
    ids = tokenizer.encode("the value of")
    params.set_search_options(max_length=len(ids) + 12, do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(ids)
    while not generator.is_done():
        generator.generate_next_token()
    assert tokenizer.decode(generator.get_sequence(0)) == "the value of" + python_greedy(folder, "the value of", 12)
