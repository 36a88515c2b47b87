"""The records the dispatcher hands the store: a batch of writes, and its row shapes.

A :class:`Changes` batch is what one turn of the dispatcher loop decided; the store
writes it in one transaction (:meth:`covalent._store.store.Store.commit`). Its rows are
typed records rather than loose dicts: :class:`NodeRow` for a new node
(:class:`NewNodeRow` for one yet to run), :class:`NodeUpdate`
and :class:`DispatchUpdate` for changed columns, :class:`Transition` for one status change
with its cause.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypedDict

DISPATCH_NODE = -1
"""The node id of a dispatch's own transitions."""


class NodeRow(NamedTuple):
    """A node's first row, in the column order of the ``nodes`` table's insert."""

    dispatch_id: str
    node_id: int
    name: str
    kind: str
    status: str
    executor: str | None
    start_time: float | None
    end_time: float | None
    output_digest: str | None
    output_repr: str | None
    attempts: int


NODE_COLUMNS: tuple[str, ...] = NodeRow._fields


class NewNodeRow(NamedTuple):
    """The first row of a node that has yet to run: only the columns it has (the others
    start NULL). Narrower than :class:`NodeRow`, which makes the insert of a large
    dispatch's nodes about a quarter cheaper on SQLite (it binds each value)."""

    dispatch_id: str
    node_id: int
    name: str
    kind: str
    status: str
    executor: str | None
    attempts: int


NEW_NODE_COLUMNS: tuple[str, ...] = NewNodeRow._fields


class NodeUpdate(NamedTuple):
    """New values of some columns of one node's row."""

    dispatch_id: str
    node_id: int
    fields: dict[str, Any]


class DispatchUpdate(NamedTuple):
    """New values of some columns of one dispatch's row."""

    dispatch_id: str
    fields: dict[str, Any]


class Transition(TypedDict):
    """One status change with its cause (a row of ``transitions``; also what the UI's
    live stream sends). ``node_id`` is :data:`DISPATCH_NODE` for the dispatch itself."""

    dispatch_id: str
    node_id: int
    old: str | None
    new: str
    at: float
    cause: str


class AttemptRow(TypedDict):
    """A failed attempt of a node that was retried."""

    dispatch_id: str
    node_id: int
    attempt: int
    status: str
    start_time: float
    end_time: float
    error: str
    stdout: str
    stderr: str


class BlobFileRow(TypedDict):
    """A blob already written as a file in the blob store by whoever produced it."""

    digest: str
    size: int
    data: None
    path: str


class CacheRow(TypedDict):
    """An output of a ``cache=True`` node, reusable by an equal call."""

    key: str
    output_digest: str
    output_repr: str
    dispatch_id: str
    node_id: int
    created_at: float


class Mark(NamedTuple):
    """The lengths of a batch's lists at one moment (see :meth:`Changes.rollback`)."""

    blobs: int
    node_updates: int
    dispatch_updates: int
    transitions: int
    attempts: int
    blob_files: int
    cache_rows: int
    closed: int


@dataclass
class Changes:
    """A batch of writes to commit together."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    node_updates: list[NodeUpdate] = field(default_factory=list)
    dispatch_updates: list[DispatchUpdate] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    attempts: list[AttemptRow] = field(default_factory=list)
    blob_files: list[BlobFileRow] = field(default_factory=list)
    cache_rows: list[CacheRow] = field(default_factory=list)
    closed: list[tuple[str, str]] = field(default_factory=list)
    """Dispatches whose unfinished nodes become CANCELLED, with the cause (an aborted
    dispatch: its nodes' states in memory cannot be trusted, so the store closes them)."""

    def __bool__(self) -> bool:
        return any(len(getattr(self, name)) for name in Mark._fields)

    def transition(
        self, dispatch_id: str, node_id: int, old: str | None, new: str, at: float, cause: str = ""
    ) -> None:
        self.transitions.append(
            {
                "dispatch_id": dispatch_id,
                "node_id": node_id,
                "old": old,
                "new": new,
                "at": at,
                "cause": cause,
            }
        )

    def mark(self) -> Mark:
        """Where the batch stands now; :meth:`rollback` drops whatever came after."""
        return Mark(
            len(self.blobs),
            len(self.node_updates),
            len(self.dispatch_updates),
            len(self.transitions),
            len(self.attempts),
            len(self.blob_files),
            len(self.cache_rows),
            len(self.closed),
        )

    def rollback(self, mark: Mark) -> None:
        """Drop every write added after ``mark`` (a decision that raised half-way)."""
        for name, length in zip(Mark._fields, mark, strict=True):
            items = getattr(self, name)
            if name == "blobs":
                for key in list(items)[length:]:
                    del items[key]
            else:
                del items[length:]

    def extend(self, other: Changes) -> None:
        """Add ``other``'s writes after this batch's."""
        self.blobs.update(other.blobs)
        for name in Mark._fields[1:]:
            getattr(self, name).extend(getattr(other, name))

    def split(self) -> tuple[Changes, dict[str, Changes]]:
        """This batch as its blobs (shared by content) and one batch per dispatch, so
        that a write one dispatch's data makes fail can be found and kept from the rest."""
        shared = Changes(blobs=self.blobs, blob_files=self.blob_files)
        parts: dict[str, Changes] = {}

        def part(dispatch_id: str) -> Changes:
            found = parts.get(dispatch_id)
            if found is None:
                found = parts[dispatch_id] = Changes()
            return found

        for update in self.node_updates:
            part(update.dispatch_id).node_updates.append(update)
        for dispatch_update in self.dispatch_updates:
            part(dispatch_update.dispatch_id).dispatch_updates.append(dispatch_update)
        for transition in self.transitions:
            part(transition["dispatch_id"]).transitions.append(transition)
        for attempt in self.attempts:
            part(attempt["dispatch_id"]).attempts.append(attempt)
        for row in self.cache_rows:
            part(row["dispatch_id"]).cache_rows.append(row)
        for closed in self.closed:
            part(closed[0]).closed.append(closed)
        return shared, parts
