"""One server dispatches from a PostgreSQL database at a time.

Several covalent servers may point at one PostgreSQL database (a team's store), but
only one of them runs its dispatches: each dispatcher resumes every unfinished
dispatch it finds at start, so two would run the same nodes twice and write over each
other's states. The server that starts first takes a session-level advisory lock
(``pg_try_advisory_lock(DISPATCH_LOCK_KEY)``) on a connection it keeps open for as long
as it runs; another server started on the same database fails at start with an error
that names the holder (its host and process id, from ``pg_stat_activity``). The lock
goes with its connection: when the holder stops or dies, the next server can start.

If the database restarts, the lock is lost with the connection; the holder takes it
again when the database is back (:meth:`DispatchLock.keep`).

A SQLite file has the same rule: two servers on one file (two ``covalent start`` at
once, or a server started by hand on another port in the same home) would both resume
its dispatches and sweep what the other is still writing. The server holds an exclusive
``flock(2)`` on ``<database file>.lock`` (:class:`FileLock`) from before it opens the
schema until it stops; the kernel lets it go when the process ends, however it ends, so a
crash never leaves a stale lock. The file names its holder (process id, host, start
time) for the error another server gets.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text

from covalent._errors import StoreLockedError, StoreUnavailableError

log = logging.getLogger("covalent.store")

DISPATCH_LOCK_KEY = 0x636F76616C656E74 & 0x7FFF_FFFF_FFFF_FFFF  # b"covalent"
"""The advisory lock's key: the same for every covalent server."""

_HOLDER = text(
    "SELECT a.application_name, a.client_addr, a.backend_start FROM pg_locks l "
    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
    "AND ((l.classid::bigint << 32) | l.objid::bigint) = :key AND a.pid <> pg_backend_pid()"
)


class DispatchLock:
    """The advisory lock of one database, held on a connection of its own."""

    def __init__(self, engine: Engine, shown_url: str) -> None:
        self.engine = engine
        self.shown_url = shown_url
        self._conn: Connection | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    def acquire(self) -> None:
        """Take the lock, or raise StoreLockedError naming the server that holds it."""
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            taken = conn.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": DISPATCH_LOCK_KEY}
            ).scalar_one()
            holder = None if taken else self._holder(conn)
        except BaseException:
            conn.close()
            raise
        if not taken:
            conn.close()
            raise StoreLockedError(
                f"Another covalent server ({holder or 'unknown'}) already runs the dispatches "
                f"of the database {self.shown_url}; only one may at a time. Stop it, or give "
                "this server another database (`covalent start --database-url URL`)."
            )
        self._conn = conn

    def _holder(self, conn: Connection) -> str | None:
        row: Any = conn.execute(_HOLDER, {"key": DISPATCH_LOCK_KEY}).first()
        if row is None:
            return None
        since = row.backend_start.strftime("%Y-%m-%d %H:%M:%S") if row.backend_start else "?"
        name, where = row.application_name or "no name", row.client_addr or "local"
        return f"{name} from {where} since {since}"

    def keep(self) -> bool:
        """Check the lock's connection; if the database dropped it (a restart), take the
        lock again. Return whether the lock is held. Raises StoreLockedError if another
        server took it meanwhile."""
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except Exception:
                self._drop()
                log.warning("the database dropped the dispatch lock's connection")
        try:
            self.acquire()
        except StoreUnavailableError:
            return False
        log.warning("the dispatch lock is held again")
        return True

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:  # the connection is gone already
                pass

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": DISPATCH_LOCK_KEY})
            conn.close()
        except Exception:  # the database is gone: the lock went with the connection
            pass


class FileLock:
    """The dispatch lock of a SQLite file: an exclusive ``flock`` on ``path`` (the
    database's path with ``.lock`` added), held on an open descriptor for as long as the
    server runs."""

    def __init__(self, path: str | Path, shown_database: str) -> None:
        self.path = Path(path)
        self.shown_database = shown_database
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock and write this process into the file, or raise StoreLockedError
        naming the server that holds it (StoreUnavailableError if the file cannot be
        opened)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise StoreUnavailableError(
                f"Cannot open the lock file {self.path} of the database "
                f"{self.shown_database}: {e.strerror or e}."
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(fd)
            os.close(fd)
            raise StoreLockedError(
                f"Another covalent server ({holder}) already runs the dispatches of the "
                f"database {self.shown_database}; only one may at a time. Stop it "
                "(`covalent stop`), or give this server another database."
            ) from None
        except BaseException:
            os.close(fd)
            raise
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            record = json.loads(os.pread(fd, 4096, 0) or b"{}")
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(record["since"])))
            return f"process {int(record['pid'])} on {record['host']} since {since}"
        except (OSError, ValueError, KeyError, TypeError):
            return "process unknown: its lock file is being written"

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor lets the flock go
