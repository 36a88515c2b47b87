"""Committing a turn's writes: once, before anything is acted on.

The store takes a turn's :class:`~covalent._store.changes.Changes` in one transaction.
If it refuses because it is unreachable, locked or out of space, the commit is tried
again with growing pauses (0.1 s to 5 s) and nothing is acted on meanwhile. If it
refuses for another reason, the turn's blobs are stored one by one and each dispatch's
rows alone, so that only a dispatch whose rows or output blobs the store refuses is
aborted (through the ``abort`` callback), never the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import traceback
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from covalent._errors import StoreUnavailableError
from covalent._store.changes import Changes
from covalent._store.store import Store

log = logging.getLogger("covalent.dispatcher")

COMMIT_RETRY = (0.1, 5.0)
"""First and longest pause (seconds) between tries of a commit the store refused."""


class Committer:
    """Commits turns to ``store``; ``abort(dispatch_id, error)`` fails a dispatch whose
    writes the store refuses (and returns the changes that record it)."""

    def __init__(self, store: Store, abort: Callable[[str, str], None]) -> None:
        self.store = store
        self.abort = abort

    async def commit(self, changes: Changes) -> None:
        """Store the turn's writes before anything is reported (see the module's doc)."""
        pause = COMMIT_RETRY[0]
        while True:
            try:
                self.store.commit(changes)
                if pause > COMMIT_RETRY[0]:
                    log.warning("the store is back; the dispatcher goes on")
                return
            except Exception as e:
                if not transient(e):
                    log.exception("a commit failed; committing each dispatch's part alone")
                    break
                log.warning("waiting for the store; trying again in %.1f s: %s", pause, e)
            await asyncio.sleep(pause)
            pause = min(pause * 2, COMMIT_RETRY[1])
            if pause == COMMIT_RETRY[1]:
                log.warning("the store still refuses the commit")
        self._commit_apart(changes)

    def _commit_apart(self, changes: Changes) -> None:
        shared, parts = changes.split()
        lost = self._commit_blobs(shared)
        for dispatch_id, part in parts.items():
            needs = {str(u.fields.get("output_digest")) for u in part.node_updates}
            if needs & lost:
                error = f"its output blob(s) {', '.join(sorted(needs & lost))} cannot be stored"
                self.abort(dispatch_id, error)
                continue
            try:
                self.store.commit(part)
            except Exception:
                self.abort(dispatch_id, traceback.format_exc())

    def _commit_blobs(self, shared: Changes) -> set[str]:
        """Store a turn's blobs, one by one if they fail together; return the digests of
        those the store refused."""
        try:
            self.store.commit(shared)
            return set()
        except Exception:
            log.exception("storing a turn's blobs failed; storing them one by one")
        lost: set[str] = set()
        for digest, data in shared.blobs.items():
            with contextlib.suppress(Exception):
                self.store.commit(Changes(blobs={digest: data}))
                continue
            lost.add(digest)
        for row in shared.blob_files:
            with contextlib.suppress(Exception):
                self.store.commit(Changes(blob_files=[row]))
                continue
            lost.add(row["digest"])
        return lost


SQLITE_TRANSIENT = ("locked", "busy", "disk", "full", "unable to open")
"""Words of SQLite's OperationalErrors that a later try may not meet (a busy or full
database), unlike those of a statement that can never work."""


def transient(error: Exception) -> bool:
    """Whether the store may take the same write later: it is unreachable, locked or
    out of space, rather than refusing the data."""
    if isinstance(error, (OSError, StoreUnavailableError)):  # a full disk; a database away
        return True
    if isinstance(error, sqlite3.OperationalError):
        return any(word in str(error).lower() for word in SQLITE_TRANSIENT)
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        if isinstance(error.orig, sqlite3.Error):
            return transient(error.orig)
        return isinstance(error, (OperationalError, InterfaceError))
    return False
