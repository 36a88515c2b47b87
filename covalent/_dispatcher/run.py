"""One dispatch's state while it runs, and every change of it: the state machine.

A :class:`Run` is to a dispatch what distributed's ``WorkerState`` is to a worker. The
dispatcher loop hands it what happened (a task's outcome, a failed attempt, a cancel
request, a cache answer, a child dispatch that started) through its public methods; it
changes its state through the transition table (:mod:`states`) and writes what must
happen into an :class:`Effects` record: rows to store, nodes to launch, tasks to stop,
cache keys to look up, child dispatches to submit, a parent to tell. It never does I/O,
so the loop can decide first, commit, and only then act.

:meth:`Run.validate` checks the invariants; the loop runs it after every turn when
``COVALENT_VALIDATE`` is set (the tests set it).
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from covalent._dispatcher import invariants, states
from covalent._dispatcher import reuse as reusemod
from covalent._dispatcher.effects import Effects, Reuse, failed_attempt, stored_output
from covalent._dispatcher.graph_index import Dependents, Inputs, MissingInput
from covalent._dispatcher.streams import RunOutput, where_it_was
from covalent._dispatcher.sublattices import outcome_for_parent
from covalent._results.status import FINAL_STATUSES, Status
from covalent._store.cache import cache_key, remember
from covalent._store.changes import DISPATCH_NODE, DispatchUpdate, NodeUpdate
from covalent._wire import blobs as blobmod
from covalent._wire.manifest import topological_order
from covalent._wire.schema import Manifest, ManifestNode
from covalent.executor.payload import OUTPUT_BEFORE
from covalent.executor.task import Outcome

S = Status
NEW, RUNNING, COMPLETED = Status.NEW_OBJECT, Status.RUNNING, Status.COMPLETED
# (Enum members read through their class cost a descriptor call each: the hot paths below
# use these names instead of NEW and the like.)
_VALUE = {status: status.value for status in Status}
_ALLOWED = {status: states.NODE_TRANSITIONS.get(status, frozenset()) for status in Status}
_node_update = functools.partial(tuple.__new__, NodeUpdate)  # no Python-level __new__
STORY_LENGTH = 256
"""How many recent transitions a run remembers, for the errors that need a node's story."""
ASSEMBLED_KEPT_FROM = 1_000
"""Items from which a collection the run assembles keeps its list of items' digests
(8 bytes an item: the digests are the outputs' own strings) for the tasks that take it,
so that the pool does not read its composite back and parse it (W2 N=100,000's
``total``: 6.6 MB of JSON into 100,000 new strings, 11 MB)."""
CHAIN_AHEAD = 32
"""The most steps of a chain handed over beyond a running one (see
:meth:`Run._chain_after`; fewer where its steps are slow: :data:`CHAIN_AHEAD_SECONDS`).
The server reacts to a step's end in a few hundred microseconds, the worker runs a
trivial step in tens, so one step ahead left the worker waiting. Eight kept it busy
most of the time, but the server still turned every four or five steps (~210 turns for
a chain of 1,000); with 32 it turns every ten or so (75-115 turns) and W3 N=1,000 took
0.11-0.13 s against 0.15-0.19 s (docs/performance.md, 2026-12-02 morning); 64 gained
nothing more."""
CHAIN_AHEAD_SECONDS = 0.05
"""The time of the steps handed over beyond a running one, at most, as the chain's last
step took (the rule: :meth:`Run._chain_after`). A task that needs the worker meanwhile
(another dispatch's, once every worker is busy) waits behind them: 32 steps of 0.1 s
each would keep it 3.2 s. And the server, which turns every few milliseconds when
several chains reply at once, must find the worker still busy: 5 ms made 8 chains of
2 ms steps 2.5 times slower."""
CHAIN_AHEAD_GROWTH = 4
"""How many steps a chain's steps ahead may grow by as one step ends, and how many its
first step hands over (one left a short chain of quick steps waiting for the server at
its start: W3 N=10 ~1 ms slower): a quick step before slow ones (a chain's steps need
not take alike) hands over a few of them, not :data:`CHAIN_AHEAD`; a chain of quick
steps has all of them ahead after ten."""


class Run:
    """The in-memory state of one running dispatch. Only the dispatcher loop holds it,
    and only these methods change it."""

    def __init__(
        self,
        dispatch_id: str,
        manifest: Manifest | dict[str, Any],
        results_dir: str,
        parent: tuple[str, int] | None = None,
        root_dispatch_id: str = "",
        pending_reuse: dict[int, Reuse] | None = None,
        start_time: float = 0.0,
    ) -> None:
        self.dispatch_id = dispatch_id
        # The edges live on in the indexes below, not as the manifest's list of tuples
        # (200,000 for a fan-out of 100,000): only a redispatch's reuse, as the run
        # begins, reads them again.
        self.manifest: dict[str, Any] = {k: v for k, v in manifest.items() if k != "edges"}
        self._edges = manifest["edges"] if pending_reuse else None
        self.results_dir = results_dir
        self.parent = parent  # a child dispatch's (dispatch id, node id) above it
        self.root_dispatch_id = root_dispatch_id or dispatch_id
        self.nodes: list[ManifestNode] = manifest["nodes"]
        self.status = [COMPLETED if n["kind"] == "parameter" else NEW for n in self.nodes]
        self.parameters = self.status.count(COMPLETED)  # they stay COMPLETED
        self.outputs: list[str | None] = [n.get("value") for n in self.nodes]
        self.errors: dict[int, str] = {}
        self.reprs: dict[int, str] = {}
        self.dispatch_status = RUNNING
        self.start_time = start_time  # when the dispatch started (for the log)
        self.end_time = 0.0
        self.cancel_requested = False
        self.aborted = False
        self.running: set[int] = set()  # handed to executors: queued (NEW_OBJECT) or RUNNING
        self.started_at: dict[int, float] = {}  # when a running node's task really started
        self.output = RunOutput(results_dir)  # the nodes' stdout and stderr while they run
        self.children: dict[int, str | None] = {}  # sublattice node -> child (None: submitting)
        self.checking: set[int] = set()  # cache=True nodes whose lookup is out
        self.cache_keys: dict[int, str] = {}
        self.stop_wanted: set[int] = set()  # cancelled while their child was being submitted
        self.stop_chained: set[int] = set()  # chained ones cancelled (their NOT_RUN may be
        # on the way, with no handle left to stop)
        self.chained: dict[int, int] = {}  # handed before its input ended -> that input
        self.chains: Callable[[Mapping[str, Any]], bool | None] = _never  # the launcher's
        self._chaining: dict[int, bool] = {}  # by spec object: whether its executor chains
        self.pending_reuse = dict(pending_reuse or {})
        self.assembled: dict[str, list[str]] = {}  # large collections' items, by digest
        self.history: deque[tuple[int, str | None, str, str]] = deque(maxlen=STORY_LENGTH)
        count, edges = len(self.nodes), manifest["edges"]
        self.inputs = Inputs(edges, count)  # each node's input edges
        self.dependents = Dependents(edges, count)  # the nodes each node's output goes to
        self.waiting: list[int] = self.inputs.unfinished(self.status)
        self.ready: deque[int] = deque()
        self._queue_ready()

    # reading

    def node(self, node_id: int) -> ManifestNode:
        return self.nodes[node_id]

    def label(self, node_id: int) -> str:
        return f"{self.nodes[node_id]['name']}({node_id})"

    def story(self, node_id: int) -> list[tuple[str | None, str, str]]:
        """The node's recent transitions, oldest first: ``(old, new, cause)``."""
        return [(old, new, cause) for n, old, new, cause in self.history if n == node_id]

    def arguments(self, node_id: int) -> tuple[list[str], dict[str, str]]:
        """The output digests to pass to a node, positional and by keyword; a chained
        node's input that has not ended yet is named ``OUTPUT_BEFORE``."""
        try:
            return self.inputs.arguments(node_id, self.outputs)
        except MissingInput as e:
            if self.chained.get(node_id) == e.source:
                self.outputs[e.source] = OUTPUT_BEFORE
                try:
                    return self.inputs.arguments(node_id, self.outputs)
                finally:
                    self.outputs[e.source] = None
            raise states.InvalidTransition(
                f"Node {self.label(node_id)} (input {e.source} has no output)",
                self.status[node_id],
                RUNNING,
                self.story(e.source),
            ) from None

    @property
    def finished(self) -> bool:
        """Nothing runs, waits to start, or waits for a cache answer or a child."""
        return not (self.running or self.ready or self.children or self.checking)

    def final_status(self) -> Status:
        if self.cancel_requested or S.CANCELLED in self.status:
            return S.CANCELLED
        if S.FAILED in self.status or S.NOT_RUN in self.status:
            return S.FAILED
        return COMPLETED

    def result_repr(self) -> str:
        result = self.manifest["result"]
        return self.reprs.get(result["node"], "") if "node" in result else ""

    def result_digest(self) -> str | None:
        result = self.manifest["result"]
        return self.outputs[result["node"]] if "node" in result else result["value"]

    def error_text(self) -> str | None:
        if S.FAILED not in self.status:  # (in C: a run of 20,000 nodes ends in ~0.1 ms)
            return None
        failed = [n for n, s in enumerate(self.status) if s == S.FAILED]
        return "\n".join(f"Node {self.label(n)} failed:\n{self.errors.get(n, '')}" for n in failed)

    # events

    def begin(self, fx: Effects, now: float) -> None:
        """The run joins the loop: nodes a redispatch reuses complete first."""
        if not self.pending_reuse:
            return
        order = topological_order(len(self.status), self._edges or [])
        for node_id in (n for n in order if n in self.pending_reuse):
            if self.status[node_id] == NEW:
                self._reuse(node_id, self.pending_reuse[node_id], fx, now, "unchanged")
        self.pending_reuse = {}
        self._edges = None

    def resume(self, rows: Iterable[dict[str, Any]], fx: Effects, now: float) -> None:
        """Take the states the store kept (a restart): nodes that were running run again,
        except sublattice nodes, whose child dispatch resumes on its own."""
        for row in rows:
            node_id, status = row["node_id"], Status(row["status"])
            self.status[node_id] = status
            self.outputs[node_id] = row["output_digest"]
            self.errors[node_id] = row["error"] or ""
            self.reprs[node_id] = row["output_repr"] or ""
            if status == RUNNING and row["sub_dispatch_id"]:
                self.children[node_id] = row["sub_dispatch_id"]
                if row.get("start_time") is not None:  # it spans its child: keep its start
                    self.started_at[node_id] = row["start_time"]
            elif status == RUNNING:
                self._set(node_id, NEW, fx, now, "server restarted while it ran")
                kept = self.output.resumed(node_id, row)
                if kept:
                    fx.changes.node_updates.append(NodeUpdate(self.dispatch_id, node_id, kept))
        self._refresh_readiness()

    def take_ready(self, fx: Effects, now: float, limit: int, window: int | None = None) -> None:
        """Start up to ``limit`` ready nodes: collections are assembled here, ``cache=True``
        nodes are looked up first, the rest go RUNNING and into ``fx.launch``.

        With ``window``, at most that many nodes are handed to executors at once; the
        rest stay ready (a node id each) until a running one ends, whose outcome brings
        the run back here. Past ``limit`` the run asks to come back (``fx.more_ready``).
        """
        started = 0
        while self.ready and not self.cancel_requested:
            if window is not None and len(self.running) >= window:
                return  # an outcome will come back for the rest
            if started == limit:
                fx.more_ready = True
                return
            node_id = self.ready.popleft()
            if self.status[node_id] != NEW:
                continue
            node = self.nodes[node_id]
            metadata = cast(dict[str, Any], node.get("metadata") or {})
            if node["kind"] == "collection" and metadata.get("collection"):
                self._assemble(node_id, metadata["collection"], fx, now)
            elif metadata.get("cache"):
                self._look_up(node_id, metadata, fx)
            else:
                self._launch(node_id, fx, now)
                started += 1
        self.ready.clear()

    def task_started(self, node_id: int, at: float, fx: Effects) -> None:
        """A queued node's task started on its executor: now it is RUNNING."""
        if node_id not in self.running or self.status[node_id] != NEW or self.waiting[node_id]:
            return  # a later attempt's start, a node stopped meanwhile, or one chained
            # on an input that did not complete (its worker answers NOT_RUN)
        self.started_at[node_id] = at
        self._set(node_id, RUNNING, fx, at, "started", start_time=at, attempts=1)

    def task_output(self, node_id: int, stream: str, text: str, fx: Effects) -> None:
        """Output of a running node's task, stored as it arrives."""
        if node_id in self.running and stream in ("stdout", "stderr"):
            fields = self.output.add(node_id, stream, text, fx)
            fx.changes.node_updates.append(NodeUpdate(self.dispatch_id, node_id, fields))

    def task_finished(self, node_id: int, outcome: Outcome, fx: Effects) -> None:
        """A task ended (or a child dispatch did, for a sublattice node)."""
        handed = node_id in self.running
        self.running.discard(node_id)
        chained = self.chained.pop(node_id, None) is not None and self.status[node_id] == NEW
        stopped = node_id in self.stop_chained
        self.stop_chained.discard(node_id)
        if (
            chained
            and outcome.status != S.CANCELLED  # (a cancel ends it, whatever its input did)
            and (outcome.status == S.NOT_RUN or self.waiting[node_id])
        ):
            self._not_run_here(node_id, outcome, fx, stopped)  # its output, if any, is not used
            return
        if handed and self.status[node_id] == NEW:  # it never reported a start
            if outcome.status == S.CANCELLED:
                self._end_unsuccessfully(node_id, outcome, fx)
                return
            self._started_with(node_id, outcome, fx)
        if self.status[node_id] != RUNNING:
            return  # stopped already (a cancel that crossed the outcome)
        digest = stored_output(outcome, fx.changes)
        built = digest is not None and not outcome.output_ref
        if built and self.nodes[node_id]["kind"] == "sublattice":
            # the lattice was built: it runs as a child dispatch
            self.children[node_id] = None
            fx.children.append((node_id, outcome))
            return
        self.children.pop(node_id, None)
        self.stop_wanted.discard(node_id)
        if digest is None:
            self._end_unsuccessfully(node_id, outcome, fx)
            return
        if node_id in self.cache_keys:
            key = self.cache_keys[node_id]
            row = remember(key, self.dispatch_id, node_id, digest, outcome.output_repr)
            fx.changes.cache_rows.append(row)
        self.reprs[node_id] = outcome.output_repr
        self._set(
            node_id,
            COMPLETED,
            fx,
            outcome.end_time,
            "completed",
            output_digest=digest,
            output_repr=outcome.output_repr,
            **self._ending(node_id, outcome, fx),
        )
        self._complete(node_id, digest, fx, outcome.end_time - outcome.start_time)

    def attempt_failed(self, node_id: int, attempt: int, outcome: Outcome, fx: Effects) -> None:
        """A failed attempt that will be retried: kept in ``attempts``."""
        if node_id in self.running and self.status[node_id] == NEW:
            self._started_with(node_id, outcome, fx)  # its start came with its outcome
        if self.status[node_id] != RUNNING:
            return
        fx.changes.attempts.append(failed_attempt(self.dispatch_id, node_id, attempt, outcome))
        fx.changes.node_updates.append(
            NodeUpdate(self.dispatch_id, node_id, {"attempts": attempt + 1})
        )

    def _started_with(self, node_id: int, outcome: Outcome, fx: Effects) -> None:
        """RUNNING from the start an outcome names (no start was reported before it)."""
        at = min(outcome.start_time, outcome.end_time)
        self._set(node_id, RUNNING, fx, at, "started", start_time=at, attempts=1)
        self.started_at[node_id] = at

    def cancel(self, node_ids: list[int] | None, fx: Effects, now: float) -> None:
        """Cancel the whole run (``None``) or some nodes: waiting ones end CANCELLED with
        their descendants at once; running ones are stopped and end when their outcome
        comes back; a sublattice node's child dispatch is cancelled."""
        if node_ids is None:
            self.cancel_requested = True
            targets: Iterable[int] = range(len(self.status))
        else:
            targets = [n for n in node_ids if 0 <= n < len(self.status)]
        for node_id in targets:
            if node_id in self.children:
                child = self.children[node_id]
                if child is None:
                    self.stop_wanted.add(node_id)
                else:
                    fx.stop_children.append(child)
            elif node_id in self.running:
                fx.stop.append(node_id)
                if node_id in self.chained:  # if it comes back NOT_RUN, it ends CANCELLED
                    self.stop_chained.add(node_id)
            elif self.status[node_id] == NEW:
                self._set(node_id, S.CANCELLED, fx, now, "cancel requested")
                self._stop_descendants(node_id, S.CANCELLED, fx, now)
        if self.ready:
            self.ready = deque(n for n in self.ready if self.status[n] == NEW)

    def cache_checked(self, node_id: int, hit: Reuse | None, fx: Effects, now: float) -> None:
        """The answer to a cache lookup: reuse the stored output, or run the node."""
        self.checking.discard(node_id)
        if self.status[node_id] != NEW or self.cancel_requested:
            return
        if hit is not None:
            self._reuse(node_id, hit, fx, now, "cached output of an equal call")
        else:
            self._launch(node_id, fx, now)

    def child_started(self, node_id: int, child: str, fx: Effects) -> None:
        """A sublattice node's child dispatch is stored and running."""
        if self.children.get(node_id, "") is not None:
            fx.stop_children.append(child)  # the node ended meanwhile: the child must not run
            return
        self.children[node_id] = child
        fx.changes.node_updates.append(
            NodeUpdate(self.dispatch_id, node_id, {"sub_dispatch_id": child})
        )
        if node_id in self.stop_wanted or self.cancel_requested:
            fx.stop_children.append(child)

    def conclude(self, fx: Effects, now: float) -> None:
        """End the dispatch if nothing is left to run; a child tells its parent node."""
        if fx.launch or not self.finished or self.dispatch_status in FINAL_STATUSES:
            return
        status = self.final_status()
        fields: dict[str, Any] = {"end_time": now, "error": self.error_text()}
        if status == COMPLETED:
            fields["result_digest"] = self.result_digest()
        self._set_dispatch(status, fx, now, "all nodes finished", **fields)
        self.end_time = now
        fx.finished = True
        if self.parent is not None:
            outcome = outcome_for_parent(self.dispatch_id, status, fields, self.result_repr(), now)
            fx.parent = (*self.parent, outcome)

    def abort(self, error: str, fx: Effects, now: float) -> None:
        """A fault while deciding about this run (a bug, or data nothing checked): the
        dispatch ends FAILED with ``error``, its tasks and children are stopped, and the
        store closes its unfinished nodes (their states in memory cannot be trusted)."""
        self.aborted = True
        fx.launch.clear()
        fx.stop = sorted(self.running)
        fx.stop_children = [c for c in self.children.values() if c is not None]
        fx.cache_lookups.clear()
        fx.children.clear()
        fx.spill.clear()
        fx.output.clear()
        fx.more_ready = False
        cause = f"the dispatch failed: {error.splitlines()[0] if error else ''}"
        fx.changes.closed.append((self.dispatch_id, cause))
        old = self.dispatch_status
        self.dispatch_status = S.FAILED
        self.end_time = now
        fx.changes.dispatch_updates.append(
            _dispatch_update(self.dispatch_id, S.FAILED, end_time=now, error=error)
        )
        fx.changes.transition(
            self.dispatch_id, DISPATCH_NODE, old.value, S.FAILED.value, now, cause
        )
        fx.finished = True
        if self.parent is not None:
            fields = {"error": error}
            outcome = outcome_for_parent(self.dispatch_id, S.FAILED, fields, "", now)
            fx.parent = (*self.parent, outcome)

    # checks

    def validate(self) -> None:
        """Raise AssertionError if an invariant does not hold (run after every turn in
        tests, and when ``COVALENT_VALIDATE`` is set); see :mod:`invariants`."""
        invariants.check(self)

    # the only places state changes

    def _set(
        self, node_id: int, new: Status, fx: Effects, at: float, cause: str, **fields: Any
    ) -> None:
        """The only place a node's status changes: check, apply, and record it."""
        old = self.status[node_id]
        if new not in _ALLOWED[old]:
            states.check_node(old, new, f"Node {self.label(node_id)}", self.story(node_id))
        self.status[node_id] = new
        was, now = _VALUE[old], _VALUE[new]
        fields["status"] = now
        changes = fx.changes
        changes.node_updates.append(_node_update((self.dispatch_id, node_id, fields)))
        changes.transitions.append(
            {
                "dispatch_id": self.dispatch_id,
                "node_id": node_id,
                "old": was,
                "new": now,
                "at": at,
                "cause": cause,
            }
        )
        self.history.append((node_id, was, now, cause))

    def _set_dispatch(self, new: Status, fx: Effects, at: float, cause: str, **fields: Any) -> None:
        old = self.dispatch_status
        states.check_dispatch(old, new, f"Dispatch {self.dispatch_id}")
        self.dispatch_status = new
        fx.changes.dispatch_updates.append(_dispatch_update(self.dispatch_id, new, **fields))
        fx.changes.transition(self.dispatch_id, DISPATCH_NODE, old.value, new.value, at, cause)

    # steps

    def _refresh_readiness(self) -> None:
        """Count each node's unfinished inputs and queue the nodes that can start now."""
        self.waiting = self.inputs.unfinished(self.status)
        self._queue_ready()

    def _queue_ready(self) -> None:
        """Queue the nodes that can start now (their unfinished inputs counted)."""
        status, waiting = self.status, self.waiting
        self.ready = deque(  # any order will do: none of them waits for another
            n for n, state in enumerate(status) if state is NEW and waiting[n] == 0
        )

    def _launch(self, node_id: int, fx: Effects, now: float) -> None:
        """Hand the node to its executor: queued until its task starts (it stays
        NEW_OBJECT, in the store too, so a restart meanwhile does not count it as run)."""
        self.running.add(node_id)
        fx.launch.append(node_id)
        self._chain_after(node_id, fx)

    def _chain_after(self, node_id: int, fx: Effects, took: float | None = None) -> None:
        """Hand over, with ``node_id``, the next steps of its chain: up to
        :data:`CHAIN_AHEAD_GROWTH` beyond it, or, once the step before it ended after
        ``took`` seconds, as many as
        :data:`CHAIN_AHEAD_SECONDS` holds of such steps (at least one, at most
        :data:`CHAIN_AHEAD`, at most :data:`CHAIN_AHEAD_GROWTH` more than are handed
        over already; none is taken back). Each a dependent of the one before that waits for
        nothing else, on the same executor (one that chains: ``self.chains``), with no
        timeout, retries or cache. Each goes to the worker running the step before it
        and starts there when that one ends, with its output from that worker's memory,
        while the server stores that output (``chained``). Its start counts once its
        input completed; if the worker did not have the input, it answers NOT_RUN and
        the node waits for it as any other (:meth:`_not_run_here`). Called again as each
        step completes, it finds the steps chained already and adds to them."""
        tail, handed = node_id, 0
        while (found := self._chained_on(tail)) is not None:
            tail, handed = found, handed + 1
        ahead = CHAIN_AHEAD_GROWTH  # as if grown from none: a step's time is not known yet
        if took is not None:
            held = int(CHAIN_AHEAD_SECONDS / max(took, 1e-6))
            ahead = max(1, min(CHAIN_AHEAD, held, handed + CHAIN_AHEAD_GROWTH))
        for _ in range(ahead - handed):
            found = self._chain_one(tail, fx)
            if found is None:
                return
            tail = found

    def _chained_on(self, node_id: int) -> int | None:
        """The dependent chained on ``node_id`` and still handed over, if any."""
        for child in self.dependents[node_id]:
            if self.chained.get(child) == node_id and child in self.running:
                return child
        return None

    def _chain_one(self, node_id: int, fx: Effects) -> int | None:
        """Chain the first dependent of ``node_id`` that may be (see :meth:`_chain_after`)."""
        status, waiting = self.status, self.waiting
        for child in self.dependents[node_id]:  # (a fan-out's: none waits for one input)
            if waiting[child] != 1 or status[child] is not NEW or child in self.running:
                continue
            node, after = self.nodes[node_id], self.nodes[child]
            spec = node["executor"]
            if (
                node["kind"] == after["kind"] == "electron"
                and not self.cancel_requested
                and _plain(node)
                and _plain(after)
                and (after["executor"] is spec or after["executor"] == spec)
                and self._chains(spec)
            ):
                self.running.add(child)
                self.chained[child] = node_id
                fx.launch.append(child)
                return child
        return None

    def _chains(self, spec: Mapping[str, Any]) -> bool:
        """``self.chains(spec)``, remembered per spec object once known (it is not known
        until the executor is set up, and is asked again then)."""
        known = self._chaining.get(id(spec))
        if known is None:
            known = self.chains(spec)
            if known is not None:
                self._chaining[id(spec)] = known  # the spec lives as long as the run
        return bool(known)

    def _not_run_here(self, node_id: int, outcome: Outcome, fx: Effects, stopped: bool) -> None:
        """A chained node that did not run (its worker lacked its input, or the input
        did not complete): it waits for its input as any node, or ends as a node whose
        input failed or was cancelled does. ``stopped`` (the node was cancelled while
        chained) or the dispatch cancelled: it ends CANCELLED, as its cancel found no
        task of its to stop (its NOT_RUN was on the way) and none would stop it later."""
        if stopped or self.cancel_requested:
            self._set(node_id, S.CANCELLED, fx, outcome.end_time, "cancel requested")
            self._stop_descendants(node_id, S.CANCELLED, fx, outcome.end_time)
            return
        ended = [e.source for e in self.inputs[node_id] if self.status[e.source] in _ENDED]
        if ended:
            source = self.status[ended[0]]
            new = S.CANCELLED if source == S.CANCELLED else S.NOT_RUN
            cause = f"input {self.label(ended[0])} is {source.value}"
            self._set(node_id, new, fx, outcome.end_time, cause)
            self._stop_descendants(node_id, new, fx, outcome.end_time)
        elif self.waiting[node_id] == 0:
            self.ready.append(node_id)

    def _look_up(self, node_id: int, metadata: dict[str, Any], fx: Effects) -> None:
        args, kwargs = self.arguments(node_id)
        identity, extras = reusemod.cache_identity(self.nodes[node_id])  # its fingerprint
        key = cache_key(identity, args, kwargs, extras)
        self.cache_keys[node_id] = key
        self.checking.add(node_id)
        fx.cache_lookups.append((node_id, key))

    def _complete(self, node_id: int, digest: str, fx: Effects, took: float | None = None) -> None:
        """The node's output is ``digest``: its dependents wait for one input less. A
        chained one runs on, and the steps after it follow (``took``: the node's time)."""
        self.outputs[node_id] = digest
        for child in self.dependents[node_id]:
            self.waiting[child] -= 1
            if self.waiting[child] == 0 and self.status[child] == NEW:
                if child in self.running:
                    self._chain_after(child, fx, took)
                else:
                    self.ready.append(child)

    def _stop_descendants(self, node_id: int, new: Status, fx: Effects, at: float) -> None:
        """Mark every not-yet-started node downstream of ``node_id`` as ``new``."""
        cause = f"input {self.label(node_id)} is {self.status[node_id].value}"
        stack = list(self.dependents[node_id])
        while stack:
            child = stack.pop()
            if self.status[child] == NEW and child not in self.running:  # (chained: its
                # worker answers NOT_RUN, and _not_run_here ends it and those after it)
                self._set(child, new, fx, at, cause)
                stack.extend(self.dependents[child])

    def _end_unsuccessfully(self, node_id: int, outcome: Outcome, fx: Effects) -> None:
        status = S.CANCELLED if outcome.status == S.CANCELLED else S.FAILED
        fields = self._ending(node_id, outcome, fx)
        error = outcome.error
        if outcome.timed_out:
            error += where_it_was(fields.get("stdout", ""), fields.get("stderr", ""))
        self.errors[node_id] = error
        self._set(
            node_id, status, fx, outcome.end_time, status.value.lower(), error=error, **fields
        )
        after = S.CANCELLED if status == S.CANCELLED else S.NOT_RUN
        self._stop_descendants(node_id, after, fx, outcome.end_time)

    def _ending(self, node_id: int, outcome: Outcome, fx: Effects) -> dict[str, Any]:
        """The times and output of a node that ends: its start as reported when it
        started (the outcome's own otherwise), and its whole stdout and stderr."""
        start = self.started_at.pop(node_id, None)
        fields: dict[str, Any] = {"end_time": outcome.end_time}
        if self.status[node_id] != NEW:  # it ran (a node cancelled while queued did not)
            if start is None:
                start = min(outcome.start_time, outcome.end_time)
            fields.update(start_time=start, end_time=max(start, outcome.end_time))
        if outcome.stdout or outcome.stderr or self.output.streams:
            fields.update(self.output.end(node_id, outcome.stdout, outcome.stderr, fx))
        return fields

    def _assemble(self, node_id: int, shape: dict[str, Any], fx: Effects, now: float) -> None:
        """Complete a collection node with a composite blob of its items' digests: the
        items' bytes are not copied; whoever loads the value assembles it."""
        args, _ = self.arguments(node_id)
        data = blobmod.composite(shape, args)
        digest = blobmod.digest(data)
        fx.changes.blobs[digest] = data
        if len(args) >= ASSEMBLED_KEPT_FROM:
            self.assembled[digest] = args  # for the tasks that take it (Task.composites)
        items = [self.reprs.get(e.source, "...") for e in self.inputs.positional(node_id)]
        text = blobmod.composite_repr(shape["type"], items)
        self._set(node_id, RUNNING, fx, now, "inputs ready", start_time=now)
        self._set(
            node_id,
            COMPLETED,
            fx,
            now,
            "assembled from its items",
            output_digest=digest,
            output_repr=text,
            end_time=now,
        )
        self.reprs[node_id] = text
        self._complete(node_id, digest, fx)

    def _reuse(self, node_id: int, found: Reuse, fx: Effects, now: float, cause: str) -> None:
        """A node completes with a stored output instead of running (PENDING_REUSE first)."""
        self._set(node_id, S.PENDING_REUSE, fx, now, cause)
        self.reprs[node_id] = found.text
        self._set(
            node_id,
            COMPLETED,
            fx,
            now,
            f"reused {found.source}",
            output_digest=found.digest,
            output_repr=found.text,
            reused_from=found.source,
            start_time=now,
            end_time=now,
        )
        self._complete(node_id, found.digest, fx)


_ENDED = (S.FAILED, S.NOT_RUN, S.CANCELLED)


def _never(_spec: Mapping[str, Any]) -> bool | None:
    return False


def _plain(node: ManifestNode) -> bool:
    """A node that may be chained: no timeout, retries or cache (those need the run's
    supervision or lookup first)."""
    metadata = node.get("metadata") or {}
    return not (metadata.get("timeout") or metadata.get("retries") or metadata.get("cache"))


def _dispatch_update(dispatch_id: str, status: Status, **fields: Any) -> DispatchUpdate:
    return DispatchUpdate(dispatch_id, {"status": status.value, **fields})
