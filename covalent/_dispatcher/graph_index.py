"""The transport graph's index for a :class:`~covalent._dispatcher.run.Run`: each node's
input edges (:class:`Inputs`) and the nodes its output goes to (:class:`Dependents`).

Both hold the manifest's edges sorted (by target, or by source), in flat arrays, and
where each node's group starts, rather than a list per node: a fan-out of 100,000 has
200,000 nodes, and a sort and a count of each group, both in C, build them. Neither keeps
the manifest's edge tuples, which the run then lets go of.
"""

from __future__ import annotations

import functools
import operator
from array import array
from collections import Counter
from itertools import accumulate, chain, repeat
from typing import Any

from covalent._results.status import Status
from covalent._wire.manifest import Edge

COMPLETED = Status.COMPLETED
_edge = functools.partial(tuple.__new__, Edge)  # from a checked [source, target, position, name]
_SOURCE, _TARGET = operator.itemgetter(0), operator.itemgetter(1)


class MissingInput(LookupError):
    """A node's input has no output yet (``source``: the input's node id)."""

    def __init__(self, source: int) -> None:
        super().__init__(f"input {source} has no output")
        self.source = source


def _starts(ends: array[int], count: int) -> array[int]:
    """Where each node's group starts in a list sorted by node id (``count`` + 1
    offsets: a group ends where the next starts): the running sum of the groups' sizes,
    counted and summed in C (three times as quick as a bisection per node)."""
    sizes = Counter(ends)
    return array("q", accumulate(chain((0,), map(sizes.get, range(count), repeat(0)))))


class Inputs:
    """Each node's input edges, the transport graph's index for a run:
    ``inputs[node_id]`` is a list of :class:`Edge`. Held as the edges sorted by target,
    in arrays of their sources, targets and positions (-1 for none) and a list of their
    names, with where each node's group starts, rather than a list per node (a fan-out
    of 100,000 has 200,000 nodes) or the manifest's edge tuples (200,000 tuples and
    their ids: about 25 MB, against about 6 MB): a sort and a count of each group, both
    in C, build it. A node's edges keep the manifest's order."""

    __slots__ = ("sources", "targets", "positions", "names", "starts")

    def __init__(self, edges: list[Any], count: int) -> None:
        ordered = sorted(edges, key=_TARGET)  # the manifest's checked edges
        self.sources = array("q", map(_SOURCE, ordered))
        self.targets = array("q", map(_TARGET, ordered))
        self.positions = array("q", [-1 if e[2] is None else e[2] for e in ordered])
        self.names: list[str | None] = [e[3] for e in ordered]
        self.starts = _starts(self.targets, count)

    def __len__(self) -> int:
        return len(self.starts) - 1

    def __getitem__(self, node_id: int) -> list[Edge]:
        sources, positions, names = self.sources, self.positions, self.names
        return [
            _edge((sources[i], node_id, positions[i] if positions[i] >= 0 else None, names[i]))
            for i in range(self.starts[node_id], self.starts[node_id + 1])
        ]

    def arguments(
        self, node_id: int, outputs: list[str | None]
    ) -> tuple[list[str], dict[str, str]]:
        """The digests to pass to a node, positional (in order) and by keyword, from
        ``outputs`` (each node's output digest, None while it has none); wait edges pass
        nothing. Raises :class:`MissingInput` for an input without an output."""
        first, end = self.starts[node_id], self.starts[node_id + 1]
        sources, positions, names = self.sources, self.positions, self.names
        if end - first == 1:  # the common case: one argument
            digest, only = outputs[sources[first]], names[first]
            if digest is not None and only is not None:
                return [], {only: digest}
            if digest is not None and positions[first] >= 0:
                return [digest], {}
        positional: dict[int, str] = {}
        keywords: dict[str, str] = {}
        for i in range(first, end):  # the arrays rather than an Edge each: a collection's
            name, position = names[i], positions[i]  # items may be 100,000
            if name is None and position < 0:
                continue  # a wait edge
            digest = outputs[sources[i]]
            if digest is None:
                raise MissingInput(sources[i])
            if name is not None:
                keywords[name] = digest
            else:
                positional[position] = digest
        return [positional[i] for i in sorted(positional)], keywords

    def positional(self, node_id: int) -> list[Edge]:
        """A node's positional input edges in argument order."""
        found = [e for e in self[node_id] if e.position is not None]
        return sorted(found, key=lambda e: e.position or 0)

    def unfinished(self, status: list[Status]) -> list[int]:
        """How many inputs of each node are not COMPLETED."""
        starts = self.starts
        sizes = [starts[n + 1] - starts[n] for n in range(len(self))]
        for source, target in zip(self.sources, self.targets, strict=True):
            if status[source] is COMPLETED:
                sizes[target] -= 1
        return sizes


class Dependents:
    """The nodes each node's output goes to: ``dependents[node_id]`` is a list of ids,
    in the manifest's order; held as one flat array, as :class:`Inputs`."""

    __slots__ = ("targets", "starts")

    def __init__(self, edges: list[Any], count: int) -> None:
        ordered = sorted(edges, key=_SOURCE)
        self.targets = array("q", map(_TARGET, ordered))
        self.starts = _starts(array("q", map(_SOURCE, ordered)), count)

    def __getitem__(self, node_id: int) -> list[int]:
        starts = self.starts
        return self.targets[starts[node_id] : starts[node_id + 1]].tolist()
