"""Caching (ours): an electron with cache=True reuses the output of an equal earlier call."""

import time

import covalent as ct


@ct.electron(cache=True)
def expensive(x):
    time.sleep(1)
    return x**2


@ct.lattice
def workflow(x):
    return expensive(x)


first = ct.dispatch_sync(workflow)(12)
second = ct.dispatch_sync(workflow)(12)
print("results:", first.result, second.result)
print("second reused:", second.get_node_result(0)["reused_from"])
