"""Live output and true times on the Slurm executor, through a real server and a real
single-node Slurm (the checks are in remote_output.py; Slurm as in test_slurm.py)."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import covalent as ct
from tests.conftest import Home, wait_for
from tests.integration.remote_output import check_live_output, check_timeout, hanger, talker
from tests.integration.test_slurm import DEADLINE, pytestmark, queued, slurm, slurm_cluster

__all__ = ["pytestmark", "slurm_cluster"]  # skip without Slurm; point at the running one


def test_slurm_output_reaches_the_node_while_the_job_runs(home: Home, tmp_path: Path) -> None:
    check_live_output(talker(slurm(tmp_path)), tmp_path, DEADLINE)


def test_a_timed_out_slurm_electron_says_where_it_was(home: Home, tmp_path: Path) -> None:
    check_timeout(hanger(slurm(tmp_path), 30))


def test_a_slurm_node_is_queued_until_its_job_runs(home: Home, tmp_path: Path) -> None:
    """A job held in the queue (``--hold``) keeps its node NEW_OBJECT; released, the
    node goes RUNNING, its start no earlier than the release (Slurm counts seconds)."""
    name = f"covalent-test-held-{uuid.uuid4().hex[:8]}"
    go = tmp_path / "go"
    flow = talker(slurm(tmp_path, options={"job-name": name, "hold": True}))
    dispatch_id = ct.dispatch(flow)(str(go))
    (job_id, state), *_ = wait_for(lambda: queued(name), DEADLINE, "the job in the queue")
    assert state == "PENDING"
    time.sleep(2 * 0.5)  # two of the executor's polls (poll_freq 0.5 s) see it pending
    node = ct.get_result(dispatch_id).get_node_result(0)
    assert node["status"] == "NEW_OBJECT" and node["start_time"] is None
    released = time.time()
    subprocess.run(["scontrol", "release", job_id], check=True, timeout=60)
    wait_for(
        lambda: ct.get_result(dispatch_id).get_node_result(0)["status"] == "RUNNING",
        DEADLINE,
        "the node to run",
    )
    go.touch()
    node = ct.get_result(dispatch_id, wait=True).get_node_result(0)
    assert node["status"] == "COMPLETED"
    assert node["start_time"].timestamp() >= released - 1.0
    assert node["start_time"] <= node["end_time"]
