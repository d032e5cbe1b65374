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

import os
from pathlib import Path
from typing import Any

from gentoolkit.errors import GentoolError
from gentoolkit.runtime.folder import (
    check_external_data,
    check_graph,
    onnxruntime_needed,
    read_manifest,
    validate_manifest,
)
from gentoolkit.runtime.session import make_session


def load(path: str | os.PathLike, providers: list | None = None, threads: int | None = None,
         variant: str | None = None):
    """Open an export folder (or its ``model.onnx``) and return the driver for its family.

    Every path the manifest names must lie inside the folder (symlinks followed), the graph must be
    the one the manifest describes, and external data must stay in the folder. ``variant`` picks
    another of the model files a ``--layout transformers.js`` folder holds (``q8``, ``q4``, ...).
    """
    from gentoolkit.files import inside
    from gentoolkit.plugin.manager import get_registries
    from gentoolkit.plugin.specs import resolve

    p = Path(path)
    if not p.exists():
        raise GentoolError(f"{str(p)!r} does not exist; give an export folder made by 'gentool export'")
    folder, model_file = (p, None) if p.is_dir() else (p.parent, p)
    if model_file is not None:
        model_file = inside(folder, model_file.name, "the model file")
        check_external_data(model_file)
    manifest = read_manifest(folder, model_file)
    validate_manifest(manifest, str(p))
    if variant is not None:
        variants = manifest.get("variants") if isinstance(manifest.get("variants"), dict) else {}
        entry = variants.get(variant)
        if model_file is not None or not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            have = ", ".join(variants) or "none besides its model_file"
            raise GentoolError(f"{str(p)!r} has no model variant {variant!r} (it has: {have})")
        manifest = {**manifest, "model_file": entry["file"]}
    if model_file is None:
        model_file = inside(folder, manifest["model_file"], "the manifest's model_file")
        if not model_file.is_file():
            raise GentoolError(f"{str(folder)!r} lacks its model file {manifest['model_file']!r}")
        check_external_data(model_file)
    for name in manifest.get("files") or ():
        inside(folder, name, "a file the manifest lists")
    check_onnxruntime(manifest, str(p))
    runtimes = get_registries(commands=False).runtimes
    family = manifest["family"]
    if family not in runtimes:
        raise GentoolError(
            f"no runtime for the {family!r} family (model {manifest['model']!r}); install the plugin that made it"
        )
    session = make_session(model_file, providers, threads)
    check_graph(manifest, session, str(p))
    return resolve(runtimes.get(family).load)(folder, manifest, session)


def check_onnxruntime(manifest: dict[str, Any], where: str) -> None:
    """One clear error where the installed onnxruntime is older than the release the export names as
    the oldest that runs it (the manifest's ``onnxruntime``), before onnxruntime refuses the graph with
    a message about one of its nodes."""
    import onnxruntime

    have = getattr(onnxruntime, "__version__", "0")
    need = onnxruntime_needed(manifest, have)
    if need is None:
        return
    graph = manifest.get("graph")
    other = (" or export the run again with --graph traced, which older releases run"
             if graph not in (None, "traced") else "")
    raise GentoolError(f"{where} needs onnxruntime {need} or newer and this one is {have}: "
                       f"pip install 'onnxruntime>={need}'{other}")


def runtime_fields(manifest: dict[str, Any], fields: dict[str, type], where: str | Path) -> dict[str, Any]:
    """The manifest's ``runtime`` entries a driver needs, checked: ``fields`` maps a name to ``int``
    (a positive integer), ``float`` (finite), ``str`` or ``(type, None)`` for an optional one."""
    import math

    rt, out = manifest["runtime"], {}
    for name, want in fields.items():
        optional = isinstance(want, tuple)
        kind = want[0] if optional else want
        value = rt.get(name)
        if value is None and optional:
            out[name] = None
            continue
        ok = (kind is int and isinstance(value, int) and not isinstance(value, bool) and value > 0) or \
             (kind is float and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)) or \
             (kind is str and isinstance(value, str))
        if not ok:
            what = {int: "a positive integer", float: "a finite number", str: "a string"}[kind]
            raise GentoolError(f"{where}: the manifest's runtime.{name} must be {what}, got {value!r}; export the run again")
        out[name] = value
    return out


__all__ = ["load", "runtime_fields", "validate_manifest"]
