"""Specs (plain data describing what a plugin provides) and the registries that hold them.

A plugin never builds a registry itself: its hook calls ``register(spec)`` and
the host checks the spec, rejects duplicates and stores it. Specs reference
heavy code through ``"package.module:attribute"`` strings that are imported
only when used, so listing models never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from gentoolkit.errors import PluginError, UnknownNameError, closest
from gentoolkit.plugin.protocols import (
    Bench,
    Build,
    CheckInit,
    EvaluateRun,
    ExportCheckpoint,
    ImportCheckpoint,
    LoadDataset,
    LoadDriver,
    PlanExport,
    Quickstart,
    ResolveConfig,
    SamplerFactory,
    SampleRun,
    Serve,
    Timing,
    WebCheck,
)

#: The kinds of things plugins register, in the order they are reported.
KINDS = ("models", "samplers", "losses", "datasets", "runtimes")
SINGULAR = {"models": "model", "samplers": "sampler", "losses": "loss", "datasets": "dataset", "runtimes": "runtime"}


def resolve(ref: str | Callable | type) -> Any:
    """Import ``"package.module:attribute"`` (dots allowed in the attribute); pass objects through."""
    if not isinstance(ref, str):
        return ref
    obj = _resolved.get(ref)
    if obj is not None:
        return obj
    module_name, _, attr = ref.partition(":")
    if not attr:
        raise ValueError(f"lazy reference {ref!r} must look like 'package.module:attribute'")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    _resolved[ref] = obj
    return obj


_resolved: dict[str, Any] = {}  # a reference is resolved once: sampling builds its sampler on every call


#: options of ``gentool sample`` that the host owns; a family may not declare these names
HOST_SAMPLE_OPTIONS = ("path", "num_samples", "n", "seed", "sampler", "sampler_opt", "sampler_opts", "out", "device")


@dataclass(frozen=True)
class SampleOption:
    """An option a family takes when it samples, declared as plain data.

    ``gentool sample`` gets a flag for every option a registered model or runtime declares
    (``top_p`` becomes ``--top-p``), checked against ``type`` (``int``, ``float``, ``str`` or
    ``bool`` for a flag) and the range ``low``..``high`` (``low_open``: ``low`` itself
    excluded). ``multiple``: repeatable, the values come as a list. ``sampler``: the option is
    passed to the sampler (one of its own options, or a key of the family's ``choose`` map that
    picks it); otherwise it is the family's own (a prompt, stop strings). ``escapes``: on the
    command line ``\\n``, ``\\t``, ``\\r`` and ``\\\\`` are read as escapes. ``default``: the value
    where neither the user nor the model's stored defaults give one. ``api``: the field of
    ``gentool serve``'s request that carries it (None: not served). ``api_schema``: JSON Schema keywords
    the request adds to the option's own range (OpenAI's ``{"maximum": 2}`` for a temperature).

    A family declares its options once, as a dataclass (:func:`gentoolkit.plugin.options.option`,
    :func:`gentoolkit.plugin.options.sample_options` makes these from it).
    """

    name: str
    type: type = float
    help: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    multiple: bool = False
    short: str | None = None
    sampler: bool = True
    escapes: bool = False
    default: Any = None
    api: str | None = None
    api_schema: dict | None = None

    def __post_init__(self):
        if self.type not in (int, float, str, bool):
            raise PluginError(f"sample option {self.name!r}: type must be int, float, str or bool")
        if self.name in HOST_SAMPLE_OPTIONS or not self.name.isidentifier():
            raise PluginError(f"sample option {self.name!r} is taken by gentool sample itself, or not a name")

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class InitSpec:
    """How a model starts from a trained one (``gentool train MODEL --init RUN``), as its family declares it.

    A model whose spec has no ``init`` refuses ``--init`` with one line. ``preset``: the preset such a
    run takes when no ``--preset`` is given (None: the model's ``default_preset``). ``keep``: what the
    new run takes from the pretrained run's ``config.json``, whole sections (``"model"``, whose preset
    keys are then skipped) or single keys (``"data.tokenizer"``). ``may_change``: the ``model`` keys the
    new run may set (the others must stay the pretrained model's). ``check(pretrained, new)``
    (optional): both config trees as plain dicts; raises :class:`~gentoolkit.errors.ConfigError` for a
    change the family cannot start from (a longer context than the pretrained model's).
    """

    preset: str | None = None
    keep: tuple[str, ...] = ("model",)
    may_change: tuple[str, ...] = ()
    check: str | CheckInit | None = None


@dataclass(frozen=True)
class Interop:
    """The other formats a model comes from or goes to (``ModelSpec.interop``; all optional).

    ``hf_model_types``, ``hf_import`` and ``hf_export`` open the Hugging Face door: ``gentool import
    FOLDER`` asks the model whose ``hf_model_types`` holds the folder's ``model_type``, and ``gentool export
    --format hf`` calls ``hf_export``; ``gguf_architectures`` and ``gguf_import`` open llama.cpp's:
    ``gentool import FILE.gguf``.
    """

    hf_model_types: tuple[str, ...] = ()
    hf_import: str | ImportCheckpoint | None = None
    hf_export: str | ExportCheckpoint | None = None
    gguf_architectures: tuple[str, ...] = ()
    gguf_import: str | ImportCheckpoint | None = None


@dataclass(frozen=True)
class Tools:
    """What a model brings to the toolkit's own commands (``ModelSpec.tools``; all optional): ``bench``
    times one whole sample for ``gentool bench``'s side-by-side table, ``timing`` gives the cases
    ``gentool bench RUN`` times on a run folder, ``quickstart`` is the model's step of ``gentool
    quickstart``."""

    bench: str | Bench | None = None
    timing: str | Timing | None = None
    quickstart: str | Quickstart | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A trainable model, as registered by ``register_models``.

    The first six fields are what every model has: ``config`` is the dataclass of the ``[model]``
    config section, ``build(model_config, vocab_size=...)`` returns the network, ``trainer`` is the
    family's training task (see the training loop). The rest are optional and grouped by use.
    ``sections`` gives the dataclasses of the other sections (``data``, ``train``, ``loss``, ...);
    ``export`` describes the ONNX graph as plain data (see the export docs);
    ``sample(run, *, n, seed, out, device, sampler, sampler_opts, **options)`` samples from a run
    folder, taking the ``sample_options`` it declares (made from the family's decode-options dataclass
    with :func:`gentoolkit.plugin.options.sample_options`); ``evaluate`` is ``gentool eval RUN``;
    ``tools`` (:class:`Tools`) and ``interop`` (:class:`Interop`) group what only some models bring.
    The callables' signatures are the protocols of :mod:`gentoolkit.plugin.protocols`.
    ``legacy`` maps config keys added after a release to the value that reproduces
    older run folders, whose ``config.json`` lacks them. ``resolve_config(tree) -> tree``
    (optional) fills the keys a config leaves to the data (``None``) as training will, so that
    ``gentool train --print-config`` shows the values that will be used. ``init`` (optional, an
    :class:`InitSpec`) says how the model starts from a trained run (``gentool train --init``); without
    one, ``--init`` is refused.
    """

    name: str
    family: str
    description: str
    config: type
    build: str | Build
    trainer: str | Callable
    # training and its config
    sections: Mapping[str, type] = field(default_factory=dict)
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    default_preset: str | None = None
    resolve_config: str | ResolveConfig | None = None  # resolve_config(tree) -> tree, for --print-config
    # sampling, evaluation and export of a run
    export: str | PlanExport | None = None
    sample: str | SampleRun | None = None
    evaluate: str | EvaluateRun | None = None
    sample_options: tuple[SampleOption, ...] = ()
    # what only some models bring
    tools: Tools = field(default_factory=Tools)
    interop: Interop = field(default_factory=Interop)
    aliases: tuple[str, ...] = ()
    plugin: str = ""
    # "section.key" -> the behaviour a run folder written before that key existed had (config.json lacks it)
    legacy: Mapping[str, Any] = field(default_factory=dict)
    init: InitSpec | None = None  # gentool train --init: how this model starts from a trained run

    @property
    def config_sections(self) -> dict[str, type]:
        """Every section of this model's config tree, ``model`` first."""
        return {"model": self.config, **self.sections}


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler: ``kind`` is ``"logits"`` (decoding), ``"latent"`` (GAN noise) or a plugin's own kind.

    ``factory(**options)`` returns the sampler object; it must be numpy-only so
    that PyTorch and onnxruntime share it. ``options`` lists option names with
    their types, for ``--sampler-opt key=value``.
    """

    name: str
    kind: str
    description: str
    factory: str | SamplerFactory
    options: Mapping[str, type] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    plugin: str = ""


@dataclass(frozen=True)
class LossSpec:
    """A training objective for one family; ``impl`` points at pure tensor functions."""

    name: str
    family: str
    description: str
    impl: str | Callable
    aliases: tuple[str, ...] = ()
    plugin: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """A named data source; ``load(**options)`` returns the data and must not download anything."""

    name: str
    kind: str
    description: str
    load: str | LoadDataset
    aliases: tuple[str, ...] = ()
    plugin: str = ""


@dataclass(frozen=True)
class RuntimeSpec:
    """A torch-free driver for exported models of one family (see ``gentoolkit.runtime.load``).

    The driver's ``cli_sample(*, n, seed, out, sampler, sampler_opts, **options)`` is what
    ``gentool sample EXPORT`` calls, with the ``sample_options`` declared here.
    ``timing(driver, options)`` (optional) returns the cases ``gentool bench EXPORT`` times:
    ``[(name, fn), ...]`` where ``fn()`` runs the case once and returns the numbers it measured
    (``tokens_per_s``, ``first_token_ms``, ``samples_per_s``; lists under ``tokens`` are compared
    across paths given the same list under ``prompt``). ``options`` holds ``prompt_tokens``, ``new_tokens``, ``first_token_prompt`` and
    ``batch``; a family reads those that apply to it.
    ``serve(driver, max_batch)`` (optional) returns the engine ``gentool serve`` puts a text family's
    requests through (docs/serving.md, the engine); a family without one is served at ``/v1/samples``
    through its driver's ``sample(n, seed, **options)``.
    ``web`` (optional) is the path of an ES module that runs the family's exports in JavaScript,
    in the browser and in Node; ``gentool demo`` copies it into the site (docs/javascript.md, the
    driver module). ``web_check(manifest)`` (optional) returns why that module cannot run an
    export (a graph onnxruntime-web lacks an operator for), or None.
    """

    name: str  # the family it runs, as written in the export manifest
    description: str
    load: str | LoadDriver
    sample_options: tuple[SampleOption, ...] = ()
    timing: str | Timing | None = None
    serve: str | Serve | None = None
    web: str | None = None
    web_check: str | WebCheck | None = None
    aliases: tuple[str, ...] = ()
    plugin: str = ""


SPEC_TYPES: dict[str, type] = {
    "models": ModelSpec,
    "samplers": SamplerSpec,
    "losses": LossSpec,
    "datasets": DatasetSpec,
    "runtimes": RuntimeSpec,
}

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> spec for one kind, with aliases and helpful lookup errors."""

    def __init__(self, kind: str):
        self.kind = kind
        self._specs: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def add(self, spec: T) -> None:
        names = (spec.name, *spec.aliases)  # type: ignore[attr-defined]
        for name in names:
            if name in self._specs or name in self._aliases:
                owner = self.get(name).plugin  # type: ignore[attr-defined]
                raise PluginError(
                    f"{SINGULAR[self.kind]} name {name!r} is already registered by plugin {owner!r}"
                )
        self._specs[spec.name] = spec  # type: ignore[attr-defined]
        for alias in spec.aliases:  # type: ignore[attr-defined]
            self._aliases[alias] = spec.name  # type: ignore[attr-defined]

    def __contains__(self, name: str) -> bool:
        return name in self._specs or name in self._aliases

    def __iter__(self) -> Iterator[T]:
        return iter(sorted(self._specs.values(), key=lambda s: s.name))  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self._specs)

    def names(self) -> list[str]:
        return sorted(self._specs)

    def get(self, name: str) -> T:
        key = self._aliases.get(name, name)
        if key in self._specs:
            return self._specs[key]
        what = SINGULAR[self.kind]
        hint = closest(name, list(self._specs) + list(self._aliases))
        did = f" Did you mean {hint!r}?" if hint else ""
        avail = ", ".join(self.names()) or "none (no plugin provides one)"
        raise UnknownNameError(
            f"unknown {what} {name!r}.{did} Available: {avail} (see 'gentool {self.kind}'). Other {self.kind} come "
            f"from plugins: pip install the plugin package that provides {name!r}, then 'gentool plugins' lists "
            "what each installed plugin registered (and why one failed to load)"
        )


@dataclass
class Registries:
    """Everything the loaded plugins registered."""

    models: Registry[ModelSpec] = field(default_factory=lambda: Registry("models"))
    samplers: Registry[SamplerSpec] = field(default_factory=lambda: Registry("samplers"))
    losses: Registry[LossSpec] = field(default_factory=lambda: Registry("losses"))
    datasets: Registry[DatasetSpec] = field(default_factory=lambda: Registry("datasets"))
    runtimes: Registry[RuntimeSpec] = field(default_factory=lambda: Registry("runtimes"))
    commands: dict[str, Any] = field(default_factory=dict)
    command_owner: dict[str, str] = field(default_factory=dict)

    def of(self, kind: str) -> Registry:
        return getattr(self, kind)


def merge_declared(specs) -> dict[str, SampleOption]:
    """Every sample option the registered ``specs`` declare, by name (the first declaration wins);
    two plugins declaring one name differently is a :class:`PluginError`."""
    out: dict[str, SampleOption] = {}
    for spec in specs:
        for opt in spec.sample_options:
            seen = out.get(opt.name)
            if seen is None:
                out[opt.name] = opt
            elif (seen.type, seen.multiple) != (opt.type, opt.multiple):
                raise PluginError(f"sample option {opt.flag} of plugin {spec.plugin!r} is not the same as the one "
                                  "another plugin declares (type or repeatable)")
    return out
