"""Trigger specs: what ``@ct.lattice(triggers=...)`` becomes on the wire.

A trigger travels as plain JSON in the manifest's optional ``"triggers"`` list, so the
server never unpickles anything to arm it::

    {"kind": "time", "time_gap": 5.0}
    {"kind": "dir", "dir_path": "/abs/folder", "event_names": ["created"],
     "recursive": false, "batch_size": 1}
    {"kind": "database", "db_url": "sqlite:////abs/file.db", "table_name": "jobs",
     "where_clauses": ["state = 'new'"], "poll_interval": 1.0, "trigger_after_n": 1}

:func:`check` is the one place a spec is judged; the client runs it before submitting
and the server again before storing (it alone can tell whether the folder exists there).

SQLAlchemy (which parses a database trigger's URL) is imported only when such a URL is
read: it takes about a quarter of a second, which every ``import covalent`` would pay,
the runner of every remote electron included.
"""

from __future__ import annotations

import math
import os
from typing import Any

from covalent._errors import WorkflowError

KINDS = ("dir", "time", "database")
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
        "triggers= takes ct.triggers objects (DirTrigger, TimeTrigger, SQLiteTrigger, "
        f"DatabaseTrigger; one or a list), got {trigger!r}."
    )


def check(spec: Any) -> dict[str, Any]:
    """``spec`` with defaults filled in, or a WorkflowError saying what is wrong with it."""
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise WorkflowError(
            "A trigger spec must be an object whose kind is 'dir', 'time' or 'database', "
            f"got {spec!r}."
        )
    checks = {"time": _check_time, "dir": _check_dir, "database": _check_database}
    return checks[spec["kind"]](spec)


def _seconds(value: Any) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and math.isfinite(value) and value > 0


MIN_TIME_GAP = 0.1
"""Seconds; a smaller gap would flood the server with dispatches (1e-9 made ~330 a second)."""


def _check_time(spec: dict[str, Any]) -> dict[str, Any]:
    gap: Any = spec.get("time_gap")
    if not _seconds(gap) or gap < MIN_TIME_GAP:
        raise WorkflowError(
            f"TimeTrigger needs a time_gap of at least {MIN_TIME_GAP} seconds, got {gap!r}."
        )
    return {"kind": "time", "time_gap": float(gap)}


def _parse_url(url: str) -> Any:
    """``url`` as a SQLAlchemy URL; ValueError if it is none."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except ArgumentError as e:
        raise ValueError(str(e)) from e


def _check_database(spec: dict[str, Any]) -> dict[str, Any]:
    url, table = spec.get("db_url"), spec.get("table_name")
    try:
        _parse_url(url if isinstance(url, str) else "")
    except ValueError:
        raise WorkflowError(
            f"DatabaseTrigger needs db_path as a SQLAlchemy database URL "
            f"(such as 'sqlite:////path/file.db'), got {url!r}."
        ) from None
    if not isinstance(table, str) or not table.strip():
        raise WorkflowError(f"DatabaseTrigger on {url} needs a table_name, got {table!r}.")
    clauses = spec.get("where_clauses") or []
    if isinstance(clauses, str):
        clauses = [clauses]
    if not isinstance(clauses, list) or not all(isinstance(c, str) for c in clauses):
        raise WorkflowError(
            f"DatabaseTrigger on table {table} needs where_clauses as a list of SQL "
            f"conditions, got {clauses!r}."
        )
    interval, after = spec.get("poll_interval", 1.0), spec.get("trigger_after_n", 1)
    if not _seconds(interval):
        raise WorkflowError(
            f"DatabaseTrigger on table {table} needs a poll_interval of more than 0 seconds, "
            f"got {interval!r}."
        )
    if not isinstance(after, int) or isinstance(after, bool) or after < 1:
        raise WorkflowError(
            f"DatabaseTrigger on table {table} needs trigger_after_n of 1 or more, got {after!r}."
        )
    return {
        "kind": "database",
        "db_url": url,
        "table_name": table,
        "where_clauses": list(clauses),
        "poll_interval": float(interval),
        "trigger_after_n": after,
    }


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


def shown(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` as listings and logs show it: a database URL without its password."""
    if spec.get("kind") != "database":
        return spec
    try:
        url = _parse_url(spec["db_url"]).render_as_string(hide_password=True)
    except (ValueError, KeyError, TypeError):
        url = "?"
    return {**spec, "db_url": url}


def _choices() -> str:
    return ", ".join(repr(n) for n in EVENT_NAMES)
