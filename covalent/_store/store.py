"""All reads and writes of the database and the blob files.

Writes happen in :meth:`Store.commit` (one transaction for a batch of changes) and
:meth:`Store.create_dispatch`; both return only after the transaction is committed, so
nothing is reported before it is stored. Reads may come from any thread.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from covalent._config import mask_secrets
from covalent._errors import CovalentError, StorageFullError, StoreUnavailableError
from covalent._store import manifests, migrate, schema
from covalent._store.changes import (
    NEW_NODE_COLUMNS,
    NODE_COLUMNS,
    Changes,
    DispatchUpdate,
    NewNodeRow,
    NodeRow,
    NodeUpdate,
)
from covalent._store.engine import make_engine, normalized, sqlite_pragmas
from covalent._store.schema import attempts, blobs, dispatches, nodes, transitions
from covalent._wire import blobfiles

INLINE_LIMIT = 256 * 1024
STAGED_ROWS = 25_000
"""A new dispatch of more node rows than this (a fan-out of over 12,500) is written in
transactions of this many rows, its own row last (:meth:`Store._create_staged`): the
dispatcher's commits wait for the store's one writer, and one transaction of 300,000
rows held them ~1 s."""
STAGED_MARK = "staging:"
"""The ``meta`` key prefix naming a dispatch whose rows are being written."""
CACHE_BYTES = 64 * 1024 * 1024
"""The blob cache's bound: bytes of memory, each entry counted with its overhead."""
CACHE_ENTRY_BYTES = 200
"""What a cached blob costs beyond its data: its 64-character key (113 bytes), the bytes
object's header (33) and its share of the dict's table, measured as 198 bytes an entry
over 1,000,000 small blobs. Counting data alone let a server whose electrons return small
distinct values (a float each) hold 11 million entries, about 2 GB, under "64 MB"."""
BLOB_COLUMNS = ("digest", "size", "data", "path")
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
UNFINISHED = ("NEW_OBJECT", "PENDING_REUSE", "RUNNING")
"""Node statuses an aborted dispatch's nodes may be left in, closed as CANCELLED."""


_DISPATCH_WITH_MANIFEST = select(dispatches).where(dispatches.c.dispatch_id == bindparam("id"))
_SUMMARY_SOURCE = case((dispatches.c.summary == "", dispatches.c.manifest)).label("summary_source")
"""The manifest of a row whose summary is read from it (see manifests.SUMMARY_APART_FROM),
else NULL: a small one."""
_ROW = [*(c for c in dispatches.c if c.name != "manifest"), _SUMMARY_SOURCE]
"""A dispatch's columns without its manifest."""
_DISPATCH = select(*_ROW).where(dispatches.c.dispatch_id == bindparam("id"))
"""A dispatch's row, with or without its manifest: statements built once (building one
cost more than the query; a client's long poll reads the row each time)."""


def _summarized(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` (read with its manifest or with ``summary_source``) with its summary as a
    dict."""
    source = row.pop("summary_source", None)
    manifest = row.get("manifest", source)
    row["summary"] = manifests.summary_of(row["summary"], manifest, row["lattice_name"])
    return row


class BlobCache:
    """Recently stored or read small blobs in memory, bounded in bytes of memory (data
    and :data:`CACHE_ENTRY_BYTES` an entry), oldest out first.

    Safe across threads: a read is one dict lookup (atomic under the GIL, no lock to
    contend for with the pool's threads); writers take a lock.
    """

    def __init__(self, limit: int = CACHE_BYTES) -> None:
        self.limit = limit
        self.size = 0
        self._items: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> bytes | None:
        return self._items.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def put(self, name: str, data: bytes) -> None:
        if len(data) > INLINE_LIMIT or name in self._items:
            return
        with self._lock:
            if name in self._items:
                return
            self._items[name] = data
            self.size += len(data) + CACHE_ENTRY_BYTES
            while self.size > self.limit:
                self.size -= len(self._items.pop(next(iter(self._items)))) + CACHE_ENTRY_BYTES

    def drop(self, names: Iterable[str | None]) -> None:
        """Forget ``names`` (a large run's blobs once it has ended). A dict never shrinks
        as entries leave it, so one left with under a quarter of its entries is copied
        into a table of its size: 100,000 entries' table is 5 MB."""
        with self._lock:
            before = len(self._items)
            for name in names:
                data = self._items.pop(name, None) if name is not None else None
                if data is not None:
                    self.size -= len(data) + CACHE_ENTRY_BYTES
            if len(self._items) < before // 4:
                self._items = dict(self._items)


class _RawWriter:
    """A SQLite connection of its own for :meth:`Store.commit`, the dispatcher's hot
    path: one transaction per turn of its loop, through the driver directly (SQLAlchemy's
    connection and statement layers cost more than SQLite itself for a small batch)."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        sqlite_pragmas(self.db, None)
        self.lock = threading.Lock()

    def exec_driver_sql(
        self, sql: str, params: list[tuple[Any, ...]] | tuple[Any, ...]
    ) -> sqlite3.Cursor:
        """As SQLAlchemy's ``Connection.exec_driver_sql``: a tuple of parameters runs the
        statement once, a list of them runs it for each."""
        if isinstance(params, tuple):
            return self.db.execute(sql, params)
        return self.db.executemany(sql, params)

    def close(self) -> None:
        self.db.close()


log = logging.getLogger("covalent.store")

Key = tuple[Any, ...]
_FIRST = operator.itemgetter(0)


class _Statements:
    """How batches of rows are written: through SQLAlchemy Core, on any database.

    The store picks this or :class:`_SqliteStatements` once, from its URL.
    """

    def insert(
        self,
        conn: Any,
        table: Any,
        columns: tuple[str, ...],
        rows: Sequence[tuple[Any, ...]],
        ignore: bool = False,
    ) -> None:
        """Insert rows given as tuples in ``columns`` order; with ``ignore``, skip those
        whose key exists (blobs and cache rows are content-addressed)."""
        stmt = postgresql.insert(table).on_conflict_do_nothing() if ignore else insert(table)
        conn.execute(stmt, [dict(zip(columns, row, strict=True)) for row in rows])

    def update(
        self,
        conn: Any,
        table: Any,
        keys: tuple[str, ...],
        columns: tuple[str, ...],
        rows: list[tuple[Any, ...]],
    ) -> None:
        """Set ``columns`` of the rows selected by ``keys``: each row is the new values
        followed by the key values."""
        stmt = (
            update(table)
            .where(*(table.c[k] == bindparam(f"k_{k}") for k in keys))
            .values({c: bindparam(f"v_{c}") for c in columns})
        )
        names = [f"v_{c}" for c in columns] + [f"k_{k}" for k in keys]
        conn.execute(stmt, [dict(zip(names, row, strict=True)) for row in rows])

    def delete(self, conn: Any, table: Any, column: str, value: Any) -> int:
        """Delete the rows whose ``column`` is ``value``; how many."""
        return int(conn.execute(table.delete().where(table.c[column] == value)).rowcount)

    def dispatch_exists(self, conn: Any, dispatch_id: str) -> bool:
        query = select(dispatches.c.dispatch_id).where(dispatches.c.dispatch_id == dispatch_id)
        return conn.execute(query).first() is not None

    def close_unfinished(self, conn: Any, closed: list[tuple[str, str]], at: float) -> None:
        """Mark every unfinished node of each ``(dispatch id, cause)`` CANCELLED."""
        for dispatch_id, cause in closed:
            conn.execute(
                update(nodes)
                .where(nodes.c.dispatch_id == dispatch_id, nodes.c.status.in_(UNFINISHED))
                .values(status="CANCELLED", end_time=at, error=cause)
            )


class _SqliteStatements(_Statements):
    """The same statements straight through the SQLite driver: several times faster than
    compiling parameters row by row, on the dispatcher's hot path."""

    def insert(
        self,
        conn: Any,
        table: Any,
        columns: tuple[str, ...],
        rows: Sequence[tuple[Any, ...]],
        ignore: bool = False,
    ) -> None:
        marks = ", ".join("?" for _ in columns)
        verb = "INSERT OR IGNORE" if ignore else "INSERT"
        sql = f"{verb} INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"
        conn.exec_driver_sql(sql, rows if isinstance(rows, list) else list(rows))  # many

    def update(
        self,
        conn: Any,
        table: Any,
        keys: tuple[str, ...],
        columns: tuple[str, ...],
        rows: list[tuple[Any, ...]],
    ) -> None:
        sql = (
            f"UPDATE {table.name} SET {', '.join(f'{c} = ?' for c in columns)} "
            f"WHERE {' AND '.join(f'{k} = ?' for k in keys)}"
        )
        conn.exec_driver_sql(sql, rows)

    def delete(self, conn: Any, table: Any, column: str, value: Any) -> int:
        sql = f"DELETE FROM {table.name} WHERE {column} = ?"
        return int(conn.exec_driver_sql(sql, (value,)).rowcount)

    def dispatch_exists(self, conn: Any, dispatch_id: str) -> bool:
        sql = "SELECT 1 FROM dispatches WHERE dispatch_id = ?"
        return conn.exec_driver_sql(sql, (dispatch_id,)).fetchone() is not None

    def close_unfinished(self, conn: Any, closed: list[tuple[str, str]], at: float) -> None:
        marks = ", ".join("?" for _ in UNFINISHED)
        sql = (
            "UPDATE nodes SET status = 'CANCELLED', end_time = ?, error = ? "
            f"WHERE dispatch_id = ? AND status IN ({marks})"
        )
        conn.exec_driver_sql(sql, [(at, cause, d, *UNFINISHED) for d, cause in closed])


class Store:
    def __init__(self, url: str, blobs_dir: str | Path) -> None:
        self.url = normalized(url)
        self.engine = make_engine(self.url)
        self.blobs_dir = Path(blobs_dir)
        if not self.blobs_dir.exists():
            self.blobs_dir.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
        self.cache = BlobCache()
        path = self.engine.url.database or ""  # decoded: the file SQLAlchemy opens too
        file_db = url.startswith("sqlite:///") and path not in ("", ":memory:")
        self._raw_path = path if file_db else None
        self._raw: _RawWriter | None = None
        self._raw_opening = threading.Lock()
        self._closed = False
        self._sql = _SqliteStatements() if url.startswith("sqlite") else _Statements()

    @classmethod
    def sqlite(cls, db_path: str | Path, blobs_dir: str | Path) -> Store:
        """A store in the SQLite file ``db_path``, made readable by its owner only (as are
        its write-ahead log and the blob folders), since it holds every input, output
        and executor setting."""
        Path(db_path).parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
        if not Path(db_path).exists():
            os.close(os.open(db_path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE))
        url = URL.create("sqlite", database=str(db_path))  # a "?" or "%" in it is escaped
        return cls(url.render_as_string(hide_password=False), blobs_dir)

    def create_schema(self) -> tuple[str | None, str | None]:
        """Bring the schema up to date (Alembic migrations); return the revisions before
        and after. A database migrated by a newer covalent is refused, untouched."""
        found = migrate.current(self.engine)
        if found is not None and found not in migrate.revisions():
            raise CovalentError(
                f"The database {self.shown_url} has schema revision {found}, which this covalent "
                f"does not know (its newest is {migrate.head()}); upgrade covalent."
            )
        try:
            return migrate.upgrade(self.engine)
        except DBAPIError as e:
            cause = " ".join(str(e.orig).split())[:300]
            raise CovalentError(
                f"Cannot bring the schema of the database {self.shown_url} up to date: {cause}. "
                "The database user needs the right to create tables there."
            ) from None

    @property
    def shown_url(self) -> str:
        """The database URL fit to show: its password masked."""
        return mask_secrets(self.url)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    def close(self) -> None:
        """Close the store's connections; a write in another thread ends first, and a
        later one raises StoreUnavailableError."""
        with self._raw_opening:
            self._closed = True
            raw, self._raw = self._raw, None
        if raw is not None:
            with raw.lock:
                raw.close()
        self.engine.dispose()

    # blobs

    def _write_file(self, name: str, data: bytes) -> str:
        """Store blob ``name`` as a file, whole or not at all; StorageFullError (507)
        when the disk is full."""
        path = blobfiles.path_of(self.blobs_dir, name)
        if not os.path.exists(path):
            try:
                blobfiles.write(path, data)
            except OSError as e:
                what = f"blob {name} ({len(data)} bytes)"
                raise blobfiles.storage_error(e, what, self.blobs_dir) from e
        return path

    def sweep_partial_files(self) -> int:
        """Remove partial blob files left by writers that were killed (at start)."""
        return blobfiles.sweep(self.blobs_dir)

    def missing_blobs(self, names: Iterable[str]) -> set[str]:
        wanted = set(names)
        found: set[str] = set()
        with self.engine.connect() as conn:
            chunk = list(wanted)
            for start in range(0, len(chunk), 500):
                part = chunk[start : start + 500]
                found.update(
                    r[0]
                    for r in conn.execute(select(blobs.c.digest).where(blobs.c.digest.in_(part)))
                )
        return wanted - found

    def _blob_rows(self, items: dict[str, bytes]) -> list[tuple[Any, ...]]:
        """The blob rows of ``items``, the large ones written as files first (before a
        transaction: the store's writer is not held while files are written), in digest
        order: the rows then go into the key's index side by side rather than at random
        places, which makes a large batch about twice as fast on SQLite.

        A blob in :attr:`cache` has no row here: it is stored already (the cache takes a
        blob only once its transaction committed, or as read from the store, and no
        blob is ever deleted), and its ``INSERT OR IGNORE`` was a lookup in the key's
        index for nothing: a sweep's parameters submitted again, an output equal to an
        input (W2's ``x + 1``: 10,000 of its 10,000 outputs, ~10% of the server's CPU)."""
        stored = self.cache
        return [
            (name, len(data), None, self._write_file(name, data))
            if len(data) > INLINE_LIMIT
            else (name, len(data), data, None)
            for name, data in sorted(items.items(), key=_FIRST)
            if name not in stored
        ]

    def _insert_blobs(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self._sql.insert(conn, blobs, BLOB_COLUMNS, rows, ignore=True)

    def _remember(self, items: dict[str, bytes]) -> None:
        """Keep the small ones of blobs just committed in memory."""
        for name, data in items.items():
            self.cache.put(name, data)

    def _insert_rows(self, conn: Any, table: Any, rows: list[Any], ignore: bool = False) -> None:
        """Insert rows given as dicts (TypedDicts) with the same keys."""
        if rows:
            columns = tuple(rows[0])
            values = operator.itemgetter(*columns)  # a tuple of them (in C)
            params = list(map(values, rows))
            if len(columns) == 1:  # (the getter gives the one value itself)
                params = [(value,) for value in params]
            self._sql.insert(conn, table, columns, params, ignore)

    def _update_rows(
        self, conn: Any, table: Any, keys: tuple[str, ...], updates: list[Any]
    ) -> None:
        """Apply row updates (:class:`NodeUpdate` or :class:`DispatchUpdate`): merged per
        row, then one executemany per set of columns."""
        for columns, rows in _grouped(updates):
            self._sql.update(conn, table, keys, columns, rows)

    def blob_file(self, name: str) -> str | None:
        """The path of a blob stored as a file, or None (inline, or unknown)."""
        if self.cache.get(name) is not None:  # only small (inline) blobs are cached
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(blobs.c.path).where(blobs.c.digest == name)).first()
        return row.path if row is not None else None

    def read_blob(self, name: str) -> bytes | None:
        data = self.cache.get(name)
        if data is not None:
            return data
        with self.engine.connect() as conn:
            row = conn.execute(
                select(blobs.c.data, blobs.c.path).where(blobs.c.digest == name)
            ).first()
        if row is None:
            return None
        data = row.data if row.data is not None else Path(row.path).read_bytes()
        self.cache.put(name, data)
        return data

    # writes

    def create_dispatch(
        self,
        row: dict[str, Any],
        node_rows: Sequence[NodeRow],
        changes: Changes,
        new_nodes: Sequence[NewNodeRow] = (),
    ) -> None:
        """Store a new dispatch, its nodes (``node_rows`` whole, ``new_nodes`` with the
        columns of a node yet to run), its blobs and first transitions in one
        transaction."""
        stored = {**row, "manifest": manifests.packed(row["manifest"])}  # before the lock
        try:
            blob_rows = self._blob_rows(changes.blobs)
            if len(node_rows) + len(new_nodes) > STAGED_ROWS:
                self._create_staged(stored, blob_rows, node_rows, new_nodes, changes)
            else:
                with self._transaction() as conn:
                    self._insert_blobs(conn, blob_rows)
                    self._sql.insert(conn, dispatches, tuple(stored), [tuple(stored.values())])
                    if node_rows:
                        self._sql.insert(conn, nodes, NODE_COLUMNS, node_rows)
                    if new_nodes:
                        self._sql.insert(conn, nodes, NEW_NODE_COLUMNS, new_nodes)
                    self._insert_rows(conn, transitions, changes.transitions)
        except (IntegrityError, sqlite3.IntegrityError) as e:
            raise CovalentError(f"Dispatch {row['dispatch_id']} already exists.") from e
        except (OperationalError, sqlite3.OperationalError) as e:
            if _database_full(e):
                raise StorageFullError(
                    f"The server's database is full: dispatch {row['dispatch_id']} could not "
                    f"be stored ({getattr(e, 'orig', e)}). Nothing was stored; free space and "
                    "try again."
                ) from e
            raise
        self._remember(changes.blobs)

    def _create_staged(
        self,
        stored: dict[str, Any],
        blob_rows: list[tuple[Any, ...]],
        node_rows: Sequence[NodeRow],
        new_nodes: Sequence[NewNodeRow],
        changes: Changes,
    ) -> None:
        """A large new dispatch, in transactions of ``STAGED_ROWS`` rows: first a mark in
        ``meta`` naming it, then its blobs and nodes, last its own row and first
        transitions with the mark's removal. If a write fails, what was written is
        removed; if the server stops first, :meth:`sweep_staged` removes it at the next
        start. Until the last transaction nothing reads it: lists and queries start from
        the dispatch's row. The last transaction stores it only if its mark is still
        there (a sweep by another server on the same database took it: nothing of it is
        then acknowledged); a removal never touches a dispatch whose row is stored."""
        dispatch_id = stored["dispatch_id"]
        mark = STAGED_MARK + dispatch_id
        with self._transaction() as conn:
            if self._sql.dispatch_exists(conn, dispatch_id):  # before anything is written
                raise CovalentError(f"Dispatch {dispatch_id} already exists.")
            self._sql.insert(conn, schema.meta, ("key", "value"), [(mark, "staged")])
        try:
            for columns, rows, table in (
                (BLOB_COLUMNS, blob_rows, blobs),
                (NODE_COLUMNS, node_rows, nodes),
                (NEW_NODE_COLUMNS, new_nodes, nodes),
            ):
                for start in range(0, len(rows), STAGED_ROWS):
                    with self._transaction() as conn:
                        part = rows[start : start + STAGED_ROWS]
                        self._sql.insert(conn, table, columns, part, ignore=table is blobs)
            with self._transaction() as conn:
                if self._sql.delete(conn, schema.meta, "key", mark) != 1:
                    raise StoreUnavailableError(
                        f"Dispatch {dispatch_id} was removed while it was being stored (the "
                        "server was started again on this database meanwhile); submit it again."
                    )
                self._sql.insert(conn, dispatches, tuple(stored), [tuple(stored.values())])
                self._insert_rows(conn, transitions, changes.transitions)
        except BaseException:
            try:
                self._drop_staged(dispatch_id)
            except Exception:  # the next start's sweep removes it
                log.warning("Could not remove the partly stored dispatch %s", dispatch_id)
            raise

    def _drop_staged(self, dispatch_id: str) -> None:
        """Remove what a staged dispatch wrote (its nodes; its blobs may be anyone's) and
        its mark; a stored dispatch of that id (its last transaction committed, whatever
        its caller heard) keeps all of its rows."""
        with self._transaction() as conn:
            if not self._sql.dispatch_exists(conn, dispatch_id):
                self._sql.delete(conn, nodes, "dispatch_id", dispatch_id)
                self._sql.delete(conn, transitions, "dispatch_id", dispatch_id)
            self._sql.delete(conn, schema.meta, "key", STAGED_MARK + dispatch_id)

    def sweep_staged(self) -> int:
        """Remove the dispatches a stopped server was still storing (:meth:`create_dispatch`
        of a large one); how many (at start)."""
        query = select(schema.meta.c.key).where(schema.meta.c.key.startswith(STAGED_MARK))
        with self.engine.connect() as conn:
            found = [key.removeprefix(STAGED_MARK) for (key,) in conn.execute(query)]
        for dispatch_id in found:
            self._drop_staged(dispatch_id)
        return len(found)

    def commit(self, changes: Changes) -> None:
        """Write a batch of changes in one transaction."""
        if not changes:
            return
        blob_rows = self._blob_rows(changes.blobs)
        with self._transaction() as conn:
            self._write(conn, changes, blob_rows)
        self._remember(changes.blobs)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A write transaction: on a SQLite file, through the store's own driver-level
        connection (:class:`_RawWriter`), one writer at a time; else SQLAlchemy's. Rolled
        back if anything in it, or its commit, fails."""
        if self._raw_path is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._raw_opening:
            if self._closed:
                raise StoreUnavailableError("The store is closed (the server is stopping).")
            if self._raw is None:
                self._raw = _RawWriter(self._raw_path)
            raw = self._raw
        with raw.lock:
            raw.db.execute("BEGIN IMMEDIATE")
            try:
                yield raw
                raw.db.execute("COMMIT")
            except BaseException:
                if raw.db.in_transaction:
                    raw.db.execute("ROLLBACK")
                raise

    def _write(self, conn: Any, changes: Changes, blob_rows: list[tuple[Any, ...]]) -> None:
        self._insert_blobs(conn, blob_rows)
        self._insert_rows(conn, blobs, changes.blob_files, ignore=True)
        self._update_rows(conn, nodes, ("dispatch_id", "node_id"), changes.node_updates)
        self._update_rows(conn, dispatches, ("dispatch_id",), changes.dispatch_updates)
        if changes.closed:
            self._sql.close_unfinished(conn, changes.closed, time.time())
        self._insert_rows(conn, transitions, changes.transitions)
        self._insert_rows(conn, schema.cache, changes.cache_rows, ignore=True)
        self._insert_rows(conn, attempts, changes.attempts)

    def delete_dispatch(self, dispatch_id: str) -> bool:
        with self.engine.begin() as conn:
            done = conn.execute(
                dispatches.delete().where(dispatches.c.dispatch_id == dispatch_id)
            ).rowcount
            conn.execute(nodes.delete().where(nodes.c.dispatch_id == dispatch_id))
            conn.execute(transitions.delete().where(transitions.c.dispatch_id == dispatch_id))
            conn.execute(attempts.delete().where(attempts.c.dispatch_id == dispatch_id))
        return bool(done)

    # reads

    def get_dispatch(self, dispatch_id: str, with_manifest: bool = False) -> dict[str, Any] | None:
        query = _DISPATCH_WITH_MANIFEST if with_manifest else _DISPATCH
        with self.engine.connect() as conn:
            row = conn.execute(query, {"id": dispatch_id}).first()
        if row is None:
            return None
        out = _summarized(dict(row._mapping))
        if with_manifest:
            out["manifest"] = manifests.loaded(out["manifest"])
        return out

    def get_nodes(self, dispatch_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(nodes).where(nodes.c.dispatch_id == dispatch_id).order_by(nodes.c.node_id)
            )
            return [dict(r._mapping) for r in rows]

    def get_transitions(self, dispatch_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(transitions)
                .where(transitions.c.dispatch_id == dispatch_id)
                .order_by(transitions.c.id)
            )
            return [dict(r._mapping) for r in rows]

    def get_attempts(self, dispatch_id: str) -> list[dict[str, Any]]:
        """Failed attempts that were retried, per node, in order."""
        query = (
            select(attempts)
            .where(attempts.c.dispatch_id == dispatch_id)
            .order_by(attempts.c.node_id, attempts.c.attempt)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def list_dispatches(
        self,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
        filters: DispatchFilter | None = None,
    ) -> list[dict[str, Any]]:
        query = select(*_ROW).order_by(dispatches.c.created_at.desc()).limit(limit).offset(offset)
        for condition in _conditions(status, filters):
            query = query.where(condition)
        with self.engine.connect() as conn:
            return [_summarized(dict(r._mapping)) for r in conn.execute(query)]

    def count_dispatches(
        self, status: str | None = None, filters: DispatchFilter | None = None
    ) -> int:
        query = select(func.count()).select_from(dispatches)
        for condition in _conditions(status, filters):
            query = query.where(condition)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def unfinished_dispatches(self, final: Iterable[str]) -> list[str]:
        query = (
            select(dispatches.c.dispatch_id)
            .where(dispatches.c.status.not_in(list(final)))
            .order_by(dispatches.c.created_at)
        )
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(query)]


def _database_full(error: OperationalError | sqlite3.OperationalError) -> bool:
    """SQLite's SQLITE_FULL, PostgreSQL's disk_full (53100)."""
    orig = error.orig if isinstance(error, OperationalError) else error
    if getattr(orig, "sqlstate", None) == "53100":
        return True
    return getattr(orig, "sqlite_errorcode", None) == 13 or "disk is full" in str(orig)


@dataclass(frozen=True)
class DispatchFilter:
    """Which dispatches a listing keeps: lattice name containing ``name`` (any case),
    created at or after ``since`` (UNIX seconds), id starting with ``id_prefix``."""

    name: str | None = None
    since: float | None = None
    id_prefix: str | None = None


def like_escaped(text: str) -> str:
    """``text`` with LIKE's wildcards escaped (escape character ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conditions(status: str | None, filters: DispatchFilter | None) -> list[Any]:
    where: list[Any] = []
    if status:
        where.append(dispatches.c.status == status)
    if filters is None:
        return where
    if filters.name:
        pattern = f"%{like_escaped(filters.name)}%"
        where.append(dispatches.c.lattice_name.ilike(pattern, escape="\\"))
    if filters.since is not None:
        where.append(dispatches.c.created_at >= filters.since)
    if filters.id_prefix:
        pattern = f"{like_escaped(filters.id_prefix.lower())}%"
        where.append(dispatches.c.dispatch_id.like(pattern, escape="\\"))
    return where


def _grouped(
    updates: list[NodeUpdate] | list[DispatchUpdate],
) -> list[tuple[tuple[str, ...], list[tuple[Any, ...]]]]:
    """Row updates merged per row (later values win) and grouped by their columns, so
    that each group is one executemany and no group can undo another's newer value for
    the same row. Each row comes out as its values followed by its key."""
    merged: dict[Key, dict[str, Any]] = {}
    for update_ in updates:
        key, fields = update_[:-1], update_[-1]  # (a slice of a NamedTuple is a tuple)
        row = merged.get(key)
        merged[key] = fields if row is None else {**row, **fields}  # the caller's unchanged
    groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for key, fields in merged.items():
        groups.setdefault(tuple(fields), []).append((*fields.values(), *key))
    return list(groups.items())
