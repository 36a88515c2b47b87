"""Electrons on Dask in bulk: their handles (:class:`DaskJob`) and the watcher of their ends.

Why: a Dask client that submits one task per electron and awaits each future sends the
scheduler one ``update-graph`` per electron and fetches each reply in a round trip of its
own, which costs the scheduler and the workers more than the electrons' own work (on a
2-core machine a fan-out of 1,000 took 1.25 times as long as the same functions submitted
straight to the cluster). So :class:`~covalent.executor.executor_plugins.dask.DaskExecutor`
queues the electrons that come together, submits them as one graph (``Client.get``: one
``update-graph``), and learns of their ends through one ``as_completed`` iterator
(:class:`Completions`), whose one coroutine fetches the replies of every electron that
ended meanwhile with one ``Client.gather``.

A job is queued, then submitted (it has a Dask future), then done (it reported its
outcome, once). Cancelling it before it is submitted ends it at once; after, the executor
stops its future first (see the executor's ``_stop``) and only then reports it cancelled.

``distributed`` is not imported here (see the executor module's docstring): the client
and its futures come from the executor.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from covalent._results.status import Status
from covalent.executor.runner import run_packed
from covalent.executor.task import Outcome, Task, load_reply, outcome_from_reply

if TYPE_CHECKING:
    from distributed import Client, Future

Report = Callable[[Outcome], None]

log = logging.getLogger("covalent.executor.dask")

GATHER_INTERVAL = 0.03
"""Seconds at least between the starts of two fetches of replies while more than
``GATHER_BATCHING`` electrons run: each fetch costs the scheduler and every worker
holding a reply a round trip, so the ends of a large group share one. With fewer running
(a chain, the end of a fan-out) each reply is fetched as soon as it is there."""
GATHER_BATCHING = 16


class RunPacked:
    """:func:`~covalent.executor.runner.run_packed` as the function of a Dask task.

    Given a graph of plain tuples, dask tokenizes it, and a plain function by pickling
    it (twice, to check that it is deterministic) for every task; this one names itself.
    (:func:`task_graph` spares the tokenizing altogether where dask allows.) The
    scheduler and the workers unpickle it by reference, so they need covalent (the same
    version) installed."""

    def __call__(self, request: bytes) -> bytes:
        return run_packed(request)

    def __dask_tokenize__(self) -> str:
        return "covalent.executor.runner.run_packed"


RUN_PACKED = RunPacked()


def task_graph(requests: dict[str, bytes]) -> Any:
    """The graph of one ``run_packed`` task per request (by Dask key), for ``Client.get``.

    A plain dict of tuples costs the client ~50 us a task: dask walks and tokenizes the
    whole graph to name it, then the scheduler converts each tuple into a task. Dask's
    own task objects in a graph expression with a name of our choosing (a random one, as
    ``Client.submit`` gives its own) skip both. A dask without them
    (before its graphs became expressions) gets the plain dict."""
    try:  # not at module level: see the module docstring
        from dask._expr import LLGExpr
        from dask._task_spec import Task as DaskTask
    except ImportError:
        return {key: (RUN_PACKED, request) for key, request in requests.items()}
    tasks = {key: DaskTask(key, RUN_PACKED, request) for key, request in requests.items()}
    return LLGExpr(tasks, _determ_token=uuid.uuid4().hex)


def cancelled() -> Outcome:
    now = time.time()
    return Outcome(Status.CANCELLED, error="Cancelled.", start_time=now, end_time=now)


@dataclass(eq=False)
class DaskJob:
    """One electron handed to a DaskExecutor: the dispatcher's handle (``cancel``)."""

    task: Task
    report: Report
    on_cancel: Callable[[DaskJob], None]
    future: Future | None = None
    cancelled: bool = False  # cancel() was called: its end is the cancel's to report
    done: bool = False

    def cancel(self) -> None:
        """Stop it (the executor cancels its Dask future) and report it cancelled."""
        if not self.done and not self.cancelled:
            self.cancelled = True
            self.on_cancel(self)

    def finish(self, outcome: Outcome) -> None:
        """Report ``outcome``, once; the Dask future is let go."""
        if not self.done:
            self.done = True
            self.future = None
            self.report(outcome)


def reply_outcome(reply: Any) -> Outcome:
    """The Outcome of a worker's reply (``run_packed``'s bytes)."""
    try:
        return outcome_from_reply(load_reply(reply))
    except Exception as e:
        return Outcome.failure(f"The Dask worker's reply to this electron is unreadable ({e}).")


def cluster_failure(where: str, error: BaseException | str) -> Outcome:
    """The Outcome of an electron the cluster did not run to the end (a worker died, the
    cluster restarted, the scheduler went away): not the electron's own failure."""
    detail = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return Outcome.failure(
        f"The Dask cluster at {where} did not run this electron to the end ({detail})."
    )


class Completions:
    """The submitted jobs of one executor on one client, and the one coroutine that
    finishes them as their futures end (one ``as_completed`` iterator over all of them).

    Each time it wakes it takes every future that ended meanwhile and fetches the replies
    of the finished ones in one ``Client.gather``; a future that erred (a worker died
    under it too often: ``KilledWorker``) or that the cluster cancelled (a restart) fails
    its electron alone.
    """

    def __init__(self, distributed: ModuleType, client: Client, where: str) -> None:
        self.client = client
        self.where = where
        self.jobs: dict[Any, DaskJob] = {}  # by Dask key
        self._ended = distributed.as_completed(loop=client.loop)
        self._watching: asyncio.Task[None] | None = None
        self._last_gather = 0.0

    def add(self, jobs: list[DaskJob]) -> None:
        """Watch these submitted jobs (each has its future) until they end."""
        futures = []
        for job in jobs:
            assert job.future is not None
            self.jobs[job.future.key] = job
            futures.append(job.future)
        self._ended.update(futures)
        if self._watching is None or self._watching.done():
            self._watching = asyncio.ensure_future(self._watch())

    async def close(self, reason: str) -> None:
        """Stop watching; the jobs still running fail with ``reason``."""
        if self._watching is not None:
            self._watching.cancel()
            await asyncio.wait([self._watching])
        self._ended.clear()
        for job in list(self.jobs.values()):
            job.finish(cluster_failure(self.where, reason))
        self.jobs.clear()

    async def _watch(self) -> None:
        while self.jobs:
            try:
                first = await self._ended.__anext__()
            except StopAsyncIteration:  # nothing left to wait for: jobs it never saw
                for job in list(self.jobs.values()):
                    job.finish(cluster_failure(self.where, "its Dask future was lost"))
                self.jobs.clear()
                return
            wait = self._last_gather + GATHER_INTERVAL - time.monotonic()
            if wait > 0 and len(self.jobs) > GATHER_BATCHING:
                await asyncio.sleep(wait)
            self._last_gather = time.monotonic()
            await self._settle([first, *self._ended.next_batch(block=False)])

    async def _settle(self, ended: list[Future]) -> None:
        finished: list[DaskJob] = []
        for future in ended:
            job = self.jobs.get(future.key)
            if job is None or job.done or job.cancelled:
                self.jobs.pop(future.key, None)
            elif future.status in ("lost", "pending"):  # its worker died with its reply:
                self._ended.add(future)  # Dask runs it again
            else:
                del self.jobs[future.key]
                if future.status == "finished":
                    finished.append(job)
                else:
                    job.finish(await self._failure(future))
        if finished:
            await self._gather(finished)

    async def _failure(self, future: Future) -> Outcome:
        if future.status != "error":  # cancelled by the cluster (a restart)
            return cluster_failure(self.where, f"its Dask future is {future.status}")
        try:
            error = await future.exception()
        except Exception as e:
            error = e
        return cluster_failure(self.where, error)

    async def _gather(self, jobs: list[DaskJob]) -> None:
        """Fetch the replies of ``jobs`` (finished) in one call; finish each."""
        wanted = {job.future.key: job.future for job in jobs if job.future is not None}
        try:
            replies = await self.client.gather(wanted, errors="skip")
        except Exception as e:
            for job in jobs:
                job.finish(cluster_failure(self.where, e))
            return
        for job in jobs:
            if job.cancelled or job.future is None:  # the cancel reports it
                continue
            reply = replies.get(job.future.key)
            if reply is None:
                job.finish(cluster_failure(self.where, "its reply could not be fetched"))
            else:
                job.finish(reply_outcome(reply))
