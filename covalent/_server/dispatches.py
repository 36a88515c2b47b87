"""``/api/v1``: dispatches, their results, blobs and the cache (the REST API's core).

Every handler runs on the event loop's thread, which the dispatcher's loop shares. Those
that read or write the store do it there, synchronously, and so hold the loop for that
long; the ones that can take a while with a large dispatch:

- ``POST /dispatches``: checks the manifest and stores the dispatch, its nodes and
  blobs in one transaction (a bundle over 1 MB is decoded in a thread first);
- ``GET /dispatches/{id}`` with ``nodes=true``: reads every node row (10,000 rows take
  tens of milliseconds); ``nodes=false`` is one GROUP BY;
- ``GET /dispatches/{id}/transitions``: every transition row;
- ``POST /blobs/fetch``: reads each blob asked for (small ones come from memory);
- ``DELETE /dispatches/{id}``: deletes all its rows.

The others read one or a few rows. ``wait=`` on ``GET /dispatches/{id}`` awaits the
dispatch's end without holding the loop.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from covalent import __version__, _config
from covalent._errors import BadRequestError, DispatchNotFoundError, NodeNotFoundError
from covalent._results.status import FINAL_STATUSES, Status
from covalent._server.params import Limit, Offset, Timestamp, WaitSeconds
from covalent._server.state import dispatch_or_404 as _dispatch_or_404
from covalent._server.state import json_response
from covalent._server.state import server_state as _state
from covalent._store import cache as cachemod
from covalent._store import queries
from covalent._store.store import DispatchFilter
from covalent._wire import bundle, schema
from covalent._wire.blobs import is_digest
from covalent._wire.schema import Count, Digest
from covalent._wire.secrets import declared_secrets, mask_manifest

API = "/api/v1"
MAX_WAIT = 30.0
THREAD_UNPACK_BYTES = 1 << 20
"""A bundle larger than this is read, checked and stored in threads, not on the event
loop (the other dispatches go on meanwhile): from about 4,000 nodes."""
INLINE_RESULT_BYTES = 64 * 1024
"""The largest result blob ``GET /dispatches/{id}?inline_result=true`` carries itself."""

router = APIRouter(prefix=API)


class CancelRequest(BaseModel):
    task_ids: list[Count] | None = None


class RedispatchRequest(BaseModel):
    reuse_previous_results: bool = False


class FetchRequest(BaseModel):
    digests: list[Digest] = Field(max_length=100_000)


BUNDLE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {bundle.MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    }
}
"""The submit route's body in the OpenAPI document: a bundle, read by hand (its header's
schema is covalent._wire.schema.json_schema())."""


async def _receive_bundle(request: Request, limit: int) -> bundle.Receiver:
    """The request body, a bundle, as its header and its blobs apart
    (:class:`bundle.Receiver`: the body is never held whole, nor twice while its chunks
    are joined); refuses (413) one larger than ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if limit and declared and declared.isdigit() and int(declared) > limit:
        raise TooLargeError(int(declared), limit)
    received = bundle.Receiver()
    async for chunk in request.stream():
        if limit and received.size + len(chunk) > limit:
            raise TooLargeError(received.size + len(chunk), limit)
        received.feed(chunk)
    return received


class TooLargeError(BadRequestError):
    http_status = 413

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"The request is {size} bytes, more than this server accepts ({limit} bytes, "
            "config dispatcher.max_upload_bytes)."
        )


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    state = _state(request)
    return {
        "status": "ok",
        "version": __version__,
        "database": state.store.shown_url,
        **_config.masked({k: v for k, v in state.settings.items() if k != "token"}),
    }


@router.post("/dispatches", openapi_extra=BUNDLE_BODY)
async def submit(request: Request, disable_run: bool = False) -> dict[str, str]:
    """Check, store and start a dispatch sent as a bundle (covalent/_wire/bundle.py)
    whose header is a manifest (covalent/_wire/schema.py)."""
    limit = int(_state(request).settings.get("max_upload_bytes", 0))
    received = await _receive_bundle(request, limit)
    large = received.size > THREAD_UNPACK_BYTES  # read, checked and stored in threads
    if large:
        manifest, blobs = await asyncio.to_thread(schema.read_received, received)
    else:
        manifest, blobs = schema.read_received(received)
    del received
    state = _state(request)
    trigger_specs = state.triggers.check(manifest)  # before anything is stored
    if large:  # its triggers are stored with it, even if this request is cancelled

        def arm(stored_id: str) -> None:
            state.triggers.add(stored_id, trigger_specs)

        dispatch_id = await state.dispatcher.submit_in_thread(manifest, blobs, disable_run, arm)
        return {"dispatch_id": dispatch_id}
    dispatch_id = state.dispatcher.submit(manifest, blobs, disable_run=disable_run)
    state.triggers.add(dispatch_id, trigger_specs)
    return {"dispatch_id": dispatch_id}


@router.get("/dispatches")
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


@router.get("/dispatches/{dispatch_id}")
async def get_dispatch(
    request: Request,
    dispatch_id: str,
    wait: WaitSeconds = 0.0,
    nodes: bool = True,
    inline_result: bool = False,
) -> Response:
    """The dispatch's row, with its nodes or only their counts; ``wait`` holds the answer
    until it finishes. With ``inline_result``, a finished dispatch's result blob comes
    along (``result_blob``, base64) if it is small and in the server's memory, which
    saves the waiting client the request that would fetch it."""
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
    if inline_result and row["finished"] and row.get("result_digest"):
        data = state.store.cache.get(row["result_digest"])  # memory only: no read
        if data is not None and len(data) <= INLINE_RESULT_BYTES:
            row["result_blob"] = base64.b64encode(data).decode("ascii")
    return json_response(row)


@router.get("/dispatches/{dispatch_id}/status")
async def get_status(request: Request, dispatch_id: str) -> dict[str, str]:
    row = _dispatch_or_404(_state(request), dispatch_id)
    return {"id": dispatch_id, "status": row["status"]}


@router.get("/dispatches/{dispatch_id}/manifest")
async def get_manifest(request: Request, dispatch_id: str) -> Response:
    row = _state(request).store.get_dispatch(dispatch_id, with_manifest=True)
    if row is None:
        raise DispatchNotFoundError(dispatch_id)
    declared = declared_secrets(_state(request).dispatcher.executors.plugins)
    return JSONResponse(mask_manifest(row["manifest"], declared))  # no secrets shown


@router.get("/dispatches/{dispatch_id}/transitions")
async def get_transitions(request: Request, dispatch_id: str) -> Response:
    state = _state(request)
    _dispatch_or_404(state, dispatch_id)
    return json_response(state.store.get_transitions(dispatch_id))


@router.post("/dispatches/{dispatch_id}/redispatch")
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


@router.post("/dispatches/{dispatch_id}/cancel")
async def cancel(
    request: Request, dispatch_id: str, body: CancelRequest | None = None
) -> dict[str, str]:
    state = _state(request)
    task_ids = (body.task_ids or None) if body else None  # []: the whole dispatch
    row = _dispatch_or_404(state, dispatch_id)
    if task_ids:  # a node it does not have is refused, finished or not
        _check_nodes(state, dispatch_id, task_ids)
    if Status(row["status"]) in FINAL_STATUSES:  # nothing to stop: say so, change nothing
        return {
            "dispatch_id": dispatch_id,
            "status": "already finished",
            "dispatch_status": row["status"],
        }
    state.dispatcher.cancel(dispatch_id, task_ids)
    return {"dispatch_id": dispatch_id, "status": "cancel requested"}


def _check_nodes(state: Any, dispatch_id: str, node_ids: list[int]) -> None:
    """A NodeNotFoundError naming the ids in ``node_ids`` that the dispatch has no node of."""
    _dispatch_or_404(state, dispatch_id)
    unknown = sorted(set(node_ids) - queries.node_ids(state.store, dispatch_id))
    if unknown:
        raise NodeNotFoundError(
            f"Dispatch {dispatch_id} has no node {', '.join(map(str, unknown))}; "
            f"`covalent show {dispatch_id}` lists its nodes."
        )


@router.delete("/dispatches/{dispatch_id}")
async def delete(request: Request, dispatch_id: str) -> dict[str, str]:
    state = _state(request)
    row = _dispatch_or_404(state, dispatch_id)
    if Status(row["status"]) not in FINAL_STATUSES | {Status.NEW_OBJECT}:
        raise BadRequestError(f"Dispatch {dispatch_id} is still {row['status']}; cancel it first.")
    state.store.delete_dispatch(dispatch_id)
    return {"dispatch_id": dispatch_id, "status": "deleted"}


@router.delete("/cache")
async def clear_cache(request: Request) -> dict[str, int]:
    return {"cleared": cachemod.clear(_state(request).store)}


@router.get("/blobs/{digest}")
async def get_blob(request: Request, digest: str) -> Response:
    if not is_digest(digest):
        raise BadRequestError(f"'{digest}' is not a blob digest (64 hex characters).")
    data = _state(request).store.read_blob(digest)
    if data is None:
        return JSONResponse({"detail": f"No blob {digest}."}, status_code=404)
    return Response(data, media_type="application/octet-stream")


@router.post("/blobs/fetch")
async def fetch_blobs(request: Request, body: FetchRequest) -> Response:
    store = _state(request).store
    found: dict[str, bytes] = {}
    for digest in dict.fromkeys(body.digests):
        data = store.read_blob(digest)
        if data is None:
            return JSONResponse({"detail": f"No blob {digest}."}, status_code=404)
        found[digest] = data
    return Response(bundle.pack({}, found), media_type=bundle.MEDIA_TYPE)
