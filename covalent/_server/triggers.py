"""``/api/v1/triggers``: the triggers the server has armed, adding and stopping them.

Triggers are added with their dispatch (``POST /api/v1/dispatches`` with a manifest that
has a ``"triggers"`` list), or to a stored dispatch later (``POST /api/v1/triggers``,
``trigger.register()``); see covalent/_dispatcher/triggers.py and docs/triggers.md.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from covalent._dispatcher.triggers import TriggerManager
from covalent._errors import BadRequestError, DispatchNotFoundError
from covalent._server.params import Limit, Offset
from covalent._store import triggers as stored

router = APIRouter(prefix="/api/v1/triggers")


class StopRequest(BaseModel):
    dispatch_ids: list[str]


class AddRequest(BaseModel):
    dispatch_id: str
    triggers: list[dict[str, Any]]


def _manager(request: Request) -> TriggerManager:
    manager: TriggerManager = request.app.state.covalent.triggers
    return manager


@router.get("")
async def list_triggers(
    request: Request, dispatch_id: str | None = None, active: bool | None = None
) -> dict[str, Any]:
    """Every stored trigger (or those of one dispatch, or only active or stopped ones)."""
    return {"triggers": _manager(request).listing(dispatch_id, active)}


@router.post("")
async def add_triggers(request: Request, body: AddRequest) -> dict[str, Any]:
    """Attach triggers to a stored dispatch: each event dispatches its lattice again."""
    manager = _manager(request)
    if manager.store.get_dispatch(body.dispatch_id) is None:
        raise DispatchNotFoundError(body.dispatch_id)
    if not body.triggers:
        raise BadRequestError("Name at least one trigger to add.")
    checked = manager.check({"triggers": body.triggers})
    return {"trigger_ids": manager.add(body.dispatch_id, checked)}


@router.post("/stop")
async def stop_triggers(request: Request, body: StopRequest) -> dict[str, Any]:
    """Stop every trigger of these dispatches; no dispatch is made by them afterwards."""
    if not body.dispatch_ids:
        raise BadRequestError("Name at least one dispatch whose triggers to stop.")
    return {"stopped": _manager(request).stop_dispatches(body.dispatch_ids)}


@router.get("/firings")
async def list_firings(
    request: Request, dispatch_id: str, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    """The dispatches that the triggers of ``dispatch_id`` made, newest first."""
    manager = _manager(request)
    if manager.store.get_dispatch(dispatch_id) is None:
        raise DispatchNotFoundError(dispatch_id)
    rows, total = stored.firings(
        manager.store, dispatch_id, limit=max(1, min(limit, 1000)), offset=max(0, offset)
    )
    return {"firings": rows, "total": total}
