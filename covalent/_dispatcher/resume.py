"""Picking dispatches up again after a restart.

Every dispatch the store says is RUNNING is loaded back into a :class:`Run`: completed
nodes keep their outputs and do not run again; nodes that were running go back to
NEW_OBJECT and run again (at-least-once); a sublattice node keeps its child dispatch,
which resumes on its own. A dispatch that cannot be loaded (a manifest this version
cannot read, rows that do not fit it) is marked FAILED with the reason; the others
resume all the same.
"""

from __future__ import annotations

import logging
import time
import traceback

from covalent._dispatcher.run import Effects, Run
from covalent._results.status import FINAL_STATUSES, Status
from covalent._store.changes import DISPATCH_NODE, Changes, DispatchUpdate
from covalent._store.store import Store

log = logging.getLogger("covalent.dispatcher")


def unfinished(store: Store) -> list[str]:
    """The dispatches to resume, oldest first."""
    return store.unfinished_dispatches([s.value for s in FINAL_STATUSES] + ["NEW_OBJECT"])


def load(store: Store, dispatch_id: str) -> tuple[Run, Changes]:
    """The Run of a stored dispatch, and the changes resuming it makes (to commit)."""
    row = store.get_dispatch(dispatch_id, with_manifest=True)
    if row is None:
        raise LookupError(f"dispatch {dispatch_id} is gone")
    parent = None
    if row.get("parent_dispatch_id"):
        parent = (row["parent_dispatch_id"], int(row["parent_node_id"]))
    run = Run(
        dispatch_id,
        row["manifest"],
        row["results_dir"],
        parent=parent,
        root_dispatch_id=row["root_dispatch_id"],
        start_time=row.get("start_time") or 0.0,
    )
    fx = Effects(Changes())
    run.resume(store.get_nodes(dispatch_id), fx, time.time())
    return run, fx.changes


def fail_unloadable(store: Store, dispatch_id: str, error: BaseException) -> None:
    """Mark a dispatch that cannot be resumed FAILED, with the reason."""
    now = time.time()
    reason = "".join(traceback.format_exception_only(type(error), error)).strip()
    text = f"covalent could not resume this dispatch after a restart: {reason}"
    changes = Changes()
    fields = {"status": Status.FAILED.value, "end_time": now, "error": text}
    changes.dispatch_updates.append(DispatchUpdate(dispatch_id, fields))
    changes.closed.append((dispatch_id, "the dispatch could not be resumed"))
    changes.transition(dispatch_id, DISPATCH_NODE, "RUNNING", "FAILED", now, text)
    store.commit(changes)
    log.error("%s", text, extra={"dispatch_id": dispatch_id, "event": "dispatch.failed"})
