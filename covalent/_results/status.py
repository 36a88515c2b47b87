"""Statuses of dispatches and nodes.

A status is a ``str`` enum member: it compares equal to its own name
(``Status.COMPLETED == "COMPLETED"``) and shows as its name, printed or echoed in a
REPL (``result.status`` shows ``COMPLETED``, as in the Result block).
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """Every status a dispatch or a node can have (Covalent's names, plus NOT_RUN)."""

    NEW_OBJECT = "NEW_OBJECT"
    """Known, not yet started."""
    STARTING = "STARTING"
    """The dispatch is being set up on the server."""
    PENDING_REUSE = "PENDING_REUSE"
    """The node's output will be reused from an earlier dispatch."""
    PENDING_REPLACEMENT = "PENDING_REPLACEMENT"
    """The node's electron is being replaced (redispatch)."""
    PENDING_BACKEND = "PENDING_BACKEND"
    """Submitted to an executor, waiting for it to start."""
    RUNNING = "RUNNING"
    """Running on its executor."""
    POSTPROCESSING = "POSTPROCESSING"
    """The lattice's result is being assembled."""
    PENDING_POSTPROCESSING = "PENDING_POSTPROCESSING"
    """Waiting to assemble the lattice's result."""
    POSTPROCESSING_FAILED = "POSTPROCESSING_FAILED"
    """Assembling the lattice's result failed."""
    COMPLETED = "COMPLETED"
    """Finished successfully; the output is stored."""
    FAILED = "FAILED"
    """Finished with an error; the error and traceback are stored."""
    CANCELLED = "CANCELLED"
    """Stopped on request before finishing."""
    NOT_RUN = "NOT_RUN"
    """(ours) Never started because a node it depends on failed."""

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return self.value

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {
        Status.COMPLETED,
        Status.FAILED,
        Status.CANCELLED,
        Status.NOT_RUN,
        Status.POSTPROCESSING_FAILED,
    }
)
"""A node or dispatch in one of these never changes again."""
