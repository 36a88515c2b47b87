"""The server's executor instances, one per (plugin, settings), made on first use."""

from __future__ import annotations

import json
from typing import Any

from covalent.executor import plugins
from covalent.executor.base import BaseExecutor


def spec_key(spec: dict[str, Any]) -> Any:
    """A hashable key for an executor spec, cheap for the common flat settings."""
    attributes = spec.get("attributes") or {}
    try:
        return (spec["name"], frozenset(attributes.items()))
    except TypeError:  # a setting holds a list or dict
        return (spec["name"], json.dumps(attributes, sort_keys=True))


class ExecutorRegistry:
    def __init__(self) -> None:
        self.plugins = plugins.discover()
        self.instances: dict[Any, BaseExecutor] = {}

    async def get(self, spec: dict[str, Any]) -> BaseExecutor:
        """The executor for ``{"name": ..., "attributes": {...}}``; ExecutorError if unknown."""
        key = spec_key(spec)
        executor = self.instances.get(key)
        if executor is None:
            executor = plugins.create(spec["name"], spec.get("attributes", {}), self.plugins)
            self.instances[key] = executor
            await executor.setup()
        return executor

    async def close(self) -> None:
        instances, self.instances = list(self.instances.values()), {}
        for executor in instances:
            await executor.teardown()
