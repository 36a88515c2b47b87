"""``/api/v1/cluster``: the server's local Dask cluster, behind ``covalent cluster``.

The cluster belongs to the DaskExecutors without a scheduler address (see
``covalent/executor/executor_plugins/dask.py``); these routes reach it through the
server's executor registry. ``GET`` only reports and never starts it; the ``POST``
routes start it first if it is not running yet, as an electron on it would.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from covalent._dispatcher.executors import ExecutorRegistry
from covalent._errors import BadRequestError, ExecutorError
from covalent._server.params import MAX_DASK_WORKERS
from covalent.executor.executor_plugins.dask import DaskExecutor, LocalDaskCluster

router = APIRouter(prefix="/api/v1/cluster")

LOCAL_SPEC: dict[str, Any] = {"name": "dask", "attributes": {"scheduler_address": ""}}
"""The executor spec of a DaskExecutor on the local cluster, with the configured defaults."""

NOT_RUNNING: dict[str, Any] = {
    "running": False,
    "address": "",
    "dashboard": "",
    "n_workers": 0,
    "threads": 0,
    "workers": [],
}


class ScaleRequest(BaseModel):
    n_workers: int = Field(le=MAX_DASK_WORKERS)


def _registry(request: Request) -> ExecutorRegistry:
    registry: ExecutorRegistry = request.app.state.covalent.dispatcher.executors
    return registry


def _running(registry: ExecutorRegistry) -> LocalDaskCluster | None:
    for executor in list(registry.instances.values()):
        if isinstance(executor, DaskExecutor):
            local = executor.running_local_cluster()
            if local is not None:
                return local
    return None


async def _started(registry: ExecutorRegistry) -> LocalDaskCluster:
    executor = await registry.get(LOCAL_SPEC)
    if not isinstance(executor, DaskExecutor):
        raise ExecutorError(
            f"The executor called 'dask' is {type(executor).__name__}, not covalent's "
            "DaskExecutor, so the server has no local Dask cluster to manage."
        )
    local = executor.local_cluster()
    await local.client()
    return local


@router.get("")
async def status(request: Request) -> dict[str, Any]:
    """The local cluster's address, dashboard and workers, or ``running: false``."""
    local = _running(_registry(request))
    return await local.info() if local is not None else dict(NOT_RUNNING)


@router.post("/start")
async def start(request: Request) -> dict[str, Any]:
    """Start the local cluster unless it runs; describe it."""
    return await (await _started(_registry(request))).info()


@router.post("/scale")
async def scale(request: Request, body: ScaleRequest) -> dict[str, Any]:
    """Give the local cluster ``n_workers`` worker processes; answer once they are there."""
    if body.n_workers < 1:
        raise BadRequestError(
            f"Cannot scale the local Dask cluster to {body.n_workers} workers; give 1 or more."
        )
    local = await _started(_registry(request))
    await local.scale(body.n_workers)
    return await local.info()


@router.post("/restart")
async def restart(request: Request) -> dict[str, Any]:
    """Restart the local cluster's worker processes; electrons running on them fail."""
    local = await _started(_registry(request))
    await local.restart()
    return await local.info()
