"""Pickle-free checkpoints: tensors in safetensors, everything else in JSON.

``save_state(prefix, tree)`` writes ``prefix.safetensors`` and ``prefix.json``
for any nesting of dicts, lists, numbers, strings and tensors (optimizer state
dicts, RNG states). The JSON file is written last and names the step, so a
crash between the two writes leaves the previous checkpoint readable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gentoolkit.files import atomic_path, read_json, write_json

_TENSOR = "__tensor__"
_ITEMS = "__items__"


def _flatten(obj: Any, key: str, tensors: dict) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        tensors[key] = obj.detach().cpu().contiguous()
        return {_TENSOR: key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _flatten(v, f"{key}.{k}", tensors) for k, v in obj.items()}
        return {_ITEMS: [[k, _flatten(v, f"{key}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, f"{key}.{i}", tensors) for i, v in enumerate(obj)]
    return obj


def _unflatten(obj: Any, tensors: dict) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {_TENSOR}:
            return tensors[obj[_TENSOR]]
        if set(obj) == {_ITEMS}:
            return {k: _unflatten(v, tensors) for k, v in obj[_ITEMS]}
        return {k: _unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def save_state(prefix: str | Path, tree: dict) -> None:
    import uuid

    from safetensors.torch import save_file

    prefix = Path(prefix)
    tensors: dict = {}
    stamp = uuid.uuid4().hex
    meta = {"stamp": stamp, "tree": _flatten(tree, "s", tensors)}
    with atomic_path(prefix.with_suffix(".safetensors")) as tmp:
        save_file(tensors, str(tmp), metadata={"stamp": stamp})
    write_json(prefix.with_suffix(".json"), meta)


def load_state(prefix: str | Path) -> dict:
    from safetensors import safe_open

    from gentoolkit.errors import RunError

    prefix = Path(prefix)
    meta = read_json(prefix.with_suffix(".json"))
    with safe_open(str(prefix.with_suffix(".safetensors")), framework="pt") as f:
        if (f.metadata() or {}).get("stamp") != meta.get("stamp"):
            raise RunError(f"{prefix}: the training state files do not belong together (interrupted save?)")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return _unflatten(meta["tree"], tensors)
