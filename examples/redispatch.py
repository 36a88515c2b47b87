"""Redispatch: run a finished workflow again with a replaced electron, reusing the rest."""

import covalent as ct


@ct.electron
def load(n):
    print("loading (slow in real life)")
    return list(range(n))


@ct.electron
def summarize(values):
    return sum(values)


@ct.electron
def summarize_max(values):
    return max(values)


@ct.lattice
def workflow(n):
    return summarize(load(n))


first = ct.dispatch_sync(workflow)(10)
print("first:", first.result)
new_id = ct.redispatch(
    first.dispatch_id, replace_electrons={"summarize": summarize_max}, reuse_previous_results=True
)()
second = ct.get_result(new_id, wait=True)
print("second:", second.result)
print("load reused from:", second.get_node_result(0)["reused_from"])
