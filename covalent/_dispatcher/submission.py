"""A new dispatch: checked, stored in one transaction, and made into a :class:`Run`.

Nothing is unpickled: the manifest's structure and digests are checked, the blobs are
stored as bytes. A redispatch with ``reuse`` finds here, once, which nodes take the
earlier dispatch's outputs (:mod:`reuse`); the run applies them when it joins the loop.
"""

from __future__ import annotations

import contextlib
import functools
import time
import uuid
from pathlib import Path
from typing import Any, NamedTuple

from covalent._dispatcher import reuse as reusemod
from covalent._dispatcher.run import Reuse, Run
from covalent._errors import BadRequestError, DispatchNotFoundError
from covalent._results.status import Status
from covalent._store import manifests
from covalent._store.changes import DISPATCH_NODE, Changes, NewNodeRow, NodeRow
from covalent._store.store import Store
from covalent._wire import blobfiles, schema
from covalent._wire import manifest as manifestmod

_node_row = functools.partial(tuple.__new__, NodeRow)  # no Python-level __new__ per node
_new_node_row = functools.partial(tuple.__new__, NewNodeRow)


class Parent(NamedTuple):
    """Where a sublattice's child dispatch belongs."""

    dispatch_id: str
    node_id: int
    root_dispatch_id: str


class Submitted(NamedTuple):
    dispatch_id: str
    row: dict[str, Any]  # as stored, but for its manifest
    run: Run | None  # None with disable_run
    transitions: list[Any]


def submit(
    store: Store,
    results_root: Path,
    manifest: dict[str, Any],
    blobs: dict[str, bytes],
    disable_run: bool = False,
    parent: Parent | None = None,
    dispatch_id: str = "",
) -> Submitted:
    """Check and store a dispatch (with ``dispatch_id``, or a new id); return its id,
    row and Run once it is committed.

    ``manifest`` fits the schema (:func:`schema.read_bundle` read it, or it was stored);
    its structure is checked here. Raises BadRequestError naming what is wrong with it,
    InvalidFieldError for a number in it that is not finite, StorageFullError when the
    store has no room, and
    DispatchNotFoundError when a redispatch reuses a dispatch that is not stored.
    """
    _check(store, manifest, blobs)
    reused = _reusable(store, manifest)
    dispatch_id = dispatch_id or str(uuid.uuid4())
    now = time.time()
    results_dir = results_root / dispatch_id
    try:
        results_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # its owner's only
    except OSError as e:
        raise blobfiles.storage_error(e, f"dispatch {dispatch_id}", results_root) from e
    status = Status.NEW_OBJECT if disable_run else Status.RUNNING
    changes = Changes(blobs=blobs)
    changes.transition(dispatch_id, DISPATCH_NODE, None, status.value, now, "submitted")
    parameters, others = _node_rows(dispatch_id, manifest["nodes"], now)
    stored = _stored_manifest({k: v for k, v in manifest.items() if k != "blobs"})
    row = {
        "dispatch_id": dispatch_id,
        "root_dispatch_id": parent.root_dispatch_id if parent else dispatch_id,
        "parent_dispatch_id": parent.dispatch_id if parent else None,
        "parent_node_id": parent.node_id if parent else None,
        "lattice_name": manifest["lattice"]["name"],
        "status": status.value,
        "created_at": now,
        "start_time": None if disable_run else now,
        "node_count": len(others),  # electrons
        "manifest": stored,
        "summary": manifests.stored_summary(manifestmod.summary(manifest), stored),
        "results_dir": str(results_dir),
    }
    try:
        store.create_dispatch(row, parameters, changes, others)
    except BaseException:
        with contextlib.suppress(OSError):
            results_dir.rmdir()  # empty yet: nothing of this dispatch stays
        raise
    # Stored: let go of the rows and the packed manifest before the run is made, which
    # peaks too (at 100,000 nodes: 24 MB of rows and 7 MB of manifest).
    del parameters, others, stored, row["manifest"]
    run = None
    if not disable_run:
        run = Run(
            dispatch_id,
            manifest,
            str(results_dir),
            parent=(parent.dispatch_id, parent.node_id) if parent else None,
            root_dispatch_id=row["root_dispatch_id"],
            pending_reuse=reused,
            start_time=now,
        )
    return Submitted(dispatch_id, row, run, changes.transitions)


def _stored_manifest(manifest: dict[str, Any]) -> bytes:
    """The manifest as its row keeps it (:func:`manifests.packed` of :func:`schema.dumps`),
    compressed piece by piece as it is written, so that a large one's JSON (46 MB at
    100,000 nodes) is not held whole. Raises InvalidFieldError as :func:`schema.dumps`."""
    try:
        return manifests.packed_pieces(schema.dumps_in_pieces(manifest))
    except schema.NotFast:
        return manifests.packed(schema.dumps(manifest))


def _check(store: Store, manifest: dict[str, Any], blobs: dict[str, bytes]) -> None:
    """Check the manifest's structure (:func:`schema.check_structure`). Most requests
    send every blob they name, so the blobs sent are tried first, at no cost beyond the
    check itself; a manifest that names one not sent (a re-submitted manifest names
    only stored ones) is checked again against the store's as well."""
    try:
        schema.check_structure(manifest, blobs.__contains__)
    except BadRequestError:
        schema.check_structure(manifest, _available(store, manifest, blobs).__contains__)


def _available(store: Store, manifest: dict[str, Any], blobs: dict[str, bytes]) -> set[str]:
    """The blobs a manifest names that are in the request or already stored, found with
    one query (a re-submitted manifest sends none and may name thousands)."""
    named = manifestmod.named_blobs(manifest) - blobs.keys()
    return set(blobs) | (named - store.missing_blobs(named))


def _reusable(store: Store, manifest: dict[str, Any]) -> dict[int, Reuse]:
    """For a redispatch with reuse: the nodes that take the earlier dispatch's outputs."""
    source = (manifest.get("reuse") or {}).get("dispatch_id")
    if not source:
        return {}
    old = store.get_dispatch(str(source), with_manifest=True)
    if old is None:
        raise DispatchNotFoundError(str(source))
    found = reusemod.reusable(manifest, old["manifest"], store.get_nodes(str(source)))
    return {n: Reuse(digest, text, f"{source}:{n}") for n, (digest, text) in found.items()}


def _node_rows(
    dispatch_id: str, nodes: list[dict[str, Any]], now: float
) -> tuple[list[NodeRow], list[NewNodeRow]]:
    """The nodes' first rows: parameters are COMPLETED with their value, the rest
    NEW_OBJECT (narrower rows). (Their first state has no transition row of its own:
    the dispatch's ``submitted`` row stands for all of them.)"""
    completed, new = Status.COMPLETED.value, Status.NEW_OBJECT.value
    parameters = [
        _node_row((dispatch_id, n["id"], n["name"], "parameter", completed, None, now, now,
                   n["value"], n.get("value_repr"), 0))
        for n in nodes
        if n["kind"] == "parameter"
    ]  # fmt: skip
    others = [
        _new_node_row((dispatch_id, n["id"], n["name"], n["kind"], new, n["executor"]["name"], 0))
        for n in nodes
        if n["kind"] != "parameter"
    ]
    return parameters, others
