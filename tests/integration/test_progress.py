"""Progress while ``ct.get_result(..., wait=True)`` waits: a bar on a terminal that is
erased at the end, nothing on a pipe or with ``progress=False``. (In a notebook, HTML:
tests/integration/test_notebook.py runs a real kernel.)

Each workflow waits for a release file, so the test decides when it finishes: after the
bar has been seen, or after the dispatch is known to be running.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import covalent as ct
from tests.conftest import Home, wait_for

SCRIPT = """
import sys
import covalent as ct

@ct.electron
def gate(path):
    import os, time
    deadline = time.monotonic() + 300
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "released"

@ct.lattice
def flow(path):
    return gate(path)

progress = {"auto": None, "off": False, "on": True}[sys.argv[2]]
dispatch_id = ct.dispatch(flow)(sys.argv[1])
print("ID", dispatch_id, flush=True)
result = ct.get_result(dispatch_id, wait=True, progress=progress)
print("RESULT", result.status, result.result, flush=True)
"""

BAR = re.compile(r"dispatch [0-9a-f]{8} .* 0/1 nodes 1 running 0 failed \d+:\d\d elapsed")
CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")
DEADLINE = 180.0


def screen(output: str, width: int = 120) -> list[str]:
    """What a terminal shows after ``output``: enough of a VT100 for rich's live display
    (carriage return, newline, cursor up, erase line; other sequences ignored)."""
    lines, row, col = [""], 0, 0
    pos = 0
    for match in CSI.finditer(output + "\x1b[0m"):
        for ch in output[pos : match.start()]:
            if ch == "\r":
                col = 0
            elif ch == "\n":
                row, col = row + 1, 0
                lines += [""] * (row + 1 - len(lines))
            elif ch.isprintable():
                line = lines[row].ljust(col)
                lines[row] = line[:col] + ch + line[col + 1 :]
                col = min(col + 1, width)
        pos = match.end()
        arg, op = match.group(1), match.group(2)
        if op == "A":
            row = max(0, row - int(arg or 1))
        elif op == "K" and arg == "2":
            lines[row] = ""
    return [line.rstrip() for line in lines]


def write_script(tmp_path: Path) -> Path:
    script = tmp_path / "flow.py"
    script.write_text(SCRIPT)
    return script


def read_until(fd: int, found: Callable[[str], bool], into: bytearray) -> None:
    """Read ``fd`` into ``into`` until ``found(text)`` or end of file."""
    deadline = time.monotonic() + DEADLINE
    while not found(into.decode(errors="replace")):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out; output so far: {into.decode(errors='replace')!r}"
        ready, _, _ = select.select([fd], [], [], min(remaining, 0.1))  # re-check found
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the pty's other side is closed
            return
        if not chunk:
            return
        into.extend(chunk)


def run_in_pty(server: Home, tmp_path: Path, mode: str, release_when: Callable[[str], bool]) -> str:
    """Run the script on a pseudo-terminal (120 columns); release the gate once
    ``release_when(output so far)``; return everything it wrote."""
    release = tmp_path / "release"
    main, child = os.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, **server.env, "COVALENT_SERVER_URL": server.url, "TERM": "xterm"}
    env.pop("COLUMNS", None)
    process = subprocess.Popen(
        [sys.executable, str(write_script(tmp_path)), str(release), mode],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
        cwd=tmp_path,
        close_fds=True,
    )
    os.close(child)
    output = bytearray()
    try:
        read_until(main, release_when, output)
        release.touch()
        read_until(main, lambda text: False, output)
        assert process.wait(timeout=DEADLINE) == 0, output.decode(errors="replace")
    finally:
        release.touch()
        os.close(main)
        if process.poll() is None:
            process.kill()
            process.wait()
    return output.decode(errors="replace")


def running_node(text: str) -> bool:
    """Whether the script has printed its dispatch id and the gate node runs."""
    match = re.search(r"ID (\S+)\r?\n", text)
    if not match:
        return False
    return ct.get_result(match.group(1)).get_node_result(0)["status"] == ct.status.RUNNING


def test_a_bar_shows_on_a_terminal_and_is_erased_at_the_end(server: Home, tmp_path: Path) -> None:
    output = run_in_pty(server, tmp_path, "auto", lambda text: BAR.search(text) is not None)
    assert BAR.search(output), output  # the bar was drawn, counting nodes
    shown = screen(output)
    assert not [line for line in shown if "nodes" in line], shown  # and erased
    assert [line for line in shown if line] == [
        next(line for line in shown if line.startswith("ID ")),
        "RESULT COMPLETED released",
    ]


def test_progress_false_prints_nothing_on_a_terminal(server: Home, tmp_path: Path) -> None:
    output = run_in_pty(server, tmp_path, "off", running_node)
    assert "nodes" not in output
    assert "\x1b[" not in output
    assert output.splitlines()[-1] == "RESULT COMPLETED released"


def test_nothing_is_printed_on_a_pipe(server: Home, tmp_path: Path) -> None:
    release = tmp_path / "release"
    env = {**os.environ, **server.env, "COVALENT_SERVER_URL": server.url}
    process = subprocess.Popen(
        [sys.executable, str(write_script(tmp_path)), str(release), "auto"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
        text=True,
    )
    try:
        first = process.stdout.readline()
        dispatch_id = first.split()[1]
        wait_for(
            lambda: ct.get_result(dispatch_id).get_node_result(0)["status"] == ct.status.RUNNING,
            what="the gate to run",
        )
        release.touch()
        out, err = process.communicate(timeout=DEADLINE)
    finally:
        release.touch()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert err == ""
    assert out == "RESULT COMPLETED released\n"


def test_progress_true_draws_the_bar_even_on_a_pipe(server: Home, tmp_path: Path) -> None:
    release = tmp_path / "release"
    env = {**os.environ, **server.env, "COVALENT_SERVER_URL": server.url}
    process = subprocess.Popen(
        [sys.executable, str(write_script(tmp_path)), str(release), "on"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    err = bytearray()
    try:
        read_until(process.stderr.fileno(), lambda text: BAR.search(text) is not None, err)
        release.touch()
        out, rest = process.communicate(timeout=DEADLINE)
    finally:
        release.touch()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert out.decode().endswith("RESULT COMPLETED released\n")
    assert not [line for line in screen((err + rest).decode()) if line], "bar not erased"
