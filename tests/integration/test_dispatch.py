"""Dispatching through a real server: results, failures, outputs, workers, errors."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

import httpx
import pytest

import covalent as ct
from covalent._client.http import Client, client_for
from covalent._dispatcher.dispatcher import LAUNCH_CHUNK
from covalent._errors import DispatchNotFoundError, ExecutorError, WorkflowError
from covalent._server.dispatches import INLINE_RESULT_BYTES
from tests.conftest import Home

pytestmark = pytest.mark.both_stores  # and on PostgreSQL (tests/conftest.py)


@ct.electron
def add(x, y):
    return x + y


@ct.electron
def boom(x):
    raise ValueError(f"bad value {x}")


@ct.electron
def chatty(x):
    print(f"hello {x}")
    print(f"warning {x}", file=sys.stderr)
    return x


@ct.electron
def pair(x) -> tuple[int, int]:
    return x, x * 10


@ct.electron
def pid(_):
    return os.getpid()


@ct.electron
def context_ids():
    context = ct.get_context()
    return context.dispatch_id, context.node_id


@ct.electron
def collect(items, mapping):
    return sorted(items) + sorted(mapping.values())


def test_outputs_flow_between_electrons(server: Home) -> None:
    @ct.lattice
    def chain(a, b):
        return add(add(a, b), y=b)

    result = ct.dispatch_sync(chain)(1, 2)
    assert result.status == ct.status.COMPLETED
    assert result.result == 5
    assert result.inputs == {"args": [1, 2], "kwargs": {}}
    assert list(result.get_all_node_outputs().values())[0] == 3


def test_collections_unpacking_and_arithmetic(server: Home) -> None:
    @ct.lattice
    def shapes(n):
        low, high = pair(n)
        first = pair(n)[0]
        return collect([low, high, first + 1], {"a": high * 2, "b": 1 - low})

    result = ct.dispatch_sync(shapes)(3)
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == [3, 4, 30] + [-2, 60]


def test_failing_electron_spares_the_independent_branch(server: Home) -> None:
    @ct.lattice
    def mixed(x):
        broken = boom(x)
        after = add(broken, 1)
        fine = add(x, 1)
        return add(after, fine), fine

    dispatch_id = ct.dispatch(mixed)(7)
    result = ct.get_result(dispatch_id, wait=True)
    assert result.status == ct.status.FAILED
    nodes = {n["node_name"] + str(n["node_id"]): n for n in result.get_all_node_results()}
    failed = nodes["boom0"]
    assert failed["status"] == ct.status.FAILED
    assert "ValueError: bad value 7" in failed["error"]
    assert "raise ValueError" in failed["error"]  # the traceback, with the user's line
    assert nodes["add2"]["status"] == ct.status.NOT_RUN
    fine = next(
        n for n in result.get_all_node_results() if n["node_name"] == "add" and n["output"] == 8
    )
    assert fine["status"] == ct.status.COMPLETED
    assert "boom(0)" in result.error and "bad value 7" in result.error
    assert result.result is None


def test_stdout_and_stderr_are_captured(server: Home) -> None:
    @ct.lattice
    def talk(x):
        return chatty(x)

    result = ct.dispatch_sync(talk)("there")
    node = result.get_node_result(0)
    assert node["stdout"] == "hello there\n"
    assert node["stderr"] == "warning there\n"
    assert node["start_time"] <= node["end_time"]


def test_workers_are_reused(server: Home) -> None:
    @ct.lattice
    def many(n):
        return [pid(i) for i in range(n)]

    result = ct.dispatch_sync(many)(40)
    pids = result.result
    assert len(pids) == 40
    assert len(set(pids)) <= max(8, os.cpu_count() or 1) < 40
    assert os.getpid() not in pids


def test_get_context_names_the_running_node(server: Home) -> None:
    @ct.lattice
    def where():
        return context_ids()

    result = ct.dispatch_sync(where)()
    assert result.result == (result.dispatch_id, 0)


def test_status_only(server: Home) -> None:
    @ct.lattice
    def one(x):
        return add(x, x)

    dispatch_id = ct.dispatch(one)(1)
    ct.get_result(dispatch_id, wait=True)
    assert ct.get_result(dispatch_id, status_only=True) == {
        "id": dispatch_id,
        "status": "COMPLETED",
    }


@ct.electron
def filler(n):
    return b"x" * n


def test_the_answer_that_says_finished_brings_a_small_result_along(
    server: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With inline_result, the long poll's last answer carries a small result's blob
    (the bytes GET /blobs/{digest} gives), so get_result(wait=True).result needs no
    further request; a large result is not carried and is fetched as before."""

    @ct.lattice
    def make(n):
        return filler(n)

    small, large = ct.dispatch(make)(10), ct.dispatch(make)(INLINE_RESULT_BYTES * 2)
    client = client_for(server.url)
    detail = client.dispatch(small, wait=30, nodes=False, inline_result=True)
    assert detail["finished"] and detail["status"] == "COMPLETED"
    digest = detail["result_digest"]
    assert base64.b64decode(detail["result_blob"]) == client.fetch_blobs([digest])[digest]
    assert "result_blob" not in client.dispatch(small, nodes=False)  # only when asked
    assert "result_blob" not in client.dispatch(large, wait=30, inline_result=True)

    asked: list[list[str]] = []
    fetch = Client.fetch_blobs
    monkeypatch.setattr(Client, "fetch_blobs", lambda c, d: asked.append(d) or fetch(c, d))
    assert ct.get_result(small, wait=True).result == b"x" * 10
    assert asked == []
    assert ct.get_result(large, wait=True).result == b"x" * INLINE_RESULT_BYTES * 2
    assert len(asked) == 1


def test_unknown_dispatch_id(server: Home) -> None:
    with pytest.raises(DispatchNotFoundError, match="no-such-id"):
        ct.get_result("no-such-id")


def test_unknown_executor_fails_before_submitting(server: Home) -> None:
    @ct.electron(executor="nonexistent")
    def lost(x):
        return x

    @ct.lattice
    def flow(x):
        return lost(x)

    def stored() -> int:
        return int(httpx.get(f"{server.url}/api/v1/dispatches?limit=1").json()["total"])

    before = stored()
    with pytest.raises(ExecutorError, match="'nonexistent'.*installed executors are: .*local"):
        ct.dispatch(flow)(1)
    assert stored() == before  # nothing was submitted: the error came from the client


def test_lattice_body_error_names_the_lattice(server: Home) -> None:
    @ct.lattice
    def broken_body(x):
        raise KeyError("missing")

    with pytest.raises(WorkflowError, match="broken_body.*KeyError.*missing") as info:
        ct.dispatch(broken_body)(1)
    assert isinstance(info.value.__cause__, KeyError)


def test_lattice_returning_a_constant(server: Home) -> None:
    @ct.lattice
    def constant():
        return {"answer": 42}

    result = ct.dispatch_sync(constant)()
    assert result.status == ct.status.COMPLETED
    assert result.result == {"answer": 42}


def _greeting():
    return "hello from call_before"


def _touch(path, text="after"):
    from pathlib import Path

    Path(path).write_text(text)


@ct.electron
def read_file(path, greeting=None):
    with open(path) as f:
        return f.read().strip(), greeting


def test_deps_and_hooks_run_on_the_executor(server: Home, tmp_path) -> None:
    made, after, keyed = tmp_path / "made.txt", tmp_path / "after.txt", tmp_path / "keyed.txt"
    task = ct.electron(
        read_file.function,
        deps_bash=ct.DepsBash([f"echo built > {made}"]),
        deps_pip=ct.DepsPip(packages=["cloudpickle"]),
        call_before=[ct.DepsCall(_greeting, retval_keyword="greeting")],
        call_after=[
            ct.DepsCall(_touch, args=[str(after)]),
            ct.DepsCall(_touch, kwargs={"path": str(keyed), "text": "by keyword"}),
        ],
    )

    @ct.lattice
    def flow(path):
        return task(path)

    result = ct.dispatch_sync(flow)(str(made))
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == ("built", "hello from call_before")
    assert after.read_text() == "after"
    assert keyed.read_text() == "by keyword"


def test_deps_pip_installs_what_a_requirements_file_lists(server: Home, tmp_path) -> None:
    """The file is read where the electron is defined (it is gone before the dispatch)
    and its packages go to pip on the executor: one installed already, one that pip
    cannot find, so the node fails naming both."""
    missing = tmp_path / "no-such-package"
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"# what the electron needs\ncloudpickle\n\n{missing}\n")
    task = ct.electron(read_file.function, deps_pip=ct.DepsPip(reqs_path=str(requirements)))
    requirements.unlink()

    @ct.lattice
    def flow(path):
        return task(path)

    result = ct.dispatch_sync(flow)(str(tmp_path))
    assert result.status == ct.status.FAILED
    error = result.get_node_result(0)["error"]
    assert f"deps_pip could not install ['cloudpickle', '{missing}']" in error, error


def test_lattice_hooks_apply_to_its_electrons(server: Home, tmp_path) -> None:
    made = tmp_path / "lattice.txt"

    @ct.lattice(deps_bash=[f"echo from-lattice > {made}"])
    def flow(path):
        return read_file(path)

    result = ct.dispatch_sync(flow)(str(made))
    assert result.result == ("from-lattice", None)


def test_failing_deps_fail_the_node_clearly(server: Home, tmp_path) -> None:
    bad_bash = ct.electron(read_file.function, deps_bash="exit 3")
    bad_pip = ct.electron(read_file.function, deps_pip=[str(tmp_path / "no-such-package")])

    @ct.lattice
    def flow(path):
        return bad_bash(path), bad_pip(path)

    result = ct.dispatch_sync(flow)(str(tmp_path))
    assert result.status == ct.status.FAILED
    errors = [n["error"] for n in result.get_all_node_results() if n["error"]]
    assert any("deps_bash command 'exit 3' failed with exit code 3" in e for e in errors)
    assert any("deps_pip could not install" in e for e in errors)


@ct.electron(retries=3, retry_delay=0.1)
def flaky(counter_path):
    from pathlib import Path

    path = Path(counter_path)
    tries = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(tries))
    if tries < 3:
        raise RuntimeError(f"attempt {tries} failed")
    return tries


@ct.electron(timeout=1)
def too_slow():
    import time

    time.sleep(120)


def test_retries_record_each_failed_attempt(server: Home, tmp_path) -> None:
    @ct.lattice
    def flow(path):
        return flaky(path)

    result = ct.dispatch_sync(flow)(str(tmp_path / "count"))
    assert result.status == ct.status.COMPLETED
    assert result.result == 3
    node = result.get_node_result(0)
    assert node["attempts"] == 3  # every try, the one that completed too
    retried = node["retried"]  # the tries that failed and were retried
    assert [a["attempt"] for a in retried] == [1, 2]
    assert "RuntimeError: attempt 1 failed" in retried[0]["error"]
    assert "RuntimeError: attempt 2 failed" in retried[1]["error"]


def test_timeout_stops_the_electron_and_names_the_limit(server: Home) -> None:
    @ct.lattice
    def flow():
        return too_slow()

    result = ct.dispatch_sync(flow)()
    assert result.status == ct.status.FAILED
    node = result.get_node_result(0)
    assert "timeout of 1 s" in node["error"]
    assert (node["end_time"] - node["start_time"]).total_seconds() < 60


@ct.electron
def exits_hard():
    os._exit(1)


@ct.electron
def segfaults():
    import ctypes

    return ctypes.string_at(0)


@ct.electron(executor=ct.executor.LocalExecutor(memory_limit=1_500_000_000))
def hogs_memory():
    blocks = []
    while True:
        blocks.append(bytearray(100_000_000))


@ct.electron
def interrupts():
    raise KeyboardInterrupt("from the electron")


@ct.electron
def raises_base():
    raise BaseException("not an Exception")


def test_an_electron_raising_a_base_exception_fails_with_its_own_traceback(server: Home) -> None:
    # they were "killed by SIGINT" and "exited unexpectedly with code 1"
    @ct.lattice
    def flow(x):
        return interrupts(), raises_base(), add(x, 1)

    result = ct.dispatch_sync(flow)(1)
    errors = {n["node_name"]: n["error"] for n in result.get_all_node_results()}
    assert "KeyboardInterrupt: from the electron" in errors["interrupts"]
    assert "BaseException: not an Exception" in errors["raises_base"]
    assert "unexpectedly" not in errors["raises_base"] and "SIGINT" not in errors["interrupts"]
    assert [n["output"] for n in result.get_all_node_results() if n["node_name"] == "add"] == [2]


def test_worker_faults_fail_only_their_node(server: Home) -> None:
    @ct.lattice
    def faulty(x):
        return exits_hard(), segfaults(), hogs_memory(), add(x, 1)

    result = ct.dispatch_sync(faulty)(1)
    assert result.status == ct.status.FAILED
    errors = {n["node_name"]: n["error"] for n in result.get_all_node_results()}
    assert "exited unexpectedly with code 1" in errors["exits_hard"]
    assert "killed by SIGSEGV" in errors["segfaults"]
    assert "ran out of memory" in errors["hogs_memory"] and "MemoryError" in errors["hogs_memory"]
    survivor = [n for n in result.get_all_node_results() if n["node_name"] == "add"][0]
    assert survivor["status"] == ct.status.COMPLETED and survivor["output"] == 2

    @ct.lattice
    def after(x):
        return add(x, x)

    assert ct.dispatch_sync(after)(4).result == 8  # the pool replaced its workers


@ct.electron
def exits_3():
    os._exit(3)


def test_a_worker_dying_in_one_dispatch_fails_no_node_of_another(server: Home) -> None:
    """Quick nodes of two dispatches share the workers' batches with the nodes of two
    others that each end their worker process: those fail, each naming its exit, and
    every quick node completes (the tasks of a dead worker's batch that it did not start,
    or whose replies died with it, run again on a new worker)."""

    @ct.lattice
    def many(n):
        return [add(i, 1) for i in range(n)]

    @ct.lattice
    def crashing(n):
        return [exits_3() for _ in range(n)]

    goods, bads = [], []
    for _ in range(2):  # at once: their queued tasks take turns in the workers' batches
        goods.append(ct.dispatch(many)(100))
        bads.append(ct.dispatch(crashing)(10))
    for dispatch_id in goods:
        result = ct.get_result(dispatch_id, wait=True)
        failed = [n["error"] for n in result.get_all_node_results() if n["error"]]
        assert result.status == ct.status.COMPLETED, failed[:3]
        assert result.result == list(range(1, 101))
    for dispatch_id in bads:
        result = ct.get_result(dispatch_id, wait=True)
        assert result.status == ct.status.FAILED
        errors = [n["error"] for n in result.get_all_node_results() if n["node_name"] == "exits_3"]
        assert len(errors) == 10
        assert all("exited unexpectedly with code 3" in e for e in errors), errors


@ct.electron
def stamp(path, tag):
    with open(path, "a") as f:
        f.write(tag + "\n")
    return tag


def test_wait_orders_nodes_without_passing_data(server: Home, tmp_path) -> None:
    log = str(tmp_path / "order.txt")

    @ct.lattice
    def ordered(path):
        first = stamp(path, "first")
        second = stamp(path, "second")
        third = stamp(path, "third")
        second.wait_for(first)
        ct.wait(third, [second])
        return third

    for _ in range(3):  # without the waits the three would race
        result = ct.dispatch_sync(ordered)(log)
        assert result.result == "third"
    lines = Path(log).read_text().split()
    assert lines == ["first", "second", "third"] * 3


@ct.electron
def total(values):
    return sum(values)


def test_large_collections_are_assembled_from_their_items(server: Home) -> None:
    @ct.lattice
    def fan(n):
        return total([add(i, 1) for i in range(n)]), [[add(0, 0)], {"k": add(1, 1)}]

    # The list's digests make a composite blob larger than the inline limit, and the
    # fan-out is wider than the dispatcher starts in one turn (LAUNCH_CHUNK).
    n = 4000
    assert n > LAUNCH_CHUNK
    result = ct.dispatch_sync(fan)(n)
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == (n * (n + 1) // 2, [[0], {"k": 2}])
    listing = next(
        node for node in result.get_all_node_results() if node["node_name"] == ":electron_list:"
    )
    assert listing["output"][:3] == [1, 2, 3] and len(listing["output"]) == n
    assert listing["start_time"] == listing["end_time"]  # assembled, not run on a worker
