"""The dispatcher loop: one asyncio task that owns every running dispatch.

Events (a new dispatch, a task's outcome, a cancel request) arrive on one queue. The
loop drains every event waiting, applies them to the runs in memory, decides which
nodes are now ready, commits all resulting changes in one transaction, and only then
hands the ready nodes to their executors and wakes whoever waits for a finished
dispatch. Executors report back through the same queue; nothing else changes state.

On start, every dispatch the store says is RUNNING is resumed: completed nodes keep
their outputs, nodes that were running run again (at-least-once).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from covalent._dispatcher import reuse as reusemod
from covalent._dispatcher.executors import ExecutorRegistry
from covalent._dispatcher.run import Run
from covalent._errors import CovalentError, DispatchNotFoundError, StoreUnavailableError
from covalent._results.status import FINAL_STATUSES, Status
from covalent._store import cache as cachemod
from covalent._store.store import Changes, Store
from covalent._wire import blobs as blobmod
from covalent._wire import bundle
from covalent._wire import manifest as manifestmod
from covalent._wire.manifest import topological_order
from covalent.executor.base import BaseExecutor, Outcome, Task

log = logging.getLogger("covalent.dispatcher")


def sorted_inputs(run: Run, node_id: int) -> list[list[Any]]:
    """A node's positional input edges in argument order."""
    return sorted((e for e in run.inputs[node_id] if e[2] is not None), key=lambda e: e[2])


class EventHub:
    """Committed transitions, fanned out to subscribers (the UI's live stream).

    A subscriber is a bounded queue; one that falls behind loses events and gets a
    ``{"lagged": True}`` marker instead, so a slow browser never slows the dispatcher.
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self.subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.size)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.subscribers.discard(queue)

    def publish(self, transitions: list[dict[str, Any]]) -> None:
        for queue in self.subscribers:
            for event in transitions:
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:
                    _replace_with_lag_marker(queue)
                    break


def _fields(dispatch_id: str, event: str, node_id: int | None = None) -> dict[str, Any]:
    """The structured fields of a log record (see covalent/_server/logs.py)."""
    return {"dispatch_id": dispatch_id, "node_id": node_id, "event": event}


def _log_transitions(transitions: list[dict[str, Any]]) -> None:
    """One DEBUG line per committed status change, with its cause."""
    for t in transitions:
        node = t["node_id"] if t["node_id"] >= 0 else None
        event = f"{'node' if node is not None else 'dispatch'}.{t['new'].lower()}"
        extra = _fields(t["dispatch_id"], event, node)
        log.debug("%s -> %s: %s", t["old"], t["new"], t["cause"], extra=extra)


def _policy(executor: BaseExecutor, task: Task) -> dict[str, Any]:
    """A task's timeout, retries and retry delay: its electron's, over the executor's."""
    return {**executor._task_policy, **task.metadata}


def _supervised(policy: dict[str, Any]) -> bool:
    """Whether a task needs a coroutine watching it: a timeout, or retries."""
    return bool(policy.get("timeout") or policy.get("retries"))


def _replace_with_lag_marker(queue: asyncio.Queue[dict[str, Any]]) -> None:
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait({"lagged": True})


@dataclass
class _Start:
    run: Run


@dataclass
class _Finished:
    dispatch_id: str
    node_id: int
    outcome: Outcome


@dataclass
class _Retry:
    dispatch_id: str
    node_id: int
    attempt: int
    outcome: Outcome


@dataclass
class _Cancel:
    dispatch_id: str
    node_ids: list[int] | None


@dataclass
class _More:
    """A run has more ready nodes than one turn starts: come back for them."""

    dispatch_id: str


OUTAGE_RETRY = 0.5
OUTAGE_RETRY_MAX = 5.0
"""Seconds between attempts to commit while the database is unreachable (doubling)."""

LAUNCH_CHUNK = 1024
"""The most nodes of one run a turn of the loop starts: the first tasks of a wide
fan-out run while the loop commits and hands over the rest, instead of after."""


class Dispatcher:
    def __init__(
        self, store: Store, results_root: str | Path, executors: ExecutorRegistry | None = None
    ) -> None:
        self.store = store
        self.results_root = Path(results_root)
        self.executors = executors or ExecutorRegistry()
        self.runs: dict[str, Run] = {}
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self._finished: dict[str, asyncio.Event] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self.closing = asyncio.Event()
        self.events = EventHub()
        self._blobs_dir = str(store.blobs_dir)

    # lifecycle

    async def start(self) -> None:
        self._event_loop = asyncio.get_running_loop()
        self._loop_task = asyncio.create_task(self._loop(), name="covalent-dispatcher")
        for dispatch_id in self.store.unfinished_dispatches(
            [s.value for s in FINAL_STATUSES] + ["NEW_OBJECT"]
        ):
            self._resume(dispatch_id)

    async def stop(self) -> None:
        for run in self.runs.values():
            for task in run.running.values():
                task.cancel()
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
        parent: tuple[str, int, str] | None = None,
    ) -> str:
        """Validate, store and start a dispatch; return its id once it is committed.

        ``parent`` is (dispatch id, node id, root dispatch id) for a sublattice's dispatch.
        """
        manifestmod.validate(manifest, self._available(manifest, blobs).__contains__)
        reused = self._reusable(manifest)
        dispatch_id = str(uuid.uuid4())
        now = time.time()
        results_dir = self.results_root / dispatch_id
        results_dir.mkdir(parents=True, exist_ok=True)
        status = Status.NEW_OBJECT if disable_run else Status.RUNNING
        changes = Changes(blobs=blobs)
        changes.transition(dispatch_id, -1, None, status.value, now, "submitted")
        node_rows = self._node_rows(dispatch_id, manifest["nodes"], now)
        row = {
            "dispatch_id": dispatch_id,
            "root_dispatch_id": parent[2] if parent else dispatch_id,
            "parent_dispatch_id": parent[0] if parent else None,
            "parent_node_id": parent[1] if parent else None,
            "lattice_name": manifest["lattice"]["name"],
            "status": status.value,
            "created_at": now,
            "start_time": None if disable_run else now,
            "node_count": sum(r[3] != "parameter" for r in node_rows),  # electrons
            "manifest": manifestmod.dumps({k: v for k, v in manifest.items() if k != "blobs"}),
            "summary": json.dumps(manifestmod.summary(manifest)),
            "results_dir": str(results_dir),
        }
        self.store.create_dispatch(row, node_rows, changes)
        self.events.publish(changes.transitions)
        info = _fields(dispatch_id, "dispatch.submitted")
        log.info("lattice %s, %d nodes", row["lattice_name"], len(node_rows), extra=info)
        if not disable_run:
            run = self._new_run(dispatch_id, manifest, str(results_dir))
            run.parent = (parent[0], parent[1]) if parent else None
            run.root_dispatch_id = row["root_dispatch_id"]
            run.pending_reuse = reused
            self.queue.put_nowait(_Start(run))
        return dispatch_id

    def _available(self, manifest: dict[str, Any], blobs: dict[str, bytes]) -> set[str]:
        """The blobs a manifest names that are in the request or already stored, found
        with one query (a re-submitted manifest sends none and may name thousands)."""
        named = manifestmod.named_blobs(manifest) - blobs.keys()
        return set(blobs) | (named - self.store.missing_blobs(named))

    def _reusable(self, manifest: dict[str, Any]) -> dict[int, tuple[str, str, str]]:
        """For a redispatch with reuse: node id -> (digest, repr, "dispatch:node") reused."""
        source = (manifest.get("reuse") or {}).get("dispatch_id")
        if not source:
            return {}
        old = self.store.get_dispatch(str(source), with_manifest=True)
        if old is None:
            raise DispatchNotFoundError(str(source))
        found = reusemod.reusable(manifest, old["manifest"], self.store.get_nodes(str(source)))
        return {n: (digest, text, f"{source}:{n}") for n, (digest, text) in found.items()}

    @staticmethod
    def _node_rows(
        dispatch_id: str, nodes: list[dict[str, Any]], now: float
    ) -> list[tuple[Any, ...]]:
        """The nodes' first rows, as ``NODE_COLUMNS`` tuples: parameters are COMPLETED with
        their value, the rest NEW_OBJECT. (Their first state has no transition row of its
        own: the dispatch's ``submitted`` row stands for all of them.)"""
        completed, new = Status.COMPLETED.value, Status.NEW_OBJECT.value
        return [
            (
                dispatch_id,
                n["id"],
                n["name"],
                "parameter",
                completed,
                None,
                now,
                now,
                n["value"],
                n.get("value_repr"),
                0,
            )
            if n["kind"] == "parameter"
            else (
                dispatch_id,
                n["id"],
                n["name"],
                n["kind"],
                new,
                n["executor"]["name"],
                None,
                None,
                None,
                None,
                0,
            )
            for n in nodes
        ]

    @staticmethod
    def _new_run(dispatch_id: str, manifest: dict[str, Any], results_dir: str) -> Run:
        status = [
            Status.COMPLETED if n["kind"] == "parameter" else Status.NEW_OBJECT
            for n in manifest["nodes"]
        ]
        outputs = [n.get("value") for n in manifest["nodes"]]
        return Run(dispatch_id, manifest, results_dir, status, outputs)

    def cancel(self, dispatch_id: str, node_ids: list[int] | None = None) -> None:
        if self.store.get_dispatch(dispatch_id) is None:
            raise DispatchNotFoundError(dispatch_id)
        self.queue.put_nowait(_Cancel(dispatch_id, node_ids))

    async def wait(self, dispatch_id: str, timeout: float) -> None:
        """Return when the dispatch is finished, or after ``timeout`` seconds."""
        row = self.store.get_dispatch(dispatch_id)
        if row is None:
            raise DispatchNotFoundError(dispatch_id)
        if Status(row["status"]) in FINAL_STATUSES or dispatch_id not in self.runs:
            return
        event = self._finished.setdefault(dispatch_id, asyncio.Event())
        waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self.closing.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    def begin_shutdown(self) -> None:
        """Release every waiting request, so the server can stop without waiting for them.

        Safe to call from a signal handler's thread.
        """
        if self._event_loop is not None:
            self._event_loop.call_soon_threadsafe(self.closing.set)

    # the loop

    async def _loop(self) -> None:
        while True:
            events = [await self.queue.get()]
            while not self.queue.empty():
                events.append(self.queue.get_nowait())
            try:
                await self._step(events)
            except Exception:  # a bug must not stop every other dispatch
                log.exception("dispatcher step failed")

    async def _step(self, events: list[Any]) -> None:
        changes = Changes()
        touched: dict[str, Run] = {}
        now = time.time()
        for event in events:
            run = self._apply(event, changes, now)
            if run is not None:
                touched[run.dispatch_id] = run
        launches: list[tuple[Run, int]] = []
        finished: list[Run] = []
        for run in touched.values():
            ready = self._take_ready(run, changes, now)
            launches.extend(ready)
            if not ready and run.finished:
                self._finish(run, changes, now)
                finished.append(run)
        await self._commit(changes)
        self.events.publish(changes.transitions)
        if log.isEnabledFor(logging.DEBUG):
            _log_transitions(changes.transitions)
        self._launch(launches)
        for run in finished:
            info = _fields(run.dispatch_id, "dispatch.finished")
            log.info("%s", run.dispatch_status.value, extra=info)
            self.runs.pop(run.dispatch_id, None)
            event = self._finished.pop(run.dispatch_id, None)
            if event is not None:
                event.set()

    async def _commit(self, changes: Changes) -> None:
        """Commit a turn's changes; while the database is unreachable, wait and try again
        (nothing is launched or reported before it is stored; events queue meanwhile)."""
        delay = OUTAGE_RETRY
        while True:
            try:
                self.store.commit(changes)
            except StoreUnavailableError as e:
                log.warning("waiting for the database: %s", e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, OUTAGE_RETRY_MAX)
                continue
            if delay > OUTAGE_RETRY:
                log.warning("the database is back; the dispatcher goes on")
            return

    def _apply(self, event: Any, changes: Changes, now: float) -> Run | None:
        if isinstance(event, _Start):
            self.runs[event.run.dispatch_id] = event.run
            self._apply_reuse(event.run, changes, now)
            log.info("running", extra=_fields(event.run.dispatch_id, "dispatch.started"))
            return event.run
        run = self.runs.get(event.dispatch_id)
        if run is None:
            return None
        if isinstance(event, _Finished):
            self._record(run, event.node_id, event.outcome, changes)
        elif isinstance(event, _Retry):
            self._record_attempt(run, event, changes)
        elif isinstance(event, _Cancel):
            self._cancel(run, event.node_ids, changes, now)
        return run

    def _record(self, run: Run, node_id: int, outcome: Outcome, changes: Changes) -> None:
        run.running.pop(node_id, None)
        digest = None
        completed = outcome.status == Status.COMPLETED
        if completed and outcome.output_file is not None:
            written = outcome.output_file
            digest = written.digest
            changes.blob_files.append(
                {"digest": digest, "size": written.size, "data": None, "path": written.path}
            )
        elif completed and outcome.output is not None:
            digest = blobmod.digest(outcome.output)
            changes.blobs[digest] = outcome.output
        if (
            digest is not None
            and run.node(node_id)["kind"] == "sublattice"
            and not outcome.output_ref
        ):
            self._start_subdispatch(run, node_id, outcome, changes)
            return
        if completed and outcome.output_ref:
            run.subdispatches.pop(node_id, None)
            digest = outcome.output_ref
        if digest is not None:
            if node_id in run.cache_keys:
                changes.cache_rows.append(
                    cachemod.remember(
                        run.cache_keys[node_id],
                        run.dispatch_id,
                        node_id,
                        digest,
                        outcome.output_repr,
                    )
                )
            run.reprs[node_id] = outcome.output_repr
            run.set_status(
                changes,
                node_id,
                Status.COMPLETED,
                outcome.end_time,
                "completed",
                output_digest=digest,
                output_repr=outcome.output_repr,
                start_time=outcome.start_time,
                end_time=outcome.end_time,
                stdout=outcome.stdout,
                stderr=outcome.stderr,
            )
            run.complete(changes, node_id, digest)
            return
        run.subdispatches.pop(node_id, None)
        status = Status.CANCELLED if outcome.status == Status.CANCELLED else Status.FAILED
        run.errors[node_id] = outcome.error
        run.set_status(
            changes,
            node_id,
            status,
            outcome.end_time,
            status.value.lower(),
            error=outcome.error,
            start_time=outcome.start_time,
            end_time=outcome.end_time,
            stdout=outcome.stdout,
            stderr=outcome.stderr,
        )
        after = Status.CANCELLED if status == Status.CANCELLED else Status.NOT_RUN
        run.stop_descendants(changes, node_id, after, outcome.end_time)

    @staticmethod
    def _record_attempt(run: Run, event: _Retry, changes: Changes) -> None:
        outcome = event.outcome
        changes.attempts.append(
            {
                "dispatch_id": run.dispatch_id,
                "node_id": event.node_id,
                "attempt": event.attempt,
                "status": outcome.status.value,
                "start_time": outcome.start_time,
                "end_time": outcome.end_time,
                "error": outcome.error,
                "stdout": outcome.stdout,
                "stderr": outcome.stderr,
            }
        )
        changes.node_updates.append(
            {"_d": run.dispatch_id, "_n": event.node_id, "attempts": event.attempt + 1}
        )

    def _cancel(self, run: Run, node_ids: list[int] | None, changes: Changes, now: float) -> None:
        targets = (
            range(len(run.status))
            if node_ids is None
            else [n for n in node_ids if 0 <= n < len(run.status)]
        )
        if node_ids is None:
            run.cancel_requested = True
        for node_id in targets:
            if node_id in run.subdispatches:
                self.queue.put_nowait(_Cancel(run.subdispatches[node_id], None))
            elif node_id in run.running:
                run.running[node_id].cancel()
            elif run.status[node_id] == Status.NEW_OBJECT:
                run.set_status(changes, node_id, Status.CANCELLED, now, "cancel requested")
                run.stop_descendants(changes, node_id, Status.CANCELLED, now)
        if run.ready:
            run.ready = type(run.ready)(n for n in run.ready if run.status[n] == Status.NEW_OBJECT)

    def _take_ready(self, run: Run, changes: Changes, now: float) -> list[tuple[Run, int]]:
        launches: list[tuple[Run, int]] = []
        while run.ready and not run.cancel_requested:
            if len(launches) == LAUNCH_CHUNK:
                self.queue.put_nowait(_More(run.dispatch_id))
                return launches
            node_id = run.ready.popleft()
            if run.status[node_id] != Status.NEW_OBJECT:
                continue
            shape = run.node(node_id).get("metadata", {}).get("collection")
            if shape and run.node(node_id)["kind"] == "collection":
                self._assemble(run, node_id, shape, changes, now)
                continue
            if run.node(node_id).get("metadata", {}).get("cache") and self._reuse_cached(
                run, node_id, changes, now
            ):
                continue
            run.set_status(
                changes, node_id, Status.RUNNING, now, "inputs ready", start_time=now, attempts=1
            )
            launches.append((run, node_id))
        run.ready.clear()
        return launches

    @staticmethod
    def _assemble(
        run: Run, node_id: int, shape: dict[str, Any], changes: Changes, now: float
    ) -> None:
        """Complete a collection node with a composite blob of its items' digests: the
        items' bytes are not copied; whoever loads the value assembles it."""
        args, _ = run.arguments(node_id)
        data = blobmod.composite(shape, args)
        digest = blobmod.digest(data)
        changes.blobs[digest] = data
        text = ", ".join(run.reprs.get(e[0], "...") for e in sorted_inputs(run, node_id))
        text = {"list": f"[{text}]", "tuple": f"({text})", "set": f"{{{text}}}"}.get(
            shape["type"], f"{{{text}}}"
        )
        text = text if len(text) <= blobmod.REPR_LIMIT else text[: blobmod.REPR_LIMIT - 3] + "..."
        run.set_status(changes, node_id, Status.RUNNING, now, "inputs ready", start_time=now)
        run.set_status(
            changes,
            node_id,
            Status.COMPLETED,
            now,
            "assembled from its items",
            output_digest=digest,
            output_repr=text,
            end_time=now,
        )
        run.reprs[node_id] = text
        run.complete(changes, node_id, digest)

    def _reuse_cached(self, run: Run, node_id: int, changes: Changes, now: float) -> bool:
        """Complete a ``cache=True`` node from the cache if an equal call ran before."""
        node = run.node(node_id)
        args, kwargs = run.arguments(node_id)
        key = cachemod.cache_key(node["function"], args, kwargs, node["metadata"].get("extras"))
        run.cache_keys[node_id] = key
        hit = cachemod.lookup(self.store, key)
        if hit is None or not self._load_blob_exists(hit["output_digest"]):
            return False
        source = f"{hit['dispatch_id']}:{hit['node_id']}"
        self._reuse(
            run,
            node_id,
            hit["output_digest"],
            hit["output_repr"] or "",
            source,
            changes,
            now,
            "cached output of an equal call",
        )
        return True

    def _apply_reuse(self, run: Run, changes: Changes, now: float) -> None:
        order = topological_order(len(run.status), run.manifest["edges"])
        for node_id in (n for n in order if n in run.pending_reuse):
            if run.status[node_id] == Status.NEW_OBJECT:
                digest, text, source = run.pending_reuse[node_id]
                self._reuse(run, node_id, digest, text, source, changes, now, "unchanged")
        run.pending_reuse = {}

    def _load_blob_exists(self, digest: str) -> bool:
        return not self.store.missing_blobs([digest])

    @staticmethod
    def _reuse(
        run: Run,
        node_id: int,
        digest: str,
        text: str,
        source: str,
        changes: Changes,
        now: float,
        cause: str,
    ) -> None:
        """A node completes with a stored output instead of running (PENDING_REUSE first)."""
        if run.status[node_id] != Status.PENDING_REUSE:
            run.set_status(changes, node_id, Status.PENDING_REUSE, now, cause)
        run.reprs[node_id] = text
        run.set_status(
            changes,
            node_id,
            Status.COMPLETED,
            now,
            f"reused {source}",
            output_digest=digest,
            output_repr=text,
            reused_from=source,
            start_time=now,
            end_time=now,
        )
        run.complete(changes, node_id, digest)

    def _finish(self, run: Run, changes: Changes, now: float) -> None:
        status = run.final_status()
        fields: dict[str, Any] = {"end_time": now, "error": run.error_text()}
        if status == Status.COMPLETED:
            fields["result_digest"] = run.result_digest()
        run.set_dispatch_status(changes, status, now, "all nodes finished", **fields)
        if run.parent is not None:
            self._report_to_parent(run.parent, run.dispatch_id, status, fields, run.result_repr())

    def _report_to_parent(
        self,
        parent: tuple[str, int],
        child: str,
        status: Status,
        fields: dict[str, Any],
        result_repr: str = "",
    ) -> None:
        """A sublattice's dispatch ended: its parent node ends the same way."""
        now = time.time()
        if status == Status.COMPLETED:
            outcome = Outcome(
                Status.COMPLETED,
                output_ref=fields["result_digest"],
                output_repr=result_repr,
                end_time=now,
            )
        else:
            detail = fields.get("error") or ""
            error = f"Its sublattice dispatch {child} ended {status.value}:\n{detail}"
            outcome = Outcome(
                status if status == Status.CANCELLED else Status.FAILED, error=error, end_time=now
            )
        self.queue.put_nowait(_Finished(parent[0], parent[1], outcome))

    def _start_subdispatch(
        self, run: Run, node_id: int, outcome: Outcome, changes: Changes
    ) -> None:
        """A sublattice node's build finished: run the lattice it built as a child dispatch."""
        try:
            data = outcome.output
            if data is None and outcome.output_file is not None:
                data = Path(outcome.output_file.path).read_bytes()
            manifest, blobs = bundle.unpack(data or b"")
            root = run.root_dispatch_id or run.dispatch_id
            child = self.submit(manifest, blobs, parent=(run.dispatch_id, node_id, root))
        except CovalentError as e:
            failed = Outcome.failure(f"The sublattice could not be started: {e}")
            self._record(run, node_id, failed, changes)
            return
        run.subdispatches[node_id] = child
        changes.node_updates.append(
            {"_d": run.dispatch_id, "_n": node_id, "sub_dispatch_id": child}
        )

    def _launch(self, launches: list[tuple[Run, int]]) -> None:
        """Hand nodes to their executors. Tasks with no timeout or retries, on executors
        already set up that can take them so, start at once, many per call, and report
        straight to the queue; the others are supervised by a coroutine each
        (:meth:`_execute`)."""
        fast: dict[int, tuple[BaseExecutor, list[tuple[Run, int, Task]]]] = {}
        for run, node_id in launches:
            node = run.node(node_id)
            task = self._task(run, node_id, node)
            executor = self.executors.cached(node["executor"])
            if executor is not None and not _supervised(_policy(executor, task)):
                fast.setdefault(id(executor), (executor, []))[1].append((run, node_id, task))
            else:
                run.running[node_id] = asyncio.create_task(self._execute(run, node_id, task))
        for executor, group in fast.values():
            try:
                handles = executor._start_many([(t, self._reporter(r, n)) for r, n, t in group])
            except Exception:
                handles = None
                log.exception("starting tasks on %s failed", type(executor).__name__)
            for position, (run, node_id, task) in enumerate(group):
                run.running[node_id] = (
                    handles[position]
                    if handles is not None
                    else asyncio.create_task(self._execute(run, node_id, task))
                )

    def _reporter(self, run: Run, node_id: int) -> Callable[[Outcome], None]:
        dispatch_id, put = run.dispatch_id, self.queue.put_nowait

        def report(outcome: Outcome) -> None:
            put(_Finished(dispatch_id, node_id, outcome))

        return report

    def _task(self, run: Run, node_id: int, node: dict[str, Any]) -> Task:
        args, kwargs = run.arguments(node_id)
        return Task(
            dispatch_id=run.dispatch_id,
            node_id=node_id,
            name=node["name"],
            function=node["function"],
            args=args,
            kwargs=kwargs,
            load_blob=self._load_blob,
            blob_file=self.store.blob_file,
            blobs_dir=self._blobs_dir,
            results_dir=run.results_dir,
            metadata={**node.get("metadata", {}), "sublattice": node["kind"] == "sublattice"},
        )

    async def _execute(self, run: Run, node_id: int, task: Task) -> None:
        """Run one node on its executor, with its retries and timeout; report the outcome."""
        node = run.node(node_id)
        attempt = 1
        executor: BaseExecutor | None = None
        try:
            executor = self.executors.cached(node["executor"]) or await self.executors.get(
                node["executor"]
            )
            policy = _policy(executor, task)
            while True:
                outcome = await self._attempt(executor, task, policy.get("timeout"))
                if outcome.status != Status.FAILED or attempt > int(policy.get("retries") or 0):
                    break
                self.queue.put_nowait(_Retry(run.dispatch_id, node_id, attempt, outcome))
                await asyncio.sleep(float(policy.get("retry_delay") or 0))
                attempt += 1
        except asyncio.CancelledError:
            outcome = Outcome(Status.CANCELLED, error="Cancelled while running.")
            if executor is not None:
                await self._tell_cancel(executor, task)
        except CovalentError as e:
            outcome = Outcome.failure(str(e))
        except Exception:
            outcome = Outcome.failure(
                f"The executor {node['executor']['name']!r} failed:\n{traceback.format_exc()}"
            )
        self.queue.put_nowait(_Finished(run.dispatch_id, node_id, outcome))

    @staticmethod
    async def _tell_cancel(executor: BaseExecutor, task: Task) -> None:
        """Let the executor know too (its ``cancel`` hook); its execute was cancelled."""
        try:
            await asyncio.wait_for(executor.cancel(task), 30)
        except Exception:
            log.exception("cancel hook of %s failed", type(executor).__name__)

    @staticmethod
    async def _attempt(executor: BaseExecutor, task: Task, timeout: float | None) -> Outcome:
        if not timeout:
            return await executor.execute(task)
        started = time.time()
        try:
            return await asyncio.wait_for(executor.execute(task), float(timeout))
        except asyncio.TimeoutError:
            return Outcome.failure(
                f"Electron {task.name}({task.node_id}) timed out: it ran longer than its "
                f"timeout of {float(timeout):g} s and was stopped.",
                start_time=started,
            )

    def _load_blob(self, name: str) -> bytes:
        data = self.store.read_blob(name)
        if data is None:
            raise CovalentError(f"Blob {name} is missing from the store.")
        return data

    # resume

    def _resume(self, dispatch_id: str) -> None:
        row = self.store.get_dispatch(dispatch_id, with_manifest=True)
        assert row is not None
        manifest = row["manifest"]
        run = self._new_run(dispatch_id, manifest, row["results_dir"])
        changes = Changes()
        now = time.time()
        for node in self.store.get_nodes(dispatch_id):
            node_id, status = node["node_id"], Status(node["status"])
            run.status[node_id] = status
            run.outputs[node_id] = node["output_digest"]
            run.errors[node_id] = node["error"] or ""
            run.reprs[node_id] = node["output_repr"] or ""
            if status == Status.RUNNING and node["sub_dispatch_id"]:
                run.subdispatches[node_id] = node["sub_dispatch_id"]  # it resumes on its own
            elif status == Status.RUNNING:
                run.set_status(
                    changes,
                    node_id,
                    Status.NEW_OBJECT,
                    now,
                    "server restarted while it ran; it runs again",
                )
        self.store.commit(changes)
        run.refresh_readiness()
        run.root_dispatch_id = row["root_dispatch_id"]
        if row.get("parent_dispatch_id"):
            run.parent = (row["parent_dispatch_id"], row["parent_node_id"])
        self.queue.put_nowait(_Start(run))
        for node_id, child in run.subdispatches.items():
            self._relink_finished_child(dispatch_id, node_id, child)

    def _relink_finished_child(self, dispatch_id: str, node_id: int, child: str) -> None:
        """A sublattice that finished while its parent was not recorded: report it now."""
        row = self.store.get_dispatch(child)
        if row is None:
            self.queue.put_nowait(
                _Finished(dispatch_id, node_id, Outcome.failure(f"Sublattice {child} is gone."))
            )
        elif Status(row["status"]) in FINAL_STATUSES:
            self._report_to_parent((dispatch_id, node_id), child, Status(row["status"]), row)
