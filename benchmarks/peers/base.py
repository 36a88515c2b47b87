"""What every peer of ``--peers`` is: an engine started once, then asked to compute each
workload's graph and hand back its final value.

A peer runs the very functions of ``benchmarks.workloads`` with the same shape of graph as
the lattice (W2: N ``inc`` then one ``total`` of their results; W3: a chain of ``inc``),
on as many task slots as covalent's ``LocalExecutor`` has workers by default
(:data:`SLOTS`), on 127.0.0.1 only. A run is timed from the first call into the engine to
the final value in this process's hands, then checked, as covalent's runs are.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from benchmarks import workloads as wl
from benchmarks.runner import Timings, check, time_runs
from covalent.executor.executor_plugins.local import default_workers

SLOTS = default_workers()  # LocalExecutor's worker processes: max(8, CPUs)
WARM_UP = wl.sleep_workload(SLOTS, 0.5)  # every slot busy at once


class Peer(ABC):
    """One engine, started by ``with`` (in ``home``, a temporary folder of its own) and
    stopped, with every process it started, on leaving."""

    name: ClassVar[str]
    max_tasks: ClassVar[int | None] = None  # larger workloads are skipped (too slow)

    def __init__(self, home: Path) -> None:
        self.home = home

    @abstractmethod
    def start(self) -> None:
        """Start the engine (its workers included)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the engine and every process it started."""

    @abstractmethod
    def compute(self, workload: wl.Workload) -> Any:
        """Run ``workload``'s graph on the engine and return its final value."""

    def describe(self) -> str:
        """The engine's setup in one line, for the JSON file."""
        return self.name

    def skips(self, workload: wl.Workload) -> str | None:
        """Why ``workload`` is not run on this peer, or None."""
        tasks = workload.counts()[1]
        if self.max_tasks is not None and tasks > self.max_tasks:
            return f"over {self.max_tasks:,} tasks"
        return None

    def measure(self, workload: wl.Workload, runs: int) -> Timings:
        """A warm-up, then ``runs`` timed runs, each checked after the clock stops."""

        def run() -> float:
            start = time.perf_counter()
            value = self.compute(workload)
            elapsed = time.perf_counter() - start
            check(workload, True, value)
            return elapsed

        return Timings(time_runs(run, runs), workload.counts()[1])

    def __enter__(self) -> Peer:
        """Start the engine, then keep every slot busy at once, so that every worker has
        started before anything is timed (as covalent's first dispatch starts its pool)."""
        try:
            self.start()
            self.measure(WARM_UP, 0)
        except BaseException:
            self.stop()  # whatever did start
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
