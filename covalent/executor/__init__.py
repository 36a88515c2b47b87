"""Executors: where electrons run.

Every executor found (built-ins, the plugin folder, entry points) is available here
by class name, as ``ct.executor.LocalExecutor`` is.
"""

from __future__ import annotations

from typing import Any

from covalent.executor import plugins
from covalent.executor.base import AsyncBaseExecutor, BaseExecutor
from covalent.executor.executor_plugins.local import LocalExecutor

__all__ = ["AsyncBaseExecutor", "BaseExecutor", "LocalExecutor"]


def __getattr__(name: str) -> Any:
    for plugin in plugins.discover().values():
        if plugin.cls.__name__ == name:
            return plugin.cls
    raise AttributeError(f"module 'covalent.executor' has no attribute '{name}'")


def __dir__() -> list[str]:
    """Every executor class found, for tab completion (``ct.executor.<TAB>``)."""
    return sorted({*globals(), *(plugin.cls.__name__ for plugin in plugins.discover().values())})
