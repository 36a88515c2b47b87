"""What the dispatcher hands an executor (:class:`Task`) and gets back (:class:`Outcome`)."""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from covalent._results.status import Status
from covalent._wire import blobs


@dataclass
class Task:
    """One node to run: its function and inputs as blob digests, and where it belongs."""

    dispatch_id: str
    node_id: int
    name: str
    function: str
    args: list[str]
    kwargs: dict[str, str]
    load_blob: Callable[[str], bytes]
    results_dir: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    blob_file: Callable[[str], str | None] = lambda _name: None
    """The path of a blob stored as a file, for executors that share the store's disk."""
    blobs_dir: str = ""
    """The blob store's folder, where such executors may write large outputs directly."""

    @property
    def key(self) -> tuple[str, int]:
        return (self.dispatch_id, self.node_id)

    @property
    def extras(self) -> str | None:
        """Digest of the pickled dependencies and hooks (deps_bash, call_before, ...)."""
        value = self.metadata.get("extras")
        return value if isinstance(value, str) else None

    def value_names(self) -> list[str]:
        """Digests of every value blob the task needs (inputs, the items of composite
        inputs, extras), once each."""
        names = [*self.args, *self.kwargs.values()]
        if self.extras:
            names.append(self.extras)
        found: dict[str, None] = {}
        while names:
            name = names.pop()
            if name in found:
                continue
            found[name] = None
            names.extend(self._composite_items(name))
        return list(found)

    def _composite_items(self, name: str) -> list[str]:
        path = self.blob_file(name)
        if path is None:
            return blobs.composite_items(self.load_blob(name))
        with open(path, "rb") as f:  # a large blob: look at its first bytes only
            head = f.read(len(blobs.COMPOSITE))
            return blobs.composite_items(head + f.read()) if head == blobs.COMPOSITE else []

    def payload(
        self, options: dict[str, Any] | None = None, plugin: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The plain dict the far side's runner (``_runner.run_task``) takes."""
        return {
            "plugin": plugin,
            "key": list(self.key),
            "function": self.function,
            "args": self.args,
            "kwargs": self.kwargs,
            "extras": self.extras,
            "sublattice": bool(self.metadata.get("sublattice")),
            "options": options or {},
            "context": {
                "dispatch_id": self.dispatch_id,
                "node_id": self.node_id,
                "node_name": self.name,
                "results_dir": self.results_dir,
            },
        }

    def packed(self, options: dict[str, Any] | None = None) -> bytes:
        """One self-contained request (payload, function and values) for ``_runner.run_packed``."""
        functions = {self.function: self.load_blob(self.function)}
        values = {name: self.load_blob(name) for name in self.value_names()}
        return pickle.dumps(
            {"task": self.payload(options), "functions": functions, "values": values}, protocol=5
        )

    def task_metadata(self) -> dict[str, Any]:
        return {
            "dispatch_id": self.dispatch_id,
            "node_id": self.node_id,
            "results_dir": self.results_dir,
        }


@dataclass(frozen=True)
class BlobFile:
    """A blob written as a file in the blob store by whoever produced it."""

    digest: str
    size: int
    path: str


@dataclass
class Outcome:
    """What became of a task: its pickled output, or its error with the traceback."""

    status: Status
    output: bytes | None = None
    output_repr: str = ""
    output_file: BlobFile | None = None  # a large output already written to the blob store
    output_ref: str | None = None  # the digest of an output already stored (a sublattice's)
    error: str = ""
    stdout: str = ""
    stderr: str = ""
    start_time: float = field(default_factory=time.time)
    end_time: float = field(default_factory=time.time)

    @classmethod
    def failure(cls, error: str, start_time: float | None = None) -> Outcome:
        now = time.time()
        return cls(Status.FAILED, error=error, start_time=start_time or now, end_time=now)


def outcome_from_reply(reply: dict[str, Any]) -> Outcome:
    """The Outcome of a runner's reply dict (see ``_runner.run_task``)."""
    written = reply.get("output_file")
    return Outcome(
        status=Status(reply["status"]),
        output=reply.get("output"),
        output_file=BlobFile(**written) if written else None,
        output_repr=reply.get("output_repr", ""),
        error=reply.get("error", ""),
        stdout=reply.get("stdout", ""),
        stderr=reply.get("stderr", ""),
        start_time=reply["start_time"],
        end_time=reply["end_time"],
    )
