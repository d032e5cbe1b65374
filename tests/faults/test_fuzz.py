"""Property-based fuzzing of what users hand the toolkit: export folders and run folders.

Every case damages a copy of a real folder (a manifest, tokenizer.json, model.onnx, config.json or
a safetensors file) and runs the commands that read it. The property: the outcome is a correct
result or one clear ``Error:`` line; never a traceback, never a hang, and nothing written outside
the folder under test. Export cases run in a torch-free worker process (worker.py); run cases run
in this process under a time limit.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..conftest import ROOT, run_cli
from .conftest import TALLY, Hang, time_limit

CASE_SECONDS = 60


def fuzz(examples: int):
    """Seeded (the same cases every run, in CI too), no deadline: a case may train or export."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


class Worker:
    """worker.py as a subprocess: one case at a time, restarted after a crash or a hang."""

    def __init__(self):
        self.proc = None

    def _start(self):
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("worker.py"))], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, bufsize=1)

    def ask(self, request: dict, seconds: float = CASE_SECONDS) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], seconds)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            hung = self.proc.poll() is None
            self.close()
            return {"outcome": "hang" if hung else "crash", "text": f"worker {'hung' if hung else 'died'}"}
        return json.loads(line)

    def close(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    w.close()


def tally(outcome: str, text: str, case) -> None:
    """Count one case; fail the test on anything but a correct result or a clear error."""
    TALLY["inputs"] += 1
    key = {"ok": "correct", "error": "clear_errors", "hang": "hangs"}.get(outcome, "tracebacks")
    TALLY[key] += 1
    assert outcome in ("ok", "error"), f"{case}: {outcome}\n{text}"
    if outcome == "error":
        assert "\n" not in text.strip() and "Traceback" not in text, text


def snapshot(folder: Path, skip: tuple[Path, ...]) -> dict[str, tuple[int, int]]:
    out = {}
    for p in folder.rglob("*"):
        if any(p == s or s in p.parents for s in skip):
            continue
        st_ = p.lstat()
        out[str(p)] = (st_.st_size, st_.st_mtime_ns)
    return out


# --- mutations of JSON documents ------------------------------------------------------------------------
ODD_VALUES = st.one_of(
    st.none(), st.booleans(),
    st.sampled_from([0, -1, 1, 2, 3, 7, 2**31, 2**63, 10**30, -(10**30)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "../../outside.txt", "/etc/passwd", "model.onnx", "tokenizer.json", "gentoolkit.json",
                     "..", "x" * 300, "é", "gan", "autoregressive", "float32", "int64", "batch"]),
    st.lists(st.sampled_from([0, 1, -1, "batch", None, 2.5]), max_size=4),
    st.dictionaries(st.sampled_from(["name", "dtype", "shape", "x"]), st.sampled_from([0, "a", None]), max_size=3),
)


def key_paths(obj, prefix=(), depth=0, skip=()) -> list[tuple]:
    out = [prefix]
    if depth >= 4 or (prefix and prefix[0] in skip and len(prefix) >= 1):
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += key_paths(v, prefix + (k,), depth + 1, skip)
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:6]):
            out += key_paths(v, prefix + (i,), depth + 1, skip)
    return out


def mutate(doc, ops, skip=()):
    for kind, pick, value in ops:
        paths = [p for p in key_paths(doc, skip=skip) if p]
        if not paths:
            return value
        path = paths[pick % len(paths)]
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        if kind == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    return doc


JSON_OPS = st.lists(st.tuples(st.sampled_from(["delete", "replace", "replace"]), st.integers(0, 10**6), ODD_VALUES),
                    min_size=1, max_size=3)


def damaged_bytes(data: bytes, kind: str, arg) -> bytes:
    """``truncate`` at a fraction of the length, or ``flip``: XOR bytes at fractions of it."""
    if kind == "truncate":
        return data[: int(len(data) * arg)]
    buf = bytearray(data)
    for where, xor in arg:
        buf[min(len(buf) - 1, int(where * len(buf)))] ^= xor
    return bytes(buf)


def copy_case(src: Path, base: Path) -> Path:
    TALLY["case_id"] += 1
    dst = base / f"case-{TALLY['case_id']}" / src.name
    shutil.copytree(src, dst, symlinks=True)
    return dst


# --- export folders -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fuzz_exports(exports):
    return {name: exports[name] for name in ("gpt", "gan")}


def check_export_case(worker, folder: Path, case, target: Path | None = None) -> None:
    base = folder.parent.parent
    before = snapshot(base, (folder.parent,))
    target = target or folder
    for request in ({"call": "load", "path": str(target)},
                    {"call": "cli", "args": ["sample", str(target), "-n", "2", "--max-new-tokens", "3", "--seed", "1"]}):
        answer = worker.ask(request)
        tally(answer["outcome"], answer["text"], (case, request["call"]))
    after = snapshot(base, (folder.parent,))
    TALLY["outside_writes"] += before != after
    assert before == after, f"{case}: wrote outside the folder"


@fuzz(70)
@given(name=st.sampled_from(["gpt", "gan"]), ops=JSON_OPS, bare=st.booleans())
def test_damaged_manifests(worker, fuzz_exports, tmp_path_factory, name, ops, bare):
    """The manifest in gentoolkit.json, or (bare) the copy in model.onnx's metadata with no gentoolkit.json."""
    import onnx

    folder = copy_case(fuzz_exports[name], tmp_path_factory.getbasetemp() / "fuzz-manifest")
    manifest = json.loads((folder / "gentoolkit.json").read_text())
    damaged = mutate(manifest, ops, skip=("config", "validation"))
    if bare:
        (folder / "gentoolkit.json").unlink()
        model = onnx.load(str(folder / "model.onnx"))
        del model.metadata_props[:]
        for key, value in (damaged.items() if isinstance(damaged, dict) else []):
            entry = model.metadata_props.add()
            entry.key, entry.value = str(key), value if isinstance(value, str) else json.dumps(value)
        onnx.save(model, str(folder / "model.onnx"))
        check_export_case(worker, folder, (name, ops, "bare"), folder / "model.onnx")
    else:
        (folder / "gentoolkit.json").write_text(json.dumps(damaged))
        check_export_case(worker, folder, (name, ops))


# Each of these replaces every entry of the manifest in turn (a random draw reaches only some entries).
WRONG_TYPES = [None, [], {}, [None], -1, "x" * 300]


@pytest.mark.parametrize("name", ["gpt", "gan"])
def test_every_manifest_entry_with_the_wrong_type(worker, fuzz_exports, tmp_path_factory, name):
    """Every entry of gentoolkit.json (outside config and validation) deleted, or replaced by each of WRONG_TYPES."""
    source = json.loads((fuzz_exports[name] / "gentoolkit.json").read_text())
    folder = copy_case(fuzz_exports[name], tmp_path_factory.getbasetemp() / "sweep-manifest")
    paths = [p for p in key_paths(source, skip=("config", "validation")) if p]
    assert len(paths) > 20
    for path in paths:
        for value in ["delete", *WRONG_TYPES]:
            damaged = mutate(json.loads(json.dumps(source)), [("delete" if value == "delete" else "replace",
                                                                paths.index(path), value)],
                             skip=("config", "validation"))
            (folder / "gentoolkit.json").write_text(json.dumps(damaged))
            answer = worker.ask({"call": "load", "path": str(folder)})
            tally(answer["outcome"], answer["text"], (name, path, value))


@fuzz(40)
@given(ops=JSON_OPS, cut=st.one_of(st.none(), st.floats(0, 1)))
def test_damaged_tokenizers(worker, fuzz_exports, tmp_path_factory, ops, cut):
    folder = copy_case(fuzz_exports["gpt"], tmp_path_factory.getbasetemp() / "fuzz-tokenizer")
    path = folder / "tokenizer.json"
    if cut is not None:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * cut)])
    else:
        path.write_text(json.dumps(mutate(json.loads(path.read_text()), ops)))
    check_export_case(worker, folder, ("tokenizer", ops, cut))


def _foreign_onnx(path: Path) -> None:
    from onnx import TensorProto, helper, save

    graph = helper.make_graph([helper.make_node("Identity", ["z"], ["samples"])], "g",
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 16])],
                              [helper.make_tensor_value_info("samples", TensorProto.FLOAT, ["batch", 16])])
    save(helper.make_model(graph), str(path))


def _constant_outside(path: Path) -> None:
    """A Constant node whose tensor's external data points outside the folder."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    t = helper.make_tensor("c", TensorProto.FLOAT, [1], [0.0])
    t.data_location = TensorProto.EXTERNAL
    t.ClearField("float_data")
    entry = t.external_data.add()
    entry.key, entry.value = "location", "../../../outside.bin"
    model.graph.node.insert(0, helper.make_node("Constant", [], ["c_out"], value=t))
    onnx.save(model, str(path))


ONNX_DAMAGE = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), min_size=1, max_size=30)),
    st.tuples(st.sampled_from(["other-family", "foreign", "empty", "symlink-out", "constant-outside",
                               "directory"]), st.none()),
)


@fuzz(60)
@given(name=st.sampled_from(["gpt", "gan"]), damage=ONNX_DAMAGE)
def test_damaged_graphs(worker, fuzz_exports, tmp_path_factory, name, damage):
    folder = copy_case(fuzz_exports[name], tmp_path_factory.getbasetemp() / "fuzz-onnx")
    model = folder / "model.onnx"
    kind, arg = damage
    if kind in ("truncate", "flip"):
        model.write_bytes(damaged_bytes(model.read_bytes(), kind, arg))
    elif kind == "other-family":
        shutil.copyfile(fuzz_exports["gan" if name == "gpt" else "gpt"] / "model.onnx", model)
    elif kind == "foreign":
        _foreign_onnx(model)
    elif kind == "empty":
        model.write_bytes(b"")
    elif kind == "symlink-out":
        outside = folder.parent / "elsewhere.onnx"
        shutil.copyfile(model, outside)
        model.unlink()
        model.symlink_to(outside)
    elif kind == "constant-outside":
        _constant_outside(model)
    else:
        model.unlink()
        model.mkdir()
    check_export_case(worker, folder, (name, kind))


# --- run folders ------------------------------------------------------------------------------------------
def run_commands(model: str, run: Path, out: Path, export: bool) -> list[list[str]]:
    sample = ["sample", str(run), "-n", "2", "--seed", "1"] + (["--max-new-tokens", "3"] if model == "gpt" else [])
    cmds = [sample, ["eval", str(run)], ["train", model, "--resume", "--out", str(run), "--steps", "44"]]
    return cmds + ([["export", str(run), "-o", str(out)]] if export else [])


def check_run_case(model: str, run: Path, export: bool, case) -> None:
    base = run.parent
    out = base / "export"
    before = snapshot(base.parent, (base,))
    for args in run_commands(model, run, out, export):
        config = (run / "config.json").read_bytes()
        try:
            with time_limit(CASE_SECONDS):
                r = run_cli(*args)
        except Hang as exc:
            tally("hang", str(exc), (case, args[0]))
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            import traceback

            tally("traceback", "".join(traceback.format_exception(r.exception))[-3000:], (case, args[0]))
        errors = [line for line in r.output.splitlines() if line.startswith("Error:")]
        if args[0] == "train" and r.exit_code != 0:
            assert (run / "config.json").read_bytes() == config, f"{case}: a failed resume rewrote config.json"
        if r.exit_code == 0:
            tally("ok", "", (case, args[0]))
        elif len(errors) == 1 and "Traceback" not in r.output:
            tally("error", errors[0], (case, args[0]))
        else:
            tally("traceback", r.output[-3000:], (case, args[0]))
    after = snapshot(base.parent, (base,))
    TALLY["outside_writes"] += before != after
    assert before == after, f"{case}: wrote outside the folder"


@pytest.fixture(scope="module")
def fuzz_runs(gpt_run, gan_run):
    return {"gpt": gpt_run, "gan": gan_run}


@fuzz(30)
@given(model=st.sampled_from(["gpt", "gan"]), ops=JSON_OPS, export=st.booleans())
def test_damaged_run_configs(fuzz_runs, tmp_path_factory, model, ops, export):
    run = copy_case(fuzz_runs[model], tmp_path_factory.getbasetemp() / "fuzz-config")
    meta = json.loads((run / "config.json").read_text())
    damaged = mutate(meta, ops)
    (run / "config.json").write_text(json.dumps(damaged))
    check_run_case(model, run, export and bool(TALLY["case_id"] % 3 == 0), (model, ops))


SAFETENSORS_DAMAGE = st.tuples(
    st.sampled_from(["model.safetensors", "checkpoint weights", "checkpoint state", "checkpoint manifest"]),
    st.one_of(st.tuples(st.just("truncate"), st.floats(0, 1)),
              st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 0.05), st.integers(1, 255)),
                                                  min_size=1, max_size=8)),
              st.tuples(st.just("delete"), st.none())))


@fuzz(20)
@given(model=st.sampled_from(["gpt", "gan"]), damage=SAFETENSORS_DAMAGE)
def test_damaged_weights_and_checkpoints(fuzz_runs, tmp_path_factory, model, damage):
    from gentoolkit.train import checkpoint

    run = copy_case(fuzz_runs[model], tmp_path_factory.getbasetemp() / "fuzz-weights")
    which, (kind, arg) = damage
    last = checkpoint.latest(run).path
    path = {"model.safetensors": run / "model.safetensors", "checkpoint weights": last / "model.safetensors",
            "checkpoint state": last / "state.safetensors", "checkpoint manifest": last / "checkpoint.json"}[which]
    data = path.read_bytes()
    if path.is_file():
        os.unlink(path)  # a hard link to the checkpoint's weights: damage this name only
    if kind != "delete":
        path.write_bytes(damaged_bytes(data, kind, arg))
    check_run_case(model, run, False, (model, which, kind))
