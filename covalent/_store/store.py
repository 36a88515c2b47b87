"""All reads and writes of the database and the blob files.

Writes happen in :meth:`Store.commit` (one transaction for a batch of changes) and
:meth:`Store.create_dispatch`; both return only after the transaction is committed, so
nothing is reported before it is stored. Reads may come from any thread.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError, IntegrityError

from covalent._config import mask_secrets
from covalent._errors import CovalentError
from covalent._store import migrate, schema
from covalent._store.engine import make_engine, normalized, sqlite_pragmas
from covalent._store.schema import attempts, blobs, dispatches, nodes, transitions

NODE_COLUMNS = (
    "dispatch_id",
    "node_id",
    "name",
    "kind",
    "status",
    "executor",
    "start_time",
    "end_time",
    "output_digest",
    "output_repr",
    "attempts",
)
"""The columns of the node rows :meth:`Store.create_dispatch` takes, in order."""

INLINE_LIMIT = 256 * 1024
CACHE_BYTES = 64 * 1024 * 1024
DISPATCH_NODE = -1


@dataclass
class Changes:
    """A batch of writes to commit together."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    node_updates: list[dict[str, Any]] = field(default_factory=list)
    dispatch_updates: list[dict[str, Any]] = field(default_factory=list)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    blob_files: list[dict[str, Any]] = field(default_factory=list)  # already on disk
    cache_rows: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.blobs
            or self.blob_files
            or self.cache_rows
            or self.node_updates
            or self.dispatch_updates
            or self.transitions
            or self.attempts
        )

    def transition(
        self, dispatch_id: str, node_id: int, old: str | None, new: str, at: float, cause: str = ""
    ) -> None:
        self.transitions.append(
            {
                "dispatch_id": dispatch_id,
                "node_id": node_id,
                "old": old,
                "new": new,
                "at": at,
                "cause": cause,
            }
        )


class BlobCache:
    """Recently stored or read small blobs in memory, bounded in bytes, oldest out first.

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

    def put(self, name: str, data: bytes) -> None:
        if len(data) > INLINE_LIMIT or name in self._items:
            return
        with self._lock:
            if name in self._items:
                return
            self._items[name] = data
            self.size += len(data)
            while self.size > self.limit:
                self.size -= len(self._items.pop(next(iter(self._items))))


class _RawWriter:
    """A SQLite connection of its own for :meth:`Store.commit`, the dispatcher's hot
    path: one transaction per turn of its loop, through the driver directly (SQLAlchemy's
    connection and statement layers cost more than SQLite itself for a small batch)."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        sqlite_pragmas(self.db, None)
        self.lock = threading.Lock()

    def exec_driver_sql(self, sql: str, params: list[tuple[Any, ...]]) -> None:
        self.db.executemany(sql, params)

    def close(self) -> None:
        self.db.close()


class Store:
    def __init__(self, url: str, blobs_dir: str | Path) -> None:
        self.url = normalized(url)
        self.engine = make_engine(self.url)
        self.blobs_dir = Path(blobs_dir)
        self.cache = BlobCache()
        path = url.removeprefix("sqlite:///")
        file_db = url.startswith("sqlite:///") and path not in ("", ":memory:")
        self._raw_path = path if file_db else None
        self._raw: _RawWriter | None = None

    @classmethod
    def sqlite(cls, db_path: str | Path, blobs_dir: str | Path) -> Store:
        Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{db_path}", blobs_dir)

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
        if self._raw is not None:
            self._raw.close()
            self._raw = None
        self.engine.dispose()

    # blobs

    def _blob_path(self, name: str) -> Path:
        return self.blobs_dir / name[:2] / name

    def _write_file(self, name: str, data: bytes) -> str:
        path = self._blob_path(name)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return str(path)

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

    def _insert_blobs(self, conn: Any, items: dict[str, bytes]) -> None:
        if not items:
            return
        rows = []
        for name, data in items.items():
            if len(data) > INLINE_LIMIT:
                rows.append(
                    {
                        "digest": name,
                        "size": len(data),
                        "data": None,
                        "path": self._write_file(name, data),
                    }
                )
            else:
                rows.append({"digest": name, "size": len(data), "data": data, "path": None})
        if rows:
            self._insert_ignoring(conn, blobs, rows)
        for name, data in items.items():
            self.cache.put(name, data)

    def _bulk_insert(self, conn: Any, table: Any, rows: list[dict[str, Any]]) -> None:
        """Insert many rows with the same keys; on SQLite straight through the driver,
        which is several times faster than compiling parameters row by row."""
        if not self.url.startswith("sqlite"):
            conn.execute(insert(table), rows)
            return
        columns = tuple(rows[0])
        self._insert_tuples(conn, table, columns, [tuple(row[c] for c in columns) for row in rows])

    def _insert_tuples(
        self,
        conn: Any,
        table: Any,
        columns: tuple[str, ...],
        rows: list[tuple[Any, ...]],
        verb: str = "INSERT",
    ) -> None:
        """Insert rows given as tuples in ``columns`` order (``verb``: ``INSERT OR
        IGNORE`` on SQLite to skip rows whose key exists)."""
        if not self.url.startswith("sqlite"):
            conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
            return
        marks = ", ".join("?" for _ in columns)
        sql = f"{verb} INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"
        conn.exec_driver_sql(sql, rows)

    def _update_many(self, conn: Any, table: Any, updates: list[dict[str, Any]]) -> None:
        """Apply row updates: ``_d`` (and ``_n`` for nodes) select the row, the other keys
        are new column values; rows with the same columns go in one executemany."""
        keys = {"_d": "dispatch_id", "_n": "node_id"}
        for columns, rows in _group_by_keys(updates):
            where = [k for k in ("_d", "_n") if k in rows[0]]
            if self.url.startswith("sqlite"):
                sql = (
                    f"UPDATE {table.name} SET {', '.join(f'{c} = ?' for c in columns)} "
                    f"WHERE {' AND '.join(f'{keys[k]} = ?' for k in where)}"
                )
                params = [tuple(row[c] for c in (*columns, *where)) for row in rows]
                conn.exec_driver_sql(sql, params)
                continue
            stmt = (
                update(table)
                .where(*(table.c[keys[k]] == bindparam(k) for k in where))
                .values({c: bindparam(f"v_{c}") for c in columns})
            )
            conn.execute(stmt, [_renamed(row) for row in rows])

    def _insert_ignoring(self, conn: Any, table: Any, rows: list[dict[str, Any]]) -> None:
        """Insert rows, skipping those whose key exists; on SQLite through the driver."""
        if not self.url.startswith("sqlite"):
            conn.execute(self._insert_ignore(table), rows)
            return
        columns = tuple(rows[0])
        params = [tuple(row[c] for c in columns) for row in rows]
        self._insert_tuples(conn, table, columns, params, verb="INSERT OR IGNORE")

    def _insert_ignore(self, table: Any) -> Any:
        """INSERT that skips rows whose key exists (blobs are content-addressed)."""
        if self.url.startswith("sqlite"):
            return insert(table).prefix_with("OR IGNORE")
        return postgresql.insert(table).on_conflict_do_nothing()

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
        self, row: dict[str, Any], node_rows: list[tuple[Any, ...]], changes: Changes
    ) -> None:
        """Store a new dispatch, its nodes (``NODE_COLUMNS`` tuples), its blobs and first
        transitions in one transaction."""
        try:
            with self.engine.begin() as conn:
                self._insert_blobs(conn, changes.blobs)
                conn.execute(insert(dispatches), [row])
                if node_rows:
                    self._insert_tuples(conn, nodes, NODE_COLUMNS, node_rows)
                if changes.transitions:
                    self._bulk_insert(conn, transitions, changes.transitions)
        except IntegrityError as e:
            raise CovalentError(f"Dispatch {row['dispatch_id']} already exists.") from e

    def commit(self, changes: Changes) -> None:
        """Write a batch of changes in one transaction."""
        if not changes:
            return
        if self._raw_path is None:
            with self.engine.begin() as conn:
                self._write(conn, changes)
            return
        if self._raw is None:
            self._raw = _RawWriter(self._raw_path)
        raw = self._raw
        with raw.lock:
            raw.db.execute("BEGIN IMMEDIATE")
            try:
                self._write(raw, changes)
            except BaseException:
                raw.db.execute("ROLLBACK")
                raise
            raw.db.execute("COMMIT")

    def _write(self, conn: Any, changes: Changes) -> None:
        self._insert_blobs(conn, changes.blobs)
        if changes.blob_files:
            self._insert_ignoring(conn, blobs, changes.blob_files)
        self._update_many(conn, nodes, changes.node_updates)
        self._update_many(conn, dispatches, changes.dispatch_updates)
        if changes.transitions:
            self._bulk_insert(conn, transitions, changes.transitions)
        if changes.cache_rows:
            self._insert_ignoring(conn, schema.cache, changes.cache_rows)
        if changes.attempts:
            self._bulk_insert(conn, attempts, changes.attempts)

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
        columns = [c for c in dispatches.c if with_manifest or c.name != "manifest"]
        with self.engine.connect() as conn:
            row = conn.execute(
                select(*columns).where(dispatches.c.dispatch_id == dispatch_id)
            ).first()
        if row is None:
            return None
        out = dict(row._mapping)
        out["summary"] = json.loads(out["summary"])
        if with_manifest:
            out["manifest"] = json.loads(out["manifest"])
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
        columns = [c for c in dispatches.c if c.name != "manifest"]
        query = (
            select(*columns).order_by(dispatches.c.created_at.desc()).limit(limit).offset(offset)
        )
        for condition in _conditions(status, filters):
            query = query.where(condition)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            row["summary"] = json.loads(row["summary"])
        return rows

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


def _group_by_keys(
    updates: list[dict[str, Any]],
) -> list[tuple[tuple[str, ...], list[dict[str, Any]]]]:
    """Row updates merged per row (``_d``, ``_n``; later values win) and grouped by their
    columns (keys not starting with ``_``), so that each group is one executemany and no
    group can undo another's newer value for the same row."""
    merged: dict[tuple[Any, Any], dict[str, Any]] = {}
    copied: set[tuple[Any, Any]] = set()
    for change in updates:
        key = (change["_d"], change.get("_n"))
        row = merged.get(key)
        if row is None:
            merged[key] = change
            continue
        if key not in copied:
            row = merged[key] = dict(row)
            copied.add(key)
        row.update(change)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in merged.values():
        groups.setdefault(tuple(row), []).append(row)
    return [
        (tuple(k for k in keys if not k.startswith("_")), rows) for keys, rows in groups.items()
    ]


def _renamed(row: dict[str, Any]) -> dict[str, Any]:
    """Column values as ``v_<column>``: a bind parameter may not share its column's name
    in an UPDATE."""
    return {(k if k.startswith("_") else f"v_{k}"): v for k, v in row.items()}
