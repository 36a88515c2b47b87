"""The records a task travels in to the far side's runner, and its reply.

``Task.payload()`` makes a :class:`TaskPayload`; :mod:`covalent.executor.runner` runs it
and answers with a :class:`TaskReply`. Both are plain dicts, described here as
TypedDicts; on the way back the reply travels as MessagePack, decoded by the server into
a :class:`covalent.executor.messages.Reply` without unpickling anything. ``version`` says which
shape a payload has; a runner refuses a payload newer than it knows, naming both
versions, instead of misreading it.

Version history:

1. the first shape (no ``version`` key);
2. ``version`` and ``plugin.class``/``plugin.class_blob`` (the executor's class by
   import path, or pickled by value for a class of the user's own code);
3. replies are MessagePack (:class:`covalent.executor.messages.Reply`), not pickles:
   a runner of version 2 must not answer a server that reads only these.
"""

from __future__ import annotations

from typing import Any, TypedDict

PAYLOAD_VERSION = 3

OUTPUT_BEFORE = "<the output of the task before>"
"""The input name that stands, in a chained task (``after``), for the output of the task
its worker ran just before; never a digest (those are hexadecimal)."""


class PluginSpec(TypedDict, total=False):
    """The executor a worker rebuilds to call its ``run``."""

    name: str
    """Short name (config section ``executors.<name>``)."""
    attributes: dict[str, Any]
    """Settings the instance carried (``to_dict()["attributes"]``)."""
    # ``class`` (``module:qualname``) is a keyword, so it is set as a plain key.
    class_blob: str
    """Digest of the class pickled by value, for a class not installed where it runs."""


class TaskContextRecord(TypedDict):
    dispatch_id: str
    node_id: int
    node_name: str
    results_dir: str
    """The dispatch's results folder."""


class TaskPayload(TypedDict, total=False):
    version: int
    plugin: PluginSpec | None
    key: list[Any]
    function: str
    args: list[str]
    kwargs: dict[str, str]
    extras: str | None
    sublattice: bool
    options: dict[str, Any]
    """``workdir``, ``env``, ``log_stdout``, ``log_stderr``, ``blobs_dir``."""
    context: TaskContextRecord
    timed: bool
    """The task has a timeout: a worker reports its start at once, not with its reply
    (an electron that holds the GIL would keep that report from being sent)."""
    after: list[Any]
    """Only to the local pool's workers (the same covalent as the server): the key of
    the task before, whose output, kept in the worker's memory, is each input named
    :data:`OUTPUT_BEFORE` (a chain's next step, sent before that output was stored)."""


class TaskReply(TypedDict, total=False):
    key: list[Any]
    status: str
    """COMPLETED or FAILED."""
    output: bytes | None
    output_file: dict[str, Any]
    """A large output written into the blob store: ``digest``, ``size``, ``path``."""
    output_repr: str
    error: str
    stdout: str
    stderr: str
    start_time: float
    end_time: float
