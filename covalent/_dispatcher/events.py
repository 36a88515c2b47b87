"""What the dispatcher loop's queue carries: one record per kind of event.

Everything that can change a dispatch's state arrives here, from the API (a new
dispatch, a cancel request), from executors (a task's outcome, a failed attempt that
will be retried) and from the loop's own actions after a commit (a cache answer, a
child dispatch stored, more ready nodes to start, a fault while acting).
"""

from __future__ import annotations

from dataclasses import dataclass

from covalent._dispatcher.run import Reuse, Run
from covalent.executor.task import Outcome


@dataclass(frozen=True, slots=True)
class Joined:
    """A new or resumed run joins the loop."""

    run: Run
    resumed: bool = False

    @property
    def dispatch_id(self) -> str:
        return self.run.dispatch_id


@dataclass(frozen=True, slots=True)
class TaskFinished:
    """A node's task ended (or, for a sublattice node, its child dispatch did)."""

    dispatch_id: str
    node_id: int
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class TaskStarted:
    """A node's task started on its executor at ``at`` (before: queued, not running)."""

    dispatch_id: str
    node_id: int
    at: float


@dataclass(frozen=True, slots=True)
class TaskOutput:
    """Text a running node's task wrote to ``stream`` (``stdout`` or ``stderr``)."""

    dispatch_id: str
    node_id: int
    stream: str
    text: str


@dataclass(frozen=True, slots=True)
class AttemptFailed:
    """A node's attempt failed and will be retried."""

    dispatch_id: str
    node_id: int
    attempt: int
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """Cancel a whole dispatch (``node_ids`` None) or some of its nodes."""

    dispatch_id: str
    node_ids: list[int] | None


@dataclass(frozen=True, slots=True)
class MoreReady:
    """A run had more ready nodes than one turn starts: start the next ones."""

    dispatch_id: str


@dataclass(frozen=True, slots=True)
class CacheChecked:
    """The answer to a ``cache=True`` node's lookup: a stored output, or None."""

    dispatch_id: str
    node_id: int
    hit: Reuse | None


@dataclass(frozen=True, slots=True)
class ChildStarted:
    """A sublattice node's child dispatch is stored and running."""

    dispatch_id: str
    node_id: int
    child: str


@dataclass(frozen=True, slots=True)
class Faulted:
    """Acting on a run's decisions raised: the run is aborted with ``error``."""

    dispatch_id: str
    error: str


Event = (
    Joined
    | TaskStarted
    | TaskOutput
    | TaskFinished
    | AttemptFailed
    | CancelRequested
    | MoreReady
    | CacheChecked
    | ChildStarted
    | Faulted
)
