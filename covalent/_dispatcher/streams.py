"""A node's stdout or stderr as it arrives: capped in the store, whole in a log file.

The store keeps at most :data:`STREAM_LIMIT` characters of each stream per node. Past
that, it keeps the first and the last half of the limit with a line between them saying
how much is left out and where the whole text is: a log file in the dispatch's results
folder, to which the loop appends every chunk from then on (pure here: this module says
what to append; the loop writes it).
"""

from __future__ import annotations

from pathlib import Path

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
