"""The fault campaign's family axis: every command that takes a run or an export, crossed with the runs
and exports of every built-in family (gpt, llama, gan, dcgan).

``train MODEL --init T`` and ``train MODEL --resume --out T`` for each of the four models, ``export T`` with
each ``--format`` and ``--layout``, ``sample``, ``eval``, ``chat``, ``serve`` (start-up only: it is stopped
once it listens) and ``demo``, where T is each family's run, its ONNX export, and what ``export --format hf``
and ``--layout transformers.js`` made of it. Every combination must end in success or one ``Error:`` line,
never a traceback. The commands run in this process (click's runner) on tiny runs: a few seconds in all.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import pytest

from ..conftest import run_cli
from .conftest import TALLY, Hang, time_limit

MODELS = ("gpt", "llama", "gan", "dcgan")
CASE_SECONDS = 60
# what each model trains on in one step, should --init let it train
TRAIN_ARGS = {
    "gpt": ["--set", "train.batch_size=4", "--set", "train.eval_batches=1"],
    "llama": ["--set", "train.batch_size=4", "--set", "train.eval_batches=1"],
    "gan": ["--data", "ring", "--preset", "tiny", "--set", "data.n_samples=256", "--set", "train.eval_samples=64"],
    "dcgan": ["--preset", "tiny", "--set", "train.batch_size=8", "--set", "train.eval_samples=64"],
}
EXPORTS = {"onnx": ["--format", "onnx"], "hf": ["--format", "hf"], "transformers.js": ["--layout", "transformers.js"]}


class Axis:
    """The folders under test (copies of the session's runs and exports) and the outcomes so far."""

    def __init__(self, base: Path, corpus: Path):
        self.base, self.corpus = base, corpus
        self.targets: dict[str, Path] = {}
        self.failures: list[str] = []
        self.log: list[tuple] = []  # (combination, outcome, seconds, its Error: line)
        self.counter = 0

    def fresh(self, stem: str) -> Path:
        self.counter += 1
        return self.base / "out" / f"{stem}-{self.counter}"

    def copy(self, name: str) -> Path:
        """A copy of target ``name`` to run a command that may write into it."""
        dest = self.fresh(name.replace(" ", "-"))
        shutil.copytree(self.targets[name], dest, symlinks=True)
        return dest

    def case(self, args: list[str], what: str, *, input: str | None = None, during=None) -> str:
        """Run ``gentool ARGS`` once and count it: "ok", "error", or a failure (traceback, hang, unclear end)."""
        TALLY["family_cases"] += 1
        start = time.perf_counter()
        try:
            with time_limit(CASE_SECONDS), (during or _nothing()):
                r = run_cli(*args, input=input)
        except Hang as exc:
            return self._fail("hang", what, str(exc))
        errors = [line for line in r.output.splitlines() if line.startswith("Error:")]
        crashed = r.exception is not None and not isinstance(r.exception, SystemExit)
        if crashed:
            return self._fail("traceback", what, "".join(traceback.format_exception(r.exception))[-3000:])
        if "Traceback" in r.output:
            return self._fail("traceback", what, r.output[-3000:])
        if r.exit_code == 0 and not errors:
            TALLY["family_ok"] += 1
            self.log.append((what, "ok", round(time.perf_counter() - start, 2)))
            return "ok"
        if r.exit_code != 0 and len(errors) == 1:
            TALLY["family_errors"] += 1
            self.log.append((what, "error", round(time.perf_counter() - start, 2), errors[0]))
            return "error"
        return self._fail("unclear", what, f"exit {r.exit_code}: {r.output[-3000:]}")

    def _fail(self, kind: str, what: str, text: str) -> str:
        TALLY["family_tracebacks"] += 1
        self.failures.append(f"{what}: {kind}\n{text}")
        return kind

    def check(self) -> None:
        """Fail with every combination since the last check that did not end cleanly."""
        failures, self.failures = self.failures, []
        assert not failures, f"{len(failures)} combinations did not end cleanly:\n\n" + "\n\n".join(failures)


@contextmanager
def _nothing():
    yield


@contextmanager
def _in(folder: Path):
    """Run in ``folder``: a sample that writes ``samples.png`` where it runs writes it there."""
    old = Path.cwd()
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def stopped_once_listening(port: int):
    """Send this process SIGINT (what stops ``gentool serve``) once something listens on ``port``."""
    done = threading.Event()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def watch():
        while not done.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                    pass
            except OSError:
                time.sleep(0.02)
                continue
            os.kill(os.getpid(), signal.SIGINT)  # again every half second, should one come before its handler
            done.wait(0.5)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def stub_node_modules(folder: Path) -> Path:
    """The npm files ``gentool demo`` copies into a site, as placeholders (the page is not run here)."""
    from gentoolkit.web.demo import VENDOR

    for package, (sub, files) in VENDOR.items():
        (folder / package / sub).mkdir(parents=True, exist_ok=True)
        (folder / package / "package.json").write_text(json.dumps({"name": package, "version": "0.0.0-test"}))
        for name in files:
            (folder / package / sub / name).write_text("// placeholder\n")
    return folder


@pytest.fixture(scope="module")
def axis(tmp_path_factory, corpus, gpt_run, llama_run, gan_run, dcgan_run, exports) -> Axis:
    """Each family's run and ONNX export, then what ``export`` (each format and layout) makes of each run:
    those exports are targets of the other commands too."""
    base = tmp_path_factory.mktemp("family-axis")
    a = Axis(base, corpus)
    runs = {"gpt": gpt_run, "llama": llama_run, "gan": gan_run, "dcgan": dcgan_run}
    for family in MODELS:
        for name, src in ((f"{family} run", runs[family]), (f"{family} onnx export", exports[family])):
            dest = base / name.replace(" ", "-")
            shutil.copytree(src, dest, symlinks=True)
            a.targets[name] = dest
    for family in MODELS:
        for kind, flags in EXPORTS.items():
            out = base / f"{family}-{kind}-export"
            got = a.case(["export", str(a.targets[f"{family} run"]), "-o", str(out), *flags, "--no-validate"],
                         f"export {family} run {' '.join(flags)}")
            if got == "ok" and kind != "onnx":
                a.targets[f"{family} {kind} export"] = out
    a.check()
    yield a
    if os.environ.get("GENTOOL_FAMILY_AXIS_LOG"):  # every combination, its outcome, seconds and error line
        Path(os.environ["GENTOOL_FAMILY_AXIS_LOG"]).write_text(json.dumps(a.log, indent=1))


def test_train_init_and_resume(axis):
    """--init from, and --resume of, every target by every model: a model's own finished run resumes (and
    says it is done), a gpt or llama run or Hugging Face folder starts a gpt or llama run."""
    for target in list(axis.targets):
        for model in MODELS:
            out = axis.fresh(f"init-{model}")
            axis.case(["train", model, "--init", str(axis.targets[target]), "--out", str(out), "--steps", "1",
                       "--device", "cpu", "-q", *(["--data", str(axis.corpus)] if model in ("gpt", "llama") else []),
                       *TRAIN_ARGS[model]], f"train {model} --init {target}")
            axis.case(["train", model, "--resume", "--out", str(axis.copy(target)), "--device", "cpu", "-q"],
                      f"train {model} --resume --out {target}")
    axis.check()


def test_export_every_export(axis):
    """An export of an export, in each format and layout (the runs' exports are the fixture's cases)."""
    for target in [t for t in axis.targets if not t.endswith(" run")]:
        for flags in EXPORTS.values():
            axis.case(["export", str(axis.targets[target]), "-o", str(axis.fresh("export")), *flags, "--no-validate"],
                      f"export {target} {' '.join(flags)}")
    axis.check()


def test_sample_eval_and_chat(axis):
    for target, path in axis.targets.items():
        short = ["--max-new-tokens", "8"] if target.split()[0] in ("gpt", "llama") else []  # a text family's flag
        with _in(axis.fresh("cwd")):
            axis.case(["sample", str(path), "-n", "1", "--seed", "1", *short], f"sample {target}")
        axis.case(["eval", str(path)], f"eval {target}")
        axis.case(["chat", str(path), "--max-new-tokens", "4"], f"chat {target}", input="hello\n")
    axis.check()


def test_serve_and_demo(axis):
    """serve must refuse a bad folder before it binds; one that starts is stopped once it listens."""
    modules = stub_node_modules(axis.base / "node_modules")
    for target, path in axis.targets.items():
        port = free_port()
        axis.case(["serve", str(path), "--port", str(port), "--grace", "1"], f"serve {target}",
                  during=stopped_once_listening(port))
        axis.case(["demo", str(path), "-o", str(axis.fresh("site")), "--node-modules", str(modules)],
                  f"demo {target}")
    axis.check()
