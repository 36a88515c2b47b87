"""The graph a lattice's body builds: nodes in creation order and the edges between them.

A node is one of these kinds:

- ``electron``: a user function to run on an executor;
- ``parameter``: a value that is not an electron's output (``:parameter:2``);
- ``collection``: a list, tuple or dict holding electron outputs (``:electron_list:``);
- ``operation``: indexing, attribute access or arithmetic on an output (``:getitem:``).

Only electrons need a user executor; the other kinds are small and run on ``local``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from covalent._wire.transport import TransportableObject

NodeValues = dict[str, Callable[[], Any]]


class NodeKind:
    ELECTRON = "electron"
    PARAMETER = "parameter"
    COLLECTION = "collection"
    OPERATION = "operation"
    SUBLATTICE = "sublattice"


@dataclass(slots=True)  # no __dict__: a wide lattice makes one per argument too
class Node:
    id: int
    name: str
    kind: str
    function: Callable[..., Any] | None = None
    value: Any = None
    executor: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)


class Edge(NamedTuple):
    """``source``'s output is passed to ``target`` as positional ``index`` or keyword ``name``.

    A named tuple (immutable, compared by value): a wide lattice makes one per argument,
    and a tuple is made twice as fast as a frozen dataclass. Its ``index`` field hides
    the tuple method of that name."""

    source: int
    target: int
    index: int | None = None  # type: ignore[assignment]  # the field, not tuple.index
    name: str | None = None

    @property
    def is_wait(self) -> bool:
        """A wait edge orders two nodes without passing data (``ct.wait``)."""
        return self.index is None and self.name is None

    @property
    def label(self) -> str:
        if self.is_wait:
            return "wait"
        return self.name if self.name is not None else f"arg[{self.index}]"


@dataclass
class Graph:
    """A traced lattice: its nodes, edges, and where the lattice's result comes from."""

    lattice_name: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    result_node: int | None = None
    result_value: Any = None

    def add_node(
        self,
        name: str,
        kind: str,
        function: Callable[..., Any] | None = None,
        value: Any = None,
        executor: Any = None,
        metadata: dict[str, Any] | None = None,
    ) -> Node:
        """Append a node (its id is its position) and return it."""
        nodes = self.nodes
        node = Node(len(nodes), name, kind, function, value, executor, metadata or {})
        nodes.append(node)
        return node

    def parents(self, node_id: int) -> list[Edge]:
        return [e for e in self.edges if e.target == node_id]

    def node_names(self) -> list[str]:
        """``name(id)`` of every node, as the Result's node outputs list them."""
        return [f"{n.name}({n.id})" for n in self.nodes]

    # the read methods of Covalent's transport graph

    def get_node_value(self, node_id: int, key: str) -> Any:
        """One value of a node: ``"name"``, ``"kind"``, ``"function"`` and ``"value"`` (as
        TransportableObjects), ``"metadata"`` (its executor and settings) and, in a
        Result's graph, ``"status"``, ``"output"``, ``"start_time"``, ``"end_time"``,
        ``"stdout"``, ``"stderr"``, ``"error"``, ``"sub_dispatch_id"``,
        ``"sublattice_result"``. A KeyError names what there is."""
        values = self._node_values(self._node(node_id))
        if key not in values:
            raise KeyError(
                f"Node {node_id} of lattice '{self.lattice_name}' has no value {key!r}; "
                f"it has {', '.join(values)}."
            )
        return values[key]()

    def _node(self, node_id: int) -> Node:
        if not isinstance(node_id, int) or not 0 <= node_id < len(self.nodes):
            raise KeyError(
                f"Lattice '{self.lattice_name}' has no node {node_id!r}; its nodes are "
                f"0 to {len(self.nodes) - 1}."
            )
        return self.nodes[node_id]

    def _node_values(self, node: Node) -> NodeValues:
        function, value = node.function, node.value
        parameter = node.kind == NodeKind.PARAMETER
        return {
            "node_id": lambda: node.id,
            "name": lambda: node.name,
            "kind": lambda: node.kind,
            "function": lambda: None if function is None else TransportableObject(function),
            "value": lambda: TransportableObject(value) if parameter else None,
            "metadata": lambda: {"executor": node.executor, **node.metadata},
        }

    def get_dependencies(self, node_id: int) -> list[int]:
        """The nodes that ``node_id`` takes inputs from (or waits for)."""
        self._node(node_id)
        return sorted({e.source for e in self.edges if e.target == node_id})

    def get_edge_data(self, source: int, target: int) -> dict[int, dict[str, Any]]:
        """The edges from ``source`` to ``target``: ``{0: {"edge_name", "param_type",
        "arg_index"}, ...}`` (``param_type`` is ``"arg"``, ``"kwarg"`` or ``"wait"``)."""
        between = [e for e in self.edges if e.source == source and e.target == target]
        return {i: _edge_data(e) for i, e in enumerate(between)}

    def get_topologically_sorted_graph(self) -> list[list[int]]:
        """Node ids level by level: each level needs only the levels before it."""
        children: list[list[int]] = [[] for _ in self.nodes]
        waiting = [0] * len(self.nodes)
        for edge in self.edges:
            children[edge.source].append(edge.target)
            waiting[edge.target] += 1
        level = [0] * len(self.nodes)
        ready = [n for n in range(len(self.nodes)) if waiting[n] == 0]
        for node_id in ready:  # Kahn's order; ``ready`` grows as inputs are met
            for child in children[node_id]:
                level[child] = max(level[child], level[node_id] + 1)
                waiting[child] -= 1
                if waiting[child] == 0:
                    ready.append(child)
        levels: list[list[int]] = [[] for _ in range(max(level, default=-1) + 1)]
        for node_id, depth in enumerate(level):
            levels[depth].append(node_id)
        return levels

    def get_internal_graph_copy(self) -> Any:
        """The graph as a ``networkx.MultiDiGraph`` (networkx must be installed)."""
        try:
            import networkx  # an optional dependency, imported only when asked for
        except ImportError as e:
            raise ImportError("get_internal_graph_copy needs networkx: pip install networkx") from e
        copy = networkx.MultiDiGraph()
        for node in self.nodes:
            copy.add_node(node.id, name=node.name, kind=node.kind)
        for edge in self.edges:
            copy.add_edge(edge.source, edge.target, **_edge_data(edge))
        return copy


def _edge_data(edge: Edge) -> dict[str, Any]:
    kind = "wait" if edge.is_wait else ("kwarg" if edge.name is not None else "arg")
    return {"edge_name": edge.label, "param_type": kind, "arg_index": edge.index}
