"""True times on a real server with the local pool: a node's start is when its task
started on its executor and its end when it stopped, for every end state (completed,
failed, cancelled while running or while queued, timed out, retried) and for a
sublattice node, which spans its child dispatch. Lower bounds come from sleeps the
electrons do; upper bounds are generous (a loaded 2-core machine)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import covalent as ct
from tests.conftest import Home, wait_for

SLOW = 1.0
"""Seconds each electron here runs at least."""
SANE = 120.0
"""Seconds no duration here may reach."""


def took(node: dict[str, Any]) -> float:
    start, end = node["start_time"], node["end_time"]
    assert isinstance(start, datetime) and isinstance(end, datetime), node
    assert start <= end, f"{node['node_name']}: start {start} after end {end}"
    return (end - start).total_seconds()


def _node(dispatch_id: str, node_id: int = 0) -> dict[str, Any]:
    return ct.get_result(dispatch_id).get_node_result(node_id)


def _wait_file(path: Path) -> None:
    import os
    import time

    deadline = time.monotonic() + 300
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)


@ct.electron
def naps(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


@ct.electron
def naps_then_fails(seconds: float) -> None:
    import time

    time.sleep(seconds)
    raise ValueError("after a nap")


@ct.electron(timeout=2)
def outlives_its_timeout() -> None:
    import time

    time.sleep(600)


@ct.electron(retries=1)
def fails_once(marker: str, seconds: float) -> str:
    import os
    import time

    time.sleep(seconds)
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("the first attempt fails")
    return "second"


@ct.electron(executor=ct.executor.LocalExecutor(workers=1))
def holds_the_only_worker(go: str) -> int:
    _wait_file(Path(go))
    return 1


@ct.electron(executor=ct.executor.LocalExecutor(workers=1))
def waits_for_a_worker(x: int) -> int:
    return x


@ct.electron
def writes_then_waits(marker: str) -> None:
    import time

    open(marker, "w").close()
    time.sleep(600)


def single(electron: Any) -> Any:
    @ct.lattice
    def flow(*args: Any) -> Any:
        return electron(*args)

    return flow


@ct.lattice
def one_slot(go: str) -> list[int]:
    return [holds_the_only_worker(go), waits_for_a_worker(2)]


@ct.lattice
def napping(seconds: float) -> float:
    return naps(seconds)


@ct.lattice
def with_sublattice(seconds: float) -> float:
    return naps(ct.electron(napping)(seconds))


def test_completed_and_failed_nodes_span_their_run(server: Home) -> None:
    completed = ct.dispatch_sync(single(naps))(SLOW).get_node_result(0)
    assert completed["status"] == "COMPLETED"
    assert SLOW <= took(completed) < SANE
    failed = ct.dispatch_sync(single(naps_then_fails))(SLOW).get_node_result(0)
    assert failed["status"] == "FAILED"
    assert SLOW <= took(failed) < SANE


def test_a_node_cancelled_while_running_keeps_its_start(server: Home, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    dispatch_id = ct.dispatch(single(writes_then_waits))(str(marker))
    wait_for(marker.exists, 120, "the electron to start")
    wait_for(lambda: _node(dispatch_id)["status"] == "RUNNING", 120, "RUNNING in the store")
    started = _node(dispatch_id)["start_time"]
    wait_for(lambda: (datetime.now(started.tzinfo) - started).total_seconds() > SLOW, 60, "a while")
    ct.cancel(dispatch_id)
    node = ct.get_result(dispatch_id, wait=True).get_node_result(0)
    assert node["status"] == "CANCELLED"
    assert node["start_time"] == started
    assert SLOW <= took(node) < SANE


def test_a_node_cancelled_while_queued_never_started(server: Home, tmp_path: Path) -> None:
    go = tmp_path / "go"
    dispatch_id = ct.dispatch(one_slot)(str(go))
    ids = {n["node_name"]: n["node_id"] for n in ct.get_result(dispatch_id).get_all_node_results()}
    holder, queued = ids["holds_the_only_worker"], ids["waits_for_a_worker"]
    wait_for(lambda: _node(dispatch_id, holder)["status"] == "RUNNING", 120, "the holder to run")
    node = _node(dispatch_id, queued)
    assert node["status"] == "NEW_OBJECT" and node["start_time"] is None  # queued, not running
    ct.cancel(dispatch_id, task_ids=[queued])
    wait_for(lambda: _node(dispatch_id, queued)["status"] == "CANCELLED", 120, "the cancel")
    go.touch()
    result = ct.get_result(dispatch_id, wait=True)
    node = result.get_node_result(queued)
    assert node["start_time"] is None and node["end_time"] is not None
    assert took(result.get_node_result(holder)) < SANE


def test_a_timed_out_node_spans_its_timeout(server: Home) -> None:
    node = ct.dispatch_sync(single(outlives_its_timeout))().get_node_result(0)
    assert node["status"] == "FAILED" and "timed out" in node["error"]
    assert 1.5 <= took(node) < SANE


def test_a_retried_node_spans_its_attempts(server: Home, tmp_path: Path) -> None:
    result = ct.dispatch_sync(single(fails_once))(str(tmp_path / "marker"), SLOW)
    node = result.get_node_result(0)
    assert node["status"] == "COMPLETED"
    assert 2 * SLOW <= took(node) < SANE  # from the first attempt's start to the end
    assert node["attempts"] == 2
    (first,) = node["retried"]  # the failed attempt
    assert node["start_time"] <= first["start_time"] <= first["end_time"] <= node["end_time"]
    assert (first["end_time"] - first["start_time"]).total_seconds() >= SLOW


def test_a_sublattice_node_spans_its_child_dispatch(server: Home) -> None:
    result = ct.dispatch_sync(with_sublattice)(SLOW)
    assert result.status == ct.status.COMPLETED, result.error
    node = next(
        n for n in result.get_all_node_results() if n["node_name"].startswith(":sublattice:")
    )
    child = node["sublattice_result"]
    assert node["start_time"] <= child.start_time <= child.end_time <= node["end_time"]
    assert SLOW <= took(node) < SANE
    assert result.start_time <= node["start_time"] and node["end_time"] <= result.end_time
