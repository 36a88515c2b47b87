"""The invariants of a run, checked after every turn in tests (``COVALENT_VALIDATE``).

As distributed's ``WorkerState.validate_state``: what must hold whatever the order of
events, so that a decision that breaks the state machine is caught at the turn that
made it, with the node it concerns, rather than as a hang later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from covalent._results.status import FINAL_STATUSES, Status

if TYPE_CHECKING:
    from covalent._dispatcher.run import Run

S = Status


def check(run: Run) -> None:
    """Raise AssertionError naming the first invariant of ``run`` that does not hold."""
    count = len(run.nodes)
    _require(len(run.status) == len(run.outputs) == len(run.waiting) == count, "sizes")
    _require(run.running.isdisjoint(run.children), "a node both runs and has a child")
    for node_id in run.children:
        _require(run.status[node_id] == S.RUNNING, f"{run.label(node_id)} is not RUNNING")
    for node_id in run.running:  # queued or running
        status = run.status[node_id]
        _require(status in (S.NEW_OBJECT, S.RUNNING), f"{run.label(node_id)} is {status}")
    for node_id, status in enumerate(run.status):
        _check_node(run, node_id, status)
    for node_id in run.ready:  # nodes that started meanwhile are skipped when taken
        _require(run.waiting[node_id] == 0, f"{run.label(node_id)} ready too early")
    if run.dispatch_status in FINAL_STATUSES:
        _require(not (run.running or run.children), "a finished dispatch still runs")


def _check_node(run: Run, node_id: int, status: Status) -> None:
    label = run.label(node_id)
    sources = [run.status[e.source] for e in run.inputs[node_id]]
    _require(run.waiting[node_id] == sum(s != S.COMPLETED for s in sources), f"{label} count")
    if status == S.COMPLETED:
        _require(run.outputs[node_id] is not None, f"{label} has no output")
    if status == S.RUNNING:
        _require(run.waiting[node_id] == 0, f"{label} ran before its inputs")
        _require(node_id in run.running or node_id in run.children, f"{label} runs untracked")
    if status == S.NOT_RUN:
        _require(any(s in (S.FAILED, S.NOT_RUN) for s in sources), f"{label} NOT_RUN")
    waits = status == S.NEW_OBJECT and run.waiting[node_id] == 0
    if waits and not run.cancel_requested and run.dispatch_status == S.RUNNING:
        found = node_id in run.ready or node_id in run.checking or node_id in run.running
        _require(found, f"{label} is ready but not queued")


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(f"invariant broken: {what}")
