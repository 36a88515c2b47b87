"""``LocalExecutor``: runs electrons in a pool of reused worker processes on this machine."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from covalent.executor import settings as check
from covalent.executor._pool import Job, WorkerPool
from covalent.executor.base import BaseExecutor, Report
from covalent.executor.task import Cancellable, Outcome, Task, workdir_options

EXECUTOR_PLUGIN_NAME = "LocalExecutor"

_EXECUTOR_PLUGIN_DEFAULTS: dict[str, Any] = {
    "workdir": "",
    "create_unique_workdir": False,
    "log_stdout": "",
    "log_stderr": "",
    "workers": 0,
    "memory_limit": 0,
}


def default_workers() -> int:
    """The larger of 8 and the CPU count, so electrons that wait or sleep overlap."""
    return max(8, os.cpu_count() or 1)


class LocalExecutor(BaseExecutor):
    """Run each electron in a worker process of a local pool.

    Args:
        workdir: folder the electron runs in (default: the server's working directory).
        create_unique_workdir: run in ``workdir/<dispatch_id>/node_<id>`` instead.
        log_stdout: file to append each electron's stdout to, besides storing it.
        log_stderr: file to append each electron's stderr to, besides storing it.
        workers: the most worker processes at once (0: the larger of 8 and the CPU count).
        env: environment variables set while the electron runs.
        memory_limit: (ours) bytes of memory each worker process may use (0: no limit);
            an electron that needs more fails with a MemoryError.
        cache_dir, time_limit, retries: the original's, accepted and kept (see
            :class:`~covalent.executor.base.BaseExecutor`).

    Every setting is checked here: a wrong one raises ExecutorSettingError (a
    ValueError) naming it, its value and what is expected.
    """

    def __init__(
        self,
        workdir: str = "",
        create_unique_workdir: bool = False,
        log_stdout: str = "",
        log_stderr: str = "",
        workers: int = 0,
        env: dict[str, str] | None = None,
        memory_limit: int = 0,
        cache_dir: str = "",
        time_limit: float = -1,
        retries: int = 0,
    ) -> None:
        super().__init__(log_stdout, log_stderr, cache_dir, time_limit, retries)
        owner = type(self).__name__
        self.workdir = check.path(owner, "workdir", workdir)
        self.create_unique_workdir = check.flag(
            owner, "create_unique_workdir", create_unique_workdir
        )
        self.workers = check.integer(owner, "workers", workers)
        self.env = check.environment(owner, "env", env)
        self.memory_limit = check.integer(owner, "memory_limit", memory_limit)
        self._pool: WorkerPool | None = None
        self._options: dict[str, dict[str, Any]] = {}  # by results folder

    def task_options(self, task: Task) -> dict[str, Any]:
        """The runner options of ``task``; the same dict for the tasks of one dispatch
        unless each gets its own working directory (it is only read)."""
        if not self.create_unique_workdir:
            options = self._options.get(task.results_dir)
            if options is None:
                options = self._options[task.results_dir] = self._task_options(task)
                if len(self._options) > 64:  # the dispatches of long ago
                    del self._options[next(iter(self._options))]
            return options
        return self._task_options(task)

    def _task_options(self, task: Task) -> dict[str, Any]:
        return workdir_options(
            task,
            self.workdir,
            self.create_unique_workdir,
            self.log_stdout,
            self.log_stderr,
            self.env,
        )

    @property
    def pool(self) -> WorkerPool:
        if self._pool is None:
            workers = self.workers or default_workers()
            self._pool = WorkerPool(workers, memory_limit=self.memory_limit)
        return self._pool

    def reports_start(self) -> bool:
        return True  # the pool's workers say when each task starts

    async def execute(self, task: Task) -> Outcome:
        return await self.pool.run(task, self.task_options(task))

    def start_many(self, tasks: list[tuple[Task, Report]]) -> list[Cancellable] | None:
        if type(self).execute is not LocalExecutor.execute:
            return None
        return list(self.pool.start_many([(t, self.task_options(t), r) for t, r in tasks]))

    def chains(self) -> bool:
        """Whether :meth:`start_after` can send a chain's next step (not when a subclass
        runs tasks its own way)."""
        return type(self).execute is LocalExecutor.execute

    def start_after(self, before: Cancellable, task: Task, report: Report) -> Cancellable | None:
        """A chain's next step (``task.after`` is ``before``'s node) sent to the worker
        process running ``before`` (a handle of this executor's), which takes its input
        from memory (:meth:`WorkerPool.follow`). None if it cannot be sent there now."""
        if not self.chains() or self._pool is None:
            return None
        if not isinstance(before, Job) or before.pool is not self._pool:
            return None
        return self._pool.follow(before, task, self.task_options(task), report)

    async def teardown(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.close)
        await super().teardown()
