"""The server's hold on its database: the dispatch lock, and ``/api/v1/database``.

The server holds its database's dispatch lock (covalent/_store/lock.py) for as long as
it runs: a ``flock`` beside a SQLite file, an advisory lock on PostgreSQL. The latter it
checks every few seconds: after a database restart it takes it
again; if another server took it meanwhile, this one stops rather than run the same
dispatches twice. ``GET /api/v1/database`` says whether the database answers, for
``covalent status`` and the UI. While the database is down, requests that need it
answer 503 (StoreUnavailableError, raised in covalent/_store/engine.py) and the
dispatcher waits to commit its next turn; both go on by themselves once it is back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

from fastapi import APIRouter, Request

from covalent._errors import StoreLockedError
from covalent._store.engine import ping
from covalent._store.lock import DispatchLock, FileLock
from covalent._store.store import Store

log = logging.getLogger("covalent.server")

KEEP_EVERY = 2.0
"""Seconds between checks of the dispatch lock's connection."""

router = APIRouter(prefix="/api/v1/database")


class Guard:
    """The dispatch lock of a store and, on PostgreSQL, its keeper (an in-memory SQLite
    store has no lock: no other process can open it)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lock: DispatchLock | FileLock | None = None
        if not store.is_sqlite:
            self.lock = DispatchLock(store.engine, store.shown_url)
        elif (path := store.engine.url.database) and path != ":memory:":
            real = os.path.realpath(path)  # one file reached by two names has one lock
            self.lock = FileLock(f"{real}.lock", path)
        self._keeper: asyncio.Task[None] | None = None

    def acquire(self) -> None:
        """Take the dispatch lock if this store has one; StoreLockedError if taken."""
        if self.lock is not None and not self.lock.held:
            self.lock.acquire()

    async def start(self) -> None:
        self.acquire()
        if isinstance(self.lock, DispatchLock):
            self._keeper = asyncio.create_task(self._keep(), name="covalent-dispatch-lock")

    async def stop(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
        if self.lock is not None:
            await asyncio.to_thread(self.lock.release)

    async def _keep(self) -> None:
        assert isinstance(self.lock, DispatchLock)  # a file's flock cannot be lost
        while True:
            await asyncio.sleep(KEEP_EVERY)
            try:
                await asyncio.to_thread(self.lock.keep)
            except StoreLockedError as e:
                log.critical("stopping: %s", e)
                os.kill(os.getpid(), signal.SIGTERM)
                return
            except Exception:  # keep checking; the next turn may succeed
                log.exception("checking the dispatch lock failed")

    def health(self) -> dict[str, Any]:
        """Whether the database answers now, and whether this server holds the lock."""
        problem = ping(self.store.engine)
        return {
            "url": self.store.shown_url,
            "dialect": self.store.engine.dialect.name,
            "ok": problem is None,
            "error": problem,
            "dispatch_lock": None if self.lock is None else self.lock.held,
        }


def _guard(request: Request) -> Guard:
    guard: Guard = request.app.state.database
    return guard


@router.get("")
def database_health(request: Request) -> dict[str, Any]:
    """The database's health: ``{"url" (password masked), "dialect", "ok", "error",
    "dispatch_lock"}``; always 200, so that it can report an outage."""
    return _guard(request).health()
