"""LocalExecutor against the conformance kit, plus its own options."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import io
import os
import random
import resource
import signal
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from covalent._results.status import Status
from covalent.executor import LocalExecutor, _pool, _worker
from covalent.executor.task import Outcome
from covalent.executor.testing import ExecutorConformance, TaskFactory, drive


class TestLocalExecutorConformance(ExecutorConformance):
    concurrency = 4

    @pytest.fixture
    def executor(self, tmp_path: Path) -> LocalExecutor:
        self.shared_dir = str(tmp_path)
        return LocalExecutor()


def _where() -> tuple[str, str | None]:
    return os.getcwd(), os.environ.get("COVALENT_TEST_VALUE")


def _pid() -> int:
    return os.getpid()


def _say(text: str) -> str:
    print(text)
    return text


def test_workdir_and_env(tmp_path: Path) -> None:
    tasks = TaskFactory()
    executor = LocalExecutor(workdir=str(tmp_path / "work"), env={"COVALENT_TEST_VALUE": "42"})
    outcome = drive(executor, lambda ex: ex.execute(tasks.task(_where)))
    assert tasks.output(outcome) == (str(tmp_path / "work"), "42")
    assert os.environ.get("COVALENT_TEST_VALUE") is None


def test_create_unique_workdir(tmp_path: Path) -> None:
    tasks = TaskFactory("d1")
    task = tasks.task(_where)
    executor = LocalExecutor(workdir=str(tmp_path), create_unique_workdir=True)
    cwd, _ = tasks.output(drive(executor, lambda ex: ex.execute(task)))
    assert cwd == str(tmp_path / "d1" / f"node_{task.node_id}")


def _say_both(text: str) -> str:
    print(f"out: {text}")
    print(f"err: {text}", file=sys.stderr)
    return text


def test_log_files_get_the_output(tmp_path: Path) -> None:
    tasks = TaskFactory()
    out, err = tmp_path / "out.log", tmp_path / "err.log"
    executor = LocalExecutor(log_stdout=str(out), log_stderr=str(err))
    drive(executor, lambda ex: ex.execute(tasks.task(_say_both, "one")))
    drive(executor, lambda ex: ex.execute(tasks.task(_say_both, "two")))
    assert out.read_text() == "out: one\nout: two\n"  # appended, each stream to its file
    assert err.read_text() == "err: one\nerr: two\n"


def test_relative_log_files_land_in_the_results_folder(tmp_path: Path) -> None:
    tasks = TaskFactory()
    task = tasks.task(_say_both, "here", results_dir=str(tmp_path))
    executor = LocalExecutor(log_stdout="stdout.log", log_stderr="stderr.log")
    drive(executor, lambda ex: ex.execute(task))
    assert (tmp_path / "stdout.log").read_text() == "out: here\n"
    assert (tmp_path / "stderr.log").read_text() == "err: here\n"


def _pollute(kind: str) -> int:
    """Change the worker process as a careless electron might."""
    if kind == "env":
        os.environ["COVALENT_TEST_POLLUTED"] = "yes"
        del os.environ["PATH"]
    elif kind == "cwd":
        gone = tempfile.mkdtemp()
        os.chdir(gone)
        os.rmdir(gone)
    elif kind == "sys.stdout":
        sys.stdout.close()
        sys.stderr = io.StringIO()
    elif kind == "descriptors":
        os.close(1)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    elif kind == "limits":
        resource.setrlimit(
            resource.RLIMIT_AS, (400 * 2**20, resource.getrlimit(resource.RLIMIT_AS)[1])
        )
        resource.setrlimit(resource.RLIMIT_CPU, (1000, resource.getrlimit(resource.RLIMIT_CPU)[1]))
    return os.getpid()


def _limits() -> list[tuple[int, int]]:
    return [resource.getrlimit(kind) for kind in (resource.RLIMIT_AS, resource.RLIMIT_CPU)]


def _probe() -> tuple[int, str, str | None, bool, list[tuple[int, int]]]:
    print("probe out")
    print("probe err", file=sys.stderr)
    polluted = os.environ.get("COVALENT_TEST_POLLUTED")
    return os.getpid(), os.getcwd(), polluted, "PATH" in os.environ, _limits()


@pytest.mark.parametrize("kind", ["env", "cwd", "sys.stdout", "descriptors", "limits"])
def test_what_a_task_changes_in_its_worker_process_the_next_task_does_not_see(kind: str) -> None:
    # workers are reused, by tasks of any dispatch: one electron that closed its stdout or
    # deleted its working directory made every later electron on that worker fail
    tasks = TaskFactory()

    async def work(ex: LocalExecutor) -> tuple[Outcome, Outcome]:
        return await ex.execute(tasks.task(_pollute, kind)), await ex.execute(tasks.task(_probe))

    polluted, probed = drive(LocalExecutor(workers=1), work)
    pid, cwd, polluted_env, has_path, limits = tasks.output(probed)
    assert pid == tasks.output(polluted)  # the same worker process ran both
    assert (cwd, polluted_env, has_path) == (os.getcwd(), None, True)
    assert limits == _limits()
    assert (probed.stdout, probed.stderr) == ("probe out\n", "probe err\n")


_SETRLIMIT: list[Any] = []  # libc's setrlimit, as the worker's first task looked it up


class _Rlimit(ctypes.Structure):
    _fields_ = [("soft", ctypes.c_ulong), ("hard", ctypes.c_ulong)]


def _lower_cpu_limit_in_c(then_sleep: float) -> int:
    """Lower RLIMIT_CPU's soft limit through libc, as C code would, then take
    ``then_sleep`` seconds. The first call in a process looks the function up (ctypes
    raises an audit event); later ones raise no event at all."""
    if not _SETRLIMIT:
        _SETRLIMIT.append(ctypes.CDLL(None, use_errno=True).setrlimit)
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    assert _SETRLIMIT[0](resource.RLIMIT_CPU, ctypes.byref(_Rlimit(1000, hard))) == 0
    time.sleep(then_sleep)
    return os.getpid()


def test_a_limit_lowered_in_c_is_put_back_before_the_next_task() -> None:
    # The worker reads the limits only after a task that may have changed them: one that
    # raised an audit event (here ctypes' lookup of a C function), or that took 1 ms or
    # more whatever it did (C code that changes a limit raises no event). One batch, so
    # that no wait for the next task counts as the task's time.
    tasks = TaskFactory()
    batch = [
        tasks.task(os.getpid),
        tasks.task(_lower_cpu_limit_in_c, 0.0),  # looked up now: an event
        tasks.task(_probe),
        tasks.task(_lower_cpu_limit_in_c, 0.01),  # no event, but 10 ms
        tasks.task(_probe),
    ]

    async def work(ex: LocalExecutor) -> list[Outcome]:
        await ex.execute(tasks.task(_probe))  # the worker is up, with this module imported
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in batch]
        with ex.pool._lock:  # the worker thread takes them all at once: one batch
            ex.pool.start_many(
                [(t, ex.task_options(t), f.set_result) for t, f in zip(batch, futures, strict=True)]
            )
        return list(await asyncio.gather(*futures))

    pid, first, after_first, second, after_second = map(
        tasks.output, drive(LocalExecutor(workers=1), work)
    )
    assert pid == first == after_first[0] == second == after_second[0]  # one process
    assert after_first[4] == _limits()
    assert after_second[4] == _limits()


def test_the_time_rule_counts_a_tasks_own_time_not_the_wait_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A worker that waited for its next task (a chain's step, handed as the step before
    # it ended) checked the limits and the working directory after it as if the task had
    # taken that long: eight system calls on most steps of a chain.
    checks: list[bool] = []

    class Recorder:
        def restore(self, thorough: bool = True) -> None:
            checks.append(thorough)

    monkeypatch.setattr(_worker._Seen, "outside", False)  # no audit event: the time rule
    monkeypatch.setattr(_worker._Seen, "always", False)
    worker = _worker.Worker.__new__(_worker.Worker)  # its state only: no socket, no thread
    worker.baseline, worker.capture, worker.children = Recorder(), None, False  # type: ignore[assignment]
    worker.threads = threading.active_count() + 1_000  # other tests' threads: not this rule
    worker.began = time.monotonic()  # a quick task, begun after a long idle wait
    worker._tidy()
    worker.began = time.monotonic() - 2 * _worker.THOROUGH_AFTER  # a longer one
    worker._tidy()
    assert checks == [False, True]


_INTERPRETERS: list[Any] = []  # a subinterpreter a task made, kept for a later task


def _make_subinterpreter() -> int:
    import _xxsubinterpreters  # type: ignore[import-not-found]  # (CPython 3.11, 3.12)

    _INTERPRETERS.append(_xxsubinterpreters.create())
    return os.getpid()


def _move_and_limit_in_subinterpreter(folder: str) -> int:
    """Move the process's working directory and lower RLIMIT_CPU from a subinterpreter,
    whose audit events the worker's interpreter never sees."""
    import _xxsubinterpreters

    code = (
        f"import os, resource\nos.chdir({folder!r})\n"
        "resource.setrlimit(resource.RLIMIT_CPU, "
        "(1000, resource.getrlimit(resource.RLIMIT_CPU)[1]))"
    )
    _xxsubinterpreters.run_string(_INTERPRETERS[0], code)
    return os.getpid()


@pytest.mark.skipif(
    sys.version_info >= (3, 13), reason="the private _xxsubinterpreters of 3.11 and 3.12"
)
def test_what_a_subinterpreter_changes_is_put_back_before_the_next_task(
    tmp_path: Path,
) -> None:
    # Found by review: a subinterpreter's events go to its own audit hooks, so once a
    # task made one, the worker checks everything after every task
    tasks = TaskFactory()
    batch = [
        tasks.task(_make_subinterpreter),
        tasks.task(_move_and_limit_in_subinterpreter, str(tmp_path)),
        tasks.task(_probe),
    ]

    async def work(ex: LocalExecutor) -> list[Outcome]:
        await ex.execute(tasks.task(_probe))  # the worker is up, with this module imported
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in batch]
        with ex.pool._lock:  # one batch: no wait between the tasks
            ex.pool.start_many(
                [(t, ex.task_options(t), f.set_result) for t, f in zip(batch, futures, strict=True)]
            )
        return list(await asyncio.gather(*futures))

    made, moved, probed = map(tasks.output, drive(LocalExecutor(workers=1), work))
    assert made == moved == probed[0]  # one process
    assert probed[1] == os.getcwd()
    assert probed[4] == _limits()


def _leaves_a_writer(go: str) -> int:
    import subprocess

    # Its shell exits at once; its loop goes on (reparented), writing once ``go`` exists.
    script = f"while [ ! -e {go} ]; do sleep 0.05; done; echo leaked; echo leaked >&2"
    subprocess.Popen(["sh", "-c", f"( {script} ) &"]).wait()
    print("mine")
    return os.getpid()


def _waits_then_prints(go: str, done: str) -> int:
    Path(go).touch()  # the leftover writes now, while this task runs
    deadline = time.monotonic() + 120
    while not Path(done).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    print("mine too")
    return os.getpid()


def test_a_process_a_task_leaves_running_does_not_write_into_the_next_tasks_output(
    tmp_path: Path,
) -> None:
    """One worker runs both tasks; the first leaves a process that writes to the stdout
    and stderr it inherited while the second runs: none of it is the second's output."""
    tasks = TaskFactory()
    go, done = str(tmp_path / "go"), str(tmp_path / "done")
    first = tasks.task(_leaves_a_writer, go)
    second = tasks.task(_waits_then_prints, go, done)

    async def work(ex: LocalExecutor) -> tuple[Outcome, Outcome]:
        ran = await ex.execute(first)
        running = asyncio.ensure_future(ex.execute(second))
        # The leftover has written (its output has had time to reach the pipe) when its
        # shell loop ends: wait until no ``sh`` of ours is left, then let the task end.
        deadline = time.monotonic() + 120
        while _shell_loop_alive(go) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        Path(done).touch()
        return ran, await running

    ran, probed = drive(LocalExecutor(workers=1), work)
    assert tasks.output(ran) == tasks.output(probed)  # the same worker process ran both
    assert ran.stdout == "mine\n"
    assert (probed.stdout, probed.stderr) == ("mine too\n", "")


def _shell_loop_alive(go: str) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if go.encode() in (entry / "cmdline").read_bytes():
                    return True
            except OSError:
                continue
    return False


def test_default_worker_count_is_at_least_eight() -> None:
    assert LocalExecutor().pool.max_workers >= max(8, os.cpu_count() or 1)
    assert LocalExecutor(workers=3).pool.max_workers == 3


def _nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_a_quick_reply_is_not_held_back_by_a_slow_task_in_its_batch() -> None:
    """One worker gets both tasks in one batch; the quick one's outcome arrives while the
    slow one still sleeps (replies go out as the socket is free, not once per batch)."""
    tasks = TaskFactory()
    quick, slow = tasks.task(_say, "quick"), tasks.task(_nap, 600)

    async def both(ex: LocalExecutor) -> tuple[Outcome, bool]:
        first: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        done: dict[str, Outcome] = {}

        def report(name: str) -> Callable[[Outcome], None]:
            def _report(outcome: Outcome) -> None:
                done[name] = outcome
                if not first.done():
                    first.set_result(name)

            return _report

        with ex.pool._lock:  # the worker thread takes both at once: one batch
            jobs = [
                ex.pool.start(quick, ex.task_options(quick), report("quick")),
                ex.pool.start(slow, ex.task_options(slow), report("slow")),
            ]
        name = await first
        slow_still_running = "slow" not in done
        for job in jobs:
            job.cancel()
        return done[name], name == "quick" and slow_still_running

    outcome, quick_first = drive(LocalExecutor(workers=1), both)
    assert quick_first
    assert tasks.output(outcome) == "quick"


def test_a_small_dispatch_does_not_wait_for_all_of_a_large_ones_queued_tasks() -> None:
    """Queued tasks are taken one dispatch at a time in turn: one worker, 40 tasks of one
    dispatch queued before one task of another; that one runs second, not 41st."""
    large, small = TaskFactory("large"), TaskFactory("small")
    naps = [large.task(_nap, 0.02) for _ in range(40)]
    say = small.task(_say, "small")

    async def queue_both(ex: LocalExecutor) -> list[str]:
        ended: list[str] = []
        all_in = asyncio.Event()

        def report(who: str) -> Callable[[Outcome], None]:
            def _report(outcome: Outcome) -> None:
                assert outcome.status == Status.COMPLETED, outcome.error
                ended.append(who)
                if len(ended) == len(naps) + 1:
                    all_in.set()

            return _report

        with ex.pool._lock:  # the worker's thread takes them as one batch, after both
            for nap in naps:
                ex.pool.start(nap, ex.task_options(nap), report("large"))
            ex.pool.start(say, ex.task_options(say), report("small"))
        await all_in.wait()
        return ended

    ended = drive(LocalExecutor(workers=1), queue_both)
    assert ended.index("small") == 1, ended


def test_the_job_queue_takes_dispatches_in_turn_and_keeps_each_ones_order() -> None:
    a, b = TaskFactory("a"), TaskFactory("b")
    loop = asyncio.new_event_loop()
    try:
        job = lambda t: _pool.Job(t, {}, lambda _o: None, loop)  # noqa: E731
        a_jobs, b_jobs = [job(a.task(_say, str(n))) for n in range(3)], [job(b.task(_pid))]
        queue = _pool.JobQueue()
        queue.extend(a_jobs)
        queue.extend(b_jobs)
        assert len(queue) == 4
        taken = [queue.popleft() for _ in range(2)]
        assert taken == [a_jobs[0], b_jobs[0]]
        queue.put_back(taken)  # back before the others of their dispatches
        assert [queue.popleft() for _ in range(len(queue))] == [
            a_jobs[0], b_jobs[0], a_jobs[1], a_jobs[2]
        ]  # fmt: skip
        with pytest.raises(IndexError):
            queue.popleft()
        queue.extend(a_jobs)
        assert queue.drain() == a_jobs and len(queue) == 0 and not queue
    finally:
        loop.close()


def test_a_chain_of_tasks_runs_on_one_warm_worker() -> None:
    """Each task is handed to the pool as soon as the one before it is reported (as the
    dispatcher hands on a chain's next node): the worker that ran it takes it, and no
    second worker process is started (its start, ~0.25 s, once delayed a whole W1 run)."""
    tasks = TaskFactory()
    chain = [tasks.task(_say, str(n)) for n in range(40)]

    async def work(ex: LocalExecutor) -> tuple[list[Outcome], int]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        outcomes: list[Outcome] = []

        def report(outcome: Outcome) -> None:
            outcomes.append(outcome)
            if len(outcomes) == len(chain):
                done.set_result(None)
            else:
                task = chain[len(outcomes)]
                ex.pool.start(task, ex.task_options(task), report)

        ex.pool.start(chain[0], ex.task_options(chain[0]), report)
        await done
        return outcomes, ex.pool.size

    outcomes, workers = drive(LocalExecutor(workers=4), work)
    assert [tasks.output(o) for o in outcomes] == [str(n) for n in range(len(chain))]
    assert workers == 1


def test_an_idle_worker_thread_does_not_keep_its_last_batchs_tasks() -> None:
    """A finished task (with its inputs: a large collection's 100,000 digests for a
    fan-out's ``total``) is not kept alive by the thread that ran it while the thread
    waits for the next batch: it held its last batch until then (11 MB after a fan-out
    of 100,000, pinning the allocator's arenas under the next large dispatch)."""
    tasks = TaskFactory()

    async def run_one(ex: LocalExecutor) -> tuple[weakref.ref[Any], Outcome]:
        task = tasks.task(_say, "kept?")
        return weakref.ref(task), await ex.execute(task)

    async def after_one(ex: LocalExecutor) -> tuple[Any, Outcome]:
        ex.pool.idle_timeout = 3600  # the thread must not end (and let go) meanwhile
        gone, outcome = await run_one(ex)
        await asyncio.to_thread(_until_waiting, ex.pool)  # the thread waits for more
        gc.collect()
        return gone(), outcome

    kept, outcome = drive(LocalExecutor(workers=1), after_one)
    assert tasks.output(outcome) == "kept?"
    assert kept is None, [type(r) for r in gc.get_referrers(kept)]


def _until_parked(pool: _pool.WorkerPool, count: int = 1) -> None:
    """Wait (60 s at most) until ``count`` worker threads wait idle with a warm worker."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with pool._lock:
            if sum(1 for thread in pool._parked if thread.has_worker()) >= count:
                return
        time.sleep(0.005)
    raise AssertionError(f"no {count} idle warm worker(s) in 60 s")


def _until_waiting(pool: _pool.WorkerPool) -> None:
    """Wait (60 s at most) until every worker thread waits idle in take()."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with pool._lock:
            if pool._threads and len(pool._parked) == len(pool._threads):
                return
        time.sleep(0.005)
    raise AssertionError("the worker threads are not all idle after 60 s")


def _spy_on_hand(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The jobs sent straight to an idle warm worker by their submitter, from now on."""
    handed: list[Any] = []
    hand = _pool._WorkerThread.hand

    def spy(thread: Any, job: Any) -> None:
        handed.append(job)
        hand(thread, job)

    monkeypatch.setattr(_pool._WorkerThread, "hand", spy)
    return handed


def test_a_task_sent_straight_to_an_idle_warm_worker_runs_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A task submitted while a worker thread waits idle with a warm worker is sent by
    the submitter itself; it runs on that worker, which then takes the next one too."""
    tasks = TaskFactory()
    first, second, third = (tasks.task(_pid) for _ in range(3))
    handed = _spy_on_hand(monkeypatch)

    async def work(ex: LocalExecutor) -> list[Outcome]:
        outcomes = [await ex.execute(first)]
        await asyncio.to_thread(_until_parked, ex.pool)
        outcomes.append(await ex.execute(second))
        await asyncio.to_thread(_until_parked, ex.pool)
        outcomes.append(await ex.execute(third))
        return outcomes

    outcomes = drive(LocalExecutor(workers=4), work)
    assert [job.task for job in handed] == [second, third]
    assert len({tasks.output(o) for o in outcomes}) == 1  # one worker process ran all


def test_a_task_whose_blob_cannot_be_read_is_not_sent_straight_to_a_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The submitter cannot make the task's message: the task goes through the queue,
    fails there with the reason, and the warm worker goes on with the next task."""
    tasks = TaskFactory()
    warm, fine = tasks.task(_pid), tasks.task(_pid)
    broken = tasks.task(_say, "lost")
    broken.load_blob = lambda name: (_ for _ in ()).throw(KeyError(f"no blob {name[:8]}"))
    handed = _spy_on_hand(monkeypatch)

    async def work(ex: LocalExecutor) -> tuple[Outcome, Outcome, Outcome]:
        before = await ex.execute(warm)
        await asyncio.to_thread(_until_parked, ex.pool)
        failed = await ex.execute(broken)
        await asyncio.to_thread(_until_parked, ex.pool)
        return before, failed, await ex.execute(fine)

    before, failed, after = drive(LocalExecutor(workers=1), work)
    assert [job.task for job in handed] == [broken, fine]
    assert failed.status == Status.FAILED
    assert "could not be sent" in failed.error and "no blob" in failed.error
    assert tasks.output(after) == tasks.output(before)  # the same worker process


def test_a_task_cancelled_while_it_is_sent_straight_to_a_worker_is_reported_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cancel that arrives while the submitter sends the task (its worker thread not
    yet told, so the cancel finds no worker to stop) still stops it; the pool starts a
    new worker for the next task."""
    tasks = TaskFactory()
    warm, doomed, after = tasks.task(_pid), tasks.task(_nap, 600), tasks.task(_pid)
    message = _pool._WorkerThread._message

    def cancelled_meanwhile(thread: Any, batch: list[Any]) -> Any:
        if batch[0].task is doomed:
            batch[0].cancel()
        return message(thread, batch)

    monkeypatch.setattr(_pool._WorkerThread, "_message", cancelled_meanwhile)
    handed = _spy_on_hand(monkeypatch)

    async def work(ex: LocalExecutor) -> tuple[Outcome, Outcome, Outcome]:
        before = await ex.execute(warm)
        await asyncio.to_thread(_until_parked, ex.pool)
        outcome = await asyncio.wait_for(ex.execute(doomed), 60)
        return before, outcome, await asyncio.wait_for(ex.execute(after), 60)

    before, outcome, done = drive(LocalExecutor(workers=1), work)
    assert [job.task for job in handed] == [doomed]
    assert outcome.status == Status.CANCELLED
    assert tasks.output(done) != tasks.output(before)  # its worker was stopped


def test_a_send_that_fails_oddly_mid_hand_over_ends_the_task_and_not_the_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The submitter's send to an idle warm worker raises something unexpected (the
    worker may hold half a message): that worker is stopped, the task fails with the
    worker's end instead of waiting forever for a reply, and the next task runs."""
    tasks = TaskFactory()
    warm, unlucky, after = tasks.task(_pid), tasks.task(_say, "never"), tasks.task(_pid)
    send_bytes = _pool._WorkerThread._send_bytes

    def odd_send(thread: Any, data: bytes) -> None:
        if unlucky.function.encode() in data or b"never" in data:
            raise RuntimeError("an odd failure mid-send")
        send_bytes(thread, data)

    handed = _spy_on_hand(monkeypatch)

    async def work(ex: LocalExecutor) -> tuple[Outcome, Outcome, Outcome]:
        before = await ex.execute(warm)
        await asyncio.to_thread(_until_parked, ex.pool)
        monkeypatch.setattr(_pool._WorkerThread, "_send_bytes", odd_send)
        failed = await asyncio.wait_for(ex.execute(unlucky), 60)
        monkeypatch.setattr(_pool._WorkerThread, "_send_bytes", send_bytes)
        return before, failed, await asyncio.wait_for(ex.execute(after), 60)

    before, failed, done = drive(LocalExecutor(workers=1), work)
    assert [job.task for job in handed] == [unlucky]
    assert failed.status == Status.FAILED and "killed" in failed.error
    assert done.status == Status.COMPLETED and tasks.output(done) != tasks.output(before)


def _pid_and_size(data: bytes) -> tuple[int, int]:
    return os.getpid(), len(data)


def test_a_large_message_is_left_to_the_workers_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """A task whose message is over HAND_BYTES (a 100 KB input, inline) is not sent by
    the submitter, which must not wait for a worker to read: its worker's thread sends
    it, on the same warm worker."""
    tasks = TaskFactory()
    warm = tasks.task(_pid)
    large = tasks.task(_pid_and_size, bytes(100_000))
    sent_by: list[str] = []
    send_bytes = _pool._WorkerThread._send_bytes

    def recording_send(thread: Any, data: bytes) -> None:
        if len(data) > _pool.HAND_BYTES:
            sent_by.append(threading.current_thread().name)
        send_bytes(thread, data)

    monkeypatch.setattr(_pool._WorkerThread, "_send_bytes", recording_send)
    handed = _spy_on_hand(monkeypatch)

    async def work(ex: LocalExecutor) -> tuple[Outcome, Outcome]:
        before = await ex.execute(warm)
        await asyncio.to_thread(_until_parked, ex.pool)
        return before, await asyncio.wait_for(ex.execute(large), 60)

    before, done = drive(LocalExecutor(workers=1), work)
    assert [job.task for job in handed] == [large]
    assert sent_by == ["covalent-worker"]  # not the event loop's thread
    assert tasks.output(done) == (tasks.output(before), 100_000)


def test_a_cancel_just_after_a_batch_is_sent_stops_its_first_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cancel that comes after the worker got its batch but before its thread marked
    the first task as the one running must kill the worker (the task runs already), not
    mark the task skipped and report it cancelled while it runs on to its end."""
    tasks = TaskFactory()
    warm, doomed, after = tasks.task(_pid), tasks.task(_nap, 600), tasks.task(_pid)
    reached, go = threading.Event(), threading.Event()
    make_current = _pool._WorkerThread._make_current

    def held(thread: Any, job: Any) -> None:
        if job.task is doomed and not go.is_set():
            reached.set()
            go.wait(60)
        make_current(thread, job)

    monkeypatch.setattr(_pool._WorkerThread, "_make_current", held)

    async def work(ex: LocalExecutor) -> tuple[Outcome, Outcome, Outcome]:
        before = await ex.execute(warm)
        cancelled: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        job = ex.pool.start(doomed, ex.task_options(doomed), cancelled.set_result)
        assert await asyncio.to_thread(reached.wait, 60)
        job.cancel()  # the batch is sent and waiting; its first task is not yet current
        go.set()
        outcome = await asyncio.wait_for(cancelled, 60)
        return before, outcome, await asyncio.wait_for(ex.execute(after), 60)

    before, outcome, done = drive(LocalExecutor(workers=1), work)
    assert outcome.status == Status.CANCELLED
    assert tasks.output(done) != tasks.output(before)  # the worker running it was killed


def test_a_fault_of_the_pool_while_a_task_runs_fails_it_and_the_pool_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unexpected error in the worker's thread (a bug of ours) fails the batch's task
    with the error instead of leaving it waiting forever, and the next task runs on a
    new worker."""
    tasks = TaskFactory()
    warm, unlucky, after = tasks.task(_pid), tasks.task(_say, "x"), tasks.task(_pid)
    receive = _pool._WorkerThread._receive

    def faulty(thread: Any) -> Any:
        if thread.current is not None and thread.current.task is unlucky:
            raise RuntimeError("a bug in the pool")
        return receive(thread)

    monkeypatch.setattr(_pool._WorkerThread, "_receive", faulty)

    async def work(ex: LocalExecutor) -> tuple[Outcome, Outcome, Outcome]:
        before = await ex.execute(warm)
        failed = await asyncio.wait_for(ex.execute(unlucky), 60)
        return before, failed, await asyncio.wait_for(ex.execute(after), 60)

    before, failed, done = drive(LocalExecutor(workers=1), work)
    assert failed.status == Status.FAILED and "a bug in the pool" in failed.error
    assert done.status == Status.COMPLETED and tasks.output(done) != tasks.output(before)


def _crash(how: str) -> None:
    if how == "exit":
        os._exit(3)
    if how == "kill":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    raise KeyboardInterrupt("from the electron")  # fails the task; the worker lives on


@pytest.mark.parametrize("how", ["exit", "kill", "interrupt"])
def test_a_worker_that_dies_fails_only_the_task_it_ran(how: str) -> None:
    """One worker takes one batch in which each dispatch's tasks take turns: quick tasks
    of one dispatch, and between them tasks of another that end the worker process. Each
    of those fails (once, with the exit); the quick ones before it, whose replies had
    not left the worker yet, and those after it run again on a new worker and complete:
    the pool does not fail a task of the batch it did not see start."""
    good, bad = TaskFactory("good"), TaskFactory("bad")
    goods = [good.task(_say, str(n)) for n in range(60)]
    bads = [bad.task(_crash, how) for _ in range(3)]

    async def work(ex: LocalExecutor) -> dict[str, list[Outcome]]:
        outcomes: dict[str, list[Outcome]] = {}
        all_in = asyncio.Event()

        def report(key: str) -> Callable[[Outcome], None]:
            def _report(outcome: Outcome) -> None:
                outcomes.setdefault(key, []).append(outcome)
                if len(outcomes) == len(goods) + len(bads):
                    all_in.set()

            return _report

        with ex.pool._lock:  # the worker's thread takes them as one batch, in turns
            for task in goods:
                ex.pool.start(task, ex.task_options(task), report(f"good {task.node_id}"))
            for task in bads:
                ex.pool.start(task, ex.task_options(task), report(f"bad {task.node_id}"))
        await asyncio.wait_for(all_in.wait(), 120)
        return outcomes

    outcomes = drive(LocalExecutor(workers=1), work)
    assert all(len(reported) == 1 for reported in outcomes.values())
    for task in goods:
        (outcome,) = outcomes[f"good {task.node_id}"]
        assert good.output(outcome) == str(task.node_id - 1)
    death = {
        "exit": "exited unexpectedly with code 3",
        "kill": "killed by SIGKILL",
        "interrupt": "KeyboardInterrupt: from the electron",
    }
    for task in bads:
        (outcome,) = outcomes[f"bad {task.node_id}"]
        assert outcome.status == Status.FAILED
        assert death[how] in outcome.error


def _nap_ms(n: int) -> int:
    time.sleep(0.001)
    return n


def test_cancelling_the_task_the_pool_sees_running_fails_no_other() -> None:
    """The pool's view of what its worker runs lags (a quick task's start leaves with
    its reply): a cancel that kills the worker for one task must not fail the task the
    worker had moved on to; that one runs again and completes."""
    tasks = TaskFactory("d")
    batch = [tasks.task(_nap_ms, n) for n in range(1000)]

    async def work(ex: LocalExecutor) -> tuple[dict[int, list[Outcome]], int]:
        await ex.execute(tasks.task(_nap_ms, -1))  # a warm worker
        outcomes: dict[int, list[Outcome]] = {}
        all_in = asyncio.Event()

        def report(node_id: int) -> Callable[[Outcome], None]:
            def _report(outcome: Outcome) -> None:
                outcomes.setdefault(node_id, []).append(outcome)
                if len(outcomes) == len(batch):
                    all_in.set()

            return _report

        with ex.pool._lock:
            jobs = [ex.pool.start(t, ex.task_options(t), report(t.node_id)) for t in batch]
        (thread,) = ex.pool._threads
        victim, deadline = None, time.monotonic() + 60
        while victim is None or victim is jobs[0]:  # well into the batch (a condition)
            assert time.monotonic() < deadline, "the batch never got under way"
            await asyncio.sleep(0.005)
            victim = thread.current
        ex.pool.cancel(victim)
        await asyncio.wait_for(all_in.wait(), 120)
        return outcomes, victim.task.node_id

    outcomes, cancelled = drive(LocalExecutor(workers=1), work)
    assert all(len(reported) == 1 for reported in outcomes.values())
    assert outcomes[cancelled][0].status == Status.CANCELLED
    others = {n: o[0] for n, o in outcomes.items() if n != cancelled}
    assert {o.status for o in others.values()} == {Status.COMPLETED}, [
        (n, o.error) for n, o in others.items() if o.status != Status.COMPLETED
    ]


def _exit_soon_after(path: str) -> str:
    with open(path, "a") as f:
        f.write("ran\n")
    threading.Thread(target=lambda: (time.sleep(0.002), os._exit(13)), daemon=True).start()
    return "ok"


def test_a_task_that_ends_its_worker_after_returning_runs_again_alone(tmp_path: Path) -> None:
    """A task whose thread ends the worker just after it returns (its reply still in the
    worker) was queued again with the rest of the batch, re-run, and killed the next
    worker each time: 97 of 100 batch-mates failed. Requeued after a death, each task
    runs in a batch of its own, so a second death names it, not a batch-mate."""
    good, bad = TaskFactory("good"), TaskFactory("bad")
    goods = [good.task(_nap_ms, n) for n in range(100)]
    marks = tmp_path / "runs"
    poison = bad.task(_exit_soon_after, str(marks))

    async def work(ex: LocalExecutor) -> dict[str, list[Outcome]]:
        await ex.execute(good.task(_nap_ms, -1))
        outcomes: dict[str, list[Outcome]] = {}
        all_in = asyncio.Event()

        def report(key: str) -> Callable[[Outcome], None]:
            def _report(outcome: Outcome) -> None:
                outcomes.setdefault(key, []).append(outcome)
                if len(outcomes) == len(goods) + 1:
                    all_in.set()

            return _report

        with ex.pool._lock:
            for task in goods[:10]:
                ex.pool.start(task, ex.task_options(task), report(f"good {task.node_id}"))
            ex.pool.start(poison, ex.task_options(poison), report("poison"))
            for task in goods[10:]:
                ex.pool.start(task, ex.task_options(task), report(f"good {task.node_id}"))
        await asyncio.wait_for(all_in.wait(), 120)
        return outcomes

    outcomes = drive(LocalExecutor(workers=1), work)
    assert all(len(reported) == 1 for reported in outcomes.values())
    failed = [k for k, (o,) in outcomes.items() if k != "poison" and o.status != Status.COMPLETED]
    runs = len(marks.read_text().splitlines())
    assert runs <= 2 and len(failed) <= runs, (runs, failed)  # was ~98 runs and 97 failed


def test_tasks_requeued_after_a_death_run_alone_and_keep_their_turn() -> None:
    """Requeued after its worker died (``Job.alone``), a task runs in a batch of its own,
    in its dispatch's turn: it does not wait behind another dispatch, nor shrink that
    dispatch's batches to one task each (they were: 200 batches of one)."""
    loop = asyncio.new_event_loop()
    try:
        pool = _pool.WorkerPool(max_workers=2)
        a, b = TaskFactory("a"), TaskFactory("b")

        def job(tasks: TaskFactory) -> _pool.Job:
            return _pool.Job(tasks.task(_nap_ms, 0), {}, lambda outcome: None, loop, pool=pool)

        alone = [job(b) for _ in range(3)]
        for requeued in alone:
            requeued.alone = True
        pool._jobs.put_back(alone)  # first in turn, as after their worker died
        pool._jobs.extend(job(a) for _ in range(200))
        thread: Any = SimpleNamespace(
            handed=[], reserved=False, uncounted=False, sending=False, sent=False
        )
        batches = []
        while len(pool._jobs):
            batches.append([j.task.dispatch_id for j in pool.take(thread) or []])
    finally:
        loop.close()
    assert batches[:5] == [["b"], ["a"], ["b"], ["a"], ["b"]]  # each alone, in turn
    assert max(len(batch) for batch in batches) > 1  # a's batches are batches again
    assert sum(len(batch) for batch in batches) == 203


def test_a_cancel_that_did_not_kill_blames_no_later_death_on_it(tmp_path: Path) -> None:
    """A timed task cancelled as it ends is not killed (its stacks are asked for first);
    the worker lives on, and a later task that ends the worker is the one that fails,
    run once (the cancel's record of what it killed for was left set, so the later
    death blamed no one and the crashing task ran again)."""
    tasks = TaskFactory("d")
    marks = tmp_path / "runs"

    async def work(ex: LocalExecutor) -> Outcome:
        await ex.execute(tasks.task(_nap_ms, -1))
        timed = tasks.task(time.sleep, 0.3)
        timed.metadata["timeout"] = 100
        running = asyncio.ensure_future(ex.execute(timed))
        (thread,) = ex.pool._threads
        deadline = time.monotonic() + 60
        while thread.current is None or thread.current.task is not timed:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        while thread.current is not None:  # the timed task over, the worker idle again
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        return await ex.execute(tasks.task(_mark_then_exit, str(marks)))

    outcome = drive(LocalExecutor(workers=1), work)
    assert outcome.status == Status.FAILED and "code 7" in (outcome.error or "")
    assert marks.read_text().splitlines() == ["ran"]  # once


def _mark_then_exit(path: str) -> None:
    with open(path, "a") as f:
        f.write("ran\n")
    os._exit(7)


def test_a_worker_that_died_while_idle_is_not_sent_a_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """The idle thread's worker process was killed: the next task is not sent to it but
    queued, and its thread starts a new worker for it."""
    tasks = TaskFactory()
    first, second = tasks.task(_pid), tasks.task(_pid)
    handed = _spy_on_hand(monkeypatch)

    async def work(ex: LocalExecutor) -> tuple[Outcome, Outcome]:
        before = await ex.execute(first)
        await asyncio.to_thread(_until_parked, ex.pool)
        (thread,) = ex.pool._threads
        assert thread.process is not None
        os.kill(thread.process.pid, 9)
        await asyncio.to_thread(thread.process.wait, 60)
        return before, await ex.execute(second)

    before, after = drive(LocalExecutor(workers=1), work)
    assert handed == []
    assert after.status == Status.COMPLETED
    assert tasks.output(after) != tasks.output(before)


def test_a_worker_killed_for_a_cancel_is_not_sent_the_next_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cancel stops a task that has just ended: its reply comes before the kill takes
    effect (a SIGKILL takes effect late for a process in an uninterruptible system
    call), and its thread waits idle with a worker that still runs. The chain's next
    task is not sent to that worker, to fail when it dies, but to a new one."""
    tasks = TaskFactory()
    warm, doomed, after = tasks.task(_pid), tasks.task(_pid), tasks.task(_pid)
    late: list[int] = []  # the SIGKILL sent for doomed, held back until after a send
    killpg = os.killpg

    def late_kill(pgid: int, sig: int) -> None:
        if sig == signal.SIGKILL and not late:
            late.append(pgid)
        else:
            killpg(pgid, sig)

    def kill_late() -> None:
        for pgid in late:
            with contextlib.suppress(ProcessLookupError):
                killpg(pgid, signal.SIGKILL)

    message = _pool._WorkerThread._message

    def cancelled_meanwhile(thread: Any, batch: list[Any]) -> Any:
        if batch[0].task is doomed:
            monkeypatch.setattr(_pool.os, "killpg", late_kill)
            batch[0].cancel()
        return message(thread, batch)

    monkeypatch.setattr(_pool._WorkerThread, "_message", cancelled_meanwhile)
    hand = _pool._WorkerThread.hand

    def killed_then_handed(thread: Any, job: Any) -> None:
        if job.task is after:  # the kill takes effect: the task is sent to a dead worker
            kill_late()
            os.waitid(os.P_PID, thread.process.pid, os.WEXITED | os.WNOWAIT)
        hand(thread, job)

    monkeypatch.setattr(_pool._WorkerThread, "hand", killed_then_handed)

    async def work(ex: LocalExecutor) -> tuple[Outcome, Outcome, Outcome]:
        before = await ex.execute(warm)
        await asyncio.to_thread(_until_parked, ex.pool)
        cancelled = await asyncio.wait_for(ex.execute(doomed), 60)
        assert late  # its worker's kill was held back
        with ex.pool._lock:  # back in take(), with its worker still running
            (thread,) = ex.pool._threads
            assert thread.process is not None and thread.process.poll() is None
        await asyncio.to_thread(_until_waiting, ex.pool)
        try:
            return before, cancelled, await asyncio.wait_for(ex.execute(after), 60)
        finally:
            kill_late()

    before, cancelled, done = drive(LocalExecutor(workers=1), work)
    assert cancelled.status == Status.CANCELLED
    assert done.status == Status.COMPLETED, done.error
    assert tasks.output(done) != tasks.output(before)  # a new worker ran it


@pytest.mark.parametrize("readable", [True, False])
def test_a_pool_closed_while_a_task_is_sent_straight_to_a_worker_reports_it(
    monkeypatch: pytest.MonkeyPatch, readable: bool
) -> None:
    """The pool is closed (from another thread) after the submitter reserved an idle
    warm worker's thread and before it sent the task (or found its blob unreadable):
    the task fails with a reason, and the thread is woken and exits, so close() ends."""
    tasks = TaskFactory()
    warm, late = tasks.task(_pid), tasks.task(_pid)
    if not readable:
        late.load_blob = lambda name: (_ for _ in ()).throw(KeyError(f"no blob {name[:8]}"))
    hand = _pool._WorkerThread.hand
    closers: list[threading.Thread] = []

    def closed_meanwhile(thread: Any, job: Any) -> None:
        closer = threading.Thread(target=job.pool.close)
        closers.append(closer)
        closer.start()
        deadline = time.monotonic() + 60
        while thread.conn is not None and time.monotonic() < deadline:  # stop_process
            time.sleep(0.005)
        hand(thread, job)

    monkeypatch.setattr(_pool._WorkerThread, "hand", closed_meanwhile)

    async def work(ex: LocalExecutor) -> Outcome:
        await ex.execute(warm)
        await asyncio.to_thread(_until_parked, ex.pool)
        pool = ex.pool
        outcome = await asyncio.wait_for(ex.execute(late), 60)
        (closer,) = closers
        await asyncio.to_thread(closer.join, 60)
        assert not closer.is_alive()
        assert not pool._threads and not pool._jobs
        return outcome

    outcome = drive(LocalExecutor(workers=1), work)
    assert outcome.status == Status.FAILED
    assert ("shut down" if readable else "stopped") in outcome.error, outcome.error


def _until_quiet(pool: _pool.WorkerPool) -> None:
    """Wait (60 s at most) until every worker thread waits idle in take(), each counted
    idle once, none reserved, and the queue is empty."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with pool._lock:
            state = (pool._idle, len(pool._parked), len(pool._threads), len(pool._jobs))
            if (
                state[0] == state[1] == state[2]
                and not pool._jobs
                and not any(thread.reserved or thread.handed for thread in pool._threads)
            ):
                return
        time.sleep(0.005)
    raise AssertionError(f"not quiet after 60 s: idle, parked, threads, queued = {state}")


def test_chains_on_workers_that_time_out_all_end_and_the_idle_count_stays_right() -> None:
    """Chains of quick tasks, some cancelled, on threads whose idle timeout is so short
    that they keep timing out as tasks are handed to them or queued: every task ends
    (none waits forever), no more threads run than ``workers``, and once all is done
    each thread is counted idle exactly once (a thread counted twice would keep the
    pool from starting one a task needs; one not counted, start one too many)."""
    tasks = TaskFactory()
    rng = random.Random(7)
    peak = 0

    async def chain(ex: LocalExecutor) -> list[Any]:
        nonlocal peak
        ends: list[Any] = []
        for _ in range(12):
            task = tasks.task(_nap, rng.choice([0, 0, 0.001, 0.01]))
            running = asyncio.ensure_future(ex.execute(task))
            if rng.random() < 0.25:
                await asyncio.sleep(rng.choice([0, 0.001]))
                running.cancel()
            try:
                ends.append((await asyncio.wait_for(asyncio.shield(running), 60)).status)
            except asyncio.CancelledError:
                ends.append(Status.CANCELLED)
            peak = max(peak, ex.pool.size)
            if rng.random() < 0.2:  # long enough for some threads to time out
                await asyncio.sleep(0.01)
        return ends

    async def work(ex: LocalExecutor) -> list[list[Any]]:
        ex.pool.idle_timeout = 0.005
        ends = await asyncio.gather(*(chain(ex) for _ in range(6)))
        ex.pool.idle_timeout = 60  # those parked now stay
        await asyncio.to_thread(_until_quiet, ex.pool)
        return ends

    ends = drive(LocalExecutor(workers=3), work)
    assert {end for chain_ends in ends for end in chain_ends} <= {
        Status.COMPLETED,
        Status.CANCELLED,
    }
    assert peak <= 3


def test_cancelling_a_queued_task_reports_it_at_once() -> None:
    """A task still waiting for a worker is dropped and reported CANCELLED right away,
    not when a worker would have reached it."""
    tasks = TaskFactory()
    slow, queued = tasks.task(_nap, 600), tasks.task(_say, "never")

    async def work(ex: LocalExecutor) -> Outcome:
        cancelled: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        running = ex.pool.start(slow, ex.task_options(slow), lambda _o: None)
        waiting = ex.pool.start(queued, ex.task_options(queued), cancelled.set_result)
        await asyncio.sleep(0)
        waiting.cancel()
        outcome = await cancelled
        running.cancel()
        return outcome

    outcome = drive(LocalExecutor(workers=1), work)
    assert outcome.status == Status.CANCELLED


def test_a_task_cancelled_while_its_batch_is_handed_over_is_reported_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One worker takes both tasks in one batch; the second is cancelled after the batch
    was taken but before it reached the worker (the worker process is still starting).
    That cancel found no worker to tell; it must still end the task at once, not when
    the first task (600 s) ends."""
    tasks = TaskFactory()
    slow, queued = tasks.task(_nap, 600), tasks.task(_say, "never")
    sending, go = threading.Event(), threading.Event()
    send = _pool._WorkerThread._send

    def held_send(thread: Any, batch: list[Any]) -> None:
        sending.set()
        go.wait(60)
        send(thread, batch)

    monkeypatch.setattr(_pool._WorkerThread, "_send", held_send)

    async def work(ex: LocalExecutor) -> Outcome:
        cancelled: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        with ex.pool._lock:  # the worker thread takes both at once: one batch
            running = ex.pool.start(slow, ex.task_options(slow), lambda _o: None)
            waiting = ex.pool.start(queued, ex.task_options(queued), cancelled.set_result)
        assert await asyncio.to_thread(sending.wait, 60)
        waiting.cancel()  # taken, not yet sent: no worker knows it yet
        go.set()
        outcome = await asyncio.wait_for(cancelled, 60)
        running.cancel()
        return outcome

    outcome = drive(LocalExecutor(workers=1), work)
    assert outcome.status == Status.CANCELLED


def _touch(path: str) -> str:
    Path(path).touch()
    return path


def test_cancelling_a_task_batched_behind_a_running_one_reports_it_at_once(
    tmp_path: Path,
) -> None:
    """One worker holds both tasks in one batch; the second, cancelled while the first
    runs, is reported CANCELLED at once, is never run, and the first finishes unharmed."""
    tasks = TaskFactory()
    marker = tmp_path / "ran"
    first, second = tasks.task(_nap, 2.0), tasks.task(_touch, str(marker))

    async def work(ex: LocalExecutor) -> tuple[Outcome, Outcome, bool]:
        loop = asyncio.get_running_loop()
        cancelled: asyncio.Future[Outcome] = loop.create_future()
        finished: asyncio.Future[Outcome] = loop.create_future()
        started = asyncio.Event()
        first.on_start = lambda _at: loop.call_soon(started.set)
        with ex.pool._lock:  # the worker thread takes both at once: one batch
            jobs = ex.pool.start_many(
                [
                    (first, ex.task_options(first), finished.set_result),
                    (second, ex.task_options(second), cancelled.set_result),
                ]
            )
        await started.wait()
        assert jobs[1].taken  # in the running task's batch, not in the pool's queue
        jobs[1].cancel()
        outcome = await cancelled
        before_first_ended = not finished.done()
        return outcome, await finished, before_first_ended

    outcome, done, at_once = drive(LocalExecutor(workers=1), work)
    assert outcome.status == Status.CANCELLED and at_once
    assert done.status == Status.COMPLETED and tasks.output(done) == 2.0
    assert not marker.exists()


def test_a_task_whose_blob_cannot_be_read_fails_and_the_pool_goes_on() -> None:
    tasks = TaskFactory()
    broken = tasks.task(_say, "lost")
    broken.load_blob = lambda name: (_ for _ in ()).throw(KeyError(f"no blob {name[:8]}"))
    fine = tasks.task(_say, "fine")

    async def work(ex: LocalExecutor) -> tuple[Outcome, Outcome]:
        return await ex.execute(broken), await ex.execute(fine)

    failed, outcome = drive(LocalExecutor(workers=1), work)
    assert failed.status == Status.FAILED
    assert "could not be sent" in failed.error and "no blob" in failed.error
    assert tasks.output(outcome) == "fine"


def test_cancelling_many_queued_tasks_reports_each_once() -> None:
    """As when a whole dispatch is cancelled: the queued tasks (some already in the
    running task's batch) and the running one; each is reported CANCELLED once."""
    tasks = TaskFactory()
    slow = tasks.task(_nap, 600)
    queued = [tasks.task(_say, str(n)) for n in range(2000)]

    async def work(ex: LocalExecutor) -> list[Outcome]:
        reports: list[Outcome] = []
        everything = asyncio.get_running_loop().create_future()

        def report(outcome: Outcome) -> None:
            reports.append(outcome)
            if len(reports) == len(queued) and not everything.done():
                everything.set_result(None)

        running = ex.pool.start(slow, ex.task_options(slow), lambda _o: None)
        jobs = ex.pool.start_many([(t, ex.task_options(t), report) for t in queued])
        for job in jobs:
            job.cancel()
        running.cancel()
        await everything
        await asyncio.to_thread(ex.pool.close)  # its threads are done reporting
        await asyncio.sleep(0)  # run what they scheduled: a second report would be there
        return reports

    reports = drive(LocalExecutor(workers=1), work)
    assert len(reports) == len(queued)
    assert {o.status for o in reports} == {Status.CANCELLED}


def test_a_large_output_is_written_to_the_blob_store_as_it_is_pickled(tmp_path: Path) -> None:
    from covalent._wire import blobs
    from covalent.executor.runner import FILE_THRESHOLD, _store_output

    value = os.urandom(16) + bytes(2 * FILE_THRESHOLD)

    def _dump_output(value: object, blobs_dir: str) -> dict[str, object]:
        return _store_output(value, blobs_dir, blobs.dump)

    written = _dump_output(value, str(tmp_path))
    assert written["output"] is None
    record = written["output_file"]
    data = Path(record["path"]).read_bytes()
    assert data == blobs.dumps(value)
    assert record["digest"] == blobs.digest(data) and record["size"] == len(data)
    assert [p.name for p in tmp_path.rglob(".tmp*")] == []
    assert _dump_output(value, str(tmp_path))["output_file"] == record  # stored once
    assert _dump_output(b"small", str(tmp_path)) == {"output": blobs.dumps(b"small")}
    assert _dump_output(value, "")["output"] == blobs.dumps(value)  # no store: in memory
