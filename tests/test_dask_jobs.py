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
