"""The worker process of the local pool: receives task batches, runs them, replies.

Started as ``python -m covalent.executor._worker FD`` with one end of a socket pair.
Messages are pickled dicts in ``multiprocessing.connection`` frames. A request holds
``tasks`` and the blobs they need (``functions`` are kept for the life of the worker,
``values`` only for the batch); every task gets one reply, in order.
"""

from __future__ import annotations

import pickle
import resource
import sys
from multiprocessing.connection import Connection
from typing import Any

from covalent._wire import blobs
from covalent.executor._runner import run_task


class FileValues(dict[str, bytes]):
    """Value blobs sent in the message, plus large ones read from the blob store's files."""

    def __init__(self, values: dict[str, bytes], files: dict[str, str]) -> None:
        super().__init__(values)
        self.files = files

    def __missing__(self, name: str) -> bytes:
        with open(self.files[name], "rb") as f:
            return f.read()


class Worker:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.functions: dict[str, bytes] = {}
        self.loaded: dict[str, Any] = {}

    def serve(self) -> None:
        while True:
            try:
                request = pickle.loads(self.conn.recv_bytes())
            except (EOFError, OSError):
                return
            self.functions.update(request["functions"])
            values = FileValues(request["values"], request.get("files", {}))
            for task in request["tasks"]:
                reply = run_task(task, self.function, values)
                self.conn.send_bytes(pickle.dumps(reply, protocol=5))

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
    conn = Connection(int(sys.argv[1]))
    limit_memory(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    sys.stdin.close()
    Worker(conn).serve()


if __name__ == "__main__":
    main()
