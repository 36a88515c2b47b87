"""DaskExecutor on real dask.distributed clusters, and ``covalent cluster`` on a real server.

A module fixture starts a real ``dask scheduler`` and two ``dask worker`` processes (one
thread each) on free ports of 127.0.0.1. The server's own local cluster (DaskExecutor
without an address, short name ``"dask"``) is started by the servers under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import covalent as ct
from covalent._errors import ExecutorError
from covalent._results.status import Status
from covalent.executor import _dask_cluster
from covalent.executor import _dask_jobs as dask_jobs
from covalent.executor.base import BaseExecutor
from covalent.executor.executor_plugins import dask as dask_plugin
from covalent.executor.executor_plugins.dask import DaskExecutor, LocalDaskCluster
from covalent.executor.task import Cancellable, Outcome, Task
from covalent.executor.testing import ExecutorConformance, TaskFactory, drive
from tests.conftest import REPO, Home, free_port, home_env, wait_for

distributed = pytest.importorskip("distributed")

START_DEADLINE = 180.0


def _dask_command() -> str:
    beside = Path(sys.executable).with_name("dask")
    found = str(beside) if beside.exists() else shutil.which("dask")
    if not found:
        pytest.skip("the `dask` command is not installed")
    return found


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # a worker's nanny stops its worker process too
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(autouse=True)
def _say_what_cancels_restart(caplog: pytest.LogCaptureFixture) -> None:
    """A failing test's log shows which workers a cancel restarted."""
    caplog.set_level(logging.INFO, logger="covalent.executor.dask")


@dataclass
class DaskCluster:
    """A real scheduler and its workers (the ``dask worker`` processes are nannies)."""

    address: str
    nanny_pids: set[int]
    logs: Path  # the scheduler's and each worker's output, one file each

    def log_tails(self, lines: int = 25) -> str:
        """The last ``lines`` of each process's log, to say what the cluster did."""
        tails = []
        for log in sorted(self.logs.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            tails.append(f"--- {log.name}\n" + "\n".join(tail))
        return "\n".join(tails)


def _workers(address: str) -> int:
    with distributed.Client(address, timeout=30, set_as_default=False) as client:
        return len(client.nthreads())


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    dask, root = _dask_command(), tmp_path_factory.mktemp("dask")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    no_dashboard = ["--no-dashboard", "--dashboard-address", "127.0.0.1:0"]
    commands = {
        "scheduler": [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), *no_dashboard],
        **{
            name: [
                dask,
                "worker",
                address,
                "--host",
                "127.0.0.1",
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--name",
                name,
                "--local-directory",
                str(root / name),
                "--death-timeout",
                "120",
                *no_dashboard,
            ]
            for name in ("w1", "w2")
        },
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    # the scheduler unpickles the task graph, which names covalent's runner, and the
    # workers run it: both import this checkout, whatever else is installed
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }

    def alive() -> bool:
        dead = {n: p.returncode for n, p in processes.items() if p.poll() is not None}
        assert not dead, f"dask {dead} exited while starting; see the logs in {root}"
        return True

    try:
        for name, command in commands.items():
            with open(root / f"{name}.log", "wb") as log:
                processes[name] = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
                )
            if name == "scheduler":
                wait_for(lambda: alive() and _port_open(port), START_DEADLINE, "the scheduler")
        wait_for(lambda: alive() and _workers(address) == 2, START_DEADLINE, "2 dask workers")
        yield DaskCluster(address, {processes["w1"].pid, processes["w2"].pid}, root)
    finally:
        for name in ("w1", "w2", "scheduler"):
            if name in processes:
                _stop(processes[name])


# the conformance kit against the existing cluster


class TestDaskExecutorConformance(ExecutorConformance):
    concurrency = 2  # two workers of one thread each

    @pytest.fixture
    def executor(self, dask_cluster: DaskCluster, tmp_path: Path) -> DaskExecutor:
        self.shared_dir = str(tmp_path)
        return DaskExecutor(scheduler_address=dask_cluster.address, restart_on_cancel=True)


# the executor on its own


def _where(_: object = None) -> tuple[int, int, str]:
    return os.getpid(), os.getppid(), os.getcwd()


def _length(data: bytes) -> int:
    return len(data)


def test_local_cluster_is_shared_then_closed(tmp_path: Path) -> None:
    """Executors without an address share one local cluster; the last teardown closes it."""
    tasks = TaskFactory()
    first = DaskExecutor(n_workers=1, workdir=str(tmp_path / "work"))
    second = DaskExecutor(n_workers=1, threads_per_worker=2)
    big = os.urandom(4 * dask_plugin.SCATTER_BYTES)  # scattered, not sent in the graph

    async def work() -> tuple[list[str], bool, bool]:
        outcomes = await asyncio.gather(
            first.execute(tasks.task(_where)), second.execute(tasks.task(_length, big))
        )
        local = first.running_local_cluster()
        assert local is not None and local is second.running_local_cluster()
        addresses = [local.address, (await local.info())["address"]]
        assert (await local.info())["n_workers"] == 1
        pid, ppid, cwd = tasks.output(outcomes[0])
        assert ppid == os.getpid() and cwd == str(tmp_path / "work")  # a worker of ours
        assert tasks.output(outcomes[1]) == len(big)
        await first.teardown()
        still_running = local.running
        await second.teardown()
        return addresses, still_running, local.running

    addresses, running_after_first, running_after_both = asyncio.run(work())
    assert addresses[0] == addresses[1] and addresses[0].startswith("tcp://127.0.0.1:")
    assert running_after_first and not running_after_both
    port = int(addresses[0].rsplit(":", 1)[1])
    wait_for(lambda: not _port_open(port), 60, "the local scheduler to stop")


def test_unreachable_scheduler_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_dask_cluster, "CONNECT_TIMEOUT", 2.0)
    address = f"tcp://127.0.0.1:{free_port()}"
    tasks = TaskFactory()
    expected = f"Could not connect to the Dask scheduler at '{address}'"
    with pytest.raises(ExecutorError, match=expected):
        drive(DaskExecutor(scheduler_address=address), lambda ex: ex.execute(tasks.task(_where)))


def test_module_does_not_import_distributed() -> None:
    code = (
        "import sys, covalent as ct; ct.executor.DaskExecutor(scheduler_address='tcp://x:1');"
        "from covalent.executor import plugins; plugins.discover();"
        "print('distributed' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_short_name_and_defaults() -> None:
    assert DaskExecutor().short_name() == "dask"
    made = DaskExecutor(scheduler_address="tcp://h:1").to_dict()["attributes"]
    assert made["scheduler_address"] == "tcp://h:1"
    assert set(dask_plugin._EXECUTOR_PLUGIN_DEFAULTS) <= set(DaskExecutor().to_dict()["attributes"])


# many electrons at once (the dispatcher's fast path, ``start_many``)


def _say(x: int) -> tuple[int, int]:
    import os
    import sys

    print(f"out {x}")
    print(f"err {x}", file=sys.stderr)
    return x * x, os.getpid()


def _refuse(x: int) -> None:
    raise ValueError(f"no to {x}")


def _when_told(path: str, x: int) -> int:
    """Wait for ``path`` (at most 10 s: both workers may run these before the sleeper)."""
    import os
    import time

    deadline = time.monotonic() + 10
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    return x + 100


def _sleep_marked(marker: str, seconds: float) -> None:
    import os
    import time

    with open(marker + ".part", "w") as f:
        f.write(str(os.getpid()))
    os.replace(marker + ".part", marker)
    time.sleep(seconds)


def _die_when_told(path: str) -> None:
    """Wait for ``path`` (at most 10 s), then end the worker process."""
    import os
    import time

    deadline = time.monotonic() + 10
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    os._exit(3)


def _die_once(marker: str) -> int:
    """End the worker process the first time; on the next worker, answer."""
    import os

    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)
    return os.getpid()


Outcomes = dict[int, Outcome]

STALL_DEADLINE = 100.0
"""Seconds a group's test waits for its electrons (less than ``drive``'s deadline, so
that a stall says what the cluster was doing)."""


def _tasks_here(dask_worker: Any = None) -> dict[str, str]:
    """On a Dask worker (``Client.run``): its tasks' states by key."""
    return {str(key): task.state for key, task in dask_worker.state.tasks.items()}


async def _cluster_state(executor: BaseExecutor, cluster: DaskCluster) -> str:
    """What the scheduler has each worker process, the tasks each worker holds, and the
    ends of the cluster's logs."""
    assert isinstance(executor, DaskExecutor)
    try:
        client = await executor.client()
        processing = await client.processing()
        held = await asyncio.wait_for(client.run(_tasks_here, on_error="return"), 10)
        state = f"processing {processing}; held by the workers {held}"
    except Exception as e:
        state = f"(could not ask: {type(e).__name__}: {e})"
    return f"{state}\n{cluster.log_tails()}"


def _group(
    cluster: DaskCluster,
    executor: DaskExecutor,
    tasks: list[Task],
    meanwhile: Callable[[list[Cancellable], Outcomes], Awaitable[None]] | None = None,
) -> Outcomes:
    """Start ``tasks`` in one ``start_many`` call; their outcomes by node id, once all
    reported (each exactly once)."""

    async def work(ex: BaseExecutor) -> Outcomes:
        outcomes: Outcomes = {}
        calls: list[int] = []
        all_in = asyncio.Event()

        def reporter(node_id: int) -> Callable[[Outcome], None]:
            def report(outcome: Outcome) -> None:
                calls.append(node_id)
                outcomes[node_id] = outcome
                if len(outcomes) == len(tasks):
                    all_in.set()

            return report

        handles = ex.start_many([(task, reporter(task.node_id)) for task in tasks])
        assert handles is not None and len(handles) == len(tasks)

        async def until_all_in() -> None:
            if meanwhile is not None:
                await meanwhile(handles, outcomes)
            await all_in.wait()

        try:
            await asyncio.wait_for(until_all_in(), STALL_DEADLINE)
        except asyncio.TimeoutError:
            missing = sorted(t.node_id for t in tasks if t.node_id not in outcomes)
            raise AssertionError(
                f"electrons {missing} of {len(tasks)} did not report in {STALL_DEADLINE} s; "
                f"the cluster: {await _cluster_state(ex, cluster)}"
            ) from None
        await asyncio.sleep(0.5)  # a second report would come in this while
        assert sorted(calls) == sorted(t.node_id for t in tasks), "a task reported twice"
        return outcomes

    return drive(executor, work)


def test_electrons_started_together_each_get_their_own_result_and_output(
    dask_cluster: DaskCluster,
) -> None:
    tasks = TaskFactory()
    group = [tasks.task(_say, x) for x in range(60)]
    outcomes = _group(dask_cluster, DaskExecutor(scheduler_address=dask_cluster.address), group)
    pids = set()
    for x, task in enumerate(group):
        outcome = outcomes[task.node_id]
        value, pid = tasks.output(outcome)
        assert value == x * x
        assert (outcome.stdout, outcome.stderr) == (f"out {x}\n", f"err {x}\n")
        pids.add(pid)
    assert len(pids) == 2  # the group was spread over both workers


def test_a_failing_electron_in_a_group_fails_alone(dask_cluster: DaskCluster) -> None:
    tasks = TaskFactory()
    group = [tasks.task(_refuse, x) if x == 3 else tasks.task(_say, x) for x in range(8)]
    outcomes = _group(dask_cluster, DaskExecutor(scheduler_address=dask_cluster.address), group)
    failed = outcomes[group[3].node_id]
    assert failed.status == Status.FAILED and "ValueError: no to 3" in failed.error
    others = [outcomes[t.node_id] for x, t in enumerate(group) if x != 3]
    assert [tasks.output(o)[0] for o in others] == [x * x for x in range(8) if x != 3]


def test_cancelling_one_of_a_group_cancels_only_it(
    dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    """One electron of a group runs (and sleeps) on one worker while the others wait on
    the other; cancelling it stops it (its worker restarts) and the others still end."""
    tasks = TaskFactory()
    marker, go = tmp_path / "running", tmp_path / "go"
    sleeper = tasks.task(_sleep_marked, str(marker), 300.0)
    waiting = [tasks.task(_when_told, str(go), x) for x in range(6)]
    executor = DaskExecutor(scheduler_address=dask_cluster.address, restart_on_cancel=True)

    async def cancel_the_sleeper(handles: list[Cancellable], _: Outcomes) -> None:
        while not marker.exists():
            await asyncio.sleep(0.05)
        handles[0].cancel()
        go.touch()

    try:
        outcomes = _group(dask_cluster, executor, [sleeper, *waiting], cancel_the_sleeper)
        assert outcomes[sleeper.node_id].status == Status.CANCELLED
        assert [tasks.output(outcomes[t.node_id]) for t in waiting] == [x + 100 for x in range(6)]
        pid = int(marker.read_text())
        wait_for(lambda: not _pid_alive(pid), 60, "the cancelled electron's worker to stop")
    finally:
        _kill_the_marked(marker)


def _marked_until_told(marker: str, go: str) -> int:
    """Mark that it runs (its process id), then wait for ``go`` (at most 120 s)."""
    import os
    import time

    with open(marker + ".part", "w") as f:
        f.write(str(os.getpid()))
    os.replace(marker + ".part", marker)
    deadline = time.monotonic() + 120
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.05)
    return os.getpid()


def test_the_worker_running_a_task_is_found(dask_cluster: DaskCluster, tmp_path: Path) -> None:
    """What a cancel restarts: the one worker that runs the task, named alike by the
    scheduler and by the worker itself; none once the task has ended."""
    marker, go = tmp_path / "running", tmp_path / "go"

    async def look() -> tuple[list[str], dict[str, Any], list[str]]:
        async with distributed.Client(
            dask_cluster.address, asynchronous=True, set_as_default=False
        ) as client:
            future = client.submit(_marked_until_told, str(marker), str(go), pure=False)
            while not marker.exists():
                await asyncio.sleep(0.05)
            running = await dask_plugin._running(client, future.key)
            said = await client.run(dask_plugin._executes, future.key)
            go.touch()
            await future
            return running, said, await dask_plugin._running(client, future.key)

    running, said, after = asyncio.run(asyncio.wait_for(look(), START_DEADLINE))
    assert len(running) == 1, running
    assert sorted(worker for worker, yes in said.items() if yes) == running
    assert len(said) == 2  # both workers answered
    assert after == []


def _hold_the_gil_marked(marker: str) -> None:
    """Mark that it runs (its process id), then hold the GIL for good: a regular
    expression that backtracks for ages (as a long C call may), so the worker's event
    loop cannot answer anyone until the process is stopped."""
    import os
    import re

    with open(marker + ".part", "w") as f:
        f.write(str(os.getpid()))
    os.replace(marker + ".part", marker)
    re.match(r"(a+)+$", "a" * 40 + "b")


def test_cancel_stops_an_electron_that_holds_the_gil(
    dask_cluster: DaskCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancelled electron whose worker cannot answer (its task holds the GIL) is still
    stopped: the scheduler knows where it runs, and the nanny restarts that worker; the
    question to the workers gives up after ASK_TIMEOUT. (A reviewer's find.)"""
    monkeypatch.setattr(dask_plugin, "CANCEL_TIMEOUT", 30.0)
    tasks = TaskFactory()
    marker = tmp_path / "running"
    hog = tasks.task(_hold_the_gil_marked, str(marker))
    executor = DaskExecutor(scheduler_address=dask_cluster.address, restart_on_cancel=True)

    async def cancel_it(handles: list[Cancellable], _: Outcomes) -> None:
        while not marker.exists():
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # not a wait for a condition: the regex is well under way
        handles[0].cancel()

    try:
        outcomes = _group(dask_cluster, executor, [hog], cancel_it)
        assert outcomes[hog.node_id].status == Status.CANCELLED
        pid = int(marker.read_text())
        wait_for(lambda: not _pid_alive(pid), 60, "the cancelled electron's worker to stop")
    finally:
        _kill_the_marked(marker)


def test_an_electron_whose_worker_dies_runs_again(
    dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    """Its worker dies under it once: Dask runs it again on another worker (its reply
    may be lost with a worker too), and every electron of the group ends as usual."""
    tasks = TaskFactory()
    marker = str(tmp_path / "died")
    group = [tasks.task(_die_once, marker), *(tasks.task(_say, x) for x in range(1, 6))]
    outcomes = _group(dask_cluster, DaskExecutor(scheduler_address=dask_cluster.address), group)
    assert os.path.exists(marker)  # it did kill a worker
    assert isinstance(tasks.output(outcomes[group[0].node_id]), int)
    assert [tasks.output(outcomes[t.node_id])[0] for t in group[1:]] == [x * x for x in range(1, 6)]


def test_an_electron_that_kills_every_worker_fails_alone(
    dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    """Dask gives up on it after its workers died a few times (``KilledWorker``): that
    electron fails, the rest of its group (ended before it started killing) completes."""
    tasks = TaskFactory()
    go = str(tmp_path / "go")
    group = [tasks.task(_die_when_told, go), *(tasks.task(_say, x) for x in range(1, 6))]

    async def once_the_others_ended(_: list[Cancellable], outcomes: Outcomes) -> None:
        while len(outcomes) < len(group) - 1:
            await asyncio.sleep(0.05)
        Path(go).touch()

    executor = DaskExecutor(scheduler_address=dask_cluster.address)
    outcomes = _group(dask_cluster, executor, group, once_the_others_ended)
    killed = outcomes[group[0].node_id]
    assert killed.status == Status.FAILED
    assert "did not run this electron to the end (KilledWorker" in killed.error, killed.error
    assert [tasks.output(outcomes[t.node_id])[0] for t in group[1:]] == [x * x for x in range(1, 6)]


def _nap(x: int) -> tuple[int, int]:
    """Longer than a pack may run on after its first electron (``PACK_SECONDS``)."""
    import os
    import time

    time.sleep(0.2)
    return x, os.getpid()


def _resubmitted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the groups the executor queues from now on (the first is
    ``start_many``'s; the others, pack members handed back to run one task each)."""
    sizes: list[int] = []
    enqueue = DaskExecutor._enqueue

    def counted(self: DaskExecutor, jobs: list[dask_jobs.DaskJob]) -> None:
        sizes.append(len(jobs))
        enqueue(self, jobs)

    monkeypatch.setattr(DaskExecutor, "_enqueue", counted)
    return sizes


def test_a_pack_that_runs_long_hands_back_the_rest(
    dask_cluster: DaskCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight electrons on two threads go four to a Dask task; a pack stops starting
    electrons once it has run past ``PACK_SECONDS``, and its rest run one task each: every
    electron ends once, with its own value."""
    queued = _resubmitted(monkeypatch)
    tasks = TaskFactory()
    group = [tasks.task(_nap, x) for x in range(8)]
    outcomes = _group(dask_cluster, DaskExecutor(scheduler_address=dask_cluster.address), group)
    assert [tasks.output(outcomes[t.node_id])[0] for t in group] == list(range(8))
    assert queued[0] == 8 and sum(queued[1:]) > 0, queued


def test_cancelling_one_waiting_in_a_pack_leaves_the_others(
    dask_cluster: DaskCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seven electrons on two threads go in two packs; cancelling the third while the
    first holds its pack cancels only it: the others of its pack run one task each."""
    queued = _resubmitted(monkeypatch)
    tasks = TaskFactory()
    go = tmp_path / "go"
    group = [tasks.task(_when_told, str(go), x) for x in range(7)]

    async def cancel_the_third(handles: list[Cancellable], outcomes: Outcomes) -> None:
        job = handles[2]
        assert isinstance(job, dask_jobs.DaskJob)
        while job.future is None:  # submitted, in a pack
            await asyncio.sleep(0.05)
        job.cancel()
        go.touch()

    executor = DaskExecutor(scheduler_address=dask_cluster.address)
    outcomes = _group(dask_cluster, executor, group, cancel_the_third)
    assert outcomes[group[2].node_id].status == Status.CANCELLED
    others = [t for x, t in enumerate(group) if x != 2]
    assert [tasks.output(outcomes[t.node_id]) for t in others] == [
        x + 100 for x in range(7) if x != 2
    ]
    assert queued[0] == 7 and queued[1:] == [3], queued  # the pack's other three


def _counted(ran: str, x: int) -> int:
    """Say that it ran (a line in ``ran``), then answer."""
    with open(ran, "a") as f:
        f.write(f"{x}\n")
    return x + 100


def test_a_cancelled_pack_starts_no_further_electron(
    dask_cluster: DaskCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seven electrons on two threads go in two packs; the first electron is cancelled
    while it holds its pack (it runs on: no restart on an existing cluster). Once its
    worker knows, the pack starts none of the others, which run one task each: each
    electron runs once."""
    queued = _resubmitted(monkeypatch)
    tasks = TaskFactory()
    marker, go, ran = tmp_path / "running", tmp_path / "go", tmp_path / "ran"
    group = [
        tasks.task(_marked_until_told, str(marker), str(go)),
        *(tasks.task(_counted, str(ran), x) for x in range(1, 7)),
    ]
    executor = DaskExecutor(scheduler_address=dask_cluster.address)

    async def states(key: str) -> list[str]:
        held = await (await executor.client()).run(_tasks_here)
        return [tasks_held[key] for tasks_held in held.values() if key in tasks_held]

    async def cancel_the_first(handles: list[Cancellable], _: Outcomes) -> None:
        job = handles[0]
        assert isinstance(job, dask_jobs.DaskJob)
        while not marker.exists():
            await asyncio.sleep(0.05)
        assert job.future is not None
        key = job.future.key
        job.cancel()
        while await states(key) != ["cancelled"]:  # its worker knows, its thread runs on
            await asyncio.sleep(0.05)
        go.touch()
        while await states(key):  # the pack's thread has returned
            await asyncio.sleep(0.05)

    outcomes = _group(dask_cluster, executor, group, cancel_the_first)
    assert outcomes[group[0].node_id].status == Status.CANCELLED
    assert [tasks.output(outcomes[t.node_id]) for t in group[1:]] == [x + 100 for x in range(1, 7)]
    assert sorted(ran.read_text().split()) == [str(x) for x in range(1, 7)]  # once each
    assert queued[0] == 7 and queued[1:] == [3], queued  # the pack's other three


def test_an_electron_cancelled_while_it_is_submitted_never_runs(
    dask_cluster: DaskCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An electron cancelled while the executor submits its group (during its awaits on
    the cluster) is not sent: it never runs, and the others each run once. A pack sent
    with it, then stopped, had already started on its worker (a reviewer's find)."""
    submit = DaskExecutor._submit
    tasks = TaskFactory()
    ran = tmp_path / "ran"
    group = [tasks.task(_counted, str(ran), x) for x in range(7)]

    async def cancelling_submit(
        self: DaskExecutor, client: Any, ready: list[tuple[dask_jobs.DaskJob, bytes]]
    ) -> Any:
        for job, _ in ready:  # as the dispatcher may while _submit awaits the cluster
            if job.task.node_id == group[1].node_id:
                job.cancel()
        return await submit(self, client, ready)

    monkeypatch.setattr(DaskExecutor, "_submit", cancelling_submit)
    outcomes = _group(dask_cluster, DaskExecutor(scheduler_address=dask_cluster.address), group)
    assert outcomes[group[1].node_id].status == Status.CANCELLED
    others = [t for x, t in enumerate(group) if x != 1]
    assert [tasks.output(outcomes[t.node_id]) for t in others] == [
        x + 100 for x in range(7) if x != 1
    ]
    assert sorted(ran.read_text().split()) == [str(x) for x in range(7) if x != 1]


# through a real server


@ct.electron(executor="dask")
def on_local_cluster(x):
    import os

    print(f"local cluster got {x}")
    return x + 1, os.getpid(), os.getppid()


@ct.electron
def on_pool(x):
    return x * 10


@ct.electron(executor="dask")
def broken_on_dask(x):
    raise ValueError(f"dask says no to {x}")


def _remote_work(x):
    import os
    import sys

    print(f"remote got {x}")
    print("remote warning", file=sys.stderr)
    return x * 2, os.getppid()


@pytest.fixture(scope="module")
def dask_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """A server of this module's own, whose local Dask cluster has one worker."""
    root = tmp_path_factory.mktemp("dask-server") / "home"
    port = free_port()
    home = Home(root, port, home_env(root, port))
    with open(root / "config" / "covalent.conf", "a") as f:
        f.write("\n[executors.dask]\nn_workers = 1\n")
    started = home.run("covalent", "start")
    assert started.returncode == 0, started.stderr
    yield home
    home.run("covalent", "stop")


@pytest.fixture
def dask_server(dask_home: Home, monkeypatch: pytest.MonkeyPatch) -> Home:
    for key, value in dask_home.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COVALENT_SERVER_URL", dask_home.url)
    return dask_home


def test_workflow_mixes_dask_clusters_and_local(
    dask_server: Home, dask_cluster: DaskCluster
) -> None:
    existing = ct.executor.DaskExecutor(scheduler_address=dask_cluster.address)
    remote = ct.electron(_remote_work, executor=existing)

    @ct.lattice
    def mixed(x):
        doubled = remote(on_pool(x))  # local pool, then the existing cluster
        return on_local_cluster(doubled[0])  # then the server's own cluster

    result = ct.dispatch_sync(mixed)(2)
    assert result.status == ct.status.COMPLETED, result.error
    value, pid, ppid = result.result
    assert value == 41
    assert ppid == dask_server.server_pid()  # the local cluster's nannies live in the server
    nodes = {n["node_name"]: n for n in result.get_all_node_results()}
    assert nodes["_remote_work"]["output"][1] in dask_cluster.nanny_pids
    assert nodes["_remote_work"]["stdout"] == "remote got 20\n"
    assert nodes["_remote_work"]["stderr"] == "remote warning\n"
    assert nodes["on_local_cluster"]["stdout"] == "local cluster got 40\n"
    assert nodes["_remote_work"]["executor"] == "dask"
    assert nodes["on_local_cluster"]["executor"] == "dask"
    assert nodes["on_pool"]["executor"] == "local"


def test_failing_dask_electron_keeps_its_traceback(dask_server: Home) -> None:
    @ct.lattice
    def failing(x):
        return on_pool(broken_on_dask(x)), on_pool(x)

    result = ct.dispatch_sync(failing)(5)
    assert result.status == ct.status.FAILED
    nodes = {f"{n['node_name']}({n['node_id']})": n for n in result.get_all_node_results()}
    failed = nodes["broken_on_dask(0)"]
    assert failed["status"] == ct.status.FAILED and failed["executor"] == "dask"
    assert "ValueError: dask says no to 5" in failed["error"]
    assert "raise ValueError" in failed["error"]  # the user's own line, from the worker
    assert nodes["on_pool(2)"]["status"] == ct.status.NOT_RUN
    assert any(n["output"] == 50 for n in nodes.values())  # the independent branch ran
    assert "broken_on_dask(0)" in result.error


@ct.electron(executor="dask")
def mark_then_sleep(path):
    import os
    import time

    with open(path + ".part", "w") as f:
        f.write(str(os.getpid()))
    os.replace(path + ".part", path)
    time.sleep(600)


def _kill_the_marked(marker: Path) -> None:
    """Kill the process ``marker`` names if it still runs: a failed cancel must not leave
    a shared worker busy for the tests after."""
    if marker.exists() and _pid_alive(int(marker.read_text())):
        with contextlib.suppress(OSError):
            os.kill(int(marker.read_text()), signal.SIGKILL)


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_cancel_stops_an_electron_on_the_local_cluster(dask_server: Home, tmp_path: Path) -> None:
    marker = tmp_path / "running"

    @ct.lattice
    def sleepy(path):
        return mark_then_sleep(path)

    @ct.lattice
    def quick(x):
        return on_local_cluster(x)

    dispatch_id = ct.dispatch(sleepy)(str(marker))
    wait_for(marker.exists, START_DEADLINE, "the electron to start on the local cluster")
    pid = int(marker.read_text())
    ct.cancel(dispatch_id)
    result = ct.get_result(dispatch_id, wait=True)
    assert result.status == ct.status.CANCELLED
    wait_for(lambda: not _pid_alive(pid), 60, "the cancelled electron's worker to stop")
    after = ct.dispatch_sync(quick)(1)  # the restarted worker takes the next electron
    assert after.status == ct.status.COMPLETED and after.result[0] == 2


# covalent cluster


def _cluster(home: Home, *options: str) -> subprocess.CompletedProcess[str]:
    return home.run("covalent", "cluster", *options, timeout=600)


def test_cluster_command(home: Home) -> None:
    with open(home.root / "config" / "covalent.conf", "a") as f:
        f.write("\n[executors.dask]\nn_workers = 1\n")
    assert _cluster(home, "--status").returncode == 7  # no server yet
    assert home.run("covalent", "start").returncode == 0

    status = _cluster(home)
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("Local Dask cluster is not running;")

    address = _cluster(home, "--address").stdout.strip()  # starts it
    assert address.startswith("tcp://127.0.0.1:"), address
    assert _cluster(home, "--size").stdout.strip() == "1"
    scaled = _cluster(home, "--scale", "2")
    assert scaled.stdout.strip() == "Local Dask cluster now has 2 workers.", scaled.stderr
    info = json.loads(_cluster(home, "--info").stdout)
    assert info["address"] == address and info["n_workers"] == 2 and info["dashboard"] == ""
    assert all(w["address"].startswith("tcp://127.0.0.1:") for w in info["workers"])

    restarted = _cluster(home, "--restart")
    assert restarted.stdout.strip() == "Local Dask cluster restarted its 2 workers.", (
        restarted.stderr
    )
    status = _cluster(home, "--status").stdout.strip()
    assert status == f"Local Dask cluster is running at {address} with 2 workers (2 threads)."
    workers = [w["address"] for w in json.loads(_cluster(home, "--info").stdout)["workers"]]

    bad = _cluster(home, "--scale", "0")
    assert bad.returncode == 9 and "give 1 or more" in bad.stderr
    both = _cluster(home, "--size", "--address")
    assert both.returncode == 2 and "only one of" in both.stderr

    assert home.run("covalent", "stop").returncode == 0  # the server closes its cluster
    ports = [int(a.rsplit(":", 1)[1]) for a in [address, *workers]]
    wait_for(lambda: not any(_port_open(p) for p in ports), 60, "the local cluster to stop")


def test_local_cluster_settings_apply_once() -> None:
    async def work() -> tuple[int, int]:
        first = LocalDaskCluster.acquire(n_workers=3)
        second = LocalDaskCluster.acquire(n_workers=5)
        assert first is second and first.users == 2
        await first.release()
        await second.release()
        third = LocalDaskCluster.acquire(n_workers=5)
        await third.release()
        return first.n_workers, third.n_workers

    assert asyncio.run(work()) == (3, 5)
