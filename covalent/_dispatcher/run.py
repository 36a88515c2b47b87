"""The in-memory state of one dispatch while it runs: statuses, outputs, readiness.

Only the dispatcher loop touches a :class:`Run`. Its methods change state and append
the matching writes to a :class:`~covalent._store.store.Changes` batch; they never do
I/O themselves.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from covalent._dispatcher import states
from covalent._results.status import Status
from covalent._store.store import DISPATCH_NODE, Changes
from covalent.executor.task import Cancellable


@dataclass
class Run:
    dispatch_id: str
    manifest: dict[str, Any]
    results_dir: str
    status: list[Status]
    outputs: list[str | None]
    errors: dict[int, str] = field(default_factory=dict)
    dispatch_status: Status = Status.RUNNING
    running: dict[int, Cancellable] = field(default_factory=dict)  # a task or a pool job
    ready: deque[int] = field(default_factory=deque)
    cancel_requested: bool = False
    parent: tuple[str, int] | None = None  # a sublattice's run: (dispatch id, node id) above it
    root_dispatch_id: str = ""
    subdispatches: dict[int, str] = field(default_factory=dict)  # sublattice node -> its run
    reprs: dict[int, str] = field(default_factory=dict)
    cache_keys: dict[int, str] = field(default_factory=dict)  # cache=True nodes: their key
    pending_reuse: dict[int, tuple[str, str, str]] = field(default_factory=dict)  # redispatch

    def __post_init__(self) -> None:
        count = len(self.manifest["nodes"])
        self.children: list[list[int]] = [[] for _ in range(count)]
        self.inputs: list[list[list[Any]]] = [[] for _ in range(count)]
        for edge in self.manifest["edges"]:
            self.children[edge[0]].append(edge[1])
            self.inputs[edge[1]].append(edge)
        self.refresh_readiness()

    def refresh_readiness(self) -> None:
        """Count each node's unfinished inputs and queue the nodes that can start now
        (after statuses were set from outside, as on resume)."""
        count = len(self.status)
        self.waiting = [
            sum(1 for e in self.inputs[n] if self.status[e[0]] != Status.COMPLETED)
            for n in range(count)
        ]
        self.ready.clear()
        self.ready.extend(  # any order will do: none of them waits for another
            n for n in range(count) if self.status[n] == Status.NEW_OBJECT and self.waiting[n] == 0
        )

    def node(self, node_id: int) -> dict[str, Any]:
        return self.manifest["nodes"][node_id]

    def label(self, node_id: int) -> str:
        return f"{self.node(node_id)['name']}({node_id})"

    def set_status(
        self, changes: Changes, node_id: int, new: Status, at: float, cause: str = "", **fields: Any
    ) -> None:
        """The only place a node's status changes: check, apply, and record it."""
        old = self.status[node_id]
        if new not in states.NODE_TRANSITIONS.get(old, ()):
            states.check_node(old, new, f"Node {self.label(node_id)}")  # raises, naming it
        self.status[node_id] = new
        fields["_d"], fields["_n"], fields["status"] = self.dispatch_id, node_id, new.value
        changes.node_updates.append(fields)
        changes.transition(self.dispatch_id, node_id, old.value, new.value, at, cause)

    def set_dispatch_status(
        self, changes: Changes, new: Status, at: float, cause: str = "", **fields: Any
    ) -> None:
        old = self.dispatch_status
        states.check_dispatch(old, new, f"Dispatch {self.dispatch_id}")
        self.dispatch_status = new
        changes.dispatch_updates.append({"_d": self.dispatch_id, "status": new.value, **fields})
        changes.transition(self.dispatch_id, DISPATCH_NODE, old.value, new.value, at, cause)

    def arguments(self, node_id: int) -> tuple[list[str], dict[str, str]]:
        """The output digests to pass to a node, positional and by keyword."""
        edges = self.inputs[node_id]
        if len(edges) == 1 and edges[0][2] == 0 and edges[0][3] is None:  # one argument
            digest = self.outputs[edges[0][0]]
            assert digest is not None, f"input {edges[0][0]} of {node_id} has no output"
            return [digest], {}
        positional: dict[int, str] = {}
        keywords: dict[str, str] = {}
        for source, _target, index, name in edges:
            if index is None and name is None:  # a wait edge: order only
                continue
            digest = self.outputs[source]
            assert digest is not None, f"input {source} of {node_id} has no output"
            if name is not None:
                keywords[name] = digest
            else:
                positional[index] = digest
        return [positional[i] for i in sorted(positional)], keywords

    def complete(self, changes: Changes, node_id: int, digest: str) -> None:
        self.outputs[node_id] = digest
        for child in self.children[node_id]:
            self.waiting[child] -= 1
            if self.waiting[child] == 0 and self.status[child] == Status.NEW_OBJECT:
                self.ready.append(child)

    def stop_descendants(self, changes: Changes, node_id: int, new: Status, at: float) -> None:
        """Mark every not-yet-started node downstream of ``node_id`` as ``new``."""
        cause = f"input {self.label(node_id)} is {self.status[node_id].value}"
        stack = list(self.children[node_id])
        while stack:
            child = stack.pop()
            if self.status[child] == Status.NEW_OBJECT:
                self.set_status(changes, child, new, at, cause)
                stack.extend(self.children[child])

    @property
    def finished(self) -> bool:
        return not self.running and not self.ready and not self.subdispatches

    def final_status(self) -> Status:
        if self.cancel_requested or Status.CANCELLED in self.status:
            return Status.CANCELLED
        if Status.FAILED in self.status or Status.NOT_RUN in self.status:
            return Status.FAILED
        return Status.COMPLETED

    def result_repr(self) -> str:
        result = self.manifest["result"]
        return self.reprs.get(result["node"], "") if "node" in result else ""

    def result_digest(self) -> str | None:
        result = self.manifest["result"]
        if "node" in result:
            return self.outputs[result["node"]]
        return result["value"]

    def error_text(self) -> str | None:
        failed = [n for n, s in enumerate(self.status) if s == Status.FAILED]
        if not failed:
            return None
        return "\n".join(f"Node {self.label(n)} failed:\n{self.errors.get(n, '')}" for n in failed)
