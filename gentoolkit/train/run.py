"""Run folders: what ``gentool train`` writes and every other command reads.

A run folder holds ``config.json`` (the resolved config tree and what model
made it), ``model.safetensors`` (the current weights), ``metrics.jsonl``, pictures,
family files (``tokenizer.json``), ``checkpoints/`` (see :mod:`gentoolkit.train.checkpoint`)
and ``.lock``, which the training process holds. This module is torch-free.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gentoolkit import faults
from gentoolkit.errors import RunError
from gentoolkit.files import read_json, write_json, write_text
from gentoolkit.runtime.folder import MANIFEST

RUN_FORMAT = 2  # 2: checkpoint folders; 1: training_state.{json,safetensors} beside the weights
READS = (1, 2)
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
METRICS = "metrics.jsonl"
LOCK = ".lock"


@dataclass
class Run:
    """A run folder on disk."""

    path: Path
    #: what the last training's evaluation measured (the task's ``evaluated_on``), set by ``train``
    evaluated_on: str = ""

    def __post_init__(self):
        self.path = Path(self.path)

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """Open an existing run; a clear error when the folder is missing or not a run."""
        p = Path(path)
        if not p.exists():
            raise RunError(f"run folder {str(p)!r} does not exist; train one with 'gentool train MODEL --out {p}'")
        if not (p / CONFIG).is_file() and (p / MANIFEST).is_file():
            raise RunError(f"{str(p)!r} is an export folder, not a training run; this command needs the run "
                           "folder of 'gentool train' (gentool sample takes either)")
        if not (p / CONFIG).is_file():
            raise RunError(f"{str(p)!r} is not a gentoolkit run folder (no {CONFIG}); pass the --out folder of 'gentool train'")
        return cls(p)

    @property
    def meta(self) -> dict[str, Any]:
        where = self.path / CONFIG
        try:
            meta = read_json(where)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RunError(f"cannot read {where}: {exc}") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("model"), str) or not isinstance(meta.get("config"), dict):
            raise RunError(f"{where} is not a gentoolkit run config (it needs \"model\" and a \"config\" object)")
        if meta.get("format", 1) not in READS:
            raise RunError(f"{where} has run format {meta.get('format')!r}; this gentoolkit reads {READS}: upgrade it")
        return meta

    @property
    def config(self) -> dict[str, dict[str, Any]]:
        cfg = self.meta["config"]
        bad = [k for k, v in cfg.items() if not isinstance(v, dict)]
        if bad or not isinstance(cfg.get("model"), dict):
            raise RunError(f"{self.path / CONFIG}: the config's [{(bad or ['model'])[0]}] section is missing or not "
                           "a table; this run folder was edited or damaged")
        return cfg

    @property
    def model_name(self) -> str:
        return self.meta["model"]

    def stored_config(self) -> dict[str, dict[str, Any]]:
        """``config.json``'s tree, with the keys the model gained since this run was written set to the
        value that reproduces it (``ModelSpec.legacy``)."""
        from gentoolkit.plugin.manager import get_model

        cfg = {section: dict(body) for section, body in self.config.items()}
        for dotted, value in get_model(self.model_name).legacy.items():
            section, _, key = dotted.partition(".")
            cfg.setdefault(section, {}).setdefault(key, value)
        return cfg

    def tree(self) -> dict[str, Any]:
        """The resolved config tree (frozen dataclasses) rebuilt from ``config.json``."""
        from gentoolkit.config import build
        from gentoolkit.plugin.manager import get_model

        return build(get_model(self.model_name).config_sections, self.stored_config())

    def file(self, name: str) -> Path:
        return self.path / name

    def require(self, *names: str) -> None:
        for name in names:
            if not (self.path / name).is_file():
                try:
                    model = self.model_name
                except RunError:  # the config is damaged too; the command still reads right
                    model = "MODEL"
                raise RunError(
                    f"run {str(self.path)!r} has no {name} yet: it is unfinished; let it reach an evaluation "
                    f"step or continue it with 'gentool train {model} --resume --out {self.path}'"
                )

    def write_config(self, meta: dict[str, Any]) -> None:
        write_json(self.path / CONFIG, {"format": RUN_FORMAT, **meta})

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run folder for one training process (``flock`` on ``.lock``, which names its pid).

        A second ``gentool train`` into the same folder gets one line naming the holder. The
        operating system lets go of the lock when the process ends, however it ends.
        """
        path = self.path / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise RunError(f"cannot write in the run folder {str(self.path)!r}: {exc.strerror}; pick a writable --out") from None
        try:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - Windows: no advisory locks
                fcntl = None
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                    raise RunError(f"{str(self.path)!r} is in use by another gentool train (pid {holder}); "
                                   "wait for it to finish, or pick another --out") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)

    # metrics -----------------------------------------------------------------
    def read_metrics(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.jsonl``; a line a kill cut short (or any unreadable one) is passed over."""
        f = self.path / METRICS
        if not f.exists():
            return []
        rows = []
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and isinstance(row.get("step", 0), int):
                rows.append(row)
        return rows

    def append_metrics(self, row: dict[str, Any]) -> None:
        line = json.dumps(row) + "\n"
        with open(self.path / METRICS, "a", encoding="utf-8") as fh:
            if faults.active():
                fh.write(line[: len(line) // 2])  # half a line, should a fault test kill here
                fh.flush()
                faults.point("metrics.half-line")
                fh.write(line[len(line) // 2 :])
            else:
                fh.write(line)

    def truncate_metrics(self, after_step: int) -> None:
        """On resume, forget rows logged after the checkpoint (they will be logged again)."""
        rows = [r for r in self.read_metrics() if r.get("step", 0) <= after_step]
        write_text(self.path / METRICS, "".join(json.dumps(r) + "\n" for r in rows))
