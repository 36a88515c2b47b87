"""The SSH executor's long-lived runner (covalent.executor.host_runner) against a real
sshd on loopback: one runner serves many electrons, each in a process of its own; a
runner that dies fails what ran on it and is replaced; cancel, timeouts, crashes and
live output through it; and the per-electron path for env a fork cannot honour."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from covalent._results.status import Status
from covalent.executor.executor_plugins.ssh import SSHExecutor
from covalent.executor.runner_channel import RunnerChannel
from covalent.executor.task import Task
from covalent.executor.testing import TaskFactory, _mark_then_sleep, _pid_alive, drive
from tests.conftest import REPO, wait_for
from tests.integration import sshd as sshd_service
from tests.integration.sshd import Sshd

sshd = sshd_service.sshd  # the session fixture: a real sshd on loopback


# electrons


def _pids() -> tuple[int, int]:
    return os.getpid(), os.getppid()


def _crash() -> None:
    print("about to crash", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def _talk_then_wait(go: str) -> str:
    import time

    print("first line", flush=True)
    deadline = time.monotonic() + 120
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.05)
    print("second line", flush=True)
    return "done"


def _wait_for_file(go: str) -> int:
    import time

    deadline = time.monotonic() + 120
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.05)
    return os.getpid()


def _sys_path() -> list[str]:
    import sys

    return list(sys.path)


# helpers


def _runner(executor: SSHExecutor) -> RunnerChannel:
    (runner,) = executor._runners.values()
    return runner


async def _marked(marker: Path) -> int:
    while not (marker.exists() and marker.read_text()):
        await asyncio.sleep(0.05)
    return int(marker.read_text())


def _following(task: Task) -> tuple[list[str], list[float]]:
    """Collect the task's live output and start, as the dispatcher would get them."""
    said: list[str] = []
    began: list[float] = []
    task.on_output = lambda _stream, text: said.append(text)
    task.on_start = began.append
    return said, began


# the tests


def test_many_electrons_share_one_runner_each_in_its_own_process(sshd: Sshd) -> None:
    tasks = TaskFactory()
    batch = [tasks.task(_pids) for _ in range(24)]
    logins = sshd.logins()

    async def work(ex: Any) -> tuple[list[Any], int]:
        outcomes = await asyncio.gather(*(ex.execute(t) for t in batch))
        again = await ex.execute(tasks.task(_pids))
        return [*outcomes, again], _runner(ex).hello.pid

    outcomes, runner_pid = drive(SSHExecutor(**sshd.executor_settings(max_tasks=6)), work)
    pids = [tasks.output(o) for o in outcomes]
    assert {parent for _, parent in pids} == {runner_pid}, "not all forked by one runner"
    assert len({pid for pid, _ in pids}) == len(pids), "two electrons shared a process"
    assert sshd.logins() - logins == 1


def test_a_killed_runner_fails_its_electron_and_the_next_starts_a_new_one(
    sshd: Sshd, tmp_path: Path
) -> None:
    tasks = TaskFactory()
    marker = tmp_path / "pid"

    async def work(ex: Any) -> tuple[Any, int, int, Any]:
        running = asyncio.create_task(ex.execute(tasks.task(_mark_then_sleep, str(marker), 600)))
        electron_pid = await _marked(marker)
        first = _runner(ex).hello.pid
        os.kill(first, signal.SIGKILL)  # as if the host's OOM killer chose it
        lost = await running
        return lost, electron_pid, first, await ex.execute(tasks.task(_pids))

    lost, electron_pid, first, after = drive(SSHExecutor(**sshd.executor_settings()), work)
    assert lost.status == Status.FAILED
    assert f"The covalent runner on {sshd.username}@127.0.0.1:{sshd.port} ended" in lost.error
    assert f"the runner (pid {first}) was killed by signal KILL" in lost.error
    assert "the next one starts a new runner" in lost.error
    _, parent = tasks.output(after)
    assert parent != first, "the dead runner's replacement has the same pid"
    wait_for(lambda: not _pid_alive(electron_pid), 60, "the orphaned electron to die")


def test_cancel_kills_only_that_electron(sshd: Sshd, tmp_path: Path) -> None:
    tasks = TaskFactory()
    marker, go = tmp_path / "pid", tmp_path / "go"
    doomed = tasks.task(_mark_then_sleep, str(marker), 600)
    spared = tasks.task(_wait_for_file, str(go))

    async def work(ex: Any) -> tuple[int, Any, int, int]:
        cancelled = asyncio.create_task(ex.execute(doomed))
        other = asyncio.create_task(ex.execute(spared))
        pid = await _marked(marker)
        runner = _runner(ex).hello.pid
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        assert not other.done()
        go.write_text("go")
        return pid, await other, runner, _runner(ex).hello.pid

    pid, outcome, runner_before, runner_after = drive(SSHExecutor(**sshd.executor_settings()), work)
    wait_for(lambda: not _pid_alive(pid), 60, "the cancelled electron to die")
    assert outcome.status == Status.COMPLETED, outcome.error
    assert runner_after == runner_before, "the cancel cost the runner"


def test_a_timed_out_electron_writes_its_stacks_before_it_is_killed(
    sshd: Sshd, tmp_path: Path
) -> None:
    tasks = TaskFactory()
    marker = tmp_path / "pid"
    task = tasks.task(_mark_then_sleep, str(marker), 600)
    task.metadata["timeout"] = 1  # a cancel then asks for the stacks first
    said, _ = _following(task)

    async def work(ex: Any) -> int:
        job = asyncio.create_task(ex.execute(task))
        pid = await _marked(marker)
        job.cancel()  # what the dispatcher does once the timeout has passed
        await asyncio.gather(job, return_exceptions=True)
        return pid

    pid = drive(SSHExecutor(**sshd.executor_settings()), work)
    stacks = "".join(said)
    assert "most recent call first" in stacks and "_mark_then_sleep" in stacks, stacks
    wait_for(lambda: not _pid_alive(pid), 60, "the timed-out electron to die")


def test_a_crashing_electron_fails_alone(sshd: Sshd) -> None:
    tasks = TaskFactory()

    async def work(ex: Any) -> list[Any]:
        first = await ex.execute(tasks.task(_pids))
        crash, fine = await asyncio.gather(
            ex.execute(tasks.task(_crash)), ex.execute(tasks.task(_pids))
        )
        return [first, crash, fine, await ex.execute(tasks.task(_pids))]

    first, crash, fine, last = drive(SSHExecutor(**sshd.executor_settings()), work)
    assert crash.status == Status.FAILED
    assert "was killed by signal 9 before writing its reply" in crash.error
    assert "about to crash" in crash.stdout
    runners = {tasks.output(o)[1] for o in (first, fine, last)}
    assert len(runners) == 1, "the crash cost the runner"


def test_output_reaches_the_node_while_the_electron_runs(sshd: Sshd, tmp_path: Path) -> None:
    tasks = TaskFactory()
    go = tmp_path / "go"
    task = tasks.task(_talk_then_wait, str(go))
    said, began = _following(task)

    async def work(ex: Any) -> Any:
        job = asyncio.create_task(ex.execute(task))
        while "first line\n" not in "".join(said):  # the electron waits: this is live
            assert not job.done(), job.result().error
            await asyncio.sleep(0.05)
        assert began, "output came before the start"
        go.write_text("go")
        return await job

    outcome = drive(SSHExecutor(**sshd.executor_settings()), work)
    assert tasks.output(outcome) == "done"
    assert "".join(said) == "first line\nsecond line\n"
    assert outcome.stdout == ""  # all of it went live, none twice


def test_env_read_at_start_gets_an_interpreter_of_its_own(sshd: Sshd, tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    executor = SSHExecutor(
        **sshd.executor_settings(env={"PYTHONPATH": f"{library}{os.pathsep}{REPO}"})
    )
    tasks = TaskFactory()

    async def work(ex: Any) -> tuple[Any, int]:
        return await ex.execute(tasks.task(_sys_path)), len(ex._runners)

    outcome, runners = drive(executor, work)
    assert str(library) in tasks.output(outcome)  # Python read it as it started
    assert runners == 0, "a forked process cannot honour PYTHONPATH"


def test_a_runner_of_another_protocol_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    other = tmp_path / "other-python"  # answers as a runner of a newer covalent would
    hello = "{'type': 'hello', 'protocol': 99, 'payload': 99, 'pid': 1}"
    other.write_text(
        "#!/bin/sh\n"
        f'exec {sys.executable} -c "import msgpack, sys, time; '
        f'sys.stdout.buffer.write(msgpack.packb({hello})); sys.stdout.flush(); time.sleep(60)"\n'
    )
    other.chmod(0o755)
    tasks = TaskFactory()
    executor = SSHExecutor(**sshd.executor_settings(python_path=str(other)))
    outcome = drive(executor, lambda ex: ex.execute(tasks.task(_pids)))
    assert outcome.status == Status.FAILED
    assert "speaks protocol 99, this server 1" in outcome.error
    assert "install the server's covalent there" in outcome.error
