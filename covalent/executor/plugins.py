"""Finding executor plugins, and making executors from their settings.

A plugin is a module whose ``EXECUTOR_PLUGIN_NAME`` (or, as in some of Covalent's
plugins, ``executor_plugin_name``) names its executor class and whose optional
``_EXECUTOR_PLUGIN_DEFAULTS`` gives default settings (config section
``executors.<short name>``). Sources, in order:

1. modules in ``covalent/executor/executor_plugins/`` (built-ins);
2. ``*.py`` files in the plugin folder (``COVALENT_EXECUTOR_DIR``, else
   ``~/.config/covalent/executor_plugins``); the file's name is the short name;
3. modules registered under the entry-point group ``covalent.executor.executor_plugins``;
   the entry point's name is the short name.

A plugin of the folder or an entry point whose short name is a built-in's replaces the
built-in, as in Covalent; the built-in stays reachable as ``builtin_<name>``. Among
the folder and entry points, the first plugin of a name wins and a later one is skipped
with a warning. A module that fails to import is reported with a warning and skipped.

Executors are rebuilt from settings, never from a pickle: :func:`instantiate` calls the
class with the settings its constructor takes (the plugin's defaults, then its config
section, then the attributes an instance carried) and sets the instance's remaining
attributes on the result, so that it equals the instance the user made.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import pkgutil
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from covalent import _config
from covalent._errors import ExecutorError
from covalent.executor import executor_plugins
from covalent.executor.base import BaseExecutor, class_path, plain
from covalent.executor.stand_in import WorkerExecutor

ENTRY_POINT_GROUP = "covalent.executor.executor_plugins"
TASK_POLICY_KEYS = ("retries", "retry_delay", "timeout")
"""Config settings of every executor that the dispatcher applies (never passed to a class)."""
BUILTIN_PREFIX = "builtin_"
"""A built-in replaced by a plugin of the same short name stays reachable as this + name."""
FOLDER_PACKAGE = "covalent_plugin_folder"
"""Plugin folder files are loaded as ``covalent_plugin_folder.<file name>``."""


@dataclass(frozen=True)
class Plugin:
    """One executor plugin: the short name it serves, its class, defaults and source."""

    short_name: str
    cls: type[BaseExecutor]
    defaults: dict[str, Any] = field(default_factory=dict)
    source: str = "built-in"
    replaced: str = ""
    """For a plugin that took a built-in's name: the name the built-in moved to."""

    @property
    def class_path(self) -> str:
        return class_path(self.cls)

    @property
    def runs_in_server(self) -> bool:
        """An execute executor (overrides ``execute``): made and run in the server."""
        return self.cls.execute is not BaseExecutor.execute


def plugin_dir() -> Path:
    env = os.environ.get("COVALENT_EXECUTOR_DIR")
    return Path(env) if env else _config.paths().config_dir / "executor_plugins"


def _from_module(short_name: str, module: ModuleType, source: str) -> Plugin | None:
    class_name = getattr(module, "EXECUTOR_PLUGIN_NAME", None)
    class_name = class_name or getattr(module, "executor_plugin_name", None)
    cls = getattr(module, class_name, None) if isinstance(class_name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, BaseExecutor)):
        warnings.warn(
            f"Executor plugin '{short_name}' ({source}) has no EXECUTOR_PLUGIN_NAME naming a "
            "BaseExecutor subclass; it is skipped.",
            stacklevel=3,
        )
        return None
    defaults = dict(getattr(module, "_EXECUTOR_PLUGIN_DEFAULTS", {}) or {})
    return Plugin(short_name, cls, defaults, source)


def _import_safely(load: Any, short_name: str, source: str) -> Plugin | None:
    try:
        module = load()
    except Exception as e:
        warnings.warn(
            f"Executor plugin '{short_name}' ({source}) failed to import and is skipped: "
            f"{type(e).__name__}: {e}",
            stacklevel=3,
        )
        return None
    return _from_module(short_name, module, source)


def _builtins() -> list[Plugin | None]:
    found = []
    for info in pkgutil.iter_modules(executor_plugins.__path__):
        name = f"{executor_plugins.__name__}.{info.name}"
        found.append(
            _import_safely(lambda n=name: importlib.import_module(n), info.name, "built-in")
        )
    return found


def _load_file(path: Path) -> ModuleType:
    """The module of a plugin file, loaded again only when the file changes (so its
    classes stay the same objects between lookups)."""
    return _load_file_version(path, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _load_file_version(path: Path, _mtime: int) -> ModuleType:
    # Named <package>.<file name>, so that the class's short name is the file's name.
    spec = importlib.util.spec_from_file_location(f"{FOLDER_PACKAGE}.{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _folder() -> list[Plugin | None]:
    folder = plugin_dir()
    if not folder.is_dir():
        return []
    return [
        _import_safely(lambda p=path: _load_file(p), path.stem, str(path))
        for path in sorted(folder.glob("*.py"))
        if not path.name.startswith("_")
    ]


def _entry_points() -> list[Plugin | None]:
    return [
        _import_safely(ep.load, ep.name, f"entry point {ep.value}")
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    ]


def discover() -> dict[str, Plugin]:
    """Every installed executor plugin by short name (replaced built-ins last, under
    ``builtin_<name>``)."""
    plugins = {p.short_name: p for p in _builtins() if p is not None}
    builtin = set(plugins)
    moved: dict[str, Plugin] = {}
    for plugin in [*_folder(), *_entry_points()]:
        if plugin is None:
            continue
        name = plugin.short_name
        if name in builtin and name not in moved:
            moved[name] = dataclasses.replace(plugins[name], short_name=BUILTIN_PREFIX + name)
            plugins[name] = dataclasses.replace(plugin, replaced=BUILTIN_PREFIX + name)
        elif name in plugins:
            warnings.warn(
                f"Executor plugin '{name}' ({plugin.source}) is skipped: '{name}' is "
                f"{plugins[name].class_path} ({plugins[name].source}).",
                stacklevel=2,
            )
        else:
            plugins[name] = plugin
    plugins.update({p.short_name: p for p in moved.values()})
    return plugins


def describe(plugins: dict[str, Plugin]) -> dict[str, str]:
    """Which class serves each short name, and from where, for logs and ``covalent status``."""
    out = {}
    for name, plugin in plugins.items():
        text = f"{plugin.class_path} ({plugin.source})"
        if plugin.replaced:
            text += f", in place of the built-in, now '{plugin.replaced}'"
        out[name] = text
    return out


def resolve(short_name: str, plugins: dict[str, Plugin]) -> Plugin:
    """The plugin called ``short_name``, or an ExecutorError listing the installed ones."""
    try:
        return plugins[short_name]
    except KeyError:
        names = ", ".join(sorted(plugins)) or "none"
        raise ExecutorError(
            f"There is no executor called '{short_name}'; the installed executors are: {names}."
        ) from None


def by_class(path: str, plugins: dict[str, Plugin]) -> Plugin | None:
    """The installed plugin whose class is ``module:qualname``, if any."""
    return next((p for p in plugins.values() if p.class_path == path), None)


def find(spec: Mapping[str, Any], plugins: dict[str, Plugin]) -> Plugin | None:
    """The installed plugin a manifest's executor spec names: by its class if it names
    one, else by short name. None for a class that is not installed (it may have come
    by value); ExecutorError for an unknown short name."""
    path = spec.get("class")
    if isinstance(path, str) and path:
        return by_class(path, plugins)
    return resolve(str(spec.get("name", "")), plugins)


# making executors


def _settings_of(short_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config section ``executors.<short_name>``: (settings, task policy)."""
    section = dict(_config.get_value("executors").get(short_name, {}) or {})
    policy = {k: section.pop(k) for k in TASK_POLICY_KEYS if k in section}
    return section, policy


def task_policy(short_name: str) -> dict[str, Any]:
    """``retries``, ``retry_delay`` and ``timeout`` of config section ``executors.<name>``:
    what the dispatcher applies to that executor's tasks unless an electron says more."""
    return _settings_of(short_name)[1]


@functools.lru_cache(maxsize=256)
def parameters(cls: type) -> frozenset[str]:
    """The keyword arguments ``cls(...)`` takes, following ``**kwargs`` up the bases."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        taken = inspect.signature(init).parameters.values()
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        names.update(p.name for p in taken if p.kind in kinds and p.name != "self")
        if not any(p.kind == inspect.Parameter.VAR_KEYWORD for p in taken):
            break
    return frozenset(names)


def instantiate(
    cls: type[BaseExecutor],
    short_name: str,
    defaults: dict[str, Any],
    attributes: dict[str, Any] | None = None,
) -> BaseExecutor:
    """Make ``cls`` from its settings: the plugin's ``defaults``, then config section
    ``executors.<short_name>``, then the ``attributes`` an instance carried (to_dict),
    passing those its constructor takes and setting the instance's others on it.

    Config keys the class does not take are ignored with a warning naming them.
    ExecutorError (naming the class) if the class cannot be made from them.
    """
    configured, _policy = _settings_of(short_name)
    carried = dict(attributes or {})
    taken = parameters(cls)  # type: ignore[arg-type]
    unknown = sorted(k for k in configured if k not in taken)
    if unknown and cls.__init__ is not object.__init__:
        warnings.warn(
            f"Config section [executors.{short_name}] has settings that "
            f"{cls.__name__} does not take, which are ignored: {', '.join(unknown)}.",
            stacklevel=2,
        )
    merged = {**defaults, **configured, **carried}
    arguments = {k: v for k, v in merged.items() if k in taken}
    executor = _construct(cls, short_name, arguments)
    for name, value in carried.items():  # what __init__ made differently, as the user had it
        if not name.startswith("_") and plain(getattr(executor, name, _MISSING)) != value:
            setattr(executor, name, value)
    return executor


_MISSING = object()


def _construct(cls: type[BaseExecutor], short_name: str, arguments: dict[str, Any]) -> BaseExecutor:
    try:
        return cls(**arguments)
    except ExecutorError:
        raise
    except Exception as e:
        raise ExecutorError(
            f"Executor '{short_name}' ({class_path(cls)}) could not be made from its "
            f"settings: {type(e).__name__}: {e}."
        ) from e


def for_server(spec: Mapping[str, Any], plugins: dict[str, Plugin]) -> BaseExecutor:
    """What the server runs a manifest's executor spec with: the executor itself for an
    installed execute executor, else a :class:`WorkerExecutor` that sends its tasks to
    local worker processes (a run executor, or a class that came by value)."""
    plugin = find(spec, plugins)
    if plugin is None:
        if not spec.get("class_blob"):
            raise ExecutorError(
                f"Executor class {spec.get('class')} (short name '{spec.get('name')}') is "
                "not installed on the server; install its plugin there, or define the "
                "class in your own code so that it travels with the dispatch."
            )
        return WorkerExecutor(dict(spec))
    if plugin.runs_in_server:
        return instantiate(plugin.cls, plugin.short_name, plugin.defaults, spec.get("attributes"))
    return WorkerExecutor({**spec, "name": plugin.short_name, "class": plugin.class_path})


def for_worker(
    spec: dict[str, Any], plugins: dict[str, Plugin], load_class: Callable[[str], Any]
) -> BaseExecutor:
    """The executor a worker runs ``run`` on: the installed class the spec names, else
    the class it carried by value (``load_class(digest)``), rebuilt from its settings."""
    plugin = find(spec, plugins)
    if plugin is not None:
        return instantiate(plugin.cls, plugin.short_name, plugin.defaults, spec.get("attributes"))
    if not spec.get("class_blob"):
        raise ExecutorError(f"Executor class {spec.get('class')} is not installed here.")
    cls = load_class(spec["class_blob"])
    if not (isinstance(cls, type) and issubclass(cls, BaseExecutor)):
        raise ExecutorError(f"The executor class of this task is a {type(cls).__name__}.")
    return instantiate(cls, str(spec.get("name", "")), {}, spec.get("attributes"))


@functools.cache
def builtin_names() -> frozenset[str]:
    """Short names of the built-in plugins, without importing them (read once: they are
    the modules of this package, and every ``ct.dispatch`` asks)."""
    return frozenset(info.name for info in pkgutil.iter_modules(executor_plugins.__path__))


def default_settings(plugins: dict[str, Plugin]) -> dict[str, dict[str, Any]]:
    """Every plugin's ``_EXECUTOR_PLUGIN_DEFAULTS`` by short name: the base of the
    ``executors`` config sections (Covalent merges them into the config)."""
    return {name: dict(p.defaults) for name, p in plugins.items() if p.defaults}
