"""What the dispatcher hands an executor (:class:`Task`) and gets back (:class:`Outcome`)."""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from covalent._results.status import Status
from covalent._wire import blobs
from covalent.executor import messages
from covalent.executor.payload import OUTPUT_BEFORE, PAYLOAD_VERSION, TaskPayload


class Cancellable(Protocol):
    """A running task's handle (an asyncio task, or a pool's job)."""

    def cancel(self) -> object: ...


DIGEST_BYTES = 64
"""Bytes of a blob's name in a message: what each item of a composite adds at least."""


class TooLarge(Exception):
    """A task's value blobs are more bytes than the caller allowed (:meth:`Task.value_blobs`)."""


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
    cached_blob: Callable[[str], bytes | None] = lambda _name: None
    """A small blob's bytes if they are at hand in memory (no query), else None."""
    blobs_dir: str = ""
    """The blob store's folder, where such executors may write large outputs directly."""
    on_start: Callable[[float], None] | None = None
    """Where an executor that knows when the task really starts (a worker picked it up,
    a batch job began) reports it: ``on_start(unix_time)``, on the event loop's thread.
    Until then the node counts as queued, not running."""
    on_output: Callable[[str, str], None] | None = None
    """Where an executor that sees the task's output while it runs reports it:
    ``on_output("stdout" or "stderr", text)``, on the event loop's thread, in order. What
    is reported here is not repeated in the Outcome's ``stdout``/``stderr``."""
    after: int | None = None
    """A chain's next task, sent to the worker running the task before it (the local
    pool's workers only): the node id whose output the inputs named
    :data:`~covalent.executor.payload.OUTPUT_BEFORE` are, kept in that worker's memory.
    A worker that does not have it (the task before failed, or another task ran in
    between) answers NOT_RUN, and the node waits for its input as any other."""
    composites: Mapping[str, list[str]] = field(default_factory=dict)
    """The items of composite inputs the dispatcher assembled, by the composite's
    digest: what :func:`~covalent._wire.blobs.composite_items` of its blob gives, at
    hand (a collection of 100,000 items is not read back and parsed into new strings)."""

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
        inputs, extras), once each: those :meth:`value_blobs` finds."""
        values, files = self.value_blobs()
        return [*values, *files]

    def value_blobs(self, limit: int | None = None) -> tuple[dict[str, bytes], dict[str, str]]:
        """The blobs of :meth:`value_names`, each looked up once: the bytes of the small
        ones and the paths of those stored as files (``blob_file``), for executors that
        share the store's disk. (A collection of 10,000 items is 10,000 lookups.)

        Raises what ``load_blob`` raises for a blob missing from the store, and
        :class:`TooLarge` as soon as the small ones pass ``limit`` bytes (a caller with a
        budget: a collection's composite of 100,000 items is not unpacked for nothing)."""
        size = 0
        values: dict[str, bytes] = {}
        files: dict[str, str] = {}
        names = [*self.args, *self.kwargs.values()]
        if self.extras:
            names.append(self.extras)
        before = OUTPUT_BEFORE if self.after is not None else None  # the worker has it
        cached, composite = self.cached_blob, blobs.COMPOSITE
        while names:
            name = names.pop()
            if name in values or name in files or name == before:
                continue
            data = cached(name)
            if data is None:
                path = self.blob_file(name)
                if path:
                    files[name] = path
                    known = self.composites.get(name)
                    if known is None:
                        known = self._composite_items(path, limit)
                    elif limit is not None and len(known) * DIGEST_BYTES > limit:
                        raise self._over(limit)
                    names.extend(known)
                    continue
                data = self.load_blob(name)
            values[name] = data
            size += len(data)
            if limit is not None and size > limit:
                raise self._over(limit)
            if data.startswith(composite):
                known = self.composites.get(name)
                names.extend(blobs.composite_items(data) if known is None else known)
        return values, files

    def _over(self, limit: int) -> TooLarge:
        return TooLarge(f"the inputs of {self.name} are over {limit} bytes")

    def _composite_items(self, path: str, limit: int | None) -> list[str]:
        """The items of the composite in blob file ``path`` (none for another blob).
        Raises TooLarge for one of over ``limit`` bytes, whose items' digests alone are
        as many bytes in the message unless items repeat (then the caller without a
        limit, the worker's thread, sends what was small after all)."""
        with open(path, "rb") as f:  # a large blob: look at its first bytes only
            head = f.read(len(blobs.COMPOSITE))
            if head != blobs.COMPOSITE:
                return []
            if limit is not None and os.fstat(f.fileno()).st_size > limit:
                raise self._over(limit)
            return blobs.composite_items(head + f.read())

    def payload(
        self, options: dict[str, Any] | None = None, plugin: dict[str, Any] | None = None
    ) -> TaskPayload:
        """The plain dict the far side's runner (``runner.run_task``) takes."""
        payload: TaskPayload = {
            "version": PAYLOAD_VERSION,
            "plugin": plugin,  # type: ignore[typeddict-item]
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
        if self.after is not None:
            payload["after"] = [self.dispatch_id, self.after]
        return payload

    def packed(self, options: dict[str, Any] | None = None) -> bytes:
        """One self-contained request (payload, function and values) for ``runner.run_packed``."""
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
    timed_out: bool = False  # stopped for outliving its timeout

    @classmethod
    def failure(
        cls, error: str, start_time: float | None = None, timed_out: bool = False
    ) -> Outcome:
        now = time.time()
        return cls(
            Status.FAILED,
            error=error,
            start_time=start_time or now,
            end_time=now,
            timed_out=timed_out,
        )


def outcome_from_reply(reply: messages.Reply | dict[str, Any]) -> Outcome:
    """The Outcome of a runner's reply (a decoded :class:`~covalent.executor.messages.Reply`,
    or the runner's reply dict in the process that ran it)."""
    if isinstance(reply, dict):
        reply = messages.reply(reply)
    written = reply.output_file
    return Outcome(
        status=Status(reply.status),
        output=reply.output,
        output_file=BlobFile(written.digest, written.size, written.path) if written else None,
        output_repr=reply.output_repr,
        error=reply.error,
        stdout=reply.stdout,
        stderr=reply.stderr,
        start_time=reply.start_time,
        end_time=reply.end_time,
    )


def load_reply(data: bytes) -> messages.Reply:
    """The reply of a runner elsewhere (a Dask worker, a remote host, a batch job),
    decoded without running any code: the output inside stays pickled bytes.

    Raises MessageError when ``data`` is not a reply.
    """
    return messages.decode_reply(data)


def workdir_options(
    task: Task,
    workdir: str,
    create_unique_workdir: bool,
    log_stdout: str,
    log_stderr: str,
    env: dict[str, str],
) -> dict[str, Any]:
    """The runner options of executors with LocalExecutor's settings (local, dask).

    A relative ``log_stdout``/``log_stderr`` lands in the dispatch's results folder (as
    in Covalent, whose config file names ``stdout.log`` and ``stderr.log``)."""
    folder = os.path.expanduser(workdir) if workdir else ""
    if create_unique_workdir:
        base = folder or task.results_dir or os.getcwd()
        folder = os.path.join(base, task.dispatch_id, f"node_{task.node_id}")
    return {
        "workdir": folder,
        "env": env,
        "log_stdout": _log_path(log_stdout, task.results_dir),
        "log_stderr": _log_path(log_stderr, task.results_dir),
    }


def _log_path(path: str, results_dir: str) -> str:
    if not path:
        return ""
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) or not results_dir else os.path.join(results_dir, path)
