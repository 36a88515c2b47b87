"""The output cache of electrons marked ``cache=True`` (ours).

A key is the digest of what determines an output: the function's pickled bytes (its
code), the digests of its inputs, and its dependency settings.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from sqlalchemy import delete, func, select

from covalent._store.changes import CacheRow
from covalent._store.schema import cache
from covalent._store.store import Store


def cache_key(function: str, args: list[str], kwargs: dict[str, str], extras: str | None) -> str:
    text = json.dumps([function, args, sorted(kwargs.items()), extras], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def lookup(store: Store, key: str) -> dict[str, Any] | None:
    with store.engine.connect() as conn:
        row = conn.execute(select(cache).where(cache.c.key == key)).first()
    return dict(row._mapping) if row is not None else None


def find(store: Store, key: str) -> tuple[str, str, str] | None:
    """A reusable output for ``key`` whose blob is still stored: ``(digest, repr,
    "dispatch_id:node_id")``, or None."""
    hit = lookup(store, key)
    if hit is None or store.missing_blobs([hit["output_digest"]]):
        return None
    source = f"{hit['dispatch_id']}:{hit['node_id']}"
    return hit["output_digest"], hit["output_repr"] or "", source


def remember(key: str, dispatch_id: str, node_id: int, digest: str, text: str) -> CacheRow:
    """A cache row to insert with the node's completion (see ``Changes.cache_rows``)."""
    return {
        "key": key,
        "output_digest": digest,
        "output_repr": text,
        "dispatch_id": dispatch_id,
        "node_id": node_id,
        "created_at": time.time(),
    }


def clear(store: Store) -> int:
    """Forget every cached output (the outputs stay stored with their dispatches)."""
    with store.engine.begin() as conn:
        count = conn.execute(select(func.count()).select_from(cache)).scalar_one()
        conn.execute(delete(cache))
    return int(count)
