"""A lattice's graph as an SVG picture, drawn offline (``Lattice._repr_html_``).

Layered layout: a node's layer is the length of the longest path reaching it, so every
edge points down; within a layer, nodes are ordered by the mean position of their
parents (one sweep of the barycenter heuristic), which removes most crossings of
typical fan-out/fan-in workflows. Each node is one ``<g class="node">``.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from covalent._errors import CovalentError
from covalent._workflow.graph import Edge, Graph, Node, NodeKind

NODE_W, NODE_H = 150, 30
GAP_X, GAP_Y = 24, 46
MARGIN = 12
LABEL_CHARS = 22
MAX_NODES = 2000
"""Larger graphs are not drawn inline (the picture would be unreadable and heavy)."""

FILL = {
    NodeKind.ELECTRON: "#ddf4ff",
    NodeKind.SUBLATTICE: "#fbefff",
    NodeKind.PARAMETER: "#f6f8fa",
    NodeKind.COLLECTION: "#fff8c5",
    NodeKind.OPERATION: "#fff1e5",
}


def layers(count: int, edges: list[tuple[int, int]]) -> list[int]:
    """The layer of every node: 0 for nodes without parents, else 1 + their deepest parent."""
    children: list[list[int]] = [[] for _ in range(count)]
    waiting = [0] * count
    for source, target in edges:
        children[source].append(target)
        waiting[target] += 1
    layer = [0] * count
    ready = [n for n in range(count) if waiting[n] == 0]
    while ready:
        node = ready.pop()
        for child in children[node]:
            layer[child] = max(layer[child], layer[node] + 1)
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    return layer


def rows(count: int, edges: list[tuple[int, int]]) -> list[list[int]]:
    """Nodes per layer, top to bottom, each layer ordered by its parents' mean position."""
    layer = layers(count, edges)
    parents: list[list[int]] = [[] for _ in range(count)]
    for source, target in edges:
        parents[target].append(source)
    grid: list[list[int]] = [[] for _ in range(max(layer, default=-1) + 1)]
    for node in range(count):
        grid[layer[node]].append(node)
    position: dict[int, float] = {n: float(i) for i, n in enumerate(grid[0] if grid else [])}
    for row in grid[1:]:
        row.sort(key=lambda n: (_mean([position[p] for p in parents[n]]), n))
        position.update({n: float(i) for i, n in enumerate(row)})
    return grid


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _label(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "\u2026"


def graph_svg(graph: Graph) -> str:
    """The graph as a standalone SVG document (one ``<g class="node">`` per node)."""
    pairs = [(e.source, e.target) for e in graph.edges]
    grid = rows(len(graph.nodes), pairs)
    widest = max((len(row) for row in grid), default=0)
    width = 2 * MARGIN + widest * NODE_W + max(widest - 1, 0) * GAP_X
    height = 2 * MARGIN + len(grid) * NODE_H + max(len(grid) - 1, 0) * GAP_Y
    centre: dict[int, tuple[float, float]] = {}
    for depth, row in enumerate(grid):
        offset = (width - len(row) * NODE_W - (len(row) - 1) * GAP_X) / 2
        for i, node in enumerate(row):
            x = offset + i * (NODE_W + GAP_X) + NODE_W / 2
            centre[node] = (x, MARGIN + depth * (NODE_H + GAP_Y) + NODE_H / 2)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="covalent-graph" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        'font-family="sans-serif" font-size="12">',
        '<defs><marker id="covalent-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="6" markerHeight="6" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#57606a"/></marker></defs>',
    ]
    parts += [_edge(edge, centre) for edge in graph.edges]
    parts += [_node(node, centre[node.id]) for node in graph.nodes]
    parts.append("</svg>")
    return "".join(parts)


def _edge(edge: Edge, centre: dict[int, tuple[float, float]]) -> str:
    (x1, y1), (x2, y2) = centre[edge.source], centre[edge.target]
    y1, y2 = y1 + NODE_H / 2, y2 - NODE_H / 2
    mid = (y1 + y2) / 2
    return (
        f'<path class="edge" data-source="{edge.source}" data-target="{edge.target}" '
        f'd="M {x1:.1f} {y1:.1f} C {x1:.1f} {mid:.1f} {x2:.1f} {mid:.1f} {x2:.1f} {y2:.1f}" '
        'fill="none" stroke="#57606a" marker-end="url(#covalent-arrow)">'
        f"<title>{html.escape(edge.label)}</title></path>"
    )


def _node(node: Node, at: tuple[float, float]) -> str:
    name, kind = f"{node.name}({node.id})", node.kind
    x, y = at
    return (
        f'<g class="node node-{html.escape(kind)}" data-node-id="{node.id}">'
        f"<title>{html.escape(name)}</title>"
        f'<rect x="{x - NODE_W / 2:.1f}" y="{y - NODE_H / 2:.1f}" width="{NODE_W}" '
        f'height="{NODE_H}" rx="6" fill="{FILL.get(kind, "#ffffff")}" stroke="#57606a"/>'
        f'<text x="{x:.1f}" y="{y + 4:.1f}" text-anchor="middle">'
        f"{html.escape(_label(name))}</text></g>"
    )


def preview_html(name: str, graph: Graph | None, build: Callable[[], Graph]) -> str:
    """What a lattice shows in a notebook: its last built graph, else the graph built with
    no arguments, else a note saying how to get one."""
    if graph is None:
        try:
            graph = build()
        except CovalentError:
            return _note(
                f"Lattice {name}: call {name}.build_graph(...) with its arguments to see its graph."
            )
    if len(graph.nodes) > MAX_NODES:
        return _note(f"Lattice {name}: {len(graph.nodes)} nodes, too many to draw here.")
    title = f"<div>Lattice {html.escape(name)}</div>"
    return f'<div class="covalent-lattice">{title}{graph_svg(graph)}</div>'


def _note(text: str) -> str:
    return f'<div class="covalent-lattice"><em>{html.escape(text)}</em></div>'
