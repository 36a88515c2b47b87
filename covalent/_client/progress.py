"""What ``ct.get_result(..., wait=True)`` shows while it waits.

On a terminal, a rich progress bar on stderr (nodes done of total, running, failed,
elapsed) that is erased when the wait ends. In a Jupyter kernel, a small HTML block
(no widgets) updated in place through ``IPython.display`` and emptied at the end.
Anywhere else (a pipe, a file, a captured stream), or with ``progress=False``, nothing.

While progress shows, the wait polls the server every :data:`POLL` seconds without the
node rows; each answer carries ``node_counts`` (``{status: n}``, parameters left out),
one GROUP BY on the server.
"""

from __future__ import annotations

import contextlib
import html
import importlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn

from covalent._results.status import FINAL_STATUSES, Status

POLL = 0.5
"""Seconds each poll may wait on the server for the dispatch to finish."""

_FINAL = {s.value for s in FINAL_STATUSES}

Update = Callable[[dict[str, Any]], None]
"""Called with each answer of the server while waiting."""


@dataclass(frozen=True)
class Snapshot:
    """How far a dispatch is, from one answer of the server."""

    total: int
    done: int
    running: int
    failed: int
    elapsed: float

    @classmethod
    def of(cls, detail: dict[str, Any], waited_since: float) -> Snapshot:
        counts: dict[str, int] = detail.get("node_counts") or {}
        started = detail.get("start_time")
        elapsed = time.time() - started if started else time.monotonic() - waited_since
        return cls(
            total=sum(counts.values()) or int(detail.get("node_count") or 0),
            done=sum(n for status, n in counts.items() if status in _FINAL),
            running=counts.get(Status.RUNNING.value, 0),
            failed=counts.get(Status.FAILED.value, 0),
            elapsed=max(0.0, elapsed),
        )


def format_elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Reporter(Protocol):
    def update(self, snapshot: Snapshot) -> None: ...

    def close(self) -> None: ...


class TerminalReporter:
    """A transient rich bar: drawn on the first update, erased by :meth:`close`."""

    def __init__(self, dispatch_id: str, console: Console) -> None:
        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("dispatch {task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} nodes"),
            TextColumn("{task.fields[running]} running"),
            TextColumn("{task.fields[failed]} failed"),
            TextColumn("{task.fields[elapsed]} elapsed"),
            console=console,
            transient=True,
        )
        self.task: TaskID | None = None
        self.label = dispatch_id[:8]

    def update(self, snapshot: Snapshot) -> None:
        fields: dict[str, Any] = {
            "running": snapshot.running,
            "failed": snapshot.failed,
            "elapsed": format_elapsed(snapshot.elapsed),
        }
        if self.task is None:  # the first update draws the bar
            self.task = self.bar.add_task(
                self.label, total=snapshot.total, completed=snapshot.done, **fields
            )
            self.bar.start()
            return
        self.bar.update(self.task, total=snapshot.total, completed=snapshot.done, **fields)
        self.bar.refresh()

    def close(self) -> None:
        if self.task is not None:
            self.bar.stop()


def notebook_html(dispatch_id: str, snapshot: Snapshot) -> str:
    """The progress block shown in a notebook (plain HTML, no widgets)."""
    text = (
        f"{snapshot.done}/{snapshot.total} nodes &#183; {snapshot.running} running &#183; "
        f"{snapshot.failed} failed &#183; {format_elapsed(snapshot.elapsed)} elapsed"
    )
    return (
        '<div class="covalent-progress" style="font-family: monospace">'
        f"<span>dispatch {html.escape(dispatch_id[:8])}</span> "
        f'<progress value="{snapshot.done}" max="{max(snapshot.total, 1)}"></progress> '
        f"<span>{text}</span></div>"
    )


class NotebookReporter:
    """An HTML block in the cell's output, updated in place by its display id."""

    def __init__(self, dispatch_id: str, display_module: Any) -> None:
        self.dispatch_id = dispatch_id
        self.display = display_module
        self.handle: Any = None

    def update(self, snapshot: Snapshot) -> None:
        block = self.display.HTML(notebook_html(self.dispatch_id, snapshot))
        if self.handle is None:
            self.handle = self.display.display(block, display_id=True)
        else:
            self.handle.update(block)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.update(self.display.HTML(""))


def _kernel_display() -> Any:
    """``IPython.display`` if this process is a Jupyter kernel, else None.

    A kernel has imported IPython already, so a plain script never pays for importing it.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or not hasattr(shell, "kernel"):
        return None
    return importlib.import_module("IPython.display")


def _is_terminal(stream: TextIO) -> bool:
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def reporter(
    dispatch_id: str, progress: bool | None, stream: TextIO | None = None
) -> Reporter | None:
    """The reporter to use: None (auto) picks a notebook, a terminal, or nothing; True shows
    the bar even where no terminal is detected; False shows nothing."""
    if progress is False:
        return None
    display = _kernel_display()
    if display is not None:
        return NotebookReporter(dispatch_id, display)
    stream = stream or sys.stderr
    if progress or _is_terminal(stream):
        return TerminalReporter(dispatch_id, Console(file=stream, force_terminal=True))
    return None


@contextlib.contextmanager
def showing(dispatch_id: str, progress: bool | None) -> Iterator[Update | None]:
    """``update(detail)`` for one wait, or None when nothing shows; the output is closed
    (erased on a terminal) however the wait ends."""
    shown = reporter(dispatch_id, progress)
    if shown is None:
        yield None
        return
    since = time.monotonic()
    try:
        yield lambda detail: shown.update(Snapshot.of(detail, since))
    finally:
        shown.close()
