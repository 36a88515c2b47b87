"""``ct.triggers``: dispatch a lattice again on file-system events, every few seconds,
or when rows of a database table change.

Attach triggers with ``@ct.lattice(triggers=...)`` (one or a list), or to a dispatch
made already: ``trigger.lattice_dispatch_id = dispatch_id; trigger.register()``.
``ct.dispatch`` runs the lattice once as usual and hands the triggers to the server,
which dispatches the same lattice with the same inputs again on each event, until
``ct.stop_triggers(dispatch_id)``. Triggers are plain settings: they travel as JSON and
the server watches; they survive a server restart. See docs/triggers.md.
"""

from __future__ import annotations

import os
from typing import Any

from covalent import _config
from covalent._client.http import client_for
from covalent._errors import WorkflowError
from covalent._wire.triggers import EVENT_NAMES, check

__all__ = [
    "EVENT_NAMES",
    "BaseTrigger",
    "DatabaseTrigger",
    "DirTrigger",
    "SQLiteTrigger",
    "TimeTrigger",
    "stop_triggers",
]


class BaseTrigger:
    """A trigger: what the server watches to dispatch a lattice again.

    ``lattice_dispatch_id``, ``dispatcher_addr`` and ``triggers_server_addr`` are for
    :meth:`register`, which attaches the trigger to a dispatch made already.
    """

    def __init__(
        self,
        lattice_dispatch_id: str | None = None,
        dispatcher_addr: str | None = None,
        triggers_server_addr: str | None = None,
    ) -> None:
        self.lattice_dispatch_id = lattice_dispatch_id
        self.dispatcher_addr = dispatcher_addr
        self.triggers_server_addr = triggers_server_addr

    def to_spec(self) -> dict[str, Any]:
        """The trigger as the JSON the manifest carries (checked; a WorkflowError if bad)."""
        raise NotImplementedError

    def register(self) -> list[int]:
        """Attach this trigger to the dispatch ``lattice_dispatch_id``: from now on the
        server dispatches that dispatch's lattice again on each event, as if the lattice
        had been dispatched with it. Returns the new trigger's id in a list.

        Raises WorkflowError if ``lattice_dispatch_id`` is not set or the trigger is bad,
        DispatchNotFoundError if the server has no such dispatch.
        """
        if not self.lattice_dispatch_id:
            raise WorkflowError(
                f"Set lattice_dispatch_id on the {type(self).__name__} to the dispatch it "
                "should dispatch again, then call register()."
            )
        body = {"dispatch_id": self.lattice_dispatch_id, "triggers": [self.to_spec()]}
        answer = self._client().request("POST", "/triggers", json=body).json()
        return list(answer["trigger_ids"])

    def stop(self) -> None:
        """Stop the triggers of ``lattice_dispatch_id`` (``ct.stop_triggers``)."""
        if self.lattice_dispatch_id:
            stop_triggers(self.lattice_dispatch_id, self._address())

    def _address(self) -> str | None:
        return self.triggers_server_addr or self.dispatcher_addr

    def _client(self) -> Any:
        return client_for(_config.server_url(self._address()))

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if v is not None)
        return f"{type(self).__name__}({settings})"


class DirTrigger(BaseTrigger):
    """Dispatch again when ``event_names`` happen in ``dir_path``.

    ``event_names``: some of "created", "modified", "deleted", "moved" (and "closed",
    a file closed after writing, on Linux). The folder must exist on the server's
    machine; a relative path is taken from the current directory. ``recursive`` watches
    sub-folders too; ``batch_size`` dispatches once per that many events.
    """

    def __init__(
        self,
        dir_path: str | os.PathLike[str],
        event_names: str | list[str],
        batch_size: int = 1,
        recursive: bool = False,
        **registration: Any,
    ) -> None:
        super().__init__(**registration)
        self.dir_path = dir_path
        self.event_names = [event_names] if isinstance(event_names, str) else event_names
        self.batch_size = batch_size
        self.recursive = recursive

    def to_spec(self) -> dict[str, Any]:
        path = self.dir_path
        if isinstance(path, (str, os.PathLike)):
            path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        return check(
            {
                "kind": "dir",
                "dir_path": path,
                "event_names": self.event_names,
                "recursive": self.recursive,
                "batch_size": self.batch_size,
            }
        )


class TimeTrigger(BaseTrigger):
    """Dispatch again every ``time_gap`` seconds (the first time ``time_gap`` after the
    dispatch)."""

    def __init__(self, time_gap: float, **registration: Any) -> None:
        super().__init__(**registration)
        self.time_gap = time_gap

    def to_spec(self) -> dict[str, Any]:
        return check({"kind": "time", "time_gap": self.time_gap})


class DatabaseTrigger(BaseTrigger):
    """Dispatch again when the rows of ``table_name`` (those matching every SQL condition
    in ``where_clauses``) change: rows added, removed or modified.

    ``db_path`` is a SQLAlchemy database URL (``"postgresql+psycopg://user@host/db"``,
    ``"sqlite:////abs/file.db"``); the server reads the table every ``poll_interval``
    seconds and compares what it read with the last time, so the database must be
    reachable from the server's machine. ``trigger_after_n``: a change dispatches only
    while at least that many rows match.
    """

    def __init__(
        self,
        db_path: str,
        table_name: str,
        poll_interval: float = 1.0,
        where_clauses: list[str] | None = None,
        trigger_after_n: int = 1,
        **registration: Any,
    ) -> None:
        super().__init__(**registration)
        self.db_path = db_path
        self.table_name = table_name
        self.poll_interval = poll_interval
        self.where_clauses = where_clauses
        self.trigger_after_n = trigger_after_n

    def _url(self) -> str:
        return self.db_path

    def to_spec(self) -> dict[str, Any]:
        return check(
            {
                "kind": "database",
                "db_url": self._url(),
                "table_name": self.table_name,
                "where_clauses": self.where_clauses or [],
                "poll_interval": self.poll_interval,
                "trigger_after_n": self.trigger_after_n,
            }
        )


class SQLiteTrigger(DatabaseTrigger):
    """A :class:`DatabaseTrigger` on the SQLite file ``db_path`` (a path; relative ones
    are taken from the current directory)."""

    def _url(self) -> str:
        path = self.db_path
        if not isinstance(path, (str, os.PathLike)):
            return path
        return f"sqlite:///{os.path.abspath(os.path.expanduser(os.fspath(path)))}"


def stop_triggers(dispatch_ids: str | list[str], triggers_server_addr: str | None = None) -> None:
    """Stop the triggers of one dispatch or a list of them; none fires once this returns.

    ``triggers_server_addr`` is the server's address (the dispatcher's: by default the
    configured one). An unknown dispatch id raises DispatchNotFoundError.
    """
    ids = [dispatch_ids] if isinstance(dispatch_ids, str) else list(dispatch_ids)
    if not ids:
        return
    client = client_for(_config.server_url(triggers_server_addr))
    for dispatch_id in ids:
        client.status(dispatch_id)  # an unknown id: DispatchNotFoundError naming it
    client.request("POST", "/triggers/stop", json={"dispatch_ids": ids})
