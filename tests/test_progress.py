"""Progress pieces without a server: counting, choosing where to show, the notebook block.

The end-to-end behaviour is in tests/integration/test_progress.py (a pseudo-terminal, a
pipe) and tests/integration/test_notebook.py (a real Jupyter kernel).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

from rich.console import Console

from covalent._client import progress
from tests.conftest import REPO


def test_snapshot_counts_finished_running_and_failed_nodes():
    detail = {
        "node_count": 9,
        "start_time": time.time() - 65,
        "node_counts": {"COMPLETED": 3, "NOT_RUN": 1, "FAILED": 1, "RUNNING": 2, "NEW_OBJECT": 1},
    }
    snap = progress.Snapshot.of(detail, time.monotonic())
    assert (snap.total, snap.done, snap.running, snap.failed) == (8, 5, 2, 1)
    assert 64 <= snap.elapsed < 120
    assert progress.format_elapsed(snap.elapsed).startswith("1:0")


def test_snapshot_without_counts_falls_back_to_the_node_count():
    snap = progress.Snapshot.of({"node_count": 4, "start_time": None}, time.monotonic())
    assert (snap.total, snap.done) == (4, 0)


def test_elapsed_is_minutes_and_seconds_then_hours():
    assert progress.format_elapsed(5) == "0:05"
    assert progress.format_elapsed(3725) == "1:02:05"


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_nothing_on_a_stream_that_is_not_a_terminal():
    assert progress.reporter("d" * 36, None, io.StringIO()) is None


def test_a_bar_on_a_terminal_unless_progress_is_false(monkeypatch):
    monkeypatch.delenv("TERM", raising=False)
    assert isinstance(progress.reporter("d" * 36, None, FakeTTY()), progress.TerminalReporter)
    assert progress.reporter("d" * 36, False, FakeTTY()) is None
    monkeypatch.setenv("TERM", "dumb")
    assert progress.reporter("d" * 36, None, FakeTTY()) is None


def test_progress_true_forces_the_bar():
    assert isinstance(progress.reporter("d" * 36, True, io.StringIO()), progress.TerminalReporter)


def test_a_terminal_ipython_is_not_a_notebook() -> None:
    """IPython's own terminal shell (no kernel): no HTML block, and no bar on a pipe."""
    code = "from covalent._client import progress; print(progress.reporter('d' * 36, None))"
    done = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--quick", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"


def test_the_bar_is_drawn_on_the_first_update_and_erased_on_close():
    stream = FakeTTY()
    shown = progress.TerminalReporter("0123456789abcdef", Console(file=stream, force_terminal=True))
    shown.close()  # never drawn: nothing to erase
    assert stream.getvalue() == ""
    shown.update(progress.Snapshot(total=4, done=1, running=2, failed=0, elapsed=3))
    shown.close()
    text = stream.getvalue()
    assert "dispatch 01234567" in text and "1/4 nodes" in text and "0:03 elapsed" in text


def test_notebook_block_is_well_formed_and_escaped():
    block = progress.notebook_html("<id>&", progress.Snapshot(3, 1, 1, 1, 61.0))
    root = ET.fromstring(block)
    bar = root.find("progress")
    assert bar is not None and bar.attrib == {"value": "1", "max": "3"}
    text = "".join(root.itertext())
    assert "dispatch <id>&" in text
    assert "1/3 nodes · 1 running · 1 failed · 1:01 elapsed" in text
