"""The SSH executor against a real sshd on loopback (see ``tests/integration/sshd.py``)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import covalent as ct
from covalent._results.status import Status
from covalent.executor.executor_plugins.ssh import SSHExecutor
from covalent.executor.testing import (
    ExecutorConformance,
    TaskFactory,
    _mark_then_sleep,
    _pid_alive,
    drive,
)
from tests.conftest import REPO, Home, free_port, wait_for
from tests.integration import sshd as sshd_service
from tests.integration.sshd import Sshd

sshd = sshd_service.sshd  # the session fixture: a real sshd on loopback


class TestSSHExecutorConformance(ExecutorConformance):
    @pytest.fixture
    def executor(self, sshd: Sshd, tmp_path: Path) -> SSHExecutor:
        self.shared_dir = str(tmp_path)  # the same machine: the cancel check sees the pid
        return SSHExecutor(**sshd.executor_settings(remote_workdir=str(tmp_path / "work")))


# electrons and functions the tests run remotely


def _where() -> dict[str, Any]:
    return {
        "cwd": os.getcwd(),
        "ssh": os.environ.get("SSH_CONNECTION", ""),
        "conda": os.environ.get("COVALENT_TEST_CONDA_ENV"),
        "custom": os.environ.get("CUSTOM_VAR"),
    }


def _run_one(executor: SSHExecutor, function: Any, *args: Any) -> tuple[TaskFactory, Any]:
    tasks = TaskFactory("ssh-test")
    return tasks, drive(executor, lambda ex: ex.execute(tasks.task(function, *args)))


# through a real server


def test_dispatch_mixes_ssh_and_local_electrons_on_one_connection(
    server: Home, sshd: Sshd, tmp_path: Path
) -> None:
    remote = ct.executor.SSHExecutor(**sshd.executor_settings(remote_workdir=str(tmp_path)))

    @ct.electron(executor=remote)
    def on_host(x):
        return x * 2, os.environ.get("SSH_CONNECTION", "")

    @ct.electron(executor="local")
    def here(pairs):
        return sum(value for value, _ in pairs), os.environ.get("SSH_CONNECTION", "")

    @ct.electron(executor=remote)
    def on_host_again(total):
        return total + 1, os.environ.get("SSH_CONNECTION", "")

    @ct.lattice
    def flow(n):
        local = here([on_host(i) for i in range(n)])
        return on_host_again(local[0]), local

    logins = sshd.logins()
    result = ct.dispatch_sync(flow)(24)
    assert result.status == ct.status.COMPLETED, result.error
    (last, last_via), (total, total_via) = result.result
    assert total == 2 * sum(range(24)) and last == total + 1
    assert total_via == ""  # the local electron did not go through SSH
    assert last_via.endswith(f" {sshd.port}")
    remote_vias = [
        node["output"][1]
        for node in result.get_all_node_results()
        if node["node_name"] == "on_host"
    ]
    assert len(remote_vias) == 24 and all(v.endswith(f" {sshd.port}") for v in remote_vias)
    assert sshd.logins() - logins == 1, "the electrons did not share one SSH connection"


def test_bad_python_path_fails_the_node_clearly(server: Home, sshd: Sshd) -> None:
    remote = ct.executor.SSHExecutor(
        **sshd.executor_settings(python_path="/nonexistent/bin/python3")
    )

    @ct.electron(executor=remote)
    def unreachable(x):
        return x

    @ct.lattice
    def flow(x):
        return unreachable(x)

    result = ct.dispatch_sync(flow)(1)
    assert result.status == ct.status.FAILED
    error = result.get_node_result(0)["error"]
    assert "python_path ('/nonexistent/bin/python3')" in error
    assert "/nonexistent/bin/python3: not found" in error  # the remote shell's stderr
    assert f"127.0.0.1:{sshd.port}" in error


def test_cancel_kills_the_remote_electron(server: Home, sshd: Sshd, tmp_path: Path) -> None:
    remote = ct.executor.SSHExecutor(**sshd.executor_settings(remote_workdir=str(tmp_path)))
    marker = tmp_path / "pid"

    @ct.electron(executor=remote)
    def nap(path):
        import subprocess
        import time

        child = subprocess.Popen(["sleep", "600"])  # in the electron's process group
        Path(path).write_text(f"{os.getpid()} {child.pid}")
        time.sleep(600)

    @ct.lattice
    def flow(path):
        return nap(path)

    dispatch_id = ct.dispatch(flow)(str(marker))
    wait_for(lambda: marker.exists() and marker.read_text(), 120, "the remote electron to start")
    pids = [int(p) for p in marker.read_text().split()]
    ct.cancel(dispatch_id)
    result = ct.get_result(dispatch_id, wait=True)
    assert result.status == ct.status.CANCELLED
    wait_for(lambda: not any(_pid_alive(p) for p in pids), 60, "the remote processes to die")


# the executor alone


def test_python_without_covalent_shows_the_remote_error(sshd: Sshd, tmp_path: Path) -> None:
    bare = tmp_path / "bare-python"  # isolated, no site-packages: covalent cannot be imported
    bare.write_text(f'#!/bin/sh\nexec {sys.executable} -I -S "$@"\n')
    bare.chmod(0o755)
    _, outcome = _run_one(SSHExecutor(**sshd.executor_settings(python_path=str(bare))), _where)
    assert outcome.status == Status.FAILED
    assert "exited with status 1" in outcome.error
    assert "No module named 'covalent'" in outcome.error
    assert "installed for that Python" in outcome.error


def test_workdir_env_and_cleanup(sshd: Sshd, tmp_path: Path) -> None:
    executor = SSHExecutor(
        **sshd.executor_settings(
            remote_workdir=str(tmp_path / "work"),
            remote_cache=str(tmp_path / "staging"),
            create_unique_workdir=True,
            env={"CUSTOM_VAR": "set"},
        )
    )
    tasks, outcome = _run_one(executor, _where)
    where = tasks.output(outcome)
    assert where["cwd"] == str(tmp_path / "work" / "ssh-test" / "node_1")
    assert where["custom"] == "set"
    assert where["ssh"].endswith(f" {sshd.port}")
    assert list((tmp_path / "staging").iterdir()) == []  # request and reply removed


def test_home_relative_folders(sshd: Sshd) -> None:
    name = f"covalent-ssh-test-{os.getpid()}"
    executor = SSHExecutor(
        **sshd.executor_settings(remote_workdir=f"~/{name}/work", remote_cache=f"{name}/cache")
    )
    try:
        tasks, outcome = _run_one(executor, _where)
        assert tasks.output(outcome)["cwd"] == str(Path.home() / name / "work")
        assert (Path.home() / name / "cache").is_dir()
    finally:
        subprocess.run(["rm", "-rf", str(Path.home() / name)], check=False)


def test_conda_env_is_activated_first(sshd: Sshd) -> None:
    # the sshd fixture points CONDA_EXE at a stand-in whose hook 'activates' any name
    tasks, outcome = _run_one(SSHExecutor(**sshd.executor_settings(conda_env="science")), _where)
    assert tasks.output(outcome)["conda"] == "science"
    _, outcome = _run_one(SSHExecutor(**sshd.executor_settings(conda_env="missing")), _where)
    assert outcome.status == Status.FAILED
    assert "conda environment 'missing' could not be activated" in outcome.error
    assert "EnvironmentNameNotFound: missing" in outcome.error


def test_unreachable_host_fails_clearly(sshd: Sshd) -> None:
    port = free_port()  # nothing listens there
    executor = SSHExecutor(
        **sshd.executor_settings(port=port, max_connection_attempts=2, retry_wait_time=0.1)
    )
    _, outcome = _run_one(executor, _where)
    assert outcome.status == Status.FAILED
    assert (
        f"Could not connect to {sshd.username}@127.0.0.1:{port} over SSH after 2" in outcome.error
    )


def test_untrusted_host_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    _, outcome = _run_one(SSHExecutor(**sshd.executor_settings(known_hosts=str(empty))), _where)
    assert outcome.status == Status.FAILED
    assert "host key" in outcome.error and "not trusted" in outcome.error
    assert sshd.executor_settings()["port"] == sshd.port
    _, outcome = _run_one(
        SSHExecutor(**sshd.executor_settings(known_hosts=str(empty), verify_host_key=False)),
        _where,
    )
    assert outcome.status == Status.COMPLETED, outcome.error


def test_missing_key_file_fails_clearly(sshd: Sshd, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-key")
    _, outcome = _run_one(SSHExecutor(**sshd.executor_settings(ssh_key_file=missing)), _where)
    assert outcome.status == Status.FAILED
    assert f"The SSH key file {missing!r}" in outcome.error


def test_reconnects_after_the_connection_drops(sshd: Sshd) -> None:
    tasks = TaskFactory()
    logins = sshd.logins()

    async def work(ex: Any) -> list[Any]:
        first = await ex.execute(tasks.task(_where))
        for link in ex._links.values():  # as if the network dropped it
            link.conn.close()
            await link.conn.wait_closed()
        return [first, await ex.execute(tasks.task(_where))]

    outcomes = drive(SSHExecutor(**sshd.executor_settings()), work)
    assert [o.status for o in outcomes] == [Status.COMPLETED, Status.COMPLETED]
    assert sshd.logins() - logins == 2


def test_a_lost_connection_fails_the_running_electron(sshd: Sshd, tmp_path: Path) -> None:
    tasks = TaskFactory()
    marker = tmp_path / "pid"

    async def work(ex: Any) -> list[Any]:
        running = asyncio.create_task(ex.execute(tasks.task(_mark_then_sleep, str(marker), 5.0)))
        while not (marker.exists() and marker.read_text()):
            await asyncio.sleep(0.05)
        for link in ex._links.values():
            link.conn.close()
        return [await running, await ex.execute(tasks.task(_where))]

    lost, after = drive(SSHExecutor(**sshd.executor_settings()), work)
    assert lost.status == Status.FAILED
    assert f"connection to {sshd.username}@127.0.0.1:{sshd.port} was lost" in lost.error
    assert after.status == Status.COMPLETED, after.error


def test_importing_the_plugin_does_not_import_asyncssh() -> None:
    code = (
        "import sys, covalent.executor.executor_plugins.ssh as m; "
        "assert m.EXECUTOR_PLUGIN_NAME == 'SSHExecutor'; "
        "assert 'asyncssh' not in sys.modules, 'asyncssh imported'"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_settings_round_trip_and_defaults() -> None:
    from covalent.executor import plugins
    from covalent.executor.executor_plugins import ssh

    executor = SSHExecutor(username="me", hostname="host", conda_env=None)
    settings = executor.to_dict()["attributes"]
    assert SSHExecutor(**settings).to_dict() == executor.to_dict()
    assert settings == {
        **ssh._EXECUTOR_PLUGIN_DEFAULTS,
        "username": "me",
        "hostname": "host",
        **{"log_stdout": "", "log_stderr": "", "cache_dir": "", "time_limit": -1, "retries": 0},
    }
    assert executor.short_name() == "ssh"
    assert plugins.discover()["ssh"].cls is SSHExecutor
    assert asyncio.iscoroutinefunction(SSHExecutor.execute)
