"""The executor interface: what a plugin implements, and what the dispatcher calls.

Two kinds of executor share this base (docs/executors.md is the full contract):

- **run executors** implement ``run(function, args, kwargs, task_metadata)``, as
  Covalent's plugins do (subclass :class:`BaseExecutor` for a synchronous ``run``,
  :class:`AsyncBaseExecutor` for a coroutine). They never run in the server process:
  each task goes to a local worker process, which rebuilds the executor from its
  settings and calls ``setup(task_metadata)``, ``run`` and ``teardown(task_metadata)``
  on that one instance. ``function`` is the electron wrapped with everything it needs
  on a far side (see :mod:`covalent.executor.wrapper`).
- **execute executors** override ``execute(task) -> Outcome`` and run in the server,
  as the built-ins do: the server makes one instance per settings, awaits ``setup()``
  once, calls ``execute`` for each task (or :meth:`BaseExecutor.start_many`, the fast
  path), ``cancel(task)`` after a cancelled ``execute``, and ``teardown()`` at stop.

An executor's settings are its public attributes; they travel as JSON
(:meth:`BaseExecutor.to_dict`) and the executor is rebuilt from them, never from a
pickle (:func:`covalent.executor.plugins.instantiate`). The constructor takes the
original's common arguments (``log_stdout``, ``log_stderr``, ``cache_dir``,
``time_limit``, ``retries``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from covalent._wire import blobs
from covalent._workflow.context import TaskContext, reset_context, set_context
from covalent.executor import settings as check
from covalent.executor._pool import WorkerPool
from covalent.executor.task import Cancellable, Outcome, Task
from covalent.executor.wrapper import wrapper_fn

__all__ = ["AsyncBaseExecutor", "BaseExecutor", "Outcome", "Task", "wrapper_fn"]

Report = Callable[[Outcome], None]

HOST_WORKERS = 8
"""Worker processes that run a run executor's tasks, per executor instance."""


def class_path(cls: type) -> str:
    """``module:qualname``: how a manifest names an executor class."""
    return f"{cls.__module__}:{cls.__qualname__}"


def plain(value: Any) -> Any:
    """``value`` as JSON would carry it: paths as strings, tuples as lists."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


class BaseExecutor:
    """Base class of every executor; subclass it and implement :meth:`run`.

    Args (the original's, common to every executor):
        log_stdout: file to append each electron's stdout to (a relative path lands in
            the dispatch's results folder).
        log_stderr: the same for stderr.
        cache_dir: a folder the executor may keep temporary files in.
        time_limit: kept for plugins that read it; the dispatcher's timeout is the
            electron's ``timeout=`` or the config's ``executors.<name>.timeout``.
        retries: kept for plugins that read it; the dispatcher's retries are the
            electron's ``retries=`` or the config's ``executors.<name>.retries``.
    """

    def __init__(
        self,
        log_stdout: str = "",
        log_stderr: str = "",
        cache_dir: str = "",
        time_limit: float = -1,
        retries: int = 0,
    ) -> None:
        owner = type(self).__name__
        self.log_stdout = check.path(owner, "log_stdout", log_stdout)
        self.log_stderr = check.path(owner, "log_stderr", log_stderr)
        self.cache_dir = check.path(owner, "cache_dir", cache_dir)
        self.time_limit = check.number(owner, "time_limit", time_limit, minimum=None)
        self.retries = check.integer(owner, "retries", retries)

    # what an executor is

    def short_name(self) -> str:
        """The plugin's short name: the last part of the defining module's name."""
        return type(self).__module__.rsplit(".", 1)[-1]

    def to_dict(self) -> dict[str, Any]:
        """``{"type", "short_name", "attributes"}``: the class and its settings (its public
        attributes, as JSON carries them), from which the executor is rebuilt."""
        attributes = {k: plain(v) for k, v in vars(self).items() if not k.startswith("_")}
        return {"type": str(type(self)), "short_name": self.short_name(), "attributes": attributes}

    def from_dict(self, object_dict: dict[str, Any]) -> BaseExecutor:
        """Set the settings ``object_dict["attributes"]`` (a :meth:`to_dict`) on this
        executor; return it."""
        for name, value in (object_dict or {}).get("attributes", {}).items():
            setattr(self, name, value)
        return self

    # a run executor's side (Covalent's plugin interface)

    def run(
        self,
        function: Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
        task_metadata: dict[str, Any],
    ) -> Any:
        """Run ``function(*args, **kwargs)`` and return its result (plugins implement this).

        ``task_metadata`` has ``dispatch_id``, ``node_id`` and ``results_dir`` (the root
        results folder; the dispatch's own is ``results_dir/dispatch_id``).
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement run().")

    @property
    def task_stdout(self) -> TextIO:
        """Where a run executor prints the electron's stdout (captured into the node's)."""
        return sys.stdout

    @property
    def task_stderr(self) -> TextIO:
        """Where a run executor prints the electron's stderr (captured into the node's)."""
        return sys.stderr

    async def set_job_handle(self, handle: Any) -> None:
        """Record the far side's id of the running task (kept for messages)."""
        self._job_handle = handle

    async def get_cancel_requested(self) -> bool:
        """Whether the task was cancelled: always False here, because cancelling a run
        executor's task ends the worker process that runs it (docs/executors.md)."""
        return False

    @contextlib.contextmanager
    def get_dispatch_context(self, dispatch_info: Any) -> Iterator[Any]:
        """Within the block, ``ct.get_context()`` names ``dispatch_info``'s dispatch (an
        object or dict with ``dispatch_id``, optionally ``node_id``)."""
        read = dispatch_info.get if isinstance(dispatch_info, dict) else None
        dispatch_id = read("dispatch_id") if read else getattr(dispatch_info, "dispatch_id", None)
        node_id = read("node_id") if read else getattr(dispatch_info, "node_id", None)
        token = set_context(TaskContext(dispatch_id=dispatch_id, node_id=node_id))
        try:
            yield dispatch_info
        finally:
            reset_context(token)

    def write_streams_to_file(
        self,
        stream_strings: list[str],
        filepaths: list[str],
        dispatch_id: str,
        results_dir: str,
    ) -> None:
        """Append each string to its file; a relative path is taken from the dispatch's
        results folder (``results_dir/dispatch_id``); an empty path is skipped."""
        for text, filepath in zip(stream_strings, filepaths, strict=False):
            if not filepath or not text:
                continue
            target = Path(os.path.expanduser(filepath))
            if not target.is_absolute():
                target = Path(results_dir) / dispatch_id / target
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "a") as f:
                f.write(text)

    # an execute executor's side (what the dispatcher calls in the server)

    async def setup(self) -> None:
        """An execute executor's preparation, once, when the server makes it (optional).

        A run executor may instead define ``setup(self, task_metadata)``: it is called
        in the worker before each ``run``."""

    async def teardown(self) -> None:
        """An execute executor's release of resources when the server stops (optional;
        call ``super().teardown()`` if overridden).

        A run executor may instead define ``teardown(self, task_metadata)``: it is
        called in the worker after each ``run``."""
        pool: WorkerPool | None = getattr(self, "_host_pool", None)
        if pool is not None:
            self._host_pool: WorkerPool | None = None
            await asyncio.to_thread(pool.close)

    def reports_start(self) -> bool:
        """Whether this executor calls ``task.on_start`` when a task really starts (a
        worker picked it up); if not, the dispatcher takes the hand-off as the start.
        The default ``execute`` runs tasks on a worker pool, which does."""
        return type(self).execute is BaseExecutor.execute

    async def cancel(self, task: Task) -> bool:
        """An execute executor's hook after ``ct.cancel`` cancelled its ``execute(task)``:
        stop what it started elsewhere; return whether it did (optional)."""
        return False

    async def execute(self, task: Task) -> Outcome:
        """Run one task: by default, this executor's :meth:`run` in a local worker
        process, which rebuilds the executor from its settings."""
        return await self._worker_pool().run(task, {}, plugin=self.worker_plugin())

    def start_many(self, tasks: list[tuple[Task, Report]]) -> list[Cancellable] | None:
        """The fast path: start tasks without a coroutine each. Each ``(task, report)``
        gets ``report(outcome)`` once, on the event loop's thread, when it ends; the
        returned handles' ``cancel()`` stop them. None if this executor only runs tasks
        through :meth:`execute` (as when a subclass overrides it and not this)."""
        if type(self).execute is not BaseExecutor.execute:
            return None
        plugin = self.worker_plugin()
        items: list[tuple[Task, dict[str, Any], Report]] = [(t, {}, r) for t, r in tasks]
        return list(self._worker_pool().start_many(items, plugin))

    def worker_plugin(self) -> dict[str, Any]:
        """What a worker process rebuilds this executor from: ``name``, ``class``,
        ``attributes``, and the class pickled by value (``class_blob``, with its bytes
        under ``blobs``) for a class the worker cannot find installed."""
        found = getattr(self, "_class_blob", None)
        if found is None:
            data = blobs.dumps(type(self))
            found = self._class_blob = (blobs.digest(data), data)
        return {
            "name": self.short_name(),
            "class": class_path(type(self)),
            "attributes": self.to_dict()["attributes"],
            "class_blob": found[0],
            "blobs": {found[0]: found[1]},
        }

    def _worker_pool(self) -> WorkerPool:
        pool: WorkerPool | None = getattr(self, "_host_pool", None)
        if pool is None:
            pool = WorkerPool(HOST_WORKERS)
            self._host_pool = pool
        return pool

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.to_dict()["attributes"].items())
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
