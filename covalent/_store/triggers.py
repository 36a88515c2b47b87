"""Stored triggers and their firings, on top of a :class:`~covalent._store.store.Store`.

A trigger row lives as long as its dispatch: ``stopped_at`` is NULL while it is active,
so the server re-arms every active row when it starts. Each firing is a row naming the
dispatch it made; a trigger's count and last firing are read from them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, insert, select, update

from covalent._store.schema import trigger_firings, triggers
from covalent._store.store import Store


def add(store: Store, dispatch_id: str, specs: list[dict[str, Any]], now: float) -> list[int]:
    """Store active triggers of ``dispatch_id`` (one per spec); return their ids."""
    ids: list[int] = []
    with store.engine.begin() as conn:
        for spec in specs:
            row = {
                "dispatch_id": dispatch_id,
                "kind": spec["kind"],
                "spec": json.dumps(spec),
                "created_at": now,
            }
            key = conn.execute(insert(triggers).values(row)).inserted_primary_key
            assert key is not None
            ids.append(int(key[0]))
    return ids


def stop(store: Store, dispatch_ids: Iterable[str], now: float) -> list[int]:
    """Mark the active triggers of these dispatches stopped; return their ids."""
    wanted = list(dispatch_ids)
    active = triggers.c.dispatch_id.in_(wanted) & triggers.c.stopped_at.is_(None)
    with store.engine.begin() as conn:
        ids = [int(r[0]) for r in conn.execute(select(triggers.c.trigger_id).where(active))]
        if ids:
            conn.execute(
                update(triggers).where(triggers.c.trigger_id.in_(ids)).values(stopped_at=now)
            )
    return ids


def record_firing(store: Store, trigger_id: int, dispatch_id: str, now: float) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            insert(trigger_firings),
            [{"trigger_id": trigger_id, "dispatch_id": dispatch_id, "fired_at": now}],
        )


def listing(
    store: Store, dispatch_id: str | None = None, active: bool | None = None
) -> list[dict[str, Any]]:
    """Triggers (oldest first) with ``spec`` decoded, ``active``, ``fired`` (count),
    ``last_fired_at`` and ``last_dispatch_id``."""
    counts = (
        select(
            trigger_firings.c.trigger_id,
            func.count().label("fired"),
            func.max(trigger_firings.c.id).label("last_id"),
        )
        .group_by(trigger_firings.c.trigger_id)
        .subquery()
    )
    last = trigger_firings.alias("last")
    query = (
        select(
            triggers,
            counts.c.fired,
            last.c.fired_at.label("last_fired_at"),
            last.c.dispatch_id.label("last_dispatch_id"),
        )
        .outerjoin(counts, counts.c.trigger_id == triggers.c.trigger_id)
        .outerjoin(last, last.c.id == counts.c.last_id)
        .order_by(triggers.c.trigger_id)
    )
    if dispatch_id is not None:
        query = query.where(triggers.c.dispatch_id == dispatch_id)
    if active is not None:
        stopped = triggers.c.stopped_at
        query = query.where(stopped.is_(None) if active else stopped.is_not(None))
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        row["spec"] = json.loads(row["spec"])
        row["active"] = row["stopped_at"] is None
        row["fired"] = row["fired"] or 0
    return rows


def firings(
    store: Store, dispatch_id: str, limit: int = 50, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """The dispatches made by the triggers of ``dispatch_id``, newest first, and their total."""
    of_dispatch = trigger_firings.c.trigger_id.in_(
        select(triggers.c.trigger_id).where(triggers.c.dispatch_id == dispatch_id)
    )
    query = (
        select(
            trigger_firings.c.trigger_id, trigger_firings.c.dispatch_id, trigger_firings.c.fired_at
        )
        .where(of_dispatch)
        .order_by(trigger_firings.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    total = select(func.count()).select_from(trigger_firings).where(of_dispatch)
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
        return rows, int(conn.execute(total).scalar_one())
