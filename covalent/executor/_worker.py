"""The worker process of the local pool: receives task batches, runs them, replies.

Started as ``python -m covalent.executor._worker FD`` with one end of a socket pair.
Messages are pickled dicts in ``multiprocessing.connection`` frames. A request holds
``tasks`` and the blobs they need (``functions`` are kept for the life of the worker,
``values`` only for the batch); every task gets one reply, in order.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import sys
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from covalent._wire import blobs
from covalent._workflow.context import TaskContext, reset_context, set_context


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
            values: dict[str, bytes] = request["values"]
            for task in request["tasks"]:
                reply = self.run(task, values)
                self.conn.send_bytes(pickle.dumps(reply, protocol=5))

    def function(self, name: str) -> Any:
        if name not in self.loaded:
            self.loaded[name] = blobs.loads(self.functions[name])
        return self.loaded[name]

    def run(self, task: dict[str, Any], values: dict[str, bytes]) -> dict[str, Any]:
        start = time.time()
        out, err = io.StringIO(), io.StringIO()
        reply: dict[str, Any] = {"key": task["key"], "start_time": start}
        try:
            function = self.function(task["function"])
            args = [blobs.loads(values[d]) for d in task["args"]]
            kwargs = {k: blobs.loads(values[d]) for k, d in task["kwargs"].items()}
            with _task_environment(task, out, err):
                result = function(*args, **kwargs)
            reply.update(status="COMPLETED", output=_dump_output(result))
            reply["output_repr"] = blobs.short_repr(result)
        except BaseException as e:  # the electron's failure is a value, not the worker's
            if isinstance(e, KeyboardInterrupt):
                raise
            reply.update(status="FAILED", error=_format_error(e))
        reply.update(stdout=out.getvalue(), stderr=err.getvalue(), end_time=time.time())
        _append_logs(task.get("options", {}), reply)
        return reply


class OutputNotPicklable(Exception):
    pass


def _dump_output(result: Any) -> bytes:
    try:
        return blobs.dumps(result)
    except Exception as e:
        raise OutputNotPicklable(
            f"The electron returned a {type(result).__name__}, which cannot be pickled: {e}"
        ) from None


def _format_error(error: BaseException) -> str:
    """The traceback of ``error`` without the worker's own frames."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb))


@contextlib.contextmanager
def _task_environment(task: dict[str, Any], out: io.StringIO, err: io.StringIO) -> Any:
    """Context, working directory, environment and captured output for one task."""
    options = task.get("options", {})
    token = set_context(TaskContext(**task["context"]))
    old_cwd = os.getcwd()
    old_env = {k: os.environ.get(k) for k in options.get("env", {})}
    try:
        os.environ.update({k: str(v) for k, v in options.get("env", {}).items()})
        if options.get("workdir"):
            os.makedirs(options["workdir"], exist_ok=True)
            os.chdir(options["workdir"])
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield
    finally:
        os.chdir(old_cwd)
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_context(token)


def _append_logs(options: dict[str, Any], reply: dict[str, Any]) -> None:
    for option, stream in (("log_stdout", "stdout"), ("log_stderr", "stderr")):
        path = options.get(option)
        if path and reply[stream]:
            with contextlib.suppress(OSError), open(path, "a") as f:
                f.write(reply[stream])


def main() -> None:
    conn = Connection(int(sys.argv[1]))
    sys.stdin.close()
    Worker(conn).serve()


if __name__ == "__main__":
    main()
