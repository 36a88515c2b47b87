"""Executors: where electrons run.

Every executor found (built-ins, the plugin folder, entry points) is available here
by class name, as ``ct.executor.LocalExecutor`` is; ``dir(ct.executor)`` lists them.
A plugin that took a built-in's short name gives its class here; the built-in stays
importable from ``covalent.executor.executor_plugins``.
"""

from __future__ import annotations

from typing import Any

from covalent.executor import plugins
from covalent.executor.base import AsyncBaseExecutor, BaseExecutor
from covalent.executor.executor_plugins.local import LocalExecutor

__all__ = ["AsyncBaseExecutor", "BaseExecutor", "LocalExecutor"]


def __getattr__(name: str) -> Any:
    # Only class names: the import system asks for submodules (``executor_plugins``)
    # while this package is still being imported, and discovery must not run then.
    if name[:1].isupper():
        for plugin in plugins.discover().values():
            if plugin.cls.__name__ == name:
                return plugin.cls
    raise AttributeError(f"module 'covalent.executor' has no attribute '{name}'")


def __dir__() -> list[str]:
    """Every executor class found, for tab completion (``ct.executor.<TAB>``)."""
    return sorted({*globals(), *(plugin.cls.__name__ for plugin in plugins.discover().values())})
