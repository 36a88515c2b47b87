"""Sublattices: a node whose electron builds a lattice, run as a child dispatch.

A ``:sublattice:`` node runs on the local pool like an electron, but the runner builds
its lattice with the real inputs and returns a bundle (manifest and blobs) instead of a
pickled value. The loop submits that bundle as a child dispatch, keeps the node RUNNING,
and ends the node the way the child ends: COMPLETED with the child's result blob, or
FAILED/CANCELLED with its error. After a restart the link comes back from the store.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from covalent._results.status import FINAL_STATUSES, Status
from covalent._store.store import Store
from covalent._wire import schema
from covalent.executor.task import Outcome


def outcome_for_parent(
    child: str, status: Status, fields: dict[str, Any], result_repr: str, now: float
) -> Outcome:
    """What a sublattice node becomes when its child dispatch ends ``status``: COMPLETED
    with the child's result, or FAILED/CANCELLED with the child's error."""
    if status == Status.COMPLETED:
        return Outcome(
            Status.COMPLETED,
            output_ref=fields["result_digest"],
            output_repr=result_repr,
            end_time=now,
        )
    detail = fields.get("error") or ""
    error = f"Its sublattice dispatch {child} ended {status.value}:\n{detail}"
    ended = status if status == Status.CANCELLED else Status.FAILED
    return Outcome(ended, error=error, end_time=now)


def bundle_size(outcome: Outcome) -> int:
    """Bytes of the bundle a sublattice node's build returned (in memory or a file)."""
    if outcome.output is not None:
        return len(outcome.output)
    return outcome.output_file.size if outcome.output_file is not None else 0


def child_bundle(outcome: Outcome) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and blobs a sublattice node's build returned, checked as a bundle
    from a client is (the build ran user code).

    Raises BadRequestError (or InvalidFieldError) naming what is wrong.
    """
    data = outcome.output
    if data is None and outcome.output_file is not None:
        data = Path(outcome.output_file.path).read_bytes()
    return schema.read_bundle(data or b"")


def finished_children(
    store: Store, children: dict[int, str | None]
) -> Iterator[tuple[int, Outcome]]:
    """Outcomes for sublattice nodes whose child ended while the parent was not
    recorded (a restart between the two): ``(node id, outcome)``."""
    for node_id, child in list(children.items()):
        if child is None:
            continue
        row = store.get_dispatch(child)
        if row is None:
            yield node_id, Outcome.failure(f"Sublattice {child} is gone.")
        elif Status(row["status"]) in FINAL_STATUSES:
            ended = row.get("end_time") or time.time()  # when the child ended, not now
            yield node_id, outcome_for_parent(child, Status(row["status"]), row, "", ended)
