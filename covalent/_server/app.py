"""The ASGI app: the REST API under ``/api/v1``.

Blobs are opaque bytes here: the server stores and returns them, never unpickles them.
Every CovalentError becomes a JSON answer ``{"detail": ..., "error": ...}`` with the
error's HTTP status, in :func:`_covalent_error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from covalent import __version__, _config
from covalent._dispatcher.dispatcher import Dispatcher
from covalent._dispatcher.triggers import TriggerManager
from covalent._errors import (
    BadRequestError,
    CovalentError,
    DispatchNotFoundError,
    InvalidFieldError,
)
from covalent._results.status import FINAL_STATUSES, Status
from covalent._server import cluster, database, params, triggers, ui
from covalent._server.params import Limit, Offset, Timestamp, WaitSeconds
from covalent._store import cache as cachemod
from covalent._store import queries
from covalent._store.store import DispatchFilter, Store
from covalent._wire import bundle, schema
from covalent._wire.blobs import is_digest
from covalent._wire.schema import Count, Digest
from covalent._wire.secrets import declared_secrets, mask_manifest

log = logging.getLogger("covalent.server")

API = "/api/v1"
MAX_WAIT = 30.0
THREAD_UNPACK_BYTES = 1 << 20


@dataclass
class ServerState:
    store: Store
    dispatcher: Dispatcher
    settings: dict[str, Any]
    triggers: TriggerManager


class CancelRequest(BaseModel):
    task_ids: list[Count] | None = None


class RedispatchRequest(BaseModel):
    reuse_previous_results: bool = False


class FetchRequest(BaseModel):
    digests: list[Digest] = Field(max_length=100_000)


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
        store.sweep_partial_files()
        app.state.database = guard or database.Guard(store)
        await app.state.database.start()
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
    _routes(app)
    app.include_router(cluster.router)
    app.include_router(ui.router)
    app.include_router(triggers.router)
    app.include_router(database.router)
    return app


BUNDLE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {bundle.MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    }
}
"""The submit route's body in the OpenAPI document: a bundle, read by hand (its header's
schema is covalent._wire.schema.json_schema())."""

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


def json_response(content: Any) -> Response:
    """JSON of plain rows, written directly: FastAPI's response validation costs seconds
    for a dispatch of 10,000 nodes."""
    body = json.dumps(content, separators=(",", ":"), allow_nan=False).encode()
    return Response(body, media_type="application/json")


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.covalent
    return state


def _dispatch_or_404(state: ServerState, dispatch_id: str) -> dict[str, Any]:
    row = state.store.get_dispatch(dispatch_id)
    if row is None:
        raise DispatchNotFoundError(dispatch_id)
    return row


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) one larger than ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if limit and declared and declared.isdigit() and int(declared) > limit:
        raise TooLargeError(int(declared), limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if limit and size > limit:
            raise TooLargeError(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


class TooLargeError(BadRequestError):
    http_status = 413

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"The request is {size} bytes, more than this server accepts ({limit} bytes, "
            "config dispatcher.max_upload_bytes)."
        )


def _routes(app: FastAPI) -> None:
    @app.get(f"{API}/health")
    async def health(request: Request) -> dict[str, Any]:
        state = _state(request)
        return {
            "status": "ok",
            "version": __version__,
            "database": state.store.shown_url,
            **_config.masked({k: v for k, v in state.settings.items() if k != "token"}),
        }

    @app.post(f"{API}/dispatches", openapi_extra=BUNDLE_BODY)
    async def submit(request: Request, disable_run: bool = False) -> dict[str, str]:
        """Check, store and start a dispatch sent as a bundle (covalent/_wire/bundle.py)
        whose header is a manifest (covalent/_wire/schema.py)."""
        body = await _read_body(request, int(_state(request).settings.get("max_upload_bytes", 0)))
        if len(body) > THREAD_UNPACK_BYTES:
            manifest, blobs = await asyncio.to_thread(schema.read_bundle, body)
        else:
            manifest, blobs = schema.read_bundle(body)
        del body
        state = _state(request)
        trigger_specs = state.triggers.check(manifest)  # before anything is stored
        dispatch_id = state.dispatcher.submit(manifest, blobs, disable_run=disable_run)
        state.triggers.add(dispatch_id, trigger_specs)
        return {"dispatch_id": dispatch_id}

    @app.get(f"{API}/dispatches")
    async def list_dispatches(
        request: Request,
        status: str | None = None,
        limit: Limit = 50,
        offset: Offset = 0,
        name: str | None = None,
        since: Timestamp = None,
        id_prefix: str | None = None,
    ) -> Response:
        """A page of dispatches, newest first; ``total`` counts all that match."""
        store = _state(request).store
        if status is not None and status not in Status.__members__:
            raise BadRequestError(
                f"Unknown status '{status}'; use one of {', '.join(Status.__members__)}."
            )
        chosen = DispatchFilter(name=name, since=since, id_prefix=id_prefix)
        rows = store.list_dispatches(status, max(1, min(limit, 1000)), max(0, offset), chosen)
        total = store.count_dispatches(status, chosen)
        return json_response({"dispatches": rows, "total": total, "offset": max(0, offset)})

    @app.get(f"{API}/dispatches/{{dispatch_id}}")
    async def get_dispatch(
        request: Request, dispatch_id: str, wait: WaitSeconds = 0.0, nodes: bool = True
    ) -> Response:
        state = _state(request)
        if wait > 0:
            await state.dispatcher.wait(dispatch_id, min(wait, MAX_WAIT))
        row = _dispatch_or_404(state, dispatch_id)
        if nodes:
            row["nodes"] = state.store.get_nodes(dispatch_id)
            row["retried"] = state.store.get_attempts(dispatch_id)
        else:  # what a progress bar needs, in one GROUP BY
            counts = queries.node_counts(state.store, [dispatch_id])
            row["node_counts"] = counts.get(dispatch_id, {})
        row["finished"] = Status(row["status"]) in FINAL_STATUSES
        return json_response(row)

    @app.get(f"{API}/dispatches/{{dispatch_id}}/status")
    async def get_status(request: Request, dispatch_id: str) -> dict[str, str]:
        row = _dispatch_or_404(_state(request), dispatch_id)
        return {"id": dispatch_id, "status": row["status"]}

    @app.get(f"{API}/dispatches/{{dispatch_id}}/manifest")
    async def get_manifest(request: Request, dispatch_id: str) -> Response:
        row = _state(request).store.get_dispatch(dispatch_id, with_manifest=True)
        if row is None:
            raise DispatchNotFoundError(dispatch_id)
        declared = declared_secrets(_state(request).dispatcher.executors.plugins)
        return JSONResponse(mask_manifest(row["manifest"], declared))  # no secrets shown

    @app.get(f"{API}/dispatches/{{dispatch_id}}/transitions")
    async def get_transitions(request: Request, dispatch_id: str) -> Response:
        state = _state(request)
        _dispatch_or_404(state, dispatch_id)
        return json_response(state.store.get_transitions(dispatch_id))

    @app.post(f"{API}/dispatches/{{dispatch_id}}/redispatch")
    async def redispatch(
        request: Request, dispatch_id: str, body: RedispatchRequest | None = None
    ) -> dict[str, str]:
        """Run a stored dispatch again with the same inputs (the UI's re-run); nothing is
        uploaded again. Its triggers are not armed again."""
        state = _state(request)
        row = state.store.get_dispatch(dispatch_id, with_manifest=True)
        if row is None:
            raise DispatchNotFoundError(dispatch_id)
        manifest = {k: v for k, v in row["manifest"].items() if k not in ("triggers", "reuse")}
        if body is not None and body.reuse_previous_results:
            manifest["reuse"] = {"dispatch_id": dispatch_id}
        return {"dispatch_id": state.dispatcher.submit(manifest, {})}

    @app.post(f"{API}/dispatches/{{dispatch_id}}/cancel")
    async def cancel(
        request: Request, dispatch_id: str, body: CancelRequest | None = None
    ) -> dict[str, str]:
        _state(request).dispatcher.cancel(dispatch_id, body.task_ids if body else None)
        return {"dispatch_id": dispatch_id, "status": "cancel requested"}

    @app.delete(f"{API}/dispatches/{{dispatch_id}}")
    async def delete(request: Request, dispatch_id: str) -> dict[str, str]:
        state = _state(request)
        row = _dispatch_or_404(state, dispatch_id)
        if Status(row["status"]) not in FINAL_STATUSES | {Status.NEW_OBJECT}:
            raise BadRequestError(
                f"Dispatch {dispatch_id} is still {row['status']}; cancel it first."
            )
        state.store.delete_dispatch(dispatch_id)
        return {"dispatch_id": dispatch_id, "status": "deleted"}

    @app.delete(f"{API}/cache")
    async def clear_cache(request: Request) -> dict[str, int]:
        return {"cleared": cachemod.clear(_state(request).store)}

    @app.get(f"{API}/blobs/{{digest}}")
    async def get_blob(request: Request, digest: str) -> Response:
        if not is_digest(digest):
            raise BadRequestError(f"'{digest}' is not a blob digest (64 hex characters).")
        data = _state(request).store.read_blob(digest)
        if data is None:
            return JSONResponse({"detail": f"No blob {digest}."}, status_code=404)
        return Response(data, media_type="application/octet-stream")

    @app.post(f"{API}/blobs/fetch")
    async def fetch_blobs(request: Request, body: FetchRequest) -> Response:
        store = _state(request).store
        found: dict[str, bytes] = {}
        for digest in dict.fromkeys(body.digests):
            data = store.read_blob(digest)
            if data is None:
                return JSONResponse({"detail": f"No blob {digest}."}, status_code=404)
            found[digest] = data
        return Response(bundle.pack({}, found), media_type=bundle.MEDIA_TYPE)
