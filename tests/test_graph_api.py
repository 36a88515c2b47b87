"""Covalent's smaller API: TransportableObject, the transport graph's read methods on a
traced graph, and every executor listed in ``dir(ct.executor)``."""

from __future__ import annotations

import pytest

import covalent as ct
from covalent._wire.transport import TransportableObject


@ct.electron
def add(x, y):
    return x + y


@ct.electron
def twice(x):
    return 2 * x


@ct.lattice
def flow(a):
    first = twice(a)
    return add(first, y=twice(first))


def test_transportable_object_round_trips() -> None:
    value = {"k": [1, 2, {3}]}
    packed = ct.TransportableObject(value)
    assert packed.get_deserialized() == value
    assert packed.get_deserialized() is not packed.get_deserialized()  # a copy each time
    assert packed.object_string == repr(value)
    again = TransportableObject.deserialize(packed.serialize())
    assert again == packed and again.get_deserialized() == value
    assert TransportableObject.make_transportable(packed) is packed
    assert isinstance(packed.get_serialized(), str)


def test_read_methods_of_a_traced_graph() -> None:
    graph = flow.build_graph(5)
    assert graph.node_names() == [
        "twice(0)",
        ":parameter:5(1)",
        "twice(2)",
        "add(3)",
    ]
    assert graph.get_node_value(0, "name") == "twice"
    assert graph.get_node_value(1, "value").get_deserialized() == 5
    assert graph.get_node_value(0, "function").get_deserialized()(4) == 8
    assert graph.get_node_value(0, "metadata")["executor"] is None
    assert graph.get_dependencies(3) == [0, 2]
    edge = {"edge_name": "arg[0]", "param_type": "arg", "arg_index": 0}
    assert graph.get_edge_data(0, 3) == {0: edge}
    assert graph.get_edge_data(2, 3)[0] == {
        "edge_name": "y",
        "param_type": "kwarg",
        "arg_index": None,
    }
    assert graph.get_topologically_sorted_graph() == [[1], [0], [2], [3]]
    copy = graph.get_internal_graph_copy()
    assert sorted(copy.edges()) == [(0, 2), (0, 3), (1, 0), (2, 3)]
    assert copy.nodes[3]["name"] == "add"
    with pytest.raises(KeyError, match="metadata"):
        graph.get_node_value(0, "nope")  # the message lists what there is
    with pytest.raises(KeyError, match="no node 9"):
        graph.get_node_value(9, "name")


def test_every_executor_is_in_dir() -> None:
    names = dir(ct.executor)
    for name in ("LocalExecutor", "DaskExecutor", "SSHExecutor", "SlurmExecutor"):
        assert name in names
