"""The host's training loop, shared by every family (built-in or third-party).

Weights on disk are :mod:`gentoolkit.train.checkpoint`'s, workers under torchrun
:mod:`gentoolkit.train.distributed`'s; this module is the loop itself.

A family provides a *task* (see :class:`Task`): how to take one optimizer
step, evaluate, draw pictures and save its state. The host owns everything
else: the run folder, seeding, the progress bar, ``metrics.jsonl``, the loss
curve, checkpoints, Ctrl-C and ``--resume``. Imported only by commands that
train, so it may import torch.
"""

from __future__ import annotations

import contextlib
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from gentoolkit import __version__
from gentoolkit.config import BaseTrainConfig  # noqa: F401  (re-exported)
from gentoolkit.errors import ConfigError, RunError
from gentoolkit.plugin.specs import ModelSpec, resolve
from gentoolkit.train.checkpoint import (
    load_tensors,
    load_weights,  # noqa: F401  (plugins imported it from here before gentoolkit.train.checkpoint)
)
from gentoolkit.train.checkpoint import save_run_weights as save_weights  # noqa: F401  (the same)
from gentoolkit.train.distributed import distributed_env, init_distributed, launch
from gentoolkit.train.run import Run


def cosine_lr(step: int, *, lr: float, min_lr: float, warmup: int, total: int) -> float:
    """Linear warmup to ``lr`` over ``warmup`` steps, then cosine decay to ``min_lr`` at ``total``."""
    if step < warmup:
        return lr * (step + 1) / (warmup + 1)
    if step >= total:
        return min_lr
    ratio = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


@dataclass
class Context:
    """What a task gets from the host."""

    spec: ModelSpec
    config: dict[str, Any]
    run: Run
    device: torch.device
    rank: int = 0
    world_size: int = 1
    resume: bool = False
    alarms: list[str] = field(default_factory=list)
    events: list[tuple[int, str]] = field(default_factory=list)  # (step, "alarm" | "recovered"), for loss.png
    init: Path | None = None  # train --init: the run whose weights this one starts from
    output: Any = None  # gentoolkit.progress.Output: --quiet and --log-file
    progress: Any = None  # the running loop's gentoolkit.progress.Progress

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        """bf16 autocast on CUDA, nothing on CPU."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module as DistributedDataParallel under torchrun, unchanged in one process."""
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def mean(self, value: float) -> float:
        """The mean of a number over all workers (what a log line should show)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        t = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item()) / self.world_size

    def any(self, flag: bool) -> bool:
        """True on every worker when it is true on one (so all stop at the same step)."""
        if not self.distributed:
            return flag
        import torch.distributed as dist

        t = torch.tensor([1 if flag else 0], dtype=torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def recovered(self, step: int, message: str) -> None:
        """Report that what an alarm was about has passed (a line, not an alarm)."""
        self.events.append((step, "recovered"))
        self._note(f"recovered at step {step}: {message}")

    def _note(self, text: str) -> None:
        """A line every reader must see: above the running bar (and in the log file), or on stderr."""
        if self.progress is not None:
            self.progress.note(text)
        elif self.is_main:
            print(text, file=sys.stderr)

    def alarm(self, step: int, message: str) -> None:
        """Report a problem (for example mode collapse) at once, on the bar and in the log."""
        text = f"ALARM at step {step}: {message}"
        self.alarms.append(text)
        self.events.append((step, "alarm"))
        self._note(text)


class Task(Protocol):
    """The family-specific half of training."""

    def weights(self) -> dict[str, torch.nn.Module]:
        """Modules whose weights go to ``model.safetensors`` ("" = no key prefix)."""

    def state_dict(self) -> dict[str, Any]:
        """Optimizer, RNG and anything else needed to resume (tensors and plain data)."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def train_step(self, step: int) -> dict[str, float]:
        """One optimizer step; returns metrics (``loss`` and, if it applies, ``tokens``)."""

    def evaluate(self, step: int) -> dict[str, float]: ...

    def on_eval(self, step: int) -> None:
        """Draw pictures into the run folder (main process only)."""

    # optional: ``evaluated_on``, a phrase naming what :meth:`evaluate` measures ("estimate on 20
    # batches of the validation split"), shown beside its numbers by ``gentool train`` and in --json


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RunError("--device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu")
    return torch.device(name)


def fit(ctx: Context, task: Task, *, start_step: int = 0) -> dict[str, float]:
    """Run the loop from ``start_step`` to ``train.steps``; returns the last evaluation."""
    from gentoolkit.progress import Output, Progress

    cfg = ctx.config["train"]
    run = ctx.run
    total = cfg.steps
    bar = ctx.progress = Progress(ctx.spec.name, total, initial=start_step, output=ctx.output or Output(),
                                  enabled=ctx.is_main)
    last_eval: dict[str, float] = {}
    step = start_step
    if ctx.resume and start_step:
        bar.info(f"Resuming {run.path} from step {start_step} of {total}")
    window_t, window_tokens = time.perf_counter(), 0
    interrupted = _Interrupt()
    with interrupted, contextlib.closing(bar):
        while step < total:
            metrics = task.train_step(step)
            if ctx.distributed:
                metrics = {k: (v if k == "tokens" else ctx.mean(v)) for k, v in metrics.items()}
            step += 1
            bad = [k for k, v in metrics.items() if not math.isfinite(v)]
            if bad:
                raise RunError(_diverged(ctx, step, f"{bad[0]} is {metrics[bad[0]]}"))
            stop = ctx.any(interrupted.requested)
            window_tokens += int(metrics.pop("tokens", 0))
            if step % cfg.log_interval == 0 or step == total:
                now = time.perf_counter()
                row = {"step": step, **{k: round(float(v), 6) for k, v in metrics.items()}}
                if window_tokens:
                    row["tokens_per_s"] = round(window_tokens / max(now - window_t, 1e-9), 1)
                window_t, window_tokens = now, 0
                evaluated = step % cfg.eval_interval == 0 or step == total
                if evaluated:
                    last_eval = task.evaluate(step)
                    row.update({k: round(float(v), 6) for k, v in last_eval.items()})
                if ctx.is_main:
                    run.append_metrics(row)
                bar.report(step, row, force=evaluated)
            elif step % cfg.eval_interval == 0:
                last_eval = task.evaluate(step)
                row = {"step": step, **{k: round(float(v), 6) for k, v in last_eval.items()}}
                if ctx.is_main:
                    run.append_metrics(row)
                bar.report(step, row, force=True)
            if step % cfg.eval_interval == 0 or step == total or stop:
                checkpoint(ctx, task, step)
                window_t = time.perf_counter()  # throughput counts training time only
            bar.advance(step)
            if stop and step < total:
                hint = getattr(ctx.output, "resume_hint", None) or f"gentool train {ctx.spec.name} --resume --out {run.path}"
                bar.note(f"Interrupted at step {step}; state saved. Continue with: {hint}", last=True)
                raise KeyboardInterrupt
    return last_eval


class _Interrupt:
    """First Ctrl-C: finish the current step, save, stop. A second one stops at once."""

    def __init__(self):
        self.requested = False
        self._old = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        import signal

        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _diverged(ctx: Context, step: int, what: str) -> str:
    from gentoolkit.train import checkpoint as ckpt

    last = ckpt.latest(ctx.run.path)
    kept = (f"the checkpoint of step {last.step} is kept (resume it with other settings: --resume --set ...)"
            if last else "nothing was saved")
    return (f"training diverged at step {step}: {what}; lower train.lr (or the learning rates of [train]) "
            f"or check the data; {kept}")


def checkpoint(ctx: Context, task: Task, step: int) -> None:
    """Weights, resumable state and pictures in one atomic checkpoint, by the main process only."""
    if not ctx.is_main:
        return
    from gentoolkit.train import checkpoint as ckpt

    tensors = ckpt.flat_weights(task.weights())
    broken = next((k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())), None)
    if broken is not None:
        raise RunError(_diverged(ctx, step, f"weight {broken!r} is not finite"))
    state = task.state_dict()
    state["step"] = step
    state["torch_rng"] = torch.get_rng_state()
    state["finished"] = step >= ctx.config["train"].steps
    ckpt.write(ctx.run.path, step, tensors, state, keep=ctx.config["train"].keep_checkpoints)
    task.on_eval(step)
    from gentoolkit.plots import loss_curves

    loss_curves(ctx.run.read_metrics(), ctx.run.file("loss.png"), title=f"{ctx.spec.name}: {ctx.run.path.name}",
                events=ctx.events)


def load_checkpoint(ctx: Context, task: Task) -> int:
    """Restore the newest complete checkpoint (see :mod:`gentoolkit.train.checkpoint`); returns the step to
    continue from, 0 when the run has none yet."""
    from gentoolkit.train import checkpoint as ckpt

    run = ctx.run
    say = (lambda m: print(m, file=sys.stderr)) if ctx.is_main else None
    last = ckpt.latest(run.path, warn=say)
    if last is None:
        if say:
            say(f"{run.path} has no checkpoint yet: starting it from step 0")
        return 0
    tensors, state = ckpt.load(last)
    load_tensors(tensors, task.weights(), str(last.weights))
    try:
        task.load_state_dict(state)
        torch.set_rng_state(state["torch_rng"])
        step = int(state["step"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise RunError(f"{last.path}: the training state does not fit this run ({type(exc).__name__}: {exc})") from None
    if ctx.is_main:
        ckpt.publish(run.path, last)  # should a kill have come between the checkpoint and its link
    return step


@contextlib.contextmanager
def _out_of_memory(doing: str):
    """Turn an allocation that cannot succeed (PyTorch's or numpy's) into one clear line."""
    try:
        yield
    except MemoryError:
        raise RunError(f"out of memory while {doing}") from None
    except RuntimeError as exc:
        if "can't allocate memory" not in str(exc) and not isinstance(exc, getattr(torch, "OutOfMemoryError", ())):
            raise
        raise RunError(f"out of memory while {doing}") from None


def _folder_state(out: Path) -> tuple[list[Path], set[str]]:
    """The folders up to ``out`` that do not exist yet (innermost first), and the names ``out`` holds now."""
    missing, p = [], out
    while not p.exists() and not p.is_symlink() and p.parent != p:
        missing.append(p)
        p = p.parent
    held = {e.name for e in out.iterdir()} if not missing and out.is_dir() else set()
    return missing, held


def _undo_setup(out: Path, missing: list[Path], held: set[str]) -> None:
    """Remove what a training that failed before its first step made: the entries of ``out`` that were not
    there before (``config.json``, ``.lock``, a tokenizer), then the folders it created, each if empty."""
    from gentoolkit.files import remove_entry

    with contextlib.suppress(OSError):
        for entry in list(out.iterdir()):
            if entry.name not in held:
                remove_entry(entry)
    for folder in missing:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only an empty folder: never what another process put there meanwhile


def prepare_folder(out: Path, *, resume: bool, main: bool) -> None:
    """Create the run folder, or check that an existing one may be trained into."""
    from gentoolkit.files import is_temp
    from gentoolkit.train import checkpoint as ckpt

    if out.exists() and not out.is_dir():
        raise RunError(f"--out {str(out)!r} is a file; give a folder for the run")
    if (out / "config.json").is_file() and isinstance(_json(out / "config.json").get("imported_from"), dict):
        raise RunError(f"{str(out)!r} is an imported model, not a training run; fine-tune it into a new folder: "
                       f"gentool train MODEL --init {out} --data YOUR_DATA --out NEW_RUN")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create the run folder {str(out)!r}: {exc.strerror}; pick another --out") from None
    if resume or not main:
        return
    if ckpt.exists(out):
        raise RunError(f"{str(out)!r} already holds a run; continue it with --resume or pick another --out")
    if (out / "config.json").is_file():
        return  # a run stopped before its first checkpoint: it starts again
    foreign = sorted(p.name for p in out.iterdir() if p.name != ".lock" and not is_temp(p.name))
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise RunError(f"--out {str(out)!r} is not empty and not a gentoolkit run (it holds {shown}); "
                       "give a new or empty folder")


def train(
    spec: ModelSpec,
    config: dict[str, Any],
    out: str | Path,
    *,
    device: str = "auto",
    resume: bool = False,
    extra_meta: dict[str, Any] | None = None,
    init: str | Path | None = None,
    output: Any = None,
) -> tuple[Run, dict[str, float]]:
    """Train ``spec`` with a resolved config tree into ``out`` (the Python API of ``gentool train``).

    ``init``: a run folder whose weights (and, for families that have one, tokenizer) the task
    starts from (``Context.init``). ``output``: a :class:`gentoolkit.progress.Output` (``--quiet``,
    ``--log-file``).

    The main process holds the run folder's lock throughout; ``config.json`` is written once the
    task is built and, on ``resume``, once its checkpoint has loaded (a failed resume changes nothing).
    A new run that fails before its first step (data it cannot read) leaves nothing behind: what it
    made in ``out`` is removed, and ``out`` itself when this call created it; what was there stays.
    """
    from gentoolkit.config import to_dict
    from gentoolkit.files import remove_stale_temps

    out = Path(out)
    run = Run(out)
    world, rank, local = distributed_env()
    main = rank == 0
    dev = resolve_device(device)
    before = _folder_state(out) if main and not resume else None  # what is there before this command
    prepare_folder(out, resume=resume, main=main)

    def meta() -> dict[str, Any]:
        return {"model": spec.name, "family": spec.family, "plugin": spec.plugin, "gentoolkit_version": __version__,
                **(extra_meta or {}), "config": to_dict(ctx.config)}

    with run.lock() if main else contextlib.nullcontext():
        if main:
            remove_stale_temps(out)
        if world > 1:
            dev = init_distributed(dev, local)
        seed_everything(config["train"].seed)
        ctx = Context(spec=spec, config=dict(config), run=run, device=dev, resume=resume, rank=rank, world_size=world,
                      init=Path(init) if init is not None and not resume else None, output=output)
        try:
            try:
                if main and not resume:
                    run.write_config(meta())  # the folder is a run from now on (undone should the setup fail)
                task_cls = resolve(spec.trainer)
                with _out_of_memory("building the model: make it smaller"):
                    task = task_cls(ctx)  # the task may fill in derived config (vocab_size) before config.json is written
                    start = load_checkpoint(ctx, task) if resume else 0
                if main:
                    run.write_config(meta())
                    run.truncate_metrics(start)
                ctx.barrier()
            except BaseException:  # bad data, a model too big...: no run folder is left behind
                if before is not None:
                    _undo_setup(out, *before)
                raise
            if start >= ctx.config["train"].steps:
                if main and not (output is not None and output.quiet):
                    print(f"Run {out} already reached step {start}; raise --steps to train further.", file=sys.stderr)
                return run, {}
            run.evaluated_on = getattr(task, "evaluated_on", "")
            with _out_of_memory("training: lower train.batch_size or make the model smaller"):
                last = fit(ctx, task, start_step=start)
            ctx.barrier()
            return run, last
        finally:
            if world > 1:
                import torch.distributed as dist

                if dist.is_initialized():
                    dist.destroy_process_group()


def train_from_cli(
    model: str,
    *,
    preset: str | None,
    config_file: str | None,
    sets: tuple[str, ...],
    out: str | None,
    device: str,
    resume: bool,
    print_config: bool,
    shortcuts: dict[str, Any],
    nproc: int = 1,
    init: str | None = None,
    output: Any = None,
    as_json: bool = False,
) -> None:
    """What ``gentool train`` does: resolve the config tree, then :func:`train` (or start workers)."""
    import shutil
    import tempfile

    from gentoolkit.plugin.manager import get_model

    spec = get_model(model)
    temp = None
    try:
        init_run = None
        if init is not None:
            if resume:
                raise ConfigError("--init starts a new run from another one and --resume continues a run; give one")
            if spec.init is None:
                raise ConfigError(f"{spec.name} cannot start from a trained model (--init): the {spec.family} family "
                                  f"does not support it; train it from scratch, or continue a run with --resume --out RUN")
            init_run, temp = _init_run(init, spec, tempfile, nproc)
        _train_from_cli(spec, preset=preset, config_file=config_file, sets=sets, out=out, device=device, resume=resume,
                        print_config=print_config, shortcuts=shortcuts, nproc=nproc, init_run=init_run,
                        output=output, as_json=as_json)
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)  # the import --init made of a Hugging Face folder


def _init_run(init: str, spec: ModelSpec, tempfile, nproc: int) -> tuple[Run, str | None]:
    """The run ``--init`` names, or a Hugging Face folder imported for it into a temporary folder."""
    from gentoolkit.plugin.specs import resolve

    path = Path(init)
    if (path / "config.json").is_file() and "model" in _json(path / "config.json") and "config" in _json(
            path / "config.json"):
        run = Run.open(path)
        if run.model_name != spec.name:
            raise RunError(f"--init {init!r} is a {run.model_name!r} run; start {spec.name!r} from a {spec.name} run")
        return run, None
    from gentoolkit.runtime.folder import is_export

    if path.is_dir() and is_export(path):
        raise RunError(f"--init {init!r} is an export folder; start from the run it was exported from, "
                       "or from a Hugging Face folder")
    if not path.is_dir() or not (path / "config.json").is_file():
        raise RunError(f"--init {init!r} is neither a run folder nor a Hugging Face model folder")
    kind = _json(path / "config.json").get("model_type")
    if kind not in spec.interop.hf_model_types or spec.interop.hf_import is None:
        raise RunError(f"--init {init!r} holds a {kind!r} model; {spec.name} starts from "
                       f"{', '.join(spec.interop.hf_model_types) or 'no Hugging Face'} checkpoints")
    temp = tempfile.mkdtemp(prefix="gentool-init-")
    resolve(spec.interop.hf_import)(path, Path(temp) / "run", log=lambda m: print(m, file=sys.stderr))
    return Run.open(Path(temp) / "run"), temp


def _preset_name(spec: ModelSpec, preset: str | None, init_run: Run | None) -> str | None:
    """``--preset``, else the preset the family names for ``--init``, else the model's default."""
    if preset:
        return preset
    if init_run is not None and spec.init is not None and spec.init.preset in spec.presets:
        return spec.init.preset
    return spec.default_preset


def _kept(stored: dict[str, Any], keep: tuple[str, ...]) -> dict[str, Any]:
    """The sections (``"model"``) and keys (``"data.tokenizer"``) of a stored config tree named in ``keep``."""
    layer: dict[str, dict[str, Any]] = {}
    for name in keep:
        section, _, key = name.partition(".")
        values = stored.get(section)
        if not isinstance(values, dict):
            continue
        if not key:
            layer.setdefault(section, {}).update(values)
        elif key in values:
            layer.setdefault(section, {})[key] = values[key]
    return layer


def _json(path: Path) -> dict:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"cannot read {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def _train_from_cli(spec: ModelSpec, *, preset, config_file, sets, out, device, resume, print_config, shortcuts, nproc,
                    init_run: Run | None, output=None, as_json: bool = False) -> None:
    import json

    from gentoolkit.config import build, dumps_toml, load_file, to_dict
    from gentoolkit.progress import Output

    output = output or Output()

    model = spec.name
    sections = spec.config_sections
    layers: list[dict] = []
    if resume:
        if out is None:
            raise RunError("--resume needs --out RUN_FOLDER (the run to continue)")
        previous = Run.open(out)
        if previous.model_name != spec.name:
            raise RunError(f"{out!r} is a {previous.model_name!r} run, not {spec.name!r}")
        stored = previous.stored_config()
        layers.append(stored)
    else:
        name = _preset_name(spec, preset, init_run)
        kept = spec.init.keep if init_run is not None and spec.init is not None else ()
        if name is not None:
            if name not in spec.presets:
                raise ConfigError(f"unknown preset {name!r} for {spec.name}; presets: {', '.join(spec.presets)}")
            layers.append({k: v for k, v in spec.presets[name].items() if k not in kept})
        if init_run is not None:  # what the family keeps of the pretrained run (its architecture, tokenizer...)
            layers.append(_kept(init_run.stored_config(), kept))
    if config_file:
        layers.append(load_file(config_file))
    short = {k: v for k, v in shortcuts.items() if v is not None}
    extra_sets = [f"{k}={v}" for k, v in short.items()]
    tree = build(sections, *layers, sets=tuple(extra_sets) + tuple(sets))
    if resume:
        new = to_dict(tree)
        changed = [k for k in new["model"] if stored["model"].get(k) != new["model"][k]]
        if changed:
            raise ConfigError(f"cannot change model keys when resuming: {', '.join('model.' + k for k in changed)}")
        data = [k for k in new.get("data", {}) if stored.get("data", {}).get(k, new["data"][k]) != new["data"][k]]
        if data:
            raise ConfigError(f"--resume keeps the run's data (data.{data[0]} = {stored['data'][data[0]]!r}); to "
                              f"train on other data, start a new run from this one: gentool train {model} --init "
                              f"{out} --data NEW --out NEW_RUN")
    if init_run is not None and spec.init is not None:
        stored = init_run.stored_config()
        pre, new = stored.get("model", {}), to_dict(tree)
        may = spec.init.may_change
        changed = [k for k in new["model"] if k not in may and pre.get(k) != new["model"][k]]
        if changed:
            allowed = f"may change {', '.join('model.' + k for k in may)}" if may else "changes none of them"
            raise ConfigError(f"model.{changed[0]} is the pretrained model's ({pre.get(changed[0])!r}) and cannot "
                              f"change when starting from it; a run started with --init {allowed}")
        if spec.init.check is not None:
            resolve(spec.init.check)(stored, new)
    if print_config:
        if spec.resolve_config is not None:  # the values the data decides, as training will decide them
            tree = resolve(spec.resolve_config)(dict(tree))
        print(dumps_toml(to_dict(tree)), end="")
        return
    out_dir = Path(out) if out else Path("runs") / f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    world, rank, _ = distributed_env()
    if nproc > 1 and world == 1:
        batch = getattr(tree["train"], "batch_size", None)
        if batch is not None and batch % nproc:
            raise ConfigError(f"train.batch_size ({batch}) must be a multiple of --nproc-per-node ({nproc}): "
                              "it is the global batch, split between the workers")
        argv = [model, "--out", str(out_dir), "--device", device]
        argv += ["--preset", preset] if preset else []
        argv += ["--config", config_file] if config_file else []
        argv += ["--resume"] if resume else []
        argv += ["--init", str(init_run.path)] if init_run is not None else []
        argv += ["--quiet"] if output.quiet else []
        argv += ["--log-file", output.log_file] if output.log_file else []
        argv += ["--json"] if as_json else []
        for expr in [f"{k}={v}" for k, v in short.items()] + list(sets):
            argv += ["--set", expr]
        launch(nproc, argv)
        return
    meta = {"preset": _preset_name(spec, preset, init_run)}
    if resume:  # what the run was started with stays recorded
        meta = {k: v for k, v in Run.open(out_dir).meta.items() if k in ("preset", "init")}
    if init_run is not None:
        meta["init"] = init_run.meta.get("imported_from", {}).get("path") or str(init_run.path.resolve())
    run, last = train(spec, tree, out_dir, device=device, resume=resume, extra_meta=meta,
                      init=init_run.path if init_run is not None else None, output=output)
    if rank != 0:
        return
    if as_json:  # stdout holds this object alone: the progress and the lines above went to stderr
        print(json.dumps({"run": str(run.path), "model": spec.name, "steps": tree["train"].steps,
                          "metrics": last, "evaluated_on": run.evaluated_on or None}))
    if not output.quiet:
        from gentoolkit.samples.metrics import format_metric

        summary = ", ".join(f"{k} {format_metric(k, float(v))}" for k, v in last.items())
        on = f"; {run.evaluated_on}" if run.evaluated_on and summary else ""
        print(f"Run saved in {run.path}" + (f" ({summary}{on})" if summary else ""), file=sys.stderr)
