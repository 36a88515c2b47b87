"""The dispatcher loop: one asyncio task that owns every running dispatch.

Events (:mod:`events`: a new dispatch, a task's outcome, a cancel request, ...) arrive
on one queue. Each turn of the loop:

1. **drains** every event waiting;
2. **decides**: hands each event to its dispatch's :class:`~covalent._dispatcher.run.Run`,
   then lets every touched run take its ready nodes and conclude. A Run does no I/O;
   it writes what must happen into its :class:`~covalent._dispatcher.run.Effects`;
3. **commits** every resulting write in one transaction (retried while the store is
   unreachable; a write that one dispatch's data makes fail is kept from the others);
4. **acts**: publishes the transitions, starts and stops tasks, looks up the cache,
   submits child dispatches, tells parents, wakes clients that wait.

A decision that raises aborts its own dispatch (FAILED, with the error stored) and
never the turn of another. With ``COVALENT_VALIDATE`` set (the tests set it), every
touched run's invariants are checked after each turn.

On start, every dispatch the store says is RUNNING is resumed (:mod:`resume`).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from covalent._dispatcher import journal, resume, sublattices
from covalent._dispatcher import submission as submissionmod
from covalent._dispatcher.committer import Committer
from covalent._dispatcher.events import (
    AttemptFailed,
    CacheChecked,
    CancelRequested,
    ChildStarted,
    Event,
    Faulted,
    Joined,
    MoreReady,
    TaskFinished,
    TaskOutput,
    TaskStarted,
)
from covalent._dispatcher.executors import ExecutorRegistry
from covalent._dispatcher.launcher import Launcher
from covalent._dispatcher.run import Effects, Reuse, Run
from covalent._dispatcher.stream import EventHub
from covalent._dispatcher.submission import Parent
from covalent._errors import CovalentError, DispatchNotFoundError, StoreUnavailableError
from covalent._store import cache as cachemod
from covalent._store.changes import Changes
from covalent._store.store import Store
from covalent.executor.task import Outcome

log = logging.getLogger("covalent.dispatcher")

SUBMIT_RETRY = 5.0
"""Seconds between tries of a child dispatch's submission while the store is away."""

LAUNCH_CHUNK = 1024
"""The most nodes of one run a turn of the loop starts: the first tasks of a wide
fan-out run while the loop commits and hands over the rest, instead of after."""

STOP_ACCEPT_WAIT = 60.0
"""Seconds :meth:`Dispatcher.stop` waits for large submissions still being stored."""
STOP_DRAIN_WAIT = 2.0
"""Then, seconds it gives the loop to decide what they queued (a child dispatch's start,
which its parent's node records)."""

TURN_EVENTS = 10_000
"""The most events one turn of the loop decides (a run's window of tasks in flight, see
``IN_FLIGHT``): several large runs' ends are decided over several turns, not in one
long one. Between two turns with events still waiting, the loop lets the requests
waiting on it take a step: a request needs several, and a seed dispatched while a
fan-out of 100,000 ran (turns of ~170 ms) took up to 1.5 s when it got one per turn
only after the queue had run dry. (Turns of at most 2,048 events made W2 N=10,000
slower, 3 times out of 3.)"""

LARGE_CHILD_BYTES = 1 << 20
"""A sublattice's child bundle larger than this is read, checked and stored in threads,
as a large submission from a client is (``Dispatcher.submit_in_thread``)."""

SPLIT_TURN_AT = 1_000
SMALL_SHARE = 64
"""A turn of more than ``SPLIT_TURN_AT`` events decides those of dispatches with at most
``SMALL_SHARE`` of them first, in a turn of their own (:func:`_small_first`)."""

IN_FLIGHT = 10_000
"""The most nodes of one run handed to executors at once. The rest wait as node ids in
the run until running ones end: a task in an executor's hands costs a few kilobytes of
the server's memory (its Task, handle and callbacks), a ready node id a few bytes, so a
fan-out of 100,000 does not hold 100,000 tasks at once (1.2 GB of peak memory before
the window, 0.56 GB after). A cluster with more slots than this still gets this many of
one dispatch's tasks at a time."""

LARGE_RUN = 50_000
"""Runs of at least this many nodes let go of their memory when they end
(:meth:`Dispatcher._let_go`): a fan-out of 100,000 leaves 100,000 small entries in the
shared blob cache, scattered over the allocator's arenas among what its submission made,
and the C heap keeps the pages the run freed; both stayed resident under the next large
submission's (docs/performance.md). A fan-out of 10,000 (20,003 nodes) gained nothing
from it in peak memory and paid for the trim in time."""


def _heap_trimmer() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (which returns the C heap's free pages to the system), or
    None where the C library has none (musl, macOS)."""
    try:
        return cast(Callable[[int], int], ctypes.CDLL(None).malloc_trim)
    except (OSError, AttributeError):
        return None


_TRIM = _heap_trimmer()


class Dispatcher:
    """Runs dispatches: the loop, and the requests the API makes of it."""

    def __init__(
        self,
        store: Store,
        results_root: str | Path,
        executors: ExecutorRegistry | None = None,
        validate: bool | None = None,
    ) -> None:
        self.store = store
        self.results_root = Path(results_root)
        self.executors = executors or ExecutorRegistry()
        self.runs: dict[str, Run] = {}
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.launcher = Launcher(store, self.executors, self.queue.put_nowait)
        self.committer = Committer(store, self._abort_unstorable)
        self._effects: dict[str, Effects] = {}
        self.events = EventHub()
        self.closing = asyncio.Event()
        self.validate = bool(os.environ.get("COVALENT_VALIDATE")) if validate is None else validate
        self._finished: dict[str, set[asyncio.Future[None]]] = {}  # waiters per dispatch
        self._joining: dict[str, list[CancelRequested]] = {}  # stored in a thread, not joined
        self._accepting: set[asyncio.Future[Any]] = set()  # large submissions in flight
        self._loop_task: asyncio.Task[None] | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None

    # lifecycle

    async def start(self) -> None:
        self._event_loop = asyncio.get_running_loop()
        self._loop_task = asyncio.create_task(self._loop(), name="covalent-dispatcher")
        for dispatch_id in resume.unfinished(self.store):
            self._resume(dispatch_id)

    async def stop(self) -> None:
        deadline = time.monotonic() + STOP_ACCEPT_WAIT
        waited = bool(self._accepting)
        while self._accepting and time.monotonic() < deadline:  # (a child's may add one)
            # their threads write to the store, which closes after this
            await asyncio.wait(list(self._accepting), timeout=deadline - time.monotonic())
        drained = time.monotonic() + STOP_DRAIN_WAIT
        while waited and not self.queue.empty() and time.monotonic() < drained:
            await asyncio.sleep(0.01)  # what they told the loop (a child's start) is decided
        self.launcher.stop_all()
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        await self.executors.close()

    # requests (called on the loop's thread by the API)

    def submit(
        self,
        manifest: dict[str, Any],
        blobs: dict[str, bytes],
        disable_run: bool = False,
        parent: Parent | None = None,
    ) -> str:
        """Check, store and start a dispatch; return its id once it is committed.

        Raises BadRequestError for a malformed manifest (nothing is stored).
        """
        done = submissionmod.submit(
            self.store, self.results_root, manifest, blobs, disable_run, parent
        )
        return self._submitted(done)

    async def submit_in_thread(
        self,
        manifest: dict[str, Any],
        blobs: dict[str, bytes],
        disable_run: bool = False,
        stored: Callable[[str], object] | None = None,
        parent: Parent | None = None,
    ) -> str:
        """:meth:`submit` for a large dispatch: it is checked, stored and made into a run
        in a thread, so that the loop goes on with the other dispatches meanwhile (a
        fan-out of 100,000 took it 2 s); they wait only while its rows are written,
        which holds the store's writer. A cancel that comes for it before it joins the
        loop is kept and applied once it has; then ``stored(dispatch_id)`` runs, on the
        loop's thread (the server stores the dispatch's triggers). Raises as
        :meth:`submit`. Cancelling the caller (its client went away, the server stops)
        does not stop the thread: a dispatch it stores still joins the loop, and
        :meth:`stop` waits for it."""
        dispatch_id = str(uuid.uuid4())
        self._joining[dispatch_id] = []

        async def accept() -> str:
            try:
                done = await asyncio.to_thread(
                    submissionmod.submit,
                    self.store,
                    self.results_root,
                    manifest,
                    blobs,
                    disable_run,
                    parent,
                    dispatch_id,
                )
                self._submitted(done)
            finally:
                held = self._joining.pop(dispatch_id)
            for cancel in held:  # after the run's Joined: the loop applies them in order
                self.queue.put_nowait(cancel)
            if stored is not None:
                stored(dispatch_id)
            return dispatch_id

        accepting = asyncio.ensure_future(accept())
        self._accepting.add(accepting)
        accepting.add_done_callback(self._accepted)
        return await asyncio.shield(accepting)

    def _accepted(self, accepting: asyncio.Future[Any]) -> None:
        """An accepting task ended: forget it."""
        self._accepting.discard(accepting)

    def _submitted(self, done: submissionmod.Submitted) -> str:
        """A stored dispatch: its first transitions to the live stream, a log line, and
        its run to the loop."""
        self.events.publish(done.transitions)
        info = journal.fields(done.dispatch_id, "dispatch.submitted")
        log.info(
            "lattice %s, %d nodes", done.row["lattice_name"], done.row["node_count"], extra=info
        )
        if done.run is not None:
            self.queue.put_nowait(Joined(done.run))
        return done.dispatch_id

    def cancel(self, dispatch_id: str, node_ids: list[int] | None = None) -> None:
        """Cancel the dispatch, or only ``node_ids`` (and what depends on them); an empty
        list is the whole dispatch, as in Covalent's ``ct.cancel(id, task_ids=[])``.
        Raises DispatchNotFoundError."""
        node_ids = node_ids or None
        if self.store.get_dispatch(dispatch_id) is None:
            raise DispatchNotFoundError(dispatch_id)
        held = self._joining.get(dispatch_id)
        if held is not None:  # stored, but its run is not in the loop yet
            held.append(CancelRequested(dispatch_id, node_ids))
            return
        self.queue.put_nowait(CancelRequested(dispatch_id, node_ids))

    async def wait(self, dispatch_id: str, timeout: float) -> None:
        """Return when the dispatch is finished, or after ``timeout`` seconds, or when the
        server begins to stop; at once if it is not running in this loop (finished, not
        started, or unknown: the caller reads its row from the store, and says so).

        A waiter is one future, released by :meth:`_retire` (no store read, no task)."""
        if dispatch_id not in self.runs or self.closing.is_set():
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        waiters = self._finished.setdefault(dispatch_id, set())
        waiters.add(waiter)
        timer = loop.call_later(timeout, _release, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            waiters.discard(waiter)
            if not waiters and self._finished.get(dispatch_id) is waiters:
                del self._finished[dispatch_id]

    def begin_shutdown(self) -> None:
        """Release every waiting request, so the server can stop without waiting for them.

        Safe to call from a signal handler's thread.
        """
        if self._event_loop is not None:
            self._event_loop.call_soon_threadsafe(self._release_all)

    def _release_all(self) -> None:
        self.closing.set()
        for waiters in self._finished.values():
            for waiter in waiters:
                _release(waiter)

    # the loop

    async def _loop(self) -> None:
        while True:
            events = [await self.queue.get()]
            while not self.queue.empty() and len(events) < TURN_EVENTS:
                events.append(self.queue.get_nowait())
            for part in _small_first(events):
                try:
                    await self.turn(part)
                except Exception:  # a bug outside any one dispatch: keep the loop alive
                    log.exception("a turn of the dispatcher loop failed")
                if not self.queue.empty() or part is not events:
                    await asyncio.sleep(0)  # the requests waiting get a step between turns

    async def turn(self, events: list[Event]) -> None:
        """One turn: decide about ``events``, commit, act."""
        changes = Changes()
        now = time.time()
        effects: dict[str, Effects] = {}
        for event in events:
            self._decide(event, changes, effects, now)
        for dispatch_id, fx in list(effects.items()):
            run = self.runs.get(dispatch_id)
            if run is not None and not fx.finished:
                self._guarded(run, fx, changes, lambda r, f: _advance(r, f, now), now)
            if run is not None and self.validate and not run.aborted:
                self._guarded(run, fx, changes, lambda r, f: r.validate(), now)
        self._effects = effects  # where an abort by the committer records itself
        await self.committer.commit(changes)
        if self.events.subscribers:  # output first: a node's last words before its end
            self.events.publish(_output_events(effects))
        self.events.publish(changes.transitions)
        if log.isEnabledFor(logging.DEBUG):
            journal.log_transitions(changes.transitions)
        if log.isEnabledFor(logging.INFO):
            journal.log_failures(changes.transitions, self.runs)
        for dispatch_id, fx in effects.items():
            self._act(dispatch_id, fx)

    def _decide(
        self, event: Event, changes: Changes, effects: dict[str, Effects], now: float
    ) -> None:
        if isinstance(event, Joined):
            self.runs[event.dispatch_id] = event.run
            event.run.chains = self.launcher.chains
            how = "running (resumed after a restart)" if event.resumed else "running"
            log.info(how, extra=journal.fields(event.dispatch_id, "dispatch.started"))
        run = self.runs.get(event.dispatch_id)
        if run is None:
            self._stray(event)
            return
        if isinstance(event, TaskFinished):
            self.launcher.forget(event.dispatch_id, event.node_id)
        fx = effects.get(run.dispatch_id)
        if fx is None:
            fx = effects[run.dispatch_id] = Effects(changes)
        if fx.finished:
            return
        if isinstance(event, Faulted):
            log.error("%s", event.error, extra=journal.fields(run.dispatch_id, "dispatch.failed"))
            run.abort(event.error, fx, now)
            return
        self._guarded(run, fx, changes, lambda r, f: _apply(r, event, f, now), now)

    def _guarded(self, run: Run, fx: Effects, changes: Changes, step: Any, now: float) -> None:
        """Apply ``step(run, fx)``; if it raises, drop what it wrote and abort the run."""
        mark = changes.mark()
        try:
            step(run, fx)
        except Exception:
            changes.rollback(mark)
            error = (
                f"covalent failed while running this dispatch (a bug; please report it):\n"
                f"{traceback.format_exc()}"
            )
            log.error("%s", error, extra=journal.fields(run.dispatch_id, "dispatch.failed"))
            run.abort(error, fx, now)

    def _stray(self, event: Event) -> None:
        """An event for a dispatch that is not running (finished or aborted)."""
        if isinstance(event, TaskFinished):
            self.launcher.forget(event.dispatch_id, event.node_id)
        elif isinstance(event, ChildStarted):  # its parent is gone: the child must not run
            self.queue.put_nowait(CancelRequested(event.child, None))

    def _abort_unstorable(self, dispatch_id: str, error: str) -> None:
        """The store refused a dispatch's writes: it fails, and that is stored."""
        run = self.runs.get(dispatch_id)
        if run is None:
            return
        fx = Effects(Changes())
        run.abort(f"covalent could not store this dispatch's changes:\n{error}", fx, time.time())
        try:
            self.store.commit(fx.changes)
        except Exception:
            log.exception(
                "cannot store the failure", extra=journal.fields(dispatch_id, "dispatch.failed")
            )
        self._effects[dispatch_id] = fx

    def _act(self, dispatch_id: str, fx: Effects) -> None:
        run = self.runs.get(dispatch_id)
        if run is None:
            return
        try:
            self._do(run, fx)
        except Exception:
            error = f"covalent failed while acting on this dispatch:\n{traceback.format_exc()}"
            self.queue.put_nowait(Faulted(dispatch_id, error))

    def _do(self, run: Run, fx: Effects) -> None:
        for path, text in fx.spill:
            _append(path, text)
        for node_id in fx.stop:
            self.launcher.stop(run.dispatch_id, node_id)
        for child in fx.stop_children:
            self.queue.put_nowait(CancelRequested(child, None))
        if fx.launch:
            self.launcher.start(run, fx.launch)
        for node_id, key in fx.cache_lookups:
            self.queue.put_nowait(CacheChecked(run.dispatch_id, node_id, self._cached(key)))
        for node_id, outcome in fx.children:
            self._submit_child(run, node_id, outcome)
        if fx.more_ready:
            self.queue.put_nowait(MoreReady(run.dispatch_id))
        if fx.parent is not None:
            self.queue.put_nowait(TaskFinished(*fx.parent))
        if fx.finished:
            self._retire(run)

    def _retire(self, run: Run) -> None:
        if log.isEnabledFor(logging.INFO):
            info = journal.fields(run.dispatch_id, "dispatch.finished")
            log.info("%s", journal.summary(run), extra=info)
        self.runs.pop(run.dispatch_id, None)
        if len(run.nodes) >= LARGE_RUN:
            self._let_go(run)
        for waiter in self._finished.pop(run.dispatch_id, ()):
            _release(waiter)

    def _let_go(self, run: Run) -> None:
        """A large run has ended: its inputs and outputs leave the shared blob cache (they
        are stored; the result stays, for a client's wait to take), and once the run is
        freed (after this turn) the C heap gives its free pages back."""
        result = run.result_digest()
        self.store.cache.drop(d for d in run.outputs if d != result)
        if _TRIM is not None:
            asyncio.get_running_loop().call_soon(_TRIM, 0)

    def _cached(self, key: str) -> Reuse | None:
        """A stored output for a ``cache=True`` node's key; with the store unreachable,
        none (the node runs: a cache is never worth waiting for)."""
        try:
            found = cachemod.find(self.store, key)
        except StoreUnavailableError:
            return None
        return Reuse(*found) if found is not None else None

    def _submit_child(self, run: Run, node_id: int, outcome: Outcome) -> None:
        """A sublattice node's build finished: run the lattice it built as a child. While
        the store is unreachable, try again every few seconds."""
        parent = Parent(run.dispatch_id, node_id, run.root_dispatch_id)
        if sublattices.bundle_size(outcome) > LARGE_CHILD_BYTES:
            submitting = asyncio.ensure_future(
                self._submit_large_child(run, node_id, outcome, parent)
            )
            self._accepting.add(submitting)  # stop() waits for it
            submitting.add_done_callback(self._accepting.discard)
            return
        try:
            manifest, blobs = sublattices.child_bundle(outcome)
            child = self.submit(manifest, blobs, parent=parent)
        except CovalentError as e:
            self._child_not_started(run, node_id, outcome, e)
            return
        self.queue.put_nowait(ChildStarted(run.dispatch_id, node_id, child))

    async def _submit_large_child(
        self, run: Run, node_id: int, outcome: Outcome, parent: Parent
    ) -> None:
        """:meth:`_submit_child` for a large child: read, checked and stored in threads
        (:meth:`submit_in_thread`), while the loop goes on."""
        try:
            manifest, blobs = await asyncio.to_thread(sublattices.child_bundle, outcome)
            child = await self.submit_in_thread(manifest, blobs, parent=parent)
        except CovalentError as e:
            self._child_not_started(run, node_id, outcome, e)
            return
        except Exception:
            error = f"covalent failed while starting a sublattice:\n{traceback.format_exc()}"
            self.queue.put_nowait(Faulted(run.dispatch_id, error))
            return
        self.queue.put_nowait(ChildStarted(run.dispatch_id, node_id, child))

    def _child_not_started(
        self, run: Run, node_id: int, outcome: Outcome, error: CovalentError
    ) -> None:
        """A child's submission raised: while the store is unreachable it is tried again
        every few seconds; any other refusal fails the sublattice node."""
        if isinstance(error, StoreUnavailableError):
            asyncio.get_running_loop().call_later(
                SUBMIT_RETRY, self._submit_child_if_running, run, node_id, outcome
            )
            return
        failed = Outcome.failure(f"The sublattice could not be started: {error}")
        self.queue.put_nowait(TaskFinished(run.dispatch_id, node_id, failed))

    def _submit_child_if_running(self, run: Run, node_id: int, outcome: Outcome) -> None:
        if self.runs.get(run.dispatch_id) is run and run.children.get(node_id, "") is None:
            try:
                self._submit_child(run, node_id, outcome)
            except Exception:
                error = f"covalent failed while starting a sublattice:\n{traceback.format_exc()}"
                self.queue.put_nowait(Faulted(run.dispatch_id, error))

    # resume

    def _resume(self, dispatch_id: str) -> None:
        try:
            run, changes = resume.load(self.store, dispatch_id)
            self.store.commit(changes)
        except Exception as e:
            log.exception("cannot resume", extra=journal.fields(dispatch_id, "dispatch.failed"))
            resume.fail_unloadable(self.store, dispatch_id, e)
            return
        self.queue.put_nowait(Joined(run, resumed=True))
        for node_id, outcome in sublattices.finished_children(self.store, run.children):
            self.queue.put_nowait(TaskFinished(dispatch_id, node_id, outcome))


def _small_first(events: list[Event]) -> list[list[Event]]:
    """``events`` as the turns to decide them in: when many come at once, those of
    dispatches with few of them (at most ``SMALL_SHARE`` each) first, in a short turn of
    their own, then the rest; each dispatch's events stay in their order. A seed's step
    then waits for no large run's turn but the one under way (~170 ms for 10,000 task
    ends of a large fan-out)."""
    if len(events) <= SPLIT_TURN_AT:
        return [events]
    counts = Counter(event.dispatch_id for event in events)
    small = [event for event in events if counts[event.dispatch_id] <= SMALL_SHARE]
    if not small or len(small) == len(events):
        return [events]
    return [small, [event for event in events if counts[event.dispatch_id] > SMALL_SHARE]]


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _output_events(effects: dict[str, Effects]) -> list[dict[str, Any]]:
    """What nodes wrote this turn, as the live stream's ``output`` events."""
    return [
        {
            "type": "output",
            "dispatch_id": dispatch_id,
            "node_id": node_id,
            "stream": stream,
            "offset": offset,
            "text": text,
        }
        for dispatch_id, fx in effects.items()
        for node_id, stream, offset, text in fx.output
    ]


def _append(path: str, text: str) -> None:
    """Append to a stream's log file (a stream past the store's limit)."""
    try:
        with open(path, "a", encoding="utf-8", errors="replace") as f:
            f.write(text)
    except OSError:
        log.exception("cannot write the log file %s", path)


def _apply(run: Run, event: Event, fx: Effects, now: float) -> None:
    """Hand one event to its run."""
    if isinstance(event, Joined):
        run.begin(fx, now)
    elif isinstance(event, TaskStarted):
        run.task_started(event.node_id, event.at, fx)
    elif isinstance(event, TaskOutput):
        run.task_output(event.node_id, event.stream, event.text, fx)
    elif isinstance(event, TaskFinished):
        run.task_finished(event.node_id, event.outcome, fx)
    elif isinstance(event, AttemptFailed):
        run.attempt_failed(event.node_id, event.attempt, event.outcome, fx)
    elif isinstance(event, CancelRequested):
        run.cancel(event.node_ids, fx, now)
    elif isinstance(event, CacheChecked):
        run.cache_checked(event.node_id, event.hit, fx, now)
    elif isinstance(event, ChildStarted):
        run.child_started(event.node_id, event.child, fx)


def _advance(run: Run, fx: Effects, now: float) -> None:
    """After a turn's events: start what is ready, end the run if nothing is left."""
    run.take_ready(fx, now, LAUNCH_CHUNK, IN_FLIGHT)
    run.conclude(fx, now)
