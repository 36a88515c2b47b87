"""What the dispatcher hands an executor (:class:`Task`) and gets back (:class:`Outcome`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from covalent._results.status import Status


@dataclass
class Task:
    """One node to run: its function and inputs as blob digests, and where it belongs."""

    dispatch_id: str
    node_id: int
    name: str
    function: str
    args: list[str]
    kwargs: dict[str, str]
    load_blob: Callable[[str], bytes]
    results_dir: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int]:
        return (self.dispatch_id, self.node_id)

    def task_metadata(self) -> dict[str, Any]:
        return {
            "dispatch_id": self.dispatch_id,
            "node_id": self.node_id,
            "results_dir": self.results_dir,
        }


@dataclass
class Outcome:
    """What became of a task: its pickled output, or its error with the traceback."""

    status: Status
    output: bytes | None = None
    output_repr: str = ""
    error: str = ""
    stdout: str = ""
    stderr: str = ""
    start_time: float = field(default_factory=time.time)
    end_time: float = field(default_factory=time.time)

    @classmethod
    def failure(cls, error: str, start_time: float | None = None) -> Outcome:
        now = time.time()
        return cls(Status.FAILED, error=error, start_time=start_time or now, end_time=now)
