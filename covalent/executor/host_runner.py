"""The long-lived runner on a host: many tasks over one stream, each in a process of its own.

Run as ``python -m covalent.executor.host_runner``; the SSH executor starts one over one
SSH channel and keeps it for every electron it runs there. It imports covalent once,
then reads requests on its stdin and answers on its stdout, both as MessagePack objects
one after another (the records of :mod:`covalent.executor.messages`: ``Run`` and
``Signal`` in; ``Hello``, ``Began``, ``Wrote`` and ``Ended`` out), split by msgpack's
streaming Unpacker. Its first message is a ``Hello`` naming the stream's version
(``RUNNER_PROTOCOL``) and the newest task payload it reads.

Each ``Run`` is forked off this pre-imported process: no interpreter starts per task.
The child leads a session (and process group) of its own, runs the packed request with
``runner.run_packed`` (the same code as ``python -m covalent.executor.runner --stream``),
with its stdout and stderr (file descriptors 1 and 2, line-buffered) on pipes that come
back here and go out as ``Wrote`` while it runs, and SIGUSR1 dumping its stacks. Its
MessagePack reply comes back on a third pipe; once the child has exited, ``Ended``
carries the reply (or None, with the exit status or signal, if it died first). A
``Signal`` sends SIGUSR1 to a task's process, or SIGKILL to its whole group: one task's
end never touches another. When the stream ends (the executor closed the channel, the
connection dropped), every running task's group is killed and the runner exits; if the
runner itself is killed, the kernel kills each task's process (Linux: PR_SET_PDEATHSIG).

The runner never runs user code itself, so a crash or a leak in one task stays in that
task's process. Stray writes to this process's own stdout go to its stderr, so they
cannot break the stream.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import errno
import gc
import os
import selectors
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import msgpack

from covalent.executor import messages
from covalent.executor.payload import PAYLOAD_VERSION
from covalent.executor.runner import flush_output, run_packed, stream_output

READ_SIZE = 65536
MAX_MESSAGE = 2**31 - 1
"""The largest request the runner unpacks (larger ones come as files)."""
PR_SET_PDEATHSIG = 1


@dataclass
class _Child:
    """One task's process and the read ends of its pipes (stdout, stderr, reply)."""

    id: int
    pid: int
    pipes: dict[int, str]
    reply: bytearray = field(default_factory=bytearray)
    decoders: dict[str, Any] = field(default_factory=dict)
    status: int | None = None

    def decode(self, stream: str, data: bytes, final: bool = False) -> str:
        decoder = self.decoders.setdefault(
            stream, codecs.getincrementaldecoder("utf-8")(errors="replace")
        )
        return str(decoder.decode(data, final))


class HostRunner:
    """The loop: requests from ``stdin_fd``, events to ``stdout_fd``, children reaped."""

    def __init__(self, stdin_fd: int, stdout_fd: int) -> None:
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self.unpacker = msgpack.Unpacker(raw=False, max_buffer_size=MAX_MESSAGE)
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, _Child] = {}  # by task id
        self.wake_r, self.wake_w = os.pipe()
        self.open = True

    def serve(self) -> None:
        """Say hello, then run requests until the stream ends; kill what still runs."""
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the stream's end says it all
        signal.set_wakeup_fd(self.wake_w)
        self.selector.register(self.stdin_fd, selectors.EVENT_READ, "stdin")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")
        gc.freeze()  # what is here now is shared with every child, never copied by its gc
        self.send(messages.Hello(messages.RUNNER_PROTOCOL, PAYLOAD_VERSION, os.getpid()))
        while self.open or self.children:
            for key, _ in self.selector.select(timeout=1.0):
                self.ready(key.fd, key.data)
            self.reap()

    def ready(self, fd: int, what: Any) -> None:
        if what == "stdin":
            self.read_requests()
        elif what == "wake":
            with contextlib.suppress(BlockingIOError):
                os.read(self.wake_r, READ_SIZE)
        else:
            self.read_child(what, fd)

    # requests

    def read_requests(self) -> None:
        data = os.read(self.stdin_fd, READ_SIZE)
        if not data:
            self.stream_ended()
            return
        self.unpacker.feed(data)
        for message in self.unpacker:
            try:
                request = messages.runner_request(message)
            except messages.MessageError as e:
                print(f"covalent runner: {e}", file=sys.stderr, flush=True)
                continue
            if isinstance(request, messages.Run):
                self.start(request)
            else:
                self.signal(request)

    def stream_ended(self) -> None:
        """No more requests: kill every running task's group."""
        self.open = False
        self.selector.unregister(self.stdin_fd)
        for child in self.children.values():
            _kill_group(child.pid, signal.SIGKILL)

    def start(self, run: messages.Run) -> None:
        """Fork the task's process; if that fails, its end says why (the runner goes on)."""
        pipes: list[tuple[int, int]] = []
        try:
            pipes.extend(os.pipe() for _ in range(3))
            runner = os.getpid()
            pid = os.fork()
        except OSError as e:
            for fd in (fd for pair in pipes for fd in pair):
                os.close(fd)
            self.send(messages.Wrote(run.id, "stderr", f"covalent runner: cannot fork: {e}\n"))
            self.send(messages.Ended(run.id))
            return
        if pid == 0:
            _child_main(runner, run, *(w for _, w in pipes))
        for _, w in pipes:
            os.close(w)
        streams = ("stdout", "stderr", "reply")
        child = _Child(run.id, pid, {r: name for (r, _), name in zip(pipes, streams, strict=True)})
        self.children[run.id] = child
        for fd in child.pipes:
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ, child)
        self.send(messages.Began(run.id, pid, time.time()))

    def signal(self, request: messages.Signal) -> None:
        child = self.children.get(request.id)
        if child is None or child.status is not None:  # ended: its pid may be reused
            return
        if request.signal == "USR1":
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGUSR1)
        else:
            _kill_group(child.pid, signal.SIGKILL)

    # children

    def read_child(self, child: _Child, fd: int) -> None:
        """What a child wrote on one of its pipes (all there is, once it has exited)."""
        while True:
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                return
            if not data:
                self.selector.unregister(fd)
                os.close(fd)
                stream = child.pipes.pop(fd)
                if stream != "reply":
                    self.wrote(child, stream, child.decode(stream, b"", final=True))
                return
            if child.pipes[fd] == "reply":
                child.reply += data
            else:
                self.wrote(child, child.pipes[fd], child.decode(child.pipes[fd], data))
            if child.status is None:
                return  # still running: read again when there is more

    def wrote(self, child: _Child, stream: str, text: str) -> None:
        if text:
            self.send(messages.Wrote(child.id, stream, text))

    def reap(self) -> None:
        """Collect children that exited; send each one's end after the rest of its output."""
        for child in list(self.children.values()):
            if child.status is None:
                with contextlib.suppress(ChildProcessError):
                    pid, status = os.waitpid(child.pid, os.WNOHANG)
                    if pid:
                        child.status = status
            if child.status is not None:
                self.finish(child)

    def finish(self, child: _Child) -> None:
        for fd in list(child.pipes):  # what is left in the pipes; a pipe a grandchild
            self.read_child(child, fd)  # still holds open is left there
        for fd in list(child.pipes):
            self.selector.unregister(fd)
            os.close(fd)
        del self.children[child.id]
        status = child.status or 0
        self.send(
            messages.Ended(
                child.id,
                bytes(child.reply) or None,
                os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            )
        )

    def send(self, event: messages.RunnerEvent) -> None:
        data = memoryview(messages.encode(event))
        while data:
            try:
                data = data[os.write(self.stdout_fd, data) :]
            except BrokenPipeError:  # the executor is gone: nothing to tell it
                if self.open:
                    self.stream_ended()
                return


def _kill_group(pid: int, sig: int) -> None:
    """Signal the process group ``pid`` leads (or ``pid`` alone if it leads none yet)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    except PermissionError:
        pass


def _child_main(runner: int, run: messages.Run, stdout_w: int, stderr_w: int, reply_w: int) -> None:
    """In the forked child: a session of its own, output on the pipes, run, exit."""
    code = 1
    try:
        _die_with(runner)
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        _own_descriptors(stdout_w, stderr_w, reply_w)
        stream_output()
        reply = run_packed(_request_of(run), capture=False)
        flush_output()
        _write_all(3, reply)
        code = 0
    except BaseException:  # noqa: BLE001 - the child reports everything, then exits
        with contextlib.suppress(Exception):
            traceback.print_exc()
            flush_output()
    finally:
        os._exit(code)


def _die_with(runner: int) -> None:
    """On Linux, have the kernel kill this process if the runner dies (SIGKILL, a crash),
    so that an electron does not outlive the runner that would report it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != runner:  # it died before that took effect
        os._exit(1)


def _own_descriptors(stdout_w: int, stderr_w: int, reply_w: int) -> None:
    """0 is /dev/null, 1 and 2 the output pipes, 3 the reply pipe; nothing else open."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(stdout_w, 1)
    os.dup2(stderr_w, 2)
    os.dup2(reply_w, 3, inheritable=False)
    os.closerange(4, _max_fd())


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        return 65536


def _request_of(run: messages.Run) -> bytes:
    if run.request is not None:
        return run.request
    with open(run.request_file, "rb") as f:
        data = f.read()
    with contextlib.suppress(OSError):
        os.remove(run.request_file)
    return data


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except InterruptedError:
            continue
        except OSError as e:
            if e.errno != errno.EINTR:
                raise


def main() -> int:
    """Serve on stdin/stdout; the process's own stdout now goes to its stderr."""
    stdout_fd = os.dup(1)
    os.dup2(2, 1)
    HostRunner(0, stdout_fd).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
