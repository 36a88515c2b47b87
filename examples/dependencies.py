"""Dependencies: shell commands, pip packages and Python calls that run on the executor
before (and after) an electron."""

import os
import tempfile

import covalent as ct

folder = tempfile.mkdtemp()
marker = os.path.join(folder, "prepared.txt")


def settings():
    return {"greeting": "hello"}


def note_done(path):
    with open(path, "a") as f:
        f.write("cleaned up\n")


@ct.electron(
    deps_bash=ct.DepsBash([f"echo prepared by bash > {marker}"]),
    call_before=[ct.DepsCall(settings, retval_keyword="config")],
    call_after=[ct.DepsCall(note_done, args=[marker])],
)
def greet(name, config=None):
    with open(marker) as f:
        prepared = f.read().strip()
    return f"{config['greeting']} {name} ({prepared})"


@ct.lattice(deps_bash=["true"])  # a lattice's dependencies apply to each of its electrons
def workflow(name):
    return greet(name)


result = ct.dispatch_sync(workflow)("world")
print("result:", result.result)
with open(marker) as f:
    print("marker after:", f.read().split("\n")[1])
