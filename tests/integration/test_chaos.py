"""Chaos: dispatches finish right while the server is killed and workers die at random."""

from __future__ import annotations

import os
import random
import signal
import threading
from pathlib import Path

import httpx
import pytest

import covalent as ct
from covalent._wire import bundle
from covalent._wire import manifest as manifestmod
from tests.conftest import Home, wait_for

pytestmark = pytest.mark.chaos

LAYERS, WIDTH, DISPATCHES, SERVER_KILLS = 10, 5, 20, 3


@ct.electron(retries=5)
def step(*inputs):
    import time

    time.sleep(0.02)
    return sum(inputs) + 1


@ct.lattice
def layered(seed):
    layer = [step(seed, i) for i in range(WIDTH)]
    for _ in range(LAYERS - 1):
        layer = [step(*layer) for _ in range(WIDTH)]
    return layer


def expected(seed: int) -> list[int]:
    layer = [seed + i + 1 for i in range(WIDTH)]
    for _ in range(LAYERS - 1):
        layer = [sum(layer) + 1] * WIDTH
    return layer


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _poisons(kind: str) -> bytes:
    """A bundle of ``layered`` with one thing wrong: ``shape`` and ``metadata`` break the
    schema (the door refuses them); ``executor`` gives a setting a value its executor
    refuses, which only making the executor can tell (the dispatcher must fail that
    dispatch alone)."""
    manifest, blobs = manifestmod.from_graph(layered.build_graph(0), (0,), {}, layered)
    electron = next(n for n in manifest["nodes"] if n["kind"] == "electron")
    if kind == "shape":  # issue 15's: it once stopped every other dispatch
        collection = next(n for n in manifest["nodes"] if n["kind"] == "collection")
        collection["metadata"] = {"collection": "not-a-shape"}
    elif kind == "metadata":
        electron["metadata"] = ["retries", 5]
    else:
        electron["executor"] = {"name": "local", "attributes": {"workers": "many"}}
    return bundle.pack(manifest, blobs)


def _refused_at_the_door(home: Home) -> None:
    for kind in ("shape", "metadata"):
        answer = httpx.post(f"{home.url}/api/v1/dispatches", content=_poisons(kind))
        assert answer.status_code == 422, answer.text


def _completed_nodes(dispatch_ids: list[str]) -> int:
    results = [ct.get_result(d) for d in dispatch_ids]
    return sum(n["status"] == "COMPLETED" for r in results for n in r._nodes)


def test_dispatches_survive_server_kills_and_worker_deaths(home: Home) -> None:
    assert home.run("covalent", "start").returncode == 0
    dispatch_ids = [ct.dispatch(layered)(seed) for seed in range(DISPATCHES)]
    _refused_at_the_door(home)
    poisoned = httpx.post(f"{home.url}/api/v1/dispatches", content=_poisons("executor"))
    assert poisoned.status_code == 200, poisoned.text
    total = DISPATCHES * (LAYERS * WIDTH + 1)  # electrons plus each seed's parameter node
    chaos = random.Random(1234)
    killed_workers = 0

    for round_number in range(1, SERVER_KILLS + 1):
        goal = total * round_number // (SERVER_KILLS + 2)
        wait_for(
            lambda g=goal: _completed_nodes(dispatch_ids) >= g,
            timeout=300,
            what=f"{goal} completed nodes",
        )
        pid = home.server_pid()
        assert pid is not None
        workers = _children(pid)
        for victim in chaos.sample(workers, k=min(2, len(workers))):
            os.kill(victim, signal.SIGKILL)
            killed_workers += 1
        os.kill(pid, signal.SIGKILL)
        wait_for(
            lambda p=pid: (
                not Path(f"/proc/{p}").exists()
                or Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
            )
        )
        assert home.run("covalent", "start").returncode == 0
        _refused_at_the_door(home)

    results: dict[str, object] = {}

    def collect(dispatch_id: str) -> None:
        results[dispatch_id] = ct.get_result(dispatch_id, wait=True)

    threads = [threading.Thread(target=collect, args=(d,)) for d in dispatch_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    for seed, dispatch_id in enumerate(dispatch_ids):
        result = results[dispatch_id]
        assert result.status == ct.status.COMPLETED, result.error
        assert result.result == expected(seed)
    assert killed_workers > 0
    failed = ct.get_result(poisoned.json()["dispatch_id"], wait=True)
    assert failed.status == ct.status.FAILED
    assert "workers must be a whole number" in str(failed.get_all_node_results())
