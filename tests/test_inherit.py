"""Settings across sublattices: an electron's unset settings come from its lattice, a
lattice's from the sublattice node that runs it, two levels deep (traced, not run)."""

from __future__ import annotations

from typing import Any

import pytest

import covalent as ct
from covalent._errors import WorkflowError
from covalent._workflow.graph import Graph, NodeKind
from covalent._workflow.lattice import Lattice


def before() -> None:
    pass


def after() -> None:
    pass


@ct.electron
def plain(x):
    return x


@ct.electron(executor="dask", retries=0, timeout=7.0)
def own(x):
    return x


@ct.lattice
def inner(x):
    return plain(x), own(x)


@ct.lattice
def middle(x):
    return plain(x), ct.electron(inner)(x)


@ct.lattice(
    executor="ssh",
    deps_bash=["echo outer"],
    call_before=[ct.DepsCall(before)],
    call_after=[after],
    retries=3,
    retry_delay=0.5,
    timeout=60,
)
def outer(x):
    return ct.electron(middle, executor="slurm", retries=1)(x), plain(x)


def settings(graph: Graph, name: str) -> dict[str, Any]:
    node = next(n for n in graph.nodes if n.name == name)
    return {"executor": node.executor, **node.metadata}


def child(graph: Graph, name: str, *args: Any) -> Graph:
    """The graph a sublattice node's worker would build with these inputs."""
    node = next(n for n in graph.nodes if n.name == f":sublattice:{name}")
    assert node.kind == NodeKind.SUBLATTICE and isinstance(node.function, Lattice)
    return node.function.build_graph(*args)


def test_electrons_take_the_lattices_settings() -> None:
    top = outer.build_graph(1)
    got = settings(top, "plain")
    assert got["executor"] == "ssh" and got["retries"] == 3 and got["retry_delay"] == 0.5
    assert got["timeout"] == 60.0 and got["deps_bash"].commands == ["echo outer"]
    assert [c.func for c in got["call_before"]] == [before]
    assert [c.func for c in got["call_after"]] == [after]


def test_two_levels_deep_the_nearest_setting_wins() -> None:
    top = outer.build_graph(1)
    second = child(top, "middle", 1)  # the node says slurm and retries=1
    got = settings(second, "plain")
    assert got["executor"] == "slurm" and got["retries"] == 1  # the node's own
    assert got["timeout"] == 60.0 and got["deps_bash"].commands == ["echo outer"]  # outer's
    third = child(second, "inner", 1)  # its node sets nothing: it follows middle's node
    got = settings(third, "plain")
    assert got["executor"] == "slurm" and got["retries"] == 1 and got["timeout"] == 60.0
    assert [c.func for c in got["call_before"]] == [before]
    mine = settings(third, "own")  # an electron's own settings win, even retries=0
    assert mine["executor"] == "dask" and mine["retries"] == 0 and mine["timeout"] == 7.0


def test_a_lattices_own_settings_win_over_its_sublattice_node() -> None:
    @ct.lattice(executor="dask", retries=5)
    def pinned(x):
        return plain(x)

    @ct.lattice(executor="ssh", timeout=9)
    def top(x):
        return ct.electron(pinned, executor="slurm")(x)

    got = settings(child(top.build_graph(1), "pinned", 1), "plain")
    assert got["executor"] == "dask" and got["retries"] == 5 and got["timeout"] == 9.0


def test_without_any_setting_electrons_name_no_executor() -> None:
    graph = middle.build_graph(1)
    assert settings(graph, "plain")["executor"] is None  # "local" on the wire
    assert settings(child(graph, "inner", 1), "plain")["executor"] is None


def test_the_lattice_stays_unchanged_by_its_use_as_a_sublattice() -> None:
    outer.build_graph(1)
    assert middle.executor is None and middle.metadata["retries"] is None


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"retry_delay": "soon"}, "retry_delay"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_bad_policies_are_refused_naming_the_setting(options: dict[str, Any], named: str) -> None:
    with pytest.raises(WorkflowError, match=named):
        ct.electron(plain.function, **options)
    with pytest.raises(WorkflowError, match=named):
        ct.lattice(inner.workflow_function, **options)
