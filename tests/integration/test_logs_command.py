"""``covalent logs`` end to end: following a running dispatch's (or one node's) output
until it ends, saying when nothing was written, and the server log of one dispatch."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import covalent as ct
from covalent._errors import BadRequestError, DispatchNotFoundError
from tests.conftest import Home, wait_for


@ct.electron
def talks_in_two_parts(go: str):
    import os
    import sys
    import time

    print("first part", flush=True)
    print("first warning", file=sys.stderr, flush=True)
    deadline = time.monotonic() + 300
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.system("echo second part from a subprocess")
    return 1


@ct.electron
def silent(x):
    return x


@ct.electron
def fails(x):
    raise ValueError(f"bad {x}")


@ct.lattice
def two_parts(go: str):
    return talks_in_two_parts(go)


@ct.lattice
def quiet(x):
    return silent(x)


@ct.lattice
def broken(x):
    return fails(x)


class Running:
    """A command running in the background, its stdout read line by line as it comes."""

    def __init__(self, home: Home, *args: str) -> None:
        command = [sys.executable, "-m", "covalent._cli.main", *args]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=home.root
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def finish(self, timeout: float = 120.0) -> tuple[int, list[str], str]:
        self.process.wait(timeout)
        self.reader.join(timeout)
        assert self.process.stderr is not None
        return self.process.returncode, self.lines, self.process.stderr.read()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def test_follow_prints_output_as_it_comes_and_returns_when_the_dispatch_ends(
    server: Home, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    dispatch_id = ct.dispatch(two_parts)(str(go))
    follow = Running(server, "logs", "-f", dispatch_id)
    try:
        wait_for(lambda: "first warning" in follow.lines, 120, "the first part, live")
        assert follow.process.poll() is None  # still following
        assert ct.get_result(dispatch_id, status_only=True)["status"] == "RUNNING"
        go.touch()
        code, lines, err = follow.finish()
    finally:
        follow.kill()
    assert code == 0, err
    assert lines == [
        "==> talks_in_two_parts(0) stdout <==",
        "first part",
        "==> talks_in_two_parts(0) stderr <==",
        "first warning",
        "==> talks_in_two_parts(0) stdout <==",
        "second part from a subprocess",
    ]
    assert ct.get_result(dispatch_id, wait=True).status == ct.status.COMPLETED


def test_follow_one_node_splits_its_streams(server: Home, tmp_path: Path) -> None:
    go = tmp_path / "go"
    dispatch_id = ct.dispatch(two_parts)(str(go))
    follow = Running(server, "logs", "--follow", dispatch_id, "0")
    try:
        wait_for(lambda: "first part" in follow.lines, 120, "the first line, live")
        go.touch()
        code, lines, err = follow.finish()
    finally:
        follow.kill()
    assert code == 0, err
    assert lines == ["first part", "second part from a subprocess"]
    assert err == "first warning\n"


def test_follow_of_a_finished_dispatch_prints_it_and_returns(server: Home, tmp_path: Path) -> None:
    go = tmp_path / "go"
    go.touch()
    result = ct.dispatch_sync(two_parts)(str(go))
    done = server.run("covalent", "logs", "-f", result.dispatch_id)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("first part") == 1
    assert done.stdout.count("second part from a subprocess") == 1


def test_logs_says_when_no_node_wrote_anything(server: Home) -> None:
    result = ct.dispatch_sync(quiet)(1)
    every = server.run("covalent", "logs", result.dispatch_id)
    assert every.returncode == 0
    assert every.stdout == f"No node of dispatch {result.dispatch_id} has written anything.\n"
    one = server.run("covalent", "logs", result.dispatch_id, "0")
    assert one.returncode == 0 and one.stdout == ""
    assert one.stderr == (
        f"Node silent(0) of dispatch {result.dispatch_id} has written nothing (COMPLETED).\n"
    )
    followed = server.run("covalent", "logs", "-f", result.dispatch_id)
    assert followed.returncode == 0 and "has written anything" in followed.stdout


def test_the_server_log_of_one_dispatch(server: Home) -> None:
    failed = ct.dispatch_sync(broken)(1)
    other = ct.dispatch_sync(quiet)(2)
    done = server.run("covalent", "logs", "--dispatch", failed.dispatch_id)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines and all(f"dispatch={failed.dispatch_id} " in line for line in lines)
    assert any("event=node.failed fails(0) failed: ValueError: bad 1" in line for line in lines)
    assert any("event=dispatch.finished FAILED in " in line for line in lines)
    short = server.run("covalent", "logs", "--dispatch", other.dispatch_id[:8])
    assert short.stdout and other.dispatch_id in short.stdout
    assert failed.dispatch_id not in short.stdout
    unknown = server.run("covalent", "logs", "--dispatch", "no-such-dispatch")
    assert unknown.returncode == DispatchNotFoundError.exit_code, unknown.stderr
    assert unknown.stdout == "" and "no-such-dispatch" in unknown.stderr


def test_json_does_not_go_with_follow(server: Home) -> None:
    result = ct.dispatch_sync(quiet)(3)
    done = server.run("covalent", "logs", "-f", "--json", result.dispatch_id)
    assert done.returncode == BadRequestError.exit_code
    assert done.stderr.strip().startswith("Error: --json and --follow do not go together")


def test_follow_rides_out_a_server_restart(home: Home, tmp_path: Path) -> None:
    assert home.run("covalent", "start").returncode == 0
    go = tmp_path / "go"
    dispatch_id = ct.dispatch(two_parts)(str(go))
    follow = Running(home, "logs", "-f", dispatch_id, "0")
    try:
        wait_for(lambda: "first part" in follow.lines, 120, "the first line, live")
        assert home.run("covalent", "stop").returncode == 0
        assert home.run("covalent", "start").returncode == 0  # the node runs again
        wait_for(lambda: follow.lines.count("first part") == 2, 120, "the second run's line")
        go.touch()
        code, lines, err = follow.finish()
    finally:
        follow.kill()
    assert code == 0, err
    assert lines == [
        "first part",
        "[covalent: the server restarted while this ran; it runs again]",
        "first part",
        "second part from a subprocess",
    ]
    if "covalent: no server answers at" in err:  # it saw the server away (most often)
        assert "answers again" in err
    node = ct.get_result(dispatch_id, wait=True).get_node_result(0)
    assert node["stdout"] == "\n".join(lines) + "\n"  # the store keeps both runs


def test_following_an_unknown_dispatch_is_one_line(server: Home) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    done = server.run("covalent", "logs", "-f", unknown)
    assert done.returncode == DispatchNotFoundError.exit_code
    assert done.stderr.count("\n") == 1 and unknown in done.stderr
    assert "Traceback" not in done.stderr
