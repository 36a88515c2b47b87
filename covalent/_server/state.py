"""What every route of the server reaches: the store, the dispatcher, the settings and
the trigger manager, and the small helpers the routes share."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from covalent._dispatcher.dispatcher import Dispatcher
from covalent._dispatcher.triggers import TriggerManager
from covalent._errors import DispatchNotFoundError
from covalent._store.store import Store


@dataclass
class ServerState:
    store: Store
    dispatcher: Dispatcher
    settings: dict[str, Any]
    triggers: TriggerManager


def server_state(request: Request) -> ServerState:
    """The server's state, set by the app's lifespan."""
    state: ServerState = request.app.state.covalent
    return state


def dispatch_or_404(state: ServerState, dispatch_id: str) -> dict[str, Any]:
    """A dispatch's row; DispatchNotFoundError (404) if there is none."""
    row = state.store.get_dispatch(dispatch_id)
    if row is None:
        raise DispatchNotFoundError(dispatch_id)
    return row


def json_response(content: Any) -> Response:
    """JSON of plain rows, written directly: FastAPI's response validation costs seconds
    for a dispatch of 10,000 nodes."""
    body = json.dumps(content, separators=(",", ":"), allow_nan=False).encode()
    return Response(body, media_type="application/json")
