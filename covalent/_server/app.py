"""The ASGI app: its lifespan (store, dispatcher, triggers), the token check, and the
routes of its modules: ``dispatches`` (the REST API's core under ``/api/v1``),
``triggers``, ``cluster``, ``database`` and ``ui``, each an ``APIRouter`` at module level.

Blobs are opaque bytes here: the server stores and returns them, never unpickles them.
Every CovalentError becomes a JSON answer ``{"detail": ..., "error": ...}`` with the
error's HTTP status, in :func:`_covalent_error`.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from covalent import __version__
from covalent._dispatcher.dispatcher import Dispatcher
from covalent._dispatcher.triggers import TriggerManager
from covalent._errors import (
    CovalentError,
    InvalidFieldError,
)
from covalent._server import cluster, database, dispatches, params, triggers, ui
from covalent._server.state import ServerState
from covalent._store.store import Store

log = logging.getLogger("covalent.server")


def create_app(
    store: Store,
    results_root: str,
    settings: dict[str, Any] | None = None,
    guard: database.Guard | None = None,
) -> FastAPI:
    """The app; ``guard`` holds the database's dispatch lock (one is made if None)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store.create_schema()
        app.state.database = guard or database.Guard(store)
        await app.state.database.start()  # a second server on the database stops here
        store.sweep_partial_files()  # what a stopped server was still writing
        store.sweep_staged()
        dispatcher = Dispatcher(store, results_root)
        trigger_manager = TriggerManager(store, dispatcher)
        app.state.covalent = ServerState(store, dispatcher, settings or {}, trigger_manager)
        await dispatcher.start()
        await trigger_manager.start()
        try:
            yield
        finally:
            await trigger_manager.stop()
            await dispatcher.stop()
            await app.state.database.stop()
            store.close()

    app = FastAPI(title="covalent", version=__version__, lifespan=lifespan)
    app.add_exception_handler(CovalentError, _covalent_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, params.refuse)  # type: ignore[arg-type]
    token = (settings or {}).get("token")
    if token:
        _require_token(app, str(token))
    app.include_router(dispatches.router)
    app.include_router(cluster.router)
    app.include_router(ui.router)
    app.include_router(triggers.router)
    app.include_router(database.router)
    return app


TOKEN_COOKIE = "covalent_token"


def _require_token(app: FastAPI, token: str) -> None:
    """Every request must carry the token (401 otherwise): ``Authorization: Bearer
    <token>``, or for a browser the cookie set by opening any page once with
    ``?token=<token>``."""
    expected = token.encode()

    def matches(given: str) -> bool:
        return hmac.compare_digest(given.encode(), expected)

    @app.middleware("http")
    async def check_token(request: Request, call_next: Any) -> Response:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        from_query = request.query_params.get("token", "")
        if not (
            matches(bearer) or matches(request.cookies.get(TOKEN_COOKIE, "")) or matches(from_query)
        ):
            return JSONResponse(
                {
                    "detail": "This server needs a token: send Authorization: Bearer <token> "
                    "(set dispatcher.token or COVALENT_TOKEN on the client).",
                    "error": "AuthenticationError",
                },
                status_code=401,
            )
        response: Response = await call_next(request)
        if from_query and matches(from_query):
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response


async def _covalent_error(request: Request, error: CovalentError) -> JSONResponse:
    answer = {"detail": str(error), "error": type(error).__name__}
    if isinstance(error, InvalidFieldError):
        answer["field"] = error.field
    return JSONResponse(answer, status_code=error.http_status)
