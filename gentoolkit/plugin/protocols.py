"""The plugin contract's callables and objects, as types (``typing.Protocol``): what a family's code must
look like where a spec names it.

A spec field that takes code takes the object itself or a lazy ``"package.module:attribute"`` string
(imported when first used); either way the object must keep the protocol below. They are checked by
type checkers (``mypy``, ``pyright``) and read by people: nothing here runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from gentoolkit.export import ExportPlan
    from gentoolkit.train.run import Run

#: a timed case: a name and a function that runs it once and returns what it measured
Case = tuple[str, Callable[[], Mapping[str, Any]]]


# --- ModelSpec: a trainable model ----------------------------------------------------------------------
class Build(Protocol):
    """``ModelSpec.build``: the network from its ``[model]`` config (a ``torch.nn.Module``)."""

    def __call__(self, config: Any, /, **kwargs: Any) -> Any: ...


class SampleRun(Protocol):
    """``ModelSpec.sample``: what ``gentool sample RUN`` prints or writes, from a run folder."""

    def __call__(self, run: Run, *, n: int, seed: int | None, out: str | None, device: str = "cpu",
                 sampler: str | None = None, sampler_opts: Sequence[str] = (), as_json: bool = False,
                 **options: Any) -> None: ...


class EvaluateRun(Protocol):
    """``ModelSpec.evaluate``: ``gentool eval RUN``'s numbers (``data``: other data to score)."""

    def __call__(self, run: Run, *, data: str | None = None, device: str = "cpu") -> dict[str, Any]: ...


class PlanExport(Protocol):
    """``ModelSpec.export``: the ONNX graph of a run, described as plain data."""

    def __call__(self, run: Path, /) -> ExportPlan: ...


class Timing(Protocol):
    """``ModelSpec.timing`` and ``RuntimeSpec.timing``: the cases ``gentool bench PATH`` times on a run or
    an export (``target``), given ``prompt_tokens``, ``new_tokens``, ``first_token_prompt`` and ``batch``."""

    def __call__(self, target: Any, options: Mapping[str, Any], /) -> list[Case]: ...


class Bench(Protocol):
    """``ModelSpec.bench``: one whole sample, timed ``repeat`` times, for ``gentool bench``'s table."""

    def __call__(self, repeat: int, /) -> dict[str, Any]: ...


class Quickstart(Protocol):
    """``ModelSpec.quickstart``: this model's step of ``gentool quickstart``, under ``out``."""

    def __call__(self, out: Path, *, small: bool, seed: int, say: Callable[[str], None]) -> dict[str, Any]: ...


class ResolveConfig(Protocol):
    """``ModelSpec.resolve_config``: the tree with the values the data decides filled in (``--print-config``)."""

    def __call__(self, tree: dict[str, Any], /) -> dict[str, Any]: ...


class CheckInit(Protocol):
    """``InitSpec.check``: refuse (``ConfigError``) a new config a pretrained one cannot start."""

    def __call__(self, pretrained: dict[str, Any], new: dict[str, Any], /) -> None: ...


class ImportCheckpoint(Protocol):
    """``Interop.hf_import`` and ``Interop.gguf_import``: a run folder at ``out`` from another format."""

    def __call__(self, source: Path, out: Path, /, *, log: Callable[[str], None]) -> Path: ...


class ExportCheckpoint(Protocol):
    """``Interop.hf_export``: a Hugging Face folder at ``out`` from a run."""

    def __call__(self, run: Path, out: Path, /, *, overwrite: bool, log: Callable[[str], None]) -> Path: ...


# --- RuntimeSpec: a family's exports, torch-free --------------------------------------------------------
@runtime_checkable
class Driver(Protocol):
    """What ``gentoolkit.runtime.load`` returns: ``RuntimeSpec.load(folder, manifest, session)``."""

    family: str
    manifest: dict[str, Any]
    defaults: dict[str, Any]  # the sampler defaults stored with the export

    def cli_sample(self, *, n: int, seed: int | None, out: str | None, sampler: str | None,
                   sampler_opts: Sequence[str], as_json: bool = False, **options: Any) -> None: ...


class LoadDriver(Protocol):
    """``RuntimeSpec.load``."""

    def __call__(self, folder: Path, manifest: dict[str, Any], session: Any, /) -> Driver: ...


@runtime_checkable
class Sampler(Protocol):
    """A driver ``gentool serve`` answers ``/v1/samples`` with (a family without an engine)."""

    def sample(self, n: int, *, seed: int | None = None, **options: Any) -> np.ndarray: ...


class Job(Protocol):
    """One request in an engine: its choices' token counts so far, and a way to give it up."""

    tokens_out: list[int]

    def cancel(self) -> None: ...


#: where an engine sends a request's events: (choice, text piece, finish reason, error)
Emit = Callable[[int, str, "str | None", "str | None"], None]


@runtime_checkable
class Engine(Protocol):
    """``RuntimeSpec.serve(driver, max_batch)``: what ``gentool serve`` puts a text family's requests through.

    The server calls ``encode_prompt`` and ``new_job`` on its own threads (an error there is the
    request's: a ``GentoolError`` becomes a 400), ``submit`` to queue the job, and reads ``queued()``,
    ``active()`` and ``tokens_generated`` for its limits and metrics. The engine runs the jobs on its own
    thread between ``start()`` and ``stop()``, and sends every piece of text through the job's ``emit``.
    """

    kind: str
    context_length: int
    max_batch: int
    tokens_generated: int

    def encode_prompt(self, prompt: str | Sequence[int] | Sequence[dict]) -> list[int]: ...

    def new_job(self, prompt: list[int], *, n: int, seed: int | None, options: dict[str, Any], emit: Emit) -> Job: ...

    def submit(self, job: Job) -> Job: ...

    def queued(self) -> int: ...

    def active(self) -> int: ...

    def start(self) -> None: ...

    def stop(self, timeout: float | None = None) -> None: ...


class Serve(Protocol):
    """``RuntimeSpec.serve``."""

    def __call__(self, driver: Driver, /, *, max_batch: int) -> Engine: ...


class WebCheck(Protocol):
    """``RuntimeSpec.web_check``: why the family's JavaScript module cannot run an export, or None."""

    def __call__(self, manifest: dict[str, Any], /) -> str | None: ...


# --- SamplerSpec, LossSpec, DatasetSpec ----------------------------------------------------------------
class SamplerFactory(Protocol):
    """``SamplerSpec.factory(**options)``: the sampler object (numpy only; for ``logits`` samplers, the
    sampler contract of the autoregressive family's decode loop)."""

    def __call__(self, **options: Any) -> Any: ...


class LoadDataset(Protocol):
    """``DatasetSpec.load(**options)``: the data; it must not download anything."""

    def __call__(self, **options: Any) -> Any: ...
