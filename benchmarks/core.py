"""``python -m benchmarks.core [--length N] [--width N] [--runs K]``: the dispatcher alone.

Runs a :class:`~covalent._dispatcher.dispatcher.Dispatcher` in this process, on a real
SQLite store in a temporary folder, with an executor that answers every task at once on
the fast path (``start_many``): no server, no HTTP, no worker processes. What is left is
the dispatcher's own cost per node (deciding, recording, committing) for a chain of
``length`` electrons (W3's shape) and a fan-out of ``width`` (W2's). Each shape gets a
warm-up dispatch (it also sets the executor up), then ``runs`` timed ones; the table
gives the median in microseconds per electron. The collector runs at the server's
thresholds. Run it with ``PYTHONPATH`` on another checkout to compare two commits.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import covalent as ct
from covalent._dispatcher.dispatcher import Dispatcher
from covalent._dispatcher.executors import ExecutorRegistry
from covalent._server.__main__ import GC_YOUNG
from covalent._store.store import Store
from covalent._wire import blobs
from covalent._wire import manifest as manifestmod
from covalent.executor import plugins
from covalent.executor.base import BaseExecutor
from covalent.executor.task import Outcome, Task

ONE = blobs.dumps(1)
FINAL = ("COMPLETED", "FAILED", "CANCELLED")


class AtOnce(BaseExecutor):
    """Completes every task as soon as it is started (output 1), on the event loop."""

    def start_many(self, tasks: list[tuple[Task, Any]]) -> list[Any]:
        loop = asyncio.get_running_loop()
        now = time.time()
        for _task, report in tasks:
            outcome = Outcome(
                ct.status.COMPLETED, output=ONE, output_repr="1", start_time=now, end_time=now
            )
            loop.call_soon(report, outcome)
        return [_Nothing() for _ in tasks]

    def reports_start(self) -> bool:
        return True  # the outcome carries its start, as the local pool's does

    async def execute(self, task: Task) -> Outcome:  # the supervised path (warm-up)
        now = time.time()
        return Outcome(
            ct.status.COMPLETED, output=ONE, output_repr="1", start_time=now, end_time=now
        )


class _Nothing:
    def cancel(self) -> None:
        pass


@ct.electron(executor="at_once")
def step(x: int) -> int:
    return x + 1


def chain(length: int) -> Any:
    @ct.lattice
    def flow() -> int:
        value = 0
        for _ in range(length):
            value = step(value)
        return value

    return flow


def fan_out(width: int) -> Any:
    @ct.lattice
    def flow() -> list[int]:
        return [step(i) for i in range(width)]

    return flow


async def _time_dispatches(lattice: Any, electrons: int, runs: int) -> list[float]:
    """Seconds per electron of ``runs`` dispatches of ``lattice``, after a warm-up."""
    root = Path(tempfile.mkdtemp(prefix="covalent-core-"))
    store = Store.sqlite(root / "db.sqlite", root / "blobs")
    store.create_schema()
    registry = ExecutorRegistry()
    registry.plugins["at_once"] = plugins.Plugin("at_once", AtOnce)
    dispatcher = Dispatcher(store, root / "results", registry)
    await dispatcher.start()
    graph = lattice.build_graph()
    manifest, values = manifestmod.from_graph(graph, (), {}, lattice)
    times = []
    try:
        for run in range(runs + 1):
            started = time.perf_counter()
            dispatch_id = dispatcher.submit(manifest, values)
            while True:  # until its final state is in the store, as a client would see it
                await dispatcher.wait(dispatch_id, 600)
                status = store.get_dispatch(dispatch_id)["status"]
                if status in FINAL:
                    break
                await asyncio.sleep(0.001)  # submitted, not yet among the dispatcher's runs
            took = time.perf_counter() - started
            if status != "COMPLETED":
                raise RuntimeError(f"the dispatch ended {status}")
            if run:  # the first one is the warm-up
                times.append(took / electrons)
    finally:
        await dispatcher.stop()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.core", description=__doc__)
    parser.add_argument("--length", type=int, default=1000, help="electrons in the chain")
    parser.add_argument("--width", type=int, default=10000, help="electrons in the fan-out")
    parser.add_argument("--runs", type=int, default=5, help="timed dispatches of each")
    args = parser.parse_args(argv)
    gc.set_threshold(GC_YOUNG, 20, 100)  # the server's (covalent/_server/__main__.py)
    print("| shape | electrons | median µs per electron | min | max |")
    print("|---|---|---|---|---|")
    for name, lattice, size in (
        ("chain", chain(args.length), args.length),
        ("fan-out", fan_out(args.width), args.width),
    ):
        per = [t * 1e6 for t in asyncio.run(_time_dispatches(lattice, size, args.runs))]
        print(
            f"| {name} | {size:,} | {statistics.median(per):.0f} | {min(per):.0f} | "
            f"{max(per):.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
