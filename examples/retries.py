"""Retries and timeouts (ours): a flaky electron is tried again; a slow one is stopped.

Every try is counted in `node["attempts"]`; the tries that failed and were retried are
kept, with their errors and output, in `node["retried"]`.
"""

import os
import tempfile

import covalent as ct

counter = os.path.join(tempfile.mkdtemp(), "tries")


@ct.electron(retries=3, retry_delay=0.1)
def flaky(path):
    tries = int(open(path).read()) + 1 if os.path.exists(path) else 1
    with open(path, "w") as f:
        f.write(str(tries))
    if tries < 3:
        raise ConnectionError(f"try {tries}: the service did not answer")
    return f"answered on try {tries}"


@ct.electron(timeout=1)
def too_slow():
    import time

    time.sleep(60)


@ct.lattice
def workflow(path):
    return flaky(path), too_slow()


result = ct.get_result(ct.dispatch(workflow)(counter), wait=True)
print("status:", result.status)
node = result.get_node_result(0)
print(f"{node['node_name']}: {node['output']!r} after {node['attempts']} attempts")
for retried in node["retried"]:
    print(f"  attempt {retried['attempt']} failed: {retried['error'].strip().splitlines()[-1]}")
slow = next(n for n in result.get_all_node_results() if n["node_name"] == "too_slow")
print("too_slow:", slow["status"], "-", slow["error"].strip().splitlines()[0])
print(slow["error"].split("\n", 1)[1])  # where it was: its Python stack when stopped
