"""Run folders: what ``gentool train`` writes and every other command reads.

A run folder holds ``config.json`` (the resolved config tree and what model
made it), ``model.safetensors`` (weights only), ``metrics.jsonl``, pictures,
family files (``tokenizer.json``) and ``training_state.{json,safetensors}``.
This module is torch-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RunError
from .files import read_json, write_json, write_text

RUN_FORMAT = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
METRICS = "metrics.jsonl"
STATE = "training_state"


@dataclass
class Run:
    """A run folder on disk."""

    path: Path

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """Open an existing run; a clear error when the folder is missing or not a run."""
        p = Path(path)
        if not p.exists():
            raise RunError(f"run folder {str(p)!r} does not exist; train one with 'gentool train MODEL --out {p}'")
        if not (p / CONFIG).is_file() and (p / "gentoolkit.json").is_file():
            raise RunError(f"{str(p)!r} is an export folder, not a training run; this command needs the run "
                           "folder of 'gentool train' (gentool sample takes either)")
        if not (p / CONFIG).is_file():
            raise RunError(f"{str(p)!r} is not a gentoolkit run folder (no {CONFIG}); pass the --out folder of 'gentool train'")
        return cls(p)

    @property
    def meta(self) -> dict[str, Any]:
        try:
            return read_json(self.path / CONFIG)
        except (OSError, json.JSONDecodeError) as exc:
            raise RunError(f"cannot read {self.path / CONFIG}: {exc}") from None

    @property
    def config(self) -> dict[str, dict[str, Any]]:
        return self.meta["config"]

    @property
    def model_name(self) -> str:
        return self.meta["model"]

    def stored_config(self) -> dict[str, dict[str, Any]]:
        """``config.json``'s tree, with the keys the model gained since this run was written set to the
        value that reproduces it (``ModelSpec.legacy``)."""
        from .plugins import get_model

        cfg = {section: dict(body) for section, body in self.config.items()}
        for dotted, value in get_model(self.model_name).legacy.items():
            section, _, key = dotted.partition(".")
            cfg.setdefault(section, {}).setdefault(key, value)
        return cfg

    def tree(self) -> dict[str, Any]:
        """The resolved config tree (frozen dataclasses) rebuilt from ``config.json``."""
        from .config import build
        from .plugins import get_model

        return build(get_model(self.model_name).config_sections, self.stored_config())

    def file(self, name: str) -> Path:
        return self.path / name

    def require(self, *names: str) -> None:
        for name in names:
            if not (self.path / name).is_file():
                raise RunError(
                    f"run {str(self.path)!r} has no {name} yet: it is unfinished; "
                    f"let it reach an evaluation step or continue it with 'gentool train --resume --out {self.path}'"
                )

    def write_config(self, meta: dict[str, Any]) -> None:
        write_json(self.path / CONFIG, {"format": RUN_FORMAT, **meta})

    # metrics -----------------------------------------------------------------
    def read_metrics(self) -> list[dict[str, Any]]:
        f = self.path / METRICS
        if not f.exists():
            return []
        return [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]

    def append_metrics(self, row: dict[str, Any]) -> None:
        with open(self.path / METRICS, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")

    def truncate_metrics(self, after_step: int) -> None:
        """On resume, forget rows logged after the checkpoint (they will be logged again)."""
        rows = [r for r in self.read_metrics() if r.get("step", 0) <= after_step]
        write_text(self.path / METRICS, "".join(json.dumps(r) + "\n" for r in rows))
