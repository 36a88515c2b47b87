"""The store's write path on a real SQLite file: batches, merged updates, the blob cache."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from covalent._errors import CovalentError, StorageFullError, StoreUnavailableError
from covalent._store import queries
from covalent._store import store as storemod
from covalent._store.changes import NODE_COLUMNS, Changes, NewNodeRow, NodeRow, NodeUpdate
from covalent._store.store import CACHE_ENTRY_BYTES, INLINE_LIMIT, BlobCache, Store
from covalent._wire import blobfiles, blobs


def _store(tmp_path: Path) -> Store:
    store = Store.sqlite(tmp_path / "db.sqlite", tmp_path / "blobs")
    store.create_schema()
    return store


def _row(dispatch_id: str, count: int, manifest: bytes = b"{}") -> dict[str, object]:
    return {
        "dispatch_id": dispatch_id,
        "root_dispatch_id": dispatch_id,
        "lattice_name": "flow",
        "status": "RUNNING",
        "created_at": time.time(),
        "node_count": count,
        "manifest": manifest,
        "summary": "{}",
        "results_dir": "",
    }


def _dispatch(store: Store, dispatch_id: str, count: int, manifest: bytes = b"{}") -> None:
    row = _row(dispatch_id, count, manifest)
    nodes = [
        dict.fromkeys(NODE_COLUMNS)
        | {"dispatch_id": dispatch_id, "node_id": n, "name": f"n{n}", "kind": "electron"}
        | {"status": "NEW_OBJECT", "attempts": 0}
        for n in range(count)
    ]
    store.create_dispatch(row, [NodeRow(**n) for n in nodes], Changes())


def test_later_updates_of_a_row_win_whatever_columns_they_set(tmp_path: Path) -> None:
    """Updates with different columns go in separate statements; one row's updates in a
    batch are merged first, so a newer status is never overwritten by an older one."""
    store = _store(tmp_path)
    _dispatch(store, "d", 3)
    changes = Changes()
    changes.node_updates += [
        NodeUpdate("d", 0, {"status": "COMPLETED", "output_repr": "0", "end_time": 1.0}),
        NodeUpdate("d", 1, {"status": "RUNNING", "start_time": 1.0}),
        NodeUpdate("d", 1, {"status": "COMPLETED", "output_repr": "1", "end_time": 2.0}),
        NodeUpdate("d", 2, {"attempts": 2}),
    ]
    store.commit(changes)
    rows = {r["node_id"]: r for r in store.get_nodes("d")}
    assert rows[1]["status"] == "COMPLETED"
    assert (rows[1]["start_time"], rows[1]["end_time"], rows[1]["output_repr"]) == (1.0, 2.0, "1")
    assert rows[0]["status"] == "COMPLETED" and rows[0]["start_time"] is None
    assert (rows[2]["status"], rows[2]["attempts"]) == ("NEW_OBJECT", 2)
    assert changes.node_updates[1] == NodeUpdate("d", 1, {"status": "RUNNING", "start_time": 1.0})


def test_a_manifest_is_stored_compressed_and_read_back_as_submitted(tmp_path: Path) -> None:
    """The manifest column holds zlib; a row written before it did (plain JSON) still
    reads, through both readers."""
    store = _store(tmp_path)
    manifest = {"format": 1, "nodes": [{"id": n, "name": "inc" * 20} for n in range(100)]}
    data = json.dumps(manifest).encode()
    _dispatch(store, "new", 1, data)
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        conn.execute(
            "INSERT INTO dispatches (dispatch_id, root_dispatch_id, lattice_name, status, "
            "created_at, node_count, manifest, summary, results_dir) "
            "VALUES ('old', 'old', 'flow', 'COMPLETED', 0, 1, ?, '{}', '')",
            (data,),
        )
        query = "SELECT manifest FROM dispatches WHERE dispatch_id = 'new'"
        (raw,) = conn.execute(query).fetchone()
    assert raw[:1] != b"{" and len(raw) < len(data) / 4
    for dispatch_id in ("new", "old"):
        row = store.get_dispatch(dispatch_id, with_manifest=True)
        assert row is not None and row["manifest"] == manifest
        assert queries.manifest(store, dispatch_id) == manifest


def test_a_node_yet_to_run_is_stored_from_its_narrow_row(tmp_path: Path) -> None:
    """NewNodeRow's columns are set and every other column of the node starts NULL,
    next to whole rows of the same dispatch."""
    store = _store(tmp_path)
    store.create_dispatch(
        _row("e", 1),
        [NodeRow("e", 1, ":parameter:0", "parameter", "COMPLETED", None, 1.0, 1.0, "ab", "0", 0)],
        Changes(),
        [NewNodeRow("e", 0, "inc", "electron", "NEW_OBJECT", "local", 0)],
    )
    new, parameter = store.get_nodes("e")
    assert (
        new
        == dict.fromkeys(new)
        | NewNodeRow("e", 0, "inc", "electron", "NEW_OBJECT", "local", 0)._asdict()
    )
    assert (parameter["node_id"], parameter["output_digest"], parameter["end_time"]) == (
        1,
        "ab",
        1.0,
    )


def test_a_failed_batch_stores_none_of_it(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _dispatch(store, "d", 1)
    changes = Changes()
    changes.node_updates.append(NodeUpdate("d", 0, {"status": "RUNNING"}))
    changes.transitions.append({"dispatch_id": "d", "node_id": 0, "old": "NEW_OBJECT"})
    with pytest.raises(sqlite3.IntegrityError):  # the transition misses NOT NULL columns
        store.commit(changes)
    assert store.get_nodes("d")[0]["status"] == "NEW_OBJECT"
    assert store.get_transitions("d") == []
    changes = Changes()
    changes.node_updates.append(NodeUpdate("d", 0, {"status": "RUNNING"}))
    store.commit(changes)  # the writer is usable after a rollback
    assert store.get_nodes("d")[0]["status"] == "RUNNING"


def test_a_dispatch_that_cannot_be_stored_leaves_nothing_and_the_writer_goes_on(
    tmp_path: Path,
) -> None:
    """A second dispatch with the same id, and one the full database has no room for:
    each a clear error, nothing of it stored, and the next write goes through."""
    store = _store(tmp_path)
    _dispatch(store, "d", 2)
    with pytest.raises(CovalentError, match="Dispatch d already exists"):
        _dispatch(store, "d", 1)
    assert len(store.get_nodes("d")) == 2
    store.commit(Changes(blobs={"a" * 64: b"x"}))  # opens the store's own writer
    assert store._raw is not None
    pages = store._raw.db.execute("PRAGMA page_count").fetchone()[0]
    store._raw.db.execute(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(StorageFullError, match="database is full: dispatch big could not"):
        _dispatch(store, "big", 2000, manifest=bytes(200_000))
    assert store.get_dispatch("big") is None and store.get_nodes("big") == []
    store._raw.db.execute("PRAGMA max_page_count = 1073741823")
    _dispatch(store, "after", 3)
    assert len(store.get_nodes("after")) == 3


def test_closing_the_store_waits_for_a_write_in_another_thread_and_refuses_later_ones(
    tmp_path: Path,
) -> None:
    """The server stops while a large submission is stored in a thread: the store's
    connection is closed only once that write has ended (not under it), and a write after
    the close is refused, not made on a connection opened anew."""
    store = _store(tmp_path)
    inside, release = threading.Event(), threading.Event()

    def writer() -> None:
        with store._transaction() as conn:
            inside.set()
            assert release.wait(60)
            store._insert_blobs(conn, store._blob_rows({"b" * 64: b"x"}))

    writing = threading.Thread(target=writer)
    writing.start()
    assert inside.wait(60)
    closing = threading.Thread(target=store.close)
    closing.start()
    closing.join(0.2)
    assert closing.is_alive()  # waiting for the write, which holds the writer
    release.set()
    writing.join(60)
    closing.join(60)
    assert not closing.is_alive()
    with pytest.raises(StoreUnavailableError, match="closed"):
        store.commit(Changes(blobs={"c" * 64: b"y"}))
    again = Store.sqlite(tmp_path / "db.sqlite", tmp_path / "blobs")
    assert again.read_blob("b" * 64) == b"x"  # the write before the close is kept
    again.close()


def test_large_blobs_are_written_as_files_before_the_writer_is_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large blob's file is written before its transaction takes the store's writer,
    which the loop's commits wait for (a submission of 40 blobs of 4 MB held them 0.5 s)."""
    store = _store(tmp_path)
    store.commit(Changes(blobs={"a" * 64: b"x"}))  # the store's writer is open
    assert store._raw is not None
    held: list[bool] = []
    real = blobfiles.write

    def noting(path: str, data: bytes) -> None:
        held.append(store._raw is not None and store._raw.lock.locked())
        real(path, data)

    monkeypatch.setattr(blobfiles, "write", noting)
    big, other = bytes(INLINE_LIMIT + 1), b"y" * (INLINE_LIMIT + 1)
    store.commit(Changes(blobs={blobs.digest(big): big}))
    row = _row("d", 0)
    store.create_dispatch(row, [], Changes(blobs={blobs.digest(other): other}))
    assert held == [False, False]
    assert store.read_blob(blobs.digest(big)) == big
    assert store.read_blob(blobs.digest(other)) == other


def _nodes_of(dispatch_id: str, count: int) -> list[NodeRow]:
    return [
        NodeRow(
            **dict.fromkeys(NODE_COLUMNS)
            | {"dispatch_id": dispatch_id, "node_id": n, "name": f"n{n}", "kind": "electron"}
            | {"status": "NEW_OBJECT", "attempts": 0}
        )
        for n in range(count)
    ]


def test_a_large_dispatch_is_stored_in_parts_its_own_row_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over STAGED_ROWS node rows, a new dispatch is written in several transactions; the
    store's other writes go through between them, and all of it is there at the end."""
    monkeypatch.setattr(storemod, "STAGED_ROWS", 10)
    store = _store(tmp_path)
    _dispatch(store, "other", 1)
    entered, blocked, go_on = [0], threading.Event(), threading.Event()
    real = store._transaction

    @contextlib.contextmanager
    def gated() -> Iterator[Any]:
        entered[0] += 1
        if entered[0] == 4:  # the mark, the blobs and the first 10 nodes are committed
            blocked.set()
            assert go_on.wait(60)
        with real() as conn:
            yield conn

    monkeypatch.setattr(store, "_transaction", gated)
    storing = threading.Thread(
        target=store.create_dispatch,
        args=(_row("big", 35), _nodes_of("big", 35), Changes(blobs={"b" * 64: b"x"})),
    )
    storing.start()
    assert blocked.wait(60)
    assert len(store.get_nodes("big")) == 10  # one part of its nodes, committed
    assert store.get_dispatch("big") is None  # not there until its last part
    monkeypatch.setattr(store, "_transaction", real)  # another writer's turn meanwhile
    changes = Changes()
    changes.node_updates.append(NodeUpdate("other", 0, {"status": "RUNNING"}))
    store.commit(changes)
    assert store.get_nodes("other")[0]["status"] == "RUNNING"
    go_on.set()
    storing.join(60)
    assert store.get_dispatch("big") is not None
    assert [n["node_id"] for n in store.get_nodes("big")] == list(range(35))
    assert store.sweep_staged() == 0  # no mark left


def test_a_large_dispatch_that_fails_part_way_leaves_nothing_of_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part refused (the database full): nothing of the dispatch stays; and when the
    server stops part way instead, the next start's sweep removes what was written."""
    monkeypatch.setattr(storemod, "STAGED_ROWS", 10)
    store = _store(tmp_path)
    real_insert, calls = store._sql.insert, [0]

    def insert(conn: Any, table: Any, *args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] == 4:  # the mark, two parts of nodes, then this
            raise sqlite3.OperationalError("database or disk is full")
        real_insert(conn, table, *args, **kwargs)

    monkeypatch.setattr(store._sql, "insert", insert)
    with pytest.raises(StorageFullError, match="dispatch big could not be stored"):
        store.create_dispatch(_row("big", 35), _nodes_of("big", 35), Changes())
    assert store.get_nodes("big") == [] and store.sweep_staged() == 0

    calls[0] = 0
    monkeypatch.setattr(store, "_drop_staged", lambda _id: None)  # as if the server died
    with pytest.raises(StorageFullError):
        store.create_dispatch(_row("big", 35), _nodes_of("big", 35), Changes())
    assert len(store.get_nodes("big")) == 20  # the parts written before
    store.close()
    again = Store.sqlite(tmp_path / "db.sqlite", tmp_path / "blobs")  # the next start
    assert again.sweep_staged() == 1
    assert again.get_nodes("big") == [] and again.get_dispatch("big") is None
    again.close()


def test_a_large_dispatch_swept_while_it_is_stored_is_refused_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another server started on the same database sweeps it part way (a reviewer's
    find): its last part sees its mark gone, and nothing of it is acknowledged or kept."""
    monkeypatch.setattr(storemod, "STAGED_ROWS", 10)
    store = _store(tmp_path)
    entered, real = [0], store._transaction

    @contextlib.contextmanager
    def swept_part_way() -> Iterator[Any]:
        entered[0] += 1
        if entered[0] == 3:  # the mark and the first part of nodes are committed
            other = Store.sqlite(tmp_path / "db.sqlite", tmp_path / "blobs")
            assert other.sweep_staged() == 1
            other.close()
        with real() as conn:
            yield conn

    monkeypatch.setattr(store, "_transaction", swept_part_way)
    with pytest.raises(StoreUnavailableError, match="removed while it was being stored"):
        store.create_dispatch(_row("big", 35), _nodes_of("big", 35), Changes())
    assert store.get_dispatch("big") is None and store.get_nodes("big") == []


def test_removing_a_partly_stored_dispatch_never_touches_a_stored_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its last transaction committed but its caller heard an error (a connection lost
    at COMMIT), or its id is a stored dispatch's: the stored dispatch keeps every row."""
    monkeypatch.setattr(storemod, "STAGED_ROWS", 10)
    store = _store(tmp_path)
    entered, real = [0], store._transaction

    @contextlib.contextmanager
    def lost_after_the_last_commit() -> Iterator[Any]:
        entered[0] += 1
        with real() as conn:
            yield conn
        if entered[0] == 6:  # the mark, four parts of nodes, then the last one
            raise StoreUnavailableError("the connection was lost at COMMIT")

    monkeypatch.setattr(store, "_transaction", lost_after_the_last_commit)
    with pytest.raises(StoreUnavailableError, match="lost at COMMIT"):
        store.create_dispatch(_row("big", 35), _nodes_of("big", 35), Changes())
    monkeypatch.setattr(store, "_transaction", real)
    assert store.get_dispatch("big") is not None and len(store.get_nodes("big")) == 35

    with pytest.raises(CovalentError, match="Dispatch big already exists"):
        store.create_dispatch(_row("big", 35), _nodes_of("big", 35), Changes())
    store._drop_staged("big")  # as a sweep would, had a mark of that id been left
    assert len(store.get_nodes("big")) == 35


def test_a_closed_dispatch_has_no_unfinished_node_left(tmp_path: Path) -> None:
    """An aborted dispatch: the store itself closes whatever was not finished."""
    store = _store(tmp_path)
    _dispatch(store, "d", 3)
    _dispatch(store, "other", 1)
    changes = Changes()
    changes.node_updates += [
        NodeUpdate("d", 0, {"status": "COMPLETED", "output_repr": "0"}),
        NodeUpdate("d", 1, {"status": "RUNNING"}),
    ]
    changes.closed.append(("d", "the dispatch failed: boom"))
    store.commit(changes)
    rows = {r["node_id"]: r for r in store.get_nodes("d")}
    assert [rows[n]["status"] for n in range(3)] == ["COMPLETED", "CANCELLED", "CANCELLED"]
    assert rows[1]["error"] == "the dispatch failed: boom" and rows[0]["error"] is None
    assert store.get_nodes("other")[0]["status"] == "NEW_OBJECT"


def test_rollback_drops_what_came_after_the_mark_and_split_keeps_dispatches_apart() -> None:
    changes = Changes()
    changes.blobs["a"] = b"1"
    changes.node_updates.append(NodeUpdate("d", 0, {"status": "RUNNING"}))
    changes.transition("d", 0, "NEW_OBJECT", "RUNNING", 1.0)
    mark = changes.mark()
    changes.blobs["b"] = b"2"
    changes.node_updates.append(NodeUpdate("e", 0, {"status": "RUNNING"}))
    changes.transition("e", 0, "NEW_OBJECT", "RUNNING", 1.0)
    shared, parts = changes.split()
    assert set(shared.blobs) == {"a", "b"} and set(parts) == {"d", "e"}
    assert parts["e"].node_updates == [NodeUpdate("e", 0, {"status": "RUNNING"})]
    assert not parts["d"].blobs and len(parts["d"].transitions) == 1
    changes.rollback(mark)
    assert set(changes.blobs) == {"a"}
    assert [u.dispatch_id for u in changes.node_updates] == ["d"]
    assert [t["dispatch_id"] for t in changes.transitions] == ["d"]


def test_blob_cache_drops_the_oldest_past_its_limit() -> None:
    cache = BlobCache(limit=2 * CACHE_ENTRY_BYTES + 10)
    for name in "abc":
        cache.put(name, name.encode() * 4)
    assert cache.get("a") is None
    assert cache.get("b") == b"bbbb" and cache.get("c") == b"cccc"
    assert cache.size == 2 * (CACHE_ENTRY_BYTES + 4)


def test_blob_cache_counts_each_entry_s_overhead_so_small_blobs_stay_bounded() -> None:
    cache = BlobCache(limit=1_000_000)
    for i in range(100_000):  # small distinct values, as electrons returning floats make
        cache.put(f"{i:064x}", str(i).encode())
    kept = len(cache._items)
    assert 1_000_000 // (CACHE_ENTRY_BYTES + 5) <= kept <= 1_000_000 // CACHE_ENTRY_BYTES
    memory = sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in cache._items.items())
    assert memory <= cache.limit  # the bound holds in memory, not only in data bytes
    assert cache.get(f"{99_999:064x}") == b"99999" and cache.get(f"{0:064x}") is None


def test_blob_cache_forgets_the_names_it_is_told_to_drop() -> None:
    cache = BlobCache()
    for name in "abcde":
        cache.put(name, name.encode() * 2)
    cache.drop(["a", "b", "c", "z", None])  # unknown names and None are no-ops
    assert [cache.get(n) for n in "abcde"] == [None, None, None, b"dd", b"ee"]
    assert cache.size == 2 * (CACHE_ENTRY_BYTES + 2)
    cache.put("a", b"aa")  # it still takes new entries
    assert cache.get("a") == b"aa" and cache.size == 3 * (CACHE_ENTRY_BYTES + 2)


def test_a_blob_stored_already_gets_no_row_again_and_a_new_one_does(tmp_path: Path) -> None:
    # A blob the cache holds is stored (the cache takes one only once its transaction
    # committed, or as read from the store): its INSERT OR IGNORE was a lookup for nothing.
    store = _store(tmp_path)
    old, new = blobs.dumps(1), blobs.dumps(2)
    named = {blobs.digest(old): old, blobs.digest(new): new}
    store.commit(Changes(blobs={blobs.digest(old): old}))
    written: list[list[str]] = []
    insert = store._sql.insert

    def spy(conn: Any, table: Any, columns: Any, rows: Any, **options: Any) -> Any:
        if table.name == "blobs":
            written.append([row[0] for row in rows])
        return insert(conn, table, columns, rows, **options)

    store._sql.insert = spy  # type: ignore[method-assign]
    store.commit(Changes(blobs=dict(named)))
    assert written == [[blobs.digest(new)]]
    again = Store.sqlite(tmp_path / "db.sqlite", tmp_path / "blobs")  # nothing cached
    assert {name: again.read_blob(name) for name in named} == named
    again.commit(Changes(blobs=dict(named)))  # not known to be stored: written, ignored
    assert {name: again.read_blob(name) for name in named} == named
