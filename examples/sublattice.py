"""A sublattice: a whole lattice run as one node, built at run time with real inputs."""

import covalent as ct


@ct.electron
def add(x, y):
    return x + y


@ct.lattice
def countdown(n):
    # a Python loop over a real number: fine inside a sublattice, built when n is known
    total = 0
    for i in range(n):
        total = add(total, i)
    return total


@ct.lattice
def workflow(n):
    size = add(n, 1)
    return ct.electron(countdown)(size)


result = ct.dispatch_sync(workflow)(4)
print("status:", result.status)
print("result:", result.result)
node = next(n for n in result.get_all_node_results() if n["node_name"] == ":sublattice:countdown")
child = node["sublattice_result"]
print("sublattice dispatch:", child.dispatch_id, "nodes:", len(child.get_all_node_outputs()))
