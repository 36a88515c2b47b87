"""The local pool's workers, end to end on a real server: output while an electron runs
and after it is stopped, where a timed-out electron was, processes an electron leaves
behind, workers that die with the server, RUNNING meaning running, and a worker socket
that an electron writes on.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import time
from pathlib import Path

import covalent as ct
from tests.conftest import Home, wait_for


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for_file(path: Path, timeout: float = 120.0) -> str:
    wait_for(lambda: path.exists() and path.read_text().strip(), timeout, f"{path}")
    return path.read_text()


def _node(dispatch_id: str, node_id: int = 0) -> dict:
    return ct.get_result(dispatch_id).get_node_result(node_id)


# electrons (module level: they travel by value with this test module)


@ct.electron
def chatty(go: str):
    import os
    import subprocess
    import sys
    import time

    print("from print", flush=True)
    os.write(1, b"from the file descriptor\n")
    subprocess.run(["echo", "from a subprocess"], check=True)
    print("to stderr", file=sys.stderr)
    while not os.path.exists(go):
        time.sleep(0.05)
    print("done")
    return 1


@ct.electron
def prints_then_waits(line: str):
    import time

    print(line, flush=True)
    time.sleep(600)


@ct.electron(timeout=2)
def hangs():
    import time

    print("about to hang", flush=True)
    time.sleep(600)


@ct.electron(timeout=2)
def holds_the_gil():
    import re

    print("about to backtrack", flush=True)
    re.match(r"(a+)+b", "a" * 64)  # C code that never lets another thread of its process run


@ct.electron
def leaves_children(marks: str):
    import os
    import time

    os.system(f"sleep 90 & echo $! > {marks}.sh")
    child = os.fork()
    if child == 0:
        time.sleep(90)
        os._exit(0)
    with open(f"{marks}.fork", "w") as f:
        f.write(str(child))
    return os.getpid()


@ct.electron
def children_then_wait(marks: str):
    import os
    import time

    os.system(f"sleep 600 & echo $! > {marks}.sh")
    with open(f"{marks}.self", "w") as f:
        f.write(str(os.getpid()))
    time.sleep(600)


@ct.electron(executor=ct.executor.LocalExecutor(workers=1), timeout=3)
def child_then_hang(marks: str):
    import os
    import time

    os.system(f"sleep 90 & echo $! > {marks}.sh")
    time.sleep(600)


@ct.electron(executor=ct.executor.LocalExecutor(workers=1))
def quick(x):
    return x + 1


@ct.electron
def writes_on_its_socket(marker: str):
    import sys
    import time

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps([Boom()])
    os.write(int(sys.argv[1]), struct.pack("!i", len(payload)) + payload)
    time.sleep(600)


@ct.electron(executor=ct.executor.LocalExecutor(workers=2))
def counted(log: str, n: int):
    import time

    with open(log, "a") as f:
        f.write(f"{n}\n")
    time.sleep(3)
    return n


@ct.lattice
def eight_counted(log: str):
    return [counted(log, n) for n in range(8)]


def _single(electron):
    @ct.lattice
    def flow(*args):
        return electron(*args)

    return flow


# output


def test_output_reaches_the_store_while_the_electron_runs(server: Home, tmp_path: Path) -> None:
    go = tmp_path / "go"
    dispatch_id = ct.dispatch(_single(chatty))(str(go))
    expected = "from print\nfrom the file descriptor\nfrom a subprocess\n"
    node = wait_for(  # stderr is written after stdout and may come in a later send
        lambda: (
            (n := _node(dispatch_id))["stdout"] == expected and n["stderr"] == "to stderr\n" and n
        ),
        timeout=120,
        what="the running electron's stdout and stderr",
    )
    assert node["status"] == "RUNNING"
    go.touch()
    result = ct.get_result(dispatch_id, wait=True)
    assert result.status == ct.status.COMPLETED
    assert result.get_node_result(0)["stdout"] == expected + "done\n"


def test_a_cancelled_electron_keeps_what_it_printed_and_its_true_times(server: Home) -> None:
    dispatch_id = ct.dispatch(_single(prints_then_waits))("a flushed line")
    wait_for(lambda: _node(dispatch_id)["stdout"], timeout=120, what="its line")
    time.sleep(1.0)  # let it run a measurable while
    ct.cancel(dispatch_id)
    result = ct.get_result(dispatch_id, wait=True)
    node = result.get_node_result(0)
    assert result.status == ct.status.CANCELLED
    assert node["status"] == "CANCELLED" and node["stdout"] == "a flushed line\n"
    took = (node["end_time"] - node["start_time"]).total_seconds()
    assert took >= 1.0, f"start {node['start_time']}, end {node['end_time']}"


def test_a_timed_out_electron_says_where_it_was(server: Home) -> None:
    result = ct.dispatch_sync(_single(hangs))()
    node = result.get_node_result(0)
    assert node["status"] == "FAILED"
    assert "timed out" in node["error"]
    assert "Its last line of output: about to hang" in node["error"]
    assert "Where it was when stopped" in node["error"]
    assert "in hangs" in node["error"]  # the electron's own frame
    assert node["stdout"] == "about to hang\n"
    took = (node["end_time"] - node["start_time"]).total_seconds()
    assert 1.5 <= took < 60


def test_an_electron_that_holds_the_gil_still_says_where_it_was(server: Home) -> None:
    """The worker's own threads cannot run while the electron holds the GIL: its stacks
    must reach the server without them."""
    result = ct.dispatch_sync(_single(holds_the_gil))()
    node = result.get_node_result(0)
    assert node["status"] == "FAILED"
    assert "timed out" in node["error"], node["error"]
    assert "Where it was when stopped" in node["error"], (node["error"], node["stderr"])
    assert "in holds_the_gil" in node["error"]


# processes an electron leaves behind


def test_children_an_electron_leaves_do_not_hold_its_node(server: Home, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    started = time.monotonic()
    result = ct.dispatch_sync(_single(leaves_children))(str(marks))
    assert result.status == ct.status.COMPLETED
    assert time.monotonic() - started < 60  # not the 90 s its children sleep


def test_cancel_kills_the_whole_process_tree(server: Home, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    dispatch_id = ct.dispatch(_single(children_then_wait))(str(marks))
    worker = int(_wait_for_file(Path(f"{marks}.self")))
    child = int(_wait_for_file(Path(f"{marks}.sh")))
    assert _alive(worker) and _alive(child)
    ct.cancel(dispatch_id)
    assert ct.get_result(dispatch_id, wait=True).status == ct.status.CANCELLED
    wait_for(lambda: not _alive(child) and not _alive(worker), 60, "the process tree to end")


def test_a_timeout_frees_its_worker_slot(server: Home, tmp_path: Path) -> None:
    """One worker slot: an electron that times out leaving a child behind, then a
    trivial one on the same executor, which must not wait for that child (90 s)."""
    marks = tmp_path / "marks"
    result = ct.dispatch_sync(_single(child_then_hang))(str(marks))
    assert result.status == ct.status.FAILED
    child = int(_wait_for_file(Path(f"{marks}.sh")))
    started = time.monotonic()
    assert ct.dispatch_sync(_single(quick))(1).result == 2
    assert time.monotonic() - started < 60
    wait_for(lambda: not _alive(child), 60, "the timed-out electron's child to end")


# the server's side of the socket


def test_a_crafted_message_on_the_socket_runs_nothing_in_the_server(
    server: Home, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    result = ct.dispatch_sync(_single(writes_on_its_socket))(str(marker))
    node = result.get_node_result(0)
    assert node["status"] == "FAILED"
    assert "malformed message" in node["error"]
    assert not marker.exists(), "the server unpickled what the electron wrote"
    assert ct.dispatch_sync(_single(quick))(1).result == 2  # the server goes on


# the server dies, and comes back


def test_workers_and_their_children_die_with_the_server(home: Home, tmp_path: Path) -> None:
    assert home.run("covalent", "start").returncode == 0
    marks = tmp_path / "marks"
    ct.dispatch(_single(children_then_wait))(str(marks))
    worker = int(_wait_for_file(Path(f"{marks}.self")))
    child = int(_wait_for_file(Path(f"{marks}.sh")))
    pid = home.server_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not _alive(worker) and not _alive(child), 60, "workers to die")


def test_a_crash_runs_again_only_what_was_running(home: Home, tmp_path: Path) -> None:
    """Eight 3-second electrons on two worker slots: the server is killed while two of
    them run. After the restart, at most those two run a second time."""
    assert home.run("covalent", "start").returncode == 0
    log = tmp_path / "runs.log"
    dispatch_id = ct.dispatch(eight_counted)(str(log))
    wait_for(lambda: log.exists() and len(log.read_text().split()) >= 2, 120, "two starts")
    pid = home.server_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not _alive(pid), 60, "the server to die")
    assert home.run("covalent", "start").returncode == 0
    result = ct.get_result(dispatch_id, wait=True)
    assert result.status == ct.status.COMPLETED
    assert result.result == list(range(8))
    runs = log.read_text().split()
    assert sorted(set(runs)) == [str(n) for n in range(8)]
    assert len(runs) <= 8 + 2, f"{len(runs) - 8} extra runs for 2 worker slots: {runs}"
