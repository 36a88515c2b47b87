"""Which nodes of a redispatch can reuse the outputs of the dispatch it repeats.

A node is reusable when the earlier dispatch has a node with the same id, name, kind,
function, settings and input edges, COMPLETED with a stored output, and every input of
it is itself reusable or a parameter with the same value. A replaced electron has a new
function, so it and everything downstream of it run again. Pure: no I/O, no unpickling.
"""

from __future__ import annotations

from typing import Any

from covalent._wire.manifest import topological_order

Reused = dict[int, tuple[str, str]]  # node id -> (output digest, output repr)


def _inputs(manifest: dict[str, Any]) -> list[list[tuple[Any, ...]]]:
    edges: list[list[tuple[Any, ...]]] = [[] for _ in manifest["nodes"]]
    for source, target, index, name in manifest["edges"]:
        edges[target].append((source, index, name))
    return [sorted(e, key=repr) for e in edges]


def _same_node(new: dict[str, Any], old: dict[str, Any]) -> bool:
    keys = ("name", "kind", "function", "value")
    if any(new.get(k) != old.get(k) for k in keys):
        return False
    return (new.get("metadata") or {}).get("extras") == (old.get("metadata") or {}).get("extras")


def reusable(new: dict[str, Any], old: dict[str, Any], old_rows: list[dict[str, Any]]) -> Reused:
    """The nodes of ``new`` whose outputs ``old`` (manifest and node rows) already has."""
    rows = {row["node_id"]: row for row in old_rows}
    new_inputs, old_inputs = _inputs(new), _inputs(old)
    same: set[int] = set()
    reused: Reused = {}
    for node_id in topological_order(len(new["nodes"]), new["edges"]):
        node = new["nodes"][node_id]
        if node_id >= len(old["nodes"]) or not _same_node(node, old["nodes"][node_id]):
            continue
        if new_inputs[node_id] != old_inputs[node_id]:
            continue
        if not all(source in same for source, _, _ in new_inputs[node_id]):
            continue
        if node["kind"] == "parameter":
            same.add(node_id)
            continue
        row = rows.get(node_id)
        if row and row["status"] == "COMPLETED" and row["output_digest"]:
            same.add(node_id)
            reused[node_id] = (row["output_digest"], row["output_repr"] or "")
    return reused
