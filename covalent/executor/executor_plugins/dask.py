"""``DaskExecutor``: runs electrons as tasks on a Dask cluster (``dask.distributed``).

Where: with ``scheduler_address`` the executor uses that existing cluster. Without one
it uses the server's own cluster, a :class:`LocalDaskCluster`: a ``LocalCluster`` of
worker processes bound to 127.0.0.1, started on first use, shared by every
DaskExecutor without an address in the server (one per event loop), and closed when the
last of them is torn down, at server stop. ``covalent cluster`` shows and changes it.

How one task runs: its function and input blobs, still pickled (the server never
unpickles user data), become one self-contained request (:meth:`Task.packed`) that a
Dask worker runs with :func:`covalent.executor.runner.run_packed`; the worker answers
with a MessagePack reply (covalent.executor.messages), which becomes the
:class:`Outcome`. A request larger than ``SCATTER_BYTES`` is scattered to a worker
first, so that it does not travel inside the task graph through the scheduler.

In bulk (:mod:`covalent.executor._dask_jobs` says why): the tasks that come together,
through the dispatcher's fast path (:meth:`DaskExecutor.start_many`) or ``execute``
calls in the same turn of the event loop, are queued; one coroutine makes their requests
in one thread, ``START_CHUNK`` at a time, and submits them as one graph; one
``as_completed`` iterator watches them all and their replies come back in batches. The
fast path's tasks, when more come than the cluster has threads, share Dask tasks
(packs: :class:`~covalent.executor._dask_jobs.RunPack`), since Dask's own cost per task
(the scheduler's round trip for each) is many times a brief electron's.

Cancelling a task (its handle's ``cancel`` or :meth:`DaskExecutor.execute`) cancels its
Dask future, and only its. Dask cannot stop a task
that already runs, so when ``restart_on_cancel`` says so the worker running it is
restarted (its nanny starts a fresh process): by default on the server's own cluster,
not on an existing one, whose workers may be running other people's work.

``distributed`` is imported inside the functions that need it, never at module level:
this module is imported at plugin discovery on every server start and by the SDK
(``ct.executor``), and importing ``distributed`` takes about half a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

from covalent._errors import ExecutorError
from covalent.executor import settings as check
from covalent.executor._dask_cluster import (
    LocalDaskCluster,
    connect,
    import_distributed,
)
from covalent.executor._dask_jobs import (
    Completions,
    DaskJob,
    cancelled,
    one_task_each,
    pack_size,
    task_graph,
)
from covalent.executor.base import BaseExecutor, Report
from covalent.executor.runner import run_packed
from covalent.executor.task import Cancellable, Outcome, Task, workdir_options

if TYPE_CHECKING:
    from distributed import Client, Future

EXECUTOR_PLUGIN_NAME = "DaskExecutor"

_EXECUTOR_PLUGIN_DEFAULTS: dict[str, Any] = {
    "scheduler_address": "",
    "n_workers": 0,
    "threads_per_worker": 1,
    "dashboard": False,
    "workdir": "",
    "create_unique_workdir": False,
    "log_stdout": "",
    "log_stderr": "",
}

SCATTER_BYTES = 1 << 20
"""Requests larger than this go to a worker with ``Client.scatter``, not in the graph."""
START_CHUNK = 500
"""Queued tasks whose requests are made (in one thread) and submitted (in one graph)
together; the first run on the cluster while the next are made."""
FIRST_CHUNK = 50
"""The first chunk of a burst is smaller, so that the workers start sooner."""
CANCEL_TIMEOUT = 60.0
ASK_TIMEOUT = 5.0
"""Seconds the workers get to say which of them runs a task being cancelled."""

log = logging.getLogger("covalent.executor.dask")


class DaskExecutor(BaseExecutor):
    """Run each electron as a task on a Dask cluster.

    Args:
        scheduler_address: the scheduler of an existing cluster, like
            ``tcp://10.0.0.5:8786``; empty: the server's own local cluster.
        n_workers: worker processes of the local cluster (0: one per CPU).
        threads_per_worker: threads per worker process of the local cluster.
        dashboard: serve the local cluster's dashboard on a free port of 127.0.0.1
            (needs ``bokeh``); ``covalent cluster --info`` shows its link.
        workdir: folder the electron runs in, on the worker's machine.
        create_unique_workdir: run in ``workdir/<dispatch_id>/node_<id>`` instead.
        log_stdout: file (on the worker's machine) to append each electron's stdout to.
        log_stderr: file (on the worker's machine) to append each electron's stderr to.
        env: environment variables set while the electron runs.
        restart_on_cancel: restart the worker process running a cancelled electron, which
            is the only way to stop it (None: on the local cluster only).
        cache_dir, time_limit, retries: the original's, accepted and kept.

    Every setting is checked here: a wrong one raises ExecutorSettingError (a
    ValueError) naming it, its value and what is expected.

    The local cluster's settings (``n_workers``, ``threads_per_worker``, ``dashboard``)
    are those of the first executor that starts it; ``covalent cluster --scale N``
    changes its size while the server runs.
    """

    def __init__(
        self,
        scheduler_address: str = "",
        n_workers: int = 0,
        threads_per_worker: int = 1,
        dashboard: bool = False,
        workdir: str = "",
        create_unique_workdir: bool = False,
        log_stdout: str = "",
        log_stderr: str = "",
        env: dict[str, str] | None = None,
        restart_on_cancel: bool | None = None,
        cache_dir: str = "",
        time_limit: float = -1,
        retries: int = 0,
    ) -> None:
        super().__init__(log_stdout, log_stderr, cache_dir, time_limit, retries)
        owner = type(self).__name__
        self.scheduler_address = check.text(owner, "scheduler_address", scheduler_address)
        self.n_workers = check.integer(owner, "n_workers", n_workers)
        self.threads_per_worker = check.integer(owner, "threads_per_worker", threads_per_worker, 1)
        self.dashboard = check.flag(owner, "dashboard", dashboard)
        self.workdir = check.path(owner, "workdir", workdir)
        self.create_unique_workdir = check.flag(
            owner, "create_unique_workdir", create_unique_workdir
        )
        self.env = check.environment(owner, "env", env)
        self.restart_on_cancel = (
            None
            if restart_on_cancel is None
            else check.flag(owner, "restart_on_cancel", restart_on_cancel)
        )
        self._client: Client | None = None
        self._local: LocalDaskCluster | None = None
        self._lock: asyncio.Lock | None = None
        self._stopping: set[asyncio.Future[None]] = set()
        self._queued: list[DaskJob] = []
        self._submitting: asyncio.Task[None] | None = None
        self._completions: Completions | None = None

    # the cluster

    def local_cluster(self) -> LocalDaskCluster:
        """The server's local cluster, which this executor uses from now on (not started)."""
        if self.scheduler_address:
            raise ExecutorError(
                f"This DaskExecutor uses the cluster at {self.scheduler_address}, not the "
                "server's local cluster."
            )
        if self._local is None:
            self._local = LocalDaskCluster.acquire(
                self.n_workers, self.threads_per_worker, self.dashboard
            )
        return self._local

    def running_local_cluster(self) -> LocalDaskCluster | None:
        """The server's local cluster if this executor uses it and it runs, else None."""
        return self._local if self._local is not None and self._local.running else None

    async def client(self) -> Client:
        """A client of this executor's cluster, connected (or started) on first use."""
        if not self.scheduler_address:
            return await self.local_cluster().client()
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._client is None:
                self._client = await connect(self.scheduler_address)
            return self._client

    async def teardown(self) -> None:
        if self._stopping:  # cancellations in flight still need the client
            await asyncio.wait(list(self._stopping), timeout=CANCEL_TIMEOUT + 5)
        await self._drop_jobs("the executor stopped")
        client, local = self._client, self._local
        self._client, self._local = None, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
        if local is not None:
            await local.release()
        await super().teardown()

    # tasks

    def task_options(self, task: Task) -> dict[str, Any]:
        return workdir_options(
            task,
            self.workdir,
            self.create_unique_workdir,
            self.log_stdout,
            self.log_stderr,
            self.env,
        )

    async def execute(self, task: Task) -> Outcome:
        """Run one task (queued with any others of this turn; see the module docstring).

        Raises ExecutorError if the cluster cannot be reached."""
        await self.client()
        ended: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()

        def report(outcome: Outcome) -> None:
            if not ended.done():
                ended.set_result(outcome)

        job = DaskJob(task, report, self._cancel_job)
        self._enqueue([job])
        try:
            return await ended
        except asyncio.CancelledError:
            job.cancelled = True
            if job.future is not None:
                await asyncio.shield(self._stop_soon(job.future))
            job.finish(cancelled())
            raise

    def start_many(self, tasks: list[tuple[Task, Report]]) -> list[Cancellable] | None:
        """The dispatcher's fast path: the tasks are queued and submitted together; each
        reports its outcome when its reply comes back."""
        if type(self).execute is not DaskExecutor.execute:
            return None
        jobs = [DaskJob(task, report, self._cancel_job, packable=True) for task, report in tasks]
        self._enqueue(jobs)
        return list(jobs)

    def _enqueue(self, jobs: list[DaskJob]) -> None:
        self._queued.extend(jobs)
        if self._submitting is None or self._submitting.done():
            self._submitting = asyncio.ensure_future(self._submit_queued())

    async def _submit_queued(self) -> None:
        """Submit the queued jobs, in chunks (``FIRST_CHUNK``, then ``START_CHUNK``), until
        none is left."""
        size = FIRST_CHUNK
        while self._queued:
            chunk, self._queued = self._queued[:size], self._queued[size:]
            size = START_CHUNK
            chunk = [job for job in chunk if not job.cancelled]
            if not chunk:
                continue
            try:
                await self._submit_chunk(chunk)
            except asyncio.CancelledError:  # torn down meanwhile
                self._fail_unsubmitted(chunk, "The executor stopped before it started this.")
                raise
            except Exception as e:
                error = str(e) if isinstance(e, ExecutorError) else f"{type(e).__name__}: {e}"
                self._fail_unsubmitted(chunk, error)

    @staticmethod
    def _fail_unsubmitted(jobs: list[DaskJob], error: str) -> None:
        for job in jobs:
            if job.future is None:
                job.finish(Outcome.failure(error))

    async def _submit_chunk(self, jobs: list[DaskJob]) -> None:
        client = await self.client()
        requests = await asyncio.to_thread(self._requests, jobs)
        ready = []
        for job, request in zip(jobs, requests, strict=True):
            if job.cancelled:  # cancelled while its request was made
                continue
            if isinstance(request, Exception):
                job.finish(Outcome.failure(f"Could not make this electron's request: {request}"))
            else:
                ready.append((job, request))
        if not ready:
            return
        units = await self._submit(client, ready)
        del requests, ready
        running, again = [], []
        for unit, future in units:
            if any(job.cancelled for job in unit):  # cancelled while it was submitted: the
                self._stop_soon(future)  # unit stops, and its others go one task each
                again += unit
                continue
            for job in unit:
                job.future = future
            running.append(unit)
        if running:
            self._watcher(client).add(running)
        one_task_each(again, self._enqueue)

    def _requests(self, jobs: list[DaskJob]) -> list[bytes | Exception]:
        made: list[bytes | Exception] = []
        for job in jobs:
            try:
                made.append(job.task.packed(self.task_options(job.task)))
            except Exception as e:  # a blob missing from the store: this task's alone
                made.append(e)
        return made

    async def _submit(
        self, client: Client, ready: list[tuple[DaskJob, bytes]]
    ) -> list[tuple[list[DaskJob], Future]]:
        """The requests as one graph (``Client.get``, one ``update-graph``): the packable
        ones in packs (see the module docstring), the others one ``run_packed`` task each;
        a large request is scattered to a worker first and its task submitted on its own.
        Each unit of jobs with its Dask future."""
        graph: dict[str, bytes | list[bytes]] = {}
        units: dict[str, list[DaskJob]] = {}
        futures: dict[str, Future] = {}
        packable, at_once = [], 0
        for job, request in ready:
            key = self._key(job.task)
            if len(request) > SCATTER_BYTES:
                scattered = await client.scatter(request, hash=False)
                futures[key] = client.submit(run_packed, scattered, key=key, pure=False)
                units[key] = [job]
            elif job.packable:
                packable.append((job, request))
            else:
                graph[key], units[key] = request, [job]
        if packable:
            at_once = sum((await client.nthreads()).values())
        # electrons cancelled during the awaits above (each already reported) are not
        # sent: a pack sent with one would have started before its cancel could stop it
        packable = [(job, request) for job, request in packable if not job.cancelled]
        for key in [key for key, unit in units.items() if key in graph and unit[0].cancelled]:
            del graph[key], units[key]
        if packable:
            size = pack_size(len(packable), at_once)
            for first in range(0, len(packable), size):
                pack = packable[first : first + size]
                key = self._key(pack[0][0].task)
                units[key] = [job for job, _ in pack]
                graph[key] = [request for _, request in pack] if len(pack) > 1 else pack[0][1]
        if graph:
            listed = list(graph)
            submitted = client.get(task_graph(graph), listed, sync=False)
            futures.update(zip(listed, submitted, strict=True))
        return [(unit, futures[key]) for key, unit in units.items()]

    @staticmethod
    def _key(task: Task) -> str:
        """The task's Dask key: the electron's name first, so the dashboard groups by it."""
        return f"{task.name}-{task.dispatch_id}-{task.node_id}-{uuid.uuid4().hex[:8]}"

    def _watcher(self, client: Client) -> Completions:
        if self._completions is None or self._completions.client is not client:
            self._completions = Completions(
                import_distributed(), client, self._address(), self._enqueue
            )
        return self._completions

    async def _drop_jobs(self, reason: str) -> None:
        """Fail the jobs not ended yet (at teardown)."""
        queued, self._queued = self._queued, []
        if self._submitting is not None:
            self._submitting.cancel()
            await asyncio.wait([self._submitting])
        for job in queued:
            job.finish(Outcome.failure(f"The electron did not start: {reason}."))
        if self._completions is not None:
            await self._completions.close(reason)
            self._completions = None

    def _cancel_job(self, job: DaskJob) -> None:
        """A handle's cancel: report it cancelled once its future is stopped (at once if
        it was not submitted yet). The others of its pack go on, one Dask task each."""
        if job.future is None:
            job.finish(cancelled())
            return
        others = self._completions.unpack(job) if self._completions is not None else []
        self._stop_soon(job.future).add_done_callback(lambda _: job.finish(cancelled()))
        one_task_each(others, self._enqueue)

    def _stop_soon(self, future: Future) -> asyncio.Future[None]:
        """Cancel ``future`` and, if it runs and ``restart_on_cancel`` says so, restart its
        worker. Teardown waits for this (the client must outlive it), so it runs as a task
        of its own; problems are logged, since the electron is cancelled either way."""
        stopping = asyncio.ensure_future(self._stop(future.client, future))
        self._stopping.add(stopping)
        stopping.add_done_callback(self._stopping.discard)
        return stopping

    async def _stop(self, client: Client, future: Future) -> None:
        try:
            await asyncio.wait_for(self._stop_on_cluster(client, future), CANCEL_TIMEOUT)
        except Exception as e:
            log.warning("Cancelling Dask task %s: %s: %s", future.key, type(e).__name__, e)

    async def _stop_on_cluster(self, client: Client, future: Future) -> None:
        if not self._restarts_on_cancel():
            await future.cancel()
            return
        found = set(await _running(client, future.key))
        await future.cancel()
        # Asked again: once cancelled, a task whose thread still runs stays on its worker
        # (as ``cancelled``) until it returns, and the scheduler no longer moves it; the
        # first look can miss one that was moved between workers meanwhile.
        found.update(await _running(client, future.key))
        workers = sorted(found)
        if not workers:
            log.info("Cancelled Dask task %s: no worker runs it", future.key)
            return
        log.info("Cancelled Dask task %s: restarting its worker(s) %s", future.key, workers)
        restarted = await client.restart_workers(
            workers, timeout=CANCEL_TIMEOUT, raise_for_error=False
        )
        if any(status != "OK" for status in restarted.values()):
            log.warning("Restarting the workers of cancelled task %s: %s", future.key, restarted)
        # The scheduler drops a restarted worker when its stream closes, which may come
        # after the restart returns; until then it may still hand that worker new tasks.
        while set(workers) & set(await client.processing()):
            await asyncio.sleep(0.2)

    def _restarts_on_cancel(self) -> bool:
        if self.restart_on_cancel is None:
            return not self.scheduler_address
        return bool(self.restart_on_cancel)

    def _address(self) -> str:
        if self.scheduler_address:
            return self.scheduler_address
        return self._local.address if self._local is not None else "(local)"


async def _running(client: Client, key: Any) -> list[str]:
    """The workers running ``key``: those the scheduler assigned it to and those that
    say they execute it (asked with ``Client.run``; the two views can differ for a
    moment, as when a task was moved between workers), sorted. The workers get
    ``ASK_TIMEOUT`` seconds to answer: one whose task holds the GIL (a long C call)
    cannot, and is often the very worker to restart."""
    processing = await client.processing()
    assigned = {worker for worker, keys in processing.items() if key in keys}
    try:
        asking = client.run(_executes, key, on_error="return")
        answers = await asyncio.wait_for(asking, ASK_TIMEOUT)
    except Exception as e:  # the scheduler's view alone, then
        log.warning("Asking the workers which runs task %s: %s: %s", key, type(e).__name__, e)
        answers = {}
    failed = {worker: said for worker, said in answers.items() if isinstance(said, BaseException)}
    if failed:
        log.warning("Asking the workers which runs task %s: %s could not say", key, failed)
    return sorted(assigned | {worker for worker, says in answers.items() if says is True})


_RUNNING_STATES = ("executing", "long-running")


def _executes(key: Any, dask_worker: Any = None) -> bool:
    """On a Dask worker (``Client.run``): whether a thread of it runs ``key`` now (also
    when the scheduler has already let go of it: a cancelled or resumed task whose
    thread still runs)."""
    state = getattr(dask_worker, "state", None)
    task = state.tasks.get(key) if state is not None else None
    if task is None:
        return False
    if task.state in _RUNNING_STATES:
        return True
    return task.state in ("cancelled", "resumed") and task.previous in _RUNNING_STATES
