"""Covalent's documented API beyond the basics, against a real server: methods on
outputs, hooks that gather into one keyword, bash and pip set-up among the hooks, and
the transport graph of a Result."""

from __future__ import annotations

from pathlib import Path

import covalent as ct
from tests.conftest import Home


@ct.electron
def make_list(n):
    return list(range(n))


@ct.electron
def make_mapping():
    return {"a": 1, "b": 2}


@ct.electron
def make_text(text):
    return text


@ct.electron
def describe(items, keys, words):
    return f"{sum(items)} {sorted(keys)} {words}"


def test_methods_on_outputs_run_as_nodes(server: Home) -> None:
    @ct.lattice
    def flow(x, text):
        y = make_list(3)
        y.append(x)  # later uses of y see the appended item
        return describe(y, make_mapping().keys(), make_text(text).upper().split(","))

    result = ct.dispatch_sync(flow)(10, "p,q")
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == "13 ['a', 'b'] ['P', 'Q']"
    names = [n["node_name"] for n in result.get_all_node_results()]
    assert ":method:append" in names and ":method:keys" in names


def greeting(name: str) -> str:
    return f"hello {name}"


@ct.electron(
    call_before=[
        ct.DepsCall(greeting, args=["ada"], retval_keyword="greetings"),
        ct.DepsBash(["echo from-bash-hook"]),
        ct.DepsCall(greeting, args=["bob"], retval_keyword="greetings"),
        ct.DepsCall(greeting, args=["cy"], retval_keyword="single"),
        ct.DepsPip(packages=[]),
    ],
    call_after=[ct.DepsBash("echo from-bash-after")],
)
def greet(greetings=None, single=None):
    return greetings, single


def test_hooks_gather_one_keyword_and_run_bash_among_them(server: Home) -> None:
    @ct.lattice
    def flow():
        return greet()

    result = ct.dispatch_sync(flow)()
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == (["hello ada", "hello bob"], "hello cy")
    stdout = result.get_node_result(0)["stdout"]
    assert stdout.split() == ["from-bash-hook", "from-bash-after"]


@ct.electron
def twice(x):
    return 2 * x


@ct.electron
def add(x, y):
    return x + y


@ct.lattice
def graph_flow(a):
    first = twice(a)
    return add(first, y=twice(first))


def test_the_transport_graph_of_a_result(server: Home, tmp_path: Path) -> None:
    result = ct.dispatch_sync(graph_flow)(5)
    assert result.result == 30
    graph = result.lattice.transport_graph
    assert graph is not None and graph.node_names()[0] == "twice(0)"
    assert graph.get_node_value(0, "output").get_deserialized() == 10
    assert graph.get_node_value(3, "output").get_deserialized() == 30
    assert graph.get_node_value(1, "value").get_deserialized() == 5
    assert graph.get_node_value(0, "function").get_deserialized()(7) == 14
    assert graph.get_node_value(3, "status") == ct.status.COMPLETED
    assert graph.get_node_value(3, "name") == "add"
    assert graph.get_node_value(0, "metadata")["executor"]["name"] == "local"
    assert graph.get_node_value(0, "start_time") <= graph.get_node_value(3, "end_time")
    assert graph.get_dependencies(3) == [0, 2]
    assert graph.get_edge_data(2, 3)[0]["edge_name"] == "y"
    assert graph.get_topologically_sorted_graph() == [[1], [0], [2], [3]]
