"""The Dask executor's bookkeeping that needs no cluster (``covalent.executor._dask_jobs``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from covalent._results.status import Status
from covalent.executor._dask_jobs import PACK_MAX, Completions, DaskJob, pack_size
from covalent.executor.task import Outcome


def test_packs_hold_only_what_the_cluster_could_not_start_at_once() -> None:
    assert pack_size(1, 2) == 1
    assert pack_size(2, 2) == 1  # one each for the two threads
    assert pack_size(3, 2) == 2
    assert pack_size(7, 2) == 4
    assert pack_size(1000, 2) == PACK_MAX
    assert pack_size(10, 0) == 10  # an unknown cluster counts as one thread


# a pack's end, with stand-ins for Dask's futures (Completions only reads key and status)


class _Future:
    def __init__(self, key: str, status: str) -> None:
        self.key, self.status = key, status

    async def exception(self) -> BaseException:
        return RuntimeError("KilledWorker: the workers died")


class _AsCompleted:
    def __init__(self, loop: Any = None) -> None:
        self.added: list[_Future] = []

    def add(self, future: _Future) -> None:
        self.added.append(future)


class _Client:
    loop = None

    def __init__(self, replies: dict[str, Any]) -> None:
        self.replies = replies

    async def gather(self, wanted: dict[str, _Future], errors: str) -> dict[str, Any]:
        return {key: self.replies[key] for key in wanted if key in self.replies}


def _settle(status: str, replies: dict[str, Any]) -> tuple[list[Outcome | None], list[DaskJob]]:
    """A pack of three under key "p" ends with ``status``: each job's outcome (None: none
    reported) and the jobs handed back to run alone."""
    outcomes: list[Outcome | None] = [None, None, None]
    again: list[DaskJob] = []
    distributed = SimpleNamespace(as_completed=_AsCompleted)
    completions = Completions(distributed, _Client(replies), "tcp://here", again.extend)  # type: ignore[arg-type]
    future = _Future("p", status)

    def report(i: int) -> Callable[[Outcome], None]:
        return lambda outcome: outcomes.__setitem__(i, outcome)

    jobs = [DaskJob(None, report(i), lambda _: None, future=future) for i in range(3)]  # type: ignore[arg-type]
    completions.jobs["p"] = jobs
    asyncio.run(completions._settle([future]))  # type: ignore[list-item]
    assert "p" not in completions.jobs
    return outcomes, again


def test_a_pack_that_erred_hands_back_each_electron() -> None:
    outcomes, again = _settle("error", {})
    assert outcomes == [None, None, None] and len(again) == 3
    assert all(job.future is None and not job.packable for job in again)


def test_a_pack_the_cluster_cancelled_fails_each_electron() -> None:
    outcomes, again = _settle("cancelled", {})
    assert again == []
    for outcome in outcomes:
        assert outcome is not None and outcome.status == Status.FAILED
        assert "did not run this electron to the end" in str(outcome.error)
    assert len({id(outcome) for outcome in outcomes}) == 3


def test_a_pack_that_stopped_early_hands_back_the_rest() -> None:
    outcomes, again = _settle("finished", {"p": [b"not a reply"]})
    assert outcomes[0] is not None and outcomes[1:] == [None, None]
    assert len(again) == 2


def test_a_pack_with_an_electron_cancelled_while_it_was_submitted_stops() -> None:
    """An electron cancelled while its pack was being submitted ends at once; the pack's
    Dask task is stopped, not watched (it would run that electron all the same), and its
    other electrons are queued again, one Dask task each."""
    from covalent.executor.executor_plugins.dask import DaskExecutor

    executor = DaskExecutor(scheduler_address="tcp://127.0.0.1:9")
    reported: dict[int, Outcome] = {}
    jobs = [
        DaskJob(
            SimpleNamespace(node_id=n),  # type: ignore[arg-type]
            lambda outcome, n=n: reported.__setitem__(n, outcome),
            executor._cancel_job,
            packable=True,
        )
        for n in range(4)
    ]
    pack = _Future("p", "pending")
    stopped: list[Any] = []
    queued: list[list[DaskJob]] = []
    watched: list[Any] = []

    async def client() -> object:
        return object()

    async def submit(_: object, ready: list[tuple[DaskJob, bytes]]) -> list[Any]:
        jobs[1].cancel()  # meanwhile, by the dispatcher
        return [([job for job, _ in ready], pack)]

    def stop_soon(future: Any) -> asyncio.Future[None]:
        stopped.append(future)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    executor.client = client  # type: ignore[method-assign]
    executor._requests = lambda ready: [b"request"] * len(ready)  # type: ignore[method-assign]
    executor._submit = submit  # type: ignore[method-assign]
    executor._stop_soon = stop_soon  # type: ignore[method-assign]
    executor._enqueue = queued.append  # type: ignore[method-assign]
    executor._watcher = lambda _: SimpleNamespace(add=watched.append)  # type: ignore[method-assign]
    asyncio.run(executor._submit_chunk(list(jobs)))
    assert list(reported) == [1] and reported[1].status == Status.CANCELLED
    assert stopped == [pack] and watched == []
    assert queued == [[jobs[0], jobs[2], jobs[3]]]
    assert all(not job.packable and job.future is None for job in queued[0])
