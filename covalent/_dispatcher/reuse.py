"""Which nodes of a redispatch can reuse the outputs of the dispatch it repeats.

A node is reusable when the earlier dispatch has a node with the same id, name, kind,
fingerprint and input edges, COMPLETED with a stored output, and every input of it is
itself reusable or a parameter with the same value. The fingerprint
(covalent/_wire/fingerprint.py) covers the function, everything it calls and its
settings; the same cache key of a ``cache=True`` node is made from it. A replaced
electron has a new function, so it and everything downstream of it run again. Nodes of
a manifest made before fingerprints compare their function, value and settings digests.
Pure: no I/O, no unpickling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from covalent._wire.manifest import topological_order

Reused = dict[int, tuple[str, str]]  # node id -> (output digest, output repr)


def _inputs(manifest: dict[str, Any]) -> list[list[tuple[Any, ...]]]:
    edges: list[list[tuple[Any, ...]]] = [[] for _ in manifest["nodes"]]
    for source, target, index, name in manifest["edges"]:
        edges[target].append((source, index, name))
    return [sorted(e, key=repr) for e in edges]


def _same_node(new: dict[str, Any], old: dict[str, Any]) -> bool:
    if new.get("name") != old.get("name") or new.get("kind") != old.get("kind"):
        return False
    if "fingerprint" in new or "fingerprint" in old:
        return new.get("fingerprint") == old.get("fingerprint")
    if new.get("function") != old.get("function") or new.get("value") != old.get("value"):
        return False
    return _extras(new) == _extras(old)


def _extras(node: Mapping[str, Any]) -> Any:
    return (node.get("metadata") or {}).get("extras")


def cache_identity(node: Mapping[str, Any]) -> tuple[str, str | None]:
    """What a ``cache=True`` node is keyed by besides its inputs: its fingerprint, which
    covers its settings (or, in a manifest made before fingerprints, the digests of its
    function and settings)."""
    if node.get("fingerprint"):
        return str(node["fingerprint"]), None
    return str(node["function"]), _extras(node)


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
