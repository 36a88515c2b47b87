"""Electrons on Dask in bulk: their handles (:class:`DaskJob`) and the watcher of their ends.

Why: a Dask client that submits one task per electron and awaits each future sends the
scheduler one ``update-graph`` per electron and fetches each reply in a round trip of its
own, which costs the scheduler and the workers more than the electrons' own work (on a
2-core machine a fan-out of 1,000 took 1.25 times as long as the same functions submitted
straight to the cluster). So :class:`~covalent.executor.executor_plugins.dask.DaskExecutor`
queues the electrons that come together, submits them as one graph (``Client.get``: one
``update-graph``), and learns of their ends through one ``as_completed`` iterator
(:class:`Completions`), whose one coroutine fetches the replies of every electron that
ended meanwhile with one ``Client.gather``. Even so each Dask task costs the scheduler
a round trip with its worker (about 1.7 ms on a 2-core machine, many times a brief
electron), so the dispatcher's fast path puts the electrons the cluster could not start
at once anyway several to a task (a pack, :class:`RunPack`, as the Ray executor does); a
pack that runs long, is cancelled in part or dies hands its other electrons back, to run
one task each (and a cancelled pack, whose thread Dask cannot stop, starts none of them
itself once its worker knows).

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
from dataclasses import dataclass, replace
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
PACK_MAX = 32
"""Electrons one Dask task runs at most, one after the other (a pack)."""
PACK_SECONDS = 0.1
"""Seconds after its first electron after which a pack starts no further one."""


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


class RunPack(RunPacked):
    """Several requests as one Dask task (a pack), run one after the other; their replies
    in order: all of them, or fewer once ``PACK_SECONDS`` have passed since the first
    ended or once the pack's Dask task was cancelled (the executor submits the rest one
    task each, so a cancelled pack that went on would run them twice)."""

    def __call__(self, requests: list[bytes]) -> list[bytes]:  # type: ignore[override]
        replies = [run_packed(requests[0])]
        start = time.monotonic()
        for request in requests[1:]:
            if time.monotonic() - start >= PACK_SECONDS or _this_task_cancelled():
                break
            replies.append(run_packed(request))
        return replies

    def __dask_tokenize__(self) -> str:
        return "covalent.executor._dask_jobs.RunPack"


RUN_PACK = RunPack()


def _this_task_cancelled() -> bool:
    """On a Dask worker, in a task's thread: whether the scheduler has let go of this
    task (cancelled; Dask cannot stop a running thread, so the worker keeps it as
    ``cancelled`` until it returns). False anywhere else."""
    try:  # not at module level: see the module docstring
        from distributed import get_worker

        worker = get_worker()
        task = worker.state.tasks.get(worker.get_current_task())
    except Exception:  # not in a Dask task
        return False
    return task is not None and task.state == "cancelled"


def pack_size(ready: int, at_once: int) -> int:
    """Electrons per Dask task when ``ready`` come together and the cluster runs
    ``at_once`` tasks at a time: only what the other threads could not take anyway (the
    Ray executor's rule), at most ``PACK_MAX``."""
    return 1 + min(PACK_MAX - 1, (ready - 1) // max(at_once, 1))


def task_graph(requests: dict[str, bytes | list[bytes]]) -> Any:
    """The graph of one ``run_packed`` task per request (by Dask key), or one ``RunPack``
    task per list of requests, for ``Client.get``.

    A plain dict of tuples costs the client ~50 us a task: dask walks and tokenizes the
    whole graph to name it, then the scheduler converts each tuple into a task. Dask's
    own task objects in a graph expression with a name of our choosing (a random one, as
    ``Client.submit`` gives its own) skip both. A dask without them
    (before its graphs became expressions) gets the plain dict."""
    calls = {
        key: (RUN_PACKED, request) if isinstance(request, bytes) else (RUN_PACK, request)
        for key, request in requests.items()
    }
    try:  # not at module level: see the module docstring
        from dask._expr import LLGExpr
        from dask._task_spec import Task as DaskTask
    except ImportError:
        return calls
    tasks = {key: DaskTask(key, *call) for key, call in calls.items()}
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
    future: Future | None = None  # its own Dask task's, or its pack's
    packable: bool = False  # may share a Dask task with others (the dispatcher's fast path)
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
    its electron alone. A pack's future that erred, or whose pack stopped early, has
    the electrons it did not answer for submitted again one Dask task each (``resubmit``),
    so that only the electron that killed its worker fails; a pack the cluster cancelled
    fails its electrons, as it fails a single one.
    """

    def __init__(
        self,
        distributed: ModuleType,
        client: Client,
        where: str,
        resubmit: Callable[[list[DaskJob]], None],
    ) -> None:
        self.client = client
        self.where = where
        self.resubmit = resubmit
        self.jobs: dict[Any, list[DaskJob]] = {}  # by Dask key: one job, or a pack's
        self._ended = distributed.as_completed(loop=client.loop)
        self._watching: asyncio.Task[None] | None = None
        self._last_gather = 0.0

    def add(self, units: list[list[DaskJob]]) -> None:
        """Watch these submitted jobs (each unit, one job or a pack, shares its future)
        until they end."""
        futures = []
        for unit in units:
            future = unit[0].future
            assert future is not None
            self.jobs[future.key] = unit
            futures.append(future)
        self._ended.update(futures)
        if self._watching is None or self._watching.done():
            self._watching = asyncio.ensure_future(self._watch())

    def unpack(self, job: DaskJob) -> list[DaskJob]:
        """Stop watching ``job``'s pack: the pack's other jobs not ended yet, for the
        caller to submit again; [] if ``job`` is not in a pack."""
        if job.future is None or len(self.jobs.get(job.future.key, ())) < 2:
            return []
        unit = self.jobs.pop(job.future.key)
        return [other for other in unit if other is not job and _open(other)]

    async def close(self, reason: str) -> None:
        """Stop watching; the jobs still running fail with ``reason``."""
        if self._watching is not None:
            self._watching.cancel()
            await asyncio.wait([self._watching])
        self._ended.clear()
        for unit in list(self.jobs.values()):
            for job in unit:
                job.finish(cluster_failure(self.where, reason))
        self.jobs.clear()

    async def _watch(self) -> None:
        while self.jobs:
            try:
                first = await self._ended.__anext__()
            except StopAsyncIteration:  # nothing left to wait for: jobs it never saw
                for unit in list(self.jobs.values()):
                    for job in unit:
                        job.finish(cluster_failure(self.where, "its Dask future was lost"))
                self.jobs.clear()
                return
            wait = self._last_gather + GATHER_INTERVAL - time.monotonic()
            if wait > 0 and len(self.jobs) > GATHER_BATCHING:
                await asyncio.sleep(wait)
            self._last_gather = time.monotonic()
            await self._settle([first, *self._ended.next_batch(block=False)])

    async def _settle(self, ended: list[Future]) -> None:
        finished: list[tuple[Future, list[DaskJob]]] = []
        for future in ended:
            unit = self.jobs.get(future.key, [])
            live = [job for job in unit if _open(job)]
            if not live:
                self.jobs.pop(future.key, None)
            elif future.status in ("lost", "pending"):  # its worker died with its reply:
                self._ended.add(future)  # Dask runs it again
            else:
                del self.jobs[future.key]
                if future.status == "finished":
                    finished.append((future, unit))
                elif future.status == "error" and len(live) > 1:  # a pack: each again alone
                    self._again(live)
                else:  # a restart cancelled it: its electrons fail, as a single one does
                    failure = await self._failure(future)
                    for job in live:
                        job.finish(replace(failure))  # an Outcome of its own each
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

    async def _gather(self, ended: list[tuple[Future, list[DaskJob]]]) -> None:
        """Fetch the replies of these finished futures in one call; finish their jobs."""
        wanted = {future.key: future for future, _ in ended}
        try:
            replies = await self.client.gather(wanted, errors="skip")
        except Exception as e:
            for _, unit in ended:
                for job in unit:
                    job.finish(cluster_failure(self.where, e))
            return
        for future, unit in ended:  # jobs ended meanwhile (cancelled) are skipped
            reply = replies.get(future.key)
            if reply is None:
                for job in filter(_open, unit):
                    job.finish(cluster_failure(self.where, "its reply could not be fetched"))
                continue
            if not isinstance(reply, list):  # one job's
                reply = [reply]
            for job, one in zip(unit, reply, strict=False):  # a pack answers for its first
                if _open(job):
                    job.finish(reply_outcome(one))
            self._again(unit[len(reply) :])

    def _again(self, jobs: list[DaskJob]) -> None:
        one_task_each(jobs, self.resubmit)


def one_task_each(jobs: list[DaskJob], resubmit: Callable[[list[DaskJob]], None]) -> None:
    """Hand those of ``jobs`` still open (out of a pack that will not answer for them) to
    ``resubmit``, each to run as a Dask task of its own."""
    jobs = [job for job in jobs if _open(job)]
    for job in jobs:
        job.future, job.packable = None, False
    if jobs:
        resubmit(jobs)


def _open(job: DaskJob) -> bool:
    """Whether ``job`` still waits for its reply from the cluster."""
    return not job.done and not job.cancelled
