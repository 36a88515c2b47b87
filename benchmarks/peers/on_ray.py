"""The workloads on Ray alone: tasks made with ``ray.remote``, one ``ray.get``.

``ray.init`` starts a one-node Ray of its own in this process's session (on 127.0.0.1, no
dashboard, usage stats off, a 1 GiB object store, its temporary folder in the peer's home)
with ``SLOTS`` logical CPUs, so that as many tasks run at once as on covalent's
LocalExecutor. Ray resolves object references only among a task's top-level arguments, so
``total`` gets the fan-out's references as ``*args`` (as ``benchmarks.ray_peer`` does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks import workloads as wl
from benchmarks.peers.base import SLOTS, Peer

try:
    import ray
except ImportError:  # not installed: the peer is skipped
    ray = None  # type: ignore[assignment]

OBJECT_STORE_BYTES = 1024**3


def _total_of(*values: int) -> int:
    return wl.total(list(values))


def _total_length_of(*blobs: bytes) -> int:
    return wl.total_length(list(blobs))


class RayPeer(Peer):
    name = "ray"

    def start(self) -> None:
        ray.init(
            num_cpus=SLOTS,
            include_dashboard=False,
            object_store_memory=OBJECT_STORE_BYTES,
            log_to_driver=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=str(self.home),
        )
        remote = ray.remote
        self.identity, self.square, self.inc = map(remote, (wl.identity, wl.square, wl.inc))
        self.nap, self.payload = remote(wl.nap), remote(wl.payload)
        self.total, self.total_length = remote(_total_of), remote(_total_length_of)
        self.graphs: dict[str, Callable[..., Any]] = {
            "W1": self._seed,
            "W2": self._fan_out,
            "W3": self._chain,
            "W4": self._sleepers,
            "W5": self._payloads,
        }

    def stop(self) -> None:
        if ray.is_initialized():
            ray.shutdown()

    def compute(self, workload: wl.Workload) -> Any:
        return ray.get(self.graphs[workload.group](*workload.args))

    def describe(self) -> str:
        return f"Ray {ray.__version__}: ray.init, one node on 127.0.0.1, {SLOTS} logical CPUs"

    def _seed(self, a: int) -> Any:
        return self.square.remote(self.identity.remote(a))

    def _fan_out(self, n: int) -> Any:
        return self.total.remote(*[self.inc.remote(i) for i in range(n)])

    def _chain(self, n: int) -> Any:
        out = self.inc.remote(0)
        for _ in range(n - 1):
            out = self.inc.remote(out)
        return out

    def _sleepers(self, n: int, seconds: float) -> Any:
        return self.total.remote(*[self.nap.remote(seconds) for _ in range(n)])

    def _payloads(self, n: int, size: int) -> Any:
        return self.total_length.remote(*[self.payload.remote(size) for _ in range(n)])


PEER = RayPeer
