"""A task's output as an executor reads it while the task runs (a remote process's
stdout, a batch job's output files), passed on to the dispatcher in bunches.

:class:`LiveOutput` hands what it gets to ``task.on_output``, at most once per stream
every :data:`INTERVAL` seconds (a chatty electron costs a few store writes a second,
not one per read); :meth:`LiveOutput.flush` hands over the rest at once, which an
executor does before it returns the Outcome, so that the output precedes the end. A
caller that does not follow output (``task.on_output`` is None: the conformance kit, a
script) gets it in the Outcome instead (:meth:`LiveOutput.into`).
"""

from __future__ import annotations

import asyncio

from covalent.executor.task import Outcome, Task

INTERVAL = 0.25
"""Seconds between two hand-overs of one task's output."""

STREAMS = ("stdout", "stderr")


class LiveOutput:
    """One task's stdout and stderr on their way to the dispatcher."""

    def __init__(self, task: Task, interval: float = INTERVAL) -> None:
        self.report = task.on_output
        self.interval = interval
        self.pending: dict[str, list[str]] = {s: [] for s in STREAMS}
        self.kept: dict[str, list[str]] = {s: [] for s in STREAMS}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, stream: str, text: str) -> None:
        """Take ``text`` the task wrote to ``stream``; hand it over soon."""
        if not text:
            return
        if self.report is None:
            self.kept[stream].append(text)
            return
        self.pending[stream].append(text)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self.flush)

    def flush(self) -> None:
        """Hand over everything taken so far."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.report is None:
            return
        for stream, parts in self.pending.items():
            if parts:
                text = "".join(parts)
                parts.clear()
                self.report(stream, text)

    def into(self, outcome: Outcome) -> Outcome:
        """The Outcome, after the rest is handed over; with no one following, with the
        output in front of its own ``stdout`` and ``stderr``."""
        self.flush()
        outcome.stdout = "".join(self.kept["stdout"]) + outcome.stdout
        outcome.stderr = "".join(self.kept["stderr"]) + outcome.stderr
        for parts in self.kept.values():
            parts.clear()
        return outcome
