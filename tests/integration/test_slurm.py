"""The Slurm executor against a real single-node Slurm cluster on this machine.

Start it first: ``bash scripts/services/slurm.sh install && bash scripts/services/slurm.sh up``.
The tests skip only where Slurm is not installed (no ``sbatch``); an installed Slurm
that does not answer fails them, with the command that starts it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import covalent as ct
from covalent._results.status import Status
from covalent.executor.executor_plugins.slurm import SlurmExecutor
from covalent.executor.task import Outcome
from covalent.executor.testing import ExecutorConformance, TaskFactory
from tests.conftest import Home, wait_for
from tests.integration import sshd as sshd_service
from tests.integration.sshd import Sshd

SLURM_DIR = os.environ.get("COVALENT_SLURM_DIR", "/tmp/covalent-slurm")
PARTITION = os.environ.get("COVALENT_SLURM_PARTITION", "debug")
DEADLINE = 300.0

sshd = sshd_service.sshd  # the session fixture: a real sshd on loopback

pytestmark = pytest.mark.skipif(
    shutil.which("sbatch") is None,
    reason="Slurm is not installed (no sbatch on PATH); "
    "run `bash scripts/services/slurm.sh install` and `bash scripts/services/slurm.sh up`",
)


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster() -> Iterator[None]:
    """Point Slurm's commands at the cluster that scripts/services/slurm.sh started."""
    with pytest.MonkeyPatch.context() as patch:
        if "SLURM_CONF" not in os.environ and os.path.exists(f"{SLURM_DIR}/slurm.conf"):
            patch.setenv("SLURM_CONF", f"{SLURM_DIR}/slurm.conf")
        done = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0 or not done.stdout.strip():
            pytest.fail(
                "Slurm is installed but its controller does not answer "
                f"({done.stderr.strip()}); start it: bash scripts/services/slurm.sh up"
            )
        yield


def slurm(tmp_path: Path, **settings: Any) -> SlurmExecutor:
    options = {"partition": PARTITION, **settings.pop("options", {})}
    return SlurmExecutor(remote_workdir=str(tmp_path), options=options, poll_freq=0.5, **settings)


def over_ssh(sshd: Sshd, tmp_path: Path, **settings: Any) -> SlurmExecutor:
    """A SlurmExecutor that submits through the loopback sshd, as a login node."""
    conf = os.environ.get("SLURM_CONF")
    return slurm(
        tmp_path,
        address="127.0.0.1",
        port=sshd.port,
        username=sshd.username,
        ssh_key_file=str(sshd.client_key),
        known_hosts=str(sshd.known_hosts),
        python_path=sys.executable,
        env={"SLURM_CONF": conf} if conf else {},
        **settings,
    )


def run(executor: SlurmExecutor, work: Any) -> Any:
    """Run ``work(executor)`` between setup and teardown, with a generous deadline."""

    async def main() -> Any:
        await executor.setup()
        try:
            return await asyncio.wait_for(work(executor), DEADLINE)
        finally:
            await executor.teardown()

    return asyncio.run(main())


def queued(job_name: str) -> list[tuple[str, str]]:
    """``(job id, state)`` of the jobs called ``job_name`` that are pending or running."""
    done = subprocess.run(
        ["squeue", "-h", "-n", job_name, "-o", "%i %T"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [tuple(line.split()) for line in done.stdout.splitlines()]  # type: ignore[misc]


def running_job(job_name: str) -> str | None:
    return next((job_id for job_id, state in queued(job_name) if state == "RUNNING"), None)


# the conformance kit


class TestSlurmConformance(ExecutorConformance):
    shared_dir = tempfile.gettempdir()  # the jobs run on this machine

    @pytest.fixture
    def executor(self, tmp_path: Path) -> SlurmExecutor:
        return slurm(tmp_path)


class TestSlurmOverSSHConformance(ExecutorConformance):
    shared_dir = tempfile.gettempdir()

    @pytest.fixture
    def executor(self, sshd: Sshd, tmp_path: Path) -> SlurmExecutor:
        return over_ssh(sshd, tmp_path)


# electrons and plain functions the tests run


def _sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "woke up"


def _job_and_cwd() -> tuple[str | None, str]:
    return os.environ.get("SLURM_JOB_ID"), os.getcwd()


# the executor on its own


def test_job_script_carries_the_options(tmp_path: Path) -> None:
    executor = slurm(
        tmp_path,
        options={"time": "5:00", "cpus_per_task": 2, "requeue": True, "hold": False, "J": "named"},
        prerun_commands=["echo before"],
        postrun_commands=["echo after"],
    )
    tasks = TaskFactory()
    outcome = run(executor, lambda ex: ex.execute(tasks.task(_job_and_cwd)))
    job_id, cwd = tasks.output(outcome)
    assert job_id is not None and job_id.isdigit()
    assert cwd == str(tmp_path)
    job = subprocess.run(
        ["scontrol", "-o", "show", "job", job_id],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    for setting in ("JobName=named", "TimeLimit=00:05:00", "CPUs/Task=2", "Requeue=1"):
        assert setting in job.split(), (setting, job)
    assert outcome.stdout == "before\nafter\n"  # the job's own output follows the electron's
    assert list(tmp_path.iterdir()) == []  # cleanup removed the job's folder


def test_output_and_error_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sets the job's output file itself.*'output'"):
        SlurmExecutor(options={"output": "x.log"})
    with pytest.raises(ValueError, match="error file"):
        SlurmExecutor(options={"e": "x.err"})


def test_importing_the_plugin_does_not_import_asyncssh() -> None:
    check = (
        "import sys, covalent.executor.executor_plugins.slurm; "
        "assert 'asyncssh' not in sys.modules, 'asyncssh imported'"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_a_refused_submission_says_why(tmp_path: Path) -> None:
    executor = slurm(tmp_path, options={"partition": "no-such-partition"})
    tasks = TaskFactory()
    outcome = run(executor, lambda ex: ex.execute(tasks.task(_sleep, 0)))
    assert outcome.status == Status.FAILED
    assert "sbatch refused the job for '_sleep'" in outcome.error
    assert "invalid partition" in outcome.error.lower()


def test_jobs_that_die_report_their_slurm_state(tmp_path: Path) -> None:
    """A job past its time limit, one cancelled behind covalent's back, one without Python.

    They run at once, because Slurm enforces time limits only to the minute.
    """
    tasks = TaskFactory()
    name = f"covalent-test-killed-{uuid.uuid4().hex[:8]}"
    timed = slurm(tmp_path / "timed", options={"time": "1"})
    killed = slurm(tmp_path / "killed", options={"job-name": name})
    no_python = slurm(tmp_path / "no-python", python_path="/nonexistent/bin/python3")

    async def kill_when_running() -> str:
        while (job_id := await asyncio.to_thread(running_job, name)) is None:
            await asyncio.sleep(0.2)
        await asyncio.to_thread(subprocess.run, ["scancel", job_id], check=True, timeout=60)
        return job_id

    async def work(_: SlurmExecutor) -> tuple[Outcome, Outcome, Outcome, str]:
        for executor in (timed, killed, no_python):
            await executor.setup()
        try:
            return await asyncio.gather(  # type: ignore[return-value]
                timed.execute(tasks.task(_sleep, 600)),
                killed.execute(tasks.task(_sleep, 600)),
                no_python.execute(tasks.task(_sleep, 0)),
                kill_when_running(),
            )
        finally:
            for executor in (timed, killed, no_python):
                await executor.teardown()

    out_of_time, cancelled, without_python, killed_id = run(timed, work)
    assert out_of_time.status == Status.FAILED
    assert "ended in state TIMEOUT" in out_of_time.error, out_of_time.error
    assert cancelled.status == Status.FAILED
    assert f"Slurm job {killed_id} for '_sleep' ended in state CANCELLED" in cancelled.error
    assert without_python.status == Status.FAILED
    assert "ended in state FAILED (reason NonZeroExitCode, exit code 127:0)" in (
        without_python.error
    ), without_python.error
    assert "/nonexistent/bin/python3: No such file or directory" in without_python.error


def test_over_ssh_one_connection_serves_every_job(sshd: Sshd, tmp_path: Path) -> None:
    executor = over_ssh(sshd, tmp_path)
    tasks = TaskFactory()
    logins = sshd.logins()

    async def work(ex: SlurmExecutor) -> list[Outcome]:
        batch = [tasks.task(_job_and_cwd) for _ in range(4)]
        return list(await asyncio.gather(*(ex.execute(task) for task in batch)))

    outcomes = run(executor, work)
    job_ids = {tasks.output(outcome)[0] for outcome in outcomes}
    assert len(job_ids) == 4 and None not in job_ids
    assert sshd.logins() - logins == 1


# through a real server


@ct.electron
def shout(text):
    print(f"local says {text}")
    return text.upper()


@ct.electron
def pieces(text):
    return sorted(text)


@ct.electron(executor="slurm")  # by short name: the plugin's defaults and the config
def job_folder(_):
    return os.getcwd(), os.environ.get("SLURM_JOB_ID")


def test_dispatch_mixes_slurm_and_local_electrons(home: Home, tmp_path: Path) -> None:
    on_slurm = slurm(tmp_path)

    @ct.electron(executor=on_slurm)
    def where(text):
        print(f"slurm got {text}")
        return text + "!", os.environ.get("SLURM_JOB_ID")

    @ct.lattice
    def flow(text):
        loud = shout(text)
        marked = where(loud)
        return pieces(marked[0]), marked[1], job_folder(loud)

    result = ct.dispatch_sync(flow)("ab")
    assert result.status == ct.status.COMPLETED, result.error
    letters, job_id, (default_cwd, other_job_id) = result.result
    assert letters == sorted("AB!")
    assert job_id is not None and job_id.isdigit()
    assert other_job_id is not None and other_job_id != job_id
    assert default_cwd == str(home.root / "covalent-workdir")  # under $HOME by default
    nodes = {n["node_name"]: n for n in result.get_all_node_results()}
    assert nodes["where"]["stdout"] == "slurm got AB\n"
    assert nodes["shout"]["stdout"] == "local says ab\n"


def test_cancel_leaves_no_job_in_the_queue(home: Home, tmp_path: Path) -> None:
    name = f"covalent-test-cancel-{uuid.uuid4().hex[:8]}"
    on_slurm = slurm(tmp_path, options={"job-name": name})

    @ct.electron(executor=on_slurm)
    def long_nap(seconds):
        import time

        time.sleep(seconds)
        return seconds

    @ct.lattice
    def sleepy(seconds):
        return long_nap(seconds)

    dispatch_id = ct.dispatch(sleepy)(600)
    wait_for(lambda: running_job(name), timeout=DEADLINE, what="the Slurm job to run")
    ct.cancel(dispatch_id)
    result = ct.get_result(dispatch_id, wait=True)
    assert result.status == ct.status.CANCELLED
    assert result.get_node_result(0)["status"] == ct.status.CANCELLED
    wait_for(lambda: not queued(name), timeout=DEADLINE, what="squeue to forget the job")
