"""The executor interface: what a plugin implements, and what the dispatcher calls.

Plugin authors subclass :class:`BaseExecutor` (a synchronous ``run``) or
:class:`AsyncBaseExecutor` (an ``async`` ``run``); ``run`` gets the electron's function
and its deserialized arguments. Public attributes set in ``__init__`` are the executor's
settings: they travel as JSON and the server rebuilds the executor from its class with
them (``cls(**attributes)``).

The dispatcher talks to executors through :meth:`BaseExecutor.execute`, which takes a
:class:`Task` (blob digests, never unpickled values: the server does not unpickle user
data) and returns an :class:`Outcome`. Built-in executors implement ``execute``
directly; the default runs ``run`` in a worker process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from covalent.executor._pool import WorkerPool
from covalent.executor.task import Cancellable, Outcome, Task

__all__ = ["AsyncBaseExecutor", "BaseExecutor", "Outcome", "Task"]

Report = Callable[[Outcome], None]

HOST_WORKERS = 8
"""Worker processes that run plugins' ``run`` methods, per executor instance."""


class BaseExecutor:
    """Base class of every executor; subclass it and implement :meth:`run`."""

    _plugin_short_name: str | None = None
    _host_pool: WorkerPool | None = None
    _task_policy: dict[str, Any] = {}  # retries, retry_delay, timeout from the config

    def short_name(self) -> str:
        """The plugin's short name: the name of the module that defines the class."""
        return self._plugin_short_name or type(self).__module__.rsplit(".", 1)[-1]

    def to_dict(self) -> dict[str, Any]:
        """The executor's settings: its public attributes."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def run(
        self,
        function: Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
        task_metadata: dict[str, Any],
    ) -> Any:
        """Run ``function(*args, **kwargs)`` and return its result (plugins implement this)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement run().")

    async def setup(self) -> None:
        """Prepare resources before the first task (optional)."""

    async def teardown(self) -> None:
        """Release resources when the server stops (optional; call super's if overridden)."""
        if self._host_pool is not None:
            pool, self._host_pool = self._host_pool, None
            await asyncio.to_thread(pool.close)

    def reports_start(self) -> bool:
        """Whether this executor calls ``task.on_start`` when a task really starts (a
        worker picked it up); if not, the dispatcher takes the hand-off as the start.
        The default ``execute`` runs tasks on a worker pool, which does."""
        return type(self).execute is BaseExecutor.execute

    async def cancel(self, task: Task) -> bool:
        """Stop a running task; return whether it was stopped (optional)."""
        return False

    async def execute(self, task: Task) -> Outcome:
        """Run one task for the dispatcher.

        The default calls this executor's :meth:`run` in a local worker process, which
        rebuilds the executor from its settings; built-in executors override it.
        """
        return await self._plugin_pool().run(task, {}, plugin=self._plugin_spec())

    def _plugin_spec(self) -> dict[str, Any]:
        """What a worker process rebuilds this executor from."""
        return {"name": self.short_name(), "attributes": self.to_dict()}

    def _plugin_pool(self) -> WorkerPool:
        if self._host_pool is None:
            self._host_pool = WorkerPool(HOST_WORKERS)
        return self._host_pool

    def _start_many(self, tasks: list[tuple[Task, Report]]) -> list[Cancellable] | None:
        """Start tasks without a coroutine each (the dispatcher's fast path): each
        ``(task, report)`` gets ``report(outcome)`` once, on the event loop's thread, when
        it ends; the returned handles' ``cancel()`` stops them. None if this executor runs
        tasks only through :meth:`execute` (as when a subclass overrides it)."""
        if type(self).execute is not BaseExecutor.execute:
            return None
        items: list[tuple[Task, dict[str, Any], Report]] = [(t, {}, r) for t, r in tasks]
        return list(self._plugin_pool().start_many(items, self._plugin_spec()))

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"{type(self).__name__}({settings})"


class AsyncBaseExecutor(BaseExecutor):
    """Base class of executors whose ``run`` is a coroutine."""

    async def run(
        self,
        function: Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
        task_metadata: dict[str, Any],
    ) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement run().")
