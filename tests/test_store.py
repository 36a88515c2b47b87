"""The store's write path on a real SQLite file: batches, merged updates, the blob cache."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from covalent._store.store import NODE_COLUMNS, BlobCache, Changes, Store


def _store(tmp_path: Path) -> Store:
    store = Store.sqlite(tmp_path / "db.sqlite", tmp_path / "blobs")
    store.create_schema()
    return store


def _dispatch(store: Store, dispatch_id: str, count: int) -> None:
    now = time.time()
    row = {
        "dispatch_id": dispatch_id,
        "root_dispatch_id": dispatch_id,
        "lattice_name": "flow",
        "status": "RUNNING",
        "created_at": now,
        "node_count": count,
        "manifest": b"{}",
        "summary": "{}",
        "results_dir": "",
    }
    nodes = [
        dict.fromkeys(NODE_COLUMNS)
        | {"dispatch_id": dispatch_id, "node_id": n, "name": f"n{n}", "kind": "electron"}
        | {"status": "NEW_OBJECT", "attempts": 0}
        for n in range(count)
    ]
    store.create_dispatch(row, [tuple(n[c] for c in NODE_COLUMNS) for n in nodes], Changes())


def test_later_updates_of_a_row_win_whatever_columns_they_set(tmp_path: Path) -> None:
    """Updates with different columns go in separate statements; one row's updates in a
    batch are merged first, so a newer status is never overwritten by an older one."""
    store = _store(tmp_path)
    _dispatch(store, "d", 3)
    changes = Changes()
    changes.node_updates += [
        {"_d": "d", "_n": 0, "status": "COMPLETED", "output_repr": "0", "end_time": 1.0},
        {"_d": "d", "_n": 1, "status": "RUNNING", "start_time": 1.0},
        {"_d": "d", "_n": 1, "status": "COMPLETED", "output_repr": "1", "end_time": 2.0},
        {"_d": "d", "_n": 2, "attempts": 2},
    ]
    store.commit(changes)
    rows = {r["node_id"]: r for r in store.get_nodes("d")}
    assert rows[1]["status"] == "COMPLETED"
    assert (rows[1]["start_time"], rows[1]["end_time"], rows[1]["output_repr"]) == (1.0, 2.0, "1")
    assert rows[0]["status"] == "COMPLETED" and rows[0]["start_time"] is None
    assert (rows[2]["status"], rows[2]["attempts"]) == ("NEW_OBJECT", 2)
    assert changes.node_updates[1] == {"_d": "d", "_n": 1, "status": "RUNNING", "start_time": 1.0}


def test_a_failed_batch_stores_none_of_it(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _dispatch(store, "d", 1)
    changes = Changes()
    changes.node_updates.append({"_d": "d", "_n": 0, "status": "RUNNING"})
    changes.transitions.append({"dispatch_id": "d", "node_id": 0, "old": "NEW_OBJECT"})
    with pytest.raises(sqlite3.IntegrityError):  # the transition misses NOT NULL columns
        store.commit(changes)
    assert store.get_nodes("d")[0]["status"] == "NEW_OBJECT"
    assert store.get_transitions("d") == []
    changes = Changes()
    changes.node_updates.append({"_d": "d", "_n": 0, "status": "RUNNING"})
    store.commit(changes)  # the writer is usable after a rollback
    assert store.get_nodes("d")[0]["status"] == "RUNNING"


def test_blob_cache_drops_the_oldest_past_its_limit() -> None:
    cache = BlobCache(limit=10)
    for name in "abc":
        cache.put(name, name.encode() * 4)
    assert cache.get("a") is None
    assert cache.get("b") == b"bbbb" and cache.get("c") == b"cccc"
    assert cache.size == 8
