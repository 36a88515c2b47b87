"""``ct.triggers``: dispatch a lattice again on file-system events or every few seconds.

Attach triggers with ``@ct.lattice(triggers=...)`` (one or a list). ``ct.dispatch``
runs the lattice once as usual and hands the triggers to the server, which dispatches
the same lattice with the same inputs again on each event, until
``ct.stop_triggers(dispatch_id)``. Triggers are plain settings: they travel as JSON and
the server watches; they survive a server restart. See docs/triggers.md.
"""

from __future__ import annotations

import os
from typing import Any

from covalent import _config
from covalent._client.http import client_for
from covalent._wire.triggers import EVENT_NAMES, check

__all__ = ["EVENT_NAMES", "BaseTrigger", "DirTrigger", "TimeTrigger", "stop_triggers"]


class BaseTrigger:
    """A trigger: what the server watches to dispatch a lattice again."""

    def to_spec(self) -> dict[str, Any]:
        """The trigger as the JSON the manifest carries (checked; a WorkflowError if bad)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
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
    ) -> None:
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

    def __init__(self, time_gap: float) -> None:
        self.time_gap = time_gap

    def to_spec(self) -> dict[str, Any]:
        return check({"kind": "time", "time_gap": self.time_gap})


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
