"""A node's stdout or stderr as it arrives: capped in the store, whole in a log file.

The store keeps at most :data:`STREAM_LIMIT` characters of each stream per node. Past
that, it keeps the first and the last half of the limit with a line between them saying
how much is left out and where the whole text is: a log file in the dispatch's results
folder, to which the loop appends every chunk from then on (pure here: this module says
what to append; the loop writes it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

STREAM_LIMIT = 256 * 1024
"""Characters of one stream of one node kept in the store (the rest in a log file)."""


NOTE_START = "[... "
"""How the note in a capped stream begins; the number of characters left out follows."""


def log_path(results_dir: str, node_id: int, stream: str) -> str:
    """Where the whole text of a node's stream goes once it passes the limit."""
    return str(Path(results_dir) / f"node_{node_id}.{stream}.log")


class NodeStream:
    """One stream of one node, as much of it as the store keeps."""

    __slots__ = ("text", "tail", "dropped", "path", "length")

    def __init__(self, path: str) -> None:
        self.text = ""  # all of it, until it passes the limit; then its head
        self.tail = ""
        self.dropped = 0
        self.path = path
        self.length = 0  # characters taken so far, kept or not

    @classmethod
    def resumed(cls, path: str, stored: str, note: str) -> NodeStream:
        """A stream that goes on from what the store kept (``stored``, as
        :meth:`render` gave it) after ``note``: a node that runs again after a restart
        keeps what its first run wrote, and offsets keep growing."""
        stream = cls(path)
        total = stored_length(stored)
        if total == len(stored):
            stream.text, stream.length = stored, total
        else:
            half = STREAM_LIMIT // 2
            stream.text, stream.tail = stored[:half], stored[-half:]
            stream.dropped, stream.length = total - 2 * half, total
        stream.add(note)
        return stream

    def add(self, chunk: str) -> str:
        """Take ``chunk``; return what to append to the log file ("" for nothing)."""
        if not chunk:
            return ""
        self.length += len(chunk)
        if not self.dropped and len(self.text) + len(chunk) <= STREAM_LIMIT:
            self.text += chunk
            return ""
        half = STREAM_LIMIT // 2
        if not self.dropped:  # passing the limit now: the file gets everything so far
            whole = self.text + chunk
            self.text, self.tail = whole[:half], whole[-half:]
            self.dropped = len(whole) - len(self.text) - len(self.tail)
            return whole
        joined = self.tail + chunk
        self.tail = joined[-half:]
        self.dropped += len(joined) - len(self.tail)
        return chunk

    def render(self) -> str:
        """What the store keeps: all of it, or its head and tail around a note."""
        if not self.dropped:
            return self.text
        where = f"the whole text is in {self.path}"
        note = f"{NOTE_START}{self.dropped} characters not shown; {where} ...]"
        return f"{self.text}\n{note}\n{self.tail}"


def stored_length(stored: str) -> int:
    """How many characters a stream had when the store kept ``stored`` (what
    :meth:`NodeStream.render` gave): its length, or for a capped stream the kept head
    and tail plus the characters the note says were left out."""
    if len(stored) <= STREAM_LIMIT:
        return len(stored)
    head = stored[: STREAM_LIMIT // 2]
    rest = stored[STREAM_LIMIT // 2 + 1 :]
    if not rest.startswith(NOTE_START):
        return len(stored)
    dropped = rest[len(NOTE_START) :].split(" ", 1)[0]
    return len(head) + int(dropped) + STREAM_LIMIT // 2 if dropped.isdigit() else len(stored)


class Sink(Protocol):
    """Where the writes of output go (a run's Effects): text to append to log files,
    and each chunk with its offset for the live stream."""

    spill: list[tuple[str, str]]
    output: list[tuple[int, str, int, str]]


class RunOutput:
    """The stdout and stderr of one run's nodes while they run, and the writes they
    make: a column to store (returned), text for a log file and chunks for the live
    stream (into a :class:`Sink`). Pure: the loop writes."""

    def __init__(self, results_dir: str) -> None:
        self.results_dir = results_dir
        self.streams: dict[tuple[int, str], NodeStream] = {}

    def add(self, node_id: int, stream: str, text: str, sink: Sink) -> dict[str, str]:
        """Append ``text`` to a node's stream; the column to write, if it changed."""
        found = self.streams.get((node_id, stream))
        if found is None:
            if not text:
                return {}
            path = log_path(self.results_dir, node_id, stream)
            found = self.streams[(node_id, stream)] = NodeStream(path)
        offset = found.length
        spilled = found.add(text)
        if spilled:
            sink.spill.append((found.path, spilled))
        if text:
            sink.output.append((node_id, stream, offset, text))
        return {stream: found.render()}

    def end(self, node_id: int, stdout: str, stderr: str, sink: Sink) -> dict[str, str]:
        """The node ended with the rest of its output: its whole columns."""
        fields = self.add(node_id, "stdout", stdout, sink)
        fields.update(self.add(node_id, "stderr", stderr, sink))
        self.streams.pop((node_id, "stdout"), None)
        self.streams.pop((node_id, "stderr"), None)
        return fields

    def resumed(self, node_id: int, row: dict[str, Any]) -> dict[str, str]:
        """A node that runs again after a restart: its next output follows what its
        interrupted run wrote, after a line that says so; the columns to write now (so
        that a reader's offsets match from the start)."""
        fields: dict[str, str] = {}
        for stream in ("stdout", "stderr"):
            stored = row.get(stream) or ""
            if stored:
                path = log_path(self.results_dir, node_id, stream)
                note = "" if stored.endswith("\n") else "\n"
                note += "[covalent: the server restarted while this ran; it runs again]\n"
                found = self.streams[(node_id, stream)] = NodeStream.resumed(path, stored, note)
                fields[stream] = found.render()
        return fields


def where_it_was(stdout: str, stderr: str) -> str:
    """For a timed-out node's error: its last output line, and the Python stack of its
    main thread when it was stopped (faulthandler's dump at the end of its stderr)."""
    text = ""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if lines:
        text += f"\nIts last line of output: {lines[-1]}"
    start = stderr.rfind("Current thread 0x")
    if start >= 0:
        frames = stderr[start:].split("\n\n", 1)[0].splitlines()[1:]
        ours = next((i for i, f in enumerate(frames) if "covalent/executor/" in f), len(frames))
        stack = "\n".join(frames[:ours])  # the electron's frames, not the worker's below them
        text += f"\nWhere it was when stopped (most recent call first):\n{stack}"
    return text
