"""The workloads on dask.distributed.

A ``LocalCluster`` of two worker processes on 127.0.0.1 with ``SLOTS / 2`` threads each,
so that it has as many task slots as covalent's LocalExecutor has workers by default.
Every task is submitted with ``pure=False``, so that no run reuses a result of the
previous one. Fan-outs go through ``client.map``, dask's bulk API (about twice as fast
here as one ``submit`` per task).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from benchmarks import workloads as wl
from benchmarks.peers.base import SLOTS, Peer

try:
    import distributed
except ImportError:  # the optional extra is not installed
    distributed = None  # type: ignore[assignment]

WORKERS = 2


def _seed(client: Any, a: int) -> Any:
    return client.submit(wl.square, client.submit(wl.identity, a, pure=False), pure=False)


def _fan_out(client: Any, n: int) -> Any:
    return client.submit(wl.total, client.map(wl.inc, range(n), pure=False), pure=False)


def _chain(client: Any, n: int) -> Any:
    out = client.submit(wl.inc, 0, pure=False)
    for _ in range(n - 1):
        out = client.submit(wl.inc, out, pure=False)
    return out


def _sleepers(client: Any, n: int, seconds: float) -> Any:
    naps = client.map(wl.nap, [seconds] * n, pure=False)
    return client.submit(wl.total, naps, pure=False)


def _payloads(client: Any, n: int, size: int) -> Any:
    blobs = client.map(wl.payload, [size] * n, pure=False)
    return client.submit(wl.total_length, blobs, pure=False)


GRAPHS: dict[str, Callable[..., Any]] = {
    "W1": _seed,
    "W2": _fan_out,
    "W3": _chain,
    "W4": _sleepers,
    "W5": _payloads,
}


class DaskPeer(Peer):
    name = "dask"

    def start(self) -> None:
        self._stack = ExitStack()
        cluster = self._stack.enter_context(
            distributed.LocalCluster(
                n_workers=WORKERS,
                threads_per_worker=SLOTS // WORKERS,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                local_directory=str(self.home),
            )
        )
        self.client = self._stack.enter_context(distributed.Client(cluster))

    def stop(self) -> None:
        if hasattr(self, "_stack"):
            self._stack.close()

    def compute(self, workload: wl.Workload) -> Any:
        return GRAPHS[workload.group](self.client, *workload.args).result()

    def describe(self) -> str:
        return (
            f"dask.distributed {distributed.__version__}: LocalCluster of {WORKERS} worker "
            f"processes x {SLOTS // WORKERS} threads on 127.0.0.1"
        )


PEER = DaskPeer
