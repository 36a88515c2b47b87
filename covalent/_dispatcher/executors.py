"""The server's executor instances, one per (class, settings), made on first use.

A run executor (one that implements ``run``) is served by a
:class:`~covalent.executor.stand_in.WorkerExecutor`: the server never makes it itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from covalent.executor import plugins
from covalent.executor.base import BaseExecutor


def spec_key(spec: Mapping[str, Any]) -> Any:
    """A hashable key for an executor spec, cheap for the common settings."""
    return (
        spec["name"],
        spec.get("class"),
        spec.get("class_blob"),
        _hashable(spec.get("attributes") or {}),
    )


def _hashable(value: Any) -> Any:
    """``value`` as nested frozensets and tuples (settings hold dicts, such as ``env``)."""
    if isinstance(value, dict):
        return frozenset((k, _hashable(v)) for k, v in value.items())
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return json.dumps(value, sort_keys=True, default=repr)
    return value


class ExecutorRegistry:
    def __init__(self) -> None:
        self.plugins = plugins.discover()
        self.instances: dict[Any, BaseExecutor] = {}
        self._policies: dict[int, dict[str, Any]] = {}
        self._setting_up: dict[Any, asyncio.Future[BaseExecutor]] = {}

    async def get(self, spec: Mapping[str, Any]) -> BaseExecutor:
        """The executor for ``{"name": ..., "attributes": {...}}``, set up once; tasks that
        ask while it is being set up wait for that; a failed setup is tried again next
        time. ExecutorError if the plugin is unknown."""
        executor = self.cached(spec)
        if executor is not None:
            return executor
        key = spec_key(spec)
        pending = self._setting_up.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._set_up(spec))
            self._setting_up[key] = pending
            pending.add_done_callback(lambda _: self._setting_up.pop(key, None))
        executor = await asyncio.shield(pending)
        self.instances[key] = executor
        return executor

    def cached(self, spec: Mapping[str, Any]) -> BaseExecutor | None:
        """The executor for ``spec`` if it is already set up (no await on the hot path)."""
        return self.instances.get(spec_key(spec))

    def task_policy(self, executor: BaseExecutor) -> dict[str, Any]:
        """The task policy (retries, retry_delay, timeout) of the config section of an
        executor this registry made; an electron's own settings go over it."""
        return self._policies.get(id(executor), {})

    async def _set_up(self, spec: Mapping[str, Any]) -> BaseExecutor:
        executor = plugins.for_server(spec, self.plugins)
        plugin = plugins.find(spec, self.plugins)
        self._policies[id(executor)] = plugins.task_policy(
            plugin.short_name if plugin is not None else str(spec.get("name", ""))
        )
        await executor.setup()
        return executor

    async def close(self) -> None:
        instances, self.instances = list(self.instances.values()), {}
        for executor in instances:
            await executor.teardown()
