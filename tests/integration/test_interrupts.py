"""Stopping a wait: Ctrl-C in ``dispatch_sync`` or ``get_result(wait=True)`` prints one
line and leaves the dispatch running; a server that does not answer is said so on
stderr at once and every few seconds, then given up on. Real subprocesses, real SIGINT.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import covalent as ct
from covalent._client.http import client_for
from tests.conftest import Home, free_port, wait_for

SLOW_LATTICE = """
import sys
import covalent as ct

@ct.electron
def slow():
    import time
    time.sleep(600)

@ct.lattice
def flow():
    return slow()
"""

DISPATCH_SYNC = (
    SLOW_LATTICE
    + """
ct.dispatch_sync(flow)()
print("not reached")
"""
)

GET_RESULT = """
import sys
import covalent as ct
print("waiting", flush=True)
ct.get_result(sys.argv[1], wait=True)
print("not reached")
"""


def _default_sigint() -> None:
    """SIGINT as a terminal gives it: a shell runs background jobs with it ignored, and a
    Python started so ignores Ctrl-C (it installs its handler only over the default)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(home: Home, script: Path, *args: str) -> subprocess.Popen[str]:
    """Run ``script`` with this process's environment (the ``server`` fixture's)."""
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=home.root,
        preexec_fn=_default_sigint,
    )


def _running_dispatches(url: str) -> list[str]:
    rows = client_for(url).list_dispatches(status="RUNNING", limit=100)["dispatches"]
    return [r["dispatch_id"] for r in rows]


def _interrupt(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    return out, err


def _check_one_line(err: str, dispatch_id: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert dispatch_id in lines[0] and "goes on running" in lines[0]
    assert f"covalent cancel {dispatch_id}" in lines[0]


def test_ctrl_c_in_dispatch_sync_prints_one_line_and_the_dispatch_goes_on(
    server: Home, tmp_path: Path
) -> None:
    script = tmp_path / "sync.py"
    script.write_text(DISPATCH_SYNC)
    before = set(_running_dispatches(server.url))
    process = _start(server, script)
    try:
        found = wait_for(
            lambda: set(_running_dispatches(server.url)) - before, 120, "the dispatch to run"
        )
        (dispatch_id,) = found
        time.sleep(0.5)  # into the wait (a poll that the signal interrupts)
        out, err = _interrupt(process)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGINT, (process.returncode, err)
    assert "not reached" not in out
    _check_one_line(err, dispatch_id)
    assert ct.get_result(dispatch_id, status_only=True)["status"] == "RUNNING"
    ct.cancel(dispatch_id)
    assert ct.get_result(dispatch_id, wait=True).status == ct.status.CANCELLED


def test_ctrl_c_in_get_result_wait_prints_one_line(server: Home, tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(SLOW_LATTICE)
    sys.path.insert(0, str(tmp_path))
    try:
        import flows  # type: ignore[import-not-found]

        dispatch_id = ct.dispatch(flows.flow)()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("flows", None)
    script = tmp_path / "wait.py"
    script.write_text(GET_RESULT)
    process = _start(server, script, dispatch_id)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "waiting\n"  # imported; about to wait
        time.sleep(0.5)  # into the wait (a poll that the signal interrupts)
        out, err = _interrupt(process)
    finally:
        process.kill()
        ct.cancel(dispatch_id)
    assert process.returncode == -signal.SIGINT, (process.returncode, err)
    _check_one_line(err, dispatch_id)


def test_waiting_for_an_absent_server_says_so_and_gives_up(home: Home, tmp_path: Path) -> None:
    script = tmp_path / "wait.py"
    script.write_text(GET_RESULT)
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script), "some-dispatch-id"],
        env={**os.environ, **home.env, "COVALENT_SERVER_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    took = time.monotonic() - started
    assert done.returncode == 1
    notes = [line for line in done.stderr.splitlines() if line.startswith("covalent: no server")]
    assert len(notes) >= 3, done.stderr  # at once, then every 5 s until it gives up
    assert url in notes[0] and "some-dispatch-id" in notes[0]
    assert "ServerUnavailableError: No covalent server answers at" in done.stderr
    assert took < 60
