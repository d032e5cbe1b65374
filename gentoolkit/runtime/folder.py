"""The export contract, in one torch-free place: what an export folder holds and how it is checked.

The export stage (:mod:`gentoolkit.export`) writes folders by it and the runtime
(:mod:`gentoolkit.runtime`) reads them by it: the manifest's file name and format version, the
keys it must have and their types, the check that the manifest describes the graph beside it
(and agrees with the copy in ``model.onnx``'s ``metadata_props``), the confinement of external
data to the folder, and which files of a folder a previous export wrote. Bump
``FORMAT_VERSION`` (and document it in docs/onnx-contract.md) whenever the format changes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from gentoolkit.errors import GentoolError

MANIFEST = "gentoolkit.json"
MODEL = "model.onnx"
FORMAT_VERSION = 1
SUPPORTED_FORMATS = (FORMAT_VERSION,)
REQUIRED_KEYS = ("format_version", "family", "model", "model_file", "io", "runtime")
#: manifest entries that model.onnx also carries in its metadata_props; the two must agree
CROSS_CHECKED = ("format_version", "family", "model", "io", "runtime")
_ORT_TYPES = {"float32": "tensor(float)", "float16": "tensor(float16)", "int64": "tensor(int64)",
              "int32": "tensor(int32)", "bool": "tensor(bool)", "uint8": "tensor(uint8)"}


#: what exports wrote before their manifest listed its files
LEGACY_FILES = frozenset({MANIFEST, MODEL, MODEL + ".data", "tokenizer.json", "tokenizer_config.json", "genai_config.json"})
PENDING = ".gentoolkit-export-pending.json"  # names being moved in by an --overwrite export, until its manifest


def version_tuple(version: str) -> tuple[int, ...]:
    """``"1.22.1"`` as ``(1, 22, 1)``; a suffix (``"1.23.0.dev0"``, ``"1.22.0+cpu"``) is ignored."""
    out = []
    for part in version.split(".")[:3]:
        digits = re.match(r"\d+", part)
        if not digits:
            break
        out.append(int(digits.group()))
    return tuple(out)


def onnxruntime_needed(manifest: dict[str, Any], have: str) -> str | None:
    """The release the manifest's ``onnxruntime`` names (the oldest that runs the export) where ``have``,
    the onnxruntime at hand, is older; else None."""
    need = manifest.get("onnxruntime")
    if isinstance(need, str) and version_tuple(need) and version_tuple(have) < version_tuple(need):
        return need
    return None


def is_export(path: str | Path) -> bool:
    """An export folder (it has a manifest) or a bare ``.onnx`` file."""
    p = Path(path)
    return (p.is_dir() and (p / MANIFEST).is_file()) or (p.is_file() and p.suffix == ".onnx")


def read_manifest(folder: Path, model_file: Path | None = None) -> dict[str, Any]:
    manifest_path = folder / MANIFEST
    if manifest_path.is_file():
        from gentoolkit.files import inside

        inside(folder, MANIFEST, MANIFEST)  # not a link out of the folder
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise GentoolError(f"cannot read {manifest_path}: {exc}") from None
        if not isinstance(manifest, dict):
            raise GentoolError(f"{manifest_path} must hold a JSON object; export the run again")
        return manifest
    if model_file is None:
        raise GentoolError(f"{str(folder)!r} is not a gentoolkit export (no gentoolkit.json); create one with 'gentool export RUN -o DIR'")
    # a bare model.onnx: the manifest is also in its metadata_props, read from the file itself
    return model_metadata(model_file)


def _shape_ok(shape: Any) -> bool:
    return isinstance(shape, list) and all(
        isinstance(d, str) or (isinstance(d, int) and not isinstance(d, bool) and d >= 0) for d in shape)


def validate_manifest(manifest: dict[str, Any], where: str) -> None:
    """Check the manifest's keys and the types of what the host reads (each family checks its ``runtime``)."""
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise GentoolError(f"{where} is not a gentoolkit export: its manifest lacks {', '.join(missing)}")
    version = manifest["format_version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise GentoolError(f"{where}: the manifest's format_version must be an integer, got {version!r}")
    if version not in SUPPORTED_FORMATS:
        raise GentoolError(f"{where} has export format {version}; this gentoolkit reads {SUPPORTED_FORMATS}: upgrade it")
    bad = [k for k in ("family", "model", "model_file") if not isinstance(manifest[k], str) or not manifest[k]]
    bad += [k for k in ("runtime",) if not isinstance(manifest[k], dict)]
    bad += [k for k in ("sampler_defaults",) if not isinstance(manifest.get(k) or {}, dict)]
    files = manifest.get("files", [])
    bad += [] if isinstance(files, list) and all(isinstance(f, str) for f in files) else ["files"]
    io = manifest["io"]
    if not (isinstance(io, dict) and all(isinstance(io.get(side), list) for side in ("inputs", "outputs")) and all(
            isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("dtype"), str)
            and e["dtype"] in _ORT_TYPES
            and _shape_ok(e.get("shape")) for side in ("inputs", "outputs") for e in io[side])):
        bad.append("io")
    if bad:
        raise GentoolError(f"{where}: the manifest's {', '.join(bad)} {'is' if len(bad) == 1 else 'are'} malformed; "
                           "export the run again")


def check_graph(manifest: dict[str, Any], session, where: str) -> None:
    """The manifest must describe the graph it sits beside: the same inputs and outputs (names, types,
    ranks, fixed sizes) and, where model.onnx carries its own copy of the manifest, the same entries."""
    graph = {"inputs": session.get_inputs(), "outputs": session.get_outputs()}
    for side in ("inputs", "outputs"):
        declared = {e["name"]: e for e in manifest["io"][side]}
        actual = {a.name: a for a in graph[side]}
        if set(declared) != set(actual):
            extra, lacking = sorted(set(actual) - set(declared)), sorted(set(declared) - set(actual))
            raise GentoolError(f"{where}: model.onnx does not match its manifest: the graph's {side} "
                               f"{'add ' + ', '.join(extra[:4]) if extra else ''}"
                               f"{'; ' if extra and lacking else ''}{'lack ' + ', '.join(lacking[:4]) if lacking else ''}; "
                               "export the run again")
        for name, entry in declared.items():
            a = actual[name]
            fixed = [(d, g) for d, g in zip(entry["shape"], a.shape) if isinstance(d, int) and isinstance(g, int)]
            if a.type != _ORT_TYPES[entry["dtype"]] or len(a.shape) != len(entry["shape"]) or any(d != g for d, g in fixed):
                raise GentoolError(f"{where}: {side[:-1]} {name!r} of model.onnx is {a.type} {list(a.shape)}, but the "
                                   f"manifest says {entry['dtype']} {entry['shape']}; export the run again")
    embedded = _session_metadata(session, where)
    for key in CROSS_CHECKED:
        if key in embedded and embedded[key] != manifest.get(key):
            raise GentoolError(f"{where}: gentoolkit.json contradicts model.onnx's own copy of the manifest "
                               f"({key}: {_short(manifest.get(key))} against {_short(embedded[key])}); "
                               "export the run again")


def _session_metadata(session, where) -> dict[str, Any]:
    """The manifest copy in an open session's model metadata, JSON values decoded."""
    try:
        meta = session.get_modelmeta().custom_metadata_map
    except UnicodeDecodeError:
        raise GentoolError(f"{where}: model.onnx's metadata is damaged (not UTF-8); export the run again") from None
    out: dict[str, Any] = {}
    for key, value in meta.items():
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


# Where tensors sit in ONNX's protobuf (onnx.proto3): the message each length-delimited field holds.
# ModelProto.graph (7), .functions (25); GraphProto.node (1), .initializer (5), .sparse_initializer (15);
# FunctionProto.node (7); NodeProto.attribute (5); AttributeProto.t (5), .g (6), .tensors (10),
# .graphs (11), .sparse_tensor (22), .sparse_tensors (23); SparseTensorProto.values (1), .indices (2);
# TensorProto.external_data (13); StringStringEntryProto.key (1), .value (2).
_FIELDS = {
    "model": {7: "graph", 25: "function"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "function": {7: "node"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {13: "entry"},
    "entry": {},
}


class _Truncated(Exception):
    pass


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Truncated
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _walk(buf, pos: int, end: int, kind: str, found: list[str], depth: int = 0) -> None:
    """Collect the ``location`` of every external-data entry in the message ``buf[pos:end]``."""
    if depth > 64:
        raise _Truncated
    fields = _FIELDS[kind]
    key = value = None
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, pos = _varint(buf, pos, end)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise _Truncated
            if kind == "entry" and number in (1, 2):
                text = bytes(buf[pos : pos + length]).decode("utf-8", "replace")
                key, value = (text, value) if number == 1 else (key, text)
            elif number in fields:
                _walk(buf, pos, pos + length, fields[number], found, depth + 1)
            pos += length
        else:
            raise _Truncated  # groups (3, 4) are not in ONNX's proto3 schema
        if pos > end:
            raise _Truncated
    if kind == "entry" and key == "location" and value is not None:
        found.append(value)


def external_locations(model_file: Path) -> list[str]:
    """Every external-data ``location`` in an ONNX file: initializers, sparse ones, and tensors in node
    attributes (Constant nodes, the subgraphs of If, Loop and Scan, local functions), recursively.

    Reads the protobuf's structure directly (the weights are skipped, not read), so the runtime
    needs no ``onnx`` package; a file that is not a well-formed protobuf is an error.
    """
    import mmap

    found: list[str] = []
    with open(model_file, "rb") as fh:
        size = fh.seek(0, 2)
        if size == 0:
            raise GentoolError(f"{model_file} is empty, not an ONNX model; export the run again")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            try:
                _walk(buf, 0, size, "model", found)
            except _Truncated:
                raise GentoolError(f"{model_file} is not a readable ONNX model (its protobuf is damaged); "
                                   "export the run again") from None
    return found


def _entry(buf, pos: int, end: int) -> tuple[str | None, str | None]:
    """A StringStringEntryProto's key (1) and value (2)."""
    found: dict[int, bytes] = {}
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        if tag & 7 != 2:
            raise _Truncated
        length, pos = _varint(buf, pos, end)
        if pos + length > end:
            raise _Truncated
        found[tag >> 3] = bytes(buf[pos : pos + length])
        pos += length
    return tuple(found[n].decode("utf-8") if n in found else None for n in (1, 2))  # type: ignore[return-value]


def model_metadata(model_file: Path) -> dict[str, Any]:
    """The manifest copy in a graph's ``metadata_props`` (ModelProto field 14), JSON values decoded.

    Read from the protobuf's top level (the graph and its weights are skipped, not read), so a bare
    ``model.onnx`` gives its manifest without an onnxruntime session."""
    import mmap

    out: dict[str, Any] = {}
    with open(model_file, "rb") as fh:
        size = fh.seek(0, 2)
        if size == 0:
            raise GentoolError(f"{model_file} is empty, not an ONNX model; export the run again")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            pos = 0
            try:
                while pos < size:
                    tag, pos = _varint(buf, pos, size)
                    wire = tag & 7
                    if wire == 0:
                        _, pos = _varint(buf, pos, size)
                    elif wire in (1, 5):
                        pos += 8 if wire == 1 else 4
                    elif wire == 2:
                        length, pos = _varint(buf, pos, size)
                        if pos + length > size:
                            raise _Truncated
                        if tag >> 3 == 14:
                            key, value = _entry(buf, pos, pos + length)
                            if key is not None:
                                try:
                                    out[key] = json.loads(value) if value is not None else None
                                except json.JSONDecodeError:
                                    out[key] = value
                        pos += length
                    else:
                        raise _Truncated
            except _Truncated:
                raise GentoolError(f"{model_file} is not a readable ONNX model (its protobuf is damaged); "
                                   "export the run again") from None
            except UnicodeDecodeError:
                raise GentoolError(f"{model_file}: model.onnx's metadata is damaged (not UTF-8); "
                                   "export the run again") from None
    return out


def check_external_data(model_file: Path) -> None:
    """Refuse a graph whose external data (anywhere in it) lies outside its folder, or a file that is not
    a readable protobuf."""
    from gentoolkit.files import inside

    for location in external_locations(model_file):
        try:
            inside(model_file.parent, location, "external data")
        except GentoolError:
            raise GentoolError(f"{model_file} refers to external data outside its folder ({location!r}); "
                               "refusing to load it") from None


def own_files(folder: Path) -> set[str] | None:
    """The names a previous export wrote in ``folder``, or None when ``folder`` holds no export."""
    from gentoolkit.files import read_json

    names: set[str] | None = None
    try:
        manifest = read_json(folder / MANIFEST)
        if isinstance(manifest, dict) and "format_version" in manifest and "model_file" in manifest:
            files = manifest.get("files")
            ok = isinstance(files, list) and all(isinstance(f, str) for f in files)
            names = (set(files) if ok else set(LEGACY_FILES)) | {MANIFEST}
    except (OSError, ValueError):
        pass
    try:
        pending = read_json(folder / PENDING)
        if isinstance(pending, list) and all(isinstance(f, str) for f in pending):
            names = (names or set()) | set(pending) | {PENDING}
    except (OSError, ValueError):
        pass
    return names
