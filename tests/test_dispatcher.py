"""The dispatcher loop in-process: a real Dispatcher on a real SQLite store, with an
executor the test controls. No server, no worker processes; each test takes seconds.

The controlled executor (``ControlledExecutor``) hands every task it gets to the test,
which decides its end: an outcome of its choosing, or running it for real in-process
with covalent's own runner (``run_for_real``). ``validate`` is on: every touched run's
invariants are checked after every turn.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import covalent as ct
from covalent._dispatcher import dispatcher as dispatchermod
from covalent._dispatcher import run as runmod
from covalent._dispatcher import states, sublattices
from covalent._dispatcher import submission as submissionmod
from covalent._dispatcher.dispatcher import LAUNCH_CHUNK, Dispatcher
from covalent._dispatcher.executors import ExecutorRegistry
from covalent._errors import BadRequestError
from covalent._results.status import FINAL_STATUSES, Status
from covalent._store import manifests
from covalent._store.store import Store
from covalent._wire import blobs, manifest
from covalent.executor import plugins, runner
from covalent.executor.base import BaseExecutor
from covalent.executor.task import BlobFile, Outcome, Task, outcome_from_reply

S = Status
DEADLINE = 60.0


class ControlledExecutor(BaseExecutor):
    """Hands each task to the test through ``Control`` and returns what the test says."""

    control: Control  # set by the fixture on the class (one test at a time)

    def __init__(self, **_settings: Any) -> None:
        pass

    async def execute(self, task: Task) -> Outcome:
        decided: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.control.started.put_nowait((task, decided))
        try:
            return await decided
        except asyncio.CancelledError:
            self.control.cancel_hooks_due.append(task.key)
            raise

    async def cancel(self, task: Task) -> bool:
        self.control.cancelled.append(task.key)
        return True


class Control:
    def __init__(self) -> None:
        self.started: asyncio.Queue[tuple[Task, asyncio.Future[Outcome]]] = asyncio.Queue()
        self.cancelled: list[tuple[str, int]] = []
        self.cancel_hooks_due: list[tuple[str, int]] = []

    async def next(self) -> tuple[Task, asyncio.Future[Outcome]]:
        return await asyncio.wait_for(self.started.get(), DEADLINE)


def value_outcome(value: Any) -> Outcome:
    return Outcome(S.COMPLETED, output=blobs.dumps(value), output_repr=repr(value))


async def run_for_real(task: Task) -> Outcome:
    """The task run by covalent's runner in this process (in a thread)."""
    values = {name: task.load_blob(name) for name in task.value_names()}
    function_of = lambda digest: blobs.loads(task.load_blob(digest))  # noqa: E731
    reply = await asyncio.to_thread(runner.run_task, task.payload(), function_of, values)
    return outcome_from_reply(reply)


@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    monkeypatch.setenv("COVALENT_CONFIG_DIR", str(tmp_path / "config"))
    control = Control()
    ControlledExecutor.control = control
    store = Store.sqlite(tmp_path / "db.sqlite", tmp_path / "blobs")
    store.create_schema()
    found = Env(tmp_path, store, control)
    await found.start()
    try:
        yield found
    finally:
        await found.stop()
        store.close()


class Env:
    def __init__(self, root: Path, store: Store, control: Control) -> None:
        self.root, self.store, self.control = root, store, control
        self.dispatcher: Dispatcher | None = None

    async def start(self) -> Dispatcher:
        registry = ExecutorRegistry()
        registry.plugins["controlled"] = plugins.Plugin("controlled", ControlledExecutor)
        self.dispatcher = Dispatcher(self.store, self.root / "results", registry, validate=True)
        await self.dispatcher.start()
        return self.dispatcher

    async def stop(self) -> None:
        if self.dispatcher is not None:
            await self.dispatcher.stop()
            self.dispatcher = None

    @property
    def d(self) -> Dispatcher:
        assert self.dispatcher is not None
        return self.dispatcher

    def submit(self, lattice: Any, *args: Any, **kwargs: Any) -> str:
        man, blob_map = build(lattice, *args, **kwargs)
        return self.d.submit(man, blob_map)

    async def finished(self, dispatch_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            row = self.store.get_dispatch(dispatch_id)
            assert row is not None
            if Status(row["status"]) in FINAL_STATUSES and dispatch_id not in self.d.runs:
                return row
            await asyncio.sleep(0.01)
        raise AssertionError(f"dispatch {dispatch_id} did not finish in {DEADLINE} s")

    def nodes(self, dispatch_id: str) -> dict[int, dict[str, Any]]:
        return {row["node_id"]: row for row in self.store.get_nodes(dispatch_id)}

    def statuses(self, dispatch_id: str) -> list[str]:
        return [row["status"] for row in self.store.get_nodes(dispatch_id)]

    def transitions(self, dispatch_id: str) -> list[tuple[int, str | None, str]]:
        rows = self.store.get_transitions(dispatch_id)
        return [(t["node_id"], t["old"], t["new"]) for t in rows]


def build(lattice: Any, *args: Any, **kwargs: Any) -> tuple[dict[str, Any], dict[str, bytes]]:
    graph = lattice.build_graph(*args, **kwargs)
    return manifest.from_graph(graph, args, kwargs, lattice)


# workflows

fake = "controlled"


@ct.electron(executor=fake)
def identity(x):
    return x


@ct.electron(executor=fake)
def square(x):
    return x * x


@ct.lattice
def seed(a):
    return square(x=identity(x=a))


@ct.lattice
def fan(n):
    return [identity(i) for i in range(n)]


@ct.lattice
def two_branches():
    return [square(identity(1)), square(identity(2))]


@ct.electron(executor=fake, retries=1)
def flaky(x):
    return x


@ct.lattice
def retried(a):
    return flaky(a)


@ct.electron(executor=fake, timeout=0.3)
def stuck(x):
    return x


@ct.lattice
def timed(a):
    return stuck(a)


@ct.electron(executor=fake)
@ct.lattice
def inner(x):
    return square(x)


@ct.lattice
def outer(x):
    return identity(inner(x))


@ct.electron(executor=fake, cache=True)
def cached(x):
    return x + 1


@ct.lattice
def cached_flow(a):
    return cached(a)


# the happy path and failures


async def test_the_seed_runs_to_completed_through_every_step(env: Env) -> None:
    dispatch_id = env.submit(seed, a=2)
    task, done = await env.control.next()
    assert (task.name, task.node_id, task.args) == ("identity", 0, [])
    done.set_result(value_outcome(2))
    task, done = await env.control.next()
    assert task.name == "square" and task.kwargs["x"] == blobs.digest(blobs.dumps(2))
    done.set_result(value_outcome(4))
    row = await env.finished(dispatch_id)
    assert row["status"] == "COMPLETED"
    assert row["result_digest"] == blobs.digest(blobs.dumps(4))
    assert env.statuses(dispatch_id) == ["COMPLETED"] * 3
    assert env.transitions(dispatch_id) == [
        (-1, None, "RUNNING"),
        (0, "NEW_OBJECT", "RUNNING"),
        (0, "RUNNING", "COMPLETED"),
        (2, "NEW_OBJECT", "RUNNING"),
        (2, "RUNNING", "COMPLETED"),
        (-1, "RUNNING", "COMPLETED"),
    ]


async def test_a_manifest_may_name_stored_blobs_but_not_unknown_ones(env: Env) -> None:
    """The blobs a manifest names are sent or already stored; one that is neither is
    refused, naming its node, and nothing of that dispatch is stored."""
    man, blob_map = build(fan, 3)
    env.d.submit(man, blob_map, disable_run=True)
    again = env.d.submit(man, {}, disable_run=True)  # every blob is stored now
    assert env.store.get_dispatch(again) is not None
    param = [n for n in man["nodes"] if n["kind"] == "parameter"][-1]
    param["value"] = "e" * 64  # neither sent nor stored
    before = env.store.count_dispatches()
    with pytest.raises(BadRequestError, match=f"node {param['id']}'s value refers to blob e+,"):
        env.d.submit(man, blob_map, disable_run=True)
    assert env.store.count_dispatches() == before


async def test_a_small_dispatch_reads_its_summary_from_its_manifest(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small dispatch's row keeps no summary of its own (the manifest holds it: a row
    under 1 KB, four to a page); a large one's keeps it apart, so that reading the row
    does not inflate its manifest. Both read back as the summary of what was submitted."""
    small_man, small_blobs = build(seed, a=2)
    large_man, large_blobs = build(fan, 300)
    long_man, long_blobs = build(seed, a="x" * 5000)  # a small manifest, a long repr
    small = env.d.submit(small_man, small_blobs, disable_run=True)
    large = env.d.submit(large_man, large_blobs, disable_run=True)
    long = env.d.submit(long_man, long_blobs, disable_run=True)
    with sqlite3.connect(env.root / "db.sqlite") as db:
        stored = dict(db.execute("SELECT dispatch_id, summary FROM dispatches"))
        packed = dict(db.execute("SELECT dispatch_id, manifest FROM dispatches"))
    assert stored[small] == "" and json.loads(stored[large]) == manifest.summary(large_man)
    assert len(packed[long]) < manifests.SUMMARY_APART_FROM  # yet its summary is kept apart:
    assert json.loads(stored[long]) == manifest.summary(long_man)  # what reads remember is small
    for dispatch_id, man in ((small, small_man), (large, large_man)):
        want = manifest.summary(man)
        row = env.store.get_dispatch(dispatch_id)
        assert row is not None and row["summary"] == want and "summary_source" not in row
        full = env.store.get_dispatch(dispatch_id, with_manifest=True)
        assert full is not None and full["summary"] == want
    listed = {row["dispatch_id"]: row for row in env.store.list_dispatches()}
    assert listed[small]["summary"] == manifest.summary(small_man)
    assert listed[large]["summary"] == manifest.summary(large_man)
    assert "summary_source" not in listed[small]
    inflated: list[bytes] = []
    monkeypatch.setattr(manifests, "loaded", lambda raw: inflated.append(raw) or {})
    for _ in range(3):  # a waiting client reads the row again and again: inflated once
        row = env.store.get_dispatch(small)
        assert row is not None and row["summary"] == manifest.summary(small_man)
    assert inflated == []  # read above already


@ct.electron(executor=fake)
def count(items):
    return len(items)


@ct.lattice
def counted(n):
    return count([identity(i) for i in range(n)])


async def test_a_large_collection_goes_to_its_task_with_its_items_at_hand(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collection the run assembles from many items comes with the task that takes it
    (``Task.composites``: the items its composite names, not parsed back); a small one
    does not."""
    monkeypatch.setattr(runmod, "ASSEMBLED_KEPT_FROM", 3)
    for n, kept in ((3, True), (2, False)):
        dispatch_id = env.submit(counted, n)
        outputs = []
        for _ in range(n):
            task, done = await env.control.next()
            done.set_result(value_outcome(task.node_id))
            outputs.append(blobs.digest(blobs.dumps(task.node_id)))
        task, done = await env.control.next()
        assert task.name == "count"
        (collection,) = task.args
        items = blobs.composite_items(task.load_blob(collection))
        assert sorted(items) == sorted(outputs)
        assert task.composites == ({collection: items} if kept else {})
        done.set_result(value_outcome(n))
        assert (await env.finished(dispatch_id))["status"] == "COMPLETED"


async def test_a_wait_ends_when_its_dispatch_is_stored_finished(env: Env) -> None:
    """Waiters (the long polls of GET /dispatches/{id}?wait=) are released once the
    dispatch's end is committed, not before; a wait past its timeout, or on a dispatch
    not running (finished, unknown) returns; shutdown releases every waiter."""
    dispatch_id = env.submit(seed, a=2)
    task, done = await env.control.next()  # the run has joined the loop
    seen: list[str] = []

    def record(_waiter: Any) -> None:
        row = env.store.get_dispatch(dispatch_id)
        seen.append(row["status"] if row else "?")

    waiters = [asyncio.ensure_future(env.d.wait(dispatch_id, DEADLINE)) for _ in range(2)]
    for waiter in waiters:
        waiter.add_done_callback(record)
    await asyncio.wait_for(env.d.wait(dispatch_id, 0.05), DEADLINE)  # its timeout
    done.set_result(value_outcome(2))
    task, done = await env.control.next()
    assert not any(waiter.done() for waiter in waiters)
    done.set_result(value_outcome(4))
    await asyncio.wait_for(asyncio.gather(*waiters), DEADLINE)
    assert seen == ["COMPLETED", "COMPLETED"]
    assert dispatch_id not in env.d._finished  # nothing kept for it
    await asyncio.wait_for(env.d.wait(dispatch_id, DEADLINE), DEADLINE)  # finished
    await asyncio.wait_for(env.d.wait("no-such-dispatch", DEADLINE), DEADLINE)

    other = env.submit(seed, a=3)
    await env.control.next()
    stopping = asyncio.ensure_future(env.d.wait(other, DEADLINE))
    await asyncio.sleep(0)
    env.d.begin_shutdown()
    await asyncio.wait_for(stopping, DEADLINE)
    row = env.store.get_dispatch(other)
    assert row is not None and row["status"] == "RUNNING"


async def test_a_failure_stops_its_branch_and_fails_the_dispatch(env: Env) -> None:
    dispatch_id = env.submit(two_branches)
    started = {}
    for _ in range(2):
        task, done = await env.control.next()
        started[task.node_id] = done
    started[0].set_result(Outcome.failure("Traceback: ValueError: no"))
    started[3].set_result(value_outcome(2))
    task, done = await env.control.next()
    assert task.node_id == 5
    done.set_result(value_outcome(4))
    row = await env.finished(dispatch_id)
    assert row["status"] == "FAILED"
    assert "Node identity(0) failed:\nTraceback: ValueError: no" in row["error"]
    statuses = env.statuses(dispatch_id)
    assert statuses[0] == "FAILED" and statuses[2] == statuses[6] == "NOT_RUN"
    assert statuses[5] == "COMPLETED"


async def test_a_real_task_run_in_process(env: Env) -> None:
    dispatch_id = env.submit(seed, a=3)
    for _ in range(2):
        task, done = await env.control.next()
        done.set_result(await run_for_real(task))
    row = await env.finished(dispatch_id)
    assert row["status"] == "COMPLETED"
    assert blobs.loads(env.store.read_blob(row["result_digest"])) == 9


async def test_a_wide_fan_out_starts_in_chunks(env: Env) -> None:
    count = LAUNCH_CHUNK + 10
    dispatch_id = env.submit(fan, count)
    for _ in range(count):
        task, done = await env.control.next()
        done.set_result(value_outcome(task.node_id))
    row = await env.finished(dispatch_id)
    assert row["status"] == "COMPLETED"


async def test_a_fan_out_wider_than_the_window_keeps_at_most_the_window_in_flight(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatchermod, "IN_FLIGHT", 3)
    dispatch_id = env.submit(fan, 8)
    in_hand: list[tuple[Task, asyncio.Future[Outcome]]] = []
    handed = finished = 0
    while finished < 8:
        if handed < 8:
            in_hand.append(await env.control.next())
            await asyncio.sleep(0.05)  # room for the loop to hand over more than it should
            while not env.control.started.empty():
                in_hand.append(env.control.started.get_nowait())
            handed = finished + len(in_hand)
        assert len(in_hand) <= 3, f"{len(in_hand)} tasks in flight, over the window of 3"
        assert len(env.d.runs[dispatch_id].running) <= 3
        task, done = in_hand.pop(0)
        done.set_result(value_outcome(task.node_id))
        finished += 1
    row = await env.finished(dispatch_id)
    assert row["status"] == "COMPLETED"
    assert set(env.statuses(dispatch_id)) == {"COMPLETED"}


async def _fan_finished(env: Env, count: int) -> tuple[str, list[str]]:
    """``fan(count)`` run to its end: its id and the digests of its values and outputs."""
    dispatch_id = env.submit(fan, count)
    values: list[Any] = list(range(count))
    for _ in range(count):
        task, done = await env.control.next()
        values.append(100 + task.node_id)
        done.set_result(value_outcome(values[-1]))
    await env.finished(dispatch_id)
    return dispatch_id, [blobs.digest(blobs.dumps(v)) for v in values]


async def test_a_large_run_takes_its_blobs_out_of_the_shared_cache_when_it_ends(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They are stored, and a large run's would crowd the cache and hold memory; the
    result stays for a client's wait. A small run's stay."""
    dispatch_id, made = await _fan_finished(env, 3)  # 7 nodes
    assert any(env.store.cache.get(d) is not None for d in made)
    monkeypatch.setattr(dispatchermod, "LARGE_RUN", 7)
    dispatch_id, made = await _fan_finished(env, 4)  # 9 nodes
    result = env.store.get_dispatch(dispatch_id)["result_digest"]  # type: ignore[index]
    assert all(env.store.cache.get(d) is None for d in made)
    assert env.store.cache.get(result) is not None
    assert all(env.store.read_blob(d) is not None for d in made)  # from the database


def _held_after_storing(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[threading.Event, threading.Event]:
    """Submissions, once stored, wait for ``go_on``; ``stored`` says one was stored."""
    stored, go_on = threading.Event(), threading.Event()
    real = submissionmod.submit

    def held_after_storing(*args: Any) -> Any:
        done = real(*args)
        stored.set()
        assert go_on.wait(DEADLINE)
        return done

    monkeypatch.setattr(submissionmod, "submit", held_after_storing)
    return stored, go_on


async def test_a_large_dispatch_stored_in_a_thread_lets_the_others_go_on(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``submit_in_thread`` (the server's path for a large bundle): while one dispatch is
    checked and stored in a thread, another runs to its end on the loop; a cancel that
    comes once the first is stored but before its run has joined the loop is kept, and
    applied after it joins."""
    stored, go_on = _held_after_storing(monkeypatch)
    joining = asyncio.ensure_future(env.d.submit_in_thread(*build(seed, 2)))
    assert await asyncio.to_thread(stored.wait, DEADLINE)
    monkeypatch.undo()  # the next submission is stored at once
    other = env.submit(seed, a=3)
    for value in (3, 9):
        _task, done = await env.control.next()
        done.set_result(value_outcome(value))
    assert (await env.finished(other))["status"] == "COMPLETED"
    (big,) = env.d._joining  # stored, not joined yet
    assert env.store.get_dispatch(big) is not None and big not in env.d.runs
    env.d.cancel(big)
    go_on.set()
    assert await asyncio.wait_for(joining, DEADLINE) == big
    assert (await env.finished(big))["status"] == "CANCELLED"
    assert not env.d._joining


async def test_a_large_dispatch_joins_the_loop_though_its_caller_went_away(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its request cancelled while the thread stores it (the client disconnected): what
    is stored still runs, rather than waiting as RUNNING for the next server start."""
    stored, go_on = _held_after_storing(monkeypatch)
    told: list[str] = []  # what the server does once it is stored: store its triggers
    caller = asyncio.ensure_future(env.d.submit_in_thread(*build(seed, 2), False, told.append))
    assert await asyncio.to_thread(stored.wait, DEADLINE)
    (big,) = env.d._joining
    caller.cancel()
    go_on.set()
    for value in (2, 4):
        _task, done = await env.control.next()
        done.set_result(value_outcome(value))
    assert (await env.finished(big))["status"] == "COMPLETED"
    assert caller.cancelled() and told == [big]


class InstantExecutor(BaseExecutor):
    """Reports each task's outcome (output 1) while it is being started: the loop's queue
    never runs dry while a run has tasks left."""

    def __init__(self, **_settings: Any) -> None:
        pass

    def start_many(self, tasks: list[tuple[Task, Any]]) -> list[Any]:
        for _task, report in tasks:
            report(value_outcome(1))
        return [asyncio.get_running_loop().create_future() for _ in tasks]

    async def execute(self, task: Task) -> Outcome:
        return value_outcome(1)


@ct.electron(executor="instant")
def at_once(x):
    return x


@ct.lattice
def instant_fan(n):
    return [at_once(i) for i in range(n)]


async def test_waiting_requests_get_a_step_between_turns_while_events_keep_coming(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose events never let the queue run dry still lets the rest of the server
    (requests, the live stream) step between two of its turns."""
    env.d.executors.plugins["instant"] = plugins.Plugin("instant", InstantExecutor)
    steps, at_turns = 0, []
    stepping = True

    async def other_work() -> None:
        nonlocal steps
        while stepping:
            steps += 1
            await asyncio.sleep(0)

    real_turn = env.d.turn

    async def counted_turn(events: list[Any]) -> None:
        at_turns.append(steps)
        await real_turn(events)

    monkeypatch.setattr(env.d, "turn", counted_turn)
    other = asyncio.ensure_future(other_work())
    try:
        dispatch_id = env.submit(instant_fan, 3 * LAUNCH_CHUNK)
        assert (await env.finished(dispatch_id))["status"] == "COMPLETED"
    finally:
        stepping = False
        await other
    assert len(at_turns) >= 3  # the run's tasks were started in chunks, a turn each
    assert all(b > a for a, b in zip(at_turns, at_turns[1:], strict=False)), at_turns


def test_when_many_events_come_at_once_the_small_dispatches_go_first() -> None:
    """``_small_first``: over SPLIT_TURN_AT events, those of dispatches with few of them
    make a turn of their own before the rest; each dispatch's events keep their order."""
    from covalent._dispatcher.events import TaskStarted

    large = [TaskStarted("large", n, float(n)) for n in range(dispatchermod.SPLIT_TURN_AT)]
    small = [TaskStarted("small", n, float(n)) for n in range(3)]
    mixed = large[:500] + small[:2] + large[500:] + small[2:]
    assert dispatchermod._small_first(mixed) == [small, large]
    assert dispatchermod._small_first(large[:10] + small) == [large[:10] + small]  # few
    assert dispatchermod._small_first(large + large[:1]) == [large + large[:1]]  # one run


async def test_a_trigger_of_a_large_dispatch_submits_it_again_in_threads(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A firing for a dispatch of over LARGE_FIRING_NODES electrons reads its manifest and
    stores the new dispatch in threads; the new one runs, and the firing is recorded."""
    from covalent._dispatcher import triggers as triggersmod
    from covalent._store import triggers as stored_triggers

    monkeypatch.setattr(triggersmod, "LARGE_FIRING_NODES", 0)
    threaded: list[str] = []
    real = env.d.submit_in_thread

    async def noted(*args: Any, **kwargs: Any) -> str:
        threaded.append(await real(*args, **kwargs))
        return threaded[-1]

    monkeypatch.setattr(env.d, "submit_in_thread", noted)
    source = env.d.submit(*build(seed, 2), disable_run=True)
    manager = triggersmod.TriggerManager(env.store, env.d)
    await manager.start()
    try:
        (trigger_id,) = manager.add(
            source, manager.check({"triggers": [{"kind": "time", "time_gap": 3600.0}]})
        )
        manager._fire_safely(trigger_id)  # as its moment would
        for value in (2, 4):
            _task, done = await env.control.next()
            done.set_result(value_outcome(value))
        deadline = time.monotonic() + DEADLINE
        while not stored_triggers.firings(env.store, source)[1] and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    finally:
        await manager.stop()
    (firing,), _total = stored_triggers.firings(env.store, source)
    assert threaded == [firing["dispatch_id"]]
    assert (await env.finished(firing["dispatch_id"]))["status"] == "COMPLETED"


def _dispatch_ids(env: Env) -> set[str]:
    return {row["dispatch_id"] for row in env.store.list_dispatches(limit=1000)}


async def _until(condition: Any) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_trigger_stopped_while_its_large_firing_reads_makes_no_dispatch(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/triggers.md: once its triggers are stopped, they make no more dispatches;
    also a large firing under way then (a reviewer's find)."""
    from covalent._dispatcher import triggers as triggersmod

    monkeypatch.setattr(triggersmod, "LARGE_FIRING_NODES", 0)
    source = env.d.submit(*build(seed, 2), disable_run=True)
    reading, go_on, read = threading.Event(), threading.Event(), threading.Event()
    real_get = env.store.get_dispatch

    def slow_manifest(dispatch_id: str, with_manifest: bool = False) -> Any:
        if with_manifest:  # a large manifest takes a while to read
            reading.set()
            assert go_on.wait(DEADLINE)
        try:
            return real_get(dispatch_id, with_manifest)
        finally:
            if with_manifest:
                read.set()

    monkeypatch.setattr(env.store, "get_dispatch", slow_manifest)
    manager = triggersmod.TriggerManager(env.store, env.d)
    await manager.start()
    try:
        (trigger_id,) = manager.add(
            source, manager.check({"triggers": [{"kind": "time", "time_gap": 3600.0}]})
        )
        before = _dispatch_ids(env)
        manager._fire_safely(trigger_id)
        await _until(reading.is_set)
        assert manager.stop_dispatches([source]) == [trigger_id]
        await _until(lambda: not manager._firing)  # cancelled
        go_on.set()
        await _until(read.is_set)
        await asyncio.sleep(0)
        assert _dispatch_ids(env) == before
    finally:
        go_on.set()
        await manager.stop()


async def test_a_large_firing_the_server_stops_under_is_stored_and_recorded(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trigger manager stops (the server stops) while a large firing's dispatch is
    stored in a thread: the dispatch is stored, and its firing recorded (a reviewer's
    find: it was not, and a time trigger then fired again at the next start)."""
    from covalent._dispatcher import triggers as triggersmod
    from covalent._store import triggers as stored_triggers

    monkeypatch.setattr(triggersmod, "LARGE_FIRING_NODES", 0)
    source = env.d.submit(*build(seed, 2), disable_run=True)
    storing, go_on = threading.Event(), threading.Event()
    real = submissionmod.submit

    def slow_submit(*args: Any) -> Any:
        storing.set()
        assert go_on.wait(DEADLINE)
        return real(*args)

    monkeypatch.setattr(submissionmod, "submit", slow_submit)
    manager = triggersmod.TriggerManager(env.store, env.d)
    await manager.start()
    (trigger_id,) = manager.add(
        source, manager.check({"triggers": [{"kind": "time", "time_gap": 3600.0}]})
    )
    before = _dispatch_ids(env)
    manager._fire_safely(trigger_id)
    await _until(storing.is_set)
    await manager.stop()
    go_on.set()
    await _until(lambda: stored_triggers.firings(env.store, source)[1] == 1)
    (firing,), _total = stored_triggers.firings(env.store, source)
    assert _dispatch_ids(env) - before == {firing["dispatch_id"]}


async def test_the_dispatcher_stops_after_a_large_child_is_stored_and_recorded(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large child bundle is being read in a thread when the dispatcher stops: stop
    waits for it, and the parent's node records its child before the loop ends (a
    reviewer's find: stop returned at once, the child was stored after, an orphan)."""
    monkeypatch.setattr(dispatchermod, "LARGE_CHILD_BYTES", 0)
    reading, go_on = threading.Event(), threading.Event()
    real = sublattices.child_bundle

    def slow_bundle(outcome: Outcome) -> Any:
        reading.set()
        assert go_on.wait(DEADLINE)
        return real(outcome)

    monkeypatch.setattr(sublattices, "child_bundle", slow_bundle)
    parent = env.submit(outer, 3)  # its build runs on "local", for real
    await _until(reading.is_set)
    stopping = asyncio.ensure_future(env.d.stop())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not stopping.done()  # waiting for the child
    go_on.set()
    await asyncio.wait_for(stopping, DEADLINE)
    (child,) = _dispatch_ids(env) - {parent}
    node = next(n for n in env.store.get_nodes(parent) if n["kind"] == "sublattice")
    assert node["sub_dispatch_id"] == child
    env.dispatcher = None  # stopped already


# cancel, retries, timeouts


async def test_cancel_stops_the_running_task_calls_the_hook_and_cancels_the_rest(
    env: Env,
) -> None:
    dispatch_id = env.submit(seed, a=2)
    task, _done = await env.control.next()
    env.d.cancel(dispatch_id)
    row = await env.finished(dispatch_id)
    assert row["status"] == "CANCELLED"
    assert env.statuses(dispatch_id) == ["CANCELLED", "COMPLETED", "CANCELLED"]
    assert env.control.cancelled == [task.key]  # the executor's cancel hook ran


async def test_a_cancel_that_crosses_a_completion_keeps_the_completion(env: Env) -> None:
    dispatch_id = env.submit(seed, a=2)
    _task, done = await env.control.next()
    done.set_result(value_outcome(2))  # its outcome and the cancel meet in one turn
    env.d.cancel(dispatch_id, [0])
    task, done = await env.control.next()
    assert task.node_id == 2
    done.set_result(value_outcome(4))
    row = await env.finished(dispatch_id)
    assert row["status"] == "COMPLETED"


async def test_a_failed_attempt_is_retried_and_kept(env: Env) -> None:
    dispatch_id = env.submit(retried, 5)
    _task, done = await env.control.next()
    done.set_result(Outcome.failure("first try failed"))
    _task, done = await env.control.next()
    done.set_result(value_outcome(5))
    row = await env.finished(dispatch_id)
    assert row["status"] == "COMPLETED"
    attempts = env.store.get_attempts(dispatch_id)
    assert [(a["attempt"], a["status"], a["error"]) for a in attempts] == [
        (1, "FAILED", "first try failed")
    ]
    assert env.nodes(dispatch_id)[0]["attempts"] == 2


async def test_a_task_past_its_timeout_fails_and_is_stopped(env: Env) -> None:
    dispatch_id = env.submit(timed, 1)
    task, _done = await env.control.next()
    row = await env.finished(dispatch_id)
    assert row["status"] == "FAILED"
    assert "timed out" in env.nodes(dispatch_id)[0]["error"]
    assert env.control.cancel_hooks_due == [task.key]


# reuse, cache, sublattices


async def test_a_cache_node_runs_once_then_is_reused(env: Env) -> None:
    first = env.submit(cached_flow, 1)
    _task, done = await env.control.next()
    done.set_result(value_outcome(2))
    assert (await env.finished(first))["status"] == "COMPLETED"
    second = env.submit(cached_flow, 1)
    row = await env.finished(second)
    assert row["status"] == "COMPLETED" and env.control.started.empty()
    assert env.nodes(second)[0]["reused_from"] == f"{first}:0"
    assert (0, "NEW_OBJECT", "PENDING_REUSE") in env.transitions(second)


async def test_a_redispatch_reuses_what_did_not_change(env: Env) -> None:
    first = env.submit(seed, a=2)
    for value in (2, 4):
        _task, done = await env.control.next()
        done.set_result(value_outcome(value))
    await env.finished(first)
    man, blob_map = build(seed, a=2)
    man["reuse"] = {"dispatch_id": first}
    second = env.d.submit(man, blob_map)
    row = await env.finished(second)
    assert row["status"] == "COMPLETED" and env.control.started.empty()
    assert [n["reused_from"] for n in env.store.get_nodes(second)] == [
        f"{first}:0",
        None,
        f"{first}:2",
    ]


@pytest.fixture(params=["on the loop", "in threads"])
def child_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A child bundle stored on the loop, or (as a large one is) in threads."""
    if request.param == "in threads":
        monkeypatch.setattr(dispatchermod, "LARGE_CHILD_BYTES", 0)
    return str(request.param)


async def test_a_sublattice_runs_as_a_child_dispatch(
    env: Env, child_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    threaded: list[Any] = []
    real = env.d.submit_in_thread

    async def noted(*args: Any, **kwargs: Any) -> str:
        threaded.append(kwargs.get("parent"))
        return await real(*args, **kwargs)

    monkeypatch.setattr(env.d, "submit_in_thread", noted)
    dispatch_id = env.submit(outer, 3)
    for _ in range(2):  # square in the child, then identity (the build runs on "local")
        task, done = await env.control.next()
        done.set_result(await run_for_real(task))
    row = await env.finished(dispatch_id)
    assert row["status"] == "COMPLETED"
    assert blobs.loads(env.store.read_blob(row["result_digest"])) == 9
    node = next(n for n in env.store.get_nodes(dispatch_id) if n["kind"] == "sublattice")
    child = env.store.get_dispatch(node["sub_dispatch_id"])
    assert child is not None and child["parent_dispatch_id"] == dispatch_id
    assert child["status"] == "COMPLETED"
    expected = [dispatch_id] if child_path == "in threads" else []
    assert [parent.dispatch_id for parent in threaded] == expected


async def test_cancelling_a_dispatch_cancels_its_child(env: Env, child_path: str) -> None:
    dispatch_id = env.submit(outer, 3)
    task, done = await env.control.next()
    done.set_result(await run_for_real(task))  # the child is submitted
    task, _done = await env.control.next()  # square, in the child
    env.d.cancel(dispatch_id)
    row = await env.finished(dispatch_id)
    assert row["status"] == "CANCELLED"
    child = env.store.get_dispatch(task.dispatch_id)
    assert child is not None and child["status"] == "CANCELLED"


# faults stay in their dispatch


def poison_manifest() -> tuple[dict[str, Any], dict[str, bytes]]:
    """A manifest whose collection node has a shape nothing can assemble: deciding about
    it raises. (The schema at the server's door refuses it, see tests/test_schema.py;
    Dispatcher.submit checks only the structure of what the door or the store gives it.)"""
    man, blob_map = build(fan, 2)
    for node in man["nodes"]:
        if node["kind"] == "collection":
            node["metadata"]["collection"] = {"type": ["not-a-shape"]}
    return man, blob_map


async def test_a_decision_that_raises_fails_its_dispatch_alone(env: Env) -> None:
    good = env.submit(seed, a=2)
    bad = env.d.submit(*poison_manifest())
    started = [await env.control.next() for _ in range(3)]  # seed's first, fan's two
    for task, done in started:
        done.set_result(value_outcome(2 if task.dispatch_id == good else task.node_id))
    row = await env.finished(bad)  # it fails when its collection is assembled
    assert row["status"] == "FAILED"
    assert "covalent failed while running this dispatch" in row["error"]
    assert "not-a-shape" in row["error"] or "TypeError" in row["error"]
    assert env.statuses(bad) == ["COMPLETED", "COMPLETED", "COMPLETED", "COMPLETED", "CANCELLED"]
    task, done = await env.control.next()  # the seed goes on
    assert task.dispatch_id == good
    done.set_result(value_outcome(4))
    assert (await env.finished(good))["status"] == "COMPLETED"


async def test_an_outcome_the_store_cannot_take_fails_only_its_dispatch(env: Env) -> None:
    good = env.submit(seed, a=2)
    bad = env.submit(seed, a=5)
    tasks = {}
    for _ in range(2):
        task, done = await env.control.next()
        tasks[task.dispatch_id] = done
    huge = BlobFile("b" * 64, 2**70, str(env.root / "nowhere"))  # no SQLite INTEGER holds it
    tasks[bad].set_result(Outcome(S.COMPLETED, output_file=huge))
    tasks[good].set_result(value_outcome(2))
    task, done = await env.control.next()
    assert task.dispatch_id == good
    done.set_result(value_outcome(4))
    assert (await env.finished(good))["status"] == "COMPLETED"
    row = await env.finished(bad)
    assert row["status"] == "FAILED" and "could not store" in row["error"]


# resume


async def test_a_restart_runs_again_what_was_running_and_keeps_what_completed(env: Env) -> None:
    dispatch_id = env.submit(seed, a=2)
    _task, done = await env.control.next()
    done.set_result(value_outcome(2))
    task, _done = await env.control.next()
    assert task.node_id == 2
    await env.stop()  # as if killed: node 2 is RUNNING in the store
    assert env.statuses(dispatch_id) == ["COMPLETED", "COMPLETED", "RUNNING"]
    await env.start()
    task, done = await env.control.next()
    assert task.node_id == 2  # only the running node runs again
    done.set_result(value_outcome(4))
    assert (await env.finished(dispatch_id))["status"] == "COMPLETED"
    assert (2, "RUNNING", "NEW_OBJECT") in env.transitions(dispatch_id)


async def test_a_dispatch_that_cannot_be_resumed_fails_and_the_rest_resume(env: Env) -> None:
    broken = env.submit(seed, a=1)
    fine = env.submit(seed, a=2)
    for _ in range(2):
        await env.control.next()
    await env.stop()
    with env.store.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE dispatches SET manifest = ? WHERE dispatch_id = ?",
            (json.dumps({"nodes": "not a list"}).encode(), broken),
        )
    await env.start()
    row = await env.finished(broken)
    assert row["status"] == "FAILED" and "could not resume" in row["error"]
    assert row["summary"]["lattice"]["name"] == "seed"  # still read, from the row
    assert row["summary"]["inputs"]["args"] == []
    assert set(env.statuses(broken)) <= {"COMPLETED", "CANCELLED"}
    task, done = await env.control.next()
    assert task.dispatch_id == fine
    done.set_result(value_outcome(2))
    task, done = await env.control.next()
    done.set_result(value_outcome(4))
    assert (await env.finished(fine))["status"] == "COMPLETED"


# the transition table, through the loop


async def test_the_loop_makes_every_node_transition_of_the_table(env: Env) -> None:
    """The scenarios above, together, walk every allowed node transition; this test
    walks them again in one place and checks none is missing."""
    seen: set[tuple[str | None, str]] = set()

    def note(dispatch_id: str) -> None:
        seen.update((old, new) for node, old, new in env.transitions(dispatch_id) if node >= 0)

    for test in (
        test_the_seed_runs_to_completed_through_every_step,
        test_a_failure_stops_its_branch_and_fails_the_dispatch,
        test_cancel_stops_the_running_task_calls_the_hook_and_cancels_the_rest,
        test_a_cache_node_runs_once_then_is_reused,
        test_a_restart_runs_again_what_was_running_and_keeps_what_completed,
    ):
        before = {row["dispatch_id"] for row in env.store.list_dispatches(limit=1000)}
        await test(env)
        for row in env.store.list_dispatches(limit=1000):
            if row["dispatch_id"] not in before:
                note(row["dispatch_id"])
    two = env.submit(two_branches)
    await env.control.next()
    await env.control.next()
    env.d.cancel(two, [2])  # a waiting node cancelled alone
    env.d.cancel(two)
    await env.finished(two)
    note(two)
    expected = {
        (old.value, new.value)
        for old, targets in states.NODE_TRANSITIONS.items()
        if old is not None
        for new in targets
    }
    assert expected - seen == set(), f"never made: {sorted(expected - seen)}"


# true times


async def test_a_sublattice_node_spans_its_child_dispatch(env: Env) -> None:
    dispatch_id = env.submit(outer, 3)  # the build runs on "local"
    task, done = await env.control.next()  # square, in the child
    await asyncio.sleep(0.1)
    done.set_result(await run_for_real(task))
    task, done = await env.control.next()  # identity, after the sublattice
    done.set_result(await run_for_real(task))
    assert (await env.finished(dispatch_id))["status"] == "COMPLETED"
    node = next(n for n in env.store.get_nodes(dispatch_id) if n["kind"] == "sublattice")
    child = env.store.get_dispatch(node["sub_dispatch_id"])
    assert child is not None
    assert node["start_time"] <= child["start_time"] <= child["end_time"] <= node["end_time"]
    assert node["end_time"] - node["start_time"] >= 0.1  # the build and the child


async def test_a_sublattice_node_keeps_its_start_across_a_restart(env: Env) -> None:
    dispatch_id = env.submit(outer, 3)  # the build runs on "local"
    await env.control.next()  # square runs in the child
    node_id = next(
        n["node_id"] for n in env.store.get_nodes(dispatch_id) if n["kind"] == "sublattice"
    )
    started = env.nodes(dispatch_id)[node_id]["start_time"]
    assert started is not None
    await env.stop()
    await asyncio.sleep(0.05)
    await env.start()
    for _ in range(2):  # square again, in the resumed child; then identity
        task, done = await env.control.next()
        done.set_result(await run_for_real(task))
    assert (await env.finished(dispatch_id))["status"] == "COMPLETED"
    node = env.nodes(dispatch_id)[node_id]
    assert node["start_time"] == started
    child = env.store.get_dispatch(node["sub_dispatch_id"])
    assert child is not None and child["end_time"] <= node["end_time"]


async def test_a_node_run_again_after_a_restart_keeps_its_first_output(env: Env) -> None:
    dispatch_id = env.submit(seed, a=2)
    _task, done = await env.control.next()
    done.set_result(value_outcome(2))
    task, _done = await env.control.next()
    assert task.on_output is not None
    task.on_output("stdout", "first run\n")
    deadline = time.monotonic() + DEADLINE
    while env.nodes(dispatch_id)[2]["stdout"] != "first run\n":
        assert time.monotonic() < deadline, "the output was not stored"
        await asyncio.sleep(0.01)
    await env.stop()
    await env.start()
    note = "[covalent: the server restarted while this ran; it runs again]\n"
    assert env.nodes(dispatch_id)[2]["stdout"] == "first run\n" + note  # stored at resume
    task, done = await env.control.next()
    assert task.on_output is not None
    task.on_output("stdout", "second run\n")
    done.set_result(value_outcome(4))
    assert (await env.finished(dispatch_id))["status"] == "COMPLETED"
    assert env.nodes(dispatch_id)[2]["stdout"] == "first run\n" + note + "second run\n"
