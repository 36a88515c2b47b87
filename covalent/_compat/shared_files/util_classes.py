"""``covalent._shared_files.util_classes``: statuses and the dispatch info record."""

from __future__ import annotations

from typing import NamedTuple

from covalent._results.status import Status


class DispatchInfo(NamedTuple):
    """What ``BaseExecutor.get_dispatch_context`` takes: the dispatch's id."""

    dispatch_id: str


class _ResultStatus:
    """``RESULT_STATUS.COMPLETED`` and the others, as Covalent spelled them."""

    NEW_OBJECT = Status.NEW_OBJECT
    RUNNING = Status.RUNNING
    COMPLETED = Status.COMPLETED
    POSTPROCESSING = Status.POSTPROCESSING
    PENDING_POSTPROCESSING = Status.PENDING_POSTPROCESSING
    POSTPROCESSING_FAILED = Status.POSTPROCESSING_FAILED
    FAILED = Status.FAILED
    CANCELLED = Status.CANCELLED
    PENDING_REUSE = Status.PENDING_REUSE


RESULT_STATUS = _ResultStatus()

__all__ = ["RESULT_STATUS", "DispatchInfo", "Status"]
