"""The far side's runner: running one task from its blobs, for every executor.

A task payload (:class:`~covalent.executor.payload.TaskPayload`, a plain dict with a
``version``) names its function and inputs by digest; :func:`run_task` unpickles them,
runs the electron with its context, working directory, environment and captured output,
and returns a reply dict (:class:`~covalent.executor.payload.TaskReply`: status, pickled
output or traceback text, stdout, stderr, times). When the payload names an executor
plugin (a run executor), that executor is rebuilt here and its ``run`` is called with
the electron instead (see :mod:`covalent.executor._run_executor`).

:func:`run_packed` does the same for one self-contained pickled request, for executors
that ship a task elsewhere (a Dask worker, a remote host, a batch job); run as
``python -m covalent.executor.runner [--stream] REQUEST REPLY`` it reads a packed
request file and writes the packed reply file (the SSH and Slurm executors run it so).
This module is public: a plugin's far side may use it, with the same covalent installed
there. With ``--stream`` the electron's output is left on the process's own stdout and
stderr (file descriptors 1 and 2, line-buffered, so C extensions and subprocesses count
too) for the executor to read while it runs, instead of being captured into the reply.
"""

from __future__ import annotations

import contextlib
import faulthandler
import functools
import hashlib
import io
import os
import pickle
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from covalent._errors import CovalentError
from covalent._wire import blobfiles, blobs, modules
from covalent._wire import manifest as manifestmod
from covalent._workflow import deps, transfer
from covalent._workflow.context import TaskContext, reset_context, set_context
from covalent.executor import _run_executor, messages, plugins
from covalent.executor.payload import PAYLOAD_VERSION

FILE_THRESHOLD = 256 * 1024
"""Outputs larger than this are written to the blob store by the worker (as the store
keeps blobs this large as files anyway)."""


class _OutputNotPicklable(Exception):
    pass


class PayloadVersionError(CovalentError):
    pass


def run_task(
    task: dict[str, Any],
    function_of: Callable[[str], Any],
    values: dict[str, bytes],
    function_bytes: Callable[[str], bytes] | None = None,
    capture: bool = True,
) -> dict[str, Any]:
    """Run one task; never raises for the electron's own failures.

    ``function_of(digest)`` gives a function blob unpickled, ``function_bytes(digest)``
    its bytes (needed for a run executor's task), ``values`` the value blobs.

    With ``capture``, what the electron prints through ``sys.stdout``/``sys.stderr`` is
    caught here and returned in the reply (and appended to ``log_stdout``/``log_stderr``);
    without, the caller captures the process's file descriptors itself (the local pool's
    workers do, so that C extensions and subprocesses count too). A run executor's task
    is always captured here: its far side's output comes back as text.
    """
    modules.prefer_shipped()  # this is a worker: the dispatch's module sources win
    capture = capture or bool(task.get("plugin"))
    start = time.time()
    out, err = (io.StringIO(), io.StringIO()) if capture else (None, None)
    reply: dict[str, Any] = {"key": task["key"], "start_time": start}
    try:
        _check_version(task)
        if task.get("plugin"):
            assert function_bytes is not None, "a run executor's task needs the function's bytes"
            assert out is not None and err is not None  # captured here, always
            reply.update(_run_with_executor(task, function_of, function_bytes, values, out, err))
        else:
            reply.update(_run_electron(task, function_of, values, out, err))
    except BaseException as e:  # the electron's failure is a value, not the worker's: a
        # KeyboardInterrupt or BaseException it raises too (it was "killed by SIGINT")
        reply.update(status="FAILED", error=_format_error(e))
        if isinstance(e, MemoryError):
            reply["error"] = "The electron ran out of memory.\n" + reply["error"]
    reply.update(end_time=time.time())
    if out is not None and err is not None:
        reply.update(stdout=out.getvalue(), stderr=err.getvalue())
        for stream in ("stdout", "stderr"):
            append_log(task.get("options", {}), stream, reply[stream])
    return reply


def _check_version(task: dict[str, Any]) -> None:
    version = task.get("version", 1)
    if not isinstance(version, int) or version > PAYLOAD_VERSION:
        raise PayloadVersionError(
            f"This task's payload has version {version!r}, newer than this covalent's "
            f"runner reads (up to {PAYLOAD_VERSION}); install the server's covalent here."
        )


def _run_electron(
    task: dict[str, Any],
    function_of: Callable[[str], Any],
    values: dict[str, bytes],
    out: io.StringIO | None,
    err: io.StringIO | None,
) -> dict[str, Any]:
    function = function_of(task["function"])
    args = [blobs.load_value(d, values.__getitem__) for d in task["args"]]
    kwargs = {k: blobs.load_value(d, values.__getitem__) for k, d in task["kwargs"].items()}
    extras = blobs.loads(values[task["extras"]]) if task.get("extras") else {}
    with _task_environment(task, out, err):
        if extras:
            deps.install(extras)
            kwargs.update(transfer.apply_before(extras))
            kwargs.update(deps.apply_before(extras))
        result = None if task.get("sublattice") else function(*args, **kwargs)
        if extras:
            deps.apply_after(extras)
            transfer.apply_after(extras)
    blobs_dir = task.get("options", {}).get("blobs_dir")
    if task.get("sublattice"):  # built from the inputs, not called
        stored = _store_output(_build_sublattice(function, args, kwargs), blobs_dir, _write_bytes)
    elif type(result) in _SMALL or (type(result) is int and result.bit_length() < 2**20):
        # the same bytes as blobs.dump's (under FILE_THRESHOLD), with less on the way
        stored = {"output": pickle.dumps(result, protocol=5)}
    else:
        stored = _store_output(result, blobs_dir, blobs.dump)
    return {"status": "COMPLETED", **stored, "output_repr": blobs.short_repr(result)}


def _run_with_executor(
    task: dict[str, Any],
    function_of: Callable[[str], Any],
    function_bytes: Callable[[str], bytes],
    values: dict[str, bytes],
    out: io.StringIO,
    err: io.StringIO,
) -> dict[str, Any]:
    """A run executor's task: its ``setup``/``run``/``teardown`` around the wrapped electron."""
    executor = plugins.for_worker(task["plugin"], _installed_plugins(), function_of)
    function = _run_executor.callable_for(task, function_bytes, values)
    args, kwargs = _run_executor.arguments(task, values)
    metadata = _run_executor.task_metadata(task)
    try:
        with _task_environment(task, out, err):
            result = _run_executor.call(executor, function, args, kwargs, metadata)
    except (Exception, SystemExit) as e:
        far = _run_executor.error_of(e, executor)
        if far is None:
            raise
        out.write(far[1])
        err.write(far[2])
        _write_streams(executor, metadata, out, err)
        return {"status": "FAILED", "error": far[0]}
    data, value, shown, stdout, stderr = _run_executor.output_of(result)
    out.write(stdout)
    err.write(stderr)
    _write_streams(executor, metadata, out, err)
    blobs_dir = task.get("options", {}).get("blobs_dir")
    if data is not None:
        stored = _store_output(data, blobs_dir, _write_bytes)
    else:
        stored = _store_output(value, blobs_dir, blobs.dump)
    return {"status": "COMPLETED", **stored, "output_repr": shown}


def _write_streams(
    executor: Any, metadata: dict[str, Any], out: io.StringIO, err: io.StringIO
) -> None:
    """The executor's own ``log_stdout``/``log_stderr`` files, as Covalent wrote them."""
    paths = [getattr(executor, "log_stdout", ""), getattr(executor, "log_stderr", "")]
    if any(paths):
        with contextlib.suppress(OSError, TypeError):
            executor.write_streams_to_file(
                [out.getvalue(), err.getvalue()],
                paths,
                metadata["dispatch_id"],
                metadata["results_dir"],
            )


def _build_sublattice(lattice: Any, args: list[Any], kwargs: dict[str, Any]) -> bytes:
    """A sublattice node's output: its lattice built with the real inputs, as a bundle
    (manifest and blobs) the dispatcher submits as a child dispatch without unpickling."""
    graph = lattice.build_graph(*args, **kwargs)
    manifest, blobs_ = manifestmod.from_graph(graph, tuple(args), kwargs, lattice)
    return manifestmod.pack(manifest, blobs_)  # bundle.pack's bytes in meaning, faster


@functools.lru_cache(maxsize=1)
def _installed_plugins() -> dict[str, plugins.Plugin]:
    """Discovered once per process: a worker runs many plugin tasks."""
    return plugins.discover()


def run_packed(request: bytes, capture: bool = True) -> bytes:
    """Run ``pickle({"task", "functions", "values"})``; return the reply as MessagePack
    (:class:`~covalent.executor.messages.Reply`), which the server reads without
    unpickling. ``capture`` as in :func:`run_task`."""
    message = pickle.loads(request)
    functions = message["functions"]
    reply = run_task(
        message["task"],
        lambda d: blobs.loads(functions[d]),
        message["values"],
        functions.__getitem__,
        capture=capture,
    )
    return messages.encode(messages.reply(reply))


_SMALL = (float, bool, type(None))
"""Output types whose pickle is short and made without cloudpickle (an int's, too, up
to 2**20 bits: 128 KB), as :func:`blobs.dump` makes it."""


def _store_output(
    result: Any, blobs_dir: str | None, write: Callable[[Any, _Output], object]
) -> dict[str, Any]:
    """The reply's ``output`` (the bytes ``write`` gives), or for a large one with a blob
    store at hand its ``output_file``: written there as it is made, never whole in memory.
    ``write`` is ``blobs.dump`` for a value, ``_write_bytes`` for bytes made already."""
    output = _Output(blobs_dir)
    try:
        write(result, output)
    except _OutputNotStored:
        output.discard()
        raise
    except Exception as e:
        output.discard()
        raise _OutputNotPicklable(
            f"The electron returned a {type(result).__name__}, which cannot be pickled: {e}"
        ) from None
    return output.finish()


def _write_bytes(data: bytes, output: _Output) -> None:
    output.write(data)


class _Output:
    """A pickled output as it is written: in memory up to ``FILE_THRESHOLD`` bytes, then
    in a partial file in the blob store (:class:`blobfiles.PartialFile`); hashed on the
    way. ``finish`` names the file by its digest, so no reader ever sees half a blob,
    and a failed or killed write leaves nothing behind."""

    def __init__(self, blobs_dir: str | None) -> None:
        self.blobs_dir = blobs_dir
        self.hash: Any = None  # made once the output goes to a file (a small one is not hashed)
        self.parts: list[bytes] = []
        self.size = 0
        self.file: blobfiles.PartialFile | None = None

    def write(self, data: Any) -> int:
        self.size += len(data)
        try:
            if self.file is None and self.blobs_dir and self.size > FILE_THRESHOLD:
                self.file = blobfiles.PartialFile(self.blobs_dir)
                self.hash = hashlib.sha256()
                for part in self.parts:
                    self.hash.update(part)
                    self.file.write(part)
                self.parts = []
            if self.file is not None:
                self.hash.update(data)
                self.file.write(data)
            else:
                self.parts.append(bytes(data))
        except OSError as e:
            raise _OutputNotStored(
                f"The electron's output (over {self.size} bytes) could not be stored: {e}"
            ) from None
        return len(data)

    def finish(self) -> dict[str, Any]:
        if self.file is None:
            return {"output": b"".join(self.parts)}
        name = self.hash.hexdigest()
        assert self.blobs_dir
        path = blobfiles.path_of(self.blobs_dir, name)
        try:
            self.file.publish(path)
        except OSError as e:
            raise _OutputNotStored(
                f"The electron's output ({self.size} bytes) could not be stored: {e}"
            ) from None
        return {"output": None, "output_file": {"digest": name, "size": self.size, "path": path}}

    def discard(self) -> None:
        if self.file is not None:
            self.file.discard()


class _OutputNotStored(Exception):
    pass


def _format_error(error: BaseException) -> str:
    """The traceback of ``error`` without this module's own frames."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb))


@contextlib.contextmanager
def _task_environment(
    task: dict[str, Any], out: io.StringIO | None, err: io.StringIO | None
) -> Any:
    """Context, working directory, environment and captured output for one task."""
    options = task.get("options", {})
    token = set_context(TaskContext(**task["context"]))
    workdir = options.get("workdir")
    old_cwd = os.getcwd() if workdir else None
    env = {k: str(v) for k, v in (options.get("env") or {}).items()}
    old_env = {k: os.environ.get(k) for k in env}
    try:
        if env:
            os.environ.update(env)
        if workdir:
            os.makedirs(workdir, exist_ok=True)
            os.chdir(workdir)
        if out is None or err is None:
            yield
        else:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                yield
    finally:
        if old_cwd is not None:
            os.chdir(old_cwd)
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_context(token)


def append_log(options: dict[str, Any], stream: str, text: str) -> None:
    """Append a task's ``stream`` text to its ``log_stdout``/``log_stderr`` file, if set."""
    path = options.get(f"log_{stream}")
    if path and text:
        with contextlib.suppress(OSError), open(path, "a") as f:
            f.write(text)


def main(argv: list[str] | None = None) -> int:
    """Run the packed request in file ``REQUEST``; write the packed reply to ``REPLY``.

    The reply appears under its name only once complete, so a reader never sees half of it.
    With ``--stream``, the electron writes to this process's stdout and stderr as they
    are (see the module docstring), and SIGUSR1 writes every thread's Python stack to
    stderr (faulthandler), which an executor sends before it kills a timed-out electron.
    """
    args = sys.argv[1:] if argv is None else argv
    stream = bool(args) and args[0] == "--stream"
    paths = args[1:] if stream else args
    if len(paths) != 2:
        print("usage: python -m covalent.executor.runner [--stream] REQUEST REPLY", file=sys.stderr)
        return 2
    request_path, reply_path = paths
    with open(request_path, "rb") as f:
        request = f.read()
    if stream:
        stream_output()
    reply = run_packed(request, capture=not stream)
    if stream:
        flush_output()
    partial = f"{reply_path}.part"
    with open(partial, "wb") as f:
        f.write(reply)
    os.replace(partial, reply_path)
    return 0


def stream_output() -> None:
    """Line-buffer Python's stdout and stderr (a print reaches the file or pipe at its
    newline), and dump the stacks on SIGUSR1."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    faulthandler.register(signal.SIGUSR1, all_threads=True)


def flush_output() -> None:
    """Flush Python's stdout and stderr (before a reply is written, or the process exits)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


if __name__ == "__main__":
    sys.exit(main())
