"""Redispatch (with replaced electrons and reused results) and the output cache."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

import covalent as ct
from tests.conftest import Home

pytestmark = pytest.mark.both_stores  # and on PostgreSQL (tests/conftest.py)


@ct.electron
def record(path, value):
    with open(path, "a") as f:
        f.write(f"{value}\n")
    return value


@ct.electron
def double(x):
    return 2 * x


@ct.electron
def triple(x):
    return 3 * x


@ct.lattice
def flow(path, x):
    first = record(path, x)
    return double(first), record(path, x + 100)


def _runs(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_redispatch_with_the_same_inputs_runs_everything_again(server: Home, tmp_path) -> None:
    log = tmp_path / "log"
    first = ct.dispatch_sync(flow)(str(log), 1)
    again = ct.get_result(ct.redispatch(first.dispatch_id)(), wait=True)
    assert again.status == ct.status.COMPLETED
    assert again.result == first.result == (2, 101)
    assert again.dispatch_id != first.dispatch_id
    assert sorted(_runs(log)) == ["1", "1", "101", "101"]  # every node ran twice


def test_replaced_electron_and_reused_results(server: Home, tmp_path) -> None:
    log = tmp_path / "log"
    first = ct.dispatch_sync(flow)(str(log), 1)
    runs_before = len(_runs(log))
    new_id = ct.redispatch(
        first.dispatch_id, replace_electrons={"double": triple}, reuse_previous_results=True
    )()
    second = ct.get_result(new_id, wait=True)
    assert second.status == ct.status.COMPLETED, second.error
    assert second.result == (3, 101)
    assert len(_runs(log)) == runs_before  # both record nodes were reused, not run
    nodes = {n["node_name"] + str(n["node_id"]): n for n in second.get_all_node_results()}
    assert nodes["record0"]["reused_from"] == f"{first.dispatch_id}:0"
    assert nodes["triple3"]["reused_from"] is None
    transitions = httpx.get(f"{server.url}/api/v1/dispatches/{new_id}/transitions").json()
    reused = [(t["old"], t["new"]) for t in transitions if t["node_id"] == 0]
    assert reused == [("NEW_OBJECT", "PENDING_REUSE"), ("PENDING_REUSE", "COMPLETED")]


@ct.lattice
def wide(n):
    return [double(i) for i in range(n)]


def test_a_large_manifest_is_stored_compressed_and_read_back(server: Home) -> None:
    """A large manifest (compressed: covalent/_store/manifests.py) comes back whole for the
    API and for a redispatch that reuses every output."""
    first = ct.dispatch_sync(wide)(400)
    assert first.status == ct.status.COMPLETED and first.result == [2 * i for i in range(400)]
    url = f"{server.url}/api/v1/dispatches/{first.dispatch_id}/manifest"
    stored = httpx.get(url).json()
    assert len(json.dumps(stored)) > 64 * 1024 and len(stored["nodes"]) == 801
    again = ct.redispatch(first.dispatch_id, reuse_previous_results=True)()
    second = ct.get_result(again, wait=True)
    assert second.result == first.result
    assert all(
        n["reused_from"] for n in second.get_all_node_results() if n["node_name"] == "double"
    )


@ct.lattice
def two_branches(path, x, y):
    return double(record(path, x)), triple(record(path, y))


def test_redispatch_with_new_arguments_reuses_only_what_did_not_change(
    server: Home, tmp_path
) -> None:
    """Only ``y`` changes: the ``x`` branch is reused, the ``y`` branch and what joins
    the two run again."""
    log = tmp_path / "log"
    first = ct.dispatch_sync(two_branches)(str(log), 1, 5)
    assert first.result == (2, 15)
    second = ct.get_result(
        ct.redispatch(first.dispatch_id, reuse_previous_results=True)(str(log), 1, 6), wait=True
    )
    assert second.status == ct.status.COMPLETED, second.error
    assert second.result == (2, 18)
    assert sorted(_runs(log)) == ["1", "5", "6"]  # record(path, 1) did not run again
    reused = {
        f"{n['node_name']}({n['node_id']})": n["reused_from"]
        for n in second.get_all_node_results()
        if not n["node_name"].startswith(":parameter:")
    }
    assert reused == {
        "record(0)": f"{first.dispatch_id}:0",
        "double(3)": f"{first.dispatch_id}:3",
        "record(4)": None,
        "triple(7)": None,
        ":electron_tuple:(8)": None,
    }


@ct.electron(cache=True)
def cached_square(path, x):
    with open(path, "a") as f:
        f.write(f"{x}\n")
    return x * x


def test_cache_reuses_an_equal_call_across_dispatches(server: Home, tmp_path) -> None:
    log = tmp_path / "log"

    @ct.lattice
    def squares(path, x):
        return cached_square(path, x)

    first = ct.dispatch_sync(squares)(str(log), 7)
    second = ct.dispatch_sync(squares)(str(log), 7)
    third = ct.dispatch_sync(squares)(str(log), 8)
    assert (first.result, second.result, third.result) == (49, 49, 64)
    assert _runs(log) == ["7", "8"]
    node = second.get_node_result(0)
    assert node["reused_from"] == f"{first.dispatch_id}:0"
    assert first.get_node_result(0)["reused_from"] is None

    cleared = server.run("covalent", "cache", "clear")
    assert cleared.returncode == 0 and "Cleared" in cleared.stdout
    assert ct.dispatch_sync(squares)(str(log), 7).result == 49
    assert _runs(log) == ["7", "8", "7"]


SCRIPT = """
import json, sys
import covalent as ct

def helper(v):
    return v + {step}

@ct.electron(cache={cache})
def calls_helper(x):
    with open({log!r}, "a") as f:
        f.write("ran\\n")
    return helper(x)

@ct.lattice
def flow(x):
    return calls_helper(x)

first = ct.dispatch_sync(flow)(1)
out = {{"first": first.result, "reused_from": first.get_node_result(0)["reused_from"]}}
if sys.argv[1] == "redispatch":
    again_id = ct.redispatch(first.dispatch_id, reuse_previous_results=True)()
    again = ct.get_result(again_id, wait=True)
    out.update(again=again.result, again_reused_from=again.get_node_result(0)["reused_from"],
               first_id=first.dispatch_id)
print(json.dumps(out))
"""


def run_script(server: Home, tmp_path: Path, step: int, cache: bool, mode: str) -> dict:
    log = tmp_path / "runs.log"
    script = tmp_path / f"flow_{step}_{cache}.py"
    script.write_text(SCRIPT.format(step=step, cache=cache, log=str(log)))
    done = server.run("python", str(script), mode, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_redispatch_reuses_an_electron_that_calls_a_helper(server: Home, tmp_path: Path) -> None:
    out = run_script(server, tmp_path, 1, False, "redispatch")
    assert (out["first"], out["again"]) == (2, 2)
    assert out["again_reused_from"] == f"{out['first_id']}:0"  # calls_helper did not run again
    assert _runs(tmp_path / "runs.log") == ["ran"]


def test_cache_covers_what_an_electron_calls_across_processes(server: Home, tmp_path: Path) -> None:
    first = run_script(server, tmp_path, 1, True, "once")
    again = run_script(server, tmp_path, 1, True, "once")  # the same script, a new process
    assert (first["first"], again["first"]) == (2, 2)
    assert first["reused_from"] is None and again["reused_from"] is not None
    changed = run_script(server, tmp_path, 5, True, "once")  # helper changed: runs again
    assert changed == {"first": 6, "reused_from": None}
    assert _runs(tmp_path / "runs.log") == ["ran", "ran"]
