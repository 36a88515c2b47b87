"""The server as a service: start, stop, restart, status, logs, and what survives them."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

import covalent as ct
from tests.conftest import Home, free_port, wait_for


@ct.electron
def double(x):
    return 2 * x


@ct.electron
def append_then_wait(path, tag, release="", after=None):
    """Append ``tag`` to ``path``; then, if ``release`` is given, wait until it exists."""
    import os
    import time

    with open(path, "a") as f:
        f.write(f"{tag}\n")
    deadline = time.monotonic() + 300
    while release and not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.05)
    return tag


@ct.electron
def nap(seconds):
    import time

    time.sleep(seconds)
    return seconds


def _start(home: Home) -> None:
    done = home.run("covalent", "start")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"Covalent server has started at {home.url}"


def test_start_status_stop_messages(home: Home) -> None:
    assert home.run("covalent", "status").stdout.strip() == "Covalent server is stopped."
    _start(home)
    status = home.run("covalent", "status").stdout
    assert status.startswith(f"Covalent server is running at {home.url}.")
    assert str(home.root / "data" / "dispatcher.sqlite") in status
    again = home.run("covalent", "start").stdout.strip()
    assert again == f"Covalent server is already running at {home.url}."
    assert home.run("covalent", "stop").stdout.strip() == "Covalent server has stopped."
    assert home.run("covalent", "status").stdout.strip() == "Covalent server is stopped."
    assert "Uvicorn running" in home.run("covalent", "logs").stdout


def test_start_stop_and_is_running_from_python(
    home: Home, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ct.is_covalent_running() is False
    assert ct.covalent_start() == home.url
    assert capsys.readouterr().out == f"Covalent server has started at {home.url}\n"
    assert ct.is_covalent_running() is True
    assert home.run("covalent", "status").stdout.startswith("Covalent server is running at")
    assert ct.covalent_start(quiet=True) == home.url  # already running: says nothing
    ct.covalent_start()
    assert capsys.readouterr().out == f"Covalent server is already running at {home.url}.\n"
    ct.covalent_stop()
    assert capsys.readouterr().out == "Covalent server has stopped.\n"
    assert ct.is_covalent_running() is False
    assert home.run("covalent", "status").stdout.strip() == "Covalent server is stopped."


def test_start_fails_clearly_when_the_port_is_taken(home: Home) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", home.port))
        taken.listen()
        done = home.run("covalent", "start")
    assert done.returncode == 7
    assert f"Port {home.port} is in use" in done.stderr
    assert "Traceback" not in done.stderr


def test_two_starts_at_once_give_one_server_that_stop_stops(home: Home) -> None:
    import subprocess
    import sys

    other_port = free_port()
    commands = [
        [sys.executable, "-m", "covalent._cli.main", "start", "--port", str(port)]
        for port in (home.port, other_port)
    ]
    env = {**os.environ, **home.env}
    starts = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, text=True) for c in commands]
    outs = [p.communicate(timeout=180)[0].strip() for p in starts]
    assert [p.returncode for p in starts] == [0, 0]
    started = [o for o in outs if o.startswith("Covalent server has started at")]
    assert len(started) == 1, outs
    url = started[0].removeprefix("Covalent server has started at ")
    assert f"Covalent server is already running at {url}." in outs
    pid = home.server_pid()
    assert pid is not None
    assert home.run("covalent", "stop").stdout.strip() == "Covalent server has stopped."
    for port in (home.port, other_port):  # nothing answers on either port
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_stop_never_signals_a_process_that_is_not_the_server(home: Home) -> None:
    # after a crash the pid file's number may belong to another program: stop killed it
    import json
    import subprocess
    import sys

    from covalent._client import service

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        pid_file = home.root / "cache" / "server.pid"
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(json.dumps({"pid": other.pid, "url": home.url, "port": home.port}))
        assert home.run("covalent", "status").stdout.strip() == "Covalent server is stopped."
        done = home.run("covalent", "stop")
        assert done.returncode == 0 and "Traceback" not in done.stderr
        assert other.poll() is None  # untouched
        assert not pid_file.exists()  # the stale record is gone
        for text in ['{"pid": "abc"}', '{"url": "x"}', "[1, 2]", '{"pid": 99999999999, "url": ""}']:
            pid_file.write_text(text)
            for command in ("status", "stop"):
                done = home.run("covalent", command)
                assert done.returncode == 0 and "Traceback" not in done.stderr, (text, done)
        for pid in (-1, 0, 1, True):  # kill(-1) is every process, kill(0) the caller's group
            pid_file.write_text(json.dumps({"pid": pid, "url": home.url}))
            assert service._read_pid_file() is None  # so stop() never reaches os.kill
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_stop_waits_for_a_start_under_way(home: Home) -> None:
    import fcntl
    import subprocess
    import sys

    _start(home)
    lock = home.root / "cache" / "server.start.lock"
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a start would, while its server comes up
        command = [sys.executable, "-m", "covalent._cli.main", "stop"]
        stop = subprocess.Popen(command, env={**os.environ, **home.env}, stdout=subprocess.PIPE)
        with pytest.raises(subprocess.TimeoutExpired):
            stop.wait(timeout=2)  # it waits for its turn (a deadline, not a sleep)
        assert home.server_pid() is not None
    out, _ = stop.communicate(timeout=120)  # the turn released: it stops the server
    assert out.decode().strip() == "Covalent server has stopped."
    assert home.run("covalent", "status").stdout.strip() == "Covalent server is stopped."


def test_a_second_server_on_the_same_database_is_refused_naming_the_first(home: Home) -> None:
    _start(home)
    pid = home.server_pid()
    done = home.run("python", "-m", "covalent._server", "--port", str(free_port()))
    assert done.returncode == 3
    assert f"Another covalent server (process {pid} on " in done.stderr
    assert str(home.root / "data" / "dispatcher.sqlite") in done.stderr
    assert "Traceback" not in done.stderr
    assert home.run("covalent", "status").stdout.startswith("Covalent server is running at")
    dispatch_id = ct.dispatch(ct.lattice(lambda x: double(x)))(4)
    assert ct.get_result(dispatch_id, wait=True).result == 8  # the first one is unharmed


def test_a_failed_start_with_port_does_not_save_it(home: Home) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = home.run("covalent", "start", "--port", str(port))
    assert done.returncode == 7 and f"Port {port} is in use" in done.stderr
    assert ct.get_config("dispatcher.port") == home.port  # unchanged


@pytest.mark.parametrize("port", ["99999", "0", "-3"])
def test_a_port_out_of_range_is_refused_at_start_without_a_traceback(home: Home, port: str) -> None:
    # 99999 and -3 ended in an OverflowError traceback; 0 started a server on a port the
    # client then waited on for a minute
    done = home.run("covalent", "start", f"--port={port}", timeout=30)
    assert done.returncode == 3, done.stderr
    assert f"dispatcher.port takes a port number from 1 to 65535, not {port}." in done.stderr
    assert "Traceback" not in done.stderr
    assert ct.get_config("dispatcher.port") == home.port  # unchanged
    assert home.run("covalent", "status").stdout.strip() == "Covalent server is stopped."


def test_an_address_not_of_this_machine_is_named_at_start(home: Home) -> None:
    # it was "Port N is in use by another program", which sent one looking for a program
    assert home.run("covalent", "config", "set", "dispatcher.address", "192.0.2.1").returncode == 0
    done = home.run("covalent", "start", timeout=30)
    assert done.returncode == 3, done.stderr
    assert "dispatcher.address '192.0.2.1' (192.0.2.1) is not an address of this machine" in (
        done.stderr
    )
    assert "in use" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (
            "sqlite:////nonexistent-covalent/dir/x.db",
            "The SQLite database /nonexistent-covalent/dir/x.db cannot be made: its folder "
            "/nonexistent-covalent/dir does not exist",
        ),
        (
            "nosuchdb://scott:tiger@host/db",
            "The database URL nosuchdb://scott:***@host/db cannot be used here (NoSuchModuleError",
        ),
    ],
)
def test_a_database_url_the_server_cannot_use_is_named_at_start(
    home: Home, url: str, words: str
) -> None:
    # the server died with a traceback; start showed its last line, a link to SQLAlchemy's
    # error page, or a bare ModuleNotFoundError
    done = home.run("covalent", "start", "--database-url", url, timeout=60)
    assert done.returncode == 7, done.stderr
    assert words in done.stderr
    assert "tiger" not in done.stderr
    assert "db_url" not in (home.root / "config" / "covalent.conf").read_text()


def test_a_database_folder_that_cannot_be_made_is_named_at_start(home: Home) -> None:
    # it was "exited with code 1 (FileNotFoundError: ...)" and a traceback in the log
    blocker = home.root / "not-a-folder"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the data folder would go")
    done = home.run("covalent", "config", "set", "dispatcher.db_path", f"{blocker}/db.sqlite")
    assert done.returncode == 0, done.stderr
    done = home.run("covalent", "start", timeout=60)
    assert done.returncode == 7, done.stderr
    assert f"Cannot create the database file {blocker}/db.sqlite" in done.stderr
    assert "Traceback" not in (home.root / "cache" / "server.log").read_text()


def test_start_with_port_saves_it(home: Home, tmp_path: Path) -> None:
    from tests.conftest import free_port

    port = free_port()
    done = home.run("covalent", "start", "--port", str(port))
    assert done.stdout.strip() == f"Covalent server has started at http://localhost:{port}"
    assert ct.get_config("dispatcher.port") == port
    home.run("covalent", "stop")


@pytest.mark.both_stores
def test_restart_keeps_finished_dispatches_readable(home: Home) -> None:
    _start(home)

    @ct.lattice
    def flow(x):
        return double(double(x))

    dispatch_id = ct.dispatch(flow)(5)
    assert ct.get_result(dispatch_id, wait=True).result == 20
    restarted = home.run("covalent", "restart")
    assert restarted.stdout.splitlines() == [
        "Covalent server has stopped.",
        f"Covalent server has started at {home.url}",
    ]
    result = ct.get_result(dispatch_id)
    assert result.status == ct.status.COMPLETED
    assert result.result == 20
    assert result.get_node_result(0)["output"] == 10


@pytest.mark.both_stores
def test_stop_interrupts_a_running_dispatch_and_the_next_start_resumes_it(
    home: Home, tmp_path: Path
) -> None:
    """``covalent stop`` while a node runs (it waits for a file the test makes only after
    the restart, so the dispatch cannot have finished before the stop); the next start
    runs that node again and finishes the dispatch."""
    _start(home)
    log, release = tmp_path / "ran.txt", tmp_path / "release"

    @ct.lattice
    def flow(path, release):
        return double(append_then_wait(path, "held", release))

    dispatch_id = ct.dispatch(flow)(str(log), str(release))
    wait_for(lambda: log.exists() and "held" in log.read_text(), what="the node to start")
    assert home.run("covalent", "stop").stdout.strip() == "Covalent server has stopped."
    assert not release.exists()  # so the node was still running when the server stopped
    _start(home)
    wait_for(lambda: log.read_text().count("held") == 2, what="the node to run again")
    release.touch()
    result = ct.get_result(dispatch_id, wait=True)
    assert result.status == ct.status.COMPLETED, result.error
    assert result.result == "heldheld"


@pytest.mark.both_stores
def test_killed_server_resumes_without_rerunning_completed_nodes(
    home: Home, tmp_path: Path
) -> None:
    _start(home)
    log, release = tmp_path / "ran.txt", tmp_path / "release"

    @ct.lattice
    def steps(path, release):
        first = append_then_wait(path, "first")
        second = append_then_wait(path, "second", release, after=first)
        return append_then_wait(path, "third"), second

    dispatch_id = ct.dispatch(steps)(str(log), str(release))
    wait_for(lambda: log.exists() and "second" in log.read_text(), what="the second node to start")

    # "third" runs beside "second": kill only once its completion is stored, since a
    # node that finished but was not yet recorded runs again (at-least-once).
    wait_for(
        lambda: (
            sum(
                n["status"] == "COMPLETED"
                for n in ct.get_result(dispatch_id).get_all_node_results()
                if n["node_name"] == "append_then_wait"
            )
            == 2
        ),
        what="first and third to be recorded",
    )
    pid = home.server_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        )
    )
    _start(home)
    wait_for(lambda: log.read_text().count("second") == 2, what="the second node to run again")
    release.touch()
    result = ct.get_result(dispatch_id, wait=True)
    assert result.status == ct.status.COMPLETED
    lines = log.read_text().splitlines()
    assert lines.count("first") == 1  # completed before the kill: not run again
    assert lines.count("second") == 2  # running at the kill: run again (at-least-once)
    assert lines.count("third") == 1


@pytest.mark.both_stores
def test_cancel_stops_a_running_dispatch(home: Home) -> None:
    _start(home)

    @ct.lattice
    def sleepy():
        return double(nap(300))

    dispatch_id = ct.dispatch(sleepy)()
    wait_for(
        lambda: ct.get_result(dispatch_id).get_node_result(0)["status"] == ct.status.RUNNING,
        what="the nap to start",
    )
    ct.cancel(dispatch_id)
    result = ct.get_result(dispatch_id, wait=True)
    assert result.status == ct.status.CANCELLED
    statuses = [n["status"] for n in result.get_all_node_results()]
    assert statuses[0] == ct.status.CANCELLED
    assert ct.status.RUNNING not in statuses


def test_get_result_of_unknown_server_is_a_clear_error(home: Home) -> None:
    from tests.conftest import free_port

    with pytest.raises(ct.CovalentError, match="No covalent server answers at http://localhost:"):
        ct.get_result("x", dispatcher_addr=f"localhost:{free_port()}")


def test_executor_defaults_from_the_config_apply_to_its_electrons(home: Home) -> None:
    config = home.root / "config" / "covalent.conf"
    config.write_text(config.read_text() + "\n[executors.local]\ntimeout = 1\n")
    _start(home)

    @ct.lattice
    def sleepy():
        return nap(120)

    result = ct.dispatch_sync(sleepy)()
    assert result.status == ct.status.FAILED
    error = result.get_node_result(0)["error"]
    assert "timeout of 1 s" in error
    assert "Where it was when stopped" in error and "in nap" in error, error


def test_a_bad_executor_setting_in_the_config_stops_the_start_naming_it(home: Home) -> None:
    config = home.root / "config" / "covalent.conf"
    config.write_text(config.read_text() + '\n[executors.local]\nworkers = "many"\n')
    done = home.run("covalent", "start")
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert "[executors.local]" in said and "workers" in said and "'many'" in said, said
    assert home.server_pid() is None


def test_purge_asks_then_stops_and_deletes_config_and_cache(home: Home) -> None:
    _start(home)
    refused = home.run("covalent", "purge", input="n\n")
    assert refused.returncode != 0
    assert (home.root / "config").exists() and home.server_pid() is not None
    done = home.run("covalent", "purge", "-y")
    assert done.returncode == 0, done.stderr
    assert not (home.root / "config").exists()
    assert not (home.root / "cache").exists()
    assert home.run("covalent", "status").stdout.strip() == "Covalent server is stopped."
