"""A pool of reused worker processes, fed in batches.

Each worker process has one thread in the server that owns it: the thread takes tasks
from the pool's queue (one, or a batch when many are waiting), sends the batch with the
blobs the worker lacks, and hands each reply to the event loop as it arrives. So the
event loop never blocks on a pipe, and only the loop touches dispatcher state.

A few tasks submitted while threads wait idle with a warm worker each (a chain's next
step, a seed's) are sent by the submitting thread itself, one to each such worker, and
the thread that owns it is woken only to relay the reply: the worker starts at once,
rather than once its thread has woken and the submitter has let go of the GIL. A
chain's next steps are sent so too, to the worker running the step before them, which
starts each as that one ends (:meth:`WorkerPool.follow`).

Workers start on demand, up to ``max_workers``, and exit after ``idle_timeout`` seconds
without work. A worker that dies mid-batch fails the task it was running, with its exit
code, and that one only: the worker names it in a small shared file (the replies of the
quick tasks before it may have died with it). The rest of what it was sent, tasks not
started and tasks whose reply had not left the worker (their start was never reported:
a task whose start went out alone has its reply sent before the next one starts), goes
back to the queue and a new process takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from covalent._results.status import Status
from covalent.executor import messages
from covalent.executor.task import Outcome, Task, outcome_from_reply

MAX_BATCH = 64
HAND_MAX = 8
"""The most tasks one submission sends straight to idle warm workers (see the module's
doc); more go through the queue, so that the worker threads encode their batches."""
HAND_BYTES = 64 * 1024
"""The largest message the submitter sends to a worker itself: a socket pair's buffer
holds it whole (Linux gives ~200 KB), so the event loop never waits for a worker to
read; a larger one (a large input inline, a function sent the first time) goes through
the queue and the worker's thread."""
STOP_GRACE = 5.0
"""Seconds a stopped task with a timeout has, at most, to write its stacks before it is
killed (the kernel runs faulthandler's handler at once unless the process is stuck in
an uninterruptible system call)."""
STACK_POLL = 0.02
"""Seconds between two looks at the size of a worker's stack file while it is written."""
OUTPUT_TAIL = 0.5
"""Seconds between the stacks and the kill: what the electron wrote just before it was
stopped reaches the pool with the worker's next send (every 0.25 s)."""


@dataclass(eq=False)
class Job:
    """A task in the pool. ``report`` gets its Outcome, exactly once, on ``loop``'s thread."""

    task: Task
    options: dict[str, Any]
    report: Callable[[Outcome], None]
    loop: asyncio.AbstractEventLoop
    plugin: dict[str, Any] | None = None
    cancelled: bool = False
    skipped: bool = False  # cancelled in its worker's batch before it started: not run
    started: bool = False  # its worker reported its start, or may have run it unseen (a
    # send that failed midway): should the worker die, it fails and is not run again
    taken: bool = False  # by a worker thread, from the pool's queue
    alone: bool = False  # requeued after its worker died: runs in a batch of its own
    sent_bytes: int = 0  # its message's, sent by hand() and not yet begun by the worker
    settled: bool = False  # only touched on the loop's thread
    worker: _WorkerThread | None = field(default=None, repr=False)
    pool: WorkerPool | None = field(default=None, repr=False)

    def settle(self, outcome: Outcome) -> None:
        """Report ``outcome`` (from any thread)."""
        _settle_all([(self, outcome)])

    def cancel(self) -> None:
        """Stop this job: drop it if queued, kill its worker process if running."""
        if self.pool is not None:
            self.pool.cancel(self)

    def payload(self) -> dict[str, Any]:
        options = {**self.options, "blobs_dir": self.task.blobs_dir}
        plugin = None
        if self.plugin is not None:  # its "blobs" travel as functions, not in the payload
            plugin = {k: v for k, v in self.plugin.items() if k != "blobs"}
        payload = dict(self.task.payload(options, plugin))
        if self.task.metadata.get("timeout"):
            payload["timed"] = True
        return payload

    def class_blob(self) -> str | None:
        """The digest of the executor's class pickled by value, which the worker may need."""
        return self.plugin.get("class_blob") if self.plugin is not None else None

    def class_bytes(self) -> bytes:
        digest = self.plugin["class_blob"] if self.plugin is not None else ""
        carried = (self.plugin or {}).get("blobs") or {}
        return carried[digest] if digest in carried else self.task.load_blob(digest)


class JobQueue:
    """The jobs waiting for a worker: one queue per dispatch, taken in turn, so that a
    small dispatch's task waits for one task of each other dispatch rather than for all
    those queued before it (a fan-out has up to 10,000 in the pool at once). Within a
    dispatch, first in, first out. Not thread-safe: the pool's lock guards it."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Job]] = {}  # in turn order: the next one first
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def extend(self, jobs: Iterable[Job]) -> None:
        """Queue ``jobs`` after those of their dispatches already queued."""
        queues = self._queues
        for job in jobs:
            key = job.task.dispatch_id
            queue = queues.get(key)
            if queue is None:
                queue = queues[key] = deque()
            queue.append(job)
            self._count += 1

    def put_back(self, jobs: list[Job]) -> None:
        """Put ``jobs`` (taken, then not run) back before the others of their dispatches,
        in their order."""
        for job in reversed(jobs):
            key = job.task.dispatch_id
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = deque()
            queue.appendleft(job)
            self._count += 1

    def peek(self) -> Job:
        """The job :meth:`popleft` would give, left in place. Raises IndexError when
        none is queued."""
        try:
            return next(iter(self._queues.values()))[0]
        except StopIteration:
            raise IndexError("no job is queued") from None

    def popleft(self) -> Job:
        """The next job of the dispatch whose turn it is; that dispatch goes last.

        Raises IndexError when none is queued."""
        queues = self._queues
        try:
            key = next(iter(queues))
        except StopIteration:
            raise IndexError("no job is queued") from None
        queue = queues.pop(key)
        job = queue.popleft()
        self._count -= 1
        if queue:
            queues[key] = queue  # re-inserted: the end of the turn order
        return job

    def drain(self) -> list[Job]:
        """Every queued job, taken out."""
        jobs = [job for queue in self._queues.values() for job in queue]
        self._queues, self._count = {}, 0
        return jobs


class WorkerPool:
    """Runs tasks on up to ``max_workers`` reused worker processes."""

    def __init__(self, max_workers: int, idle_timeout: float = 60.0, memory_limit: int = 0) -> None:
        self.max_workers = max(1, max_workers)
        self.memory_limit = memory_limit
        self.idle_timeout = idle_timeout
        self._jobs = JobQueue()
        self._lock = threading.RLock()  # each thread waits on a Condition of its own on it
        self._threads: set[_WorkerThread] = set()
        self._parked: list[_WorkerThread] = []  # waiting in take(), the latest last
        self._idle = 0  # threads waiting for work; each will take one job when woken
        self._closed = False

    async def run(
        self, task: Task, options: dict[str, Any], plugin: dict[str, Any] | None = None
    ) -> Outcome:
        """Run ``task`` with ``options`` (workdir, env, ...); with ``plugin``
        (``{"name", "attributes"}``), through that executor's own ``run``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()

        def report(outcome: Outcome) -> None:
            if not future.done():
                future.set_result(outcome)

        job = self.start(task, options, report, plugin)
        try:
            return await asyncio.shield(future)  # a cancel must not cancel the future itself
        except asyncio.CancelledError:
            self.cancel(job)
            # Its end (and the output it wrote up to then) reaches the task's callbacks
            # before the caller hears of the cancellation.
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(future), STOP_GRACE + 5)
            raise

    def start(
        self,
        task: Task,
        options: dict[str, Any],
        report: Callable[[Outcome], None],
        plugin: dict[str, Any] | None = None,
    ) -> Job:
        """Queue ``task`` without waiting: ``report(outcome)`` is called on the running
        event loop's thread when it ends. The returned job's ``cancel()`` stops it."""
        return self.start_many([(task, options, report)], plugin)[0]

    def start_many(
        self,
        items: list[tuple[Task, dict[str, Any], Callable[[Outcome], None]]],
        plugin: dict[str, Any] | None = None,
    ) -> list[Job]:
        """:meth:`start` for many ``(task, options, report)`` at once: one hand-over to
        the worker threads instead of one each."""
        loop = asyncio.get_running_loop()
        jobs = [
            Job(task, options, report, loop, plugin, pool=self) for task, options, report in items
        ]
        self.submit(*jobs)
        return jobs

    def submit(self, *jobs: Job) -> None:
        with self._lock:
            if self._closed:
                _fail_all(list(jobs), "The worker pool is shut down.")
                return
            handed = self._reserve(jobs)
            if not handed:
                self._jobs.extend(jobs)
                started = 0
                while (
                    self._idle + started < len(self._jobs) and len(self._threads) < self.max_workers
                ):
                    thread = _WorkerThread(self)
                    self._threads.add(thread)
                    thread.start()
                    started += 1
                self._wake(len(jobs))
        for thread, job in handed:
            thread.hand(job)

    def _reserve(self, jobs: tuple[Job, ...]) -> list[tuple[_WorkerThread, Job]]:
        """A parked thread with a live worker for each job, reserved for it, if there
        are enough of them and at most :data:`HAND_MAX` jobs; none otherwise."""
        if len(jobs) > HAND_MAX or len(self._parked) < len(jobs):
            return []
        warm = [thread for thread in self._parked if thread.has_worker()]
        if len(warm) < len(jobs):
            return []
        handed = []
        for job in jobs:
            thread = warm.pop()  # the latest parked: the warmest
            self._reserve_thread(thread, job)
            handed.append((thread, job))
        return handed

    def _reserve_thread(self, thread: _WorkerThread, job: Job) -> None:
        """Reserve ``thread`` for ``job`` (under the lock), which its submitter then sends
        (:meth:`_WorkerThread.hand`): parked or not, it takes no job from the queue
        next, so it no longer counts as idle (once, however many jobs it is handed)."""
        if thread in self._parked:
            self._parked.remove(thread)
        thread.reserved = True
        if not thread.uncounted:  # a new job may need another thread
            thread.uncounted = True
            self._idle -= 1
        job.taken = True
        job.worker = thread  # a chain's next step follows it there (follow)

    def follow(
        self,
        before: Job,
        task: Task,
        options: dict[str, Any],
        report: Callable[[Outcome], None],
    ) -> Job | None:
        """Send ``task``, a chain's next step (``task.after``), to the worker that runs
        ``before`` (or ran it last), now, on this thread: that worker starts it as soon
        as it is done, with ``before``'s output from its memory, and its thread relays
        the reply as it does a handed job's. None, and nothing sent, if that worker
        cannot take it now (not started yet, gone, or being handed another job), or
        while a job waits in the queue (the chain would overtake it at every step); a
        worker that has run another task meanwhile answers NOT_RUN."""
        job = Job(task, options, report, asyncio.get_running_loop(), pool=self)
        with self._lock:
            thread = before.worker
            if (
                self._closed
                or self._jobs  # (its worker may be the one counted on to take them)
                or thread is None
                or thread.reserved
                or thread.sending  # its worker would get the step after what it sends
                or thread not in self._threads
                or not thread.has_worker()
            ):
                return None
            self._reserve_thread(thread, job)
        thread.hand(job)
        return job

    def _wake(self, count: int) -> None:
        """Wake up to ``count`` parked threads (to take from the queue, or to stop)."""
        for _ in range(min(count, len(self._parked))):
            self._parked.pop().wake.notify()

    def requeue(self, jobs: list[Job]) -> None:
        """Put the rest of a dead worker's batch back at the front of the queue."""
        with self._lock:
            cancelled = [job for job in jobs if job.cancelled]
            kept = [job for job in jobs if not job.cancelled]
            closed = self._closed  # close() failed the queue already: these too
            if not closed:
                for job in kept:
                    job.taken = False
                    job.sent_bytes = 0
                    job.worker = None
                self._jobs.put_back(kept)
                self._wake(len(kept))
        _settle_all([(job, _cancelled()) for job in cancelled])
        if closed:
            _fail_all(kept, "The server stopped before this task ran.")

    def returning(self) -> None:
        """A worker thread is about to hand its batch's last replies to the event loop
        and come back for more: it counts as idle from now on. The loop may submit the
        next task (a chain's) before the thread is back in :meth:`take`; a new worker
        would be started for it otherwise, and might take it and make it wait for a
        process start (~0.25 s) while a warm worker is free."""
        with self._lock:
            self._idle += 1

    def take(self, thread: _WorkerThread, counted: bool = False) -> list[Job] | None:
        """The next batch for ``thread``; None when it should exit (idle or closed).
        ``counted``: the thread was counted idle already (:meth:`returning`). A batch
        handed to it (sent already, :meth:`_WorkerThread.hand`) comes first, with
        ``thread.sent`` set."""
        with self._lock:
            if not counted:
                self._idle += 1
            try:
                deadline = time.monotonic() + self.idle_timeout
                while not thread.handed:
                    if thread.reserved:  # a job is being sent to its worker: wait for it
                        thread.wake.wait()
                        continue
                    if self._jobs or self._closed:
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self._threads.discard(thread)
                        return None
                    self._parked.append(thread)
                    thread.wake.wait(remaining)
                    if thread in self._parked:  # woken by its timeout, not by the pool
                        self._parked.remove(thread)
            finally:
                if thread.uncounted:  # reserved: uncounted then
                    thread.uncounted = False
                else:
                    self._idle -= 1
            if thread.handed:
                handed, thread.handed, thread.sent = thread.handed, [], True
                return handed
            if self._closed:
                return None
            # Batch only what the other workers could not take anyway: with 8 sleeps and
            # 8 workers, each worker takes one.
            size = 1 + min(MAX_BATCH - 1, (len(self._jobs) - 1) // self.max_workers)
            batch: list[Job] = []
            thread.sending = True  # until it is sent: nothing may be handed before it
            while self._jobs and len(batch) < size:
                if batch and self._jobs.peek().alone:  # after its worker's death: a batch
                    break  # of its own, next (it keeps its dispatch's turn)
                job = self._jobs.popleft()
                if job.cancelled:  # a cancelled one was reported when cancelled
                    continue
                job.taken = True
                batch.append(job)
                if job.alone:
                    break
            return batch

    def cancel(self, job: Job) -> None:
        """Stop ``job``: drop it if queued (it is reported cancelled at once), kill its
        worker process if running (it is reported cancelled when the process is gone)."""
        with self._lock:
            job.cancelled = True
            queued = not job.taken  # take() skips it: no O(n) removal from the queue
        if queued:
            job.settle(_cancelled())
            return
        worker = job.worker
        if worker is not None:
            worker.kill_for(job)

    def _retire(self, thread: _WorkerThread) -> None:
        with self._lock:
            self._threads.discard(thread)
            if thread.counted_idle:  # it ended (a fault) between returning() and take()
                thread.counted_idle = False
                self._idle -= 1

    @property
    def size(self) -> int:
        return len(self._threads)

    def close(self) -> None:
        """Stop every worker; tasks still queued fail."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
            jobs = self._jobs.drain()
            self._wake(len(self._parked))
        for thread in threads:
            thread.stop_process()
        for thread in threads:
            thread.join(timeout=10)
        for job in jobs:
            job.settle(Outcome.failure("The server stopped before this task ran."))


class _WorkerDied(Exception):
    """The worker is gone; ``running``: the key of the task it started last, None if it
    started none (or is not known)."""

    def __init__(self, message: str, running: tuple[str, int] | None = None) -> None:
        super().__init__(message)
        self.running = running


class _WorkerThread(threading.Thread):
    """Owns one worker process: feeds it batches and relays its replies."""

    def __init__(self, pool: WorkerPool) -> None:
        super().__init__(name="covalent-worker", daemon=True)
        self.pool = pool
        self.process: subprocess.Popen[bytes] | None = None
        self.conn: Connection | None = None
        self.known: set[str] = set()
        self.current: Job | None = None
        self.killed_for: Job | None = None  # the job a cancel killed the worker for
        self.stacks: Any = None  # the file the worker's faulthandler writes to (SIGUSR1)
        self.running: Any = None  # the file the worker names its running task in
        self.waiting: dict[tuple[str, int], Job] = {}  # the batch's jobs without a reply
        self.counted_idle = False  # by pool.returning(), before the batch's last replies
        self.wake = threading.Condition(pool._lock)  # notified by the pool: work, or stop
        self.reserved = False  # parked, and a job is being sent to its worker (hand())
        self.handed: list[Job] = []  # jobs sent to its worker (hand): it relays their replies
        self.sent = False  # the batch take() returned was handed (sent already)
        self.uncounted = False  # reserved: no longer counted idle
        self.killed = False  # its worker was sent SIGKILL: it may not be dead yet
        self.sending = False  # it took a batch from the queue and has not sent it yet
        self.unread = 0  # bytes handed to its worker (hand) for tasks not begun yet
        self._kill_lock = threading.Lock()
        self._send_lock = threading.Lock()

    def run(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                try:
                    self._run_batch(batch)
                except Exception:  # a fault of ours: the batch's tasks must not wait forever
                    error = traceback.format_exc()
                    _fail_all(batch, f"The worker pool failed while running this task:\n{error}")
                    self._kill_group()  # what the worker runs is unknown: a new one next
                    self.current, self.waiting = None, {}
                # Not held while this thread waits for the next batch: a finished task's
                # inputs (W2 N=100,000's total: 100,000 digests, 11 MB) would outlive its
                # run, scattered over the allocator's arenas under the next large one.
                del batch
        finally:
            self.pool._retire(self)
            self.stop_process()

    def _next_batch(self) -> list[Job] | None:
        counted, self.counted_idle = self.counted_idle, False
        batch = self.pool.take(self, counted)
        if batch is None or self.sent:  # a handed job cancelled meanwhile: _make_current
            return batch
        kept = []
        for job in batch:
            if job.cancelled:
                job.settle(_cancelled())
            else:
                kept.append(job)
        return kept

    def _run_batch(self, batch: list[Job]) -> None:
        try:
            if not batch:
                return
            sent, self.sent = self.sent, False
            try:
                if not sent:
                    self._send(batch)
            except (OSError, ValueError, _WorkerDied) as e:
                _fail_all(batch, f"Could not start a worker process: {e}")
                return
            except Exception as e:  # a blob could not be read: fail these, keep the thread
                _fail_all(batch, f"The task could not be sent to a worker process: {e}")
                return
        finally:
            self.sending = False
        position = 0
        with self._kill_lock:  # a cancel from now on finds the batch as the worker has it
            by_key = self.waiting = {job.task.key: job for job in batch}
            self.current = batch[0]  # running already, maybe: a cancel kills, not skips
            for job in batch:
                job.worker = self
            # cancelled while the batch was handed over (taken, not yet waiting here):
            # that cancel found no worker to tell; the first one _make_current stops
            for job in batch[1:]:
                if job.cancelled and not job.skipped:
                    self._skip(job)
        while position < len(batch):
            self._make_current(batch[position])
            try:
                events = self._receive()
            except _WorkerDied as e:
                self._died(list(by_key.values()), e)
                return
            finally:
                self.current = None
            if _replies(events, by_key) == len(batch) - position:
                self.pool.returning()
                self.counted_idle = True
            position += _deliver(events, by_key)

    def _died(self, unanswered: list[Job], death: _WorkerDied) -> None:
        """The worker died with ``unanswered`` (in the order it runs them) sent and not
        replied to: the one it was running fails with its death; so does one whose start
        it reported (it ran, and must not run again); the others did not start, or their
        reply died with the worker before their start was reported: they are queued again,
        each to run in a batch of its own (``Job.alone``: should one of them end the
        worker again, after its reply, it is the one named, not a batch-mate). Jobs handed
        to the worker behind them (:meth:`hand`) go back to the queue too.

        Killed to cancel a job, the worker is blamed on that job, which ends cancelled:
        the pool's view of what runs may lag (a quick task's start and reply leave
        together), and the task it was really running, if another, did not fail."""
        with self.pool._lock:
            handed, self.handed = self.handed, []
        killed_for, self.killed_for = self.killed_for, None
        jobs = unanswered + handed
        culprit: Job | None
        if killed_for is not None:  # (it may have ended meanwhile: then no one is blamed)
            culprit = killed_for if any(job is killed_for for job in jobs) else None
        elif death.running is not None:
            culprit = next((job for job in jobs if job.task.key == death.running), None)
        else:  # it died before it started any (at its start): the first one, as before
            culprit = unanswered[0] if unanswered else None
        failed = [job for job in jobs if job is culprit or job.started]
        _settle_all(
            [
                (job, _cancelled() if job.cancelled else Outcome.failure(str(death)))
                for job in failed
            ]
        )
        again = [job for job in jobs if not (job is culprit or job.started)]
        for job in again:
            job.alone = True
        self.pool.requeue(again)

    def has_worker(self) -> bool:
        """Whether this thread's worker process is running (it may be sent work)."""
        process = self.process
        return (
            process is not None
            and self.conn is not None
            and not self.killed
            and process.poll() is None
        )

    def hand(self, job: Job) -> None:
        """Send ``job`` to this thread's worker, on the submitting thread (the pool
        reserved this thread for it), then wake this thread to relay its reply.

        A message that would take the bytes handed to this worker and not yet begun
        over :data:`HAND_BYTES` (``unread``: a busy worker's socket must hold them all),
        or one that cannot be made (a blob that cannot be read), goes back to the queue,
        and this thread sends it (the submitter is the event loop: it must not wait for
        a worker to read) or reports the error; if the pool was closed meanwhile, the
        job fails as the queue's did. A worker that died meanwhile is found by this
        thread's receive."""
        sent = False
        try:
            data, functions = self._message([job], HAND_BYTES - self.unread)
            if len(data) <= HAND_BYTES - self.unread:
                with self.pool._lock:
                    self.unread += len(data)
                    job.sent_bytes = len(data)
                sent = True  # from here on the worker may have (part of) it: never resent
                with contextlib.suppress(OSError, ValueError):
                    self._send_bytes(data)
                self.known.update(functions)
        except Exception:  # not made: queued below
            if sent:  # failed mid-send: the worker may hold half a message; it is stopped,
                job.started = True  # (or all of it: it must not run twice)
                self._kill_group()  # and this thread's receive reports its end
        finally:  # whatever happened, the thread is released (it waits for nothing else)
            closed = False
            with self.pool._lock:
                self.reserved = False
                if sent:
                    self.handed.append(job)  # after a job handed before it, if any
                else:
                    job.taken = False
                    job.worker = None
                    closed = self.pool._closed  # close() failed the queue already: not this
                    if not closed:
                        self.pool._jobs.put_back([job])
                self.wake.notify()
            if closed:
                job.settle(Outcome.failure("The server stopped before this task ran."))

    def _send(self, batch: list[Job]) -> None:
        self._ensure_process()
        data, functions = self._message(batch)
        self._send_bytes(data)
        self.known.update(functions)

    def _message(
        self, batch: list[Job], limit: int | None = None
    ) -> tuple[bytes, dict[str, bytes]]:
        """The message that runs ``batch`` on this thread's worker, and the functions
        it carries (the worker knows them from then on). Raises TooLarge as soon as a
        task's values pass ``limit`` bytes, if given (:meth:`hand`'s budget, for its one
        task: a collection of 100,000 items was unpacked, and its message built, on the
        event loop, to be dropped and built again by the thread)."""
        functions: dict[str, bytes] = {}
        values: dict[str, bytes] = {}
        files: dict[str, str] = {}
        for job in batch:
            task = job.task
            if task.function not in self.known and task.function not in functions:
                functions[task.function] = task.load_blob(task.function)
            digest = job.class_blob()
            if digest and digest not in self.known and digest not in functions:
                functions[digest] = job.class_bytes()
            small, large = task.value_blobs(limit)  # large: the worker reads the file
            values.update(small)
            files.update(large)
        message = {
            "tasks": [job.payload() for job in batch],
            "functions": functions,
            "values": values,
            "files": files,
        }
        return messages.encode(message), functions

    def _receive(self) -> list[messages.Event]:
        """The next message's events; _WorkerDied if the worker is gone or wrote what is
        not a message (an electron may write on the socket: it is killed then)."""
        conn = self.conn
        if conn is None:  # the pool is closing: stop_process took it
            raise _WorkerDied("The worker pool was shut down while this electron ran.")
        try:
            return messages.decode_events(conn.recv_bytes())
        except (EOFError, OSError):
            code = self._reap()
            raise _WorkerDied(_death_message(code), self._running()) from None
        except messages.MessageError as e:
            self._kill_group()
            self._reap()
            raise _WorkerDied(
                f"The worker process running this electron sent a malformed message ({e}); "
                "it was stopped. (Did the electron write to the worker's socket?)"
            ) from None

    def _running(self) -> tuple[str, int] | None:
        """The key of the task the (dead) worker started last, from its file: None if it
        started none."""
        if self.running is None:
            return None
        try:
            return messages.running_key(os.pread(self.running.fileno(), messages.RUNNING_SIZE, 0))
        except (OSError, ValueError):
            return None

    def _ensure_process(self) -> Connection:
        if self.has_worker() and self.conn is not None:
            return self.conn
        self.stop_process()
        ours, theirs = socket.socketpair()
        self.stacks = tempfile.TemporaryFile(prefix="covalent-stacks-")  # noqa: SIM115 (lives with the worker; stop_process closes it)
        self.running = tempfile.TemporaryFile(prefix="covalent-running-")  # noqa: SIM115 (as stacks)
        os.ftruncate(self.running.fileno(), messages.RUNNING_SIZE)
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "covalent.executor._worker",
                    str(theirs.fileno()),
                    str(self.pool.memory_limit),
                    str(self.stacks.fileno()),
                    str(self.running.fileno()),
                ],
                pass_fds=[theirs.fileno(), self.stacks.fileno(), self.running.fileno()],
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # it leads a process group: its tasks' children
            )
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.known = set()
        self.killed = False
        self.unread = 0
        return self.conn

    def _reap(self) -> int | None:
        """The dead worker's exit code; whatever its tasks started is killed with it."""
        process = self.process
        if process is None:
            return None
        code = None
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = process.wait(timeout=10)
        self._kill_group()
        return code

    def _kill_group(self) -> None:
        """Kill the worker's process group: the worker and every process its tasks
        started that did not leave the group. The worker is not sent another task: the
        signal may take effect only after the reply of the task it was meant to stop
        (a task that had just ended) has come, and its thread is idle again."""
        if self.process is not None:
            self.killed = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def _make_current(self, job: Job) -> None:
        """``job`` is the one the worker runs now; if it was cancelled before (even
        before this thread knew it had it), its process is killed at once."""
        if job.sent_bytes:  # handed: its worker reads its message now
            with self.pool._lock:
                self.unread = max(0, self.unread - job.sent_bytes)
                job.sent_bytes = 0
        with self._kill_lock:
            self.current = job
            if job.cancelled and not job.skipped:
                self._kill_group()

    def kill_for(self, job: Job) -> None:
        """Kill the worker process if it is running ``job`` (cancellation). A task with a
        timeout is first asked for its threads' Python stacks (faulthandler, on SIGUSR1,
        into this worker's stack file), so that its error can say where it was; they reach
        the task as the end of its stderr before the kill (:meth:`_stop_with_stacks`)."""
        with self._kill_lock:
            if self.current is not job:
                if job.task.key in self.waiting and not job.skipped:
                    self._skip(job)
                    return
                with self.pool._lock:
                    behind = bool(self.waiting) and any(j is job for j in self.handed)
                if behind:  # sent behind the batch its worker runs (a chain's next step):
                    job.settle(_cancelled())  # reported now; _make_current kills it then
                return
            if job.task.metadata.get("timeout") and self.process is not None:
                process, stacks = self.process, self.stacks
                threading.Thread(
                    target=self._stop_with_stacks, args=(job, process, stacks), daemon=True
                ).start()
                return
            self.killed_for = job  # the worker may have moved on: see _died
            self._kill_group()

    def _skip(self, job: Job) -> None:
        """``job`` waits in its worker's batch behind another task: the worker is told
        not to run it, and it is reported cancelled now, not when the tasks before it
        end. (Should the worker have just started it, it runs to its end unseen.)"""
        job.skipped = True
        with contextlib.suppress(OSError, ValueError):  # the worker is gone: nothing runs
            self._send_bytes(messages.encode({"cancel": [list(job.task.key)]}))
        job.settle(_cancelled())

    def _send_bytes(self, data: bytes) -> None:
        conn = self.conn
        if conn is None:
            raise ValueError("no worker process")
        with self._send_lock:  # a cancel, from the loop's thread, and a batch, from this one
            conn.send_bytes(data)

    def _stop_with_stacks(self, job: Job, process: subprocess.Popen[bytes], stacks: Any) -> None:
        """Signal the worker for its stacks, wait (at most :data:`STOP_GRACE` seconds)
        until its stack file has stopped growing, hand the dump to ``job`` as stderr, and
        kill the worker :data:`OUTPUT_TAIL` seconds later. The dump is written by the
        kernel's signal delivery alone: no thread of the worker needs to run for it."""
        try:
            dump = _stacks_of(process, stacks)
        except (OSError, ValueError):  # the pool closed the file: the worker is gone
            dump = b""
        if dump:
            output = messages.Output(job.task.key, "stderr", dump.decode("utf-8", "replace"))
            _call_soon(job.loop, lambda: _apply_events([(job, output)]))
            time.sleep(OUTPUT_TAIL)
        self._kill_if_current(job)

    def _kill_if_current(self, job: Job) -> None:
        with self._kill_lock:
            if self.current is job:
                self.killed_for = job  # set only with a kill: see _died
                self._kill_group()

    def stop_process(self) -> None:
        process, conn, stacks, running = self.process, self.conn, self.stacks, self.running
        self.process, self.conn, self.known, self.stacks = None, None, set(), None
        self.running = None
        self.killed_for = None
        if conn is not None:
            conn.close()
        for file in (stacks, running):
            if file is not None:
                file.close()
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None:  # what its tasks left running goes too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)


def _stacks_of(process: subprocess.Popen[bytes], stacks: Any) -> bytes:
    """Send ``process`` SIGUSR1 and return what its faulthandler then wrote to ``stacks``
    (once the file stops growing; nothing if that takes over :data:`STOP_GRACE` s)."""
    fd = stacks.fileno()
    start = size = os.fstat(fd).st_size
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(STACK_POLL)
        now = os.fstat(fd).st_size
        if now > start and now == size:  # written, and done growing
            break
        size = now
    return os.pread(fd, size - start, start) if size > start else b""


def _death_message(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (the system may have run out of memory)" if name == "SIGKILL" else ""
        return f"The worker process running this electron was killed by {name}{hint}."
    return f"The worker process running this electron exited unexpectedly with code {code}."


def _settle_all(done: list[tuple[Job, Outcome]]) -> None:
    """Hand several outcomes to the event loop in one wake-up."""
    if done:
        actions: list[tuple[Job, Any]] = list(done)
        _call_soon(actions[0][0].loop, lambda: _apply_events(actions))


def _replies(events: list[messages.Event], by_key: dict[tuple[str, int], Job]) -> int:
    """How many of the batch's jobs still without a reply get theirs in ``events``."""
    return sum(1 for e in events if isinstance(e, messages.Reply) and e.key in by_key)


def _deliver(events: list[messages.Event], by_key: dict[tuple[str, int], Job]) -> int:
    """Hand one message's events to the event loop in one wake-up: starts and output go
    to the task's ``on_start``/``on_output``, replies settle their jobs. Returns how many
    of the batch's jobs got their reply (each job is taken out of ``by_key`` then)."""
    actions: list[tuple[Job, Any]] = []
    replies = 0
    ended = {e.key for e in events if isinstance(e, messages.Reply)}
    for event in events:
        if isinstance(event, messages.Started) and event.key in ended:
            continue  # started and ended in one message: the reply carries its start
        job = by_key.get(event.key)
        if job is None:
            continue
        if isinstance(event, messages.Reply):
            replies += 1
            del by_key[event.key]
            actions.append((job, _cancelled() if job.cancelled else outcome_from_reply(event)))
        else:  # a cancelled job's output up to its end is kept too
            if isinstance(event, messages.Started):
                job.started = True  # its thread's: read there should the worker die
            actions.append((job, event))
    if actions:
        _call_soon(actions[0][0].loop, lambda: _apply_events(actions))
    return replies


def _apply_events(actions: list[tuple[Job, Any]]) -> None:
    """On the loop's thread: report each event to its job's task, once settled no more."""
    for job, item in actions:
        if job.settled:
            continue
        if isinstance(item, Outcome):
            job.settled = True
            job.report(item)
        elif isinstance(item, messages.Started) and job.task.on_start is not None:
            job.task.on_start(item.at)
        elif isinstance(item, messages.Output) and job.task.on_output is not None:
            job.task.on_output(item.stream, item.text)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
        loop.call_soon_threadsafe(callback)


def _fail_all(jobs: list[Job], error: str) -> None:
    _settle_all([(job, Outcome.failure(error)) for job in jobs])


def _cancelled() -> Outcome:
    now = time.time()
    return Outcome(Status.CANCELLED, error="Cancelled.", start_time=now, end_time=now)
