"""The examples, run as users run them: as scripts, against real services.

``examples/mixed_executors.py`` needs all five executors' services: the loopback sshd
(``tests/integration/sshd.py``), the single-node Slurm that ``scripts/services/slurm.sh
up`` starts (found as ``test_slurm.py`` finds it), and the server's own local Dask
cluster and local Ray instance, which the server under test starts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import covalent as ct
from tests.conftest import REPO, Home
from tests.integration import sshd as sshd_service
from tests.integration.sshd import Sshd

SLURM_DIR = os.environ.get("COVALENT_SLURM_DIR", "/tmp/covalent-slurm")
DEADLINE = 600.0  # a local Dask cluster, an SSH login and a Slurm job on a loaded machine

sshd = sshd_service.sshd  # the session fixture: a real sshd on loopback


def slurm_conf() -> str:
    """The running Slurm's config (skip without Slurm; fail if it does not answer)."""
    if shutil.which("sbatch") is None:
        pytest.skip(
            "Slurm is not installed (no sbatch on PATH); run "
            "`bash scripts/services/slurm.sh install` and `bash scripts/services/slurm.sh up`"
        )
    conf = os.environ.get("SLURM_CONF", f"{SLURM_DIR}/slurm.conf")
    done = subprocess.run(
        ["sinfo", "-h", "-o", "%T"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SLURM_CONF": conf},
    )
    if done.returncode != 0 or not done.stdout.strip():
        pytest.fail(
            "Slurm is installed but its controller does not answer "
            f"({done.stderr.strip()}); start it: bash scripts/services/slurm.sh up"
        )
    return conf


def test_mixed_executors_example(home: Home, sshd: Sshd, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    pytest.importorskip("ray")
    home.env.update(
        SLURM_CONF=slurm_conf(),
        COVALENT_SSH_HOST="127.0.0.1",
        COVALENT_SSH_PORT=str(sshd.port),
        COVALENT_SSH_USER=sshd.username,
        COVALENT_SSH_KEY=str(sshd.client_key),
        COVALENT_SSH_KNOWN_HOSTS=str(sshd.known_hosts),
        COVALENT_SSH_PYTHON=sys.executable,
        COVALENT_SSH_WORKDIR=str(tmp_path / "ssh-work"),
        COVALENT_SSH_REMOTE_CACHE=str(tmp_path / "ssh-staging"),
        COVALENT_SLURM_WORKDIR=str(tmp_path / "slurm-work"),
        RAY_DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES=str(200 * 1024 * 1024),  # a small local Ray
    )
    for unset in ("COVALENT_DASK_SCHEDULER", "COVALENT_RAY_ADDRESS", "COVALENT_SLURM_ADDRESS"):
        home.env.pop(unset, None)  # the server's own Dask and Ray; sbatch on this machine
    started = home.run("covalent", "start")
    assert started.returncode == 0, started.stderr

    done = home.run("python", str(REPO / "examples" / "mixed_executors.py"), timeout=DEADLINE)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"

    assert "status: COMPLETED" in done.stdout and "result: 55" in done.stdout, done.stdout
    printed = dict(re.findall(r"^(\w+)\(\d+\) ran on (\w+): ", done.stdout, re.MULTILINE))
    assert printed == {
        "square_local": "local",
        "square_dask": "dask",
        "square_ray": "ray",
        "square_ssh": "ssh",
        "square_slurm": "slurm",
        "total": "local",
    }, done.stdout
    dispatch_id = re.search(r"^dispatch id: (\S+)$", done.stdout, re.MULTILINE)
    assert dispatch_id is not None, done.stdout
    result = ct.get_result(dispatch_id.group(1))  # what the server recorded
    nodes = {n["node_name"]: n for n in result.get_all_node_results()}
    assert {name: nodes[name]["executor"] for name in printed} == printed
    assert nodes["square_local"]["output"][0] == 1
    assert "Dask worker tcp://127.0.0.1:" in nodes["square_dask"]["output"][1]
    assert re.search(r"Ray node [0-9a-f]{12}", nodes["square_ray"]["output"][1])
    assert "over SSH" in nodes["square_ssh"]["output"][1]
    assert re.search(r"Slurm job \d+", nodes["square_slurm"]["output"][1])
