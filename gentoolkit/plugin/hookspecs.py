"""Hook specifications: the contract between gentoolkit and its plugins.

Each hook receives a ``register`` callback (or the CLI group) and the plugin
calls it once per thing it provides. The host owns the registries: it checks
names, rejects duplicates and rolls back everything a failing plugin
registered. Because pluggy passes only the arguments an implementation asks
for, a hook can grow new arguments later without breaking existing plugins.
"""

from __future__ import annotations

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("gentoolkit")
hookimpl = HookimplMarker("gentoolkit")


@hookspec
def register_models(register):
    """Register model families.

    :param register: ``register(spec: gentoolkit.ModelSpec) -> None``. Call it
        once per model. The spec names the model, its family (for example
        ``"autoregressive"`` or ``"gan"``), its config dataclass, presets, a lazy
        builder and trainer (``"package.module:attribute"`` strings, imported
        only when used) and its export description.
    """


@hookspec
def register_samplers(register):
    """Register decoding strategies and latent samplers.

    :param register: ``register(spec: gentoolkit.SamplerSpec) -> None``. The
        spec names the sampler, its kind (``"logits"`` for autoregressive
        decoding, ``"latent"`` for GAN noise) and a factory written in numpy
        (no torch), so that the same sampler runs in PyTorch and onnxruntime.
    """


@hookspec
def register_losses(register):
    """Register training objectives.

    :param register: ``register(spec: gentoolkit.LossSpec) -> None``. The spec
        names the loss, the family it applies to and its implementation as a
        lazy ``"package.module:attribute"`` string (pure functions of tensors).
    """


@hookspec
def register_datasets(register):
    """Register named data sources.

    :param register: ``register(spec: gentoolkit.DatasetSpec) -> None``. The
        spec names the dataset, its kind (``"text"``, ``"vectors"`` or
        ``"images"``) and a lazy loader; loaders must not download anything.
    """


@hookspec
def register_runtimes(register):
    """Register torch-free drivers that run exported models of a family.

    :param register: ``register(spec: gentoolkit.RuntimeSpec) -> None``. The spec
        names the family it runs (the ``family`` of the export manifest) and a
        lazy ``"package.module:Class"`` whose constructor takes ``(folder,
        manifest, session)``. The module must import only numpy and onnxruntime,
        so that ``gentoolkit.runtime.load`` works in apps without torch.
    """


@hookspec
def register_commands(cli):
    """Add subcommands to the ``gentool`` command line.

    :param cli: the ``click.Group`` to attach commands to, as in
        ``@cli.command()``. Import heavy libraries inside the command's
        callback, never at module level, so ``gentool --help`` stays fast.
    """
