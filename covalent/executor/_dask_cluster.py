"""The server's own Dask cluster (:class:`LocalDaskCluster`) and connecting to a
scheduler, for :mod:`covalent.executor.executor_plugins.dask`.

``distributed`` is imported inside the functions that need it, never at module level
(see that module's docstring for why).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any

from covalent._errors import ExecutorError

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

CONNECT_TIMEOUT = 30.0
START_TIMEOUT = 180.0
"""Seconds the local cluster may take to start or rescale (a loaded machine is slow)."""

log = logging.getLogger("covalent.executor.dask")


def import_distributed() -> ModuleType:
    """``distributed``, imported on first use (see the module docstring for why)."""
    try:  # not at module level: discovery imports this module at every server start
        import distributed  # and in the SDK, and importing distributed takes ~0.5 s
    except ImportError as e:
        raise ExecutorError(
            "DaskExecutor needs dask.distributed, which is not installed; install it with "
            "`pip install 'covalent[dask]'`."
        ) from e
    return distributed


def default_workers() -> int:
    """One local worker process per CPU this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


async def connect(address: str, **options: Any) -> Client:
    """An asynchronous client of the scheduler at ``address``; ExecutorError if none answers."""
    distributed = import_distributed()
    client = None
    try:
        client = distributed.Client(
            address, asynchronous=True, set_as_default=False, timeout=CONNECT_TIMEOUT, **options
        )
        return await client
    except Exception as e:
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
        raise ExecutorError(
            f"Could not connect to the Dask scheduler at '{address}' ({type(e).__name__}: {e}); "
            "check that it runs and that the address is right."
        ) from e


class LocalDaskCluster:
    """The server's own ``LocalCluster`` and a client of it.

    Shared by the DaskExecutors without an address that run on one event loop
    (:meth:`acquire` / :meth:`release` count them); it starts on the first
    :meth:`client` call and closes after the last :meth:`release`.
    """

    # Per event loop, as a server has one loop and a test many: the registry makes one
    # executor per settings and has no place for a resource they share.
    _shared: dict[asyncio.AbstractEventLoop, LocalDaskCluster] = {}

    def __init__(
        self, n_workers: int = 0, threads_per_worker: int = 1, dashboard: bool = False
    ) -> None:
        self.n_workers = n_workers or default_workers()
        self.threads_per_worker = max(1, threads_per_worker)
        self.dashboard = dashboard
        self.users = 0
        self._cluster: LocalCluster | None = None
        self._client: Client | None = None
        self._starting: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def acquire(
        cls, n_workers: int = 0, threads_per_worker: int = 1, dashboard: bool = False
    ) -> LocalDaskCluster:
        """The running loop's local cluster (made, not started, if there is none), counted
        as used once more; settings only apply when it is made."""
        loop = asyncio.get_running_loop()
        local = cls._shared.get(loop)
        if local is None:
            local = cls._shared[loop] = cls(n_workers, threads_per_worker, dashboard)
        local.users += 1
        return local

    async def release(self) -> None:
        """Count one user less; close the cluster after the last."""
        self.users -= 1
        if self.users > 0:
            return
        loop = asyncio.get_running_loop()
        if self._shared.get(loop) is self:
            del self._shared[loop]
        await self.close()

    @property
    def running(self) -> bool:
        return self._client is not None

    @property
    def address(self) -> str:
        return str(self._cluster.scheduler_address) if self._cluster is not None else ""

    async def client(self) -> Client:
        """A client of the cluster, which starts now if it is not running yet."""
        async with self._lock:
            if self._client is None:
                # Shielded: a caller cancelled meanwhile must not leave a half-started
                # cluster behind (a thread cannot be stopped); close() waits for the start.
                self._starting = asyncio.ensure_future(self._start())
                await asyncio.shield(self._starting)
            assert self._client is not None
            return self._client

    async def _start(self) -> None:
        distributed = import_distributed()
        started = time.monotonic()
        try:
            self._cluster = await asyncio.to_thread(self._new_cluster, distributed)
        except Exception as e:
            raise ExecutorError(
                f"The local Dask cluster failed to start ({type(e).__name__}: {e}); see the "
                "server log (`covalent logs`)."
            ) from e
        try:  # its workers are on this machine, so data goes to and from them directly
            self._client = await connect(self._cluster.scheduler_address, direct_to_workers=True)
        except ExecutorError:
            await asyncio.to_thread(self._cluster.close)
            self._cluster = None
            raise
        log.info(
            "Started the local Dask cluster at %s with %d workers in %.1f s",
            self._cluster.scheduler_address,
            self.n_workers,
            time.monotonic() - started,
        )

    def _new_cluster(self, distributed: ModuleType) -> LocalCluster:
        # A synchronous LocalCluster runs its scheduler on a loop thread of its own, so
        # that its work does not hold up the server's event loop.
        cluster: LocalCluster = distributed.LocalCluster(
            n_workers=self.n_workers,
            threads_per_worker=self.threads_per_worker,
            processes=True,
            host="127.0.0.1",
            scheduler_port=0,
            dashboard_address="127.0.0.1:0",  # the HTTP server (health, metrics) always runs
            scheduler_kwargs={"dashboard": self.dashboard},
            silence_logs=logging.WARNING,
        )
        return cluster

    async def info(self) -> dict[str, Any]:
        """Address, dashboard and workers of the running cluster."""
        client = await self.client()
        assert client.scheduler is not None
        identity = await client.scheduler.identity()  # every worker (n_workers=-1 is new)
        workers = [
            {
                "address": address,
                "name": str(worker.get("name", "")),
                "nthreads": int(worker.get("nthreads", 0)),
                "memory_limit": int(worker.get("memory_limit") or 0),
            }
            for address, worker in sorted(identity.get("workers", {}).items())
        ]
        dashboard = self._cluster.dashboard_link if self._cluster and self.dashboard else ""
        return {
            "running": True,
            "address": self.address,
            "dashboard": dashboard,
            "n_workers": len(workers),
            "threads": sum(w["nthreads"] for w in workers),
            "workers": workers,
        }

    async def scale(self, n_workers: int) -> None:
        """Have ``n_workers`` worker processes; return once they are there."""
        client = await self.client()
        assert self._cluster is not None
        await asyncio.to_thread(self._cluster.scale, n_workers)
        await self._wait_for_workers(client, n_workers)
        self.n_workers = n_workers

    async def restart(self) -> None:
        """Restart every worker process; tasks running on them fail."""
        client = await self.client()
        try:
            await client.restart(timeout=START_TIMEOUT, wait_for_workers=False)
        except Exception as e:
            raise ExecutorError(
                f"The local Dask cluster did not restart ({type(e).__name__}: {e}); see the "
                "server log (`covalent logs`)."
            ) from e
        await self._wait_for_workers(client, self.n_workers)

    async def _wait_for_workers(self, client: Client, n_workers: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while len(await client.nthreads()) != n_workers:
            if time.monotonic() > deadline:
                raise ExecutorError(
                    f"The local Dask cluster did not reach {n_workers} workers within "
                    f"{START_TIMEOUT:.0f} s; see the server log (`covalent logs`)."
                )
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        async with self._lock:
            if self._starting is not None:
                await asyncio.wait([self._starting])
            client, cluster = self._client, self._cluster
            self._client, self._cluster = None, None
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.close()
            if cluster is not None:
                await asyncio.to_thread(cluster.close)
