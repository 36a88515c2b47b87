"""The web UI: its pages and static files, its JSON routes and the live event stream.

The pages are plain HTML, CSS and JavaScript modules under ``static/`` (no build step).
They read the REST API and a few routes made for them under ``/api/v1/ui``, and follow
running dispatches through ``GET /api/v1/events``: server-sent events fed by the
dispatcher's :class:`~covalent._dispatcher.dispatcher.EventHub`, which publishes each
batch of transitions once it is committed. See docs/ui.md.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from covalent import __version__, _config
from covalent._dispatcher.dispatcher import Dispatcher
from covalent._dispatcher.streams import stored_length
from covalent._errors import BadRequestError, DispatchNotFoundError, NodeNotFoundError
from covalent._results.status import FINAL_STATUSES, Status
from covalent._server import settings
from covalent._server.params import BeatSeconds, Limit, Lines, NodeId, Offset
from covalent._store import queries
from covalent._store.store import Store
from covalent._wire.secrets import declared_secrets, mask_spec

STATIC = Path(__file__).resolve().parent / "static"
HEARTBEAT = 15.0
TEXT_LIMIT = 256 * 1024
MAX_LOG_LINES = 20_000

router = APIRouter()
router.include_router(settings.router)


def _store(request: Request) -> Store:
    store: Store = request.app.state.covalent.store
    return store


def _dispatcher(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.covalent.dispatcher
    return dispatcher


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, headers={"cache-control": "no-cache"})


# pages


@router.get("/", include_in_schema=False)
def list_page() -> FileResponse:
    return _page("list.html")


@router.get("/dispatches/{dispatch_id}", include_in_schema=False)
def dispatch_page(dispatch_id: str) -> FileResponse:
    return _page("dispatch.html")


@router.get("/settings", include_in_schema=False)
def settings_page() -> FileResponse:
    return _page("settings.html")


@router.get("/triggers", include_in_schema=False)
def triggers_page() -> FileResponse:
    return _page("triggers.html")


@router.get("/logs", include_in_schema=False)
def logs_page() -> FileResponse:
    return _page("logs.html")


@router.get("/static/{path:path}", include_in_schema=False)
def static_file(path: str) -> Response:
    """A file under ``static/``; names that leave the folder are not found."""
    target = (STATIC / path).resolve()
    if not target.is_file() or STATIC not in target.parents:
        return JSONResponse({"detail": f"No static file {path}."}, status_code=404)
    return FileResponse(target, headers={"cache-control": "no-cache"})


# live events


@router.get("/api/v1/events")
async def events(
    request: Request,
    dispatch_id: str | None = None,
    summary: bool = False,
    heartbeat: BeatSeconds = HEARTBEAT,
) -> StreamingResponse:
    """Committed transitions and nodes' output as server-sent events, for one dispatch
    or for all.

    The stream opens with ``event: ready`` once subscribed, so a page that loads its
    snapshot after that misses nothing. Then each ``event: transitions`` carries a JSON
    list of ``{"dispatch_id", "node_id", "old", "new", "at", "cause"}`` (with ``summary``,
    ``event: dispatches`` carries only the ids of the dispatches that changed: what the
    list page needs, at a fraction of the bytes); each ``event: output`` a list of
    ``{"dispatch_id", "node_id", "stream", "offset", "text"}``: what a running node
    wrote to ``stream`` (``stdout`` or ``stderr``), ``offset`` characters into it (a
    snapshot's ``stdout_length`` says where it stood), sent before the transitions of
    the same moment (not with ``summary``); ``event: lagged`` says events were
    dropped (reload the snapshot); a comment line every ``heartbeat`` seconds keeps
    proxies from closing an idle stream. It ends when the client goes or the server stops.
    """
    dispatcher = _dispatcher(request)
    if dispatch_id is not None and _store(request).get_dispatch(dispatch_id) is None:
        raise DispatchNotFoundError(dispatch_id)
    beat = min(max(heartbeat, 0.05), 60.0)
    return StreamingResponse(
        _event_stream(request, dispatcher, dispatch_id, summary, beat),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


async def _event_stream(
    request: Request, dispatcher: Dispatcher, dispatch_id: str | None, summary: bool, beat: float
) -> AsyncIterator[str]:
    queue = dispatcher.events.subscribe()
    closing = asyncio.ensure_future(dispatcher.closing.wait())
    try:
        yield "retry: 2000\nevent: ready\ndata: {}\n\n"
        while not closing.done():
            batch = await _next_batch(queue, closing, beat)
            if batch is None:
                if closing.done() or await request.is_disconnected():
                    return
                yield ": ping\n\n"
                continue
            message = _message(batch, dispatch_id, summary)
            if message:
                yield message
    finally:
        dispatcher.events.unsubscribe(queue)
        closing.cancel()


async def _next_batch(
    queue: asyncio.Queue[dict[str, Any]], closing: asyncio.Future[Any], beat: float
) -> list[dict[str, Any]] | None:
    """Every event waiting (at least one), or None after ``beat`` seconds or on closing."""
    getter = asyncio.ensure_future(queue.get())
    try:
        await asyncio.wait({getter, closing}, timeout=beat, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getter.done():  # also when the stream itself is cancelled (client gone)
            getter.cancel()
    if not getter.done():
        return None
    batch = [getter.result()]
    while not queue.empty():
        batch.append(queue.get_nowait())
    return batch


def _message(batch: list[dict[str, Any]], dispatch_id: str | None, summary: bool) -> str:
    if any(event.get("lagged") for event in batch):
        return "event: lagged\ndata: {}\n\n"
    chosen = [e for e in batch if dispatch_id is None or e["dispatch_id"] == dispatch_id]
    output = [e for e in chosen if e.get("type") == "output"]
    transitions = [e for e in chosen if e.get("type") != "output"]
    if summary:
        if not transitions:
            return ""
        ids = list(dict.fromkeys(e["dispatch_id"] for e in transitions))
        return f"event: dispatches\ndata: {json.dumps(ids)}\n\n"
    parts = [  # output first: a node's last output comes before its end
        f"event: {name}\ndata: {json.dumps(events, separators=(',', ':'))}\n\n"
        for name, events in (("output", output), ("transitions", transitions))
        if events
    ]
    return "".join(parts)


# JSON for the pages


@router.get("/api/v1/ui/dispatches")
def dispatch_list(
    request: Request,
    status: str | None = None,
    q: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
    parent: str | None = None,
) -> dict[str, Any]:
    """A page of top-level dispatches (newest first; with ``parent``, the sublattice
    dispatches of that one; with ``q``, every match) with node counts, sublattice counts,
    the total, and status counts."""
    if status and status not in Status.__members__:
        raise BadRequestError(
            f"Unknown status '{status}'; use one of {', '.join(Status.__members__)}."
        )
    store = _store(request)
    page = queries.list_page(
        store, status or None, q or None, max(1, min(limit, 500)), max(0, offset), parent
    )
    page["status_counts"] = queries.status_counts(store)
    return page


@router.get("/api/v1/ui/dispatches/{dispatch_id}/graph")
def dispatch_graph(request: Request, dispatch_id: str) -> dict[str, Any]:
    """A dispatch, its nodes (without outputs and logs) and its edges as
    ``[source, target, label, 1 if it only orders the two nodes else 0]``."""
    store = _store(request)
    row = store.get_dispatch(dispatch_id, with_manifest=True)
    if row is None:
        raise DispatchNotFoundError(dispatch_id)
    manifest = row.pop("manifest")
    kinds = [n["kind"] for n in manifest["nodes"]]
    edges = [
        [s, t, _edge_label(kinds[t], i, name), int(i is None and name is None)]
        for s, t, i, name in manifest["edges"]
    ]
    lattice = manifest.get("lattice", {})
    del row["summary"]  # the page needs none of it; inputs come from the manifest
    row.update(
        finished=Status(row["status"]) in FINAL_STATUSES,
        preview=row["status"] == Status.NEW_OBJECT and row["start_time"] is None,
        result_node=manifest["result"].get("node"),
        inputs={k: manifest["inputs"].get(k) for k in ("args_repr", "kwargs_repr")},
        lattice_doc=lattice.get("doc", ""),
        lattice_source=lattice.get("source", ""),
    )
    return {"dispatch": row, "nodes": queries.graph_nodes(store, dispatch_id), "edges": edges}


def _edge_label(target_kind: str, index: int | None, name: str | None) -> str:
    """The parameter an edge fills: its name, ``arg[i]``, ``[i]`` in a collection, or
    ``waits for`` for an edge that only orders two nodes (``ct.wait``)."""
    if name is not None:
        return name
    if index is None:
        return "waits for"
    return f"[{index}]" if target_kind == "collection" else f"arg[{index}]"


@router.get("/api/v1/ui/dispatches/{dispatch_id}/nodes/{node_id}")
def node_detail(request: Request, dispatch_id: str, node_id: NodeId) -> dict[str, Any]:
    """Everything about one node: its row, inputs, executor, source and attempts."""
    store = _store(request)
    manifest = queries.manifest(store, dispatch_id)
    if manifest is None:
        raise DispatchNotFoundError(dispatch_id)
    row = queries.node(store, dispatch_id, node_id)
    if row is None or not 0 <= node_id < len(manifest["nodes"]):
        raise NodeNotFoundError(f"Dispatch {dispatch_id} has no node {node_id}.")
    entry = manifest["nodes"][node_id]
    for key in ("stdout", "stderr"):
        row[f"{key}_length"] = stored_length(row[key] or "")
    for key in ("stdout", "stderr", "error"):
        row[key], row[f"{key}_truncated"] = _shorten(row[key])
    metadata = dict(entry.get("metadata") or {})
    if metadata.pop("extras", None):
        metadata["more"] = "files, deps or call_before/after (pickled; not shown)"
    function = manifest.get("functions", {}).get(entry.get("function") or "", {})
    row.update(
        executor_spec=mask_spec(
            entry.get("executor"), declared_secrets(_dispatcher(request).executors.plugins)
        ),
        metadata=metadata,
        source=function.get("source", ""),
        inputs=_inputs(store, dispatch_id, manifest, node_id),
        consumers=sorted({t for s, t, _i, _n in manifest["edges"] if s == node_id}),
        is_result=manifest["result"].get("node") == node_id,
    )
    return row


def _inputs(
    store: Store, dispatch_id: str, manifest: dict[str, Any], node_id: int
) -> list[dict[str, Any]]:
    kind = manifest["nodes"][node_id]["kind"]
    edges = [e for e in manifest["edges"] if e[1] == node_id]
    edges.sort(key=lambda e: (e[3] is not None, e[2] if e[2] is not None else 0, e[3] or ""))
    sources = queries.input_reprs(store, dispatch_id, [e[0] for e in edges])
    return [
        {
            "label": _edge_label(kind, index, name),
            "node_id": source,
            "wait": index is None and name is None,
            **sources.get(source, {}),
        }
        for source, _target, index, name in edges
    ]


def _shorten(text: str | None) -> tuple[str, bool]:
    if not text or len(text) <= TEXT_LIMIT:
        return text or "", False
    half = TEXT_LIMIT // 2
    gap = f"\n\n… {len(text) - TEXT_LIMIT} characters left out …\n\n"
    return text[:half] + gap + text[-half:], True


@router.delete("/api/v1/ui/previews/{dispatch_id}")
def delete_preview(request: Request, dispatch_id: str) -> dict[str, str]:
    """Delete a preview (``lattice.draw``): a dispatch stored with ``disable_run`` that
    never started. ``DELETE /api/v1/dispatches/{id}`` takes only finished ones."""
    store = _store(request)
    row = store.get_dispatch(dispatch_id)
    if row is None:
        raise DispatchNotFoundError(dispatch_id)
    started = row["start_time"] is not None or dispatch_id in _dispatcher(request).runs
    if row["status"] != Status.NEW_OBJECT or started:
        raise BadRequestError(
            f"Dispatch {dispatch_id} is {row['status']}, not a preview; delete it through "
            "DELETE /api/v1/dispatches/{id} once it has finished."
        )
    store.delete_dispatch(dispatch_id)
    return {"dispatch_id": dispatch_id, "status": "deleted"}


@router.get("/api/v1/ui/config")
def server_config(request: Request) -> dict[str, Any]:
    """The server's configuration, with secrets masked."""
    store = _store(request)
    settings: dict[str, Any] = request.app.state.covalent.settings
    where = _config.paths()
    return {
        "version": __version__,
        "database": _config.mask_secrets(store.url),
        "config_file": str(where.config_file),
        "settings": _config.masked(settings),
        "config": _config.masked(_config.load()),
        "live": sorted(_config.LIVE_KEYS),
        "pid": os.getpid(),
    }


@router.get("/api/v1/ui/logs")
def server_log(request: Request, lines: Lines = 2000) -> dict[str, Any]:
    """The last ``lines`` lines of the server's log file."""
    path = Path(_config.get_value("dispatcher.log_file"))
    count = max(1, min(lines, MAX_LOG_LINES))
    try:
        text, size = tail(path, count), path.stat().st_size
    except FileNotFoundError:
        return {"path": str(path), "exists": False, "size": 0, "lines": []}
    return {"path": str(path), "exists": True, "size": size, "lines": text}


def tail(path: Path, count: int, block: int = 64 * 1024) -> list[str]:
    """The last ``count`` lines of a file, reading backwards from its end."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        data, position = b"", end
        while position > 0 and data.count(b"\n") <= count:
            step = min(block, position)
            position -= step
            f.seek(position)
            data = f.read(step) + data
    return data.decode(errors="replace").splitlines()[-count:]
