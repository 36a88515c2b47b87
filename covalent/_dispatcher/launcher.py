"""Handing nodes to executors, and their outcomes back to the loop's queue.

Tasks with no timeout or retries, on an executor already set up that takes them so,
start at once, many per call (the executor's fast path, ``start_many``), and report
straight to the queue: no coroutine or future per task. Every other task gets a
supervising coroutine (:meth:`Launcher._supervise`) that sets the executor up if needed,
applies the timeout, retries failed attempts, and on cancellation calls the executor's
``cancel`` hook.

The launcher keeps each running task's handle (an asyncio task or a pool's job), so
that the loop can stop a node by its id; the run itself only knows which nodes run.

Cancel sequence (docs/executors.md): the handle is cancelled; a pool job is dropped if
queued or its worker process killed if running; a supervised task's coroutine gets
CancelledError, awaits ``executor.cancel(task)`` (at most 30 s) and reports CANCELLED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from covalent._dispatcher.events import (
    AttemptFailed,
    Event,
    TaskFinished,
    TaskOutput,
    TaskStarted,
)
from covalent._dispatcher.executors import ExecutorRegistry
from covalent._dispatcher.run import Run
from covalent._errors import CovalentError
from covalent._results.status import Status
from covalent._store.store import Store
from covalent.executor.base import BaseExecutor, Outcome, Task
from covalent.executor.task import Cancellable

log = logging.getLogger("covalent.dispatcher")

CANCEL_HOOK_TIMEOUT = 30.0
"""Seconds an executor's ``cancel`` hook may take before the node is reported anyway."""


def policy(executor_policy: dict[str, Any], task: Task) -> dict[str, Any]:
    """A task's timeout, retries and retry delay: its electron's, over its executor's
    config section's (``ExecutorRegistry.task_policy``)."""
    return {**executor_policy, **task.metadata}


def supervised(task_policy: dict[str, Any]) -> bool:
    """Whether a task needs a coroutine watching it: a timeout, or retries."""
    return bool(task_policy.get("timeout") or task_policy.get("retries"))


class Launcher:
    """Starts nodes on their executors and stops them on request."""

    def __init__(
        self, store: Store, executors: ExecutorRegistry, report: Callable[[Event], None]
    ) -> None:
        self.store = store
        self.executors = executors
        self.report = report
        self.handles: dict[tuple[str, int], Cancellable] = {}
        self._blobs_dir = str(store.blobs_dir)

    def chains(self, spec: Mapping[str, Any]) -> bool | None:
        """Whether nodes of executor ``spec`` may be chained (:meth:`Run.chains`): it
        takes a chain's next step to the worker of the step before (``chains()`` and
        ``start_after``: the local executor), and its config sets no timeout or
        retries. None while the executor is not set up (it may, once it is)."""
        executor = self.executors.cached(spec)
        if executor is None:
            return None
        chains = getattr(executor, "chains", None)
        return (
            chains is not None and chains() and not supervised(self.executors.task_policy(executor))
        )

    def start(self, run: Run, node_ids: list[int]) -> None:
        """Hand ``node_ids`` of ``run`` (queued) to their executors; a chained one (in
        ``run.chained``) to the worker of the node before it, once that one is started."""
        fast: dict[int, tuple[BaseExecutor, list[tuple[int, Task]]]] = {}
        found: dict[int, tuple[BaseExecutor | None, dict[str, Any]]] = {}  # by spec object
        last: tuple[Any, tuple[BaseExecutor | None, dict[str, Any]] | None] = (None, None)
        chained: list[tuple[int, int]] = []
        for node_id in node_ids:
            before = run.chained.get(node_id)
            if before is not None and run.waiting[node_id]:  # (else its input is in)
                chained.append((node_id, before))
                continue
            task = self.task(run, node_id)
            spec = run.node(node_id)["executor"]
            # The nodes of a fan-out often share one spec object, or (parsed from a small
            # manifest) sit side by side with equal ones: look the executor up once.
            known = found.get(id(spec))
            if known is None:
                if last[1] is not None and spec == last[0]:
                    known = last[1]
                else:
                    executor = self.executors.cached(spec)
                    policy_ = self.executors.task_policy(executor) if executor is not None else {}
                    known = (executor, policy_)
                found[id(spec)] = known
                last = (spec, known)
            executor, defaults = known
            if executor is not None and not supervised(policy(defaults, task)):
                fast.setdefault(id(executor), (executor, []))[1].append((node_id, task))
            else:
                self._supervise_soon(run, node_id, task)
        for executor, group in fast.values():
            self._start_fast(run, executor, group)
            if not executor.reports_start():
                self._started_now(run.dispatch_id, [node_id for node_id, _ in group])
        for node_id, before in chained:
            self._start_after(run, node_id, before)

    def _start_after(self, run: Run, node_id: int, before: int) -> None:
        """Send a chained node to the worker running ``before``, whose output it takes;
        if that cannot be done now, it is reported NOT_RUN at once, and the run starts
        it as any other node when ``before`` completes."""
        task = self.task(run, node_id)
        task.after = before
        executor = self.executors.cached(run.node(node_id)["executor"])
        start_after = getattr(executor, "start_after", None)
        previous = self.handles.get((run.dispatch_id, before))
        handle = None
        if start_after is not None and previous is not None:
            try:
                handle = start_after(previous, task, self._reporter(run, node_id))
            except Exception:
                log.exception("chaining a task on %s failed", type(executor).__name__)
        if handle is None:
            outcome = Outcome(Status.NOT_RUN, error="Not chained: it waits for its input.")
            self.report(TaskFinished(run.dispatch_id, node_id, outcome))
            return
        self.handles[(run.dispatch_id, node_id)] = handle

    def _started_now(self, dispatch_id: str, node_ids: list[int]) -> None:
        """For an executor that does not say when a task starts, the hand-off is the
        start (as far as anyone here can tell)."""
        now = time.time()
        for node_id in node_ids:
            self.report(TaskStarted(dispatch_id, node_id, now))

    def _start_fast(self, run: Run, executor: BaseExecutor, group: list[tuple[int, Task]]) -> None:
        try:
            handles = executor.start_many([(t, self._reporter(run, n)) for n, t in group])
        except Exception:
            handles = None
            log.exception("starting tasks on %s failed", type(executor).__name__)
        if handles is None:
            for node_id, task in group:
                self._supervise_soon(run, node_id, task)
            return
        for (node_id, _task), handle in zip(group, handles, strict=True):
            self.handles[(run.dispatch_id, node_id)] = handle

    def _supervise_soon(self, run: Run, node_id: int, task: Task) -> None:
        spec = run.node(node_id)["executor"]
        coroutine = self._supervise(run.dispatch_id, node_id, spec, task)
        self.handles[(run.dispatch_id, node_id)] = asyncio.create_task(coroutine)

    def stop(self, dispatch_id: str, node_id: int) -> None:
        """Cancel a running node's task; its outcome (CANCELLED) comes back as usual."""
        handle = self.handles.get((dispatch_id, node_id))
        if handle is not None:
            handle.cancel()

    def forget(self, dispatch_id: str, node_id: int) -> None:
        """The node's outcome arrived: its handle is no longer needed."""
        self.handles.pop((dispatch_id, node_id), None)

    def stop_all(self) -> None:
        for handle in list(self.handles.values()):
            handle.cancel()

    def _reporter(self, run: Run, node_id: int) -> Callable[[Outcome], None]:
        dispatch_id, put = run.dispatch_id, self.report

        def report(outcome: Outcome) -> None:
            put(TaskFinished(dispatch_id, node_id, outcome))

        return report

    def task(self, run: Run, node_id: int) -> Task:
        """The Task an executor gets for a node: its function and inputs as digests."""
        node = run.node(node_id)
        args, kwargs = run.arguments(node_id)
        dispatch_id, report = run.dispatch_id, self.report

        def on_start(at: float) -> None:
            report(TaskStarted(dispatch_id, node_id, at))

        def on_output(stream: str, text: str) -> None:
            report(TaskOutput(dispatch_id, node_id, stream, text))

        return Task(
            dispatch_id=run.dispatch_id,
            node_id=node_id,
            name=node["name"],
            function=node["function"],
            args=args,
            kwargs=kwargs,
            load_blob=self.load_blob,
            blob_file=self.store.blob_file,
            cached_blob=self.store.cache.get,
            blobs_dir=self._blobs_dir,
            results_dir=run.results_dir,
            metadata={**node.get("metadata", {}), "sublattice": node["kind"] == "sublattice"},
            on_start=on_start,
            on_output=on_output,
            composites=_assembled(run, args, kwargs),
        )

    def load_blob(self, name: str) -> bytes:
        data = self.store.read_blob(name)
        if data is None:
            raise CovalentError(f"Blob {name} is missing from the store.")
        return data

    async def _supervise(
        self, dispatch_id: str, node_id: int, spec: Mapping[str, Any], task: Task
    ) -> None:
        """Run one node on its executor, with its retries and timeout; report the outcome."""
        attempt = 1
        executor: BaseExecutor | None = None
        try:
            executor = self.executors.cached(spec) or await self.executors.get(spec)
            if not executor.reports_start():
                self.report(TaskStarted(dispatch_id, node_id, time.time()))
            task_policy = policy(self.executors.task_policy(executor), task)
            if task_policy.get("timeout"):  # the executor sees it too (a config's default)
                task.metadata = {**task.metadata, "timeout": task_policy["timeout"]}
            while True:
                outcome = await _attempt(executor, task, task_policy.get("timeout"))
                if outcome.status != Status.FAILED or attempt > int(
                    task_policy.get("retries") or 0
                ):
                    break
                self.report(AttemptFailed(dispatch_id, node_id, attempt, outcome))
                await asyncio.sleep(float(task_policy.get("retry_delay") or 0))
                attempt += 1
        except asyncio.CancelledError:
            outcome = Outcome(Status.CANCELLED, error="Cancelled while running.")
            if executor is not None:
                await _tell_cancel(executor, task)
        except CovalentError as e:
            outcome = Outcome.failure(str(e))
        except Exception:
            outcome = Outcome.failure(
                f"The executor {spec['name']!r} failed:\n{traceback.format_exc()}"
            )
        self.report(TaskFinished(dispatch_id, node_id, outcome))


async def _tell_cancel(executor: BaseExecutor, task: Task) -> None:
    """Let the executor know too (its ``cancel`` hook); its execute was cancelled."""
    try:
        await asyncio.wait_for(executor.cancel(task), CANCEL_HOOK_TIMEOUT)
    except Exception:
        log.exception("cancel hook of %s failed", type(executor).__name__)


async def _attempt(executor: BaseExecutor, task: Task, timeout: float | None) -> Outcome:
    """One attempt of a task. Its ``timeout`` counts from when it starts running (as its
    executor reports it; from the hand-off for one that cannot tell), not from when it
    was queued: a task waiting for a free worker is not late."""
    if not timeout:
        return await executor.execute(task)
    running = asyncio.ensure_future(executor.execute(task))
    try:
        if executor.reports_start():
            await _started_or_done(task, running)
        started = time.time()
        done, _ = await asyncio.wait({running}, timeout=float(timeout))
        if running in done:
            return running.result()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await running
    except asyncio.CancelledError:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await running
        raise
    return Outcome.failure(
        f"Electron {task.name}({task.node_id}) timed out: it ran longer than its "
        f"timeout of {float(timeout):g} s and was stopped.",
        start_time=started,
        timed_out=True,
    )


async def _started_or_done(task: Task, running: asyncio.Future[Outcome]) -> None:
    """Wait until ``task`` reports its start (``on_start``) or ends."""
    started = asyncio.Event()
    report = task.on_start

    def on_start(at: float) -> None:
        started.set()
        if report is not None:
            report(at)

    task.on_start = on_start
    waiting: asyncio.Future[Any] = asyncio.ensure_future(started.wait())
    pending: set[asyncio.Future[Any]] = {running, waiting}
    try:
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        task.on_start = report


def _assembled(run: Run, args: list[str], kwargs: dict[str, str]) -> dict[str, list[str]]:
    """The items of the large collections among a task's inputs that ``run`` assembled."""
    kept = run.assembled
    if not kept:
        return {}
    return {name: kept[name] for name in (*args, *kwargs.values()) if name in kept}
