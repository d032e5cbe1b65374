"""The export stage: a training run -> a validated, self-describing ONNX folder.

Each family describes its own graph through ``ModelSpec.export``: a function
``plan(run) -> ExportPlan`` giving the module to trace, the input and output
names with their dynamic axes (plain data, as optimum declares them), the
validation cases, and the family's manifest entries and extra files. This stage
does the rest for every family alike: ONNX conversion, fp16 or int8, graph
optimization, ``onnx.checker``, parity against PyTorch in onnxruntime, the
manifest (also written into the ONNX ``metadata_props``), and an atomic folder.

The folder format is :mod:`gentoolkit.runtime.folder` (documented in docs/onnx-contract.md).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from gentoolkit import __version__
from gentoolkit.errors import ExportError
from gentoolkit.export.graph import (
    _convert,
    _finalize,
    _opset_of,
    _opset_range,
    _optimize,
    _quantize_int8,
    _quantize_weights,
    _to_fp16,
)
from gentoolkit.export.plan import (
    DEFAULT_OPSET,
    EXTERNAL_DATA_BYTES,
    TIE,
    TOLERANCES,
    TRACED,
    ExportPlan,
    Runner,
    Tolerance,
    WeightQuant,
    dynamic_axes,
)
from gentoolkit.export.validate import ort_runner, torch_runner, validate
from gentoolkit.plugin.specs import resolve
from gentoolkit.runtime.folder import FORMAT_VERSION, MANIFEST, MODEL, PENDING, own_files
from gentoolkit.train.run import WEIGHTS, Run

__all__ = ["DEFAULT_OPSET", "EXTERNAL_DATA_BYTES", "TIE", "TOLERANCES", "TRACED", "ExportPlan", "Runner", "Tolerance",
           "WeightQuant", "check_target", "dynamic_axes", "export", "export_layout", "ort_runner", "torch_runner",
           "validate"]


def _plugin_version(plugin: str) -> str | None:
    from gentoolkit.plugin.manager import plugin_records

    for r in plugin_records():
        if r.name == plugin:
            return r.version
    return None


def check_target(out: Path, run_path: Path, overwrite: bool) -> str:
    """How an export may go to ``out``: ``"new"`` (missing or empty), ``"replace"`` (a previous export,
    only its own files) or ``"beside"`` (``--overwrite`` next to files that are not an export's)."""
    from gentoolkit.files import is_temp
    from gentoolkit.train import checkpoint

    if out.is_symlink():
        raise ExportError(f"-o {str(out)!r} is a symbolic link; give the folder itself")
    if out.exists() and not out.is_dir():
        raise ExportError(f"-o {str(out)!r} is a file; give a folder for the export")
    run_real, out_real = run_path.resolve(), out.resolve()
    if out_real == run_real:
        raise ExportError("-o must be a new folder, not the run folder itself")
    if out_real in run_real.parents:
        raise ExportError(f"-o {str(out)!r} holds the run being exported; give a new folder for the export")
    if not out.exists():
        return "new"
    own = {name.split("/")[0] for name in own_files(out) or ()}  # a layout's onnx/ folder is its own
    if ((out / "config.json").is_file() and "config.json" not in own) or checkpoint.exists(out):
        raise ExportError(f"-o {str(out)!r} is a training run; give a new folder for the export")
    entries = sorted(p.name for p in out.iterdir() if not is_temp(p.name))
    if not entries:
        return "new"
    foreign = [e for e in entries if e not in own]
    if not foreign:
        return "replace"
    if not overwrite:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        what = "a previous export and other files" if own else "files that are not an export"
        raise ExportError(f"-o {str(out)!r} holds {what} ({shown}); pick a new folder, or pass --overwrite "
                          "to write the export beside them (they are kept)")
    return "beside"


def _place_beside(tmp: Path, out: Path) -> None:
    """``--overwrite`` into a folder with files that are not the export's: move the new files in one
    by one (each rename is atomic), the manifest last, and remove only the previous export's files.
    A file of the same name as a new one that no export wrote is never replaced."""
    from gentoolkit import faults
    from gentoolkit.files import write_json

    new = sorted(p.name for p in tmp.iterdir())
    old = own_files(out) or set()
    clash = [n for n in new if (out / n).exists() and n not in old]
    if clash:
        raise ExportError(f"-o {str(out)!r} holds {', '.join(clash[:5])}, which no export wrote; "
                          "move it away or pick another -o")
    write_json(out / PENDING, sorted(set(new) | (old - {PENDING})))
    if (out / MANIFEST).exists():
        (out / MANIFEST).unlink()  # the folder is not an export until the new manifest is in place
    for name in [n for n in new if n != MANIFEST] + [MANIFEST]:
        os.replace(tmp / name, out / name)
        faults.point("export.beside")
    for name in sorted(old - set(new) - {PENDING}):
        target = out / name
        if target.is_file() and not target.is_symlink():
            target.unlink()
    (out / PENDING).unlink()


def export(
    run_path: str | Path,
    out: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    atol: float | None = None,
    rtol: float | None = None,
    max_kl: float | None = None,
    dtype: str = "fp32",
    quantize: str | None = None,
    optimize: bool = True,
    check: bool = True,
    overwrite: bool = False,
    external_data_bytes: int = EXTERNAL_DATA_BYTES,
    weights: WeightQuant | None = None,
    eval_data: str | Path | None = None,
    graph: str | None = None,
    log=print,
    plan: ExportPlan | None = None,
) -> dict:
    """Export a run folder to ``out``; returns the manifest. The Python API of ``gentool export``.

    A graph larger than ``external_data_bytes`` (16 MB) keeps its weights in one ``model.onnx.data`` file
    beside ``model.onnx``: onnxruntime maps that file rather than parsing the weights into memory and
    copying them (and protobuf cannot hold 2 GB); 0 makes every export do so.

    ``out`` may be missing, an empty folder or a previous export (replaced in one step); a folder
    with other files needs ``overwrite=True``, and even then only the export's own files change.
    ``graph`` names one of the family's graphs (``ExportPlan.graphs``, or ``"traced"``); default the
    family's ``default_graph``. ``plan``: the family's ``ExportPlan`` when the caller has built it
    already (one per run, whatever the dtype).
    """
    import shutil

    from gentoolkit import faults
    from gentoolkit.files import inside, new_temp_dir, publish_dir, remove_stale_temps, write_json
    from gentoolkit.plugin.manager import get_model

    run = Run.open(run_path)
    spec = get_model(run.model_name)
    run.require(WEIGHTS)
    if spec.export is None:
        raise ExportError(f"model {spec.name!r} (plugin {spec.plugin!r}) does not describe an ONNX export")
    if dtype not in ("fp32", "fp16", "int8", "int4"):
        raise ExportError(f"--dtype must be fp32, fp16, int8 or int4, got {dtype!r}")
    if quantize not in (None, "int8"):
        raise ExportError(f"--quantize supports int8 only, got {quantize!r}")
    if quantize and dtype != "fp32":
        raise ExportError(f"choose --dtype {dtype} or --quantize int8 (dynamic), not both")
    if dtype in ("int8", "int4"):
        weights = dataclasses.replace(weights or WeightQuant(), bits=8 if dtype == "int8" else 4)
        if weights.block_size < 16 or weights.block_size & (weights.block_size - 1):
            raise ExportError(f"--block-size must be a power of two, 16 or more, got {weights.block_size}")
        if weights.accuracy_level not in (0, 1, 2, 3, 4):
            raise ExportError(f"--accuracy-level must be 0 to 4, got {weights.accuracy_level}")
    elif weights is not None:
        raise ExportError("--block-size, --asymmetric, --accuracy-level and the head and embedding options are for "
                          "--dtype int4 or int8")
    import torch.onnx

    lo, hi = _opset_range()
    if not lo <= opset <= hi:
        raise ExportError(f"the installed PyTorch exports opsets {lo} to {hi}, not {opset}; try --opset {DEFAULT_OPSET}")
    kind = "int8" if quantize else "int8-weights" if dtype == "int8" else dtype
    tol = TOLERANCES[kind]
    for key, value in (("atol", atol), ("rtol", rtol), ("max_kl", max_kl)):
        if value is not None:
            if not (isinstance(value, (int, float)) and value > 0 and np.isfinite(value)):
                raise ExportError(f"--{key.replace('_', '-')} must be a positive number, got {value!r}")
            tol = dataclasses.replace(tol, **{key: float(value)})
    out = Path(out)
    mode = check_target(out, Path(run_path), overwrite)
    if eval_data is not None and not Path(eval_data).is_file():
        raise ExportError(f"--eval-data {eval_data} is not a file; name a text file to measure the export's quality on")
    if eval_data is not None and not check:
        raise ExportError("--eval-data measures quality during validation; drop --no-validate")
    remove_stale_temps(out.parent, stem=out.name)
    plan = plan or resolve(spec.export)(run)  # export_layout builds it once for all its variants
    if eval_data is not None and plan.quality_on is None:
        raise ExportError(f"model {spec.name!r} (plugin {spec.plugin!r}) cannot measure quality on a named file; "
                          "drop --eval-data")
    graph = graph or plan.default_graph
    choices = [TRACED, *plan.graphs]
    if graph not in choices:
        raise ExportError(f"model {spec.name!r} has no graph {graph!r}; choose --graph {' or '.join(choices)}")
    tmp = new_temp_dir(out)
    try:
        path = tmp / MODEL
        _convert(plan, path, opset, graph)
        faults.point("export.converted")
        quantized = None
        if weights is not None:  # before the optimizer fuses MatMul and Add into Gemm, which it leaves alone
            quantized = _quantize_weights(path, weights, [s["name"] for s in plan.outputs], plan.prequantized)
            if not quantized["nodes"]:
                raise ExportError(f"--dtype {dtype} found no MatMul weights to quantize in {spec.name}'s graph")
            if weights.embedding and _opset_of(path) >= 21:  # the quantizer's own GatherBlockQuantized
                opset = max(opset, 21)
        if dtype == "fp16":
            _to_fp16(path, plan.fp32_scopes)
        # a graph the family writes itself is written as onnxruntime's basic pass would leave it; what it
        # could still fold, onnxruntime folds at load (saving the pass costs 5 s at 135M). A graph that a
        # conversion or the quantizer changed goes through it (it also restores their topological order)
        as_written = graph != TRACED and dtype == "fp32" and quantize is None
        if (optimize and not as_written) or dtype == "fp16":
            _optimize(path, enable=optimize)
        if quantize == "int8":
            _quantize_int8(path)
        for name, content in plan.files.items():
            if name in (MANIFEST, MODEL, MODEL + ".data", PENDING) or "/" in name or "\\" in name:
                raise ExportError(f"the {spec.plugin} plugin's export names a file {name!r} it may not write")
            inside(tmp, name, "an export file").write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        manifest = {
            "format_version": FORMAT_VERSION,
            "family": spec.family,
            "model": spec.name,
            "plugin": spec.plugin,
            "plugin_version": _plugin_version(spec.plugin),
            "gentoolkit_version": __version__,
            "torch_version": torch.__version__,
            "opset": opset,
            "dtype": dtype,
            "quantize": quantize,
            "graph": graph,
            "weights": None if weights is None else {**weights.as_dict(), **quantized},
            "model_file": MODEL,
            "config": run.config,
            "io": {"inputs": plan.inputs, "outputs": plan.outputs},
            "runtime": plan.runtime,
            "sampler_defaults": plan.sampler_defaults,
        }
        taken = sorted(set(plan.manifest) & (set(manifest) | {"validation", "files"}))
        if taken:
            raise ExportError(f"the {spec.plugin} plugin's export sets manifest keys the export stage owns: {taken}")
        manifest.update(plan.manifest)
        if check:
            log(f"validating {spec.name} in onnxruntime against PyTorch ({kind}):")
            ort_run: list[Runner] = []  # the session validation opens, which the quality report reuses
            report = validate(plan, path, tol, log, opened=ort_run)
            manifest["validation"] = {**report, "max_abs_diff": {k: v["max_abs_diff"] for k, v in report["outputs"].items()},
                                      "cases": [name for name, _ in plan.cases]}
            # fp32 differs from PyTorch by rounding alone, which the cases measured: the report of what an
            # export cost (minutes at 135M) is for the formats that change the model, or a text the user names
            quality = plan.quality if kind != "fp32" else None
            if eval_data is not None:
                quality = plan.quality_on(Path(eval_data))
            if quality is not None:
                q_ort = quality(ort_run[0])
                q_pt = quality(torch_runner(plan))
                manifest["validation"]["quality"] = {"onnxruntime": q_ort, "pytorch": q_pt}
                measured_on = getattr(quality, "measured_on", None)
                if measured_on:
                    manifest["validation"]["quality"]["measured_on"] = measured_on
                    log(f"  quality, {measured_on}:")
                for k in q_ort:
                    log(f"  {k:<24} onnxruntime {q_ort[k]:.4f}  pytorch {q_pt[k]:.4f}  change {q_ort[k] - q_pt[k]:+.4f}")
        faults.point("export.validated")
        external = path.stat().st_size > external_data_bytes
        manifest["files"] = sorted({MANIFEST, MODEL, *plan.files} | ({MODEL + ".data"} if external else set()))
        _finalize(path, manifest, external=external, family_floor=plan.onnxruntime.get(graph))
        write_json(tmp / MANIFEST, manifest)
        if mode == "beside":
            _place_beside(tmp, out)
        else:
            publish_dir(tmp, out)  # a previous export is exchanged for the new one in one step
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the build folder, or the previous export after the exchange
    size = sum(f.stat().st_size for f in out.iterdir() if f.name.startswith(MODEL))
    log(f"exported {out} ({size / 1e6:.2f} MB)")
    return manifest


# transformers.js names a model file by its dtype (``dtype`` in its from_pretrained options): the variant,
# the file's suffix, and how gentoolkit's export makes it
TRANSFORMERS_JS = "transformers.js"


VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "fp32": ("", {"dtype": "fp32"}),
    "fp16": ("_fp16", {"dtype": "fp16"}),
    "q8": ("_quantized", {"quantize": "int8"}),  # dynamic int8, what transformers.js's own conversion writes
    "q4": ("_q4", {"dtype": "int4"}),  # MatMulNBits, 4 bits, blocks of 32
}


DEFAULT_VARIANTS = ("fp32", "q8", "q4")


def _move_model(src: Path, dest: Path) -> None:
    """Move an export's ``model.onnx`` (and its external data, renamed as transformers.js looks for it:
    ``NAME.onnx_data``) to ``dest``."""
    data = src.with_name(src.name + ".data")
    if not data.exists():
        os.replace(src, dest)
        return
    import onnx

    from gentoolkit.files import new_file_mode

    model = onnx.load(str(src))
    onnx.save(model, str(dest), save_as_external_data=True, all_tensors_to_one_file=True,
              location=dest.name + "_data")
    new_file_mode(dest.with_name(dest.name + "_data"))


def export_layout(run_path: str | Path, out: str | Path, *, layout: str = TRANSFORMERS_JS,
                  variants: tuple[str, ...] = DEFAULT_VARIANTS, overwrite: bool = False, log=print, **kw) -> dict:
    """Export a run in another runtime's folder layout; returns the manifest. ``transformers.js``: the
    folder ``pipeline('text-generation', folder)`` loads (``config.json``, the tokenizer files,
    ``onnx/model.onnx`` and one file per variant in its naming), which gentoolkit.runtime also loads.
    Each variant is a whole validated export; the keyword arguments are :func:`export`'s."""
    import shutil

    from gentoolkit.files import new_temp_dir, publish_dir, remove_stale_temps, write_json
    from gentoolkit.plugin.manager import get_model

    if layout != TRANSFORMERS_JS:
        raise ExportError(f"--layout must be onnx or {TRANSFORMERS_JS}, got {layout!r}")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants or len(set(variants)) != len(variants):
        raise ExportError(f"--variants takes a comma-separated list of {', '.join(VARIANTS)} (each once), "
                          f"got {','.join(variants)!r}")
    for key in ("dtype", "quantize"):
        if kw.get(key) not in (None, "fp32"):
            raise ExportError(f"--layout {layout} writes one file per variant: choose them with --variants, not --{key}")
    graph = kw.get("graph") or TRACED  # the traced graph unless --graph says otherwise (docs/javascript.md)
    weights = kw.pop("weights", None)
    if weights is not None and "q4" not in variants:
        raise ExportError("--block-size, --asymmetric, --accuracy-level and the head and embedding options shape the q4 "
                          "variant; add q4 to --variants")
    for key in ("dtype", "quantize", "graph"):
        kw.pop(key, None)
    run = Run.open(run_path)
    spec = get_model(run.model_name)
    run.require(WEIGHTS)
    if spec.export is None:
        raise ExportError(f"model {spec.name!r} (plugin {spec.plugin!r}) does not describe an ONNX export")
    plan = resolve(spec.export)(run)
    extra = plan.layouts.get(layout)
    if extra is None:
        raise ExportError(f"model {spec.name!r} (plugin {spec.plugin!r}) has no {layout} layout; "
                          "export it without --layout")
    out = Path(out)
    if check_target(out, Path(run_path), overwrite) == "beside":
        raise ExportError(f"--layout {layout} goes to a new or empty folder, or replaces a previous export; "
                          f"-o {str(out)!r} holds other files")
    remove_stale_temps(out.parent, stem=out.name)
    tmp = new_temp_dir(out)
    try:
        (tmp / "onnx").mkdir()
        manifest: dict[str, Any] | None = None
        made: dict[str, Any] = {}
        external: dict[str, int] = {}
        for name in variants:
            suffix, how = VARIANTS[name]
            build = tmp / f"build-{name}"
            log(f"{layout} variant {name}:")
            m = export(run_path, build, graph=graph, log=lambda line: line.startswith("exported ") or log(line), **how, **kw,
                       **({"weights": weights} if name == "q4" and weights is not None else {}), plan=plan)
            file = f"onnx/model{suffix}.onnx"
            _move_model(build / MODEL, tmp / file)
            if (tmp / (file + "_data")).exists():
                external[Path(file).name] = 1
            made[name] = {"file": file, "dtype": m["dtype"], "quantize": m["quantize"], "weights": m["weights"],
                          "validation": m.get("validation")}
            if manifest is None:
                manifest = m
                for f in m["files"]:
                    if f not in (MANIFEST, MODEL, MODEL + ".data"):
                        os.replace(build / f, tmp / f)
            shutil.rmtree(build)
        assert manifest is not None
        for name, content in extra.items():
            (tmp / name).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        if external and (tmp / "config.json").is_file():  # transformers.js reads NAME.onnx_data only when told
            config = json.loads((tmp / "config.json").read_text(encoding="utf-8"))
            config.setdefault("transformers.js_config", {})["use_external_data_format"] = external
            write_json(tmp / "config.json", config)
        first = made[variants[0]]
        manifest.update(model_file=first["file"], dtype=first["dtype"], quantize=first["quantize"],
                        weights=first["weights"], layout=layout, variants=made)
        if first["validation"] is not None:
            manifest["validation"] = first["validation"]
        manifest["files"] = sorted({MANIFEST, *(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())})
        write_json(tmp / MANIFEST, manifest)
        publish_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    size = sum(f.stat().st_size for f in (out / "onnx").iterdir())
    log(f"exported {out} ({layout}: {', '.join(variants)}; {size / 1e6:.2f} MB)")
    return manifest


def main_cli(run, out, fmt: str = "onnx", layout: str = "onnx", variants: str | None = None, **kw) -> None:
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    if fmt == "hf":
        from gentoolkit.plugin.manager import get_model

        if layout != "onnx" or variants:
            raise ExportError("--layout and --variants are for ONNX exports, not --format hf")

        r = Run.open(run)
        spec = get_model(r.model_name)
        if spec.interop.hf_export is None:
            raise ExportError(f"model {spec.name!r} (plugin {spec.plugin!r}) has no Hugging Face export; "
                              "export it to ONNX")
        others = [k for k in ("opset", "atol", "rtol", "max_kl", "dtype", "quantize", "weights", "eval_data", "graph")
                  if kw.get(k) not in (None, DEFAULT_OPSET, "fp32")]
        if others:
            flag = {"weights": "block-size", "eval_data": "eval-data", "max_kl": "max-kl"}.get(others[0], others[0])
            raise ExportError(f"--{flag} is for ONNX exports, not --format hf")
        resolve(spec.interop.hf_export)(r, out, overwrite=kw.get("overwrite", False), log=log)
        return
    if layout != "onnx":
        names = tuple(v.strip() for v in variants.split(",")) if variants else DEFAULT_VARIANTS
        export_layout(run, out, layout=layout, variants=names, log=log, **kw)
        return
    if variants:
        raise ExportError(f"--variants names the files of --layout {TRANSFORMERS_JS}; add --layout {TRANSFORMERS_JS}")
    export(run, out, log=log, **kw)
