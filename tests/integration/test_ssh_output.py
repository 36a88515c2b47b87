"""Live output and true times on the SSH executor, through a real server (the checks
are in remote_output.py)."""

from __future__ import annotations

from pathlib import Path

import covalent as ct
from tests.conftest import Home
from tests.integration import sshd as sshd_service
from tests.integration.remote_output import check_live_output, check_timeout, hanger, talker
from tests.integration.sshd import Sshd

sshd = sshd_service.sshd  # the session fixture: a real sshd on loopback


def test_ssh_output_reaches_the_node_while_it_runs(
    server: Home, sshd: Sshd, tmp_path: Path
) -> None:
    remote = ct.executor.SSHExecutor(**sshd.executor_settings(remote_workdir=str(tmp_path)))
    check_live_output(talker(remote), tmp_path, 120)
    log = (server.root / "cache" / "server.log").read_text()
    assert "dispatch.finished" in log  # the default level, info, shows dispatches
    assert " INFO asyncssh " not in log  # but holds asyncssh's INFO lines back


def test_a_timed_out_ssh_electron_says_where_it_was(server: Home, sshd: Sshd) -> None:
    remote = ct.executor.SSHExecutor(**sshd.executor_settings())
    node = check_timeout(hanger(remote, 5))
    took = (node["end_time"] - node["start_time"]).total_seconds()
    assert 1 <= took < 60
