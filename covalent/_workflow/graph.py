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
from typing import Any


class NodeKind:
    ELECTRON = "electron"
    PARAMETER = "parameter"
    COLLECTION = "collection"
    OPERATION = "operation"
    SUBLATTICE = "sublattice"


@dataclass
class Node:
    id: int
    name: str
    kind: str
    function: Callable[..., Any] | None = None
    value: Any = None
    executor: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Edge:
    """``source``'s output is passed to ``target`` as positional ``index`` or keyword ``name``."""

    source: int
    target: int
    index: int | None = None
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

    def add_node(self, name: str, kind: str, **fields: Any) -> Node:
        node = Node(id=len(self.nodes), name=name, kind=kind, **fields)
        self.nodes.append(node)
        return node

    def parents(self, node_id: int) -> list[Edge]:
        return [e for e in self.edges if e.target == node_id]

    def node_names(self) -> list[str]:
        """``name(id)`` of every node, as the Result's node outputs list them."""
        return [f"{n.name}({n.id})" for n in self.nodes]
