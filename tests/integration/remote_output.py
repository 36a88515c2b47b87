"""Checks of live output shared by the SSH and Slurm tests (test_ssh_output.py,
test_slurm_output.py), through a real server: a running node's output reaches the
store while it runs (nothing twice at the end), a timed-out electron's error says where
it was, and start <= end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import covalent as ct
from tests.conftest import wait_for

EXPECTED = "a line from print\na line from a subprocess\n"


def talker(executor: Any) -> Any:
    """An electron on ``executor`` that writes, waits for a file, writes again."""

    @ct.electron(executor=executor)
    def talks(go: str) -> int:
        import os
        import sys
        import time

        print("a line from print", flush=True)
        os.system("echo a line from a subprocess; echo a warning >&2")
        deadline = time.monotonic() + 300
        while not os.path.exists(go) and time.monotonic() < deadline:
            time.sleep(0.05)
        print("done", file=sys.stderr)
        return 1

    @ct.lattice
    def flow(go: str) -> int:
        return talks(go)

    return flow


def hanger(executor: Any, timeout: float) -> Any:
    @ct.electron(executor=executor, timeout=timeout)
    def hangs() -> None:
        import time

        print("about to hang", flush=True)
        time.sleep(600)

    @ct.lattice
    def flow() -> None:
        return hangs()

    return flow


def _node(dispatch_id: str) -> dict[str, Any]:
    return ct.get_result(dispatch_id).get_node_result(0)


def check_live_output(flow: Any, tmp_path: Path, deadline: float) -> None:
    go = tmp_path / "go"
    dispatch_id = ct.dispatch(flow)(str(go))
    node = wait_for(
        lambda: (n := _node(dispatch_id))["stdout"] == EXPECTED and n,
        timeout=deadline,
        what="the running electron's output",
    )
    assert node["status"] == "RUNNING" and node["start_time"] is not None
    wait_for(lambda: _node(dispatch_id)["stderr"] == "a warning\n", deadline, "its stderr")
    go.touch()
    result = ct.get_result(dispatch_id, wait=True)
    assert result.status == ct.status.COMPLETED, result.error
    node = result.get_node_result(0)
    assert node["stdout"] == EXPECTED  # nothing twice
    assert node["stderr"] == "a warning\ndone\n"
    assert node["start_time"] <= node["end_time"]


def check_timeout(flow: Any) -> dict[str, Any]:
    result = ct.dispatch_sync(flow)()
    node = result.get_node_result(0)
    assert node["status"] == "FAILED"
    assert "timed out" in node["error"]
    assert "Its last line of output: about to hang" in node["error"]
    assert "Where it was when stopped" in node["error"] and "in hangs" in node["error"]
    assert node["stdout"] == "about to hang\n"
    assert node["start_time"] <= node["end_time"]
    return node
