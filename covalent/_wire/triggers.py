"""Trigger specs: what ``@ct.lattice(triggers=...)`` becomes on the wire.

A trigger travels as plain JSON in the manifest's optional ``"triggers"`` list, so the
server never unpickles anything to arm it::

    {"kind": "time", "time_gap": 5.0}
    {"kind": "dir", "dir_path": "/abs/folder", "event_names": ["created"],
     "recursive": false, "batch_size": 1}

:func:`check` is the one place a spec is judged; the client runs it before submitting
and the server again before storing (it alone can tell whether the folder exists there).
"""

from __future__ import annotations

import math
import os
from typing import Any

from covalent._errors import WorkflowError

KINDS = ("dir", "time")
EVENT_NAMES = ("created", "modified", "deleted", "moved", "closed")
"""watchdog's event types a DirTrigger may listen to ("closed": Linux only)."""


def specs_of(triggers: Any) -> list[dict[str, Any]]:
    """The checked specs of ``triggers=``: None, one trigger, or a list of them."""
    if triggers is None:
        return []
    items = list(triggers) if isinstance(triggers, (list, tuple)) else [triggers]
    return [check(_spec_of(item)) for item in items]


def _spec_of(trigger: Any) -> Any:
    to_spec = getattr(trigger, "to_spec", None)
    if callable(to_spec):
        return to_spec()
    if isinstance(trigger, dict):
        return trigger
    raise WorkflowError(
        "triggers= takes ct.triggers.DirTrigger or ct.triggers.TimeTrigger objects (one or a "
        f"list), got {trigger!r}."
    )


def check(spec: Any) -> dict[str, Any]:
    """``spec`` with defaults filled in, or a WorkflowError saying what is wrong with it."""
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise WorkflowError(
            f"A trigger spec must be an object whose kind is 'dir' or 'time', got {spec!r}."
        )
    return _check_time(spec) if spec["kind"] == "time" else _check_dir(spec)


def _check_time(spec: dict[str, Any]) -> dict[str, Any]:
    gap: Any = spec.get("time_gap")
    number = isinstance(gap, (int, float)) and not isinstance(gap, bool)
    if not number or not math.isfinite(gap) or gap <= 0:
        raise WorkflowError(f"TimeTrigger needs a time_gap of more than 0 seconds, got {gap!r}.")
    return {"kind": "time", "time_gap": float(gap)}


def _check_dir(spec: dict[str, Any]) -> dict[str, Any]:
    path = spec.get("dir_path")
    if not isinstance(path, str) or not os.path.isabs(path):
        raise WorkflowError(f"DirTrigger needs dir_path as an absolute path, got {path!r}.")
    names = spec.get("event_names")
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not names:
        raise WorkflowError(
            f"DirTrigger on '{path}' needs event_names, a list of some of {_choices()}."
        )
    unknown = [n for n in names if n not in EVENT_NAMES]
    if unknown:
        raise WorkflowError(
            f"DirTrigger on '{path}' has unknown event name {unknown[0]!r}; use some of "
            f"{_choices()}."
        )
    batch = spec.get("batch_size", 1)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise WorkflowError(f"DirTrigger on '{path}' needs batch_size of 1 or more, got {batch!r}.")
    return {
        "kind": "dir",
        "dir_path": path,
        "event_names": list(dict.fromkeys(names)),
        "recursive": bool(spec.get("recursive", False)),
        "batch_size": batch,
    }


def _choices() -> str:
    return ", ".join(repr(n) for n in EVENT_NAMES)
