"""Many clients at once: every dispatch is stored, runs and returns the right result."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

import covalent as ct
from tests.conftest import Home, wait_for


@ct.electron
def plus(x, y):
    return x + y


@ct.lattice
def small_flow(x):
    return plus(plus(x, 1), plus(x, 2))


@pytest.mark.both_stores
def test_twenty_clients_dispatch_two_hundred_workflows(server: Home) -> None:
    before = httpx.get(f"{server.url}/api/v1/dispatches").json()["total"]
    start = threading.Barrier(20)

    def client(n: int) -> list[tuple[int, str]]:
        start.wait()
        return [(x, ct.dispatch(small_flow)(x)) for x in range(n * 10, n * 10 + 10)]

    with ThreadPoolExecutor(max_workers=20) as pool:
        submitted = [pair for batch in pool.map(client, range(20)) for pair in batch]
    assert len({dispatch_id for _, dispatch_id in submitted}) == 200
    for x, dispatch_id in submitted:
        result = ct.get_result(dispatch_id, wait=True)
        assert result.status == ct.status.COMPLETED, result.error
        assert result.result == 2 * x + 3
    assert httpx.get(f"{server.url}/api/v1/dispatches").json()["total"] == before + 200
    log = (server.root / "cache" / "server.log").read_text()
    assert "database is locked" not in log


@pytest.mark.both_stores
def test_a_waiting_client_rides_out_a_server_restart(home: Home, tmp_path) -> None:
    assert home.run("covalent", "start").returncode == 0
    release = tmp_path / "release"

    @ct.electron
    def wait_for_release(path):
        import os
        import time

        deadline = time.monotonic() + 300
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        return "released"

    @ct.lattice
    def held(path):
        return wait_for_release(path)

    dispatch_id = ct.dispatch(held)(str(release))
    outcome: dict[str, object] = {}

    def waiter() -> None:
        outcome["result"] = ct.get_result(dispatch_id, wait=True).result

    thread = threading.Thread(target=waiter)
    thread.start()
    wait_for(lambda: ct.get_result(dispatch_id).get_node_result(0)["status"] == "RUNNING")
    assert home.run("covalent", "stop").returncode == 0
    assert home.run("covalent", "start").returncode == 0
    release.touch()
    thread.join(timeout=180)
    assert not thread.is_alive()
    assert outcome["result"] == "released"
