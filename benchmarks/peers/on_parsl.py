"""The workloads on Parsl: ``python_app``s on a HighThroughputExecutor.

One block of workers from a ``LocalProvider`` on this machine, ``SLOTS`` worker processes
(as many as covalent's LocalExecutor has by default: ``cores_per_worker`` is the CPUs
shared among them), the interchange and the workers on 127.0.0.1 only, no scaling
strategy, no usage tracking, the run folder in the peer's home. Parsl resolves futures
among an app's positional arguments and in its ``inputs`` keyword, so ``total`` gets the
fan-out's futures as ``inputs``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import workloads as wl
from benchmarks.peers.base import SLOTS, Peer

try:
    import parsl
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider
except ImportError:  # not installed: the peer is skipped
    parsl = None  # type: ignore[assignment, unused-ignore]


def _total(inputs: Sequence[int] = ()) -> int:
    return wl.total(list(inputs))


def _total_length(inputs: Sequence[bytes] = ()) -> int:
    return wl.total_length(list(inputs))


def config(home: str) -> Any:
    """One local block of ``SLOTS`` workers, every socket on 127.0.0.1."""
    executor = HighThroughputExecutor(
        label="htex_local",
        address="127.0.0.1",
        loopback_address="127.0.0.1",
        max_workers_per_node=SLOTS,
        cores_per_worker=(os.cpu_count() or 1) / SLOTS,
        worker_logdir_root=os.path.join(home, "workers"),
        provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1),
    )
    run_dir = os.path.join(home, "runinfo")
    return Config(executors=[executor], run_dir=run_dir, strategy="none", usage_tracking=0)


class ParslPeer(Peer):
    name = "parsl"

    def start(self) -> None:
        self.dfk = parsl.load(config(str(self.home)))
        app = parsl.python_app
        self.identity, self.square, self.inc = map(app, (wl.identity, wl.square, wl.inc))
        self.nap, self.payload = app(wl.nap), app(wl.payload)
        self.total, self.total_length = app(_total), app(_total_length)
        self.graphs: dict[str, Callable[..., Any]] = {
            "W1": self._seed,
            "W2": self._fan_out,
            "W3": self._chain,
            "W4": self._sleepers,
            "W5": self._payloads,
        }

    def stop(self) -> None:
        if hasattr(self, "dfk"):
            self.dfk.cleanup()  # stops the interchange and cancels the workers' block
            parsl.clear()

    def compute(self, workload: wl.Workload) -> Any:
        return self.graphs[workload.group](*workload.args).result()

    def describe(self) -> str:
        return (
            f"Parsl {parsl.__version__}: HighThroughputExecutor, one LocalProvider block of "
            f"{SLOTS} workers, 127.0.0.1"
        )

    def _seed(self, a: int) -> Any:
        return self.square(self.identity(a))

    def _fan_out(self, n: int) -> Any:
        return self.total(inputs=[self.inc(i) for i in range(n)])

    def _chain(self, n: int) -> Any:
        out = self.inc(0)
        for _ in range(n - 1):
            out = self.inc(out)
        return out

    def _sleepers(self, n: int, seconds: float) -> Any:
        return self.total(inputs=[self.nap(seconds) for _ in range(n)])

    def _payloads(self, n: int, size: int) -> Any:
        return self.total_length(inputs=[self.payload(size) for _ in range(n)])


PEER = ParslPeer
