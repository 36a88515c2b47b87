"""What the decisions about one run ask the loop to do: the :class:`Effects` record a
:class:`~covalent._dispatcher.run.Run` fills and the loop acts on after the commit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from covalent._results.status import Status
from covalent._store.changes import AttemptRow, Changes
from covalent._wire import blobs as blobmod
from covalent.executor.task import Outcome

COMPLETED = Status.COMPLETED


class Reuse(NamedTuple):
    """A stored output a node takes instead of running."""

    digest: str
    text: str
    source: str  # "dispatch_id:node_id" it comes from


@dataclass
class Effects:
    """What the decisions about one run ask the loop to do once they are committed."""

    changes: Changes
    launch: list[int] = field(default_factory=list)
    stop: list[int] = field(default_factory=list)
    """Running nodes whose tasks must be cancelled."""
    stop_children: list[str] = field(default_factory=list)
    """Child dispatches (sublattices) to cancel."""
    cache_lookups: list[tuple[int, str]] = field(default_factory=list)
    """``cache=True`` nodes to look up: (node id, cache key)."""
    children: list[tuple[int, Outcome]] = field(default_factory=list)
    """Sublattice nodes whose build finished: submit the bundle as a child dispatch."""
    spill: list[tuple[str, str]] = field(default_factory=list)
    """Text to append to log files: (path, text) of streams past the store's limit."""
    output: list[tuple[int, str, int, str]] = field(default_factory=list)
    """Output that nodes wrote, for the live stream: (node id, stream, offset, text),
    ``offset`` being how many characters of that stream came before."""
    more_ready: bool = False
    """More nodes are ready than one turn starts: come back for them."""
    parent: tuple[str, int, Outcome] | None = None
    """This run is a child dispatch that ended: tell its parent node."""
    finished: bool = False


def stored_output(outcome: Outcome, changes: Changes) -> str | None:
    """The digest of a completed task's output, its blob added to ``changes``."""
    if outcome.status != COMPLETED:
        return None
    if outcome.output_ref:  # already stored (a child dispatch's result)
        return outcome.output_ref
    if outcome.output_file is not None:
        written = outcome.output_file
        changes.blob_files.append(
            {"digest": written.digest, "size": written.size, "data": None, "path": written.path}
        )
        return written.digest
    if outcome.output is not None:
        digest = blobmod.digest(outcome.output)
        changes.blobs[digest] = outcome.output
        return digest
    return None


def failed_attempt(dispatch_id: str, node_id: int, attempt: int, outcome: Outcome) -> AttemptRow:
    """The ``attempts`` row of a failed attempt that will be retried."""
    return AttemptRow(
        dispatch_id=dispatch_id,
        node_id=node_id,
        attempt=attempt,
        status=outcome.status.value,
        start_time=outcome.start_time,
        end_time=outcome.end_time,
        error=outcome.error,
        stdout=outcome.stdout,
        stderr=outcome.stderr,
    )
