"""``python -m benchmarks --peers``: which peers run, the note for a missing one, and the
table's column per peer (the engines themselves run only in the benchmark)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks import peers, report
from benchmarks.runner import Measurement, Timings
from benchmarks.workloads import payload_workload

MISSING = peers.PeerSpec(
    "nothing", "benchmarks.peers.on_nothing", "no_such_engine_here", "pip install nothing"
)


def test_every_peer_by_default_in_order() -> None:
    assert [spec.name for spec in peers.choose([])] == ["dask", "ray", "parsl", "prefect"]


def test_peers_by_name_keep_the_registry_order() -> None:
    assert [spec.name for spec in peers.choose(["Prefect", " dask", ""])] == ["dask", "prefect"]


def test_an_unknown_peer_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown peer\(s\) spark; the peers are dask, ray"):
        peers.choose(["dask", "spark"])


def test_a_peer_that_is_not_importable_is_skipped_with_how_to_install_it() -> None:
    assert peers.choose(["nothing"], (MISSING, *peers.PEERS)) == [MISSING]
    assert not MISSING.installed()
    assert MISSING.skip_note() == "skipped: nothing not installed (pip install nothing)"
    assert peers.choose(["dask"])[0].installed()  # distributed is a test dependency


def test_a_peer_runs_in_a_home_and_environment_of_its_own() -> None:
    spec = peers.PeerSpec("x", "m", "os", "-", {"X_HOME": "{home}/cfg"})
    before = dict(os.environ)
    with spec.environment() as home:
        assert home.is_dir()
        assert os.environ["X_HOME"] == f"{home}/cfg"
        assert os.environ["PYTHONPATH"].split(os.pathsep)[0] == str(peers.REPO)
    assert not Path(home).exists()
    assert dict(os.environ) == before


def test_the_table_has_a_median_and_a_ratio_per_peer_and_says_why_one_did_not_run() -> None:
    workload = payload_workload(10, 50 * 10**6)  # W5: its target is a ratio to dask
    m = Measurement(workload, Timings([2.0, 1.0, 3.0], 11), 12, 0, 0, 0, 4)
    m.peers["dask"] = Timings([4.0], 11)
    m.peer_skips["prefect"] = "skipped: over 2,000 tasks"
    lines = report.table([m], ["dask", "prefect"]).splitlines()
    assert "| dask median | covalent/dask | prefect median | covalent/prefect |" in (
        " ".join(lines[0].split())
    )
    cells = [cell.strip() for cell in lines[2].split("|")]
    assert cells[8:12] == ["4.00 s", "0.50", "skipped: over 2,000 tasks", "-"]
    assert "ratio/dask <= 1.00 PASS" in cells[12]
