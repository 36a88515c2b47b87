"""Waiting edges: run an electron only after others, without passing data."""

import covalent as ct


@ct.electron
def write(path, text):
    with open(path, "a") as f:
        f.write(text + "\n")


@ct.electron
def read(path):
    with open(path) as f:
        return f.read().split()


@ct.lattice
def workflow(path):
    a = write(path, "a")
    b = write(path, "b")
    b.wait_for(a)
    return ct.wait(read(path), [a, b])


import tempfile  # noqa: E402

with tempfile.TemporaryDirectory() as folder:
    print("lines:", ct.dispatch_sync(workflow)(f"{folder}/log.txt").result)
