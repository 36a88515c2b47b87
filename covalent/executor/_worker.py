"""The worker process of the local pool: receives task batches, runs them, replies.

Started as ``python -m covalent.executor._worker FD`` with one end of a socket pair.
Messages are pickled in ``multiprocessing.connection`` frames. A request is a dict of
``tasks`` and the blobs they need (``functions`` are kept for the life of the worker,
``values`` only for the batch). A reply message is a list of task replies: every task
gets one, in order.

Replies go out as soon as the socket is free: a sending thread takes every reply that
finished meanwhile, so a batch of quick tasks costs a few messages, not one each, and a
reply never waits for the next task to end (the sender runs whenever the task thread
waits or its GIL turn ends). The batch's last reply is sent by the task thread itself,
without a hand-off, so a chain of tasks pays no thread switch.
"""

from __future__ import annotations

import contextlib
import mmap
import pickle
import resource
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from covalent._wire import blobs
from covalent.executor.runner import run_task


class FileValues(dict[str, bytes]):
    """Value blobs sent in the message, plus large ones read from the blob store's files."""

    def __init__(self, values: dict[str, bytes], files: dict[str, str]) -> None:
        super().__init__(values)
        self.files = files

    def __missing__(self, name: str) -> bytes:
        """A large blob's file, mapped rather than read: unpickling copies it once from
        the page cache instead of twice (a read buffer, then the value)."""
        with open(self.files[name], "rb") as f:
            try:
                return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # type: ignore[return-value]
            except (ValueError, OSError):  # empty, or a file system that cannot map
                return f.read()


class Replies:
    """Task replies on their way to the server, sent in order, several per message."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._pending: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        threading.Thread(target=self._sender, name="replies", daemon=True).start()

    def add(self, reply: dict[str, Any], last: bool) -> None:
        with self._cond:
            self._pending.append(reply)
            if not last:
                self._cond.notify()
        if last:
            self._flush()

    def _sender(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending))
            self._flush()

    def _flush(self) -> None:
        with self._send_lock:
            with self._cond:
                replies, self._pending = self._pending, []
            if replies:  # if the server is gone, the main loop notices and exits
                with contextlib.suppress(OSError):
                    self.conn.send_bytes(pickle.dumps(replies, protocol=5))


class Worker:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.functions: dict[str, bytes] = {}
        self.loaded: dict[str, Any] = {}
        self.replies = Replies(conn)

    def serve(self) -> None:
        while True:
            try:
                request = pickle.loads(self.conn.recv_bytes())
            except (EOFError, OSError):
                return
            self.functions.update(request["functions"])
            values = FileValues(request["values"], request.get("files", {}))
            tasks = request["tasks"]
            for position, task in enumerate(tasks):
                reply = run_task(task, self.function, values, self.functions.__getitem__)
                self.replies.add(reply, last=position == len(tasks) - 1)

    def function(self, name: str) -> Any:
        if name not in self.loaded:
            self.loaded[name] = blobs.loads(self.functions[name])
        return self.loaded[name]


def limit_memory(limit: int) -> None:
    """Cap the process's data segment (heap and anonymous mappings) at ``limit`` bytes,
    so an electron that exhausts memory gets a MemoryError instead of the OOM killer."""
    if limit > 0:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def main() -> None:
    worker = Worker(Connection(int(sys.argv[1])))  # its sender thread's stack is not capped
    limit_memory(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    sys.stdin.close()
    worker.serve()


if __name__ == "__main__":
    main()
