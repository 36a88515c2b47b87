"""A conformance kit: the checks every executor must pass.

Subclass :class:`ExecutorConformance` in a pytest test module and give it an
``executor`` fixture that returns a fresh, configured executor::

    from covalent.executor.testing import ExecutorConformance

    class TestMyExecutor(ExecutorConformance):
        @pytest.fixture
        def executor(self):
            return MyExecutor(host="...")

Every check drives the executor the way the dispatcher does: ``setup()``, then
``execute(task)`` with a :class:`~covalent.executor.task.Task` whose function and
arguments are blobs, then ``teardown()``, in one event loop. A run executor (one that
implements ``run``) is driven as the server drives it: through a stand-in that runs
each task in a worker process, where the executor is rebuilt from its settings and its
``setup(task_metadata)``, ``run`` and ``teardown(task_metadata)`` are called.

Class attributes tune the checks:

- ``shared_dir``: a folder both this process and the executor's tasks can see (a shared
  file system). The cancellation check then sees that the task's process really stopped,
  and the concurrency check's tasks meet there; without it they meet in the temporary
  folder of the machine they run on, so tasks that may land on different machines need
  it.
- ``concurrency`` (3): how many tasks must run at once. Each waits until all have
  started, so the check passes only if they really overlap, however slowly they start.
- ``meet_within`` (90 s): how long a task waits for the others before it gives up.

A cancelled task must end as the dispatcher sees a cancel: its ``execute`` call
cancelled, or an outcome of status CANCELLED (FAILED is a failure, not a cancel).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from covalent._results.status import Status
from covalent._wire import blobs
from covalent.executor.base import BaseExecutor
from covalent.executor.stand_in import WorkerExecutor
from covalent.executor.task import Outcome, Task

LARGE = 100 * 1024 * 1024
DEADLINE = 120.0


class TaskFactory:
    """Makes tasks out of plain functions and values, keeping their blobs in memory."""

    def __init__(self, dispatch_id: str = "conformance") -> None:
        self.blobs: dict[str, bytes] = {}
        self.dispatch_id = dispatch_id
        self.count = 0

    def blob(self, value: Any) -> str:
        data = blobs.dumps(value)
        name = blobs.digest(data)
        self.blobs[name] = data
        return name

    def task(
        self, function: Callable[..., Any], *args: Any, results_dir: str = "", **kwargs: Any
    ) -> Task:
        self.count += 1
        return Task(
            dispatch_id=self.dispatch_id,
            node_id=self.count,
            name=function.__name__,
            function=self.blob(function),
            args=[self.blob(a) for a in args],
            kwargs={k: self.blob(v) for k, v in kwargs.items()},
            load_blob=self.blobs.__getitem__,
            results_dir=results_dir,
        )

    def output(self, outcome: Outcome) -> Any:
        assert outcome.status == Status.COMPLETED, outcome.error
        assert outcome.output is not None
        return blobs.loads(outcome.output)


def served(executor: BaseExecutor) -> BaseExecutor:
    """What the server runs ``executor``'s tasks with: itself for an execute executor,
    else a stand-in that runs its ``run`` in worker processes."""
    if type(executor).execute is not BaseExecutor.execute:
        return executor
    return WorkerExecutor(executor.worker_plugin())


def drive(executor: BaseExecutor, work: Callable[[BaseExecutor], Awaitable[Any]]) -> Any:
    """Run ``work(executor)`` as the server would, between ``setup()`` and ``teardown()``
    of what serves it (:func:`served`), in one loop."""
    server_side = served(executor)

    async def main() -> Any:
        await server_side.setup()
        try:
            return await asyncio.wait_for(work(server_side), DEADLINE)
        finally:
            await server_side.teardown()

    return asyncio.run(main())


# The electrons the checks run. Module-level, so that they pickle by reference when
# covalent is installed where the executor runs.


def _add(x: int, y: int) -> int:
    return x + y


def _fail(message: str) -> None:
    raise ValueError(message)


def _talk(text: str) -> str:
    import sys

    print(f"out: {text}")
    print(f"err: {text}", file=sys.stderr)
    return text


def _echo_size(data: bytes) -> bytes:
    return data + b"!"


def _interval(seconds: float) -> tuple[float, float]:
    import time

    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def _meet(place: str, me: int, count: int, seconds: float) -> int:
    """One of ``count`` tasks that wait for each other in the folder ``place`` (relative:
    under this machine's temporary folder): it leaves a mark there, then waits until the
    marks of all ``count`` are there. Returns how many it saw: ``count`` once all arrived,
    fewer when it gave up after ``seconds`` or because another task had given up (so
    tasks run one after another end after ``seconds``, not ``count`` times that)."""
    import tempfile
    import time

    folder = Path(tempfile.gettempdir()) / place
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"task-{me}").touch()
    deadline = time.monotonic() + seconds
    while True:
        seen = len(list(folder.glob("task-*")))
        if seen >= count or (folder / "gave-up").exists():
            return seen
        if time.monotonic() > deadline:
            (folder / "gave-up").touch()
            return seen
        time.sleep(0.05)


def _mark_then_sleep(marker: str, seconds: float) -> int:
    import os
    import time

    if marker:
        Path(marker).write_text(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


def _context() -> tuple[str | None, int | None]:
    import covalent as ct

    context = ct.get_context()
    return context.dispatch_id, context.node_id


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class ExecutorConformance:
    """The checks; subclasses provide the ``executor`` fixture."""

    shared_dir: str | None = None
    concurrency: int = 3
    meet_within: float = 90.0

    @pytest.fixture
    def executor(self) -> BaseExecutor:
        raise NotImplementedError("Give your test class an `executor` fixture.")

    def test_returns_the_value(self, executor: BaseExecutor) -> None:
        tasks = TaskFactory()
        outcome = drive(executor, lambda ex: ex.execute(tasks.task(_add, 2, y=3)))
        assert tasks.output(outcome) == 5
        assert outcome.start_time <= outcome.end_time

    def test_failure_keeps_the_original_traceback(self, executor: BaseExecutor) -> None:
        tasks = TaskFactory()
        outcome = drive(executor, lambda ex: ex.execute(tasks.task(_fail, "no good")))
        assert outcome.status == Status.FAILED
        assert "ValueError: no good" in outcome.error
        assert "_fail" in outcome.error  # the electron's own frame is in the traceback

    def test_captures_stdout_and_stderr(self, executor: BaseExecutor) -> None:
        tasks = TaskFactory()
        task = tasks.task(_talk, "hi")
        streamed: dict[str, str] = {"stdout": "", "stderr": ""}

        def on_output(stream: str, text: str) -> None:
            streamed[stream] += text

        task.on_output = on_output
        outcome = drive(executor, lambda ex: ex.execute(task))
        assert tasks.output(outcome) == "hi"
        # what was reported while it ran, then the rest with the outcome
        assert streamed["stdout"] + outcome.stdout == "out: hi\n"
        assert streamed["stderr"] + outcome.stderr == "err: hi\n"

    def test_reports_its_start_if_it_says_it_does(self, executor: BaseExecutor) -> None:
        tasks = TaskFactory()
        task = tasks.task(_interval, 0.5)
        starts: list[float] = []
        task.on_start = starts.append
        before = time.time()
        outcome = drive(executor, lambda ex: ex.execute(task))
        began, _ended = tasks.output(outcome)
        if executor.reports_start():
            assert len(starts) == 1, f"on_start was called {len(starts)} times"
            assert before - 1 <= starts[0] <= began + 1  # clocks of other hosts may differ

    def test_sets_the_task_context(self, executor: BaseExecutor) -> None:
        tasks = TaskFactory("ctx-dispatch")
        task = tasks.task(_context)
        outcome = drive(executor, lambda ex: ex.execute(task))
        assert tasks.output(outcome) == ("ctx-dispatch", task.node_id)

    def test_large_arguments_and_outputs(self, executor: BaseExecutor) -> None:
        tasks = TaskFactory()
        data = os.urandom(1024) * (LARGE // 1024)
        outcome = drive(executor, lambda ex: ex.execute(tasks.task(_echo_size, data)))
        result = tasks.output(outcome)
        assert len(result) == LARGE + 1 and result[:1024] == data[:1024] and result[-1:] == b"!"

    def test_runs_tasks_concurrently(self, executor: BaseExecutor) -> None:
        """``concurrency`` tasks that each wait until all have started: they can only all
        finish if they run at the same time (a task gives up after ``meet_within`` s)."""
        tasks = TaskFactory()
        name = f"covalent-meet-{os.getpid()}-{time.time_ns()}"
        place = str(Path(self.shared_dir) / name) if self.shared_dir else name
        batch = [
            tasks.task(_meet, place, n, self.concurrency, self.meet_within)
            for n in range(self.concurrency)
        ]

        async def work(ex: BaseExecutor) -> list[Outcome]:
            return list(await asyncio.gather(*(ex.execute(t) for t in batch)))

        try:
            seen = [tasks.output(o) for o in drive(executor, work)]
        finally:
            shutil.rmtree(Path(tempfile.gettempdir()) / place, ignore_errors=True)
        assert seen == [self.concurrency] * self.concurrency, (
            f"{self.concurrency} tasks did not all run at once: each saw {seen} started "
            f"(within {self.meet_within} s)"
        )

    def test_cancel_stops_a_running_task(self, executor: BaseExecutor, tmp_path: Path) -> None:
        tasks = TaskFactory()
        folder = Path(self.shared_dir) if self.shared_dir else None
        marker = str(folder / f"cancel-{os.getpid()}-{time.time_ns()}") if folder else ""
        # Longer than the checks below can take (60 s to cancel, DEADLINE for the next
        # task, 60 s to see the process gone), so the sleep cannot end before they do; not
        # so long that a failed cancel keeps a shared worker busy for the tests after.
        running = tasks.task(_mark_then_sleep, marker, 300.0)
        after = tasks.task(_add, 1, y=1)

        async def work(ex: BaseExecutor) -> tuple[Any, float, Outcome]:
            job = asyncio.create_task(ex.execute(running))
            await _wait_started(marker, job)
            began = time.monotonic()
            job.cancel()
            try:
                outcome: Any = await job
            except asyncio.CancelledError:
                outcome = None
            return outcome, time.monotonic() - began, await ex.execute(after)

        outcome, took, next_outcome = drive(executor, work)
        # cancelled: the execute call was cancelled, or it answered CANCELLED
        assert outcome is None or outcome.status == Status.CANCELLED, outcome
        assert took < 60.0
        assert tasks.output(next_outcome) == 2  # the executor still works after a cancel
        if marker:
            pid = int(Path(marker).read_text())
            deadline = time.monotonic() + 60
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not _pid_alive(pid), "the cancelled task's process is still running"


async def _wait_started(marker: str, job: asyncio.Task[Any]) -> None:
    """Wait until the task has started (its marker exists), or a little while without one."""
    deadline = time.monotonic() + (DEADLINE / 2 if marker else 3.0)
    while time.monotonic() < deadline and not job.done():
        if marker and os.path.exists(marker) and os.path.getsize(marker):
            return
        await asyncio.sleep(0.05)
    if marker and not job.done():
        raise AssertionError("the task did not start in time")
