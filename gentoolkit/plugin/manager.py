"""The plugin manager: discovery through entry points, isolation, and registry building.

Plugins are found in the entry-point group ``gentoolkit``; the built-in ones
are declared in this project's own ``pyproject.toml`` exactly as a third-party
package declares its own. Each entry point is loaded on its own: one that fails
to import, or whose hook raises or registers a duplicate name, is skipped,
everything it registered is dropped, and a single warning names it. The rest of
the toolkit keeps working.

Environment switches:

* ``GENTOOL_LOAD_PLUGINS``: comma list of distribution or entry-point names to
  load (set but empty: load none).
* ``GENTOOL_DISABLE_PLUGINS``: comma list of names never to load.
* ``GENTOOL_TRACE_PLUGINS=1``: print each hook call to stderr.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from gentoolkit.errors import PluginError
from gentoolkit.plugin import hookspecs
from gentoolkit.plugin.specs import KINDS, SPEC_TYPES, Registries

ENTRY_POINT_GROUP = "gentoolkit"


@dataclass
class PluginRecord:
    """What ``gentool plugins`` reports for one plugin."""

    name: str
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": self.hooks,
            "registered": self.registered,
            "error": self.error,
        }


_pm: pluggy.PluginManager | None = None
_import_failures: list[PluginRecord] = []
_dist_of: dict[str, tuple[str | None, str | None]] = {}
_cache: dict[bool, tuple[tuple[int, ...], Registries, list[PluginRecord]]] = {}
_warned: set[tuple[str, str]] = set()


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _env_list(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {_norm(v) for v in value.split(",") if v.strip()}


def _selected(ep_name: str, dist_name: str | None) -> bool:
    names = {_norm(ep_name)} | ({_norm(dist_name)} if dist_name else set())
    allow = _env_list("GENTOOL_LOAD_PLUGINS")
    deny = _env_list("GENTOOL_DISABLE_PLUGINS") or set()
    if names & deny:
        return False
    return allow is None or bool(names & allow)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip().rstrip(":")


def warn(record: PluginRecord) -> None:
    """Print one warning per failing plugin and error per process."""
    key = (record.name, record.error or "")
    if key in _warned:
        return
    _warned.add(key)
    dist = f" (distribution {record.distribution})" if record.distribution else ""
    print(
        f"Warning: plugin {record.name!r}{dist} was skipped: {record.error}. "
        "Run 'gentool plugins' for details.",
        file=sys.stderr,
    )


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    eps = list(entry_points(group=ENTRY_POINT_GROUP))
    # The toolkit's own plugins first, then the rest by name: a deterministic order,
    # so a third-party duplicate is the one reported, never a built-in.
    eps.sort(key=lambda ep: (ep.dist is None or _norm(ep.dist.name) != "gentoolkit", ep.name))
    seen: set[str] = set()
    for ep in eps:
        dist = ep.dist.name if ep.dist is not None else None
        version = ep.dist.version if ep.dist is not None else None
        if ep.name in seen or not _selected(ep.name, dist):
            continue
        seen.add(ep.name)
        _dist_of[ep.name] = (dist, version)
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:  # a broken plugin must never break the CLI
            _import_failures.append(PluginRecord(ep.name, dist, version, error=_describe(exc)))
            continue
        try:
            pm.check_pending()
        except Exception as exc:
            pm.unregister(name=ep.name)
            _import_failures.append(PluginRecord(ep.name, dist, version, error=_describe(exc)))


def get_plugin_manager() -> pluggy.PluginManager:
    """Return the process-wide plugin manager, loading entry points on first use."""
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager("gentoolkit")
        pm.add_hookspecs(hookspecs)
        if os.environ.get("GENTOOL_TRACE_PLUGINS", "") not in ("", "0"):
            pm.trace.root.setwriter(lambda msg: sys.stderr.write(msg))
            pm.enable_tracing()
        _load_entry_points(pm)
        _pm = pm
    return _pm


def _call_one(pm: pluggy.PluginManager, plugin: object, hook: str, **kwargs: Any) -> None:
    others = [p for p in pm.get_plugins() if p is not plugin]
    pm.subset_hook_caller(hook, remove_plugins=others)(**kwargs)


def _build(commands: bool = True) -> tuple[Registries, list[PluginRecord]]:
    pm = get_plugin_manager()
    regs = Registries()
    records: list[PluginRecord] = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        dist, version = _dist_of.get(name, (None, None))
        hooks = sorted(
            impl.function.__name__
            for caller in pm.get_hookcallers(plugin) or []
            for impl in caller.get_hookimpls()
            if impl.plugin is plugin
        )
        record = PluginRecord(name, dist, version, hooks=hooks)
        staged: dict[str, list] = {kind: [] for kind in KINDS}
        group = _command_group() if commands else None
        try:
            for kind in KINDS:
                _call_one(pm, plugin, f"register_{kind}", register=staged[kind].append)
            if group is not None:
                _call_one(pm, plugin, "register_commands", cli=group)
            trial = _trial_commit(regs, staged, group, name)
        except Exception as exc:
            record.error = _describe(exc)
            records.append(record)
            warn(record)
            continue
        regs = trial
        record.registered = {kind: [s.name for s in staged[kind]] for kind in KINDS}
        if group is not None:
            record.registered["commands"] = sorted(group.commands)
        records.append(record)
    for failed in _import_failures:
        warn(failed)
    return regs, records + list(_import_failures)


def _command_group():
    import click

    return click.Group()


def _trial_commit(regs: Registries, staged: dict[str, list], group, plugin_name: str) -> Registries:
    """Return new registries holding ``regs`` plus ``staged``; raise without touching ``regs``."""
    import dataclasses

    from gentoolkit.plugin.specs import merge_declared

    trial = Registries()
    for kind in KINDS:
        for spec in regs.of(kind):
            trial.of(kind).add(spec)
        for spec in staged[kind]:
            expected = SPEC_TYPES[kind]
            if not isinstance(spec, expected):
                raise PluginError(
                    f"register_{kind} got {type(spec).__name__}, expected gentoolkit.{expected.__name__}"
                )
            trial.of(kind).add(dataclasses.replace(spec, plugin=plugin_name))
    merge_declared([*trial.models, *trial.runtimes])  # one meaning per sample option
    trial.commands = dict(regs.commands)
    trial.command_owner = dict(regs.command_owner)
    for cmd_name, cmd in (group.commands if group is not None else {}).items():
        if cmd_name in _reserved:
            raise PluginError(f"command name {cmd_name!r} belongs to gentoolkit itself")
        if cmd_name in trial.commands:
            raise PluginError(
                f"command name {cmd_name!r} is already registered by plugin "
                f"{trial.command_owner[cmd_name]!r}"
            )
        trial.commands[cmd_name] = cmd
        trial.command_owner[cmd_name] = plugin_name
    return trial


def _state(commands: bool = True) -> tuple[Registries, list[PluginRecord]]:
    pm = get_plugin_manager()
    key = tuple(id(p) for p in pm.get_plugins())
    for want in ((True, False) if not commands else (True,)):  # the full registries serve both
        hit = _cache.get(want)
        if hit is not None and hit[0] == key:
            return hit[1], hit[2]
    regs, records = _build(commands)
    _cache[commands] = (key, regs, records)
    return regs, records


def get_registries(commands: bool = True) -> Registries:
    """The registries built from every successfully loaded plugin (rebuilt when plugins change).

    ``commands=False`` leaves out the ``register_commands`` hook, and with it click: what
    ``gentoolkit.runtime`` asks for, so an app that only runs exports never builds the CLI.
    """
    return _state(commands)[0]


def plugin_records() -> list[PluginRecord]:
    """One record per plugin, loaded or failed, for ``gentool plugins``."""
    return _state()[1]


def reserved_command_names(names: set[str]) -> None:
    """Tell the host which command names the core CLI owns (plugins may not take them)."""
    _reserved.update(names)


_reserved: set[str] = set()


def get_model(name: str):
    """Look up a registered model by name or alias (raises a user-facing error listing what exists)."""
    return get_registries().models.get(name)


def get_sampler(name: str):
    """Look up a registered sampler by name or alias."""
    return get_registries().samplers.get(name)


def get_loss(name: str, family: str | None = None):
    """Look up a registered loss by name or alias; with ``family``, one for that family or a clear error."""
    spec = get_registries().losses.get(name)
    if family is not None and spec.family != family:
        from gentoolkit.errors import ConfigError

        fitting = ", ".join(s.name for s in get_registries().losses if s.family == family) or "none"
        raise ConfigError(f"loss {spec.name!r} is for {spec.family} models, not {family} ones; "
                          f"{family} losses: {fitting} (see 'gentool losses')")
    return spec


def get_dataset(name: str):
    """Look up a registered dataset by name or alias."""
    return get_registries().datasets.get(name)
