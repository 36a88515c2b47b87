"""``result.lattice.transport_graph``: a dispatch's graph as the server ran it.

Built from the stored manifest (nodes, edges, executors, settings) and the Result's
node rows, it answers the read methods of Covalent's transport graph
(``get_node_value(node_id, "output")``, ``get_dependencies``, ...); values are fetched
through the Result, only when asked for.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from covalent._results.status import Status
from covalent._wire.transport import TransportableObject
from covalent._workflow.graph import Edge, Graph, Node, NodeValues

if TYPE_CHECKING:
    from covalent._results.result import Result


class DispatchGraph(Graph):
    """The graph of one stored dispatch, with each node's run-time values."""

    def __init__(self, manifest: dict[str, Any], result: Result) -> None:
        super().__init__(lattice_name=manifest["lattice"]["name"])
        self._entries: list[dict[str, Any]] = manifest["nodes"]
        self._result = result
        for entry in self._entries:
            self.nodes.append(
                Node(
                    id=entry["id"],
                    name=entry["name"],
                    kind=entry["kind"],
                    executor=entry.get("executor"),
                    metadata=dict(entry.get("metadata") or {}),
                )
            )
        self.edges = [Edge(*edge) for edge in manifest["edges"]]
        self.result_node = manifest["result"].get("node")

    def _node_values(self, node: Node) -> NodeValues:
        values = super()._node_values(node)
        entry, result = self._entries[node.id], self._result
        row = result._row(node.id)

        def transportable(digest: str | None) -> TransportableObject | None:
            return None if not digest else TransportableObject(result._value(digest))

        values.update(
            function=lambda: transportable(entry.get("function")),
            value=lambda: transportable(entry.get("value")),
            status=lambda: Status(row["status"]),
            output=lambda: transportable(row.get("output_digest")),
            start_time=lambda: _time(row.get("start_time")),
            end_time=lambda: _time(row.get("end_time")),
            stdout=lambda: row.get("stdout") or "",
            stderr=lambda: row.get("stderr") or "",
            error=lambda: row.get("error") or None,
            sub_dispatch_id=lambda: row.get("sub_dispatch_id"),
            sublattice_result=lambda: result._sublattice(row.get("sub_dispatch_id")),
        )
        return values


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=timezone.utc)
