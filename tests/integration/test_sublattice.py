"""Sublattices: a lattice run as one node, built at run time with the real inputs."""

from __future__ import annotations

import covalent as ct
from tests.conftest import Home, wait_for


@ct.electron
def add(x, y):
    return x + y


@ct.electron
def explode(x):
    raise RuntimeError(f"inner failure {x}")


@ct.electron
def nap(seconds):
    import time

    time.sleep(seconds)
    return seconds


@ct.lattice
def innermost(n):
    return add(n, 1)


@ct.lattice
def middle(n):
    # control flow on a real value: the sublattice is built with its inputs at run time
    total = n
    for _ in range(n):
        total = add(total, 1)
    return ct.electron(innermost)(total)


@ct.lattice
def outer(n):
    start = add(n, 0)
    return add(ct.electron(middle)(start), 100)


def test_sublattices_nested_three_deep(server: Home) -> None:
    result = ct.dispatch_sync(outer)(3)
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == 3 + 3 + 1 + 100
    node = next(n for n in result.get_all_node_results() if n["node_name"] == ":sublattice:middle")
    assert node["output"] == 7
    child = node["sublattice_result"]
    assert child.status == ct.status.COMPLETED and child.result == 7
    assert child.root_dispatch_id == result.dispatch_id
    assert child.dispatch_id != result.dispatch_id
    assert child.inputs == {"args": [3], "kwargs": {}}
    grandchild = next(
        n for n in child.get_all_node_results() if n["node_name"] == ":sublattice:innermost"
    )["sublattice_result"]
    assert grandchild.result == 7 and grandchild.root_dispatch_id == result.dispatch_id
    assert len(child.get_all_node_outputs()) > 3  # built with n = 3: three adds and more


def test_a_failing_sublattice_fails_its_node_and_the_parent(server: Home) -> None:
    @ct.lattice
    def broken(x):
        return explode(x)

    @ct.lattice
    def parent(x):
        return add(ct.electron(broken)(x), 1), add(x, 1)

    result = ct.dispatch_sync(parent)(5)
    assert result.status == ct.status.FAILED
    nodes = {n["node_name"]: n for n in result.get_all_node_results()}
    assert "inner failure 5" in nodes[":sublattice:broken"]["error"]
    assert nodes[":sublattice:broken"]["sublattice_result"].status == ct.status.FAILED


def test_cancelling_the_parent_cancels_the_sublattice(server: Home) -> None:
    @ct.lattice
    def sleepy(x):
        return nap(x)

    @ct.lattice
    def parent(x):
        return ct.electron(sleepy)(x)

    dispatch_id = ct.dispatch(parent)(300)

    def child_running():
        node = ct.get_result(dispatch_id).get_node_result(0)
        child = node["sublattice_result"]
        return child and child.get_node_result(0)["status"] == "RUNNING" and child

    child = wait_for(child_running, what="the sublattice's electron to run")
    ct.cancel(dispatch_id)
    result = ct.get_result(dispatch_id, wait=True)
    assert result.status == ct.status.CANCELLED
    assert ct.get_result(child.dispatch_id, wait=True).status == ct.status.CANCELLED
