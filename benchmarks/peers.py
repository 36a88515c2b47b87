"""The same workloads on dask.distributed, for ``--peers``.

A ``LocalCluster`` of two worker processes on 127.0.0.1 with four threads each, so that it
has as many task slots as covalent's LocalExecutor has workers by default (eight). Every
task is submitted with ``pure=False``, so that no run reuses a result of the previous one.
Fan-outs go through ``client.map``, dask's bulk API (about twice as fast here as one
``submit`` per task). A run is timed from the first call to the final result being back
in this process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks import workloads as wl
from benchmarks.runner import Timings, check, time_runs

try:
    import distributed
except ImportError:  # the optional extra is not installed
    distributed = None  # type: ignore[assignment]

AVAILABLE = distributed is not None


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


@contextmanager
def dask_client() -> Iterator[Any]:
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=4,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def measure(client: Any, workload: wl.Workload, runs: int) -> Timings:
    """Time ``workload`` on dask: a warm-up, then ``runs`` timed runs."""

    def run() -> float:
        start = time.perf_counter()
        value = GRAPHS[workload.group](client, *workload.args).result()
        elapsed = time.perf_counter() - start
        check(workload, True, value)
        return elapsed

    return Timings(time_runs(run, runs), workload.counts()[1])
