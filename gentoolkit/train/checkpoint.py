"""Checkpoints of a training run, each written as one atomic step.

A checkpoint is a folder ``RUN/checkpoints/step-NNNNNNNN/`` holding ``model.safetensors`` (the
weights), ``state.safetensors`` and ``state.json`` (optimizer, data order, RNG: see
:mod:`gentoolkit.train.state`) and, written last, ``checkpoint.json``: the step and the size and SHA-256
of every other file. The folder is built under a temporary name and renamed into place, so it
either exists whole or not at all; resume takes the newest checkpoint whose files match their
checksums and passes over any other (a disk that lost a write, a file someone edited).

After a checkpoint is in place, ``RUN/model.safetensors`` (what ``sample``, ``eval`` and
``export`` read) becomes a hard link to its weights (a copy where the file system has no hard
links), replaced in one rename; then checkpoints beyond ``train.keep_checkpoints`` are removed,
oldest first. Runs written before this layout (``RUN/training_state.{json,safetensors}``) still
resume. The module imports torch inside functions only.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gentoolkit import faults
from gentoolkit.errors import RunError
from gentoolkit.files import (
    atomic_path,
    new_temp_dir,
    publish_dir,
    read_json,
    remove_stale_temps,
    temp_name,
    write_json,
)

FOLDER = "checkpoints"
MANIFEST = "checkpoint.json"
WEIGHTS = "model.safetensors"
STATE = "state"  # state.safetensors and state.json
LEGACY_STATE = "training_state"  # before checkpoint folders: RUN/training_state.{json,safetensors}
FORMAT = 1
_NAME = re.compile(r"^step-(\d{8,})$")


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint on disk (``legacy``: the single state of a run from before checkpoint folders)."""

    path: Path
    step: int
    legacy: bool = False

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _problem(folder: Path) -> str | None:
    """Why the checkpoint folder is not usable, or None when every file matches its checksum."""
    try:
        manifest = read_json(folder / MANIFEST)
        files = manifest["files"]
        if not isinstance(files, dict) or set(files) != {WEIGHTS, STATE + ".safetensors", STATE + ".json"}:
            return "its manifest does not list the checkpoint's files"
        for name, entry in files.items():
            f = folder / name
            if not f.is_file() or f.stat().st_size != entry["bytes"]:
                return f"{name} is missing or has the wrong size"
        for name, entry in files.items():
            if _sha256(folder / name) != entry["sha256"]:
                return f"{name} does not match its checksum"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its manifest is unreadable ({exc})"
    return None


def _step_folders(run_path: Path) -> list[tuple[int, Path]]:
    folder = run_path / FOLDER
    if not folder.is_dir():
        return []
    out = []
    for entry in folder.iterdir():
        m = _NAME.match(entry.name)
        if m and entry.is_dir() and not entry.is_symlink():
            out.append((int(m.group(1)), entry))
    return sorted(out, reverse=True)


def latest(run_path: str | Path, warn=None) -> Checkpoint | None:
    """The newest complete checkpoint of a run, or None. ``warn(message)`` hears of any passed over."""
    run_path = Path(run_path)
    for step, folder in _step_folders(run_path):
        why = _problem(folder)
        if why is None:
            return Checkpoint(folder, step)
        if warn:
            warn(f"passing over checkpoint {folder.name}: {why}")
    legacy = run_path / (LEGACY_STATE + ".json")
    if legacy.is_file() and (run_path / WEIGHTS).is_file():
        try:
            step = int(read_json(legacy)["tree"]["step"])
        except (OSError, ValueError, KeyError, TypeError):
            if warn:
                warn(f"passing over {legacy.name}: unreadable")
            return None
        return Checkpoint(run_path, step, legacy=True)
    return None


def exists(run_path: str | Path) -> bool:
    """Whether the run has any checkpoint folder (complete or not) or a state from before them."""
    run_path = Path(run_path)
    return bool(_step_folders(run_path)) or (run_path / (LEGACY_STATE + ".json")).is_file()


def flat_weights(modules: dict[str, Any]) -> dict[str, Any]:
    """The tensors of ``modules`` (``{prefix: module}``) as one dictionary; tied weights once."""
    tensors: dict[str, Any] = {}
    seen: set[int] = set()
    for prefix, module in modules.items():
        for key, t in module.state_dict().items():
            if t.data_ptr() in seen:  # tied weights are stored once
                continue
            seen.add(t.data_ptr())
            tensors[f"{prefix}.{key}" if prefix else key] = t.detach().cpu().contiguous()
    return tensors


def save_weights(path: Path, tensors: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    from gentoolkit import __version__

    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "gentoolkit": __version__})


def save_run_weights(run, modules: dict[str, Any]) -> None:
    """Write the modules' weights to ``RUN/model.safetensors`` in one step (tied weights once)."""
    from gentoolkit.train.run import WEIGHTS

    save_weights(run.file(WEIGHTS), flat_weights(modules))


def load_weights(path: str | Path, modules: dict[str, Any]) -> None:
    """Load ``model.safetensors`` into modules (tied weights are restored by the modules themselves)."""
    load_tensors(read_weights(path), modules, str(path))


def load_tensors(tensors: dict[str, Any], modules: dict[str, Any], where: str) -> None:
    """Copy ``tensors`` (keys ``prefix.name``) into ``modules``; a clear error when they do not fit."""
    for prefix, module in modules.items():
        own = {
            k[len(prefix) + 1 :] if prefix else k: v
            for k, v in tensors.items()
            if not prefix or k.startswith(prefix + ".")
        }
        try:
            missing, unexpected = module.load_state_dict(own, strict=False)
        except RuntimeError as exc:  # size mismatches
            detail = " ".join(str(exc).split())
            raise RunError(f"{where}: the weights do not fit the model that config.json describes ({detail[:300]})") from None
        tied = getattr(module, "tied_keys", set())
        missing = [m for m in missing if m not in tied]
        if missing or unexpected:
            raise RunError(f"{where}: weights do not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")


def _link_top_level(run_path: Path, weights: Path) -> None:
    """Make ``RUN/model.safetensors`` the checkpoint's weights in one rename (a hard link, or a copy)."""
    target = run_path / WEIGHTS
    tmp = temp_name(target)
    try:
        os.link(weights, tmp)
    except OSError:
        shutil.copyfile(weights, tmp)
    try:
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write(run_path: str | Path, step: int, tensors: dict[str, Any], state: dict[str, Any], keep: int = 2) -> Checkpoint:
    """Write one checkpoint (weights ``tensors``, resumable ``state``) and make it the run's current one."""
    from gentoolkit.train.state import save_state

    run_path = Path(run_path)
    parent = run_path / FOLDER
    parent.mkdir(exist_ok=True)
    remove_stale_temps(parent)
    final = parent / f"step-{step:08d}"
    tmp = new_temp_dir(final)
    try:
        save_weights(tmp / WEIGHTS, tensors)
        faults.point("checkpoint.weights")
        save_state(tmp / STATE, state)
        faults.point("checkpoint.state")
        files = {name: {"bytes": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)}
                 for name in (WEIGHTS, STATE + ".safetensors", STATE + ".json")}
        write_json(tmp / MANIFEST, {"format": FORMAT, "step": step, "files": files})
        faults.point("checkpoint.manifest")
        publish_dir(tmp, final)  # a checkpoint of this step already there (saved again): exchanged
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    publish(run_path, Checkpoint(final, step))
    prune(run_path, keep)
    return Checkpoint(final, step)


def publish(run_path: Path, ckpt: Checkpoint) -> None:
    """Point ``RUN/model.safetensors`` at a checkpoint's weights (done again on resume, should a kill
    have come between the checkpoint and the link)."""
    if ckpt.legacy:
        return
    _link_top_level(run_path, ckpt.weights)
    faults.point("checkpoint.linked")


def prune(run_path: Path, keep: int) -> None:
    """Remove all but the newest ``keep`` checkpoints, and the state files of the layout before them."""
    for _, folder in _step_folders(run_path)[max(1, keep):]:
        shutil.rmtree(folder, ignore_errors=True)
        faults.point("checkpoint.pruned")
    for suffix in (".json", ".safetensors"):
        legacy = run_path / (LEGACY_STATE + suffix)
        if legacy.is_file():
            legacy.unlink()


def load(ckpt: Checkpoint) -> tuple[dict[str, Any], dict[str, Any]]:
    """(weights, state) of a checkpoint, as tensors and plain data."""
    from gentoolkit.train.state import load_state

    state_prefix = ckpt.path / (LEGACY_STATE if ckpt.legacy else STATE)
    return read_weights(ckpt.weights), load_state(state_prefix)


def read_weights(path: str | Path) -> dict[str, Any]:
    """The tensors of a ``.safetensors`` file; a damaged or unreadable file is a :class:`RunError`."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise RunError(f"{path} does not exist") from None
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for a damaged file
        raise RunError(f"{path} is damaged or not a safetensors file ({type(exc).__name__}: {exc}); "
                       "train again, or resume the run from its last checkpoint") from None


def say(message: str) -> None:
    print(message, file=sys.stderr)
