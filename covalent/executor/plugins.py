"""Finding executor plugins: built-ins, the plugin folder, and entry points.

A plugin is a module whose ``EXECUTOR_PLUGIN_NAME`` names its executor class and whose
optional ``_EXECUTOR_PLUGIN_DEFAULTS`` gives default settings (config section
``executors.<short name>``). The short name is the module's name. Sources, in order
(a later one does not replace an earlier name):

1. modules in ``covalent/executor/executor_plugins/`` (built-ins);
2. ``*.py`` files in the plugin folder (``COVALENT_EXECUTOR_DIR``, else
   ``~/.config/covalent/executor_plugins``);
3. modules registered under the entry-point group ``covalent.executor.executor_plugins``.

A module that fails to import is reported with a warning and skipped.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import os
import pkgutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from covalent import _config
from covalent._errors import ExecutorError
from covalent.executor import executor_plugins
from covalent.executor.base import BaseExecutor

ENTRY_POINT_GROUP = "covalent.executor.executor_plugins"
TASK_POLICY_KEYS = ("retries", "retry_delay", "timeout")
"""Settings every executor takes from its config section, applied by the dispatcher."""


@dataclass
class Plugin:
    short_name: str
    cls: type[BaseExecutor]
    defaults: dict[str, Any] = field(default_factory=dict)
    source: str = "built-in"


def plugin_dir() -> Path:
    env = os.environ.get("COVALENT_EXECUTOR_DIR")
    return Path(env) if env else _config.paths().config_dir / "executor_plugins"


def _from_module(short_name: str, module: ModuleType, source: str) -> Plugin | None:
    class_name = getattr(module, "EXECUTOR_PLUGIN_NAME", None)
    cls = getattr(module, class_name, None) if isinstance(class_name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, BaseExecutor)):
        warnings.warn(
            f"Executor plugin '{short_name}' ({source}) has no EXECUTOR_PLUGIN_NAME naming a "
            "BaseExecutor subclass; it is skipped.",
            stacklevel=3,
        )
        return None
    defaults = dict(getattr(module, "_EXECUTOR_PLUGIN_DEFAULTS", {}) or {})
    cls._plugin_short_name = short_name
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
    spec = importlib.util.spec_from_file_location(f"covalent_executor_plugin_{path.stem}", path)
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
    """Every installed executor plugin by short name."""
    plugins: dict[str, Plugin] = {}
    for plugin in [*_builtins(), *_folder(), *_entry_points()]:
        if plugin is not None and plugin.short_name not in plugins:
            plugins[plugin.short_name] = plugin
    return plugins


def resolve(short_name: str, plugins: dict[str, Plugin]) -> Plugin:
    """The plugin called ``short_name``, or an ExecutorError listing the installed ones."""
    try:
        return plugins[short_name]
    except KeyError:
        names = ", ".join(sorted(plugins)) or "none"
        raise ExecutorError(
            f"There is no executor called '{short_name}'; the installed executors are: {names}."
        ) from None


def create(short_name: str, attributes: dict[str, Any], plugins: dict[str, Plugin]) -> BaseExecutor:
    """An executor instance from its short name and settings, over the config's defaults."""
    plugin = resolve(short_name, plugins)
    configured = _config.load().get("executors", {}).get(short_name, {})
    settings = {**plugin.defaults, **configured, **attributes}
    policy = {k: settings.pop(k) for k in TASK_POLICY_KEYS if k in settings}
    try:
        executor = plugin.cls(**settings)
    except TypeError as e:
        raise ExecutorError(f"Executor '{short_name}' does not accept these settings: {e}.") from e
    executor._task_policy = policy
    return executor


def builtin_names() -> set[str]:
    """Short names of the built-in plugins, without importing them."""
    return {info.name for info in pkgutil.iter_modules(executor_plugins.__path__)}
