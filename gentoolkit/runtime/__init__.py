"""Torch-free runtime: run exported gentoolkit models with numpy and onnxruntime only.

    from gentoolkit.runtime import load
    lm = load("exports/gpt")
    print(lm.generate("The ", max_new_tokens=50, seed=1, temperature=0.8))
    gan = load("exports/gan")
    points = gan.sample(1000, seed=0)

Nothing here imports torch; onnxruntime itself is imported when a model is loaded.
Each family's driver is found through the ``register_runtimes`` hook, so a
third-party family brings its own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import GentoolError

SUPPORTED_FORMATS = (1,)
REQUIRED_KEYS = ("format_version", "family", "model", "model_file", "io", "runtime")


def _read_manifest(folder: Path, model_file: Path | None) -> dict[str, Any]:
    manifest_path = folder / "gentoolkit.json"
    if manifest_path.is_file():
        try:
            return json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise GentoolError(f"cannot read {manifest_path}: {exc}") from None
    if model_file is None:
        raise GentoolError(f"{str(folder)!r} is not a gentoolkit export (no gentoolkit.json); create one with 'gentool export RUN -o DIR'")
    # a bare model.onnx: the manifest is also in its metadata_props
    import onnxruntime as ort

    try:
        meta = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    except Exception as exc:  # noqa: BLE001
        raise GentoolError(f"cannot open {str(model_file)!r} with onnxruntime: {exc}") from None
    out: dict[str, Any] = {}
    for key, value in meta.items():
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def validate_manifest(manifest: dict[str, Any], where: str) -> None:
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise GentoolError(f"{where} is not a gentoolkit export: its manifest lacks {', '.join(missing)}")
    if manifest["format_version"] not in SUPPORTED_FORMATS:
        raise GentoolError(
            f"{where} has export format {manifest['format_version']}; this gentoolkit reads {SUPPORTED_FORMATS}: upgrade it"
        )


def check_external_data(model_file: Path) -> None:
    """Refuse external-data references that point outside the export folder.

    Reads only the graph's protobuf (not the data) with the ``onnx`` package when it
    is installed; an app without it relies on onnxruntime's own check.
    """
    try:
        import onnx
    except ImportError:  # pragma: no cover - onnx is a dependency of gentoolkit itself
        return
    folder = model_file.parent.resolve()
    model = onnx.load(str(model_file), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                target = (folder / entry.value).resolve()
                if folder not in target.parents:
                    raise GentoolError(f"{model_file} refers to external data outside its folder ({entry.value!r}); refusing to load it")


def make_session(model_file: Path, providers=None, threads: int | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads if threads else 1  # measured: 1 thread is as fast as 2 for small models
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    available = ort.get_available_providers()
    wanted = providers or ["CPUExecutionProvider"]
    unknown = [p if isinstance(p, str) else p[0] for p in wanted]
    unknown = [p for p in unknown if p not in available]
    if unknown:
        raise GentoolError(f"onnxruntime here has no {', '.join(unknown)} (available: {', '.join(available)})")
    return ort.InferenceSession(str(model_file), opts, providers=wanted)


def load(path: str | os.PathLike, providers: list | None = None, threads: int | None = None):
    """Open an export folder (or its ``model.onnx``) and return the driver for its family."""
    from ..plugins import get_registries
    from ..registry import resolve

    p = Path(path)
    if not p.exists():
        raise GentoolError(f"{str(p)!r} does not exist; give an export folder made by 'gentool export'")
    folder, model_file = (p, None) if p.is_dir() else (p.parent, p)
    manifest = _read_manifest(folder, model_file)
    validate_manifest(manifest, str(p))
    model_file = model_file or folder / manifest["model_file"]
    if not model_file.is_file():
        raise GentoolError(f"{str(folder)!r} lacks its model file {manifest['model_file']!r}")
    check_external_data(model_file)
    runtimes = get_registries().runtimes
    family = manifest["family"]
    if family not in runtimes:
        raise GentoolError(
            f"no runtime for the {family!r} family (model {manifest['model']!r}); install the plugin that made it"
        )
    session = make_session(model_file, providers, threads)
    return resolve(runtimes.get(family).load)(folder, manifest, session)


__all__ = ["load", "validate_manifest"]
