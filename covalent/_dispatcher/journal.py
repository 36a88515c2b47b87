"""What the dispatcher says in the server log: a line per dispatch that starts, per node
that fails (its name and its error's first line) and per dispatch that ends (status,
duration, counts), at INFO; with DEBUG, every committed transition with its cause.
Every record carries ``dispatch_id``, ``node_id`` and ``event`` (covalent/_server/logs.py
formats them as ``dispatch=<id>``), so a dispatch's lines can be found.
"""

from __future__ import annotations

import logging
from typing import Any

from covalent._dispatcher.run import Run
from covalent._results.status import Status

log = logging.getLogger("covalent.dispatcher")


def fields(dispatch_id: str, event: str, node_id: int | None = None) -> dict[str, Any]:
    """The structured fields of a log record (see covalent/_server/logs.py)."""
    return {"dispatch_id": dispatch_id, "node_id": node_id, "event": event}


def log_failures(transitions: list[Any], runs: dict[str, Run]) -> None:
    """One INFO line per node that failed: its name and its error's first line."""
    failed = Status.FAILED.value
    for t in transitions:
        if t["new"] != failed or t["node_id"] < 0:
            continue
        run = runs.get(t["dispatch_id"])
        if run is None:
            continue
        node_id = t["node_id"]
        error = first_line(run.errors.get(node_id, ""))
        extra = fields(run.dispatch_id, "node.failed", node_id)
        log.info("%s failed: %s", run.label(node_id), error, extra=extra)


FIRST_LINE_LIMIT = 1000
"""Characters of an error's first line kept for a log line."""
_WINDOW = 64 * 1024
"""Characters of an error read to find its first line (the head, or a traceback's last
frame on): an error of 50 MB is not split into lines on the event loop."""


def first_line(text: str) -> str:
    """An error's first line; for a traceback, the exception's (after the frames), cut to
    FIRST_LINE_LIMIT characters."""
    lines = [line for line in text[:_WINDOW].splitlines() if line.strip()]
    if not lines:
        return "(no error text)"
    if lines[0].startswith("Traceback (most recent call last)"):
        last = text.rfind('\n  File "')
        if last >= 0:
            tail = text[last + 1 : last + 1 + _WINDOW]
            lines = [line for line in tail.splitlines() if line.strip()]
        frames = [i for i, line in enumerate(lines) if line.startswith("  File ")]
        after = frames[-1] + 1 if frames else 1
        while after < len(lines) and (  # the frame's source, a recursion's repeats
            lines[after].startswith("    ") or lines[after].startswith("  [Previous line")
        ):
            after += 1
        lines = lines[after:] or lines
    return lines[0].strip()[:FIRST_LINE_LIMIT]


def summary(run: Run) -> str:
    """``COMPLETED in 2.31 s: 5 nodes, 4 completed, 1 failed`` (parameters not counted)."""
    counts = {s.value: run.status.count(s) for s in Status}  # a C-speed pass each
    counts[Status.COMPLETED.value] -= run.parameters  # parameters stay COMPLETED
    counts = {status: n for status, n in counts.items() if n}
    took = ""
    if run.start_time and run.end_time:
        took = f" in {max(0.0, run.end_time - run.start_time):.2f} s"
    parts = ", ".join(f"{n} {status.lower()}" for status, n in sorted(counts.items()))
    return f"{run.dispatch_status.value}{took}: {sum(counts.values())} nodes" + (
        f", {parts}" if parts else ""
    )


def log_transitions(transitions: list[Any]) -> None:
    """One DEBUG line per committed status change, with its cause."""
    for t in transitions:
        node = t["node_id"] if t["node_id"] >= 0 else None
        event = f"{'node' if node is not None else 'dispatch'}.{t['new'].lower()}"
        extra = fields(t["dispatch_id"], event, node)
        log.debug("%s -> %s: %s", t["old"], t["new"], t["cause"], extra=extra)
