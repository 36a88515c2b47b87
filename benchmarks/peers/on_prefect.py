"""The workloads on Prefect: one ``@flow`` run per workload run, its ``@task``s submitted
to Prefect's default task runner (threads).

No Prefect server is configured, so Prefect starts its temporary ("ephemeral") server as
a subprocess on 127.0.0.1 the first time it is needed, with its SQLite database under
``PREFECT_HOME`` (the peer's home; ``benchmarks.peers`` sets it and turns analytics off
before Prefect is imported); ``stop`` stops it. The thread pool has ``SLOTS`` threads, as
many tasks at once as covalent's LocalExecutor runs. Every task has no cache policy and
does not persist its result, so that no run reuses the previous one's (as dask's
``pure=False``). Fan-outs go through ``Task.map``, Prefect's bulk API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks import workloads as wl
from benchmarks.peers.base import SLOTS, Peer

try:
    import prefect
    from prefect.cache_policies import NONE
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.task_runners import ThreadPoolTaskRunner
except ImportError:  # not installed: the peer is skipped
    prefect = None  # type: ignore[assignment, unused-ignore]


def _task(function: Callable[..., Any]) -> Any:
    return prefect.task(cache_policy=NONE, persist_result=False)(function)


class PrefectPeer(Peer):
    name = "prefect"
    max_tasks = 2_000  # ~40-100 tasks/s here: W2 N=10,000 would take minutes per run

    def start(self) -> None:
        self.identity, self.square, self.inc = map(_task, (wl.identity, wl.square, wl.inc))
        self.nap, self.payload = _task(wl.nap), _task(wl.payload)
        self.total, self.total_length = _task(wl.total), _task(wl.total_length)
        graphs: dict[str, Callable[..., Any]] = {
            "W1": self._seed,
            "W2": self._fan_out,
            "W3": self._chain,
            "W4": self._sleepers,
            "W5": self._payloads,
        }

        def workload(group: str, args: tuple[Any, ...]) -> Any:
            return graphs[group](*args).result()

        threads: Any = ThreadPoolTaskRunner(max_workers=SLOTS)  # its generics do not fit flow()'s
        self.flow = prefect.flow(
            name="benchmark",
            task_runner=threads,
            persist_result=False,
            validate_parameters=False,
        )(workload)

    def stop(self) -> None:
        SubprocessASGIServer().stop()  # the ephemeral server, if it was started

    def compute(self, workload: wl.Workload) -> Any:
        return self.flow(workload.group, workload.args)

    def describe(self) -> str:
        return (
            f"Prefect {prefect.__version__}: a flow per run, ThreadPoolTaskRunner of {SLOTS} "
            "threads, ephemeral server on 127.0.0.1"
        )

    def _seed(self, a: int) -> Any:
        return self.square.submit(self.identity.submit(a))

    def _fan_out(self, n: int) -> Any:
        return self.total.submit(self.inc.map(range(n)))

    def _chain(self, n: int) -> Any:
        out = self.inc.submit(0)
        for _ in range(n - 1):
            out = self.inc.submit(out)
        return out

    def _sleepers(self, n: int, seconds: float) -> Any:
        return self.total.submit(self.nap.map([seconds] * n))

    def _payloads(self, n: int, size: int) -> Any:
        return self.total_length.submit(self.payload.map([size] * n))


PEER = PrefectPeer
